//! Attacks on the issue-16 features (first contact), on the real binary. Each test fails on
//! the code it was written against and states what it expects instead.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::Cost;
use authserver_testkit::cli::{isolated, outcome};
use authserver_testkit::hash::hash;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// `hash.min_t` above OWASP's last row (t = 5) is ignored: the table is flat past t = 5, so
/// `min_m_kib = 19456, min_t = 10` accepts m = 19456 at t = 5, half the iterations the operator
/// asked for (the pre-issue-16 binary refused it: m and t were separate floors). The hash
/// module promises "raising either setting raises every row"; raising min_t from 5 to 10
/// raises none.
#[test]
fn a_min_t_above_five_is_still_a_floor_on_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let t5 = hash(
        "Five-Iterations-Only-3301",
        Cost {
            m_kib: 19456,
            t: 5,
            p: 1,
        },
    );
    let doc = serde_json::json!({"t5-user": {"passwordHash": t5}});
    std::fs::write(&users, serde_json::to_vec(&doc).unwrap()).unwrap();
    let mut check = isolated();
    check
        .args(["config", "check"])
        .env("AUTHSERVER_STORE_FILE", &users)
        .env("AUTHSERVER_HASH_MIN_M_KIB", "19456")
        .env("AUTHSERVER_HASH_MIN_T", "10")
        .env("AUTHSERVER_HASH_MAX_T", "10");
    let (code, stdout, stderr) = outcome(&mut check);
    assert_eq!(
        code,
        Some(1),
        "m=19456,t=5 is below a floor of m=19456 at t=10, yet config check passes: {stdout} {stderr}"
    );
}

/// A one-shot HTTP "proxy" on 127.0.0.1 that answers every request `200 {"ready":true}` and
/// records that it was asked. Stops after `Duration` or one connection.
fn fake_proxy() -> (String, std::thread::JoinHandle<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok((mut s, _)) = l.accept() {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = r#"{"ready":true}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    });
    (addr, h)
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `authserver healthcheck` probes the *local* listener, yet its HTTP client honours
/// `HTTP_PROXY`/`ALL_PROXY` with no loopback exemption: in a pod or task whose environment
/// carries an egress proxy (common, and inherited by exec probes), the probe goes to the proxy,
/// which answers for its own `127.0.0.1`. Here the server is down and the probe says healthy.
#[test]
fn healthcheck_of_a_dead_local_server_does_not_go_through_http_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let port = dead_port();
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"0.0.0.0:{port}\"\nallow_plaintext = true\n"),
    )
    .unwrap();
    let (proxy, asked) = fake_proxy();
    let mut probe = isolated();
    probe
        .args(["healthcheck", "--config"])
        .arg(&config)
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let (code, stdout, stderr) = outcome(&mut probe);
    let went_through_proxy = asked.join().unwrap();
    assert!(
        code == Some(1) && !went_through_proxy,
        "nothing listens on 127.0.0.1:{port}, yet healthcheck exits {code:?} \
         (proxy asked: {went_through_proxy}): {stdout} {stderr}"
    );
}

/// The Caddy block of docs/integrations.md says `copy_headers` sets the identity "replacing the
/// client's", but only the exact names are replaced: a client's `Remote_User: mallory` and
/// `Remote_Groups: admin` reach the application untouched (Caddy, unlike nginx, forwards
/// header names with underscores). CGI-style stacks (PHP-FPM — Caddy's own `php_fastcgi` —,
/// WSGI, Rack) fold `-` and `_` into the same `HTTP_REMOTE_USER`, so the forged identity
/// competes with the verified one. The documented block must drop the underscore spellings
/// (`header_up -Remote_User`, `header_up -Remote_Groups` do).
#[test]
fn caddy_block_does_not_pass_underscore_spellings_of_the_identity_headers() {
    use authserver_testkit::caddy;
    use authserver_testkit::process::Server;
    use authserver_testkit::users::*;
    let bin = authserver_testkit::or_skip!(caddy::binary(
        "caddy_block_does_not_pass_underscore_spellings_of_the_identity_headers"
    ));
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let (dir, file, port) = caddy::render("caddy", &server.addr);
    // The echoing application also tells the underscore spellings it received.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "authorization={http.request.header.Authorization}",
        "authorization={http.request.header.Authorization} \
         u_user={http.request.header.Remote_User} u_groups={http.request.header.Remote_Groups}",
    );
    std::fs::write(&file, text).unwrap();
    let proxy = caddy::start(&bin, &file, port, dir);
    let resp = reqwest::blocking::Client::new()
        .get(proxy.url("/page"))
        .header("authorization", basic(CAROL, CAROL_PW))
        .header("Remote_User", "mallory")
        .header("Remote_Groups", "admin")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().unwrap();
    assert!(body.starts_with(&format!("user={CAROL} groups= ")), "{body}");
    assert!(
        body.ends_with("u_user= u_groups="),
        "the client's forged identity reached the application: {body}"
    );
}

/// A users file in which *every* entry fails the hash policy (a policy change, or a file
/// regenerated by a tool that writes bcrypt or Argon2i) used to stop the server at start, so a
/// rolling update (`maxUnavailable: 0`) stalled on the new pods while the old ones kept
/// serving. Now the server starts with zero users in service and `/ready` (and so
/// `authserver healthcheck` and the readiness probe) says ready: the rollout proceeds, the old
/// pods go away and every request is denied behind a green health check. A store that holds
/// entries but serves none of them is not ready.
#[test]
fn a_store_whose_every_entry_is_refused_is_not_ready() {
    use authserver_testkit::process::Server;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let weak = Cost {
        m_kib: 4096,
        t: 1,
        p: 1,
    };
    let doc = serde_json::json!({
        "alice-weak": {"passwordHash": hash("Weak-Alice-Pass-1190", weak)},
        "bob-weak": {"passwordHash": hash("Weak-Bob-Pass-2281", weak)},
    });
    std::fs::write(&users, serde_json::to_vec(&doc).unwrap()).unwrap();
    let server = Server::start(&users, &[], &[]);
    let ready = reqwest::blocking::get(server.url("/ready")).unwrap();
    let code = ready.status().as_u16();
    let body = ready.text().unwrap();
    let mut probe = isolated();
    probe.args(["healthcheck", "--url", &server.url("/ready")]);
    let (probe_code, stdout, stderr) = outcome(&mut probe);
    let _ = server.terminate();
    assert!(
        code != 200 && probe_code == Some(1),
        "no user can authenticate, yet /ready answers {code} {body} and healthcheck exits \
         {probe_code:?}: {stdout} {stderr}"
    );
}

/// The reload side of the same attack: a working users file replaced by one whose every entry
/// is refused (a regenerated file, a raised policy) keeps the users in service, stays ready,
/// and says why in the admin `/ready`.
#[test]
fn a_reload_whose_every_entry_is_refused_keeps_the_users_in_service() {
    use authserver_testkit::process::Server;
    use authserver_testkit::users::*;
    let f = fixture();
    let server = Server::start(&f.users, &[], &[]);
    let url = server.url("/auth/validate");
    let allowed = |server: &Server| {
        reqwest::blocking::Client::new()
            .post(&url)
            .header("authorization", basic(ALICE, ALICE_PW))
            .send()
            .unwrap()
            .status()
            .as_u16()
            == 200
            && reqwest::blocking::get(server.url("/ready"))
                .unwrap()
                .status()
                .as_u16()
                == 200
    };
    assert!(allowed(&server));
    let weak = Cost {
        m_kib: 4096,
        t: 1,
        p: 1,
    };
    let doc = serde_json::json!({ALICE: {"passwordHash": hash(ALICE_PW, weak)}});
    std::fs::write(&f.users, serde_json::to_vec(&doc).unwrap()).unwrap();
    let reported =
        authserver_testkit::wait::poll_blocking(Duration::from_secs(10), Duration::from_millis(200), || {
            reqwest::blocking::get(server.admin_url("/ready"))
                .and_then(|r| r.text())
                .is_ok_and(|t| t.contains("every entry failed the hash policy"))
        });
    assert!(reported, "the refused reload is reported in the admin /ready");
    assert!(allowed(&server), "the last good users stay in service, ready");
    let _ = server.terminate();
}
