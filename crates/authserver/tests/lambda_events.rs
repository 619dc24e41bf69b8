//! Hostile and unusual Lambda events through the real handlers (lambda_http's own conversion
//! included): repeated `Authorization` headers, stage names that collide with route segments,
//! events lambda_http's conversion panics on, and events of the wrong shape for the mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver::lambda::proxy::Proxy;
use authserver_testkit::lambda::{GOOD, WRONG, authorize, cold, fixture, invoke, proxy_raw, state};
use serde_json::{Value, json};

fn proxy() -> Proxy {
    Proxy::new(state(), None, cold())
}

#[tokio::test]
async fn rest_and_alb_events_with_two_authorization_headers_answer_400() {
    let proxy = proxy();
    for (first, second) in [(GOOD, GOOD), (WRONG, GOOD), (GOOD, WRONG)] {
        // REST API: `headers` holds the last value, `multiValueHeaders` both.
        let mut rest = fixture("apigw_v1_rest_api.json");
        rest["headers"]["Authorization"] = json!(second);
        rest["multiValueHeaders"]["Authorization"] = json!([first, second]);
        let (status, _, body) = invoke(&proxy, rest).await;
        assert_eq!(status, 400, "REST {first} then {second}: {body}");
        assert_eq!(body["message"], "Invalid Authorization header format");
        // ALB with multi-value headers on.
        let mut alb = fixture("alb.json");
        let headers = alb["headers"].take();
        let multi: serde_json::Map<String, Value> = headers
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        alb["multiValueHeaders"] = Value::Object(multi);
        alb["multiValueHeaders"]["authorization"] = json!([first, second]);
        alb.as_object_mut().unwrap().remove("headers");
        assert_eq!(invoke(&proxy, alb).await.0, 400, "ALB {first} then {second}");
    }
    // One value in both maps (how API Gateway sends a single header) is fine.
    assert_eq!(invoke(&proxy, fixture("apigw_v1_rest_api.json")).await.0, 200);
}

#[tokio::test]
async fn stage_names_that_collide_with_route_segments_route_correctly() {
    let proxy = proxy();
    // REST stage `auth`: `path` never carries the stage, whatever its first segment.
    for path in ["/auth", "/auth/validate"] {
        let mut rest = fixture("apigw_v1_rest_api.json");
        rest["path"] = json!(path);
        rest["requestContext"]["stage"] = json!("auth");
        rest["requestContext"]["path"] = json!(format!("/auth{path}"));
        let (status, _, body) = invoke(&proxy, rest).await;
        assert_eq!(status, 200, "REST stage auth, POST {path}: {body}");
    }
    // HTTP API on its execute-api endpoint: rawPath carries the stage.
    let mut v2 = fixture("apigw_v2_http_api.json");
    v2["requestContext"]["stage"] = json!("auth");
    v2["rawPath"] = json!("/auth/auth/validate");
    assert_eq!(invoke(&proxy, v2).await.0, 200, "execute-api /auth/auth/validate");
    // HTTP API custom domain: rawPath has no stage, even when a segment is named like it.
    for path in ["/auth/validate", "/auth"] {
        let mut v2 = fixture("apigw_v2_http_api.json");
        v2["requestContext"]["stage"] = json!("auth");
        v2["requestContext"]["domainName"] = json!("login.example.com");
        v2["headers"]["host"] = json!("login.example.com");
        v2["rawPath"] = json!(path);
        let (status, _, body) = invoke(&proxy, v2).await;
        assert_eq!(status, 200, "custom domain, stage auth, {path}: {body}");
    }
    let mut v2 = fixture("apigw_v2_http_api.json");
    v2["requestContext"]["domainName"] = json!("login.example.com");
    v2["headers"]["host"] = json!("login.example.com");
    v2["rawPath"] = json!("/health");
    v2["requestContext"]["http"]["method"] = json!("GET");
    assert_eq!(
        invoke(&proxy, v2).await.0,
        200,
        "custom domain, stage prod, /health"
    );
}

#[tokio::test]
async fn events_the_conversion_panics_on_answer_the_json_500() {
    let proxy = proxy();
    let mut cases: Vec<(&str, Value)> = Vec::new();
    for name in [
        "apigw_v2_http_api.json",
        "apigw_v1_rest_api.json",
        "alb.json",
        "function_url.json",
    ] {
        let mut bad_body = fixture(name);
        bad_body["body"] = json!("this is not base64!!");
        bad_body["isBase64Encoded"] = json!(true);
        cases.push((name, bad_body));
    }
    let mut host = fixture("apigw_v2_http_api.json");
    host["headers"]["host"] = json!("bad host name");
    cases.push(("bad Host", host));
    let mut proto = fixture("apigw_v1_rest_api.json");
    proto["headers"]["X-Forwarded-Proto"] = json!("ht tp");
    proto["multiValueHeaders"]["X-Forwarded-Proto"] = json!(["ht tp"]);
    cases.push(("bad X-Forwarded-Proto", proto));
    for (what, event) in cases {
        let rest = event.get("multiValueHeaders").is_some();
        let out = proxy_raw(&proxy, event)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(out["statusCode"], 500, "{what}: {out}");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["message"], "Internal server error", "{what}");
        assert_eq!(body["allowed"], false, "{what}");
        if rest {
            assert_eq!(
                out["multiValueHeaders"]["cache-control"],
                json!(["no-store"]),
                "{what}"
            );
        }
    }
    // The runtime loop goes on.
    assert_eq!(invoke(&proxy, fixture("alb.json")).await.0, 200);
}

#[tokio::test]
async fn events_of_the_wrong_shape_are_refused_never_answered() {
    let proxy = proxy();
    for name in [
        "authorizer_http_api_v2.json",
        "authorizer_rest_token.json",
        "authorizer_rest_request.json",
        "eventbridge_scheduled.json",
        "secretsmanager_rotation.json",
    ] {
        let err = proxy_raw(&proxy, fixture(name)).await.unwrap_err();
        assert!(err.starts_with("UnsupportedEvent"), "{name}: {err}");
    }
    let state = state();
    for name in [
        "apigw_v2_http_api.json",
        "apigw_v1_rest_api.json",
        "alb.json",
        "function_url.json",
        "eventbridge_scheduled.json",
    ] {
        let err = authorize(&state, fixture(name)).await.unwrap_err();
        assert_eq!(err, "AuthorizerError: unsupported authorizer event", "{name}");
    }
}

#[tokio::test]
async fn an_http_api_authorizer_event_with_null_headers_is_denied() {
    let state = state();
    for field in ["headers", "identitySource", "queryStringParameters"] {
        let mut event = fixture("authorizer_http_api_v2.json");
        event[field] = Value::Null;
        let answer = authorize(&state, event).await;
        let expect = if field == "headers" {
            json!({"isAuthorized": false, "context": {}})
        } else {
            answer.clone().unwrap() // other nulls change nothing about the decision
        };
        assert_eq!(answer, Ok(expect), "{field}: null");
    }
    let mut event = fixture("authorizer_rest_request.json");
    event["headers"] = Value::Null;
    event["multiValueHeaders"] = Value::Null;
    let answer = authorize(&state, event).await.unwrap();
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
}
