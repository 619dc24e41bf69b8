//! The Lambda authorizer (in process, the handler the emulator runs) with bearer tokens of
//! clients that were revoked, disabled or deleted, and Basic users named like OAuth clients.
//! These held: kept as regression tests.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::app;
use authserver_testkit::lambda::{authorize, fixture, with_authorization};
use authserver_testkit::oauth::{
    BASIC_CLIENT, BASIC_SECRET, basic_client, fixture as oauth_fixture, settings,
};
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use std::time::Duration;
use tower::ServiceExt;

async fn token(state: &std::sync::Arc<authserver::http::AppState>) -> String {
    let req = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic_client(BASIC_CLIENT, BASIC_SECRET))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    body["access_token"].as_str().expect("a token").to_owned()
}

async fn ask(state: &std::sync::Arc<authserver::http::AppState>, auth: &str) -> Value {
    authorize(
        state,
        with_authorization(fixture("authorizer_http_api_v2.json"), Some(auth)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_disabled_clients_token_is_refused_by_the_authorizer() {
    for change in ["delete", "disable"] {
        let f = oauth_fixture();
        let state = authserver::wiring::build(settings(&f)).unwrap().state;
        let bearer = format!("Bearer {}", token(&state).await);
        let allowed = ask(&state, &bearer).await;
        assert_eq!(allowed["isAuthorized"], true, "{allowed}");
        assert_eq!(allowed["context"]["scopes"], "read", "{allowed}");
        assert_eq!(allowed["context"]["username"], BASIC_CLIENT);

        let mut doc: Value = serde_json::from_slice(&std::fs::read(&f.users).unwrap()).unwrap();
        match change {
            "delete" => {
                doc.as_object_mut().unwrap().remove(BASIC_CLIENT);
            }
            _ => doc[BASIC_CLIENT]["status"] = Value::String("DISABLED".into()),
        }
        std::fs::write(&f.users, serde_json::to_vec(&doc).unwrap()).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let after = ask(&state, &bearer).await;
        assert_eq!(after["isAuthorized"], false, "{change}: {after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_login_never_carries_scopes_even_as_an_oauth_client() {
    let f = oauth_fixture();
    let state = authserver::wiring::build(settings(&f)).unwrap().state;
    // The client's own id and secret over Basic: a user login, no scopes.
    let basic = authserver_testkit::users::basic(BASIC_CLIENT, BASIC_SECRET);
    let a = ask(&state, &basic).await;
    assert_eq!(a["context"]["scopes"], "", "{a}");
}
