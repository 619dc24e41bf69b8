//! Zero-failure rotation, in process through the real router with the Secrets Manager store on
//! the moto server, and the rotation steps through the rotation mode's Lambda handler:
//!
//! - two clients send steady validation traffic for the service account with its old password;
//! - the rotation runs (`RotateSecret`, then createSecret, setSecret, testSecret, finishSecret);
//! - the *early* client switches to the new password as soon as it is staged (`AWSPENDING`,
//!   accepted beside `AWSCURRENT`), the *late* one only a while after finishSecret (its old
//!   password is `AWSPREVIOUS` by then, accepted during the grace period);
//! - every request of both must succeed. After the grace period the old password is refused.
//!
//! The service account is an OAuth client too (issue 14): while both secrets are valid (pending,
//! then previous during the grace) `/oauth/token` issues tokens for either, and after the grace
//! only for the new one. That is client-secret rotation.
//!
//! It prints `FIGURE` lines: request counts, and the pickup times of the pending version and
//! of the new `AWSCURRENT` (version check every second).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver::config::{Settings, StoreKind};
use authserver::http::app;
use authserver::lambda::rotation::Rotation;
use authserver_core::AlternateKind;
use authserver_testkit::hash::{FAST, hash};
use authserver_testkit::moto::{self, Account, Aws};
use authserver_testkit::oauth::{self, AUDIENCE, ISSUER};
use authserver_testkit::oauth_http;
use authserver_testkit::users::basic;
use authserver_testkit::wait::eventually;
use axum::body::Body;
use axum::http::{Request, header};
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const OLD: &str = "Old-Service-Password-0123456789";
const PHASES: [&str; 4] = ["before", "pending", "finished", "switched"];

/// Requests by phase and outcome of one client.
#[derive(Debug, Default)]
struct Tally {
    ok: [u32; 4],
    failed: [u32; 4],
    with_new: u32,
}

async fn validate(router: &axum::Router, user: &str, password: &str) -> u16 {
    let request = Request::post("/auth/validate")
        .header(header::AUTHORIZATION, basic(user, password))
        .body(Body::empty())
        .unwrap();
    router.clone().oneshot(request).await.unwrap().status().as_u16()
}

/// The status of a client_credentials token request by `svc` with `password`.
async fn token_status(state: &Arc<authserver::http::AppState>, password: &str) -> u16 {
    let auth = basic("svc", password);
    let answer = oauth_http::post(
        state,
        "/oauth/token",
        Some(&auth),
        "grant_type=client_credentials",
    )
    .await;
    answer.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_fails_during_a_rotation() {
    let Some(url) = moto::url("no_client_fails_during_a_rotation") else {
        return;
    };
    // The account the server's SDK client lands in: the environment's key, which moto does
    // not know, maps to its default account.
    let aws = Aws::new(
        &url,
        Account {
            id: "123456789012".into(),
            key: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "testing".into()),
            secret: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "testing".into()),
        },
    )
    .await;
    let u = moto::unique();
    let delivery = format!("zf/{u}/delivery/svc");
    aws.secret(&delivery, OLD, None).await;
    let doc = json!({
        "svc": {"passwordHash": hash(OLD, FAST),
                "deliverySecretId": delivery, "roles": ["m2m"],
                "oauth": {"scopes": ["read"], "defaultScopes": ["read"]}},
    });
    let arn = aws
        .secret(&format!("zf/{u}/credentials"), &doc.to_string(), None)
        .await;
    let function = aws.function(&format!("zf-{u}-rotation"), true).await;

    let grace = Duration::from_secs(6);
    let mut settings = Settings::default();
    settings.store.kind = StoreKind::SecretsManager;
    settings.store.secret_id = arn.clone();
    settings.store.endpoint_url = url.clone();
    settings.store.version_check_seconds = 1;
    settings.store.previous_grace_seconds = grace.as_secs();
    // finishSecret waits one version check + 5 s (the floor), so the server has loaded
    // AWSPENDING before any client can read the new password as current.
    settings.rotation.settle_seconds = 1;
    settings.log.user_hash_key = "k".into();
    settings.audit.stdout = false;
    let keys = oauth::fixture();
    settings.oauth.issuer = ISSUER.into();
    settings.oauth.audiences = vec![AUDIENCE.into()];
    settings.oauth.keys_dir = keys.keys.clone();
    let built = authserver::wiring::build(settings.clone()).unwrap();
    let store = built.state.gate.store.clone();
    let router = app(built.state.clone());

    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let early_pw = Arc::new(Mutex::new(OLD.to_owned()));
    let late_pw = Arc::new(Mutex::new(OLD.to_owned()));
    let client = |password: Arc<Mutex<String>>| {
        let (router, phase, stop) = (router.clone(), phase.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                let pw = password.lock().unwrap().clone();
                let p = usize::from(phase.load(Ordering::Relaxed));
                if validate(&router, "svc", &pw).await == 200 {
                    tally.ok[p] += 1;
                } else {
                    tally.failed[p] += 1;
                }
                tally.with_new += u32::from(pw != OLD);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tally
        })
    };
    let early = client(early_pw.clone());
    let late = client(late_pw.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;

    // The rotation, through the rotation mode's Lambda handler.
    let rotation = Rotation::new(&settings, Instant::now()).await.unwrap();
    let token = aws.start_rotation(&arn, &function, 30).await;
    let step = |name: &str| {
        let event = LambdaEvent::new(
            json!({"Step": name, "SecretId": arn, "ClientRequestToken": token}),
            Context::default(),
        );
        let handler = rotation.clone();
        async move { handler.handle(event).await.unwrap() }
    };
    assert_eq!(step("createSecret").await["outcome"], "done");
    phase.store(1, Ordering::Relaxed);
    // From here the pending version exists: time until the server accepts it.
    let watcher = {
        let store = store.clone();
        let staged = Instant::now();
        tokio::spawn(async move {
            eventually("pending version accepted", Duration::from_secs(5), || {
                store
                    .current()
                    .is_ok_and(|s| s.alternates().is_some_and(|a| a.kind() == AlternateKind::Pending))
            })
            .await;
            staged.elapsed()
        })
    };
    for name in ["setSecret", "testSecret"] {
        assert_eq!(step(name).await["outcome"], "done", "{name}");
    }
    let pending_pickup = watcher.await.unwrap();
    // The early client switches to its new password as soon as it is staged.
    let new = aws
        .sm
        .get_secret_value()
        .secret_id(&delivery)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap();
    let new = new.secret_string().unwrap().to_owned();
    *early_pw.lock().unwrap() = new.clone();
    // Two valid client secrets while the rotation is pending.
    assert_eq!(
        (
            token_status(&built.state, OLD).await,
            token_status(&built.state, &new).await
        ),
        (200, 200),
        "pending: tokens for the old and the new secret"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert_eq!(step("finishSecret").await["outcome"], "done");
    phase.store(2, Ordering::Relaxed);
    let finished = Instant::now();
    eventually("new AWSCURRENT in service", Duration::from_secs(5), || {
        store.status().version.as_deref() == Some(token.as_str())
    })
    .await;
    let current_pickup = finished.elapsed();
    // And during the grace after finishSecret.
    assert_eq!(
        (
            token_status(&built.state, OLD).await,
            token_status(&built.state, &new).await
        ),
        (200, 200),
        "grace: tokens for the old and the new secret"
    );
    // The late client reads its delivery secret again only a while after finishSecret.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(aws.value(&delivery, "AWSCURRENT").await, new);
    *late_pw.lock().unwrap() = new.clone();
    phase.store(3, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let (early, late) = (early.await.unwrap(), late.await.unwrap());

    for (who, t) in [("early", &early), ("late", &late)] {
        let by_phase: Vec<String> = PHASES
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{p} {}/{}", t.ok[i], t.ok[i] + t.failed[i]))
            .collect();
        eprintln!(
            "FIGURE zero-failure rotation, {who} client: {} requests, {} failed ({}), {} with the new password",
            t.ok.iter().sum::<u32>() + t.failed.iter().sum::<u32>(),
            t.failed.iter().sum::<u32>(),
            by_phase.join(", "),
            t.with_new
        );
        assert_eq!(t.failed, [0; 4], "{who}: {t:?}");
        assert!(
            t.ok.iter().all(|n| *n > 0),
            "{who}: traffic in every phase: {t:?}"
        );
    }
    assert!(
        early.with_new > 0 && late.ok[2] > 0,
        "the new password while pending, the old after finishing"
    );
    eprintln!(
        "FIGURE pickup with version_check_seconds = 1: pending version accepted {:.0} ms after createSecret returned, \
         new AWSCURRENT in service {:.0} ms after finishSecret returned",
        pending_pickup.as_secs_f64() * 1000.0,
        current_pickup.as_secs_f64() * 1000.0
    );
    assert!(
        current_pickup <= Duration::from_millis(1500),
        "{current_pickup:?}"
    );

    // After the grace period: the old password is refused, the new one works, and nothing
    // verified under the earlier snapshots is left in the cache.
    // (The grace period runs from when the server saw the switch.)
    let over = finished + current_pickup + grace + Duration::from_millis(200);
    tokio::time::sleep(over.saturating_duration_since(Instant::now())).await;
    assert_eq!(validate(&router, "svc", OLD).await, 401);
    assert_eq!(validate(&router, "svc", &new).await, 200);
    assert_eq!(
        token_status(&built.state, OLD).await,
        401,
        "no token for the old secret after the grace"
    );
    assert_eq!(token_status(&built.state, &new).await, 200);
    assert_eq!(
        built.state.gate.auth.cache().len(),
        1,
        "only the new password, verified just now (the token request shares the entry)"
    );
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
}
