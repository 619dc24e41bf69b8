//! The regulator: applies the core's regulation logic around each attempt, over a
//! [`RegulationStore`] (in memory, or DynamoDB so a fleet shares bans).
//!
//! Cost model: bans are rare, checks are constant. Cache hits (the hot path) consult only a local
//! copy of known source bans; new verifications (already ~100 ms of Argon2id) also read the store.
//!
//! A backend failure (DynamoDB unreachable, throttled, denied) falls back to this instance's own
//! in-memory regulation for that call: bans still happen per instance, never none. Every
//! failure is counted (metric `RegulationBackendError`); the first of a burst is logged and
//! audited at once, then one summary line a minute while it lasts.
//!
//! Sources are IPv4 addresses and IPv6 networks (a /64 by default: one host commonly holds a
//! whole /64), so an attacker cannot walk around a ban by changing its low address bits.
//!
//! Protecting the legitimate user: a username lock applies to new verifications from sources that
//! have not succeeded for that user recently. The legitimate client keeps passing (from the
//! verified cache, or as a trusted source) while an attacker elsewhere fails its password.

use authserver_core::regulation::{Entry, MemoryStore, RegulationPolicy, RegulationStore, Scope};
use authserver_core::{AuditEvent, AuditSink, Reason};
use ipnet::IpNet;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Keys kept in each local map (bans seen, trusted sources) and in the fallback store; the
/// least recently used is dropped beyond, in O(1).
const LOCAL_CAP: NonZeroUsize = match NonZeroUsize::new(65_536) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// While the backend keeps failing, one summary log line per this many seconds.
const BACKEND_LOG_EVERY_SECONDS: u64 = 60;

/// Longest wait for one backend call (DynamoDB answers in milliseconds; a shared test machine's
/// moto in hundreds); past it the call counts as failed and this instance answers from its own
/// memory. The SDK's own limits (1 s connect, 2 s per attempt) are far
/// too long here: one request makes up to six calls, two of them while holding a verification
/// slot, so a backend that accepts connections and never answers turned every login into a
/// 503 at the request timeout (measured on the release binary: 3 of 3 logins, 5.0 s each).
const BACKEND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// After a backend failure, calls go straight to the in-memory fallback for this long, so a
/// slow backend costs one deadline per pause, not one per call; then the backend is tried again.
const BACKEND_PAUSE_SECONDS: u64 = 5;

/// Seconds since the Unix epoch (a parameter so tests can move time).
pub type UnixClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in Unix seconds.
pub fn system_clock() -> UnixClock {
    Arc::new(authserver_core::clock::now_secs)
}

/// A refusal: the reason (rate limited / locked out) and the seconds to wait.
pub type Refusal = (Reason, u64);

/// How client addresses are grouped into regulated sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePrefixes {
    /// IPv4 prefix length (32: each address alone).
    pub v4: u8,
    /// IPv6 prefix length (64 by default).
    pub v6: u8,
}

impl Default for SourcePrefixes {
    fn default() -> Self {
        Self { v4: 32, v6: 64 }
    }
}

impl SourcePrefixes {
    /// The regulated source for `ip`: the address itself at a full-length prefix (keys stay
    /// `source#198.51.100.7`), otherwise its network (`source#2001:db8:1:2::/64`). IPv4-mapped
    /// IPv6 counts as IPv4.
    pub fn source_id(self, ip: IpAddr) -> String {
        let ip = ip.to_canonical();
        let (prefix, full) = match ip {
            IpAddr::V4(_) => (self.v4, 32),
            IpAddr::V6(_) => (self.v6, 128),
        };
        match IpNet::new(ip, prefix.min(full)) {
            Ok(net) if prefix < full => net.trunc().to_string(),
            _ => ip.to_string(),
        }
    }
}

/// See the module docs.
pub struct Regulator {
    policy: RegulationPolicy,
    store: Arc<dyn RegulationStore>,
    /// This instance's own state, used for the calls the backend failed.
    fallback: MemoryStore,
    audit: Arc<dyn AuditSink>,
    now: UnixClock,
    trusted_ttl: u64,
    prefixes: SourcePrefixes,
    /// key → banned until.
    local_bans: Mutex<LruCache<String, u64>>,
    /// Entries in `local_bans`, readable without its lock.
    local_ban_count: AtomicU64,
    /// (user_hash, source address) → trusted until.
    trusted: Mutex<LruCache<(String, IpAddr), u64>>,
    /// Backend failures already reported in a log line, and when that line was written.
    backend_logged: AtomicU64,
    backend_logged_at: AtomicU64,
    /// Until when (Unix seconds) calls skip the backend after a failure.
    backend_paused_until: AtomicU64,
    /// Bans issued.
    pub bans: AtomicU64,
    /// Backend failures (answered from the in-memory fallback).
    pub backend_errors: AtomicU64,
}

impl std::fmt::Debug for Regulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regulator")
            .field("policy", &self.policy)
            .field("store", &self.store)
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl Regulator {
    /// A regulator over `store`.
    pub fn new(
        policy: RegulationPolicy,
        store: Arc<dyn RegulationStore>,
        audit: Arc<dyn AuditSink>,
        now: UnixClock,
        trusted_ttl: u64,
    ) -> Self {
        Self {
            policy,
            store,
            fallback: MemoryStore::new(LOCAL_CAP.get()),
            audit,
            now,
            trusted_ttl,
            prefixes: SourcePrefixes::default(),
            local_bans: Mutex::new(LruCache::new(LOCAL_CAP)),
            local_ban_count: AtomicU64::new(0),
            trusted: Mutex::new(LruCache::new(LOCAL_CAP)),
            backend_logged: AtomicU64::new(0),
            backend_logged_at: AtomicU64::new(0),
            backend_paused_until: AtomicU64::new(0),
            bans: AtomicU64::new(0),
            backend_errors: AtomicU64::new(0),
        }
    }

    /// The same regulator, grouping sources by `prefixes`.
    pub fn with_prefixes(mut self, prefixes: SourcePrefixes) -> Self {
        self.prefixes = prefixes;
        self
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        // Plain maps: a poisoned one is still consistent.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hot path (cache hits too): a locally known ban of `source`.
    pub fn check_local(&self, source: Option<IpAddr>) -> Option<Refusal> {
        let source = source.filter(|_| self.policy.enabled)?;
        if self.local_ban_count.load(Relaxed) == 0 {
            return None; // the common case: no ban known, no lock, no allocation
        }
        let now = (self.now)();
        let id = self.prefixes.source_id(source);
        let key = Scope::Source.key(&id);
        let until = *Self::lock(&self.local_bans).peek(&key)?;
        if until > now {
            return Some((Reason::RateLimited, until - now));
        }
        self.lift(&key, &id, Scope::Source);
        None
    }

    /// Bans known locally (active or not yet lifted), bans issued and backend failures.
    pub fn status(&self) -> serde_json::Value {
        let now = (self.now)();
        let active = Self::lock(&self.local_bans)
            .iter()
            .filter(|(_, u)| **u > now)
            .count();
        serde_json::json!({
            "enabled": self.policy.enabled,
            "activeBans": active,
            "bansIssued": self.bans.load(Relaxed),
            "backendErrors": self.backend_errors.load(Relaxed),
        })
    }

    /// Keeps a local copy of a ban (the hot path reads only these).
    fn remember_ban(&self, key: String, until: u64) {
        let mut bans = Self::lock(&self.local_bans);
        bans.push(key, until);
        self.local_ban_count.store(bans.len() as u64, Relaxed);
    }

    /// Forgets an expired local ban and records the unban once.
    fn lift(&self, key: &str, id: &str, scope: Scope) {
        let removed = {
            let mut bans = Self::lock(&self.local_bans);
            let removed = bans.pop(key).is_some();
            self.local_ban_count.store(bans.len() as u64, Relaxed);
            removed
        };
        if removed {
            tracing::info!(scope = scope.as_str(), "ban expired");
            self.audit.emit(AuditEvent::Unban {
                scope: scope.as_str(),
                key: id.to_owned(),
            });
        }
    }

    /// Before a new verification: source and user bans from the store.
    pub async fn check(&self, source: Option<IpAddr>, user_hash: &str) -> Option<Refusal> {
        if !self.policy.enabled {
            return None;
        }
        let now = (self.now)();
        if let Some(src) = source {
            let id = self.prefixes.source_id(src);
            let key = Scope::Source.key(&id);
            if let Some(left) = self.banned(&key, &id, Scope::Source, now).await {
                return Some((Reason::RateLimited, left));
            }
            let trusted = Self::lock(&self.trusted)
                .peek(&(user_hash.to_owned(), src.to_canonical()))
                .is_some_and(|u| *u > now);
            if trusted {
                return None;
            }
        }
        let left = self
            .banned(&Scope::User.key(user_hash), user_hash, Scope::User, now)
            .await?;
        Some((Reason::LockedOut, left))
    }

    async fn banned(&self, key: &str, id: &str, scope: Scope, now: u64) -> Option<u64> {
        let found = match self.backend(|| self.store.get(key)).await {
            Some(found) => found,
            None => self.fallback.get(key).await.unwrap_or_default(),
        };
        let left = found?.banned_for(now);
        match left {
            Some(left) => self.remember_ban(key.to_owned(), now + left),
            None => self.lift(key, id, scope),
        }
        left
    }

    /// After a credential failure (or malformed credentials, with no `user_hash`).
    pub async fn failure(&self, source: Option<IpAddr>, user_hash: Option<&str>) {
        if !self.policy.enabled {
            return;
        }
        if let Some(src) = source {
            let id = self.prefixes.source_id(src);
            self.record(Scope::Source, &id, user_hash).await;
        }
        if let Some(user) = user_hash {
            self.record(Scope::User, user, None).await;
        }
    }

    /// After a success: `source` becomes trusted for `user_hash`.
    pub fn success(&self, source: Option<IpAddr>, user_hash: &str) {
        if let Some(src) = source.filter(|_| self.policy.enabled) {
            let until = (self.now)() + self.trusted_ttl;
            Self::lock(&self.trusted).push((user_hash.to_owned(), src.to_canonical()), until);
        }
    }

    async fn record(&self, scope: Scope, id: &str, user_hash: Option<&str>) {
        let now = (self.now)();
        let key = scope.key(id);
        let policy = &self.policy;
        let caused: Mutex<Option<authserver_core::regulation::Ban>> = Mutex::new(None);
        let update = |old: Option<&Entry>| {
            let (next, ban) = old
                .cloned()
                .unwrap_or_default()
                .after_failure(scope, now, user_hash, policy);
            *Self::lock(&caused) = ban;
            next
        };
        let ttl = now + policy.window_seconds * 2 + policy.max_ban_seconds * 2;
        let updated = match self.backend(|| self.store.update(&key, ttl, &update)).await {
            Some(entry) => Ok(entry),
            None => self.fallback.update(&key, ttl, &update).await,
        };
        let Ok(entry) = updated else {
            return; // the memory store never fails
        };
        let ban = *Self::lock(&caused);
        if let Some(ban) = ban {
            self.remember_ban(key, entry.banned_until);
            self.bans.fetch_add(1, Relaxed);
            tracing::warn!(
                scope = scope.as_str(),
                seconds = ban.seconds,
                failures = ban.failures,
                "ban issued"
            );
            self.audit.emit(AuditEvent::Ban {
                scope: scope.as_str(),
                key: id.to_owned(),
                seconds: ban.seconds,
                failures: u64::from(ban.failures),
            });
        }
    }

    /// One backend call within [`BACKEND_DEADLINE`], or `None` (failed, too slow, or skipped
    /// during a pause after a failure): the caller then uses the in-memory fallback. Every
    /// call answered from the fallback is counted.
    async fn backend<'a, T>(
        &self,
        call: impl FnOnce() -> authserver_core::regulation::BoxFuture<
            'a,
            Result<T, authserver_core::regulation::BackendError>,
        >,
    ) -> Option<T> {
        let now = (self.now)();
        if now < self.backend_paused_until.load(Relaxed) {
            self.backend_failed("regulation backend: skipped for a few seconds after a failure");
            return None;
        }
        let error = match tokio::time::timeout(BACKEND_DEADLINE, call()).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "regulation backend: no answer within {} ms",
                BACKEND_DEADLINE.as_millis()
            ),
        };
        self.backend_paused_until
            .store(now + BACKEND_PAUSE_SECONDS, Relaxed);
        self.backend_failed(&error);
        None
    }

    fn backend_failed(&self, error: &str) {
        let total = self.backend_errors.fetch_add(1, Relaxed) + 1;
        let now = (self.now)();
        let last = self.backend_logged_at.load(Relaxed);
        let first = self.backend_logged.load(Relaxed) == 0;
        if (first || now.saturating_sub(last) >= BACKEND_LOG_EVERY_SECONDS)
            && self
                .backend_logged_at
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            let since = total - self.backend_logged.swap(total, Relaxed);
            tracing::error!(
                error,
                failures = since,
                total,
                "regulation backend failed; this instance regulates from its own memory meanwhile"
            );
            self.audit.emit(AuditEvent::RegulationBackendError {
                error: error.to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn sources_group_by_prefix_and_mapped_addresses_are_ipv4() {
        let p = SourcePrefixes::default();
        assert_eq!(p.source_id(ip("198.51.100.7")), "198.51.100.7");
        assert_eq!(p.source_id(ip("::ffff:198.51.100.7")), "198.51.100.7");
        assert_eq!(p.source_id(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            p.source_id(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            p.source_id(ip("2001:db8:1:2::9")),
            "one /64, one source"
        );
        let wide = SourcePrefixes { v4: 24, v6: 128 };
        assert_eq!(wide.source_id(ip("198.51.100.7")), "198.51.100.0/24");
        assert_eq!(wide.source_id(ip("2001:db8::1")), "2001:db8::1");
    }
}
