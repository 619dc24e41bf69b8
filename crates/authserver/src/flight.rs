//! Single flight for identical verifications: concurrent requests that carry the same
//! credential against the same snapshot share one Argon2id run.
//!
//! Before this, 16 concurrent identical requests on a cold cache were 16 Argon2id runs queued
//! behind the limiter's slots (p99 1.37 s in the peer bench on 2 cores). Now the first request
//! (the *leader*) verifies and the others (*followers*) wait for its outcome.
//!
//! - **Keyed like the verified cache** ([`FlightKey`]): snapshot generation plus the HMAC of
//!   (username, password, stored hash). Different passwords, users or snapshots never share a
//!   run, so sharing gives nobody an answer to a guess they did not make.
//! - **A failure is shared and counted once.** The leader records its outcome with regulation;
//!   followers do not record failures again. N concurrent copies of one wrong guess are one guess,
//!   so this buys no extra guesses: a different password is a different flight. Successes are
//!   recorded per follower (each one presented the right password from its own source).
//! - **Only outcomes are shared.** A leader refused by regulation or by the limiter publishes
//!   nothing; its followers then go through the same steps themselves (one of them leads next),
//!   so a ban or an overload is always judged for each request's own source.
//! - **Cancellation-safe.** The leader publishes from inside the detached verification task
//!   (`decide::Gate::verify_detached`), so a leader whose client went away after its
//!   verification started still answers its followers. A leader dropped earlier (queued in the
//!   limiter) drops its [`Leader`]: the followers see the channel closed and one of them leads.

use authserver_core::{Decision, FlightKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A finished verification as its followers receive it.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The leader's decision.
    pub decision: Decision,
    /// How long the verification took (for pacing denials).
    pub took: Duration,
    /// Argon2id runs it took.
    pub runs: u8,
}

/// Key → (the leader's id, the channel its outcome arrives on).
type Map = HashMap<FlightKey, (u64, watch::Receiver<Option<Shared>>)>;
type Table = Mutex<Map>;

/// The verifications in flight, by key.
#[derive(Debug, Default)]
pub struct Flights {
    table: Arc<Table>,
    next_id: AtomicU64,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    led: AtomicU64,
    followed: AtomicU64,
    waiting: AtomicU64,
}

/// How many verifications leaders published and how many requests were answered by one
/// (for tests and benchmarks: `led` is the Argon2id work actually done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlightCounts {
    /// Verifications run and published by a leader.
    pub led: u64,
    /// Requests answered by another request's verification.
    pub followed: u64,
    /// Followers waiting now.
    pub waiting: u64,
}

/// Lead or follow, as [`Flights::join`] decides.
#[derive(Debug)]
pub enum Join {
    /// Nobody verifies this key: run the verification, then [`Leader::publish`].
    Lead(Leader),
    /// Another request is verifying it: await [`Follower::outcome`].
    Follow(Follower),
}

/// The right (and duty) to verify one key. Dropping it unpublished lets a follower lead.
#[derive(Debug)]
pub struct Leader {
    key: FlightKey,
    id: u64,
    table: Arc<Table>,
    counts: Arc<Counts>,
    tx: watch::Sender<Option<Shared>>,
}

/// A request waiting on a leader's verification.
#[derive(Debug)]
pub struct Follower {
    rx: watch::Receiver<Option<Shared>>,
    counts: Arc<Counts>,
}

impl Flights {
    /// Leads `key` when nobody verifies it, or follows the request that does.
    pub fn join(&self, key: FlightKey) -> Join {
        let mut table = self.lock();
        if let Some((_, rx)) = table.get(&key) {
            self.counts.waiting.fetch_add(1, Relaxed);
            return Join::Follow(Follower {
                rx: rx.clone(),
                counts: Arc::clone(&self.counts),
            });
        }
        let (tx, rx) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Relaxed);
        table.insert(key, (id, rx));
        Join::Lead(Leader {
            key,
            id,
            table: Arc::clone(&self.table),
            counts: Arc::clone(&self.counts),
            tx,
        })
    }

    /// Counts so far.
    pub fn counts(&self) -> FlightCounts {
        FlightCounts {
            led: self.counts.led.load(Relaxed),
            followed: self.counts.followed.load(Relaxed),
            waiting: self.counts.waiting.load(Relaxed),
        }
    }

    /// Keys in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        lock(&self.table)
    }
}

/// The table holds no invariant a panic could break halfway (one insert or remove), so a
/// poisoned lock is used as is.
fn lock(table: &Table) -> std::sync::MutexGuard<'_, Map> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

impl Leader {
    /// Hands the outcome to every follower, present and joining until this leader is gone.
    pub fn publish(self, shared: Shared) {
        self.counts.led.fetch_add(1, Relaxed);
        self.tx.send_replace(Some(shared));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Later requests start a flight of their own: a new request after this one finished is
        // a new guess (and a success is in the verified cache by now).
        let mut table = lock(&self.table);
        if table.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            table.remove(&self.key);
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.counts.waiting.fetch_sub(1, Relaxed);
    }
}

impl Follower {
    /// The leader's outcome, or `None` when the leader ended without one (dropped, refused,
    /// overloaded): the caller then joins again.
    pub async fn outcome(mut self) -> Option<Shared> {
        loop {
            if let Some(shared) = self.rx.borrow_and_update().clone() {
                self.counts.followed.fetch_add(1, Relaxed);
                return Some(shared);
            }
            if self.rx.changed().await.is_err() {
                let last = self.rx.borrow().clone();
                if last.is_some() {
                    self.counts.followed.fetch_add(1, Relaxed);
                }
                return last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_core::{
        Authenticator, Credentials, HashPolicy, Reason, Snapshot, Step, SystemClock, VerifiedCache,
    };

    fn key(user: &str, password: &str) -> FlightKey {
        // A fresh snapshot per call would change the generation: keep one.
        static SNAP: std::sync::OnceLock<Arc<Snapshot>> = std::sync::OnceLock::new();
        let snap = SNAP.get_or_init(|| {
            Arc::new(Snapshot::from_json(b"{}", &HashPolicy::default(), "v").expect("empty store"))
        });
        static AUTH: std::sync::OnceLock<Authenticator> = std::sync::OnceLock::new();
        let auth = AUTH.get_or_init(|| {
            Authenticator::new(VerifiedCache::new(
                1,
                Duration::from_secs(1),
                Arc::new(SystemClock),
            ))
        });
        match auth.begin(snap, Credentials::new(user, password).expect("creds")) {
            Step::Verify(task) => task.flight_key(),
            Step::Done(_) => panic!("unknown users always verify"),
        }
    }

    fn shared() -> Shared {
        Shared {
            decision: Decision::denied(Reason::UnknownUser),
            took: Duration::from_millis(5),
            runs: 1,
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_outcome_and_the_next_request_leads_again() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join(key("u", "p")) else {
            panic!("first request leads");
        };
        assert!(
            matches!(flights.join(key("u", "other")), Join::Lead(_)),
            "other password"
        );
        let followers: Vec<_> = (0..3)
            .map(|_| match flights.join(key("u", "p")) {
                Join::Follow(f) => tokio::spawn(f.outcome()),
                Join::Lead(_) => panic!("same key follows"),
            })
            .collect();
        leader.publish(shared());
        for f in followers {
            let got = f.await.expect("joined").expect("an outcome");
            assert_eq!(got.decision.reason(), Some(Reason::UnknownUser));
        }
        assert_eq!(
            flights.counts(),
            FlightCounts {
                led: 1,
                followed: 3,
                waiting: 0
            }
        );
        assert!(flights.is_empty(), "finished flights leave the table");
        assert!(matches!(flights.join(key("u", "p")), Join::Lead(_)));
    }

    #[tokio::test]
    async fn a_leader_gone_without_an_outcome_lets_a_follower_lead() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join(key("u", "p")) else {
            panic!("first request leads");
        };
        let Join::Follow(follower) = flights.join(key("u", "p")) else {
            panic!("second follows");
        };
        let waiting = tokio::spawn(follower.outcome());
        drop(leader);
        assert!(waiting.await.expect("joined").is_none(), "no outcome: join again");
        assert!(matches!(flights.join(key("u", "p")), Join::Lead(_)));
        assert_eq!(
            flights.counts(),
            FlightCounts {
                led: 0,
                followed: 0,
                waiting: 0
            }
        );
    }
}
