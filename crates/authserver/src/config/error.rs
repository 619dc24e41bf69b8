//! What goes wrong with settings: the error every section returns, and how a value that does
//! not deserialise is reported (by its path, never quoting it).

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
    /// A value that does not deserialise into its key's type (wrong TOML type, or text its type
    /// refuses), named by its path; never quoting the value, which may be a secret.
    #[error("invalid setting {key}: {why}")]
    Value {
        /// `section.key`, as the file spells it.
        key: String,
        /// Why, without the value.
        why: String,
    },
    /// A value that its section's checks refuse, or values that parse but cannot work together.
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

impl ConfigError {
    /// The error for merged settings that do not deserialise: the key named by its path when
    /// serde knows it, and never the offending value (`log.user_hash_key = 12345` must not
    /// print the key material; serde writes values as `` `12345` `` or `"text"`).
    pub(super) fn from_serde(e: &serde_path_to_error::Error<toml::de::Error>) -> Self {
        let why = without_values(e.inner().message());
        let key = e.path().to_string();
        if key.contains('.') {
            Self::Value { key, why }
        } else {
            // A section-level problem (unknown or misplaced key): the message names the key.
            Self::Parse(why)
        }
    }
}

/// `message` without the values serde quotes after a type name ("invalid type: integer `5`,
/// expected a string" → "invalid type: integer, expected a string"). Names serde quotes
/// elsewhere (`` unknown field `x` ``) stay: they are keys, not values.
pub(super) fn without_values(message: &str) -> String {
    const KINDS: [(&str, char); 6] = [
        ("integer `", '`'),
        ("floating point `", '`'),
        ("boolean `", '`'),
        ("character `", '`'),
        ("string \"", '"'),
        ("bytes `", '`'),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, kind, close)) = KINDS
        .iter()
        .filter_map(|&(k, c)| rest.find(k).map(|i| (i, k, c)))
        .min_by_key(|&(i, _, _)| i)
    {
        // Keep the type name ("integer"), drop the quote and what it quotes.
        out.push_str(&rest[..at + kind.len() - 2]);
        let quoted = &rest[at + kind.len()..];
        rest = quoted.find(close).map_or("", |end| &quoted[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// The key a section's `validate` refused (tests of the sections).
#[cfg(test)]
pub(super) fn invalid_key(result: Result<(), ConfigError>) -> &'static str {
    match result {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn values_go_and_names_stay() {
        for (serde, want) in [
            (
                "invalid type: integer `123`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid type: string \"s3cr3t\", expected usize",
                "invalid type: string, expected usize",
            ),
            (
                "invalid type: boolean `true`, expected a string",
                "invalid type: boolean, expected a string",
            ),
            (
                "invalid value: floating point `1.5`, expected u32",
                "invalid value: floating point, expected u32",
            ),
            (
                "unknown field `lisen`, expected `listen`",
                "unknown field `lisen`, expected `listen`",
            ),
            ("invalid type: string \"unterminated", "invalid type: string"),
        ] {
            assert_eq!(without_values(serde), want);
        }
    }
}
