//! Client authentication at the token, introspection and revocation endpoints: exactly one of
//! `client_secret_basic`, `client_secret_post` (both through the [`Gate`], like a Basic login:
//! regulation per client id and source, the limiter, the verified cache, pacing) or
//! `private_key_jwt` (RFC 7523: signature by a registered key, `iss` = `sub` = client,
//! `aud` naming us, `exp`, a `jti` used once). The client's registered method is enforced.

use super::error::OAuthError;
use super::form::{Form, urldecode};
use super::issuer::Issuer;
use super::signer::unix_now;
use super::trail::Trail;
use crate::decide::Gate;
use authserver_core::oauth::jwt::{Jws, MAX_JTI_BYTES};
use authserver_core::oauth::{AuthMethod, OAuthClient, VerifyingKey};
use authserver_core::{Credentials, Reason, Status};
use std::net::IpAddr;
use std::sync::Arc;

/// RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest assertion lifetime taken (`exp` beyond now): bounds how long its `jti` is kept.
const MAX_ASSERTION_SECONDS: u64 = 3600;

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its id (the user entry's name).
    pub id: String,
    /// Its registration.
    pub registration: Arc<OAuthClient>,
}

/// What the request presented.
enum Presented {
    /// RFC 6749 §2.3.1 decoded, and the undecoded pair when it differs (see [`basic_credentials`]).
    Basic(Credentials, Option<Credentials>),
    Post(Credentials),
    Assertion,
}

fn presented(authorization: &[&[u8]], form: &Form) -> Result<Option<Presented>, OAuthError> {
    let basic = match authorization {
        [] => None,
        [one] if one.len() > 6 && one[..6].eq_ignore_ascii_case(b"basic ") => Some(basic_credentials(one)?),
        [_] => None,
        _ => return Err(OAuthError::InvalidRequest("more than one Authorization header")),
    };
    let post = form.get("client_secret").is_some();
    let jwt = form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some();
    match (basic, post, jwt) {
        (Some((c, raw)), false, false) => Ok(Some(Presented::Basic(c, raw))),
        (None, true, false) => {
            let id = form
                .get("client_id")
                .ok_or(OAuthError::InvalidRequest("client_id"))?;
            let secret = form.get("client_secret").unwrap_or_default();
            let creds =
                Credentials::new(id, secret).map_err(|_| OAuthError::InvalidClient { challenge: false })?;
            Ok(Some(Presented::Post(creds)))
        }
        (None, false, true) => Ok(Some(Presented::Assertion)),
        (None, false, false) => Ok(None),
        _ => Err(OAuthError::InvalidRequest(
            "more than one client authentication method",
        )),
    }
}

/// RFC 6749 §2.3.1: Basic over the form-urlencoded id and secret. Many clients do not encode
/// (authlib 1.9, requests-oauthlib, `curl -u`), others do (Go's x/oauth2, Nimbus): when decoding
/// changes the pair, the undecoded pair is returned too, tried only if the decoded one fails.
fn basic_credentials(header: &[u8]) -> Result<(Credentials, Option<Credentials>), OAuthError> {
    let bad = OAuthError::InvalidClient { challenge: true };
    let raw = Credentials::parse(header).map_err(|_| bad.clone())?;
    let decoded = urldecode(raw.username()).zip(urldecode(raw.password().expose()));
    match decoded {
        Some((id, secret)) if id != raw.username() || secret != raw.password().expose() => {
            match Credentials::new(&id, &secret) {
                Ok(c) => Ok((c, Some(raw))),
                Err(_) => Ok((raw, None)),
            }
        }
        _ => Ok((raw, None)),
    }
}

/// Authenticates the client of a request to an OAuth endpoint (`path`: the endpoint, one
/// accepted assertion audience). `trail` learns the presented id, the method and why it failed.
pub async fn authenticate(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    req: Presentation<'_>,
    trail: &mut Trail,
) -> Result<Client, OAuthError> {
    let Presentation {
        authorization,
        form,
        source,
        path,
    } = req;
    let presented = presented(authorization, form).inspect_err(|e| {
        if matches!(e, OAuthError::InvalidClient { .. }) {
            trail.method = Some(AuthMethod::ClientSecretBasic.as_str());
            trail.auth_failed("malformed");
        }
    })?;
    let (method, creds, undecoded) = match presented {
        None => {
            trail.auth_failed("missing");
            return Err(OAuthError::InvalidClient { challenge: true });
        }
        Some(Presented::Assertion) => {
            trail.method = Some(AuthMethod::PrivateKeyJwt.as_str());
            return assertion(gate, issuer, form, source, path, trail).await;
        }
        Some(Presented::Basic(c, raw)) => (AuthMethod::ClientSecretBasic, c, raw),
        Some(Presented::Post(c)) => (AuthMethod::ClientSecretPost, c, None),
    };
    trail.method = Some(method.as_str());
    trail.presented(creds.username());
    let challenge = method == AuthMethod::ClientSecretBasic;
    if form.get("client_id").is_some_and(|id| id != creds.username()) {
        return Err(OAuthError::InvalidRequest(
            "client_id differs from the authenticated client",
        ));
    }
    let mut id = creds.username().to_owned();
    let mut attempt = gate.attempt_credentials(creds, source).await;
    if let Some(raw) = undecoded.filter(|_| {
        attempt
            .decision
            .reason()
            .is_some_and(Reason::is_credential_failure)
    }) {
        // The second verification is regulated like the first: a wrong secret with `%` or `+`
        // counts twice toward the client's and the source's limits.
        id = raw.username().to_owned();
        trail.presented(&id);
        attempt = gate.attempt_credentials(raw, source).await;
    }
    if let Some(r) = attempt.decision.reason() {
        trail.auth_failed(r.as_str());
        return Err(refusal(r, attempt.retry_after, challenge));
    }
    let registration = registration(gate, &id)
        .await
        .ok_or(OAuthError::UnauthorizedClient)?;
    if registration.token_endpoint_auth_method != method {
        trail.auth_failed("wrong_method");
        return Err(OAuthError::InvalidClient { challenge });
    }
    trail.authenticated();
    Ok(Client { id, registration })
}

/// What a request presents for client authentication, and where.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a [u8]],
    /// The form body.
    pub form: &'a Form,
    /// The client address.
    pub source: Option<IpAddr>,
    /// The endpoint (one accepted assertion audience).
    pub path: &'a str,
}

/// The answer for a denied gate attempt.
fn refusal(r: Reason, retry_after: Option<std::time::Duration>, challenge: bool) -> OAuthError {
    let retry_after = retry_after.unwrap_or(std::time::Duration::from_secs(1));
    match r {
        Reason::RateLimited | Reason::LockedOut => OAuthError::TooMany { retry_after },
        Reason::Overloaded | Reason::StoreUnavailable => OAuthError::Unavailable { retry_after },
        _ => OAuthError::InvalidClient { challenge },
    }
}

/// The registration of an ACTIVE client in the store in service (also what keeps a bearer
/// token valid: [`super::bearer::current`]). Asked per client (`current_for`), so a per-user
/// store (the DynamoDB users table) answers from its entry cache or one lookup, exactly as
/// the whole-document stores answer from their snapshot.
pub(crate) async fn registration(gate: &Gate, id: &str) -> Option<Arc<OAuthClient>> {
    let snapshot = gate.store.current_for(id).resolve().await.ok()?;
    let user = snapshot.user(id)?;
    (user.status == Status::Active)
        .then(|| user.oauth.clone())
        .flatten()
}

/// `private_key_jwt`, with regulation per client id and source like a secret.
async fn assertion(
    gate: &Arc<Gate>,
    issuer: &Issuer,
    form: &Form,
    source: Option<IpAddr>,
    path: &str,
    trail: &mut Trail,
) -> Result<Client, OAuthError> {
    if form.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::InvalidRequest("client_assertion_type"));
    }
    let bad = OAuthError::InvalidClient { challenge: false };
    let text = form
        .get("client_assertion")
        .ok_or(OAuthError::InvalidRequest("client_assertion"))?;
    let Ok(jws) = Jws::parse(text) else {
        trail.auth_failed("malformed");
        return Err(bad);
    };
    let Some(id) = jws
        .claim_str("iss")
        .filter(|iss| jws.claim_str("sub") == Some(*iss))
        .map(str::to_owned)
    else {
        trail.auth_failed("malformed");
        return Err(bad);
    };
    trail.presented(&id);
    if form.get("client_id").is_some_and(|c| c != id) {
        return Err(OAuthError::InvalidRequest("client_id differs from the assertion"));
    }
    let user_hash = gate.user_hasher.hash(&id);
    let banned = match gate.regulator.check_local(source) {
        Some(ban) => Some(ban),
        None => gate.regulator.check(source, &user_hash).await,
    };
    if let Some((_, left)) = banned {
        trail.auth_failed("rate_limited");
        return Err(OAuthError::TooMany {
            retry_after: std::time::Duration::from_secs(left),
        });
    }
    match check_assertion(issuer, &jws, &id, gate, path).await {
        Ok(registration) => {
            gate.regulator.success(source, &user_hash);
            trail.authenticated();
            Ok(Client { id, registration })
        }
        Err(why) => {
            trail.auth_failed(why);
            // Before a valid signature there is nothing to guess (a key cannot be brute-forced)
            // and anyone can name any client: counting those against the client id would hand
            // out a lockout switch. They count against the source only; failures after a valid
            // signature (audience, times, replay) come from the key holder and count per id.
            let user = (!UNSIGNED.contains(&why)).then_some(user_hash.as_str());
            gate.regulator.failure(source, user).await;
            Err(bad)
        }
    }
}

/// One signature verification whose answer is ignored, so an unknown client id (or one of
/// another method) takes as long to refuse as a registered `private_key_jwt` client with a bad
/// signature: the timing does not tell which ids are registered. The key is parsed per call like
/// a registration's (`OAuthClient::keys`); it is RFC 7515 Appendix A.3's example P-256 key.
fn dummy_verify(jws: &Jws<'_>) {
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256",
        "kid": jws.header_str("kid").unwrap_or_default(),
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRjmGgsZRHv_d3KvEJSvBIZOC3vcuDozKqBoA4s"});
    if let Ok(mut key) = VerifyingKey::from_jwk(&jwk) {
        key.alg = jws.alg;
        let _ = jws.verify(std::slice::from_ref(&key));
    }
}

/// Failures of [`check_assertion`] decided before the signature was verified.
const UNSIGNED: [&str; 3] = ["unknown_client", "wrong_method", "assertion_signature"];

/// The checks of RFC 7523 §3; the failure reason is for the metric only.
async fn check_assertion(
    issuer: &Issuer,
    jws: &Jws<'_>,
    id: &str,
    gate: &Gate,
    path: &str,
) -> Result<Arc<OAuthClient>, &'static str> {
    let Some(registration) = registration(gate, id).await else {
        dummy_verify(jws);
        return Err("unknown_client");
    };
    if registration.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        dummy_verify(jws);
        return Err("wrong_method");
    }
    jws.verify(&registration.keys())
        .map_err(|_| "assertion_signature")?;
    let audiences = [
        issuer.settings.issuer.clone(),
        issuer.endpoint("/oauth/token"),
        issuer.endpoint(path),
    ];
    if !jws.audience_in(&audiences) {
        return Err("assertion_audience");
    }
    let now = unix_now();
    jws.check_times(now, issuer.settings.skew_seconds)
        .map_err(|_| "assertion_expired")?;
    let exp = jws
        .claims
        .get("exp")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if exp > now + MAX_ASSERTION_SECONDS {
        return Err("assertion_lifetime");
    }
    let jti = jws
        .claim_str("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
        .ok_or("assertion_jti")?;
    // Per client: one client's ids cannot block another's.
    let key = format!("assertion\n{id}\n{jti}");
    match issuer.jti.insert(&key, exp + issuer.settings.skew_seconds).await {
        Ok(true) => Ok(registration),
        Ok(false) => Err("assertion_replay"),
        Err(e) => {
            tracing::error!(error = %e, "jti store unavailable: client assertion refused");
            Err("jti_store_unavailable")
        }
    }
}
