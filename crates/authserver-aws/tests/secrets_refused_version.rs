//! A refused secret version (malformed JSON, hash below the policy floor) never replaces the
//! good snapshot, and nothing logged quotes usernames or hashes. Alone in its test binary: it
//! captures this thread's logs, which parallel tests in the same process would disturb.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use authserver_aws::{RefreshError, Refreshed};
use authserver_core::{AuditEvent, AuditSink, SnapshotSource};
use common::{CHEAP, WEAK, document, moto_url, setup};
use std::sync::Arc;

const GET: &str = "GetSecretValue";

#[tokio::test]
async fn a_malformed_or_weak_version_never_replaces_the_good_snapshot() {
    let Some(url) = moto_url("a_malformed_or_weak_version_never_replaces_the_good_snapshot") else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let mut t = setup(&url, "malformed", |_| {}).await;
    let audit = Arc::new(Recorder::default());
    t.store = t.store.with_audit(audit.clone());
    let v1 = common::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();

    let truncated = common::put(
        &t.admin,
        &t.name,
        r#"{"alice": {"passwordHash": "$argon2id$v=19$m=64"#,
    )
    .await;
    let err = t.store.refresh().await.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Invalid { version, .. } if *version == truncated),
        "{err}"
    );
    assert_eq!(t.store.current().unwrap().version(), v1, "last good kept");
    assert!(t.store.status().last_error.unwrap().contains("not valid JSON"));
    // The refused version is not fetched again while it stays AWSCURRENT.
    let gets = t.wire.attempts(GET);
    assert_eq!(t.store.refresh().await.unwrap_err(), err);
    assert_eq!(t.wire.attempts(GET), gets);

    let weak = common::put(&t.admin, &t.name, &document(&[("mallory-plaintext", "pw")], WEAK)).await;
    let err = t.store.refresh().await.unwrap_err();
    let RefreshError::Invalid { version, reason } = &err else {
        panic!("{err}")
    };
    assert_eq!(version, &weak);
    assert!(
        reason.contains("outside policy") && reason.contains("user_hash"),
        "{reason}"
    );
    assert!(!reason.contains("mallory"), "usernames never logged: {reason}");
    assert_eq!(t.store.current().unwrap().version(), v1);

    let v3 = common::put(&t.admin, &t.name, &document(&[("alice", "pw2")], CHEAP)).await;
    assert!(matches!(t.store.refresh().await, Ok(Refreshed::Loaded { version, .. }) if version == v3));
    assert!(t.store.status().last_error.is_none());

    let events = audit.0.lock().unwrap().clone();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, AuditEvent::StoreReloadFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 2, "one per distinct failure: {events:?}");
    let changed = events
        .iter()
        .filter(|e| matches!(e, AuditEvent::StoreVersionChanged { .. }))
        .count();
    assert_eq!(changed, 2, "v1 and v3: {events:?}");
    assert!(!format!("{events:?}").contains("mallory"));

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("mallory") && !text.contains("$argon2id"), "{text}");
}

/// Captures this thread's log output (the test runs on a current-thread runtime).
fn capture_logs() -> (Arc<std::sync::Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = Buf(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

/// Keeps every audit event.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<AuditEvent>>);

impl AuditSink for Recorder {
    fn emit(&self, event: AuditEvent) {
        self.0.lock().unwrap().push(event);
    }
}
