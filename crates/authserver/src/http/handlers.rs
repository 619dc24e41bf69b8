//! Route handlers. Each is a few lines: the work is in [`crate::decide`] and [`super::reply`].

use super::AppState;
use super::ClientAddr;
use super::reply::respond;
use crate::decide::Attempt;
use crate::telemetry::AuthRecord;
use authserver_core::Outcome;
use authserver_core::clock::now_ms;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

async fn run(state: &AppState, headers: &HeaderMap, peer: Option<ClientAddr>) -> Attempt {
    let values = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes);
    if let Some(attempt) = super::bearer::attempt(state, headers).await {
        return attempt;
    }
    let source = peer.and_then(|p| state.proxies.client(p.0.ip(), headers));
    state.gate.attempt_from(values, source).await
}

fn record(mut response: Response, attempt: Attempt) -> Response {
    response.extensions_mut().insert(auth_record(attempt));
    response
}

/// What telemetry and audit learn of an attempt (the gRPC surface records it too).
pub(super) fn auth_record(attempt: Attempt) -> AuthRecord {
    AuthRecord {
        reason: attempt.decision.reason(),
        cache: attempt.decision.cache,
        user_hash: attempt.user_hash,
        verify_time: attempt.decision.verify_time,
    }
}

/// `POST /auth/validate` (and `POST /auth`): the JSON contract.
pub async fn validate(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let attempt = run(&state, &headers, peer.map(|p| p.0)).await;
    let response = respond(
        &attempt.decision,
        attempt.retry_after,
        &state.settings.server.realm,
        false,
    );
    record(super::bearer::challenge(&state, &headers, response), attempt)
}

/// `/auth/forward` (any method): for nginx `auth_request`, Traefik ForwardAuth, Caddy
/// `forward_auth`, Envoy `ext_authz`. On success the user and roles travel in headers.
/// With access rules, the request is routed first ([`super::access`]).
pub async fn forward(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ClientAddr>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let peer = peer.map(|p| p.0);
    let routed = super::access::route(&state, &headers, &uri, &method, peer);
    if let Some(mut answer) = routed.as_ref().and_then(|r| r.early(&state.settings.server)) {
        super::bearer::scopes_header(&state, &[], &mut answer);
        return answer;
    }
    let attempt = run(&state, &headers, peer).await;
    let server = &state.settings.server;
    let mut response = respond(&attempt.decision, attempt.retry_after, &server.realm, true);
    response = super::bearer::challenge(&state, &headers, response);
    if let (Outcome::Allowed { roles }, Some(user)) = (&attempt.decision.outcome, &attempt.username) {
        if let Some(identity) = identity_headers(server, user, roles) {
            for (name, value) in identity {
                response.headers_mut().insert(name, value);
            }
            super::bearer::scopes_header(&state, &attempt.scopes, &mut response);
        } else {
            // The store refuses names and roles that cannot be header values, so this is a bug
            // or a store that skipped validation: never let the proxy through without the
            // identity it was configured to pass on.
            tracing::error!(
                user_hash = attempt.user_hash.as_deref().unwrap_or(""),
                "identity not representable as forward headers; answering 500"
            );
            response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"allowed": false, "message": "Internal server error", "timestamp": now_ms()})),
            )
                .into_response();
        }
    }
    if let Some(routed) = &routed {
        response = routed.finish(response, &attempt);
    }
    record(response, attempt)
}

/// The configured user and roles headers, or `None` when either cannot be represented (then
/// the answer must not be 200: a proxy would pass the request on without that identity).
pub(super) fn identity_headers(
    server: &crate::config::ServerSettings,
    user: &str,
    roles: &[String],
) -> Option<[(HeaderName, HeaderValue); 2]> {
    let header = |name: &str, value: String| {
        Some((
            HeaderName::try_from(name).ok()?,
            HeaderValue::try_from(value).ok()?,
        ))
    };
    Some([
        header(&server.forward_user_header, user.to_owned())?,
        header(&server.forward_roles_header, roles.join(","))?,
    ])
}

/// `GET /health`: liveness. Never touches the store.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "timestamp": now_ms()}))
}

/// `GET /ready` on the public listener: 200 when a usable snapshot exists, else 503; nothing
/// more (the store's version, size and errors are on the admin listener's `/ready`).
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.gate.store.status().ready;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": ready, "timestamp": now_ms()}))).into_response()
}

/// Any other path: 404 with a JSON body.
pub async fn not_found() -> Response {
    not_found_response()
}

/// The 404 answer (also for the OAuth routes while `[oauth]` is off).
pub fn not_found_response() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"allowed": false, "message": "Not found", "timestamp": now_ms()})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_that_cannot_be_a_header_is_refused_whole() {
        let server = crate::config::ServerSettings::default();
        let ok = identity_headers(&server, "alice", &["a".into(), "b".into()]).expect("fine");
        assert_eq!(ok[1].1, "a,b");
        assert!(identity_headers(&server, "alice", &["a\r\nX-Evil: 1".into()]).is_none());
        assert!(identity_headers(&server, "al\nice", &[]).is_none());
    }
}
