//! Attacks on the client address behind trusted proxies (issue 11 item 8, second attack):
//! through the router as the standalone server runs it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, ClientAddr, app};
use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower::ServiceExt;

fn state(users: &std::path::Path) -> Arc<AppState> {
    let mut s = settings(users);
    s.regulation.policy.max_source_failures = 5;
    s.regulation.policy.max_user_failures = 100;
    s.regulation.policy.max_source_usernames = 100;
    s.server.trusted_proxies = "10.0.0.0/8".parse().expect("network");
    authserver::wiring::build(s).unwrap().state
}

async fn call(state: &Arc<AppState>, auth: &str, xff: &[u8]) -> StatusCode {
    let mut req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, auth)
        .header("x-forwarded-for", HeaderValue::from_bytes(xff).unwrap())
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ClientAddr(SocketAddr::new(
        "10.0.0.1".parse::<IpAddr>().unwrap(),
        40000,
    )));
    app(state.clone()).oneshot(req).await.unwrap().status()
}

/// A proxy such as nginx (`$proxy_add_x_forwarded_for`) appends the peer to whatever
/// `X-Forwarded-For` the client sent, in the same header value. A client that sends one byte
/// outside visible ASCII (obs-text, which HTTP/1 and hyper accept) made the whole value
/// unreadable as text, so its own address, written by the trusted proxy to the right of the
/// junk, was never read: the client counted as unknown and escaped every source ban and spray
/// limit (measured: 40 failures from one address with max_source_failures=5, never banned).
/// Junk left of the first untrusted hop must not matter, bytes or text.
#[tokio::test]
async fn non_ascii_junk_left_of_the_client_does_not_hide_it() {
    let f = fixture();
    let state = state(&f.users);
    for i in 0..40 {
        let status = call(
            &state,
            &basic(&format!("u{}", i % 3), "bad"),
            b"\xff, 198.51.100.7",
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(
        call(&state, &basic(ALICE, ALICE_PW), b"198.51.100.7").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the client behind the junk is banned"
    );
    assert_eq!(
        call(&state, &basic(ALICE, ALICE_PW), b"\xfe\xff, 198.51.100.8").await,
        StatusCode::OK,
        "a neighbour sending junk is still served"
    );
}
