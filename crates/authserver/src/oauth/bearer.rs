//! `Authorization: Bearer <jwt>` on the auth surfaces (`/auth/forward`, `/auth/validate`, gRPC
//! ext_authz, the Lambda authorizer): a token of ours becomes an [`Attempt`] like a Basic login,
//! with the client id as the identity, no roles, and the token's scopes.

use super::issuer::Issuer;
use crate::decide::{Attempt, Gate};
use authserver_core::oauth::jwt::{AccessClaims, Invalid};
use authserver_core::{CacheUse, Decision, Outcome, Reason};

/// The token of a request whose one `Authorization` value uses the Bearer scheme (RFC 6750
/// §2.1; the scheme is case-insensitive). `None`: not a bearer request (Basic, none, several).
pub fn token<'a>(authorization: &[&'a [u8]]) -> Option<&'a str> {
    let [one] = authorization else { return None };
    let scheme = one.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    std::str::from_utf8(&one[7..]).ok().map(str::trim)
}

/// Decides for a bearer token. Every failure is the same denial (`Missing` for telemetry: no
/// usable credential); which check failed goes to the `OAuthTokenValidations` metric only.
pub async fn attempt(gate: &Gate, issuer: &Issuer, token: &str) -> Attempt {
    match validate(gate, issuer, token, None).await {
        Ok(claims) => Attempt {
            decision: Decision {
                outcome: Outcome::Allowed {
                    roles: Vec::new().into(),
                },
                cache: CacheUse::None,
                verify_time: None,
            },
            user_hash: Some(gate.user_hasher.hash(&claims.client_id)),
            scopes: claims.scopes(),
            username: Some(claims.client_id),
            retry_after: None,
            client: None,
        },
        Err(_) => Attempt {
            decision: Decision::denied(Reason::Missing),
            username: None,
            user_hash: None,
            retry_after: None,
            scopes: Vec::new(),
            client: None,
        },
    }
}

/// Every check of a bearer token against `audiences` (the deployment's when `None`): the
/// token itself ([`Issuer::verify`]), then its client ([`current`]). The result is counted
/// once, after the last check, under its final label (`valid`, or the check that refused).
pub async fn validate(
    gate: &Gate,
    issuer: &Issuer,
    token: &str,
    audiences: Option<&[String]>,
) -> Result<AccessClaims, Invalid> {
    let result = match issuer.verify(token, audiences).await {
        Ok(claims) => current(gate, issuer, claims).await,
        Err(e) => Err(e),
    };
    crate::telemetry::oauth::figures().validation(result.as_ref().err().map_or("valid", |e| e.as_str()));
    result
}

/// `claims` while their client is still an ACTIVE OAuth client of the store in service and
/// the token's scopes and audience are still registered: disabling, deleting or narrowing a
/// client cuts its tokens off at the next store reload, not at their `exp` (up to
/// `token_lifetime_seconds`, configurable to 24 h). [`Invalid::Client`] otherwise.
pub async fn current(gate: &Gate, issuer: &Issuer, claims: AccessClaims) -> Result<AccessClaims, Invalid> {
    let registration = super::registry::registration(gate, &claims.client_id)
        .await
        .ok_or(Invalid::Client)?;
    let scopes_ok = claims
        .scopes()
        .iter()
        .all(|s| registration.scopes.iter().any(|r| r == s));
    let aud_ok = issuer.settings.audiences.first() == Some(&claims.aud)
        || registration.audiences.contains(&claims.aud);
    if scopes_ok && aud_ok {
        Ok(claims)
    } else {
        Err(Invalid::Client)
    }
}

/// `WWW-Authenticate` of a refused bearer token (RFC 6750 §3.1), the same for every check.
pub const CHALLENGE: &str = "Bearer error=\"invalid_token\"";

/// One attempt for any surface: a bearer token of ours when OAuth is on and the request carries
/// one, else the Basic path of the [`Gate`]. The surfaces that are no axum route (gRPC
/// ext_authz, the Lambda authorizer) call this.
pub async fn attempt_any(
    gate: &std::sync::Arc<Gate>,
    issuer: Option<&Issuer>,
    authorization: &[&[u8]],
    source: Option<std::net::IpAddr>,
) -> Attempt {
    match (issuer, token(authorization)) {
        (Some(issuer), Some(token)) => attempt(gate, issuer, token).await,
        _ => gate.attempt_from(authorization.iter().copied(), source).await,
    }
}
