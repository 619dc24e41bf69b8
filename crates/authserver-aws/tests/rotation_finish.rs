//! A rotation that cannot finish must leave every client working, and a push must win over a
//! rotation, against moto over the real SDK: a forced `users push` or a hand-made put during
//! finishSecret's settle wait, a delivery secret deleted mid-rotation, a failure after the
//! delivery secrets moved (moved back), a forced push that resets a service account's
//! password (the rotation fails instead of reverting it), and the runbook's rollback (the
//! rolled-back passwords get no grace period).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{Refreshed, RetryPolicy, users};
use authserver_testkit::hash::policy;
use authserver_testkit::moto::rotation::{
    Rig, accepted, failure, h, labels, outcome, rig, value_of, verifies,
};
use authserver_testkit::moto::wire::Wire;
use authserver_testkit::{moto, or_skip};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const SETTLE: Duration = Duration::from_millis(1500);

/// A rotation up to finishSecret; returns the token.
async fn up_to_finish(rig: &Rig) -> String {
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    for step in ["createSecret", "setSecret", "testSecret"] {
        assert_eq!(outcome(&rig.rotator(), step, &rig.arn, &token).await, "done");
    }
    token
}

/// finishSecret started in the background with the settle wait.
fn finishing(rig: &Rig, token: &str) -> tokio::task::JoinHandle<String> {
    let (r, arn, token) = (rig.settling_rotator(SETTLE), rig.arn.clone(), token.to_owned());
    tokio::spawn(async move { failure(&r, "finishSecret", &arn, &token).await })
}

/// The credential document with `change` applied.
async fn changed(rig: &Rig, change: impl FnOnce(&mut Value)) -> String {
    let mut doc: Value = serde_json::from_str(&rig.aws.value(&rig.arn, "AWSCURRENT").await).unwrap();
    change(&mut doc);
    doc.to_string()
}

async fn force_push(rig: &Rig, doc: &str) -> users::Pushed {
    users::push(
        &rig.aws.sm,
        &RetryPolicy::default(),
        &rig.arn,
        doc.as_bytes(),
        &policy(),
        true,
    )
    .await
    .unwrap()
}

/// Nothing moved on the delivery secrets, or it was moved back: the token's version is still
/// pending, not current (after a move back it also carries `AWSPREVIOUS`, which Secrets Manager
/// puts on the version `AWSCURRENT` leaves), and clients read their old passwords.
async fn deliveries_untouched(rig: &Rig, token: &str) {
    for d in [&rig.json_delivery, &rig.plain_delivery] {
        let l = labels(&rig.aws.stages(d).await, token);
        assert!(
            l.contains(&"AWSPENDING".to_owned()) && !l.contains(&"AWSCURRENT".to_owned()),
            "{d}: {l:?}"
        );
    }
    assert_eq!(rig.delivered(&rig.plain_delivery).await, "initial-b");
    assert_eq!(rig.delivered(&rig.json_delivery).await, "initial-a");
}

#[tokio::test]
async fn a_forced_push_during_the_settle_wait_stops_the_finish_before_anything_moves() {
    let url = or_skip!(moto::url(
        "a_forced_push_during_the_settle_wait_stops_the_finish_before_anything_moves"
    ));
    let rig = rig(&url).await;
    let token = up_to_finish(&rig).await;
    let finish = finishing(&rig, &token);
    tokio::time::sleep(SETTLE / 3).await;
    // Containment during the rotation (credential-leak runbook): disable a user, forced.
    let doc = changed(&rig, |d| d["human"]["status"] = json!("DISABLED")).await;
    let pushed = force_push(&rig, &doc).await;
    assert_eq!(pushed.abandoned.as_deref(), Some(token.as_str()));
    let old = pushed.replaced.as_deref().unwrap();
    let kept = pushed.abandoned.is_none().then_some(token.as_str());
    rig.as_aws_after_put(&pushed.version, old, kept, false).await;
    let err = finish.await.unwrap();
    assert!(
        err.contains("settle wait") && err.contains(&rig.arn) && err.contains("AWSPENDING"),
        "{err}"
    );
    deliveries_untouched(&rig, &token).await;
    assert_eq!(rig.holder(&rig.arn, "AWSCURRENT").await, pushed.version);
    rig.clients_work().await;
    // The abandoned rotation's passwords are no longer accepted anywhere.
    let server = rig.store(Duration::from_secs(7200));
    server.refresh().await.unwrap();
    let abandoned = value_of(&rig.aws, &rig.plain_delivery, &token).await;
    assert!(!accepted(&server, "svc-b", &abandoned));

    // The runbook's recovery: rotate again.
    let again = up_to_finish(&rig).await;
    assert_eq!(
        outcome(&rig.rotator(), "finishSecret", &rig.arn, &again).await,
        "done"
    );
    rig.clients_work().await;
    assert_ne!(rig.delivered(&rig.plain_delivery).await, "initial-b");
}

#[tokio::test]
async fn a_hand_made_put_during_the_settle_wait_stops_the_finish_before_anything_moves() {
    let url = or_skip!(moto::url(
        "a_hand_made_put_during_the_settle_wait_stops_the_finish_before_anything_moves"
    ));
    let rig = rig(&url).await;
    let token = up_to_finish(&rig).await;
    let finish = finishing(&rig, &token);
    tokio::time::sleep(SETTLE / 3).await;
    // The AWS CLI alternative of the runbook: a put that leaves AWSPENDING in place.
    let doc = changed(&rig, |d| d["human"]["status"] = json!("DISABLED")).await;
    let old = rig.holder(&rig.arn, "AWSCURRENT").await;
    let put = rig
        .aws
        .sm
        .put_secret_value()
        .secret_id(&rig.arn)
        .secret_string(doc)
        .send()
        .await
        .unwrap();
    rig.as_aws_after_put(put.version_id().unwrap(), &old, Some(&token), true)
        .await;
    let err = finish.await.unwrap();
    assert!(
        err.contains("AWSCURRENT moved") && err.contains(&rig.arn),
        "{err}"
    );
    deliveries_untouched(&rig, &token).await;
    rig.clients_work().await;
}

#[tokio::test]
async fn a_delivery_secret_deleted_mid_rotation_stops_the_finish_before_anything_moves() {
    let url = or_skip!(moto::url(
        "a_delivery_secret_deleted_mid_rotation_stops_the_finish_before_anything_moves"
    ));
    let rig = rig(&url).await;
    let token = up_to_finish(&rig).await;
    let finish = finishing(&rig, &token);
    tokio::time::sleep(SETTLE / 3).await;
    let sm = &rig.aws.sm;
    sm.delete_secret()
        .secret_id(&rig.plain_delivery)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let err = finish.await.unwrap();
    assert!(
        err.contains(&rig.plain_delivery) && err.contains("scheduled for deletion"),
        "{err}"
    );
    assert_eq!(
        labels(&rig.aws.stages(&rig.json_delivery).await, &token),
        ["AWSPENDING"]
    );
    assert_eq!(rig.delivered(&rig.json_delivery).await, "initial-a");
    assert_eq!(labels(&rig.aws.stages(&rig.arn).await, &token), ["AWSPENDING"]);
    // The secret is back (the runbook's first move); then finishSecret runs again.
    sm.restore_secret()
        .secret_id(&rig.plain_delivery)
        .send()
        .await
        .unwrap();
    rig.clients_work().await;
    assert_eq!(
        outcome(&rig.rotator(), "finishSecret", &rig.arn, &token).await,
        "done"
    );
    rig.clients_work().await;
    assert_ne!(rig.delivered(&rig.plain_delivery).await, "initial-b");
}

/// The credential secret's move fails after every delivery secret moved: they are moved back.
/// When only the answer was lost (the move happened), the rotation completes instead.
#[tokio::test]
async fn a_failure_after_the_delivery_secrets_moved_moves_them_back() {
    let url = or_skip!(moto::url(
        "a_failure_after_the_delivery_secrets_moved_moves_them_back"
    ));
    let rig = rig(&url).await;
    let token = up_to_finish(&rig).await;
    let wire = Arc::new(Wire::default());
    let r = rig.rotator_on(rig.tapped(wire.clone()), Duration::ZERO);
    // Three delivery secrets move first (off, svc-a, svc-b); the fourth move is the credential
    // secret's.
    wire.refuse_after("UpdateSecretVersionStage", 3, 400, "AccessDeniedException", 1);
    let err = failure(&r, "finishSecret", &rig.arn, &token).await;
    assert!(
        err.contains("3 delivery secret(s) moved back") && err.contains(&rig.arn),
        "{err}"
    );
    deliveries_untouched(&rig, &token).await;
    assert_eq!(labels(&rig.aws.stages(&rig.arn).await, &token), ["AWSPENDING"]);
    rig.clients_work().await;

    // Run again (Secrets Manager retries), and this time the answer to the credential
    // secret's move is lost after the move was made (a 500, then the retry finds AWSCURRENT
    // gone from the old version).
    wire.inject_after("UpdateSecretVersionStage", 3, 500, "InternalFailure", 1);
    assert_eq!(outcome(&r, "finishSecret", &rig.arn, &token).await, "done");
    for secret in [&rig.arn, &rig.json_delivery, &rig.plain_delivery] {
        assert_eq!(
            labels(&rig.aws.stages(secret).await, &token),
            ["AWSCURRENT"],
            "{secret}"
        );
    }
    rig.clients_work().await;
    assert_ne!(rig.delivered(&rig.plain_delivery).await, "initial-b");
}

/// A forced push that resets a service account's password during the rotation takes: the
/// rotation's steps fail instead of reverting it, and its pending password stops working.
#[tokio::test]
async fn a_forced_push_resetting_a_password_during_a_rotation_takes() {
    let url = or_skip!(moto::url(
        "a_forced_push_resetting_a_password_during_a_rotation_takes"
    ));
    let rig = rig(&url).await;
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    for step in ["createSecret", "setSecret"] {
        outcome(&rig.rotator(), step, &rig.arn, &token).await;
    }
    let doc = changed(&rig, |d| d["svc-b"]["passwordHash"] = json!(h("reset-b"))).await;
    let pushed = force_push(&rig, &doc).await;
    assert_eq!(pushed.abandoned.as_deref(), Some(token.as_str()));
    let old = pushed.replaced.as_deref().unwrap();
    let kept = pushed.abandoned.is_none().then_some(token.as_str());
    rig.as_aws_after_put(&pushed.version, old, kept, false).await;
    let server = rig.store(Duration::from_secs(7200));
    server.refresh().await.unwrap();
    let pending_pw = value_of(&rig.aws, &rig.plain_delivery, &token).await;
    assert!(accepted(&server, "svc-b", "reset-b"));
    assert!(
        !accepted(&server, "svc-b", &pending_pw),
        "the pending password is refused"
    );
    for step in ["testSecret", "finishSecret"] {
        let err = failure(&rig.rotator(), step, &rig.arn, &token).await;
        assert!(err.contains("not staged AWSPENDING"), "{step}: {err}");
    }
    assert_eq!(rig.holder(&rig.arn, "AWSCURRENT").await, pushed.version);
    let now: Value = serde_json::from_str(&rig.aws.value(&rig.arn, "AWSCURRENT").await).unwrap();
    assert!(verifies(
        now["svc-b"]["passwordHash"].as_str().unwrap(),
        "reset-b"
    ));
}

/// The runbook's rollback after a rotation (AWSCURRENT back to AWSPREVIOUS on the credential
/// and delivery secrets): the rolled-back passwords get no grace period, on a server that saw
/// the rotation and on one started after the rollback.
#[tokio::test]
async fn rolled_back_passwords_get_no_grace_period() {
    let url = or_skip!(moto::url("rolled_back_passwords_get_no_grace_period"));
    let rig = rig(&url).await;
    let warm = rig.store(Duration::from_secs(7200));
    warm.refresh().await.unwrap();
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    let r = rig.rotator();
    outcome(&r, "createSecret", &rig.arn, &token).await;
    warm.refresh().await.unwrap(); // sees AWSPENDING
    for step in ["setSecret", "testSecret", "finishSecret"] {
        assert_eq!(outcome(&r, step, &rig.arn, &token).await, "done");
    }
    assert!(matches!(warm.refresh().await.unwrap(), Refreshed::Loaded { .. }));
    let new_b = rig.delivered(&rig.plain_delivery).await;
    assert!(accepted(&warm, "svc-b", &new_b) && accepted(&warm, "svc-b", "initial-b"));

    for secret in [&rig.arn, &rig.plain_delivery, &rig.json_delivery] {
        let (current, previous) = (
            rig.holder(secret, "AWSCURRENT").await,
            rig.holder(secret, "AWSPREVIOUS").await,
        );
        rig.aws
            .sm
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage("AWSCURRENT")
            .move_to_version_id(previous)
            .remove_from_version_id(current)
            .send()
            .await
            .unwrap();
    }
    assert!(matches!(warm.refresh().await.unwrap(), Refreshed::Loaded { .. }));
    let cold = rig.store(Duration::from_secs(7200));
    cold.refresh().await.unwrap();
    for server in [&warm, &cold] {
        assert!(accepted(server, "svc-b", "initial-b"));
        assert!(
            !accepted(server, "svc-b", &new_b),
            "a rolled-back password is refused"
        );
    }
    rig.clients_work().await;
}
