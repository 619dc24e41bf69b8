//! The Secrets Manager credential store: one secret holding the store document (the format in
//! `authserver-core`'s `store` module), kept in memory as a snapshot.
//!
//! Behaviour:
//! - **TTL and refresh ahead.** A snapshot is fresh for `ttl` after `AWSCURRENT` was last seen to
//!   name its version. Refreshes run every `version_check`, and at the latest a fifth of the TTL
//!   before expiry ([`SecretsStoreConfig::refresh_every`]): from the background task
//!   ([`SecretsManagerStore::spawn_refresher`]), from [`SnapshotSource::current`] when one is due,
//!   or awaited by [`SecretsManagerStore::ensure_fresh`] on hosts that freeze between requests.
//! - **Version aware.** A refresh asks `DescribeSecret` which version holds `AWSCURRENT`; only a
//!   different version costs a `GetSecretValue` (of exactly that version id).
//! - **Single flight.** Concurrent refreshes share one round of AWS calls.
//! - **Retries.** Each call retries throttling and 5xx with exponential backoff and jitter
//!   ([`crate::retry`]); failed refreshes back off 1 s, 2 s, 4 s ... up to the regular interval.
//! - **Bounded stale-on-error.** When refreshes fail, the last good snapshot is served for up to
//!   `max_stale` from the first failure (and at least until its TTL ends); then
//!   [`Unavailable`] with a `Retry-After`. A version that fails to parse or to meet the hash
//!   policy never replaces the snapshot, is not fetched again, and counts as a failure. So
//!   does one whose service accounts share a delivery secret or deliver to this very secret
//!   ([`crate::service_accounts`]).
//! - **No "no users".** A failure never produces an empty snapshot; before the first good load
//!   the store is unavailable (503), not empty.
//! - **Rotations.** While `AWSPENDING` is on another version, service accounts' passwords
//!   from that version work too; after the rotation, the `AWSPREVIOUS` ones work for
//!   `previous_grace` ([`alternates`]). Cold starts learn the labels with the same round trip
//!   as the value (`DescribeSecret` and `GetSecretValue` run concurrently); other versions are
//!   fetched once each, and a rotation's switch to the pending version costs no fetch.
//! - **Logging.** Each change of health and each distinct error is logged once. Nothing logged
//!   quotes the secret: usernames in validation errors become `user_hash`.

mod alternates;
mod fetch;
mod round;
mod state;

use crate::retry::{CallError, RetryPolicy};
use authserver_core::{
    AuditEvent, AuditSink, Clock, HashPolicy, Snapshot, SnapshotSource, StoreCounters, StoreStatus,
    Unavailable, UserHasher,
};
use aws_sdk_secretsmanager::Client;
use state::State;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub use fetch::{CURRENT, PENDING, PREVIOUS, current_value};

/// Plain configuration of a [`SecretsManagerStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct SecretsStoreConfig {
    /// Secret name or ARN.
    pub secret_id: String,
    /// How long a confirmed snapshot counts as fresh.
    pub ttl: Duration,
    /// How often `AWSCURRENT` is checked for a new version.
    pub version_check: Duration,
    /// How long the last good snapshot is served after refreshes started failing.
    pub max_stale: Duration,
    /// Retries of each AWS call.
    pub retry: RetryPolicy,
    /// The hash policy every entry must meet.
    pub policy: HashPolicy,
    /// Accept service accounts' passwords from the `AWSPENDING` version during a rotation.
    pub accept_pending: bool,
    /// How long after a rotation the `AWSPREVIOUS` version's service-account passwords still
    /// work (zero: not at all).
    pub previous_grace: Duration,
}

impl SecretsStoreConfig {
    /// The documented defaults: TTL 5 min, version check 30 s, max stale 60 min, pending
    /// accepted, previous accepted for 2 h after a rotation.
    pub fn new(secret_id: impl Into<String>, policy: HashPolicy) -> Self {
        Self {
            secret_id: secret_id.into(),
            ttl: Duration::from_secs(300),
            version_check: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            retry: RetryPolicy::default(),
            policy,
            accept_pending: true,
            previous_grace: Duration::from_secs(7200),
        }
    }

    /// Whether the store looks at other versions than `AWSCURRENT` at all. When not, a cold
    /// start is one `GetSecretValue` and nothing else changes.
    pub fn follows_rotation(&self) -> bool {
        self.accept_pending || !self.previous_grace.is_zero()
    }

    /// Time from one successful refresh to the next: the version-check interval, but never
    /// later than four fifths of the TTL (the refresh ahead of expiry).
    pub fn refresh_every(&self) -> Duration {
        self.version_check
            .min(self.ttl.mul_f64(0.8))
            .max(Duration::from_millis(10))
    }
}

/// What a successful refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// `AWSCURRENT` still names the version in service: nothing fetched.
    Unchanged,
    /// A new version went into service.
    Loaded {
        /// Its version id.
        version: String,
        /// Users in it.
        users: usize,
    },
    /// Same version, but another version's service-account passwords started or stopped
    /// being accepted beside it.
    Alternates {
        /// The version in service.
        version: String,
        /// `pending` or `previous` and that version's id; `None` when none is accepted now.
        accepting: Option<(&'static str, String)>,
    },
}

/// Why a refresh failed. Messages are safe to log and to show in `/ready`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// An AWS call failed (after retries, when retryable).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The secret is scheduled for deletion.
    #[error("the secret is scheduled for deletion")]
    Deleted,
    /// No version of the secret carries the `AWSCURRENT` label.
    #[error("no version of the secret is staged AWSCURRENT")]
    NoCurrentVersion,
    /// The version in `AWSCURRENT` is not a valid store document (or fails the hash policy).
    #[error("secret version {version} refused: {reason}")]
    Invalid {
        /// The refused version id.
        version: String,
        /// Why, with usernames replaced by `user_hash`.
        reason: String,
    },
}

/// The credential store over one Secrets Manager secret. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: SecretsStoreConfig,
    hasher: UserHasher,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Held while a round of AWS calls runs (single flight).
    flight: tokio::sync::Mutex<()>,
    /// Rounds finished; a caller that waited for `flight` and sees this move joins that round.
    rounds: AtomicU64,
    /// A background refresh has been requested and not finished.
    triggered: AtomicBool,
    /// Where version changes and failures are audited (none until set).
    audit: OnceLock<Arc<dyn AuditSink>>,
    /// Snapshots loaded (initial load included).
    loads: AtomicU64,
    /// Failed refreshes.
    failures: AtomicU64,
}

impl SecretsManagerStore {
    /// A store with no snapshot yet: call [`Self::refresh`] (or [`Self::spawn_refresher`]) to
    /// load it. `hasher` names users in logged validation errors; `clock` drives TTLs.
    pub fn new(
        client: Client,
        config: SecretsStoreConfig,
        hasher: UserHasher,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let now = clock.now();
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                hasher,
                clock,
                state: Mutex::new(State::new(now)),
                flight: tokio::sync::Mutex::new(()),
                rounds: AtomicU64::new(0),
                triggered: AtomicBool::new(false),
                audit: OnceLock::new(),
                loads: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// Sends version changes and (distinct) refresh failures to `audit`. The first call wins.
    pub fn with_audit(self, audit: Arc<dyn AuditSink>) -> Self {
        let _ = self.inner.audit.set(audit);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &SecretsStoreConfig {
        &self.inner.config
    }

    /// Runs one refresh now, or joins the one in flight and returns its result.
    pub async fn refresh(&self) -> Result<Refreshed, RefreshError> {
        let inner = &self.inner;
        let seen = inner.rounds.load(Ordering::Acquire);
        let _flight = inner.flight.lock().await;
        if inner.rounds.load(Ordering::Acquire) != seen
            && let Some(result) = inner.lock().last_result.clone()
        {
            return result;
        }
        let result = inner.round().await;
        inner.lock().last_result = Some(result.clone());
        inner.rounds.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// For hosts frozen between requests (Lambda): when the snapshot is past its TTL and nobody
    /// has checked since, waits for a refresh (one `DescribeSecret` when nothing changed);
    /// otherwise starts one in the background if it is due. Never waits while the store is
    /// known to be failing: then the stale rules of [`SnapshotSource::current`] apply.
    pub async fn ensure_fresh(&self) {
        let now = self.inner.clock.now();
        let (due, unchecked) = {
            let st = self.inner.lock();
            (now >= st.next_due, st.expired_unchecked(now, &self.inner.config))
        };
        if due && unchecked {
            let _ = self.refresh().await;
        } else if due {
            self.trigger();
        }
    }

    /// Refreshes whenever one is due until the task is aborted. The first round runs at once
    /// when the store has never been refreshed.
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                let wait = {
                    let st = store.inner.lock();
                    st.next_due.saturating_duration_since(store.inner.clock.now())
                };
                if !wait.is_zero() {
                    // Re-read after the sleep: a request may have refreshed in the meantime.
                    tokio::time::sleep(wait.min(store.inner.config.refresh_every())).await;
                    continue;
                }
                let _ = store.refresh().await;
            }
        })
    }

    /// Starts a background refresh unless one is already requested (needs a Tokio runtime;
    /// without one, the next caller that has one starts it).
    fn trigger(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.triggered.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        runtime.spawn(async move {
            let _ = store.refresh().await;
            store.inner.triggered.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // State holds plain values; a poisoned lock still holds a consistent one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn audit(&self, event: AuditEvent) {
        if let Some(sink) = self.audit.get() {
            sink.emit(event);
        }
    }

    /// One ERROR per entry whose hash failed the policy (by `user_hash`: usernames are PII),
    /// once per version loaded, not per request: the entry stays refused until the secret
    /// changes. Logged on the caller's task, where its span is.
    fn log_refused(&self, snapshot: &Snapshot) {
        for r in snapshot.refused() {
            tracing::error!(
                user_hash = %self.hasher.hash(&r.user),
                reason = %r.problem,
                "store entry refused by the hash policy; that user is denied"
            );
        }
    }

    /// Parses and validates off the async executor: building a snapshot may hash once (the
    /// dummy hash for unknown users, ~0.1 s at production cost).
    async fn parse(
        &self,
        version: String,
        value: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<Snapshot, RefreshError> {
        let policy = self.config.policy.clone();
        let hasher = self.hasher.clone();
        let label = version.clone();
        let secret_id = self.config.secret_id.clone();
        let parsed = tokio::task::spawn_blocking(move || {
            let snapshot =
                Snapshot::from_json(&value, &policy, label).map_err(|e| e.log_safe(|u| hasher.hash(u)))?;
            if snapshot.serves_nobody() {
                // Refused as a version: the last good one stays in service (none at start: not
                // ready), instead of denying everyone behind a green readiness check.
                return Err("every entry failed the hash policy; no user could sign in".into());
            }
            let accounts = snapshot
                .users()
                .filter_map(|(user, u)| Some((user, u.delivery_secret_id.as_deref()?)));
            crate::service_accounts::check(&[&secret_id], accounts, |u| {
                format!("user_hash {}", hasher.hash(u))
            })?;
            Ok(snapshot)
        })
        .await;
        match parsed {
            Ok(Ok(snapshot)) => {
                self.log_refused(&snapshot);
                Ok(snapshot)
            }
            Ok(Err(reason)) => Err(RefreshError::Invalid { version, reason }),
            Err(_) => Err(RefreshError::Invalid {
                version,
                reason: "validation did not complete (panicked)".into(),
            }),
        }
    }
}

impl SnapshotSource for SecretsManagerStore {
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable> {
        let now = self.inner.clock.now();
        let (result, due) = {
            let mut st = self.inner.lock();
            st.expire_alternates(now, &self.inner.config);
            let health = st.observe(now, &self.inner.config);
            let result = match (&st.snapshot, health.usable()) {
                (Some(snapshot), true) => Ok(snapshot.clone()),
                _ => Err(Unavailable {
                    retry_after: st.retry_after(now),
                }),
            };
            (result, now >= st.next_due)
        };
        if due {
            self.trigger();
        }
        result
    }

    fn status(&self) -> StoreStatus {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        let health = st.observe(now, &self.inner.config);
        StoreStatus {
            kind: "secrets_manager",
            version: st.snapshot.as_ref().map(|s| s.version().to_owned()),
            users: st.snapshot.as_ref().map(|s| s.len()),
            cached_entries: None,
            refused: st.snapshot.as_ref().map_or(0, |s| s.refused().len()),
            age_seconds: st
                .confirmed_at
                .map_or(0, |at| now.saturating_duration_since(at).as_secs()),
            ready: health.usable(),
            last_error: st.last_error.clone(),
        }
    }

    fn counters(&self) -> StoreCounters {
        StoreCounters {
            refreshes: self.inner.loads.load(Ordering::Relaxed),
            fetch_errors: self.inner.failures.load(Ordering::Relaxed),
            ..StoreCounters::default()
        }
    }
}
