//! A refused secret version (malformed JSON) never replaces the good snapshot; a version with an
//! entry below the hash policy floor serves, denying that user only; nothing logged quotes
//! usernames or hashes. Alone in its test binary: it
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
async fn a_malformed_version_is_refused_and_a_weak_entry_denies_only_its_user() {
    let Some(url) = moto::url("a_malformed_version_is_refused_and_a_weak_entry_denies_only_its_user") else {
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

    // One entry below the floor: the version serves, that user alone is refused (denied).
    let mut doc: serde_json::Value = serde_json::from_str(&document(&[("alice", "pw")], CHEAP)).unwrap();
    let weak_doc: serde_json::Value =
        serde_json::from_str(&document(&[("mallory-plaintext", "pw")], WEAK)).unwrap();
    doc["mallory-plaintext"] = weak_doc["mallory-plaintext"].clone();
    let weak = store::put(&t.admin, &t.name, &doc.to_string()).await;
    assert!(matches!(t.store.refresh().await, Ok(Refreshed::Loaded { ref version, .. }) if *version == weak));
    let snapshot = t.store.current().unwrap();
    assert_eq!(snapshot.version(), weak);
    assert!(snapshot.user("alice").is_some() && snapshot.user("mallory-plaintext").is_none());
    assert_eq!(t.store.status().refused, 1);
    assert!(t.store.status().last_error.is_none(), "not a load failure");

    let v3 = store::put(&t.admin, &t.name, &document(&[("alice", "pw2")], CHEAP)).await;
    assert!(matches!(t.store.refresh().await, Ok(Refreshed::Loaded { version, .. }) if version == v3));
    assert!(t.store.status().last_error.is_none());
    assert_eq!(t.store.status().refused, 0);

    let events = audit.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, AuditEvent::StoreReloadFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "one per distinct failure: {events:?}");
    let changed = events
        .iter()
        .filter(|e| matches!(e, AuditEvent::StoreVersionChanged { .. }))
        .count();
    assert_eq!(changed, 3, "v1, the weak one and v3: {events:?}");
    assert!(!format!("{events:?}").contains("mallory"));

    let text = logs.text();
    assert!(text.contains("refused"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("refused by the hash policy"))
        .unwrap_or_else(|| panic!("the refused entry is logged: {text}"));
    assert!(
        line.contains("user_hash") && line.contains("outside policy") && line.contains("ERROR"),
        "{line}"
    );
    assert!(!text.contains("mallory") && !text.contains("$argon2id"), "{text}");
}
