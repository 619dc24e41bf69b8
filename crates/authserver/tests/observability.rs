//! Metrics, stats, EMF and the audit trail, observed from outside.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, app};
use authserver::telemetry::Telemetry;
use authserver_testkit::cli::{cli, run_cli};
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// GET on the admin router (where `/metrics`, `/stats`, `/dashboard` live), as from loopback.
async fn get(state: &Arc<AppState>, path: &str) -> (StatusCode, String) {
    let req = Request::get(path).header("host", "127.0.0.1:9090");
    let res = authserver::http::admin_app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    (
        status,
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    )
}

async fn auth(state: &Arc<AppState>, value: Option<&str>, country: Option<&str>) -> StatusCode {
    let mut req = Request::post("/auth/validate");
    if let Some(v) = value {
        req = req.header(header::AUTHORIZATION, v);
    }
    if let Some(c) = country {
        req = req.header("cloudfront-viewer-country", c);
    }
    app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

fn state_with_emf(users: &std::path::Path) -> (Arc<AppState>, Arc<Mutex<Vec<String>>>) {
    let mut s = settings(users);
    s.telemetry.country_header = "CloudFront-Viewer-Country".parse().expect("header name");
    s.telemetry.stage = "test".into();
    let state = Arc::into_inner(authserver::wiring::build(s).unwrap().state).unwrap();
    let blobs = Arc::new(Mutex::new(Vec::new()));
    let sink = blobs.clone();
    let telemetry = Telemetry::new(
        &state.settings,
        Some(Arc::new(move |b| sink.lock().unwrap().push(b))),
    );
    (Arc::new(AppState { telemetry, ..state }), blobs)
}

#[tokio::test]
async fn metrics_and_stats_count_what_happened() {
    let f = fixture();
    let (state, _) = state_with_emf(&f.users);
    let good = basic(ALICE, ALICE_PW);
    for _ in 0..4 {
        assert_eq!(auth(&state, Some(&good), Some("de")).await, StatusCode::OK);
    }
    assert_eq!(
        auth(&state, Some(&basic(ALICE, "nope")), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        auth(&state, Some(&basic("ghost", "x")), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        auth(&state, Some("Basic %%%"), None).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(auth(&state, None, Some("XX1")).await, StatusCode::UNAUTHORIZED);

    let (status, text) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "authserver_auth_success_total 4",
        "authserver_auth_failure_total{reason=\"wrong_password\"} 1",
        "authserver_auth_failure_total{reason=\"unknown_user\"} 1",
        "authserver_auth_failure_total{reason=\"malformed\"} 1",
        "authserver_auth_failure_total{reason=\"missing\"} 1",
        "authserver_credential_cache_hit_total 3",
        "authserver_credential_cache_miss_total 3",
        "authserver_latency_seconds_count 8",
        "authserver_hash_verify_duration_seconds_count 3",
        "authserver_requests_total{country=\"DE\"} 4",
        "authserver_cold_start_total 1",
        "authserver_store_refresh_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
    assert!(!text.contains("XX1"), "invalid country values are not labels");

    let (_, stats) = get(&state, "/stats").await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    let w = &stats["window"];
    assert_eq!(w["requests"], 8);
    assert_eq!(w["success_ratio"], 0.5);
    assert_eq!(w["cache_hit_ratio"], 0.5);
    assert!(w["latency_ms"]["p99"].as_f64().unwrap() >= w["latency_ms"]["p50"].as_f64().unwrap());
    let tops = w["top_failing_user_hashes"].as_array().unwrap();
    assert_eq!(tops.len(), 2, "wrong_password and unknown_user users: {tops:?}");
    assert!(!stats.to_string().contains(ALICE), "never plaintext usernames");
    assert_eq!(stats["store"]["users"], 3);
    assert_eq!(stats["credentialCache"]["entries"], 1);

    let (status, html) = get(&state, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<html") && !html.replace("http://www.w3.org/2000/svg", "").contains("://"),
        "self-contained: no absolute URL except the SVG namespace name"
    );
}

/// Checks a blob against the EMF specification's structure.
fn assert_valid_emf(blob: &Value) {
    let aws = &blob["_aws"];
    assert!(aws["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert!(!directives.is_empty());
    for d in directives {
        let ns = d["Namespace"].as_str().unwrap();
        assert!((1..=255).contains(&ns.len()));
        let dims = d["Dimensions"].as_array().unwrap();
        for set in dims {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30, "at most 30 dimensions per set");
            for name in set {
                let v = &blob[name.as_str().unwrap()];
                assert!(v.is_string(), "dimension {name} must be a root string member");
            }
        }
        let metrics = d["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100, "at most 100 metrics per directive");
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!((1..=255).contains(&name.len()));
            let unit = m["Unit"].as_str().unwrap();
            assert!(
                ["Count", "Milliseconds", "Seconds", "None"].contains(&unit),
                "{unit}"
            );
            let v = &blob[name];
            assert!(
                v.is_number()
                    || v.as_array()
                        .is_some_and(|a| a.len() <= 100 && a.iter().all(Value::is_number)),
                "metric {name} must be a root number"
            );
            assert!(
                authserver::telemetry::names::ALL
                    .iter()
                    .any(|d| d.cloudwatch == name),
                "{name} is in the names module"
            );
        }
    }
}

#[tokio::test]
async fn lambda_emits_one_valid_emf_blob_per_invocation() {
    let f = fixture();
    let (state, blobs) = state_with_emf(&f.users);
    auth(&state, Some(&basic(ALICE, ALICE_PW)), Some("FR")).await;
    auth(&state, Some(&basic(BOB, BOB_PW)), None).await;
    get(&state, "/health").await;
    let blobs: Vec<Value> = blobs
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(blobs.len(), 3, "one blob per request");
    blobs.iter().for_each(assert_valid_emf);

    let ok = &blobs[0];
    assert_eq!(
        (ok["Service"].as_str(), ok["Stage"].as_str()),
        (Some("authserver"), Some("test"))
    );
    assert_eq!(
        (ok["AuthSuccess"].as_u64(), ok["AuthFailure"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(ok["ColdStart"], 1, "first invocation is the cold start");
    assert!(ok["Latency"].as_f64().unwrap() > 0.0 && ok["HashVerifyDuration"].as_f64().is_some());
    assert_eq!(ok["Country"], "FR");
    let dims: Vec<Value> = ok["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Dimensions"].clone())
        .collect();
    assert!(dims.contains(&serde_json::json!([["Service", "Stage", "Country"]])));

    let denied = &blobs[1];
    assert_eq!(
        (denied["AuthFailure"].as_u64(), denied["Reason"].as_str()),
        (Some(1), Some("disabled"))
    );
    assert_eq!(denied["ColdStart"], 0);
    let dims: Vec<Value> = denied["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Dimensions"].clone())
        .collect();
    assert_eq!(
        dims,
        vec![
            serde_json::json!([["Service", "Stage"]]),
            serde_json::json!([["Service", "Stage", "Reason"]])
        ]
    );

    let health = &blobs[2];
    assert!(
        health.get("AuthSuccess").is_none(),
        "non-auth requests carry only request metrics"
    );
}

/// `authserver ARGS` with `env`, the admin password a `users add` asks for on stdin.
fn authserver_cmd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = cli();
    cmd.args(args).envs(env.iter().copied());
    run_cli(&mut cmd, Some("Admin-Set-Pass-1\n"))
}

#[tokio::test]
async fn audit_file_records_attempts_and_admin_actions_and_detects_tampering() {
    let f = fixture();
    let audit = f.dir.path().join("audit.log");
    let audit_s = audit.to_str().unwrap();
    let env = [("AUTHSERVER_AUDIT_FILE", audit_s), ("USER", "ops-jane")];
    let o = authserver_cmd(&["users", "add", f.users.to_str().unwrap(), "zed-new-user"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The actor is the kernel's uid, not the USER variable anyone can set.
    assert!(
        stderr.contains("\"log_type\":\"audit\"")
            && stderr.contains("\"actor\":\"uid=")
            && !stderr.contains("ops-jane"),
        "{stderr}"
    );

    let server = Server::start(&f.users, &[], &env);
    let client = reqwest::Client::new();
    for h in [
        basic(ALICE, ALICE_PW),
        basic(ALICE, "bad-pass"),
        "Basic ###".into(),
    ] {
        client
            .post(server.url("/auth/validate"))
            .header("authorization", h)
            .header("x-amzn-trace-id", "Root=1-abc-def")
            .send()
            .await
            .unwrap();
    }
    let (_, lines) = server.terminate();
    let stdout_audit = lines
        .iter()
        .filter(|l| l.contains("\"log_type\":\"audit\""))
        .count();
    assert_eq!(stdout_audit, 3, "audit events on stdout too");

    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["admin_action", "auth_attempt", "auth_attempt", "auth_attempt"]
    );
    assert_eq!(records[0]["event"]["action"], "users.add");
    assert_eq!(records[1]["event"]["outcome"], "allowed");
    assert_eq!(records[2]["event"]["reason"], "wrong_password");
    assert_eq!(records[3]["event"]["reason"], "malformed");
    assert_eq!(records[1]["event"]["trace_id"], "Root=1-abc-def");
    assert_eq!(records[1]["event"]["source"], "127.0.0.1");
    for secret in [ALICE, ALICE_PW, "zed-new-user", "Admin-Set-Pass-1", "$argon2id"] {
        assert!(!text.contains(secret));
    }

    let verify = |content: &str| {
        let p = f.dir.path().join("check.log");
        std::fs::write(&p, content).unwrap();
        let o = authserver_cmd(&["audit", "verify", p.to_str().unwrap()], &[]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, out) = verify(&text);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("4 records"), "{out}");
    let lines: Vec<&str> = text.lines().collect();
    let edited = text.replace("wrong_password", "unknown_user");
    let (code, out) = verify(&edited);
    assert_eq!(code, Some(1));
    assert!(out.contains("line 3") && out.contains("edited"), "{out}");
    let removed = [lines[0], lines[2], lines[3]].join("\n");
    let (code, out) = verify(&removed);
    assert!(
        code == Some(1) && out.contains("line 2") && out.contains("removed"),
        "{out}"
    );
    let reordered = [lines[0], lines[1], lines[3], lines[2]].join("\n");
    let (code, out) = verify(&reordered);
    assert!(code == Some(1) && out.contains("line 3"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // the CLI blocks while the server runs
async fn ops_cache_status_and_purge_against_a_running_server() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[]);
    let client = reqwest::Client::new();
    client
        .post(server.url("/auth/validate"))
        .header("authorization", basic(ALICE, ALICE_PW))
        .send()
        .await
        .unwrap();
    let url = server.admin_url("");
    let status = authserver_cmd(&["ops", "cache-status", "--url", &url], &[]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        out.contains("verified cache     1 entries") && out.contains("3 users"),
        "{out}"
    );
    assert!(out.contains("bans               0 active"), "{out}");
    let purge = authserver_cmd(&["ops", "cache-purge", "--url", &url], &[]);
    assert!(String::from_utf8_lossy(&purge.stdout).contains("purged 1 verified credential"));
    let json = authserver_cmd(&["ops", "cache-status", "--url", &url, "--json"], &[]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["credentialCache"]["entries"], 0);
    let (_, lines) = server.terminate();
    assert!(
        lines.iter().any(|l| l.contains("\"action\":\"cache.purge\"")),
        "purge is audited"
    );
    let down = authserver_cmd(&["ops", "cache-status", "--url", &url], &[]);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach the server"));
}

/// A line logged while a request is handled (here the "ban issued" warning of the request that
/// tripped a username lock) carries that request's id and X-Ray trace id as fields of its own;
/// a line logged outside any request carries none.
#[tokio::test]
async fn lines_logged_during_a_request_carry_its_ids() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[("AUTHSERVER_REGULATION_MAX_USER_FAILURES", "2")]);
    let client = reqwest::Client::new();
    for n in 1..=3 {
        client
            .post(server.url("/auth/validate"))
            .header("authorization", basic(ALICE, "not-her-password"))
            .header("x-request-id", format!("ctx-req-{n}"))
            .header("x-amzn-trace-id", "Root=1-ctx-test")
            .send()
            .await
            .unwrap();
    }
    let (_, lines) = server.terminate();
    let parsed: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ban = parsed
        .iter()
        .find(|v| v["message"] == "ban issued")
        .unwrap_or_else(|| panic!("no ban line: {lines:?}"));
    assert!(
        ban["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ctx-req-")),
        "{ban}"
    );
    assert_eq!(ban["xray_trace_id"], "Root=1-ctx-test", "{ban}");
    let listening = parsed.iter().find(|v| v["message"] == "listening").unwrap();
    assert!(listening.get("request_id").is_none(), "{listening}");
}
