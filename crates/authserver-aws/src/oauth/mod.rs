//! The OAuth issuer's ports on AWS: who signs tokens ([`TokenSigner`]) and where token ids are
//! remembered ([`JtiStore`]).
//!
//! Behaviour contract:
//! - Signing keys are asymmetric (RS256 or ES256), chosen by what the key is, never by a name.
//!   Two adapters: [`KmsSigner`] (the key never leaves KMS, one `Sign` call per token) and
//!   [`SecretKeySigner`] (a key set in Secrets Manager, read at init and on refresh, signing in
//!   process). The default on AWS is the Secrets Manager key set: docs/deployment.md "OAuth on
//!   AWS" has the measured latency, the quotas and the prices behind that choice.
//! - Both follow one [`schedule::Schedule`]: a key is published before it signs, and a retired
//!   key stays published until the last token it signed has expired (`retain_for`).
//! - [`DynamoDbJtiStore`]: revoked and used token ids, atomic insert-if-absent, TTL = `exp`.
//! - No key material, token or `jti` reaches a log line or an error message.
//!
//! # Layout
//! - [`der`]: SPKI / RSAPublicKey / ECDSA-Sig-Value parsing and the published JWK (`kid` =
//!   RFC 7638 thumbprint).
//! - [`schedule`]: activation times → active, next and retired keys.
//! - [`kms`]: signing with KMS keys, [`KmsSigner`].
//! - [`secret_key`]: signing with a key set from Secrets Manager, [`SecretKeySigner`].
//! - [`public_key`]: the verify-only public half of that key set (the Lambda authorizer's),
//!   [`PublicKeySet`].
//! - [`jti`]: the token-id store in DynamoDB, [`DynamoDbJtiStore`].

pub mod der;
pub mod from_secret;
pub mod jti;
pub mod kms;
pub mod public_key;
pub mod schedule;
pub mod secret_key;

pub use authserver_core::oauth::{JtiStore, TokenSigner};
pub use jti::DynamoDbJtiStore;
pub use kms::{KmsKey, KmsSigner};
pub use public_key::PublicKeySet;
pub use secret_key::SecretKeySigner;

use aws_config::SdkConfig;
use std::sync::Arc;
use std::time::Duration;

/// Wall-clock unix seconds (a parameter so tests can move time across activations).
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real wall clock.
pub fn system_clock() -> WallClock {
    Arc::new(authserver_core::clock::now_secs)
}

/// Why a signer could not be built (names the setting or the key's position; no key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OAuth signing keys: {0}")]
pub struct LoadError(pub String);

/// Refuses a schedule with no active key at `now`, and warns about keys published too late.
fn check_schedule<K>(schedule: &schedule::Schedule<K>, now: u64) -> Result<(), LoadError> {
    if schedule.active(now).is_none() {
        return Err(LoadError(
            "no key is active yet (every activates_at is in the future)".into(),
        ));
    }
    for (kid, in_seconds) in schedule.late_keys(now) {
        tracing::warn!(
            kid,
            in_seconds,
            lead_seconds = schedule::MIN_PUBLISH_LEAD,
            "signing key activates before JWKS caches can have seen it"
        );
    }
    Ok(())
}

/// Which signer the AWS deployment uses (`oauth_aws.signer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerChoice {
    /// The standalone issuer's local PEM key set (built by the `authserver` crate, not here).
    Local,
    /// KMS asymmetric keys on a schedule.
    Kms(Vec<KmsKey>),
    /// A key set in one Secrets Manager secret.
    SecretsManager {
        /// The secret's ARN or name.
        secret_id: String,
        /// How often the key set is re-read (a rotation added a key).
        refresh: Duration,
    },
    /// Verify-only: the public half of a Secrets Manager key set, in its own secret (the Lambda
    /// authorizer, which must not read the private keys). Signing always fails.
    SecretsManagerPublic {
        /// The public key set secret's ARN or name.
        secret_id: String,
        /// How often it is re-read.
        refresh: Duration,
    },
}

/// Builds the signer `choice` names (`None` for [`SignerChoice::Local`]). For Secrets Manager
/// it also starts the refresh task on the current tokio runtime; a failed refresh keeps the
/// loaded key set and logs the reason.
pub async fn build_signer(
    sdk: &SdkConfig,
    choice: &SignerChoice,
    retain_for: Duration,
) -> Result<Option<Arc<dyn TokenSigner>>, LoadError> {
    let retain = retain_for.as_secs();
    match choice {
        SignerChoice::Local => Ok(None),
        SignerChoice::Kms(keys) => {
            let client = aws_sdk_kms::Client::new(sdk);
            let signer = KmsSigner::load(client, keys, retain, system_clock()).await?;
            Ok(Some(Arc::new(signer)))
        }
        SignerChoice::SecretsManager { secret_id, refresh } => {
            let client = crate::secrets_client(sdk);
            let signer = Arc::new(SecretKeySigner::load(client, secret_id, retain, system_clock()).await?);
            spawn_refresh(Arc::downgrade(&signer), *refresh);
            Ok(Some(signer))
        }
        SignerChoice::SecretsManagerPublic { secret_id, refresh } => {
            let client = crate::secrets_client(sdk);
            let keys = Arc::new(PublicKeySet::load(client, secret_id, retain, system_clock()).await?);
            spawn_refresh(Arc::downgrade(&keys), *refresh);
            Ok(Some(keys))
        }
    }
}

/// A key source re-read from its secret; on failure the loaded keys stay.
pub trait Refresh: Send + Sync {
    /// Re-reads the keys.
    fn refresh(&self) -> authserver_core::regulation::BoxFuture<'_, Result<(), LoadError>>;
}

impl Refresh for SecretKeySigner {
    fn refresh(&self) -> authserver_core::regulation::BoxFuture<'_, Result<(), LoadError>> {
        Box::pin(SecretKeySigner::refresh(self))
    }
}

/// Re-reads the key set every `every` until the signer is dropped.
fn spawn_refresh<S: Refresh + 'static>(signer: std::sync::Weak<S>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await; // the first tick is immediate: `load` just read the set
        loop {
            tick.tick().await;
            let Some(signer) = signer.upgrade() else { return };
            if let Err(e) = signer.refresh().await {
                tracing::warn!(error = %e, "signing key set refresh failed; keeping the loaded set");
            }
        }
    });
}

/// The DynamoDB jti store over `table`.
pub fn build_jti_store(sdk: &SdkConfig, table: &str) -> Arc<dyn JtiStore> {
    Arc::new(DynamoDbJtiStore::new(
        crate::dynamodb_client(sdk),
        table,
        system_clock(),
    ))
}
