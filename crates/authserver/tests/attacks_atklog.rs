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
        (None, format!("{grant}&client_id={}&client_secret=x-Secret-1", enc(BASIC_SECRET)), "/oauth/token"),
        (Some(basic_client(BASIC_SECRET, BASIC_CLIENT)), grant.to_owned(), "/oauth/token"),
        (Some(basic_client(POST_SECRET, "whatever-Secret-9")), grant.to_owned(), "/oauth/token"),
        // A plain user's name and password, by both methods and as an assertion's iss/sub.
        (Some(basic_client(PLAIN_USER, PLAIN_PW)), grant.to_owned(), "/oauth/token"),
        (Some(basic_client(PLAIN_USER, "wrong-Password-1")), grant.to_owned(), "/oauth/token"),
        (None, format!("{grant}&client_id={PLAIN_USER}&client_secret={}", enc(PLAIN_PW)), "/oauth/token"),
        // A token in token_type_hint, a JWT in scope, a password as resource, a token as client_id.
        (Some(basic.clone()), format!("token=x&token_type_hint={}", enc(&token)), "/oauth/introspect"),
        (Some(basic.clone()), format!("token=x&token_type_hint={}", enc(&token)), "/oauth/revoke"),
        (Some(basic.clone()), format!("{grant}&scope={}", enc(&jwt)), "/oauth/token"),
        (Some(basic.clone()), format!("{grant}&scope=read%20{}", enc(PLAIN_PW)), "/oauth/token"),
        (Some(basic.clone()), format!("{grant}&resource={}", enc(PLAIN_PW)), "/oauth/token"),
        (Some(basic.clone()), format!("{grant}&client_id={}", enc(&token)), "/oauth/token"),
        (Some(basic.clone()), format!("{grant}&client_id={}", enc(PLAIN_PW)), "/oauth/token"),
        (None, format!("{grant}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}&client_id={}", enc(&jwt), enc(PLAIN_PW)), "/oauth/token"),
        (Some(basic.clone()), format!("token={}", enc(&token)), "/oauth/introspect"),
        (Some(basic.clone()), format!("token={}", enc(&jwt)), "/oauth/revoke"),
        (Some(format!("Bearer {token}")), grant.to_owned(), "/oauth/token"),
        (Some(format!("Basic {}", enc(PLAIN_PW))), grant.to_owned(), "/oauth/token"),
    ];
    for (auth, form, path) in &hostile {
        let _ = post_form(&state, PEER, path, auth.as_deref(), form).await;
    }
    let events = recorder.events();
    assert!(events.len() > hostile.len(), "{}", events.len());
    let text: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
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
