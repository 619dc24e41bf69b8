//! Bearer tokens on `/auth/validate` and `/auth/forward` (issue 14): the HTTP side of
//! [`crate::oauth::bearer`]. A refused token answers 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1) and nothing about which
//! check failed; a valid one forwards the client id as the user, no roles, and its scopes in
//! `oauth.forward_scopes_header`.

use super::AppState;
use crate::decide::Attempt;
use crate::oauth::bearer;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

fn token(state: &AppState, headers: &HeaderMap) -> Option<String> {
    state.oauth.as_ref()?;
    let values: Vec<&[u8]> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    bearer::token(&values).map(str::to_owned)
}

/// The attempt for a bearer request (`None`: not one, or OAuth is off: Basic decides).
pub async fn attempt(state: &AppState, headers: &HeaderMap) -> Option<Attempt> {
    let token = token(state, headers)?;
    let issuer = state.oauth.as_deref()?;
    Some(bearer::attempt(&state.gate, issuer, &token).await)
}

/// Replaces the Basic challenge of a refused bearer request with the Bearer one.
pub fn challenge(state: &AppState, headers: &HeaderMap, mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED && token(state, headers).is_some() {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(bearer::CHALLENGE),
        );
    }
    response
}

/// The scopes of a bearer attempt, space-separated, in the configured header: present on every
/// 200 while OAuth is on, empty for Basic users and bypassed requests. An absent header would let
/// a proxy that copies it pass on what the client sent, or (Caddy's `copy_headers`) its literal
/// placeholder, where the upstream expects the identity's scopes.
pub fn scopes_header(state: &AppState, scopes: &[String], response: &mut Response) {
    let Some(issuer) = state.oauth.as_deref() else {
        return;
    };
    if response.status() != StatusCode::OK {
        return;
    }
    let name: HeaderName = issuer.settings.forward_scopes_header.name().clone();
    // Scopes are RFC 6749 scope tokens (printable ASCII, checked on load): always a value.
    if let Ok(value) = HeaderValue::try_from(scopes.join(" ")) {
        response.headers_mut().insert(name, value);
    }
}
