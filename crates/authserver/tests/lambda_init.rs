//! Lambda init against AWS endpoints that misbehave, with the real binary started the way Lambda
//! starts `bootstrap` (no arguments, `AWS_LAMBDA_RUNTIME_API` set):
//! - an endpoint that accepts connections and never answers (Secrets Manager, or the DynamoDB
//!   users table's first version read): init ends within its budget
//!   (`lambda.init_budget_ms`) instead of running into Lambda's 10 s init limit, and (under the
//!   Runtime API emulator, when `CARGO_LAMBDA` is set) requests then get 503 / an authorizer
//!   error until a snapshot exists;
//! - a `user_hash` key secret that answers AccessDenied: init fails with an error naming the
//!   secret, never a random key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::emulator::{self, Emulator, Function};
use authserver_testkit::lambda::fixture;
use authserver_testkit::skip;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A loopback listener that accepts every connection and never sends a byte. Returns its URL.
fn silent_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream); // kept open, never answered
        }
    });
    url
}

/// A loopback endpoint answering every request as Secrets Manager does when access is denied.
fn denying_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 16384];
            let _ = stream.read(&mut buf);
            let body = r#"{"__type":"AccessDeniedException","message":"not authorized to perform secretsmanager:GetSecretValue"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\n\
                 x-amzn-requestid: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// The environment of a Secrets Manager function whose AWS endpoint is `endpoint`.
fn aws_env(endpoint: &str, budget_ms: u64) -> Vec<(String, String)> {
    [
        ("AUTHSERVER_STORE_KIND", "secrets_manager"),
        ("CREDENTIAL_SECRET_ARN", "authserver/credentials"),
        ("AUTHSERVER_USER_HASH_KEY_SECRET_ARN", "authserver/user-hash-key"),
        ("AUTHSERVER_STORE_ENDPOINT_URL", endpoint),
        ("AUTHSERVER_LAMBDA_INIT_BUDGET_MS", &budget_ms.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Starts the binary as `bootstrap` against a Runtime API at `runtime` with `env`.
fn bootstrap(runtime: &str, env: &[(String, String)]) -> std::process::Child {
    let mut cmd = emulator::bootstrap(runtime);
    // No AWS credentials or endpoints of the caller's either (the Lambda variables are ours).
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") && !k.starts_with("AWS_LAMBDA_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The environment of a DynamoDB users-table function whose AWS endpoint is `endpoint` (the
/// `user_hash` key given inline: only the table's first version read is at stake).
fn table_env(endpoint: &str, budget_ms: u64) -> Vec<(String, String)> {
    let mut env = aws_env(endpoint, budget_ms);
    env.retain(|(k, _)| {
        !matches!(k.as_str(), "AUTHSERVER_STORE_KIND" | "CREDENTIAL_SECRET_ARN")
            && k != "AUTHSERVER_USER_HASH_KEY_SECRET_ARN"
    });
    for (k, v) in [
        ("AUTHSERVER_STORE_KIND", "dynamodb"),
        ("AUTHSERVER_USERS_TABLE", "authserver-users"),
        ("AUTHSERVER_LOG_USER_HASH_KEY", "init-test-key"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

#[test]
fn init_ends_within_its_budget_when_aws_never_answers() {
    init_within_budget(aws_env, "secrets_manager");
}

/// The users table's first version read is under the same budget: before, a hung DynamoDB
/// endpoint held init for the SDK's timeouts and retries (~4 s with a 1.5 s budget).
#[test]
fn init_ends_within_its_budget_when_the_users_table_never_answers() {
    init_within_budget(table_env, "dynamodb");
}

fn init_within_budget(env: fn(&str, u64) -> Vec<(String, String)>, store: &str) {
    let budget_ms = 1500;
    let silent = silent_endpoint();
    let started = Instant::now();
    // The Runtime API is silent too: after init the function just waits for an invocation.
    let mut child = bootstrap(&silent_endpoint(), &env(&silent, budget_ms));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("lambda init complete") {
                let _ = tx.send((started.elapsed(), line));
                return;
            }
        }
    });
    // Before the budget existed this took 12.6 s (two fetches in a row, each with its retries).
    let got = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let (elapsed, line) = got.expect("no `lambda init complete` line within 20 s");
    let log: Value = serde_json::from_str(&line).unwrap();
    let init_ms = log["init_ms"].as_f64().unwrap();
    let ratio = init_ms / budget_ms as f64;
    eprintln!(
        "FIGURE init against a silent endpoint ({store}): init_ms {init_ms:.0} with a {budget_ms} \
         ms budget (ratio {ratio:.2}); process start to the line {:.0} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    if store == "dynamodb" {
        // Built within the budget (the key was inline), the table's read still under way.
        assert_eq!(log["store"], store, "{line}");
    }
    assert!(
        ratio < 2.0,
        "init took {init_ms} ms for a {budget_ms} ms budget: {line}"
    );
    assert_eq!(log["ready"], false, "{line}");
}

#[test]
fn an_unreadable_user_hash_key_fails_init_with_a_clear_error() {
    let denying = denying_endpoint();
    let child = bootstrap(&silent_endpoint(), &aws_env(&denying, 4000));
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "init must fail: {stdout}{stderr}");
    assert!(
        stderr.contains("cannot read the user_hash key secret \"authserver/user-hash-key\"")
            && stderr.contains("AUTHSERVER_USER_HASH_KEY_SECRET_ARN"),
        "{stderr}"
    );
    assert!(!stdout.contains("lambda init complete"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_503_until_a_snapshot_exists() {
    let Some(cargo_lambda) = skip::env("CARGO_LAMBDA", "requests_get_503_until_a_snapshot_exists") else {
        return;
    };
    let silent = silent_endpoint();
    let client = reqwest::Client::new();
    let cases = [
        ("proxy", aws_env(&silent, 1000)),
        ("authorizer", aws_env(&silent, 1000)),
        ("proxy", table_env(&silent, 1000)),
    ];
    for (mode, env) in cases {
        let emulator = Emulator::start(&cargo_lambda);
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("AUTHSERVER_LAMBDA_MODE", mode));
        let function = Function::start(&emulator, &env);
        let event = if mode == "proxy" {
            fixture("apigw_v2_http_api.json")
        } else {
            fixture("authorizer_http_api_v2.json")
        };
        let (status, out) = emulator.invoke(&client, &event).await;
        if mode == "proxy" {
            assert_eq!(out["statusCode"], 503, "{status} {out}");
            assert_eq!(out["headers"]["retry-after"], "1", "{out}");
        } else {
            // An error, which API Gateway answers with a 500 and does not cache.
            assert!(out.get("isAuthorized").is_none(), "{status} {out}");
            assert!(out.to_string().contains("service unavailable"), "{status} {out}");
        }
        let logs = function.logs();
        assert!(logs.contains("lambda init complete"), "{logs}");
        assert!(logs.contains("at the end of the init budget"), "{logs}");
        assert!(!logs.contains("init-test-key"), "{logs}");
    }
}

#[test]
fn lambda_settings_are_validated_without_quoting_the_origin_secret() {
    let mut s = authserver::config::Settings::default();
    s.lambda.cloudfront_secret_header = "no-colon-here-but-secret-9f8e".into();
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("lambda.cloudfront_secret_header"), "{err}");
    assert!(!err.contains("secret-9f8e"), "the value leaked: {err}");
    s.lambda.cloudfront_secret_header = "X-Origin-Verify: secret-9f8e".into();
    assert!(s.validate().is_ok());
    assert_eq!(
        s.lambda.cloudfront_secret(),
        Some(("x-origin-verify".into(), "secret-9f8e".into()))
    );
    for budget in [0, 9001] {
        s.lambda.init_budget_ms = budget;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("lambda.init_budget_ms")
        );
    }
}
