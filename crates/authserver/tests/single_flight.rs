//! Single flight (issue 17): concurrent identical verifications share one Argon2id run, a shared
//! failure counts once with regulation, and different passwords never share.
//!
//! The limiter's slots are held while the requests arrive, so every request is in flight before
//! the first verification starts: the counts do not depend on how fast this machine schedules.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::decide::{Attempt, Gate};
use authserver_core::Reason;
use authserver_testkit::hash::FAST;
use authserver_testkit::users::{ALICE, ALICE_PW, basic, built, fixture};
use authserver_testkit::wait::eventually;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts one attempt per password (all at once, while every limiter slot is held), waits until
/// `followers` of them wait on another's verification, releases the slots and collects them.
async fn concurrently(gate: &Arc<Gate>, passwords: &[String], followers: u64) -> (Vec<Attempt>, Duration) {
    let cost = FAST;
    let mut held = Vec::new();
    while gate.limiter.available() > 0 {
        held.push(gate.limiter.acquire(cost).await.unwrap());
    }
    let start = Instant::now();
    let tasks: Vec<_> = passwords
        .iter()
        .map(|pw| {
            let (gate, header) = (Arc::clone(gate), basic(ALICE, pw));
            tokio::spawn(async move { gate.attempt(std::iter::once(header.as_bytes())).await })
        })
        .collect();
    eventually("every request in flight", Duration::from_secs(10), || {
        gate.flights.counts().waiting == followers
            && gate.limiter.waiting() == passwords.len() - followers as usize
    })
    .await;
    drop(held);
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    (out, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_identical_cold_requests_share_one_verification() {
    let f = fixture();
    let gate = Arc::clone(&built(&f.users).state.gate);
    let (answers, took) = concurrently(&gate, &vec![ALICE_PW.to_owned(); 16], 15).await;
    assert!(
        answers.iter().all(|a| a.decision.reason().is_none()),
        "all 16 allowed"
    );
    let counts = gate.flights.counts();
    assert_eq!((counts.led, counts.followed, counts.waiting), (1, 15, 0));
    assert!(gate.flights.is_empty());
    println!("16 identical cold requests answered in {took:?} with one verification");
}

/// 16 copies of one wrong guess are one guess: one failure for the user (a ban needs 10), not 16.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_failure_counts_once() {
    let f = fixture();
    let gate = Arc::clone(&built(&f.users).state.gate);
    let (answers, _) = concurrently(&gate, &vec!["wrong-guess".to_owned(); 16], 15).await;
    assert!(
        answers
            .iter()
            .all(|a| a.decision.reason() == Some(Reason::WrongPassword)),
        "{answers:?}"
    );
    assert_eq!(gate.flights.counts().led, 1);
    assert_eq!(gate.regulator.status()["bansIssued"], 0, "one failure, no ban");
    // Guesses that differ are separate runs and each counts: the shared failure (exactly one)
    // plus 9 distinct ones reach the 10 that ban the user.
    let distinct: Vec<String> = (0..9).map(|i| format!("guess-{i}")).collect();
    let (answers, _) = concurrently(&gate, &distinct, 0).await;
    assert!(
        answers
            .iter()
            .all(|a| a.decision.reason() == Some(Reason::WrongPassword))
    );
    assert_eq!(gate.flights.counts().led, 10, "one run per distinct password");
    assert_eq!(gate.flights.counts().followed, 15);
    assert_eq!(gate.regulator.status()["bansIssued"], 1, "1 + 9 failures ban");
}
