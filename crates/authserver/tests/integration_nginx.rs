//! The nginx configurations of docs/integrations.md, run as written (only addresses replaced)
//! by the real nginx in front of the real server: what a client sees through nginx, what reaches
//! the application, and the `proxy_cache` key pitfall. Skipped when nginx is absent, unless
//! `TESTS_REQUIRE_NGINX=1` (the test command sets it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::integrations::{Answer, Proxy, get};
use authserver_testkit::nginx;
use authserver_testkit::or_skip;
use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use reqwest::blocking::Client;

const CHALLENGE: &str = "Basic realm=\"authserver\", charset=\"UTF-8\"";

/// authserver on the test users, trusting nginx (loopback) as the doc says.
fn authserver() -> (Fixture, Server) {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1")],
    );
    (f, server)
}

/// nginx running doc block `name` (with `edit` applied to it) in front of `server`.
fn nginx_with(nginx: &std::path::Path, name: &str, server: &Server, edit: &[(&str, &str)]) -> Proxy {
    let (ports, dir) = nginx::prepare();
    let block = nginx::render(name, &server.addr, &ports, dir.path());
    let block = authserver_testkit::integrations::substitute(&block, edit);
    nginx::start(nginx, &block, &ports, dir)
}

fn assert_denied(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(CHALLENGE),
        "{what}: challenge passed through"
    );
    assert!(
        !answer.body.contains("user="),
        "{what}: the application was not reached"
    );
}

#[test]
fn nginx_denies_with_the_challenge() {
    let bin = or_skip!(nginx::binary("nginx_denies_with_the_challenge"));
    let (_f, server) = authserver();
    let proxy = nginx_with(&bin, "nginx", &server, &[]);
    let url = proxy.url("/some/page?q=1");
    assert_denied(&get(&url, &[]), "no credentials");
    assert_denied(
        &get(&url, &[("authorization", &basic(ALICE, "Wrong-Pass-5521"))]),
        "wrong password",
    );
    assert_denied(
        &get(&url, &[("authorization", &basic(BOB, BOB_PW))]),
        "disabled user",
    );
    assert_denied(
        &get(&url, &[("authorization", "Basic !!!not-base64")]),
        "malformed header",
    );
    let spoof = [("remote-user", "mallory"), ("remote-groups", "admin")];
    assert_denied(&get(&url, &spoof), "identity headers alone");
}

#[test]
fn nginx_passes_the_identity_not_the_password() {
    let bin = or_skip!(nginx::binary("nginx_passes_the_identity_not_the_password"));
    let (_f, server) = authserver();
    let proxy = nginx_with(&bin, "nginx", &server, &[]);
    let url = proxy.url("/some/page?q=1");
    let alice = basic(ALICE, ALICE_PW);
    let ok = get(&url, &[("authorization", &alice)]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(
        ok.body
            .starts_with(&format!("user={ALICE} groups=admin,reader authorization= ")),
        "identity reaches the application, the password does not: {}",
        ok.body
    );

    // Client-sent identity headers are replaced, also by an empty value (carol has no roles).
    let spoof = [("remote-user", "mallory"), ("remote-groups", "admin")];
    let spoofed = get(&url, &[("authorization", &alice), spoof[0], spoof[1]]);
    assert!(
        spoofed
            .body
            .starts_with(&format!("user={ALICE} groups=admin,reader ")),
        "{}",
        spoofed.body
    );
    let carol = get(
        &url,
        &[("authorization", &basic(CAROL, CAROL_PW)), spoof[0], spoof[1]],
    );
    assert_eq!(carol.status, 200, "{}", carol.body);
    assert!(
        carol.body.starts_with(&format!("user={CAROL} groups= ")),
        "{}",
        carol.body
    );

    // The body stays out of the subrequest: one over server.max_body_bytes (4 KiB) would be a
    // 413 from authserver, which nginx turns into 500.
    let post = Client::new()
        .post(&url)
        .header("authorization", &alice)
        .body(vec![b'x'; 10_000])
        .send()
        .unwrap();
    assert_eq!(post.status().as_u16(), 200);

    let output = [server.lines(), proxy.lines()].concat().join("\n");
    for secret in [ALICE_PW, BOB_PW, CAROL_PW, alice.as_str()] {
        assert!(
            !output.contains(secret),
            "no credential in authserver's or nginx's output"
        );
    }
}

/// Alice, then carol, then alice again fetch one page through the cache block.
fn three_fetches(proxy: &Proxy) -> [Answer; 3] {
    let url = proxy.url("/cached/page");
    let alice = [("authorization", basic(ALICE, ALICE_PW))];
    let carol = [("authorization", basic(CAROL, CAROL_PW))];
    let with = |h: &[(&str, String); 1]| get(&url, &[(h[0].0, h[0].1.as_str())]);
    [with(&alice), with(&carol), with(&alice)]
}

#[test]
fn nginx_cache_keyed_by_user_as_documented() {
    let bin = or_skip!(nginx::binary("nginx_cache_keyed_by_user_as_documented"));
    let (_f, server) = authserver();
    let proxy = nginx_with(&bin, "nginx-cache", &server, &[]);
    let [first, carol, again] = three_fetches(&proxy);
    assert!(
        first.body.starts_with(&format!("user={ALICE} ")),
        "{}",
        first.body
    );
    assert!(
        carol.body.starts_with(&format!("user={CAROL} ")),
        "carol gets her own page: {}",
        carol.body
    );
    assert_eq!(again.body, first.body, "the cache is in use (same response id)");
    // Cached or not, every request is authenticated.
    let url = proxy.url("/cached/page");
    assert_denied(
        &get(&url, &[("authorization", &basic(ALICE, "Wrong-Pass-5521"))]),
        "wrong password, page cached",
    );
    assert_denied(&get(&url, &[]), "no credentials, page cached");
    // nginx writes the key in clear into each cache file: the user's name, never the password.
    let files = cache_files(&proxy.dir.path().join("cache"));
    assert_eq!(files.len(), 2, "one cache entry per user");
    let token = basic(ALICE, ALICE_PW);
    let token = token.trim_start_matches("Basic ").as_bytes();
    for file in files {
        assert!(file.windows(5).any(|w| w == b"KEY: "), "a cache file");
        assert!(
            !file.windows(token.len()).any(|w| w == token),
            "no credential in the cache"
        );
    }
}

/// The contents of every file under `dir`.
fn cache_files(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(cache_files(&path));
        } else {
            out.push(std::fs::read(&path).unwrap());
        }
    }
    out
}

/// The pitfall itself, so the test above can fail: the same block with the user taken out of
/// the key serves alice's page to carol.
#[test]
fn nginx_cache_without_user_in_key_leaks() {
    let bin = or_skip!(nginx::binary("nginx_cache_without_user_in_key_leaks"));
    let (_f, server) = authserver();
    let edit = [(" $authserver_user\";", "\";")];
    let proxy = nginx_with(&bin, "nginx-cache", &server, &edit);
    let [first, carol, _] = three_fetches(&proxy);
    assert!(
        first.body.starts_with(&format!("user={ALICE} ")),
        "{}",
        first.body
    );
    assert_eq!(
        carol.body, first.body,
        "without the user in the key, carol gets alice's page"
    );
}

/// Why the doc keys by the verified user rather than the common `$http_authorization`: both
/// separate users, but the latter writes every user's Basic credentials into the cache files.
#[test]
fn nginx_cache_keyed_by_authorization_stores_credentials() {
    let bin = or_skip!(nginx::binary(
        "nginx_cache_keyed_by_authorization_stores_credentials"
    ));
    let (_f, server) = authserver();
    let edit = [(" $authserver_user\";", " $http_authorization\";")];
    let proxy = nginx_with(&bin, "nginx-cache", &server, &edit);
    let [first, carol, _] = three_fetches(&proxy);
    assert!(
        carol.body.starts_with(&format!("user={CAROL} ")),
        "separated: {}",
        carol.body
    );
    assert!(
        first.body.starts_with(&format!("user={ALICE} ")),
        "{}",
        first.body
    );
    let token = basic(ALICE, ALICE_PW);
    let files = cache_files(&proxy.dir.path().join("cache")).concat();
    let token = token.as_bytes();
    assert!(
        files.windows(token.len()).any(|w| w == token),
        "alice's credentials on disk"
    );
}

/// `auth_request` knows only 2xx, 401 and 403: a 429 from regulation (here: carol's username
/// locked after 2 failures) reaches the client as 500, as the doc warns.
#[test]
fn nginx_turns_regulation_refusals_into_500() {
    let bin = or_skip!(nginx::binary("nginx_turns_regulation_refusals_into_500"));
    let f = fixture();
    let env = [
        ("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1"),
        ("AUTHSERVER_REGULATION_MAX_USER_FAILURES", "2"),
    ];
    let server = Server::start(&f.users, &[], &env);
    let proxy = nginx_with(&bin, "nginx", &server, &[]);
    let url = proxy.url("/");
    let wrong = basic(CAROL, "Wrong-Pass-5521");
    for _ in 0..2 {
        assert_denied(&get(&url, &[("authorization", &wrong)]), "wrong password");
    }
    let direct = Client::new()
        .get(server.url("/auth/forward"))
        .header("authorization", basic(CAROL, CAROL_PW))
        .send()
        .unwrap();
    assert_eq!(direct.status().as_u16(), 429, "authserver itself says 429");
    let through = get(&url, &[("authorization", &basic(CAROL, CAROL_PW))]);
    assert_eq!(through.status, 500, "nginx says 500: {}", through.body);
}
