//! `authserver ops alarms test`: drives each alarm whose name starts with a prefix to `ALARM`
//! and back to `OK` with `SetAlarmState`, so that operators can prove alert delivery end to
//! end (leaf alarms carry no actions: the composite alarms that watch them notify; a composite
//! set directly notifies through its own actions).
//!
//! CloudWatch re-evaluates a metric alarm at its next period, so a forced state lasts at most
//! one period; the test sets `OK` itself after `dwell` all the same, and reads every state
//! back (`DescribeAlarms`) to confirm what it set.

use crate::cloudwatch::{describe_alarms, rule_names};
use crate::retry::{CallError, RetryPolicy, classify, with_retries};
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use serde::Serialize;
use std::time::Duration;

/// Which alarms a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Only {
    /// Metric and composite alarms.
    #[default]
    All,
    /// Metric (leaf) alarms: proves the composites' rules and their notifications.
    Metric,
    /// Composite alarms: one notification per notification path.
    Composite,
}

/// What a test does.
#[derive(Debug, Clone)]
pub struct AlarmTest {
    /// Alarm name prefix (`<svc>-<stage>-`).
    pub prefix: String,
    /// Which alarms.
    pub only: Only,
    /// How long each alarm stays in `ALARM` before it is set back to `OK`.
    pub dwell: Duration,
    /// List what would be driven without changing anything.
    pub dry_run: bool,
    /// Put in every `StateReason` (who ran the test).
    pub reason: String,
    /// Retries of each call.
    pub retry: RetryPolicy,
}

/// What happened to one alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmResult {
    /// The alarm.
    pub name: String,
    /// `metric` or `composite`.
    pub kind: &'static str,
    /// State before the test.
    pub before: String,
    /// Its own alarm actions (leaf alarms normally have none).
    pub actions: usize,
    /// Composite alarms whose rule names it.
    pub watched_by: Vec<String>,
    /// `ALARM` was set and read back.
    pub alarm: bool,
    /// `OK` was set and read back.
    pub ok: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl AlarmResult {
    /// True when both states were set and confirmed (or nothing was to be done in a dry run).
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

struct Listed {
    name: String,
    kind: &'static str,
    state: String,
    actions: usize,
    rule: Option<String>,
}

/// Runs the test; an error only when the alarms cannot be listed.
pub async fn test(client: &Client, test: &AlarmTest) -> Result<Vec<AlarmResult>, CallError> {
    let listed = list(client, &test.retry, &test.prefix).await?;
    let mut results: Vec<AlarmResult> = listed
        .iter()
        .filter(|a| match test.only {
            Only::All => true,
            Only::Metric => a.kind == "metric",
            Only::Composite => a.kind == "composite",
        })
        .map(|a| AlarmResult {
            name: a.name.clone(),
            kind: a.kind,
            before: a.state.clone(),
            actions: a.actions,
            watched_by: listed
                .iter()
                .filter(|c| {
                    c.rule
                        .as_deref()
                        .is_some_and(|r| rule_names(r).contains(&a.name.as_str()))
                })
                .map(|c| c.name.clone())
                .collect(),
            alarm: false,
            ok: false,
            error: None,
        })
        .collect();
    if test.dry_run {
        return Ok(results);
    }
    for result in &mut results {
        (result.alarm, result.ok, result.error) = drive(client, test, &result.name).await;
    }
    Ok(results)
}

/// ALARM, read back, dwell, OK, read back: (ALARM confirmed, OK confirmed).
async fn drive(client: &Client, test: &AlarmTest, name: &str) -> (bool, bool, Option<String>) {
    let step = |state: StateValue| async move {
        set(client, &test.retry, name, state.clone(), &test.reason).await?;
        let now = read_state(client, &test.retry, name).await?;
        Ok::<_, CallError>(now.as_deref() == Some(state.as_str()))
    };
    let alarm = match step(StateValue::Alarm).await {
        Ok(reached) => reached,
        Err(e) => return (false, false, Some(e.to_string())),
    };
    tokio::time::sleep(test.dwell).await;
    let ok = match step(StateValue::Ok).await {
        Ok(reached) => reached,
        Err(e) => return (alarm, false, Some(e.to_string())),
    };
    let error = match (alarm, ok) {
        (true, true) => None,
        (false, _) => Some("set to ALARM but did not read back ALARM".to_owned()),
        (true, false) => Some("set to OK but did not read back OK".to_owned()),
    };
    (alarm, ok, error)
}

async fn set(
    client: &Client,
    retry: &RetryPolicy,
    name: &str,
    state: StateValue,
    reason: &str,
) -> Result<(), CallError> {
    const OP: &str = "SetAlarmState";
    with_retries(retry, || async {
        client
            .set_alarm_state()
            .alarm_name(name)
            .state_value(state.clone())
            .state_reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(OP, &e))
    })
    .await
}

async fn read_state(client: &Client, retry: &RetryPolicy, name: &str) -> Result<Option<String>, CallError> {
    const OP: &str = "DescribeAlarms";
    let out = with_retries(retry, || async {
        client
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| classify(OP, &e))
    })
    .await?;
    let metric = out.metric_alarms().iter().map(|a| a.state_value());
    let composite = out.composite_alarms().iter().map(|a| a.state_value());
    Ok(metric
        .chain(composite)
        .flatten()
        .next()
        .map(|s| s.as_str().to_owned()))
}

/// Every alarm whose name starts with `prefix`, metric alarms first, each sorted by name.
async fn list(client: &Client, retry: &RetryPolicy, prefix: &str) -> Result<Vec<Listed>, CallError> {
    let (metric, composite) = describe_alarms(client, retry, prefix).await?;
    let mut listed: Vec<Listed> = metric
        .iter()
        .map(|a| Listed {
            name: a.alarm_name().unwrap_or_default().to_owned(),
            kind: "metric",
            state: a.state_value().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            actions: a.alarm_actions().len(),
            rule: None,
        })
        .collect();
    listed.extend(composite.iter().map(|a| Listed {
        name: a.alarm_name().unwrap_or_default().to_owned(),
        kind: "composite",
        state: a.state_value().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        actions: a.alarm_actions().len(),
        rule: a.alarm_rule().map(str::to_owned),
    }));
    listed.sort_by(|a, b| (a.kind != "metric", &a.name).cmp(&(b.kind != "metric", &b.name)));
    Ok(listed)
}
