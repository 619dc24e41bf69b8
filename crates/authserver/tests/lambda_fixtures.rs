//! The Lambda event fixtures (`tests/fixtures/lambda`) in process: proxy events through
//! lambda_http's own request conversion, our handler and the router, then lambda_http's response
//! conversion; authorizer events through the authorizer handler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver::http::AppState;
use authserver::lambda::proxy::or_500;
use authserver_testkit::fakes::DownStore;
use authserver_testkit::lambda::{GOOD, authorize, fixture, invoke_proxy, state, with_authorization};
use authserver_testkit::users::basic;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The store is down from the start.
const DOWN: DownStore = DownStore {
    retry_after: Duration::from_secs(5),
    error: "down",
};

const PROXY_FIXTURES: [&str; 4] = [
    "apigw_v2_http_api.json",
    "apigw_v1_rest_api.json",
    "alb.json",
    "function_url.json",
];

#[tokio::test]
async fn every_proxy_event_reaches_the_router() {
    let state = state();
    for name in PROXY_FIXTURES {
        let (status, headers, body) = invoke_proxy(&state, fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["allowed"], true, "{name}");
        assert_eq!(body["roles"], json!(["admin", "reader"]), "{name}");
        assert_eq!(headers["cache-control"], "no-store", "{name}");
        assert!(headers.get("x-request-id").is_some(), "{name}");
    }
}

#[tokio::test]
async fn denials_keep_the_http_contract() {
    let state = state();
    for name in PROXY_FIXTURES {
        let wrong = with_authorization(fixture(name), Some(&basic("fixture-user", "nope")));
        let (status, headers, body) = invoke_proxy(&state, wrong).await;
        assert_eq!(
            (status, &body["message"]),
            (401, &json!("Invalid credentials")),
            "{name}"
        );
        assert!(
            headers["www-authenticate"]
                .as_str()
                .unwrap()
                .starts_with("Basic realm=")
        );
        let missing = with_authorization(fixture(name), None);
        assert_eq!(invoke_proxy(&state, missing).await.0, 401, "{name}");
        let malformed = with_authorization(fixture(name), Some("Basic !!!"));
        assert_eq!(invoke_proxy(&state, malformed).await.0, 400, "{name}");
    }
}

#[tokio::test]
async fn stage_prefixed_paths_route_like_bare_ones() {
    let state = state();
    // HTTP API: rawPath carries the stage.
    let mut v2 = fixture("apigw_v2_http_api.json");
    v2["rawPath"] = json!("/prod/health");
    v2["requestContext"]["http"]["method"] = json!("GET");
    let (status, _, body) = invoke_proxy(&state, v2).await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    // REST API: path is stage-free, requestContext.path has the stage.
    let mut v1 = fixture("apigw_v1_rest_api.json");
    v1["path"] = json!("/health");
    v1["requestContext"]["path"] = json!("/prod/health");
    v1["httpMethod"] = json!("GET");
    assert_eq!(invoke_proxy(&state, v1).await.0, 200);
    // A REST resource whose first segment is named like the stage keeps it.
    let mut v1 = fixture("apigw_v1_rest_api.json");
    v1["requestContext"]["stage"] = json!("auth");
    v1["requestContext"]["path"] = json!("/auth/auth/validate");
    assert_eq!(invoke_proxy(&state, v1).await.0, 200);
    // The stage only ever comes off once, as a whole segment.
    let mut v2 = fixture("apigw_v2_http_api.json");
    v2["rawPath"] = json!("/prod/prod/auth/validate");
    assert_eq!(invoke_proxy(&state, v2).await.0, 404);
    let mut v2 = fixture("apigw_v2_http_api.json");
    v2["rawPath"] = json!("/production/auth/validate");
    assert_eq!(invoke_proxy(&state, v2).await.0, 404);
}

#[tokio::test]
async fn a_panic_answers_500_without_its_message_and_handling_goes_on() {
    let answer = or_500(async { panic!("secret-material-in-panic") })
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let bytes = axum::body::to_bytes(answer.into_body(), 4096).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains("Internal server error") && !text.contains("secret-material"),
        "{text}"
    );
    let state = state();
    assert_eq!(invoke_proxy(&state, fixture("alb.json")).await.0, 200);
}

#[tokio::test]
async fn the_http_api_authorizer_answers_simple_responses() {
    let state = state();
    let answer = authorize(&state, fixture("authorizer_http_api_v2.json"))
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"isAuthorized": true, "context": {"username": "fixture-user", "roles": "admin,reader", "scopes": ""}})
    );
}

#[tokio::test]
async fn rest_authorizers_answer_iam_policies_for_the_stage() {
    let state = state();
    for name in ["authorizer_rest_token.json", "authorizer_rest_request.json"] {
        let answer = authorize(&state, fixture(name)).await.unwrap();
        assert_eq!(
            answer,
            json!({
                "principalId": "fixture-user",
                "policyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": "arn:aws:execute-api:eu-west-1:111122223333:p7r2m5n8t4/prod/*",
                }]},
                "context": {"username": "fixture-user", "roles": "admin,reader", "scopes": ""},
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn authorizer_denials_are_identical_whatever_the_reason() {
    let state = state();
    for name in [
        "authorizer_http_api_v2.json",
        "authorizer_rest_token.json",
        "authorizer_rest_request.json",
    ] {
        let answers: Vec<Value> = futures_sequential(
            &state,
            [
                Some(basic("fixture-user", "wrong")),
                Some(basic("nobody-here", "fixture-Password-1")),
                Some(basic("disabled-user", "Disabled-Password-2")),
                Some("Basic !!!".to_owned()),
                Some("Bearer abc".to_owned()),
                None,
            ]
            .map(|auth| with_authorization(fixture(name), auth.as_deref())),
        )
        .await;
        for a in &answers {
            assert_eq!(a, &answers[0], "{name}");
            let text = a.to_string();
            assert!(!text.contains("nobody") && !text.contains("disabled") && !text.contains("fixture-user"));
        }
        let deny = &answers[0];
        if name.contains("http_api") {
            assert_eq!(deny, &json!({"isAuthorized": false, "context": {}}));
        } else {
            assert_eq!(deny["principalId"], "unauthorized");
            assert_eq!(deny["policyDocument"]["Statement"][0]["Effect"], "Deny");
            assert!(deny.get("context").is_none());
        }
    }
}

async fn futures_sequential(state: &Arc<AppState>, events: [Value; 6]) -> Vec<Value> {
    let mut out = Vec::new();
    for e in events {
        out.push(authorize(state, e).await.unwrap());
    }
    out
}

#[tokio::test]
async fn two_authorization_headers_are_denied() {
    let state = state();
    let mut event = fixture("authorizer_rest_request.json");
    event["multiValueHeaders"]["Authorization"] = json!([GOOD, GOOD]);
    let answer = authorize(&state, event).await.unwrap();
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
}

#[tokio::test]
async fn store_unavailable_is_an_error_not_a_cacheable_deny() {
    let mut state = state();
    Arc::get_mut(&mut Arc::get_mut(&mut state).unwrap().gate)
        .unwrap()
        .store = Arc::new(DOWN);
    for name in ["authorizer_http_api_v2.json", "authorizer_rest_token.json"] {
        let err = authorize(&state, fixture(name)).await.unwrap_err();
        assert_eq!(err, "AuthorizerError: service unavailable");
    }
    // The proxy answers 503 with Retry-After, as the HTTP contract says.
    let (status, headers, _) = invoke_proxy(&state, fixture("apigw_v2_http_api.json")).await;
    assert_eq!((status, headers["retry-after"].as_str()), (503, Some("5")));
}

#[tokio::test]
async fn unknown_events_and_bad_arns_are_errors() {
    let state = state();
    let err = authorize(&state, json!({"hello": "world"})).await.unwrap_err();
    assert_eq!(err, "AuthorizerError: unsupported authorizer event");
    let mut event = fixture("authorizer_rest_token.json");
    event["methodArn"] = json!("arn:aws:lambda:eu-west-1:1:function:x");
    let err = authorize(&state, event).await.unwrap_err();
    assert!(err.contains("methodArn"), "{err}");
}
