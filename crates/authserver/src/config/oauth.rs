//! `[oauth]`: the OAuth 2.0 client-credentials issuer (issue 14). Off while `issuer` is empty:
//! no `/oauth/*` or `/.well-known/*` route answers and a Bearer token is no credential.

use super::ConfigError;
use super::net::HeaderSetting;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where used `jti`s (revoked tokens, used client assertions) are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JtiBackend {
    /// In this process only: a restart forgets revocations (fine with one instance and short
    /// tokens; not with several instances).
    #[default]
    Memory,
    /// An append-only file (`jti_file`), read back at start: survives restarts, one host.
    File,
}

/// `[oauth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthSettings {
    /// Issuer identifier (an https URL, byte-identical in tokens and discovery); empty: off.
    pub issuer: String,
    /// Audiences bearer tokens are accepted for here; the first is the default `aud` issued.
    pub audiences: Vec<String>,
    /// Access-token lifetime (seconds).
    pub token_lifetime_seconds: u64,
    /// Clock leeway for `exp` / `nbf` / `iat` (seconds).
    pub skew_seconds: u64,
    /// Directory of the signing key set (`authserver keys generate`).
    pub keys_dir: PathBuf,
    /// A new key is published this long before it signs (consumers' JWKS cache TTL; API
    /// Gateway caches up to an hour).
    pub publish_lead_seconds: u64,
    /// `Cache-Control: max-age` of the JWKS and discovery documents (seconds).
    pub jwks_max_age_seconds: u64,
    /// Where revoked token ids and used assertion ids are kept.
    pub jti_store: JtiBackend,
    /// The file for `jti_store = "file"`.
    pub jti_file: PathBuf,
    /// Tokens one client may obtain per minute (then 429 with Retry-After).
    pub tokens_per_minute: u32,
    /// Response header carrying a bearer token's scopes (space-separated) on `/auth/forward`.
    pub forward_scopes_header: HeaderSetting,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audiences: Vec::new(),
            token_lifetime_seconds: 900,
            skew_seconds: 30,
            keys_dir: PathBuf::new(),
            publish_lead_seconds: 3600,
            jwks_max_age_seconds: 300,
            jti_store: JtiBackend::Memory,
            jti_file: PathBuf::new(),
            tokens_per_minute: 60,
            forward_scopes_header: HeaderSetting::from_static("remote-scopes"),
        }
    }
}

impl OAuthSettings {
    /// Whether the issuer is configured.
    pub fn enabled(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// Checks the keys (only when enabled: the defaults must load).
    /// `local_keys`: whether the local key set signs (`oauth_aws.signer = "local"`); with an
    /// AWS signer `keys_dir` is not needed.
    pub fn validate(&self, local_keys: bool) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        // RFC 8414 §2: an https URL with no query or fragment (http only on loopback, tests).
        let https = self.issuer.starts_with("https://") || loopback_http(&self.issuer);
        if !https || self.issuer.contains(['?', '#']) || self.issuer.ends_with('/') {
            return ConfigError::invalid(
                "oauth.issuer",
                "must be an https URL without query, fragment or trailing slash",
            );
        }
        let checks = [
            (
                self.audiences.is_empty()
                    || !self
                        .audiences
                        .iter()
                        .all(|a| authserver_core::oauth::client::is_resource_uri(a)),
                "oauth.audiences",
                "needs at least one audience, each an absolute URI without a fragment (RFC 8707), at most 256 bytes",
            ),
            (
                !(60..=86_400).contains(&self.token_lifetime_seconds),
                "oauth.token_lifetime_seconds",
                "must be 60..=86400",
            ),
            (
                self.skew_seconds > 300,
                "oauth.skew_seconds",
                "must be at most 300",
            ),
            (
                local_keys && self.keys_dir.as_os_str().is_empty(),
                "oauth.keys_dir",
                "must name the key set directory",
            ),
            (
                self.jwks_max_age_seconds + KEY_RELOAD_SECONDS >= self.publish_lead_seconds,
                "oauth.jwks_max_age_seconds",
                "must be below oauth.publish_lead_seconds minus the 30 s key reload (a cached JWKS would miss the next key)",
            ),
            (
                self.jti_store == JtiBackend::File && self.jti_file.as_os_str().is_empty(),
                "oauth.jti_file",
                "must be set for jti_store = \"file\"",
            ),
            (
                self.tokens_per_minute == 0,
                "oauth.tokens_per_minute",
                "must be at least 1",
            ),
        ];
        match checks.into_iter().find(|c| c.0) {
            Some((_, key, why)) => ConfigError::invalid(key, why),
            None => Ok(()),
        }
    }
}

/// How often a server re-reads the local key set (`crate::oauth::KEY_RELOAD`): a new key is in
/// its JWKS at most this long after `keys rotate`, so a consumer's cached copy must expire that
/// much before the key signs.
pub const KEY_RELOAD_SECONDS: u64 = 30;

/// `http://` with a loopback host (127.0.0.1, localhost, [::1]) and an optional port, by the
/// URL's host, not a prefix: `http://127.0.0.1.evil.example` and `http://localhost@evil` are not.
fn loopback_http(issuer: &str) -> bool {
    let Some(rest) = issuer.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix("[::1]") {
        Some(port) => ("[::1]", port),
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    matches!(host, "127.0.0.1" | "localhost" | "[::1]") && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> OAuthSettings {
        OAuthSettings {
            issuer: "https://auth.example.com".into(),
            audiences: vec!["https://api.example.com".into()],
            keys_dir: "/k".into(),
            ..OAuthSettings::default()
        }
    }

    #[test]
    fn only_a_loopback_host_may_use_http() {
        for ok in [
            "http://127.0.0.1",
            "http://127.0.0.1:8080",
            "http://localhost:1/x",
            "http://[::1]:9",
        ] {
            assert!(loopback_http(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example:80",
            "http://localhost@evil.example",
            "http://127.0.0.1:80@evil.example",
            "http://[::1].evil",
            "http://127.0.0.1:",
            "https://127.0.0.1",
        ] {
            assert!(!loopback_http(bad), "{bad}");
        }
    }

    #[test]
    fn off_by_default_and_each_bad_key_is_named() {
        assert!(OAuthSettings::default().validate(true).is_ok());
        assert!(on().validate(true).is_ok());
        let no_dir = OAuthSettings {
            keys_dir: PathBuf::new(),
            ..on()
        };
        assert!(
            no_dir.validate(false).is_ok(),
            "an AWS signer needs no local key set"
        );
        let key = |s: OAuthSettings| super::super::error::invalid_key(s.validate(true));
        assert_eq!(
            key(OAuthSettings {
                issuer: "http://auth.example.com".into(),
                ..on()
            }),
            "oauth.issuer"
        );
        assert_eq!(
            key(OAuthSettings {
                issuer: "https://a.example/".into(),
                ..on()
            }),
            "oauth.issuer"
        );
        for audiences in [
            vec![],
            vec![String::new()],
            vec!["api".to_owned()],
            vec![
                "https://api.example.com".to_owned(),
                "https://a.example/#x".to_owned(),
            ],
        ] {
            assert_eq!(key(OAuthSettings { audiences, ..on() }), "oauth.audiences");
        }
        assert_eq!(
            key(OAuthSettings {
                keys_dir: PathBuf::new(),
                ..on()
            }),
            "oauth.keys_dir"
        );
        assert_eq!(
            key(OAuthSettings {
                jwks_max_age_seconds: 7200,
                ..on()
            }),
            "oauth.jwks_max_age_seconds"
        );
        // Below the lead but not by the 30 s reload: a copy cached just before the reload
        // could still be served when the new key signs.
        assert_eq!(
            key(OAuthSettings {
                jwks_max_age_seconds: 3600 - 30,
                publish_lead_seconds: 3600,
                ..on()
            }),
            "oauth.jwks_max_age_seconds"
        );
        assert_eq!(
            key(OAuthSettings {
                jti_store: JtiBackend::File,
                ..on()
            }),
            "oauth.jti_file"
        );
        assert_eq!(
            key(OAuthSettings {
                token_lifetime_seconds: 10,
                ..on()
            }),
            "oauth.token_lifetime_seconds"
        );
    }
}
