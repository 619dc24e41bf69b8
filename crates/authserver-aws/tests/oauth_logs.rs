//! Nothing secret from the AWS token signers reaches a log line (the SDK's debug lines included),
//! an error or a `Debug` rendering: no private key, no claims, no signature. Alone in its test
//! binary, like rotation_logs.rs: the capture is this thread's subscriber, and next to the signer
//! tests (other threads of one binary, same SDK callsites) it once missed the SDK's lines.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::oauth::{KmsKey, KmsSigner, SecretKeySigner, TokenSigner, WallClock};
use authserver_testkit::oauth_aws::{TEST_RSA_PEM, key_set, signing_input};
use authserver_testkit::{logs, moto, or_skip};
use aws_sdk_kms::types::KeySpec;
use serde_json::json;
use std::sync::Arc;

const NOW: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

fn clock(at: u64) -> WallClock {
    Arc::new(move || at)
}

#[tokio::test]
async fn nothing_secret_reaches_logs_errors_or_debug() {
    let url = or_skip!(moto::url("nothing_secret_reaches_logs_errors_or_debug"));
    let aws = moto::Aws::fresh(&url).await;
    let (buffer, _guard) = logs::capture_logs();
    // A key body fragment: whatever prints the key would print this.
    let body_line = TEST_RSA_PEM.lines().nth(3).unwrap();
    let name = format!("oauth-keys-{}", moto::unique());
    aws.secret(&name, &key_set(&[(0, TEST_RSA_PEM)]), None).await;
    let signer = SecretKeySigner::load(aws.sm.clone(), &name, HOUR, clock(NOW))
        .await
        .unwrap();
    let (kid, _) = signer.active();
    let input = signing_input(&kid, "RS256", &json!({"sub": "c"}));
    let sig = signer.sign(input.as_bytes()).await.unwrap();
    // A broken key set: a truncated PEM, and one entry that is not JSON of the shape.
    let broken = TEST_RSA_PEM.replace(body_line, "");
    let mut errors = Vec::new();
    for value in [key_set(&[(0, &broken)]), format!("{{\"keys\": \"{body_line}\"}}")] {
        aws.sm
            .put_secret_value()
            .secret_id(&name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        errors.push(signer.refresh().await.unwrap_err().to_string());
    }
    // The signer keeps its loaded key set after failed refreshes.
    assert!(signer.sign(input.as_bytes()).await.is_ok());
    // A token signed by KMS: neither its claims nor its signature reach the SDK's debug lines.
    let arn = aws.signing_key(KeySpec::Rsa2048).await;
    let keys = [KmsKey {
        key_id: arn,
        activates_at: 0,
    }];
    let kms = KmsSigner::load(aws.kms.clone(), &keys, HOUR, clock(NOW))
        .await
        .unwrap();
    let kms_kid = kms.active().0;
    let kms_input = signing_input(&kms_kid, "RS256", &json!({"sub": "kms-client-7f3a"}));
    let kms_sig = kms.sign(kms_input.as_bytes()).await.unwrap();
    let debug = format!("{signer:?}{kms:?}");
    let logged = buffer.text();
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let b64_std = base64::engine::general_purpose::STANDARD.encode(&kms_sig);
    let claims = kms_input.split('.').nth(1).unwrap();
    for text in errors.iter().chain([&debug, &logged]) {
        assert!(!text.contains(body_line), "key material in: {text}");
        assert!(!text.contains(&b64(&sig)[..40]), "signature in: {text}");
        assert!(!text.contains(&b64(&kms_sig)[..40]), "KMS signature in: {text}");
        assert!(!text.contains(&b64_std[..40]), "KMS signature in: {text}");
        assert!(
            !text.contains(claims) && !text.contains("kms-client-7f3a"),
            "claims in: {text}"
        );
    }
    assert!(logged.contains("Sign"), "the capture saw the KMS call: {logged}");
    assert!(errors[0].contains("key set entry 0"), "{}", errors[0]);
    assert!(debug.contains(&kid), "{debug}");
}
