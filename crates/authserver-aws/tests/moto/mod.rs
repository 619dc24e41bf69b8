//! moto fixtures shared by the tests of both crates (`authserver` includes this file by path):
//! separate AWS accounts, SDK clients for one, the few calls moto only takes raw, a Lambda
//! function (moto stores its configuration and policy; it does not run it), and starting a
//! rotation the way Secrets Manager does.
//!
//! Accounts: moto keeps one set of resources per account id. An account here is an IAM user
//! with an access key created in that account (raw IAM call with moto's `x-moto-account-id`
//! header); every SDK call signed with that key then lands in that account, just as on AWS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
use std::time::Duration;

/// The moto endpoint, or `None` after printing why the test is skipped. Panics instead when
/// `AUTHSERVER_REQUIRE_AWS_TESTS=1` (the test command sets it).
pub fn url(test: &str) -> Option<String> {
    match std::env::var("MOTO_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("AUTHSERVER_REQUIRE_AWS_TESTS").as_deref() != Ok("1"),
                "{test}: AUTHSERVER_REQUIRE_AWS_TESTS=1 but MOTO_URL is not set \
                 (source scripts/aws-env.sh && start_aws_env)"
            );
            eprintln!(
                "\n*** SKIPPED: {test}: MOTO_URL is not set (source scripts/aws-env.sh && start_aws_env) ***\n"
            );
            None
        }
    }
}

/// A unique suffix (tests share one moto server and run in parallel).
pub fn unique() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!(
        "{:012x}",
        RandomState::new().hash_one(std::time::SystemTime::now()) & 0xffff_ffff_ffff
    )
}

/// One AWS account on moto, with an access key of its own.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub key: String,
    pub secret: String,
}

/// A fresh account: a random 12-digit id, an IAM user and its access key.
pub async fn account(url: &str) -> Account {
    use std::hash::{BuildHasher, RandomState};
    let n = RandomState::new().hash_one(std::time::SystemTime::now()) % 900_000_000_000 + 100_000_000_000;
    let id = n.to_string();
    let user = format!("tester-{}", unique());
    raw(
        url,
        &id,
        "iam",
        &[
            ("Action", "CreateUser"),
            ("UserName", &user),
            ("Version", "2010-05-08"),
        ],
    )
    .await;
    let xml = raw(
        url,
        &id,
        "iam",
        &[
            ("Action", "CreateAccessKey"),
            ("UserName", &user),
            ("Version", "2010-05-08"),
        ],
    )
    .await;
    Account {
        key: between(&xml, "<AccessKeyId>", "</AccessKeyId>"),
        secret: between(&xml, "<SecretAccessKey>", "</SecretAccessKey>"),
        id,
    }
}

fn between(text: &str, open: &str, close: &str) -> String {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open} in {text}")) + open.len();
    let end = text[start..].find(close).unwrap() + start;
    text[start..end].to_owned()
}

/// A raw AWS query-protocol call (IAM) in `account`: what tests need before any access key of
/// that account exists.
pub async fn raw(url: &str, account: &str, service: &str, params: &[(&str, &str)]) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .header("x-moto-account-id", account)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=raw/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .form(params)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "{service} {params:?}: {status} {body}");
    body
}

/// SDK clients for one account (the crate's own SDK configuration: endpoint override, timeouts,
/// no SDK retries).
#[derive(Debug, Clone)]
pub struct Aws {
    pub url: String,
    pub account: Account,
    pub sm: aws_sdk_secretsmanager::Client,
    pub kms: aws_sdk_kms::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub cw: aws_sdk_cloudwatch::Client,
}

impl Aws {
    /// Clients for `account`.
    pub async fn new(url: &str, account: Account) -> Self {
        let sdk = authserver_aws::sdk_config(Some(url))
            .await
            .to_builder()
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                account.key.clone(),
                account.secret.clone(),
                None,
                None,
                "moto-account",
            )))
            .build();
        Self {
            url: url.to_owned(),
            sm: aws_sdk_secretsmanager::Client::new(&sdk),
            kms: aws_sdk_kms::Client::new(&sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            cw: aws_sdk_cloudwatch::Client::new(&sdk),
            account,
        }
    }

    /// A fresh account and its clients.
    pub async fn fresh(url: &str) -> Self {
        Self::new(url, account(url).await).await
    }

    /// The environment that points the `authserver` binary at this account.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.account.key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.account.secret.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AUTHSERVER_STORE_ENDPOINT_URL", self.url.clone()),
        ]
    }

    /// The compliance check's clients for this account.
    pub fn compliance(&self) -> authserver_aws::compliance::Clients {
        authserver_aws::compliance::Clients {
            secrets: self.sm.clone(),
            kms: self.kms.clone(),
            logs: self.logs.clone(),
            lambda: self.lambda.clone(),
            cloudwatch: self.cw.clone(),
        }
    }

    /// A secret with `value`, encrypted with `kms_key` when given; returns its ARN.
    pub async fn secret(&self, name: &str, value: &str, kms_key: Option<&str>) -> String {
        let out = self
            .sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .set_kms_key_id(kms_key.map(str::to_owned))
            .send()
            .await
            .unwrap();
        out.arn().unwrap().to_owned()
    }

    /// A customer-managed KMS key, rotation on or off; returns its key id.
    pub async fn key(&self, rotation: bool) -> String {
        let id = self
            .kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned();
        if rotation {
            self.kms.enable_key_rotation().key_id(&id).send().await.unwrap();
        }
        id
    }

    /// A Lambda function `name` (configuration only: moto does not run it), X-Ray tracing
    /// `Active` or `PassThrough`, with a `live` alias; returns its ARN.
    pub async fn function(&self, name: &str, active_tracing: bool) -> String {
        use aws_sdk_lambda::primitives::Blob;
        use aws_sdk_lambda::types::{FunctionCode, Runtime, TracingConfig, TracingMode};
        lambda_without_docker(&self.url).await;
        let role = format!("fn-{}", unique());
        raw(
            &self.url,
            &self.account.id,
            "iam",
            &[
                ("Action", "CreateRole"),
                ("RoleName", &role),
                (
                    "AssumeRolePolicyDocument",
                    r#"{"Version":"2012-10-17","Statement":[]}"#,
                ),
                ("Version", "2010-05-08"),
            ],
        )
        .await;
        // An empty zip archive: moto keeps the code, nothing runs it.
        let empty_zip = [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat();
        let out = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(format!("arn:aws:iam::{}:role/{role}", self.account.id))
            .code(FunctionCode::builder().zip_file(Blob::new(empty_zip)).build())
            .tracing_config(
                TracingConfig::builder()
                    .mode(if active_tracing {
                        TracingMode::Active
                    } else {
                        TracingMode::PassThrough
                    })
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let version = self
            .lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .unwrap();
        self.lambda
            .create_alias()
            .function_name(name)
            .name("live")
            .function_version(version.version().unwrap())
            .send()
            .await
            .unwrap();
        out.function_arn().unwrap().to_owned()
    }

    /// `lambda:InvokeFunction` for `principal` on `function` (`qualifier`), narrowed by
    /// `source_arn` when given.
    pub async fn permission(
        &self,
        function: &str,
        qualifier: Option<&str>,
        sid: &str,
        principal: &str,
        source_arn: Option<&str>,
    ) {
        self.lambda
            .add_permission()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_owned))
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal(principal)
            .set_source_arn(source_arn.map(str::to_owned))
            .send()
            .await
            .unwrap();
    }

    /// Starts a rotation of `secret` as Secrets Manager does: `RotateSecret` with `function` as
    /// the rotation function (enabling rotation every `days` days) stages an empty `AWSPENDING`
    /// version whose id is the token the four steps then get. (moto "invokes" the function
    /// without running anything.) Returns the token.
    pub async fn start_rotation(&self, secret: &str, function_arn: &str, days: i64) -> String {
        use aws_sdk_secretsmanager::types::RotationRulesType;
        let out = self
            .sm
            .rotate_secret()
            .secret_id(secret)
            .rotation_lambda_arn(function_arn)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(days)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.version_id().unwrap().to_owned()
    }

    /// A metric alarm named `name` on `namespace`/`metric`, with `actions` (SNS topic ARNs).
    pub async fn metric_alarm(&self, name: &str, namespace: &str, metric: &str, actions: &[&str]) {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
        let mut request = self
            .cw
            .put_metric_alarm()
            .alarm_name(name)
            .namespace(namespace)
            .metric_name(metric)
            .statistic(Statistic::Maximum)
            .period(300)
            .evaluation_periods(1)
            .threshold(0.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold);
        for a in actions {
            request = request.alarm_actions(*a);
        }
        request.send().await.unwrap();
    }

    /// A log group with `retention` days (none: never expires) and `kms_key` (an ARN).
    pub async fn log_group(&self, name: &str, retention: Option<i32>, kms_key: Option<&str>) {
        self.logs
            .create_log_group()
            .log_group_name(name)
            .set_kms_key_id(kms_key.map(str::to_owned))
            .send()
            .await
            .unwrap();
        if let Some(days) = retention {
            self.logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days)
                .send()
                .await
                .unwrap();
        }
    }

    /// The labels of every version of `secret`.
    pub async fn stages(&self, secret: &str) -> std::collections::HashMap<String, Vec<String>> {
        self.sm
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
            .cloned()
            .unwrap_or_default()
    }

    /// The value staged `stage` of `secret`.
    pub async fn value(&self, secret: &str, stage: &str) -> String {
        self.sm
            .get_secret_value()
            .secret_id(secret)
            .version_stage(stage)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_owned()
    }
}

/// moto's Lambda without Docker (its "simple" backend: functions are stored, invocations
/// succeed without running). A server-wide setting, set before any function is created.
pub async fn lambda_without_docker(url: &str) {
    let response = reqwest::Client::new()
        .post(format!("{url}/moto-api/config"))
        .json(&serde_json::json!({"lambda": {"use_docker": false}}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// Polls `check` every 10 ms for up to `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
