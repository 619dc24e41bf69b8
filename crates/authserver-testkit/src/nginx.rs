//! nginx as the tests run it: a block of `docs/integrations.md` (see [`crate::integrations`])
//! placed in a minimal main configuration, started unprivileged as a foreground child under a
//! temp prefix, next to a static upstream that echoes the identity headers it received.

use crate::emulator::free_port;
use crate::integrations::{Proxy, open_up, tool, workdir};
use crate::skip::Needs;
use std::path::Path;
use std::process::Command;

/// The main configuration around a doc block. `master_process off`: one process, so killing
/// the child stops nginx entirely (a killed master leaves its workers running). Every path nginx
/// would otherwise take from its build (Debian: /var/log/nginx, /var/lib/nginx) is under the
/// prefix, so no privilege is needed.
const MAIN: &str = "daemon off;
master_process off;
pid @DIR@/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path @DIR@/tmp/body;
    proxy_temp_path @DIR@/tmp/proxy;
    fastcgi_temp_path @DIR@/tmp/fastcgi;
    uwsgi_temp_path @DIR@/tmp/uwsgi;
    scgi_temp_path @DIR@/tmp/scgi;

    # The application: tells what reached it (the identity headers, whether a password did)
    # plus a per-response id, so a cached answer is recognisable.
    server {
        listen 127.0.0.1:@UPSTREAM@;
        location / {
            default_type text/plain;
            return 200 \"user=$http_remote_user groups=$http_remote_groups authorization=$http_authorization id=$request_id\\n\";
        }
    }

@BLOCK@
}
";

/// The nginx binary, or `None` after a printed skip (a failure under `TESTS_REQUIRE_NGINX=1`).
pub fn binary(test: &str) -> Option<std::path::PathBuf> {
    tool("nginx", &["/usr/sbin/nginx"], Needs::Nginx, test)
}

/// The addresses a doc block uses, as the tests replace them.
pub struct Ports {
    /// Where nginx listens (`listen 80;` in the doc).
    pub nginx: u16,
    /// The static upstream (`127.0.0.1:3000` in the doc).
    pub upstream: u16,
}

/// Starts `nginx` with `block` (already rendered: see [`render`]) inside `http { }`, plus the
/// echoing upstream; waits until it listens.
pub fn start(nginx: &Path, block: &str, ports: &Ports, dir: tempfile::TempDir) -> Proxy {
    for sub in ["tmp", "cache"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        open_up(&dir.path().join(sub));
    }
    let conf = MAIN
        .replace("@DIR@", dir.path().to_str().unwrap())
        .replace("@UPSTREAM@", &ports.upstream.to_string())
        .replace("@BLOCK@", block);
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(nginx);
    // -e: the error log before the configuration is read (else nginx opens its build default).
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .args(["-e", "stderr"]);
    Proxy::spawn(cmd, ports.nginx, dir)
}

/// Doc block `name` with the doc's addresses replaced: `listen 80;`, authserver's
/// `127.0.0.1:8080` (by `authserver`), the application's `127.0.0.1:3000`, and, when present, the
/// cache path `/var/cache/nginx/app` (by a directory under `dir`).
pub fn render(name: &str, authserver: &str, ports: &Ports, dir: &Path) -> String {
    let block = crate::integrations::snippet(name);
    let listen = format!("listen 127.0.0.1:{};", ports.nginx);
    let upstream = format!("127.0.0.1:{}", ports.upstream);
    let mut pairs = vec![
        ("listen 80;", listen.as_str()),
        ("127.0.0.1:8080", authserver),
        ("127.0.0.1:3000", upstream.as_str()),
    ];
    let cache = dir.join("cache").to_str().unwrap().to_owned();
    if block.contains("proxy_cache_path") {
        pairs.push(("/var/cache/nginx/app", cache.as_str()));
    }
    crate::integrations::substitute(&block, &pairs)
}

/// Fresh ports and working directory for one nginx.
pub fn prepare() -> (Ports, tempfile::TempDir) {
    let ports = Ports {
        nginx: free_port(),
        upstream: free_port(),
    };
    (ports, workdir())
}
