//! What the server tells its operators: `[log]`, `[telemetry]`, `[audit]` and the `[admin]`
//! listener that serves metrics and stats.

use super::ConfigError;
use super::net::{AdminListen, OptionalHeader};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable text.
    Text,
}

/// `log.access`: which requests get an access line. An auth request's line is also its audit
/// event when `audit.stdout` is on, and is then written whatever this says (the audit trail
/// never depends on the log policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLog {
    /// Every request (default): the runbooks' latency and error queries read every line.
    #[default]
    All,
    /// Denied auth requests and any answer of 400 or more.
    Denied,
    /// None.
    None,
}

impl AccessLog {
    /// Whether a request with this outcome and status gets a line.
    pub fn wants(self, denied: bool, status: u16) -> bool {
        match self {
            Self::All => true,
            Self::Denied => denied || status >= 400,
            Self::None => false,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive.
    pub level: String,
    /// `json` or `text`.
    pub format: LogFormat,
    /// Which requests get an access line (see [`AccessLog`]).
    pub access: AccessLog,
    /// Key for `user_hash` (share it across instances so hashes correlate). Empty: random per
    /// process. Prefer the env variable or a secret over the file.
    pub user_hash_key: String,
    /// Secrets Manager secret holding the `user_hash` key (Lambda).
    pub user_hash_key_secret_id: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Json,
            access: AccessLog::All,
            user_hash_key: String::new(),
            user_hash_key_secret_id: String::new(),
        }
    }
}

impl LogSettings {
    /// Checks that the level is one `tracing` understands.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return ConfigError::invalid("log.level", "not a level or filter directive");
        }
        Ok(())
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `Service` dimension.
    pub service: String,
    /// `Stage` dimension.
    pub stage: String,
    /// Trusted request header carrying the client's country (e.g. `CloudFront-Viewer-Country`);
    /// empty: none. Only set it when a proxy you control sets (and overwrites) the header.
    pub country_header: OptionalHeader,
    /// Record metrics and stats (off only to measure their overhead).
    pub metrics: bool,
    /// OTLP/HTTP traces endpoint (needs the `otlp` cargo feature); empty: no export.
    pub otlp_endpoint: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            service: "authserver".into(),
            stage: "dev".into(),
            country_header: OptionalHeader::default(),
            metrics: true,
            otlp_endpoint: String::new(),
        }
    }
}

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Write audit events to stdout as JSON lines with `"log_type":"audit"` (stderr for CLI commands).
    pub stdout: bool,
    /// Append-only, hash-chained audit file (empty: none).
    pub file: String,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            stdout: true,
            file: String::new(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// The listener for `/metrics`, `/stats`, `/dashboard`, the detailed `/ready` and the cache
    /// purge; empty: none at all. They never share the public listener: failure reasons
    /// enumerate usernames and `/stats` shows client addresses.
    pub listen: AdminListen,
    /// Host names (without port) the admin routes answer besides IP literals and `localhost`:
    /// any other `Host` is refused, so a DNS-rebinding page cannot read them.
    pub allowed_hosts: Vec<String>,
}

/// Where the admin listener binds by default: loopback only.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: AdminListen::at(DEFAULT_ADMIN_LISTEN),
            allowed_hosts: Vec::new(),
        }
    }
}

impl AdminSettings {
    /// The admin listener's address, if one is configured.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.addr()
    }
}
