//! Envoy ext_authz over gRPC (`envoy.service.auth.v3.Authorization/Check`): a tonic client
//! built from Envoy's published protos against the server's own accept loop on a real socket.
#![cfg(feature = "ext-authz-grpc")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::AppState;
use authserver_testkit::grpc::{
    Answer, Code, Listener, answer, check_request, client_at, plaintext_answers, process_addr, tls_client_at,
};
use authserver_testkit::users::*;
use envoy_types::ext_authz::v3::pb::{CheckRequest, HeaderAppendAction};
use std::sync::Arc;

fn state(users: &std::path::Path, trusted: &str) -> Arc<AppState> {
    let mut s = settings(users);
    s.regulation.policy.max_source_failures = 5;
    s.regulation.policy.max_user_failures = 100;
    s.regulation.policy.max_source_usernames = 100;
    s.server.trusted_proxies = trusted.parse().expect("networks");
    authserver::wiring::build(s).unwrap().state
}

async fn check(listener: &Listener, request: CheckRequest) -> Result<Answer, tonic::Status> {
    let mut client = listener.client().await;
    client.check(request).await.map(|r| answer(r.into_inner()))
}

async fn with_auth(listener: &Listener, auth: &str, source: Option<&str>) -> Answer {
    check(listener, check_request(&[("authorization", auth)], source))
        .await
        .unwrap()
}

#[tokio::test]
async fn allowed_carries_the_identity_headers_replacing_the_clients() {
    let f = fixture();
    let listener = Listener::start(state(&f.users, "")).await;
    let auth = basic(ALICE, ALICE_PW);
    let request = check_request(&[("authorization", &auth), ("remote-user", "mallory")], None);
    let a = check(&listener, request).await.unwrap();
    assert_eq!((a.code, a.http_status), (Code::Ok, 200));
    assert_eq!(a.header("remote-user"), Some(ALICE));
    assert_eq!(a.header("remote-groups"), Some("admin,reader"));
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    assert!(a.headers.iter().all(|h| h.2 == overwrite), "{:?}", a.headers);
    listener.stop().await;
}

#[tokio::test]
async fn wrong_password_is_401_with_the_challenge_and_the_http_body() {
    let f = fixture();
    let listener = Listener::start(state(&f.users, "")).await;
    let a = with_auth(&listener, &basic(ALICE, "wrong"), None).await;
    assert_eq!((a.code, a.http_status), (Code::Unauthenticated, 401));
    assert_eq!(
        a.header("www-authenticate"),
        Some("Basic realm=\"authserver\", charset=\"UTF-8\"")
    );
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["message"], "Invalid credentials");
    // No Authorization at all: the same challenge, as /auth/forward.
    let a = check(&listener, check_request(&[], None)).await.unwrap();
    assert_eq!((a.code, a.http_status), (Code::Unauthenticated, 401));
    listener.stop().await;
}

#[tokio::test]
async fn malformed_and_missing_requests_are_invalid_argument() {
    let f = fixture();
    let listener = Listener::start(state(&f.users, "")).await;
    let bad_name = check_request(&[("bad name", "x")], None);
    assert_eq!(
        check(&listener, bad_name).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let bad_value = check_request(&[("authorization", "Basic a\nb")], None);
    assert_eq!(
        check(&listener, bad_value).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let empty = CheckRequest { attributes: None };
    assert_eq!(
        check(&listener, empty).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // A malformed Authorization is a credentials problem (401), as on /auth/forward.
    let a = with_auth(&listener, "Basic !!!", None).await;
    assert_eq!((a.code, a.http_status), (Code::Unauthenticated, 401));
    listener.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted_and_the_listener_stays_up() {
    let f = fixture();
    let listener = Listener::start(state(&f.users, "")).await;
    let huge = "x".repeat(70 * 1024);
    let over_message = check_request(&[("x-big", &huge)], None);
    assert_eq!(
        check(&listener, over_message).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    // Under the message limit, over server.max_header_bytes (16 KiB): refused as HTTP would.
    let big = "x".repeat(20 * 1024);
    let over_headers = check_request(&[("x-big", &big)], None);
    assert_eq!(
        check(&listener, over_headers).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    let a = with_auth(&listener, &basic(ALICE, ALICE_PW), None).await;
    assert_eq!(a.code, Code::Ok);
    listener.stop().await;
}

/// Fails five usernames from `source` (as Envoy reports it), then tries alice's right password
/// from `source` and from a neighbour.
async fn ban_then_try(listener: &Listener, source: &str, neighbour: &str) -> (Code, Code) {
    for i in 0..10 {
        let a = with_auth(listener, &basic(&format!("u{i}"), "bad"), Some(source)).await;
        if a.http_status == 429 {
            break;
        }
    }
    let good = basic(ALICE, ALICE_PW);
    let banned = with_auth(listener, &good, Some(source)).await;
    let other = with_auth(listener, &good, Some(neighbour)).await;
    (banned.code, other.code)
}

#[tokio::test]
async fn a_trusted_envoys_source_address_is_the_one_regulated() {
    let f = fixture();
    let listener = Listener::start(state(&f.users, "127.0.0.1")).await;
    let (banned, other) = ban_then_try(&listener, "198.51.100.7", "198.51.100.8").await;
    assert_eq!(
        banned,
        Code::ResourceExhausted,
        "the client Envoy named is banned"
    );
    assert_eq!(other, Code::Ok, "its neighbour behind the same Envoy is served");
    let a = with_auth(&listener, &basic(ALICE, ALICE_PW), Some("198.51.100.7")).await;
    assert_eq!(a.http_status, 429);
    assert!(a.header("retry-after").is_some(), "{:?}", a.headers);
    listener.stop().await;
}

#[tokio::test]
async fn an_untrusted_peers_source_address_is_ignored() {
    let f = fixture();
    let listener = Listener::start(state(&f.users, "10.0.0.0/8")).await;
    let (banned, other) = ban_then_try(&listener, "198.51.100.7", "198.51.100.8").await;
    assert_eq!(banned, Code::ResourceExhausted);
    assert_eq!(
        other,
        Code::ResourceExhausted,
        "the peer (127.0.0.1) was banned, whatever it claimed"
    );
    listener.stop().await;
}

/// Through the real binary (its own stdout, the access lines included): the secret, the header
/// and the hash never appear; the refusals do, and the server stops cleanly on SIGTERM with the
/// gRPC listener up.
#[tokio::test]
async fn no_secret_reaches_the_logs_and_shutdown_is_clean() {
    let f = fixture();
    let env = [("AUTHSERVER_SERVER_GRPC_LISTEN", "127.0.0.1:0")];
    let server = authserver_testkit::process::Server::start(&f.users, &[], &env);
    let mut client = client_at(process_addr(&server)).await;
    let mut call = async |request| client.check(request).await.map(|r| answer(r.into_inner()));
    let good = basic(ALICE, ALICE_PW);
    let ok = call(check_request(&[("authorization", &good)], None))
        .await
        .unwrap();
    assert_eq!(ok.code, Code::Ok);
    let wrong = basic(ALICE, "Wrong-Secret-Pass-9");
    call(check_request(&[("authorization", &wrong)], None))
        .await
        .unwrap();
    let bad = check_request(&[("authorization", &good), ("bad name", "x")], None);
    call(bad).await.unwrap_err();
    let huge = check_request(
        &[("authorization", &good), ("x-big", &"x".repeat(70 * 1024))],
        None,
    );
    call(huge).await.unwrap_err();
    let (clean, lines) = server.terminate();
    assert!(clean, "{lines:?}");
    let text = lines.join("\n");
    assert!(
        text.contains("ext_authz request refused"),
        "the refusals were logged: {text}"
    );
    assert!(
        text.contains("\"route\":\"grpc:Check\""),
        "access lines with the route label: {text}"
    );
    for secret in [ALICE_PW, "Wrong-Secret-Pass-9", &good, &wrong, ALICE] {
        assert!(!text.contains(secret), "{secret} in logs");
    }
    for hash in &f.hashes {
        assert!(!text.contains(hash.as_str()), "a hash in logs");
    }
}

/// Past `server.request_timeout_ms` the answer is the HTTP surface's 503, as a denial Envoy
/// passes on (not a transport error it would turn into its own 403). A regulation backend that
/// never answers holds the attempt past a 50 ms deadline (its calls give up only later).
#[tokio::test]
async fn past_the_request_timeout_the_answer_is_503_unavailable() {
    use authserver_testkit::fakes::{SilentBackend, with_regulation_backend};
    let f = fixture();
    let mut s = settings(&f.users);
    s.server.request_timeout_ms = 50;
    let state = with_regulation_backend(
        authserver::wiring::build(s).unwrap().state,
        Arc::new(SilentBackend),
    );
    let listener = Listener::start(state).await;
    let a = with_auth(&listener, &basic(ALICE, ALICE_PW), None).await;
    assert_eq!((a.code, a.http_status), (Code::Unavailable, 503));
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["allowed"], false);
    listener.stop().await;
}

/// With `[tls]` the gRPC listener serves the same certificates (ALPN h2) and no plaintext.
#[tokio::test]
async fn tls_serves_the_same_certificates_and_no_plaintext() {
    let f = fixture();
    let (cert, key) = authserver_testkit::tls::self_signed(&["localhost"]);
    let (cert_path, key_path) = (f.dir.path().join("cert.pem"), f.dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let env = [
        ("AUTHSERVER_SERVER_GRPC_LISTEN", "127.0.0.1:0"),
        ("AUTHSERVER_TLS_CERT_FILE", cert_path.to_str().unwrap()),
        ("AUTHSERVER_TLS_KEY_FILE", key_path.to_str().unwrap()),
    ];
    let server = authserver_testkit::process::Server::start(&f.users, &[], &env);
    let addr = process_addr(&server);
    let mut client = tls_client_at(addr, &cert).await;
    let request = check_request(&[("authorization", &basic(ALICE, ALICE_PW))], None);
    let a = answer(client.check(request).await.unwrap().into_inner());
    assert_eq!((a.code, a.header("remote-user")), (Code::Ok, Some(ALICE)));
    assert!(
        !plaintext_answers(addr).await,
        "no plaintext gRPC on the TLS port"
    );
    let (clean, lines) = server.terminate();
    assert!(clean, "{lines:?}");
}

/// One audit event per Check, as for `/auth/forward`, with the client Envoy named (trusted peer)
/// as its source and the user as a keyed hash only.
#[tokio::test]
async fn each_check_is_audited_with_the_regulated_source() {
    use authserver_core::AuditEvent;
    let f = fixture();
    let recorder = Arc::new(authserver_testkit::fakes::Recorder::default());
    let state = Arc::into_inner(state(&f.users, "127.0.0.1")).unwrap();
    let state = Arc::new(AppState {
        audit: recorder.clone(),
        ..state
    });
    let listener = Listener::start(state).await;
    with_auth(&listener, &basic(ALICE, ALICE_PW), Some("198.51.100.9")).await;
    with_auth(&listener, &basic(ALICE, "bad"), Some("[2001:db8::7]:443")).await;
    listener.stop().await;
    let attempts: Vec<(String, Option<String>, Option<String>)> = recorder
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AuditEvent::AuthAttempt {
                outcome,
                source,
                user_hash,
                ..
            } => Some((outcome.to_string(), source, user_hash)),
            _ => None,
        })
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        (attempts[0].0.as_str(), attempts[0].1.as_deref()),
        ("allowed", Some("198.51.100.9"))
    );
    assert_eq!(
        (attempts[1].0.as_str(), attempts[1].1.as_deref()),
        ("denied", Some("2001:db8::7"))
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.2.as_deref().is_some_and(|h| !h.contains(ALICE)))
    );
}
