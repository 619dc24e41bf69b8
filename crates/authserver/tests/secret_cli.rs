//! `authserver users push|pull --secret-id ID FILE` against Secrets Manager on the moto server:
//! the round trip, validation against the hash policy, the refusal during a rotation, the
//! detached `AWSPREVIOUS`, audit events, and output that never carries a hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_core::{Cost, Secret, hash_password, parse_document};
use authserver_testkit::cli::outcome;
use authserver_testkit::hash::FAST;
use authserver_testkit::moto::{self, Aws};
use authserver_testkit::users::{ALICE_PW, BOB_PW, CAROL_PW, fixture};
use std::path::Path;

/// `authserver users ARGS` in `aws`'s account, audit on stdout.
fn cli(aws: &Aws, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(
        aws.cli()
            .arg("users")
            .args(args)
            .env("AUTHSERVER_AUDIT_STDOUT", "true"),
    )
}

fn no_secret(output: &str, hashes: &[String]) {
    assert!(!output.contains("$argon2id"), "a hash in the output: {output}");
    for h in hashes {
        assert!(!output.contains(h.as_str()), "a hash in the output: {output}");
    }
    for pw in [ALICE_PW, BOB_PW, CAROL_PW] {
        assert!(!output.contains(pw), "a password in the output: {output}");
    }
}

fn doc(path: &Path) -> authserver_core::StoreDocument {
    parse_document(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn push_then_pull_round_trips_and_validates() {
    let Some(url) = moto::url("push_then_pull_round_trips_and_validates") else {
        return;
    };
    let aws = Aws::fresh(&url).await;
    let name = format!("push/{}/credentials", moto::unique());
    aws.secret(&name, "{}", None).await;
    let f = fixture();
    let file = f.users.to_str().unwrap();

    let (code, out, err) = cli(&aws, &["push", "--secret-id", &name, file]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("pushed 3 users"), "{out}");
    assert!(err.contains(r#""action":"secret.push""#), "audited: {err}");
    no_secret(&(out.clone() + &err), &f.hashes);
    let uploaded = parse_document(aws.value(&name, "AWSCURRENT").await.as_bytes()).unwrap();
    assert!(uploaded == doc(&f.users), "the document as validated");
    let stages = aws.stages(&name).await;
    assert!(
        stages.values().flatten().all(|l| l != "AWSPREVIOUS"),
        "AWSPREVIOUS detached: {stages:?}"
    );

    let pulled = f.dir.path().join("pulled.json");
    let (code, out, err) = cli(&aws, &["pull", "--secret-id", &name, pulled.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("pulled 3 users") && out.contains("validation: OK"),
        "{out}"
    );
    assert!(err.contains(r#""action":"secret.pull""#), "audited: {err}");
    no_secret(&(out + &err), &f.hashes);
    assert!(doc(&pulled) == doc(&f.users), "round trip");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&pulled).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn invalid_files_and_pushes_during_a_rotation_are_refused() {
    let Some(url) = moto::url("invalid_files_and_pushes_during_a_rotation_are_refused") else {
        return;
    };
    let aws = Aws::fresh(&url).await;
    let name = format!("push/{}/credentials", moto::unique());
    aws.secret(&name, "{}", None).await;
    let f = fixture();
    let before = aws.stages(&name).await.len();

    // A hash below the policy floor: refused, the user named, the hash never shown.
    let weak = hash_password(
        &Secret::from("weak-pw"),
        Cost {
            m_kib: 4096,
            t: 1,
            p: 1,
        },
    )
    .unwrap();
    let bad = f.dir.path().join("weak.json");
    std::fs::write(&bad, format!(r#"{{"weakling": {{"passwordHash": "{weak}"}}}}"#)).unwrap();
    let (code, out, err) = cli(&aws, &["push", "--secret-id", &name, bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("outside policy") && err.contains("weakling"),
        "{err}"
    );
    no_secret(&(out + &err), std::slice::from_ref(&weak));
    std::fs::write(&bad, r#"{"x": {"passwordHash": "$argon2id$v=19$m=65536"#).unwrap();
    let (code, _, err) = cli(&aws, &["push", "--secret-id", &name, bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not valid JSON") && !err.contains("$argon2id"),
        "{err}"
    );
    assert_eq!(aws.stages(&name).await.len(), before, "nothing uploaded");

    // A pull of a secret that fails the policy writes the file and says why.
    aws.sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string(format!(r#"{{"weakling": {{"passwordHash": "{weak}"}}}}"#))
        .send()
        .await
        .unwrap();
    let pulled = f.dir.path().join("pulled.json");
    let (code, out, err) = cli(&aws, &["pull", "--secret-id", &name, pulled.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("validation: FAILED") && err.contains("weakling"),
        "{err}"
    );
    no_secret(&(out + &err), &[weak]);
    assert!(doc(&pulled).contains_key("weakling"));

    // During a rotation: refused.
    let function = aws
        .function(&format!("push-{}-rotation", moto::unique()), true)
        .await;
    aws.start_rotation(&name, &function, 30).await;
    let (code, out, err) = cli(&aws, &["push", "--secret-id", &name, f.users.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("a rotation is under way"), "{err}");
    assert!(!err.contains("secret.push"), "not audited: {err}");
}

/// A users file of `n` users sharing one hash (push validates each entry, it does not care that
/// they repeat), and its size as `users push` uploads it (compact JSON).
fn many_users(path: &Path, n: usize, hash: &str) -> usize {
    let users: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| {
            (
                format!("service-user-{i:05}"),
                serde_json::json!({"passwordHash": hash, "roles": ["reader"],
                                   "passwordChangedAt": "2026-01-01T00:00:00Z"}),
            )
        })
        .collect();
    let text = serde_json::Value::Object(users).to_string();
    std::fs::write(path, &text).unwrap();
    serde_json::to_string(&parse_document(text.as_bytes()).unwrap())
        .unwrap()
        .len()
}

/// Secrets Manager takes at most 65,536 bytes per secret value (moto takes more): an oversized
/// file is refused before any AWS call, with its size, the limit and how many users fit; a
/// nearly full one is pushed with a warning.
#[tokio::test]
async fn oversized_files_are_refused_before_any_aws_call_and_nearly_full_ones_warn() {
    let Some(url) = moto::url("oversized_files_are_refused_before_any_aws_call_and_nearly_full_ones_warn")
    else {
        return;
    };
    let aws = Aws::fresh(&url).await;
    let name = format!("push/{}/credentials", moto::unique());
    aws.secret(&name, "{}", None).await;
    let f = fixture();
    let hash = hash_password(&Secret::from(ALICE_PW), FAST).unwrap();
    let entry = many_users(&f.dir.path().join("one.json"), 100, &hash) / 100;
    eprintln!(
        "FIGURE users push: {entry} bytes per user (Argon2id hash, one role, passwordChangedAt, \
         compact JSON): about {} users fit in 65,536 bytes",
        65_536 / entry
    );

    let big = f.dir.path().join("big.json");
    let n = 65_536 / entry + 20;
    let bytes = many_users(&big, n, &hash);
    assert!(bytes > 65_536, "{bytes}");
    // A secret that does not exist: any AWS call would fail with ResourceNotFound instead.
    let missing = format!("push/{}/no-such-secret", moto::unique());
    for secret in [&missing, &name] {
        let (code, out, err) = cli(&aws, &["push", "--secret-id", secret, big.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(
            err.contains(&format!("{bytes} bytes")) && err.contains("limit of 65536 bytes"),
            "{err}"
        );
        let fit = 65_536 * n / bytes;
        assert!(
            err.contains(&format!("about {fit} users fit (it has {n})")),
            "{err}"
        );
        assert!(!err.contains("ResourceNotFound"), "no AWS call: {err}");
        eprintln!("FIGURE users push of {n} users: {}", err.trim());
        no_secret(&(out + &err), std::slice::from_ref(&hash));
    }
    assert_eq!(aws.stages(&name).await.len(), 1, "nothing uploaded");

    let full = f.dir.path().join("full.json");
    let n = 65_536 * 95 / 100 / entry;
    let bytes = many_users(&full, n, &hash);
    assert!((58_983..=65_536).contains(&bytes), "{bytes}");
    let (code, out, err) = cli(&aws, &["push", "--secret-id", &name, full.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains(&format!("warning: the users document is {bytes} bytes")) && err.contains("DynamoDB"),
        "{err}"
    );
    let (code, out, err) = cli(&aws, &["push", "--secret-id", &name, f.users.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!err.contains("warning"), "a small file: no warning: {err}");
}
