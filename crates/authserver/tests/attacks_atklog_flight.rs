//! Attack (wt-atklog) on single flight: 16 identical wrong-password requests from 16 different
//! sources (IPv4, IPv6, IPv4-mapped IPv6), the leader's client hanging up: every follower is
//! answered, and each request's one record (access line = audit event) names its own source.
//! (Its own file: `buffer_stdout` is process-wide.)
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{ClientAddr, app};
use authserver_testkit::hash::FAST;
use authserver_testkit::logs::Buffer;
use authserver_testkit::users::{ALICE, basic, fixture, settings};
use authserver_testkit::wait::eventually;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_from_other_sources_survive_the_leaders_hang_up_with_their_own_source() {
    let out = Buffer::default();
    let batch = authserver::telemetry::buffer_stdout(Box::new(out.clone()));
    let f = fixture();
    let mut s = settings(&f.users);
    s.audit.stdout = true;
    let state = authserver::wiring::build(s).unwrap().state;
    let gate = &state.gate;
    let source = |i: u16| -> IpAddr {
        match i % 3 {
            0 => IpAddr::from([198, 51, 100, i as u8]),
            1 => format!("2001:db8::{i:x}").parse().unwrap(),
            _ => format!("::ffff:203.0.113.{i}").parse().unwrap(),
        }
    };
    let request = |i: u16| {
        let mut req = Request::post("/auth/validate")
            .header(header::AUTHORIZATION, basic(ALICE, "Wrong-Guess-0001"))
            .header("x-request-id", format!("fl-{i}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ClientAddr(SocketAddr::new(source(i), 40000 + i)));
        let app = app(Arc::clone(&state));
        async move { app.oneshot(req).await.unwrap().status().as_u16() }
    };
    let mut held = Vec::new();
    while gate.limiter.available() > 0 {
        held.push(gate.limiter.acquire(FAST).await.unwrap());
    }
    let leader = tokio::spawn(request(0));
    eventually("the leader queued", Duration::from_secs(10), || {
        gate.limiter.waiting() == 1
    })
    .await;
    let followers: Vec<_> = (1..16).map(|i| tokio::spawn(request(i))).collect();
    eventually("15 followers", Duration::from_secs(10), || {
        gate.flights.counts().waiting == 15
    })
    .await;
    drop(held);
    eventually("the leader verifying", Duration::from_secs(10), || {
        gate.limiter.waiting() == 0
    })
    .await;
    leader.abort();
    for t in followers {
        let status = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a follower answered after the leader hung up")
            .unwrap();
        assert_eq!(status, 401);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    batch.flush();
    let text = out.text();
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["request_id"].as_str().is_some_and(|id| id.starts_with("fl-")))
        .collect();
    assert_eq!(
        records.len(),
        16,
        "one record per request, the leader's too: {text}"
    );
    for r in &records {
        let i: u16 = r["request_id"].as_str().unwrap()[3..].parse().unwrap();
        assert_eq!(
            r["source"],
            Value::from(source(i).to_canonical().to_string()),
            "{r}"
        );
        assert_eq!(r["reason"], "wrong_password", "{r}");
    }
    let leader_record = records.iter().find(|r| r["request_id"] == "fl-0").unwrap();
    assert_eq!(
        (leader_record["status"].as_u64(), leader_record["cache"].as_str()),
        (Some(499), Some("miss"))
    );
}
