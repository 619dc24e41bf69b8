//! The credential-store port: where snapshots come from. Adapters (file, Secrets Manager) live
//! in the outer crates; the rest of the server reads snapshots and never knows which one runs.

use crate::regulation::BoxFuture;
use crate::store::Snapshot;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Where snapshots come from.
pub trait SnapshotSource: Send + Sync + std::fmt::Debug {
    /// The snapshot to decide with, or why there is none usable.
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable>;

    /// The snapshot to decide a request by `username` with. Stores that hold every user answer
    /// [`SnapshotSource::current`] at once (no allocation, no await); a per-user store
    /// (DynamoDB) answers a view holding that user, from its entry cache or after one lookup.
    fn current_for<'a>(&'a self, username: &'a str) -> Lookup<'a> {
        let _ = username;
        Lookup::Ready(self.current())
    }

    /// What the store holds, for `/ready` and status reports.
    fn status(&self) -> StoreStatus;

    /// Running totals of loads and failures, for metrics. Adapters that do not count report zero.
    fn counters(&self) -> StoreCounters {
        StoreCounters::default()
    }

    /// A user just logged in with the right password against a legacy (bcrypt, SHA-crypt) hash.
    /// A store that can should replace it with an Argon2id hash, off the request path, only if
    /// the user still has that legacy hash. Returns false when this store is never written from
    /// the request path (Secrets Manager: the caller reports the login instead).
    fn upgrade_legacy(&self, login: crate::hash::legacy::LegacyLogin) -> bool {
        drop(login);
        false
    }
}

/// A store's answer to [`SnapshotSource::current_for`]: ready now, or after a lookup.
pub enum Lookup<'a> {
    /// Answered without waiting (whole-document stores; an entry-cache hit).
    Ready(Result<Arc<Snapshot>, Unavailable>),
    /// Answered once the store has looked the user up.
    Fetch(BoxFuture<'a, Result<Arc<Snapshot>, Unavailable>>),
}

impl Lookup<'_> {
    /// The snapshot, waiting for the lookup if there is one.
    pub async fn resolve(self) -> Result<Arc<Snapshot>, Unavailable> {
        match self {
            Lookup::Ready(answer) => answer,
            Lookup::Fetch(lookup) => lookup.await,
        }
    }
}

impl std::fmt::Debug for Lookup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lookup::Ready(answer) => f.debug_tuple("Ready").field(answer).finish(),
            Lookup::Fetch(_) => f.write_str("Fetch(..)"),
        }
    }
}

/// Running totals a store adapter keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounters {
    /// Snapshots loaded (initial load included).
    pub refreshes: u64,
    /// Fetch, parse or policy failures.
    pub fetch_errors: u64,
    /// Reloads that did not finish within their deadline (file store).
    pub reload_stalls: u64,
}

/// No usable snapshot: never loaded, or stale past the configured bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("credential store unavailable")]
pub struct Unavailable {
    /// Suggested `Retry-After`.
    pub retry_after: Duration,
}

/// A store's state, free of secret material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// `file`, `secrets_manager` or `dynamodb`.
    pub kind: &'static str,
    /// Version in service, if any.
    pub version: Option<String>,
    /// Users in the store: those of the snapshot in service (file, secret); for the DynamoDB
    /// users table, the count the `users --table` commands keep in its version item (`None`
    /// when that item holds no count: users loaded around the CLI are not counted).
    pub users: Option<usize>,
    /// Entries held by a store that reads users one by one (the DynamoDB users table's entry
    /// cache); `None` for the stores that hold every user in their snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_entries: Option<usize>,
    /// Entries of the snapshot in service whose hash failed the policy (those users are
    /// denied; see [`crate::store::RefusedEntry`]).
    pub refused: usize,
    /// Seconds since the snapshot in service was last confirmed current.
    pub age_seconds: u64,
    /// Whether the snapshot in service may be used.
    pub ready: bool,
    /// The last load error (safe to show), if the latest attempt failed.
    pub last_error: Option<String>,
}
