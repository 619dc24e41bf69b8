//! Compact JWS (RFC 7515) as we build and check it: access tokens per RFC 9068 and client
//! assertions per RFC 7523. Built here over `ring` (no JWT library): the checks are few and each
//! one is a line to read. Parsing is strict: three parts, base64url without padding, JSON
//! objects, `alg` from the pinned set, no `crit`, at most [`MAX_TOKEN`] bytes.

use super::jwk::VerifyingKey;
use super::ports::Alg;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest token or assertion read (ours are ~700 bytes with RS256; a megabyte header would
/// otherwise be decoded and parsed before any check).
pub const MAX_TOKEN: usize = 8192;

/// Why a token or assertion was not accepted. For metrics and tests only: clients always get
/// the same `invalid_token` / `invalid_client`, whichever check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not a compact JWS we can read.
    #[error("malformed")]
    Malformed,
    /// `alg` is not RS256 / ES256 (`none`, HMAC, anything else), or not the key's.
    #[error("algorithm")]
    Algorithm,
    /// `typ` is not `at+jwt` (access tokens).
    #[error("type")]
    Type,
    /// No key with this `kid`.
    #[error("unknown_key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("signature")]
    Signature,
    /// `iss` is not ours (or, for an assertion, not the client).
    #[error("issuer")]
    Issuer,
    /// `aud` does not name an accepted audience.
    #[error("audience")]
    Audience,
    /// `exp` is past (beyond the skew) or missing.
    #[error("expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the skew).
    #[error("not_yet_valid")]
    NotYetValid,
    /// The `jti` was revoked, or an assertion's `jti` was already used.
    #[error("revoked")]
    Revoked,
    /// The token verifies, but its client is no longer an ACTIVE OAuth client registered for
    /// the token's scopes and audience (disabled, removed or narrowed since it was issued).
    #[error("client")]
    Client,
}

impl Invalid {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::Algorithm => "algorithm",
            Invalid::Type => "type",
            Invalid::UnknownKey => "unknown_key",
            Invalid::Signature => "signature",
            Invalid::Issuer => "issuer",
            Invalid::Audience => "audience",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::Revoked => "revoked",
            Invalid::Client => "client",
        }
    }
}

/// The claims of an access token we issue (RFC 9068 §2.2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Our issuer identifier.
    pub iss: String,
    /// The client id (client credentials: the subject is the client).
    pub sub: String,
    /// The client id.
    pub client_id: String,
    /// The one audience.
    pub aud: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires (unix seconds).
    pub exp: u64,
    /// Unique token id (128 bits from the OS CSPRNG, base64url).
    pub jti: String,
}

impl std::fmt::Debug for AccessClaims {
    // The jti revokes the token: it stays out of Debug like the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessClaims")
            .field("aud", &self.aud)
            .field("scope", &self.scope)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

impl AccessClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Longest `jti` taken, in bytes, from an access token or a client assertion. Ours are 22;
/// RFC 7519 sets no limit, and a jti becomes a jti-store key (DynamoDB refuses partition keys
/// over 2,048 bytes), so a longer one is refused where it is parsed.
pub const MAX_JTI_BYTES: usize = 256;

/// A fresh token id: 128 bits from the OS CSPRNG (`getrandom` through `rand::rngs::OsRng`),
/// never the clock or a user-space generator.
pub fn new_jti() -> Result<String, rand::rand_core::OsError> {
    use rand::TryRngCore as _;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
    Ok(B64.encode(bytes))
}

/// `base64url(header).base64url(claims)` for an access token signed by `kid` with `alg`.
pub fn signing_input(alg: Alg, kid: &str, claims: &AccessClaims) -> Result<String, serde_json::Error> {
    let header = serde_json::json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
    Ok(format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(&header)?),
        B64.encode(serde_json::to_vec(claims)?)
    ))
}

/// The compact token from its signing input and signature.
pub fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", B64.encode(signature))
}

/// A parsed (not yet verified) compact JWS.
#[derive(Debug)]
pub struct Jws<'a> {
    /// The protected header.
    pub header: serde_json::Map<String, Value>,
    /// The payload.
    pub claims: serde_json::Map<String, Value>,
    /// The pinned algorithm the header names.
    pub alg: Alg,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn object(part: &str) -> Result<serde_json::Map<String, Value>, Invalid> {
    let bytes = B64.decode(part).map_err(|_| Invalid::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Invalid::Malformed),
    }
}

impl<'a> Jws<'a> {
    /// Splits and decodes `token`; refuses any `alg` outside the pinned set and any `crit`.
    pub fn parse(token: &'a str) -> Result<Self, Invalid> {
        if token.len() > MAX_TOKEN {
            return Err(Invalid::Malformed);
        }
        let (signing_input, sig) = token.rsplit_once('.').ok_or(Invalid::Malformed)?;
        let (head, body) = signing_input.split_once('.').ok_or(Invalid::Malformed)?;
        let header = object(head)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Alg::parse)
            .ok_or(Invalid::Algorithm)?;
        if header.contains_key("crit") {
            return Err(Invalid::Malformed);
        }
        let claims = object(body)?;
        let signature = B64.decode(sig).map_err(|_| Invalid::Malformed)?;
        Ok(Self {
            header,
            claims,
            alg,
            signing_input,
            signature,
        })
    }

    /// A header member as text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A claim as text.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Checks the signature with the key `kid` names among `keys` (with one key and no `kid`,
    /// that key). The key's own algorithm must be the header's.
    pub fn verify(&self, keys: &[VerifyingKey]) -> Result<(), Invalid> {
        let key = match self.header_str("kid") {
            Some(kid) => keys.iter().find(|k| k.kid == kid),
            None if keys.len() == 1 => keys.first(),
            None => None,
        }
        .ok_or(Invalid::UnknownKey)?;
        if key.alg != self.alg {
            return Err(Invalid::Algorithm);
        }
        if key.verify(self.signing_input.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(Invalid::Signature)
        }
    }

    /// Checks `exp` (required), `nbf` and `iat` against `now` with `skew` seconds of leeway.
    pub fn check_times(&self, now: u64, skew: u64) -> Result<(), Invalid> {
        let time = |name| self.claims.get(name).and_then(Value::as_u64);
        match time("exp") {
            Some(exp) if exp.saturating_add(skew) > now => {}
            _ => return Err(Invalid::Expired),
        }
        if [time("nbf"), time("iat")]
            .into_iter()
            .flatten()
            .any(|t| t > now.saturating_add(skew))
        {
            return Err(Invalid::NotYetValid);
        }
        Ok(())
    }

    /// Whether `aud` (a string or an array of strings) names one of `accepted`.
    pub fn audience_in(&self, accepted: &[String]) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(a)) => accepted.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| accepted.iter().any(|x| x == a)),
            _ => false,
        }
    }
}

/// What an access token must satisfy besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Our issuer, byte for byte.
    pub issuer: &'a str,
    /// Audiences this deployment (or route) accepts.
    pub audiences: &'a [String],
    /// Unix seconds.
    pub now: u64,
    /// Leeway for `exp` / `nbf` / `iat` (seconds).
    pub skew: u64,
}

/// Verifies an access token of ours: pinned `alg`, `typ: at+jwt`, a known `kid`, the signature,
/// `iss`, `aud` and the times. Revocation (the `jti` denylist) is the caller's: it is async.
pub fn verify_access_token(
    token: &str,
    keys: &[VerifyingKey],
    expect: Expect<'_>,
) -> Result<AccessClaims, Invalid> {
    let jws = Jws::parse(token)?;
    let typ = jws.header_str("typ").unwrap_or_default();
    if !(typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")) {
        return Err(Invalid::Type);
    }
    jws.verify(keys)?;
    if jws.claim_str("iss") != Some(expect.issuer) {
        return Err(Invalid::Issuer);
    }
    if !jws.audience_in(expect.audiences) {
        return Err(Invalid::Audience);
    }
    jws.check_times(expect.now, expect.skew)?;
    let claims: AccessClaims =
        serde_json::from_value(Value::Object(jws.claims)).map_err(|_| Invalid::Malformed)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_BYTES {
        return Err(Invalid::Malformed);
    }
    Ok(claims)
}
