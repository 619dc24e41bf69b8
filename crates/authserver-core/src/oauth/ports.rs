//! Ports of the OAuth 2.0 issuer: who signs tokens and where token ids (`jti`) are remembered.
//! Adapters: local PEM keys and an in-memory / file jti store (crates/authserver), KMS or a
//! Secrets Manager key and a DynamoDB jti store (crates/authserver-aws).

use crate::regulation::{BackendError, BoxFuture};

/// A JWS algorithm we sign and accept. Pinned: `none` and HMAC never exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256 (signature: 64 bytes, r || s, as JWS requires).
    Es256,
}

/// A public verification key as published in JWKS (RFC 7517): `kty`, `kid`, `alg`, `use: sig`
/// and the key's public members (`n`/`e` or `crv`/`x`/`y`), as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: Alg,
    /// The full JWK JSON object (public members only).
    pub jwk: serde_json::Value,
}

/// Why a signature could not be made (no secret material in the message).
#[derive(Debug, thiserror::Error)]
#[error("token signing failed: {0}")]
pub struct SignError(pub String);

/// Signs access tokens.
pub trait TokenSigner: Send + Sync + std::fmt::Debug {
    /// The key that signs now: its `kid` and algorithm (goes into the JWS header).
    fn active(&self) -> (String, Alg);
    /// Signs `signing_input` (ASCII `base64url(header).base64url(claims)`) with the active key;
    /// returns the raw JWS signature bytes (for ES256 the 64-byte r || s form, not DER).
    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>>;
    /// Every key to publish in JWKS: the active one, the next one (published before it signs)
    /// and retired ones until their last token expired.
    fn published(&self) -> Vec<PublicJwk>;
    /// When the active key started signing (unix seconds), for the key-age metric; `None` when
    /// the signer does not say.
    fn active_since(&self) -> Option<u64> {
        None
    }
}

/// Remembers token ids until they expire: revoked access tokens, and `private_key_jwt`
/// assertion ids already used (replay).
pub trait JtiStore: Send + Sync + std::fmt::Debug {
    /// Records `jti` until `exp` (unix seconds). Returns true if it was not recorded before
    /// (an atomic insert-if-absent: two concurrent inserts of one jti, exactly one gets true).
    fn insert<'a>(&'a self, jti: &'a str, exp: u64) -> BoxFuture<'a, Result<bool, BackendError>>;
    /// Whether `jti` is recorded and not yet past its `exp`.
    fn contains<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;
}
