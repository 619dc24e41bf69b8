//! What a pod relies on (deploy/kubernetes): the users file in a Secret volume reloads through
//! the kubelet's atomic `..data` swap, and `authserver healthcheck` tells ready from not.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::cli::{isolated, outcome};
use authserver_testkit::hash::FAST;
use authserver_testkit::kubelet::SecretVolume;
use authserver_testkit::process::Server;
use authserver_testkit::users::{basic, document};
use authserver_testkit::wait::poll_blocking;
use std::time::{Duration, Instant};

const DAVE: &str = "dave-plaintext-user";
const DAVE_PW: &str = "Secret-Volume-Pass-5521";
const ERIN: &str = "erin-plaintext-user";
const ERIN_PW: &str = "Swapped-In-Pass-8830";

fn status(client: &reqwest::blocking::Client, server: &Server, user: &str, pw: &str) -> u16 {
    client
        .get(server.url("/auth/forward"))
        .header("authorization", basic(user, pw))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// The kubelet swaps `..data` to a new directory and deletes the old one: within a few poll
/// intervals (50 ms here) the new user authenticates and the removed one is refused; a swap to
/// content that does not parse keeps the last good snapshot and is reported.
#[test]
fn secret_volume_swap_reloads_and_a_broken_swap_keeps_the_last_snapshot() {
    let mut volume = SecretVolume::new(&[("users.json", &document(&[(DAVE, DAVE_PW)], FAST))]);
    let server = Server::start(&volume.path("users.json"), &[], &[]);
    let client = reqwest::blocking::Client::new();
    assert_eq!(status(&client, &server, DAVE, DAVE_PW), 200);
    assert_eq!(status(&client, &server, ERIN, ERIN_PW), 401);

    // A file changed within RACY_WINDOW of its read is re-read at every poll whatever its
    // metadata says: let the volume age past it, as a real Secret has, so only change detection
    // through the symlinks can see the swap.
    std::thread::sleep(authserver::files::RACY_WINDOW + Duration::from_millis(500));
    let first = volume.data_target();
    volume.update(&[("users.json", &document(&[(ERIN, ERIN_PW)], FAST))]);
    assert_ne!(volume.data_target(), first, "..data points at a new directory");
    assert!(!volume.dir.path().join(&first).exists(), "old version removed");
    let swapped = Instant::now();
    let reloaded = poll_blocking(Duration::from_secs(10), Duration::from_millis(25), || {
        status(&client, &server, ERIN, ERIN_PW) == 200
    });
    assert!(
        reloaded,
        "the swapped-in user authenticates: {:?}",
        server.lines()
    );
    // Each poll costs one Argon2id verification (~tens of ms in a debug build) besides the
    // 50 ms poll interval: 2 s is far above both and still catches a reload that waits for a
    // restart or a periodic full re-read.
    assert!(
        swapped.elapsed() < Duration::from_secs(2),
        "reload took {:?}",
        swapped.elapsed()
    );
    assert_eq!(
        status(&client, &server, DAVE, DAVE_PW),
        401,
        "removed user refused"
    );

    volume.update(&[("users.json", "{\"truncated\": ")]);
    let reported = poll_blocking(Duration::from_secs(10), Duration::from_millis(25), || {
        server
            .lines()
            .iter()
            .any(|l| l.contains("users file not reloaded"))
    });
    assert!(reported, "the broken swap is reported: {:?}", server.lines());
    assert_eq!(
        status(&client, &server, ERIN, ERIN_PW),
        200,
        "last good snapshot kept"
    );
    let (clean, lines) = server.terminate();
    assert!(clean);
    let all = lines.join("\n");
    for secret in [DAVE_PW, ERIN_PW, DAVE, ERIN] {
        assert!(!all.contains(secret), "{secret} leaked into the output");
    }
}

fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = isolated();
    cmd.arg("healthcheck").args(args).envs(env.iter().copied());
    outcome(&mut cmd)
}

/// Ready server: exit 0, with the URL derived from `server.listen` (0.0.0.0 → 127.0.0.1).
/// A 200 without `ready: true` (here `/health`) and a closed port: exit 1, one stderr line,
/// within the 2 s timeout.
#[test]
fn healthcheck_exits_0_when_ready_and_1_otherwise() {
    let volume = SecretVolume::new(&[("users.json", &document(&[(DAVE, DAVE_PW)], FAST))]);
    let server = Server::start(&volume.path("users.json"), &[], &[]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let any = format!("0.0.0.0:{port}");
    let env = [
        ("AUTHSERVER_SERVER_LISTEN", any.as_str()),
        ("AUTHSERVER_SERVER_ALLOW_PLAINTEXT", "true"),
    ];
    let (code, out, err) = healthcheck(&[], &env);
    assert_eq!(code, Some(0), "stdout {out} stderr {err}");
    assert!(out.contains(&format!("http://127.0.0.1:{port}/ready")), "{out}");

    let (code, _, err) = healthcheck(&["--url", &server.url("/health")], &[]);
    assert_eq!(code, Some(1), "a 200 without ready=true is not healthy: {err}");
    assert!(err.contains("ready=None"), "{err}");

    drop(server);
    let started = Instant::now();
    let (code, _, err) = healthcheck(&[], &env);
    assert_eq!(code, Some(1), "closed port: {err}");
    assert!(
        err.starts_with("error: unhealthy:") && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// With `[tls]`: https to `--tls-name` (default localhost) connected to loopback, the configured
/// certificate the only root. A certificate naming another host needs `--tls-name`; a server
/// presenting a certificate other than the configured one is unhealthy.
#[test]
fn healthcheck_over_tls_trusts_only_the_configured_certificate() {
    let volume = SecretVolume::new(&[("users.json", &document(&[(DAVE, DAVE_PW)], FAST))]);
    let (cert, key) = authserver_testkit::tls::self_signed(&["authserver.internal"]);
    let (other, _) = authserver_testkit::tls::self_signed(&["authserver.internal"]);
    let files = |name: &str, pem: &str| {
        let path = volume.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (cert_path, key_path, other_path) = (
        files("tls.crt", &cert),
        files("tls.key", &key),
        files("other.crt", &other),
    );
    let tls = [
        ("AUTHSERVER_TLS_CERT_FILE", cert_path.as_str()),
        ("AUTHSERVER_TLS_KEY_FILE", key_path.as_str()),
    ];
    let server = Server::start(&volume.path("users.json"), &[], &tls);
    let env = |cert: &str| {
        let listen = ("AUTHSERVER_SERVER_LISTEN", server.addr.clone());
        [
            listen,
            ("AUTHSERVER_TLS_CERT_FILE", cert.to_owned()),
            ("AUTHSERVER_TLS_KEY_FILE", key_path.clone()),
        ]
    };
    let run = |args: &[&str], cert: &str| {
        let mut cmd = isolated();
        cmd.arg("healthcheck").args(args).envs(env(cert));
        outcome(&mut cmd)
    };
    let (code, out, err) = run(&["--tls-name", "authserver.internal"], &cert_path);
    assert_eq!(code, Some(0), "stdout {out} stderr {err}");
    assert!(out.contains("https://authserver.internal:"), "{out}");
    let (code, _, err) = run(&[], &cert_path);
    assert_eq!(code, Some(1), "the certificate does not name localhost: {err}");
    let (code, _, err) = run(&["--tls-name", "authserver.internal"], &other_path);
    assert_eq!(code, Some(1), "not the configured certificate: {err}");
}
