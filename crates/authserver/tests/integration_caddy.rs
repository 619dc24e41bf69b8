//! The Caddy configuration of docs/integrations.md, validated by `caddy validate` and run as
//! written (only addresses replaced) by the real Caddy in front of the real server. Skipped when
//! Caddy is absent, unless `TESTS_REQUIRE_CADDY=1` (the test command sets it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::caddy;
use authserver_testkit::or_skip;
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use reqwest::blocking::Client;

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut req = Client::new().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), challenge, resp.text().unwrap())
}

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
        let (status, got, body) = get(&url, &headers);
        assert_eq!((status, got.as_deref()), (401, Some(challenge)), "{what}: {body}");
        assert!(!body.contains("user="), "{what}: the application was not reached");
    }

    let spoof = [("remote-user", "mallory"), ("remote-groups", "admin")];
    let alice = basic(ALICE, ALICE_PW);
    let (status, _, body) = get(&url, &[("authorization", &alice), spoof[0], spoof[1]]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("user={ALICE} groups=admin,reader authorization="),
        "identity replaced, no password"
    );
    // Carol has no roles: the client's Remote-Groups must not survive an empty answer.
    let (status, _, body) = get(
        &url,
        &[("authorization", &basic(CAROL, CAROL_PW)), spoof[0], spoof[1]],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("user={CAROL} groups= authorization="),
        "no spoofed groups"
    );
}
