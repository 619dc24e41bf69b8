//! The real binary on a real socket: log hygiene, hot reload, limits, graceful shutdown.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use std::time::{Duration, Instant};

async fn post(client: &reqwest::Client, url: &str, auth: Option<&str>) -> u16 {
    let mut req = client.post(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Everything the server prints during valid, wrong, disabled, unknown, malformed and missing
/// requests and a broken reload contains no password, header value, hash or plaintext username.
#[tokio::test]
async fn no_secret_reaches_the_output() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[("LOG_LEVEL", "trace")]);
    let client = reqwest::Client::new();
    let url = server.url("/auth/validate");
    let headers = [
        basic(ALICE, ALICE_PW),
        basic(ALICE, "Wrong-Password-9931"),
        basic(BOB, BOB_PW),
        basic(CAROL, CAROL_PW),
        basic("nobody-plaintext-user", "Unknown-Pass-1123"),
        format!("Basic {}", "not-base64-Secret-Token"),
    ];
    for h in &headers {
        post(&client, &url, Some(h)).await;
        client
            .get(server.url("/auth/forward"))
            .header("authorization", h)
            .send()
            .await
            .unwrap();
    }
    post(&client, &url, None).await;
    std::fs::write(
        &f.users,
        format!(
            "{{\"{ALICE}\": {{\"passwordHash\": \"{}\", \"status\": \"nope\"}}}}",
            f.hashes[0]
        ),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (clean_exit, lines) = server.terminate();
    assert!(clean_exit, "SIGTERM is a clean shutdown");
    let all = lines.join("\n");
    assert!(
        all.contains("\"user_hash\""),
        "the log line carries user_hash: {all}"
    );
    assert!(all.contains("users file not reloaded"), "broken reload logged");
    assert!(
        lines.iter().filter(|l| l.contains("\"auth request\"")).count() >= 13,
        "one line per request"
    );
    let mut secrets: Vec<String> = vec![
        ALICE.into(),
        BOB.into(),
        CAROL.into(),
        "nobody-plaintext-user".into(),
        ALICE_PW.into(),
        BOB_PW.into(),
        CAROL_PW.into(),
        "Wrong-Password-9931".into(),
        "Unknown-Pass-1123".into(),
        "not-base64-Secret-Token".into(),
        "$argon2id".into(),
    ];
    secrets.extend(headers.iter().map(|h| h.trim_start_matches("Basic ").to_owned()));
    secrets.extend(f.hashes.iter().cloned());
    for s in &secrets {
        assert!(
            !all.contains(s.as_str()),
            "output contains a secret ({} chars)",
            s.len()
        );
    }
}

/// Disabling a user on disk takes effect within 2 s; a broken edit keeps the last good snapshot.
#[tokio::test]
async fn hot_reload_applies_good_edits_and_survives_broken_ones() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[]);
    let client = reqwest::Client::new();
    let url = server.url("/auth/validate");
    let alice = basic(ALICE, ALICE_PW);
    assert_eq!(post(&client, &url, Some(&alice)).await, 200);

    let mut doc = authserver::cli::users::read(&f.users).unwrap();
    doc.get_mut(ALICE).unwrap().status = authserver_core::Status::Disabled;
    authserver::cli::users::write(&f.users, &doc).unwrap();
    let changed = Instant::now();
    while post(&client, &url, Some(&alice)).await != 401 {
        assert!(changed.elapsed() < Duration::from_secs(2), "reload took over 2 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    for broken in [
        "{ not json",
        // A refused name refuses the document (an entry whose hash merely fails the policy
        // would not: it denies that user only, tests/first_contact.rs).
        "{\"x:y\": {\"passwordHash\": \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"}}",
    ] {
        // Atomic replace, as editors and the CLI do: one new content per edit.
        let tmp = f.dir.path().join("users.json.tmp");
        std::fs::write(&tmp, broken).unwrap();
        std::fs::rename(&tmp, &f.users).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            post(&client, &url, Some(&alice)).await,
            401,
            "alice still disabled: last good kept"
        );
        assert_eq!(
            post(&client, &url, Some(&basic(CAROL, CAROL_PW))).await,
            200,
            "others still served"
        );
        let ready: serde_json::Value = client
            .get(server.admin_url("/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["ready"], true);
        assert!(ready["store"]["lastError"].is_string(), "{ready}");
    }
    let errors = server
        .lines()
        .iter()
        .filter(|l| l.contains("users file not reloaded"))
        .count();
    assert_eq!(errors, 2, "one error per broken edit");

    doc.get_mut(ALICE).unwrap().status = authserver_core::Status::Active;
    authserver::cli::users::write(&f.users, &doc).unwrap();
    let fixed = Instant::now();
    while post(&client, &url, Some(&alice)).await != 200 {
        assert!(fixed.elapsed() < Duration::from_secs(2), "recovery took over 2 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Oversized request heads are refused by the HTTP layer; slow clients are cut off.
#[tokio::test]
async fn limits_on_a_real_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_SERVER_HEADER_READ_TIMEOUT_MS", "300")],
    );
    let client = reqwest::Client::new();
    let res = client
        .post(server.url("/auth/validate"))
        .header("x-big", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 431);

    let mut slow = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"POST /auth/validate HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "a client that never finishes its headers is disconnected"
    );
    assert_eq!(
        post(
            &client,
            &server.url("/auth/validate"),
            Some(&basic(ALICE, ALICE_PW))
        )
        .await,
        200
    );
}

/// A build without the `ext-authz-grpc` feature refuses to start when `server.grpc_listen` is
/// set: silently not listening would leave Envoy failing every check.
#[cfg(not(feature = "ext-authz-grpc"))]
#[test]
fn a_grpc_listener_without_the_feature_refuses_to_start() {
    let f = fixture();
    let mut cmd = authserver_testkit::cli::isolated();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--users"])
        .arg(&f.users)
        .env("AUTHSERVER_ADMIN_LISTEN", "")
        .env("AUTHSERVER_SERVER_GRPC_LISTEN", "127.0.0.1:0");
    let (code, stdout, stderr) = authserver_testkit::cli::outcome(&mut cmd);
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("cargo feature ext-authz-grpc"),
        "{stdout}{stderr}"
    );
}
