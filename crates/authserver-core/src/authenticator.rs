//! The decision: credentials + snapshot → allowed (with roles) or denied (with a reason).
//!
//! Split in two phases so the caller decides where the expensive part runs: [`Authenticator::begin`]
//! answers cache hits at once and otherwise hands back a [`VerifyTask`] (one Argon2id run, meant
//! for a blocking pool behind a limiter); [`Authenticator::finish`] turns its result into a
//! [`Decision`] and fills the cache. [`Authenticator::authenticate`] does both in line.

use crate::cache::{CacheKey, VerifiedCache};
use crate::credentials::Credentials;
use crate::hash::Cost;
use crate::store::{Snapshot, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a request was denied. Internal: callers see only the HTTP contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Username not in the store.
    UnknownUser,
    /// Password does not match.
    WrongPassword,
    /// User is DISABLED (checked after a real verification).
    Disabled,
    /// No `Authorization` header, or another scheme.
    Missing,
    /// Basic header that cannot be decoded.
    Malformed,
    /// Too many failures from this source or for this user.
    RateLimited,
    /// The username is locked out.
    LockedOut,
    /// The hash limiter is full.
    Overloaded,
    /// No usable store snapshot.
    StoreUnavailable,
}

impl Reason {
    /// Every reason, for metrics pre-registration and docs.
    pub const ALL: [Reason; 9] = [
        Reason::UnknownUser,
        Reason::WrongPassword,
        Reason::Disabled,
        Reason::Missing,
        Reason::Malformed,
        Reason::RateLimited,
        Reason::LockedOut,
        Reason::Overloaded,
        Reason::StoreUnavailable,
    ];

    /// Position in [`Reason::ALL`], for per-reason arrays sized `Reason::ALL.len()`.
    pub const fn index(self) -> usize {
        // Declaration order is `ALL`'s order (a test holds them together).
        self as usize
    }

    /// The metric / log label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownUser => "unknown_user",
            Reason::WrongPassword => "wrong_password",
            Reason::Disabled => "disabled",
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::RateLimited => "rate_limited",
            Reason::LockedOut => "locked_out",
            Reason::Overloaded => "overloaded",
            Reason::StoreUnavailable => "store_unavailable",
        }
    }

    /// True for the three denials that must look and cost the same (a credential check ran).
    pub fn is_credential_failure(self) -> bool {
        matches!(
            self,
            Reason::UnknownUser | Reason::WrongPassword | Reason::Disabled
        )
    }
}

/// Allowed or denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Valid credentials of an active user.
    Allowed {
        /// The user's roles.
        roles: Arc<[String]>,
    },
    /// Denied.
    Denied(Reason),
}

/// Whether the verified-credential cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Answered from the cache.
    Hit,
    /// Needed a verification, and ran it.
    Miss,
    /// Needed a verification, and an identical request verifying at the same moment answered it
    /// (single flight, in the server): no verification of its own. Its decision's
    /// `verify_time` is how long it waited for that verification.
    Shared,
    /// The cache was not consulted (no credentials, or refused before verification).
    None,
}

impl CacheUse {
    /// Log label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::Shared => "shared",
            CacheUse::None => "none",
        }
    }
}

/// The result of one authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or denied.
    pub outcome: Outcome,
    /// Cache use.
    pub cache: CacheUse,
    /// How long the Argon2id verification took, when one ran; for [`CacheUse::Shared`], how
    /// long this request waited for the verification it shared.
    pub verify_time: Option<Duration>,
}

impl Decision {
    /// A denial decided without consulting cache or hash.
    pub fn denied(reason: Reason) -> Self {
        Self {
            outcome: Outcome::Denied(reason),
            cache: CacheUse::None,
            verify_time: None,
        }
    }

    /// The denial reason, if denied.
    pub fn reason(&self) -> Option<Reason> {
        match self.outcome {
            Outcome::Denied(r) => Some(r),
            Outcome::Allowed { .. } => None,
        }
    }
}

/// Phase one's answer.
#[derive(Debug)]
pub enum Step {
    /// Decided without hashing (cache hit).
    Done(Decision),
    /// One verification needed.
    Verify(VerifyTask),
}

/// One pending Argon2id verification. `Send + 'static`, so it can move to a blocking pool.
#[derive(Debug)]
pub struct VerifyTask {
    snapshot: Arc<Snapshot>,
    creds: Credentials,
    /// `Some` for a known user (the cache key to fill on success).
    known: Option<CacheKey>,
    /// The cache key of (username, password, the hash verified against: the user's or the
    /// dummy), for single flight ([`VerifyTask::flight_key`]).
    flight: CacheKey,
}

/// What makes two verifications the same one: the snapshot generation and the verified-cache
/// key of (username, password, hash). Equal keys mean the same guess against the same record,
/// so one Argon2id run answers them all; anything else (another password, user or snapshot)
/// differs. It holds no plaintext (an HMAC under the cache's per-process key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlightKey {
    generation: u64,
    key: CacheKey,
}

/// A finished verification, to pass to [`Authenticator::finish`].
#[derive(Debug)]
pub struct Verified {
    snapshot: Arc<Snapshot>,
    username: String,
    known: Option<CacheKey>,
    matched: bool,
    elapsed: Duration,
    /// Argon2id runs it took (1, or 2 while the snapshot holds alternates).
    runs: u8,
    /// Set when the password matched the user's legacy hash: the store may re-hash it.
    legacy_login: Option<crate::hash::legacy::LegacyLogin>,
}

impl VerifyTask {
    /// Argon2id cost of this verification (for a memory-aware limiter).
    pub fn cost(&self) -> Cost {
        self.hash().cost()
    }

    /// The key under which identical concurrent verifications share one run.
    pub fn flight_key(&self) -> FlightKey {
        FlightKey {
            generation: self.snapshot.generation(),
            key: self.flight,
        }
    }

    fn hash(&self) -> &crate::hash::StoredHash {
        match self.known {
            Some(_) => self
                .snapshot
                .user(self.creds.username())
                .map_or(self.snapshot.dummy(), |u| &u.hash),
            None => self.snapshot.dummy(),
        }
    }

    /// Runs the verification (tens to hundreds of milliseconds of CPU).
    ///
    /// While the snapshot holds alternates (a rotation's pending or previous hashes), a service
    /// account's password may match either hash, so a wrong password for such an account costs
    /// two verifications. Then *every* denial costs two, so that a denial stays as slow for a
    /// user with an alternate as for one without (and for unknown users): the second run is
    /// the alternate when there is one, otherwise the same hash again, at the same cost, its
    /// result ignored. Successes with the current password stay at one verification. Outside
    /// rotations nothing changes.
    pub fn run(self) -> Verified {
        let start = Instant::now();
        // Unknown users verify against the dummy: same work, always false.
        let first = self.hash().verify(self.creds.password());
        let mut matched = first && self.known.is_some();
        let mut runs = 1;
        if let Some(alternates) = self.snapshot.alternates() {
            let user = self.known.and(self.snapshot.user(self.creds.username()));
            let allowed = matched && user.is_some_and(|u| u.status == Status::Active);
            if !allowed {
                runs = 2;
                match alternates
                    .get(self.creds.username())
                    .filter(|_| !first && user.is_some())
                {
                    Some(alternate) => matched = alternate.verify(self.creds.password()),
                    None => {
                        let _ = self.hash().verify(self.creds.password());
                    }
                }
            }
        }
        let legacy_login = self.legacy_login(first && self.known.is_some());
        Verified {
            legacy_login,
            elapsed: start.elapsed(),
            username: self.creds.username().to_owned(),
            snapshot: self.snapshot,
            known: self.known,
            matched,
            runs,
        }
    }
}

impl VerifyTask {
    /// What a store needs to re-hash the user, when `matched_current` says the password matched
    /// the user's own (not an alternate) hash and that hash is a legacy one.
    fn legacy_login(&self, matched_current: bool) -> Option<crate::hash::legacy::LegacyLogin> {
        let hash = self.hash();
        (matched_current && hash.is_legacy()).then(|| crate::hash::legacy::LegacyLogin {
            username: self.creds.username().to_owned(),
            password: self.creds.password().clone(),
            legacy: hash.clone(),
        })
    }
}

impl Verified {
    /// The legacy-hash login to hand to the store, taken once (see
    /// [`crate::SnapshotSource::upgrade_legacy`]). Only set when the password matched.
    pub fn take_legacy_login(&mut self) -> Option<crate::hash::legacy::LegacyLogin> {
        self.legacy_login.take()
    }

    /// Argon2id runs the verification took: 1, or 2 while the snapshot holds alternates (see
    /// [`VerifyTask::run`]).
    pub fn runs(&self) -> u8 {
        self.runs
    }
}

/// Decides; owns the verified-credential cache.
#[derive(Debug)]
pub struct Authenticator {
    cache: VerifiedCache,
}

impl Authenticator {
    /// An authenticator using `cache`.
    pub fn new(cache: VerifiedCache) -> Self {
        Self { cache }
    }

    /// The cache (for status reporting and purges).
    pub fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    /// Phase one: answers from the cache or returns the verification to run.
    pub fn begin(&self, snapshot: &Arc<Snapshot>, creds: Credentials) -> Step {
        let Some(user) = snapshot.user(creds.username()) else {
            // One HMAC (~1 µs) beside an Argon2id run: unknown users share flights like known
            // ones, so neither path is cheaper to flood with one repeated guess.
            let flight = self.cache.key(
                creds.username(),
                creds.password().expose(),
                snapshot.dummy().expose(),
            );
            return Step::Verify(VerifyTask {
                snapshot: snapshot.clone(),
                creds,
                known: None,
                flight,
            });
        };
        let key = self
            .cache
            .key(creds.username(), creds.password().expose(), user.hash.expose());
        if user.status == Status::Active && self.cache.contains(snapshot, creds.username(), &key) {
            return Step::Done(Decision {
                outcome: Outcome::Allowed {
                    roles: user.roles.clone(),
                },
                cache: CacheUse::Hit,
                verify_time: None,
            });
        }
        Step::Verify(VerifyTask {
            snapshot: snapshot.clone(),
            creds,
            known: Some(key),
            flight: key,
        })
    }

    /// Phase two: the decision for a finished verification; caches successes.
    pub fn finish(&self, v: Verified) -> Decision {
        let user = v.snapshot.user(&v.username);
        let outcome = match (v.known, user) {
            (Some(key), Some(user)) if v.matched => match user.status {
                Status::Active => {
                    self.cache.insert(&v.snapshot, &v.username, key);
                    Outcome::Allowed {
                        roles: user.roles.clone(),
                    }
                }
                Status::Disabled => Outcome::Denied(Reason::Disabled),
            },
            (Some(_), Some(_)) => Outcome::Denied(Reason::WrongPassword),
            _ => Outcome::Denied(Reason::UnknownUser),
        };
        Decision {
            outcome,
            cache: CacheUse::Miss,
            verify_time: Some(v.elapsed),
        }
    }

    /// Both phases in line (benchmarks, tests, the CLI).
    pub fn authenticate(&self, snapshot: &Arc<Snapshot>, creds: Credentials) -> Decision {
        match self.begin(snapshot, creds) {
            Step::Done(d) => d,
            Step::Verify(task) => self.finish(task.run()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::hash::{HashPolicy, hash_password, tests::FAST};
    use crate::secret::Secret;
    use crate::store::AlternateKind;

    fn setup() -> (Authenticator, Arc<Snapshot>) {
        let h = hash_password(&Secret::from("right"), FAST).expect("hash");
        let json = format!(
            r#"{{"alice":{{"passwordHash":"{h}","roles":["admin"]}},"bob":{{"passwordHash":"{h}","status":"DISABLED"}}}}"#
        );
        let snap = Arc::new(Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v1").expect("ok"));
        let cache = VerifiedCache::new(16, Duration::from_secs(60), Arc::new(SystemClock));
        (Authenticator::new(cache), snap)
    }

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials::new(u, p).expect("valid")
    }

    #[test]
    fn success_is_cached_and_failures_are_not() {
        let (a, s) = setup();
        let d = a.authenticate(&s, creds("alice", "right"));
        assert_eq!(
            d.outcome,
            Outcome::Allowed {
                roles: vec!["admin".to_owned()].into()
            }
        );
        assert_eq!(d.cache, CacheUse::Miss);
        assert!(d.verify_time.is_some());
        let d = a.authenticate(&s, creds("alice", "right"));
        assert_eq!((d.cache, d.verify_time), (CacheUse::Hit, None));
        assert!(matches!(d.outcome, Outcome::Allowed { .. }));
        for _ in 0..2 {
            let d = a.authenticate(&s, creds("alice", "wrong"));
            assert_eq!(
                (d.reason(), d.cache),
                (Some(Reason::WrongPassword), CacheUse::Miss)
            );
        }
        assert_eq!(a.cache().len(), 1);
    }

    #[test]
    fn unknown_and_disabled_are_denied_after_a_verification() {
        let (a, s) = setup();
        for (u, p, r) in [
            ("nobody", "right", Reason::UnknownUser),
            ("bob", "right", Reason::Disabled),
            ("bob", "wrong", Reason::WrongPassword),
            ("Alice", "right", Reason::UnknownUser),
        ] {
            let d = a.authenticate(&s, creds(u, p));
            assert_eq!(d.reason(), Some(r), "{u}");
            assert!(d.verify_time.is_some(), "{u} must cost a verification");
        }
        assert!(a.cache().is_empty(), "disabled success is never cached");
    }

    #[test]
    fn a_new_snapshot_drops_cached_successes() {
        let (a, s) = setup();
        a.authenticate(&s, creds("alice", "right"));
        let h = hash_password(&Secret::from("right"), FAST).expect("hash");
        let json = format!(r#"{{"alice":{{"passwordHash":"{h}","status":"DISABLED"}}}}"#);
        let s2 = Arc::new(Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v2").expect("ok"));
        let d = a.authenticate(&s2, creds("alice", "right"));
        assert_eq!(d.reason(), Some(Reason::Disabled));
    }

    /// A store where `svc` is a service account and `human` is not; both passwords "old".
    fn rotating(new_svc: &str, new_human: &str) -> (Arc<Snapshot>, Arc<Snapshot>) {
        let doc = |svc: &str, human: &str| {
            let h = |p: &str| hash_password(&Secret::from(p), FAST).expect("hash");
            format!(
                r#"{{"svc":{{"passwordHash":"{}","deliverySecretId":"d/svc","roles":["m2m"]}},
                    "human":{{"passwordHash":"{}"}},
                    "off":{{"passwordHash":"{}","status":"DISABLED","deliverySecretId":"d/off"}}}}"#,
                h(svc),
                h(human),
                h(svc)
            )
        };
        let policy = HashPolicy::default();
        let current = Snapshot::from_json(doc("old", "old").as_bytes(), &policy, "v1").expect("ok");
        let pending = Snapshot::from_json(doc(new_svc, new_human).as_bytes(), &policy, "v2").expect("ok");
        (Arc::new(current), Arc::new(pending))
    }

    fn runs(a: &Authenticator, s: &Arc<Snapshot>, u: &str, p: &str) -> (Option<Reason>, u8) {
        match a.begin(s, creds(u, p)) {
            Step::Verify(t) => {
                let v = t.run();
                let runs = v.runs();
                (a.finish(v).reason(), runs)
            }
            Step::Done(d) => (d.reason(), 0),
        }
    }

    #[test]
    fn service_accounts_accept_either_version_and_every_denial_costs_two_runs() {
        let (a, _) = setup();
        let (current, pending) = rotating("new", "new");
        let both = Arc::new(current.with_alternates(AlternateKind::Pending, &pending));
        assert_eq!(
            both.alternates().map(|x| (x.kind(), x.version(), x.len())),
            Some((AlternateKind::Pending, "v2", 1))
        );
        assert!(
            both.alternates()
                .is_some_and(|x| !x.is_empty() && x.get("human").is_none())
        );
        // The service account: old (current) and new (pending) passwords; roles from current.
        assert_eq!(runs(&a, &both, "svc", "old"), (None, 1));
        assert_eq!(
            runs(&a, &both, "svc", "new"),
            (None, 2),
            "current fails, alternate matches"
        );
        assert_eq!(runs(&a, &both, "svc", "new"), (None, 0), "then cached");
        let d = a.authenticate(&both, creds("svc", "new"));
        assert_eq!(
            d.outcome,
            Outcome::Allowed {
                roles: vec!["m2m".to_owned()].into()
            }
        );
        // Every denial costs two runs while alternates exist ...
        assert_eq!(runs(&a, &both, "svc", "wrong"), (Some(Reason::WrongPassword), 2));
        assert_eq!(
            runs(&a, &both, "human", "new"),
            (Some(Reason::WrongPassword), 2),
            "humans get no alternate"
        );
        assert_eq!(runs(&a, &both, "nobody", "new"), (Some(Reason::UnknownUser), 2));
        assert_eq!(runs(&a, &both, "off", "old"), (Some(Reason::Disabled), 2));
        assert_eq!(
            runs(&a, &both, "off", "new"),
            (Some(Reason::WrongPassword), 2),
            "disabled: no alternate"
        );
        // ... and one without them.
        let plain = Arc::new(both.without_alternates());
        assert!(plain.alternates().is_none());
        assert_eq!(runs(&a, &plain, "svc", "new"), (Some(Reason::WrongPassword), 1));
        assert_eq!(runs(&a, &plain, "nobody", "x"), (Some(Reason::UnknownUser), 1));
        assert_eq!(
            runs(&a, &plain, "svc", "old"),
            (None, 1),
            "the cached alternate success is gone"
        );
    }

    #[test]
    fn no_changed_service_account_means_no_alternates() {
        let (current, _) = rotating("old", "old");
        let s = current.with_alternates(AlternateKind::Previous, &current);
        assert!(s.alternates().is_none(), "identical hashes: nothing to accept");
        assert_ne!(s.generation(), current.generation());
        assert_eq!(AlternateKind::Previous.as_str(), "previous");
        assert_eq!(AlternateKind::Pending.as_str(), "pending");
    }

    /// Single flight may merge two verifications only when they are the same guess against the
    /// same record: same user, same password, same snapshot.
    #[test]
    fn flight_keys_differ_by_user_password_and_snapshot() {
        let (a, s) = setup();
        let key = |s: &Arc<Snapshot>, u: &str, p: &str| match a.begin(s, creds(u, p)) {
            Step::Verify(t) => t.flight_key(),
            Step::Done(_) => panic!("no verification for {u}"),
        };
        assert_eq!(key(&s, "alice", "pw"), key(&s, "alice", "pw"));
        assert_eq!(key(&s, "nobody", "pw"), key(&s, "nobody", "pw"));
        assert_ne!(key(&s, "alice", "pw"), key(&s, "alice", "pw2"));
        assert_ne!(
            key(&s, "alice", "pw"),
            key(&s, "bob", "pw"),
            "same hash, other user"
        );
        assert_ne!(key(&s, "nobody", "pw"), key(&s, "nobody2", "pw"));
        let other = Arc::new(s.without_alternates());
        assert_ne!(
            key(&s, "alice", "pw"),
            key(&other, "alice", "pw"),
            "other snapshot"
        );
    }

    #[test]
    fn task_reports_cost_and_reasons_have_labels() {
        let (a, s) = setup();
        match a.begin(&s, creds("nobody", "x")) {
            Step::Verify(t) => assert_eq!(t.cost(), FAST),
            Step::Done(_) => panic!("unknown user cannot be a cache hit"),
        }
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), 9);
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}: ALL is in declaration order");
        }
        assert!(Reason::Disabled.is_credential_failure() && !Reason::Missing.is_credential_failure());
        assert_eq!(Decision::denied(Reason::Missing).cache.as_str(), "none");
    }
}
