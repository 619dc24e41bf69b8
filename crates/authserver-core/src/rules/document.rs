//! The rules file as written: `default`, `[[rule]]` entries and `api_routes` (TOML).

use super::RuleError;
use serde::Deserialize;

/// What a rule does with a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// 200 without credentials.
    Bypass,
    /// 403 without credentials.
    Deny,
    /// Authenticate, then the subject decides (200 or 403).
    Allow,
}

/// Whether a subject needs any or all of its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    /// One user, role or scope listed suffices.
    #[default]
    Any,
    /// Every role and scope listed is needed (and the user, if users are listed).
    All,
}

/// One rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Label for metrics, logs and audit.
    pub name: String,
    /// Host patterns.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefixes (segment-aware).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Path globs (`*` in a segment, `**` across).
    #[serde(default)]
    pub path_globs: Vec<String>,
    /// Anchored path regexes.
    #[serde(default)]
    pub path_regexes: Vec<String>,
    /// Methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Client networks.
    #[serde(default)]
    pub networks: Vec<String>,
    /// The policy.
    pub policy: Option<PolicyKind>,
    /// Subject: usernames.
    #[serde(default)]
    pub users: Vec<String>,
    /// Subject: roles (groups).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Subject: OAuth scopes (bearer tokens; Basic users have none).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Subject: any or all.
    #[serde(default)]
    pub require: Require,
}

/// What happens when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// 403 without credentials (the default once rules exist).
    #[default]
    Deny,
    /// Any authenticated user (the behaviour without rules).
    Authenticated,
}

/// A rules file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesDocument {
    /// When no rule matches.
    #[serde(default)]
    pub default: DefaultPolicy,
    /// The rules, in order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
    /// The API Gateway routes a REST authorizer's policy lists (`GET /orders/{id}`).
    #[serde(default)]
    pub api_routes: Vec<String>,
}

impl RulesDocument {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        toml::from_str(text).map_err(|e| RuleError::Syntax(e.message().to_owned()))
    }
}
