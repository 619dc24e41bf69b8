//! Attacks on the OAuth 2.0 issuer (issue 14), by an attacker independent of its authors. Each
//! test states the secure behaviour; a failing test is a finding (see the attack report).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::AppState;
use authserver::wiring::build;
use authserver_testkit::oauth::*;
use authserver_testkit::oauth_http::{get_with as get, post};
use axum::http::{StatusCode, header};
use std::sync::Arc;

fn state(f: &OAuthFixture) -> Arc<AppState> {
    build(settings(f)).unwrap().state
}

async fn basic_token(state: &Arc<AppState>) -> String {
    let auth = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let a = post(
        state,
        "/oauth/token",
        Some(&auth),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["access_token"].as_str().unwrap().to_owned()
}

/// The users file with `BASIC_CLIENT`'s entry changed by `f`.
fn edit_users(fx: &OAuthFixture, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&fx.users).unwrap()).unwrap();
    f(doc.as_object_mut().unwrap());
    std::fs::write(&fx.users, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// The fixture's one signing key (PEM path) and its kid.
fn server_key(f: &OAuthFixture) -> (std::path::PathBuf, String) {
    let list = authserver::oauth::keyset::read_manifest(&f.keys).unwrap();
    let kid = list[0].kid.clone();
    (f.keys.join(format!("{kid}.pem")), kid)
}

/// Finding: disabling (or deleting) a client does not stop the access tokens it already holds.
/// Its Basic password stops at once, its secret can no longer get a token, but every token it
/// got keeps passing `/auth/forward` (and introspects `active: true`) until `exp`, up to
/// `token_lifetime_seconds` (configurable to 24 h). The only way to cut a compromised client off
/// is to find and revoke each of its tokens (it would have to be done with its own credentials:
/// revocation is owner-only), or to remove the signing key for everyone.
#[tokio::test]
async fn a_disabled_or_deleted_client_loses_its_tokens() {
    let f = fixture();
    let token = basic_token(&state(&f)).await;
    let bearer = format!("Bearer {token}");
    // The operator disables the client (`users disable`): the store now says DISABLED.
    edit_users(&f, |m| {
        m.get_mut(BASIC_CLIENT).unwrap()["status"] = "DISABLED".into();
    });
    let disabled = state(&f);
    let auth = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let refused = post(
        &disabled,
        "/oauth/token",
        Some(&auth),
        "grant_type=client_credentials",
    )
    .await;
    assert_ne!(
        refused.status,
        StatusCode::OK,
        "a disabled client gets no new token"
    );
    let forward = get(&disabled, "/auth/forward", Some(&bearer)).await;
    assert_eq!(
        forward.status,
        StatusCode::UNAUTHORIZED,
        "a DISABLED client's token still passes /auth/forward as Remote-User {:?}",
        forward.headers.get("remote-user")
    );
    // Deleted outright: same.
    edit_users(&f, |m| {
        m.remove(BASIC_CLIENT);
    });
    let deleted = state(&f);
    let forward = get(&deleted, "/auth/forward", Some(&bearer)).await;
    assert_eq!(
        forward.status,
        StatusCode::UNAUTHORIZED,
        "a DELETED client's token still passes /auth/forward as Remote-User {:?}",
        forward.headers.get("remote-user")
    );
}

/// Finding: a token within its skew after `exp` is still accepted (skew 30 s), but revoking it
/// answers 200 and records nothing (`exp <= now` returns early, though the comment two lines
/// later says the entry is kept past `exp` by the skew precisely for this case).
#[tokio::test]
async fn a_revoked_token_within_the_skew_is_refused() {
    let f = fixture();
    let state = state(&f);
    let (pem, kid) = server_key(&f);
    let now = authserver::oauth::signer::unix_now();
    let claims = serde_json::json!({"iss": ISSUER, "sub": BASIC_CLIENT, "client_id": BASIC_CLIENT,
        "aud": AUDIENCE, "scope": "read", "iat": now - 900, "exp": now - 5, "jti": "AAAAAAAAAAAAAAAAAAAAAA"});
    let token = sign(
        &pem,
        &serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}),
        &claims,
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(&state, "/auth/forward", Some(&bearer)).await.status,
        StatusCode::OK,
        "precondition: 5 s past exp is within the 30 s skew"
    );
    let auth = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let revoked = post(&state, "/oauth/revoke", Some(&auth), &format!("token={token}")).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        get(&state, "/auth/forward", Some(&bearer)).await.status,
        StatusCode::UNAUTHORIZED,
        "revoked (200) yet still accepted"
    );
}

/// Finding: `keys remove` of the ACTIVE key succeeds whenever any other key ever signed, and the
/// newest older key, retired or long expired (out of the JWKS for more than the token lifetime),
/// silently becomes the active key again: it signs at once, though no consumer's cached JWKS has
/// it (publish-before-sign broken), and a key the operator retired is back in service.
#[tokio::test]
async fn removing_the_active_key_does_not_resurrect_an_expired_one() {
    use authserver::oauth::keyset;
    use authserver::oauth::signer::{KeyState, states, unix_now};
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let now = unix_now();
    let day = 86_400;
    // "old": active a day ago, retired when "new" took over 20 h ago: expired (not published).
    keyset::add(
        &keys,
        "old",
        &keyset::generate_es256_pem().unwrap(),
        now - 2 * day,
        now - day,
    )
    .unwrap();
    keyset::add(
        &keys,
        "new",
        &keyset::generate_es256_pem().unwrap(),
        now - day,
        now - 72_000,
    )
    .unwrap();
    let retention = 900 + 30;
    let sched = keyset::read_manifest(&keys).unwrap();
    assert_eq!(
        states(&sched, now, retention),
        [KeyState::Expired, KeyState::Active]
    );

    let out = std::process::Command::new(authserver_testkit::cli::binary())
        .args(["keys", "remove", "new", "--dir"])
        .arg(&keys)
        .env_remove("AUTHSERVER_CONFIG")
        .output()
        .unwrap();
    let sched = keyset::read_manifest(&keys).unwrap();
    let after: Vec<(String, KeyState)> = sched
        .iter()
        .map(|k| k.kid.clone())
        .zip(states(&sched, now, retention))
        .collect();
    assert!(
        !out.status.success(),
        "`keys remove <active>` succeeded ({}) and left {after:?}: the expired key signs again",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

/// Finding (low): the standalone signer picks the key twice. `Issuer::issue` reads
/// `signer.active()` for the header's `kid`, then `signer.sign()` picks "the active key now"
/// again; at a `signs_from` instant (or a key reload in between) the header names the old key
/// and the new key signs: a 200 token that verifies nowhere. The AWS schedule guards exactly this
/// (`signing_key` signs with the header's kid, `SWITCH_GRACE`); the local signer does not.
#[tokio::test]
async fn the_key_that_signs_is_the_key_the_header_names() {
    use authserver::oauth::keyset;
    use authserver::oauth::signer::LocalSigner;
    use authserver_core::oauth::TokenSigner as _;
    use authserver_core::oauth::jwk::VerifyingKey;
    use authserver_core::oauth::jwt::Jws;
    use std::sync::atomic::{AtomicU64, Ordering};
    static CLOCK: AtomicU64 = AtomicU64::new(1_999);
    fn clock() -> u64 {
        CLOCK.load(Ordering::SeqCst)
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    keyset::add(&keys, "a", &keyset::generate_es256_pem().unwrap(), 900, 1_000).unwrap();
    keyset::add(&keys, "b", &keyset::generate_es256_pem().unwrap(), 1_000, 2_000).unwrap();
    let signer = LocalSigner::open_with_clock(keys, 930, clock).unwrap();
    let (kid, alg) = signer.active();
    assert_eq!(kid, "a");
    let header = serde_json::json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
    let input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(b"{}")
    );
    // The second ticks over between the two calls (issue() reads the clock twice).
    CLOCK.store(2_000, Ordering::SeqCst);
    let sig = signer.sign(input.as_bytes()).await.unwrap();
    let token = format!("{input}.{}", base64url(&sig));
    let published: Vec<VerifyingKey> = signer
        .published()
        .iter()
        .map(|k| VerifyingKey::from_jwk(&k.jwk).unwrap())
        .collect();
    assert_eq!(
        Jws::parse(&token).unwrap().verify(&published),
        Ok(()),
        "header kid {kid} but signed by another key: the token verifies nowhere"
    );
}

/// Finding (low): the file jti store only drops expired ids when it is opened. While the server
/// runs, every assertion use (token, introspection and revocation: only token issuance is
/// rate-limited) and every revocation appends a line and fsyncs (under a std mutex, on the async
/// worker), and nothing ever shortens the file: it grows with the process's lifetime, not with the
/// live ids, and the next start reads all of it.
#[tokio::test]
async fn the_file_jti_store_does_not_grow_with_expired_ids() {
    use authserver::oauth::jti::FileJtiStore;
    use authserver_core::oauth::JtiStore as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jti");
    let store = FileJtiStore::open(&path).unwrap();
    let soon = authserver::oauth::signer::unix_now() + 1;
    for i in 0..1_000 {
        assert!(store.insert(&format!("assertion-{i}"), soon).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    for i in 0..1_000 {
        store.insert(&format!("later-{i}"), soon).await.unwrap();
    }
    // No id is live any more (all expired), yet:
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    assert!(
        lines <= 1_000,
        "{lines} lines in the jti file with no live id: expired ids are never dropped while running"
    );
}

/// A one-thread HTTP upstream that answers each request with its own request head (lowercased),
/// so a test sees every header the proxy passed on.
fn echo_upstream() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Finding (high): `Remote-Scopes` is spoofable through every documented proxy configuration.
/// docs/oauth.md tells applications a bearer token's scopes arrive in `Remote-Scopes`
/// (`oauth.forward_scopes_header`), but docs/integrations.md's nginx block (run here as written)
/// sets only `Remote-User` / `Remote-Groups` from authserver's answer, Caddy's `copy_headers`
/// and Traefik's `authResponseHeaders` list only those two as well. So the application never
/// gets authserver's scopes, and receives whatever the client sent: a token holding `read`, or a
/// Basic user with no scopes at all, sends `Remote-Scopes: admin write` and the application
/// sees exactly that.
#[test]
fn remote_scopes_cannot_be_spoofed_through_the_documented_nginx() {
    use authserver_testkit::integrations::get as proxy_get;
    use authserver_testkit::nginx;
    use authserver_testkit::process::Server;
    let bin = authserver_testkit::or_skip!(nginx::binary("remote_scopes_cannot_be_spoofed"));
    let f = fixture();
    let port = authserver_testkit::emulator::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let config = f.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[oauth]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\nkeys_dir = \"{}\"\n",
            f.keys.display()
        ),
    )
    .unwrap();
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &f.users,
        &["--config", config.to_str().unwrap()],
        &[("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let token: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{issuer}/oauth/token"))
        .header("authorization", basic_client(BASIC_CLIENT, BASIC_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=read")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    let echo = echo_upstream();
    let (ports, dir) = nginx::prepare();
    let block = nginx::render("nginx", &server.addr, &ports, dir.path());
    let block = block.replace(
        &format!("127.0.0.1:{}", ports.upstream),
        &format!("127.0.0.1:{echo}"),
    );
    let proxy = nginx::start(&bin, &block, &ports, dir);
    let url = proxy.url("/orders");

    let bearer = format!("Bearer {token}");
    let honest = proxy_get(&url, &[("authorization", &bearer)]);
    assert_eq!(honest.status, 200, "{}", honest.body);
    let spoofed = proxy_get(
        &url,
        &[("authorization", &bearer), ("remote-scopes", "admin write")],
    );
    assert_eq!(spoofed.status, 200, "{}", spoofed.body);
    let human = basic_client(PLAIN_USER, PLAIN_PW);
    let basic = proxy_get(&url, &[("authorization", &human), ("remote-scopes", "admin")]);
    assert_eq!(basic.status, 200, "{}", basic.body);
    let spoofable =
        spoofed.body.contains("remote-scopes: admin") || basic.body.contains("remote-scopes: admin");
    let delivered = honest.body.contains("remote-scopes: read");
    assert!(
        delivered && !spoofable,
        "token scopes delivered: {delivered}; client-sent Remote-Scopes reaches the application: {spoofable}\n--- bearer (read) + Remote-Scopes: admin write:\n{}--- Basic human user + Remote-Scopes: admin:\n{}",
        spoofed.body,
        basic.body
    );
}

/// Finding (high, with the nginx test above): the gRPC ext_authz answer for a bearer token sets
/// `Remote-User` and `Remote-Groups` and nothing for the scopes: Envoy passes the client's own
/// `Remote-Scopes` to the application unchanged, and the token's real scopes never reach it.
#[cfg(feature = "ext-authz-grpc")]
#[tokio::test]
async fn grpc_ext_authz_sets_the_scopes_header_replacing_the_clients() {
    use authserver_testkit::grpc::{Code, Listener, answer, check_request};
    let f = fixture();
    let st = state(&f);
    let token = basic_token(&st).await;
    let listener = Listener::start(st).await;
    let bearer = format!("Bearer {token}");
    let request = check_request(&[("authorization", &bearer), ("remote-scopes", "admin")], None);
    let mut client = listener.client().await;
    let a = answer(client.check(request).await.unwrap().into_inner());
    listener.stop().await;
    assert_eq!((a.code, a.http_status), (Code::Ok, 200));
    assert_eq!(a.header("remote-user"), Some(BASIC_CLIENT));
    assert_eq!(
        a.header("remote-scopes"),
        Some("read"),
        "no scopes header in the OK answer ({:?}): Envoy forwards the client's `remote-scopes: admin`",
        a.headers
    );
}

/// Finding (medium; the spec's "regulation exactly like Basic" taken literally): anyone who
/// knows a `private_key_jwt` client's id locks it out. Ten assertions naming it, signed with the
/// attacker's own key (no secret involved, nothing to guess: the signature cannot be brute-forced),
/// reach `max_user_failures`, and the real client's valid assertion is answered 429 with
/// `Retry-After: 60` for the window: one anonymous request every 30 s keeps a machine client off
/// the air from a single address. The same ten requests with wrong secrets do it to any secret
/// client. Regulation by client id protects guessable secrets; here it only hands out a kill
/// switch.
#[tokio::test]
async fn forged_assertions_do_not_lock_out_a_private_key_jwt_client() {
    let f = fixture();
    let st = state(&f);
    let form = |a: &str| {
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"
        )
    };
    let attacker = f.dir.path().join("attacker.pem");
    std::fs::write(
        &attacker,
        authserver::oauth::keyset::generate_es256_pem().unwrap(),
    )
    .unwrap();
    let now = authserver::oauth::signer::unix_now();
    for i in 0..10 {
        let claims = serde_json::json!({"iss": JWT_CLIENT, "sub": JWT_CLIENT,
            "aud": format!("{ISSUER}/oauth/token"), "exp": now + 60, "jti": format!("forged-{i}")});
        let forged = sign(
            &attacker,
            &serde_json::json!({"alg": "ES256", "kid": CLIENT_KID}),
            &claims,
        );
        let a = post(&st, "/oauth/token", None, &form(&forged)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let legit = post(&st, "/oauth/token", None, &form(&assertion(&f, "legit-1"))).await;
    assert_eq!(
        legit.status,
        StatusCode::OK,
        "the real client, with a valid assertion, after ten forged ones: {} Retry-After {:?}",
        legit.body,
        legit.headers.get(header::RETRY_AFTER)
    );
}

/// The resource `name` of deploy/aws/authserver.yaml as text (its lines up to the next resource).
fn template_resource(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/aws/authserver.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = format!("\n  {name}:\n");
    let at = text.find(&start).unwrap_or_else(|| panic!("no resource {name}"));
    let rest = &text[at + start.len()..];
    let end = rest
        .lines()
        .position(|l| {
            l.len() > 2 && l.starts_with("  ") && !l.starts_with("   ") && !l.trim_start().starts_with('#')
        })
        .unwrap_or(rest.lines().count());
    rest.lines().take(end).collect::<Vec<_>>().join("\n")
}

/// Finding (high, AWS template with EnableAuthorizer=true and EnableJwtAuthorizer=true, which no
/// rule forbids): both routes are `HTTP_PROXY` integrations to the same `ProtectedBackendUrl`
/// (example `https://example.com/{proxy}`: the backend cannot even tell `/protected/...` from
/// `/api/...`), and each overwrites only its own identity headers. On `ANY /api/{proxy+}` any
/// valid access token of any client passes the JWT authorizer and the client's own
/// `x-authserver-user: alice` reaches the backend, which docs/deployment.md tells to take the
/// user from `x-authserver-user`: impersonation of any human user. The other way round, a Basic
/// user on `/protected/...` sends `x-authserver-client-id` / `x-authserver-scopes` of its choice
/// (the Lambda authorizer's bearer scopes are not mapped either).
#[test]
fn every_route_to_the_protected_backend_sets_every_identity_header() {
    for integration in ["JwtProtectedBackendIntegration", "ProtectedBackendIntegration"] {
        let block = template_resource(integration);
        assert!(
            block.contains("IntegrationUri: !Ref ProtectedBackendUrl"),
            "{block}"
        );
        for header in [
            "x-authserver-user",
            "x-authserver-client-id",
            "x-authserver-scopes",
        ] {
            assert!(
                block.contains(&format!("'overwrite:header.{header}'"))
                    || block.contains(&format!("'remove:header.{header}'")),
                "{integration} neither overwrites nor removes the client's {header}: a caller of this \
                 route chooses the {header} the shared backend sees\n{block}"
            );
        }
    }
}
