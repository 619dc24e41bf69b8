//! The OAuth 2.0 client-credentials issuer of the standalone server and the Lambda proxy
//! (issue 14): signing keys, the `jti` stores, client authentication through the [`Gate`], token
//! issuance, and bearer-token acceptance. No HTTP here: `http::oauth` maps these to answers.
//!
//! # Layout
//! - `keyset`: the key set directory (PEM files and the `keys.json` schedule).
//! - `keyguard`: who may have written that directory, and one `keys` command at a time.
//! - `signer`: `LocalSigner`, the `TokenSigner` over the key set, publish-before-sign.
//! - `jti`: the memory and file `JtiStore`s (revoked tokens, used assertion ids).
//! - `form`: strict form bodies and the RFC 6749 §2.3.1 decoding.
//! - `error`: `OAuthError`, every refusal with its §5.2 code.
//! - `rate`: tokens per client per minute.
//! - `registry`: which entries of the store in service are OAuth clients, and how.
//! - `client_auth`: the three client-authentication methods.
//! - `issuer`: `Issuer`: issue, verify, introspect, revoke, JWKS, metadata.
//! - `token`: the three endpoints as functions of (headers, body, source).
//! - `bearer`: bearer tokens on the auth surfaces, as an `Attempt`.
//! - `trail`: the audit event of each token, introspection and revocation request.
//!
//! [`Gate`]: crate::decide::Gate

pub mod bearer;
pub mod client_auth;
pub mod error;
pub mod form;
pub mod issuer;
pub mod jti;
pub mod keyguard;
pub mod keyset;
pub mod rate;
pub mod registry;
pub mod signer;
pub mod token;
pub mod trail;

pub use error::OAuthError;
pub use issuer::{Issuer, TokenResponse};

/// How often the key set directory is re-read (a key added by `keys rotate` is published
/// within this; the publish lead is an hour by default, so 30 s costs nothing).
pub const KEY_RELOAD: std::time::Duration = std::time::Duration::from_secs(30);

/// The issuer and its key-reload task (`None` when there is nothing to reload).
pub type Standalone = (std::sync::Arc<Issuer>, Option<tokio::task::JoinHandle<()>>);

/// The standalone issuer from `[oauth]` (`None` when it is off): the local key set (with its
/// reload task) and the configured jti store. Needs a Tokio runtime.
pub fn from_settings(s: &crate::config::OAuthSettings, ports: Ports) -> anyhow::Result<Option<Standalone>> {
    use std::sync::Arc;
    if !s.enabled() {
        return Ok(None);
    }
    let retention = s.token_lifetime_seconds + s.skew_seconds;
    let (signer, reload): (Arc<dyn authserver_core::oauth::TokenSigner>, _) = match ports.signer {
        Some(signer) => (signer, None),
        None => {
            let local = Arc::new(signer::LocalSigner::open(s.keys_dir.clone(), retention)?);
            let reload = spawn_key_reload(Arc::clone(&local));
            (local, Some(reload))
        }
    };
    let jti: Arc<dyn authserver_core::oauth::JtiStore> = match (ports.jti, &s.jti_store) {
        (Some(jti), _) => jti,
        (None, crate::config::JtiBackend::Memory) => Arc::new(jti::MemoryJtiStore::default()),
        (None, crate::config::JtiBackend::File) => Arc::new(
            jti::FileJtiStore::open(&s.jti_file)
                .map_err(|e| anyhow::anyhow!("oauth.jti_file {}: {e}", s.jti_file.display()))?,
        ),
    };
    Ok(Some((Arc::new(Issuer::new(s.clone(), signer, jti)), reload)))
}

/// Adapters built elsewhere (AWS: `[oauth_aws]`) that replace the local key set or jti store.
#[derive(Default)]
pub struct Ports {
    /// Signs instead of the local key set.
    pub signer: Option<std::sync::Arc<dyn authserver_core::oauth::TokenSigner>>,
    /// Remembers jtis instead of `oauth.jti_store`.
    pub jti: Option<std::sync::Arc<dyn authserver_core::oauth::JtiStore>>,
}

/// Re-reads the local key set every [`KEY_RELOAD`] (a failed read keeps the keys in service
/// and is logged once per attempt; a key file that cannot be loaded is logged as an error at
/// every attempt while the rest of the set is applied; no key material in the messages).
pub fn spawn_key_reload(signer: std::sync::Arc<signer::LocalSigner>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD);
        tick.tick().await;
        loop {
            tick.tick().await;
            match signer.reload() {
                Ok(unreadable) => {
                    for (kid, e) in unreadable {
                        tracing::error!(
                            kid = %kid, error = %e,
                            "signing key listed in keys.json cannot be loaded; left out of service \
                             (kept only if it was loaded before)"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "signing key set not reloaded; the keys in service stay")
                }
            }
        }
    })
}
