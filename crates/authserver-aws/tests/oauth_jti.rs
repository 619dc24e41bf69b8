//! The DynamoDB jti store over the real SDK against moto: concurrent inserts of one id (a winner,
//! then none), expiry read before TTL deletes, a 4 KB assertion id, and an outage as a defined
//! error.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::RetryPolicy;
use authserver_aws::oauth::{DynamoDbJtiStore, JtiStore, WallClock};
use authserver_testkit::{moto, or_skip};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const NOW: u64 = 1_800_000_000;

fn clock() -> (Arc<AtomicU64>, WallClock) {
    let t = Arc::new(AtomicU64::new(NOW));
    let read = t.clone();
    (t, Arc::new(move || read.load(Ordering::SeqCst)))
}

/// 16 concurrent inserts of one id; what each returned.
async fn race(store: &Arc<DynamoDbJtiStore>, jti: &'static str) -> Vec<bool> {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(jti, NOW + 900).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

/// What moto can show of insert-once: every concurrent insert answers (a lost condition is
/// `false`, never an error), at least one wins, and once the id is recorded every concurrent
/// insert loses. "Exactly one winner" is DynamoDB's per-item atomic conditional write; moto 5.2.5
/// evaluates the condition and writes without a lock (`Table.put_item`), and once in about ten
/// runs under load let more than one of 16 through, so the first race asserts at least one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_of_one_jti_have_one_winner_then_none() {
    let url = or_skip!(moto::url(
        "concurrent_inserts_of_one_jti_have_one_winner_then_none"
    ));
    let client = moto::oauth::dynamodb(&url).await;
    let table = moto::oauth::jti_table(&client).await;
    let store = Arc::new(DynamoDbJtiStore::new(client, table, clock().1));
    let first = race(&store, "jti-race").await;
    assert!(first.iter().any(|w| *w), "someone inserts first: {first:?}");
    let replays = race(&store, "jti-race").await;
    assert_eq!(replays, [false; 16], "a recorded id is never inserted again");
    assert!(store.contains("jti-race").await.unwrap());
    assert!(!store.contains("jti-other").await.unwrap());
    assert!(store.insert("jti-other", NOW + 900).await.unwrap());
    assert!(!store.insert("jti-other", NOW + 900).await.unwrap(), "a replay");
}

/// A client assertion's jti is client text: a 4 KB one made a partition key over DynamoDB's
/// 2,048 bytes (ValidationException, answered 503). Keys are hashed: a defined answer, and
/// replay detection still works on the long id.
#[tokio::test]
async fn a_4_kb_assertion_jti_is_stored_under_a_short_key() {
    let url = or_skip!(moto::url("a_4_kb_assertion_jti_is_stored_under_a_short_key"));
    let client = moto::oauth::dynamodb(&url).await;
    let table = moto::oauth::jti_table(&client).await;
    let store = DynamoDbJtiStore::new(client.clone(), table.clone(), clock().1);
    let long = format!("assertion\nsvc-jwt\n{}", "j".repeat(4096));
    assert!(store.insert(&long, NOW + 60).await.unwrap(), "first use");
    assert!(!store.insert(&long, NOW + 60).await.unwrap(), "a replay");
    assert!(store.contains(&long).await.unwrap());
    let other = format!("assertion\nsvc-jwt\n{}k", "j".repeat(4095));
    assert!(!store.contains(&other).await.unwrap());
    let items = client.scan().table_name(&table).send().await.unwrap();
    let keys: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("jti")?.as_s().ok().cloned())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("assertion#") && keys[0].len() < 64,
        "{keys:?}"
    );
}

#[tokio::test]
async fn an_expired_jti_reads_as_absent_before_ttl_deletes_it() {
    let url = or_skip!(moto::url("an_expired_jti_reads_as_absent_before_ttl_deletes_it"));
    let client = moto::oauth::dynamodb(&url).await;
    let table = moto::oauth::jti_table(&client).await;
    let (t, now) = clock();
    let store = DynamoDbJtiStore::new(client, table, now);
    assert!(store.insert("jti-1", NOW + 10).await.unwrap());
    t.store(NOW + 9, Ordering::SeqCst);
    assert!(store.contains("jti-1").await.unwrap());
    t.store(NOW + 10, Ordering::SeqCst);
    assert!(
        !store.contains("jti-1").await.unwrap(),
        "exp passed: absent, item or not"
    );
    assert!(
        store.insert("jti-1", NOW + 100).await.unwrap(),
        "an expired id is free again"
    );
    assert!(store.contains("jti-1").await.unwrap());
}

#[tokio::test]
async fn an_outage_is_a_defined_error_without_the_jti() {
    let url = or_skip!(moto::url("an_outage_is_a_defined_error_without_the_jti"));
    let client = moto::oauth::dynamodb(&url).await;
    let store = DynamoDbJtiStore::new(client, "no-such-table", clock().1);
    let err = store.insert("jti-secretish", NOW + 1).await.unwrap_err();
    assert_eq!(
        err.0,
        "DynamoDB PutItem on no-such-table: ResourceNotFoundException"
    );
    let err = store.contains("jti-secretish").await.unwrap_err();
    assert_eq!(
        err.0,
        "DynamoDB GetItem on no-such-table: ResourceNotFoundException"
    );
    // Nothing listens on port 9 of loopback: connection refused, retried, then an error.
    let down = moto::oauth::dynamodb("http://127.0.0.1:9").await;
    let quick = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    };
    let store = DynamoDbJtiStore::new(down, "jti", clock().1).with_retry(quick);
    let err = store.contains("jti-secretish").await.unwrap_err();
    assert_eq!(err.0, "DynamoDB GetItem on jti: connection or timeout");
    assert!(!format!("{err:?}{store:?}").contains("jti-secretish"));
}
