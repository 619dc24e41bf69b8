//! The rotation and compliance modes as Lambda runs them: the built binary started like
//! `bootstrap` under cargo-lambda's Runtime API emulator, AWS on the moto server (an account of
//! its own per test). Fixtures: `fixtures/lambda/eventbridge_scheduled.json` (the daily
//! schedule's event; the compliance mode ignores its content) and
//! `fixtures/lambda/secretsmanager_rotation.json` (a Secrets Manager rotation event; `SecretId`
//! and the token are replaced). The function's whole output is searched for secrets.
//!
//! Needs `CARGO_LAMBDA` and `MOTO_URL` (`source scripts/aws-env.sh && start_aws_env`); without
//! them the tests print SKIPPED and pass, unless `TESTS_REQUIRE_AWS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::emulator::{Emulator, Function};
use authserver_testkit::hash::{FAST, hash};
use authserver_testkit::lambda::fixture;
use authserver_testkit::moto;
use authserver_testkit::skip;
use serde_json::json;

fn env(aws: &moto::Aws) -> Vec<(&'static str, String)> {
    aws.env()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_mode_runs_on_the_schedule_and_publishes_the_violations() {
    let test = "compliance_mode_runs_on_the_schedule_and_publishes_the_violations";
    let (Some(cargo_lambda), Some(url)) = (skip::env("CARGO_LAMBDA", test), skip::env("MOTO_URL", test))
    else {
        return;
    };
    let aws = moto::Aws::fresh(&url).await;
    let service = format!("cm{}", &moto::unique()[..6]);
    let doc = json!({"plain-user-name": {"passwordHash": hash("Plain-Pass-1", FAST)}});
    aws.secret(&format!("{service}/dev/credentials"), &doc.to_string(), None)
        .await;
    let emulator = Emulator::start(&cargo_lambda);
    let mut vars = env(&aws);
    vars.push(("AUTHSERVER_LAMBDA_MODE", "compliance".into()));
    vars.push(("AUTHSERVER_SERVICE", service.clone()));
    vars.push(("AUTHSERVER_STAGE", "dev".into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let function = Function::start(&emulator, &vars);
    let client = reqwest::Client::new();
    let (status, out) = emulator
        .invoke(&client, &fixture("eventbridge_scheduled.json"))
        .await;
    assert_eq!(status, 200, "{out}");
    // An account with nothing but a credential secret (its hash within the policy, no
    // passwordChangedAt): every control but the hash policy fails.
    assert_eq!(
        out,
        json!({"violations": 9, "failed": ["secret-encryption", "kms-key-rotation", "secret-rotation",
            "secret-resource-policy", "log-groups", "function-tracing", "function-not-public",
            "alarms-with-actions", "password-age"]})
    );

    let metrics = aws
        .cw
        .list_metrics()
        .namespace("AuthServer")
        .metric_name("ComplianceViolations")
        .send()
        .await
        .unwrap();
    let dims: Vec<(String, String)> = metrics.metrics()[0]
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap().to_owned(), d.value().unwrap().to_owned()))
        .collect();
    assert!(
        dims.contains(&("Service".into(), service.clone())) && dims.contains(&("Stage".into(), "dev".into()))
    );

    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = function.logs();
    assert_eq!(
        logs.matches("\"compliance control\"").count(),
        10,
        "one line per control: {logs}"
    );
    assert!(logs.contains("user_hash"), "users named by user_hash: {logs}");
    for secret in ["plain-user-name", "Plain-Pass-1", "$argon2id"] {
        assert!(!logs.contains(secret), "{secret:?} in the logs:\n{logs}");
    }
    function.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_mode_runs_steps_and_refuses_other_tokens() {
    let test = "rotation_mode_runs_steps_and_refuses_other_tokens";
    let (Some(cargo_lambda), Some(url)) = (skip::env("CARGO_LAMBDA", test), skip::env("MOTO_URL", test))
    else {
        return;
    };
    let aws = moto::Aws::fresh(&url).await;
    let u = moto::unique();
    let delivery = format!("rm/{u}/delivery/svc");
    aws.secret(&delivery, "Old-Rotation-Mode-Pass-1", None).await;
    let hash = hash("Old-Rotation-Mode-Pass-1", FAST);
    let doc = json!({"rotated-user-name": {"passwordHash": hash, "deliverySecretId": delivery}});
    let arn = aws
        .secret(&format!("rm/{u}/credentials"), &doc.to_string(), None)
        .await;
    let rotation_fn = aws.function(&format!("rm-{u}-rotation"), true).await;
    let token = aws.start_rotation(&arn, &rotation_fn, 30).await;

    let emulator = Emulator::start(&cargo_lambda);
    let mut vars = env(&aws);
    vars.push(("AUTHSERVER_LAMBDA_MODE", "rotation".into()));
    // No server watches this secret: finishSecret need not wait for version checks.
    vars.push(("AUTHSERVER_ROTATION_SETTLE_SECONDS", "0".into()));
    vars.push(("CREDENTIAL_SECRET_ARN", arn.clone()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let function = Function::start(&emulator, &vars);
    let client = reqwest::Client::new();
    let mut event = fixture("secretsmanager_rotation.json");
    event["SecretId"] = json!(arn);
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        event["Step"] = json!(step);
        event["ClientRequestToken"] = json!(token);
        let (status, out) = emulator.invoke(&client, &event).await;
        assert_eq!((status, &out["outcome"]), (200, &json!("done")), "{step}: {out}");
    }
    // The same event again: the rotation is over, nothing to do.
    let (_, out) = emulator.invoke(&client, &event).await;
    assert_eq!(out["outcome"], "already current", "{out}");
    // A token that is not a version of the secret: refused, and the function carries on.
    event["ClientRequestToken"] = json!("00000000-0000-4000-8000-000000000000");
    let (_, out) = emulator.invoke(&client, &event).await;
    assert_eq!(out["errorType"], "RotationRefused", "{out}");
    let (_, out) = emulator
        .invoke(&client, &json!({"not": "a rotation event"}))
        .await;
    assert_eq!(out["errorType"], "RotationRefused", "{out}");

    let new = aws.value(&delivery, "AWSCURRENT").await;
    assert_ne!(new, "Old-Rotation-Mode-Pass-1");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = function.logs();
    assert_eq!(logs.matches("\"rotation step\"").count(), 5, "{logs}");
    for secret in [
        new.as_str(),
        "Old-Rotation-Mode-Pass-1",
        "rotated-user-name",
        "$argon2id",
        &hash,
    ] {
        assert!(!logs.contains(secret), "{secret:?} in the logs:\n{logs}");
    }
    function.check_logs();
}
