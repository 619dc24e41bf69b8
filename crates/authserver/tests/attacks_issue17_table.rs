//! Attacks on the DynamoDB users store (issue 17): the version pickup bound
//! ("a write through the CLI is in force for every request that starts more than
//! `version_poll` plus one round trip after the write returned") under a cancelled request and
//! under a read that races a version poll. The server talks to moto through a small TCP relay
//! that can hold DynamoDB's answers back on chosen connections.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::StoreKind;
use authserver::http::AppState;
use authserver_aws::UsersTable;
use authserver_core::Status;
use authserver_testkit::hash::policy;
use authserver_testkit::moto::relay::{Hold, Relay};
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::users::{basic, settings};
use authserver_testkit::{moto, or_skip};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// A table holding alice (ACTIVE) and a server on it through a relay, polling the version
/// every second, entries kept for the default five minutes.
async fn rig(url: &str) -> (UsersTable, Relay, Arc<AppState>) {
    let c = ut::client(url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c, &name);
    table
        .add("alice", &ut::record("alice-pw", Status::Active))
        .await
        .unwrap();
    table.bump_version().await.unwrap();
    let relay = Relay::start(url).await;
    let mut s = settings(std::path::Path::new("/nonexistent"));
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = relay.url.clone();
    s.users_table.name = name;
    s.users_table.version_poll_seconds = 1;
    s.users_table.entry_ttl_seconds = 300;
    s.hash.policy = policy();
    let state = authserver::wiring::build(s).unwrap().state;
    (table, relay, state)
}

/// The `users disable` CLI path: the conditional write, then the version bump.
async fn disable(table: &UsersTable, user: &str) {
    table.set_status(user, Status::Disabled).await.unwrap();
    table.bump_version().await.unwrap();
}

/// A request dropped while it is reading the version item (client gone, HTTP/2 reset, request
/// timeout) leaves `polling` set for good: the process never reads the version again, and a
/// `users disable` is then in force only after `entry_ttl` (5 min), not `version_poll` (1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_during_the_version_poll_stops_every_later_pickup() {
    let url = or_skip!(moto::url(
        "a_request_cancelled_during_the_version_poll_stops_every_later_pickup"
    ));
    let (table, relay, state) = rig(&url).await;
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "alice cached"
    );

    // The next request after the poll interval reads the version; its client goes away then.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    relay.hold(Hold::All);
    let dropped = tokio::time::timeout(Duration::from_millis(300), ut::validate(&state, &alice)).await;
    assert!(dropped.is_err(), "the request was cancelled while polling");
    relay.hold(Hold::Nothing);

    // Control: without that cancellation this is denied within ~1 s (see the contract).
    disable(&table, "alice").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::UNAUTHORIZED,
        "alice was disabled 2.5 s ago through the CLI path (version_poll = 1 s); the server \
         still accepts her: no version poll has run since the cancelled request"
    );
}

/// Control for the test above: the same sequence without the cancellation is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_cancellation_a_disable_is_picked_up_within_the_poll() {
    let url = or_skip!(moto::url(
        "control_without_cancellation_a_disable_is_picked_up_within_the_poll"
    ));
    let (table, _relay, state) = rig(&url).await;
    let alice = basic("alice", "alice-pw");
    assert_eq!(ut::validate(&state, &alice).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ut::validate(&state, &alice).await.0, StatusCode::OK);
    disable(&table, "alice").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ut::validate(&state, &alice).await.0, StatusCode::UNAUTHORIZED);
}

/// A `GetItem` answered before a write, whose answer is processed after a later version poll
/// saw that write's bump, is cached under the *new* version (the version is taken when the
/// answer arrives, not when the read was sent): the pre-write entry then counts as current for
/// `entry_ttl` (5 min), and a user disabled through the CLI keeps being accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_a_version_poll_caches_the_old_entry_under_the_new_version() {
    let url = or_skip!(moto::url(
        "a_read_racing_a_version_poll_caches_the_old_entry_under_the_new_version"
    ));
    let (table, relay, state) = rig(&url).await;
    let alice = basic("alice", "alice-pw");
    // The version is read now (first request); alice is not cached.
    assert_eq!(
        ut::validate(&state, &basic("nobody", "x")).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Alice's GetItem goes out; the relay holds its answer back.
    relay.hold(Hold::Matching(br#"{"S":"alice"}"#.to_vec()));
    let in_flight = {
        let (state, alice) = (state.clone(), alice.clone());
        tokio::spawn(async move { ut::validate(&state, &alice).await.0 })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Meanwhile an operator disables alice; the next request after the poll interval reads
    // the bumped version (on a new connection).
    disable(&table, "alice").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        ut::validate(&state, &basic("nobody", "x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(!in_flight.is_finished(), "alice's read is held by the relay");
    // Now the old answer (ACTIVE) arrives, well within the SDK's 2 s attempt timeout.
    relay.hold(Hold::Nothing);
    let first = in_flight.await.unwrap();
    assert_eq!(first, StatusCode::OK, "the read began before the write: fine");

    // Requests starting more than version_poll + a round trip after the write returned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::UNAUTHORIZED,
        "alice was disabled (and the version bumped) 2.6 s ago; version_poll = 1 s"
    );
}

/// The version item deleted (console clean-up of a ":version" row that is no user, a table
/// emptied and re-imported): the version reads 0, then the next CLI write bumps it back to a
/// value already seen. An entry cached under that value, left unused in between, is current
/// again: a `users disable` made after the delete is not picked up within `version_poll`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_goes_back_revives_entries_read_before_the_write() {
    let url = or_skip!(moto::url(
        "a_version_that_goes_back_revives_entries_read_before_the_write"
    ));
    let (table, _relay, state) = rig(&url).await;
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "alice cached under version 1"
    );

    let c = ut::client(&url).await;
    c.delete_item()
        .table_name(table.name())
        .key(
            "username",
            aws_sdk_dynamodb::types::AttributeValue::S(":version".into()),
        )
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        ut::validate(&state, &basic("nobody", "x")).await.0,
        StatusCode::UNAUTHORIZED,
        "reads version 0"
    );

    disable(&table, "alice").await; // bumps the version to 1 again
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::UNAUTHORIZED,
        "alice was disabled through the CLI path 2.5 s ago (version_poll = 1 s)"
    );
}

/// A server (or a Lambda instance) started while the table does not answer (not created yet,
/// IAM or the VPC endpoint not in place yet, a DynamoDB blip during init) is unavailable, and
/// `current_for` then answers 503 from the state alone, before any call: the table is never
/// read again, so the process stays 503 for good once the table is back. The same state is
/// reached by any outage longer than `max_stale` ("past max_stale ... 503, as with the
/// secret" — but the secret store keeps probing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_started_without_the_table_never_reads_it_again() {
    let url = or_skip!(moto::url(
        "a_store_that_started_without_the_table_never_reads_it_again"
    ));
    let c = ut::client(&url).await;
    // The table the server is configured with does not exist yet.
    let scratch = ut::create(&c).await;
    c.delete_table().table_name(&scratch).send().await.unwrap();
    let mut s = settings(std::path::Path::new("/nonexistent"));
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = url.clone();
    s.users_table.name = scratch.clone();
    s.users_table.version_poll_seconds = 1;
    s.hash.policy = policy();
    let state = authserver::wiring::build(s).unwrap().state;
    assert!(!state.gate.store.status().ready, "no table: not ready");
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The table appears (same name) with alice in it.
    ut::create_named(&c, &scratch).await;
    let table = UsersTable::new(c.clone(), &scratch);
    table
        .add("alice", &ut::record("alice-pw", Status::Active))
        .await
        .unwrap();
    table.bump_version().await.unwrap();

    // Retry-After said 1 s; give it five times that, one request a second.
    let mut answers = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        answers.push(ut::validate(&state, &alice).await.0);
    }
    assert_eq!(
        answers.last(),
        Some(&StatusCode::OK),
        "the table answers again for 5 s; the server answered {answers:?} (never retried it)"
    );
}

/// One failed `GetItem` for one username (here held past the SDK's attempt timeouts; in
/// DynamoDB a `ThrottlingException` on a hot key, which any client can cause by hammering one
/// username) is taken for a table outage: the whole store backs off, and every user not in the
/// entry cache gets 503 although the table answers for them. An unauthenticated client that
/// gets one such failure a second keeps every uncached user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_read_for_one_username_503s_every_uncached_user() {
    let url = or_skip!(moto::url(
        "one_failed_read_for_one_username_503s_every_uncached_user"
    ));
    let (_table, relay, state) = rig(&url).await;
    assert_eq!(
        ut::validate(&state, &basic("nobody", "x")).await.0,
        StatusCode::UNAUTHORIZED
    );

    relay.hold(Hold::Matching(br#"{"S":"hot-key"}"#.to_vec()));
    let attacker = ut::validate(&state, &basic("hot-key", "x")).await.0;
    assert_eq!(attacker, StatusCode::SERVICE_UNAVAILABLE, "the held read failed");
    // The table answers every other key, at once.
    assert_eq!(
        ut::validate(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK,
        "alice's item is readable; the store answered 503 from the other user's failure"
    );
}
