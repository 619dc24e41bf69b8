//! Access rules behind the real proxies, configured as docs/integrations.md shows (only the
//! addresses replaced), in front of a real upstream that echoes the identity headers it got:
//! nginx `auth_request` and Caddy `forward_auth`. Skipped when a proxy is absent, unless
//! `TESTS_REQUIRE_NGINX=1` / `TESTS_REQUIRE_CADDY=1` (the test command sets both).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::integrations::{Proxy, get};
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use authserver_testkit::{caddy, nginx, or_skip};

const RULES: &str = r#"
[[rule]]
name = "health"
paths = ["/healthz"]
methods = ["GET"]
policy = "bypass"

[[rule]]
name = "admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]

[[rule]]
name = "closed"
paths = ["/closed"]
policy = "deny"

[[rule]]
name = "signed-in"
policy = "allow"
"#;

const CHALLENGE: &str = "Basic realm=\"authserver\", charset=\"UTF-8\"";

/// authserver with the rules, trusting the proxy on loopback as the doc says.
fn authserver() -> (Fixture, Server) {
    let f = fixture();
    let rules = f.dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTHSERVER_RULES_FILE", rules.to_str().unwrap()),
        ],
    );
    (f, server)
}

/// What every proxy must do with the rules: the same list for nginx and Caddy.
fn check_rules(proxy: &Proxy, server: &Server) {
    let alice = basic(ALICE, ALICE_PW);
    let carol = basic(CAROL, CAROL_PW);
    let forged = [("remote-user", "mallory"), ("remote-groups", "admin")];

    // Bypass: no credentials needed, the application reached, a forged identity not passed on.
    let a = get(&proxy.url("/healthz"), &forged);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.starts_with("user= groups= "),
        "forged identity never reaches the app: {}",
        a.body
    );

    // allow + role: alice (admin) in with her identity, carol 403 (no challenge), nobody 401.
    let a = get(
        &proxy.url("/admin/panel"),
        &[("authorization", &alice), forged[0]],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.starts_with(&format!("user={ALICE} groups=admin,reader ")),
        "{}",
        a.body
    );
    let a = get(&proxy.url("/admin/panel"), &[("authorization", &carol)]);
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.challenge, None, "a 403 must not make the browser prompt");
    assert!(
        !a.body.contains("user="),
        "the application was not reached: {}",
        a.body
    );
    let a = get(&proxy.url("/admin/panel"), &[]);
    assert_eq!(
        (a.status, a.challenge.as_deref()),
        (401, Some(CHALLENGE)),
        "{}",
        a.body
    );

    // Spellings of the admin path, and a client adding the other proxies' headers.
    for path in ["/%61dmin/panel", "/x/../admin/panel", "/admin%2Fpanel"] {
        let a = get(&proxy.url(path), &[("authorization", &carol)]);
        assert_eq!(a.status, 403, "{path}: {}", a.body);
    }
    let smuggle = [
        ("authorization", carol.as_str()),
        ("x-forwarded-uri", "/healthz"),
        ("x-original-url", "http://app.example.com/healthz"),
    ];
    let a = get(&proxy.url("/admin/panel"), &smuggle);
    assert_eq!(a.status, 403, "a client cannot name another path: {}", a.body);

    // deny: 403 even for the admin; other paths: any signed-in user.
    let a = get(&proxy.url("/closed"), &[("authorization", &alice)]);
    assert_eq!(a.status, 403, "{}", a.body);
    let a = get(&proxy.url("/elsewhere"), &[("authorization", &carol)]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.starts_with(&format!("user={CAROL} ")), "{}", a.body);

    // The access line is written through a buffered writer: wait for it, do not race it.
    let named = authserver_testkit::wait::poll_blocking(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || server.lines().iter().any(|l| l.contains(r#""rule":"admin""#)),
    );
    assert!(named, "the log line names the rule");
    let output = [server.lines(), proxy.lines()].concat().join("\n");
    for secret in [ALICE_PW, CAROL_PW, alice.as_str(), carol.as_str()] {
        assert!(!output.contains(secret), "no credential in any output");
    }
}

#[test]
fn nginx_auth_request_applies_the_rules() {
    let bin = or_skip!(nginx::binary("nginx_auth_request_applies_the_rules"));
    let (_f, server) = authserver();
    let (ports, dir) = nginx::prepare();
    let block = nginx::render("nginx", &server.addr, &ports, dir.path());
    let proxy = nginx::start(&bin, &block, &ports, dir);
    check_rules(&proxy, &server);
}

#[test]
fn caddy_forward_auth_applies_the_rules() {
    let bin = or_skip!(caddy::binary("caddy_forward_auth_applies_the_rules"));
    let (_f, server) = authserver();
    let (dir, file, port) = caddy::render("caddy", &server.addr);
    let proxy = caddy::start(&bin, &file, port, dir);
    check_rules(&proxy, &server);
}
