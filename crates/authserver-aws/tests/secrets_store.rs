//! `SecretsManagerStore` against a real moto server over the real SDK: every store case of the
//! issue, with AWS calls counted on the wire (see `authserver_testkit::moto::wire` for how).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{RefreshError, Refreshed};
use authserver_core::{Clock, SnapshotSource, SystemClock, UserHasher};
use authserver_testkit::hash::CHEAP;
use authserver_testkit::moto::{self, store, store::setup};
use authserver_testkit::or_skip;
use authserver_testkit::users::document;
use authserver_testkit::wait::eventually;
use std::sync::Arc;
use std::time::Duration;

const DESCRIBE: &str = "DescribeSecret";
const GET: &str = "GetSecretValue";

/// How long the background refresher gets to act.
const FIVE_S: Duration = Duration::from_secs(5);

#[tokio::test]
async fn initial_load_is_one_fetch_and_serves_the_document() {
    let url = or_skip!(moto::url("initial_load_is_one_fetch_and_serves_the_document"));
    let t = setup(&url, "initial", |_| {}).await;
    let v1 = store::create(
        &t.admin,
        &t.name,
        &document(&[("alice", "pw-a"), ("bob", "pw-b")], CHEAP),
    )
    .await;

    let loaded = t.store.refresh().await.unwrap();
    assert_eq!(
        loaded,
        Refreshed::Loaded {
            version: v1.clone(),
            users: 2
        }
    );
    assert_eq!(
        (t.wire.attempts(GET), t.wire.attempts(DESCRIBE)),
        (1, 0),
        "cold start: one call"
    );
    let snapshot = t.store.current().unwrap();
    assert_eq!(snapshot.version(), v1);
    assert!(snapshot.user("alice").is_some() && snapshot.user("Alice").is_none());
    let status = t.store.status();
    assert_eq!(status.kind, "secrets_manager");
    assert!(status.ready);
    assert_eq!(
        (status.users, status.version.as_deref()),
        (Some(2), Some(v1.as_str()))
    );
    assert_eq!(status.last_error, None);
}

#[tokio::test]
async fn unchanged_version_costs_a_describe_and_no_fetch() {
    let url = or_skip!(moto::url("unchanged_version_costs_a_describe_and_no_fetch"));
    let t = setup(&url, "unchanged", |_| {}).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();
    let first = t.store.current().unwrap();
    for _ in 0..3 {
        t.clock.advance(Duration::from_secs(20));
        assert_eq!(t.store.refresh().await.unwrap(), Refreshed::Unchanged);
    }
    assert_eq!(t.wire.attempts(DESCRIBE), 3);
    assert_eq!(
        t.wire.attempts(GET),
        1,
        "no full fetch while AWSCURRENT is unchanged"
    );
    assert!(
        Arc::ptr_eq(&first, &t.store.current().unwrap()),
        "same snapshot kept"
    );
    assert_eq!(
        t.store.status().age_seconds,
        0,
        "each check confirms the snapshot"
    );
}

#[tokio::test]
async fn a_new_version_is_picked_up() {
    let url = or_skip!(moto::url("a_new_version_is_picked_up"));
    let t = setup(&url, "new-version", |_| {}).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();
    let old = t.store.current().unwrap();

    let v2 = store::put(
        &t.admin,
        &t.name,
        &document(&[("alice", "pw"), ("carol", "pw-c")], CHEAP),
    )
    .await;
    assert_eq!(
        t.store.refresh().await.unwrap(),
        Refreshed::Loaded {
            version: v2.clone(),
            users: 2
        }
    );
    let new = t.store.current().unwrap();
    assert_eq!(new.version(), v2);
    assert!(new.user("carol").is_some());
    assert_ne!(
        old.generation(),
        new.generation(),
        "caches keyed on the old snapshot see the change"
    );
    assert_eq!((t.wire.attempts(DESCRIBE), t.wire.attempts(GET)), (1, 2));
    let counters = t.store.counters();
    assert_eq!((counters.refreshes, counters.fetch_errors), (2, 0));
}

#[tokio::test]
async fn refresh_runs_ahead_of_expiry_from_current_and_ensure_fresh() {
    let url = or_skip!(moto::url(
        "refresh_runs_ahead_of_expiry_from_current_and_ensure_fresh"
    ));
    let t = setup(&url, "ttl", |c| c.version_check = Duration::from_secs(3600)).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();
    assert_eq!(
        t.store.config().refresh_every(),
        Duration::from_secs(48),
        "4/5 of the 60 s TTL"
    );

    // Not yet due: current() costs nothing.
    t.clock.advance(Duration::from_secs(47));
    t.store.current().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(t.wire.attempts(DESCRIBE), 0);
    // Due, still within the TTL: served at once, refreshed in the background.
    t.clock.advance(Duration::from_secs(2));
    t.store.current().unwrap();
    eventually("background version check", FIVE_S, || {
        t.wire.attempts(DESCRIBE) == 1
    })
    .await;
    eventually("snapshot confirmed", FIVE_S, || t.store.status().age_seconds == 0).await;

    // Past the TTL with nobody checking (a frozen Lambda): ensure_fresh waits for the check.
    t.clock.advance(Duration::from_secs(600));
    t.store.ensure_fresh().await;
    assert_eq!(t.wire.attempts(DESCRIBE), 2);
    assert_eq!(t.store.status().age_seconds, 0);
    assert_eq!(t.wire.attempts(GET), 1);
}

#[tokio::test]
async fn the_background_refresher_follows_new_versions() {
    let url = or_skip!(moto::url("the_background_refresher_follows_new_versions"));
    let t = setup(&url, "refresher", |_| {}).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    // Real time here: a 1 s TTL and 100 ms version checks.
    let mut cfg = t.store.config().clone();
    cfg.ttl = Duration::from_secs(1);
    cfg.version_check = Duration::from_millis(100);
    let store = authserver_aws::SecretsManagerStore::new(
        store::client(&url, Some(t.wire.clone())).await,
        cfg,
        UserHasher::new(b"k"),
        Arc::new(SystemClock) as Arc<dyn Clock>,
    );
    let task = store.spawn_refresher();
    eventually("first load", FIVE_S, || store.current().is_ok()).await;
    eventually("version checks", FIVE_S, || t.wire.attempts(DESCRIBE) >= 3).await;
    assert_eq!(t.wire.attempts(GET), 1);
    let v2 = store::put(&t.admin, &t.name, &document(&[("dave", "pw")], CHEAP)).await;
    eventually("new version in service", FIVE_S, || {
        store
            .current()
            .is_ok_and(|s| s.version() == v2 && s.user("dave").is_some())
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_deleted_secret_is_served_stale_then_503_then_recovers() {
    let url = or_skip!(moto::url(
        "a_deleted_secret_is_served_stale_then_503_then_recovers"
    ));
    let t = setup(&url, "deleted", |_| {}).await;
    let doc = document(&[("alice", "pw")], CHEAP);
    store::create(&t.admin, &t.name, &doc).await;
    t.store.refresh().await.unwrap();
    let v1 = t.store.current().unwrap().version().to_owned();

    t.admin
        .delete_secret()
        .secret_id(&t.name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    t.clock.advance(Duration::from_secs(30));
    let err = t.store.refresh().await.unwrap_err();
    assert!(matches!(&err, RefreshError::Call(c) if !c.retryable), "{err}");
    assert_eq!(t.wire.attempts(DESCRIBE), 1, "not-found is not retried");
    assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
    // Within the TTL, then past it: the last good snapshot still serves.
    assert_eq!(t.store.current().unwrap().version(), v1);
    t.clock.advance(Duration::from_secs(60));
    assert_eq!(t.store.current().unwrap().version(), v1);
    assert!(t.store.status().ready);
    // max_stale (120 s) after the first failure: unavailable, with a Retry-After.
    t.clock.advance(Duration::from_secs(61));
    let unavailable = t.store.current().unwrap_err();
    assert!(
        unavailable.retry_after >= Duration::from_secs(1),
        "{unavailable:?}"
    );
    let status = t.store.status();
    assert!(!status.ready);
    assert!(status.last_error.unwrap().contains("ResourceNotFoundException"));
    assert_eq!(t.store.counters().fetch_errors, 1);

    // The secret comes back (same name): the next refresh recovers. (current() above started a
    // background refresh; an explicit refresh that arrives while it runs shares its result.)
    store::create(&t.admin, &t.name, &doc).await;
    let mut recovered = false;
    for _ in 0..3 {
        recovered |= matches!(t.store.refresh().await, Ok(Refreshed::Loaded { .. }));
    }
    assert!(recovered);
    assert!(t.store.current().is_ok() && t.store.status().ready);
}

#[tokio::test]
async fn a_secret_scheduled_for_deletion_counts_as_gone() {
    let url = or_skip!(moto::url("a_secret_scheduled_for_deletion_counts_as_gone"));
    let t = setup(&url, "scheduled", |c| c.max_stale = Duration::ZERO).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();
    t.admin.delete_secret().secret_id(&t.name).send().await.unwrap();
    assert_eq!(t.store.refresh().await, Err(RefreshError::Deleted));
    assert!(t.store.current().is_ok(), "still within the TTL");
    t.clock.advance(Duration::from_secs(61));
    assert!(t.store.current().is_err(), "max_stale 0: fail closed at expiry");
}

#[tokio::test]
async fn access_denied_is_not_retried_and_the_snapshot_stays() {
    let url = or_skip!(moto::url("access_denied_is_not_retried_and_the_snapshot_stays"));
    let t = setup(&url, "denied", |_| {}).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();
    t.wire.inject(DESCRIBE, 400, "AccessDeniedException", 5);
    let err = t.store.refresh().await.unwrap_err();
    assert!(err.to_string().contains("AccessDeniedException"), "{err}");
    assert_eq!(t.wire.attempts(DESCRIBE), 1);
    assert!(t.store.current().is_ok());
    assert!(t.store.status().last_error.is_some());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_backoff() {
    let url = or_skip!(moto::url("throttling_and_server_errors_are_retried_with_backoff"));
    let t = setup(&url, "throttle", |_| {}).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.wire.inject(GET, 500, "InternalServiceError", 1);
    t.store.refresh().await.unwrap();
    assert_eq!(t.wire.attempts(GET), 2, "5xx retried");

    let v2 = store::put(&t.admin, &t.name, &document(&[("bob", "pw")], CHEAP)).await;
    t.wire.inject(DESCRIBE, 400, "ThrottlingException", 2);
    assert_eq!(
        t.store.refresh().await.unwrap(),
        Refreshed::Loaded {
            version: v2,
            users: 1
        }
    );
    assert_eq!(
        t.wire.attempts(DESCRIBE),
        3,
        "two throttled attempts, then success"
    );

    // Throttled beyond the attempt budget: the refresh fails, the snapshot stays.
    t.wire.inject(DESCRIBE, 400, "ThrottlingException", 10);
    let err = t.store.refresh().await.unwrap_err();
    assert!(matches!(&err, RefreshError::Call(c) if c.retryable), "{err}");
    assert_eq!(t.wire.attempts(DESCRIBE), 6, "3 more attempts (max_attempts)");
    assert!(t.store.current().unwrap().user("bob").is_some());
}

#[tokio::test]
async fn concurrent_refreshes_share_one_round() {
    let url = or_skip!(moto::url("concurrent_refreshes_share_one_round"));
    let t = setup(&url, "single-flight", |_| {}).await;
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = t.store.clone();
        set.spawn(async move { store.refresh().await });
    }
    let results = set.join_all().await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Refreshed::Loaded { .. }))),
        "{results:?}"
    );
    assert_eq!(t.wire.attempts(GET), 1, "one fetch for eight callers");
}

#[tokio::test]
async fn never_loaded_is_unavailable_not_empty() {
    let url = or_skip!(moto::url("never_loaded_is_unavailable_not_empty"));
    let t = setup(&url, "never-loaded", |_| {}).await;
    let err = t.store.refresh().await.unwrap_err();
    assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
    let unavailable = t.store.current().unwrap_err();
    assert!(unavailable.retry_after >= Duration::from_secs(1));
    let status = t.store.status();
    assert!(!status.ready);
    assert_eq!((status.users, status.version), (None, None));
    store::create(&t.admin, &t.name, &document(&[("alice", "pw")], CHEAP)).await;
    t.store.refresh().await.unwrap();
    assert!(t.store.current().is_ok());
}

#[tokio::test]
async fn a_binary_secret_is_accepted() {
    let url = or_skip!(moto::url("a_binary_secret_is_accepted"));
    let t = setup(&url, "binary", |_| {}).await;
    t.admin
        .create_secret()
        .name(&t.name)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(document(
            &[("alice", "pw")],
            CHEAP,
        )))
        .send()
        .await
        .unwrap();
    t.store.refresh().await.unwrap();
    assert!(t.store.current().unwrap().user("alice").is_some());
}
