//! The CloudWatch alarm calls that `ops alarms test` ([`crate::alarms`]) and the compliance
//! check ([`crate::compliance`]) both make: listing a deployment's alarms, and reading which
//! alarms a composite rule names. Neither of those modules owns them, so neither depends on the
//! other.

use crate::retry::{CallError, RetryPolicy, classify, with_retries};
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm};

/// A CloudWatch client for `sdk` (see [`crate::sdk_config`]).
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

/// Every metric and composite alarm whose name starts with `prefix` (all pages).
pub async fn describe_alarms(
    client: &Client,
    retry: &RetryPolicy,
    prefix: &str,
) -> Result<(Vec<MetricAlarm>, Vec<CompositeAlarm>), CallError> {
    const OP: &str = "DescribeAlarms";
    let (mut metric, mut composite) = (Vec::new(), Vec::new());
    let mut next: Option<String> = None;
    loop {
        let token = next.clone();
        let out = with_retries(retry, || async {
            client
                .describe_alarms()
                .alarm_name_prefix(prefix)
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(OP, &e))
        })
        .await?;
        metric.extend(out.metric_alarms().iter().cloned());
        composite.extend(out.composite_alarms().iter().cloned());
        next = out.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok((metric, composite));
        }
    }
}

/// The alarm names (or ARNs, reduced to names) a composite rule refers to:
/// `ALARM("name")`, `OK(name)`, `INSUFFICIENT_DATA("arn:...:alarm:name")`.
pub fn rule_names(rule: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for function in ["ALARM(", "OK(", "INSUFFICIENT_DATA("] {
        let mut rest = rule;
        while let Some(at) = rest.find(function) {
            // `OK(` also matches the end of `...LOOK(`: require a word boundary.
            let boundary = rest[..at]
                .chars()
                .last()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
            rest = &rest[at + function.len()..];
            let Some(end) = rest.find(')') else { break };
            if boundary {
                let arg = rest[..end].trim().trim_matches('"').trim();
                names.push(arg.rsplit_once(":alarm:").map_or(arg, |(_, name)| name));
            }
            rest = &rest[end..];
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::rule_names;

    #[test]
    fn rules_name_alarms_by_name_or_arn() {
        let rule = r#"ALARM("svc-dev-errors-high") OR ALARM(svc-dev-throttles) OR
            (OK("arn:aws:cloudwatch:eu-west-1:1:alarm:svc-dev-store-stale") AND NOT INSUFFICIENT_DATA("x"))"#;
        assert_eq!(
            rule_names(rule),
            vec![
                "svc-dev-errors-high",
                "svc-dev-throttles",
                "svc-dev-store-stale",
                "x"
            ]
        );
        assert!(rule_names("TRUE").is_empty());
    }
}
