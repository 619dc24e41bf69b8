//! The regulator: applies the core's regulation logic around each attempt, over a
//! [`RegulationStore`] (in memory, or DynamoDB so a fleet shares bans).
//!
//! Cost model: bans are rare, checks are constant. Cache hits (the hot path) consult only a local
//! copy of known source bans; new verifications (already ~100 ms of Argon2id) also read the store.
//! A backend failure fails open for regulation only and is counted and audited.
//!
//! Protecting the legitimate user: a username lock applies to new verifications from sources that
//! have not succeeded for that user recently. The legitimate client keeps passing (from the
//! verified cache, or as a trusted source) while an attacker elsewhere fails its password.

use authserver_core::regulation::{Entry, RegulationPolicy, RegulationStore, Scope};
use authserver_core::{AuditEvent, AuditSink, Reason};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Keys kept in each local map (bans seen, trusted sources); oldest dropped beyond.
const LOCAL_CAP: usize = 65_536;

/// Seconds since the Unix epoch (a parameter so tests can move time).
pub type UnixClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in Unix seconds.
pub fn system_clock() -> UnixClock {
    Arc::new(|| crate::http::reply::now_ms() / 1000)
}

/// A refusal: the reason (rate limited / locked out) and the seconds to wait.
pub type Refusal = (Reason, u64);

/// See the module docs.
pub struct Regulator {
    policy: RegulationPolicy,
    store: Arc<dyn RegulationStore>,
    audit: Arc<dyn AuditSink>,
    now: UnixClock,
    trusted_ttl: u64,
    /// key → banned until.
    local_bans: Mutex<HashMap<String, u64>>,
    /// Entries in `local_bans`, readable without its lock.
    local_ban_count: AtomicU64,
    /// (user_hash, source) → trusted until.
    trusted: Mutex<HashMap<(String, IpAddr), u64>>,
    /// Bans issued.
    pub bans: AtomicU64,
    /// Backend failures (regulation failed open).
    pub backend_errors: AtomicU64,
}

impl std::fmt::Debug for Regulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regulator")
            .field("policy", &self.policy)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn insert_bounded<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, u64>, key: K, until: u64, now: u64) {
    if map.len() >= LOCAL_CAP && !map.contains_key(&key) {
        map.retain(|_, u| *u > now);
        if map.len() >= LOCAL_CAP {
            if let Some(k) = map.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone()) {
                map.remove(&k);
            }
        }
    }
    map.insert(key, until);
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
            audit,
            now,
            trusted_ttl,
            local_bans: Mutex::default(),
            local_ban_count: AtomicU64::new(0),
            trusted: Mutex::default(),
            bans: AtomicU64::new(0),
            backend_errors: AtomicU64::new(0),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        // Plain maps: a poisoned one is still consistent.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hot path (cache hits too): a locally known ban of `source`.
    pub fn check_local(&self, source: Option<IpAddr>) -> Option<Refusal> {
        let source = source.filter(|_| self.policy.enabled)?;
        let now = (self.now)();
        if self.local_ban_count.load(Relaxed) == 0 {
            return None; // the common case: no ban known, no lock, no allocation
        }
        let key = Scope::Source.key(&source.to_string());
        let until = *Self::lock(&self.local_bans).get(&key)?;
        if until > now {
            return Some((Reason::RateLimited, until - now));
        }
        self.lift(&key, &source.to_string(), Scope::Source);
        None
    }

    /// Bans known locally (active or not yet lifted), bans issued and backend failures.
    pub fn status(&self) -> serde_json::Value {
        let now = (self.now)();
        let active = Self::lock(&self.local_bans)
            .values()
            .filter(|u| **u > now)
            .count();
        serde_json::json!({
            "enabled": self.policy.enabled,
            "activeBans": active,
            "bansIssued": self.bans.load(Relaxed),
            "backendErrors": self.backend_errors.load(Relaxed),
        })
    }

    /// Keeps a local copy of a ban (the hot path reads only these).
    fn remember_ban(&self, key: String, until: u64, now: u64) {
        let mut bans = Self::lock(&self.local_bans);
        insert_bounded(&mut bans, key, until, now);
        self.local_ban_count.store(bans.len() as u64, Relaxed);
    }

    /// Forgets an expired local ban and records the unban once.
    fn lift(&self, key: &str, id: &str, scope: Scope) {
        let removed = {
            let mut bans = Self::lock(&self.local_bans);
            let removed = bans.remove(key).is_some();
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
            let key = Scope::Source.key(&src.to_string());
            if let Some(left) = self.banned(&key, &src.to_string(), Scope::Source, now).await {
                return Some((Reason::RateLimited, left));
            }
            let trusted = Self::lock(&self.trusted)
                .get(&(user_hash.to_owned(), src))
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
        match self.store.get(key).await {
            Ok(Some(entry)) => {
                let Some(left) = entry.banned_for(now) else {
                    self.lift(key, id, scope);
                    return None;
                };
                self.remember_ban(key.to_owned(), entry.banned_until, now);
                Some(left)
            }
            Ok(None) => None,
            Err(e) => {
                self.backend_failed(&e.to_string());
                None
            }
        }
    }

    /// After a credential failure (or malformed credentials, with no `user_hash`).
    pub async fn failure(&self, source: Option<IpAddr>, user_hash: Option<&str>) {
        if !self.policy.enabled {
            return;
        }
        if let Some(src) = source {
            self.record(Scope::Source, &src.to_string(), user_hash).await;
        }
        if let Some(user) = user_hash {
            self.record(Scope::User, user, None).await;
        }
    }

    /// After a success: `source` becomes trusted for `user_hash`.
    pub fn success(&self, source: Option<IpAddr>, user_hash: &str) {
        if let Some(src) = source.filter(|_| self.policy.enabled) {
            let now = (self.now)();
            insert_bounded(
                &mut Self::lock(&self.trusted),
                (user_hash.to_owned(), src),
                now + self.trusted_ttl,
                now,
            );
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
        let ttl = now + policy.window_seconds + policy.max_ban_seconds * 2;
        match self.store.update(&key, ttl, &update).await {
            Ok(entry) => {
                let ban = *Self::lock(&caused);
                if let Some(ban) = ban {
                    self.remember_ban(key, entry.banned_until, now);
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
            Err(e) => self.backend_failed(&e.to_string()),
        }
    }

    fn backend_failed(&self, error: &str) {
        if self.backend_errors.fetch_add(1, Relaxed) % 100 == 0 {
            tracing::error!(error, "regulation backend failed; regulation fails open");
            self.audit.emit(AuditEvent::RegulationBackendError {
                error: error.to_owned(),
            });
        }
    }
}
