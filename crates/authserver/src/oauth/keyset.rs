//! The standalone signing key set on disk: a directory with one PKCS#8 PEM file per key
//! (`<kid>.pem`, mode 0600) and `keys.json`, the schedule: when each key starts signing.
//!
//! Why a schedule and not "the newest key signs": a key must be in every consumer's cached JWKS
//! before a token it signed reaches them (API Gateway caches JWKS up to an hour), so
//! `keys rotate` writes a key that starts signing `publish_lead_seconds` later, and the server
//! publishes it from the moment it reads it. A key stops signing when the next one starts and
//! stays published until its last token expired (`retired + lifetime + skew`).

use authserver_core::oauth::Alg;
use authserver_core::oauth::jwk::{ec_jwk, rsa_jwk};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The schedule file in a key set directory.
pub const MANIFEST: &str = "keys.json";

/// One key of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scheduled {
    /// Key id (also the PEM file's stem).
    pub kid: String,
    /// When it was written (unix seconds).
    pub created: u64,
    /// When it starts signing (unix seconds); published from when the server reads it.
    pub signs_from: u64,
}

/// A private signing key.
pub enum PrivateKey {
    /// P-256.
    Ec(EcdsaKeyPair),
    /// RSA, 2048 bits or more.
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrivateKey::Ec(_) => "PrivateKey(ES256, REDACTED)",
            PrivateKey::Rsa(_) => "PrivateKey(RS256, REDACTED)",
        })
    }
}

/// A key of the set, loaded.
#[derive(Debug)]
pub struct LoadedKey {
    /// Its schedule entry.
    pub at: Scheduled,
    /// Its algorithm.
    pub alg: Alg,
    /// The private key.
    pub key: PrivateKey,
    /// Its public JWK.
    pub jwk: serde_json::Value,
}

pub use super::keyguard::KeySetError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeySetError + '_ {
    move |source| KeySetError::Io {
        path: path.to_owned(),
        source,
    }
}

fn check_kid(kid: &str) -> Result<(), KeySetError> {
    let ok = !kid.is_empty()
        && kid.len() <= 64
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KeySetError::Kid(kid.to_owned()))
    }
}

/// Reads the schedule (empty when the directory has none yet).
pub fn read_manifest(dir: &Path) -> Result<Vec<Scheduled>, KeySetError> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let list: Vec<Scheduled> =
        serde_json::from_str(&text).map_err(|e| KeySetError::Manifest(path.clone(), e.to_string()))?;
    for s in &list {
        check_kid(&s.kid)?;
    }
    Ok(list)
}

/// Writes the schedule atomically: a temp file of its own (random name, `O_EXCL`: two writers
/// never share one, a planted name is never followed), then a rename. Callers that may run
/// beside another writer hold [`keyguard::lock`](super::keyguard::lock) from their read.
pub fn write_manifest(dir: &Path, list: &[Scheduled]) -> Result<(), KeySetError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(MANIFEST);
    let tmp = dir.join(format!(".keys.json.{:016x}.tmp", rand::random::<u64>()));
    let text =
        serde_json::to_string_pretty(list).map_err(|e| KeySetError::Manifest(path.clone(), e.to_string()))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all((text + "\n").as_bytes()));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        // Best effort: a temp file left behind is harmless (never read), only untidy.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&path)(e));
    }
    Ok(())
}

/// Reads one private key: PKCS#8 (ES256 or RSA) or PKCS#1 (RSA, `openssl genrsa`).
pub fn read_key(path: &Path) -> Result<(Alg, PrivateKey), KeySetError> {
    let pem = std::fs::read(path).map_err(io(path))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| KeySetError::Key(path.to_owned()))?;
    let rng = SystemRandom::new();
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(p8) => EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            p8.secret_pkcs8_der(),
            &rng,
        )
        .map(|k| (Alg::Es256, PrivateKey::Ec(k)))
        .or_else(|_| RsaKeyPair::from_pkcs8(p8.secret_pkcs8_der()).map(|k| (Alg::Rs256, PrivateKey::Rsa(k)))),
        PrivateKeyDer::Pkcs1(p1) => {
            RsaKeyPair::from_der(p1.secret_pkcs1_der()).map(|k| (Alg::Rs256, PrivateKey::Rsa(k)))
        }
        _ => return Err(KeySetError::Key(path.to_owned())),
    };
    parsed.map_err(|_| KeySetError::Key(path.to_owned()))
}

/// The public JWK of a private key.
pub fn public_jwk(kid: &str, key: &PrivateKey) -> Option<serde_json::Value> {
    match key {
        PrivateKey::Ec(k) => ec_jwk(kid, k.public_key().as_ref()),
        PrivateKey::Rsa(k) => {
            let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
            Some(rsa_jwk(kid, &c.n, &c.e))
        }
    }
}

/// A key set as read: the whole schedule, the keys that could be loaded, and why the others
/// could not.
#[derive(Debug)]
pub struct Loaded {
    /// Every key `keys.json` lists, in its order (the order breaks `signs_from` ties).
    pub schedule: Vec<Scheduled>,
    /// The listed keys whose PEM was read.
    pub keys: Vec<LoadedKey>,
    /// One error per listed key that could not be loaded (paths only).
    pub unreadable: Vec<(String, KeySetError)>,
}

/// Loads what can be loaded of the schedule. Fails as a whole only when the directory is
/// unsafe ([`keyguard::check_dir`](super::keyguard::check_dir)) or `keys.json` cannot be read:
/// then nothing says which keys are still listed. A key file that is unreadable, damaged or
/// unsafe is reported in [`Loaded::unreadable`] and left out.
pub fn load(dir: &Path) -> Result<Loaded, KeySetError> {
    super::keyguard::check_dir(dir)?;
    let schedule = read_manifest(dir)?;
    let mut keys = Vec::with_capacity(schedule.len());
    let mut unreadable = Vec::new();
    for at in &schedule {
        let path = dir.join(format!("{}.pem", at.kid));
        let loaded = super::keyguard::check_key_file(&path)
            .and_then(|()| read_key(&path))
            .and_then(|(alg, key)| {
                let jwk = public_jwk(&at.kid, &key).ok_or_else(|| KeySetError::Key(path.clone()))?;
                Ok(LoadedKey {
                    at: at.clone(),
                    alg,
                    key,
                    jwk,
                })
            });
        match loaded {
            Ok(k) => keys.push(k),
            Err(e) => unreadable.push((at.kid.clone(), e)),
        }
    }
    Ok(Loaded {
        schedule,
        keys,
        unreadable,
    })
}

/// A new kid: the algorithm, the creation time and 32 random bits (readable in `keys list`,
/// unique without coordination).
pub fn new_kid(alg: Alg, now: u64) -> String {
    format!(
        "{}-{now}-{:08x}",
        alg.as_str().to_ascii_lowercase(),
        rand::random::<u32>()
    )
}

/// Writes `pem` as `<kid>.pem` (0600, never overwriting) and schedules it to sign from
/// `signs_from`, after the keys already listed (the position breaks a `signs_from` tie: the
/// later key signs). Returns the schedule entry. The `keys` commands hold
/// [`keyguard::lock`](super::keyguard::lock) around it.
pub fn add(dir: &Path, kid: &str, pem: &[u8], now: u64, signs_from: u64) -> Result<Scheduled, KeySetError> {
    check_kid(kid)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("{kid}.pem"));
    write_private(&path, pem)?;
    read_key(&path)?;
    let mut list = read_manifest(dir)?;
    let entry = Scheduled {
        kid: kid.to_owned(),
        created: now,
        signs_from,
    };
    list.push(entry.clone());
    write_manifest(dir, &list)?;
    Ok(entry)
}

fn write_private(path: &Path, pem: &[u8]) -> Result<(), KeySetError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(pem).map_err(io(path))
}

/// A new ES256 private key as PKCS#8 PEM (ring's generator over the OS CSPRNG).
pub fn generate_es256_pem() -> Result<Vec<u8>, KeySetError> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| KeySetError::Generate)?;
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    // The DER copy is zeroized with the document; the PEM is the caller's to write and drop.
    Ok(pem.into_bytes())
}

/// Signs `message` with `key` (ES256: the fixed 64-byte r || s form JWS needs).
pub fn sign(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    match key {
        PrivateKey::Ec(k) => Ok(k.sign(&rng, message)?.as_ref().to_vec()),
        PrivateKey::Rsa(k) => {
            let mut sig = vec![0u8; k.public().modulus_len()];
            k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)?;
            Ok(sig)
        }
    }
}
