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
    /// Distinct failing `user_hash` values in the window (sources only; capped at the spray threshold).
    pub usernames: Vec<String>,
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
        if now >= e.window_start + p.window_seconds {
            e.window_start = now;
            e.failures = 0;
            e.usernames.clear();
        }
        e.failures = e.failures.saturating_add(1);
        let cap = p.max_source_usernames as usize;
        if let (Scope::Source, Some(u)) = (scope, user_hash) {
            if e.usernames.len() < cap && !e.usernames.iter().any(|x| x == u) {
                e.usernames.push(u.to_owned());
            }
        }
        let limit = match scope {
            Scope::Source => p.max_source_failures,
            Scope::User => p.max_user_failures,
        };
        let spray = scope == Scope::Source && cap > 0 && e.usernames.len() >= cap;
        let mut ban = None;
        if e.banned_for(now).is_none() && (e.failures >= limit || spray) {
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

/// In-memory store, bounded: past `capacity` keys, entries that are neither banned nor in a
/// current window are dropped first, then the oldest windows.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    entries: Mutex<HashMap<String, (Entry, u64)>>,
}

impl MemoryStore {
    /// A store of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Entry, u64)>> {
        // Plain data: a poisoned map is still a consistent map.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RegulationStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, BackendError>> {
        let found = self.lock().get(key).map(|(e, _)| e.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        ttl_at: u64,
        f: Update<'a>,
    ) -> BoxFuture<'a, Result<Entry, BackendError>> {
        let mut map = self.lock();
        if !map.contains_key(key) && map.len() >= self.capacity {
            // Evict the entry that expires first (bounded memory under a spray of sources).
            if let Some(victim) = map
                .iter()
                .min_by_key(|(_, (_, ttl))| *ttl)
                .map(|(k, _)| k.clone())
            {
                map.remove(&victim);
            }
        }
        let mut next = f(map.get(key).map(|(e, _)| e));
        next.version += 1;
        map.insert(key.to_owned(), (next.clone(), ttl_at));
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
        let (e, ban) = e.after_failure(Scope::Source, p.window_seconds, Some("u1"), &p);
        assert!(ban.is_none(), "a new window starts over");
        assert_eq!(e.failures, 1);
        let (e, ban) = e.after_failure(Scope::Source, p.window_seconds + 1, Some("u2"), &p);
        assert!(ban.is_none());
        let (_, ban) = e.after_failure(Scope::Source, p.window_seconds + 2, Some("u3"), &p);
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
}
