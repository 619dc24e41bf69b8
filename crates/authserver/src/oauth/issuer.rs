//! [`Issuer`]: issues access tokens for authenticated clients, checks bearer tokens, answers
//! introspection and revocation, and serves the JWKS and discovery documents.

use super::error::OAuthError;
use super::rate::TokenRate;
use super::signer::unix_now;
use crate::config::OAuthSettings;
use authserver_core::oauth::jwt::{self, AccessClaims, Expect, Invalid};
use authserver_core::oauth::{JtiStore, OAuthClient, TokenSigner, VerifyingKey};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Retry-After when the signer or the jti store fails.
const BACKEND_RETRY: Duration = Duration::from_secs(1);

/// The issuer of one deployment.
#[derive(Debug)]
pub struct Issuer {
    /// `[oauth]`.
    pub settings: OAuthSettings,
    /// Signs tokens, publishes keys.
    pub signer: Arc<dyn TokenSigner>,
    /// Revoked tokens and used assertion ids.
    pub jti: Arc<dyn JtiStore>,
    rate: TokenRate,
    /// Parsed verification keys, re-parsed when the published set changes.
    keys: arc_swap::ArcSwap<(Vec<String>, Vec<VerifyingKey>)>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(serde::Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: u64,
    /// Granted scopes.
    pub scope: String,
    /// The token's audience (for the audit event; not part of the response).
    #[serde(skip)]
    pub audience: String,
    /// The token's id (for the audit event; not part of the response).
    #[serde(skip)]
    pub jti: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer over `signer` and `jti`.
    pub fn new(settings: OAuthSettings, signer: Arc<dyn TokenSigner>, jti: Arc<dyn JtiStore>) -> Self {
        let rate = TokenRate::new(settings.tokens_per_minute);
        if let Some(since) = signer.active_since() {
            crate::telemetry::oauth::figures().active_key_since(since);
        }
        Self {
            settings,
            signer,
            jti,
            rate,
            keys: Default::default(),
        }
    }

    /// The token endpoint URL (RFC 7523 assertions may name it as `aud`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.settings.issuer)
    }

    /// Issues a token for `client_id` after its authentication: scopes and audience checked
    /// against the registration, the per-client rate applied.
    pub async fn issue(
        &self,
        client_id: &str,
        client: &OAuthClient,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let granted = client.grant_scopes(scope).ok_or(OAuthError::InvalidScope)?;
        let default_aud = self
            .settings
            .audiences
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        let aud = match resource {
            None => default_aud,
            Some(r) if r == default_aud || client.audiences.iter().any(|a| a == r) => r,
            Some(_) => return Err(OAuthError::InvalidTarget),
        };
        self.rate
            .take(client_id, Instant::now())
            .map_err(|retry_after| OAuthError::TooMany { retry_after })?;
        let unavailable = || OAuthError::Unavailable {
            retry_after: BACKEND_RETRY,
        };
        let now = unix_now();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: client_id.to_owned(),
            client_id: client_id.to_owned(),
            aud: aud.to_owned(),
            scope: granted.join(" "),
            iat: now,
            exp: now + self.settings.token_lifetime_seconds,
            jti: jwt::new_jti().map_err(|_| unavailable())?,
        };
        let (kid, alg) = self.signer.active();
        if let Some(since) = self.signer.active_since() {
            crate::telemetry::oauth::figures().active_key_since(since);
        }
        let input = jwt::signing_input(alg, &kid, &claims).map_err(|_| unavailable())?;
        let sig = self.signer.sign(input.as_bytes()).await.map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            unavailable()
        })?;
        crate::telemetry::oauth::figures().issued();
        Ok(TokenResponse {
            access_token: jwt::compact(&input, &sig),
            token_type: "Bearer",
            expires_in: self.settings.token_lifetime_seconds,
            scope: claims.scope,
            audience: claims.aud,
            jti: claims.jti,
        })
    }

    /// The published keys, parsed once per change of the published set.
    fn verifying_keys(&self) -> Arc<(Vec<String>, Vec<VerifyingKey>)> {
        let published = self.signer.published();
        let kids: Vec<String> = published.iter().map(|k| k.kid.clone()).collect();
        let cached = self.keys.load_full();
        if cached.0 == kids {
            return cached;
        }
        let keys = published
            .iter()
            .filter_map(|k| VerifyingKey::from_jwk(&k.jwk).ok())
            .collect();
        let fresh = Arc::new((kids, keys));
        self.keys.store(Arc::clone(&fresh));
        fresh
    }

    /// Checks a bearer token against `audiences` (the deployment's when `None`): signature,
    /// `typ`, `iss`, `aud`, times, and the revocation list. A jti store that cannot answer
    /// refuses the token (fail closed: a revoked token must not pass during an outage). The
    /// token only: its client is [`super::bearer::current`]'s, and the two together (counted
    /// once, by final result) are [`super::bearer::validate`].
    pub async fn verify(&self, token: &str, audiences: Option<&[String]>) -> Result<AccessClaims, Invalid> {
        let keys = self.verifying_keys();
        let expect = Expect {
            issuer: &self.settings.issuer,
            audiences: audiences.unwrap_or(&self.settings.audiences),
            now: unix_now(),
            skew: self.settings.skew_seconds,
        };
        let claims = jwt::verify_access_token(token, &keys.1, expect)?;
        match self.jti.contains(&claims.jti).await {
            Ok(false) => Ok(claims),
            Ok(true) => Err(Invalid::Revoked),
            Err(e) => {
                tracing::error!(error = %e, "jti store unavailable: bearer token refused");
                Err(Invalid::Revoked)
            }
        }
    }

    /// The audiences an introspected token may name: its own `aud` (the introspecting party
    /// may be a resource server of any audience), nothing for a token without one.
    pub fn any_audience(token: &str) -> Vec<String> {
        match jwt::Jws::parse(token)
            .ok()
            .and_then(|j| j.claims.get("aud").cloned())
        {
            Some(serde_json::Value::String(a)) => vec![a],
            _ => Vec::new(),
        }
    }

    /// RFC 7662: the answer for `checked`, the result of [`super::bearer::validate`] over
    /// [`Issuer::any_audience`]: active claims of a valid token of ours whose client is still
    /// current; anything else is exactly `{"active": false}`.
    pub fn introspection(checked: Result<AccessClaims, Invalid>) -> serde_json::Value {
        crate::telemetry::oauth::figures().introspected();
        match checked {
            Ok(c) => serde_json::json!({
                "active": true, "scope": c.scope, "client_id": c.client_id, "sub": c.sub,
                "aud": c.aud, "iss": c.iss, "exp": c.exp, "iat": c.iat, "jti": c.jti,
                "token_type": "Bearer",
            }),
            Err(_) => serde_json::json!({"active": false}),
        }
    }

    /// RFC 7009 for `client_id`: a valid token of that client goes on the denylist until it
    /// expires (its `jti` is returned); anything else (unknown, foreign, another client's) is
    /// ignored (`None`: 200 either way, §2.2). Only a jti store failure is an error.
    pub async fn revoke(&self, token: &str, client_id: &str) -> Result<Option<String>, OAuthError> {
        let keys = self.verifying_keys();
        let Ok(jws) = jwt::Jws::parse(token) else {
            return Ok(None);
        };
        let owned = jws.verify(&keys.1).is_ok()
            && jws.claim_str("iss") == Some(self.settings.issuer.as_str())
            && jws.claim_str("client_id") == Some(client_id);
        let (Some(jti), Some(exp)) = (
            jws.claim_str("jti"),
            jws.claims.get("exp").and_then(serde_json::Value::as_u64),
        ) else {
            return Ok(None);
        };
        // Recorded until exp + skew: verification accepts a token that long, so one revoked
        // within its skew must be recorded too.
        let until = exp.saturating_add(self.settings.skew_seconds);
        if !owned || until <= unix_now() || jti.len() > jwt::MAX_JTI_BYTES {
            return Ok(None);
        }
        self.jti.insert(jti, until).await.map_err(|e| {
            tracing::error!(error = %e, "jti store unavailable: revocation not recorded");
            OAuthError::Unavailable {
                retry_after: BACKEND_RETRY,
            }
        })?;
        crate::telemetry::oauth::figures().revoked();
        Ok(Some(jti.to_owned()))
    }

    /// The JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self.signer.published().into_iter().map(|k| k.jwk).collect();
        serde_json::json!({ "keys": keys })
    }

    /// RFC 8414 metadata (also served as `openid-configuration` for API Gateway's JWT
    /// authorizer, which reads `issuer` and `jwks_uri` from it). Only what we do: no
    /// `response_types_supported` (no authorization endpoint, so no response type; `["token"]`
    /// would claim the implicit grant; RFC 8414 §2 marks it REQUIRED but §3.2 says claims with
    /// zero elements MUST be omitted, which RFC errata 7793 resolves as "REQUIRED unless no grant
    /// type uses the authorization endpoint"), no ID-token or subject-type fields (we issue no
    /// ID token), and no `scopes_supported` (no deployment-wide list: scopes are per client).
    pub fn metadata(&self) -> serde_json::Value {
        let methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
        serde_json::json!({
            "issuer": self.settings.issuer,
            "token_endpoint": self.endpoint("/oauth/token"),
            "jwks_uri": self.endpoint("/.well-known/jwks.json"),
            "introspection_endpoint": self.endpoint("/oauth/introspect"),
            "revocation_endpoint": self.endpoint("/oauth/revoke"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": methods,
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "introspection_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
        })
    }
}
