//! The standalone server's sections: `[server]` (listener, limits, forwarding) and `[tls]`.

use super::ConfigError;
use super::net::{AdminListen, HeaderSetting, TrustedProxies};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Realm in the `WWW-Authenticate` challenge.
    pub realm: String,
    /// Whole-request deadline (ms); past it the answer is 503.
    pub request_timeout_ms: u64,
    /// Deadline for a client to send its request headers (ms); slow clients are cut off.
    pub header_read_timeout_ms: u64,
    /// Largest request head (bytes, at least 8192); larger is 431.
    pub max_header_bytes: usize,
    /// Largest request body (bytes); larger is 413.
    pub max_body_bytes: usize,
    /// Concurrent connections; further ones wait in the OS backlog.
    pub max_connections: usize,
    /// Connections one client address (IPv6: one regulated network) may hold; trusted proxies
    /// are exempt. 0: no per-address cap.
    pub max_connections_per_address: usize,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive and
    /// HTTP/2 alike). Keep it above the idle timeout of the proxy's upstream pool.
    pub idle_timeout_ms: u64,
    /// Response header carrying the username on `/auth/forward` success.
    pub forward_user_header: HeaderSetting,
    /// Response header carrying the comma-separated roles on `/auth/forward` success.
    pub forward_roles_header: HeaderSetting,
    /// Proxies (addresses or CIDRs) whose `X-Forwarded-For` is believed; the client is the
    /// right-most address not in this list. Empty: the socket peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// Serve plain HTTP on a non-loopback address without TLS (behind a TLS-terminating proxy on
    /// a private network). Off: such a server refuses to start.
    pub allow_plaintext: bool,
    /// Envoy ext_authz over gRPC (`envoy.service.auth.v3.Authorization/Check`): its listener,
    /// or empty for none. Same TLS, limits and plaintext rule as `listen`; needs a build with
    /// the `ext-authz-grpc` feature.
    pub grpc_listen: AdminListen,
}

/// A header name known to be valid.
fn header(name: &'static str) -> HeaderSetting {
    HeaderSetting::from_static(name)
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            realm: "authserver".into(),
            request_timeout_ms: 5000,
            header_read_timeout_ms: 5000,
            max_header_bytes: 16384,
            max_body_bytes: 4096,
            max_connections: 4096,
            max_connections_per_address: 256,
            idle_timeout_ms: 120_000,
            forward_user_header: header("remote-user"),
            forward_roles_header: header("remote-groups"),
            trusted_proxies: TrustedProxies::default(),
            allow_plaintext: false,
            grpc_listen: AdminListen::none(),
        }
    }
}

impl ServerSettings {
    /// Checks the limits and timeouts (the listener against `[tls]`: see `Settings::validate`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_header_bytes < 8192 {
            return ConfigError::invalid("server.max_header_bytes", "must be at least 8192");
        }
        for (key, value) in [
            ("server.idle_timeout_ms", self.idle_timeout_ms),
            ("server.header_read_timeout_ms", self.header_read_timeout_ms),
        ] {
            if value == 0 {
                return ConfigError::invalid(key, "must be above 0");
            }
        }
        if self.idle_timeout_ms < self.header_read_timeout_ms {
            // The idle timer would cut a keep-alive client's next request head before the
            // header deadline it was promised.
            return ConfigError::invalid(
                "server.idle_timeout_ms",
                "must be at least server.header_read_timeout_ms",
            );
        }
        if self.max_connections == 0 {
            return ConfigError::invalid("server.max_connections", "must be positive");
        }
        if self.request_timeout_ms == 0 {
            return ConfigError::invalid("server.request_timeout_ms", "must be positive");
        }
        Ok(())
    }
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain (empty: plain HTTP).
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
    /// How often the files are checked for renewal (ms).
    pub reload_interval_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            reload_interval_ms: 5000,
        }
    }
}

impl TlsSettings {
    /// True when a certificate is configured.
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }

    /// Checks that the certificate and its key come together (the error names the one missing)
    /// and that the reload poll has a period (a zero period panicked the watcher task, leaving
    /// certificates unreloaded).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.reload_interval_ms == 0 {
            return ConfigError::invalid("tls.reload_interval_ms", "must be positive");
        }
        let missing = match (self.cert_file.is_empty(), self.key_file.is_empty()) {
            (true, false) => "tls.cert_file",
            (false, true) => "tls.key_file",
            _ => return Ok(()),
        };
        ConfigError::invalid(missing, "set both tls.cert_file and tls.key_file, or neither")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &ServerSettings) -> &'static str {
        match s.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    /// Reported as `server.max_connections` before.
    #[test]
    fn a_zero_request_timeout_names_request_timeout_ms() {
        let s = ServerSettings {
            request_timeout_ms: 0,
            ..Default::default()
        };
        assert_eq!(key(&s), "server.request_timeout_ms");
    }

    /// Reported as `server.idle_timeout_ms` before.
    #[test]
    fn a_zero_header_read_timeout_names_itself() {
        let s = ServerSettings {
            header_read_timeout_ms: 0,
            ..Default::default()
        };
        assert_eq!(key(&s), "server.header_read_timeout_ms");
    }

    #[test]
    fn the_missing_half_of_the_tls_pair_is_named() {
        let tls = TlsSettings {
            cert_file: "cert.pem".into(),
            ..Default::default()
        };
        assert!(matches!(
            tls.validate(),
            Err(ConfigError::Invalid {
                key: "tls.key_file",
                ..
            })
        ));
        assert!(TlsSettings::default().validate().is_ok());
    }
}
