//! The three client-authenticated endpoints as functions of (headers, body, source): the
//! token request (RFC 6749 §4.4), introspection (RFC 7662) and revocation (RFC 7009).

use super::client_auth::{self, Client, Presentation};
use super::error::OAuthError;
use super::form::{Form, FormError};
use super::issuer::{Issuer, TokenResponse};
use super::trail::Trail;
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
    trail: &mut Trail,
) -> Result<Client, OAuthError> {
    let presentation = Presentation {
        authorization: req.authorization,
        form,
        source: req.source,
        path,
    };
    client_auth::authenticate(gate, issuer, presentation, trail).await
}

/// `POST /oauth/token`.
pub async fn token(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    req: Request<'_>,
    trail: &mut Trail,
) -> Result<TokenResponse, OAuthError> {
    let form = form(req.body)?;
    let grant = form
        .get("grant_type")
        .ok_or(OAuthError::InvalidRequest("grant_type"))?;
    let client = client(gate, issuer, req, &form, "/oauth/token", trail).await?;
    if grant != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let issued = issuer
        .issue(
            &client.id,
            &client.registration,
            form.get("scope"),
            form.get("resource"),
        )
        .await?;
    trail.scope = Some(issued.scope.clone());
    trail.audience = Some(issued.audience.clone());
    trail.jti = Some(issued.jti.clone());
    Ok(issued)
}

/// `POST /oauth/introspect`: the authenticated client learns about any token (RFC 7662 §2.1
/// leaves who may ask to the server; here: registered clients only).
pub async fn introspect(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    req: Request<'_>,
    trail: &mut Trail,
) -> Result<serde_json::Value, OAuthError> {
    let form = form(req.body)?;
    client(gate, issuer, req, &form, "/oauth/introspect", trail).await?;
    let token = form.get("token").ok_or(OAuthError::InvalidRequest("token"))?;
    let audiences = Issuer::any_audience(token);
    let checked = super::bearer::validate(gate, issuer, token, Some(&audiences)).await;
    trail.active = Some(checked.is_ok());
    Ok(Issuer::introspection(checked))
}

/// `POST /oauth/revoke`: only the owning client's tokens are revoked; 200 for the rest.
pub async fn revoke(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    req: Request<'_>,
    trail: &mut Trail,
) -> Result<(), OAuthError> {
    let form = form(req.body)?;
    let client = client(gate, issuer, req, &form, "/oauth/revoke", trail).await?;
    let token = form.get("token").ok_or(OAuthError::InvalidRequest("token"))?;
    trail.jti = issuer.revoke(token, &client.id).await?;
    Ok(())
}
