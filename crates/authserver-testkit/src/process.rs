//! The real `authserver serve` process, its output collected line by line, stopped with
//! SIGTERM (or killed on drop).

use crate::cli::binary;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `authserver serve` with its captured stdout and stderr.
pub struct Server {
    child: Child,
    /// The main listener's address.
    pub addr: String,
    /// The admin listener's address (`AUTHSERVER_ADMIN_LISTEN=127.0.0.1:0` unless `env` sets it).
    pub admin: Option<String>,
    /// Every line printed so far, stdout and stderr interleaved.
    pub output: Arc<Mutex<Vec<String>>>,
}

/// Copies every line of the child's stdout and stderr into a shared list.
pub(crate) fn collect_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let output = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                out.lock().unwrap().push(line);
            }
        });
    }
    output
}

/// The `address` of the first JSON line whose message is `message`.
fn address(lines: &[String], message: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["message"] == message).then(|| v["address"].as_str().unwrap().to_owned())
    })
}

impl Server {
    /// Starts `authserver serve --listen 127.0.0.1:0 --users FILE` (plus `extra` args and env)
    /// and waits for its "listening" line.
    pub fn start(users: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_on("127.0.0.1:0", users, extra, env)
    }

    /// [`Server::start`] on `listen` (a port chosen ahead, e.g. when the configuration must
    /// name the server's own URL, as an OAuth issuer does).
    pub fn start_on(listen: &str, users: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", listen, "--users"])
            .arg(users)
            .args(extra);
        cmd.env("AUTHSERVER_STORE_POLL_INTERVAL_MS", "50");
        // Tests run in parallel: never the fixed default admin port.
        cmd.env("AUTHSERVER_ADMIN_LISTEN", "127.0.0.1:0");
        cmd.envs(env.iter().copied());
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let output = collect_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Some(a) = address(&output.lock().unwrap(), "listening") {
                break a;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("server exited with {status}: {:?}", output.lock().unwrap());
            }
            let started = Instant::now() < deadline;
            assert!(started, "server did not start: {:?}", output.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        };
        // The admin listener logs its line before the main one.
        let admin = address(&output.lock().unwrap(), "admin listening");
        Server {
            child,
            addr,
            admin,
            output,
        }
    }

    /// A URL on the main listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.as_deref().expect("the server has an admin listener");
        format!("http://{admin}{path}")
    }

    /// Sends SIGTERM and waits for exit: whether it exited successfully, and its output.
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

    /// The output so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
