//! `authserver ops alarms test` against CloudWatch alarms on the moto server: every alarm with
//! the prefix is driven to ALARM and back to OK, each state read back, and reported; others are
//! untouched; a dry run changes nothing; no matching alarm is an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::cli::outcome;
use authserver_testkit::moto::{self, Aws};
use aws_sdk_cloudwatch::types::StateValue;
use serde_json::Value;

/// `authserver ops alarms test ARGS` in `aws`'s account, audit on stdout.
fn cli(aws: &Aws, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = aws.cli();
    outcome(
        cmd.args(["ops", "alarms", "test"])
            .args(args)
            .env("AUTHSERVER_AUDIT_STDOUT", "true"),
    )
}

async fn state(aws: &Aws, name: &str) -> (String, String) {
    let out = aws.cw.describe_alarms().alarm_names(name).send().await.unwrap();
    let a = &out.metric_alarms()[0];
    (
        a.state_value().unwrap().as_str().to_owned(),
        a.state_reason().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn each_alarm_goes_to_alarm_and_back_to_ok() {
    let Some(url) = moto::url("each_alarm_goes_to_alarm_and_back_to_ok") else {
        return;
    };
    let aws = Aws::fresh(&url).await;
    let prefix = format!("ops{}-dev-", moto::unique());
    let topic = "arn:aws:sns:us-east-1:123456789012:warning";
    aws.metric_alarm(&format!("{prefix}errors-high"), "AWS/Lambda", "Errors", &[])
        .await;
    aws.metric_alarm(
        &format!("{prefix}store-stale"),
        "AuthServer",
        "StoreStalenessSeconds",
        &[topic],
    )
    .await;
    aws.metric_alarm("unrelated-alarm", "AWS/Lambda", "Errors", &[])
        .await;
    aws.cw
        .set_alarm_state()
        .alarm_name("unrelated-alarm")
        .state_value(StateValue::InsufficientData)
        .state_reason("left alone")
        .send()
        .await
        .unwrap();

    // Dry run: listed, nothing changed.
    let (code, out, err) = cli(&aws, &["--prefix", &prefix, "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("would drive 2 alarms"), "{out}");
    assert!(!err.contains("alarms.test"), "a dry run is not audited: {err}");

    let (code, out, err) = cli(
        &aws,
        &["--prefix", &prefix, "--dwell-seconds", "0", "--format", "json"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let results: Value = serde_json::from_str(&out).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, (name, actions)) in results.iter().zip([
        (format!("{prefix}errors-high"), 0),
        (format!("{prefix}store-stale"), 1),
    ]) {
        assert_eq!(r["name"], name.as_str());
        assert_eq!(r["kind"], "metric");
        assert_eq!(r["actions"], actions);
        assert_eq!(
            (r["alarm"].as_bool(), r["ok"].as_bool()),
            (Some(true), Some(true)),
            "{r}"
        );
        assert!(r["error"].is_null(), "{r}");
        let (now, reason) = state(&aws, &name).await;
        assert_eq!(now, "OK");
        assert!(reason.contains("authserver ops alarms test by "), "{reason}");
    }
    assert_eq!(
        state(&aws, "unrelated-alarm").await.0,
        "INSUFFICIENT_DATA",
        "other alarms untouched"
    );
    assert!(err.contains(r#""action":"alarms.test""#), "audited: {err}");

    let (code, table, _) = cli(&aws, &["--prefix", &prefix, "--dwell-seconds", "0"]);
    assert_eq!(code, Some(0));
    assert!(table.contains("drove 2 alarms"), "{table}");
    assert!(
        table.contains(&format!("{prefix}store-stale")) && table.contains("1 own action(s)"),
        "{table}"
    );

    let (code, _, err) = cli(&aws, &["--prefix", "no-such-prefix-", "--dwell-seconds", "0"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no alarm named no-such-prefix-*"), "{err}");
}
