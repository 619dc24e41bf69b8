//! A client registration: the `oauth` object a user entry may carry (issue 14). A client is an
//! ordinary user entry, so its secret is the entry's `passwordHash` and every Basic-auth
//! mechanism (verified cache, regulation, limiter, audit, rotation grace) applies unchanged.
//! An entry without `oauth` is no client and behaves exactly as before.

use super::jwk::VerifyingKey;
use serde::{Deserialize, Serialize};

/// How a client authenticates at the token, introspection and revocation endpoints
/// (RFC 7591 §2 names). The registered method is the only one accepted for that client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// `Authorization: Basic` with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with a key of the client's registered `jwks` (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The `oauth` object of a user entry, as stored (camelCase JSON, unknown fields refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuthClient {
    /// Scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Audiences (`aud`) the client may get tokens for; empty: the deployment's default only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Scopes granted when the request names none (a subset of `scopes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_scopes: Vec<String>,
    /// The one authentication method this client uses.
    #[serde(default)]
    pub token_endpoint_auth_method: AuthMethod,
    /// The client's public keys (a JWK set, `{"keys": [...]}`): `private_key_jwt` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
}

/// Why an `oauth` object is refused (never quotes a key or a value: they may hold escapes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientProblem {
    /// A scope is empty or has a character RFC 6749 §3.3 does not allow.
    #[error("oauth.scopes #{0} is not a scope token (RFC 6749 §3.3)")]
    Scope(usize),
    /// A default scope is not among `scopes`.
    #[error("oauth.defaultScopes #{0} is not in oauth.scopes")]
    DefaultScope(usize),
    /// An audience is not an absolute URI without a fragment (RFC 8707 §2), or is over 256 bytes.
    #[error("oauth.audiences #{0} is not an absolute URI without a fragment (RFC 8707), or over 256 bytes")]
    Audience(usize),
    /// `private_key_jwt` without a usable key, or `jwks` with a secret method.
    #[error("oauth.jwks: {0}")]
    Jwks(String),
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// RFC 8707 §2: a `resource` (here: an audience) is an absolute URI (RFC 3986 §4.3:
/// `scheme ":" hier-part`, scheme `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`) without a
/// fragment; at most 256 bytes of URI characters (no space, control, `"<>\^`{|}` or non-ASCII).
pub fn is_resource_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let uri_char = |b: u8| b.is_ascii_graphic() && !b"\"<>\\^`{|}#".contains(&b);
    s.len() <= 256
        && scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && rest.bytes().all(uri_char)
}

impl OAuthClient {
    /// Checks the object; a store refuses the document it is in otherwise.
    pub fn validate(&self) -> Result<(), ClientProblem> {
        if let Some(i) = self.scopes.iter().position(|s| !is_scope_token(s)) {
            return Err(ClientProblem::Scope(i + 1));
        }
        if let Some(i) = self.default_scopes.iter().position(|s| !self.scopes.contains(s)) {
            return Err(ClientProblem::DefaultScope(i + 1));
        }
        if let Some(i) = self.audiences.iter().position(|a| !is_resource_uri(a)) {
            return Err(ClientProblem::Audience(i + 1));
        }
        match (self.token_endpoint_auth_method, &self.jwks) {
            (AuthMethod::PrivateKeyJwt, None) => {
                Err(ClientProblem::Jwks("private_key_jwt needs jwks".into()))
            }
            (AuthMethod::PrivateKeyJwt, Some(_)) if self.keys().is_empty() => {
                Err(ClientProblem::Jwks("no usable RS256 / ES256 signing key".into()))
            }
            (AuthMethod::PrivateKeyJwt, Some(_)) if !self.keys().iter().all(VerifyingKey::is_usable) => {
                Err(ClientProblem::Jwks(
                    "a key can never verify (EC point off P-256; RSA over 8192 bits, or e even or 1)".into(),
                ))
            }
            (AuthMethod::PrivateKeyJwt, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(ClientProblem::Jwks(
                "only private_key_jwt clients have keys".into(),
            )),
        }
    }

    /// The usable keys of `jwks` (RS256 / ES256 signing keys; others are skipped).
    pub fn keys(&self) -> Vec<VerifyingKey> {
        let Some(keys) = self
            .jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(|k| k.as_array())
        else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| VerifyingKey::from_jwk(k).ok())
            .collect()
    }

    /// The scopes granted for a request's `scope` parameter (space-separated, RFC 6749 §3.3):
    /// the default scopes when absent; `None` (invalid_scope) when one is not allowed or the
    /// result is empty.
    pub fn grant_scopes(&self, requested: Option<&str>) -> Option<Vec<String>> {
        let granted: Vec<String> = match requested {
            None => self.default_scopes.clone(),
            Some(r) => {
                let mut out: Vec<String> = Vec::new();
                for s in r.split(' ') {
                    if !self.scopes.iter().any(|a| a == s) {
                        return None;
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_owned());
                    }
                }
                out
            }
        };
        (!granted.is_empty()).then_some(granted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(json: serde_json::Value) -> OAuthClient {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn scopes_are_granted_from_the_registration_only() {
        let c = client(serde_json::json!({"scopes": ["read", "write"], "defaultScopes": ["read"]}));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.grant_scopes(None), Some(vec!["read".to_owned()]));
        assert_eq!(
            c.grant_scopes(Some("write read write")),
            Some(vec!["write".into(), "read".into()])
        );
        assert_eq!(c.grant_scopes(Some("admin")), None);
        assert_eq!(
            c.grant_scopes(Some("read  write")),
            None,
            "an empty token is no scope"
        );
        let none = client(serde_json::json!({"scopes": ["read"]}));
        assert_eq!(
            none.grant_scopes(None),
            None,
            "no default scopes and none asked: invalid_scope"
        );
    }

    #[test]
    fn bad_objects_are_refused() {
        let bad = [
            (serde_json::json!({"scopes": ["a b"]}), ClientProblem::Scope(1)),
            (serde_json::json!({"scopes": ["a\"b"]}), ClientProblem::Scope(1)),
            (
                serde_json::json!({"scopes": ["a"], "defaultScopes": ["b"]}),
                ClientProblem::DefaultScope(1),
            ),
            (
                serde_json::json!({"scopes": ["a"], "audiences": [""]}),
                ClientProblem::Audience(1),
            ),
        ];
        for (json, problem) in bad {
            assert_eq!(client(json).validate(), Err(problem));
        }
        let jwt = client(serde_json::json!({"scopes": ["a"], "tokenEndpointAuthMethod": "private_key_jwt"}));
        assert!(matches!(jwt.validate(), Err(ClientProblem::Jwks(_))));
        // A P-256 key whose point is not on the curve (x = y = 1): refused at load, where it
        // would otherwise fail every assertion faster than a real verification.
        let one = format!("{}AQ", "A".repeat(41));
        let off_curve = client(
            serde_json::json!({"scopes": ["a"], "tokenEndpointAuthMethod": "private_key_jwt",
            "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": one, "y": one}]}}),
        );
        assert!(matches!(off_curve.validate(), Err(ClientProblem::Jwks(m)) if m.contains("never verify")));
        // RSA keys ring refuses before any arithmetic: over 8192 bits, e = 1, e even.
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let rsa = |n: &[u8], e: &[u8]| {
            client(
                serde_json::json!({"scopes": ["a"], "tokenEndpointAuthMethod": "private_key_jwt",
                "jwks": {"keys": [{"kty": "RSA", "n": b64(n), "e": b64(e)}]}}),
            )
            .validate()
        };
        assert_eq!(rsa(&[0xc3; 256], &[1, 0, 1]), Ok(()));
        assert_eq!(
            rsa(&[0xc3; 1024], &[1, 0, 1]),
            Ok(()),
            "8192 bits is the bound, included"
        );
        for (n, e) in [
            (&[0xc3u8; 1025][..], &[1u8, 0, 1][..]),
            (&[0xc3; 256], &[1]),
            (&[0xc3; 256], &[1, 0, 0]),
        ] {
            assert!(
                matches!(rsa(n, e), Err(ClientProblem::Jwks(_))),
                "{} bytes, e {e:?}",
                n.len()
            );
        }
        // RFC 8707 §2: absolute URIs without a fragment only.
        for (aud, ok) in [
            ("https://api.example.test", true),
            ("urn:example:api", true),
            ("https://api.example.test/v1?x=1", true),
            ("*", false),
            ("not a url", false),
            ("relative/path", false),
            ("https://api.example.test/#frag", false),
            ("1http://x", false),
            ("https:", false),
        ] {
            let c = client(serde_json::json!({"scopes": ["a"], "audiences": [aud]}));
            assert_eq!(c.validate().is_ok(), ok, "{aud:?}");
        }
        let keys_on_secret = client(serde_json::json!({"scopes": ["a"], "jwks": {"keys": []}}));
        assert!(matches!(keys_on_secret.validate(), Err(ClientProblem::Jwks(_))));
        assert!(
            serde_json::from_value::<OAuthClient>(serde_json::json!({"scopes": [], "scope": []})).is_err()
        );
        assert!(
            serde_json::from_value::<OAuthClient>(
                serde_json::json!({"scopes": [], "tokenEndpointAuthMethod": "none"})
            )
            .is_err()
        );
    }
}
