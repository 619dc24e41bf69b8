//! First contact (issue 16), on the real binary: a Kubernetes pod's service-link variables and
//! a stray `AUTHSERVER_*` variable do not stop the server, and one users-file entry whose hash
//! fails the policy denies that user only (logged by `user_hash`, counted by a gauge, failing
//! `config check`) until the file is fixed.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::{Cost, UserHasher};
use authserver_testkit::cli::{isolated, outcome};
use authserver_testkit::hash::{FAST, hash};
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use authserver_testkit::wait::poll_blocking;
use std::time::Duration;

/// What the kubelet injects into every pod of a namespace with `Service authserver` (ports
/// 8080 `http` and 9090 `admin`).
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("AUTHSERVER_SERVICE_HOST", "10.96.0.17"),
    ("AUTHSERVER_SERVICE_PORT", "8080"),
    ("AUTHSERVER_SERVICE_PORT_HTTP", "8080"),
    ("AUTHSERVER_SERVICE_PORT_ADMIN", "9090"),
    ("AUTHSERVER_PORT", "tcp://10.96.0.17:8080"),
    ("AUTHSERVER_PORT_8080_TCP", "tcp://10.96.0.17:8080"),
    ("AUTHSERVER_PORT_8080_TCP_PROTO", "tcp"),
    ("AUTHSERVER_PORT_8080_TCP_PORT", "8080"),
    ("AUTHSERVER_PORT_8080_TCP_ADDR", "10.96.0.17"),
    ("AUTHSERVER_PORT_9090_TCP", "tcp://10.96.0.17:9090"),
    ("AUTHSERVER_PORT_9090_TCP_PROTO", "tcp"),
    ("AUTHSERVER_PORT_9090_TCP_PORT", "9090"),
    ("AUTHSERVER_PORT_9090_TCP_ADDR", "10.96.0.17"),
];

const WEAK_USER: &str = "weak-plaintext-user";
const WEAK_PW: &str = "Weak-Entry-Pass-5521";
const HASH_KEY: &str = "first-contact-key";

/// Status, challenge and body (its `timestamp` removed) of one request.
fn status(auth: &str, url: &str) -> (u16, Option<String>, serde_json::Value) {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .header("authorization", auth)
        .send()
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let code = r.status().as_u16();
    let mut body: serde_json::Value = r.json().unwrap();
    body.as_object_mut().unwrap().remove("timestamp");
    (code, challenge, body)
}

fn gauge(server: &Server) -> String {
    let text = reqwest::blocking::get(server.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("authserver_store_refused_entries "))
        .expect("the gauge is exposed")
        .to_owned()
}

#[test]
fn service_links_and_an_unknown_variable_do_not_stop_the_server() {
    let f = fixture();
    let mut env = SERVICE_LINKS.to_vec();
    env.push(("AUTHSERVER_SERVER_LISTN", "Stray-Value-8812"));
    // config check lists the stray variable as a warning and still passes.
    let mut check = isolated();
    check
        .args(["config", "check"])
        .env("AUTHSERVER_STORE_FILE", &f.users)
        .envs(env.iter().copied());
    let (code, stdout, stderr) = outcome(&mut check);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: unknown environment variable"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(
        warned[0].contains("AUTHSERVER_SERVER_LISTN")
            && warned[0].contains("did you mean AUTHSERVER_SERVER_LISTEN")
    );
    assert!(
        !stderr.contains("Stray-Value-8812") && !stderr.contains("AUTHSERVER_PORT"),
        "{stderr}"
    );

    let server = Server::start(&f.users, &[], &env);
    let (code, ..) = status(&basic(ALICE, ALICE_PW), &server.url("/auth/validate"));
    assert_eq!(code, 200, "serves");
    let (clean, lines) = server.terminate();
    assert!(clean);
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("unknown environment variable"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning, for the typo only: {warnings:?}");
    let w = warnings[0];
    assert!(w.contains("\"WARN\"") || w.contains("\"level\":\"warn\""), "{w}");
    assert!(
        w.contains("AUTHSERVER_SERVER_LISTN") && w.contains("did you mean AUTHSERVER_SERVER_LISTEN"),
        "{w}"
    );
    let all = lines.join("\n");
    assert!(!all.contains("Stray-Value-8812"), "never the value");
    for (var, _) in SERVICE_LINKS {
        assert!(!all.contains(var), "{var} is not even mentioned");
    }
}

/// alice and carol plus one entry whose hash is below the floor.
fn users_with_a_weak_entry(f: &Fixture, weak: &str) {
    let json = serde_json::json!({
        ALICE: {"passwordHash": f.hashes[0], "roles": ["admin"]},
        CAROL: {"passwordHash": f.hashes[2]},
        WEAK_USER: {"passwordHash": weak},
    });
    std::fs::write(&f.users, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

#[test]
fn a_weak_entry_denies_only_that_user_until_fixed() {
    let f = fixture();
    let weak = hash(
        WEAK_PW,
        Cost {
            m_kib: 4096,
            t: 1,
            p: 1,
        },
    );
    users_with_a_weak_entry(&f, &weak);

    let mut check = isolated();
    check
        .args(["config", "check"])
        .env("AUTHSERVER_STORE_FILE", &f.users);
    let (code, stdout, stderr) = outcome(&mut check);
    assert_eq!(code, Some(1), "config check fails: {stdout} {stderr}");
    assert!(
        stderr.contains(WEAK_USER) && stderr.contains("outside policy"),
        "{stderr}"
    );
    assert!(!stderr.contains(&weak) && !stderr.contains(ALICE), "{stderr}");

    let server = Server::start(&f.users, &[], &[("AUTHSERVER_LOG_USER_HASH_KEY", HASH_KEY)]);
    let url = server.url("/auth/validate");
    assert_eq!(
        status(&basic(ALICE, ALICE_PW), &url).0,
        200,
        "the others authenticate"
    );
    assert_eq!(status(&basic(CAROL, CAROL_PW), &url).0, 200);
    let refused = status(&basic(WEAK_USER, WEAK_PW), &url);
    assert_eq!(
        refused.0, 401,
        "the weak user is denied, with the right password too"
    );
    let unknown = status(&basic("nobody-plaintext-user", WEAK_PW), &url);
    let wrong = status(&basic(ALICE, "Wrong-Password-9931"), &url);
    assert_eq!(refused, unknown, "same answer as an unknown user");
    assert_eq!(refused, wrong, "and as a wrong password");
    assert_eq!(gauge(&server), "authserver_store_refused_entries 1");

    // Fixed on disk: the hot reload lets the user in and the gauge drops.
    let fixed = hash(WEAK_PW, FAST);
    users_with_a_weak_entry(&f, &fixed);
    let admitted = poll_blocking(Duration::from_secs(10), Duration::from_millis(200), || {
        status(&basic(WEAK_USER, WEAK_PW), &url).0 == 200
    });
    assert!(admitted, "the fixed entry serves after reload");
    assert_eq!(gauge(&server), "authserver_store_refused_entries 0");

    let (clean, lines) = server.terminate();
    assert!(clean);
    let user_hash = UserHasher::new(HASH_KEY.as_bytes()).hash(WEAK_USER);
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("refused by the hash policy"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR at load: {errors:?}");
    assert!(
        errors[0].contains(&user_hash) && errors[0].contains("outside policy"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("ERROR") || errors[0].contains("\"error\""),
        "{}",
        errors[0]
    );
    let all = lines.join("\n");
    for secret in [WEAK_USER, WEAK_PW, weak.as_str(), fixed.as_str(), "$argon2id"] {
        assert!(!all.contains(secret), "{secret} reached the output");
    }
}
