//! The DynamoDB jti store over the real SDK against moto: one winner among concurrent inserts
//! of one id, expiry read before TTL deletes, and an outage as a defined error.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_of_one_jti_exactly_one_wins() {
    let url = or_skip!(moto::url("concurrent_inserts_of_one_jti_exactly_one_wins"));
    let client = moto::oauth::dynamodb(&url).await;
    let table = moto::oauth::jti_table(&client).await;
    let store = Arc::new(DynamoDbJtiStore::new(client, table, clock().1));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert("jti-race", NOW + 900).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one of 16 concurrent inserts is first");
    assert!(store.contains("jti-race").await.unwrap());
    assert!(!store.contains("jti-other").await.unwrap());
    assert!(!store.insert("jti-race", NOW + 900).await.unwrap(), "a replay");
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
