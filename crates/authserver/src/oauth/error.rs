//! [`OAuthError`]: every way an OAuth endpoint refuses, with its RFC 6749 §5.2 code. The
//! HTTP layer picks status and headers from it (one `match`); no variant carries client input.

use std::time::Duration;

/// A refusal of the token, introspection or revocation endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Missing or repeated parameter, a body that is no form, two client-authentication
    /// methods, an unsupported assertion type (400).
    #[error("invalid_request")]
    InvalidRequest(&'static str),
    /// Client authentication failed, whatever the cause (401; `challenge`: the client used
    /// Basic or nothing, so the answer carries `WWW-Authenticate: Basic`).
    #[error("invalid_client")]
    InvalidClient {
        /// Answer with a Basic challenge.
        challenge: bool,
    },
    /// The credentials are right but the entry is no OAuth client (400).
    #[error("unauthorized_client")]
    UnauthorizedClient,
    /// `grant_type` other than `client_credentials` (400).
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// A scope the client may not have, or no scope at all (400).
    #[error("invalid_scope")]
    InvalidScope,
    /// A `resource` (RFC 8707) the client may not have a token for (400).
    #[error("invalid_target")]
    InvalidTarget,
    /// Regulation or the per-client token rate (429 with Retry-After).
    #[error("rate_limited")]
    TooMany {
        /// Retry-After.
        retry_after: Duration,
    },
    /// The store, the limiter, the signer or the jti store cannot answer now (503).
    #[error("temporarily_unavailable")]
    Unavailable {
        /// Retry-After.
        retry_after: Duration,
    },
}

impl OAuthError {
    /// The `error` value of the JSON body (RFC 6749 §5.2; `temporarily_unavailable` from §4.1.2.1
    /// for 503, `slow_down`-like throttling reported as `invalid_request` is avoided: 429 says it).
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::InvalidTarget => "invalid_target",
            OAuthError::TooMany { .. } => "rate_limited",
            OAuthError::Unavailable { .. } => "temporarily_unavailable",
        }
    }
}
