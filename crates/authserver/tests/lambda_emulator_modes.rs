//! The new Lambda behaviours under cargo-lambda's Runtime API emulator, with the built binary
//! started like `bootstrap`: the authorizer regulates by `sourceIp` and answers refusals with an
//! error (never a cacheable Deny), denies `"headers": null`, refuses proxy events; the proxy
//! refuses authorizer events, answers 400 to two `Authorization` headers and the JSON 500 to an
//! event lambda_http's conversion panics on.
//!
//! Needs `CARGO_LAMBDA` (`source scripts/aws-env.sh && start_aws_env`); see `lambda_emulator.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::emulator::{Emulator, Function};
use authserver_testkit::lambda::{GOOD, WRONG, fixture, rest_request, users_file};
use authserver_testkit::skip;
use serde_json::{Value, json};

fn strict(mode: &'static str, users: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AUTHSERVER_STORE_FILE", users.to_owned()),
        ("AUTHSERVER_LAMBDA_MODE", mode.to_owned()),
        ("AUTHSERVER_REGULATION_MAX_SOURCE_FAILURES", "3".to_owned()),
        ("AUTHSERVER_REGULATION_MAX_USER_FAILURES", "50".to_owned()),
    ]
}

fn start(emulator: &Emulator, env: &[(&'static str, String)]) -> Function {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Function::start(emulator, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_regulates_by_source_and_never_caches_a_refusal() {
    let Some(cargo_lambda) = skip::env(
        "CARGO_LAMBDA",
        "authorizer_regulates_by_source_and_never_caches_a_refusal",
    ) else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let function = start(&emulator, &strict("authorizer", &users_file()));
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let (_, out) = emulator
            .invoke(&client, &rest_request(WRONG, "198.51.100.9"))
            .await;
        assert_eq!(out["policyDocument"]["Statement"][0]["Effect"], "Deny", "{out}");
    }
    let (_, refused) = emulator
        .invoke(&client, &rest_request(GOOD, "198.51.100.9"))
        .await;
    assert!(
        refused.get("policyDocument").is_none(),
        "a Deny would be cached: {refused}"
    );
    assert!(refused.to_string().contains("rate limited"), "{refused}");
    let (_, allowed) = emulator
        .invoke(&client, &rest_request(GOOD, "203.0.113.50"))
        .await;
    assert_eq!(
        allowed["policyDocument"]["Statement"][0]["Effect"], "Allow",
        "{allowed}"
    );

    let mut null_headers = fixture("authorizer_http_api_v2.json");
    null_headers["headers"] = Value::Null;
    let (_, out) = emulator.invoke(&client, &null_headers).await;
    assert_eq!(out, json!({"isAuthorized": false, "context": {}}));

    let (_, out) = emulator.invoke(&client, &fixture("apigw_v2_http_api.json")).await;
    assert!(
        out.get("isAuthorized").is_none(),
        "a proxy event was answered: {out}"
    );
    assert!(out.to_string().contains("unsupported authorizer event"), "{out}");
    let logs = function.logs();
    assert!(
        logs.contains("\"level\":\"ERROR\"") && logs.contains("does not serve"),
        "{logs}"
    );
    function.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_refuses_authorizer_events_and_survives_hostile_ones() {
    let Some(cargo_lambda) = skip::env(
        "CARGO_LAMBDA",
        "proxy_refuses_authorizer_events_and_survives_hostile_ones",
    ) else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let function = start(&emulator, &strict("proxy", &users_file()));
    let client = reqwest::Client::new();
    let (_, out) = emulator
        .invoke(&client, &fixture("authorizer_http_api_v2.json"))
        .await;
    assert!(
        out.get("statusCode").is_none(),
        "an authorizer event was answered: {out}"
    );
    assert!(out.to_string().contains("UnsupportedEvent"), "{out}");

    let mut two = fixture("apigw_v1_rest_api.json");
    two["multiValueHeaders"]["Authorization"] = json!([WRONG, GOOD]);
    let (_, out) = emulator.invoke(&client, &two).await;
    assert_eq!(out["statusCode"], 400, "{out}");

    let mut bad_body = fixture("apigw_v2_http_api.json");
    bad_body["body"] = json!("not base64 at all!");
    bad_body["isBase64Encoded"] = json!(true);
    let (_, out) = emulator.invoke(&client, &bad_body).await;
    assert_eq!(out["statusCode"], 500, "{out}");
    assert!(
        out["body"].as_str().unwrap().contains("Internal server error"),
        "{out}"
    );

    let (_, out) = emulator.invoke(&client, &fixture("alb.json")).await;
    assert_eq!(out["statusCode"], 200, "the loop goes on: {out}");
    function.check_logs();
}
