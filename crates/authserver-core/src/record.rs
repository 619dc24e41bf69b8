//! The stored form of the credential store (shared by the file store and Secrets Manager):
//! one [`UserRecord`] per username, and why a document or an entry is refused.
//!
//! These types sit below both the parser ([`crate::document`]) and the validated
//! [`crate::store::Snapshot`], so each of those depends on this module and not on the other.

use crate::hash::HashError;
use crate::names::EntryNameProblem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;

/// Whether a user may authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// May authenticate (the default when `status` is missing).
    #[default]
    Active,
    /// Always denied, after a real verification so that timing does not tell.
    Disabled,
}

/// One user entry exactly as stored (JSON, camelCase). Unknown fields are errors: a typo such
/// as `"satus"` must not silently leave a user ACTIVE.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserRecord {
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `ACTIVE` (default) or `DISABLED`.
    #[serde(default)]
    pub status: Status,
    /// Roles (kept for RBAC / OAuth scopes).
    #[serde(default)]
    pub roles: Vec<String>,
    /// When the password last changed (RFC 3339), for password-age compliance.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub password_changed_at: Option<OffsetDateTime>,
    /// Marks a service account whose password rotation delivers to this secret id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_secret_id: Option<String>,
    /// Makes the entry an OAuth 2.0 client (issue 14); absent: a user as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<crate::oauth::OAuthClient>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("password_hash", &"REDACTED")
            .field("status", &self.status)
            .field("roles", &self.roles)
            .field("oauth", &self.oauth.is_some())
            .finish_non_exhaustive()
    }
}

/// The whole store document: username → record, ordered for stable output.
pub type StoreDocument = BTreeMap<String, UserRecord>;

/// Why a store document was refused. The previous snapshot stays in service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Not JSON, or not an object of objects. Position only: no content is quoted.
    #[error("store is not valid JSON ({category}) at line {line}, column {column}")]
    Json {
        /// serde_json's error category.
        category: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// One entry is invalid. Names the user (operators need it), never the hash.
    #[error("store entry for user {user:?}: {problem}")]
    Entry {
        /// The username (PII: server logs use [`StoreError::log_safe`]).
        user: String,
        /// What is wrong.
        problem: EntryProblem,
    },
}

/// What is wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// Unknown field, wrong type, or a `status` other than ACTIVE/DISABLED.
    #[error("invalid entry ({0})")]
    Shape(String),
    /// The hash fails the policy.
    #[error("{0}")]
    Hash(#[from] HashError),
    /// The username or a role is unusable (over Basic auth, in `Remote-User` /
    /// `Remote-Groups`, or on a screen).
    #[error(transparent)]
    Name(#[from] EntryNameProblem),
    /// The username appears more than once in the document.
    #[error("the username appears more than once in the document")]
    DuplicateUser,
    /// A field appears more than once in the entry (its name when it is a known field).
    #[error("field `{0}` appears more than once in the entry")]
    DuplicateField(&'static str),
    /// The `oauth` object is unusable (refuses the document, like a bad name: a half-applied
    /// client set could grant a scope the operator meant to remove).
    #[error(transparent)]
    OAuth(#[from] crate::oauth::ClientProblem),
}

impl StoreError {
    /// The message with the username replaced by `name(username)` (e.g. a keyed user hash), for
    /// logs that must not carry PII.
    pub fn log_safe(&self, name: impl Fn(&str) -> String) -> String {
        match self {
            StoreError::Entry { user, problem } => {
                format!("store entry for user_hash {}: {problem}", name(user))
            }
            other => other.to_string(),
        }
    }
}
