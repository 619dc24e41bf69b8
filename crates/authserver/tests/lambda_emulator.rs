//! The built binary as a Lambda function under cargo-lambda's Runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`), started the way Lambda starts `bootstrap`: no
//! arguments, `AWS_LAMBDA_RUNTIME_API` set. Events are the fixtures in `tests/fixtures/lambda`,
//! sent with `cargo lambda invoke --data-file` and through the emulator's HTTP invoke endpoint.
//!
//! Needs `CARGO_LAMBDA` (and `MOTO_URL` for the Secrets Manager case): `source
//! scripts/aws-env.sh && start_aws_env`. Without them the tests print SKIPPED and pass, unless
//! `TESTS_REQUIRE_AWS=1`. Each test prints `FIGURE` lines (cold start, warm
//! latency, RSS) for docs/lambda.md; `LAMBDA_TEST_BINARY=target/release/authserver` measures a
//! release build instead of the test build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::emulator::{Emulator, Function, free_port, health, measure};
use authserver_testkit::lambda::{fixture, fixtures, users_file};
use authserver_testkit::moto::create_secret_raw as create_secret;
use authserver_testkit::skip;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_answers_every_http_event_shape() {
    let Some(cargo_lambda) = skip::env("CARGO_LAMBDA", "proxy_mode_answers_every_http_event_shape") else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let users = users_file();
    let function = Function::start(&emulator, &[("AUTHSERVER_STORE_FILE", &users)]);
    measure(
        &emulator,
        &function,
        (&health("function_url.json"), &fixture("function_url.json")),
        "proxy/file",
        200,
    )
    .await;

    for name in [
        "apigw_v2_http_api.json",
        "apigw_v1_rest_api.json",
        "alb.json",
        "function_url.json",
    ] {
        let out = emulator.invoke_file(&fixtures().join(name));
        assert_eq!(out["statusCode"], 200, "{name}: {out}");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["roles"], json!(["admin", "reader"]), "{name}");
    }
    let client = reqwest::Client::new();
    let mut health = fixture("apigw_v2_http_api.json");
    health["rawPath"] = json!("/prod/health");
    health["requestContext"]["http"]["method"] = json!("GET");
    let (_, out) = emulator.invoke(&client, &health).await;
    assert_eq!(out["statusCode"], 200, "{out}");
    let mut wrong = fixture("apigw_v2_http_api.json");
    wrong["headers"]["authorization"] = json!("Basic Zml4dHVyZS11c2VyOm5vcGU=");
    let (_, out) = emulator.invoke(&client, &wrong).await;
    assert_eq!(out["statusCode"], 401, "{out}");
    function.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_mode_answers_all_three_shapes_and_survives_errors() {
    let test = "authorizer_mode_answers_all_three_shapes_and_survives_errors";
    let Some(cargo_lambda) = skip::env("CARGO_LAMBDA", test) else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let users = users_file();
    let function = Function::start(
        &emulator,
        &[
            ("AUTHSERVER_STORE_FILE", &users),
            ("AUTHSERVER_LAMBDA_MODE", "authorizer"),
        ],
    );
    let mut no_token = fixture("authorizer_rest_token.json");
    no_token["authorizationToken"] = json!("");
    measure(
        &emulator,
        &function,
        (&no_token, &fixture("authorizer_rest_token.json")),
        "authorizer/file",
        50,
    )
    .await;

    let simple = emulator.invoke_file(&fixtures().join("authorizer_http_api_v2.json"));
    assert_eq!(simple["isAuthorized"], true, "{simple}");
    assert_eq!(simple["context"]["roles"], "admin,reader");
    for name in ["authorizer_rest_token.json", "authorizer_rest_request.json"] {
        let policy = emulator.invoke_file(&fixtures().join(name));
        assert_eq!(policy["principalId"], "fixture-user", "{name}: {policy}");
        let statement = &policy["policyDocument"]["Statement"][0];
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(
            statement["Resource"],
            "arn:aws:execute-api:eu-west-1:111122223333:p7r2m5n8t4/prod/*"
        );
    }
    // An event the authorizer does not know: an error answer, and the loop carries on.
    let client = reqwest::Client::new();
    let (status, out) = emulator.invoke(&client, &json!({"unexpected": true})).await;
    assert!(!out.to_string().contains("unexpected\":true"), "{status} {out}");
    assert!(
        out.to_string().contains("unsupported authorizer event"),
        "{status} {out}"
    );
    let mut denied = fixture("authorizer_rest_token.json");
    denied["authorizationToken"] = json!("Basic Zml4dHVyZS11c2VyOm5vcGU=");
    let (_, out) = emulator.invoke(&client, &denied).await;
    assert_eq!(out["policyDocument"]["Statement"][0]["Effect"], "Deny", "{out}");
    function.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_with_the_secrets_manager_store_on_moto() {
    let test = "proxy_mode_with_the_secrets_manager_store_on_moto";
    let (Some(cargo_lambda), Some(moto)) = (skip::env("CARGO_LAMBDA", test), skip::env("MOTO_URL", test))
    else {
        return;
    };
    let name = format!("authserver-emulator/{}", free_port());
    create_secret(&moto, &name, &std::fs::read_to_string(users_file()).unwrap()).await;
    let key_name = format!("{name}/user-hash-key");
    create_secret(&moto, &key_name, "emulator-hash-key-from-secret").await;
    let emulator = Emulator::start(&cargo_lambda);
    let function = Function::start(
        &emulator,
        &[
            ("AUTHSERVER_STORE_KIND", "secrets_manager"),
            ("CREDENTIAL_SECRET_ARN", &name),
            ("AUTHSERVER_STORE_ENDPOINT_URL", &moto),
            ("AUTHSERVER_USER_HASH_KEY_SECRET_ARN", &key_name),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    measure(
        &emulator,
        &function,
        (
            &health("apigw_v2_http_api.json"),
            &fixture("apigw_v2_http_api.json"),
        ),
        "proxy/secrets_manager",
        200,
    )
    .await;
    let logs = function.logs();
    assert!(logs.contains("credential secret version loaded"), "{logs}");
    let ready = emulator.invoke_file(&fixtures().join("apigw_v1_rest_api.json"));
    assert_eq!(ready["statusCode"], 200, "{ready}");
    // user_hash comes from the key secret: stable across instances.
    let expected = authserver_core::UserHasher::new(b"emulator-hash-key-from-secret").hash("fixture-user");
    let logs = function.logs();
    assert!(logs.contains(&format!("\"user_hash\":\"{expected}\"")), "{logs}");
    function.check_logs();
}
