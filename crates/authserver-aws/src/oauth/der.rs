//! The little DER the signers read, and the JWK they publish.
//!
//! - A SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): what KMS `GetPublicKey` returns. RSA keys hold
//!   an RSAPublicKey (RFC 8017 A.1.1), P-256 keys an uncompressed point (SEC 1 §2.3.3).
//! - An ECDSA-Sig-Value (RFC 3279 §2.2.3): what KMS `Sign` returns for `ECDSA_SHA_256`; JWS wants
//!   the fixed-width `r || s` instead (RFC 7518 §3.4), 64 bytes for P-256.
//!
//! Only these shapes are accepted; anything else is a [`DerError`], never a panic, so a key of
//! an unexpected type fails at load with a message naming what was found.

use authserver_core::oauth::{Alg, PublicJwk};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// Why a DER structure was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected key encoding: {0}")]
pub struct DerError(pub &'static str);

/// DER encoding of the OID rsaEncryption (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / P-256 (1.2.840.10045.3.1.7).
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// RFC 7518 §3.3: RSA keys for RS256 are 2048 bits or larger.
const MIN_RSA_BITS: usize = 2048;

/// A public key of one of the two algorithms we sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// P-256: the affine coordinates, 32 bytes each.
    P256 {
        /// x coordinate.
        x: Vec<u8>,
        /// y coordinate.
        y: Vec<u8>,
    },
}

/// One TLV: tag, content, and what follows it.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or(DerError("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: 1 to 3 length bytes cover every key and signature we read (< 16 MB).
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 || rest.len() < count {
            return Err(DerError("bad length"));
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(DerError("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The content of a TLV with `tag`, and the rest.
fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<(&'a [u8], &'a [u8]), DerError> {
    match tlv(input)? {
        (t, content, rest) if t == tag => Ok((content, rest)),
        _ => Err(DerError(what)),
    }
}

/// An unsigned INTEGER's magnitude without leading zeros.
fn unsigned(content: &[u8]) -> &[u8] {
    let zeros = content.iter().take_while(|b| **b == 0).count();
    &content[zeros..]
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo holding an RSA (≥ 2048 bits) or P-256 key.
    pub fn from_spki(der: &[u8]) -> Result<Self, DerError> {
        let (spki, _) = expect(der, 0x30, "not a SubjectPublicKeyInfo")?;
        let (alg_id, rest) = expect(spki, 0x30, "no AlgorithmIdentifier")?;
        let (bits, _) = expect(rest, 0x03, "no subjectPublicKey")?;
        let key = bits.strip_prefix(&[0u8]).ok_or(DerError("padded BIT STRING"))?;
        let (oid, params) = expect(alg_id, 0x06, "no algorithm OID")?;
        match oid {
            RSA_ENCRYPTION => Self::from_rsa_public_key(key),
            EC_PUBLIC_KEY => {
                let (curve, _) = expect(params, 0x06, "no named curve")?;
                if curve != P256 {
                    return Err(DerError("EC key on a curve other than P-256"));
                }
                Self::from_p256_point(key)
            }
            _ => Err(DerError("neither RSA nor EC")),
        }
    }

    /// Parses an RSAPublicKey (`SEQUENCE { n INTEGER, e INTEGER }`).
    pub fn from_rsa_public_key(der: &[u8]) -> Result<Self, DerError> {
        let (seq, _) = expect(der, 0x30, "not an RSAPublicKey")?;
        let (n, rest) = expect(seq, 0x02, "no modulus")?;
        let (e, _) = expect(rest, 0x02, "no exponent")?;
        let n = unsigned(n).to_vec();
        if n.len() * 8 < MIN_RSA_BITS {
            return Err(DerError("RSA key shorter than 2048 bits"));
        }
        Ok(Self::Rsa {
            n,
            e: unsigned(e).to_vec(),
        })
    }

    /// Parses an uncompressed P-256 point (`04 || x || y`).
    pub fn from_p256_point(point: &[u8]) -> Result<Self, DerError> {
        match point.split_first() {
            Some((4, xy)) if xy.len() == 64 => Ok(Self::P256 {
                x: xy[..32].to_vec(),
                y: xy[32..].to_vec(),
            }),
            _ => Err(DerError("not an uncompressed P-256 point")),
        }
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        match self {
            Self::Rsa { .. } => Alg::Rs256,
            Self::P256 { .. } => Alg::Es256,
        }
    }

    /// The JWK's required public members in lexicographic order: what RFC 7638 hashes.
    fn members(&self) -> String {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        match self {
            Self::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b(e), b(n)),
            Self::P256 { x, y } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b(x), b(y))
            }
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid`. Derived from the key
    /// itself, so it is stable across instances and reveals no ARN or account id.
    pub fn thumbprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.members().as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The published JWK: public members, `kid` (the thumbprint), `alg` and `use: sig`.
    pub fn to_jwk(&self) -> PublicJwk {
        let kid = self.thumbprint();
        let alg = self.alg();
        // The members string is our own well-formed JSON: parsing it cannot fail.
        let mut jwk: serde_json::Value = serde_json::from_str(&self.members()).unwrap_or_else(|_| json!({}));
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), json!(kid));
            o.insert("alg".into(), json!(alg_name(alg)));
            o.insert("use".into(), json!("sig"));
        }
        PublicJwk { kid, alg, jwk }
    }
}

/// The JWS `alg` name.
pub fn alg_name(alg: Alg) -> &'static str {
    match alg {
        Alg::Rs256 => "RS256",
        Alg::Es256 => "ES256",
    }
}

/// Converts a DER ECDSA-Sig-Value into the 64-byte `r || s` JWS uses for ES256.
pub fn ecdsa_der_to_jws(der: &[u8]) -> Result<Vec<u8>, DerError> {
    let (seq, _) = expect(der, 0x30, "not an ECDSA-Sig-Value")?;
    let (r, rest) = expect(seq, 0x02, "no r")?;
    let (s, _) = expect(rest, 0x02, "no s")?;
    let mut out = vec![0u8; 64];
    for (i, part) in [unsigned(r), unsigned(s)].into_iter().enumerate() {
        if part.len() > 32 {
            return Err(DerError("ECDSA value longer than 32 bytes"));
        }
        let end = 32 * (i + 1);
        out[end - part.len()..end].copy_from_slice(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ecdsa_der_pads_short_values_and_strips_sign_bytes() {
        // r has a sign byte (33 bytes), s is short (31 bytes).
        let mut r = vec![0u8];
        r.extend([0x80; 32]);
        let s = vec![0x11; 31];
        let mut der = vec![0x30, (2 + r.len() + 2 + s.len()) as u8, 0x02, r.len() as u8];
        der.extend(&r);
        der.extend([0x02, s.len() as u8]);
        der.extend(&s);
        let raw = ecdsa_der_to_jws(&der).unwrap();
        assert_eq!(&raw[..32], &[0x80; 32]);
        assert_eq!(raw[32], 0);
        assert_eq!(&raw[33..], &[0x11; 31]);
        assert!(ecdsa_der_to_jws(&der[..10]).is_err());
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = URL_SAFE_NO_PAD.decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
        let key = PublicKey::Rsa { n, e: vec![1, 0, 1] };
        assert_eq!(key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        let jwk = key.to_jwk();
        assert_eq!(jwk.jwk["kid"], jwk.kid);
        assert_eq!(jwk.jwk["use"], "sig");
        assert_eq!(jwk.jwk["alg"], "RS256");
        assert_eq!(jwk.jwk["e"], "AQAB");
    }

    #[test]
    fn short_rsa_keys_and_other_curves_are_refused() {
        let mut der = vec![0x30, 0x0a, 0x02, 0x03, 0x00, 0xff, 0xff, 0x02, 0x03, 1, 0, 1];
        assert_eq!(
            PublicKey::from_rsa_public_key(&der).unwrap_err(),
            DerError("RSA key shorter than 2048 bits")
        );
        der.truncate(5);
        assert!(PublicKey::from_rsa_public_key(&der).is_err());
        assert!(PublicKey::from_p256_point(&[4; 64]).is_err());
        assert!(PublicKey::from_spki(&[0x30, 0x00]).is_err());
    }
}
