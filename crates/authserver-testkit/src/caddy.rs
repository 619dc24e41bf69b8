//! Caddy as the tests run it: a block of `docs/integrations.md` (see [`crate::integrations`])
//! after global options that keep it self-contained (no admin API port, no automatic HTTPS, its
//! storage under a temp directory), next to a second site that echoes the identity headers.

use crate::emulator::free_port;
use crate::integrations::{Proxy, substitute, tool, workdir};
use crate::skip::Needs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The whole Caddyfile around a doc block.
const MAIN: &str = "{
	admin off
	auto_https off
	storage file_system @DIR@/storage
}

# The application: tells what reached it.
http://127.0.0.1:@UPSTREAM@ {
	respond \"user={http.request.header.Remote-User} groups={http.request.header.Remote-Groups} authorization={http.request.header.Authorization}\"
}

@BLOCK@
";

/// The caddy binary, or `None` after a printed skip (a failure under `TESTS_REQUIRE_CADDY=1`).
pub fn binary(test: &str) -> Option<PathBuf> {
    tool("caddy", &["/usr/bin/caddy"], Needs::Caddy, test)
}

/// A Caddyfile in a fresh directory: doc block `name` with its site `app.example.com` served on
/// a free port, authserver's `127.0.0.1:8080` replaced by `authserver`, the application's
/// `127.0.0.1:3000` by the echoing site. Returns the directory, the file and Caddy's port.
pub fn render(name: &str, authserver: &str) -> (tempfile::TempDir, PathBuf, u16) {
    let (port, upstream) = (free_port(), free_port());
    let dir = workdir();
    let site = format!("http://127.0.0.1:{port}");
    let app = format!("127.0.0.1:{upstream}");
    let block = substitute(
        &crate::integrations::snippet(name),
        &[
            ("app.example.com", site.as_str()),
            ("127.0.0.1:8080", authserver),
            ("127.0.0.1:3000", app.as_str()),
        ],
    );
    let text = MAIN
        .replace("@DIR@", dir.path().to_str().unwrap())
        .replace("@UPSTREAM@", &upstream.to_string())
        .replace("@BLOCK@", &block);
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, text).unwrap();
    (dir, file, port)
}

/// `caddy SUBCOMMAND --config FILE --adapter caddyfile` with its state kept under `dir`.
fn command(caddy: &Path, subcommand: &str, file: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(caddy);
    cmd.arg(subcommand)
        .arg("--config")
        .arg(file)
        .args(["--adapter", "caddyfile"])
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    cmd
}

/// `caddy validate` of the file (adapts it and provisions every module without serving).
pub fn validate(caddy: &Path, file: &Path, dir: &Path) -> Output {
    command(caddy, "validate", file, dir).output().unwrap()
}

/// `caddy run` of the file, waiting until it listens on `port`.
pub fn start(caddy: &Path, file: &Path, port: u16, dir: tempfile::TempDir) -> Proxy {
    let cmd = command(caddy, "run", file, dir.path());
    Proxy::spawn(cmd, port, dir)
}
