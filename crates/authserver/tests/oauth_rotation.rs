//! Key rotation while consumers validate with a cached JWKS (issue 14's drill, on a simulated
//! clock): a consumer that refreshes its JWKS copy only every hour (API Gateway's longest cache)
//! validates every token issued, and every token still live, minute by minute across a
//! rotation: zero failures with the publish lead, and failures without it (the control).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::oauth::keyset;
use authserver::oauth::signer::LocalSigner;
use authserver_core::oauth::jwt::{self, AccessClaims, Expect};
use authserver_core::oauth::{Alg, TokenSigner, VerifyingKey};
use std::sync::atomic::{AtomicU64, Ordering};

const T0: u64 = 1_900_000_000;
const LIFETIME: u64 = 900;
const SKEW: u64 = 30;
const CONSUMER_CACHE: u64 = 3600;

static CLOCK_LEAD: AtomicU64 = AtomicU64::new(T0);
static CLOCK_NOW: AtomicU64 = AtomicU64::new(T0);

fn add_key(dir: &std::path::Path, kid: &str, signs_from: u64) {
    keyset::add(
        dir,
        kid,
        &keyset::generate_es256_pem().unwrap(),
        signs_from,
        signs_from,
    )
    .unwrap();
}

/// Runs three hours with a rotation at T0 + 100 whose key signs `lead` later; returns how many
/// validations failed at the caching consumer and the kids active at the start and the end.
async fn rotate_under_validation(
    clock: &'static AtomicU64,
    now: fn() -> u64,
    lead: u64,
) -> (usize, String, String) {
    let dir = tempfile::tempdir().unwrap();
    add_key(dir.path(), "key-a", T0);
    let signer = LocalSigner::open_with_clock(dir.path().to_owned(), LIFETIME + SKEW, now).unwrap();
    let parse = |s: &LocalSigner| -> Vec<VerifyingKey> {
        s.published()
            .iter()
            .map(|k| VerifyingKey::from_jwk(&k.jwk).unwrap())
            .collect()
    };
    let (mut cached, mut fetched_at) = (parse(&signer), T0);
    let first = signer.active().0;
    let (mut live, mut failures) = (Vec::<(u64, String)>::new(), 0);
    let audiences = ["https://api.example".to_owned()];
    for t in (T0..T0 + 3 * 3600).step_by(60) {
        clock.store(t, Ordering::SeqCst);
        if t == T0 + 120 {
            add_key(dir.path(), "key-b", t + lead);
        }
        signer.reload().unwrap();
        if t >= fetched_at + CONSUMER_CACHE {
            (cached, fetched_at) = (parse(&signer), t);
        }
        let (kid, alg) = signer.active();
        let claims = AccessClaims {
            iss: "https://issuer.example".into(),
            sub: "c".into(),
            client_id: "c".into(),
            aud: audiences[0].clone(),
            scope: "read".into(),
            iat: t,
            exp: t + LIFETIME,
            jti: jwt::new_jti().unwrap(),
        };
        assert_eq!(alg, Alg::Es256);
        let input = jwt::signing_input(alg, &kid, &claims).unwrap();
        live.push((
            claims.exp,
            jwt::compact(&input, &signer.sign(input.as_bytes()).await.unwrap()),
        ));
        live.retain(|(exp, _)| *exp > t);
        let expect = Expect {
            issuer: "https://issuer.example",
            audiences: &audiences,
            now: t,
            skew: SKEW,
        };
        failures += live
            .iter()
            .filter(|(_, tok)| jwt::verify_access_token(tok, &cached, expect).is_err())
            .count();
    }
    (failures, first, signer.active().0)
}

#[tokio::test]
async fn a_consumer_with_an_hour_of_jwks_cache_sees_no_failure_across_a_rotation() {
    let (failures, first, last) =
        rotate_under_validation(&CLOCK_LEAD, || CLOCK_LEAD.load(Ordering::SeqCst), 3600).await;
    assert_eq!(
        (first.as_str(), last.as_str()),
        ("key-a", "key-b"),
        "the rotation happened"
    );
    assert_eq!(failures, 0, "publish-before-sign: no validation failed");
}

#[tokio::test]
async fn without_the_lead_the_same_consumer_fails_the_control() {
    let (failures, _, last) =
        rotate_under_validation(&CLOCK_NOW, || CLOCK_NOW.load(Ordering::SeqCst), 0).await;
    assert_eq!(last, "key-b");
    assert!(
        failures > 0,
        "a key that signs at once is unknown to cached copies"
    );
}
