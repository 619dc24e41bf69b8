//! Tests of the load order, the typed keys' errors and the cross-section checks.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The key a load with `pairs` is refused for (by its type or by its section's checks).
fn refused_key(pairs: &[(&str, &str)]) -> String {
    match Settings::load_with_env(None, env(pairs)) {
        Err(ConfigError::Invalid { key, .. }) => key.to_owned(),
        Err(ConfigError::Value { key, .. }) => key,
        other => panic!("{pairs:?}: {other:?}"),
    }
}

#[test]
fn documented_default_file_equals_the_defaults() {
    let parsed: Settings = toml::from_str(DEFAULT_TOML).expect("default.toml parses");
    assert_eq!(parsed, Settings::default());
    Settings::default().validate().expect("defaults are valid");
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    let err = Settings::load_with_env(None, env(&[("AUTHSERVER_SERVER_LISTEN", "nope")])).expect_err("addr");
    assert!(
        matches!(err, ConfigError::Value { ref key, .. } if key == "server.listen"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "[server]\nlisen = \"127.0.0.1:1\"\n").expect("write");
    let err = Settings::load_with_env(Some(&f), env(&[])).expect_err("unknown key");
    assert!(err.to_string().contains("lisen"), "{err}");
    let err = Settings::load_with_env(Some(&dir.path().join("missing.toml")), env(&[])).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
}

#[test]
fn validation_catches_impossible_combinations() {
    for (var, value, key) in [
        ("AUTHSERVER_HASH_MIN_T", "20", "hash.min_t"),
        ("AUTHSERVER_HASH_MEMORY_BUDGET_MIB", "1", "hash.memory_budget_mib"),
        (
            "AUTHSERVER_SERVER_MAX_HEADER_BYTES",
            "100",
            "server.max_header_bytes",
        ),
        ("AUTHSERVER_STORE_KIND", "secrets_manager", "store.secret_id"),
        ("AUTHSERVER_LAMBDA_MODE", "other", "lambda.mode"),
        ("AUTHSERVER_TLS_RELOAD_INTERVAL_MS", "0", "tls.reload_interval_ms"),
        (
            "AUTHSERVER_REGULATION_WINDOW_SECONDS",
            "0",
            "regulation.window_seconds",
        ),
        ("LOG_LEVEL", "lots=of=noise", "log.level"),
        (
            "AUTHSERVER_ROTATION_PASSWORD_LENGTH",
            "8",
            "rotation.password_length",
        ),
        (
            "AUTHSERVER_ROTATION_PASSWORD_ALPHABET",
            "aab",
            "rotation.password_alphabet",
        ),
        (
            "AUTHSERVER_ROTATION_SETTLE_SECONDS",
            "91",
            "rotation.settle_seconds",
        ),
        (
            "AUTHSERVER_COMPLIANCE_MAX_ROTATION_DAYS",
            "0",
            "compliance.max_rotation_days",
        ),
        ("AUTHSERVER_ADMIN_LISTEN", "0.0.0.0:9090", "admin.listen"),
        (
            "AUTHSERVER_SERVER_GRPC_LISTEN",
            "0.0.0.0:9191",
            "server.grpc_listen",
        ),
        (
            "AUTHSERVER_SERVER_LISTEN",
            "0.0.0.0:8080",
            "server.allow_plaintext",
        ),
    ] {
        assert_eq!(refused_key(&[(var, value)]), key, "{var}");
    }
}

/// The four keys that were reported under another key's name.
#[test]
fn mis_keyed_checks_name_their_own_key() {
    assert_eq!(refused_key(&[("AUTHSERVER_HASH_MIN_T", "0")]), "hash.min_t");
    assert_eq!(
        refused_key(&[("AUTHSERVER_SERVER_REQUEST_TIMEOUT_MS", "0")]),
        "server.request_timeout_ms"
    );
    assert_eq!(
        refused_key(&[("AUTHSERVER_SERVER_FORWARD_ROLES_HEADER", "bad header")]),
        "server.forward_roles_header"
    );
    assert_eq!(
        refused_key(&[("AUTHSERVER_STORE_POLL_INTERVAL_MS", "0")]),
        "store.poll_interval_ms"
    );
}

/// Typed keys parse on load and are refused in the words `validate` used for the strings.
#[test]
fn typed_keys_are_refused_by_name_on_load() {
    for (var, value, key, why) in [
        (
            "AUTHSERVER_LAMBDA_MODE",
            "other",
            "lambda.mode",
            LambdaMode::INVALID,
        ),
        (
            "AUTHSERVER_ADMIN_LISTEN",
            "nope",
            "admin.listen",
            AdminListen::INVALID,
        ),
        (
            "AUTHSERVER_SERVER_TRUSTED_PROXIES",
            "10.0.0.0/8,junk",
            "server.trusted_proxies",
            TrustedProxies::INVALID,
        ),
        (
            "AUTHSERVER_SERVER_FORWARD_USER_HEADER",
            "a b",
            "server.forward_user_header",
            HeaderSetting::INVALID,
        ),
        (
            "AUTHSERVER_TELEMETRY_COUNTRY_HEADER",
            "a b",
            "telemetry.country_header",
            HeaderSetting::INVALID,
        ),
    ] {
        let err = Settings::load_with_env(None, env(&[(var, value)])).expect_err(var);
        assert_eq!(err.to_string(), format!("invalid setting {key}: {why}"));
    }
    let s = Settings::load_with_env(
        None,
        env(&[
            ("AUTHSERVER_ADMIN_LISTEN", ""),
            ("AUTHSERVER_LAMBDA_MODE", "rotation"),
        ]),
    )
    .expect("valid");
    assert_eq!((s.admin.addr(), s.lambda.mode), (None, LambdaMode::Rotation));
}

#[test]
fn cache_ttl_is_capped_by_snapshot_ttl() {
    let mut s = Settings::default();
    s.cache.ttl_seconds = 3600;
    assert_eq!(s.cache_ttl().as_secs(), 300);
}

/// docs/configuration.md names every key's variable, and every alias.
#[test]
fn every_key_is_documented() {
    let docs = include_str!("../../../../docs/configuration.md");
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
