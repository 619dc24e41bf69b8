//! A refused secret version (malformed JSON, hash below the policy floor) never replaces the
//! good snapshot, and nothing logged quotes usernames or hashes. Alone in its test binary: it
//! captures this thread's logs, which parallel tests in the same process would disturb.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{RefreshError, Refreshed};
use authserver_core::{AuditEvent, SnapshotSource};
use authserver_testkit::fakes::Recorder;
use authserver_testkit::hash::{CHEAP, WEAK};
use authserver_testkit::logs::capture_logs;
use authserver_testkit::moto::{self, store, store::setup};
use authserver_testkit::users::document;
use std::sync::Arc;

const GET: &str = "GetSecretValue";

#[tokio::test]
async fn a_malformed_or_weak_version_never_replaces_the_good_snapshot() {
    let Some(url) = moto::url("a_malformed_or_weak_version_never_replaces_the_good_snapshot") else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let mut t = setup(&url, "malformed", |_| {}).await;
    let audit = Arc::new(Recorder::default());
    t.store = t.store.with_audit(audit.clone());
    let v1 = store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();

    let truncated = store::put(
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

    let weak = store::put(&t.admin, &t.name, &document(&[("mallory-plaintext", "pw")], WEAK)).await;
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

    let v3 = store::put(&t.admin, &t.name, &document(&[("alice", "pw2")], CHEAP)).await;
    assert!(matches!(t.store.refresh().await, Ok(Refreshed::Loaded { version, .. }) if version == v3));
    assert!(t.store.status().last_error.is_none());

    let events = audit.events();
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

    let text = logs.text();
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("mallory") && !text.contains("$argon2id"), "{text}");
}
