//! The DynamoDB regulation backend over the real SDK against moto: conditional writes count
//! every concurrent failure, a fleet shares bans, and a missing table fails open.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, ClientAddr, app};
use authserver_core::regulation::{Entry, RegulationStore};
use authserver_testkit::users::*;
use authserver_testkit::{moto, or_skip};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;
use tower::ServiceExt;

async fn client(url: &str) -> aws_sdk_dynamodb::Client {
    authserver_aws::dynamodb_client(&authserver_aws::sdk_config(Some(url)).await)
}

async fn create_table(c: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("regulation-{:x}", rand::random::<u64>());
    c.create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

fn far_future() -> u64 {
    authserver_core::clock::now_secs() + 3600
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_all_count() {
    let url = or_skip!(moto::url("concurrent_updates_all_count"));
    let c = client(&url).await;
    let table = create_table(&c).await;
    let store = Arc::new(authserver_aws::DynamoDbRegulation::new(c, table));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let bump = |e: Option<&Entry>| Entry {
                failures: e.map_or(0, |e| e.failures) + 1,
                ..e.cloned().unwrap_or_default()
            };
            store
                .update("source#192.0.2.1", far_future(), &bump)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let e = store.get("source#192.0.2.1").await.unwrap().unwrap();
    assert_eq!(e.failures, 12, "conditional writes lost no concurrent update");
    assert_eq!(e.version, 12);
    assert_eq!(store.get("source#192.0.2.2").await.unwrap(), None);
    // An expired item reads as absent even before DynamoDB's TTL sweep deletes it.
    let keep = |e: Option<&Entry>| e.cloned().unwrap_or_default();
    store.update("user#old", 1, &keep).await.unwrap();
    assert_eq!(store.get("user#old").await.unwrap(), None);
}

fn instance(users: &std::path::Path, url: &str, table: &str) -> Arc<AppState> {
    let mut s = settings(users);
    s.store.endpoint_url = url.to_owned();
    s.regulation.dynamodb_table = table.to_owned();
    s.regulation.policy.max_source_failures = 3;
    s.regulation.policy.max_user_failures = 100;
    authserver::wiring::build(s).unwrap().state
}

async fn call(state: &Arc<AppState>, from: &str, auth: &str) -> StatusCode {
    let mut req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, auth)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr(format!("{from}:1000").parse().unwrap()));
    app(state.clone()).oneshot(req).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_made_on_one_instance_holds_on_another() {
    let url = or_skip!(moto::url("a_ban_made_on_one_instance_holds_on_another"));
    let table = create_table(&client(&url).await).await;
    let f = fixture();
    let (a, b) = (instance(&f.users, &url, &table), instance(&f.users, &url, &table));
    for _ in 0..3 {
        assert_eq!(
            call(&a, "198.51.100.9", &basic("x", "bad")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        call(&a, "198.51.100.9", &basic(ALICE, ALICE_PW)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&b, "198.51.100.9", &basic(ALICE, ALICE_PW)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "shared ban"
    );
    assert_eq!(
        call(&b, "198.51.100.10", &basic(ALICE, ALICE_PW)).await,
        StatusCode::OK
    );
}

/// A missing table (or any DynamoDB failure) does not switch regulation off: the instance
/// regulates from its own memory (max_source_failures = 3 here) and counts every failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_falls_back_to_memory_and_is_counted() {
    let url = or_skip!(moto::url("a_missing_table_falls_back_to_memory_and_is_counted"));
    let f = fixture();
    let state = instance(&f.users, &url, "no-such-table");
    for _ in 0..3 {
        assert_eq!(
            call(&state, "198.51.100.11", &basic("x", "bad")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        call(&state, "198.51.100.11", &basic(ALICE, ALICE_PW)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "banned from this instance's memory"
    );
    assert_eq!(
        call(&state, "198.51.100.12", &basic(ALICE, ALICE_PW)).await,
        StatusCode::OK
    );
    assert!(
        state
            .gate
            .regulator
            .backend_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
}
