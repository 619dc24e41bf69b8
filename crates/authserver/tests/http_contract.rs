//! Every row of the HTTP contract table (docs/api.md), in process through `app().oneshot()`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, app};
use authserver_core::{Snapshot, SnapshotSource, StoreStatus, Unavailable};
use authserver_testkit::fakes::DownStore;
use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// No snapshot was ever loaded.
const NO_STORE: DownStore = DownStore {
    retry_after: Duration::from_secs(7),
    error: "never loaded",
};

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

async fn call(state: &Arc<AppState>, method: Method, path: &str, auth: Option<&str>) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    send(state, req.body(Body::empty()).unwrap()).await
}

async fn send(state: &Arc<AppState>, req: Request<Body>) -> Answer {
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    assert_eq!(
        parts.headers[header::CACHE_CONTROL],
        "no-store",
        "every response: no-store"
    );
    assert!(
        parts.headers.contains_key("x-request-id"),
        "every response: request id"
    );
    assert_eq!(
        parts.headers[header::CONTENT_TYPE],
        "application/json",
        "every response: JSON"
    );
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn without_timestamp(mut v: serde_json::Value) -> serde_json::Value {
    assert!(
        v["timestamp"].as_u64().unwrap() > 1_700_000_000_000,
        "timestamp in ms"
    );
    v.as_object_mut().unwrap().remove("timestamp");
    v
}

const CHALLENGE: &str = "Basic realm=\"authserver\", charset=\"UTF-8\"";

#[tokio::test]
async fn valid_credentials_are_allowed_with_roles() {
    let f = fixture();
    let state = built(&f.users).state;
    for path in ["/auth/validate", "/auth"] {
        let a = call(&state, Method::POST, path, Some(&basic(ALICE, ALICE_PW))).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            without_timestamp(a.body),
            serde_json::json!({"allowed": true, "message": "Authentication successful", "roles": ["admin", "reader"]})
        );
        assert!(!a.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    let a = call(
        &state,
        Method::POST,
        "/auth/validate",
        Some(&basic(CAROL, CAROL_PW)),
    )
    .await;
    assert_eq!(
        (a.status, &a.body["roles"]),
        (StatusCode::OK, &serde_json::json!([]))
    );
}

#[tokio::test]
async fn unknown_wrong_and_disabled_are_indistinguishable() {
    let f = fixture();
    let state = built(&f.users).state;
    let mut answers = Vec::new();
    for (u, p) in [("nobody-here", ALICE_PW), (ALICE, "wrong"), (BOB, BOB_PW)] {
        let a = call(&state, Method::POST, "/auth/validate", Some(&basic(u, p))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{u}");
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE);
        let mut names: Vec<_> = a.headers.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        answers.push((without_timestamp(a.body), names));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    assert_eq!(
        answers[0].0,
        serde_json::json!({"allowed": false, "message": "Invalid credentials"})
    );
}

#[tokio::test]
async fn missing_or_other_scheme_gets_the_challenge() {
    let f = fixture();
    let state = built(&f.users).state;
    for auth in [None, Some("Bearer abc.def"), Some("Digest username=\"x\"")] {
        let a = call(&state, Method::POST, "/auth/validate", auth).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE);
        assert_eq!(a.body["allowed"], false);
    }
}

#[tokio::test]
async fn malformed_basic_is_400_on_validate_and_401_on_forward() {
    let f = fixture();
    let state = built(&f.users).state;
    let oversize = format!("Basic {}", "QUFB".repeat(2000));
    let no_colon = format!("Basic {}", "bm9jb2xvbg=="); // "nocolon"
    let empty_user = "Basic OnB3".to_owned(); // ":pw"
    for auth in ["Basic !!!notbase64", "Basic", &no_colon, &empty_user, &oversize] {
        let a = call(&state, Method::POST, "/auth/validate", Some(auth)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{auth:.20}");
        assert_eq!(
            without_timestamp(a.body),
            serde_json::json!({"allowed": false, "message": "Invalid Authorization header format"})
        );
        let a = call(&state, Method::GET, "/auth/forward", Some(auth)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE);
    }
    // Two Authorization headers: ambiguous, so malformed.
    let req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, basic(ALICE, ALICE_PW))
        .header(header::AUTHORIZATION, basic(CAROL, CAROL_PW))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&state, req).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn forward_puts_user_and_roles_in_headers() {
    let f = fixture();
    let state = built(&f.users).state;
    for method in [Method::GET, Method::POST, Method::HEAD, Method::PUT] {
        let a = call(
            &state,
            method.clone(),
            "/auth/forward",
            Some(&basic(ALICE, ALICE_PW)),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{method}");
        assert_eq!(a.headers["remote-user"], ALICE);
        assert_eq!(a.headers["remote-groups"], "admin,reader");
    }
    let a = call(&state, Method::GET, "/auth/forward", Some(&basic(ALICE, "nope"))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(!a.headers.contains_key("remote-user"));
    // Envoy's HTTP ext_authz appends the original path to the prefix: same decision, any depth.
    for path in ["/auth/forward/", "/auth/forward/app/page", "/auth/forward/a/%2e%2e/admin"] {
        let a = call(&state, Method::POST, path, Some(&basic(ALICE, ALICE_PW))).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.headers["remote-user"], ALICE);
        let a = call(&state, Method::GET, path, Some(&basic(ALICE, "nope"))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE);
    }
    // Not a prefix match on the text: a sibling path is still unknown.
    let a = call(&state, Method::GET, "/auth/forwardx", Some(&basic(ALICE, ALICE_PW))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let f = fixture();
    let state = built(&f.users).state;
    let a = call(
        &state,
        Method::GET,
        "/auth/validate",
        Some(&basic(ALICE, ALICE_PW)),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers[header::ALLOW], "POST");
    assert_eq!(a.body["allowed"], false);
    let a = call(&state, Method::POST, "/health", None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = call(&state, Method::GET, "/nope", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let f = fixture();
    let state = built(&f.users).state;
    let req = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, basic(ALICE, ALICE_PW))
        .header(header::CONTENT_LENGTH, "100000")
        .body(Body::from(vec![b'x'; 100_000]))
        .unwrap();
    let a = send(&state, req).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn full_hash_queue_is_503_overloaded_with_retry_after() {
    let f = fixture();
    let mut s = settings(&f.users);
    s.hash.max_queue = 0;
    let state = authserver::wiring::build(s).unwrap().state;
    let a = call(
        &state,
        Method::POST,
        "/auth/validate",
        Some(&basic(ALICE, ALICE_PW)),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers[header::RETRY_AFTER], "1");
    assert_eq!(a.body["allowed"], false);
}

#[tokio::test]
async fn no_usable_snapshot_is_503_and_not_ready_but_alive() {
    let f = fixture();
    let built = built(&f.users);
    let state = Arc::into_inner(built.state).unwrap();
    let gate = authserver::decide::Gate {
        store: Arc::new(NO_STORE),
        ..Arc::into_inner(state.gate).unwrap()
    };
    let state = Arc::new(AppState {
        gate: Arc::new(gate),
        ..state
    });
    let a = call(
        &state,
        Method::POST,
        "/auth/validate",
        Some(&basic(ALICE, ALICE_PW)),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers[header::RETRY_AFTER], "7");
    let a = call(&state, Method::GET, "/ready", None).await;
    assert_eq!(
        (a.status, &a.body["ready"]),
        (StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!(false))
    );
    let a = call(&state, Method::GET, "/health", None).await;
    assert_eq!(
        (a.status, &a.body["status"]),
        (StatusCode::OK, &serde_json::json!("ok"))
    );
}

#[tokio::test]
async fn ready_reports_the_snapshot_and_request_ids_are_kept_or_replaced() {
    let f = fixture();
    let state = built(&f.users).state;
    let a = call(&state, Method::GET, "/ready", None).await;
    assert_eq!(a.status, StatusCode::OK);
    let keys: Vec<_> = a.body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["ready", "timestamp"],
        "the public /ready says ready and nothing more"
    );
    let req = Request::get("/ready")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    let res = authserver::http::admin_app(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["store"]["users"], 3, "details on the admin listener");
    assert_eq!(body["store"]["kind"], "file");
    let req = Request::get("/health")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&state, req).await.headers["x-request-id"], "abc-123");
    let req = Request::get("/health")
        .header("x-request-id", "bad id <script>")
        .body(Body::empty())
        .unwrap();
    let id = send(&state, req).await.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32, "replaced by a generated id");
}

#[tokio::test]
async fn second_success_is_served_from_the_cache() {
    let f = fixture();
    let state = built(&f.users).state;
    for _ in 0..3 {
        let a = call(
            &state,
            Method::POST,
            "/auth/validate",
            Some(&basic(ALICE, ALICE_PW)),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
    }
    assert_eq!(state.gate.auth.cache().len(), 1);
}

#[derive(Debug)]
struct PanickingStore;

impl SnapshotSource for PanickingStore {
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable> {
        panic!("store exploded while holding Correct-Horse-Panic-Secret");
    }
    fn status(&self) -> StoreStatus {
        NO_STORE.status()
    }
}

#[tokio::test]
async fn a_panic_inside_a_request_is_a_500_without_its_payload() {
    let f = fixture();
    let state = Arc::into_inner(built(&f.users).state).unwrap();
    let gate = authserver::decide::Gate {
        store: Arc::new(PanickingStore),
        ..Arc::into_inner(state.gate).unwrap()
    };
    let state = Arc::new(AppState {
        gate: Arc::new(gate),
        ..state
    });
    let a = call(
        &state,
        Method::POST,
        "/auth/validate",
        Some(&basic(ALICE, ALICE_PW)),
    )
    .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.body["allowed"], false);
    assert!(!a.body.to_string().contains("Correct-Horse-Panic-Secret"));
    let a = call(&state, Method::GET, "/health", None).await;
    assert_eq!(a.status, StatusCode::OK, "still serving");
}
