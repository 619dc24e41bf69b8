//! The store's bookkeeping: the snapshot in service, when it was last confirmed current, how
//! long the store has been failing, and the health derived from those — logged once per change.

use super::alternates::{Switch, Wanted};
use super::{RefreshError, Refreshed, SecretsStoreConfig};
use authserver_core::Snapshot;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What callers get, derived from the times below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// No snapshot yet and no attempt finished.
    Loading,
    /// Confirmed current within the TTL.
    Fresh,
    /// Within the TTL, but the latest refresh failed.
    Failing,
    /// Past the TTL: served while a check runs, or while the store fails (up to `max_stale`).
    Stale,
    /// Nothing usable: never loaded, or failing for longer than `max_stale`.
    Unavailable,
}

impl Health {
    /// Whether the snapshot in service may be used.
    pub(crate) fn usable(self) -> bool {
        matches!(self, Health::Fresh | Health::Failing | Health::Stale)
    }
}

#[derive(Debug)]
pub(crate) struct State {
    /// The last good snapshot (never replaced by a failure): the one served, derived from
    /// `base` (with the alternate's hashes while one applies).
    pub snapshot: Option<Arc<Snapshot>>,
    /// The `AWSCURRENT` version's own snapshot, never served itself (a served snapshot always
    /// has a newer generation than the one it replaces, which the verified cache relies on).
    pub base: Option<Arc<Snapshot>>,
    /// The pending or previous version served beside `base`, if any.
    pub applied: Option<Wanted>,
    /// Snapshots of other versions seen lately (pending, previous, the base a rotation
    /// replaced): a rotation's switch then costs no fetch.
    pub versions: Vec<Arc<Snapshot>>,
    /// Another version that failed to parse or validate, and why: not fetched again.
    pub alt_refused: Option<(String, String)>,
    /// The latest version seen staged `AWSPENDING`.
    pub pending_seen: Option<String>,
    /// The latest switch of `AWSCURRENT` to a version this process had seen pending.
    pub switch: Option<Switch>,
    /// When `AWSCURRENT` was last seen to name the snapshot's version.
    pub confirmed_at: Option<Instant>,
    /// Start of the current run of failed refreshes.
    pub failing_since: Option<Instant>,
    /// Failed refreshes in a row (drives the backoff between refreshes).
    pub failures: u32,
    /// When the next refresh should run.
    pub next_due: Instant,
    /// The latest failure (safe to show), cleared by a success.
    pub last_error: Option<String>,
    /// A version that failed to parse or validate, and why: not fetched again.
    pub refused: Option<(String, RefreshError)>,
    /// The health last logged.
    pub logged: Health,
    /// The latest refresh's result, for callers that joined it while it ran.
    pub last_result: Option<Result<Refreshed, RefreshError>>,
}

impl State {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            snapshot: None,
            base: None,
            applied: None,
            versions: Vec::new(),
            alt_refused: None,
            pending_seen: None,
            switch: None,
            confirmed_at: None,
            failing_since: None,
            failures: 0,
            next_due: now,
            last_error: None,
            refused: None,
            logged: Health::Loading,
            last_result: None,
        }
    }

    /// Health at `now`. See [`Health`]; `max_stale` counts from the first failed refresh.
    pub(crate) fn health(&self, now: Instant, config: &SecretsStoreConfig) -> Health {
        let (Some(_), Some(confirmed)) = (&self.snapshot, self.confirmed_at) else {
            return if self.failing_since.is_some() {
                Health::Unavailable
            } else {
                Health::Loading
            };
        };
        let failing_for = self
            .failing_since
            .map(|since| now.saturating_duration_since(since));
        if now.saturating_duration_since(confirmed) < config.ttl {
            return if failing_for.is_some() {
                Health::Failing
            } else {
                Health::Fresh
            };
        }
        match failing_for {
            Some(d) if d >= config.max_stale => Health::Unavailable,
            _ => Health::Stale,
        }
    }

    /// True when the snapshot is past its TTL and no refresh has failed since it was confirmed:
    /// nobody has checked yet (a host frozen between requests, such as Lambda).
    pub(crate) fn expired_unchecked(&self, now: Instant, config: &SecretsStoreConfig) -> bool {
        self.failing_since.is_none()
            && self
                .confirmed_at
                .is_none_or(|at| now.saturating_duration_since(at) >= config.ttl)
    }

    /// Suggested `Retry-After` while unavailable: until the next refresh, within [1 s, 30 s].
    pub(crate) fn retry_after(&self, now: Instant) -> Duration {
        self.next_due
            .saturating_duration_since(now)
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// The snapshot of `version` if this process has one (base or recently seen).
    pub(crate) fn known(&self, version: &str) -> Option<Arc<Snapshot>> {
        self.base
            .iter()
            .chain(&self.versions)
            .find(|s| s.version() == version)
            .cloned()
    }

    /// Keeps `snapshot` among the recently seen versions (at most three).
    pub(crate) fn remember(&mut self, snapshot: Arc<Snapshot>) {
        self.versions.retain(|s| s.version() != snapshot.version());
        self.versions.push(snapshot);
        if self.versions.len() > 3 {
            self.versions.remove(0);
        }
    }

    /// Drops a previous version whose grace period has ended; called on every read, so the old
    /// passwords stop working at the deadline, not at the next refresh.
    pub(crate) fn expire_alternates(&mut self, now: Instant, config: &SecretsStoreConfig) {
        let ended = self
            .applied
            .as_ref()
            .is_some_and(|a| a.until.is_some_and(|until| until <= now));
        if let (true, Some(base)) = (ended, &self.base) {
            if let Some(a) = self.applied.take() {
                tracing::info!(
                    secret_id = %config.secret_id,
                    version = a.version,
                    "grace period over: the previous version's passwords are no longer accepted"
                );
            }
            self.snapshot = Some(Arc::new(base.without_alternates()));
        }
    }

    /// Records a successful refresh.
    pub(crate) fn succeeded(&mut self, now: Instant, config: &SecretsStoreConfig) {
        self.confirmed_at = Some(now);
        self.failing_since = None;
        self.failures = 0;
        self.last_error = None;
        self.next_due = now + config.refresh_every();
    }

    /// Records a failed refresh; logs the error once per distinct message and returns that
    /// message when it is new (for the audit trail), `None` when it repeats.
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        config: &SecretsStoreConfig,
        error: &RefreshError,
    ) -> Option<String> {
        self.failing_since.get_or_insert(now);
        let message = error.to_string();
        let new = (self.last_error.as_deref() != Some(message.as_str())).then(|| {
            tracing::warn!(
                secret_id = %config.secret_id,
                error = %message,
                "credential secret refresh failed; the last good snapshot stays in service"
            );
            self.last_error = Some(message.clone());
            message
        });
        // Between refreshes: 1 s, 2 s, 4 s, ... with jitter, never beyond the regular interval.
        let backoff = Duration::from_secs(1)
            .saturating_mul(1u32.checked_shl(self.failures).unwrap_or(u32::MAX))
            .min(config.refresh_every());
        self.failures = self.failures.saturating_add(1);
        self.next_due = now + crate::retry::jittered(backoff);
        new
    }

    /// Logs a change of health, once.
    pub(crate) fn observe(&mut self, now: Instant, config: &SecretsStoreConfig) -> Health {
        let health = self.health(now, config);
        if health == self.logged {
            return health;
        }
        let version = self.snapshot.as_ref().map(|s| s.version().to_owned());
        let age_seconds = self
            .confirmed_at
            .map(|at| now.saturating_duration_since(at).as_secs());
        let id = &config.secret_id;
        match health {
            // The first load is logged with its version by the refresh itself.
            Health::Fresh if self.logged == Health::Loading => {}
            Health::Fresh => tracing::info!(secret_id = %id, version, "credential store recovered"),
            Health::Failing => tracing::warn!(
                secret_id = %id,
                version,
                "credential store failing; serving the last good snapshot"
            ),
            Health::Stale => tracing::warn!(
                secret_id = %id,
                version,
                age_seconds,
                "credential snapshot past its TTL; serving it while the store is checked"
            ),
            Health::Unavailable => tracing::error!(
                secret_id = %id,
                version,
                age_seconds,
                error = self.last_error.as_deref(),
                "credential store unavailable: no usable snapshot, answering 503"
            ),
            Health::Loading => {}
        }
        self.logged = health;
        health
    }
}
