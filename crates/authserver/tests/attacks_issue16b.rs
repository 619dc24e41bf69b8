//! Attacks on the issue-16 features (second, independent pass), on the real binary. Each test
//! fails on the code it was written against and states what it expects instead.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::process::Server;
use authserver_testkit::users::basic;
use authserver_testkit::wait::poll_blocking;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `htpasswd -bnBC 5 long "$(python3 -c 'print("A"*72+"real-suffix")')"` (apache2-utils 2.4):
/// an 83-byte password, as a password manager makes them. bcrypt reads only the first 72 bytes.
const LONG_BCRYPT: &str = "$2y$05$euxAZ2KROG./9XfEd3e.duxPaVMD./B.POCP6Aux9Lp4swDouMznu";

fn long_password(suffix: &str) -> String {
    format!("{}{suffix}", "A".repeat(72))
}

fn hash_of(users: &Path, user: &str) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(users).unwrap()).unwrap();
    doc[user]["passwordHash"].as_str().unwrap().to_owned()
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// bcrypt's 72-byte truncation meets the transparent re-hash. A bcrypt user whose password is
/// longer than 72 bytes is matched by ANY password sharing its first 72 bytes (bcrypt's
/// semantics, as in nginx/Apache). The re-hash then binds the Argon2id hash to whichever
/// variant logged in first: one login with a different suffix (a typo past byte 72, a
/// truncating client, or anyone holding the 72-byte prefix) re-hashes to that variant, and the
/// user's real password is denied from then on: a lockout made by the migration itself.
///
/// Expected: a login whose password is longer than bcrypt reads (72 bytes) is not re-hashed
/// (or not accepted at all); either way the real password keeps working.
#[tokio::test]
async fn a_bcrypt_login_past_72_bytes_does_not_rebind_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let doc = serde_json::json!({"longpw": {"passwordHash": LONG_BCRYPT}});
    std::fs::write(&users, serde_json::to_vec(&doc).unwrap()).unwrap();
    let server = Server::start(&users, &[], &[("AUTHSERVER_HASH_LEGACY", "true")]);
    // No pooled connection: the wait below can outlast the server's idle timeout.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let status = |pw: String| {
        let req = client
            .post(server.url("/auth/validate"))
            .header("authorization", basic("longpw", &pw));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let other = status(long_password("some-other-suffix")).await;
    // Give a re-hash, if one was started, time to land and be polled in.
    let rehashed = poll_blocking(Duration::from_secs(5), Duration::from_millis(50), || {
        hash_of(&users, "longpw").starts_with("$argon2id$")
    });
    if rehashed {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let real = status(long_password("real-suffix")).await;
    let (_, lines) = server.terminate();
    assert_eq!(
        real,
        200,
        "the user's real password is denied after a login with a different suffix past byte 72 \
         (that login answered {other}; users file re-hashed: {rehashed}): {}",
        lines.join("\n")
    );
}

/// The container image's defaults (`config/container.toml` + `examples/users.json`, which
/// `scripts/image` installs at /var/run/authserver/users/users.json) serve `alice` with the
/// password `wonderland` printed in README.md, role `admin`, on 0.0.0.0. `podman run -p
/// 8080:8080 authserver:0.1.0` without a users mount authorises anyone who read the README as
/// an admin, and the server says nothing about it.
///
/// Expected: a users file holding the published example credentials is loudly flagged at start
/// (a warning naming the example users), or refused outside an explicit demo setting.
#[tokio::test]
async fn the_image_default_users_with_published_passwords_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    std::fs::copy(repo_file("examples/users.json"), &users).unwrap();
    let config = repo_file("config/container.toml");
    let server = Server::start(&users, &[], &[("AUTHSERVER_CONFIG", config.to_str().unwrap())]);
    let response = reqwest::Client::new()
        .post(server.url("/auth/validate"))
        .header("authorization", basic("alice", "wonderland"))
        .send()
        .await
        .unwrap();
    let allowed = response.status().as_u16();
    let body = response.text().await.unwrap();
    let (_, lines) = server.terminate();
    let warned = lines.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        (l.contains("\"warn") || l.contains("\"error")) && l.contains("example")
    });
    assert!(
        allowed != 200 || warned,
        "alice:wonderland (README) is allowed ({body}) by the image's defaults with no warning: {}",
        lines.join("\n")
    );
}

/// A bcrypt string with a one-digit cost (`$2y$5$…`, the fixture's `$2y$05$` hash written by a
/// tool that does not zero-pad) passes the import and load checks (`bcrypt_cost` rejects only
/// costs of three digits or more), is listed and counted as a bcrypt user, and then never
/// verifies: the right password is denied forever, with nothing in the logs saying why.
///
/// Expected: either the import/load refuses the entry as malformed (naming the user), or the
/// right password is accepted.
#[tokio::test]
async fn a_bcrypt_hash_the_verifier_cannot_read_is_not_accepted_at_load() {
    let bella = "$2y$05$4jH9N/BYOMxYYi7SFKLjP.0aGG5VsABVdQU.DBy07WDHnkusT8Tem";
    let one_digit = bella.replacen("$05$", "$5$", 1);
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let doc = serde_json::json!({"onedigit": {"passwordHash": one_digit}});
    std::fs::write(&users, serde_json::to_vec(&doc).unwrap()).unwrap();
    let server = Server::start(&users, &[], &[("AUTHSERVER_HASH_LEGACY", "true")]);
    let status = reqwest::Client::new()
        .post(server.url("/auth/validate"))
        .header("authorization", basic("onedigit", "bcrypt-pass-1"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let (_, lines) = server.terminate();
    let refused = lines
        .iter()
        .any(|l| l.contains("users file entry refused by the hash policy"));
    assert!(
        status == 200 || refused,
        "a bcrypt entry accepted at load denies its right password ({status}) and no entry was \
         refused: {}",
        lines.join("\n")
    );
}
