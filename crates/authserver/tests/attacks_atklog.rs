//! Attack (wt-atklog) on the OAuth audit events (`oauth_token`, `oauth_introspect`,
//! `oauth_revoke`): no field of any event may carry a secret, an assertion, a token or a plain
//! user's name, whatever field of the request the caller put it in; a presented id is shown
//! only when it names a registered OAuth client (else only its keyed `user_hash`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::wiring::build;
use authserver_testkit::oauth::*;
use authserver_testkit::oauth_http::{post_form, recorded};
use axum::http::StatusCode;

const PEER: &str = "[2001:db8::7]:4242";

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn secrets_in_any_request_field_never_reach_an_oauth_event() {
    let f = fixture();
    let (state, recorder) = recorded(build(settings(&f)).unwrap().state);
    let grant = "grant_type=client_credentials";
    let basic = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let issued = post_form(&state, PEER, "/oauth/token", Some(&basic), grant).await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let token = issued.body["access_token"].as_str().unwrap().to_owned();
    let jwt = assertion(&f, "atk-jti-1");
    let hostile: Vec<(Option<String>, String, &str)> = vec![
        // The secret in the id field (post and basic), id and secret swapped.
        (
            None,
            format!("{grant}&client_id={}&client_secret=x-Secret-1", enc(BASIC_SECRET)),
            "/oauth/token",
        ),
        (
            Some(basic_client(BASIC_SECRET, BASIC_CLIENT)),
            grant.to_owned(),
            "/oauth/token",
        ),
        (
            Some(basic_client(POST_SECRET, "whatever-Secret-9")),
            grant.to_owned(),
            "/oauth/token",
        ),
        // A plain user's name and password, by both methods and as an assertion's iss/sub.
        (
            Some(basic_client(PLAIN_USER, PLAIN_PW)),
            grant.to_owned(),
            "/oauth/token",
        ),
        (
            Some(basic_client(PLAIN_USER, "wrong-Password-1")),
            grant.to_owned(),
            "/oauth/token",
        ),
        (
            None,
            format!("{grant}&client_id={PLAIN_USER}&client_secret={}", enc(PLAIN_PW)),
            "/oauth/token",
        ),
        // A token in token_type_hint, a JWT in scope, a password as resource, a token as client_id.
        (
            Some(basic.clone()),
            format!("token=x&token_type_hint={}", enc(&token)),
            "/oauth/introspect",
        ),
        (
            Some(basic.clone()),
            format!("token=x&token_type_hint={}", enc(&token)),
            "/oauth/revoke",
        ),
        (
            Some(basic.clone()),
            format!("{grant}&scope={}", enc(&jwt)),
            "/oauth/token",
        ),
        (
            Some(basic.clone()),
            format!("{grant}&scope=read%20{}", enc(PLAIN_PW)),
            "/oauth/token",
        ),
        (
            Some(basic.clone()),
            format!("{grant}&resource={}", enc(PLAIN_PW)),
            "/oauth/token",
        ),
        (
            Some(basic.clone()),
            format!("{grant}&client_id={}", enc(&token)),
            "/oauth/token",
        ),
        (
            Some(basic.clone()),
            format!("{grant}&client_id={}", enc(PLAIN_PW)),
            "/oauth/token",
        ),
        (
            None,
            format!(
                "{grant}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}&client_id={}",
                enc(&jwt),
                enc(PLAIN_PW)
            ),
            "/oauth/token",
        ),
        (
            Some(basic.clone()),
            format!("token={}", enc(&token)),
            "/oauth/introspect",
        ),
        (
            Some(basic.clone()),
            format!("token={}", enc(&jwt)),
            "/oauth/revoke",
        ),
        (Some(format!("Bearer {token}")), grant.to_owned(), "/oauth/token"),
        (
            Some(format!("Basic {}", enc(PLAIN_PW))),
            grant.to_owned(),
            "/oauth/token",
        ),
    ];
    for (auth, form, path) in &hostile {
        let _ = post_form(&state, PEER, path, auth.as_deref(), form).await;
    }
    let events = recorder.events();
    assert!(events.len() > hostile.len(), "{}", events.len());
    let text: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let secrets = [
        BASIC_SECRET,
        POST_SECRET,
        PLAIN_PW,
        PLAIN_USER,
        &token,
        &jwt,
        &token[..40],
        &jwt[..40],
    ];
    for line in &text {
        for s in secrets {
            assert!(!line.contains(s), "{s:?} in {line}");
        }
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(id) = v.pointer("/client_id").and_then(|c| c.as_str()) {
            assert!([BASIC_CLIENT, POST_CLIENT, JWT_CLIENT].contains(&id), "{line}");
        }
    }
}

fn oauth_args(jwks: &std::path::Path) -> authserver::cli::users_oauth::OAuthArgs {
    authserver::cli::users_oauth::OAuthArgs {
        file: "users.json".into(),
        username: Some("svc".into()),
        scopes: vec!["read".into()],
        audiences: vec![],
        default_scopes: vec![],
        method: authserver_core::oauth::AuthMethod::PrivateKeyJwt,
        jwks: Some(jwks.to_owned()),
        clear: false,
    }
}

/// Finding 1 (low): `users oauth --jwks` promises to refuse private key material ("a JWK set of
/// a client holds its *public* keys; a pasted private key would be kept in the users store"),
/// but it only looks for `d`, `p`, `q`, `dp`, `dq`, `qi`, `k` as top-level members of each
/// element of `keys`. Next to one usable public key (all `validate` needs), these are accepted
/// and written to the users file verbatim:
/// - a PEM private key pasted as an element of `keys` (a string, skipped as "not a JWK");
/// - an RSA key's `oth` member (RFC 7518 §6.3.2.7, private: the other primes' CRT values),
///   which the list's own comment claims to cover (§6.3.2);
/// - a private JWK nested in any member of a key (e.g. `"private": {"kty":"EC","d":...}`).
///
/// Repro: `authserver users oauth users.json svc --scopes read --method private_key_jwt
/// --jwks jwks.json` with `{"keys":[<public EC JWK>, "-----BEGIN PRIVATE KEY-----..."]}`:
/// "is an OAuth client", and the PEM is in users.json.
#[test]
fn private_key_material_anywhere_in_the_jwks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = authserver::oauth::keyset::generate_es256_pem().unwrap();
    let pem_path = dir.path().join("k.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let (_, key) = authserver::oauth::keyset::read_key(&pem_path).unwrap();
    let public = authserver::oauth::keyset::public_jwk("k1", &key).unwrap();
    let pem_text = String::from_utf8(pem).unwrap();
    let mut nested = public.clone();
    nested["kid"] = "k2".into();
    let mut private = public.clone();
    private["d"] = "c2VjcmV0LXNjYWxhcg".into();
    nested["private"] = private;
    let cases = [
        ("pem string", serde_json::json!({"keys": [public, pem_text]})),
        (
            "oth",
            serde_json::json!({"keys": [public, {"kty": "RSA", "kid": "r1", "n": "AQAB", "e": "AQAB",
                "oth": [{"r": "AQAB", "d": "c2VjcmV0", "t": "AQAB"}]}]}),
        ),
        (
            "nested private jwk",
            serde_json::json!({"keys": [public, nested]}),
        ),
    ];
    let mut accepted = Vec::new();
    for (name, jwks) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&jwks).unwrap()).unwrap();
        if oauth_args(&path).client().is_ok() {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "private key material accepted into the users store: {accepted:?}"
    );
}

/// Finding 2 (low, operator mistake): `users oauth --method private_key_jwt` (and the store's
/// `OAuthClient::validate`) promise to refuse a JWK set with "no usable RS256 / ES256 signing
/// key", but `VerifyingKey::from_jwk` calls a key usable on its shape alone: an EC "P-256"
/// key whose point is not on the curve, an RSA key over 8192 bits or with `e` = 1 all pass,
/// and ring refuses every signature against them. The CLI says "is an OAuth client"; every
/// assertion of that client then fails `bad_signature`, counted against its source.
///
/// Repro: `--jwks` with `{"keys":[{"kty":"EC","crv":"P-256","x":"AQEB...(32 bytes)","y":"AQEB..."}]}`
/// is accepted.
#[test]
fn a_jwks_whose_only_keys_cannot_verify_anything_is_refused() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let dir = tempfile::tempdir().unwrap();
    let mut big_n = vec![0xc3u8; 1100];
    big_n[1099] |= 1;
    let cases = [
        (
            "EC point off the curve",
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e1",
                "x": b64(&[1u8; 32]), "y": b64(&[1u8; 32])}]}),
        ),
        (
            "RSA over 8192 bits",
            serde_json::json!({"keys": [{"kty": "RSA", "kid": "r1", "n": b64(&big_n), "e": "AQAB"}]}),
        ),
        (
            "RSA e = 1",
            serde_json::json!({"keys": [{"kty": "RSA", "kid": "r2", "n": b64(&[0xc3u8; 256]), "e": "AQ"}]}),
        ),
    ];
    let mut accepted = Vec::new();
    for (name, jwks) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&jwks).unwrap()).unwrap();
        if oauth_args(&path).client().is_ok() {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "unusable keys accepted as the client's only keys: {accepted:?}"
    );
}

/// Concurrent token requests (issued, wrong secret, unknown id, a plain user, a secret in
/// `client_id`), a quarter of them abandoned by their client mid-request, against the binary:
/// the audit file's hash chain verifies (`authserver audit verify`), and neither the audit
/// file nor the output (trace level) holds a secret, a token or a plain user's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_token_requests_keep_the_chain_and_leak_nothing() {
    use authserver_testkit::cli::{cli, run_cli};
    use authserver_testkit::process::Server;
    let f = fixture();
    let port = authserver_testkit::emulator::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let config = f.dir.path().join("config.toml");
    let audit = f.dir.path().join("audit.log");
    std::fs::write(
        &config,
        format!(
            "[oauth]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\nkeys_dir = \"{}\"\n[log]\nlevel = \"trace\"\n[audit]\nfile = \"{}\"\nstdout = true\n",
            f.keys.display(),
            audit.display()
        ),
    )
    .unwrap();
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &f.users,
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let url = server.url("/oauth/token");
    let client = reqwest::Client::new();
    let grant = "grant_type=client_credentials";
    let mut tasks = Vec::new();
    for i in 0..160u32 {
        let (auth, form) = match i % 5 {
            0 => (Some(basic_client(BASIC_CLIENT, BASIC_SECRET)), grant.to_owned()),
            1 => (
                Some(basic_client(BASIC_CLIENT, "wrong-Secret-7")),
                grant.to_owned(),
            ),
            2 => (
                Some(basic_client("nobody-here", "wrong-Secret-7")),
                grant.to_owned(),
            ),
            3 => (Some(basic_client(PLAIN_USER, PLAIN_PW)), grant.to_owned()),
            _ => (
                None,
                format!("{grant}&client_id={}&client_secret=x", enc(POST_SECRET)),
            ),
        };
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let send = req.send();
            if i % 4 == 3 {
                // Hang up mid-request.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(u64::from(i % 7)), send).await;
                None
            } else {
                let r = send.await.unwrap();
                Some(r.text().await.unwrap())
            }
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        if let Some(body) = t.await.unwrap()
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(tok) = v["access_token"].as_str()
        {
            tokens.push(tok.to_owned());
        }
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, lines) = server.terminate();
    assert!(!tokens.is_empty());
    let text = std::fs::read_to_string(&audit).unwrap();
    let n = text.lines().filter(|l| l.contains("oauth_token")).count();
    assert!(n >= 120, "{n} oauth_token events of 160 requests");
    let o = run_cli(cli().args(["audit", "verify", audit.to_str().unwrap()]), None);
    assert!(
        o.status.success(),
        "chain broken: {} {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let output = lines.join("\n");
    for secret in [BASIC_SECRET, POST_SECRET, PLAIN_PW, PLAIN_USER, "$argon2id"]
        .into_iter()
        .chain(tokens.iter().map(|t| &t[t.len() - 40..]))
    {
        assert!(!text.contains(secret), "{secret:?} in the audit file");
        assert!(!output.contains(secret), "{secret:?} in the output");
    }
    for line in lines.iter().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

/// Finding 4 (low, operator mistake): `users oauth --audiences URL[,URL]` (docs/oauth.md; RFC
/// 8707: a `resource` is an absolute URI without a fragment) takes any non-empty text of at
/// most 256 characters without control characters: `not a url`, a lone space, `*`,
/// `javascript:alert(1)` are written to the users file, and the token endpoint then issues
/// tokens with that `aud` to a client sending `resource=*`.
///
/// Repro: `authserver users oauth users.json svc --scopes read --audiences '*'`: "is an OAuth
/// client", `"audiences": ["*"]` in the file.
#[test]
fn audiences_that_are_not_absolute_uris_are_refused() {
    let mut accepted = Vec::new();
    for aud in [
        "not a url",
        " ",
        "*",
        "relative/path",
        "https://api.example.test/#frag",
    ] {
        let args = authserver::cli::users_oauth::OAuthArgs {
            file: "users.json".into(),
            username: Some("svc".into()),
            scopes: vec!["read".into()],
            audiences: vec![aud.into()],
            default_scopes: vec![],
            method: authserver_core::oauth::AuthMethod::ClientSecretBasic,
            jwks: None,
            clear: false,
        };
        if args.client().is_ok() {
            accepted.push(aud);
        }
    }
    assert!(accepted.is_empty(), "accepted as audiences: {accepted:?}");
}
