//! The users-table store's mutable state: the entry cache (LRU of one-user views), the table
//! version last seen, and health (last confirmation, first failure, back-off).

use authserver_core::{Cost, HashPolicy, Snapshot, Unavailable};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After a failed call, misses wait this long before the next attempt (answering 503 in
/// between), so an outage is probed once a second instead of once per request.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Usernames tracked per kind (back-off after a failed `GetItem`, refused entry logged): a
/// `GetItem` failure for one username (a throttled hot key) backs off that key only, so an
/// attacker hammering one name cannot 503 everyone else. Past this many the oldest is
/// forgotten (then retried, or logged, once more).
const TRACKED_KEYS: usize = 1024;

/// The cost unknown users' dummy starts at, before any user is read: the dearer of the default
/// cost and the policy's floor (`hash.min_m_kib` at `hash.min_t`). An instance that has read no
/// user yet (every cold Lambda) knows no other cost, and a dummy cheaper than the table's
/// hashes would tell unknown users apart by time; set the floor to the cost users are hashed at
/// (`hash-password --m-cost`) when that is above the default.
pub fn dummy_floor(policy: &HashPolicy) -> Cost {
    let floor = Cost {
        m_kib: policy.min_m_kib,
        t: policy.min_t,
        p: 1,
    };
    let work = |c: Cost| u64::from(c.m_kib) * u64::from(c.t);
    if work(floor) > work(Cost::DEFAULT) {
        floor
    } else {
        Cost::DEFAULT
    }
}

/// One cached entry: the view holding the user, when it was read and under which epoch.
#[derive(Debug)]
pub struct Cached {
    pub view: Arc<Snapshot>,
    pub read_at: Instant,
    /// [`State::epoch`] when the `GetItem` was *sent*: an answer that left DynamoDB before a
    /// version change the store has since seen is never current.
    pub epoch: u64,
}

/// What the store knows.
#[derive(Debug)]
pub struct State {
    pub entries: LruCache<String, Cached>,
    /// Table version last read; `None` before the first read.
    pub version: Option<u64>,
    /// The user count the version item carried at that read (see [`super::Head::users`]).
    pub users: Option<u64>,
    /// Counts the changes of `version` seen, in either direction: a version item deleted and
    /// bumped again goes back to a value already seen, and entries read before must not be
    /// current again. Entries are current only under the epoch they were read in.
    pub epoch: u64,
    /// Usernames whose last `GetItem` failed, and when they may be read again.
    pub failed_keys: LruCache<String, Instant>,
    /// When the version was last read successfully (or last attempted, on failure).
    pub polled_at: Option<Instant>,
    /// Last successful call of any kind.
    pub confirmed_at: Option<Instant>,
    /// First failure since the last success.
    pub failing_since: Option<Instant>,
    /// Last failure, when calls may be tried again.
    pub retry_at: Option<Instant>,
    /// The last failure was the table's answer, not its silence (a version item that is not a
    /// `u64`): requests read the version themselves, as when healthy, so that the CLI's repair
    /// is in force within `version_poll` plus one round trip.
    pub answering: bool,
    pub last_error: Option<String>,
    /// When a failed `GetItem` was last logged.
    pub key_logged_at: Option<Instant>,
    /// When each refused entry was last logged (by username; bounded like `failed_keys`).
    pub refusals_logged: LruCache<String, Instant>,
    /// The dearest Argon2id cost read so far: unknown users' dummy runs at it.
    pub top_cost: Cost,
}

impl State {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            version: None,
            users: None,
            epoch: 0,
            failed_keys: LruCache::new(NonZeroUsize::new(TRACKED_KEYS).unwrap_or(NonZeroUsize::MIN)),
            polled_at: None,
            confirmed_at: None,
            failing_since: None,
            retry_at: None,
            answering: true,
            last_error: None,
            key_logged_at: None,
            refusals_logged: LruCache::new(NonZeroUsize::new(TRACKED_KEYS).unwrap_or(NonZeroUsize::MIN)),
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

    /// True when `user`'s last `GetItem` failed less than [`PROBE_EVERY`] ago.
    pub fn key_backing_off(&mut self, user: &str, now: Instant) -> bool {
        self.failed_keys.get(user).is_some_and(|at| now < *at)
    }

    /// `user`'s `GetItem` failed: that key waits [`PROBE_EVERY`], and the version is read on
    /// the next request, whose answer tells a table outage (store-wide back-off) from one
    /// key's trouble.
    pub fn key_failed(&mut self, user: &str, now: Instant) {
        self.failed_keys.put(user.to_owned(), now + PROBE_EVERY);
        self.polled_at = None;
    }

    /// The version read: true when it differs from the last one (up or down), which starts a
    /// new epoch and so makes every cached entry stale.
    pub fn set_version(&mut self, version: u64) -> bool {
        let changed = self.version != Some(version);
        if changed {
            self.version = Some(version);
            self.epoch += 1;
        }
        changed
    }

    /// True when `user`'s refused entry was not logged within `every` (and notes it logged).
    pub fn refusal_log_due(&mut self, user: &str, now: Instant, every: Duration) -> bool {
        let due = self
            .refusals_logged
            .get(user)
            .is_none_or(|at| now.saturating_duration_since(*at) >= every);
        if due {
            self.refusals_logged.put(user.to_owned(), now);
        }
        due
    }

    /// True when the version is due for a read.
    pub fn poll_due(&self, now: Instant, every: Duration) -> bool {
        self.polled_at
            .is_none_or(|at| now.saturating_duration_since(at) >= every)
    }

    /// The cached view of `user` if it is current: read in the epoch in force (its `GetItem`
    /// sent after the last version change seen) and within `ttl`.
    pub fn fresh(&mut self, user: &str, now: Instant, ttl: Duration) -> Option<Arc<Snapshot>> {
        self.version?;
        let epoch = self.epoch;
        let cached = self.entries.get(user)?;
        let current = cached.epoch == epoch && now.saturating_duration_since(cached.read_at) < ttl;
        current.then(|| cached.view.clone())
    }

    /// Keeps `cached` for `user` unless the cache holds an entry read in a later epoch (a
    /// slow answer must not replace a newer one, even as the last good entry for an outage).
    pub fn keep(&mut self, user: &str, cached: Cached) {
        if self.entries.peek(user).is_none_or(|c| c.epoch <= cached.epoch) {
            self.entries.put(user.to_owned(), cached);
        }
    }

    /// The cached view of `user` whatever its age, as long as it was read in the epoch in
    /// force: served while the table (or that user's key) is failing, within the staleness
    /// bound the caller checked. An entry read before a version change the store has seen is
    /// known to predate a CLI write (a disable, a removal) and is never served: 503 instead.
    pub fn last_good(&mut self, user: &str) -> Option<Arc<Snapshot>> {
        let epoch = self.epoch;
        self.entries
            .get(user)
            .filter(|c| c.epoch == epoch)
            .map(|c| c.view.clone())
    }

    /// A call succeeded. True when this ends a failure (to log the recovery once).
    pub fn confirmed(&mut self, now: Instant) -> bool {
        self.confirmed_at = Some(now);
        self.retry_at = None;
        self.answering = true;
        self.last_error = None;
        self.failing_since.take().is_some()
    }

    /// A call failed. True when this starts a failure, or changes its message (to log once).
    pub fn failed(&mut self, now: Instant, error: String) -> bool {
        self.failing_since.get_or_insert(now);
        self.retry_at = Some(now + PROBE_EVERY);
        self.answering = false;
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
    fn an_entry_is_fresh_in_its_epoch_and_within_its_ttl_only() {
        let (t0, ttl) = (Instant::now(), Duration::from_secs(300));
        let mut s = State::new(4);
        let cached = |epoch| Cached {
            view: view(),
            read_at: t0,
            epoch,
        };
        s.entries.put("alice".into(), cached(1));
        assert!(s.fresh("alice", t0, ttl).is_none(), "version unknown");
        assert!(s.set_version(3), "first version read");
        assert!(!s.set_version(3), "same version: no change");
        assert!(s.fresh("alice", t0 + Duration::from_secs(299), ttl).is_some());
        assert!(s.fresh("alice", t0 + ttl, ttl).is_none(), "past the entry TTL");
        assert!(s.set_version(4));
        assert!(
            s.fresh("alice", t0, ttl).is_none(),
            "a CLI write bumped the version"
        );
        assert!(
            s.last_good("alice").is_none(),
            "read before a version change: never served, even in an outage"
        );
        assert!(s.fresh("bob", t0, ttl).is_none() && s.last_good("bob").is_none());
    }

    #[test]
    fn a_version_that_goes_back_is_a_change_and_old_entries_stay_stale() {
        let (t0, ttl) = (Instant::now(), Duration::from_secs(300));
        let mut s = State::new(4);
        s.set_version(1);
        let epoch = s.epoch;
        s.entries.put(
            "alice".into(),
            Cached {
                view: view(),
                read_at: t0,
                epoch,
            },
        );
        assert!(s.set_version(0), "version item deleted: reads 0");
        assert!(s.set_version(1), "bumped back to a value already seen");
        assert!(s.fresh("alice", t0, ttl).is_none(), "read before the write");
    }

    #[test]
    fn a_refused_entry_is_logged_once_per_interval_per_user() {
        let (t0, ttl) = (Instant::now(), Duration::from_secs(300));
        let mut s = State::new(4);
        assert!(s.refusal_log_due("wendy", t0, ttl));
        assert!(!s.refusal_log_due("wendy", t0 + Duration::from_secs(299), ttl));
        assert!(s.refusal_log_due("tina", t0, ttl), "per user");
        assert!(
            s.refusal_log_due("wendy", t0 + ttl, ttl),
            "again after the interval"
        );
    }

    #[test]
    fn the_dummy_starts_at_the_policy_floor_when_it_is_dearer_than_the_default() {
        let dear = HashPolicy {
            min_m_kib: 131_072,
            min_t: 3,
            ..HashPolicy::default()
        };
        assert_eq!(
            dummy_floor(&dear),
            Cost {
                m_kib: 131_072,
                t: 3,
                p: 1
            }
        );
        assert_eq!(dummy_floor(&HashPolicy::default()), Cost::DEFAULT, "19 MiB floor");
    }

    #[test]
    fn a_slow_answer_never_replaces_an_entry_read_in_a_later_epoch() {
        let t0 = Instant::now();
        let mut s = State::new(4);
        let cached = |epoch| Cached {
            view: view(),
            read_at: t0,
            epoch,
        };
        s.keep("alice", cached(2));
        s.keep("alice", cached(1));
        assert_eq!(s.entries.peek("alice").map(|c| c.epoch), Some(2));
        s.keep("alice", cached(3));
        assert_eq!(s.entries.peek("alice").map(|c| c.epoch), Some(3));
    }

    #[test]
    fn one_key_failing_backs_off_that_key_only_and_asks_for_a_version_read() {
        let (t0, every) = (Instant::now(), Duration::from_secs(5));
        let mut s = State::new(4);
        s.polled_at = Some(t0);
        s.key_failed("hot", t0);
        assert!(s.key_backing_off("hot", t0 + Duration::from_millis(500)));
        assert!(!s.key_backing_off("hot", t0 + PROBE_EVERY));
        assert!(!s.key_backing_off("alice", t0), "other keys are read");
        assert!(!s.backing_off(t0), "no store-wide back-off");
        assert!(s.unavailable(t0, every).is_none(), "health unchanged");
        assert!(s.poll_due(t0, every), "the version is read next");
    }
}
