//! Attacks on the files the CLI and the server write (issue 11, items 2, 3, 15 and the CLI's
//! config and actor): concurrent edits, planted symlinks, loose permissions, two audit writers,
//! torn and cut audit files. Drives the real binary where the attack did.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::audit::{Audit, Stream, chain};
use authserver::config::AuditSettings;
use authserver_core::AuditSink;
use authserver_testkit::cli::{self, cli, finish, text};
use authserver_testkit::users::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// `authserver ARGS` with stdin held open (the caller writes the password when it wants).
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = cli();
    cmd.args(args)
        .env("AUTHSERVER_AUDIT_STDOUT", "false")
        .envs(env.iter().copied());
    cli::spawn(&mut cmd)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    finish(spawn(args, env), None)
}

fn err(o: &Output) -> String {
    text(&o.stderr)
}

/// `users add FILE NAME` at the cheapest cost the default policy accepts.
fn add_args<'a>(file: &'a str, name: &'a str) -> Vec<&'a str> {
    vec!["users", "add", file, name, "--m-cost", "19456", "--t-cost", "2"]
}

fn doc(file: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Item 2: before, 20 concurrent adds all said "added" and 19 users were lost.
#[test]
fn twenty_concurrent_adds_all_land_in_a_0600_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let f = file.to_str().unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("user-{i:02}")).collect();
    let children: Vec<Child> = names.iter().map(|n| spawn(&add_args(f, n), &[])).collect();
    let started = Instant::now();
    for (child, name) in children.into_iter().zip(&names) {
        let o = finish(child, Some("Concurrent-Pass-1\n"));
        assert!(o.status.success(), "{name}: {}", err(&o));
    }
    eprintln!("20 concurrent adds took {:?}", started.elapsed());
    let users = doc(&file);
    for name in &names {
        assert!(users.get(name).is_some(), "{name} lost: {users}");
    }
    assert_eq!(mode(&file), 0o600, "a new users file is owner-only");
    let tmp: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

/// Item 2: before, an `add` read the file, waited for its password, and wrote back the old
/// document, undoing a `disable` done meanwhile.
#[test]
fn a_disable_during_an_add_is_never_undone() {
    let f = fixture();
    let users = f.users.to_str().unwrap();
    let add = spawn(&add_args(users, "newcomer"), &[]);
    std::thread::sleep(Duration::from_millis(300)); // the add has read the file, waits for stdin
    let o = run(&["users", "disable", users, ALICE], &[]);
    assert!(o.status.success(), "{}", err(&o));
    let o = finish(add, Some("Newcomer-Pass-1\n"));
    assert!(o.status.success(), "{}", err(&o));
    let after = doc(&f.users);
    assert_eq!(after[ALICE]["status"], "DISABLED", "disable undone: {after}");
    assert!(after.get("newcomer").is_some());
}

/// Item 15: before, the temp file was `.users.json.tmp<pid>` opened with `File::create`, so a
/// symlink planted there overwrote its target.
#[test]
fn a_planted_symlink_at_the_old_temp_name_is_not_followed() {
    let f = fixture();
    let victim = f.dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let add = spawn(&add_args(f.users.to_str().unwrap(), "newcomer"), &[]);
    let planted = f.dir.path().join(format!(".users.json.tmp{}", add.id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    // A temp file an editor killed mid-write left behind: removed by the next edit.
    let stale = f.dir.path().join(".users.json.0123456789abcdef.tmp");
    std::fs::write(&stale, "{}").unwrap();
    let o = finish(add, Some("Newcomer-Pass-1\n"));
    assert!(o.status.success(), "{}", err(&o));
    assert!(!stale.exists(), "stale temp file removed");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(doc(&f.users).get("newcomer").is_some());
    assert!(std::fs::symlink_metadata(&f.users).unwrap().file_type().is_file());
}

/// Item 15: before, editing through a symlink replaced the link with a regular file, and the
/// server kept reading the old target.
#[test]
fn editing_through_a_symlink_edits_the_target_and_keeps_the_link() {
    let f = fixture();
    let link = f.dir.path().join("link.json");
    std::os::unix::fs::symlink(&f.users, &link).unwrap();
    let o = run(&["users", "disable", link.to_str().unwrap(), ALICE], &[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(doc(&f.users)[ALICE]["status"], "DISABLED");
}

/// Item 15: a group/other-writable directory is refused; a group/other-writable file is edited
/// with a warning and keeps its mode; every edit keeps the file's mode.
#[test]
fn loose_permissions_are_refused_or_warned_and_modes_are_kept() {
    let f = fixture();
    let users = f.users.to_str().unwrap();
    std::fs::set_permissions(&f.users, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(run(&["users", "disable", users, ALICE], &[]).status.success());
    assert_eq!(mode(&f.users), 0o640, "mode kept");

    std::fs::set_permissions(&f.users, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = run(&["users", "enable", users, ALICE], &[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("writable by group or others"), "{}", err(&o));
    assert_eq!(mode(&f.users), 0o666);

    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let before = std::fs::read(&f.users).unwrap();
    let o = run(&["users", "disable", users, ALICE], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("refusing to edit") && err(&o).contains("chmod go-w"),
        "{}",
        err(&o)
    );
    assert_eq!(std::fs::read(&f.users).unwrap(), before, "nothing written");
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Item 2: `users pull` writes through the same path; the file is 0600 even when it was 0644.
#[test]
fn a_replaced_users_file_is_owner_only() {
    let f = fixture();
    std::fs::set_permissions(&f.users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = authserver::cli::users::read(&f.users).unwrap();
    authserver::store::file::edit::replace(&f.users, &d).unwrap();
    assert_eq!(mode(&f.users), 0o600);
}

fn audit_settings(file: &Path) -> AuditSettings {
    AuditSettings {
        stdout: false,
        file: file.to_str().unwrap().to_owned(),
    }
}

fn ban(i: u64) -> authserver_core::AuditEvent {
    authserver_core::AuditEvent::Unban {
        scope: "source",
        key: format!("192.0.2.{}", i % 250),
    }
}

/// Item 3 and the CLI item: a server's sink and `users` commands (reading the audit file from
/// `--config`) append to one file at once; the chain stays whole. Before, each writer continued
/// its own chain and the file never verified again.
#[test]
fn a_server_sink_and_cli_commands_share_one_chain() {
    let f = fixture();
    let audit_file = f.dir.path().join("audit.jsonl");
    let config = f.dir.path().join("cfg.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\nstdout = false\nfile = {:?}\n[log]\nuser_hash_key = \"k-1\"\n",
            audit_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = Audit::from_settings(&audit_settings(&audit_file), Stream::Stdout).unwrap();
    let users = f.users.to_str().unwrap();
    let env = [
        ("AUTHSERVER_CONFIG", config.to_str().unwrap()),
        ("SUDO_USER", "mallory"),
        ("USER", "mallory"),
    ];
    let cli = std::thread::scope(|s| {
        let cli = s.spawn(|| {
            (0..6)
                .map(|i| {
                    run(
                        &[
                            "users",
                            if i % 2 == 0 { "disable" } else { "enable" },
                            users,
                            ALICE,
                        ],
                        &env,
                    )
                })
                .collect::<Vec<_>>()
        });
        for i in 0..3000 {
            server.emit(ban(i));
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        cli.join().unwrap()
    });
    for o in &cli {
        assert!(o.status.success(), "{}", err(o));
        assert!(err(o).contains("audit anchor "), "{}", err(o));
    }
    drop(server);
    let bytes = std::fs::read(&audit_file).unwrap();
    let v = chain::verify(&bytes).unwrap_or_else(|b| panic!("chain broken: {b}"));
    assert_eq!(v.records, 3006);
    // The actor is the kernel's uid; SUDO_USER is only a labelled claim; USER is ignored.
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let text = String::from_utf8(bytes).unwrap();
    let admin: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"]["event"] == "admin_action")
        .collect();
    assert_eq!(admin.len(), 6);
    for r in &admin {
        let actor = r["event"]["actor"].as_str().unwrap();
        assert!(actor.starts_with(&format!("uid={uid}")), "{actor}");
        assert!(actor.ends_with(r#"sudo_user="mallory"(claimed)"#), "{actor}");
    }
    // `users hash` reads the key from the same config: the variable, or --config anywhere.
    let cfg = config.to_str().unwrap();
    let want = authserver_core::UserHasher::new(b"k-1").hash(ALICE);
    for (args, env) in [
        (vec!["users", "hash", ALICE], &env[..1]),
        (vec!["users", "--config", cfg, "hash", ALICE], &[][..]),
        (vec!["users", "hash", ALICE, "--config", cfg], &[][..]),
    ] {
        let o = run(&args, env);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            want,
            "{args:?}: {}",
            err(&o)
        );
    }
}

/// Item 3: a second writer waits for the lock, then fails naming the file; events it cannot
/// write are counted (the AuditDropped metric) and the command that lost them fails.
#[test]
fn a_blocked_audit_writer_fails_clearly_and_counts_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = Audit::from_settings(&audit_settings(&path), Stream::Stderr).unwrap();
    let holder = std::fs::File::open(&path).unwrap();
    holder.lock().unwrap();
    let started = Instant::now();
    let e = Audit::from_settings(&audit_settings(&path), Stream::Stderr).unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(format!("{e:#}").contains(path.to_str().unwrap()), "{e:#}");
    assert!(format!("{e:#}").contains("locked by another writer"), "{e:#}");

    for i in 0..3 {
        sink.emit(ban(i));
    }
    std::thread::sleep(Duration::from_millis(2500));
    holder.unlock().unwrap();
    let e = sink.close().unwrap_err().to_string();
    // The first batch waited the full 2 s and was dropped; later ones may have got the lock.
    let lost: u64 = e.split(' ').next().unwrap().parse().unwrap();
    assert!(
        (1..=3).contains(&lost)
            && e.contains("audit event(s) could not be written")
            && e.contains("locked by another writer"),
        "{e}"
    );
    let settings = authserver::config::Settings {
        audit: audit_settings(&path),
        ..Default::default()
    };
    let telemetry = authserver::telemetry::Telemetry::new(&settings, None);
    let counted = telemetry
        .registry
        .audit_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, lost, "AuditDropped counts them");
    let records = chain::verify(std::fs::read(&path).unwrap()).unwrap().records;
    assert_eq!(records, 3 - lost, "the rest were written, the chain intact");
}

fn emit_n(path: &Path, n: u64) {
    let sink = Audit::from_settings(&audit_settings(path), Stream::Stderr).unwrap();
    for i in 0..n {
        sink.emit(ban(i));
    }
    sink.close().unwrap();
}

/// Item 3: before, a torn last line made the file unverifiable for good (and the next record
/// was glued onto it).
#[test]
fn a_torn_tail_is_repaired_and_reported_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    emit_n(&path, 3);
    let whole = std::fs::read(&path).unwrap();
    let last_start = whole[..whole.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let torn = [&whole[..], &whole[last_start..last_start + 40]].concat(); // a crash mid-write
    std::fs::write(&path, &torn).unwrap();
    assert!(chain::verify(&torn).is_err(), "torn and not yet recovered");
    emit_n(&path, 2);
    let o = run(&["audit", "verify", path.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", err(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("OK: 6 records") && out.contains("recovered: line 4"),
        "{out}"
    );
    // The torn line cannot be swapped for other text: the `recovered` record names its bytes.
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{\"seq\": 99";
    assert_eq!(chain::verify(lines.join("\n")).unwrap_err().line, 4);
}

/// Item 3: before, deleting the tail still verified. The anchor the writer announced catches it.
#[test]
fn a_cut_or_rewritten_tail_fails_against_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let p = path.to_str().unwrap();
    emit_n(&path, 10);
    let anchor = chain::verify(std::fs::read(&path).unwrap()).unwrap();
    let anchor = format!("10:{}", anchor.last_hash);
    assert!(
        run(&["audit", "verify", p, "--anchor", &anchor], &[])
            .status
            .success()
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().take(7).collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    assert!(
        run(&["audit", "verify", p], &[]).status.success(),
        "without an anchor a cut is invisible"
    );
    let o = run(&["audit", "verify", p, "--anchor", &anchor], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("ends at seq 7, before the anchor's seq 10"),
        "{}",
        err(&o)
    );

    emit_n(&path, 3); // the tail rewritten: seq 8..10 again, other content
    let o = run(&["audit", "verify", p, "--anchor", &anchor], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("record 10 does not match the anchor"),
        "{}",
        err(&o)
    );
    let o = run(&["audit", "verify", p, "--anchor", "10:nothex"], &[]);
    assert_eq!(o.status.code(), Some(2), "a malformed anchor is a usage error");
}

/// Item 3: a server appending as fast as it can does not starve a CLI command of the lock.
#[test]
fn a_busy_server_writer_does_not_starve_a_cli_command() {
    let f = fixture();
    let audit_file = f.dir.path().join("audit.jsonl");
    let server = Audit::from_settings(&audit_settings(&audit_file), Stream::Stdout).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let env = [("AUTHSERVER_AUDIT_FILE", audit_file.to_str().unwrap())];
    let users = f.users.to_str().unwrap();
    let outputs = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                server.emit(ban(i));
                i += 1;
            }
        });
        let outputs: Vec<(Output, Duration)> = (0..5)
            .map(|_| {
                let t = Instant::now();
                (run(&["users", "enable", users, ALICE], &env), t.elapsed())
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        outputs
    });
    for (o, took) in &outputs {
        eprintln!("cli took {took:?}");
        assert!(o.status.success(), "{}", err(o));
    }
    drop(server);
    let v = chain::verify(std::fs::read(&audit_file).unwrap()).unwrap_or_else(|b| panic!("{b}"));
    eprintln!("{} records", v.records);
}
