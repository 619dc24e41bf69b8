//! The OAuth 2.0 endpoints and bearer acceptance (issue 14), in process through
//! `app().oneshot()`: each client-authentication method, the §5.2 error table, discovery and
//! JWKS, introspection, revocation, and tokens on `/auth/forward` and `/auth/validate`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::AppState;
use authserver::wiring::build;
use authserver_testkit::access::Answer;
use authserver_testkit::oauth::*;
use authserver_testkit::oauth_http::{get_with as get, post, request as send};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;

fn state(f: &OAuthFixture) -> Arc<AppState> {
    build(settings(f)).unwrap().state
}

async fn basic_token(state: &Arc<AppState>, extra: &str) -> Answer {
    let auth = basic_client(BASIC_CLIENT, BASIC_SECRET);
    post(
        state,
        "/oauth/token",
        Some(&auth),
        &format!("grant_type=client_credentials{extra}"),
    )
    .await
}

fn token_of(a: &Answer) -> String {
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn each_authentication_method_gets_a_token_per_rfc_9068() {
    let f = fixture();
    let state = state(&f);
    let basic = basic_token(&state, "").await;
    assert_eq!(basic.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(basic.body["token_type"], "Bearer");
    assert_eq!(basic.body["expires_in"], 900);
    let token = token_of(&basic);
    let c = claims(&token);
    assert_eq!(
        (c["iss"].as_str(), c["sub"].as_str(), c["client_id"].as_str()),
        (Some(ISSUER), Some(BASIC_CLIENT), Some(BASIC_CLIENT))
    );
    assert_eq!(
        (c["aud"].as_str(), c["scope"].as_str()),
        (Some(AUDIENCE), Some("read"))
    );
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 900);
    assert_eq!(c["jti"].as_str().unwrap().len(), 22, "128 random bits, base64url");
    let header: serde_json::Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        (header["typ"].as_str(), header["alg"].as_str()),
        (Some("at+jwt"), Some("ES256"))
    );
    assert!(header["kid"].as_str().is_some());

    let post_form =
        format!("grant_type=client_credentials&client_id={POST_CLIENT}&client_secret={POST_SECRET}");
    token_of(&post(&state, "/oauth/token", None, &post_form).await);
    let a = assertion(&f, "jti-1");
    let jwt_form = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"
    );
    token_of(&post(&state, "/oauth/token", None, &jwt_form).await);
    let replay = post(&state, "/oauth/token", None, &jwt_form).await;
    assert_eq!(
        (replay.status, replay.body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "assertion jti used twice"
    );
}

#[tokio::test]
async fn refusals_follow_rfc_6749_section_5_2() {
    let f = fixture();
    let state = state(&f);
    let basic = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let wrong = basic_client(BASIC_CLIENT, "not-the-secret");
    let post_client = basic_client(POST_CLIENT, POST_SECRET);
    let plain = basic_client(PLAIN_USER, PLAIN_PW);
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            Some(&wrong),
            "grant_type=client_credentials".into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            None,
            "grant_type=client_credentials".into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some(&basic),
            "grant_type=password".into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            Some(&basic),
            "scope=read".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some(&basic),
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some(&basic),
            "grant_type=client_credentials&scope=admin".into(),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some(&basic),
            "grant_type=client_credentials&resource=https%3A%2F%2Fevil.test".into(),
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            Some(&basic),
            format!("grant_type=client_credentials&client_id={BASIC_CLIENT}&client_secret=x"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // The post client with Basic: its registered method is enforced.
        (
            Some(&post_client),
            "grant_type=client_credentials".into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some(&plain),
            "grant_type=client_credentials".into(),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        ),
    ];
    for (auth, form, status, error) in cases {
        let a = post(&state, "/oauth/token", auth, &form).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (status, Some(error)),
            "{form}"
        );
        assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
        if status == StatusCode::UNAUTHORIZED && auth.is_some() {
            assert!(
                a.headers[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Basic "),
                "{form}"
            );
        }
    }
    let json = send(
        &state,
        Request::post("/oauth/token")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, &basic)
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(json.body["error"], "invalid_request", "form bodies only");
    let other = token_of(
        &basic_token(
            &state,
            "&resource=https%3A%2F%2Freports.example.test&scope=read+write",
        )
        .await,
    );
    assert_eq!(
        (claims(&other)["aud"].as_str(), claims(&other)["scope"].as_str()),
        (Some(OTHER_AUDIENCE), Some("read write"))
    );
}

#[tokio::test]
async fn discovery_and_jwks_agree_on_the_issuer_and_hold_public_keys_only() {
    let f = fixture();
    let state = state(&f);
    let a = get(&state, "/.well-known/oauth-authorization-server", None).await;
    let b = get(&state, "/.well-known/openid-configuration", None).await;
    assert_eq!(a.body, b.body);
    assert_eq!(a.body["issuer"], ISSUER);
    assert_eq!(a.body["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    // Nothing we do not do (issue 14): no implicit-grant response type, no ID-token fields,
    // no empty list (RFC 8414 §3.2).
    for absent in [
        "response_types_supported",
        "id_token_signing_alg_values_supported",
        "scopes_supported",
    ] {
        assert!(a.body.get(absent).is_none(), "{absent}: {}", a.body);
    }
    let jwks = get(&state, "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.headers[header::CACHE_CONTROL], "public, max-age=300");
    let key = &jwks.body["keys"][0];
    assert_eq!(
        (key["use"].as_str(), key["alg"].as_str(), key["kty"].as_str()),
        (Some("sig"), Some("ES256"), Some("EC"))
    );
    assert!(key.get("d").is_none(), "no private member");
    let token = token_of(&basic_token(&state, "").await);
    assert_eq!(claims(&token)["iss"], a.body["issuer"], "byte-identical issuer");
}

#[tokio::test]
async fn bearer_tokens_pass_forward_and_validate_and_revoked_ones_do_not() {
    let f = fixture();
    let state = state(&f);
    let token = token_of(&basic_token(&state, "&scope=read+write").await);
    let bearer = format!("Bearer {token}");
    let fwd = get(&state, "/auth/forward", Some(&bearer)).await;
    assert_eq!(fwd.status, StatusCode::OK);
    assert_eq!(fwd.headers["remote-user"], BASIC_CLIENT);
    assert_eq!(fwd.headers["remote-groups"], "");
    assert_eq!(fwd.headers["remote-scopes"], "read write");
    // A Basic user's 200 carries the scopes header too, empty: a proxy copying it must never
    // pass on what the client sent (or Caddy's literal placeholder) as the identity's scopes.
    let plain = get(&state, "/auth/forward", Some(&basic_client(PLAIN_USER, PLAIN_PW))).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.headers["remote-scopes"], "");
    assert_eq!(
        post(&state, "/auth/validate", Some(&bearer), "").await.status,
        StatusCode::OK
    );

    let auth = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let intro = post(
        &state,
        "/oauth/introspect",
        Some(&auth),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(
        (intro.body["active"].as_bool(), intro.body["client_id"].as_str()),
        (Some(true), Some(BASIC_CLIENT))
    );
    // Another client cannot revoke it (200 all the same, RFC 7009 §2.2).
    let post_auth = format!("client_id={POST_CLIENT}&client_secret={POST_SECRET}");
    assert_eq!(
        post(
            &state,
            "/oauth/revoke",
            None,
            &format!("{post_auth}&token={token}")
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&state, "/auth/forward", Some(&bearer)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(&state, "/oauth/revoke", Some(&auth), &format!("token={token}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(&state, "/oauth/revoke", Some(&auth), "token=unknown")
            .await
            .status,
        StatusCode::OK
    );
    let refused = get(&state, "/auth/forward", Some(&bearer)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    let intro = post(
        &state,
        "/oauth/introspect",
        Some(&auth),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(intro.body, serde_json::json!({"active": false}));
    let anonymous = post(&state, "/oauth/introspect", None, &format!("token={token}")).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "introspection needs client authentication"
    );
}

#[tokio::test]
async fn forged_tokens_are_refused_with_one_answer() {
    let f = fixture();
    let state = state(&f);
    let good = token_of(&basic_token(&state, "").await);
    let c = claims(&good);
    let parts: Vec<&str> = good.split('.').collect();
    let enc = |v: &serde_json::Value| base64url(v.to_string().as_bytes());
    let kid = get(&state, "/.well-known/jwks.json", None).await.body["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut expired = c.clone();
    expired["exp"] = (c["iat"].as_u64().unwrap() - 3600).into();
    let mut wrong_aud = c.clone();
    wrong_aud["aud"] = "https://elsewhere.test".into();
    let forged = [
        format!(
            "{}.{}.",
            enc(&serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
            parts[1]
        ),
        format!(
            "{}.{}.{}",
            enc(&serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": kid})),
            parts[1],
            parts[2]
        ),
        sign(
            &f.client_key,
            &serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}),
            &c,
        ),
        sign(
            &f.client_key,
            &serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "unknown"}),
            &c,
        ),
        format!("{}.{}x", parts[0], parts[1]) + "." + parts[2],
        format!("{}.{}.{}", parts[0], enc(&expired), parts[2]),
        format!("{}.{}.{}", parts[0], enc(&wrong_aud), parts[2]),
        "not-a-jwt".to_owned(),
    ];
    for token in forged {
        let a = get(&state, "/auth/forward", Some(&format!("Bearer {token}"))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            a.headers[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert!(a.headers.get("remote-user").is_none());
    }
    assert_eq!(
        get(&state, "/auth/forward", Some(&format!("Bearer {good}")))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unencoded_basic_secret_works_and_wrong_secrets_are_regulated() {
    let f = fixture();
    let mut s = settings(&f);
    s.regulation.policy.max_user_failures = 3;
    let state = build(s).unwrap().state;
    // `curl -u id:secret` and authlib send the pair as is: `%2B` and `+` must not be decoded.
    let raw = authserver_testkit::users::basic(BASIC_CLIENT, BASIC_SECRET);
    token_of(
        &post(
            &state,
            "/oauth/token",
            Some(&raw),
            "grant_type=client_credentials",
        )
        .await,
    );
    let wrong = basic_client(BASIC_CLIENT, "guess");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            post(
                &state,
                "/oauth/token",
                Some(&wrong),
                "grant_type=client_credentials",
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "the client id is locked like a user: {statuses:?}"
    );
}

#[tokio::test]
async fn the_token_rate_is_per_client_and_answers_429_with_retry_after() {
    let f = fixture();
    let mut s = settings(&f);
    s.oauth.tokens_per_minute = 2;
    let state = build(s).unwrap().state;
    token_of(&basic_token(&state, "").await);
    token_of(&basic_token(&state, "").await);
    let limited = basic_token(&state, "").await;
    assert_eq!(
        (limited.status, limited.body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert!(
        limited.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let post_form =
        format!("grant_type=client_credentials&client_id={POST_CLIENT}&client_secret={POST_SECRET}");
    token_of(&post(&state, "/oauth/token", None, &post_form).await);
}

#[tokio::test]
async fn with_oauth_off_the_routes_are_absent_and_bearer_is_no_credential() {
    let f = fixture();
    let state = build(authserver_testkit::users::settings(&f.users))
        .unwrap()
        .state;
    assert_eq!(basic_token(&state, "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&state, "/.well-known/jwks.json", None).await.status,
        StatusCode::NOT_FOUND
    );
    let a = get(&state, "/auth/forward", Some("Bearer abc")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

#[test]
fn a_bad_oauth_object_refuses_the_document() {
    let hash = authserver_testkit::hash::hash("x-Secret-1", authserver_testkit::hash::FAST);
    let policy = authserver_testkit::hash::policy();
    let good = serde_json::json!({"c": {"passwordHash": hash, "oauth": {"scopes": ["read"]}}}).to_string();
    let snapshot = authserver_core::Snapshot::from_json(good.as_bytes(), &policy, "v1").unwrap();
    assert!(snapshot.user("c").unwrap().oauth.is_some());
    let bad = serde_json::json!({"c": {"passwordHash": hash, "oauth": {"scopes": ["re ad"]}}}).to_string();
    let err = authserver_core::Snapshot::from_json(bad.as_bytes(), &policy, "v1").unwrap_err();
    assert!(err.to_string().contains("oauth.scopes #1"), "{err}");
    let unknown =
        serde_json::json!({"c": {"passwordHash": hash, "oauth": {"scopes": [], "secret": "x"}}}).to_string();
    assert!(authserver_core::Snapshot::from_json(unknown.as_bytes(), &policy, "v1").is_err());
}

#[tokio::test]
async fn the_lambda_authorizer_takes_bearer_tokens_with_their_scopes() {
    let f = fixture();
    let state = state(&f);
    let token = token_of(&basic_token(&state, "&scope=read+write").await);
    let event = |auth: &str| {
        let mut e = authserver_testkit::lambda::fixture("authorizer_http_api_v2.json");
        e["headers"]["authorization"] = auth.into();
        e["identitySource"] = serde_json::json!([auth]);
        e
    };
    let allowed = authserver_testkit::lambda::authorize(&state, event(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(
        allowed,
        serde_json::json!({"isAuthorized": true, "context": {"username": BASIC_CLIENT, "roles": "", "scopes": "read write"}})
    );
    // Another last signature character (never the same one: the test must not pass by luck).
    let last = if token.ends_with('A') { 'Q' } else { 'A' };
    let forged = format!("Bearer {}{last}", &token[..token.len() - 1]);
    let denied = authserver_testkit::lambda::authorize(&state, event(&forged))
        .await
        .unwrap();
    assert_eq!(denied, serde_json::json!({"isAuthorized": false, "context": {}}));
    // A Basic user's answer carries `scopes` too, empty: the template's `overwrite` mapping then
    // always replaces a caller's own scopes header (what it does with an absent key is undocumented).
    let basic = authserver_testkit::users::basic(PLAIN_USER, PLAIN_PW);
    let plain = authserver_testkit::lambda::authorize(&state, event(&basic))
        .await
        .unwrap();
    assert_eq!(plain["isAuthorized"], true);
    assert_eq!(plain["context"]["username"], PLAIN_USER);
    assert_eq!(plain["context"]["scopes"], "");
}
