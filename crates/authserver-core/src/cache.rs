//! The verified-credential cache: remembers recent *successful* verifications so a repeat costs
//! microseconds instead of an Argon2id run.
//!
//! Keys are HMAC-SHA256 under a per-process random key over (username, password, stored hash),
//! length-prefixed so no two triples collide by concatenation. No plaintext password is kept; a
//! changed hash can never match an old entry.
//!
//! When the snapshot changes, only the entries of users whose record changed are dropped: each
//! entry remembers a stamp of its user's record (hash, status, roles, alternate hash) and the
//! first lookup under a newer snapshot sweeps out the entries whose stamp no longer matches.
//! Emptying the whole cache instead sent every client through Argon2id at once after any edit
//! (40 cached clients → 23 × 503 on a one-slot host when one user's roles changed).

use crate::clock::Clock;
use crate::keyed::mac;
use crate::store::Snapshot;
use hmac::Mac;
use lru::LruCache;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cache key (an HMAC output).
pub type CacheKey = [u8; 32];

/// A digest of one user's record as a snapshot holds it.
type Stamp = [u8; 32];

/// Bounded, TTL'd set of verified credential digests, each tied to its user's record.
#[derive(Debug)]
pub struct VerifiedCache {
    key: [u8; 32],
    ttl: Duration,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The newest snapshot generation the entries were checked against.
    generation: u64,
    entries: LruCache<CacheKey, Entry>,
}

#[derive(Debug)]
struct Entry {
    expiry: Instant,
    /// The username (needed to find the user's record when sweeping; usernames are no secret
    /// to this process: the snapshot holds them all).
    user: Box<str>,
    stamp: Stamp,
}

/// The stamp of `user` in `snapshot`, `None` when absent. Covers everything a cached success
/// depends on, so a change to any of it drops that user's entries and nobody else's.
fn stamp(snapshot: &Snapshot, user: &str) -> Option<Stamp> {
    let record = snapshot.user(user)?;
    let mut d = Sha256::new();
    let mut part = |bytes: &[u8]| {
        d.update((bytes.len() as u64).to_le_bytes());
        d.update(bytes);
    };
    part(record.hash.expose().as_bytes());
    part(&[record.status as u8]);
    part(&(record.roles.len() as u64).to_le_bytes());
    for role in record.roles.iter() {
        part(role.as_bytes());
    }
    let alternate = snapshot.alternates().and_then(|a| a.get(user));
    part(alternate.map_or(&b""[..], |h| h.expose().as_bytes()));
    Some(d.finalize().into())
}

impl VerifiedCache {
    /// A cache of at most `capacity` entries, each valid for `ttl`. A capacity (or TTL) of 0
    /// disables it: every decision then runs a verification.
    pub fn new(capacity: usize, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            key: rand::random(),
            ttl: if capacity == 0 { Duration::ZERO } else { ttl },
            clock,
            inner: Mutex::new(Inner {
                generation: 0,
                entries: LruCache::new(cap),
            }),
        }
    }

    /// The digest of one credential triple.
    pub fn key(&self, username: &str, password: &str, stored_hash: &str) -> CacheKey {
        let mut m = mac(&self.key);
        for part in [username, password, stored_hash] {
            m.update(&(part.len() as u64).to_le_bytes());
            m.update(part.as_bytes());
        }
        m.finalize().into_bytes().into()
    }

    /// True when `key` was verified for `user`, that user's record in `snapshot` is the one it
    /// was verified against, and the entry has not expired. A snapshot older than one already
    /// seen never answers from the cache (its records may differ from the entries').
    pub fn contains(&self, snapshot: &Snapshot, user: &str, key: &CacheKey) -> bool {
        let now = self.clock.now();
        let mut inner = self.lock();
        if !inner.catch_up(snapshot) {
            return false;
        }
        let fresh = match inner.entries.get(key) {
            Some(e) => e.expiry > now && *e.user == *user,
            None => return false,
        };
        if !fresh {
            inner.entries.pop(key);
        }
        fresh
    }

    /// Records a successful verification of `user` against `snapshot`.
    pub fn insert(&self, snapshot: &Snapshot, user: &str, key: CacheKey) {
        if self.ttl.is_zero() {
            return; // disabled
        }
        let Some(stamp) = stamp(snapshot, user) else {
            return;
        };
        let expiry = self.clock.now() + self.ttl;
        let mut inner = self.lock();
        if !inner.catch_up(snapshot) {
            return; // a verification against an older snapshot finished late
        }
        inner.entries.put(
            key,
            Entry {
                expiry,
                user: user.into(),
                stamp,
            },
        );
    }

    /// Drops everything (credential leak response, `ops` commands).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Entries held (some may be expired but not yet evicted).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the LRU inconsistent in a way that
        // matters: at worst an entry is missing, which only costs a verification.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Brings the entries up to `snapshot`: on a newer generation, drops the entries whose
    /// user's record changed (one stamp per distinct user, bounded by the capacity). False when
    /// `snapshot` is older than the entries.
    fn catch_up(&mut self, snapshot: &Snapshot) -> bool {
        let generation = snapshot.generation();
        if generation < self.generation {
            return false;
        }
        if generation > self.generation {
            let mut stamps: HashMap<&str, Option<Stamp>> = HashMap::new();
            let stale: Vec<CacheKey> = self
                .entries
                .iter()
                .filter(|(_, e)| {
                    let now = *stamps.entry(&e.user).or_insert_with(|| stamp(snapshot, &e.user));
                    now != Some(e.stamp)
                })
                .map(|(k, _)| *k)
                .collect();
            for k in stale {
                self.entries.pop(&k);
            }
            self.generation = generation;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::hash::{HashPolicy, hash_password, tests::FAST};
    use crate::secret::Secret;

    fn cache(cap: usize) -> (VerifiedCache, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (
            VerifiedCache::new(cap, Duration::from_secs(60), clock.clone()),
            clock,
        )
    }

    /// A snapshot of users `a`, `b`, `d` sharing one hash; `extra` is spliced into `a`'s entry.
    fn snap(h: &str, extra: &str) -> Snapshot {
        let json = format!(
            r#"{{"a":{{"passwordHash":"{h}"{extra}}},"b":{{"passwordHash":"{h}"}},"d":{{"passwordHash":"{h}"}}}}"#
        );
        Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v").expect("valid")
    }

    fn phc() -> String {
        hash_password(&Secret::from("pw"), FAST).expect("hash")
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let c = VerifiedCache::new(0, Duration::from_secs(60), Arc::new(ManualClock::default()));
        let s = snap(&phc(), "");
        let k = c.key("a", "b", "c");
        c.insert(&s, "a", k);
        assert!(!c.contains(&s, "a", &k));
        assert!(c.is_empty());
    }

    #[test]
    fn keys_bind_all_three_parts_without_concatenation_collisions() {
        let (c, _) = cache(4);
        let k = c.key("ab", "c", "h");
        assert_ne!(k, c.key("a", "bc", "h"));
        assert_ne!(k, c.key("ab", "c", "h2"));
        assert_ne!(k, c.key("ab", "C", "h"));
        assert_eq!(k, c.key("ab", "c", "h"));
        let (other, _) = cache(4);
        assert_ne!(k, other.key("ab", "c", "h"), "per-process random key");
    }

    #[test]
    fn ttl_capacity_and_late_inserts() {
        let h = phc();
        let s1 = snap(&h, "");
        let (c, clock) = cache(2);
        let (a, b, d) = (c.key("a", "", ""), c.key("b", "", ""), c.key("d", "", ""));
        c.insert(&s1, "a", a);
        assert!(c.contains(&s1, "a", &a));
        clock.advance(Duration::from_secs(61));
        assert!(!c.contains(&s1, "a", &a), "expired");
        assert!(c.is_empty());
        c.insert(&s1, "a", a);
        c.insert(&s1, "b", b);
        c.insert(&s1, "d", d);
        assert_eq!(c.len(), 2, "bounded");
        assert!(!c.contains(&s1, "a", &a), "least recently used evicted");
        let s2 = snap(&h, "");
        assert!(
            c.contains(&s2, "b", &b),
            "an unchanged user survives a new snapshot"
        );
        c.insert(&s1, "a", a);
        assert!(
            !c.contains(&s2, "a", &a),
            "late insert from an older snapshot ignored"
        );
        assert!(!c.contains(&s1, "b", &b), "an older snapshot never answers");
        c.clear();
        assert!(!c.contains(&s2, "b", &b));
        c.insert(&s2, "nobody", a);
        assert!(c.is_empty(), "a user not in the snapshot is never cached");
    }

    #[test]
    fn a_new_snapshot_drops_only_the_changed_users_entries() {
        let h = phc();
        let (c, _) = cache(16);
        let s1 = snap(&h, "");
        let (a, b) = (c.key("a", "pw", &h), c.key("b", "pw", &h));
        c.insert(&s1, "a", a);
        c.insert(&s1, "b", b);
        for change in [
            r#","roles":["admin"]"#,
            r#","roles":["admin"],"status":"DISABLED""#,
        ] {
            let s2 = snap(&h, change);
            assert!(!c.contains(&s2, "a", &a), "{change}: a's record changed");
            assert!(c.contains(&s2, "b", &b), "{change}: b untouched");
            assert_eq!(c.len(), 1);
            c.insert(&s2, "a", a);
        }
        let gone = Snapshot::from_json(
            format!(r#"{{"b":{{"passwordHash":"{h}"}}}}"#).as_bytes(),
            &HashPolicy::default(),
            "v",
        )
        .expect("valid");
        assert!(c.contains(&gone, "b", &b));
        assert_eq!(c.len(), 1, "a removed user's entries are dropped");
    }
}
