//! [`KmsSigner`]: tokens signed by KMS asymmetric keys; the private key never leaves KMS.
//!
//! Contract:
//! - Load (`GetPublicKey` per key): each key must have `KeyUsage` `SIGN_VERIFY` and `KeySpec`
//!   `RSA_2048`/`RSA_3072`/`RSA_4096` (RS256) or `ECC_NIST_P256` (ES256); anything else fails
//!   the load, naming the key's position in the list (never the key policy or the ARN's account).
//! - Sign: `Sign` with `MessageType=RAW` and `RSASSA_PKCS1_V1_5_SHA_256` or `ECDSA_SHA_256`;
//!   KMS hashes the message itself. A RAW message is limited to 4096 bytes (KMS API reference,
//!   `Sign`): a longer signing input is refused before any call, as a [`SignError`]. ECDSA
//!   signatures come back DER-encoded and are converted to the 64-byte JWS form.
//! - Throttling and 5xx are retried through [`crate::retry`] (the SDK's own retries are off).
//!   Errors carry the operation and AWS error code only.
//! - Rotation: the key list with activation times ([`super::schedule`]), changed by a deploy.

use super::der::{PublicKey, ecdsa_der_to_jws};
use super::schedule::{Schedule, Scheduled};
use super::{LoadError, WallClock};
use crate::retry::{RetryPolicy, classify, with_retries};
use authserver_core::oauth::{Alg, PublicJwk, SignError, TokenSigner};
use authserver_core::regulation::BoxFuture;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};

/// KMS `Sign` accepts at most this many bytes with `MessageType=RAW`.
pub const MAX_RAW_MESSAGE: usize = 4096;

/// One configured KMS key: its ARN (or id or alias) and when it starts signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// Key ARN, key id or alias ARN.
    pub key_id: String,
    /// Unix seconds from which it signs (0: from the start).
    pub activates_at: u64,
}

/// Signs with KMS keys on a schedule.
pub struct KmsSigner {
    client: Client,
    schedule: Schedule<String>,
    now: WallClock,
    retry: RetryPolicy,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("schedule", &self.schedule)
            .finish()
    }
}

impl KmsSigner {
    /// Reads every key's public half; fails when a key cannot sign JWTs.
    pub async fn load(
        client: Client,
        keys: &[KmsKey],
        retain_for: u64,
        now: WallClock,
    ) -> Result<Self, LoadError> {
        let retry = RetryPolicy::default();
        let mut scheduled = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let public = public_key(&client, &retry, &k.key_id)
                .await
                .map_err(|why| LoadError(format!("oauth_aws.kms_keys[{i}]: {why}")))?;
            scheduled.push(Scheduled {
                public: public.to_jwk(),
                activates_at: k.activates_at,
                key: k.key_id.clone(),
            });
        }
        let schedule = Schedule::new(scheduled, retain_for)
            .map_err(|e| LoadError(format!("oauth_aws.kms_keys: {e}")))?;
        super::check_schedule(&schedule, now())?;
        Ok(Self {
            client,
            schedule,
            now,
            retry,
        })
    }

    async fn sign_with(&self, key_id: &str, alg: Alg, input: &[u8]) -> Result<Vec<u8>, SignError> {
        if input.len() > MAX_RAW_MESSAGE {
            return Err(SignError(format!(
                "signing input of {} bytes exceeds KMS's {MAX_RAW_MESSAGE}-byte RAW limit",
                input.len()
            )));
        }
        let algorithm = match alg {
            Alg::Rs256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            Alg::Es256 => SigningAlgorithmSpec::EcdsaSha256,
        };
        let out = with_retries(&self.retry, || async {
            self.client
                .sign()
                .key_id(key_id)
                .message(Blob::new(input))
                .message_type(MessageType::Raw)
                .signing_algorithm(algorithm.clone())
                .send()
                .await
                .map_err(|e| classify("Sign", &e))
        })
        .await
        .map_err(|e| SignError(e.to_string()))?;
        let signature = out
            .signature()
            .ok_or_else(|| SignError("KMS Sign returned no signature".into()))?
            .as_ref();
        match alg {
            Alg::Rs256 => Ok(signature.to_vec()),
            Alg::Es256 => ecdsa_der_to_jws(signature).map_err(|e| SignError(e.to_string())),
        }
    }
}

/// `GetPublicKey`, checked for a JWT signing key.
async fn public_key(client: &Client, retry: &RetryPolicy, key_id: &str) -> Result<PublicKey, String> {
    let out = with_retries(retry, || async {
        client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify("GetPublicKey", &e))
    })
    .await
    .map_err(|e| e.to_string())?;
    if out.key_usage() != Some(&KeyUsageType::SignVerify) {
        return Err("the key's KeyUsage is not SIGN_VERIFY".into());
    }
    // AWS answers both `KeySpec` and the deprecated `CustomerMasterKeySpec` (same values);
    // moto 5.2 answers only the latter, so either is read.
    #[allow(deprecated)]
    let spec = out
        .key_spec()
        .map(KeySpec::as_str)
        .or_else(|| out.customer_master_key_spec().map(|s| s.as_str()));
    if !matches!(spec, Some("RSA_2048" | "RSA_3072" | "RSA_4096" | "ECC_NIST_P256")) {
        return Err("the key's KeySpec is not RSA_2048/3072/4096 or ECC_NIST_P256".into());
    }
    let der = out.public_key().ok_or("GetPublicKey returned no key")?;
    PublicKey::from_spki(der.as_ref()).map_err(|e| e.to_string())
}

impl TokenSigner for KmsSigner {
    fn active(&self) -> (String, Alg) {
        // `load` refused a schedule without an active key, and keys only ever activate as
        // time passes, so the first key stands in only if the wall clock went backwards.
        let key = self
            .schedule
            .active((self.now)())
            .unwrap_or_else(|| self.schedule.first());
        (key.public.kid.clone(), key.public.alg)
    }

    fn active_since(&self) -> Option<u64> {
        self.schedule.active((self.now)()).map(|k| k.activates_at)
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(async move {
            let key = self.schedule.signing_key(signing_input, (self.now)())?;
            self.sign_with(&key.key, key.public.alg, signing_input).await
        })
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.schedule.published((self.now)())
    }
}
