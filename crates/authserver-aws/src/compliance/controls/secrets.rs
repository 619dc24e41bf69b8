//! The Secrets Manager controls: `secret-encryption`, `secret-rotation`,
//! `secret-resource-policy`.

use super::{cannot, control, days_since, kms, system_time};
use crate::compliance::{Clients, Control, Target};
use crate::retry::{CallError, classify, with_retries};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;

pub(super) type Described<'a> = (
    &'static str,
    &'a String,
    &'a Result<DescribeSecretOutput, CallError>,
);

/// `secret-encryption`; also returns the customer-managed key ids in use, for
/// `kms-key-rotation`.
pub(super) async fn secret_encryption(
    clients: &Clients,
    target: &Target,
    secrets: &[Described<'_>],
) -> (Control, Vec<(String, String)>) {
    let mut findings = Vec::new();
    let mut keys = Vec::new();
    for (what, id, described) in secrets {
        let d = match described {
            Ok(d) => d,
            Err(e) => {
                findings.push((false, format!("{what} {id}: {}", cannot(e))));
                continue;
            }
        };
        let Some(key) = d.kms_key_id() else {
            findings.push((
                false,
                format!("{what} {id}: encrypted with the AWS managed key aws/secretsmanager"),
            ));
            continue;
        };
        match kms::describe_key(clients, target, key).await {
            Ok((key_id, true, enabled)) => {
                findings.push((
                    enabled,
                    format!(
                        "{what} {id}: customer-managed key {key_id}{}",
                        if enabled { "" } else { " (not enabled)" }
                    ),
                ));
                keys.push((key_id, (*what).to_owned()));
            }
            Ok((key_id, false, _)) => {
                findings.push((false, format!("{what} {id}: key {key_id} is AWS managed")))
            }
            Err(e) => findings.push((false, format!("{what} {id}: key {key}: {}", cannot(&e)))),
        }
    }
    let c = control(
        "secret-encryption",
        "Secrets encrypted with a customer-managed KMS key",
        None,
        findings,
    );
    (c, keys)
}

/// The rotation interval in days, from `AutomaticallyAfterDays` or a `rate(...)` schedule.
fn interval_days(d: &DescribeSecretOutput) -> Result<u64, String> {
    let rules = d.rotation_rules().ok_or("no rotation rules")?;
    if let Some(days) = rules.automatically_after_days() {
        return u64::try_from(days).map_err(|_| format!("invalid interval {days}"));
    }
    let expr = rules.schedule_expression().ok_or("no rotation schedule")?;
    let inner = expr
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("schedule {expr}: only rate(N days|hours) can be bounded; use one"))?;
    let (n, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("schedule {expr} not understood"))?;
    let n: u64 = n.parse().map_err(|_| format!("schedule {expr} not understood"))?;
    match unit {
        "day" | "days" => Ok(n),
        "hour" | "hours" => Ok(n.div_ceil(24)),
        _ => Err(format!("schedule {expr} not understood")),
    }
}

/// `secret-rotation`.
pub(super) fn secret_rotation(
    target: &Target,
    credential: &Result<DescribeSecretOutput, CallError>,
) -> Control {
    let id = &target.credential_secret;
    let max = u64::from(target.max_rotation_days);
    let findings = match credential {
        Err(e) => vec![(false, format!("{id}: {}", cannot(e)))],
        Ok(d) if d.rotation_enabled() != Some(true) => {
            vec![(false, format!("{id}: rotation is not enabled"))]
        }
        Ok(d) => {
            let mut findings = Vec::new();
            let interval = interval_days(d);
            match &interval {
                Ok(days) => findings.push((
                    *days <= max,
                    format!("{id}: rotation enabled, every {days} days (at most {max})"),
                )),
                Err(why) => findings.push((false, format!("{id}: rotation enabled, {why}"))),
            }
            let bound = interval.unwrap_or(max).min(max);
            match (system_time(d.last_rotated_date()), system_time(d.created_date())) {
                (Some(at), _) => {
                    let age = days_since(at);
                    findings.push((
                        age <= bound,
                        format!("{id}: last rotated {age} days ago (at most {bound})"),
                    ));
                }
                (None, Some(created)) => {
                    let age = days_since(created);
                    findings.push((
                        age <= bound,
                        format!("{id}: never rotated; created {age} days ago (at most {bound})"),
                    ));
                }
                (None, None) => findings.push((false, format!("{id}: no rotation or creation date"))),
            }
            findings
        }
    };
    control(
        "secret-rotation",
        "Credential secret rotation enabled, at most every 90 days, and done within the interval",
        Some("1.14 by analogy (credentials rotated every 90 days or less)"),
        findings,
    )
}

/// `secret-resource-policy`.
pub(super) async fn resource_policies(
    clients: &Clients,
    target: &Target,
    secrets: &[Described<'_>],
) -> Control {
    let mut findings = Vec::new();
    for (what, id, _) in secrets {
        let answer = with_retries(&target.retry, || async {
            clients
                .secrets
                .get_resource_policy()
                .secret_id(id.as_str())
                .send()
                .await
                .map_err(|e| classify("GetResourcePolicy", &e))
        })
        .await;
        let text = match answer {
            Ok(out) => out.resource_policy().map(str::to_owned),
            Err(e) => {
                findings.push((false, format!("{what} {id}: {}", cannot(&e))));
                continue;
            }
        };
        let Some(doc) = text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) else {
            findings.push((false, format!("{what} {id}: no resource policy")));
            continue;
        };
        let statements = crate::compliance::policy::statements(&doc);
        let denies = statements
            .iter()
            .filter(|s| s.get("Effect").and_then(|e| e.as_str()) == Some("Deny"))
            .count();
        let open = crate::compliance::policy::open_statements(&doc);
        if open.is_empty() {
            findings.push((
                true,
                format!(
                    "{what} {id}: resource policy, {} statement(s), {denies} Deny, none open",
                    statements.len()
                ),
            ));
        } else {
            let sids: Vec<_> = open.iter().map(|(sid, _)| sid.as_str()).collect();
            findings.push((
                false,
                format!("{what} {id}: resource policy allows anyone: {}", sids.join(", ")),
            ));
        }
    }
    control(
        "secret-resource-policy",
        "Secrets have a resource policy that opens them to no one",
        None,
        findings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::types::RotationRulesType;

    fn described(rules: RotationRulesType) -> DescribeSecretOutput {
        DescribeSecretOutput::builder().rotation_rules(rules).build()
    }

    #[test]
    fn intervals_from_days_or_rate_expressions() {
        let days = |d| described(RotationRulesType::builder().automatically_after_days(d).build());
        let expr = |e: &str| described(RotationRulesType::builder().schedule_expression(e).build());
        assert_eq!(interval_days(&days(30)), Ok(30));
        assert_eq!(interval_days(&expr("rate(90 days)")), Ok(90));
        assert_eq!(interval_days(&expr("rate(1 day)")), Ok(1));
        assert_eq!(interval_days(&expr("rate(36 hours)")), Ok(2));
        assert!(
            interval_days(&expr("cron(0 6 * * ? *)"))
                .unwrap_err()
                .contains("rate(")
        );
        assert!(interval_days(&expr("rate(2 weeks)")).is_err());
        assert!(interval_days(&DescribeSecretOutput::builder().build()).is_err());
    }
}
