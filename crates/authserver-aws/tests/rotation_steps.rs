//! The rotation function's four steps against moto over the real SDK: what each writes, that
//! each is idempotent under retries, that tokens other than the pending version are refused,
//! and that a change of `AWSCURRENT` during a rotation stops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::{RotationError, Rotator};
use authserver_core::{AuditEvent, UserHasher};
use authserver_testkit::moto::rotation::{ALPHABET, config, event, labels, outcome, rig, value_of, verifies};
use authserver_testkit::{moto, or_skip};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn four_steps_rotate_service_accounts_and_each_is_idempotent() {
    let url = or_skip!(moto::url(
        "four_steps_rotate_service_accounts_and_each_is_idempotent"
    ));
    let rig = rig(&url).await;
    let r = rig.rotator();
    let old = rig.aws.value(&rig.arn, "AWSCURRENT").await;
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;

    // createSecret: passwords staged in the delivery secrets, hashes in AWSPENDING.
    let report = r.run(&event("createSecret", &rig.arn, &token)).await.unwrap();
    assert_eq!(
        (report.step, report.outcome, report.accounts.len()),
        ("createSecret", "done", 3)
    );
    assert!(
        report.accounts.contains(&UserHasher::new(b"k").hash("svc-a")),
        "user_hash, not names: {:?}",
        report.accounts
    );
    let staged_a: Value =
        serde_json::from_str(&value_of(&rig.aws, &rig.json_delivery, &token).await).unwrap();
    assert_eq!(staged_a["url"], "https://service-a.example", "other fields kept");
    assert_eq!(staged_a["username"], "svc-a");
    let new_a = staged_a["password"].as_str().unwrap().to_owned();
    let new_b = value_of(&rig.aws, &rig.plain_delivery, &token).await;
    for pw in [&new_a, &new_b] {
        assert_eq!(pw.len(), 32);
        assert!(pw.chars().all(|c| ALPHABET.contains(c)), "{pw}");
    }
    assert_ne!(new_a, new_b);
    let pending: Value = serde_json::from_str(&value_of(&rig.aws, &rig.arn, &token).await).unwrap();
    let current: Value = serde_json::from_str(&old).unwrap();
    assert!(verifies(
        pending["svc-a"]["passwordHash"].as_str().unwrap(),
        &new_a
    ));
    assert!(verifies(
        pending["svc-b"]["passwordHash"].as_str().unwrap(),
        &new_b
    ));
    assert_ne!(
        pending["svc-a"]["passwordChangedAt"],
        current["svc-a"]["passwordChangedAt"]
    );
    let record = |v: &Value, user: &str| {
        authserver_core::parse_document(v.to_string().as_bytes()).unwrap()[user].clone()
    };
    assert!(
        record(&pending, "human") == record(&current, "human"),
        "humans are not rotated"
    );
    // A disabled service account gets a new password too (the way out of a leak: disable,
    // rotate, enable), and stays disabled.
    let (off_now, off_pending) = (record(&current, "off"), record(&pending, "off"));
    assert_eq!(off_pending.status, authserver_core::Status::Disabled);
    assert!(
        off_pending.password_hash != off_now.password_hash,
        "disabled accounts rotate"
    );
    assert!(!verifies(
        pending["off"]["passwordHash"].as_str().unwrap(),
        "off-pw"
    ));
    assert_eq!(pending["svc-a"]["roles"], json!(["m2m"]));
    let stages = rig.aws.stages(&rig.arn).await;
    assert_eq!(labels(&stages, &token), ["AWSPENDING"]);
    assert_eq!(
        labels(&rig.aws.stages(&rig.json_delivery).await, &token),
        ["AWSPENDING"]
    );
    // Retried: nothing new is generated or written.
    assert_eq!(
        outcome(&r, "createSecret", &rig.arn, &token).await,
        "already done"
    );
    assert_eq!(value_of(&rig.aws, &rig.plain_delivery, &token).await, new_b);
    assert_eq!(
        serde_json::from_str::<Value>(&value_of(&rig.aws, &rig.arn, &token).await).unwrap(),
        pending
    );

    // setSecret and testSecret, twice each.
    for step in ["setSecret", "setSecret", "testSecret", "testSecret"] {
        assert_eq!(outcome(&r, step, &rig.arn, &token).await, "done", "{step}");
    }
    // Clients still read the old passwords until finishSecret.
    assert_eq!(
        rig.aws.value(&rig.plain_delivery, "AWSCURRENT").await,
        "initial-b"
    );

    // finishSecret: AWSCURRENT moves on every secret, AWSPENDING is gone.
    assert_eq!(outcome(&r, "finishSecret", &rig.arn, &token).await, "done");
    for secret in [&rig.arn, &rig.json_delivery, &rig.plain_delivery] {
        let stages = rig.aws.stages(secret).await;
        assert_eq!(labels(&stages, &token), ["AWSCURRENT"], "{secret}: {stages:?}");
        assert!(stages.values().flatten().any(|l| l == "AWSPREVIOUS"), "{secret}");
        assert!(stages.values().flatten().all(|l| l != "AWSPENDING"), "{secret}");
    }
    let now: Value = serde_json::from_str(&rig.aws.value(&rig.arn, "AWSCURRENT").await).unwrap();
    assert_eq!(rig.aws.value(&rig.plain_delivery, "AWSCURRENT").await, new_b);
    assert!(verifies(now["svc-b"]["passwordHash"].as_str().unwrap(), &new_b));
    assert_eq!(
        rig.aws.value(&rig.plain_delivery, "AWSPREVIOUS").await,
        "initial-b"
    );
    // Every step after the end: nothing to do.
    for step in ["finishSecret", "createSecret", "setSecret", "testSecret"] {
        assert_eq!(
            outcome(&r, step, &rig.arn, &token).await,
            "already current",
            "{step}"
        );
    }
    let actions: Vec<String> = rig
        .audit
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            AuditEvent::AdminAction { action, .. } => Some(action.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(actions.len(), 11, "one per step run: {actions:?}");
    assert_eq!(actions[0], "rotation.createSecret");

    // A second rotation works from the new state.
    let again = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        assert_eq!(outcome(&r, step, &rig.arn, &again).await, "done", "{step}");
    }
    assert_ne!(rig.aws.value(&rig.plain_delivery, "AWSCURRENT").await, new_b);
}

/// finishSecret holds `AWSCURRENT` back for the settle time (so servers load `AWSPENDING` first):
/// half-way through, neither the credential secret nor a delivery secret has moved.
#[tokio::test]
async fn finish_waits_the_settle_time_before_moving_awscurrent() {
    let url = or_skip!(moto::url("finish_waits_the_settle_time_before_moving_awscurrent"));
    let rig = rig(&url).await;
    let r = rig.settling_rotator(Duration::from_millis(2000));
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    for step in ["createSecret", "setSecret", "testSecret"] {
        assert_eq!(outcome(&r, step, &rig.arn, &token).await, "done", "{step}");
    }
    let finish = {
        let (r, arn, token) = (r.clone(), rig.arn.clone(), token.clone());
        tokio::spawn(async move { outcome(&r, "finishSecret", &arn, &token).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    for secret in [&rig.arn, &rig.plain_delivery] {
        assert_eq!(
            labels(&rig.aws.stages(secret).await, &token),
            ["AWSPENDING"],
            "{secret} moved before the settle time"
        );
    }
    assert_eq!(finish.await.unwrap(), "done");
    for secret in [&rig.arn, &rig.plain_delivery] {
        assert_eq!(labels(&rig.aws.stages(secret).await, &token), ["AWSCURRENT"]);
    }
}

#[tokio::test]
async fn a_retried_create_reuses_a_password_already_staged() {
    let url = or_skip!(moto::url("a_retried_create_reuses_a_password_already_staged"));
    let rig = rig(&url).await;
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    // A first attempt that died after staging svc-b's password, before writing the hashes.
    rig.aws
        .sm
        .put_secret_value()
        .secret_id(&rig.plain_delivery)
        .client_request_token(&token)
        .secret_string("Staged-By-A-Dead-Attempt-0123456789")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(
        outcome(&rig.rotator(), "createSecret", &rig.arn, &token).await,
        "done"
    );
    let pending: Value = serde_json::from_str(&value_of(&rig.aws, &rig.arn, &token).await).unwrap();
    assert!(verifies(
        pending["svc-b"]["passwordHash"].as_str().unwrap(),
        "Staged-By-A-Dead-Attempt-0123456789"
    ));
}

#[tokio::test]
async fn tokens_that_are_not_the_pending_version_are_refused() {
    let url = or_skip!(moto::url("tokens_that_are_not_the_pending_version_are_refused"));
    let rig = rig(&url).await;
    let r = rig.rotator();
    let refused = |result: Result<authserver_aws::StepReport, RotationError>, want: &str| match result {
        Err(RotationError::Refused(why)) => assert!(why.contains(want), "{why}"),
        other => panic!("expected a refusal ({want}), got {other:?}"),
    };
    // Rotation not enabled yet.
    let current = rig.aws.stages(&rig.arn).await.into_keys().next().unwrap();
    refused(
        r.run(&event("createSecret", &rig.arn, &current)).await,
        "rotation is not enabled",
    );

    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    refused(
        r.run(&event(
            "createSecret",
            &rig.arn,
            "00000000-0000-4000-8000-000000000000",
        ))
        .await,
        "is not a version",
    );
    refused(
        r.run(&event("rotateEverything", &rig.arn, &token)).await,
        "unknown step",
    );
    let other = Rotator::new(
        rig.aws.sm.clone(),
        config(Some("some/other/secret")),
        UserHasher::new(b"k"),
        rig.audit.clone(),
    );
    refused(
        other.run(&event("createSecret", &rig.arn, &token)).await,
        "rotates some/other/secret only",
    );
    // Before createSecret wrote it, the pending version has no value: setSecret and
    // finishSecret fail (testSecret is then the configuration probe: rotation_config.rs).
    for step in ["setSecret", "finishSecret"] {
        match r.run(&event(step, &rig.arn, &token)).await {
            Err(RotationError::Invalid(why)) => {
                assert!(why.contains("createSecret has not run"), "{step}: {why}");
            }
            other => panic!("{step}: {other:?}"),
        }
    }
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        outcome(&r, step, &rig.arn, &token).await;
    }
    // The old version is now AWSPREVIOUS: not pending, refused.
    refused(
        r.run(&event("finishSecret", &rig.arn, &current)).await,
        "not staged AWSPENDING",
    );
    assert_eq!(
        outcome(&r, "testSecret", &rig.arn, &token).await,
        "already current"
    );
}

#[tokio::test]
async fn a_change_of_awscurrent_during_the_rotation_stops_it() {
    let url = or_skip!(moto::url("a_change_of_awscurrent_during_the_rotation_stops_it"));
    let rig = rig(&url).await;
    let r = rig.rotator();
    let token = rig.aws.start_rotation(&rig.arn, &rig.function, 30).await;
    outcome(&r, "createSecret", &rig.arn, &token).await;
    outcome(&r, "setSecret", &rig.arn, &token).await;

    // An operator makes another version current meanwhile (a push without --force is refused;
    // this is what a forced push or a hand-made change looks like).
    let mut doc: Value = serde_json::from_str(&rig.aws.value(&rig.arn, "AWSCURRENT").await).unwrap();
    doc["human"]["roles"] = json!(["admin"]);
    let pushed = rig
        .aws
        .sm
        .put_secret_value()
        .secret_id(&rig.arn)
        .secret_string(doc.to_string())
        .version_stages("OPERATOR")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let stages = rig.aws.stages(&rig.arn).await;
    let current = stages
        .iter()
        .find(|(_, l)| l.iter().any(|x| x == "AWSCURRENT"))
        .unwrap()
        .0
        .clone();
    rig.aws
        .sm
        .update_secret_version_stage()
        .secret_id(&rig.arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&pushed)
        .remove_from_version_id(current)
        .send()
        .await
        .unwrap();

    for step in ["testSecret", "finishSecret"] {
        match r.run(&event(step, &rig.arn, &token)).await {
            Err(RotationError::Invalid(why)) => {
                assert!(why.contains("AWSCURRENT changed during the rotation"), "{why}");
                assert!(!why.contains("human"), "no usernames: {why}");
            }
            other => panic!("{step}: {other:?}"),
        }
    }
    assert_eq!(
        labels(&rig.aws.stages(&rig.arn).await, &pushed),
        ["AWSCURRENT", "OPERATOR"]
    );
    assert_eq!(
        rig.aws.value(&rig.plain_delivery, "AWSCURRENT").await,
        "initial-b",
        "nothing moved"
    );
}

#[test]
fn weak_password_settings_are_refused() {
    let mut c = config(None);
    assert!(c.validate().is_ok());
    c.password_length = 16;
    assert!(c.validate().unwrap_err().to_string().contains("bits of entropy"));
    c.password_length = 32;
    c.alphabet = "aab".chars().collect();
    assert!(c.validate().unwrap_err().to_string().contains("repeats"));
    c.alphabet = "ab c".chars().collect();
    assert!(c.validate().unwrap_err().to_string().contains("printable"));
    c.alphabet = ALPHABET.chars().collect();
    c.password_length = 2000;
    assert!(c.validate().is_err());
}
