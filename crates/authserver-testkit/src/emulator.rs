//! The cargo-lambda emulator harness: the Runtime API emulator and the function process (both
//! killed on drop), and the cold/warm measurement that prints `FIGURE` lines. The tests find
//! `cargo-lambda` through `CARGO_LAMBDA` (see [`crate::skip::env`]).

use crate::lambda::{GOOD, PASSWORD, fixture};
use crate::process::collect_lines;
use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `authserver` started the way Lambda starts `bootstrap` (no arguments) against the Runtime
/// API at `runtime` (`http://host:port`), none of the caller's settings in its environment.
/// `LAMBDA_TEST_BINARY` runs another build instead (e.g. `target/release/authserver` to
/// measure it, or the previous release to see a test fail on it).
pub fn bootstrap(runtime: &str) -> Command {
    let binary = std::env::var_os("LAMBDA_TEST_BINARY").map_or_else(crate::cli::binary, PathBuf::from);
    let mut cmd = Command::new(binary);
    crate::cli::isolate(&mut cmd);
    cmd.env("AWS_LAMBDA_RUNTIME_API", format!("{runtime}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    cmd
}

/// A free loopback port (free when asked; tests bind it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Runtime API emulator on a free loopback port.
pub struct Emulator {
    cargo_lambda: String,
    port: u16,
    _proc: Proc,
}

impl Emulator {
    /// Starts `cargo_lambda lambda watch --only-lambda-apis` and waits until it listens.
    pub fn start(cargo_lambda: &str) -> Self {
        let port = free_port();
        let child = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .current_dir(crate::authserver_dir())
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
    pub fn invoke_file(&self, path: &std::path::Path) -> Value {
        let out = Command::new(&self.cargo_lambda)
            .args(["lambda", "invoke", "_", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(path)
            .current_dir(crate::authserver_dir())
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
    pub async fn invoke(&self, client: &reqwest::Client, event: &Value) -> (u16, Value) {
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
pub struct Function {
    proc: Proc,
    /// When the process was spawned (the cold start counts from here).
    pub started: Instant,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Function {
    /// Starts the function against `emulator` with Lambda's environment plus `env` (none of
    /// the caller's `AUTHSERVER_*` settings).
    pub fn start(emulator: &Emulator, env: &[(&str, &str)]) -> Self {
        let mut cmd = bootstrap(&format!("http://127.0.0.1:{}", emulator.port));
        cmd.env("AUTHSERVER_LOG_USER_HASH_KEY", "emulator-key")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let logs = collect_lines(&mut child);
        Self {
            proc: Proc(child),
            started,
            logs,
        }
    }

    /// Everything the function printed so far, a newline after each line.
    pub fn logs(&self) -> String {
        let lines = self.logs.lock().unwrap();
        lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect()
    }

    /// The function's resident memory.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Asserts the logs carry no credential material, and the cold start once.
    pub fn check_logs(&self) {
        let logs = self.logs();
        for secret in [PASSWORD, GOOD, "Zml4dHVyZS11c2Vy", "fixture-user", "$argon2id"] {
            assert!(!logs.contains(secret), "logs contain {secret:?}:\n{logs}");
        }
        assert_eq!(logs.matches("\"cold_start\":true").count(), 1, "{logs}");
    }
}

/// The `p` quantile of `sorted`, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Cold start: process start to the first answered invocation (`cold`: an event that needs no
/// Argon2id verification), then the first verification (`event`, a cache miss), then `warm`
/// cache hits of `event`.
pub async fn measure(
    emulator: &Emulator,
    function: &Function,
    (cold, event): (&Value, &Value),
    label: &str,
    warm: usize,
) {
    let client = reqwest::Client::new();
    let (status, payload) = emulator.invoke(&client, cold).await;
    let first = function.started.elapsed();
    assert_eq!(status, 200, "{payload}");
    let t = Instant::now();
    let (status, payload) = emulator.invoke(&client, event).await;
    let miss = t.elapsed();
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
    let rss = function.rss_kib();
    eprintln!(
        "FIGURE {label}: process start -> first answered invocation {:.1} ms; first verification \
         (cache miss) {:.1} ms; warm cache hit over {warm} emulator invocations P50 {:.2} ms P99 {:.2} ms; \
         RSS after warm-up {} KiB",
        first.as_secs_f64() * 1000.0,
        miss.as_secs_f64() * 1000.0,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        rss
    );
    report_logs(function, label);
}

/// The figures the function's own logs give: its `init_ms`, and how long it handled each
/// cache hit (the emulator's overhead excluded).
fn report_logs(function: &Function, label: &str) {
    let init = function
        .logs()
        .lines()
        .find(|l| l.contains("lambda init complete"))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["init_ms"].clone());
    eprintln!("FIGURE {label}: init_ms reported by the function {init:?}");
    let mut inside: Vec<f64> = function
        .logs()
        .lines()
        .filter(|l| l.contains("\"auth request\"") && l.contains("\"cache\":\"hit\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["latency_ms"].as_f64())
        .collect();
    inside.sort_by(f64::total_cmp);
    if !inside.is_empty() {
        let at = |p: f64| inside[((inside.len() as f64 - 1.0) * p).round() as usize];
        eprintln!(
            "FIGURE {label}: in-function handling of {} cache hits P50 {:.3} ms P99 {:.3} ms",
            inside.len(),
            at(0.5),
            at(0.99)
        );
    }
}

/// A payload 2.0 event for `GET /health` (under the event's stage, if any).
pub fn health(name: &str) -> Value {
    let mut event = fixture(name);
    let stage = event["requestContext"]["stage"].as_str().unwrap().to_owned();
    let path = if stage == "$default" {
        "/health".to_owned()
    } else {
        format!("/{stage}/health")
    };
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!("GET");
    event
}
