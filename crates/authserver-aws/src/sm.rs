//! Small Secrets Manager calls shared by rotation and `users push/pull`, each retried like the
//! store's ([`crate::retry`]). Values travel in zeroizing strings and never reach an error.

use crate::retry::{CallError, RetryPolicy, classify, with_retries};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// `DescribeSecret`.
pub(crate) async fn describe(
    client: &Client,
    retry: &RetryPolicy,
    id: &str,
) -> Result<DescribeSecretOutput, CallError> {
    const OP: &str = "DescribeSecret";
    with_retries(retry, || async {
        client
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| classify(OP, &e))
    })
    .await
}

/// Version id → its staging labels, from a `DescribeSecret` answer.
pub(crate) fn stages(described: &DescribeSecretOutput) -> HashMap<String, Vec<String>> {
    described.version_ids_to_stages().cloned().unwrap_or_default()
}

/// The version carrying `label`, if any.
pub(crate) fn holder(stages: &HashMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id.clone())
}

/// Whether `version` carries `label`.
pub(crate) fn has(stages: &HashMap<String, Vec<String>>, version: &str, label: &str) -> bool {
    stages
        .get(version)
        .is_some_and(|labels| labels.iter().any(|l| l == label))
}

/// A version's id and text value.
pub(crate) struct Value {
    /// The version id.
    pub version: String,
    /// Its `SecretString` (or UTF-8 `SecretBinary`).
    pub text: Zeroizing<String>,
}

/// `GetSecretValue` of a version id and/or stage. `Ok(None)` when there is no such value
/// (`ResourceNotFoundException`: no version, or a version without a value yet).
pub(crate) async fn get(
    client: &Client,
    retry: &RetryPolicy,
    id: &str,
    version: Option<&str>,
    stage: Option<&str>,
) -> Result<Option<Value>, CallError> {
    const OP: &str = "GetSecretValue";
    let answer = with_retries(retry, || async {
        let mut request = client.get_secret_value().secret_id(id);
        if let Some(v) = version {
            request = request.version_id(v);
        }
        if let Some(s) = stage {
            request = request.version_stage(s);
        }
        match request.send().await {
            Ok(out) => Ok(Some(out)),
            Err(e) => {
                let e = classify(OP, &e);
                if e.code.as_deref() == Some("ResourceNotFoundException") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    })
    .await?;
    let Some(mut out) = answer else {
        return Ok(None);
    };
    let version = out
        .version_id
        .take()
        .or_else(|| version.map(str::to_owned))
        .unwrap_or_default();
    let text = match (out.secret_string.take(), out.secret_binary.take()) {
        (Some(text), _) => Zeroizing::new(text),
        (None, Some(blob)) => {
            let bytes = Zeroizing::new(blob.into_inner());
            Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned())
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(Value { version, text }))
}

/// `PutSecretValue` with an explicit client request token (so that a retried call cannot
/// create a second version) and explicit staging labels. Returns the version id.
pub(crate) async fn put(
    client: &Client,
    retry: &RetryPolicy,
    id: &str,
    token: &str,
    value: &str,
    stages: &[&str],
) -> Result<String, CallError> {
    const OP: &str = "PutSecretValue";
    with_retries(retry, || async {
        let mut request = client
            .put_secret_value()
            .secret_id(id)
            .client_request_token(token)
            .secret_string(value);
        for stage in stages {
            request = request.version_stages(*stage);
        }
        request
            .send()
            .await
            .map(|out| out.version_id().unwrap_or(token).to_owned())
            .map_err(|e| classify(OP, &e))
    })
    .await
}

/// `UpdateSecretVersionStage`: moves `label` to `to` (from `from`), or only removes it from
/// `from` when `to` is `None`.
pub(crate) async fn move_label(
    client: &Client,
    retry: &RetryPolicy,
    id: &str,
    label: &str,
    to: Option<&str>,
    from: Option<&str>,
) -> Result<(), CallError> {
    const OP: &str = "UpdateSecretVersionStage";
    with_retries(retry, || async {
        client
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage(label)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(OP, &e))
    })
    .await
}

/// A fresh client request token (32 hex digits): Secrets Manager takes 32 to 64 characters.
pub(crate) fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}
