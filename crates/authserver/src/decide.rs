//! One authentication attempt from raw `Authorization` header values to a [`Decision`]: the
//! piece every surface (HTTP routes, Lambda authorizer) shares.

use crate::flight::{Flights, Join, Leader, Shared};
use crate::limiter::{HashLimiter, Overloaded, Permit};
use crate::regulation::Regulator;
use crate::store::SnapshotSource;
use authserver_core::{
    Authenticator, CacheUse, Credentials, Decision, ParseError, Reason, Step, UserHasher, VerifyTask,
};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Retry-After for 503 overloaded.
pub const OVERLOADED_RETRY: Duration = Duration::from_secs(1);

/// What one attempt produced.
pub struct Attempt {
    /// The decision.
    pub decision: Decision,
    /// The username (plaintext: for forward headers and authorizer context only, never logs).
    pub username: Option<String>,
    /// Keyed hash of the username, for logs.
    pub user_hash: Option<String>,
    /// Retry-After for 429 / 503.
    pub retry_after: Option<Duration>,
    /// The OAuth scopes of a bearer token (the rules engine reads them); empty for Basic.
    pub scopes: Vec<String>,
    /// The OAuth registration of the named user, as the snapshot this attempt judged against
    /// holds it (an ACTIVE user with an `oauth` object), whatever the decision: client
    /// authentication and its audit event use it instead of looking the id up again. `None`
    /// when the attempt never reached the store (refused before, or no such client).
    pub client: Option<Arc<authserver_core::oauth::OAuthClient>>,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("decision", &self.decision)
            .field("user_hash", &self.user_hash)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

/// Why a verification did not run: refused by regulation, or no limiter slot.
enum Stop {
    Refused(crate::regulation::Refusal),
    Overloaded(Overloaded),
}

/// The bytes of a password bcrypt reads; the rest never reached the hash.
const BCRYPT_READS: usize = 72;

/// The parts of the server an attempt needs.
#[derive(Debug)]
pub struct Gate {
    /// Snapshots.
    pub store: Arc<dyn SnapshotSource>,
    /// Decisions and the verified cache.
    pub auth: Authenticator,
    /// Verification limiter.
    pub limiter: HashLimiter,
    /// `user_hash` for logs.
    pub user_hasher: UserHasher,
    /// Brute-force regulation.
    pub regulator: Regulator,
    /// Pads denials to the slowest cost class (timing must not tell hash costs apart).
    pub pacer: crate::pacing::Pacer,
    /// Identical verifications in flight, shared (see [`crate::flight`]).
    pub flights: Flights,
    /// Logins with a legacy hash the store did not re-hash (metric `LegacyLoginNotRehashed`).
    pub legacy_not_rehashed: std::sync::atomic::AtomicU64,
}

impl Gate {
    /// Decides for the given `Authorization` values with no known client address.
    pub async fn attempt<'a>(self: &Arc<Self>, authorization: impl Iterator<Item = &'a [u8]>) -> Attempt {
        self.attempt_from(authorization, None).await
    }

    /// Decides for the given `Authorization` values (all of them: more than one is malformed)
    /// from `source`, applying regulation.
    pub async fn attempt_from<'a>(
        self: &Arc<Self>,
        mut authorization: impl Iterator<Item = &'a [u8]>,
        source: Option<IpAddr>,
    ) -> Attempt {
        let deny = |reason, retry_after: Option<u64>| Attempt {
            decision: Decision::denied(reason),
            username: None,
            user_hash: None,
            retry_after: retry_after.map(Duration::from_secs),
            scopes: Vec::new(),
            client: None,
        };
        let Some(value) = authorization.next() else {
            return deny(Reason::Missing, None);
        };
        let parsed = match authorization.next() {
            Some(_) => Err(ParseError::Malformed(authserver_core::Malformed::NoColon)),
            None => Credentials::parse(value),
        };
        match parsed {
            Ok(creds) => self.attempt_credentials(creds, source).await,
            Err(ParseError::NotBasic) => deny(Reason::Missing, None),
            Err(ParseError::Malformed(_)) => {
                if let Some((reason, left)) = self.regulator.check_local(source) {
                    return deny(reason, Some(left));
                }
                self.regulator.failure(source, None).await;
                deny(Reason::Malformed, None)
            }
        }
    }

    /// Decides for credentials already parsed (Basic, or an OAuth client's id and secret from
    /// the token endpoint: one path, so regulation, the limiter, the cache and pacing apply
    /// alike) from `source`.
    pub async fn attempt_credentials(
        self: &Arc<Self>,
        creds: Credentials,
        source: Option<IpAddr>,
    ) -> Attempt {
        let username = creds.username().to_owned();
        let user_hash = self.user_hasher.hash(&username);
        let with_user = |decision, retry_after: Option<Duration>| Attempt {
            decision,
            username: Some(username.clone()),
            user_hash: Some(user_hash.clone()),
            retry_after,
            scopes: Vec::new(),
            client: None,
        };
        let overloaded = |e: Overloaded| {
            tracing::warn!(error = %e, "verification refused: overloaded");
            with_user(Decision::denied(Reason::Overloaded), Some(OVERLOADED_RETRY))
        };
        if let Some((reason, left)) = self.regulator.check_local(source) {
            return with_user(Decision::denied(reason), Some(Duration::from_secs(left)));
        }
        // A per-user store (DynamoDB) may look the user up first: that time counts into the
        // denial padding below, so a lookup (unknown or uncached user) does not answer later
        // than an entry-cache hit (known, recently used user) and tell them apart.
        let looking_up = std::time::Instant::now();
        let snapshot = match self.store.current_for(&username).resolve().await {
            Ok(s) => s,
            Err(u) => return with_user(Decision::denied(Reason::StoreUnavailable), Some(u.retry_after)),
        };
        let lookup = looking_up.elapsed();
        let client = snapshot
            .user(&username)
            .filter(|u| u.status == authserver_core::Status::Active)
            .and_then(|u| u.oauth.clone());
        let with_user = |decision: Decision, retry_after: Option<Duration>| Attempt {
            client: client.clone(),
            ..with_user(decision, retry_after)
        };
        let decision = match self.auth.begin(&snapshot, creds) {
            Step::Done(d) => d,
            Step::Verify(task) => {
                let (decision, took, runs) = match self.verify_once(task, source, &user_hash).await {
                    Ok(done) => done,
                    Err(Stop::Refused((reason, left))) => {
                        return with_user(Decision::denied(reason), Some(Duration::from_secs(left)));
                    }
                    Err(Stop::Overloaded(e)) => return overloaded(e),
                };
                if decision.reason().is_some_and(Reason::is_credential_failure) {
                    self.calibrate_legacy(&snapshot).await;
                    let spent = took + lookup;
                    tokio::time::sleep(self.pacer.padding_in(&snapshot, spent, runs)).await;
                }
                return with_user(decision, None);
            }
        };
        self.record(&decision, source, &user_hash).await;
        with_user(decision, None)
    }

    /// Regulation, a limiter slot and one verification, shared by every concurrent request with
    /// the same credential against the same snapshot ([`crate::flight`]): a follower takes the
    /// leader's outcome (a failure is recorded once, by the leader) with a decision of its own:
    /// [`CacheUse::Shared`] and the time it waited, so its record, metrics and audit event do
    /// not claim the leader's verification. Returns the decision, the verification time (the
    /// leader's, for pacing) and its Argon2id runs.
    async fn verify_once(
        self: &Arc<Self>,
        task: VerifyTask,
        source: Option<IpAddr>,
        user_hash: &str,
    ) -> Result<(Decision, Duration, u8), Stop> {
        if let Some(refusal) = self.regulator.check(source, user_hash).await {
            return Err(Stop::Refused(refusal));
        }
        let joined = Instant::now();
        let leader = loop {
            match self.flights.join(task.flight_key()) {
                Join::Lead(leader) => break leader,
                Join::Follow(follower) => {
                    if let Some(Shared { decision, took, runs }) = follower.outcome().await {
                        if decision.reason().is_none() {
                            self.regulator.success(source, user_hash);
                        }
                        let decision = Decision {
                            cache: CacheUse::Shared,
                            verify_time: Some(joined.elapsed()),
                            ..decision
                        };
                        return Ok((decision, took, runs));
                    }
                }
            }
        };
        let permit = self
            .limiter
            .acquire(task.cost())
            .await
            .map_err(Stop::Overloaded)?;
        // Checked again with the slot held: failures recorded while this request queued count
        // (a burst of guesses would otherwise all pass the first check together).
        if let Some(refusal) = self.regulator.check(source, user_hash).await {
            return Err(Stop::Refused(refusal));
        }
        self.verify_detached(task, permit, source, user_hash, leader)
            .await
            .map_err(Stop::Overloaded)
    }

    /// Runs `task` under `permit` and records its outcome, in a task of its own: from here on the
    /// outcome is recorded even if the request is dropped (client gone, HTTP/2 reset, request
    /// timeout). The verification runs anyway, and a failure nobody waited for must still count,
    /// or abandoning every guess once it is verified would buy unmetered Argon2id with no ban
    /// ever. The task keeps the request's span and ids, so its log lines (a ban issued) carry
    /// them, and it publishes the outcome to `leader`'s followers (so they are answered even
    /// when this request is gone). Returns the decision, the verification time and its
    /// Argon2id runs.
    async fn verify_detached(
        self: &Arc<Self>,
        task: VerifyTask,
        permit: Permit,
        source: Option<IpAddr>,
        user_hash: &str,
        leader: Leader,
    ) -> Result<(Decision, Duration, u8), Overloaded> {
        let (gate, user_hash, cost) = (Arc::clone(self), user_hash.to_owned(), task.cost());
        // The request may be gone before this ends: its record is then written from here.
        let handoff = crate::audit::handoff::started();
        let verify = tokio::spawn(tracing::Instrument::instrument(
            crate::telemetry::context::carried(async move {
                let (mut verified, permit) = gate.limiter.run(task, permit).await?;
                let runs = verified.runs();
                let legacy_login = verified.take_legacy_login();
                let decision = gate.auth.finish(verified);
                if let Some(login) = legacy_login.filter(|_| decision.reason().is_none()) {
                    gate.upgrade_legacy(login);
                }
                let took = decision.verify_time.unwrap_or_default();
                gate.pacer.observe(cost, took, runs);
                // The slot is released only once the outcome is recorded, so a verification in
                // flight counts against the budget: a burst exceeds a limit by at most the number
                // of slots.
                gate.record(&decision, source, &user_hash).await;
                if let Some(handoff) = handoff {
                    handoff.finish(crate::audit::handoff::Finished {
                        decision: decision.clone(),
                        user_hash: user_hash.clone(),
                    });
                }
                leader.publish(Shared {
                    decision: decision.clone(),
                    took,
                    runs,
                });
                drop(permit);
                Ok((decision, took, runs))
            }),
            tracing::Span::current(),
        ));
        verify.await.unwrap_or(Err(Overloaded::TaskFailed))
    }

    /// Legacy-hash figures for `/metrics`: users of the snapshot in service still on a legacy
    /// hash (one pass over the users per scrape) and legacy logins the store did not re-hash.
    pub fn legacy_counts(&self) -> crate::telemetry::metrics::LegacyCounts {
        let users = self
            .store
            .current()
            .map_or(0, |s| s.users().filter(|(_, u)| u.hash.is_legacy()).count());
        crate::telemetry::metrics::LegacyCounts {
            users: u64::try_from(users).unwrap_or(u64::MAX),
            not_rehashed: self
                .legacy_not_rehashed
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A user logged in against a bcrypt / SHA-crypt hash: the store re-hashes it off the
    /// request path (file store) or it is reported (Secrets Manager is never written from here).
    fn upgrade_legacy(&self, login: authserver_core::legacy::LegacyLogin) {
        let algorithm = login.legacy.algorithm();
        if algorithm == "bcrypt" && login.password.expose().len() > BCRYPT_READS {
            // bcrypt read only the first 72 bytes: this password may differ from the user's
            // after them, and re-hashing it would lock the real password out (an attack).
            self.legacy_not_rehashed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                algorithm,
                "login with a bcrypt hash and a password past bcrypt's 72 bytes: not re-hashed \
                 (set a new password with users add)"
            );
            return;
        }
        if !self.store.upgrade_legacy(login) {
            self.legacy_not_rehashed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                algorithm,
                "login with a legacy hash; this store is not re-hashed by the server: set a new \
                 password (users add) and push the users file"
            );
        }
    }

    /// Measures, once per process, each legacy cost class the snapshot holds that no
    /// verification measured yet, so the first denial already pads to the slowest class (a
    /// bcrypt cost 12 user takes ~250 ms, more than an Argon2id default). Runs a wrong password
    /// against that class's first user under the limiter, on the blocking pool.
    async fn calibrate_legacy(&self, snapshot: &authserver_core::Snapshot) {
        for hash in self.pacer.unmeasured_legacy(snapshot) {
            let Ok(permit) = self.limiter.acquire(hash.cost()).await else {
                return;
            };
            let cost = hash.cost();
            let start = std::time::Instant::now();
            let probe = tokio::task::spawn_blocking(move || {
                let wrong = authserver_core::Secret::new(format!("{:032x}", rand::random::<u128>()));
                let _ = hash.verify(&wrong);
                drop(permit);
            });
            if probe.await.is_ok() {
                self.pacer.observe(cost, start.elapsed(), 1);
            }
        }
    }

    /// Regulation bookkeeping for a decision: successes trust the source, credential failures
    /// count.
    async fn record(&self, decision: &Decision, source: Option<IpAddr>, user_hash: &str) {
        match decision.reason() {
            None => self.regulator.success(source, user_hash),
            Some(r) if r.is_credential_failure() => self.regulator.failure(source, Some(user_hash)).await,
            Some(_) => {}
        }
    }
}
