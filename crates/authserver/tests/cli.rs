//! The `authserver` command line, run as operators run it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::cli::{cli, run_cli, text};
use authserver_testkit::hash::FAST;
use authserver_testkit::users::*;
use std::process::{Output, Stdio};

/// `authserver ARGS` with `stdin` written (none: closed).
fn authserver(args: &[&str], stdin: Option<&str>) -> Output {
    run_cli(cli().args(args), stdin)
}

#[test]
fn hash_password_prints_only_a_phc_string_with_the_requested_cost() {
    let o = authserver(
        &["hash-password", "--m-cost", "19456", "--t-cost", "2"],
        Some("s3cret-Value\n"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1);
    let phc = out.trim();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    let h = authserver_core::StoredHash::parse(phc, &Default::default()).unwrap();
    assert!(
        h.verify(&authserver_core::Secret::from("s3cret-Value")),
        "trailing newline stripped"
    );

    let o = authserver(&["hash-password"], Some("\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("password is empty"));
    let o = authserver(&["hash-password", "--m-cost", "1"], Some("x\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("invalid Argon2id parameters"));
}

#[test]
fn users_lifecycle_never_prints_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new-users.json");
    let f = file.to_str().unwrap();
    let o = authserver(
        &["users", "add", f, "dave", "--role", "ops", "--role", "dev"],
        Some("Dave-Pass-1\n"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = authserver(&["users", "add", f, "erin", "--disabled"], Some("Erin-Pass-2\n"));
    assert!(o.status.success());
    let o = authserver(&["users", "add", f, "dave"], Some("again\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("already exists"));

    let list = |expect: &[&str]| {
        let o = authserver(&["users", "list", f], None);
        assert!(o.status.success());
        let out = text(&o.stdout);
        assert!(!out.contains("$argon2id") && !out.contains("Pass-"), "{out}");
        for e in expect {
            assert!(out.contains(e), "{e} in {out}");
        }
        out
    };
    let out = list(&["dave", "ops,dev", "argon2id m=65536,t=3,p=1"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("erin") && l.contains("DISABLED")),
        "{out}"
    );

    assert!(authserver(&["users", "enable", f, "erin"], None).status.success());
    assert!(
        list(&[])
            .lines()
            .any(|l| l.starts_with("erin") && l.contains("ACTIVE"))
    );
    assert!(
        authserver(&["users", "disable", f, "dave"], None)
            .status
            .success()
    );
    assert!(
        list(&[])
            .lines()
            .any(|l| l.starts_with("dave") && l.contains("DISABLED"))
    );
    assert!(authserver(&["users", "remove", f, "dave"], None).status.success());
    assert!(!list(&[]).contains("dave"));

    // The file the CLI wrote is a valid store for the server, and the password works.
    let snap = authserver_core::Snapshot::from_json(&std::fs::read(&file).unwrap(), &Default::default(), "t")
        .unwrap();
    let user = snap.user("erin").unwrap();
    assert!(user.hash.verify(&authserver_core::Secret::from("Erin-Pass-2")));
    assert!(user.password_changed_at.is_some());
    let mut leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    leftovers.sort();
    // The edit lock stays (deleting a lock file breaks the lock); no temp file does.
    assert_eq!(
        leftovers,
        [".new-users.json.lock", "new-users.json"],
        "no temp files left"
    );
}

#[test]
fn users_commands_fail_clearly_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\"a\": {\"passwordHash\": \"x\", \"status\": \"maybe\"}}",
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["users", "disable", missing.to_str().unwrap(), "a"],
            None,
            "cannot read",
        ),
        (
            vec!["users", "enable", broken.to_str().unwrap(), "a"],
            None,
            "status must be ACTIVE or DISABLED",
        ),
        (
            vec!["users", "remove", broken.to_str().unwrap(), "a"],
            None,
            "not a valid users file",
        ),
        (
            vec!["users", "add", missing.to_str().unwrap(), "bad:name"],
            Some("pw\n"),
            "invalid username",
        ),
        (
            vec!["users", "add", missing.to_str().unwrap(), "ok"],
            Some("bad\u{7}pw\n"),
            "control characters",
        ),
        // Refused before hashing (an attack: 4 GiB+ aborted the process on the allocation).
        (
            vec![
                "users",
                "add",
                missing.to_str().unwrap(),
                "ok",
                "--m-cost",
                "1000000",
            ],
            Some("pw\n"),
            "above the configured [hash] ceilings",
        ),
    ];
    for (args, stdin, want) in cases {
        let o = authserver(&args, stdin);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(text(&o.stderr).contains(want), "{args:?}: {}", text(&o.stderr));
    }
    let o = authserver(
        &[
            "users",
            "add",
            missing.to_str().unwrap(),
            "ok",
            "--m-cost",
            "4294967295",
        ],
        Some("pw\n"),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a usage error, not an abort: {}",
        text(&o.stderr)
    );
    let f = fixture();
    let o = authserver(&["users", "remove", f.users.to_str().unwrap(), "nobody"], None);
    assert!(text(&o.stderr).contains("no user \"nobody\""));
    assert!(!missing.exists(), "failed commands write nothing");
}

#[test]
fn config_default_and_check() {
    let o = authserver(&["config", "default"], None);
    assert!(o.status.success());
    let defaults = text(&o.stdout);
    assert!(defaults.contains("[server]") && defaults.contains("listen = \"127.0.0.1:8080\""));

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    write_users(&users);
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        defaults.replace("examples/users.json", users.to_str().unwrap()),
    )
    .unwrap();
    let o = authserver(&["config", "check", "--config", good.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("configuration OK"));

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[server]\nlisten_addr = \"127.0.0.1:1\"\n").unwrap();
    let o = authserver(&["config", "check", "--config", typo.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("unknown field `listen_addr`"),
        "{}",
        text(&o.stderr)
    );

    let weak = dir.path().join("weak.toml");
    std::fs::write(
        &weak,
        format!(
            "[store]\nfile = \"{}\"\n[hash]\nmin_m_kib = 65536\n",
            users.display()
        ),
    )
    .unwrap();
    let o = authserver(&["config", "check", "--config", weak.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("outside policy") && err.contains(ALICE),
        "names the user: {err}"
    );
    assert!(!err.contains("$argon2id"), "never the hash: {err}");
}

#[test]
fn help_everywhere_and_usage_errors_exit_2() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["hash-password", "--help"],
        vec!["users", "--help"],
        vec!["users", "add", "--help"],
        vec!["users", "list", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let o = authserver(&args, None);
        assert!(o.status.success(), "{args:?}");
        assert!(text(&o.stdout).contains("Usage:"), "{args:?}");
    }
    let o = authserver(&["users", "add"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = authserver(&["serve", "--listen", "not-an-address"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = authserver(
        &[
            "serve",
            "--users",
            "/nonexistent/users.json",
            "--listen",
            "127.0.0.1:0",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("cannot read users file"),
        "{}",
        text(&o.stderr)
    );
}

/// CLI errors never echo the secret they were given.
#[test]
fn cli_errors_never_print_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u.json");
    let secret = "Cli-Secret-Pass\u{1}word";
    let hash = authserver_core::hash_password(&authserver_core::Secret::from("x-pass-1"), FAST).unwrap();
    std::fs::write(
        &f,
        format!("{{\"eve-cli-user\": {{\"passwordHash\": \"{hash}\", \"status\": \"bogus\"}}}}"),
    )
    .unwrap();
    let runs = [
        authserver(&["hash-password"], Some(&format!("{secret}\n"))),
        authserver(
            &["users", "add", dir.path().join("n.json").to_str().unwrap(), "x"],
            Some(&format!("{secret}\n")),
        ),
        authserver(&["users", "disable", f.to_str().unwrap(), "eve-cli-user"], None),
        authserver(&["users", "list", f.to_str().unwrap()], None),
    ];
    for o in &runs {
        assert_eq!(o.status.code(), Some(1));
        let all = text(&o.stdout) + &text(&o.stderr);
        for s in ["Cli-Secret-Pass", &hash, "$argon2id"] {
            assert!(!all.contains(s), "secret in CLI output: {all}");
        }
    }
}

#[test]
fn users_hash_matches_what_the_server_logs() {
    let o = cli()
        .args(["users", "hash", "alice"])
        .env("AUTHSERVER_LOG_USER_HASH_KEY", "k-123")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout).trim(),
        authserver_core::UserHasher::new(b"k-123").hash("alice")
    );
    let o = cli()
        .args(["users", "hash", "alice"])
        .env_remove("AUTHSERVER_LOG_USER_HASH_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("random per process"));
}

/// A reader that goes away (`authserver users list FILE | head -n 1`) ends the command quietly:
/// exit 0, nothing on stderr. The listing is larger than a pipe's buffer, so the write fails.
#[test]
fn a_closed_stdout_ends_a_listing_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.json");
    let phc = authserver_core::hash_password(&authserver_core::Secret::from("pw-many-users"), FAST).unwrap();
    let doc: serde_json::Map<String, serde_json::Value> = (0..3000)
        .map(|i| (format!("user-{i:05}"), serde_json::json!({"passwordHash": phc})))
        .collect();
    std::fs::write(&file, serde_json::Value::Object(doc).to_string()).unwrap();
    let mut child = cli()
        .args(["users", "list", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("USERNAME"), "{first}");
    // The reader is dropped here: the rest of the listing goes to a closed pipe.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}
