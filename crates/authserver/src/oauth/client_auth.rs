//! Client authentication at the token, introspection and revocation endpoints: exactly one of
//! `client_secret_basic`, `client_secret_post` (both through the [`Gate`], like a Basic login:
//! regulation per client id and source, the limiter, the verified cache, pacing) or
//! `private_key_jwt` (RFC 7523: signature by a registered key, `iss` = `sub` = client,
//! `aud` naming us, `exp`, a `jti` used once). The client's registered method is enforced.

use super::error::OAuthError;
use super::form::{Form, urldecode};
use super::issuer::Issuer;
use super::registry::registration;
use super::signer::unix_now;
use super::trail::Trail;
use crate::decide::Gate;
use authserver_core::oauth::jwt::{Invalid, Jws, MAX_JTI_BYTES};
use authserver_core::oauth::{Alg, AuthMethod, OAuthClient, VerifyingKey};
use authserver_core::{Credentials, Reason};
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
    // The registration the gate's own lookup found: no second store read, here or in the
    // audit event (a wrong secret of a real client is shown by its id, a plain user is not).
    if attempt.client.is_some() {
        trail.registered();
    }
    if let Some(r) = attempt.decision.reason() {
        trail.auth_failed(r.as_str());
        return Err(refusal(r, attempt.retry_after, challenge));
    }
    let registration = attempt.client.ok_or(OAuthError::UnauthorizedClient)?;
    if registration.token_endpoint_auth_method != method {
        trail.auth_failed("wrong_method");
        return Err(OAuthError::InvalidClient { challenge });
    }
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
    match check_assertion(issuer, &jws, &id, gate, path, trail).await {
        Ok(registration) => {
            gate.regulator.success(source, &user_hash);
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

/// One signature verification whose answer is ignored, so that every assertion refused at its
/// signature costs one verification of its algorithm: an unknown client id, one of another
/// method, and a registered client whose keys hold no key for the header's `kid` / `alg` (which
/// refuses before any arithmetic) take as long as a registered key's failed check, and the
/// timing does not tell which ids are registered. The key is parsed per call like a
/// registration's (`OAuthClient::keys`) and takes the header's `kid`, so the lookup runs as for
/// a match. ES256: a P-256 public key generated for this (its private half was discarded);
/// RS256: the public half of the test suite's fixed RSA-2048 key
/// (`authserver-testkit/fixtures/oauth-test-rsa2048.pem`); nothing reads the answer.
///
/// The key must be a point on the curve: ring refuses any other before the arithmetic, in a
/// few microseconds. The key used here until now (said to be RFC 7515 A.3's) was not, so an
/// unknown client id was answered in ~9 µs against ~119 µs for a registered one
/// (docs/performance.md, "OAuth"); the unit test below checks the point with ring's ECDH.
fn dummy_verify(jws: &Jws<'_>) {
    let kid = jws.header_str("kid").unwrap_or_default();
    let jwk = match jws.alg {
        Alg::Es256 => serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": DUMMY_EC_X, "y": DUMMY_EC_Y}),
        Alg::Rs256 => serde_json::json!({"kty": "RSA", "kid": kid, "e": "AQAB", "n": DUMMY_RSA_N}),
    };
    if let Ok(key) = VerifyingKey::from_jwk(&jwk) {
        let _ = jws.verify(std::slice::from_ref(&key));
    }
}

/// The point of [`dummy_verify`]'s ES256 key.
const DUMMY_EC_X: &str = "UyH_9bPqz0xBXLEAkaDWt64YNDZ6e7oMAlKC0FmPbRE";
/// See [`DUMMY_EC_X`].
const DUMMY_EC_Y: &str = "lMp2Gdp1Om8nVdH0UM2gBlkPFiBG2gcQeAdPQPph-Uo";

/// The modulus of [`dummy_verify`]'s RS256 key (2048 bits).
const DUMMY_RSA_N: &str = "1CcdNFW-zz4KMkvgBfUluhF0iFvc7pAJ8Ar2cUCECPuGgzJX-Tfa47XN3z1H3F4NHor5Q3u_53YniFR78goKtIkLa17VUQJYQBnukDJBFnpFLGhjrdEO3PZ1_m_XHenyjdGVl7jd8QzQRVK2ZfpmE3nV6vTOI-Tn24-fD35hrNtv0aF50E0MK3uj3LnXqfmkFEyucYzD5YdtCcTdjuNb2b2a-s1BdbfP29PsFNKZWZAJrwNY9dlse6cL-fDN6Mw_3aR1S71DCxP4yc_M6hYz_FL76ptTuJ8UD3MOyOkqJ5EouLMRMnSyLkUDpz7y7PKoTMyxTI5Px2CrtKzmj9qYFw";

/// Failures of [`check_assertion`] decided before the signature was verified.
const UNSIGNED: [&str; 3] = ["unknown_client", "wrong_method", "assertion_signature"];

/// The checks of RFC 7523 §3; the failure reason is for the metric only. `trail` learns that
/// `id` names a registered client once the lookup found it (the audit event reads no store).
async fn check_assertion(
    issuer: &Issuer,
    jws: &Jws<'_>,
    id: &str,
    gate: &Gate,
    path: &str,
    trail: &mut Trail,
) -> Result<Arc<OAuthClient>, &'static str> {
    let Some(registration) = registration(gate, id).await else {
        dummy_verify(jws);
        return Err("unknown_client");
    };
    trail.registered();
    if registration.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        dummy_verify(jws);
        return Err("wrong_method");
    }
    match jws.verify(&registration.keys()) {
        Ok(()) => {}
        // The signature was computed over and refused: a verification's cost spent.
        Err(Invalid::Signature) => return Err("assertion_signature"),
        // Refused before any arithmetic (no key with this kid, or of this alg): spend it now.
        Err(_) => {
            dummy_verify(jws);
            return Err("assertion_signature");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in key that does not parse, or a point off the curve (which ring refuses
    /// before the arithmetic), would make `dummy_verify` cost nothing and tell unknown ids
    /// apart by time: both parse under their algorithm, and the point passes ring's public
    /// key validation (an ECDH agreement validates the peer point; ECDSA verify says only no).
    #[test]
    fn the_stand_in_keys_parse_and_the_point_is_on_the_curve() {
        use base64::Engine as _;
        let rsa = serde_json::json!({"kty": "RSA", "e": "AQAB", "n": DUMMY_RSA_N});
        assert_eq!(VerifyingKey::from_jwk(&rsa).map(|k| k.alg).ok(), Some(Alg::Rs256));
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "x": DUMMY_EC_X, "y": DUMMY_EC_Y});
        assert_eq!(VerifyingKey::from_jwk(&ec).map(|k| k.alg).ok(), Some(Alg::Es256));
        let b64 = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap_or_default()
        };
        let on_curve = |x: &str, y: &str| {
            let point = [&[4u8][..], &b64(x), &b64(y)].concat();
            let rng = ring::rand::SystemRandom::new();
            let mine = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
                .expect("a key");
            let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, point);
            ring::agreement::agree_ephemeral(mine, &peer, |_| ()).is_ok()
        };
        assert!(on_curve(DUMMY_EC_X, DUMMY_EC_Y));
        assert!(
            !on_curve(
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "x_FEzRjmGgsZRHv_d3KvEJSvBIZOC3vcuDozKqBoA4s"
            ),
            "the old key was off the curve"
        );
    }
}
