//! `[users_table]`: the DynamoDB users store (`store.kind = "dynamodb"`), for more users than
//! one secret holds. `store.endpoint_url` and `store.max_stale_minutes` apply to it too.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[users_table]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersTableSettings {
    /// The DynamoDB table (name or ARN; `AUTHSERVER_USERS_TABLE`).
    pub name: String,
    /// Users whose entries each instance keeps (an LRU; a miss costs one `GetItem`).
    pub entry_capacity: usize,
    /// Longest an entry answers without being read again when the table version has not
    /// changed (seconds): the bound for writes made around the CLI.
    pub entry_ttl_seconds: u64,
    /// Shortest time between two reads of the table version (seconds): the pickup bound for
    /// CLI writes, plus one round trip.
    pub version_poll_seconds: u64,
}

impl Default for UsersTableSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            entry_capacity: 10_000,
            entry_ttl_seconds: 300,
            version_poll_seconds: 5,
        }
    }
}

impl UsersTableSettings {
    /// Checks the table name the store needs (when it is the store) and positive bounds.
    pub fn validate(&self, in_use: bool) -> Result<(), ConfigError> {
        if in_use && self.name.is_empty() {
            return ConfigError::invalid(
                "users_table.name",
                "required for the dynamodb store (AUTHSERVER_USERS_TABLE)",
            );
        }
        for (key, value) in [
            ("users_table.entry_capacity", self.entry_capacity as u64),
            ("users_table.entry_ttl_seconds", self.entry_ttl_seconds),
            ("users_table.version_poll_seconds", self.version_poll_seconds),
        ] {
            if value == 0 {
                return ConfigError::invalid(key, "must be positive");
            }
        }
        Ok(())
    }

    /// The adapter's configuration, with the store's staleness bound and hash policy.
    pub fn config(
        &self,
        max_stale: Duration,
        policy: authserver_core::HashPolicy,
    ) -> authserver_aws::UsersTableConfig {
        authserver_aws::UsersTableConfig {
            entry_capacity: self.entry_capacity,
            entry_ttl: Duration::from_secs(self.entry_ttl_seconds),
            version_poll: Duration::from_secs(self.version_poll_seconds),
            max_stale,
            policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::invalid_key as key;

    #[test]
    fn the_dynamodb_store_needs_a_table_and_positive_bounds() {
        let s = UsersTableSettings::default();
        assert!(s.validate(false).is_ok(), "not in use: no name needed");
        assert_eq!(key(s.validate(true)), "users_table.name");
        let s = UsersTableSettings {
            name: "users".into(),
            version_poll_seconds: 0,
            ..Default::default()
        };
        assert_eq!(key(s.validate(true)), "users_table.version_poll_seconds");
    }

    #[test]
    fn the_table_is_set_by_its_alias_and_selected_by_store_kind() {
        let env = [
            ("AUTHSERVER_STORE_KIND", "dynamodb"),
            ("AUTHSERVER_USERS_TABLE", "authserver-users"),
            ("AUTHSERVER_USERS_TABLE_ENTRY_CAPACITY", "50"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s = crate::config::Settings::load_with_env(None, env).expect("valid");
        assert_eq!(s.store.kind, crate::config::StoreKind::Dynamodb);
        assert_eq!(s.users_table.name, "authserver-users");
        assert_eq!(s.users_table.entry_capacity, 50);
        assert!(s.env_warnings.is_empty(), "{:?}", s.env_warnings);
    }
}
