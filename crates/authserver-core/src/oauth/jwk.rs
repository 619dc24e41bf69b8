//! Public keys from JWK objects (RFC 7517 / 7518 §6) and JWS signature checks over `ring`.
//! Only RS256 (RSA of at least 2048 bits) and ES256 (P-256) exist: a key's algorithm is fixed by
//! the key, never taken from a token header, so `none`, HMAC and algorithm confusion (a public
//! key used as an HMAC secret) have no code path at all.

use super::ports::Alg;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// A key that checks signatures, with its `kid` and its one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// Key id (may be empty for a client key set with one key).
    pub kid: String,
    /// The algorithm this key verifies.
    pub alg: Alg,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed SEC1 point `04 || x || y`.
    Ec(Vec<u8>),
}

/// Why a JWK is not usable (names the member, never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable JWK: {0}")]
pub struct JwkError(pub &'static str);

impl Alg {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    /// Parses a JWS `alg` name: only the two pinned algorithms.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

fn member(jwk: &serde_json::Value, name: &'static str) -> Result<Vec<u8>, JwkError> {
    let s = jwk.get(name).and_then(|v| v.as_str()).ok_or(JwkError(name))?;
    B64.decode(s).map_err(|_| JwkError(name))
}

impl VerifyingKey {
    /// Reads a public JWK. `use` must be absent or `sig`; `alg`, when present, must match the
    /// key type (a key without `alg` gets its type's one algorithm).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, JwkError> {
        let text = |name| jwk.get(name).and_then(|v| v.as_str());
        if text("use").is_some_and(|u| u != "sig") {
            return Err(JwkError("use"));
        }
        let (alg, material) = match text("kty") {
            Some("RSA") => {
                let n = member(jwk, "n")?;
                if n.iter().skip_while(|b| **b == 0).count() < 256 {
                    return Err(JwkError("n"));
                }
                (
                    Alg::Rs256,
                    Material::Rsa {
                        n,
                        e: member(jwk, "e")?,
                    },
                )
            }
            Some("EC") if text("crv") == Some("P-256") => {
                let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwkError("x"));
                }
                (Alg::Es256, Material::Ec([&[4u8][..], &x, &y].concat()))
            }
            _ => return Err(JwkError("kty")),
        };
        if text("alg").is_some_and(|a| Alg::parse(a) != Some(alg)) {
            return Err(JwkError("alg"));
        }
        let kid = text("kid").unwrap_or_default().to_owned();
        Ok(Self { kid, alg, material })
    }

    /// Whether the key can ever verify: an ES256 key's point must lie on P-256, an RS256 key's
    /// modulus must be at most 8192 bits and its exponent odd, at least 3 and under 2^33 (ring's
    /// bounds: `RSA_PKCS1_2048_8192_SHA256` refuses any other key before any arithmetic). A
    /// registered client with such a key could never authenticate, and its refusals would be
    /// told apart by timing: the store refuses the registration instead. The point is checked by
    /// an ECDH agreement with a fresh ephemeral key, ring's public-key validation (about 100 µs,
    /// at load only, never per request).
    pub fn is_usable(&self) -> bool {
        use ring::agreement;
        match &self.material {
            Material::Rsa { n, e } => rsa_usable(n, e),
            Material::Ec(point) => {
                let rng = ring::rand::SystemRandom::new();
                agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
                    .and_then(|mine| {
                        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, point);
                        agreement::agree_ephemeral(mine, &peer, |_| ())
                    })
                    .is_ok()
            }
        }
    }

    /// Whether `sig` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            Material::Ec(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// Longest RSA modulus ring verifies with (bits).
const MAX_RSA_BITS: usize = 8192;

/// Whether ring would take an RSA public key of modulus `n` and exponent `e` (big-endian):
/// the modulus at most [`MAX_RSA_BITS`] (its lower bound is `from_jwk`'s), the exponent odd,
/// at least 3 and under 2^33.
fn rsa_usable(n: &[u8], e: &[u8]) -> bool {
    let bits = |b: &[u8]| {
        let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        b.first()
            .map_or(0, |top| (b.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
    };
    let odd = e.last().is_some_and(|last| last & 1 == 1);
    bits(n) <= MAX_RSA_BITS && odd && (2..=33).contains(&bits(e))
}

/// The public members a client's JWK may have (RFC 7517 §4, RFC 7518 §6.2.1 and §6.3.1): an
/// allowlist, so private material under any name (`d`, `oth`, a nested object) is refused.
pub const PUBLIC_MEMBERS: [&str; 14] = [
    "kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "x5c", "x5t", "x5t#S256", "x5u",
];

/// Whether `jwk` is an object of [`PUBLIC_MEMBERS`] only, each of its JSON type (`key_ops` and
/// `x5c`: arrays of strings; the rest strings): nothing else can hide private key material.
pub fn is_public_only(jwk: &serde_json::Value) -> bool {
    let Some(members) = jwk.as_object() else {
        return false;
    };
    members.iter().all(|(name, value)| match name.as_str() {
        "key_ops" | "x5c" => value
            .as_array()
            .is_some_and(|a| a.iter().all(serde_json::Value::is_string)),
        other => PUBLIC_MEMBERS.contains(&other) && value.is_string(),
    })
}

/// The public JWK of an ES256 key from its uncompressed SEC1 point.
pub fn ec_jwk(kid: &str, point: &[u8]) -> Option<serde_json::Value> {
    let coords = point.strip_prefix(&[4u8])?;
    (coords.len() == 64).then(|| {
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": B64.encode(&coords[..32]), "y": B64.encode(&coords[32..])})
    })
}

/// The public JWK of an RS256 key from its big-endian modulus and exponent.
pub fn rsa_jwk(kid: &str, n: &[u8], e: &[u8]) -> serde_json::Value {
    serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": B64.encode(n), "e": B64.encode(e)})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Private material under any name is outside the allowlist: a PEM string, `oth`, `d`, a
    /// nested private JWK, an object inside `x5c`.
    #[test]
    fn only_objects_of_public_members_are_public() {
        let public = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": "AQ", "y": "AQ",
            "use": "sig", "key_ops": ["verify"], "x5c": ["MIIB"], "x5t#S256": "AQ"});
        assert!(is_public_only(&public));
        let with = |name: &str, value: serde_json::Value| {
            let mut k = public.clone();
            k[name] = value;
            is_public_only(&k)
        };
        assert!(!with("d", "AQ".into()));
        assert!(!with(
            "oth",
            serde_json::json!([{"r": "AQ", "d": "AQ", "t": "AQ"}])
        ));
        assert!(!with("private", serde_json::json!({"kty": "EC", "d": "AQ"})));
        assert!(!with("x5c", serde_json::json!([{"d": "AQ"}])));
        assert!(!with("kid", serde_json::json!({"d": "AQ"})));
        assert!(!is_public_only(&"-----BEGIN PRIVATE KEY-----".into()));
    }

    #[test]
    fn keys_of_other_types_and_uses_are_refused() {
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "x": B64.encode([1u8; 32]), "y": B64.encode([2u8; 32])});
        assert_eq!(VerifyingKey::from_jwk(&ec).map(|k| k.alg), Ok(Alg::Es256));
        let mut enc = ec.clone();
        enc["use"] = "enc".into();
        assert_eq!(VerifyingKey::from_jwk(&enc), Err(JwkError("use")));
        let mut hs = ec.clone();
        hs["alg"] = "HS256".into();
        assert_eq!(VerifyingKey::from_jwk(&hs), Err(JwkError("alg")));
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(VerifyingKey::from_jwk(&oct), Err(JwkError("kty")));
        let small_rsa = serde_json::json!({"kty": "RSA", "n": B64.encode([0xffu8; 128]), "e": "AQAB"});
        assert_eq!(
            VerifyingKey::from_jwk(&small_rsa),
            Err(JwkError("n")),
            "RSA under 2048 bits"
        );
    }
}
