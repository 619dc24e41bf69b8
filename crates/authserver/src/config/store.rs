//! Where credentials come from and what verifying them may cost: `[store]`, `[hash]`,
//! `[cache]`.

use super::ConfigError;
use authserver_core::HashPolicy;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which credential store backs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// A JSON file on disk, watched for changes (the default).
    File,
    /// One AWS Secrets Manager secret.
    SecretsManager,
    /// A DynamoDB table, one item per user (`[users_table]`).
    Dynamodb,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `file`, `secrets_manager` or `dynamodb`.
    pub kind: StoreKind,
    /// Users file for the file store.
    pub file: PathBuf,
    /// How often the file store checks the file for changes (ms).
    pub poll_interval_ms: u64,
    /// Largest users file read (bytes); a larger one is refused and the last good snapshot kept.
    pub max_file_bytes: u64,
    /// A users-file poll that reads no byte for this long (ms) is reported as stalled.
    pub reload_deadline_ms: u64,
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
    /// During a rotation, also accept service accounts' passwords from `AWSPENDING`.
    pub accept_pending: bool,
    /// After a rotation, how long service accounts' `AWSPREVIOUS` passwords still work
    /// (seconds; 0: not at all).
    pub previous_grace_seconds: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            kind: StoreKind::File,
            file: PathBuf::from("examples/users.json"),
            poll_interval_ms: 500,
            max_file_bytes: 8 * 1024 * 1024,
            reload_deadline_ms: 10_000,
            secret_id: String::new(),
            endpoint_url: String::new(),
            cache_ttl_minutes: 5,
            version_check_seconds: 30,
            max_stale_minutes: 60,
            accept_pending: true,
            previous_grace_seconds: 7200,
        }
    }
}

impl StoreSettings {
    /// Checks the secret id a Secrets Manager store needs and the positive durations and sizes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.kind == StoreKind::SecretsManager && self.secret_id.is_empty() {
            return ConfigError::invalid(
                "store.secret_id",
                "required for the secrets_manager store (CREDENTIAL_SECRET_ARN)",
            );
        }
        for (key, value) in [
            ("store.cache_ttl_minutes", self.cache_ttl_minutes),
            ("store.poll_interval_ms", self.poll_interval_ms),
            ("store.max_file_bytes", self.max_file_bytes),
            ("store.reload_deadline_ms", self.reload_deadline_ms),
        ] {
            if value == 0 {
                return ConfigError::invalid(key, "must be positive");
            }
        }
        Ok(())
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

impl HashSettings {
    /// Checks that the policy bounds hold a hash at all and the budget one verification.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.policy;
        if p.min_m_kib > p.max_m_kib {
            return ConfigError::invalid("hash.min_m_kib", "policy bounds are empty (min above max)");
        }
        if p.min_t == 0 || p.min_t > p.max_t {
            return ConfigError::invalid("hash.min_t", "policy bounds are empty (min above max, or zero)");
        }
        if p.max_p == 0 {
            return ConfigError::invalid("hash.max_p", "policy bounds are empty (zero)");
        }
        if p.min_m_kib < 8 * p.max_p {
            return ConfigError::invalid("hash.min_m_kib", "Argon2 needs at least 8 KiB per lane");
        }
        if self.memory_budget_mib * 1024 < u64::from(p.max_m_kib) {
            return ConfigError::invalid(
                "hash.memory_budget_mib",
                "must allow at least one verification at hash.max_m_kib",
            );
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::error::invalid_key as key;

    /// Reported as `hash.min_m_kib` before.
    #[test]
    fn an_empty_time_bound_names_min_t() {
        let mut h = HashSettings::default();
        h.policy.min_t = h.policy.max_t + 1;
        assert_eq!(key(h.validate()), "hash.min_t");
        h.policy.min_t = 0;
        assert_eq!(key(h.validate()), "hash.min_t");
    }

    /// Reported as `store.cache_ttl_minutes` and `store.max_file_bytes` before.
    #[test]
    fn each_zero_store_duration_names_itself() {
        let s = StoreSettings {
            poll_interval_ms: 0,
            ..Default::default()
        };
        assert_eq!(key(s.validate()), "store.poll_interval_ms");
        let s = StoreSettings {
            reload_deadline_ms: 0,
            ..Default::default()
        };
        assert_eq!(key(s.validate()), "store.reload_deadline_ms");
    }
}
