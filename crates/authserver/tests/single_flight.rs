//! Single flight (issue 17): concurrent identical verifications share one Argon2id run, a shared
//! failure counts once with regulation, different passwords never share, and each request's
//! record says honestly whether it ran the verification (`cache: miss`) or waited for another
//! request's (`cache: shared`, with its own wait).
//!
//! The limiter's slots are held while the requests arrive, so every request is in flight before
//! the first verification starts: the counts do not depend on how fast this machine schedules.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::decide::{Attempt, Gate};
use authserver::http::{ClientAddr, app};
use authserver_core::Reason;
use authserver_testkit::hash::FAST;
use authserver_testkit::logs::Buffer;
use authserver_testkit::users::{ALICE, ALICE_PW, basic, built, fixture, settings};
use authserver_testkit::wait::eventually;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Starts `calls` (all at once, while every limiter slot is held), waits until `followers` of
/// them wait on another's verification and the rest queue for a slot, releases the slots and
/// collects the answers.
async fn in_flight<T, F>(gate: &Arc<Gate>, calls: Vec<F>, followers: u64) -> (Vec<T>, Duration)
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let mut held = Vec::new();
    while gate.limiter.available() > 0 {
        held.push(gate.limiter.acquire(FAST).await.unwrap());
    }
    let start = Instant::now();
    let n = calls.len();
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    eventually("every request in flight", Duration::from_secs(10), || {
        gate.flights.counts().waiting == followers && gate.limiter.waiting() == n - followers as usize
    })
    .await;
    drop(held);
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    (out, start.elapsed())
}

/// One attempt per password through the gate, as [`in_flight`] runs them.
async fn concurrently(gate: &Arc<Gate>, passwords: &[String], followers: u64) -> (Vec<Attempt>, Duration) {
    let calls = passwords
        .iter()
        .map(|pw| {
            let (gate, header) = (Arc::clone(gate), basic(ALICE, pw));
            async move { gate.attempt(std::iter::once(header.as_bytes())).await }
        })
        .collect();
    in_flight(gate, calls, followers).await
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

/// The records, not only the counts: 16 identical cold requests through the HTTP surface are one
/// `miss` record (the request that ran Argon2id, with its verification time) and 15 `shared`
/// ones, each with its own wait for that run (longer than the run: they joined before it
/// started), and the metrics count one verification. Before, every follower's record said
/// `miss` with the leader's `verify_ms`, and the hash metric counted 16 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_are_recorded_as_shared_with_their_own_wait() {
    let out = Buffer::default();
    let batch = authserver::telemetry::buffer_stdout(Box::new(out.clone()));
    let f = fixture();
    let mut s = settings(&f.users);
    s.audit.stdout = true;
    let state = authserver::wiring::build(s).unwrap().state;
    let calls = (0..16)
        .map(|i| {
            let mut req = Request::post("/auth/validate")
                .header(header::AUTHORIZATION, basic(ALICE, ALICE_PW))
                .header("x-request-id", format!("flight-{i}"))
                .body(Body::empty())
                .unwrap();
            req.extensions_mut()
                .insert(ClientAddr(([127, 0, 0, 1], 40000 + i).into()));
            let app = app(Arc::clone(&state));
            async move { app.oneshot(req).await.unwrap().status().as_u16() }
        })
        .collect();
    let (statuses, _) = in_flight(&state.gate, calls, 15).await;
    assert_eq!(statuses, vec![200; 16]);
    batch.flush();
    let text = out.text();
    for secret in [ALICE, ALICE_PW, "Basic "]
        .into_iter()
        .chain(f.hashes.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("flight-"))
        })
        .collect();
    assert_eq!(records.len(), 16, "one record per request: {text}");
    let labelled = |label: &str| -> Vec<&Value> { records.iter().filter(|r| r["cache"] == label).collect() };
    let (miss, shared) = (labelled("miss"), labelled("shared"));
    assert_eq!((miss.len(), shared.len()), (1, 15), "{records:?}");
    let verify_ms = miss[0]["verify_ms"]
        .as_f64()
        .expect("the leader's verification time");
    for r in &shared {
        assert_eq!(
            (&r["event"], &r["outcome"]),
            (&Value::from("auth_attempt"), &Value::from("allowed"))
        );
        let waited = r["verify_ms"].as_f64().expect("the follower's own wait");
        assert!(
            waited > verify_ms,
            "joined before the run started, so waited longer: {r}"
        );
        assert!(waited <= r["latency_ms"].as_f64().unwrap(), "{r}");
    }
    let m = &state.telemetry.registry;
    assert_eq!(m.verifications(), 1, "one Argon2id run measured");
    assert_eq!((m.total(|h| &h.cache_miss), m.total(|h| &h.cache_hit)), (1, 0));
    let latencies: u64 = m.hot.iter().map(|h| h.latency.count()).sum();
    assert_eq!((m.total(|h| &h.auth_success), latencies), (16, 16));
    assert_eq!(state.gate.flights.counts().led, 1);
}
