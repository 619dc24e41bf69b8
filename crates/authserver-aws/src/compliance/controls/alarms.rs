//! `alarms-with-actions`: the deployment's alarms exist, each reaches an action, and one
//! watches the violations metric.

use super::{cannot, control};
use crate::cloudwatch::{describe_alarms, rule_names};
use crate::compliance::{Clients, Control, Target};
use aws_sdk_cloudwatch::types::{CompositeAlarm, MetricAlarm};
use std::collections::BTreeSet;

/// `alarms-with-actions`.
pub(super) async fn alarms(clients: &Clients, target: &Target) -> Control {
    let prefix = target.prefix();
    let findings = match describe_alarms(&clients.cloudwatch, &target.retry, &prefix).await {
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
