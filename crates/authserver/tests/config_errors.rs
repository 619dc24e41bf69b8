//! Configuration errors name their key, found by running the binaries before and after the
//! issue-13 refactor side by side (an independent attack; each test failed on the code it
//! attacks).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::cli::{isolated, run_cli, text};
use authserver_testkit::users::write_users;
use std::process::Output;

/// `authserver config check --config FILE` with `extra` appended to a file that points the store
/// at a valid users file, and `env` added to an environment without the caller's settings.
fn check(extra: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    write_users(&users);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[store]\nfile = \"{}\"\n{extra}", users.display()),
    )
    .unwrap();
    let mut cmd = isolated();
    cmd.args(["config", "check", "--config", config.to_str().unwrap()]);
    cmd.envs(env.iter().copied());
    run_cli(&mut cmd, None)
}

/// Before: `invalid setting server.trusted_proxies: each entry must be an IP address or CIDR`
/// for every unparseable entry in the file. After the refactor an empty entry, or one holding
/// a comma, loses its key: `invalid configuration: each entry must be ...`, because the
/// key-finding re-parse (`config::typed`) runs each list entry through the comma-splitting,
/// empty-skipping environment parser, which accepts it. The issue's one allowed change was
/// errors naming the right key; here the key is no longer named at all.
#[test]
fn a_bad_trusted_proxies_entry_in_the_file_names_its_key() {
    for entries in [r#"[""]"#, r#"["10.0.0.1,10.0.0.2"]"#, r#"["10.0.0.1", " , "]"#] {
        let o = check(&format!("[server]\ntrusted_proxies = {entries}\n"), &[]);
        assert_eq!(o.status.code(), Some(1), "{entries}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains("invalid setting server.trusted_proxies: each entry must be an IP address or CIDR"),
            "trusted_proxies = {entries}: the error names the key, as before: {err}"
        );
    }
    // The entries that still name it, for contrast.
    let o = check("[server]\ntrusted_proxies = [\"junk\"]\n", &[]);
    assert!(text(&o.stderr).contains("invalid setting server.trusted_proxies"));
}

/// A value of the wrong type is named by its key and never quoted: `log.user_hash_key` is key
/// material, and serde's own message would print it (`invalid type: integer `12345678``).
#[test]
fn a_mistyped_value_is_named_by_its_key_and_never_echoed() {
    for (extra, key) in [
        ("[log]\nuser_hash_key = 98765432123\n", "log.user_hash_key"),
        ("[log]\nuser_hash_key = 3.14159265\n", "log.user_hash_key"),
        (
            "[server]\nmax_connections = \"98765432123\"\n",
            "server.max_connections",
        ),
    ] {
        let o = check(extra, &[]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra}: {err}");
        assert!(
            err.contains(&format!("invalid setting {key}: invalid type")),
            "{extra}: {err}"
        );
        for secret in ["98765432123", "3.14159265"] {
            assert!(!err.contains(secret), "the value leaked: {err}");
        }
    }
}

/// A variable that is not UTF-8: someone else's is ignored, one of ours is an error naming it
/// (never its bytes). Before, `std::env::vars` panicked: exit 101 with nothing printed.
#[test]
fn a_non_utf8_variable_is_ignored_or_named() {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::ffi::OsStr::from_bytes(b"\xffs3cret-bytes");
    let o = check("", &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    write_users(&users);
    let run = |var: &str| {
        let mut cmd = isolated();
        cmd.args(["config", "check"])
            .env("AUTHSERVER_STORE_FILE", &users)
            .env(var, bytes);
        run_cli(&mut cmd, None)
    };
    let o = run("SOMEONE_ELSES");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run("AUTHSERVER_LOG_USER_HASH_KEY");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("AUTHSERVER_LOG_USER_HASH_KEY: not valid UTF-8"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}
