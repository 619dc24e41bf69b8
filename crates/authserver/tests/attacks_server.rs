//! Attacks on the running binary (issue 11): the limiter queue leak, connections that never
//! send a request, idle HTTP/2, one address hogging connections, `Host` rules, and the admin
//! surface. Each test failed against the release that the attack was run on.
//!
//! Waits are bounded polls ("eventually, within N s"), never timed assertions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::hash::FAST;
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use authserver_testkit::wait::poll_blocking;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Polls `f` every 50 ms until it is true or `limit` passes.
fn eventually(limit: Duration, f: impl FnMut() -> bool) -> bool {
    poll_blocking(limit, Duration::from_millis(50), f)
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. an HTTP/2 GOAWAY before the close
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// Sends raw bytes, returns the status line of the answer.
fn raw(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn status(url: &str, auth: Option<&str>) -> Option<u16> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut req = client.post(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().ok().map(|r| r.status().as_u16())
}

/// Item 1: requests dropped while queued for a verification slot gave their queue place back
/// never: after a few rounds of impatient clients every verification answered 503 in under a
/// millisecond, forever. Now the places come back and the abandonment is counted.
#[test]
fn impatient_clients_do_not_leak_verification_queue_places() {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_HASH_MAX_QUEUE", "8"),
            ("AUTHSERVER_HASH_MAX_CONCURRENT", "1"),
            ("AUTHSERVER_REGULATION_ENABLED", "false"),
        ],
    );
    let url = server.url("/auth/validate");
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    for _round in 0..4 {
        let threads: Vec<_> = (0..9)
            .map(|i| {
                let (c, url) = (impatient.clone(), url.clone());
                std::thread::spawn(move || {
                    let _ = c
                        .post(url)
                        .header("authorization", basic(ALICE, &format!("wrong-{i}")))
                        .send();
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }
    // Once the verifications already running have finished, a new login is served.
    assert!(
        eventually(Duration::from_secs(20), || status(
            &url,
            Some(&basic(CAROL, CAROL_PW))
        ) == Some(200)),
        "a fresh verification is still refused after the impatient bursts"
    );
    let metrics = reqwest::blocking::get(server.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let abandoned: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("authserver_hash_queue_abandoned_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(abandoned > 0, "abandoned waits are counted");
    let (ok, lines) = server.terminate();
    assert!(ok);
    assert!(
        lines.iter().any(|l| l.contains("abandoned while queued")),
        "one warning line per burst"
    );
}

/// Item 12: sockets that never send a request (plain silence, a partial HTTP/2 preface) held
/// connection slots for good: protocol detection had no deadline. With max_connections=4, five
/// such sockets locked everyone out.
#[test]
fn silent_connections_are_closed_and_do_not_lock_clients_out() {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_SERVER_MAX_CONNECTIONS", "4"),
            ("AUTHSERVER_SERVER_HEADER_READ_TIMEOUT_MS", "500"),
            ("AUTHSERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ],
    );
    let mut silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    let mut preface = TcpStream::connect(&server.addr).unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    silent.push(preface);
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "a silent connection stayed open"
        );
    }
    assert_eq!(
        status(&server.url("/auth/validate"), Some(&basic(ALICE, ALICE_PW))),
        Some(200)
    );
}

/// "Smaller": idle HTTP/2 connections were never closed (three idle h2c connections held
/// max_connections=3 for good).
#[test]
fn idle_http2_connections_are_closed() {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_SERVER_MAX_CONNECTIONS", "2"),
            ("AUTHSERVER_SERVER_IDLE_TIMEOUT_MS", "500"),
            ("AUTHSERVER_SERVER_HEADER_READ_TIMEOUT_MS", "500"),
            ("AUTHSERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ],
    );
    let h2 = || {
        reqwest::blocking::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let idle: Vec<_> = (0..2).map(|_| h2()).collect();
    for c in &idle {
        let r = c.get(server.url("/health")).send().unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
    }
    // Both slots are held by idle HTTP/2 connections; a third client gets in once they close.
    let third = h2();
    assert!(
        eventually(Duration::from_secs(15), || third
            .get(server.url("/health"))
            .send()
            .is_ok_and(|r| r.status() == 200)),
        "idle HTTP/2 connections kept every slot"
    );
    drop(idle);
}

/// "Smaller": one address could hold every connection. Now it holds at most
/// `max_connections_per_address`; the next one is closed at once.
#[test]
fn one_address_cannot_hold_every_connection() {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "3")],
    );
    let _held: Vec<_> = (0..3)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // let the server accept them
    let mut fourth = TcpStream::connect(&server.addr).unwrap();
    assert!(
        closed_within(&mut fourth, Duration::from_secs(3)),
        "the 4th connection was kept"
    );
}

/// Item 21: HTTP/1.1 without `Host`, or with two, got 200 (RFC 9112 §3.2: 400).
#[test]
fn http11_needs_exactly_one_host() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[]);
    let auth = basic(ALICE, ALICE_PW);
    let none = format!("POST /auth/validate HTTP/1.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    assert!(raw(&server.addr, &none).contains(" 400 "), "no Host");
    let two = format!(
        "POST /auth/validate HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    assert!(raw(&server.addr, &two).contains(" 400 "), "two Host headers");
    let one = format!(
        "POST /auth/validate HTTP/1.1\r\nHost: a\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    assert!(raw(&server.addr, &one).contains(" 200 "));
    let http10 = format!("POST /auth/validate HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n");
    assert!(
        raw(&server.addr, &http10).contains(" 200 "),
        "HTTP/1.0 needs no Host"
    );
}

/// Item 4 and 21: the operational routes were served on the public listener (failure reasons
/// enumerate users, /stats shows addresses); the admin routes answered any `Host` (DNS
/// rebinding) and a cross-site form could purge the cache.
#[test]
fn admin_surface_is_loopback_only_and_browser_safe() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[]);
    let client = reqwest::blocking::Client::new();
    for path in ["/metrics", "/stats", "/dashboard"] {
        assert_eq!(
            client.get(server.url(path)).send().unwrap().status(),
            404,
            "{path} public"
        );
        assert_eq!(
            client.get(server.admin_url(path)).send().unwrap().status(),
            200,
            "{path} admin"
        );
    }
    assert_eq!(
        client
            .post(server.url("/admin/cache/purge"))
            .send()
            .unwrap()
            .status(),
        404
    );
    let ready: serde_json::Value = client.get(server.url("/ready")).send().unwrap().json().unwrap();
    assert_eq!(
        ready.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["ready", "timestamp"]
    );
    let rebound = client
        .get(server.admin_url("/stats"))
        .header("host", "attacker.example:9090")
        .send()
        .unwrap();
    assert_eq!(rebound.status(), 421, "DNS rebinding: a foreign Host is refused");
    let cross_site = client
        .post(server.admin_url("/admin/cache/purge"))
        .header("origin", "https://attacker.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x=1")
        .send()
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let proxied = client
        .post(server.admin_url("/admin/cache/purge"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .unwrap();
    assert_eq!(proxied.status(), 403, "a forwarded request is not 'loopback'");
    let direct = client
        .post(server.admin_url("/admin/cache/purge"))
        .send()
        .unwrap();
    assert_eq!(direct.status(), 200);
    let page = client.get(server.admin_url("/dashboard")).send().unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
}

/// Item 4: `admin.listen` on all interfaces without TLS must fail `config check`, like the main
/// listener's plaintext rule.
#[test]
fn plaintext_admin_listener_on_all_interfaces_is_refused() {
    let out = authserver_testkit::cli::cli()
        .args(["config", "check"])
        .env("AUTHSERVER_ADMIN_LISTEN", "0.0.0.0:9999")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.listen"), "{err}");
}

/// Second attack: an idle timeout below the header deadline would cut a keep-alive client's
/// next request head early; `config check` refuses it.
#[test]
fn an_idle_timeout_below_the_header_deadline_is_refused() {
    let out = authserver_testkit::cli::cli()
        .args(["config", "check"])
        .env("AUTHSERVER_SERVER_IDLE_TIMEOUT_MS", "1000")
        .env("AUTHSERVER_SERVER_HEADER_READ_TIMEOUT_MS", "5000")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.idle_timeout_ms"));
}

/// Item 5: `config check` warns when the users' hashes have different costs (their denials are
/// all paced to the slowest).
#[test]
fn config_check_warns_about_mixed_hash_costs() {
    use authserver_core::{Cost, Secret, hash_password};
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let dear = Cost {
        m_kib: 2 * FAST.m_kib,
        ..FAST
    };
    let json = serde_json::json!({
        "a": {"passwordHash": hash_password(&Secret::from("pw-a-1234567"), FAST).unwrap()},
        "b": {"passwordHash": hash_password(&Secret::from("pw-b-1234567"), dear).unwrap()},
    });
    std::fs::write(&users, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = authserver_testkit::cli::cli()
        .args(["config", "check"])
        .env("AUTHSERVER_STORE_FILE", &users)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 cost classes") && err.contains("m=38912,t=2"),
        "{err}"
    );
}
