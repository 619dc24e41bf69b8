//! Runs the real `authserver` binary and collects everything it prints.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `authserver serve` with its captured stdout and stderr.
pub struct Server {
    child: Child,
    pub addr: String,
    /// The admin listener's address (`AUTHSERVER_ADMIN_LISTEN=127.0.0.1:0` unless `env` sets it).
    pub admin: Option<String>,
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `authserver serve --listen 127.0.0.1:0 --users FILE` (plus `extra` args and env)
    /// and waits for its "listening" line.
    pub fn start(users: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authserver"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--users"])
            .arg(users)
            .args(extra);
        cmd.env("AUTHSERVER_STORE_POLL_INTERVAL_MS", "50");
        // Tests run in parallel: never the fixed default admin port.
        cmd.env("AUTHSERVER_ADMIN_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let found = output.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| v["address"].as_str().unwrap().to_owned())
            });
            if let Some(a) = found {
                break a;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("server exited with {status}: {:?}", output.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {:?}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The admin listener logs its line before the main one.
        let admin = output.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "admin listening").then(|| v["address"].as_str().unwrap().to_owned())
        });
        Server {
            child,
            addr,
            admin,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.as_deref().expect("the server has an admin listener");
        format!("http://{admin}{path}")
    }

    /// Sends SIGTERM and waits for exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> (bool, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100)); // let reader threads drain
        (status.success(), self.output.lock().unwrap().clone())
    }

    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
