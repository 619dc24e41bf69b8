//! Settings: one typed struct with working defaults, read from an optional TOML file and then
//! overridden by environment variables.
//!
//! Every key `section.key` has the variable `AUTHSERVER_SECTION_KEY`; the product brief's Lambda
//! names are aliases ([`ALIASES`]). Unknown keys, in the file or as `AUTHSERVER_*` variables, are
//! errors. `config/default.toml` is the documented default file (`authserver config default`).

use authserver_core::HashPolicy;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The documented default file, printed by `authserver config default`.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Environment aliases: (variable, `section.key`).
pub const ALIASES: &[(&str, &str)] = &[
    ("CREDENTIAL_SECRET_ARN", "store.secret_id"),
    ("CACHE_TTL_MINUTES", "store.cache_ttl_minutes"),
    ("LOG_LEVEL", "log.level"),
    ("AUTHSERVER_LAMBDA_MODE", "lambda.mode"),
    ("AUTHSERVER_STAGE", "telemetry.stage"),
    ("AUTHSERVER_SERVICE", "telemetry.service"),
    (
        "AUTHSERVER_USER_HASH_KEY_SECRET_ARN",
        "log.user_hash_key_secret_id",
    ),
    ("AUTHSERVER_REGULATION_TABLE", "regulation.dynamodb_table"),
];

/// Variables with the `AUTHSERVER_` prefix that are not settings.
const NOT_SETTINGS: &[&str] = &["AUTHSERVER_CONFIG"];

/// Prefix of the test suite's own switches (e.g. `AUTHSERVER_REQUIRE_BROWSER`), which the
/// binaries under test inherit; they are not settings.
const TEST_SWITCHES: &str = "AUTHSERVER_REQUIRE_";

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// HTTP listener and limits.
    pub server: ServerSettings,
    /// Credential store.
    pub store: StoreSettings,
    /// Argon2id policy and the verification limiter.
    pub hash: HashSettings,
    /// Verified-credential cache.
    pub cache: CacheSettings,
    /// Logging.
    pub log: LogSettings,
    /// Metric dimensions.
    pub telemetry: TelemetrySettings,
    /// Lambda behaviour.
    pub lambda: LambdaSettings,
    /// Brute-force regulation.
    pub regulation: RegulationSettings,
    /// Admin endpoints (`/metrics`, `/stats`, `/dashboard`).
    pub admin: AdminSettings,
    /// Audit trail sinks.
    pub audit: AuditSettings,
    /// TLS for the standalone server.
    pub tls: TlsSettings,
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
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Separate listener for `/metrics`, `/stats`, `/dashboard` (empty: served on `server.listen`).
    pub listen: String,
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
    /// Response header carrying the username on `/auth/forward` success.
    pub forward_user_header: String,
    /// Response header carrying the comma-separated roles on `/auth/forward` success.
    pub forward_roles_header: String,
    /// Proxies (addresses or CIDRs) whose `X-Forwarded-For` is believed; the client is the
    /// right-most address not in this list. Empty: the socket peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Serve plain HTTP on a non-loopback address without TLS (behind a TLS-terminating proxy on
    /// a private network). Off: such a server refuses to start.
    pub allow_plaintext: bool,
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
            forward_user_header: "Remote-User".into(),
            forward_roles_header: "Remote-Groups".into(),
            trusted_proxies: Vec::new(),
            allow_plaintext: false,
        }
    }
}

/// Which credential store backs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// A JSON file on disk, watched for changes (the default).
    File,
    /// One AWS Secrets Manager secret.
    SecretsManager,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `file` or `secrets_manager`.
    pub kind: StoreKind,
    /// Users file for the file store.
    pub file: PathBuf,
    /// How often the file store checks the file for changes (ms).
    pub poll_interval_ms: u64,
    /// Secret name or ARN for the Secrets Manager store.
    pub secret_id: String,
    /// Endpoint override for AWS-compatible servers (empty: the standard endpoint).
    pub endpoint_url: String,
    /// Snapshot time-to-live (minutes).
    pub cache_ttl_minutes: u64,
    /// How often the version holding `AWSCURRENT` is checked (seconds).
    pub version_check_seconds: u64,
    /// Longest a snapshot is served after the store stopped answering (minutes); then 503.
    pub max_stale_minutes: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            kind: StoreKind::File,
            file: PathBuf::from("examples/users.json"),
            poll_interval_ms: 500,
            secret_id: String::new(),
            endpoint_url: String::new(),
            cache_ttl_minutes: 5,
            version_check_seconds: 30,
            max_stale_minutes: 60,
        }
    }
}

/// `[hash]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashSettings {
    /// Parameter policy every stored hash must meet.
    #[serde(flatten)]
    pub policy: HashPolicy,
    /// Memory all concurrent verifications may use together (MiB).
    pub memory_budget_mib: u64,
    /// Concurrent verifications (0: one per CPU but one, at least one).
    pub max_concurrent: usize,
    /// Longest a request waits for a verification slot (ms); then 503.
    pub queue_timeout_ms: u64,
    /// Requests allowed to wait for a slot; beyond, 503 at once.
    pub max_queue: usize,
}

impl Default for HashSettings {
    fn default() -> Self {
        Self {
            policy: HashPolicy::default(),
            memory_budget_mib: 1024,
            max_concurrent: 0,
            queue_timeout_ms: 2000,
            max_queue: 256,
        }
    }
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Verified credentials remembered (0 disables the cache).
    pub capacity: usize,
    /// How long one success is remembered (seconds; capped at the snapshot TTL).
    pub ttl_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl_seconds: 300,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable text.
    Text,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive.
    pub level: String,
    /// `json` or `text`.
    pub format: LogFormat,
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
            user_hash_key: String::new(),
            user_hash_key_secret_id: String::new(),
        }
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
    pub country_header: String,
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
            country_header: String::new(),
            metrics: true,
            otlp_endpoint: String::new(),
        }
    }
}

/// `[lambda]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaSettings {
    /// `proxy`, `authorizer`, `rotation` or `compliance`.
    pub mode: String,
}

impl Default for LambdaSettings {
    fn default() -> Self {
        Self { mode: "proxy".into() }
    }
}

/// `[regulation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegulationSettings {
    /// Thresholds and ban lengths.
    #[serde(flatten)]
    pub policy: authserver_core::regulation::RegulationPolicy,
    /// How long a source that succeeded for a user stays exempt from that user's lock (seconds).
    pub trusted_source_seconds: u64,
    /// Keys kept by the in-memory backend.
    pub max_entries: usize,
    /// DynamoDB table for shared regulation state (empty: in memory).
    pub dynamodb_table: String,
}

impl Default for RegulationSettings {
    fn default() -> Self {
        Self {
            policy: Default::default(),
            trusted_source_seconds: 86_400,
            max_entries: 100_000,
            dynamodb_table: String::new(),
        }
    }
}

/// A settings problem, with the key or variable it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or the merged settings do not fit the schema (unknown key, wrong type).
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// An environment variable that is not a setting.
    #[error("unknown environment variable {0} (see docs/configuration.md)")]
    UnknownEnv(String),
    /// An environment variable whose value does not fit the key's type.
    #[error("environment variable {var}: {why}")]
    EnvValue {
        /// The variable.
        var: String,
        /// Why.
        why: String,
    },
    /// Values that parse but cannot work together.
    #[error("invalid setting {key}: {why}")]
    Invalid {
        /// `section.key`.
        key: &'static str,
        /// Why.
        why: String,
    },
}

impl Settings {
    /// Reads `file` (if any) and applies the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::Parse(e.message().to_owned()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let settings: Settings =
            Settings::deserialize(table).map_err(|e| ConfigError::Parse(e.message().to_owned()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, why: &str| {
            Err(ConfigError::Invalid {
                key,
                why: why.to_owned(),
            })
        };
        let p = &self.hash.policy;
        if p.min_m_kib > p.max_m_kib || p.min_t > p.max_t || p.min_t == 0 || p.max_p == 0 {
            return invalid(
                "hash.min_m_kib",
                "policy bounds are empty (min above max, or zero)",
            );
        }
        if p.min_m_kib < 8 * p.max_p {
            return invalid("hash.min_m_kib", "Argon2 needs at least 8 KiB per lane");
        }
        if self.hash.memory_budget_mib * 1024 < u64::from(p.max_m_kib) {
            return invalid(
                "hash.memory_budget_mib",
                "must allow at least one verification at hash.max_m_kib",
            );
        }
        if self.server.max_header_bytes < 8192 {
            return invalid("server.max_header_bytes", "must be at least 8192");
        }
        if self.server.max_connections == 0 || self.server.request_timeout_ms == 0 {
            return invalid(
                "server.max_connections",
                "connections and timeouts must be positive",
            );
        }
        if self
            .server
            .trusted_proxies
            .iter()
            .any(|p| crate::http::client::parse_net(p).is_none())
        {
            return invalid(
                "server.trusted_proxies",
                "each entry must be an IP address or CIDR",
            );
        }
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            return invalid(
                "tls.cert_file",
                "set both tls.cert_file and tls.key_file, or neither",
            );
        }
        if !self.tls.enabled() && !self.server.allow_plaintext && !self.server.listen.ip().is_loopback() {
            return invalid(
                "server.allow_plaintext",
                "refusing plain HTTP on a non-loopback address: configure [tls] or set server.allow_plaintext = true",
            );
        }
        if !self.admin.listen.is_empty() && self.admin.listen.parse::<SocketAddr>().is_err() {
            return invalid("admin.listen", "not a socket address");
        }
        if !self.telemetry.country_header.is_empty()
            && http::HeaderName::try_from(self.telemetry.country_header.as_str()).is_err()
        {
            return invalid("telemetry.country_header", "not a valid HTTP header name");
        }
        for name in [
            &self.server.forward_user_header,
            &self.server.forward_roles_header,
        ] {
            if http::HeaderName::try_from(name.as_str()).is_err() {
                return invalid("server.forward_user_header", "not a valid HTTP header name");
            }
        }
        if self.store.kind == StoreKind::SecretsManager && self.store.secret_id.is_empty() {
            return invalid(
                "store.secret_id",
                "required for the secrets_manager store (CREDENTIAL_SECRET_ARN)",
            );
        }
        if self.store.cache_ttl_minutes == 0 || self.store.poll_interval_ms == 0 {
            return invalid("store.cache_ttl_minutes", "must be positive");
        }
        if !["proxy", "authorizer", "rotation", "compliance"].contains(&self.lambda.mode.as_str()) {
            return invalid("lambda.mode", "must be proxy, authorizer, rotation or compliance");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid("log.level", "not a level or filter directive");
        }
        Ok(())
    }

    /// Seconds a verified credential stays cached: the setting, capped at the snapshot TTL.
    pub fn cache_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cache.ttl_seconds.min(self.store.cache_ttl_minutes * 60))
    }
}

/// Writes every recognised variable into `table` at its key, typed like the default value there.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Settings::default())
        .map_err(|e| ConfigError::Parse(format!("defaults do not serialise: {e}")))?;
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    // Aliases first, so the canonical AUTHSERVER_* name wins when both are set.
    vars.sort_by_key(|(k, _)| !ALIASES.iter().any(|(a, _)| a == k));
    for (var, value) in vars {
        let key = if let Some((_, key)) = ALIASES.iter().find(|(a, _)| *a == var) {
            (*key).to_owned()
        } else if let Some(rest) = var.strip_prefix("AUTHSERVER_") {
            if NOT_SETTINGS.contains(&var.as_str()) || var.starts_with(TEST_SWITCHES) {
                continue;
            }
            match find_key(&defaults, &rest.to_ascii_lowercase()) {
                Some(key) => key,
                None => return Err(ConfigError::UnknownEnv(var)),
            }
        } else {
            continue;
        };
        let (section, name) = key.split_once('.').unwrap_or(("", &key));
        let template = defaults.get(section).and_then(|s| s.get(name));
        let typed = match template {
            Some(toml::Value::Integer(_)) => {
                value
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| ConfigError::EnvValue {
                        var: var.clone(),
                        why: "expected an integer".into(),
                    })?
            }
            Some(toml::Value::Boolean(_)) => {
                value
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| ConfigError::EnvValue {
                        var: var.clone(),
                        why: "expected true or false".into(),
                    })?
            }
            Some(toml::Value::Array(_)) => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.to_owned()))
                    .collect(),
            ),
            _ => toml::Value::String(value),
        };
        let section_table = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match section_table {
            toml::Value::Table(t) => {
                t.insert(name.to_owned(), typed);
            }
            _ => return Err(ConfigError::Parse(format!("[{section}] must be a table"))),
        }
    }
    Ok(())
}

/// Maps `section_key` (lower case) to `section.key` when such a key exists.
fn find_key(defaults: &toml::Table, flat: &str) -> Option<String> {
    defaults.iter().find_map(|(section, value)| {
        let name = flat.strip_prefix(section.as_str())?.strip_prefix('_')?;
        value
            .as_table()?
            .contains_key(name)
            .then(|| format!("{section}.{name}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn documented_default_file_equals_the_defaults() {
        let parsed: Settings = toml::from_str(DEFAULT_TOML).expect("default.toml parses");
        assert_eq!(parsed, Settings::default());
        Settings::default().validate().expect("defaults are valid");
    }

    #[test]
    fn env_overrides_with_aliases_and_types() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("AUTHSERVER_SERVER_LISTEN", "0.0.0.0:9000"),
                ("AUTHSERVER_SERVER_ALLOW_PLAINTEXT", "true"),
                ("AUTHSERVER_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
                ("CACHE_TTL_MINUTES", "7"),
                ("AUTHSERVER_STORE_KIND", "secrets_manager"),
                (
                    "CREDENTIAL_SECRET_ARN",
                    "arn:aws:secretsmanager:eu-west-1:1:secret:x",
                ),
                ("AUTHSERVER_HASH_MIN_M_KIB", "32768"),
                ("LOG_LEVEL", "debug"),
                ("AUTHSERVER_LOG_LEVEL", "warn"),
                ("AUTHSERVER_CONFIG", "ignored"),
                ("AUTHSERVER_REQUIRE_BROWSER", "1"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.server.listen.port(), 9000);
        assert_eq!(
            s.server.trusted_proxies,
            ["10.0.0.0/8", "192.168.1.1"],
            "lists split at commas"
        );
        assert_eq!(s.store.cache_ttl_minutes, 7);
        assert_eq!(s.store.kind, StoreKind::SecretsManager);
        assert_eq!(s.hash.policy.min_m_kib, 32768);
        assert_eq!(s.log.level, "warn", "canonical name beats alias");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = Settings::load_with_env(None, env(&[("AUTHSERVER_SERVER_LISTN", "x")])).expect_err("typo");
        assert!(matches!(err, ConfigError::UnknownEnv(ref v) if v == "AUTHSERVER_SERVER_LISTN"));
        let err = Settings::load_with_env(None, env(&[("CACHE_TTL_MINUTES", "five")])).expect_err("type");
        assert!(err.to_string().contains("CACHE_TTL_MINUTES"));
        let err =
            Settings::load_with_env(None, env(&[("AUTHSERVER_SERVER_LISTEN", "nope")])).expect_err("addr");
        assert!(matches!(err, ConfigError::Parse(_)));
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[server]\nlisen = \"127.0.0.1:1\"\n").expect("write");
        let err = Settings::load_with_env(Some(&f), env(&[])).expect_err("unknown key");
        assert!(err.to_string().contains("lisen"), "{err}");
        let err =
            Settings::load_with_env(Some(&dir.path().join("missing.toml")), env(&[])).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn validation_catches_impossible_combinations() {
        for (var, value, key) in [
            ("AUTHSERVER_HASH_MIN_T", "20", "hash.min_m_kib"),
            ("AUTHSERVER_HASH_MEMORY_BUDGET_MIB", "1", "hash.memory_budget_mib"),
            (
                "AUTHSERVER_SERVER_MAX_HEADER_BYTES",
                "100",
                "server.max_header_bytes",
            ),
            ("AUTHSERVER_STORE_KIND", "secrets_manager", "store.secret_id"),
            ("AUTHSERVER_LAMBDA_MODE", "other", "lambda.mode"),
            ("LOG_LEVEL", "lots=of=noise", "log.level"),
        ] {
            match Settings::load_with_env(None, env(&[(var, value)])) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{var}"),
                other => panic!("{var}: {other:?}"),
            }
        }
    }

    #[test]
    fn cache_ttl_is_capped_by_snapshot_ttl() {
        let mut s = Settings::default();
        s.cache.ttl_seconds = 3600;
        assert_eq!(s.cache_ttl().as_secs(), 300);
    }
}

#[cfg(test)]
mod docs_tests {
    use super::*;

    /// docs/configuration.md names every key's variable, and every alias.
    #[test]
    fn every_key_is_documented() {
        let docs = include_str!("../../../docs/configuration.md");
        let defaults = toml::Table::try_from(Settings::default()).expect("serialises");
        for (section, keys) in &defaults {
            for key in keys.as_table().expect("sections are tables").keys() {
                let var = format!("AUTHSERVER_{}_{}", section.to_uppercase(), key.to_uppercase());
                assert!(docs.contains(&var), "docs/configuration.md lacks {var}");
            }
        }
        for (alias, key) in ALIASES {
            assert!(
                docs.contains(alias) && docs.contains(key),
                "docs lack alias {alias}"
            );
        }
    }
}
