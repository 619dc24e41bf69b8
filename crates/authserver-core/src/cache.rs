//! The verified-credential cache: remembers recent *successful* verifications so a repeat costs
//! microseconds instead of an Argon2id run.
//!
//! Keys are HMAC-SHA256 under a per-process random key over (username, password, stored hash),
//! length-prefixed so no two triples collide by concatenation. No plaintext is kept; a changed
//! hash can never match an old entry, and any snapshot change empties the cache.

use crate::clock::Clock;
use crate::keyed::mac;
use hmac::Mac;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cache key (an HMAC output).
pub type CacheKey = [u8; 32];

/// Bounded, TTL'd, generation-tagged set of verified credential digests.
#[derive(Debug)]
pub struct VerifiedCache {
    key: [u8; 32],
    ttl: Duration,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    generation: u64,
    entries: LruCache<CacheKey, Instant>,
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

    /// True when `key` was verified under snapshot `generation` and has not expired.
    pub fn contains(&self, generation: u64, key: &CacheKey) -> bool {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.generation != generation {
            inner.entries.clear();
            inner.generation = generation;
            return false;
        }
        match inner.entries.get(key) {
            Some(expiry) if *expiry > now => true,
            Some(_) => {
                inner.entries.pop(key);
                false
            }
            None => false,
        }
    }

    /// Records a successful verification under `generation`.
    pub fn insert(&self, generation: u64, key: CacheKey) {
        if self.ttl.is_zero() {
            return; // disabled
        }
        let expiry = self.clock.now() + self.ttl;
        let mut inner = self.lock();
        if inner.generation != generation {
            if generation < inner.generation {
                return; // a verification against an older snapshot finished late
            }
            inner.entries.clear();
            inner.generation = generation;
        }
        inner.entries.put(key, expiry);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn cache(cap: usize) -> (VerifiedCache, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (
            VerifiedCache::new(cap, Duration::from_secs(60), clock.clone()),
            clock,
        )
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let c = VerifiedCache::new(0, Duration::from_secs(60), Arc::new(ManualClock::default()));
        let k = c.key("a", "b", "c");
        c.insert(1, k);
        assert!(!c.contains(1, &k));
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
    fn ttl_generation_and_capacity() {
        let (c, clock) = cache(2);
        let (a, b, d) = (c.key("a", "", ""), c.key("b", "", ""), c.key("d", "", ""));
        c.insert(1, a);
        assert!(c.contains(1, &a));
        clock.advance(Duration::from_secs(61));
        assert!(!c.contains(1, &a), "expired");
        assert!(c.is_empty());
        c.insert(1, a);
        c.insert(1, b);
        c.insert(1, d);
        assert_eq!(c.len(), 2, "bounded");
        assert!(!c.contains(1, &a), "least recently used evicted");
        assert!(!c.contains(2, &b), "new generation empties");
        assert!(c.is_empty());
        c.insert(1, a);
        assert!(c.is_empty(), "late insert from an older snapshot ignored");
        c.insert(3, a);
        assert!(c.contains(3, &a));
        c.clear();
        assert!(!c.contains(3, &a));
    }
}
