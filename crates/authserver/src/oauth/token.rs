//! The three client-authenticated endpoints as functions of (headers, body, source): the
//! token request (RFC 6749 §4.4), introspection (RFC 7662) and revocation (RFC 7009).

use super::client_auth::{self, Client};
use super::error::OAuthError;
use super::form::{Form, FormError};
use super::issuer::{Issuer, TokenResponse};
use crate::decide::Gate;
use std::net::IpAddr;
use std::sync::Arc;

/// One request to an OAuth endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a [u8]],
    /// The form body.
    pub body: &'a [u8],
    /// The client address.
    pub source: Option<IpAddr>,
}

fn form(body: &[u8]) -> Result<Form, OAuthError> {
    Form::parse(body).map_err(|e| match e {
        FormError::Duplicate => OAuthError::InvalidRequest("a parameter appears more than once"),
        FormError::Encoding => OAuthError::InvalidRequest("not a UTF-8 form"),
    })
}

async fn client(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    req: Request<'_>,
    form: &Form,
    path: &str,
) -> Result<Client, OAuthError> {
    client_auth::authenticate(gate, issuer, req.authorization, form, req.source, path).await
}

/// `POST /oauth/token`.
pub async fn token(gate: &Arc<Gate>, issuer: &Issuer, req: Request<'_>) -> Result<TokenResponse, OAuthError> {
    let form = form(req.body)?;
    let grant = form
        .get("grant_type")
        .ok_or(OAuthError::InvalidRequest("grant_type"))?;
    let client = client(gate, issuer, req, &form, "/oauth/token").await?;
    if grant != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    issuer
        .issue(
            &client.id,
            &client.registration,
            form.get("scope"),
            form.get("resource"),
        )
        .await
}

/// `POST /oauth/introspect`: the authenticated client learns about any token (RFC 7662 §2.1
/// leaves who may ask to the server; here: registered clients only).
pub async fn introspect(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    req: Request<'_>,
) -> Result<serde_json::Value, OAuthError> {
    let form = form(req.body)?;
    client(gate, issuer, req, &form, "/oauth/introspect").await?;
    let token = form.get("token").ok_or(OAuthError::InvalidRequest("token"))?;
    Ok(issuer
        .introspect(token, |c| super::bearer::current(gate, issuer, c))
        .await)
}

/// `POST /oauth/revoke`: only the owning client's tokens are revoked; 200 for the rest.
pub async fn revoke(gate: &Arc<Gate>, issuer: &Issuer, req: Request<'_>) -> Result<(), OAuthError> {
    let form = form(req.body)?;
    let client = client(gate, issuer, req, &form, "/oauth/revoke").await?;
    let token = form.get("token").ok_or(OAuthError::InvalidRequest("token"))?;
    issuer.revoke(token, &client.id).await
}
