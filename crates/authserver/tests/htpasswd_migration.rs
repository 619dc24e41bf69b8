//! Coming from nginx `auth_basic`: an htpasswd file made by the real tools (`htpasswd -B`,
//! `mkpasswd`) is imported, served, and each legacy user is re-hashed to Argon2id by their next
//! login, written back to the users file. No hash or password ever reaches the output.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::cli::{isolated, run_cli, text};
use authserver_testkit::process::Server;
use authserver_testkit::users::{LEGACY_USERS, basic, htpasswd_fixture};
use authserver_testkit::wait::poll_blocking;
use std::path::Path;
use std::time::Duration;

/// Every hash and password of the fixtures: none may appear in any captured output.
fn secrets() -> Vec<String> {
    let mut out: Vec<String> = ["legacy.htpasswd", "refused.htpasswd"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(htpasswd_fixture(f))
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| l.split_once(':').map(|(_, h)| h.to_owned()))
        .collect();
    out.extend(LEGACY_USERS.iter().map(|(_, pw, _)| (*pw).to_owned()));
    out.extend(["apr1-pass-1", "sha1-pass-1", "des-pass-1", "plain-pass-1"].map(String::from));
    out
}

fn assert_clean(output: &str) {
    for s in secrets() {
        assert!(!output.contains(&s), "a hash or password leaked into: {output}");
    }
    assert!(!output.contains("$argon2id$"), "{output}");
}

fn import(source: &str, users: &Path, legacy: bool, extra: &[&str]) -> (bool, String) {
    let mut cmd = isolated();
    cmd.args(["users", "import", "--htpasswd"])
        .arg(htpasswd_fixture(source))
        .arg("--users")
        .arg(users)
        .args(extra)
        .env("AUTHSERVER_HASH_LEGACY", if legacy { "true" } else { "false" });
    let o = run_cli(&mut cmd, None);
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_clean(&all);
    (o.status.success(), all)
}

fn hash_of(users: &Path, user: &str) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(users).unwrap()).unwrap();
    doc[user]["passwordHash"].as_str().unwrap().to_owned()
}

#[test]
fn import_refusals_name_the_user_never_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let (ok, out) = import("refused.htpasswd", &users, true, &[]);
    assert!(!ok, "{out}");
    for (user, why) in [
        ("mona", "apr1/MD5"),
        ("shay", "{SHA}"),
        ("dora", "DES"),
        ("pia", "unrecognised"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("\"{user}\"")) && l.contains(why)),
            "{user}: {out}"
        );
    }
    assert!(!users.exists(), "nothing written");
    let (ok, out) = import("legacy.htpasswd", &users, false, &[]);
    assert!(
        !ok && out.contains("hash.legacy = true") && out.contains("\"bella\""),
        "{out}"
    );
    assert!(!users.exists(), "nothing written");

    let (ok, out) = import("legacy.htpasswd", &users, true, &[]);
    assert!(
        ok && out.contains("5 added") && out.contains("bcrypt: 2") && out.contains("sha-crypt: 3"),
        "{out}"
    );
    let (ok, out) = import("legacy.htpasswd", &users, true, &[]);
    assert!(
        !ok && out.contains("--replace") && out.contains("\"bella\""),
        "{out}"
    );
    let (ok, out) = import("legacy.htpasswd", &users, true, &["--replace"]);
    assert!(ok && out.contains("5 replaced"), "{out}");

    let o = run_cli(isolated().args(["users", "list"]).arg(&users), None);
    let list = text(&o.stdout);
    assert_clean(&list);
    for (user, _, algorithm) in LEGACY_USERS {
        assert!(
            list.lines().any(|l| l.starts_with(user) && l.contains(algorithm)),
            "{list}"
        );
    }
}

/// Import → serve → legacy login succeeds → the users file now holds Argon2id for that user →
/// login again succeeds (from the new hash); a wrong password is still denied. With
/// `hash.legacy = false` the legacy entries are refused.
#[tokio::test]
async fn legacy_users_are_rehashed_on_their_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    assert!(import("legacy.htpasswd", &users, true, &[]).0);
    let server = Server::start(
        &users,
        &[],
        &[("AUTHSERVER_HASH_LEGACY", "true"), ("LOG_LEVEL", "debug")],
    );
    let client = reqwest::Client::new();
    let status = |user: &str, pw: &str| {
        let req = client
            .post(server.url("/auth/validate"))
            .header("authorization", basic(user, pw));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for (user, pw, _) in LEGACY_USERS {
        let before = hash_of(&users, user);
        assert!(!before.starts_with("$argon2id$"));
        assert_eq!(status(user, "Wrong-Password-1").await, 401, "{user}");
        assert_eq!(status(user, pw).await, 200, "{user}");
        let rehashed = poll_blocking(Duration::from_secs(20), Duration::from_millis(50), || {
            hash_of(&users, user).starts_with("$argon2id$")
        });
        assert!(rehashed, "{user} still has a legacy hash");
        // Served from the new Argon2id hash once the poll picked the file up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status(user, pw).await, 200, "{user}");
        assert_eq!(status(user, "Wrong-Password-2").await, 401, "{user}");
    }
    let metrics = client
        .get(server.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("authserver_legacy_hash_users 0\n"), "{metrics}");
    let (clean, lines) = server.terminate();
    assert!(clean);
    let all = lines.join("\n");
    assert!(all.contains("legacy hash re-hashed to Argon2id"), "{all}");
    assert_clean(&all);
}

/// `hash.legacy = false` with legacy entries: those users are refused (today the whole users
/// file is refused at start; with per-entry refusal only they are), never quoted.
#[test]
fn legacy_entries_are_refused_when_the_setting_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    assert!(import("legacy.htpasswd", &users, true, &[]).0);
    let mut cmd = isolated();
    cmd.args(["config", "check"]).env("AUTHSERVER_STORE_FILE", &users);
    let o = run_cli(&mut cmd, None);
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "{all}");
    assert!(all.contains("hash.legacy = true"), "{all}");
    assert_clean(&all);
}

/// A store never written from the request path (the Secrets Manager store keeps the port's
/// default): a legacy login is allowed, counted for `/metrics` and logged, the store untouched.
#[tokio::test]
async fn a_read_only_store_reports_legacy_logins() {
    use authserver_testkit::fakes::ReadOnlyStore;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    assert!(import("legacy.htpasswd", &users, true, &[]).0);
    let mut s = authserver_testkit::users::settings(&users);
    s.hash.policy.legacy = true;
    let state = std::sync::Arc::into_inner(authserver::wiring::build(s).unwrap().state).unwrap();
    let inner = std::sync::Arc::into_inner(state.gate).unwrap();
    let store = std::sync::Arc::new(ReadOnlyStore(inner.store.clone()));
    let gate = std::sync::Arc::new(authserver::decide::Gate { store, ..inner });
    let before = hash_of(&users, "bella");
    assert_eq!(gate.legacy_counts().users, 5);
    let header = basic("bella", "bcrypt-pass-1");
    let attempt = gate.attempt(std::iter::once(header.as_bytes())).await;
    assert_eq!(attempt.decision.reason(), None, "allowed");
    assert_eq!(gate.legacy_counts().not_rehashed, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hash_of(&users, "bella"), before, "never written");
    assert_eq!(gate.legacy_counts().users, 5);
}
