//! The OAuth issuer's figures (issue 14), process-wide like the TLS figures: the issuer
//! (`crate::oauth`, a higher layer) counts into them, `/metrics` reads them, and on Lambda each
//! invocation's EMF blob carries what changed since the previous blob ([`OAuthFigures::take_emf`]),
//! so neither the registry's signature nor the state grows for them. Label sets are fixed
//! (`&'static str` from the code, never client input), so series stay bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, PoisonError};

/// Reasons of `OAuthClientAuthFailure`: the decision reasons of a secret, then the checks of
/// a client assertion. Every one is exposed, zeros included.
pub const CLIENT_AUTH_REASONS: [&str; 18] = [
    "unknown_user",
    "wrong_password",
    "disabled",
    "missing",
    "malformed",
    "rate_limited",
    "locked_out",
    "overloaded",
    "store_unavailable",
    "wrong_method",
    "unknown_client",
    "assertion_signature",
    "assertion_audience",
    "assertion_expired",
    "assertion_lifetime",
    "assertion_jti",
    "assertion_replay",
    "jti_store_unavailable",
];

/// Results of `OAuthTokenValidation`: `valid`, then `Invalid::as_str` of each check (`client`:
/// the token verifies but its client is no longer registered for it).
pub const VALIDATION_RESULTS: [&str; 12] = [
    "valid",
    "malformed",
    "algorithm",
    "type",
    "unknown_key",
    "signature",
    "issuer",
    "audience",
    "expired",
    "not_yet_valid",
    "revoked",
    "client",
];

/// The counters.
#[derive(Debug, Default)]
pub struct OAuthFigures {
    issued: AtomicU64,
    introspections: AtomicU64,
    revocations: AtomicU64,
    /// Unix seconds when the active signing key started signing (0: no issuer).
    active_key_since: AtomicU64,
    /// Listed keys the last local key-set reload could not load.
    unloadable_keys: AtomicU64,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    validations: Mutex<BTreeMap<&'static str, u64>>,
    /// What the previous EMF blob carried.
    emitted: Mutex<Emitted>,
}

/// Totals at the previous EMF blob.
#[derive(Debug, Default, Clone)]
struct Emitted {
    issued: u64,
    introspections: u64,
    revocations: u64,
    auth_failures: BTreeMap<&'static str, u64>,
    validations: BTreeMap<&'static str, u64>,
}

/// The OAuth figures of one EMF blob: counts since the previous blob, the key age now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthEmf {
    /// Tokens issued.
    pub issued: u64,
    /// Introspections answered.
    pub introspections: u64,
    /// Tokens revoked.
    pub revocations: u64,
    /// Seconds the active signing key has signed.
    pub key_age: u64,
    /// Client-authentication failures by reason (labels that moved only).
    pub auth_failures: Vec<(&'static str, u64)>,
    /// Bearer validations by result (labels that moved only).
    pub validations: Vec<(&'static str, u64)>,
}

fn moved(
    now: &BTreeMap<&'static str, u64>,
    before: &BTreeMap<&'static str, u64>,
) -> Vec<(&'static str, u64)> {
    now.iter()
        .map(|(k, v)| (*k, v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, d)| *d > 0)
        .collect()
}

static FIGURES: LazyLock<OAuthFigures> = LazyLock::new(OAuthFigures::default);

/// The process's figures.
pub fn figures() -> &'static OAuthFigures {
    &FIGURES
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    *map.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(label)
        .or_default() += 1;
}

/// `labels` in order with their counts (zeros included), then any other label counted.
fn rows(map: &Mutex<BTreeMap<&'static str, u64>>, labels: &[&'static str]) -> Vec<(&'static str, u64)> {
    let map = map.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out: Vec<_> = labels
        .iter()
        .map(|l| (*l, map.get(l).copied().unwrap_or(0)))
        .collect();
    out.extend(
        map.iter()
            .filter(|(k, _)| !labels.contains(k))
            .map(|(k, v)| (*k, *v)),
    );
    out
}

impl OAuthFigures {
    /// The figures for the next EMF blob: what changed since the previous call, and the key
    /// age at `now`. Process-wide like the counters: one EMF sink per process (a Lambda
    /// function's, with `[oauth]` on), which calls this once per blob.
    pub fn take_emf(&self, now: u64) -> OAuthEmf {
        let lock =
            |m: &Mutex<BTreeMap<&'static str, u64>>| m.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (failures, validations) = (lock(&self.auth_failures), lock(&self.validations));
        let (issued, introspections, revocations) = (
            self.issued_total(),
            self.introspections_total(),
            self.revocations_total(),
        );
        let mut before = self.emitted.lock().unwrap_or_else(PoisonError::into_inner);
        let out = OAuthEmf {
            issued: issued.saturating_sub(before.issued),
            introspections: introspections.saturating_sub(before.introspections),
            revocations: revocations.saturating_sub(before.revocations),
            key_age: self.key_age(now),
            auth_failures: moved(&failures, &before.auth_failures),
            validations: moved(&validations, &before.validations),
        };
        *before = Emitted {
            issued,
            introspections,
            revocations,
            auth_failures: failures,
            validations,
        };
        out
    }

    /// One token issued.
    pub fn issued(&self) {
        self.issued.fetch_add(1, Relaxed);
    }
    /// One introspection answered.
    pub fn introspected(&self) {
        self.introspections.fetch_add(1, Relaxed);
    }
    /// One token revoked.
    pub fn revoked(&self) {
        self.revocations.fetch_add(1, Relaxed);
    }
    /// One failed client authentication, by reason.
    pub fn client_auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }
    /// One bearer validation, by result (`valid` or the failed check).
    pub fn validation(&self, result: &'static str) {
        bump(&self.validations, result);
    }
    /// The active key started signing at `since` (unix seconds).
    pub fn active_key_since(&self, since: u64) {
        self.active_key_since.store(since, Relaxed);
    }
    /// Tokens issued so far.
    pub fn issued_total(&self) -> u64 {
        self.issued.load(Relaxed)
    }
    /// Introspections so far.
    pub fn introspections_total(&self) -> u64 {
        self.introspections.load(Relaxed)
    }
    /// Revocations so far.
    pub fn revocations_total(&self) -> u64 {
        self.revocations.load(Relaxed)
    }
    /// Client-authentication failures by reason.
    pub fn auth_failure_rows(&self) -> Vec<(&'static str, u64)> {
        rows(&self.auth_failures, &CLIENT_AUTH_REASONS)
    }
    /// Validations by result.
    pub fn validation_rows(&self) -> Vec<(&'static str, u64)> {
        rows(&self.validations, &VALIDATION_RESULTS)
    }
    /// The local key set's last load left `n` listed keys out (0: all loaded).
    pub fn set_unloadable_keys(&self, n: usize) {
        self.unloadable_keys.store(n as u64, Relaxed);
    }
    /// Listed keys the last local key-set load could not load.
    pub fn unloadable_keys(&self) -> u64 {
        self.unloadable_keys.load(Relaxed)
    }
    /// Seconds the active key has signed at `now` (0 without an issuer).
    pub fn key_age(&self, now: u64) -> u64 {
        match self.active_key_since.load(Relaxed) {
            0 => 0,
            since => now.saturating_sub(since),
        }
    }
}
