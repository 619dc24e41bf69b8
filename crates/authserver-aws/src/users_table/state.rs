//! The users-table store's mutable state: the entry cache (LRU of one-user views), the table
//! version last seen, and health (last confirmation, first failure, back-off).

use authserver_core::{Cost, Snapshot, Unavailable};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After a failed call, misses wait this long before the next attempt (answering 503 in
/// between), so an outage is probed once a second instead of once per request.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// One cached entry: the view holding the user, when it was read and under which version.
#[derive(Debug)]
pub struct Cached {
    pub view: Arc<Snapshot>,
    pub read_at: Instant,
    pub version: u64,
}

/// What the store knows.
#[derive(Debug)]
pub struct State {
    pub entries: LruCache<String, Cached>,
    /// Table version last read; `None` before the first read.
    pub version: Option<u64>,
    /// When the version was last read successfully (or last attempted, on failure).
    pub polled_at: Option<Instant>,
    /// Last successful call of any kind.
    pub confirmed_at: Option<Instant>,
    /// First failure since the last success.
    pub failing_since: Option<Instant>,
    /// Last failure, when calls may be tried again.
    pub retry_at: Option<Instant>,
    pub last_error: Option<String>,
    /// The dearest Argon2id cost read so far: unknown users' dummy runs at it.
    pub top_cost: Cost,
}

impl State {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            version: None,
            polled_at: None,
            confirmed_at: None,
            failing_since: None,
            retry_at: None,
            last_error: None,
            top_cost: Cost::DEFAULT,
        }
    }

    /// `Some` when nothing may be served: the table has failed for longer than `max_stale`,
    /// or it has never answered and is failing now.
    pub fn unavailable(&self, now: Instant, max_stale: Duration) -> Option<Unavailable> {
        let since = self.failing_since?;
        let stale = now.saturating_duration_since(since) >= max_stale;
        (stale || self.confirmed_at.is_none()).then_some(Unavailable {
            retry_after: PROBE_EVERY,
        })
    }

    /// True when no call should be made yet (back-off after a failure).
    pub fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now < at)
    }

    /// True when the version is due for a read.
    pub fn poll_due(&self, now: Instant, every: Duration) -> bool {
        self.polled_at
            .is_none_or(|at| now.saturating_duration_since(at) >= every)
    }

    /// The cached view of `user` if it is current: read under the version in force and within
    /// `ttl`.
    pub fn fresh(&mut self, user: &str, now: Instant, ttl: Duration) -> Option<Arc<Snapshot>> {
        let version = self.version?;
        let cached = self.entries.get(user)?;
        let current = cached.version == version && now.saturating_duration_since(cached.read_at) < ttl;
        current.then(|| cached.view.clone())
    }

    /// The cached view of `user` whatever its age: served while the table is failing, within
    /// the staleness bound the caller checked.
    pub fn last_good(&mut self, user: &str) -> Option<Arc<Snapshot>> {
        self.entries.get(user).map(|c| c.view.clone())
    }

    /// A call succeeded. True when this ends a failure (to log the recovery once).
    pub fn confirmed(&mut self, now: Instant) -> bool {
        self.confirmed_at = Some(now);
        self.retry_at = None;
        self.last_error = None;
        self.failing_since.take().is_some()
    }

    /// A call failed. True when this starts a failure, or changes its message (to log once).
    pub fn failed(&mut self, now: Instant, error: String) -> bool {
        self.failing_since.get_or_insert(now);
        self.retry_at = Some(now + PROBE_EVERY);
        let new = self.last_error.as_deref() != Some(error.as_str());
        self.last_error = Some(error);
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_core::{HashPolicy, StoreDocument};

    fn view() -> Arc<Snapshot> {
        Arc::new(Snapshot::build(StoreDocument::new(), &HashPolicy::default(), "v").expect("empty"))
    }

    #[test]
    fn health_goes_failing_then_unavailable_after_max_stale_and_back() {
        let (t0, stale) = (Instant::now(), Duration::from_secs(60));
        let mut s = State::new(4);
        assert!(s.unavailable(t0, stale).is_none(), "nothing failed yet");
        assert!(s.failed(t0, "GetItem failed".into()), "logged once");
        assert!(
            s.unavailable(t0, stale).is_some(),
            "never confirmed and failing: 503"
        );
        assert!(s.confirmed(t0), "the first success ends the failure");
        assert!(
            s.failed(t0, "GetItem failed: x".into()),
            "a new failure is logged"
        );
        assert!(
            !s.failed(t0 + Duration::from_millis(1), "GetItem failed: x".into()),
            "same error: not logged again"
        );
        let last = t0 + Duration::from_millis(1);
        assert!(
            s.backing_off(last + Duration::from_millis(500)),
            "one probe a second"
        );
        assert!(!s.backing_off(last + PROBE_EVERY));
        assert!(
            s.unavailable(t0 + Duration::from_secs(59), stale).is_none(),
            "within max_stale"
        );
        assert!(s.unavailable(t0 + stale, stale).is_some(), "past it");
        assert!(s.confirmed(t0 + stale), "recovery ends the failure");
        assert!(s.unavailable(t0 + stale, stale).is_none());
    }

    #[test]
    fn an_entry_is_fresh_under_its_version_and_within_its_ttl_only() {
        let (t0, ttl) = (Instant::now(), Duration::from_secs(300));
        let mut s = State::new(4);
        let cached = |version| Cached {
            view: view(),
            read_at: t0,
            version,
        };
        s.entries.put("alice".into(), cached(3));
        assert!(s.fresh("alice", t0, ttl).is_none(), "version unknown");
        s.version = Some(3);
        assert!(s.fresh("alice", t0 + Duration::from_secs(299), ttl).is_some());
        assert!(s.fresh("alice", t0 + ttl, ttl).is_none(), "past the entry TTL");
        s.version = Some(4);
        assert!(
            s.fresh("alice", t0, ttl).is_none(),
            "a CLI write bumped the version"
        );
        assert!(
            s.last_good("alice").is_some(),
            "still the last good entry for an outage"
        );
        assert!(s.fresh("bob", t0, ttl).is_none() && s.last_good("bob").is_none());
    }
}
