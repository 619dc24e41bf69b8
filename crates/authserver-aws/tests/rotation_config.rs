//! What a rotation checks about its configuration, against moto over the real SDK: the
//! rotation schedule's probe (`testSecret` on a pending version without a value), the service
//! accounts' delivery secrets (refused at push, load and createSecret when shared or the
//! credential secret itself), and the exact set of IAM actions a rotation calls
//! (`deploy/aws/rotation-actions.txt`, which scripts/test-deploy.sh checks against RotationRole).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{RefreshError, RetryPolicy, users};
use authserver_core::SnapshotSource;
use authserver_testkit::hash::policy;
use authserver_testkit::moto::rotation::{self, Rig, failure, labels, outcome, rig};
use authserver_testkit::moto::wire::Wire;
use authserver_testkit::{moto, or_skip};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// With `RotateImmediatelyOnUpdate: false` Secrets Manager runs only `testSecret`, on a fresh
/// `AWSPENDING` version without a value. (moto's `RotateSecret` without `RotateImmediately`
/// stages exactly such a version, since it runs no function.)
#[tokio::test]
async fn test_secret_on_a_pending_version_without_value_is_the_configuration_probe() {
    let url = or_skip!(moto::url(
        "test_secret_on_a_pending_version_without_value_is_the_configuration_probe"
    ));
    let rig = rig(&url).await;
    let r = rig.rotator();
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    let report = r
        .run(&rotation::event("testSecret", &rig.arn, &token))
        .await
        .unwrap();
    assert_eq!(report.outcome, "configuration checked");
    assert_eq!(
        report.accounts.len(),
        3,
        "every service account's delivery secret checked"
    );
    // Nothing written: no value on the pending version, no version in any delivery secret.
    let pending = rig
        .aws
        .sm
        .get_secret_value()
        .secret_id(&rig.arn)
        .version_id(&token)
        .send()
        .await;
    assert!(pending.is_err(), "the probe writes nothing");
    for d in [&rig.json_delivery, &rig.plain_delivery, &rig.off_delivery] {
        assert!(labels(&rig.aws.stages(d).await, &token).is_empty(), "{d}");
    }

    // A delivery secret scheduled for deletion: the probe fails, naming it.
    rig.aws
        .sm
        .delete_secret()
        .secret_id(&rig.plain_delivery)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let err = failure(&r, "testSecret", &rig.arn, &token).await;
    assert!(
        err.contains(&rig.plain_delivery) && err.contains("scheduled for deletion"),
        "{err}"
    );
    rig.aws
        .sm
        .restore_secret()
        .secret_id(&rig.plain_delivery)
        .send()
        .await
        .unwrap();
    assert_eq!(
        outcome(&r, "testSecret", &rig.arn, &token).await,
        "configuration checked"
    );
    // The same rotation then runs as usual.
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        assert_eq!(outcome(&r, step, &rig.arn, &token).await, "done", "{step}");
    }
    rig.clients_work().await;
}

/// The credential document with `svc-a`'s and `svc-b`'s delivery secrets set to these.
async fn with_delivery(rig: &Rig, a: &str, b: &str) -> String {
    let mut doc: Value = serde_json::from_str(&rig.aws.value(&rig.arn, "AWSCURRENT").await).unwrap();
    doc["svc-a"]["deliverySecretId"] = json!(a);
    doc["svc-b"]["deliverySecretId"] = json!(b);
    doc.to_string()
}

#[tokio::test]
async fn shared_or_self_delivery_secrets_are_refused_at_push_load_and_create() {
    let url = or_skip!(moto::url(
        "shared_or_self_delivery_secrets_are_refused_at_push_load_and_create"
    ));
    for shared in [true, false] {
        // A fresh secret per case: moto's RotateSecret leaves its "default version" on the
        // pending version, and a later put then leaves two versions staged AWSCURRENT.
        let rig = rig(&url).await;
        let (doc, why) = if shared {
            let d = &rig.json_delivery;
            (with_delivery(&rig, d, d).await, "share the delivery secret")
        } else {
            let name = rig.arn.split(":secret:").nth(1).unwrap();
            let name = &name[..name.len() - 7]; // the full ARN's random suffix
            let doc = with_delivery(&rig, name, &rig.plain_delivery).await;
            (doc, "is the credential secret itself")
        };
        refused_everywhere(&rig, &doc, why).await;
    }
}

async fn refused_everywhere(rig: &Rig, doc: &str, why: &str) {
    // Push: refused before any AWS call.
    let versions = rig.aws.stages(&rig.arn).await.len();
    let err = users::push(
        &rig.aws.sm,
        &RetryPolicy::default(),
        &rig.arn,
        doc.as_bytes(),
        &policy(),
        false,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains(why), "{err}");
    assert_eq!(rig.aws.stages(&rig.arn).await.len(), versions, "nothing uploaded");

    // Load: a server refuses the version and keeps serving the last good one; a server that
    // starts then has no snapshot (never an unchecked one).
    let server = rig.store(Duration::from_secs(60));
    server.refresh().await.unwrap();
    let good = server.current().unwrap().version().to_owned();
    rig.aws
        .sm
        .put_secret_value()
        .secret_id(&rig.arn)
        .secret_string(doc)
        .send()
        .await
        .unwrap();
    match server.refresh().await {
        Err(RefreshError::Invalid { reason, .. }) => {
            assert!(reason.contains(why), "{reason}");
            assert!(!reason.contains("svc-a"), "user_hash, not names: {reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.current().unwrap().version(), good);
    let cold = rig.store(Duration::from_secs(60));
    assert!(cold.refresh().await.is_err() && cold.current().is_err());

    // createSecret, and the probe, refuse it before writing anything.
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    let r = rig.rotator();
    for step in ["testSecret", "createSecret"] {
        let err = failure(&r, step, &rig.arn, &token).await;
        assert!(err.contains(why) && !err.contains("svc-a"), "{step}: {err}");
    }
    for d in [&rig.json_delivery, &rig.plain_delivery, &rig.off_delivery] {
        assert!(labels(&rig.aws.stages(d).await, &token).is_empty(), "{d} written");
    }
}

/// Every AWS call of a rotation (the probe, the four steps, a retried finish) is an action in
/// `deploy/aws/rotation-actions.txt`, and every action there is used: the list the deployment
/// check holds RotationRole's policy to is the function's real behaviour.
#[tokio::test]
async fn a_rotation_calls_exactly_the_listed_iam_actions() {
    let url = or_skip!(moto::url("a_rotation_calls_exactly_the_listed_iam_actions"));
    let rig = rig(&url).await;
    let wire = Arc::new(Wire::default());
    let r = rig.rotator_on(rig.tapped(wire.clone()), Duration::ZERO);
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    for step in [
        "testSecret",
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
        "finishSecret",
    ] {
        r.run(&rotation::event(step, &rig.arn, &token)).await.unwrap();
    }
    let called: Vec<String> = wire
        .operations()
        .into_iter()
        .map(|op| format!("secretsmanager:{op}"))
        .collect();
    let listed: Vec<String> = include_str!("../../../deploy/aws/rotation-actions.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "rotation-actions.txt is sorted");
    assert_eq!(
        called, listed,
        "the rotation's calls vs deploy/aws/rotation-actions.txt"
    );
}
