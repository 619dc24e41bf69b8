//! The AWS token signers over the real SDK against moto: KMS keys (RSA and P-256) and a Secrets
//! Manager key set sign JWS inputs that a JWKS consumer verifies from the published JWK alone;
//! the schedule publishes a key before it signs; wrong keys fail the load. Prints the per-sign
//! latency of each (the figures in docs/deployment.md). The log capture is `oauth_logs.rs`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::oauth::{KmsKey, KmsSigner, SecretKeySigner, TokenSigner, WallClock};
use authserver_testkit::oauth_aws::{TEST_RSA_PEM, key_set, p256_pem, signing_input, verify};
use authserver_testkit::{moto, or_skip};
use aws_sdk_kms::types::KeySpec;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const NOW: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

fn clock(at: u64) -> (Arc<AtomicU64>, WallClock) {
    let t = Arc::new(AtomicU64::new(at));
    let read = t.clone();
    (t, Arc::new(move || read.load(Ordering::SeqCst)))
}

/// Signs a token for the active key and checks it against the published JWK of that kid;
/// a changed claim must fail the same check.
async fn signs_verifiably(signer: &dyn TokenSigner, alg: &str) {
    let (kid, _) = signer.active();
    let input = signing_input(&kid, alg, &json!({"sub": "client-1", "exp": NOW + 900}));
    let sig = signer.sign(input.as_bytes()).await.unwrap();
    let jwks = signer.published();
    let jwk = &jwks
        .iter()
        .find(|k| k.kid == kid)
        .expect("active key is published")
        .jwk;
    assert_eq!(jwk["alg"], alg);
    assert!(verify(jwk, input.as_bytes(), &sig), "{alg} signature verifies");
    let forged = signing_input(&kid, alg, &json!({"sub": "client-2", "exp": NOW + 900}));
    assert!(
        !verify(jwk, forged.as_bytes(), &sig),
        "{alg} signature is bound to the input"
    );
}

/// Median and 95th percentile of `n` signatures, in microseconds.
async fn latency(signer: &dyn TokenSigner, alg: &str, n: usize) -> (u128, u128) {
    let (kid, _) = signer.active();
    let input = signing_input(&kid, alg, &json!({"sub": "bench", "exp": NOW + 900}));
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        signer.sign(input.as_bytes()).await.unwrap();
        us.push(start.elapsed().as_micros());
    }
    us.sort_unstable();
    (us[n / 2], us[n * 95 / 100])
}

#[tokio::test]
async fn kms_keys_sign_tokens_a_jwks_consumer_verifies() {
    let url = or_skip!(moto::url("kms_keys_sign_tokens_a_jwks_consumer_verifies"));
    let aws = moto::Aws::fresh(&url).await;
    for (spec, alg) in [(KeySpec::Rsa2048, "RS256"), (KeySpec::EccNistP256, "ES256")] {
        let arn = aws.signing_key(spec).await;
        let keys = [KmsKey {
            key_id: arn.clone(),
            activates_at: 0,
        }];
        let signer = KmsSigner::load(aws.kms.clone(), &keys, HOUR, clock(NOW).1)
            .await
            .unwrap();
        signs_verifiably(&signer, alg).await;
        let published = signer.published();
        assert_eq!(published.len(), 1);
        let text = published[0].jwk.to_string();
        assert!(!text.contains(&aws.account.id), "no account id in JWKS: {text}");
        let (p50, p95) = latency(&signer, alg, 50).await;
        println!("KMS Sign {alg} on moto: p50 {p50} µs, p95 {p95} µs (50 calls)");
    }
}

#[tokio::test]
async fn kms_next_key_is_published_before_it_signs_and_retired_after_retain() {
    let url = or_skip!(moto::url("kms_next_key_is_published_before_it_signs"));
    let aws = moto::Aws::fresh(&url).await;
    let old = aws.signing_key(KeySpec::Rsa2048).await;
    let new = aws.signing_key(KeySpec::EccNistP256).await;
    let keys = [
        KmsKey {
            key_id: old,
            activates_at: 0,
        },
        KmsKey {
            key_id: new,
            activates_at: NOW + 2 * HOUR,
        },
    ];
    let (t, now) = clock(NOW);
    let signer = KmsSigner::load(aws.kms.clone(), &keys, HOUR, now).await.unwrap();
    let (old_kid, _) = signer.active();
    assert_eq!(
        signer.published().len(),
        2,
        "the next key is published two hours ahead"
    );
    let new_kid = signer
        .published()
        .into_iter()
        .find(|k| k.kid != old_kid)
        .unwrap()
        .kid;
    let early = signing_input(&new_kid, "ES256", &json!({}));
    assert!(
        signer.sign(early.as_bytes()).await.is_err(),
        "not before its activation"
    );
    t.store(NOW + 2 * HOUR, Ordering::SeqCst);
    assert_eq!(signer.active().0, new_kid);
    signs_verifiably(&signer, "ES256").await;
    assert_eq!(
        signer.published().len(),
        2,
        "the retired key's tokens still verify"
    );
    t.store(NOW + 3 * HOUR, Ordering::SeqCst);
    let kids: Vec<String> = signer.published().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, [new_kid], "dropped once its last token expired");
}

#[tokio::test]
async fn kms_keys_that_cannot_sign_jwts_fail_the_load() {
    let url = or_skip!(moto::url("kms_keys_that_cannot_sign_jwts_fail_the_load"));
    let aws = moto::Aws::fresh(&url).await;
    let symmetric = aws.key(false).await;
    let good = aws.signing_key(KeySpec::Rsa2048).await;
    let p384 = aws.signing_key(KeySpec::EccNistP384).await;
    for (bad, why) in [(symmetric, "SIGN_VERIFY"), (p384, "KeySpec")] {
        let keys = [
            KmsKey {
                key_id: good.clone(),
                activates_at: 0,
            },
            KmsKey {
                key_id: bad,
                activates_at: NOW + 2 * HOUR,
            },
        ];
        let err = KmsSigner::load(aws.kms.clone(), &keys, HOUR, clock(NOW).1)
            .await
            .unwrap_err();
        assert!(err.0.starts_with("oauth_aws.kms_keys[1]: "), "{err}");
        assert!(err.0.contains(why), "{err}");
    }
    let future = [KmsKey {
        key_id: good,
        activates_at: NOW + 1,
    }];
    let err = KmsSigner::load(aws.kms.clone(), &future, HOUR, clock(NOW).1)
        .await
        .unwrap_err();
    assert!(err.0.contains("no key is active"), "{err}");
}

#[tokio::test]
async fn secrets_manager_key_set_signs_and_a_refresh_publishes_the_next_key() {
    let url = or_skip!(moto::url("secrets_manager_key_set_signs"));
    let aws = moto::Aws::fresh(&url).await;
    let name = format!("oauth-keys-{}", moto::unique());
    aws.secret(&name, &key_set(&[(0, TEST_RSA_PEM)]), None).await;
    let (t, now) = clock(NOW);
    let signer = SecretKeySigner::load(aws.sm.clone(), &name, HOUR, now)
        .await
        .unwrap();
    signs_verifiably(&signer, "RS256").await;
    let ec = p256_pem();
    let next = key_set(&[(0, TEST_RSA_PEM), (NOW + 2 * HOUR, &ec)]);
    aws.sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string(next)
        .send()
        .await
        .unwrap();
    assert_eq!(
        signer.published().len(),
        1,
        "a rotation is seen only after a refresh"
    );
    signer.refresh().await.unwrap();
    assert_eq!(signer.published().len(), 2);
    assert_eq!(signer.active().1, authserver_core::oauth::Alg::Rs256);
    t.store(NOW + 2 * HOUR, Ordering::SeqCst);
    signs_verifiably(&signer, "ES256").await;
    let (p50, p95) = latency(&signer, "ES256", 1000).await;
    println!("Secrets Manager key ES256, in process: p50 {p50} µs, p95 {p95} µs (1000 signs)");
    t.store(NOW, Ordering::SeqCst);
    let (p50, p95) = latency(&signer, "RS256", 1000).await;
    println!("Secrets Manager key RS256, in process: p50 {p50} µs, p95 {p95} µs (1000 signs)");
}

#[tokio::test]
async fn build_signer_builds_the_chosen_signer_and_refreshes_the_key_set() {
    use authserver_aws::oauth::{SignerChoice, build_signer};
    let url = or_skip!(moto::url("build_signer_builds_the_chosen_signer"));
    let sdk = authserver_aws::sdk_config(Some(&url)).await;
    let retain = std::time::Duration::from_secs(HOUR);
    assert!(
        build_signer(&sdk, &SignerChoice::Local, retain)
            .await
            .unwrap()
            .is_none()
    );
    let sm = authserver_aws::secrets_client(&sdk);
    let name = format!("oauth-keys-{}", moto::unique());
    let first = key_set(&[(0, TEST_RSA_PEM)]);
    sm.create_secret()
        .name(&name)
        .secret_string(first)
        .send()
        .await
        .unwrap();
    let refresh = std::time::Duration::from_millis(200);
    let choice = SignerChoice::SecretsManager {
        secret_id: name.clone(),
        refresh,
    };
    let signer = build_signer(&sdk, &choice, retain).await.unwrap().unwrap();
    signs_verifiably(signer.as_ref(), "RS256").await;
    // A key added by a rotation is published by the refresh task, with no call of ours.
    let next = key_set(&[
        (0, TEST_RSA_PEM),
        (authserver_core::clock::now_secs() + 3 * HOUR, &p256_pem()),
    ]);
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string(next)
        .send()
        .await
        .unwrap();
    let published = || signer.published().len() == 2;
    authserver_testkit::wait::eventually(
        "the refresh publishes the next key",
        std::time::Duration::from_secs(10),
        published,
    )
    .await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let arn = kms
        .create_key()
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .key_spec(KeySpec::Rsa2048)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let choice = SignerChoice::Kms(vec![KmsKey {
        key_id: arn,
        activates_at: 0,
    }]);
    let signer = build_signer(&sdk, &choice, retain).await.unwrap().unwrap();
    signs_verifiably(signer.as_ref(), "RS256").await;
}
