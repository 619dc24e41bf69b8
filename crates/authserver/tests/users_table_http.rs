//! The DynamoDB users store wired as the server's store (`store.kind = "dynamodb"`) and driven
//! through the HTTP router: the same 200 / 401 contract as the file store, `/ready`, and a
//! table outage (cached users still answered, others 503 with `Retry-After`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::StoreKind;
use authserver::http::{AppState, ClientAddr, app};
use authserver_aws::UsersTable;
use authserver_core::{Status, UserRecord};
use authserver_testkit::hash::{CHEAP, hash, policy};
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::users::{basic, settings};
use authserver_testkit::{moto, or_skip};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;
use tower::ServiceExt;

async fn call(state: &Arc<AppState>, auth: &str) -> (StatusCode, Option<String>) {
    let mut req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, auth)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr("192.0.2.7:1000".parse().unwrap()));
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_serves_the_http_contract_and_an_outage_ends_in_503() {
    let url = or_skip!(moto::url(
        "the_table_serves_the_http_contract_and_an_outage_ends_in_503"
    ));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c.clone(), &name);
    let record = |pw: &str, status| UserRecord {
        password_hash: hash(pw, CHEAP),
        status,
        roles: vec!["ops".into()],
        password_changed_at: None,
        delivery_secret_id: None,
    };
    table
        .add("alice", &record("alice-pw", Status::Active))
        .await
        .unwrap();
    table.add("bob", &record("bob-pw", Status::Active)).await.unwrap();
    table
        .add("dora", &record("dora-pw", Status::Disabled))
        .await
        .unwrap();
    let mut s = settings(std::path::Path::new("/nonexistent"));
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = url.clone();
    s.users_table.name = name.clone();
    s.hash.policy = policy();
    let state = authserver::wiring::build(s).unwrap().state;
    assert!(state.gate.store.status().ready);

    assert_eq!(call(&state, &basic("alice", "alice-pw")).await.0, StatusCode::OK);
    assert_eq!(
        call(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK,
        "cache hit"
    );
    for (user, pw) in [("alice", "wrong"), ("dora", "dora-pw"), ("nobody", "x")] {
        assert_eq!(
            call(&state, &basic(user, pw)).await.0,
            StatusCode::UNAUTHORIZED,
            "{user}"
        );
    }

    // Outage: alice's entry is cached and keeps answering; bob's is not: 503, Retry-After.
    c.delete_table().table_name(&name).send().await.unwrap();
    assert_eq!(call(&state, &basic("alice", "alice-pw")).await.0, StatusCode::OK);
    let (status, retry) = call(&state, &basic("bob", "bob-pw")).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
    );
}
