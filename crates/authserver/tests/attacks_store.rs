//! Attacks on the users file and its reload (issue 11 items 13, 14, 17, 18, 19, 20): edits the
//! poller used to miss, duplicate keys, non-regular files, false staleness, cache stampedes,
//! hostile names and roles.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, app};
use authserver::store::file::{FileLimits, FileStore};
use authserver_core::{HashPolicy, Secret, SnapshotSource, UserHasher, hash_password};
use authserver_testkit::hash::FAST;
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use authserver_testkit::wait::eventually_async;
use axum::body::Body;
use axum::http::{Request, header};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn call(state: &Arc<AppState>, path: &str, user: &str, pw: &str) -> (u16, Option<String>) {
    let req = Request::post(path)
        .header(header::AUTHORIZATION, basic(user, pw))
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let groups = res
        .headers()
        .get("remote-groups")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), groups)
}

/// The users file with alice's and carol's entries changed by `edit`.
fn rewrite(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// Polls `ok` until it holds; fails after 5 s.
async fn eventually(what: &str, ok: impl AsyncFnMut() -> bool) {
    eventually_async(what, Duration::from_secs(5), ok).await;
}

#[tokio::test]
async fn a_same_length_edit_that_keeps_the_mtime_is_reloaded() {
    let f = fixture();
    let built = built(&f.users);
    let state = built.state.clone();
    assert_eq!(call(&state, "/auth/validate", ALICE, ALICE_PW).await.0, 200);
    let before = std::fs::metadata(&f.users).unwrap();
    // A password reset as `cp -p` or `rsync -a` delivers it: same length (PHC strings of one
    // cost have one length), the old mtime put back.
    const NEW_PW: &str = "Reset-Horse-Battery-0042";
    let new_hash = hash_password(&Secret::from(NEW_PW), FAST).unwrap();
    assert_eq!(new_hash.len(), f.hashes[0].len());
    let text = std::fs::read_to_string(&f.users)
        .unwrap()
        .replace(&f.hashes[0], &new_hash);
    std::fs::write(&f.users, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f.users)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let after = std::fs::metadata(&f.users).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap())
    );
    eventually("new password accepted", async || {
        call(&state, "/auth/validate", ALICE, NEW_PW).await.0 == 200
    })
    .await;
    assert_eq!(
        call(&state, "/auth/validate", ALICE, ALICE_PW).await.0,
        401,
        "old one refused"
    );
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_roles_change_flushes_only_that_users_cache_entry() {
    let f = fixture();
    let built = built(&f.users);
    let state = built.state.clone();
    for (user, pw) in [(ALICE, ALICE_PW), (CAROL, CAROL_PW)] {
        assert_eq!(call(&state, "/auth/forward", user, pw).await.0, 200);
    }
    let version = state.gate.store.current().unwrap().version().to_owned();
    rewrite(&f.users, |doc| {
        doc[ALICE]["roles"] = serde_json::json!(["auditor"])
    });
    eventually("reloaded", async || {
        state.gate.store.current().unwrap().version() != version
    })
    .await;
    let reg = &state.telemetry.registry;
    let (hits, misses) = (reg.total(|h| &h.cache_hit), reg.total(|h| &h.cache_miss));
    assert_eq!(call(&state, "/auth/forward", CAROL, CAROL_PW).await.0, 200);
    assert_eq!(
        reg.total(|h| &h.cache_hit),
        hits + 1,
        "the unchanged user stays a cache hit"
    );
    let (status, groups) = call(&state, "/auth/forward", ALICE, ALICE_PW).await;
    assert_eq!(
        (status, groups.as_deref()),
        (200, Some("auditor")),
        "new roles at once"
    );
    assert_eq!(
        reg.total(|h| &h.cache_miss),
        misses + 1,
        "the changed user was verified again"
    );
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn duplicate_keys_and_hostile_roles_keep_the_last_good_snapshot() {
    let f = fixture();
    let built = built(&f.users);
    let state = built.state.clone();
    let clean = std::fs::read_to_string(&f.users).unwrap();
    // Pretty-printed keys are sorted, so bob's status is his last field: a second `status`
    // after it is what "last wins" would have taken.
    let bob_active = r#""status": "DISABLED", "status": "ACTIVE""#;
    for (broken, want) in [
        (
            clean.replacen(r#""status": "DISABLED""#, bob_active, 1),
            "more than once",
        ),
        (
            clean.replacen(r#""reader""#, r#""reader\r\nX-Injected: 1""#, 1),
            "role #2",
        ),
        (clean.replacen(r#""reader""#, r#""reader,root""#, 1), "','"),
        (clean.replacen(r#""admin""#, "\"ad\u{200B}min\"", 1), "invisible"),
    ] {
        assert_ne!(broken, clean, "{want}: the edit applies");
        std::fs::write(&f.users, &broken).unwrap();
        eventually(want, async || {
            state
                .gate
                .store
                .status()
                .last_error
                .is_some_and(|e| e.contains(want))
        })
        .await;
        assert_eq!(
            call(&state, "/auth/validate", BOB, BOB_PW).await.0,
            401,
            "bob stays disabled"
        );
        let (status, groups) = call(&state, "/auth/forward", ALICE, ALICE_PW).await;
        assert_eq!((status, groups.as_deref()), (200, Some("admin,reader")));
        let err = state.gate.store.status().last_error.unwrap();
        assert!(!err.contains("$argon2id") && !err.contains(BOB), "{err}");
    }
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
}

#[test]
fn config_check_refuses_duplicates_and_accepts_a_bom() {
    let f = fixture();
    let check = |users: &Path| {
        authserver_testkit::cli::cli()
            .args(["config", "check"])
            .env("AUTHSERVER_STORE_FILE", users)
            .output()
            .unwrap()
    };
    let clean = std::fs::read_to_string(&f.users).unwrap();
    let dup = f.dir.path().join("dup.json");
    let second_alice = format!("{{\n  \"{ALICE}\": {{\"passwordHash\": \"{}\"}},", f.hashes[1]);
    std::fs::write(&dup, clean.replacen('{', &second_alice, 1)).unwrap();
    let o = check(&dup);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("appears more than once") && err.contains(ALICE),
        "{err}"
    );
    assert!(!err.contains("$argon2id"), "{err}");
    let bom = f.dir.path().join("bom.json");
    std::fs::write(&bom, format!("\u{FEFF}{clean}")).unwrap();
    let o = check(&bom);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn open(path: &Path, limits: FileLimits) -> Result<FileStore, String> {
    FileStore::open(path, HashPolicy::default(), UserHasher::new(b"k"), limits).map_err(|e| {
        use std::error::Error;
        format!("{e}: {}", e.source().map(ToString::to_string).unwrap_or_default())
    })
}

#[test]
fn staleness_counts_from_the_last_confirmation_and_errors_clear() {
    let f = fixture();
    let store = open(&f.users, FileLimits::default()).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    store.check();
    assert_eq!(
        store.status().age_seconds,
        0,
        "unchanged file confirmed by the poll"
    );
    let content = std::fs::read(&f.users).unwrap();
    std::fs::remove_file(&f.users).unwrap();
    store.check();
    assert!(store.status().last_error.is_some(), "deleted");
    std::fs::write(&f.users, &content).unwrap();
    store.check();
    assert_eq!(
        store.status().last_error,
        None,
        "re-created identical: error cleared"
    );
    assert_eq!(store.counters().refreshes, 1, "and nothing reloaded");
}

#[test]
fn only_regular_files_under_the_cap_are_read() {
    let f = fixture();
    let small = FileLimits {
        max_bytes: 64,
        ..FileLimits::default()
    };
    assert!(
        open(&f.users, small)
            .unwrap_err()
            .contains("larger than the 64-byte limit")
    );
    for (path, want) in [
        (Path::new("/dev/zero"), "character device"),
        (f.dir.path(), "directory"),
    ] {
        let start = Instant::now();
        let err = open(path, FileLimits::default()).unwrap_err();
        assert!(err.contains(want), "{err}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}

/// A FIFO at the users path while the real server runs: it is refused, later files still
/// load, and SIGTERM still stops the server.
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_at_the_users_path_neither_blocks_reloads_nor_shutdown() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[("AUTHSERVER_AUDIT_STDOUT", "false")]);
    let saved = std::fs::read_to_string(&f.users).unwrap();
    std::fs::remove_file(&f.users).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&f.users)
        .status()
        .unwrap();
    assert!(made.success());
    let client = reqwest::Client::new();
    let status = |pw: &'static str| {
        let (client, url) = (client.clone(), server.url("/auth/validate"));
        async move {
            let res = client
                .post(url)
                .header("authorization", basic(ALICE, pw))
                .send()
                .await;
            res.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    };
    eventually("FIFO refused in the log", async || {
        server
            .lines()
            .iter()
            .any(|l| l.contains("not a regular file (it is a FIFO)"))
    })
    .await;
    assert_eq!(status(ALICE_PW).await, 200, "last good snapshot still serves");

    const NEW_PW: &str = "After-The-Fifo-Pass-9";
    let hash = hash_password(&Secret::from(NEW_PW), FAST).unwrap();
    let next = f.dir.path().join("next.json");
    std::fs::write(&next, saved.replace(&f.hashes[0], &hash)).unwrap();
    std::fs::rename(&next, &f.users).unwrap();
    eventually("a valid file after the FIFO loads", async || {
        status(NEW_PW).await == 200
    })
    .await;

    let start = Instant::now();
    let (clean, lines) = server.terminate();
    assert!(clean, "exit status after SIGTERM: {lines:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn users_add_refuses_hostile_names_and_roles_and_list_never_prints_raw_escapes() {
    let f = fixture();
    let file = f.users.to_str().unwrap();
    let cli = |args: &[&str]| {
        authserver_testkit::cli::run_cli(
            authserver_testkit::cli::cli().args(args),
            Some("Some-Long-Password-1\n"),
        )
    };
    for (args, want) in [
        (vec!["users", "add", file, "ad\u{200B}min"], "invisible"),
        (vec!["users", "add", file, "\u{202E}nimda"], "invisible"),
        (
            vec!["users", "add", file, "eve", "--role", "reader,admin"],
            "role #1 contains ','",
        ),
        (
            vec!["users", "add", file, "eve", "--role", "ok", "--role", "x\r\nY: 1"],
            "role #2",
        ),
        (
            vec!["users", "add", file, "eve", "--role", "\u{1b}[31m"],
            "control",
        ),
    ] {
        let o = cli(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("invalid username or role") && err.contains(want),
            "{err}"
        );
    }
    rewrite(&f.users, |doc| {
        doc[ALICE]["roles"] = serde_json::json!(["\u{1b}[2J", "ok"]);
        doc["m\u{202E}allory"] = doc[CAROL].clone();
    });
    let o = cli(&["users", "list", file]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("\\u{001B}[2J,ok") && out.contains("m\\u{202E}allory"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{202E}'),
        "raw escapes printed"
    );
}
