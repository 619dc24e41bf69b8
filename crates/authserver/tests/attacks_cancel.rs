//! Cancellation attacks on one attempt (issue 11 items 1 and 6, second attack): a client that
//! goes away at the worst moment, through the router as the standalone server runs it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, ClientAddr, app};
use authserver_testkit::users::*;
use authserver_testkit::wait::poll;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

async fn call(state: &Arc<AppState>, peer: IpAddr, auth: &str) -> StatusCode {
    let mut req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, auth)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::new(peer, 40000)));
    app(state.clone()).oneshot(req).await.unwrap().status()
}

/// Polls `f` every millisecond until it is true or 10 s pass.
async fn until(f: impl FnMut() -> bool) -> bool {
    poll(Duration::from_secs(10), Duration::from_millis(1), f).await
}

/// A client that disconnects (HTTP/1 close, HTTP/2 RST_STREAM) once its verification has
/// started drops the request future at the verification's await: the Argon2id run went on
/// (a slot and ~100 ms of a core) but the failure was never recorded, so the source was never
/// banned. Measured on the release binary: 60 abandoned wrong guesses from one address with
/// max_source_failures=3, each one a full verification, and the address was still served.
/// That is unmetered CPU for an attacker (every slot busy, legitimate logins 503) that
/// regulation exists to stop. A verification that ran must count, whether or not anyone is
/// still waiting for its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_counts_even_when_the_client_leaves_mid_verification() {
    let f = fixture();
    let mut s = settings(&f.users);
    s.regulation.policy.max_source_failures = 3;
    s.regulation.policy.max_user_failures = 100;
    s.regulation.policy.max_source_usernames = 100;
    s.hash.max_concurrent = 1;
    let state = authserver::wiring::build(s).unwrap().state;
    let attacker: IpAddr = "198.51.100.9".parse().unwrap();
    let mut verified = 0;
    for i in 0..6 {
        let st = state.clone();
        let guess = tokio::spawn(async move { call(&st, attacker, &basic(&format!("u{i}"), "bad")).await });
        // Leave as soon as the verification holds the slot (a refusal finishes by itself).
        assert!(until(|| state.gate.limiter.available() == 0 || guess.is_finished()).await);
        if guess.is_finished() {
            break;
        }
        guess.abort();
        let _ = guess.await;
        verified += 1;
        assert!(
            until(|| state.gate.limiter.available() == 1).await,
            "the slot comes back"
        );
    }
    assert!(verified >= 3, "{verified} verifications ran");
    assert_eq!(
        call(&state, attacker, &basic(ALICE, ALICE_PW)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "{verified} verified failures from one source with max_source_failures=3"
    );
}
