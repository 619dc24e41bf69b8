//! One record per request, observed on a real server's stdout: an auth request is one line that
//! is both the access line and the audit event; `log.access` chooses which other lines appear,
//! and never removes an audit record; no line holds a username, password, header or hash.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use serde_json::Value;

/// alice valid, alice wrong, a malformed header, then `/health`; each with its own request id.
async fn traffic(server: &Server) {
    let client = reqwest::Client::new();
    for (id, h) in [
        ("req-valid", basic(ALICE, ALICE_PW)),
        ("req-wrong", basic(ALICE, "bad-pass-xyz")),
        ("req-malformed", "Basic ###".to_owned()),
    ] {
        client
            .post(server.url("/auth/validate"))
            .header("authorization", h)
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
    }
    client
        .get(server.url("/health"))
        .header("x-request-id", "req-health")
        .send()
        .await
        .unwrap();
}

/// The JSON lines of each request id, in order.
fn lines_of(lines: &[String], id: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["request_id"] == id)
        .collect()
}

/// Runs [`traffic`] against a server with `env`; returns its output, checked secret-free.
async fn run(env: &[(&str, &str)]) -> Vec<String> {
    let f = fixture();
    let server = Server::start(&f.users, &[], env);
    traffic(&server).await;
    let (_, lines) = server.terminate();
    let all = lines.join("\n");
    for secret in [ALICE, ALICE_PW, "bad-pass-xyz", "Basic "]
        .iter()
        .copied()
        .chain(f.hashes.iter().map(String::as_str))
    {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    lines
}

#[tokio::test]
async fn an_auth_request_is_one_line_that_is_also_its_audit_event() {
    let lines = run(&[]).await;
    for (id, outcome) in [
        ("req-valid", "allowed"),
        ("req-wrong", "denied"),
        ("req-malformed", "denied"),
    ] {
        let of = lines_of(&lines, id);
        assert_eq!(of.len(), 1, "{id}: {of:?}");
        let l = &of[0];
        assert_eq!(l["message"], "auth request", "{l}");
        assert_eq!(l["log_type"], "audit", "{l}");
        assert_eq!(l["event"], "auth_attempt", "{l}");
        assert_eq!(l["outcome"], outcome, "{l}");
        assert_eq!(l["source"], "127.0.0.1", "{l}");
        assert!(l["latency_ms"].is_number() && l["status"].is_number(), "{l}");
    }
    assert_eq!(lines_of(&lines, "req-wrong")[0]["reason"], "wrong_password");
    assert!(lines_of(&lines, "req-valid")[0].get("reason").is_none());
    let health = lines_of(&lines, "req-health");
    assert_eq!(health.len(), 1, "{health:?}");
    assert!(health[0].get("log_type").is_none() && health[0]["message"] == "request");
}

#[tokio::test]
async fn log_access_none_keeps_every_audit_record() {
    let lines = run(&[("AUTHSERVER_LOG_ACCESS", "none")]).await;
    for id in ["req-valid", "req-wrong", "req-malformed"] {
        let of = lines_of(&lines, id);
        assert_eq!(of.len(), 1, "{id}: the audit record stays: {of:?}");
        assert_eq!(of[0]["log_type"], "audit");
    }
    assert!(lines_of(&lines, "req-health").is_empty());
}

#[tokio::test]
async fn log_access_denied_without_the_audit_stream_logs_denials_only() {
    let f = fixture();
    let audit = f.dir.path().join("audit.log");
    let env = [
        ("AUTHSERVER_LOG_ACCESS", "denied"),
        ("AUTHSERVER_AUDIT_STDOUT", "false"),
        ("AUTHSERVER_AUDIT_FILE", audit.to_str().unwrap()),
    ];
    let server = Server::start(&f.users, &[], &env);
    traffic(&server).await;
    let (_, lines) = server.terminate();
    assert!(lines_of(&lines, "req-valid").is_empty() && lines_of(&lines, "req-health").is_empty());
    for id in ["req-wrong", "req-malformed"] {
        let of = lines_of(&lines, id);
        assert_eq!(of.len(), 1, "{id}: {of:?}");
        assert!(of[0].get("log_type").is_none(), "not the audit stream: {}", of[0]);
    }
    // The audit file has every attempt, whatever the log policy.
    let text = std::fs::read_to_string(&audit).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"]["event"] == "auth_attempt")
        .map(|r| r["event"]["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["req-valid", "req-wrong", "req-malformed"]);
}
