//! `kms-key-rotation`, and the KMS key lookup the encryption controls share.

use super::infra::Group;
use super::{cannot, control};
use crate::compliance::{Clients, Control, Target};
use crate::retry::{CallError, classify, with_retries};
use aws_sdk_kms::types::{KeyManagerType, KeyState};
use std::collections::BTreeMap;

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

/// `kms-key-rotation`: the secrets' keys and the log groups' keys.
pub(super) async fn key_rotation(
    clients: &Clients,
    target: &Target,
    secret_keys: &[(String, String)],
    groups: &Result<Vec<Group>, CallError>,
) -> Control {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, user) in secret_keys {
        keys.entry(key.clone()).or_default().push(user.clone());
    }
    let mut findings = Vec::new();
    for g in groups.iter().flatten() {
        let Some(arn) = &g.kms_key else { continue };
        match describe_key(clients, target, arn).await {
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
