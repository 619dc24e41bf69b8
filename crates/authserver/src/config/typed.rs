//! Which typed key a failed load tripped on: serde reports a value that does not parse into its
//! type as text without the key, so a failed load asks each typed key's own parser.

use super::aws::LambdaMode;
use super::error::ConfigError;
use super::net::{AdminListen, HeaderSetting, OptionalHeader, TrustedProxies};
use std::str::FromStr;

/// Keys whose text parses into a type on load, with that parse. Serde reports a failed parse
/// as text without the key; a failed load asks these which key it was, so the error names the
/// key in the type's own words.
const TYPED_KEYS: &[(&str, Refusal)] = &[
    ("server.forward_user_header", refusal::<HeaderSetting>),
    ("server.forward_roles_header", refusal::<HeaderSetting>),
    ("server.trusted_proxies", refusal::<TrustedProxies>),
    ("telemetry.country_header", refusal::<OptionalHeader>),
    ("lambda.mode", refusal::<LambdaMode>),
    ("admin.listen", refusal::<AdminListen>),
];

/// Why a text is not a typed key's value, if it is not.
type Refusal = fn(&str) -> Option<&'static str>;

/// Why `text` is no `T`, if it is not.
fn refusal<T: FromStr<Err = &'static str>>(text: &str) -> Option<&'static str> {
    text.parse::<T>().err()
}

/// The first typed key in the merged `table` whose value (or one of whose list entries) does
/// not parse, as an [`ConfigError::Invalid`] naming it.
pub(super) fn typed_key_error(table: &toml::Table) -> Option<ConfigError> {
    TYPED_KEYS.iter().find_map(|&(key, refusal)| {
        let (section, name) = key.split_once('.')?;
        let texts = match table.get(section)?.get(name)? {
            toml::Value::String(text) => vec![text.as_str()],
            toml::Value::Array(items) => items.iter().filter_map(toml::Value::as_str).collect(),
            _ => return None,
        };
        let why = texts.into_iter().find_map(refusal)?;
        Some(ConfigError::Invalid {
            key,
            why: why.to_owned(),
        })
    })
}
