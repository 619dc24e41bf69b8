//! `authserver users push|pull --secret-id ID FILE` against Secrets Manager on the moto server:
//! the round trip, validation against the hash policy, the refusal during a rotation, the
//! detached `AWSPREVIOUS`, audit events, and output that never carries a hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../authserver-aws/tests/moto/mod.rs"]
mod moto;

use authserver_core::{Cost, Secret, hash_password, parse_document};
use moto::Aws;
use std::path::Path;
use std::process::Command;

fn cli(aws: &Aws, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authserver"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHSERVER_") || k == "CREDENTIAL_SECRET_ARN" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("users")
        .args(args)
        .envs(aws.env())
        .env("AUTHSERVER_AUDIT_STDOUT", "true")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn no_secret(output: &str, hashes: &[String]) {
    assert!(!output.contains("$argon2id"), "a hash in the output: {output}");
    for h in hashes {
        assert!(!output.contains(h.as_str()), "a hash in the output: {output}");
    }
    for pw in [common::ALICE_PW, common::BOB_PW, common::CAROL_PW] {
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
    let f = common::fixture();
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
    let f = common::fixture();
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
