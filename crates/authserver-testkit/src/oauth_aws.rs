//! Signing keys and checks for the OAuth signer tests.
//!
//! Verification here reads only the published JWK (base64url members, as any JWKS consumer
//! would) and hands them to ring's verifiers; it shares no code with the adapters' DER parsing,
//! so a wrong `n`, `x` or `y`, or a DER signature left unconverted, fails it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde_json::{Value, json};

/// A test-only RSA-2048 key (PKCS#8), generated for these tests with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; it protects nothing. Fixed,
/// because ring cannot generate RSA keys and a fresh clone may have no openssl.
pub const TEST_RSA_PEM: &str = include_str!("../fixtures/oauth-test-rsa2048.pem");

/// A fresh P-256 key as PKCS#8 PEM.
pub fn p256_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem()
}

/// A key set secret value (`{"keys": [...]}`) of (activates_at, PEM) pairs.
pub fn key_set(keys: &[(u64, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(at, pem)| json!({"activates_at": at, "private_key_pem": pem}))
        .collect();
    json!({ "keys": keys }).to_string()
}

/// `base64url(header).base64url(claims)` with `kid` and `alg`, as the issuer builds it.
pub fn signing_input(kid: &str, alg: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn member(jwk: &Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(
            jwk[name]
                .as_str()
                .unwrap_or_else(|| panic!("JWK has no {name}: {jwk}")),
        )
        .unwrap()
}

/// Whether `sig` is a valid JWS signature of `input` under the published `jwk` (RS256 or ES256
/// as its `alg` says; anything else is a failed check).
pub fn verify(jwk: &Value, input: &[u8], sig: &[u8]) -> bool {
    match jwk["alg"].as_str() {
        Some("RS256") => {
            assert_eq!(jwk["kty"], "RSA");
            let key = signature::RsaPublicKeyComponents {
                n: member(jwk, "n"),
                e: member(jwk, "e"),
            };
            key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok()
        }
        Some("ES256") => {
            assert_eq!((&jwk["kty"], &jwk["crv"]), (&json!("EC"), &json!("P-256")));
            let point = [vec![4], member(jwk, "x"), member(jwk, "y")].concat();
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input, sig)
                .is_ok()
        }
        _ => false,
    }
}
