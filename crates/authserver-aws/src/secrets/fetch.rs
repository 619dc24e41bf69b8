//! The AWS side of a refresh: which version holds `AWSCURRENT` (cheap, no secret material),
//! and the value of one version. Values are held in zeroizing buffers.

use super::{RefreshError, SecretsStoreConfig};
use crate::retry::{RetryPolicy, classify, with_retries};
use aws_sdk_secretsmanager::Client;
use zeroize::Zeroizing;

/// The staging label the store follows.
pub const CURRENT: &str = "AWSCURRENT";

/// What a fetch found.
pub(crate) enum Fetched {
    /// `AWSCURRENT` still names the version in service.
    Unchanged,
    /// A version to parse.
    New {
        /// Its version id.
        version: String,
        /// Its value (JSON bytes).
        value: Zeroizing<Vec<u8>>,
    },
}

/// Asks which version holds `AWSCURRENT`, and fetches its value only when it is neither the
/// version in service (`known`) nor one already refused (`refused`). Without a version in
/// service, fetches `AWSCURRENT` in one call (cold start: one round trip, not two).
pub(crate) async fn fetch(
    client: &Client,
    config: &SecretsStoreConfig,
    known: Option<&str>,
    refused: Option<&(String, RefreshError)>,
) -> Result<Fetched, RefreshError> {
    let wanted = match known {
        None => None,
        Some(known) => {
            let current = current_version(client, config).await?;
            if current == known {
                return Ok(Fetched::Unchanged);
            }
            if let Some((version, why)) = refused.filter(|(v, _)| *v == current) {
                debug_assert_eq!(version, &current);
                return Err(why.clone());
            }
            Some(current)
        }
    };
    let (version, value) = value(client, &config.secret_id, &config.retry, wanted.as_deref()).await?;
    if let Some((_, why)) = refused.filter(|(v, _)| *v == version) {
        return Err(why.clone());
    }
    Ok(Fetched::New { version, value })
}

/// `DescribeSecret` → the version id staged `AWSCURRENT`. A secret scheduled for deletion
/// counts as gone: `GetSecretValue` would refuse it too.
async fn current_version(client: &Client, config: &SecretsStoreConfig) -> Result<String, RefreshError> {
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
    out.version_ids_to_stages()
        .and_then(|versions| {
            versions
                .iter()
                .find(|(_, stages)| stages.iter().any(|s| s == CURRENT))
                .map(|(id, _)| id.clone())
        })
        .ok_or(RefreshError::NoCurrentVersion)
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
async fn value(
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
