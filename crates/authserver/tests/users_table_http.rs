//! The DynamoDB users store wired as the server's store (`store.kind = "dynamodb"`) and driven
//! through the HTTP router: the same 200 / 401 contract as the file store, `/ready`, and a
//! table outage (cached users still answered, others 503 with `Retry-After`), also when the
//! table accepts connections and never answers (a relay holding moto's answers): at Lambda
//! init (503 until the first good read, then served) and mid-service (no request waits for the
//! SDK once the store knows the table is failing; recovery when it answers again).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::StoreKind;
use authserver::http::AppState;
use authserver_aws::UsersTable;
use authserver_core::{Status, UserRecord};
use authserver_testkit::hash::{CHEAP, hash, policy};
use authserver_testkit::moto::relay::{Hold, Relay};
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::users::{basic, settings};
use authserver_testkit::{moto, or_skip};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_serves_the_http_contract_and_an_outage_ends_in_503() {
    let url = or_skip!(moto::url(
        "the_table_serves_the_http_contract_and_an_outage_ends_in_503"
    ));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c.clone(), &name);
    table
        .add("alice", &ut::record("alice-pw", Status::Active))
        .await
        .unwrap();
    table
        .add("bob", &ut::record("bob-pw", Status::Active))
        .await
        .unwrap();
    table
        .add("dora", &ut::record("dora-pw", Status::Disabled))
        .await
        .unwrap();
    table.bump_counting(3).await.unwrap();
    let mut s = settings(std::path::Path::new("/nonexistent"));
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = url.clone();
    s.users_table.name = name.clone();
    s.hash.policy = policy();
    let state = authserver::wiring::build(s).unwrap().state;
    assert!(state.gate.store.status().ready);

    assert_eq!(
        ut::validate(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        ut::validate(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK,
        "cache hit"
    );
    for (user, pw) in [("alice", "wrong"), ("dora", "dora-pw"), ("nobody", "x")] {
        assert_eq!(
            ut::validate(&state, &basic(user, pw)).await.0,
            StatusCode::UNAUTHORIZED,
            "{user}"
        );
    }
    // The status tells the table's user count (kept in the version item by the writers, read
    // with the version) from the entries cached here (alice and dora; unknown users never are).
    let status = state.gate.store.status();
    assert_eq!(
        (status.users, status.cached_entries),
        (Some(3), Some(2)),
        "{status:?}"
    );

    // Outage: alice's entry is cached and keeps answering; bob's is not: 503, Retry-After.
    c.delete_table().table_name(&name).send().await.unwrap();
    assert_eq!(
        ut::validate(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK
    );
    let (status, retry) = ut::validate(&state, &basic("bob", "bob-pw")).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
    );
}

async fn table_with(url: &str, users: &[&str]) -> UsersTable {
    let c = ut::client(url).await;
    let table = UsersTable::new(c, ut::create(&ut::client(url).await).await);
    for user in users {
        let record = UserRecord {
            password_hash: hash(&format!("{user}-pw"), CHEAP),
            status: Status::Active,
            roles: vec![],
            password_changed_at: None,
            delivery_secret_id: None,
            oauth: None,
        };
        table.add(user, &record).await.unwrap();
    }
    table.bump_counting(users.len() as i64).await.unwrap();
    table
}

fn table_settings(endpoint: &str, table: &UsersTable) -> authserver::config::Settings {
    let mut s = settings(std::path::Path::new("/nonexistent"));
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = endpoint.to_owned();
    s.users_table.name = table.name().to_owned();
    s.users_table.version_poll_seconds = 1;
    s.hash.policy = policy();
    s
}

/// `call`, and how long it took.
async fn timed(state: &Arc<AppState>, auth: &str) -> (StatusCode, Duration) {
    let start = Instant::now();
    let (status, _) = ut::validate(state, auth).await;
    (status, start.elapsed())
}

/// Lambda init with a table that never answers: init ends within its budget (the first version
/// read goes on in the background), requests get 503 at once instead of reading the table
/// again, and the first good read puts the store in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_within_its_budget_then_503_until_the_first_good_read() {
    let url = or_skip!(moto::url(
        "init_within_its_budget_then_503_until_the_first_good_read"
    ));
    let table = table_with(&url, &["alice"]).await;
    let relay = Relay::start(&url).await;
    relay.hold(Hold::All);
    let budget = Duration::from_millis(800);
    let started = Instant::now();
    let shared = authserver::lambda::init::build(table_settings(&relay.url, &table), budget, None)
        .await
        .unwrap();
    let init = started.elapsed();
    // Before: init waited for the SDK (two 2 s attempts), ~4.1 s with this budget.
    assert!(init < budget + Duration::from_millis(700), "init took {init:?}");
    let state = shared.get().expect("built within the budget").state.clone();
    assert!(!state.gate.store.status().ready);
    let alice = basic("alice", "alice-pw");
    let (status, took) = timed(&state, &alice).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took < Duration::from_secs(1),
        "503 at once, not after the SDK: {took:?}"
    );
    eprintln!(
        "FIGURE users table init under a hung endpoint: init {} ms (budget {} ms); first request 503 in {} ms",
        init.as_millis(),
        budget.as_millis(),
        took.as_millis()
    );

    relay.hold(Hold::Nothing);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ut::validate(&state, &alice).await.0 == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never served after the table answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(state.gate.store.status().ready);
}

/// A table that stops answering mid-service (connections accepted, answers never sent): a
/// cached user keeps being served, an uncached one gets 503 — at once once a failed version
/// read told the store (only the probe calls the table then) — and the store recovers when the
/// table answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_table_serves_cached_users_503s_the_rest_at_once_and_recovers() {
    let url = or_skip!(moto::url(
        "a_hung_table_serves_cached_users_503s_the_rest_at_once_and_recovers"
    ));
    let table = table_with(&url, &["alice", "bob"]).await;
    let relay = Relay::start(&url).await;
    let state = authserver::wiring::build(table_settings(&relay.url, &table))
        .unwrap()
        .state;
    let (alice, bob) = (basic("alice", "alice-pw"), basic("bob", "bob-pw"));
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "alice cached"
    );

    relay.hold(Hold::All);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first request after the poll interval reads the version and waits for the SDK's
    // timeouts (two 2 s attempts); bob, meanwhile, waits for his own GetItem: both bounded.
    let (first, waiting) = tokio::join!(timed(&state, &alice), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        timed(&state, &bob).await
    });
    assert_eq!(first.0, StatusCode::OK, "last good entry");
    assert_eq!(waiting.0, StatusCode::SERVICE_UNAVAILABLE);
    let status = state.gate.store.status();
    assert!(status.ready && status.last_error.is_some(), "{status:?}");
    // Now the store knows: nobody waits for the table.
    let (mut cached, mut uncached) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let (s, took) = timed(&state, &alice).await;
        assert_eq!(s, StatusCode::OK);
        cached.push(took);
        let (s, took) = timed(&state, &bob).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        uncached.push(took);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let worst = uncached.iter().chain(&cached).max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_secs(1),
        "a request waited for the table: {worst:?}"
    );
    eprintln!(
        "FIGURE users table hung mid-service: transition request {} ms (cached alice), uncached bob {} ms; \
         then cached max {} ms, uncached 503 max {} ms",
        first.1.as_millis(),
        waiting.1.as_millis(),
        cached.iter().max().unwrap().as_millis(),
        uncached.iter().max().unwrap().as_millis()
    );

    relay.hold(Hold::Nothing);
    let back = Instant::now();
    while ut::validate(&state, &bob).await.0 != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "FIGURE users table recovery: bob served {} ms after the table answered",
        back.elapsed().as_millis()
    );
}
