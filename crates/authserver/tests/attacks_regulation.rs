//! Attacks that walked around brute-force regulation (issue 11 items 6-8), through the router
//! as the standalone server runs it. Each test failed on the release the attack was run on.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, ClientAddr, app};
use authserver_testkit::users::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower::ServiceExt;

fn state(users: &std::path::Path, tweak: impl FnOnce(&mut authserver::config::Settings)) -> Arc<AppState> {
    let mut s = settings(users);
    s.regulation.policy.max_source_failures = 5;
    s.regulation.policy.max_user_failures = 3;
    s.regulation.policy.max_source_usernames = 100;
    tweak(&mut s);
    authserver::wiring::build(s).unwrap().state
}

async fn call(state: &Arc<AppState>, peer: IpAddr, auth: &str, xff: Option<&str>) -> StatusCode {
    let mut req = Request::post("/auth/validate").header(header::AUTHORIZATION, auth);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::new(peer, 40000)));
    app(state.clone()).oneshot(req).await.unwrap().status()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn verifications(state: &AppState) -> u64 {
    state.telemetry.registry.verifications()
}

/// Item 6: the lock was checked before a request queued for a verification slot, so 20
/// concurrent guesses against max_user_failures=3 were all verified. Now the check is repeated
/// with the slot held and the slot is kept until the failure is recorded: at most the limit
/// plus the number of slots run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_cannot_outrun_the_user_lock() {
    let f = fixture();
    let state = state(&f.users, |s| {
        s.hash.max_concurrent = 1;
        s.hash.max_queue = 64;
        s.hash.queue_timeout_ms = 30_000;
    });
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let state = state.clone();
            // Distinct sources: only the username lock can stop them.
            tokio::spawn(async move {
                call(
                    &state,
                    ip(&format!("198.51.100.{}", i + 1)),
                    &basic(ALICE, &format!("guess-{i}")),
                    None,
                )
                .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let ran = verifications(&state);
    let slots = 1;
    assert!(
        ran <= 3 + slots,
        "{ran} guesses verified against a lock at 3: {statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
}

/// Item 7: the in-memory store evicted the least recently updated key when full, locks
/// included: cheap malformed requests from fresh addresses erased a username lock (source bans
/// also live in a local copy; user locks only in the store).
#[tokio::test]
async fn a_flood_of_fresh_sources_does_not_erase_a_lock() {
    let f = fixture();
    let state = state(&f.users, |s| s.regulation.max_entries = 64);
    for i in 0..3 {
        call(
            &state,
            ip(&format!("203.0.113.{}", i + 1)),
            &basic(ALICE, "bad"),
            None,
        )
        .await;
    }
    let newcomer = ip("198.51.100.200");
    assert_eq!(
        call(&state, newcomer, &basic(ALICE, ALICE_PW), None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "alice is locked for new sources"
    );
    for i in 0..2000u32 {
        let fresh = ip(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
        call(&state, fresh, "Basic %%%not-base64", None).await;
    }
    assert_eq!(
        call(&state, ip("198.51.100.201"), &basic(ALICE, ALICE_PW), None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the lock survived 2000 fresh sources in a 64-key store"
    );
}

/// Item 8: sources were banned per IPv6 /128, so a /64 gave an attacker 2^64 fresh sources.
#[tokio::test]
async fn a_new_address_in_the_same_ipv6_64_is_the_same_source() {
    let f = fixture();
    let state = state(&f.users, |s| s.regulation.policy.max_user_failures = 100);
    for i in 1..=5 {
        let addr = ip(&format!("2001:db8:1:2::{i:x}"));
        call(&state, addr, &basic(&format!("u{}", i % 2), "bad"), None).await;
    }
    assert_eq!(
        call(&state, ip("2001:db8:1:2:ffff::1"), &basic(ALICE, ALICE_PW), None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "same /64"
    );
    assert_eq!(
        call(&state, ip("2001:db8:1:3::1"), &basic(ALICE, ALICE_PW), None).await,
        StatusCode::OK,
        "another /64"
    );
}

/// Item 8: `X-Forwarded-For` hops with a port (`198.51.100.7:4711`) or brackets failed to parse
/// and the request was attributed to the proxy: one attacker's failures banned everyone behind
/// it. Also IPv4-mapped peers never matched IPv4 `trusted_proxies`.
#[tokio::test]
async fn forwarded_hops_with_ports_are_attributed_to_the_client_not_the_proxy() {
    let f = fixture();
    let state = state(&f.users, |s| {
        s.regulation.policy.max_user_failures = 100;
        s.server.trusted_proxies = "10.0.0.0/8".parse().expect("network");
    });
    let proxy = ip("10.0.0.1");
    for hop in ["198.51.100.7:4711", "[2001:db8::7]:443", "[2001:db8::7]"] {
        for i in 0..5 {
            call(&state, proxy, &basic(&format!("u{}", i % 2), "bad"), Some(hop)).await;
        }
    }
    // The attacker (both forms of it) is banned; a neighbour behind the same proxy is not.
    assert_eq!(
        call(&state, proxy, &basic(ALICE, ALICE_PW), Some("198.51.100.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&state, proxy, &basic(ALICE, ALICE_PW), Some("2001:db8::8")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "same /64 as [2001:db8::7]"
    );
    assert_eq!(
        call(&state, proxy, &basic(ALICE, ALICE_PW), Some("198.51.100.8")).await,
        StatusCode::OK,
        "the proxy itself was not banned"
    );
    // A dual-stack listener sees the IPv4 proxy as ::ffff:10.0.0.1: still trusted.
    assert_eq!(
        call(
            &state,
            ip("::ffff:10.0.0.1"),
            &basic(ALICE, ALICE_PW),
            Some("198.51.100.7")
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "mapped proxy address: the forwarded client is judged"
    );
}

/// Item 8: an unparseable hop from a trusted proxy was attributed to the proxy; now the client
/// is unknown (no source regulation for that request), never the proxy.
#[tokio::test]
async fn an_unreadable_forwarded_hop_never_bans_the_proxy() {
    let f = fixture();
    let state = state(&f.users, |s| {
        s.regulation.policy.max_user_failures = 100;
        s.server.trusted_proxies = "10.0.0.0/8".parse().expect("network");
    });
    let proxy = ip("10.0.0.1");
    for i in 0..12 {
        call(
            &state,
            proxy,
            &basic(&format!("u{}", i % 2), "bad"),
            Some("unknown"),
        )
        .await;
    }
    assert_eq!(
        call(&state, proxy, &basic(ALICE, ALICE_PW), Some("198.51.100.20")).await,
        StatusCode::OK
    );
}
