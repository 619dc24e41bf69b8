//! Brute-force regulation: failure windows per source address and per `user_hash`, spray
//! detection (many distinct usernames failing from one source), escalating bans.
//!
//! Pure logic over [`Entry`] values plus the [`RegulationStore`] port that keeps them (in memory
//! here; DynamoDB in the AWS adapters, so a fleet shares bans). Time is a parameter (Unix
//! seconds), so tests need no clock.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// Thresholds and ban lengths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegulationPolicy {
    /// Regulation on or off.
    pub enabled: bool,
    /// Length of a failure window (seconds).
    pub window_seconds: u64,
    /// Failures from one source within a window that ban the source.
    pub max_source_failures: u32,
    /// Failures for one username within a window that lock it (for new verifications).
    pub max_user_failures: u32,
    /// Distinct failing usernames from one source within a window that ban the source (spray).
    pub max_source_usernames: u32,
    /// First ban length (seconds); each further ban doubles it.
    pub ban_seconds: u64,
    /// Longest ban (seconds).
    pub max_ban_seconds: u64,
}

impl Default for RegulationPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            window_seconds: 300,
            max_source_failures: 30,
            max_user_failures: 10,
            max_source_usernames: 10,
            ban_seconds: 60,
            max_ban_seconds: 3600,
        }
    }
}

/// What is regulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A client address.
    Source,
    /// A `user_hash`.
    User,
}

impl Scope {
    /// Label for keys, metrics and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Source => "source",
            Scope::User => "user",
        }
    }

    /// The store key for `id` (an address or a `user_hash`).
    pub fn key(self, id: &str) -> String {
        format!("{}#{id}", self.as_str())
    }
}

/// Regulation state of one key, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Start of the current window (Unix seconds).
    pub window_start: u64,
    /// Failures in the current window.
    pub failures: u32,
    /// Failures in the window before (weighted by how much of it a sliding window still
    /// covers, so a burst straddling a window boundary does not get twice the budget).
    #[serde(default)]
    pub previous_failures: u32,
    /// Distinct failing `user_hash` values in the window (sources only; capped at the spray threshold).
    pub usernames: Vec<String>,
    /// How many distinct usernames failed in the window before (sources only): spray detection
    /// slides like the failure count, or a spray straddling a boundary got twice the threshold.
    #[serde(default)]
    pub previous_usernames: u32,
    /// Bans so far (drives escalation; forgotten after a quiet `max_ban_seconds`).
    pub level: u32,
    /// Banned until (Unix seconds); 0 when not banned.
    pub banned_until: u64,
    /// Optimistic-concurrency version for shared stores.
    pub version: u64,
}

/// A ban that a failure just caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// Length in seconds.
    pub seconds: u64,
    /// Failures that triggered it.
    pub failures: u32,
}

impl Entry {
    /// Seconds of ban left at `now`, if banned.
    pub fn banned_for(&self, now: u64) -> Option<u64> {
        (self.banned_until > now).then(|| self.banned_until - now)
    }

    /// When the store may forget this entry (its TTL).
    pub fn expires_at(&self, policy: &RegulationPolicy) -> u64 {
        self.banned_until.max(self.window_start + policy.window_seconds) + policy.max_ban_seconds
    }

    /// The entry after one failure at `now` (`user_hash` for source spray counting), and the ban
    /// it triggers, if any.
    pub fn after_failure(
        &self,
        scope: Scope,
        now: u64,
        user_hash: Option<&str>,
        p: &RegulationPolicy,
    ) -> (Entry, Option<Ban>) {
        let mut e = self.clone();
        if e.banned_until != 0 && now >= e.banned_until.saturating_add(p.max_ban_seconds) {
            e.level = 0; // quiet long enough: escalation forgotten
        }
        let w = p.window_seconds.max(1);
        let elapsed = now.saturating_sub(e.window_start);
        if elapsed >= w {
            // Windows stay aligned to the first one; the one just ended is kept as "previous".
            let windows = elapsed / w;
            e.previous_failures = if windows == 1 { e.failures } else { 0 };
            e.previous_usernames = if windows == 1 {
                u32::try_from(e.usernames.len()).unwrap_or(u32::MAX)
            } else {
                0
            };
            e.window_start += windows * w;
            e.failures = 0;
            e.usernames.clear();
        }
        e.failures = e.failures.saturating_add(1);
        // Two-bucket sliding window: the previous window counts for the part of it that the
        // last `window_seconds` still cover.
        let into = now.saturating_sub(e.window_start).min(w);
        // Rounded up: rounding down let a burst straddling the boundary get one guess more
        // than the limit (9 failures at 299 s and 1 at 301 s counted 9 against a limit of 10).
        let carry = |previous: u32| (u64::from(previous) * (w - into)).div_ceil(w);
        let carried = carry(e.previous_failures);
        let counted = u64::from(e.failures).saturating_add(carried);
        let cap = p.max_source_usernames as usize;
        if let (Scope::Source, Some(u)) = (scope, user_hash)
            && e.usernames.len() < cap
            && !e.usernames.iter().any(|x| x == u)
        {
            e.usernames.push(u.to_owned());
        }
        let limit = match scope {
            Scope::Source => p.max_source_failures,
            Scope::User => p.max_user_failures,
        };
        // A username failing in both windows counts twice: an over-count by at most the carried
        // share, on the side of caution.
        let distinct = (e.usernames.len() as u64).saturating_add(carry(e.previous_usernames));
        let spray = scope == Scope::Source && cap > 0 && distinct >= cap as u64;
        let mut ban = None;
        if e.banned_for(now).is_none() && (counted >= u64::from(limit) || spray) {
            let seconds = p
                .ban_seconds
                .saturating_mul(1u64 << e.level.min(20))
                .min(p.max_ban_seconds);
            e.banned_until = now + seconds;
            e.level += 1;
            ban = Some(Ban {
                seconds,
                failures: e.failures,
            });
            e.failures = 0;
            e.previous_failures = 0;
            e.previous_usernames = 0;
            e.usernames.clear();
            e.window_start = now;
        }
        (e, ban)
    }
}

/// A regulation backend failure (never secret material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("regulation backend: {0}")]
pub struct BackendError(pub String);

/// A boxed future (the port is object-safe and runtime-agnostic).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An entry transformation applied atomically by the store (may be retried).
pub type Update<'a> = &'a (dyn Fn(Option<&Entry>) -> Entry + Send + Sync);

/// Where entries live.
pub trait RegulationStore: Send + Sync + std::fmt::Debug {
    /// Reads an entry.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, BackendError>>;
    /// Applies `f` atomically to the entry under `key` and returns the new entry.
    fn update<'a>(
        &'a self,
        key: &'a str,
        ttl_at: u64,
        f: Update<'a>,
    ) -> BoxFuture<'a, Result<Entry, BackendError>>;
}

/// In-memory store, bounded. Past `capacity` keys one entry is evicted per insert, in O(log n):
/// entries that are not banned go first (earliest TTL first), active bans last (earliest end
/// first). A flood of cheap requests from fresh addresses therefore cannot erase a ban.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Indexed>,
}

/// Eviction order of an entry: (banned at its last update, the time that orders it).
type Rank = (bool, u64);

#[derive(Debug, Default)]
struct Indexed {
    entries: HashMap<String, (Entry, Rank)>,
    order: std::collections::BTreeSet<(Rank, String)>,
}

impl Indexed {
    fn put(&mut self, key: &str, entry: Entry, rank: Rank) {
        if let Some((_, old)) = self.entries.get(key) {
            self.order.remove(&(*old, key.to_owned()));
        }
        self.order.insert((rank, key.to_owned()));
        self.entries.insert(key.to_owned(), (entry, rank));
    }

    fn evict_one(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.entries.remove(&key);
        }
    }
}

impl MemoryStore {
    /// A store of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Indexed> {
        // Plain data: a poisoned map is still a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RegulationStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, BackendError>> {
        let found = self.lock().entries.get(key).map(|(e, _)| e.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        ttl_at: u64,
        f: Update<'a>,
    ) -> BoxFuture<'a, Result<Entry, BackendError>> {
        let mut inner = self.lock();
        if !inner.entries.contains_key(key) && inner.entries.len() >= self.capacity {
            inner.evict_one();
        }
        let mut next = f(inner.entries.get(key).map(|(e, _)| e));
        next.version += 1;
        // A ban ranks by its end (it may outlive `ttl_at`'s window); anything else by its TTL.
        let rank = if next.banned_until > 0 {
            (true, next.banned_until)
        } else {
            (false, ttl_at)
        };
        inner.put(key, next.clone(), rank);
        Box::pin(std::future::ready(Ok(next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RegulationPolicy {
        RegulationPolicy {
            max_source_failures: 3,
            max_user_failures: 2,
            max_source_usernames: 3,
            ..Default::default()
        }
    }

    #[test]
    fn bans_escalate_and_are_forgotten_after_quiet() {
        let p = policy();
        let mut e = Entry::default();
        let mut bans = Vec::new();
        let mut now = 1000;
        for _ in 0..3 {
            for _ in 0..2 {
                let (next, ban) = e.after_failure(Scope::User, now, None, &p);
                e = next;
                if let Some(b) = ban {
                    bans.push(b.seconds);
                    assert_eq!(e.banned_for(now), Some(b.seconds));
                    now = e.banned_until;
                }
            }
        }
        assert_eq!(bans, vec![60, 120, 240]);
        assert_eq!(e.level, 3);
        let (e2, _) = e.after_failure(Scope::User, e.banned_until + p.max_ban_seconds, None, &p);
        assert_eq!(e2.level, 0, "escalation forgotten after a quiet period");
        assert!(e.expires_at(&p) > e.banned_until);
    }

    #[test]
    fn windows_reset_and_spray_bans_the_source() {
        let p = policy();
        let (e, _) = Entry::default().after_failure(Scope::Source, 0, Some("u1"), &p);
        let (e, _) = e.after_failure(Scope::Source, 0, Some("u1"), &p);
        let later = 2 * p.window_seconds;
        let (e, ban) = e.after_failure(Scope::Source, later, Some("u1"), &p);
        assert!(ban.is_none(), "two windows later it starts over");
        assert_eq!((e.failures, e.previous_failures), (1, 0));
        let (e, ban) = e.after_failure(Scope::Source, later + 1, Some("u2"), &p);
        assert!(ban.is_none());
        let (_, ban) = e.after_failure(Scope::Source, later + 2, Some("u3"), &p);
        assert_eq!(ban.map(|b| b.failures), Some(3), "3 distinct usernames: spray");
        let (_, ban) = Entry::default().after_failure(
            Scope::User,
            0,
            Some("x"),
            &RegulationPolicy {
                max_user_failures: 1,
                ..p
            },
        );
        assert!(ban.is_some());
    }

    #[test]
    fn a_burst_across_a_window_boundary_gets_no_second_budget() {
        let p = RegulationPolicy {
            max_user_failures: 10,
            window_seconds: 300,
            ..policy()
        };
        let mut e = Entry::default();
        for _ in 0..9 {
            let (next, ban) = e.after_failure(Scope::User, 299, None, &p);
            assert!(ban.is_none());
            e = next;
        }
        let (e1, ban) = e.after_failure(Scope::User, 300, None, &p);
        assert!(
            ban.is_some(),
            "9 just before the boundary + 1 after = 10 in the last 300 s"
        );
        assert_eq!(e1.previous_failures, 0, "a ban starts a clean window");
        // A second after the boundary the previous window still counts in full (rounded up).
        let (_, ban) = e.after_failure(Scope::User, 301, None, &p);
        assert!(ban.is_some(), "9 at 299 s + 1 at 301 s = 10 in the last 300 s");
        // Half a window later only half of the previous window still counts.
        let (e2, ban) = e.after_failure(Scope::User, 450, None, &p);
        assert!(ban.is_none(), "1 + ⌈9/2⌉ < 10");
        assert_eq!((e2.failures, e2.previous_failures, e2.window_start), (1, 9, 300));
    }

    #[test]
    fn a_spray_across_a_window_boundary_gets_no_second_threshold() {
        let p = RegulationPolicy {
            max_source_failures: 100,
            max_source_usernames: 10,
            window_seconds: 300,
            ..policy()
        };
        let mut e = Entry::default();
        for i in 0..9 {
            let (next, ban) = e.after_failure(Scope::Source, 299, Some(&format!("a{i}")), &p);
            assert!(ban.is_none());
            e = next;
        }
        let (e1, ban) = e.after_failure(Scope::Source, 301, Some("b0"), &p);
        assert!(
            ban.is_some(),
            "9 distinct usernames at 299 s + 1 more at 301 s: a spray of 10 in 2 s"
        );
        assert_eq!(e1.previous_usernames, 0, "a ban starts a clean window");
        // Two windows later nothing carries.
        let (e2, ban) = e.after_failure(Scope::Source, 900, Some("c0"), &p);
        assert!(ban.is_none());
        assert_eq!((e2.usernames.len(), e2.previous_usernames), (1, 0));
    }

    /// Polls a future that must be ready at once (the memory store's are).
    fn ready<T>(mut f: BoxFuture<'_, T>) -> T {
        match f
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("memory store futures are ready at once"),
        }
    }

    #[test]
    fn memory_store_is_bounded_and_versions_entries() {
        let s = MemoryStore::new(2);
        let bump = |e: Option<&Entry>| Entry {
            failures: e.map_or(0, |e| e.failures) + 1,
            ..e.cloned().unwrap_or_default()
        };
        assert_eq!(ready(s.update("a", 10, &bump)).map(|e| e.failures), Ok(1));
        let e = ready(s.update("a", 10, &bump)).expect("ok");
        assert_eq!((e.failures, e.version), (2, 2));
        ready(s.update("b", 5, &bump)).expect("ok");
        ready(s.update("c", 20, &bump)).expect("ok");
        assert_eq!(s.len(), 2);
        assert_eq!(ready(s.get("b")), Ok(None), "earliest-expiring key evicted");

        assert_eq!(ready(s.get("a")).map(|e| e.map(|e| e.failures)), Ok(Some(2)));
        assert_eq!(Scope::User.key("h"), "user#h");
        assert!(!s.is_empty());
    }

    #[test]
    fn active_bans_are_evicted_last() {
        let s = MemoryStore::new(3);
        let ban = |e: Option<&Entry>| Entry {
            banned_until: 5000,
            ..e.cloned().unwrap_or_default()
        };
        let plain = |e: Option<&Entry>| e.cloned().unwrap_or_default();
        ready(s.update("banned", 10, &ban)).expect("ok");
        // A flood of fresh keys, each later-expiring than the ban's TTL.
        for i in 0..1000 {
            let key = format!("fresh{i}");
            ready(s.update(&key, 100 + i, &plain)).expect("ok");
        }
        assert_eq!(s.len(), 3);
        assert_eq!(
            ready(s.get("banned")).map(|e| e.map(|e| e.banned_until)),
            Ok(Some(5000)),
            "the ban survived the flood"
        );
        // Among bans, the one ending first goes first.
        let later = |e: Option<&Entry>| Entry {
            banned_until: 9000,
            ..e.cloned().unwrap_or_default()
        };
        ready(s.update("b2", 1, &later)).expect("ok");
        ready(s.update("b3", 1, &later)).expect("ok");
        ready(s.update("b4", 1, &later)).expect("ok");
        assert_eq!(
            ready(s.get("banned")),
            Ok(None),
            "earliest-ending ban evicted once only bans remain"
        );
        assert!(ready(s.get("b4")).expect("ok").is_some());
    }
}
