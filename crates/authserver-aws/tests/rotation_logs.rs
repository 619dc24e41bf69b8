//! Everything a rotation logs (debug level, the SDK's own lines included), its audit events and
//! its error messages carry no password, hash or username. Alone in its test binary: it captures
//! this thread's logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{RetryPolicy, RotationConfig, RotationEvent, Rotator};
use authserver_core::{Secret, UserHasher, hash_password};
use authserver_testkit::fakes::Recorder;
use authserver_testkit::hash::{CHEAP, policy};
use authserver_testkit::logs::capture_logs;
use authserver_testkit::moto;
use std::sync::Arc;

#[tokio::test]
async fn a_rotation_logs_no_secret() {
    let Some(url) = moto::url("a_rotation_logs_no_secret") else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let aws = moto::Aws::fresh(&url).await;
    let u = moto::unique();
    let delivery = format!("deliv/{u}/x");
    aws.secret(&delivery, r#"{"password":"Initial-Delivered-Secret-1"}"#, None)
        .await;
    let hash = hash_password(&Secret::from("Initial-Delivered-Secret-1"), CHEAP).unwrap();
    let doc =
        serde_json::json!({"logsvc-plaintext-name": {"passwordHash": hash, "deliverySecretId": delivery}});
    let arn = aws
        .secret(&format!("rot/{u}/credentials"), &doc.to_string(), None)
        .await;
    let function = aws.function(&format!("rot-{u}-rotation"), true).await;
    let audit = Arc::new(Recorder::default());
    let rotator = Rotator::new(
        aws.sm.clone(),
        RotationConfig {
            secret_id: Some(arn.clone()),
            password_length: 40,
            alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                .chars()
                .collect(),
            policy: policy(),
            retry: RetryPolicy::default(),
            settle: std::time::Duration::ZERO,
        },
        UserHasher::new(b"k"),
        audit.clone(),
    );
    let token = aws.start_rotation(&arn, &function, 30).await;
    let mut errors = Vec::new();
    for step in [
        "setSecret",
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
        "finishSecret",
    ] {
        let event = RotationEvent {
            step: step.into(),
            secret_id: arn.clone(),
            client_request_token: token.clone(),
        };
        if let Err(e) = rotator.run(&event).await {
            errors.push(e.to_string());
        }
    }
    assert_eq!(errors.len(), 1, "setSecret before createSecret fails: {errors:?}");
    let delivered = aws.value(&delivery, "AWSCURRENT").await;
    let delivered: serde_json::Value = serde_json::from_str(&delivered).unwrap();
    let new_password = delivered["password"].as_str().unwrap().to_owned();
    let new_hash = serde_json::from_str::<serde_json::Value>(&aws.value(&arn, "AWSCURRENT").await).unwrap()
        ["logsvc-plaintext-name"]["passwordHash"]
        .as_str()
        .unwrap()
        .to_owned();

    let text = logs.text();
    assert!(text.contains("rotation step"), "{text}");
    let everything = format!("{text}\n{errors:?}\n{:?}", audit.0.lock().unwrap());
    for secret in [
        new_password.as_str(),
        "Initial-Delivered-Secret-1",
        &hash,
        &new_hash,
        "$argon2id",
        "logsvc-plaintext-name",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret:?} in the output:\n{everything}"
        );
    }
}
