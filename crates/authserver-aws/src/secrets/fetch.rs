//! The AWS side of a refresh: which versions hold `AWSCURRENT`, `AWSPENDING` and
//! `AWSPREVIOUS` (cheap, no secret material), and the value of one version. Values are held in
//! zeroizing buffers.

use super::{RefreshError, SecretsStoreConfig};
use crate::retry::{RetryPolicy, classify, with_retries};
use aws_sdk_secretsmanager::Client;
use std::time::SystemTime;
use zeroize::Zeroizing;

/// The staging label the store follows.
pub const CURRENT: &str = "AWSCURRENT";
/// The label of the version a rotation is preparing.
pub const PENDING: &str = "AWSPENDING";
/// The label Secrets Manager moves to the version `AWSCURRENT` left.
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// Which version carries which staging label, from one `DescribeSecret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Labels {
    /// The version staged `AWSCURRENT`.
    pub current: String,
    /// The version staged `AWSPENDING`, when that is not the current one (a rotation under way).
    pub pending: Option<String>,
    /// The version staged `AWSPREVIOUS`.
    pub previous: Option<String>,
    /// When Secrets Manager last rotated the secret.
    pub last_rotated: Option<SystemTime>,
}

/// `DescribeSecret` → which version carries which label. A secret scheduled for deletion
/// counts as gone: `GetSecretValue` would refuse it too.
pub(crate) async fn labels(client: &Client, config: &SecretsStoreConfig) -> Result<Labels, RefreshError> {
    const OP: &str = "DescribeSecret";
    let out = with_retries(&config.retry, || async {
        client
            .describe_secret()
            .secret_id(&config.secret_id)
            .send()
            .await
            .map_err(|e| classify(OP, &e))
    })
    .await?;
    if out.deleted_date().is_some() {
        return Err(RefreshError::Deleted);
    }
    let staged = |label: &str| {
        out.version_ids_to_stages().and_then(|versions| {
            versions
                .iter()
                .find(|(_, stages)| stages.iter().any(|s| s == label))
                .map(|(id, _)| id.clone())
        })
    };
    let current = staged(CURRENT).ok_or(RefreshError::NoCurrentVersion)?;
    Ok(Labels {
        pending: staged(PENDING).filter(|p| *p != current),
        previous: staged(PREVIOUS).filter(|p| *p != current),
        last_rotated: out
            .last_rotated_date()
            .and_then(|d| SystemTime::try_from(*d).ok()),
        current,
    })
}

/// The `AWSCURRENT` value of any secret (the `user_hash` key, say), with the same retries.
pub async fn current_value(
    client: &Client,
    secret_id: &str,
    retry: &RetryPolicy,
) -> Result<Zeroizing<Vec<u8>>, RefreshError> {
    Ok(value(client, secret_id, retry, None).await?.1)
}

/// `GetSecretValue` of `version` (or of `AWSCURRENT`) → (version id, value bytes).
pub(crate) async fn value(
    client: &Client,
    secret_id: &str,
    retry: &RetryPolicy,
    version: Option<&str>,
) -> Result<(String, Zeroizing<Vec<u8>>), RefreshError> {
    const OP: &str = "GetSecretValue";
    let mut out = with_retries(retry, || async {
        let request = client.get_secret_value().secret_id(secret_id);
        let request = match version {
            Some(v) => request.version_id(v),
            None => request.version_stage(CURRENT),
        };
        request.send().await.map_err(|e| classify(OP, &e))
    })
    .await?;
    let version = out
        .version_id
        .take()
        .or_else(|| version.map(str::to_owned))
        .ok_or(RefreshError::NoCurrentVersion)?;
    let value = match (out.secret_string.take(), out.secret_binary.take()) {
        (Some(text), _) => Zeroizing::new(text.into_bytes()),
        (None, Some(blob)) => Zeroizing::new(blob.into_inner()),
        (None, None) => {
            return Err(RefreshError::Invalid {
                version,
                reason: "the version has neither SecretString nor SecretBinary".into(),
            });
        }
    };
    Ok((version, value))
}
