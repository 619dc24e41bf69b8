//! The Secrets Manager store during rotations, against moto over the real SDK: while
//! `AWSPENDING` exists service accounts' new passwords work too; after the switch their old ones
//! work for the grace period (from the switch this process saw, or from `LastRotatedDate` for a
//! process started later); a push ends that at once; other versions cost one fetch each, the
//! switch none; a new `AWSCURRENT` is picked up within the version-check interval (measured).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{Refreshed, SecretsManagerStore, SecretsStoreConfig};
use authserver_core::{
    Authenticator, Clock, Credentials, ManualClock, Outcome, Secret, SnapshotSource, SystemClock, UserHasher,
    VerifiedCache, hash_password,
};
use authserver_testkit::hash::{CHEAP, policy};
use authserver_testkit::moto::wire::{Tap, Wire};
use authserver_testkit::moto::{self, Aws, store};
use authserver_testkit::or_skip;
use authserver_testkit::wait::eventually;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DESCRIBE: &str = "DescribeSecret";
const GET: &str = "GetSecretValue";

/// A store document: `svc` a service account, `human` not; the human's hash given so that
/// versions can share it (a rotation does not touch it).
fn doc(svc_pw: &str, human_hash: &str) -> String {
    serde_json::json!({
        "svc": {"passwordHash": hash_password(&Secret::from(svc_pw), CHEAP).unwrap(), "deliverySecretId": "d/svc"},
        "human": {"passwordHash": human_hash},
    })
    .to_string()
}

struct Rig {
    aws: Aws,
    name: String,
    function: String,
    wire: Arc<Wire>,
    human: String,
}

async fn rig(url: &str) -> Rig {
    let aws = Aws::fresh(url).await;
    let name = format!("rot/{}/credentials", moto::unique());
    let function = aws
        .function(&format!("rot-{}-rotation", moto::unique()), true)
        .await;
    let human = hash_password(&Secret::from("human-pw"), CHEAP).unwrap();
    aws.secret(&name, &doc("old-svc", &human), None).await;
    Rig {
        aws,
        name,
        function,
        wire: Arc::new(Wire::default()),
        human,
    }
}

fn store(rig: &Rig, grace: Duration, clock: Arc<dyn Clock>) -> SecretsManagerStore {
    let mut config = store::config(&rig.name);
    config.accept_pending = true;
    config.previous_grace = grace;
    let client = aws_sdk_secretsmanager::Client::from_conf(
        rig.aws
            .sm
            .config()
            .to_builder()
            .interceptor(Tap(rig.wire.clone()))
            .build(),
    );
    SecretsManagerStore::new(client, config, UserHasher::new(b"k"), clock)
}

/// Stages `AWSPENDING` with the new service-account password (what `createSecret` writes).
async fn stage_pending(rig: &Rig, token: &str) {
    rig.aws
        .sm
        .put_secret_value()
        .secret_id(&rig.name)
        .client_request_token(token)
        .secret_string(doc("new-svc", &rig.human))
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
}

/// Moves `AWSCURRENT` to `token` and drops `AWSPENDING` (what `finishSecret` does).
async fn finish(rig: &Rig, token: &str) {
    let stages = rig.aws.stages(&rig.name).await;
    let current = stages
        .iter()
        .find(|(_, s)| s.iter().any(|l| l == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .unwrap();
    let sm = &rig.aws.sm;
    sm.update_secret_version_stage()
        .secret_id(&rig.name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(token)
        .remove_from_version_id(current)
        .send()
        .await
        .unwrap();
    sm.update_secret_version_stage()
        .secret_id(&rig.name)
        .version_stage("AWSPENDING")
        .remove_from_version_id(token)
        .send()
        .await
        .unwrap();
}

fn allowed(auth: &Authenticator, store: &SecretsManagerStore, user: &str, pw: &str) -> bool {
    let snapshot = store.current().unwrap();
    matches!(
        auth.authenticate(&snapshot, Credentials::new(user, pw).unwrap())
            .outcome,
        Outcome::Allowed { .. }
    )
}

fn authenticator() -> Authenticator {
    Authenticator::new(VerifiedCache::new(
        64,
        Duration::from_secs(60),
        Arc::new(SystemClock),
    ))
}

#[tokio::test]
async fn pending_then_previous_for_the_grace_period_then_current_only() {
    let url = or_skip!(moto::url(
        "pending_then_previous_for_the_grace_period_then_current_only"
    ));
    let rig = rig(&url).await;
    // Real time: the grace period is counted from the switch this process saw and from
    // LastRotatedDate, which is wall-clock time.
    let grace = Duration::from_secs(3);
    let store = store(&rig, grace, Arc::new(SystemClock));
    let auth = authenticator();

    assert!(matches!(store.refresh().await.unwrap(), Refreshed::Loaded { .. }));
    assert_eq!(
        (rig.wire.attempts(GET), rig.wire.attempts(DESCRIBE)),
        (1, 1),
        "cold start: the value and the labels, concurrently"
    );
    let v1 = store.current().unwrap();
    assert!(v1.alternates().is_none());
    assert!(allowed(&auth, &store, "svc", "old-svc") && !allowed(&auth, &store, "svc", "new-svc"));

    // A rotation starts: AWSPENDING's service-account passwords work too, fetched once.
    let token = rig.aws.start_rotation(&rig.name, &rig.function, 30).await;
    stage_pending(&rig, &token).await;
    assert_eq!(
        store.refresh().await.unwrap(),
        Refreshed::Alternates {
            version: v1.version().to_owned(),
            accepting: Some(("pending", token.clone())),
        }
    );
    let pending = store.current().unwrap();
    assert!(
        pending.generation() > v1.generation(),
        "a new generation: caches start over"
    );
    assert!(allowed(&auth, &store, "svc", "old-svc") && allowed(&auth, &store, "svc", "new-svc"));
    assert!(allowed(&auth, &store, "human", "human-pw") && !allowed(&auth, &store, "human", "new-svc"));
    assert_eq!(store.refresh().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(rig.wire.attempts(GET), 2, "the pending version is fetched once");

    // finishSecret: the pending version becomes current without a fetch; the old passwords
    // keep working for the grace period, counted from the switch.
    finish(&rig, &token).await;
    let switched = Instant::now();
    assert_eq!(
        store.refresh().await.unwrap(),
        Refreshed::Loaded {
            version: token.clone(),
            users: 2
        }
    );
    assert_eq!(
        rig.wire.attempts(GET),
        2,
        "switching to the known pending version costs no fetch"
    );
    let after = store.current().unwrap();
    let alternates = after.alternates().unwrap();
    assert_eq!((alternates.kind().as_str(), alternates.len()), ("previous", 1));
    assert!(allowed(&auth, &store, "svc", "new-svc") && allowed(&auth, &store, "svc", "old-svc"));

    // The grace period ends at the deadline, on the next read, without a refresh.
    tokio::time::sleep(
        (switched + grace + Duration::from_millis(100)).saturating_duration_since(Instant::now()),
    )
    .await;
    let ended = store.current().unwrap();
    assert!(ended.alternates().is_none() && ended.generation() > after.generation());
    assert!(allowed(&auth, &store, "svc", "new-svc"));
    assert!(
        !allowed(&auth, &store, "svc", "old-svc"),
        "old password refused after the grace period"
    );
    assert_eq!(
        store.refresh().await.unwrap(),
        Refreshed::Unchanged,
        "and it stays over"
    );
    assert!(!allowed(&auth, &store, "svc", "old-svc"));
}

#[tokio::test]
async fn a_process_started_after_the_rotation_counts_grace_from_last_rotated_date() {
    let url = or_skip!(moto::url(
        "a_process_started_after_the_rotation_counts_grace_from_last_rotated_date"
    ));
    let rig = rig(&url).await;
    let token = rig.aws.start_rotation(&rig.name, &rig.function, 30).await;
    stage_pending(&rig, &token).await;
    finish(&rig, &token).await;

    let within = store(&rig, Duration::from_secs(3600), Arc::new(SystemClock));
    within.refresh().await.unwrap();
    let auth = authenticator();
    assert!(allowed(&auth, &within, "svc", "new-svc") && allowed(&auth, &within, "svc", "old-svc"));
    assert_eq!(
        rig.wire.attempts(GET),
        2,
        "current (with the labels), then the previous version"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let over = store(&rig, Duration::from_secs(1), Arc::new(SystemClock));
    over.refresh().await.unwrap();
    assert!(over.current().unwrap().alternates().is_none());
    assert!(
        !allowed(&auth, &over, "svc", "old-svc"),
        "LastRotatedDate + 1 s is over"
    );
}

#[tokio::test]
async fn a_push_ends_the_grace_period_at_once() {
    let url = or_skip!(moto::url("a_push_ends_the_grace_period_at_once"));
    let rig = rig(&url).await;
    let token = rig.aws.start_rotation(&rig.name, &rig.function, 30).await;
    stage_pending(&rig, &token).await;
    finish(&rig, &token).await;
    let store = store(&rig, Duration::from_secs(3600), Arc::new(SystemClock));
    store.refresh().await.unwrap();
    let auth = authenticator();
    assert!(allowed(&auth, &store, "svc", "old-svc"), "grace period running");

    // Leak response: an operator pushes a new password for the service account.
    let pushed = authserver_aws::users::push(
        &rig.aws.sm,
        &authserver_aws::RetryPolicy::default(),
        &rig.name,
        doc("leak-fixed", &rig.human).as_bytes(),
        &policy(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(pushed.replaced.as_deref(), Some(token.as_str()));
    let stages = rig.aws.stages(&rig.name).await;
    assert!(
        stages.values().flatten().all(|l| l != "AWSPREVIOUS"),
        "AWSPREVIOUS detached: {stages:?}"
    );
    assert!(
        matches!(store.refresh().await.unwrap(), Refreshed::Loaded { version, .. } if version == pushed.version)
    );
    assert!(store.current().unwrap().alternates().is_none());
    assert!(allowed(&auth, &store, "svc", "leak-fixed"));
    assert!(!allowed(&auth, &store, "svc", "new-svc") && !allowed(&auth, &store, "svc", "old-svc"));
}

#[tokio::test]
async fn an_invalid_pending_version_is_ignored_and_not_fetched_again() {
    let url = or_skip!(moto::url(
        "an_invalid_pending_version_is_ignored_and_not_fetched_again"
    ));
    let rig = rig(&url).await;
    let store = store(&rig, Duration::from_secs(60), Arc::new(ManualClock::default()));
    store.refresh().await.unwrap();
    let token = rig.aws.start_rotation(&rig.name, &rig.function, 30).await;
    rig.aws
        .sm
        .put_secret_value()
        .secret_id(&rig.name)
        .client_request_token(&token)
        // Invalid as a document (a hash that merely fails the policy would load, refusing
        // that entry only, and give no alternate).
        .secret_string(r#"{"svc": {"passwordHash": 42}}"#)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(store.refresh().await.unwrap(), Refreshed::Unchanged);
    }
    assert_eq!(rig.wire.attempts(GET), 2, "refused once, not fetched again");
    let auth = authenticator();
    assert!(store.current().unwrap().alternates().is_none());
    assert!(allowed(&auth, &store, "svc", "old-svc"));
    assert!(store.status().ready && store.status().last_error.is_none());
}

#[tokio::test]
async fn a_new_current_version_is_picked_up_within_the_version_check_interval() {
    let url = or_skip!(moto::url(
        "a_new_current_version_is_picked_up_within_the_version_check_interval"
    ));
    let rig = rig(&url).await;
    let check = Duration::from_secs(1);
    let mut config = SecretsStoreConfig::new(&rig.name, policy());
    config.version_check = check;
    let store = SecretsManagerStore::new(
        rig.aws.sm.clone(),
        config,
        UserHasher::new(b"k"),
        Arc::new(SystemClock),
    );
    let task = store.spawn_refresher();
    eventually("first load", Duration::from_secs(5), || store.current().is_ok()).await;
    let mut pickups = Vec::new();
    for i in 0..5 {
        // Spread the puts over the check interval.
        tokio::time::sleep(Duration::from_millis(170 * i + 50)).await;
        let version = rig
            .aws
            .sm
            .put_secret_value()
            .secret_id(&rig.name)
            .secret_string(doc(&format!("pw-{i}"), &rig.human))
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_owned();
        let put = Instant::now();
        eventually("new version in service", Duration::from_secs(5), || {
            store.current().is_ok_and(|s| s.version() == version)
        })
        .await;
        pickups.push(put.elapsed());
    }
    task.abort();
    pickups.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "FIGURE pickup of a new AWSCURRENT version, version_check_seconds = 1, {} trials: \
         min {:.0} ms, median {:.0} ms, max {:.0} ms",
        pickups.len(),
        ms(pickups[0]),
        ms(pickups[pickups.len() / 2]),
        ms(pickups[pickups.len() - 1])
    );
    assert!(
        pickups.iter().all(|p| *p <= check + Duration::from_millis(500)),
        "every pickup within the interval plus a round trip: {pickups:?}"
    );
}
