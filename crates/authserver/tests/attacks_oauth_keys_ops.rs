//! Attacks on the signing-key runbook (docs/runbooks/oauth-keys.md, `authserver keys
//! rotate|remove`): operators' mistakes and two commands at once, against the real binary and
//! the server's key reload.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::oauth::keyset;
use authserver::oauth::signer::{LocalSigner, unix_now};
use authserver_core::oauth::{Alg, TokenSigner};
use authserver_testkit::cli::{isolated, run_cli, text};
use std::path::Path;

fn keys(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = isolated();
    cmd.arg("keys").arg("--dir").arg(dir).args(args);
    let out = run_cli(&mut cmd, None);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Finding 5. Two `authserver keys rotate` at once (two operators, or a retried automation
/// step) both read `keys.json`, each appends its key and renames its copy over the file: one
/// key is lost from the schedule though its command printed `added KID …` and exited 0 (its
/// PEM stays in the directory, never published, never signing). Measured: 20 of 160
/// rotations lost with 4 at a time, 1 in 10 pairs. Both also write the same temp file
/// `.keys.json.tmp`, so one may rename the other's half-written copy.
///
/// Repro: `keys generate`; then 25 times two `keys rotate --dir D` in parallel; count the kids
/// printed against `keys.json`.
#[test]
fn two_rotations_at_once_keep_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("keys");
    let (ok, _, err) = keys(&d, &["generate"]);
    assert!(ok, "{err}");
    let mut printed = Vec::new();
    for _ in 0..25 {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || keys(&d, &["rotate"]))
            })
            .collect();
        for r in runs {
            let (ok, out, err) = r.join().unwrap();
            if ok {
                printed.push(out.split_whitespace().nth(1).unwrap_or_default().to_owned());
            } else {
                // A refusal is fine (the operator sees it); a silent loss is not.
                eprintln!("rotate refused: {err}");
            }
        }
    }
    let scheduled: Vec<String> = keyset::read_manifest(&d)
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    let lost: Vec<&String> = printed.iter().filter(|k| !scheduled.contains(k)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} rotations that printed `added KID` and exited 0 are not in keys.json: {lost:?}",
        lost.len(),
        printed.len()
    );
}

/// Finding 6. The key reload is all or nothing: when any key of the set cannot be read by the
/// server (the runbook's `keys rotate` run as root writes a 0600 root-owned PEM the service
/// user cannot read; a PEM damaged in a copy or restore), every reload fails and the server
/// keeps the set it has, so the compromise procedure (`keys rotate --immediate`, then `keys
/// remove COMPROMISED_KID`) leaves the compromised key active, signing new tokens and
/// validating forged ones, indefinitely; only a warning every 30 s says the set was not
/// reloaded. `keys remove`'s promise: "its tokens stop validating within 30 s, the server's key
/// reload". A key taken out of `keys.json` should leave service at the next reload whatever
/// else that reload finds (no key to sign with: token issuance fails closed).
///
/// Repro (tests run as root, so the unreadable key is a damaged PEM): a signer on key A;
/// `keys rotate --immediate` (B); B's PEM unreadable; `keys remove A`; reload: Err, and A is
/// still the active, published key.
#[test]
fn a_removed_compromised_key_leaves_service_even_when_another_key_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("keys");
    let now = unix_now();
    // A has signed for a day (a key made in the same second as B would tie with it).
    let a = keyset::new_kid(Alg::Es256, now - 86_400);
    keyset::add(
        &d,
        &a,
        &keyset::generate_es256_pem().unwrap(),
        now - 86_400,
        now - 86_400,
    )
    .unwrap();
    let signer = LocalSigner::open(d.clone(), 930).unwrap();
    assert_eq!(signer.active().0, a);

    // Step 1: `keys rotate --immediate` (the new key signs at once).
    let (ok, out, err) = keys(&d, &["rotate", "--immediate"]);
    assert!(ok, "{err}");
    let b = out.split_whitespace().nth(1).unwrap().to_owned();
    // The server cannot read B (written by another user, or damaged).
    std::fs::write(d.join(format!("{b}.pem")), b"-----BEGIN PRIVATE KEY-----\ntrunc").unwrap();
    // Step 2: `keys remove A` (allowed: B is the active key in keys.json).
    let (ok, _, err) = keys(&d, &["remove", &a]);
    assert!(ok, "{err}");

    let reload = signer.reload();
    let active = signer.active().0;
    let published: Vec<String> = signer.published().into_iter().map(|k| k.kid).collect();
    assert!(
        active != a && !published.contains(&a),
        "A ({a}) was removed as compromised; the reload ({reload:?}) kept it: active {active}, \
         published {published:?}"
    );
}

/// Finding 7 (low). Two `keys rotate --immediate` within one second (a script, or the second
/// run after "did that work?") give two keys the same `signs_from`: `keys list` shows both
/// `active`, the signer takes the first in `keys.json` (the older one, not the key just made
/// to replace it), and `keys remove` refuses either ("is the active key"). Same with a clock
/// set back: a new key whose `signs_from` is not after the active key's never takes over.
///
/// Repro: `keys generate`; 1 s later `keys rotate --immediate` twice in a row; `keys list`.
#[test]
fn the_newest_immediate_rotation_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("keys");
    let now = unix_now();
    let a = keyset::new_kid(Alg::Es256, now - 60);
    keyset::add(&d, &a, &keyset::generate_es256_pem().unwrap(), now - 60, now - 60).unwrap();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let (ok, out, err) = keys(&d, &["rotate", "--immediate"]);
        assert!(ok, "{err}");
        kids.push(out.split_whitespace().nth(1).unwrap().to_owned());
    }
    let signer = LocalSigner::open(d.clone(), 930).unwrap();
    let (_, list, _) = keys(&d, &["list"]);
    assert_eq!(
        signer.active().0,
        kids[1],
        "the last `rotate --immediate` ({}) should sign, not {}:\n{list}",
        kids[1],
        kids[0]
    );
}

/// Finding 12. The key set directory's permissions are never checked: with `oauth.keys_dir`
/// writable by group or others (a shared volume, `chmod 777` to "fix" a permission error, a
/// directory under /tmp), any local user can drop a PEM and a `keys.json` naming it with a
/// `signs_from` in the past, and within 30 s the server publishes it and signs with it (forged
/// tokens for any client). The users file's editor refuses exactly this for a far less
/// sensitive file ("its directory is writable by group or others"); `keys rotate` and the
/// server's key load accept it silently. Private key files readable by others (0644, copied in
/// by hand) are loaded without a word too.
///
/// Repro: `mkdir D; chmod 777 D; authserver keys generate --dir D` → exit 0;
/// `LocalSigner::open(D)` → Ok.
#[test]
fn a_key_set_in_a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("keys");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (generated, _, _) = keys(&d, &["generate"]);
    // Whatever the CLI did, the server must not load a set others could have written.
    if !generated {
        let now = unix_now();
        let kid = keyset::new_kid(Alg::Es256, now);
        keyset::add(&d, &kid, &keyset::generate_es256_pem().unwrap(), now, now).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let opened = LocalSigner::open(d.clone(), 930).is_ok();
    assert!(
        !generated && !opened,
        "keys dir mode 0777: `keys generate` succeeded: {generated}, the server loaded it: {opened}"
    );
}
