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

//!
//! # Layout
//! - `secrets`: the Secrets Manager controls (encryption, rotation, resource policy).
//! - `kms`: `kms-key-rotation` and the key lookup the encryption controls share.
//! - `infra`: log groups and functions.
//! - `alarms`: `alarms-with-actions`.
//! - `document`: the stored users document (hash policy, password age).
//!
//! This module runs them in report order and holds what they share: how findings become a
//! control, and day arithmetic.

mod alarms;
mod document;
mod infra;
mod kms;
mod secrets;

use super::{Clients, Control, Outcome, Target};
use crate::sm;
use authserver_core::parse_document;
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
    let (encryption, secret_keys) = secrets::secret_encryption(clients, target, &secrets).await;
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
        kms::key_rotation(clients, target, &secret_keys, &groups).await,
        secrets::secret_rotation(target, &credential),
        secrets::resource_policies(clients, target, &secrets).await,
        infra::log_group_control(target, &groups),
        infra::tracing(clients, target).await,
        infra::not_public(clients, target).await,
        alarms::alarms(clients, target).await,
        document::hash_policy(target, &document, name),
        document::password_age(target, &document, name),
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

#[cfg(test)]
mod tests {
    use super::*;

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
