//! Attacks on regulation's backend failure handling (issue 11 item 10, second attack).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, ClientAddr, app};
use authserver_testkit::fakes::{SilentBackend, with_regulation_backend};
use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn call(state: &Arc<AppState>, from: &str, auth: &str) -> (StatusCode, Duration) {
    let mut req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, auth)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::new(from.parse().unwrap(), 40000)));
    let start = Instant::now();
    let status = app(state.clone()).oneshot(req).await.unwrap().status();
    (status, start.elapsed())
}

/// The fallback only helped when the backend failed fast. A backend that never answers held
/// every call to the SDK's own limits (2 s per attempt), and one login makes up to six calls:
/// on the release binary with a DynamoDB endpoint that accepted connections and said nothing,
/// every login needing a verification answered 503 after the 5 s request timeout. Now a call
/// gives up quickly, the backend is skipped for a moment after a failure, and this instance
/// regulates from memory meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_does_not_take_logins_down() {
    let f = fixture();
    let mut s = settings(&f.users);
    s.server.request_timeout_ms = 4000;
    s.regulation.policy.max_user_failures = 3;
    let state = with_regulation_backend(
        authserver::wiring::build(s).unwrap().state,
        Arc::new(SilentBackend),
    );
    let (status, took) = call(&state, "198.51.100.4", &basic(CAROL, CAROL_PW)).await;
    assert_eq!(status, StatusCode::OK, "served from the fallback after {took:?}");
    assert!(took < Duration::from_secs(3), "login took {took:?}");
    // Regulation still holds, from memory.
    for _ in 0..3 {
        call(&state, "198.51.100.5", &basic(ALICE, "bad")).await;
    }
    let (status, took) = call(&state, "198.51.100.5", &basic(ALICE, "bad")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "after {took:?}");
}
