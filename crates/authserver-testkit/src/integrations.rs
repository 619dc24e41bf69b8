//! The proxy configurations of `docs/integrations.md`, as the tests run them: a block is taken
//! from the doc by its marker (so the doc cannot drift from what is tested), its addresses are
//! swapped for the test's, and the proxy runs as a foreground child on a free loopback port.
//!
//! A block is the fenced code block right after a line `<!-- tested: NAME -->`.

use crate::skip::{Needs, skipped};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `docs/integrations.md` of this checkout.
pub fn doc_path() -> PathBuf {
    crate::authserver_dir().join("../../docs/integrations.md")
}

/// The fenced block after `<!-- tested: {name} -->` in `docs/integrations.md` (without fences).
pub fn snippet(name: &str) -> String {
    let doc = std::fs::read_to_string(doc_path()).unwrap();
    let marker = format!("<!-- tested: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/integrations.md has no `{marker}`"))
        .1;
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "`{marker}` must be followed by a fenced block"
    );
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

/// `text` with each `(from, to)` replaced; every `from` must occur, so a doc edit that changes
/// what a test substitutes fails loudly instead of testing something else.
pub fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(text.to_owned(), |acc, (from, to)| {
        assert!(acc.contains(from), "`{from}` not found in:\n{acc}");
        acc.replace(from, to)
    })
}

/// The tool `name` on `PATH` or at one of `fallbacks` (Debian puts nginx in /usr/sbin, which is
/// not on an ordinary user's `PATH`); `None` after [`skipped`] when it is nowhere.
pub fn tool(name: &str, fallbacks: &[&str], needs: Needs, test: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| p.is_file());
    if found.is_none() {
        skipped(
            needs,
            test,
            &format!("{name} is not installed (apt-get install {name})"),
        );
    }
    found
}

/// A proxy process on `127.0.0.1:port`, killed on drop, with its output collected.
pub struct Proxy {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Its stdout and stderr, line by line.
    pub output: Arc<Mutex<Vec<String>>>,
    /// Its working directory (configuration, temp files, cache); removed on drop.
    pub dir: tempfile::TempDir,
}

impl Proxy {
    /// Runs `cmd` (whose configuration in `dir` listens on `port`) and waits until the port
    /// accepts connections; panics with the output when the process exits first.
    pub fn spawn(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Proxy {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let output = crate::process::collect_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                panic!("{cmd:?} exited with {status}: {:?}", output.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not listen: {:?}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Proxy {
            child,
            port,
            output,
            dir,
        }
    }

    /// A URL on the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The output so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh working directory the proxy's workers can use whatever user they run as (nginx
/// started as root hands requests to workers running as `nobody`).
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    open_up(dir.path());
    dir
}

/// Makes `dir` readable, writable and searchable by every user (test-only temp directories).
pub fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// What a client got through a proxy: status, `WWW-Authenticate`, body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The challenge, when there is one.
    pub challenge: Option<String>,
    /// The body as text.
    pub body: String,
}

/// `GET url` with `headers`, as a client of the proxy sends it.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = reqwest::blocking::Client::new().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status: resp.status().as_u16(),
        challenge,
        body: resp.text().unwrap(),
    }
}
