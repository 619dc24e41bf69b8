//! `authserver users ... --table NAME` against moto with the real binary: add (refused the
//! second time: a conditional write), disable / enable, list (pages, never a hash), import,
//! remove (refused the second time), each write bumping the table version the servers poll and
//! moving the user count kept beside it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::UsersTable;
use authserver_core::Status;
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::{moto, or_skip};

use ut::cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_commands_edit_the_table_conditionally() {
    let url = or_skip!(moto::url("users_commands_edit_the_table_conditionally"));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c.clone(), &name);
    let cheap = ["--m-cost", "64", "--t-cost", "1"];
    let add = |user: &'static str| {
        let (url, name) = (url.clone(), name.clone());
        move || {
            let args = [&["add", user, "--role", "ops"][..], &cheap[..]].concat();
            cli(&url, &name, &args, Some("Pass-word-1\n"))
        }
    };
    let (ok, _, err) = tokio::task::spawn_blocking(add("alice")).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(table.version().await.unwrap(), 1, "the add bumped the version");
    let (ok, _, err) = tokio::task::spawn_blocking(add("alice")).await.unwrap();
    assert!(!ok && err.contains("already exists"), "{err}");

    let run = |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let (url, name) = (url.clone(), name.clone());
        tokio::task::spawn_blocking(move || cli(&url, &name, &args, stdin))
    };
    let (ok, _, err) = run(vec!["disable", "alice"], None).await.unwrap();
    assert!(ok, "{err}");
    let record =
        authserver_aws::users_table::item::record_of(&table.get("alice").await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (record.status, record.roles.clone()),
        (Status::Disabled, vec!["ops".to_owned()])
    );
    assert_eq!(table.version().await.unwrap(), 2);

    // Import: htpasswd-style JSON, one new user; alice exists and is refused without --replace.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("import.json");
    let hash = authserver_testkit::hash::hash("bob-pass", authserver_testkit::hash::CHEAP);
    std::fs::write(&source, format!(r#"{{"bob":"{hash}"}}"#)).unwrap();
    let src: &'static str = Box::leak(source.to_string_lossy().into_owned().into_boxed_str());
    let (ok, _, err) = run(vec!["import", src, "--format", "json"], None).await.unwrap();
    assert!(ok && err.contains("1 added"), "{err}");

    let (ok, out, err) = run(vec!["list"], None).await.unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("alice") && out.contains("DISABLED") && out.contains("bob"),
        "{out}"
    );
    assert!(!out.contains("$argon2id$") && !out.contains(":version"), "{out}");

    let (ok, _, err) = run(vec!["remove", "alice"], None).await.unwrap();
    assert!(ok, "{err}");
    let (ok, _, err) = run(vec!["remove", "alice"], None).await.unwrap();
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, _, err) = run(vec!["enable", "alice"], None).await.unwrap();
    assert!(
        !ok && err.contains("no user"),
        "a removed user is not re-created by enable: {err}"
    );
    assert!(table.get("alice").await.unwrap().is_none());
    let head = table.head().await.unwrap();
    assert_eq!(
        head.version, 5,
        "add, disable, import, remove, and the second remove's \"no user\" (an earlier \
         remove's answer may have been lost: bumped, count untouched)"
    );
    assert_eq!(
        head.users,
        Some(1),
        "the count the servers report: alice added and removed, bob imported; the failed \
         second add and remove counted nothing"
    );
}
