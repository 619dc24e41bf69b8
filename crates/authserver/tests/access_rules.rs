//! Access rules on `/auth/forward`, in process through `app().oneshot()`: every row of the
//! table in `http/access.rs` and docs/access-rules.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::access::{PROXY, forward, leak, with_rules};
use authserver_testkit::users::*;
use axum::http::StatusCode;
use std::sync::Arc;

const RULES: &str = r#"
[[rule]]
name = "health"
paths = ["/healthz"]
methods = ["GET"]
policy = "bypass"

[[rule]]
name = "internal"
networks = ["192.168.0.0/16"]
paths = ["/internal"]
policy = "bypass"

[[rule]]
name = "admin"
hosts = ["app.example.com"]
paths = ["/admin"]
policy = "allow"
roles = ["admin"]

[[rule]]
name = "closed"
paths = ["/closed"]
policy = "deny"

[[rule]]
name = "app"
hosts = ["app.example.com"]
policy = "allow"
"#;

/// A client that is not a trusted proxy.
const STRANGER: &str = "203.0.113.50:40000";

/// What Traefik sends, for a client at 198.51.100.7.
fn traefik<'a>(method: &'a str, uri: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut h = authserver_testkit::access::traefik(method, uri);
    h.push(("x-forwarded-for", "198.51.100.7"));
    h
}

fn with(mut h: Vec<(&'static str, &'static str)>, auth: &'static str) -> Vec<(&'static str, &'static str)> {
    h.push(("authorization", auth));
    h
}

#[tokio::test]
async fn each_policy_answers_as_documented() {
    let f = fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    let alice = leak(basic(ALICE, ALICE_PW));
    let carol = leak(basic(CAROL, CAROL_PW));
    let wrong = leak(basic(ALICE, "wrong"));

    // bypass: 200 without credentials, no identity headers, even with bad ones.
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/healthz"), wrong),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["remote-user"], "", "an empty identity on bypass");
    assert_eq!(a.headers["remote-groups"], "");
    assert_eq!(a.body["allowed"], true);
    // ... only for the method it names: POST /healthz falls to "app".
    let a = forward(&state, PROXY, "/auth/forward", &traefik("POST", "/healthz")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.contains_key("www-authenticate"));

    // allow + subject: admin in, carol (no roles) 403, nobody 401, wrong password 401.
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/admin/x"), alice),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["remote-user"], ALICE);
    let forbidden = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/admin/x"), carol),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(
        !forbidden.headers.contains_key("www-authenticate"),
        "403 never re-prompts"
    );
    assert!(!forbidden.headers.contains_key("remote-user"));
    let a = forward(&state, PROXY, "/auth/forward", &traefik("GET", "/admin/x")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/admin/x"), wrong),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // deny: 403 even for the admin, same body as the subject's refusal.
    let denied = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/closed"), alice),
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("timestamp");
        v
    };
    assert_eq!(strip(denied.body), strip(forbidden.body.clone()));
    assert_eq!(
        strip(forbidden.body),
        serde_json::json!({"allowed": false, "message": "Forbidden"})
    );

    // The default (no rule matched): deny.
    let other = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "other.example.com"),
        ("x-forwarded-uri", "/"),
    ];
    let a = forward(&state, PROXY, "/auth/forward", &with(other.to_vec(), alice)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn encodings_and_dot_segments_do_not_slip_past() {
    let f = fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    let carol = leak(basic(CAROL, CAROL_PW));
    for uri in [
        "/admin",
        "/%61dmin",
        "/x/../admin/",
        "//admin//y",
        "/healthz/../admin",
    ] {
        let a = forward(&state, PROXY, "/auth/forward", &with(traefik("GET", uri), carol)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri} reaches the admin rule");
    }
    for uri in [
        "/admin%2Fx",
        "/%2e%2e/admin",
        "/..",
        "/a%00",
        "/%2561dmin",
        "/public//../admin",
    ] {
        let a = forward(&state, PROXY, "/auth/forward", &traefik("GET", uri)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri} is refused, not guessed");
    }
}

#[tokio::test]
async fn only_a_trusted_proxy_says_what_the_request_was() {
    let f = fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    // A stranger naming the bypass path is not believed: the first rule that needs the path
    // cannot tell, and denies.
    let a = forward(&state, STRANGER, "/auth/forward", &traefik("GET", "/healthz")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // The network bypass uses the client behind the trusted proxy, not the proxy.
    let internal = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/internal/x"),
    ];
    let mut from_lan = internal.to_vec();
    from_lan.push(("x-forwarded-for", "192.168.1.20"));
    assert_eq!(
        forward(&state, PROXY, "/auth/forward", &from_lan).await.status,
        StatusCode::OK
    );
    let mut from_net = internal.to_vec();
    from_net.push(("x-forwarded-for", "198.51.100.7"));
    assert_eq!(
        forward(&state, PROXY, "/auth/forward", &from_net).await.status,
        StatusCode::UNAUTHORIZED
    );
    // nginx sets X-Original-URL; a client-added X-Forwarded-Uri contradicting it is refused.
    let smuggled = [
        ("x-original-url", "https://app.example.com/admin"),
        ("x-original-method", "GET"),
        ("x-forwarded-uri", "/healthz"),
    ];
    assert_eq!(
        forward(&state, PROXY, "/auth/forward", &smuggled).await.status,
        StatusCode::FORBIDDEN
    );
    // Envoy's HTTP ext_authz appends the path; Host is the original's.
    let envoy = [("host", "app.example.com")];
    assert_eq!(
        forward(&state, PROXY, "/auth/forward/healthz", &envoy)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        forward(&state, PROXY, "/auth/forward/admin", &envoy).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn without_rules_and_on_validate_nothing_changes() {
    let f = fixture();
    let plain = built(&f.users).state;
    let a = forward(&plain, STRANGER, "/auth/forward", &traefik("GET", "/closed")).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "no rules: authentication only"
    );
    let alice = leak(basic(ALICE, ALICE_PW));
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    let req = axum::http::Request::post("/auth/validate")
        .header("authorization", alice)
        .header("x-forwarded-uri", "/closed")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(authserver::http::app(state), req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "/auth/validate applies no rules");
}

#[tokio::test]
async fn bypass_and_deny_never_touch_credentials() {
    let f = fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    let wrong = leak(basic(ALICE, "wrong"));
    for _ in 0..50 {
        for path in ["/healthz", "/closed"] {
            forward(&state, PROXY, "/auth/forward", &with(traefik("GET", path), wrong)).await;
        }
    }
    assert_eq!(state.gate.auth.cache().len(), 0);
    // Regulation saw no failure: the right password still works from the same client.
    let alice = leak(basic(ALICE, ALICE_PW));
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/admin"), alice),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let counts = authserver::access::figures().snapshot();
    let of = |name: &str| counts.iter().find(|c| c.0 == name).map(|c| (c.1, c.2)).unwrap();
    assert!(of("health").0 >= 50 && of("closed").1 >= 50, "{counts:?}");
}

/// The rules file reloads; a broken edit keeps the last good rules, says so on the admin
/// `/ready` and counts a reload failure.
#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_rules() {
    let f = fixture();
    let rules = f.dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let mut s = settings(&f.users);
    s.rules.file = rules.to_string_lossy().into_owned();
    s.server.trusted_proxies = "10.0.0.0/8".parse().unwrap();
    let built = authserver::wiring::build(s).unwrap();
    let state = built.state.clone();
    let ready = || async {
        let req = axum::http::Request::get("/ready")
            .header("host", "127.0.0.1")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = tower::ServiceExt::oneshot(authserver::http::admin_app(state.clone()), req)
            .await
            .unwrap();
        let bytes = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["rules"].clone()
    };
    assert_eq!(ready().await["rules"], 5);
    let failures = authserver::access::figures()
        .reload_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    std::fs::write(&rules, "[[rule]]\nname = \"x\"\npolicy = \"sometimes\"\n").unwrap();
    authserver_testkit::wait::eventually(
        "the broken edit is reported",
        std::time::Duration::from_secs(10),
        || state.rules.status().last_error.is_some(),
    )
    .await;
    let detail = ready().await;
    assert_eq!(detail["rules"], 5, "{detail}");
    assert!(
        detail["lastError"]
            .as_str()
            .unwrap()
            .contains("rules file refused"),
        "{detail}"
    );
    assert!(
        authserver::access::figures()
            .reload_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > failures
    );
    let closed = forward(&state, PROXY, "/auth/forward", &traefik("GET", "/closed")).await;
    assert_eq!(
        closed.status,
        StatusCode::FORBIDDEN,
        "the last good rules still decide"
    );
    std::fs::write(&rules, "default = \"authenticated\"\n").unwrap();
    authserver_testkit::wait::eventually("the fix is loaded", std::time::Duration::from_secs(10), || {
        state.rules.status().rules == 0
    })
    .await;
    assert_eq!(ready().await["lastError"], serde_json::Value::Null);
    let alice = leak(basic(ALICE, ALICE_PW));
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/closed"), alice),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
}

/// Each rules decision is audited with the rule's name, beside the credential check when one ran.
#[tokio::test]
async fn decisions_are_audited_with_the_rule() {
    use authserver_core::AuditEvent;
    let f = fixture();
    let recorder = Arc::new(authserver_testkit::fakes::Recorder::default());
    let state = Arc::into_inner(with_rules(built(&f.users).state, RULES, "10.0.0.0/8")).unwrap();
    let state = Arc::new(authserver::http::AppState {
        audit: recorder.clone(),
        ..state
    });
    let carol = leak(basic(CAROL, CAROL_PW));
    forward(&state, PROXY, "/auth/forward", &traefik("GET", "/healthz")).await;
    forward(
        &state,
        PROXY,
        "/auth/forward",
        &with(traefik("GET", "/admin"), carol),
    )
    .await;
    let decisions: Vec<(String, &str, Option<String>)> = recorder
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AuditEvent::AccessDecision {
                rule,
                outcome,
                source,
                ..
            } => Some((rule, outcome, source)),
            _ => None,
        })
        .collect();
    let client = Some("198.51.100.7".to_owned());
    assert_eq!(
        decisions,
        vec![
            ("health".into(), "allowed", client.clone()),
            ("admin".into(), "denied", client)
        ]
    );
    let attempts: Vec<Option<String>> = recorder
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AuditEvent::AuthAttempt {
                outcome: "allowed",
                rule,
                ..
            } => Some(rule),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        vec![Some("admin".to_owned())],
        "carol authenticated (under the admin rule); the bypass read no credentials"
    );
}
