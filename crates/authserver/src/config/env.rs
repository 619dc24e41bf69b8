//! The environment engine: every key `section.key` has the variable `AUTHSERVER_SECTION_KEY`,
//! plus the product brief's Lambda names as [`ALIASES`]. Values are typed like the default
//! value at their key (integers, booleans, comma-separated lists or a TOML array `["a,b"]` for
//! items with commas, else strings); a malformed
//! value is an error. An `AUTHSERVER_*` variable that is no setting is ignored: silently when
//! it is a Kubernetes service link, otherwise with an [`EnvWarning`] (see [`super::unknown`]).

use super::unknown::{EnvWarning, is_service_link};
use super::{ConfigError, Settings};

/// The namespace of the settings' variables.
const PREFIX: &str = "AUTHSERVER_";

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
    ("AUTHSERVER_USERS_TABLE", "users_table.name"),
    // The stage's log retention, which the template passes to the compliance function.
    (
        "AUTHSERVER_COMPLIANCE_LOG_RETENTION_DAYS",
        "compliance.min_log_retention_days",
    ),
];

/// Variables with the `AUTHSERVER_` prefix that are not settings.
const NOT_SETTINGS: &[&str] = &["AUTHSERVER_CONFIG"];

/// The process environment as text. `std::env::vars` panics on a variable that is not UTF-8
/// (the binary exited 101 with nothing printed); such a variable is skipped unless it is one of
/// ours, which is an error naming it (never its value).
pub(super) fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else { continue };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) if name.starts_with(PREFIX) || ALIASES.iter().any(|(a, _)| *a == name) => {
                return Err(ConfigError::EnvValue {
                    var: name,
                    why: "not valid UTF-8".to_owned(),
                });
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

/// Writes every recognised variable into `table` at its key, typed like the default value
/// there; returns the `AUTHSERVER_*` variables it ignored (service links excepted).
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvWarning>, ConfigError> {
    let defaults = toml::Table::try_from(Settings::default())
        .map_err(|e| ConfigError::Parse(format!("defaults do not serialise: {e}")))?;
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    // Aliases first, so the canonical AUTHSERVER_* name wins when both are set.
    vars.sort_by_key(|(k, _)| !ALIASES.iter().any(|(a, _)| a == k));
    let mut warnings = Vec::new();
    for (var, value) in vars {
        let key = match key_of(&defaults, &var) {
            Found::Key(key) => key,
            Found::NotOurs => continue,
            Found::Unknown if is_service_link(&var, &value) => continue,
            Found::Unknown => {
                warnings.push(EnvWarning::new(
                    &var,
                    known_vars(&defaults).iter().map(String::as_str),
                ));
                continue;
            }
        };
        set(table, &defaults, &key, &var, value)?;
    }
    warnings.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(warnings)
}

/// Writes `value` (of `var`) at `key` in `table`, typed like the default there.
fn set(
    table: &mut toml::Table,
    defaults: &toml::Table,
    key: &str,
    var: &str,
    value: String,
) -> Result<(), ConfigError> {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let template = defaults.get(section).and_then(|s| s.get(name));
    let typed = typed(template, var, value)?;
    let section_table = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section_table {
        toml::Value::Table(t) => {
            t.insert(name.to_owned(), typed);
            Ok(())
        }
        _ => Err(ConfigError::Parse(format!("[{section}] must be a table"))),
    }
}

/// What a variable is to us.
enum Found {
    /// It sets `section.key`.
    Key(String),
    /// Not in our namespace, or exempt (`AUTHSERVER_CONFIG`).
    NotOurs,
    /// `AUTHSERVER_*` but no setting.
    Unknown,
}

fn key_of(defaults: &toml::Table, var: &str) -> Found {
    if let Some((_, key)) = ALIASES.iter().find(|(a, _)| *a == var) {
        return Found::Key((*key).to_owned());
    }
    let Some(rest) = var.strip_prefix(PREFIX) else {
        return Found::NotOurs;
    };
    if NOT_SETTINGS.contains(&var) {
        return Found::NotOurs;
    }
    find_key(defaults, &rest.to_ascii_lowercase()).map_or(Found::Unknown, Found::Key)
}

/// Every variable that sets a key: `AUTHSERVER_SECTION_KEY` for each key, and the aliases.
fn known_vars(defaults: &toml::Table) -> Vec<String> {
    let canonical = defaults.iter().flat_map(|(section, value)| {
        let keys = value
            .as_table()
            .map(|t| t.keys().collect::<Vec<_>>())
            .unwrap_or_default();
        keys.into_iter()
            .map(move |k| format!("AUTHSERVER_{section}_{k}").to_ascii_uppercase())
    });
    canonical
        .chain(ALIASES.iter().map(|(a, _)| (*a).to_owned()))
        .collect()
}

/// `value` as the TOML type of `template` (the default at the key).
fn typed(template: Option<&toml::Value>, var: &str, value: String) -> Result<toml::Value, ConfigError> {
    let bad = |why: &str| ConfigError::EnvValue {
        var: var.to_owned(),
        why: why.into(),
    };
    Ok(match template {
        Some(toml::Value::Integer(_)) => value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| bad("expected an integer"))?,
        Some(toml::Value::Boolean(_)) => value
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| bad("expected true or false"))?,
        // `["a,b", "c"]`: a TOML array, for items that hold a comma (an audience URI may).
        Some(toml::Value::Array(_)) if value.trim_start().starts_with('[') => {
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| v.as_array().is_some_and(|a| a.iter().all(toml::Value::is_str)));
            parsed.ok_or_else(|| bad("expected a TOML array of strings, [\"a\", \"b\"]"))?
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
    })
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
    use super::super::StoreKind;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Attack on issue 14's audience check (finding 1): a list item may hold a comma when the
    /// variable is a TOML array; the plain form splits at every comma, as documented.
    #[test]
    fn a_list_variable_may_be_a_toml_array() {
        let audiences = |v: &str| {
            Settings::load_with_env(None, env(&[("AUTHSERVER_OAUTH_AUDIENCES", v)]))
                .map(|s| s.oauth.audiences)
        };
        let one = "https://api.example.com/v1,x:y";
        assert_eq!(audiences(&format!(r#"["{one}"]"#)).expect("array"), [one]);
        assert_eq!(
            audiences(r#" ["urn:a", "urn:b"] "#).expect("array"),
            ["urn:a", "urn:b"]
        );
        assert_eq!(
            audiences(one).expect("split"),
            ["https://api.example.com/v1", "x:y"]
        );
        for bad in ["[1, 2]", "[\"unclosed\"", "[\"a\"] trailing"] {
            assert!(audiences(bad).is_err(), "{bad}");
        }
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
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.server.listen.port(), 9000);
        assert_eq!(
            Vec::<String>::from(s.server.trusted_proxies),
            ["10.0.0.0/8", "192.168.1.1/32"],
            "lists split at commas"
        );
        assert_eq!(s.store.cache_ttl_minutes, 7);
        assert_eq!(s.store.kind, StoreKind::SecretsManager);
        assert_eq!(s.hash.policy.min_m_kib, 32768);
        assert_eq!(s.log.level, "warn", "canonical name beats alias");
    }

    /// The test suite's switches left the namespace (`TESTS_REQUIRE_*`): an old
    /// `AUTHSERVER_REQUIRE_*` is an unknown variable like any other.
    #[test]
    fn only_the_config_file_variable_is_exempt() {
        let s = Settings::load_with_env(None, env(&[("AUTHSERVER_REQUIRE_BROWSER", "1")])).expect("warns");
        let vars: Vec<_> = s.env_warnings.iter().map(|w| w.var.as_str()).collect();
        assert_eq!(vars, ["AUTHSERVER_REQUIRE_BROWSER"]);
        let s = Settings::load_with_env(
            None,
            env(&[("TESTS_REQUIRE_BROWSER", "1"), ("AUTHSERVER_CONFIG", "x")]),
        )
        .expect("not ours");
        assert!(s.env_warnings.is_empty(), "{:?}", s.env_warnings);
    }

    /// The template gives the compliance function its stage's log retention: dev and staging
    /// keep logs 30 and 90 days, and must not fail a fixed 365-day control.
    #[test]
    fn the_stage_log_retention_sets_the_compliance_minimum() {
        assert_eq!(Settings::default().compliance.min_log_retention_days, 365);
        let s = Settings::load_with_env(None, env(&[("AUTHSERVER_COMPLIANCE_LOG_RETENTION_DAYS", "30")]))
            .expect("valid");
        assert_eq!(s.compliance.min_log_retention_days, 30);
    }

    /// Unknown variables warn (a typo names the key it probably meant, never the value);
    /// a bad value of a known variable still refuses the settings.
    #[test]
    fn unknown_variables_warn_and_bad_values_are_errors() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("AUTHSERVER_SERVER_LISTN", "secret-ish-value"),
                ("AUTHSERVER_ZZZ", "1"),
            ]),
        )
        .expect("typos warn");
        assert_eq!(
            s.server.listen,
            Settings::default().server.listen,
            "the typo set nothing"
        );
        let shown: Vec<String> = s.env_warnings.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].contains("AUTHSERVER_SERVER_LISTN")
                && shown[0].contains("did you mean AUTHSERVER_SERVER_LISTEN?")
        );
        assert!(shown[1].contains("AUTHSERVER_ZZZ") && !shown[1].contains("did you mean"));
        assert!(shown.iter().all(|w| !w.contains("secret-ish-value")));
        let err = Settings::load_with_env(None, env(&[("CACHE_TTL_MINUTES", "five")])).expect_err("type");
        assert!(err.to_string().contains("CACHE_TTL_MINUTES"));
        Settings::load_with_env(
            None,
            env(&[
                ("AUTHSERVER_SERVICE_PORT_X", "1"),
                ("AUTHSERVER_SERVER_LISTEN", "nope"),
            ]),
        )
        .expect_err("a bad value still refuses, service links or not");
    }

    /// Kubernetes service links for a Service named `authserver` load without a warning, and
    /// `AUTHSERVER_SERVICE` (exact) still sets `telemetry.service`.
    #[test]
    fn service_links_are_ignored_silently() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("AUTHSERVER_SERVICE_HOST", "10.0.0.1"),
                ("AUTHSERVER_SERVICE_PORT", "8080"),
                ("AUTHSERVER_SERVICE_PORT_HTTP", "8080"),
                ("AUTHSERVER_PORT", "tcp://10.0.0.1:8080"),
                ("AUTHSERVER_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
                ("AUTHSERVER_PORT_8080_TCP_ADDR", "10.0.0.1"),
                ("AUTHSERVER_PORT_8080_TCP_PORT", "8080"),
                ("AUTHSERVER_PORT_8080_TCP_PROTO", "tcp"),
                ("AUTHSERVER_SERVICE", "edge-auth"),
            ]),
        )
        .expect("loads");
        assert!(s.env_warnings.is_empty(), "{:?}", s.env_warnings);
        assert_eq!(s.telemetry.service, "edge-auth");
    }
}
