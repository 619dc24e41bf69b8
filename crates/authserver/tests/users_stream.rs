//! `users` edits that stream the file (issue 17): what they write, and that a kill mid-write
//! leaves the old file or the new one.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::{StoreDocument, parse_document};
use authserver_testkit::cli::{cli, run_cli, text};
use authserver_testkit::users::write_many;
use std::path::Path;
use std::time::Instant;

fn canonical(doc: &StoreDocument) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(doc).unwrap();
    out.push(b'\n');
    out
}

fn users(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    run_cli(cli().arg("users").args(args), stdin)
}

fn temps(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count()
}

/// Each streamed edit writes byte for byte what the whole-document writer wrote before (a
/// sorted map, pretty), for entries with every field; a broken file is left as it was.
#[test]
fn streamed_edits_write_what_the_whole_document_writer_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let f = file.to_str().unwrap();
    let h = authserver_testkit::hash::hash("pw", authserver_testkit::hash::FAST);
    let source = format!(
        r#"{{"bob":{{"passwordHash":"{h}","roles":["r"]}},"carl":{{"passwordHash":"{h}","status":"DISABLED","roles":["a","b"],
            "passwordChangedAt":"2026-01-02T03:04:05Z","deliverySecretId":"svc/x"}},
            "d\u00e9sir\u00e9e":{{"passwordHash":"{h}","oauth":{{"scopes":["read"]}}}},"zed":{{"passwordHash":"{h}"}}}}"#
    );
    let mut doc = parse_document(source.as_bytes()).unwrap();
    std::fs::write(&file, canonical(&doc)).unwrap();

    let o = users(&["add", f, "cat", "--role", "ops"], Some("Cat-Pass-1\n"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let after = std::fs::read(&file).unwrap();
    let added = parse_document(&after).unwrap()["cat"].clone();
    doc.insert("cat".into(), added);
    assert_eq!(text(&after), text(&canonical(&doc)), "add");

    for (args, change) in [
        (
            ["disable", "zed"],
            Box::new(|d: &mut StoreDocument| {
                d.get_mut("zed").unwrap().status = authserver_core::Status::Disabled
            }) as Box<dyn Fn(&mut StoreDocument)>,
        ),
        (
            ["enable", "carl"],
            Box::new(|d: &mut StoreDocument| {
                d.get_mut("carl").unwrap().status = authserver_core::Status::Active
            }),
        ),
        (
            ["remove", "bob"],
            Box::new(|d: &mut StoreDocument| drop(d.remove("bob"))),
        ),
    ] {
        let o = users(&[args[0], f, args[1]], None);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        change(&mut doc);
        assert_eq!(
            text(&std::fs::read(&file).unwrap()),
            text(&canonical(&doc)),
            "{args:?}"
        );
    }

    // Broken after the entry concerned, or a name listed twice out of order: refused, untouched.
    for broken in [
        format!(r#"{{"a":{{"passwordHash":"{h}"}},"b":{{"passwordHash":"{h}","status":"maybe"}}}}"#),
        format!(
            r#"{{"b":{{"passwordHash":"{h}"}},"a":{{"passwordHash":"{h}"}},"b":{{"passwordHash":"{h}"}}}}"#
        ),
        format!(r#"{{"a":{{"passwordHash":"{h}"}}"#),
    ] {
        std::fs::write(&file, &broken).unwrap();
        let o = users(&["disable", f, "a"], None);
        assert_eq!(o.status.code(), Some(1), "{broken}");
        assert!(
            text(&o.stderr).contains("not a valid users file"),
            "{}",
            text(&o.stderr)
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), broken, "untouched");
        assert_eq!(temps(dir.path()), 0, "no temp file left");
    }
}

/// A kill -9 at any moment of `users add` on a large file leaves either the old file, byte for
/// byte, or the complete new one: the new content only ever lands by rename.
#[test]
fn a_kill_during_users_add_leaves_the_old_file_or_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let f = file.to_str().unwrap();
    write_many(&file, 40_000);
    let add = |name: &str| {
        let mut cmd = cli();
        cmd.args(["users", "add", f, name, "--m-cost", "19456", "--t-cost", "2"]);
        authserver_testkit::cli::spawn(&mut cmd)
    };
    // How long a whole add takes here, to kill inside it.
    let t = Instant::now();
    let done = authserver_testkit::cli::finish(add("timing-run"), Some("Pass-Word-1\n"));
    assert!(done.status.success(), "{}", text(&done.stderr));
    let whole = t.elapsed();
    let before = std::fs::read(&file).unwrap();
    let count = parse_document(&before).unwrap().len();
    let (mut old, mut new, mut mid_write) = (0, 0, 0);
    for i in 1..=6u32 {
        let mut child = add(&format!("killed-{i}"));
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"Pass-Word-1\n").unwrap();
        }
        std::thread::sleep(whole.mul_f64(f64::from(i) * 0.14));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        mid_write += usize::from(temps(dir.path()) > 0);
        let now = std::fs::read(&file).unwrap();
        if now == before {
            old += 1;
            continue;
        }
        let doc = parse_document(&now).expect("never a mix: the new file parses whole");
        assert_eq!(doc.len(), count + 1, "every user, and the new one");
        assert!(doc.contains_key(&format!("killed-{i}")));
        new += 1;
        break; // the file changed: the next kills would compare against another base
    }
    assert!(old + new > 0);
    assert!(
        mid_write > 0,
        "no kill landed while the temp file was being written ({whole:?} per add)"
    );
    // The next edit clears what the killed ones left.
    let o = users(&["remove", f, "timing-run"], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(temps(dir.path()), 0);
}
