//! `authserver compliance check` and the scheduled compliance mode against two accounts on the
//! moto server: one set up like the CloudFormation template deploys it (every control passes)
//! and one that gets every control wrong. The exact findings are asserted, as JSON, as the
//! human table, as the exit code, and as the `ComplianceViolations` metric the Lambda mode
//! publishes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver::compliance::target;
use authserver::config::Settings;
use authserver_core::{Cost, NoAudit, UserHasher};
use authserver_testkit::cli::outcome;
use authserver_testkit::hash::{FAST, hash};
use authserver_testkit::moto::{self, Aws};
use serde_json::{Value, json};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;

fn days_ago(days: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

const DENY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"DenyReadExceptAuthserverRoles","Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*",
   "Condition":{"StringNotEquals":{"aws:PrincipalArn":["arn:aws:iam::123456789012:role/proxy"]}}},
  {"Sid":"DenyWriteExceptRotation","Effect":"Deny","Principal":"*","Action":"secretsmanager:PutSecretValue","Resource":"*",
   "Condition":{"StringNotEquals":{"aws:PrincipalArn":["arn:aws:iam::123456789012:role/rotation"]}}}]}"#;

/// What the compliant account holds, for the expected evidence.
struct Good {
    aws: Aws,
    secrets_key: String,
    data_key: String,
    data_key_arn: String,
}

/// The template's shape: CMKs with rotation, secrets with policies and rotation, log groups
/// with retention and KMS, traced functions with narrowed permissions, alarms with actions.
async fn compliant(url: &str) -> Good {
    let aws = Aws::fresh(url).await;
    let secrets_key = aws.key(true).await;
    let data_key = aws.key(true).await;
    let data_key_arn = format!("arn:aws:kms:us-east-1:{}:key/{data_key}", aws.account.id);
    let doc = json!({
        "alice": {"passwordHash": hash("a-pw", FAST), "passwordChangedAt": days_ago(10)},
        "bob": {"passwordHash": hash("b-pw", FAST), "passwordChangedAt": days_ago(5), "deliverySecretId": "good/dev/delivery/bob"},
        "carol": {"passwordHash": hash("c-pw", FAST), "status": "DISABLED", "passwordChangedAt": "2020-01-01T00:00:00Z"},
    });
    aws.secret("good/dev/credentials", &doc.to_string(), Some(&secrets_key))
        .await;
    aws.secret("good/dev/user-hash-key", "k", Some(&secrets_key))
        .await;
    for s in ["good/dev/credentials", "good/dev/user-hash-key"] {
        let policy = if s.ends_with("credentials") {
            DENY_POLICY.to_owned()
        } else {
            let mut p: Value = serde_json::from_str(DENY_POLICY).unwrap();
            p["Statement"].as_array_mut().unwrap().truncate(1);
            p.to_string()
        };
        aws.sm
            .put_resource_policy()
            .secret_id(s)
            .resource_policy(policy)
            .send()
            .await
            .unwrap();
    }
    let account = aws.account.id.clone();
    for f in ["proxy", "rotation", "compliance"] {
        aws.function(&format!("good-dev-{f}"), true).await;
    }
    aws.permission(
        "good-dev-proxy",
        Some("live"),
        "ValidateRoute",
        "apigateway.amazonaws.com",
        Some(&format!(
            "arn:aws:execute-api:us-east-1:{account}:api123/dev/POST/auth/validate"
        )),
    )
    .await;
    aws.permission(
        "good-dev-rotation",
        Some("live"),
        "SecretsManager",
        "secretsmanager.amazonaws.com",
        Some(&format!(
            "arn:aws:secretsmanager:us-east-1:{account}:secret:good/dev/credentials-AbCdEf"
        )),
    )
    .await;
    aws.permission(
        "good-dev-compliance",
        Some("live"),
        "Schedule",
        "events.amazonaws.com",
        Some(&format!(
            "arn:aws:events:us-east-1:{account}:rule/good-dev-compliance"
        )),
    )
    .await;
    let rotation_arn = format!("arn:aws:lambda:us-east-1:{account}:function:good-dev-rotation");
    aws.start_rotation("good/dev/credentials", &rotation_arn, 90)
        .await;
    for g in [
        "/aws/lambda/good-dev-proxy",
        "/aws/lambda/good-dev-rotation",
        "/aws/lambda/good-dev-compliance",
        "/aws/apigateway/good-dev-http",
    ] {
        aws.log_group(g, Some(365), Some(&data_key_arn)).await;
    }
    // moto has no composite alarms (PutCompositeAlarm is not implemented, and its
    // PutMetricAlarm drops an AlarmRule), so here every alarm carries its action itself; the
    // template's leaves-plus-composites design is covered by the control's unit tests.
    let topic = format!("arn:aws:sns:us-east-1:{account}:good-dev-critical");
    aws.metric_alarm("good-dev-errors-high", "AWS/Lambda", "Errors", &[&topic])
        .await;
    aws.metric_alarm(
        "good-dev-store-stale",
        "AuthServer",
        "StoreStalenessSeconds",
        &[&topic],
    )
    .await;
    aws.metric_alarm(
        "good-dev-compliance-violations",
        "AuthServer",
        "ComplianceViolations",
        &[&topic],
    )
    .await;
    Good {
        aws,
        secrets_key,
        data_key,
        data_key_arn,
    }
}

/// Every control wrong at least once.
async fn non_compliant(url: &str) -> (Aws, String) {
    let aws = Aws::fresh(url).await;
    let weak = Cost {
        m_kib: 4096,
        t: 1,
        p: 1,
    };
    let doc = json!({
        "nodate": {"passwordHash": hash("n-pw", FAST)},
        "stale": {"passwordHash": hash("s-pw", FAST), "passwordChangedAt": days_ago(200)},
        "weak": {"passwordHash": hash("w-pw", weak), "passwordChangedAt": days_ago(1)},
    });
    aws.secret("bad/dev/credentials", &doc.to_string(), None).await;
    let key = aws.key(false).await;
    aws.secret("bad/dev/user-hash-key", "k", Some(&key)).await;
    let public = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    aws.sm
        .put_resource_policy()
        .secret_id("bad/dev/user-hash-key")
        .resource_policy(public)
        .send()
        .await
        .unwrap();
    aws.function("bad-dev-proxy", false).await;
    aws.function("bad-dev-rotation", true).await;
    aws.permission("bad-dev-proxy", None, "AnyoneCanInvoke", "*", None)
        .await;
    aws.permission(
        "bad-dev-rotation",
        None,
        "EventsNoSource",
        "events.amazonaws.com",
        None,
    )
    .await;
    aws.log_group("/aws/lambda/bad-dev-proxy", Some(30), None).await;
    aws.log_group("/aws/lambda/bad-dev-rotation", None, None).await;
    aws.metric_alarm("bad-dev-errors-high", "AWS/Lambda", "Errors", &[])
        .await;
    (aws, key)
}

/// `authserver compliance check` for `service`-dev in `aws`'s account: (exit code, stdout).
fn cli(aws: &Aws, service: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = aws.cli();
    cmd.args(["compliance", "check"])
        .args(args)
        .env("AUTHSERVER_TELEMETRY_SERVICE", service)
        .env("AUTHSERVER_TELEMETRY_STAGE", "dev");
    outcome(&mut cmd)
}

/// (id, result, evidence) of every control, in order.
fn findings(report: &Value) -> Vec<(String, String, Vec<String>)> {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["result"].as_str().unwrap().to_owned(),
                c["evidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn s(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn expect(id: &str, result: &str, evidence: &[&str]) -> (String, String, Vec<String>) {
    (
        id.to_owned(),
        result.to_owned(),
        evidence.iter().map(|e| (*e).to_owned()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliant_account_passes_every_control() {
    let Some(url) = moto::url("a_compliant_account_passes_every_control") else {
        return;
    };
    let good = compliant(&url).await;
    let (code, stdout, stderr) = cli(&good.aws, "good", &["--format", "json"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let (sk, dk, dk_arn) = (&good.secrets_key, &good.data_key, &good.data_key_arn);
    let mut keys = vec![
        format!("key {sk} (used by credential secret, user_hash key secret): automatic rotation on"),
        format!(
            "key {dk} (used by log group /aws/lambda/good-dev-compliance, log group /aws/lambda/good-dev-proxy, \
             log group /aws/lambda/good-dev-rotation, log group /aws/apigateway/good-dev-http): automatic rotation on"
        ),
    ];
    if dk < sk {
        keys.reverse();
    }
    let groups: Vec<String> = [
        "/aws/lambda/good-dev-compliance",
        "/aws/lambda/good-dev-proxy",
        "/aws/lambda/good-dev-rotation",
        "/aws/apigateway/good-dev-http",
    ]
    .iter()
    .map(|g| format!("{g}: retention 365 days, KMS key {dk_arn}"))
    .collect();
    assert_eq!(
        findings(&report),
        vec![
            expect(
                "secret-encryption",
                "pass",
                &[
                    &format!("credential secret good/dev/credentials: customer-managed key {sk}"),
                    &format!("user_hash key secret good/dev/user-hash-key: customer-managed key {sk}"),
                ]
            ),
            expect("kms-key-rotation", "pass", &s(&keys)),
            expect(
                "secret-rotation",
                "pass",
                &[
                    "good/dev/credentials: rotation enabled, every 90 days (at most 90)",
                    "good/dev/credentials: last rotated 0 days ago (at most 90)",
                ]
            ),
            expect(
                "secret-resource-policy",
                "pass",
                &[
                    "credential secret good/dev/credentials: resource policy, 2 statement(s), 2 Deny, none open",
                    "user_hash key secret good/dev/user-hash-key: resource policy, 1 statement(s), 1 Deny, none open",
                ]
            ),
            expect("log-groups", "pass", &s(&groups)),
            expect(
                "function-tracing",
                "pass",
                &[
                    "good-dev-proxy: tracing Active",
                    "good-dev-authorizer: not deployed (optional)",
                    "good-dev-rotation: tracing Active",
                    "good-dev-compliance: tracing Active",
                ]
            ),
            expect(
                "function-not-public",
                "pass",
                &[
                    "good-dev-proxy: no policy statement (function or live alias) opens it",
                    "good-dev-authorizer: not deployed (optional)",
                    "good-dev-rotation: no policy statement (function or live alias) opens it",
                    "good-dev-compliance: no policy statement (function or live alias) opens it",
                ]
            ),
            expect(
                "alarms-with-actions",
                "pass",
                &[
                    "3 metric alarms, 0 composite alarms, 0 of them notify",
                    "AuthServer/ComplianceViolations watched by good-dev-compliance-violations",
                ]
            ),
            expect(
                "stored-hash-policy",
                "pass",
                &[
                    "3 users, every hash Argon2id at or above OWASP's cost table scaled to m 19456 KiB at t 2, m <= 262144 KiB, t <= 10, p <= 4"
                ]
            ),
            expect(
                "password-age",
                "pass",
                &["2 active users, passwords changed within 90 days (oldest 10 days)"]
            ),
        ]
    );
    assert_eq!(report["violations"], 0);
    assert_eq!(report["controls"][1]["cis"], "3.6 (v3.0.0; 3.8 in v1.4.0)");

    let (code, table, _) = cli(&good.aws, "good", &[]);
    assert_eq!(code, Some(0));
    assert!(table.contains("PASS   kms-key-rotation"), "{table}");
    assert!(table.ends_with("10 controls, 10 passed, 0 failed\n"), "{table}");

    // The scheduled mode publishes 0, which clears the alarm.
    let published = lambda_mode(&good.aws, "good").await;
    assert_eq!(published, (json!({"violations": 0, "failed": []}), 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_compliant_account_fails_every_control_with_the_reason() {
    let Some(url) = moto::url("a_non_compliant_account_fails_every_control_with_the_reason") else {
        return;
    };
    let (aws, key) = non_compliant(&url).await;
    let (code, stdout, stderr) = cli(&aws, "bad", &["--format", "json"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("10 of 10 compliance controls failed"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let policy = "(at t=1 m >= 47104 KiB; m <= 262144 KiB, t <= 10, p <= 4)";
    assert_eq!(
        findings(&report),
        vec![
            expect(
                "secret-encryption",
                "fail",
                &[
                    "credential secret bad/dev/credentials: encrypted with the AWS managed key aws/secretsmanager",
                    &format!("user_hash key secret bad/dev/user-hash-key: customer-managed key {key}"),
                ]
            ),
            expect(
                "kms-key-rotation",
                "fail",
                &[&format!(
                    "key {key} (used by user_hash key secret): automatic rotation OFF"
                )]
            ),
            expect(
                "secret-rotation",
                "fail",
                &["bad/dev/credentials: rotation is not enabled"]
            ),
            expect(
                "secret-resource-policy",
                "fail",
                &[
                    "credential secret bad/dev/credentials: no resource policy",
                    "user_hash key secret bad/dev/user-hash-key: resource policy allows anyone: PublicRead",
                ]
            ),
            expect(
                "log-groups",
                "fail",
                &[
                    "/aws/lambda/bad-dev-proxy: retention 30 days (at least 365), no KMS key",
                    "/aws/lambda/bad-dev-rotation: no retention (never expires), no KMS key",
                ]
            ),
            expect(
                "function-tracing",
                "fail",
                &[
                    "bad-dev-proxy: tracing PassThrough",
                    "bad-dev-authorizer: not deployed (optional)",
                    "bad-dev-rotation: tracing Active",
                    "bad-dev-compliance: not found",
                ]
            ),
            expect(
                "function-not-public",
                "fail",
                &[
                    "bad-dev-proxy: AnyoneCanInvoke lets anyone invoke",
                    "bad-dev-authorizer: not deployed (optional)",
                    "bad-dev-rotation: EventsNoSource lets events.amazonaws.com of any account invoke (no SourceArn/SourceAccount)",
                    "bad-dev-compliance: not found",
                ]
            ),
            expect(
                "alarms-with-actions",
                "fail",
                &[
                    "1 metric alarms, 0 composite alarms, 0 of them notify",
                    "no action reached by: bad-dev-errors-high",
                    "no alarm watches AuthServer/ComplianceViolations",
                ]
            ),
            expect(
                "stored-hash-policy",
                "fail",
                &[&format!(
                    "user \"weak\": Argon2id parameters m=4096,t=1,p=1 outside policy {policy}"
                )]
            ),
            expect(
                "password-age",
                "fail",
                &[
                    "user \"nodate\": no passwordChangedAt",
                    "user \"stale\": password changed 200 days ago (at most 90)",
                ]
            ),
        ]
    );
    assert_eq!(report["violations"], 10);

    let (code, table, _) = cli(&aws, "bad", &["--hash-usernames"]);
    assert_eq!(code, Some(1));
    assert!(table.contains("FAIL   secret-encryption"), "{table}");
    assert!(table.ends_with("10 controls, 0 passed, 10 failed\n"), "{table}");
    assert!(
        !table.contains("\"weak\"") && table.contains("user user_hash "),
        "{table}"
    );
    assert!(!table.contains("$argon2id") && !stdout.contains("$argon2id"));

    let (answer, published) = lambda_mode(&aws, "bad").await;
    assert_eq!(answer["violations"], 10);
    assert_eq!(published, 10.0);
}

/// The compliance Lambda handler for `service`-dev in `aws`'s account: its answer, and the
/// `ComplianceViolations` value it published (read back from CloudWatch).
async fn lambda_mode(aws: &Aws, service: &str) -> (Value, f64) {
    let mut settings = Settings::default();
    settings.telemetry.service = service.into();
    settings.telemetry.stage = "dev".into();
    let handler = authserver::lambda::compliance::Compliance::from_parts(
        aws.compliance(),
        target(&settings),
        UserHasher::new(b"k"),
        Arc::new(NoAudit),
    );
    let answer = handler.run().await.unwrap();
    let stats = aws
        .cw
        .get_metric_statistics()
        .namespace("AuthServer")
        .metric_name("ComplianceViolations")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Service")
                .value(service)
                .build(),
        )
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Stage")
                .value("dev")
                .build(),
        )
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            time::OffsetDateTime::now_utc().unix_timestamp() - 600,
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            time::OffsetDateTime::now_utc().unix_timestamp() + 600,
        ))
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .send()
        .await
        .unwrap();
    let value = stats
        .datapoints()
        .iter()
        .filter_map(|d| d.maximum())
        .fold(f64::NAN, f64::max);
    (answer, value)
}
