//! The infrastructure controls: log groups, functions, alarms (and KMS key lookups).

use super::{cannot, control};
use crate::alarms::rule_names;
use crate::compliance::policy::{Open, open_statements};
use crate::compliance::{Clients, Control, Target};
use crate::retry::{CallError, classify, with_retries};
use aws_sdk_cloudwatch::types::{CompositeAlarm, MetricAlarm};
use aws_sdk_kms::types::{KeyManagerType, KeyState};
use aws_sdk_lambda::types::TracingMode;
use std::collections::BTreeSet;

/// The deployment's functions (`<svc>-<stage>-<name>`) and whether each must exist.
const FUNCTIONS: &[(&str, bool)] = &[
    ("proxy", true),
    ("authorizer", false),
    ("rotation", true),
    ("compliance", true),
];

/// One log group as inspected.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub name: String,
    pub retention: Option<i32>,
    pub kms_key: Option<String>,
}

/// (key id, customer managed, enabled) of a key id, ARN or alias.
pub(super) async fn describe_key(
    clients: &Clients,
    target: &Target,
    key: &str,
) -> Result<(String, bool, bool), CallError> {
    let out = with_retries(&target.retry, || async {
        clients
            .kms
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| classify("DescribeKey", &e))
    })
    .await?;
    let meta = out.key_metadata();
    Ok((
        meta.map_or(key, |m| m.key_id()).to_owned(),
        meta.and_then(|m| m.key_manager()) == Some(&KeyManagerType::Customer),
        meta.and_then(|m| m.key_state()) == Some(&KeyState::Enabled),
    ))
}

/// The deployment's log groups: `/aws/lambda/<prefix>*`, `/aws/apigateway/<prefix>*`,
/// `aws-waf-logs-<svc>-<stage>`.
pub(super) async fn log_groups(clients: &Clients, target: &Target) -> Result<Vec<Group>, CallError> {
    let prefix = target.prefix();
    let mut groups = Vec::new();
    for p in [
        format!("/aws/lambda/{prefix}"),
        format!("/aws/apigateway/{prefix}"),
        format!("aws-waf-logs-{}-{}", target.service, target.stage),
    ] {
        let mut next: Option<String> = None;
        loop {
            let token = next.clone();
            let out = with_retries(&target.retry, || async {
                clients
                    .logs
                    .describe_log_groups()
                    .log_group_name_prefix(&p)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify("DescribeLogGroups", &e))
            })
            .await?;
            groups.extend(out.log_groups().iter().map(|g| Group {
                name: g.log_group_name().unwrap_or_default().to_owned(),
                retention: g.retention_in_days(),
                kms_key: g.kms_key_id().map(str::to_owned),
            }));
            next = out.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
    }
    Ok(groups)
}

/// `log-groups`.
pub(super) fn log_group_control(target: &Target, groups: &Result<Vec<Group>, CallError>) -> Control {
    let min = target.min_log_retention_days;
    let findings = match groups {
        Err(e) => vec![(false, cannot(e))],
        Ok(groups) => {
            let mut findings: Vec<(bool, String)> = groups
                .iter()
                .map(|g| {
                    let retention = match g.retention {
                        Some(days) if u32::try_from(days).is_ok_and(|d| d >= min) => {
                            (true, format!("retention {days} days"))
                        }
                        Some(days) => (false, format!("retention {days} days (at least {min})")),
                        None => (false, "no retention (never expires)".to_owned()),
                    };
                    let kms = match &g.kms_key {
                        Some(key) => (true, format!("KMS key {key}")),
                        None => (false, "no KMS key".to_owned()),
                    };
                    (
                        retention.0 && kms.0,
                        format!("{}: {}, {}", g.name, retention.1, kms.1),
                    )
                })
                .collect();
            let proxy = format!("/aws/lambda/{}proxy", target.prefix());
            if !groups.iter().any(|g| g.name == proxy) {
                findings.push((false, format!("{proxy}: missing")));
            }
            findings
        }
    };
    control(
        "log-groups",
        "Log groups have a retention of at least the minimum and a KMS key",
        Some("3.5 by analogy (logs encrypted at rest with KMS CMKs)"),
        findings,
    )
}

/// The function's configuration, `Ok(None)` when it does not exist.
async fn function(
    clients: &Clients,
    target: &Target,
    name: &str,
) -> Result<
    Option<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput>,
    CallError,
> {
    let out = with_retries(&target.retry, || async {
        match clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => match classify("GetFunctionConfiguration", &e) {
                c if c.code.as_deref() == Some("ResourceNotFoundException") => Ok(None),
                c => Err(c),
            },
        }
    })
    .await?;
    Ok(out)
}

/// `function-tracing`.
pub(super) async fn tracing(clients: &Clients, target: &Target) -> Control {
    let mut findings = Vec::new();
    for (short, required) in FUNCTIONS {
        let name = format!("{}{short}", target.prefix());
        findings.push(match function(clients, target, &name).await {
            Ok(Some(f)) => {
                let mode = f.tracing_config().and_then(|t| t.mode());
                let active = mode == Some(&TracingMode::Active);
                let shown = mode.map_or("unset", |m| m.as_str());
                (active, format!("{name}: tracing {shown}"))
            }
            Ok(None) if *required => (false, format!("{name}: not found")),
            Ok(None) => (true, format!("{name}: not deployed (optional)")),
            Err(e) => (false, format!("{name}: {}", cannot(&e))),
        });
    }
    control(
        "function-tracing",
        "X-Ray tracing active on every function",
        None,
        findings,
    )
}

/// The resource policy of `name` (qualified or not), `Ok(None)` when it has none.
async fn policy(
    clients: &Clients,
    target: &Target,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Option<String>, CallError> {
    with_retries(&target.retry, || async {
        let request = clients
            .lambda
            .get_policy()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_owned));
        match request.send().await {
            Ok(out) => Ok(out.policy().map(str::to_owned)),
            Err(e) => match classify("GetPolicy", &e) {
                c if c.code.as_deref() == Some("ResourceNotFoundException") => Ok(None),
                c => Err(c),
            },
        }
    })
    .await
}

/// `function-not-public`: the function and its `live` alias.
pub(super) async fn not_public(clients: &Clients, target: &Target) -> Control {
    let mut findings = Vec::new();
    for (short, required) in FUNCTIONS {
        let name = format!("{}{short}", target.prefix());
        match function(clients, target, &name).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                findings.push((
                    !required,
                    format!(
                        "{name}: {}",
                        if *required {
                            "not found"
                        } else {
                            "not deployed (optional)"
                        }
                    ),
                ));
                continue;
            }
            Err(e) => {
                findings.push((false, format!("{name}: {}", cannot(&e))));
                continue;
            }
        }
        let mut open = BTreeSet::new();
        for qualifier in [None, Some("live")] {
            match policy(clients, target, &name, qualifier).await {
                Ok(Some(text)) => {
                    let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    for (sid, why) in open_statements(&doc) {
                        open.insert(match why {
                            Open::Public => format!("{sid} lets anyone invoke"),
                            Open::AnyAccountOf(service) => {
                                format!(
                                    "{sid} lets {service} of any account invoke (no SourceArn/SourceAccount)"
                                )
                            }
                        });
                    }
                }
                Ok(None) => {}
                Err(e) if qualifier.is_some() && e.code.as_deref() == Some("ResourceNotFoundException") => {}
                Err(e) => {
                    open.insert(cannot(&e));
                }
            }
        }
        if open.is_empty() {
            findings.push((
                true,
                format!("{name}: no policy statement (function or live alias) opens it"),
            ));
        } else {
            findings.push((
                false,
                format!("{name}: {}", open.into_iter().collect::<Vec<_>>().join("; ")),
            ));
        }
    }
    control(
        "function-not-public",
        "No function can be invoked by anyone",
        None,
        findings,
    )
}

/// `alarms-with-actions`.
pub(super) async fn alarms(clients: &Clients, target: &Target) -> Control {
    let prefix = target.prefix();
    let findings = match crate::compliance::describe_alarms(&clients.cloudwatch, &target.retry, &prefix).await
    {
        Ok((metric, composite)) => evaluate_alarms(&metric, &composite, &prefix, &target.violations_metric),
        Err(e) => vec![(false, cannot(&e))],
    };
    control("alarms-with-actions", TITLE, CIS, findings)
}

/// The alarm findings: alarms exist; each reaches an action, its own or that of a notifying
/// composite alarm whose rule names it (composites notify through their parents too); one
/// alarm watches the violations metric.
fn evaluate_alarms(
    metric: &[MetricAlarm],
    composite: &[CompositeAlarm],
    prefix: &str,
    (namespace, name): &(String, String),
) -> Vec<(bool, String)> {
    let mut findings = Vec::new();
    if metric.is_empty() && composite.is_empty() {
        findings.push((false, format!("no alarms named {prefix}*")));
    }
    // Composite alarms that notify, directly or through a notifying composite that watches them.
    let notifies = |enabled: Option<bool>, actions: &[String]| enabled != Some(false) && !actions.is_empty();
    let mut notifying: BTreeSet<String> = composite
        .iter()
        .filter(|c| notifies(c.actions_enabled(), c.alarm_actions()))
        .filter_map(|c| c.alarm_name().map(str::to_owned))
        .collect();
    loop {
        let before = notifying.len();
        for c in composite {
            let watched_by_notifying = composite.iter().any(|parent| {
                parent.alarm_name().is_some_and(|p| notifying.contains(p))
                    && parent
                        .alarm_rule()
                        .is_some_and(|r| rule_names(r).contains(&c.alarm_name().unwrap_or_default()))
            });
            if watched_by_notifying {
                notifying.insert(c.alarm_name().unwrap_or_default().to_owned());
            }
        }
        if notifying.len() == before {
            break;
        }
    }
    let watched: BTreeSet<&str> = composite
        .iter()
        .filter(|c| c.alarm_name().is_some_and(|n| notifying.contains(n)))
        .filter_map(|c| c.alarm_rule())
        .flat_map(rule_names)
        .collect();
    let orphans: Vec<&str> = metric
        .iter()
        .filter(|a| !notifies(a.actions_enabled(), a.alarm_actions()))
        .filter_map(|a| a.alarm_name())
        .filter(|n| !watched.contains(n))
        .chain(
            composite
                .iter()
                .filter_map(|c| c.alarm_name())
                .filter(|n| !notifying.contains(*n)),
        )
        .collect();
    if !composite.is_empty() || !metric.is_empty() {
        findings.push((
            orphans.is_empty(),
            format!(
                "{} metric alarms, {} composite alarms, {} of them notify{}",
                metric.len(),
                composite.len(),
                notifying.len(),
                if notifying.is_empty() {
                    String::new()
                } else {
                    format!(": {}", notifying.iter().cloned().collect::<Vec<_>>().join(", "))
                }
            ),
        ));
    }
    if !orphans.is_empty() {
        findings.push((false, format!("no action reached by: {}", orphans.join(", "))));
    }
    let watching: Vec<&str> = metric
        .iter()
        .filter(|a| {
            let direct = a.namespace() == Some(namespace.as_str()) && a.metric_name() == Some(name.as_str());
            let in_math = a.metrics().iter().any(|q| {
                q.metric_stat().and_then(|s| s.metric()).is_some_and(|m| {
                    m.namespace() == Some(namespace.as_str()) && m.metric_name() == Some(name.as_str())
                })
            });
            direct || in_math
        })
        .filter_map(|a| a.alarm_name())
        .collect();
    findings.push(match watching.as_slice() {
        [] => (false, format!("no alarm watches {namespace}/{name}")),
        names => (
            true,
            format!("{namespace}/{name} watched by {}", names.join(", ")),
        ),
    });
    findings
}

const TITLE: &str = "Alarms present, each reaching an action (composite alarms notify)";
const CIS: Option<&str> = Some("section 4 (Monitoring: alarms notify an SNS topic)");

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, actions: &[&str], metric_name: &str) -> MetricAlarm {
        let mut a = MetricAlarm::builder()
            .alarm_name(name)
            .namespace("AuthServer")
            .metric_name(metric_name)
            .actions_enabled(true);
        for x in actions {
            a = a.alarm_actions(*x);
        }
        a.build()
    }

    fn composite(name: &str, rule: &str, actions: &[&str], enabled: bool) -> CompositeAlarm {
        let mut a = CompositeAlarm::builder()
            .alarm_name(name)
            .alarm_rule(rule)
            .actions_enabled(enabled);
        for x in actions {
            a = a.alarm_actions(*x);
        }
        a.build()
    }

    const METRIC: (&str, &str) = ("AuthServer", "ComplianceViolations");

    fn run(metric: &[MetricAlarm], composite: &[CompositeAlarm]) -> Vec<(bool, String)> {
        evaluate_alarms(
            metric,
            composite,
            "s-d-",
            &(METRIC.0.to_owned(), METRIC.1.to_owned()),
        )
    }

    /// The template's design: leaves without actions, composites (one nested) that notify.
    #[test]
    fn leaves_reach_actions_through_composites() {
        let leaves = [
            metric("s-d-errors-high", &[], "Errors"),
            metric("s-d-compliance-violations", &[], "ComplianceViolations"),
            metric("s-d-store-stale", &[], "StoreStalenessSeconds"),
        ];
        let composites = [
            composite(
                "s-d-critical",
                r#"ALARM("s-d-errors-high") OR ALARM(s-d-inner)"#,
                &["arn:topic"],
                true,
            ),
            composite("s-d-inner", r#"ALARM("s-d-store-stale")"#, &[], true),
            composite(
                "s-d-warning-operations",
                r#"ALARM("s-d-compliance-violations")"#,
                &["arn:topic"],
                true,
            ),
        ];
        assert_eq!(
            run(&leaves, &composites),
            vec![
                (
                    true,
                    "3 metric alarms, 3 composite alarms, 3 of them notify: s-d-critical, s-d-inner, s-d-warning-operations"
                        .to_owned()
                ),
                (true, "AuthServer/ComplianceViolations watched by s-d-compliance-violations".to_owned()),
            ]
        );
    }

    #[test]
    fn orphans_disabled_actions_and_no_alarms_fail() {
        let leaves = [
            metric("s-d-errors-high", &[], "Errors"),
            metric("s-d-direct", &["arn:topic"], "Errors"),
        ];
        let composites = [composite(
            "s-d-muted",
            r#"ALARM("s-d-errors-high")"#,
            &["arn:topic"],
            false,
        )];
        let findings = run(&leaves, &composites);
        assert_eq!(
            findings[0].1,
            "2 metric alarms, 1 composite alarms, 0 of them notify"
        );
        assert_eq!(
            findings[1],
            (
                false,
                "no action reached by: s-d-errors-high, s-d-muted".to_owned()
            )
        );
        assert_eq!(
            findings[2],
            (
                false,
                "no alarm watches AuthServer/ComplianceViolations".to_owned()
            )
        );
        let none = run(&[], &[]);
        assert_eq!(none[0], (false, "no alarms named s-d-*".to_owned()));
    }
}
