//! Access rules in process: a state with a rule set and trusted proxies, and `/auth/forward`
//! calls from a given peer with the headers a proxy sends.

use authserver::access::AccessRules;
use authserver::http::{AppState, ClientAddr, app};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

/// `state` with the rules of `toml` and `trusted` (CIDR list) as `server.trusted_proxies`.
pub fn with_rules(state: Arc<AppState>, toml: &str, trusted: &str) -> Arc<AppState> {
    let state = Arc::into_inner(state).expect("the only reference to the state");
    Arc::new(AppState {
        rules: Arc::new(AccessRules::fixed(toml).expect("valid rules")),
        proxies: trusted.parse().expect("networks"),
        ..state
    })
}

/// A trusted proxy's address as `forward`'s peer (inside the `10.0.0.0/8` the tests trust).
pub const PROXY: &str = "10.0.0.2:40000";

/// The `X-Forwarded-*` family Traefik and Caddy send for `method uri` on `app.example.com`.
pub fn traefik<'a>(method: &'a str, uri: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("x-forwarded-method", method),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", uri),
    ]
}

/// A `&'static str` of `s`, for header lists built from formatted values (tests only: leaks).
pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// One answer: status, headers, JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: serde_json::Value,
}

/// `GET uri` (an `/auth/forward...` path) from `peer` (`ip:port`) with `headers`.
pub async fn forward(state: &Arc<AppState>, peer: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).expect("request");
    req.extensions_mut()
        .insert(ClientAddr(peer.parse().expect("peer ip:port")));
    let res = app(state.clone()).oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

/// Whether an API Gateway authorizer's IAM `policy` lets a caller invoke `arn`, as IAM
/// evaluates it: an explicit `Deny` wins, then any `Allow`, else the implicit deny. `*` in a
/// resource matches any run of characters (across `/` too), `?` one character.
pub fn iam_allows(policy: &serde_json::Value, arn: &str) -> bool {
    let statements = policy["policyDocument"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let matches = |s: &serde_json::Value| {
        let resources = match &s["Resource"] {
            serde_json::Value::String(r) => vec![r.clone()],
            serde_json::Value::Array(a) => a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        s["Action"] == "execute-api:Invoke"
            && resources.iter().any(|r| wildcard(r.as_bytes(), arn.as_bytes()))
    };
    let effect = |e: &str| statements.iter().any(|s| s["Effect"] == e && matches(s));
    !effect("Deny") && effect("Allow")
}

fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], text) || (!text.is_empty() && wildcard(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => wildcard(&pattern[1..], &text[1..]),
        _ => false,
    }
}
