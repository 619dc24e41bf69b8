//! The OAuth 2.0 routes (issue 14): `POST /oauth/token`, `/oauth/introspect`, `/oauth/revoke`,
//! `GET /.well-known/jwks.json`, `/.well-known/oauth-authorization-server` and
//! `/.well-known/openid-configuration`. The work is in [`crate::oauth`]; here requests become
//! its inputs and [`OAuthError`] becomes a status (one `match`, [`status_of`]).

use super::{AppState, ClientAddr};
use crate::decide::Gate;
use crate::oauth::token::{self, Request};
use crate::oauth::trail::{Endpoint, Trail};
use crate::oauth::{Issuer, OAuthError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::sync::Arc;

/// The routes, added to the public router when `[oauth]` is enabled.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/oauth/token", post(token_route))
        .route("/oauth/introspect", post(introspect_route))
        .route("/oauth/revoke", post(revoke_route))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
}

/// Status of each refusal (RFC 6749 §5.2: 400, or 401 for `invalid_client`).
pub fn status_of(e: &OAuthError) -> StatusCode {
    match e {
        OAuthError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
        OAuthError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
        OAuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::InvalidRequest(_)
        | OAuthError::UnauthorizedClient
        | OAuthError::UnsupportedGrantType
        | OAuthError::InvalidScope
        | OAuthError::InvalidTarget => StatusCode::BAD_REQUEST,
    }
}

/// Token responses are never cached (RFC 6749 §5.1), nor are introspection answers.
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn refuse(e: &OAuthError, realm: &str) -> Response {
    let mut response = (status_of(e), Json(serde_json::json!({"error": e.code()}))).into_response();
    let h = response.headers_mut();
    match e {
        OAuthError::InvalidClient { challenge: true } => {
            h.insert(header::WWW_AUTHENTICATE, super::reply::challenge(realm));
        }
        OAuthError::TooMany { retry_after } | OAuthError::Unavailable { retry_after } => {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        _ => {}
    }
    no_store(response)
}

/// The endpoint's input, or a 400 when the body is not a form (RFC 6749 §3.2).
fn is_form(headers: &HeaderMap) -> bool {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// Runs `f` with the request's parts and writes its audit event (one per request, whatever
/// the answer: see [`crate::oauth::trail`]); shared by the three POST routes.
async fn with_request<T, F>(
    state: &AppState,
    peer: Option<ClientAddr>,
    headers: &HeaderMap,
    body: &[u8],
    endpoint: Endpoint,
    f: F,
) -> Response
where
    T: serde::Serialize,
    F: AsyncFnOnce(&Arc<Gate>, &Issuer, Request<'_>, &mut Trail) -> Result<T, OAuthError>,
{
    let realm = &state.settings.server.realm;
    let Some(issuer) = state.oauth.as_deref() else {
        return super::handlers::not_found_response();
    };
    let source = peer.and_then(|p| state.proxies.client(p.0.ip(), headers));
    let mut trail = Trail::default();
    let result = if is_form(headers) {
        let authorization: Vec<&[u8]> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let req = Request {
            authorization: &authorization,
            body,
            source,
        };
        f(&state.gate, issuer, req, &mut trail).await
    } else {
        Err(OAuthError::InvalidRequest("content type"))
    };
    let event = trail.event(endpoint, result.as_ref().map(|_| ()), &state.gate, source);
    state.audit.emit(event);
    match result {
        Ok(value) => no_store((StatusCode::OK, Json(value)).into_response()),
        Err(e) => refuse(&e, realm),
    }
}

async fn token_route(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token =
        async |g: &Arc<Gate>, i: &Issuer, r: Request<'_>, t: &mut Trail| token::token(g, i, r, t).await;
    with_request(&state, peer.map(|p| p.0), &headers, &body, Endpoint::Token, token).await
}

async fn introspect_route(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let introspect =
        async |g: &Arc<Gate>, i: &Issuer, r: Request<'_>, t: &mut Trail| token::introspect(g, i, r, t).await;
    with_request(
        &state,
        peer.map(|p| p.0),
        &headers,
        &body,
        Endpoint::Introspect,
        introspect,
    )
    .await
}

async fn revoke_route(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let revoke = async |g: &Arc<Gate>, i: &Issuer, r: Request<'_>, t: &mut Trail| {
        token::revoke(g, i, r, t).await.map(|()| serde_json::json!({}))
    };
    with_request(
        &state,
        peer.map(|p| p.0),
        &headers,
        &body,
        Endpoint::Revoke,
        revoke,
    )
    .await
}

/// Public documents: cacheable for `jwks_max_age_seconds` (below the publish lead minus the 30 s
/// key reload, so a consumer's cached copy always holds the next key before it signs).
fn public(state: &AppState, doc: impl FnOnce(&Issuer) -> serde_json::Value) -> Response {
    let Some(issuer) = state.oauth.as_deref() else {
        return super::handlers::not_found_response();
    };
    let mut response = Json(doc(issuer)).into_response();
    let max_age = format!("public, max-age={}", issuer.settings.jwks_max_age_seconds);
    if let Ok(v) = HeaderValue::from_str(&max_age) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    public(&state, Issuer::jwks)
}

async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    public(&state, Issuer::metadata)
}
