//! The users document to and from the credential secret (`authserver users push/pull`).
//!
//! A push validates the whole document against the hash policy first (a refused document would
//! otherwise only show up as a store error on every server), uploads it as the new
//! `AWSCURRENT`, and then detaches `AWSPREVIOUS` from the version it replaced: servers accept
//! a previous version's service-account passwords after a *rotation* only, and a push (which
//! may be the answer to a leaked password) must take effect at once everywhere, including on
//! instances that start later. The replaced version stays available by its id for a rollback.
//! A push during a rotation (`AWSPENDING` on another version) is refused unless forced: the
//! rotation would otherwise finish with a store computed from the old document. A forced push
//! first removes `AWSPENDING` from the rotation's version: that abandons the rotation (its
//! `testSecret` and `finishSecret` are refused from then on, and servers stop accepting its
//! pending passwords), so the pushed document takes effect and stays.
//!
//! Before any AWS call a push also refuses a document whose service accounts share a delivery
//! secret or deliver to the credential secret itself ([`crate::service_accounts`]), and one
//! over Secrets Manager's 65,536-byte limit for a secret value ([`SECRET_STRING_LIMIT`]; moto
//! does not enforce it, AWS does).

use crate::retry::{CallError, RetryPolicy};
use crate::secrets::{CURRENT, PENDING, PREVIOUS};
use crate::sm;
use authserver_core::{HashPolicy, Snapshot, StoreDocument, parse_document};
use aws_sdk_secretsmanager::Client;
use zeroize::Zeroizing;

/// The most a `SecretString` may hold: 65,536 bytes (a Secrets Manager quota).
pub const SECRET_STRING_LIMIT: usize = 65_536;

/// A document's size against [`SECRET_STRING_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Bytes as uploaded (UTF-8).
    pub bytes: usize,
    /// Users in it.
    pub users: usize,
}

impl Size {
    /// About how many users fit under the limit at this document's average bytes per user.
    pub fn users_that_fit(&self) -> usize {
        match self.users {
            0 => 0,
            users => SECRET_STRING_LIMIT * users / self.bytes.max(1),
        }
    }

    /// Percent of the limit used.
    pub fn percent(&self) -> usize {
        self.bytes * 100 / SECRET_STRING_LIMIT
    }

    /// At 90 % of the limit or more: time to plan the move to the DynamoDB users store.
    pub fn near_limit(&self) -> bool {
        self.bytes * 10 >= SECRET_STRING_LIMIT * 9
    }

    /// The warning to print when [`Self::near_limit`].
    pub fn warning(&self) -> Option<String> {
        self.near_limit().then(|| {
            format!(
                "the users document is {} bytes, {}% of Secrets Manager's {SECRET_STRING_LIMIT}-byte \
                 limit for a secret value: about {} users fit at its average entry size (it has {}); \
                 plan the move to the DynamoDB users store (docs/runbooks/capacity-planning.md)",
                self.bytes,
                self.percent(),
                self.users_that_fit(),
                self.users
            )
        })
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The new version id (now `AWSCURRENT`).
    pub version: String,
    /// The version it replaced, if any.
    pub replaced: Option<String>,
    /// Users in the document.
    pub users: usize,
    /// The uploaded document's size.
    pub size: Size,
    /// The version of a rotation this (forced) push abandoned: `AWSPENDING` removed from it.
    pub abandoned: Option<String>,
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
    /// Its size.
    pub size: Size,
}

/// Why a push or pull did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersError {
    /// The document is not a valid store (or fails the hash policy, for a push).
    #[error("{0}")]
    Invalid(String),
    /// The document is over Secrets Manager's limit for a secret value.
    #[error(
        "the users document is {bytes} bytes as uploaded, over Secrets Manager's limit of \
         {limit} bytes for a secret value; at its average of {average} bytes per user about {fit} \
         users fit (it has {users}): remove users, or move to the DynamoDB users store \
         (docs/runbooks/capacity-planning.md)"
    )]
    TooLarge {
        /// The document's size as it would be uploaded.
        bytes: usize,
        /// [`SECRET_STRING_LIMIT`].
        limit: usize,
        /// Users in it.
        users: usize,
        /// Bytes per user, on average.
        average: usize,
        /// About how many users fit at that average.
        fit: usize,
    },
    /// A rotation is under way.
    #[error(
        "a rotation is under way (AWSPENDING on version {pending}): pushing now would be undone \
         by its finishSecret; wait for it to finish, or push with --force, which abandons the \
         rotation (removes AWSPENDING from that version) so the push takes effect and stays"
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
    let snapshot = Snapshot::build(doc.clone(), policy, "push")
        .and_then(Snapshot::strict)
        .map_err(|e| UsersError::Invalid(e.to_string()))?;
    let accounts = doc
        .iter()
        .filter_map(|(user, rec)| Some((user.as_str(), rec.delivery_secret_id.as_deref()?)));
    crate::service_accounts::check(&[secret_id], accounts, |u| format!("user {u:?}"))
        .map_err(UsersError::Invalid)?;
    // Compact, as createSecret writes it: pretty-printing costs a sixth of the capacity (261
    // instead of 218 bytes for a user with a role and passwordChangedAt), and a rotation must
    // not find a pushed document past the limit.
    let body = Zeroizing::new(
        serde_json::to_string(&doc).map_err(|e| UsersError::Invalid(format!("cannot serialise: {e}")))?,
    );
    let size = Size {
        bytes: body.len(),
        users: doc.len(),
    };
    if size.bytes > SECRET_STRING_LIMIT {
        return Err(UsersError::TooLarge {
            bytes: size.bytes,
            limit: SECRET_STRING_LIMIT,
            users: size.users,
            average: size.bytes / size.users.max(1),
            fit: size.users_that_fit(),
        });
    }
    let stages = sm::stages(&sm::describe(client, retry, secret_id).await?);
    let current = sm::holder(&stages, CURRENT);
    let mut abandoned = None;
    if let Some(pending) = sm::holder(&stages, PENDING).filter(|p| Some(p) != current.as_ref()) {
        if !force {
            return Err(UsersError::RotationInProgress { pending });
        }
        // Before the put: from here on the rotation's testSecret and finishSecret are refused
        // and no server accepts its pending passwords, so nothing can undo the push.
        sm::move_label(client, retry, secret_id, PENDING, None, Some(&pending)).await?;
        abandoned = Some(pending);
    }
    let version = sm::put(client, retry, secret_id, &sm::token(), &body, &[CURRENT]).await?;
    let stages = sm::stages(&sm::describe(client, retry, secret_id).await?);
    if let Some(previous) = sm::holder(&stages, PREVIOUS).filter(|p| *p != version) {
        sm::move_label(client, retry, secret_id, PREVIOUS, None, Some(&previous)).await?;
    }
    Ok(Pushed {
        version,
        replaced: current,
        users: snapshot.len(),
        size,
        abandoned,
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
    let size = Size {
        bytes: value.text.len(),
        users,
    };
    let policy = Snapshot::build(doc.clone(), policy, value.version.clone())
        .and_then(Snapshot::strict)
        .map(|_| ())
        .map_err(|e| e.to_string());
    Ok(Pulled {
        version: value.version,
        doc,
        users,
        policy,
        size,
    })
}
