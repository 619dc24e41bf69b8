//! The compliance check: inspects a deployment through AWS APIs and reports each control with
//! pass/fail, evidence and, where one applies, the CIS AWS Foundations Benchmark control it
//! supports.
//!
//! Everything is found by the deployment's naming contract (docs/deployment.md, "Resource
//! names"): `<svc>-<stage>-*` functions, alarms and log groups, `<svc>/<stage>/*` secrets.
//! A control whose inspection fails (access denied, throttled past retries) fails too, with the
//! reason as evidence: an unverifiable control is not a passing one.
//!
//! # Layout
//! - [`controls`]: the ten controls.
//! - `policy`: resource-policy analysis (public or confused-deputy statements).

pub mod controls;
mod policy;

use crate::retry::{CallError, RetryPolicy, classify, with_retries};
use authserver_core::HashPolicy;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde::Serialize;

/// What to inspect, and the limits to hold it to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ServiceName` (the `Service` dimension).
    pub service: String,
    /// `Stage`.
    pub stage: String,
    /// The credential secret (name or ARN).
    pub credential_secret: String,
    /// The secret holding the `user_hash` key.
    pub user_hash_key_secret: String,
    /// Longest allowed rotation interval, days (CIS: 90).
    pub max_rotation_days: u32,
    /// Shortest allowed log retention, days.
    pub min_log_retention_days: u32,
    /// Oldest allowed `passwordChangedAt` of an ACTIVE user, days.
    pub max_password_age_days: u32,
    /// The hash policy every stored hash must meet.
    pub policy: HashPolicy,
    /// Retries of each AWS call.
    pub retry: RetryPolicy,
    /// (namespace, name) of the metric the scheduled check publishes: an alarm must watch it.
    pub violations_metric: (String, String),
}

impl Target {
    /// A target with the documented names and limits for `service` / `stage`;
    /// `violations_metric` is (namespace, name) of the published metric.
    pub fn new(service: &str, stage: &str, policy: HashPolicy, violations_metric: (&str, &str)) -> Self {
        Self {
            service: service.to_owned(),
            stage: stage.to_owned(),
            credential_secret: format!("{service}/{stage}/credentials"),
            user_hash_key_secret: format!("{service}/{stage}/user-hash-key"),
            max_rotation_days: 90,
            min_log_retention_days: 365,
            max_password_age_days: 90,
            policy,
            retry: RetryPolicy::default(),
            violations_metric: (violations_metric.0.to_owned(), violations_metric.1.to_owned()),
        }
    }

    /// Prefix of function, alarm and log-group names: `<svc>-<stage>-`.
    pub fn prefix(&self) -> String {
        format!("{}-{}-", self.service, self.stage)
    }
}

/// The SDK clients the check uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// CloudWatch (alarms, the metric).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Clients {
    /// Clients for `sdk`.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
        }
    }
}

/// One control's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Stable identifier, e.g. `kms-key-rotation`.
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// `pass` or `fail`.
    pub result: Outcome,
    /// What was found (names of resources, never secret material).
    pub evidence: Vec<String>,
    /// The CIS AWS Foundations Benchmark control it supports, where one applies.
    pub cis: Option<&'static str>,
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The control holds.
    Pass,
    /// It does not, or could not be verified.
    Fail,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `Service`.
    pub service: String,
    /// `Stage`.
    pub stage: String,
    /// RFC 3339 time of the check.
    pub checked_at: String,
    /// Every control, in a fixed order.
    pub controls: Vec<Control>,
    /// Failed controls.
    pub violations: usize,
}

/// Runs every control. `name` turns a username into what the evidence shows (the username for
/// an operator's terminal, a `user_hash` for logs).
pub async fn check(clients: &Clients, target: &Target, name: &(dyn Fn(&str) -> String + Sync)) -> Report {
    let controls = controls::all(clients, target, name).await;
    let violations = controls.iter().filter(|c| c.result == Outcome::Fail).count();
    Report {
        service: target.service.clone(),
        stage: target.stage.clone(),
        checked_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        controls,
        violations,
    }
}

/// Publishes the number of failed controls as the target's violations metric with the
/// `Service` and `Stage` dimensions (the scheduled check's alarm watches it; zero clears it).
pub async fn publish(
    client: &aws_sdk_cloudwatch::Client,
    retry: &RetryPolicy,
    target: &Target,
    violations: usize,
) -> Result<(), CallError> {
    const OP: &str = "PutMetricData";
    let (namespace, metric) = &target.violations_metric;
    let datum = MetricDatum::builder()
        .metric_name(metric)
        .dimensions(
            Dimension::builder()
                .name("Service")
                .value(&target.service)
                .build(),
        )
        .dimensions(Dimension::builder().name("Stage").value(&target.stage).build())
        .unit(StandardUnit::Count)
        .value(violations as f64)
        .build();
    with_retries(retry, || async {
        client
            .put_metric_data()
            .namespace(namespace)
            .metric_data(datum.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(OP, &e))
    })
    .await
}
