//! The moto harness: separate AWS accounts, SDK clients for one, the few calls moto only takes
//! raw, resources in an account ([`resources`]), the wire tap that counts calls and injects
//! faults ([`wire`]), the Secrets Manager store rig ([`store`]), the rotation rig
//! ([`rotation`]), the DynamoDB users table ([`users_table`]) with a relay that can hold its
//! answers ([`relay`]), and the OAuth signing keys and jti table ([`oauth`]).
//!
//! Accounts: moto keeps one set of resources per account id. An account here is an IAM user
//! with an access key created in that account (raw IAM call with moto's `x-moto-account-id`
//! header); every SDK call signed with that key then lands in that account, just as on AWS.

pub mod oauth;
pub mod relay;
pub mod resources;
pub mod rotation;
pub mod store;
pub mod users_table;
pub mod wire;

use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
use serde_json::json;
use std::process::Command;

/// The moto endpoint (`MOTO_URL`), or `None` after printing why `test` is skipped; fails
/// instead when `TESTS_REQUIRE_AWS=1` (see [`crate::skip`]).
pub fn url(test: &str) -> Option<String> {
    crate::skip::env("MOTO_URL", test)
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
    /// The 12-digit account id.
    pub id: String,
    /// The access key id.
    pub key: String,
    /// The secret access key.
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
    /// The moto endpoint.
    pub url: String,
    /// The account the clients sign for.
    pub account: Account,
    /// Secrets Manager.
    pub sm: aws_sdk_secretsmanager::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// CloudWatch.
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

    /// `authserver` (none of the caller's settings) pointed at this account.
    pub fn cli(&self) -> Command {
        let mut cmd = crate::cli::isolated();
        cmd.envs(self.env());
        cmd
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
}

/// moto's Lambda without Docker (its "simple" backend: functions are stored, invocations
/// succeed without running). A server-wide setting, set before any function is created.
pub async fn lambda_without_docker(url: &str) {
    let response = reqwest::Client::new()
        .post(format!("{url}/moto-api/config"))
        .json(&json!({"lambda": {"use_docker": false}}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// Creates a secret through moto's HTTP API in its default account (moto does not check
/// signatures): for a process that reads it with the default test credentials.
pub async fn create_secret_raw(moto: &str, name: &str, value: &str) {
    let response = reqwest::Client::new()
        .post(moto)
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(json!({"Name": name, "SecretString": value}).to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.text().await);
}
