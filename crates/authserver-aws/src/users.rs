//! The users document to and from the credential secret (`authserver users push/pull`).
//!
//! A push validates the whole document against the hash policy first (a refused document would
//! otherwise only show up as a store error on every server), uploads it as the new
//! `AWSCURRENT`, and then detaches `AWSPREVIOUS` from the version it replaced: servers accept
//! a previous version's service-account passwords after a *rotation* only, and a push (which
//! may be the answer to a leaked password) must take effect at once everywhere, including on
//! instances that start later. The replaced version stays available by its id for a rollback.
//! A push during a rotation (`AWSPENDING` on another version) is refused unless forced: the
//! rotation would otherwise finish with a store computed from the old document.

use crate::retry::{CallError, RetryPolicy};
use crate::secrets::{CURRENT, PENDING, PREVIOUS};
use crate::sm;
use authserver_core::{HashPolicy, Snapshot, StoreDocument, parse_document};
use aws_sdk_secretsmanager::Client;
use zeroize::Zeroizing;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The new version id (now `AWSCURRENT`).
    pub version: String,
    /// The version it replaced, if any.
    pub replaced: Option<String>,
    /// Users in the document.
    pub users: usize,
}

/// What a pull found.
#[derive(Debug)]
pub struct Pulled {
    /// The `AWSCURRENT` version id.
    pub version: String,
    /// The document.
    pub doc: StoreDocument,
    /// Users in it.
    pub users: usize,
    /// Whether it meets the hash policy, and if not why (names the user, never the hash).
    pub policy: Result<(), String>,
}

/// Why a push or pull did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersError {
    /// The document is not a valid store (or fails the hash policy, for a push).
    #[error("{0}")]
    Invalid(String),
    /// A rotation is under way.
    #[error(
        "a rotation is under way (AWSPENDING on version {pending}): pushing now would be undone \
         by its finishSecret; wait for it to finish, or remove AWSPENDING from that version and \
         push with --force"
    )]
    RotationInProgress {
        /// The pending version.
        pending: String,
    },
    /// An AWS call failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Validates `text` against `policy` and uploads it as the new `AWSCURRENT` of `secret_id`.
pub async fn push(
    client: &Client,
    retry: &RetryPolicy,
    secret_id: &str,
    text: &[u8],
    policy: &HashPolicy,
    force: bool,
) -> Result<Pushed, UsersError> {
    let doc = parse_document(text).map_err(|e| UsersError::Invalid(e.to_string()))?;
    let snapshot =
        Snapshot::build(doc.clone(), policy, "push").map_err(|e| UsersError::Invalid(e.to_string()))?;
    let stages = sm::stages(&sm::describe(client, retry, secret_id).await?);
    let current = sm::holder(&stages, CURRENT);
    if let Some(pending) = sm::holder(&stages, PENDING).filter(|p| Some(p) != current.as_ref()) {
        if !force {
            return Err(UsersError::RotationInProgress { pending });
        }
    }
    let body = Zeroizing::new(
        serde_json::to_string_pretty(&doc)
            .map_err(|e| UsersError::Invalid(format!("cannot serialise: {e}")))?,
    );
    let version = sm::put(client, retry, secret_id, &sm::token(), &body, &[CURRENT]).await?;
    let stages = sm::stages(&sm::describe(client, retry, secret_id).await?);
    if let Some(previous) = sm::holder(&stages, PREVIOUS).filter(|p| *p != version) {
        sm::move_label(client, retry, secret_id, PREVIOUS, None, Some(&previous)).await?;
    }
    Ok(Pushed {
        version,
        replaced: current,
        users: snapshot.len(),
    })
}

/// Reads the `AWSCURRENT` document of `secret_id` and checks it against `policy`.
pub async fn pull(
    client: &Client,
    retry: &RetryPolicy,
    secret_id: &str,
    policy: &HashPolicy,
) -> Result<Pulled, UsersError> {
    let value = sm::get(client, retry, secret_id, None, Some(CURRENT))
        .await?
        .ok_or_else(|| UsersError::Invalid(format!("{secret_id} has no AWSCURRENT value")))?;
    let doc = parse_document(value.text.as_bytes()).map_err(|e| UsersError::Invalid(e.to_string()))?;
    let users = doc.len();
    let policy = Snapshot::build(doc.clone(), policy, value.version.clone())
        .map(|_| ())
        .map_err(|e| e.to_string());
    Ok(Pulled {
        version: value.version,
        doc,
        users,
        policy,
    })
}
