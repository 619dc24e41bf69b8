//! [`SecretKeySigner`]: private keys kept in one Secrets Manager secret, loaded at init and
//! re-read by [`SecretKeySigner::refresh`]; tokens are signed in process with `ring`.
//!
//! The secret's `AWSCURRENT` value is a key set:
//!
//! ```json
//! {"keys": [{"activates_at": 0, "private_key_pem": "-----BEGIN PRIVATE KEY-----\n..."},
//!           {"activates_at": 1767225600, "private_key_pem": "..."}]}
//! ```
//!
//! PKCS#8 (`PRIVATE KEY`: RSA ≥ 2048 bits or P-256) or PKCS#1 (`RSA PRIVATE KEY`). Activation
//! times make the schedule ([`super::schedule`]): rotation is a new `PutSecretValue` with one
//! more entry activating later than every instance's next refresh plus the JWKS cache TTL.
//!
//! Secrecy: the secret's bytes and the decoded DER are zeroized after parsing (the JSON parser's
//! own buffers and ring's key structures are not: ring does not zeroize). `Debug` shows `kid`s
//! only, and no error quotes the secret: a PEM problem names the entry's index and the PEM tag.

use super::der::PublicKey;
use super::from_secret::{SecretSchedule, SecretSource};
use super::schedule::{Schedule, Scheduled};
use super::{LoadError, WallClock};
use authserver_core::oauth::{Alg, PublicJwk, SignError, TokenSigner};
use authserver_core::regulation::BoxFuture;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use zeroize::{Zeroize, Zeroizing};

/// A private key ring signs with.
pub enum PrivateKey {
    /// RS256.
    Rsa(RsaKeyPair),
    /// ES256 (ring's fixed-width signing: `r || s`).
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(REDACTED)")
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySet {
    keys: Vec<Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    activates_at: u64,
    private_key_pem: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.private_key_pem.zeroize();
    }
}

/// Parses one PEM private key into a ring key pair and its public half.
pub fn parse_private_key(pem_text: &str) -> Result<(PrivateKey, PublicKey), String> {
    let pem = pem::parse(pem_text).map_err(|_| "not a PEM block".to_owned())?;
    let tag = pem.tag().to_owned();
    let der = Zeroizing::new(pem.into_contents());
    let rng = SystemRandom::new();
    let key = match tag.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der).map(PrivateKey::Rsa).or_else(|_| {
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                .map(PrivateKey::Ec)
        }),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der).map(PrivateKey::Rsa),
        other => {
            return Err(format!(
                "PEM block `{other}` is not a PKCS#8 or PKCS#1 private key \
                 (convert with `openssl pkcs8 -topk8 -nocrypt`)"
            ));
        }
    }
    .map_err(|e| format!("key refused: {e}"))?;
    let public = match &key {
        PrivateKey::Rsa(k) => PublicKey::from_rsa_public_key(k.public().as_ref()),
        PrivateKey::Ec(k) => PublicKey::from_p256_point(k.public_key().as_ref()),
    }
    .map_err(|e| e.to_string())?;
    Ok((key, public))
}

/// Builds the schedule from the secret's value (zeroized by the caller).
pub fn parse_key_set(value: &[u8], retain_for: u64) -> Result<Schedule<PrivateKey>, LoadError> {
    let set: KeySet = serde_json::from_slice(value).map_err(|e| {
        // Only the position: serde_json's message quotes the offending value ("invalid type:
        // string \"MIIE...\""), which here may be key material.
        LoadError(format!(
            "the key set is not JSON of the documented shape ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, entry) in set.keys.iter().enumerate() {
        let (key, public) = parse_private_key(&entry.private_key_pem)
            .map_err(|why| LoadError(format!("key set entry {i}: {why}")))?;
        keys.push(Scheduled {
            public: public.to_jwk(),
            activates_at: entry.activates_at,
            key,
        });
    }
    Schedule::new(keys, retain_for).map_err(|e| LoadError(format!("key set: {e}")))
}

/// Signs with private keys from a Secrets Manager key set.
pub struct SecretKeySigner {
    keys: SecretSchedule<PrivateKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self.published().into_iter().map(|k| k.kid).collect();
        f.debug_struct("SecretKeySigner")
            .field("secret_id", &self.keys.secret_id())
            .field("published", &kids)
            .finish()
    }
}

impl SecretKeySigner {
    /// Reads the key set at init; fails when it is unreadable, empty or has no active key.
    pub async fn load(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        retain_for: u64,
        now: WallClock,
    ) -> Result<Self, LoadError> {
        let keys = SecretSchedule::load(SecretSource {
            client,
            secret_id: secret_id.into(),
            retain_for,
            now,
            parse: parse_key_set,
            what: "signing key secret",
        })
        .await?;
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// Re-reads the key set (a rotation added a key); on failure the loaded set stays.
    pub async fn refresh(&self) -> Result<(), LoadError> {
        self.keys.refresh().await
    }
}

fn sign_with(key: &PrivateKey, rng: &SystemRandom, input: &[u8]) -> Result<Vec<u8>, SignError> {
    let failed = |_| SignError("the signing primitive failed".into());
    match key {
        PrivateKey::Rsa(k) => {
            let mut signature = vec![0; k.public().modulus_len()];
            k.sign(&signature::RSA_PKCS1_SHA256, rng, input, &mut signature)
                .map_err(failed)?;
            Ok(signature)
        }
        PrivateKey::Ec(k) => Ok(k.sign(rng, input).map_err(failed)?.as_ref().to_vec()),
    }
}

impl TokenSigner for SecretKeySigner {
    fn active(&self) -> (String, Alg) {
        self.keys.active()
    }

    fn active_since(&self) -> Option<u64> {
        self.keys.active_since()
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        // In place: an RS256 signature takes about a millisecond (docs/deployment.md, "OAuth on
        // AWS"), less than handing it to the blocking pool would add under load.
        let result = (|| {
            let schedule = self.keys.current();
            let key = schedule.signing_key(signing_input, self.keys.now())?;
            sign_with(&key.key, &self.rng, signing_input)
        })();
        Box::pin(std::future::ready(result))
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.keys.published()
    }
}
