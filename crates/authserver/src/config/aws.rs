//! The AWS-side sections: `[lambda]`, `[regulation]` (its shared state is a DynamoDB table),
//! `[rotation]` and `[compliance]`.

use super::ConfigError;
use authserver_aws::PasswordRuleError;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What the Lambda function does (`lambda.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum LambdaMode {
    /// HTTP events through the router (the default).
    Proxy,
    /// API Gateway authorizer events.
    Authorizer,
    /// Secrets Manager rotation events.
    Rotation,
    /// The scheduled compliance check.
    Compliance,
}

impl LambdaMode {
    /// Why a mode was refused.
    pub const INVALID: &'static str = "must be proxy, authorizer, rotation or compliance";

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Authorizer => "authorizer",
            Self::Rotation => "rotation",
            Self::Compliance => "compliance",
        }
    }
}

impl FromStr for LambdaMode {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "proxy" => Ok(Self::Proxy),
            "authorizer" => Ok(Self::Authorizer),
            "rotation" => Ok(Self::Rotation),
            "compliance" => Ok(Self::Compliance),
            _ => Err(Self::INVALID),
        }
    }
}

impl TryFrom<String> for LambdaMode {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<LambdaMode> for &'static str {
    fn from(mode: LambdaMode) -> Self {
        mode.as_str()
    }
}

/// `[lambda]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaSettings {
    /// `proxy`, `authorizer`, `rotation` or `compliance`.
    pub mode: LambdaMode,
    /// Total time init may spend on AWS calls (the `user_hash` key and the first secret fetch)
    /// before the function starts answering 503 and keeps fetching in the background. Lambda
    /// kills an init that takes 10 s.
    pub init_budget_ms: u64,
    /// `Header-Name: value` that the CloudFront distribution adds to every origin request.
    /// When set (proxy mode), `CloudFront-Viewer-Address` is the client address, but only on
    /// requests carrying exactly this header (compared in constant time; the value is never
    /// logged). Empty: CloudFront headers are ignored.
    pub cloudfront_secret_header: String,
}

impl Default for LambdaSettings {
    fn default() -> Self {
        Self {
            mode: LambdaMode::Proxy,
            init_budget_ms: 4000,
            cloudfront_secret_header: String::new(),
        }
    }
}

impl LambdaSettings {
    /// `cloudfront_secret_header` split into (lower-case name, value); `None` when unset or not
    /// of the form `Name: value` (`validate` refuses that).
    pub fn cloudfront_secret(&self) -> Option<(String, String)> {
        let (name, value) = self.cloudfront_secret_header.split_once(':')?;
        let (name, value) = (name.trim(), value.trim());
        let valid = http::HeaderName::try_from(name).is_ok() && !value.is_empty();
        valid.then(|| (name.to_ascii_lowercase(), value.to_owned()))
    }

    /// Checks `cloudfront_secret_header` and `init_budget_ms`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.cloudfront_secret_header.is_empty() && self.cloudfront_secret().is_none() {
            // The value is a secret: the message never quotes it.
            return ConfigError::invalid(
                "lambda.cloudfront_secret_header",
                "must be `Header-Name: value` with a valid header name and a non-empty value",
            );
        }
        if self.init_budget_ms == 0 || self.init_budget_ms > 9000 {
            return ConfigError::invalid(
                "lambda.init_budget_ms",
                "must be between 1 and 9000 (Lambda kills an init that takes 10 s)",
            );
        }
        Ok(())
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
    /// IPv4 sources are regulated per network of this prefix length (32: per address).
    pub ipv4_prefix: u8,
    /// IPv6 sources are regulated per network of this prefix length (64: one host commonly
    /// holds a whole /64, so per-address bans would be walked around).
    pub ipv6_prefix: u8,
    /// DynamoDB table for shared regulation state (empty: in memory).
    pub dynamodb_table: String,
}

impl Default for RegulationSettings {
    fn default() -> Self {
        Self {
            policy: Default::default(),
            trusted_source_seconds: 86_400,
            max_entries: 100_000,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            dynamodb_table: String::new(),
        }
    }
}

impl RegulationSettings {
    /// Checks the prefix lengths and the window (a zero window counts nothing and bans for no
    /// time, which is regulation switched off by accident: `regulation.enabled` says that).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.policy.window_seconds == 0 {
            return ConfigError::invalid("regulation.window_seconds", "must be positive");
        }
        if !(8..=32).contains(&self.ipv4_prefix) {
            return ConfigError::invalid("regulation.ipv4_prefix", "must be 8 to 32");
        }
        if !(16..=128).contains(&self.ipv6_prefix) {
            return ConfigError::invalid("regulation.ipv6_prefix", "must be 16 to 128");
        }
        Ok(())
    }
}

/// The longest wait before `finishSecret` (the template gives the rotation function 120 s).
pub const MAX_SETTLE_SECONDS: u64 = 90;

/// `[rotation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationSettings {
    /// Length of the passwords generated for service accounts.
    pub password_length: usize,
    /// Characters they are drawn from, uniformly (printable ASCII, no repeats).
    pub password_alphabet: String,
    /// Seconds `finishSecret` waits before moving `AWSCURRENT`, so that every busy server has
    /// loaded `AWSPENDING` (and accepts the new passwords) before a client can read its new
    /// password as current. At least `store.version_check_seconds` + 5 is used; 0: no wait.
    pub settle_seconds: u64,
}

impl Default for RotationSettings {
    fn default() -> Self {
        Self {
            password_length: 32,
            password_alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".into(),
            settle_seconds: 35,
        }
    }
}

impl RotationSettings {
    /// The rotation function's configuration for `secret_id` (any secret when `None`), hashing
    /// to `policy`, waiting `settle_seconds` before `finishSecret`.
    pub fn config(
        &self,
        secret_id: Option<String>,
        policy: authserver_core::HashPolicy,
        settle_seconds: u64,
    ) -> authserver_aws::RotationConfig {
        authserver_aws::RotationConfig {
            secret_id,
            password_length: self.password_length,
            alphabet: self.password_alphabet.chars().collect(),
            policy,
            retry: authserver_aws::RetryPolicy::default(),
            settle: std::time::Duration::from_secs(settle_seconds),
        }
    }

    /// The wait before `finishSecret`: the setting, but never less than one version check
    /// every `version_check_seconds` (plus 5 s for the check's round trip and clock skew);
    /// 0 turns it off.
    pub fn settle_seconds(&self, version_check_seconds: u64) -> u64 {
        match self.settle_seconds {
            0 => 0,
            s => s.max(version_check_seconds.saturating_add(5)),
        }
    }

    /// Checks the generated passwords' length and alphabet (the wait needs `[store]`: see
    /// `Settings::validate`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let config = self.config(None, Default::default(), 0);
        match config.validate() {
            Ok(()) => Ok(()),
            Err(why @ (PasswordRuleError::AlphabetRepeats | PasswordRuleError::AlphabetNotPrintable)) => {
                ConfigError::invalid("rotation.password_alphabet", &why.to_string())
            }
            Err(why @ (PasswordRuleError::TooLong | PasswordRuleError::TooWeak { .. })) => {
                ConfigError::invalid("rotation.password_length", &why.to_string())
            }
        }
    }
}

/// `[compliance]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceSettings {
    /// Longest allowed rotation interval of the credential secret (days).
    pub max_rotation_days: u32,
    /// Oldest allowed `passwordChangedAt` of an ACTIVE user (days).
    pub max_password_age_days: u32,
    /// Shortest allowed retention of the deployment's log groups (days).
    pub min_log_retention_days: u32,
}

impl Default for ComplianceSettings {
    fn default() -> Self {
        Self {
            max_rotation_days: 90,
            max_password_age_days: 90,
            min_log_retention_days: 365,
        }
    }
}

impl ComplianceSettings {
    /// Checks that the day limits are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_rotation_days == 0 {
            return ConfigError::invalid("compliance.max_rotation_days", "day limits must be positive");
        }
        if self.max_password_age_days == 0 {
            return ConfigError::invalid("compliance.max_password_age_days", "day limits must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::error::invalid_key as key;

    #[test]
    fn modes_parse_with_todays_spellings_only() {
        for mode in ["proxy", "authorizer", "rotation", "compliance"] {
            assert_eq!(mode.parse::<LambdaMode>().map(LambdaMode::as_str), Ok(mode));
        }
        assert_eq!("Proxy".parse::<LambdaMode>(), Err(LambdaMode::INVALID));
    }

    #[test]
    fn rotation_errors_name_the_key_by_kind() {
        let mut r = RotationSettings {
            password_alphabet: "ab c".into(),
            ..Default::default()
        };
        assert_eq!(key(r.validate()), "rotation.password_alphabet");
        r.password_alphabet = RotationSettings::default().password_alphabet;
        r.password_length = 2000;
        assert_eq!(key(r.validate()), "rotation.password_length");
    }

    #[test]
    fn each_compliance_limit_is_named() {
        let c = ComplianceSettings {
            max_password_age_days: 0,
            ..Default::default()
        };
        assert_eq!(key(c.validate()), "compliance.max_password_age_days");
    }
}
