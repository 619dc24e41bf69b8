//! `[rules]`: where the access rules come from (the rules themselves are a file of their own,
//! reloaded while the server runs: see [`crate::access`]).

use serde::{Deserialize, Serialize};

/// `[rules]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSettings {
    /// The access rules file (TOML, `docs/access-rules.md`); empty: no rules, any
    /// authenticated user passes. Polled every `store.poll_interval_ms`.
    pub file: String,
}
