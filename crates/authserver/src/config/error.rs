//! What goes wrong with settings, and which typed key a failed load tripped on.

use std::path::PathBuf;

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
    /// An environment variable whose value does not fit the key's type.
    #[error("environment variable {var}: {why}")]
    EnvValue {
        /// The variable.
        var: String,
        /// Why.
        why: String,
    },
    /// A value that does not parse into its key's type, or values that parse but cannot work
    /// together.
    #[error("invalid setting {key}: {why}")]
    Invalid {
        /// `section.key`: the key to change.
        key: &'static str,
        /// Why.
        why: String,
    },
}

impl ConfigError {
    /// `Err(Invalid)` for `key`, the shape every `validate` returns.
    pub(super) fn invalid<T>(key: &'static str, why: &str) -> Result<T, Self> {
        Err(Self::Invalid {
            key,
            why: why.to_owned(),
        })
    }
}
