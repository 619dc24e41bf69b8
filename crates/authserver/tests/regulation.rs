//! Brute-force regulation through the HTTP surface: bans, spray detection, the legitimate user
//! kept working while attacked, trusted proxies, fail-open on backend failure.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, ClientAddr, app};
use authserver_testkit::fakes::{BrokenBackend, with_regulation_backend};
use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

fn state(users: &std::path::Path, tweak: impl FnOnce(&mut authserver::config::Settings)) -> Arc<AppState> {
    let mut s = settings(users);
    s.regulation.policy.max_source_failures = 5;
    s.regulation.policy.max_user_failures = 3;
    s.regulation.policy.max_source_usernames = 4;
    tweak(&mut s);
    authserver::wiring::build(s).unwrap().state
}

struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
}

async fn call(state: &Arc<AppState>, from: &str, auth: &str, xff: Option<&str>) -> Reply {
    let peer: SocketAddr = format!("{from}:40000").parse().unwrap();
    let mut req = Request::post("/auth/validate").header(header::AUTHORIZATION, auth);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ClientAddr(peer));
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let retry_after = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    Reply {
        status: res.status(),
        retry_after,
    }
}

#[tokio::test]
async fn failing_source_is_banned_with_retry_after_and_other_sources_are_not() {
    let f = fixture();
    let state = state(&f.users, |s| s.regulation.policy.max_user_failures = 100);
    // Two usernames (below the spray threshold, under the user limit): only the source trips.
    for i in 0..5 {
        let user = if i % 2 == 0 { "x1" } else { "x2" };
        assert_eq!(
            call(&state, "198.51.100.1", &basic(user, "bad"), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = call(&state, "198.51.100.1", &basic(ALICE, ALICE_PW), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        (1..=60).contains(&r.retry_after.unwrap()),
        "Retry-After within the first ban"
    );
    let r = call(&state, "198.51.100.1", "Basic ###", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "malformed too");
    assert_eq!(
        call(&state, "198.51.100.2", &basic(ALICE, ALICE_PW), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        state
            .gate
            .regulator
            .bans
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn password_spray_from_one_source_is_banned() {
    let f = fixture();
    let state = state(&f.users, |_| {});
    for user in ["u1", "u2", "u3", "u4"] {
        call(&state, "203.0.113.7", &basic(user, "Winter2026!"), None).await;
    }
    let r = call(&state, "203.0.113.7", &basic("u5", "Winter2026!"), None).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "4 distinct usernames trip the spray rule"
    );
}

/// The scenario: an attacker fails alice's password from many sources; the legitimate
/// alice client keeps passing, from the cache and, after a cache purge, as a trusted source.
#[tokio::test]
async fn attacked_user_stays_usable_for_the_legitimate_client() {
    let f = fixture();
    let state = state(&f.users, |_| {});
    let good = basic(ALICE, ALICE_PW);
    assert_eq!(
        call(&state, "192.0.2.10", &good, None).await.status,
        StatusCode::OK
    );
    for i in 0..6 {
        let from = format!("198.51.100.{}", 50 + i);
        call(&state, &from, &basic(ALICE, &format!("guess-{i}")), None).await;
    }
    for _ in 0..20 {
        assert_eq!(
            call(&state, "192.0.2.10", &good, None).await.status,
            StatusCode::OK,
            "cache hits pass"
        );
    }
    // Once the cache no longer holds alice (TTL, purge), a new source is locked out of alice even
    // with the right password, while the source that succeeded before still verifies.
    state.gate.auth.cache().clear();
    let r = call(&state, "198.51.100.99", &good, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.retry_after.is_some());
    assert_eq!(
        call(&state, "192.0.2.10", &good, None).await.status,
        StatusCode::OK,
        "a source that succeeded for alice verifies despite the lock"
    );
    assert_eq!(
        call(&state, "192.0.2.10", &basic(CAROL, CAROL_PW), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let f = fixture();
    let state = state(&f.users, |s| {
        s.server.trusted_proxies = "10.0.0.0/8".parse().expect("network")
    });
    for i in 0..5 {
        let user = if i % 2 == 0 { "y1" } else { "y2" };
        call(&state, "10.0.0.2", &basic(user, "bad"), Some("198.51.100.77")).await;
    }
    let banned = call(&state, "10.0.0.2", &basic(ALICE, ALICE_PW), Some("198.51.100.77")).await;
    assert_eq!(
        banned.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the client behind the proxy is banned"
    );
    let other = call(&state, "10.0.0.2", &basic(ALICE, ALICE_PW), Some("198.51.100.78")).await;
    assert_eq!(other.status, StatusCode::OK, "not the proxy itself");
    // An untrusted peer cannot dodge its ban by writing X-Forwarded-For.
    for i in 0..5 {
        let user = if i % 2 == 0 { "z1" } else { "z2" };
        call(&state, "203.0.113.50", &basic(user, "bad"), Some("1.1.1.1")).await;
    }
    let r = call(&state, "203.0.113.50", &basic(ALICE, ALICE_PW), Some("1.1.1.2")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn regulation_can_be_turned_off() {
    let f = fixture();
    let state = state(&f.users, |s| s.regulation.policy.enabled = false);
    for _ in 0..8 {
        call(&state, "198.51.100.3", &basic("nobody", "bad"), None).await;
    }
    assert_eq!(
        call(&state, "198.51.100.3", &basic(ALICE, ALICE_PW), None)
            .await
            .status,
        StatusCode::OK
    );
}

/// A failing backend (DynamoDB down) does not switch regulation off: this instance regulates
/// from its own memory (issue 11 item 10; before, 8 wrong guesses from one source all ran and
/// the source was never banned), and every failure is counted.
#[tokio::test]
async fn backend_failure_falls_back_to_in_memory_regulation() {
    let f = fixture();
    let state = with_regulation_backend(state(&f.users, |_| {}), Arc::new(BrokenBackend));
    // max_user_failures = 3: the fourth guess for alice is locked out, from memory.
    for _ in 0..3 {
        assert_eq!(
            call(&state, "198.51.100.4", &basic(ALICE, "bad"), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = call(&state, "198.51.100.4", &basic(ALICE, "bad"), None).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.retry_after.is_some());
    assert_eq!(
        call(&state, "198.51.100.9", &basic(CAROL, CAROL_PW), None)
            .await
            .status,
        StatusCode::OK,
        "other users unaffected"
    );
    let errors = state
        .gate
        .regulator
        .backend_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(errors >= 8, "each failed backend call counted: {errors}");
    let res = authserver::http::admin_app(state.clone())
        .oneshot(
            Request::get("/metrics")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("authserver_regulation_backend_error_total {errors}")),
        "{text}"
    );
}
