//! OAuth fixtures (issue 14): a users file with one client per authentication method and a
//! plain user, a signing key set, settings with `[oauth]` on, and client assertions signed
//! with the `private_key_jwt` client's key. Distinctive secrets, so a search of captured
//! output means something.

use crate::hash::{FAST, hash};
use authserver::config::Settings;
use authserver::oauth::keyset;
use std::path::{Path, PathBuf};

/// Issuer of the fixture (loopback http is allowed for tests only).
pub const ISSUER: &str = "http://127.0.0.1:8080";
/// The deployment's audience (the default `aud`).
pub const AUDIENCE: &str = "https://api.example.test";
/// Another audience the basic client may ask for with `resource`.
pub const OTHER_AUDIENCE: &str = "https://reports.example.test";
/// A `client_secret_basic` client.
pub const BASIC_CLIENT: &str = "svc-basic";
/// Its secret: `:`, `%` and `+` need RFC 6749 §2.3.1 form-urlencoding.
pub const BASIC_SECRET: &str = "s3cr:et%2B+plus-Kq81";
/// A `client_secret_post` client.
pub const POST_CLIENT: &str = "svc-post";
/// Its secret.
pub const POST_SECRET: &str = "post-Secret-Zt55";
/// A `private_key_jwt` client.
pub const JWT_CLIENT: &str = "svc-jwt";
/// A user entry with no `oauth` object.
pub const PLAIN_USER: &str = "plain-user";
/// Its password.
pub const PLAIN_PW: &str = "plain-Password-90";
/// The kid of the JWT client's key.
pub const CLIENT_KID: &str = "client-key-1";

/// Files of an OAuth fixture (deleted on drop).
pub struct OAuthFixture {
    /// Holds everything.
    pub dir: tempfile::TempDir,
    /// `users.json`.
    pub users: PathBuf,
    /// The signing key set.
    pub keys: PathBuf,
    /// The JWT client's private key (PKCS#8 PEM).
    pub client_key: PathBuf,
}

/// A fresh fixture: the users file, one ES256 signing key (signing now) and the client key.
pub fn fixture() -> OAuthFixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let now = authserver::oauth::signer::unix_now();
    let pem = keyset::generate_es256_pem().unwrap();
    keyset::add(
        &keys,
        &keyset::new_kid(authserver_core::oauth::Alg::Es256, now),
        &pem,
        now,
        now,
    )
    .unwrap();
    let client_key = dir.path().join("client.pem");
    std::fs::write(&client_key, keyset::generate_es256_pem().unwrap()).unwrap();
    let (_, key) = keyset::read_key(&client_key).unwrap();
    let jwk = keyset::public_jwk(CLIENT_KID, &key).unwrap();
    let users = dir.path().join("users.json");
    let json = serde_json::json!({
        BASIC_CLIENT: {"passwordHash": hash(BASIC_SECRET, FAST), "oauth": {
            "scopes": ["read", "write"], "defaultScopes": ["read"], "audiences": [OTHER_AUDIENCE]}},
        POST_CLIENT: {"passwordHash": hash(POST_SECRET, FAST), "oauth": {
            "scopes": ["read"], "defaultScopes": ["read"], "tokenEndpointAuthMethod": "client_secret_post"}},
        JWT_CLIENT: {"passwordHash": hash("unused-Secret-0", FAST), "oauth": {
            "scopes": ["read"], "defaultScopes": ["read"], "tokenEndpointAuthMethod": "private_key_jwt",
            "jwks": {"keys": [jwk]}}},
        PLAIN_USER: {"passwordHash": hash(PLAIN_PW, FAST), "roles": ["reader"]},
    });
    std::fs::write(&users, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    OAuthFixture {
        dir,
        users,
        keys,
        client_key,
    }
}

/// Settings over the fixture with `[oauth]` on.
pub fn settings(f: &OAuthFixture) -> Settings {
    let mut s = crate::users::settings(&f.users);
    s.oauth.issuer = ISSUER.into();
    s.oauth.audiences = vec![AUDIENCE.into()];
    s.oauth.keys_dir = f.keys.clone();
    s
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A compact JWS over `header` and `claims`, signed with the PEM key at `key`.
pub fn sign(key: &Path, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let (_, key) = keyset::read_key(key).unwrap();
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = keyset::sign(&key, input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

/// A fresh client assertion of [`JWT_CLIENT`] for the token endpoint, with `jti`.
pub fn assertion(f: &OAuthFixture, jti: &str) -> String {
    let now = authserver::oauth::signer::unix_now();
    let claims = serde_json::json!({"iss": JWT_CLIENT, "sub": JWT_CLIENT, "aud": format!("{ISSUER}/oauth/token"),
        "iat": now, "exp": now + 60, "jti": jti});
    sign(
        &f.client_key,
        &serde_json::json!({"alg": "ES256", "kid": CLIENT_KID}),
        &claims,
    )
}

/// An unpadded base64url encoding (for forged tokens).
pub fn base64url(bytes: &[u8]) -> String {
    b64(bytes)
}

/// `Basic` over the form-urlencoded id and secret (RFC 6749 §2.3.1).
pub fn basic_client(id: &str, secret: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    crate::users::basic(&enc(id), &enc(secret))
}
