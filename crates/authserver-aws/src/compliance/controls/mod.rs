//! The controls, in report order:
//!
//! | id | control | CIS AWS Foundations |
//! |---|---|---|
//! | `secret-encryption` | both secrets encrypted with a customer-managed KMS key | — |
//! | `kms-key-rotation` | automatic rotation on for every customer-managed key in use (secrets, log groups) | 3.6 (v3.0.0; 3.8 in v1.4.0) |
//! | `secret-rotation` | rotation enabled, interval ≤ the maximum (90 days), last rotated (or created) within it | 1.14 by analogy (credentials rotated every 90 days or less) |
//! | `secret-resource-policy` | both secrets have a resource policy, none open to everyone | — |
//! | `log-groups` | every log group of the deployment has a retention ≥ the minimum and a KMS key | 3.5 by analogy (logs encrypted at rest with KMS CMKs) |
//! | `function-tracing` | X-Ray tracing `Active` on every function | — |
//! | `function-not-public` | no function (or `live` alias) policy lets anyone, or any account's service, invoke | — |
//! | `alarms-with-actions` | alarms exist, every one reaches an action (its own or a notifying composite's), one watches the violations metric | section 4 (Monitoring: alarms notify an SNS topic) |
//! | `stored-hash-policy` | every stored hash meets the hash policy | — |
//! | `password-age` | every ACTIVE user's `passwordChangedAt` within the maximum age | 1.14 by analogy; 1.11 in v1.2.0 (passwords expire within 90 days) |

mod infra;

use super::{Clients, Control, Outcome, Target};
use crate::retry::{CallError, classify, with_retries};
use crate::sm;
use authserver_core::{Status, StoreDocument, StoredHash, parse_document};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

const DAY: u64 = 86_400;

/// Every control, in report order.
pub(super) async fn all(
    clients: &Clients,
    target: &Target,
    name: &(dyn Fn(&str) -> String + Sync),
) -> Vec<Control> {
    let retry = &target.retry;
    let credential = sm::describe(&clients.secrets, retry, &target.credential_secret).await;
    let hash_key = sm::describe(&clients.secrets, retry, &target.user_hash_key_secret).await;
    let secrets = [
        ("credential secret", &target.credential_secret, &credential),
        ("user_hash key secret", &target.user_hash_key_secret, &hash_key),
    ];
    let groups = infra::log_groups(clients, target).await;
    let (encryption, secret_keys) = secret_encryption(clients, target, &secrets).await;
    let document = sm::get(
        &clients.secrets,
        retry,
        &target.credential_secret,
        None,
        Some(crate::secrets::CURRENT),
    )
    .await
    .map_err(|e| e.to_string())
    .and_then(|v| v.ok_or_else(|| "no AWSCURRENT value".to_owned()))
    .and_then(|v| parse_document(v.text.as_bytes()).map_err(|e| e.log_safe(name)));
    vec![
        encryption,
        key_rotation(clients, target, &secret_keys, &groups).await,
        secret_rotation(target, &credential),
        resource_policies(clients, target, &secrets).await,
        infra::log_group_control(target, &groups),
        infra::tracing(clients, target).await,
        infra::not_public(clients, target).await,
        infra::alarms(clients, target).await,
        hash_policy(target, &document, name),
        password_age(target, &document, name),
    ]
}

/// A control from its findings: it passes when no finding failed (and there was one).
fn control(
    id: &'static str,
    title: &'static str,
    cis: Option<&'static str>,
    findings: Vec<(bool, String)>,
) -> Control {
    let passed = !findings.is_empty() && findings.iter().all(|(ok, _)| *ok);
    Control {
        id,
        title,
        result: if passed { Outcome::Pass } else { Outcome::Fail },
        evidence: if findings.is_empty() {
            vec!["nothing found to check".into()]
        } else {
            findings.into_iter().map(|(_, e)| e).collect()
        },
        cis,
    }
}

fn cannot(e: &impl std::fmt::Display) -> String {
    format!("cannot inspect: {e}")
}

/// Whole days since `at`.
fn days_since(at: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(at)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / DAY
}

fn system_time(t: Option<&aws_sdk_secretsmanager::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

type Described<'a> = (
    &'static str,
    &'a String,
    &'a Result<DescribeSecretOutput, CallError>,
);

/// `secret-encryption`; also returns the customer-managed key ids in use, for
/// `kms-key-rotation`.
async fn secret_encryption(
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
        match infra::describe_key(clients, target, key).await {
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

/// `kms-key-rotation`: the secrets' keys and the log groups' keys.
async fn key_rotation(
    clients: &Clients,
    target: &Target,
    secret_keys: &[(String, String)],
    groups: &Result<Vec<infra::Group>, CallError>,
) -> Control {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, user) in secret_keys {
        keys.entry(key.clone()).or_default().push(user.clone());
    }
    let mut findings = Vec::new();
    for g in groups.iter().flatten() {
        let Some(arn) = &g.kms_key else { continue };
        match infra::describe_key(clients, target, arn).await {
            Ok((key_id, true, _)) => keys
                .entry(key_id)
                .or_default()
                .push(format!("log group {}", g.name)),
            Ok(_) => {}
            Err(e) => findings.push((false, format!("log group {} key: {}", g.name, cannot(&e)))),
        }
    }
    for (key, users) in &keys {
        let retry = &target.retry;
        let status = with_retries(retry, || async {
            clients
                .kms
                .get_key_rotation_status()
                .key_id(key)
                .send()
                .await
                .map_err(|e| classify("GetKeyRotationStatus", &e))
        })
        .await;
        let used_by = users.join(", ");
        findings.push(match status {
            Ok(s) if s.key_rotation_enabled() => (
                true,
                format!("key {key} (used by {used_by}): automatic rotation on"),
            ),
            Ok(_) => (
                false,
                format!("key {key} (used by {used_by}): automatic rotation OFF"),
            ),
            Err(e) => (false, format!("key {key}: {}", cannot(&e))),
        });
    }
    if keys.is_empty() && findings.is_empty() {
        findings.push((false, "no customer-managed key in use to check".into()));
    }
    control(
        "kms-key-rotation",
        "KMS key rotation on for the customer-managed keys in use",
        Some("3.6 (v3.0.0; 3.8 in v1.4.0)"),
        findings,
    )
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
fn secret_rotation(target: &Target, credential: &Result<DescribeSecretOutput, CallError>) -> Control {
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
async fn resource_policies(clients: &Clients, target: &Target, secrets: &[Described<'_>]) -> Control {
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
        let statements = super::policy::statements(&doc);
        let denies = statements
            .iter()
            .filter(|s| s.get("Effect").and_then(|e| e.as_str()) == Some("Deny"))
            .count();
        let open = super::policy::open_statements(&doc);
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

/// `stored-hash-policy`.
fn hash_policy(
    target: &Target,
    doc: &Result<StoreDocument, String>,
    name: &(dyn Fn(&str) -> String + Sync),
) -> Control {
    let p = &target.policy;
    let findings = match doc {
        Err(e) => vec![(false, format!("{}: {e}", target.credential_secret))],
        Ok(doc) => {
            let mut bad: Vec<(bool, String)> = doc
                .iter()
                .filter_map(|(user, rec)| {
                    StoredHash::parse(&rec.password_hash, p)
                        .err()
                        .map(|e| (false, format!("user {}: {e}", name(user))))
                })
                .collect();
            if bad.is_empty() {
                bad.push((
                    true,
                    format!(
                        "{} users, every hash Argon2id with m {}..={} KiB, t {}..={}, p <= {}",
                        doc.len(),
                        p.min_m_kib,
                        p.max_m_kib,
                        p.min_t,
                        p.max_t,
                        p.max_p
                    ),
                ));
            }
            bad
        }
    };
    control(
        "stored-hash-policy",
        "Every stored password hash meets the hash policy",
        None,
        findings,
    )
}

/// `password-age`.
fn password_age(
    target: &Target,
    doc: &Result<StoreDocument, String>,
    name: &(dyn Fn(&str) -> String + Sync),
) -> Control {
    let max = u64::from(target.max_password_age_days);
    let findings = match doc {
        Err(e) => vec![(false, format!("{}: {e}", target.credential_secret))],
        Ok(doc) => {
            let mut oldest = 0;
            let mut active = 0;
            let mut bad = Vec::new();
            for (user, rec) in doc.iter().filter(|(_, r)| r.status == Status::Active) {
                active += 1;
                match rec.password_changed_at {
                    None => bad.push((false, format!("user {}: no passwordChangedAt", name(user)))),
                    Some(at) => {
                        let age =
                            u64::try_from((time::OffsetDateTime::now_utc() - at).whole_days()).unwrap_or(0);
                        oldest = oldest.max(age);
                        if age > max {
                            bad.push((
                                false,
                                format!(
                                    "user {}: password changed {age} days ago (at most {max})",
                                    name(user)
                                ),
                            ));
                        }
                    }
                }
            }
            if bad.is_empty() {
                bad.push((
                    true,
                    format!(
                        "{active} active users, passwords changed within {max} days (oldest {oldest} days)"
                    ),
                ));
            }
            bad
        }
    };
    control(
        "password-age",
        "Every active user's password changed within the maximum age",
        Some("1.14 by analogy; 1.11 in v1.2.0 (passwords expire within 90 days)"),
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

    #[test]
    fn a_control_without_findings_fails() {
        let c = control("x", "t", None, vec![]);
        assert_eq!(c.result, Outcome::Fail);
        assert_eq!(
            control("x", "t", None, vec![(true, "ok".into())]).result,
            Outcome::Pass
        );
    }
}
