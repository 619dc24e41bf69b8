//! OAuth requests in the audit trail and the validation metric's honesty (issue 14, the items
//! the last closing note left open), in process through `app().oneshot()`:
//! - every `/oauth/token`, `/oauth/introspect` and `/oauth/revoke` request is one audit event
//!   (`oauth_token`, `oauth_introspect`, `oauth_revoke`) with the client, method, outcome and
//!   reason, what was granted and the issued token's `jti`, and never a secret, assertion or token;
//! - a presented id that names no OAuth client is never shown (its keyed hash only);
//! - `authserver_oauth_token_validation_total` counts a token its client check refuses under
//!   that check (`client`), not as `valid`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::wiring::build;
use authserver_core::{AuditEvent, OAuthRequest};
use authserver_testkit::oauth::*;
use authserver_testkit::oauth_http::{get_with, metrics, post_form, recorded, series};
use axum::http::StatusCode;

const PEER: &str = "192.0.2.7:4242";

/// The OAuth figures are process-wide: the tests of this file that read them take turns.
static FIGURES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn oauth_events(events: &[AuditEvent]) -> Vec<(&'static str, OAuthRequest)> {
    events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::OauthToken(r) => Some(("oauth_token", r.clone())),
            AuditEvent::OauthIntrospect(r) => Some(("oauth_introspect", r.clone())),
            AuditEvent::OauthRevoke(r) => Some(("oauth_revoke", r.clone())),
            _ => None,
        })
        .collect()
}

fn jti_of(token: &str) -> String {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_token_introspection_and_revocation_request_is_one_audit_event() {
    let _turn = FIGURES.lock().await;
    let f = fixture();
    let (state, recorder) = recorded(build(settings(&f)).unwrap().state);
    let basic = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let grant = "grant_type=client_credentials";

    let issued = post_form(
        &state,
        PEER,
        "/oauth/token",
        Some(&basic),
        &format!("{grant}&scope=read%20write"),
    )
    .await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let token = issued.body["access_token"].as_str().unwrap().to_owned();
    let wrong = basic_client(BASIC_CLIENT, "not-the-Secret-1");
    let refused = post_form(&state, PEER, "/oauth/token", Some(&wrong), grant).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let stranger = basic_client("no-such-client", "whatever-Secret-2");
    post_form(&state, PEER, "/oauth/token", Some(&stranger), grant).await;
    let plain = basic_client(PLAIN_USER, PLAIN_PW);
    let not_client = post_form(&state, PEER, "/oauth/token", Some(&plain), grant).await;
    assert_eq!(not_client.body["error"], "unauthorized_client");
    let post = format!("{grant}&client_id={POST_CLIENT}&client_secret={POST_SECRET}&scope=write");
    let bad_scope = post_form(&state, PEER, "/oauth/token", None, &post).await;
    assert_eq!(bad_scope.body["error"], "invalid_scope");
    let assertion = assertion(&f, "audit-jti-1");
    let jwt_form = format!(
        "{grant}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let by_key = post_form(&state, PEER, "/oauth/token", None, &jwt_form).await;
    assert_eq!(by_key.status, StatusCode::OK, "{:?}", by_key.body);
    let introspected = post_form(
        &state,
        PEER,
        "/oauth/introspect",
        Some(&basic),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(introspected.body["active"], true);
    let revoked = post_form(
        &state,
        PEER,
        "/oauth/revoke",
        Some(&basic),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let ignored = post_form(&state, PEER, "/oauth/revoke", Some(&basic), "token=not.a.token").await;
    assert_eq!(ignored.status, StatusCode::OK);

    let all = recorder.events();
    let events = oauth_events(&all);
    let summary: Vec<_> = events
        .iter()
        .map(|(name, r)| (*name, r.outcome, r.reason, r.client_id.as_deref(), r.auth_method))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "oauth_token",
                "issued",
                None,
                Some(BASIC_CLIENT),
                Some("client_secret_basic")
            ),
            (
                "oauth_token",
                "refused",
                Some("wrong_password"),
                Some(BASIC_CLIENT),
                Some("client_secret_basic")
            ),
            (
                "oauth_token",
                "refused",
                Some("unknown_user"),
                None,
                Some("client_secret_basic")
            ),
            (
                "oauth_token",
                "refused",
                Some("unauthorized_client"),
                None,
                Some("client_secret_basic")
            ),
            (
                "oauth_token",
                "refused",
                Some("invalid_scope"),
                Some(POST_CLIENT),
                Some("client_secret_post")
            ),
            (
                "oauth_token",
                "issued",
                None,
                Some(JWT_CLIENT),
                Some("private_key_jwt")
            ),
            (
                "oauth_introspect",
                "answered",
                None,
                Some(BASIC_CLIENT),
                Some("client_secret_basic")
            ),
            (
                "oauth_revoke",
                "revoked",
                None,
                Some(BASIC_CLIENT),
                Some("client_secret_basic")
            ),
            (
                "oauth_revoke",
                "ignored",
                None,
                Some(BASIC_CLIENT),
                Some("client_secret_basic")
            ),
        ]
    );
    let first = &events[0].1;
    assert_eq!(first.scope.as_deref(), Some("read write"));
    assert_eq!(first.audience.as_deref(), Some(AUDIENCE));
    assert_eq!(
        first.jti.as_deref(),
        Some(jti_of(&token).as_str()),
        "the issued token's jti"
    );
    assert_eq!(first.source.as_deref(), Some("192.0.2.7"));
    assert_eq!(events[6].1.active, Some(true));
    assert_eq!(events[7].1.jti, first.jti, "the revoked token's jti");
    let stranger_hash = state.gate.user_hasher.hash("no-such-client");
    assert_eq!(events[2].1.user_hash.as_deref(), Some(stranger_hash.as_str()));
    // The event names as the audit consumers see them, and nothing secret in any event.
    let text: Vec<String> = all.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let text = text.join("\n");
    for name in [
        "\"event\":\"oauth_token\"",
        "\"event\":\"oauth_introspect\"",
        "\"event\":\"oauth_revoke\"",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    let by_key_token = by_key.body["access_token"].as_str().unwrap();
    for secret in [
        BASIC_SECRET,
        POST_SECRET,
        PLAIN_PW,
        PLAIN_USER,
        "no-such-client",
        "not-the-Secret-1",
    ] {
        assert!(!text.contains(secret), "{secret} in the audit events");
    }
    for secret in [token.as_str(), by_key_token, assertion.as_str(), basic.as_str()] {
        assert!(
            !text.contains(&secret[..40]),
            "a token, assertion or header in the audit events"
        );
    }
}

#[tokio::test]
async fn a_token_its_client_check_refuses_is_counted_as_client_not_valid() {
    let _turn = FIGURES.lock().await;
    let f = fixture();
    let state = build(settings(&f)).unwrap().state;
    let basic = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let issued = post_form(
        &state,
        PEER,
        "/oauth/token",
        Some(&basic),
        "grant_type=client_credentials",
    )
    .await;
    let bearer = format!("Bearer {}", issued.body["access_token"].as_str().unwrap());
    let valid_before = series(
        &metrics(&state).await,
        "authserver_oauth_token_validation_total",
        "result=\"valid\"",
    );
    assert_eq!(
        get_with(&state, "/auth/forward", Some(&bearer)).await.status,
        StatusCode::OK
    );
    let text = metrics(&state).await;
    let valid = series(
        &text,
        "authserver_oauth_token_validation_total",
        "result=\"valid\"",
    );
    assert_eq!(valid, valid_before + 1.0, "a good token is counted valid once");
    let client_before = series(
        &text,
        "authserver_oauth_token_validation_total",
        "result=\"client\"",
    );
    // The operator disables the client: its token verifies but is refused by the client check.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&f.users).unwrap()).unwrap();
    doc[BASIC_CLIENT]["status"] = "DISABLED".into();
    std::fs::write(&f.users, serde_json::to_vec(&doc).unwrap()).unwrap();
    let disabled = build(settings(&f)).unwrap().state;
    let refused = get_with(&disabled, "/auth/forward", Some(&bearer)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let text = metrics(&disabled).await;
    assert_eq!(
        series(
            &text,
            "authserver_oauth_token_validation_total",
            "result=\"valid\""
        ),
        valid,
        "a refused token was counted valid"
    );
    assert_eq!(
        series(
            &text,
            "authserver_oauth_token_validation_total",
            "result=\"client\""
        ),
        client_before + 1.0,
        "{text}"
    );
}
