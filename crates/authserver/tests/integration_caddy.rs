//! The Caddy configuration of docs/integrations.md, validated by `caddy validate` and run as
//! written (only addresses replaced) by the real Caddy in front of the real server. Skipped when
//! Caddy is absent, unless `TESTS_REQUIRE_CADDY=1` (the test command sets it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::caddy;
use authserver_testkit::integrations::get;
use authserver_testkit::or_skip;
use authserver_testkit::process::Server;
use authserver_testkit::users::*;

#[test]
fn caddy_forward_auth_as_documented() {
    let bin = or_skip!(caddy::binary("caddy_forward_auth_as_documented"));
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let (dir, file, port) = caddy::render("caddy", &server.addr);

    let check = caddy::validate(&bin, &file, dir.path());
    let says = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "caddy validate: {says}");

    let proxy = caddy::start(&bin, &file, port, dir);
    let url = proxy.url("/some/page");
    let challenge = "Basic realm=\"authserver\", charset=\"UTF-8\"";
    for (what, auth) in [
        ("no credentials", None),
        ("wrong password", Some(basic(ALICE, "Wrong-Pass-5521"))),
        ("disabled user", Some(basic(BOB, BOB_PW))),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let a = get(&url, &headers);
        assert_eq!(
            (a.status, a.challenge.as_deref()),
            (401, Some(challenge)),
            "{what}: {}",
            a.body
        );
        assert!(
            !a.body.contains("user="),
            "{what}: the application was not reached"
        );
    }

    let spoof = [("remote-user", "mallory"), ("remote-groups", "admin")];
    let alice = basic(ALICE, ALICE_PW);
    let a = get(&url, &[("authorization", &alice), spoof[0], spoof[1]]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        format!("user={ALICE} groups=admin,reader authorization="),
        "identity replaced, no password"
    );
    // Carol has no roles: the client's Remote-Groups must not survive an empty answer.
    let a = get(
        &url,
        &[("authorization", &basic(CAROL, CAROL_PW)), spoof[0], spoof[1]],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        format!("user={CAROL} groups= authorization="),
        "no spoofed groups"
    );
}
