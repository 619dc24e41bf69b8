//! The built binary as a Lambda function under cargo-lambda's Runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`), started the way Lambda starts `bootstrap`: no
//! arguments, `AWS_LAMBDA_RUNTIME_API` set. Events are the fixtures in `tests/fixtures/lambda`,
//! sent with `cargo lambda invoke --data-file` and through the emulator's HTTP invoke endpoint.
//!
//! Needs `CARGO_LAMBDA` (and `MOTO_URL` for the Secrets Manager case): `source
//! scripts/aws-env.sh && start_aws_env`. Without them the tests print SKIPPED and pass, unless
//! `AUTHSERVER_REQUIRE_AWS_TESTS=1`. Each test prints `FIGURE` lines (cold start, warm
//! latency, RSS) for docs/lambda.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "fixture-Password-1";
const GOOD: &str = "Basic Zml4dHVyZS11c2VyOmZpeHR1cmUtUGFzc3dvcmQtMQ==";

fn required(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("AUTHSERVER_REQUIRE_AWS_TESTS").as_deref() != Ok("1"),
                "{test}: AUTHSERVER_REQUIRE_AWS_TESTS=1 but {var} is not set (source scripts/aws-env.sh)"
            );
            eprintln!(
                "\n*** SKIPPED: {test}: {var} is not set (source scripts/aws-env.sh && start_aws_env) ***\n"
            );
            None
        }
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda")
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Runtime API emulator on a free loopback port.
struct Emulator {
    cargo_lambda: String,
    port: u16,
    _proc: Proc,
}

impl Emulator {
    fn start(cargo_lambda: &str) -> Self {
        let port = free_port();
        let child = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo-lambda starts");
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "emulator did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            cargo_lambda: cargo_lambda.to_owned(),
            port,
            _proc: proc,
        }
    }

    /// `cargo lambda invoke --data-file`: the response payload.
    fn invoke_file(&self, path: &std::path::Path) -> Value {
        let out = Command::new(&self.cargo_lambda)
            .args(["lambda", "invoke", "_", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(path)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "invoke failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }

    /// The emulator's HTTP invoke endpoint: (HTTP status, payload).
    async fn invoke(&self, client: &reqwest::Client, event: &Value) -> (u16, Value) {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.port
        );
        let response = client.post(url).json(event).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// The function: this test build's binary, no arguments, Lambda's environment.
struct Function {
    proc: Proc,
    started: Instant,
    logs: Arc<Mutex<String>>,
}

impl Function {
    fn start(emulator: &Emulator, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authserver"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AUTHSERVER_") || k == "CREDENTIAL_SECRET_ARN" || k == "CACHE_TTL_MINUTES" {
                cmd.env_remove(k);
            }
        }
        cmd.env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{}/.rt", emulator.port),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AUTHSERVER_LOG_USER_HASH_KEY", "emulator-key")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = logs.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        Self {
            proc: Proc(child),
            started,
            logs,
        }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Asserts the logs carry no credential material, and the cold start once.
    fn check_logs(&self) {
        let logs = self.logs();
        for secret in [PASSWORD, GOOD, "Zml4dHVyZS11c2Vy", "fixture-user", "$argon2id"] {
            assert!(!logs.contains(secret), "logs contain {secret:?}:\n{logs}");
        }
        assert_eq!(logs.matches("\"cold_start\":true").count(), 1, "{logs}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// First answered invocation after process start, then `warm` cache-hit invocations.
async fn measure(emulator: &Emulator, function: &Function, event: &Value, label: &str, warm: usize) {
    let client = reqwest::Client::new();
    let (status, payload) = emulator.invoke(&client, event).await;
    let first = function.started.elapsed();
    assert_eq!(status, 200, "{payload}");
    let mut times = Vec::with_capacity(warm);
    for _ in 0..warm {
        let t = Instant::now();
        let (status, _) = emulator.invoke(&client, event).await;
        times.push(t.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    eprintln!(
        "FIGURE {label}: process start -> first answered invocation {:.1} ms; warm cache hit over {warm} \
         emulator invocations P50 {:.2} ms P99 {:.2} ms; RSS after warm-up {} KiB",
        first.as_secs_f64() * 1000.0,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        function.rss_kib()
    );
    let init = function
        .logs()
        .lines()
        .find(|l| l.contains("lambda init complete"))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["init_ms"].clone());
    eprintln!("FIGURE {label}: init_ms reported by the function {init:?}");
}

fn users_file() -> String {
    fixtures().join("users.json").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_answers_every_http_event_shape() {
    let Some(cargo_lambda) = required("CARGO_LAMBDA", "proxy_mode_answers_every_http_event_shape") else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let users = users_file();
    let function = Function::start(&emulator, &[("AUTHSERVER_STORE_FILE", &users)]);
    measure(
        &emulator,
        &function,
        &fixture("function_url.json"),
        "proxy/file",
        200,
    )
    .await;

    for name in [
        "apigw_v2_http_api.json",
        "apigw_v1_rest_api.json",
        "alb.json",
        "function_url.json",
    ] {
        let out = emulator.invoke_file(&fixtures().join(name));
        assert_eq!(out["statusCode"], 200, "{name}: {out}");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["roles"], json!(["admin", "reader"]), "{name}");
    }
    let client = reqwest::Client::new();
    let mut health = fixture("apigw_v2_http_api.json");
    health["rawPath"] = json!("/prod/health");
    health["requestContext"]["http"]["method"] = json!("GET");
    let (_, out) = emulator.invoke(&client, &health).await;
    assert_eq!(out["statusCode"], 200, "{out}");
    let mut wrong = fixture("apigw_v2_http_api.json");
    wrong["headers"]["authorization"] = json!("Basic Zml4dHVyZS11c2VyOm5vcGU=");
    let (_, out) = emulator.invoke(&client, &wrong).await;
    assert_eq!(out["statusCode"], 401, "{out}");
    function.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_mode_answers_all_three_shapes_and_survives_errors() {
    let test = "authorizer_mode_answers_all_three_shapes_and_survives_errors";
    let Some(cargo_lambda) = required("CARGO_LAMBDA", test) else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let users = users_file();
    let function = Function::start(
        &emulator,
        &[
            ("AUTHSERVER_STORE_FILE", &users),
            ("AUTHSERVER_LAMBDA_MODE", "authorizer"),
        ],
    );
    measure(
        &emulator,
        &function,
        &fixture("authorizer_rest_token.json"),
        "authorizer/file",
        50,
    )
    .await;

    let simple = emulator.invoke_file(&fixtures().join("authorizer_http_api_v2.json"));
    assert_eq!(simple["isAuthorized"], true, "{simple}");
    assert_eq!(simple["context"]["roles"], "admin,reader");
    for name in ["authorizer_rest_token.json", "authorizer_rest_request.json"] {
        let policy = emulator.invoke_file(&fixtures().join(name));
        assert_eq!(policy["principalId"], "fixture-user", "{name}: {policy}");
        let statement = &policy["policyDocument"]["Statement"][0];
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(
            statement["Resource"],
            "arn:aws:execute-api:eu-west-1:111122223333:p7r2m5n8t4/prod/*"
        );
    }
    // An event the authorizer does not know: an error answer, and the loop carries on.
    let client = reqwest::Client::new();
    let (status, out) = emulator.invoke(&client, &json!({"unexpected": true})).await;
    assert!(!out.to_string().contains("unexpected\":true"), "{status} {out}");
    assert!(
        out.to_string().contains("unsupported authorizer event"),
        "{status} {out}"
    );
    let mut denied = fixture("authorizer_rest_token.json");
    denied["authorizationToken"] = json!("Basic Zml4dHVyZS11c2VyOm5vcGU=");
    let (_, out) = emulator.invoke(&client, &denied).await;
    assert_eq!(out["policyDocument"]["Statement"][0]["Effect"], "Deny", "{out}");
    function.check_logs();
}

/// Creates a secret through moto's HTTP API (moto does not check signatures).
async fn create_secret(moto: &str, name: &str, value: &str) {
    let response = reqwest::Client::new()
        .post(moto)
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(json!({"Name": name, "SecretString": value}).to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_with_the_secrets_manager_store_on_moto() {
    let test = "proxy_mode_with_the_secrets_manager_store_on_moto";
    let (Some(cargo_lambda), Some(moto)) = (required("CARGO_LAMBDA", test), required("MOTO_URL", test))
    else {
        return;
    };
    let name = format!("authserver-emulator/{}", free_port());
    create_secret(&moto, &name, &std::fs::read_to_string(users_file()).unwrap()).await;
    let emulator = Emulator::start(&cargo_lambda);
    let function = Function::start(
        &emulator,
        &[
            ("AUTHSERVER_STORE_KIND", "secrets_manager"),
            ("CREDENTIAL_SECRET_ARN", &name),
            ("AUTHSERVER_STORE_ENDPOINT_URL", &moto),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    measure(
        &emulator,
        &function,
        &fixture("apigw_v2_http_api.json"),
        "proxy/secrets_manager",
        200,
    )
    .await;
    let logs = function.logs();
    assert!(logs.contains("credential secret version loaded"), "{logs}");
    let ready = emulator.invoke_file(&fixtures().join("apigw_v1_rest_api.json"));
    assert_eq!(ready["statusCode"], 200, "{ready}");
    function.check_logs();
}
