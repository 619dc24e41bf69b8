//! The admin listener's `Host` rule against odd requests (issue 11 item 21, second attack),
//! through the admin router.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use tower::ServiceExt;

async fn status(req: Request<Body>) -> StatusCode {
    let f = fixture();
    let state = built(&f.users).state;
    authserver::http::admin_app(state)
        .oneshot(req)
        .await
        .unwrap()
        .status()
}

fn get(target: &str, host: Option<&[u8]>) -> Request<Body> {
    let mut req = Request::get(target);
    if let Some(h) = host {
        req = req.header("host", HeaderValue::from_bytes(h).unwrap());
    }
    req.body(Body::empty()).unwrap()
}

/// The rule judged only the `Host` header when there was one, and read it loosely: a request
/// addressed to another name in absolute form (`GET http://evil.example/stats` + `Host:
/// 127.0.0.1`), an unreadable `Host` next to an allowed target, `[::1]evil.example` and
/// `127.0.0.1:x` were all answered 200 by the release binary. None of these is what a
/// rebinding browser sends, but a name the rule cannot read is refused, not guessed at.
#[tokio::test]
async fn every_name_a_request_carries_must_pass_the_host_rule() {
    for (target, host) in [
        ("http://evil.example/stats", Some(&b"127.0.0.1"[..])),
        ("http://127.0.0.1/stats", Some(&b"\xff"[..])),
        ("/stats", Some(&b"[::1]evil.example"[..])),
        ("/stats", Some(&b"127.0.0.1:x"[..])),
        ("/stats", Some(&b"localhost:99999"[..])),
    ] {
        assert_eq!(
            status(get(target, host)).await,
            StatusCode::MISDIRECTED_REQUEST,
            "{target} Host {:?}",
            host.map(String::from_utf8_lossy)
        );
    }
    for (target, host) in [
        ("/stats", Some(&b"127.0.0.1:9090"[..])),
        ("/stats", Some(&b"[::1]:9090"[..])),
        ("/stats", Some(&b"LOCALHOST"[..])),
        ("http://127.0.0.1:9090/stats", Some(&b"127.0.0.1:9090"[..])),
        ("http://[::1]/stats", None),
    ] {
        assert_eq!(
            status(get(target, host)).await,
            StatusCode::OK,
            "{target} {host:?}"
        );
    }
}
