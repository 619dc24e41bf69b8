//! [`PublicKeySet`]: the verify-only key source of the Lambda authorizer with the
//! `secrets_manager` signer. It validates bearer tokens and never signs, so it must not be able
//! to read the key set secret (private keys: whoever reads it can mint any token offline).
//! Instead it reads a second secret holding only the public half of the same schedule:
//!
//! ```json
//! {"keys": [{"activates_at": 0, "jwk": {"kty": "RSA", "n": "...", "e": "AQAB", "kid": "...", "alg": "RS256", "use": "sig"}}]}
//! ```
//!
//! [`public_key_set`] makes that value from the private key set (`authserver keys public-set`
//! runs it; the operator puts both secrets). The loader refuses any private JWK member (`d`,
//! `p`, `q`, ...: `deny_unknown_fields`) and a `private_key_pem`, so a mistaken copy of the
//! private set into the public secret fails the load instead of spreading the keys. The `kid`
//! is recomputed from the key (RFC 7638) and must match a stated one.
//!
//! [`TokenSigner::sign`] always fails: the authorizer has no `/oauth/token` route, and a
//! signer that cannot sign makes that a 500, never a token.

use super::der::PublicKey;
use super::from_secret::{SecretSchedule, SecretSource};
use super::schedule::{Schedule, Scheduled};
use super::{LoadError, WallClock};
use authserver_core::oauth::{Alg, PublicJwk, SignError, TokenSigner};
use authserver_core::regulation::BoxFuture;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicSet {
    keys: Vec<PublicEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicEntry {
    activates_at: u64,
    jwk: Jwk,
}

/// The public members only: any private member is an unknown field.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Jwk {
    kty: String,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    _use: Option<String>,
}

fn b64(member: Option<&String>, name: &str) -> Result<Vec<u8>, String> {
    let text = member.ok_or_else(|| format!("no `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn parse_jwk(jwk: &Jwk) -> Result<PublicKey, String> {
    let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", None) => {
            let n = b64(jwk.n.as_ref(), "n")?;
            let e = b64(jwk.e.as_ref(), "e")?;
            // Through the DER parser's own checks (minimum size, leading zeros).
            let der = rsa_public_key_der(&n, &e);
            PublicKey::from_rsa_public_key(&der).map_err(|e| e.to_string())?
        }
        ("EC", Some("P-256")) => {
            let point = [vec![4], b64(jwk.x.as_ref(), "x")?, b64(jwk.y.as_ref(), "y")?].concat();
            PublicKey::from_p256_point(&point).map_err(|e| e.to_string())?
        }
        _ => return Err("neither an RSA nor a P-256 JWK".into()),
    };
    let public = key.to_jwk();
    if jwk.kid.as_ref().is_some_and(|kid| *kid != public.kid) {
        return Err("`kid` is not the key's RFC 7638 thumbprint".into());
    }
    if jwk
        .alg
        .as_deref()
        .is_some_and(|alg| alg != super::der::alg_name(public.alg))
    {
        return Err("`alg` does not fit the key".into());
    }
    Ok(key)
}

/// A DER RSAPublicKey of big-endian `n` and `e`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let len = content.len();
        let mut out = vec![tag];
        if len < 0x80 {
            out.push(len as u8); // < 0x80: fits
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8); // at most 8 bytes in a usize
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let padded = if v.first().is_some_and(|b| b & 0x80 != 0) {
            [&[0u8][..], &v].concat()
        } else {
            v
        };
        tlv(0x02, &padded)
    };
    tlv(0x30, &[int(n), int(e)].concat())
}

/// Parses a public key set value into a schedule of public keys.
pub fn parse_public_set(value: &[u8], retain_for: u64) -> Result<Schedule<()>, LoadError> {
    let set: PublicSet = serde_json::from_slice(value).map_err(|e| {
        // Classified, not quoted: a private set put here by mistake must not reach a log.
        let private = e.to_string().contains("unknown field");
        LoadError(format!(
            "the public key set is not JSON of the documented shape ({:?} error at line {}, \
             column {}{})",
            e.classify(),
            e.line(),
            e.column(),
            if private {
                "; only public JWK members are accepted"
            } else {
                ""
            }
        ))
    })?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, entry) in set.keys.iter().enumerate() {
        let key =
            parse_jwk(&entry.jwk).map_err(|why| LoadError(format!("public key set entry {i}: {why}")))?;
        keys.push(Scheduled {
            public: key.to_jwk(),
            activates_at: entry.activates_at,
            key: (),
        });
    }
    Schedule::new(keys, retain_for).map_err(|e| LoadError(format!("public key set: {e}")))
}

/// The public key set value for a private key set value (the same schedule, public JWKs only).
pub fn public_key_set(private_value: &[u8]) -> Result<String, LoadError> {
    let schedule = super::secret_key::parse_key_set(private_value, 0)?;
    let keys: Vec<serde_json::Value> = schedule
        .keys()
        .iter()
        .map(|k| serde_json::json!({"activates_at": k.activates_at, "jwk": k.public.jwk}))
        .collect();
    Ok(serde_json::json!({ "keys": keys }).to_string())
}

/// Publishes the public keys of a Secrets Manager public key set; never signs.
pub struct PublicKeySet {
    keys: SecretSchedule<()>,
}

impl std::fmt::Debug for PublicKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeySet")
            .field("secret_id", &self.keys.secret_id())
            .finish()
    }
}

impl PublicKeySet {
    /// Reads the public set at init; fails when it is unreadable, empty, holds a private
    /// member or has no active key.
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
            parse: parse_public_set,
            what: "public key set secret",
        })
        .await?;
        Ok(Self { keys })
    }
}

impl super::Refresh for PublicKeySet {
    fn refresh(&self) -> BoxFuture<'_, Result<(), LoadError>> {
        Box::pin(self.keys.refresh())
    }
}

impl TokenSigner for PublicKeySet {
    fn active(&self) -> (String, Alg) {
        self.keys.active()
    }

    fn active_since(&self) -> Option<u64> {
        self.keys.active_since()
    }

    fn sign<'a>(&'a self, _signing_input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(std::future::ready(Err(SignError(
            "verify-only: this function holds public keys only".into(),
        ))))
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.keys.published()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use authserver_testkit::oauth_aws::{TEST_RSA_PEM, key_set, p256_pem};

    #[test]
    fn the_public_set_carries_the_private_sets_schedule_and_nothing_private() {
        let ec = p256_pem();
        let private = key_set(&[(0, TEST_RSA_PEM), (1_900_000_000, &ec)]);
        let public = public_key_set(private.as_bytes()).unwrap();
        assert!(
            !public.contains("PRIVATE") && !public.contains("\"d\""),
            "{public}"
        );
        let from_public = parse_public_set(public.as_bytes(), 60).unwrap();
        let from_private = super::super::secret_key::parse_key_set(private.as_bytes(), 60).unwrap();
        fn summary<K>(k: &[Scheduled<K>]) -> Vec<(u64, String)> {
            k.iter().map(|k| (k.activates_at, k.public.kid.clone())).collect()
        }
        assert_eq!(summary(from_public.keys()), summary(from_private.keys()));
    }

    #[test]
    fn private_members_or_a_private_set_are_refused_without_quoting_them() {
        let private = key_set(&[(0, TEST_RSA_PEM)]);
        let err = parse_public_set(private.as_bytes(), 60).unwrap_err().0;
        assert!(err.contains("only public JWK members"), "{err}");
        assert!(!err.contains("MII") && !err.contains("PRIVATE"), "{err}");
        let mut public: serde_json::Value =
            serde_json::from_str(&public_key_set(private.as_bytes()).unwrap()).unwrap();
        public["keys"][0]["jwk"]["d"] = "c2VjcmV0LWV4cG9uZW50".into();
        let err = parse_public_set(public.to_string().as_bytes(), 60).unwrap_err().0;
        assert!(err.contains("only public JWK members"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        // A kid that is not the key's thumbprint: a copy-paste from another set.
        public["keys"][0]["jwk"].as_object_mut().unwrap().remove("d");
        public["keys"][0]["jwk"]["kid"] = "other".into();
        let err = parse_public_set(public.to_string().as_bytes(), 60).unwrap_err().0;
        assert!(err.contains("thumbprint"), "{err}");
    }
}
