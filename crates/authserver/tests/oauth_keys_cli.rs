//! `authserver keys` guards (issue 14): the active key is never removed, and
//! `rotate --immediate` drops pending keys.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::oauth::keyset;
use authserver::oauth::signer::unix_now;

fn keys(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(authserver_testkit::cli::binary())
        .arg("keys")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("AUTHSERVER_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn rotate_immediate_drops_pending_keys_and_the_active_key_stays() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("keys");
    let now = unix_now();
    keyset::add(
        &set,
        "current",
        &keyset::generate_es256_pem().unwrap(),
        now - 100,
        now - 100,
    )
    .unwrap();
    keyset::add(
        &set,
        "pending",
        &keyset::generate_es256_pem().unwrap(),
        now - 10,
        now + 3600,
    )
    .unwrap();

    let refused = keys(&["remove", "current"], &set);
    assert!(!refused.status.success(), "the active key is not removable");

    let out = keys(&["rotate", "--immediate"], &set);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kids: Vec<String> = keyset::read_manifest(&set)
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert!(!kids.iter().any(|k| k == "pending"), "pending key kept: {kids:?}");
    assert!(!set.join("pending.pem").exists());
    assert_eq!(kids.len(), 2, "{kids:?}");
    // "current" is retired now: removable.
    let removed = keys(&["remove", "current"], &set);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}
