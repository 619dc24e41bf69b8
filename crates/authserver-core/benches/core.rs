//! Core benchmarks: header parse, cache-hit decision, cache-miss decision vs one bare Argon2id
//! verification (the miss should cost within a few percent of the bare verification).
//!
//! Run: `cargo bench -p authserver-core` (add `-- --quick` for a fast pass).
#![allow(missing_docs, clippy::expect_used)]

use authserver_core::{
    Authenticator, Cost, Credentials, HashPolicy, Secret, Snapshot, StoredHash, SystemClock, VerifiedCache,
    hash_password,
};
use criterion::{Criterion, criterion_group};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn setup(cost: Cost) -> (Authenticator, Arc<Snapshot>, String) {
    let phc = hash_password(&Secret::from("correct horse"), cost).expect("hash");
    let json = format!(r#"{{"alice":{{"passwordHash":"{phc}","roles":["admin"]}}}}"#);
    let snap = Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "bench").expect("store");
    let cache = VerifiedCache::new(10_000, Duration::from_secs(300), Arc::new(SystemClock));
    (Authenticator::new(cache), Arc::new(snap), phc)
}

fn benches(c: &mut Criterion) {
    let header = Credentials::new("alice", "correct horse")
        .expect("valid")
        .to_header_value();
    c.bench_function("parse_header", |b| {
        b.iter(|| Credentials::parse(black_box(header.expose().as_bytes())))
    });

    let (auth, snap, _) = setup(Cost::DEFAULT);
    let creds = Credentials::new("alice", "correct horse").expect("valid");
    auth.authenticate(&snap, creds.clone()); // fill the cache
    c.bench_function("decision_cache_hit", |b| {
        b.iter(|| auth.authenticate(black_box(&snap), black_box(creds.clone())))
    });

    let mut slow = c.benchmark_group("argon2id_m65536_t3_p1");
    slow.sample_size(10).measurement_time(Duration::from_secs(8));
    let (auth, snap, phc) = setup(Cost::DEFAULT);
    let wrong = Credentials::new("alice", "wrong").expect("valid");
    slow.bench_function("decision_cache_miss", |b| {
        b.iter(|| auth.authenticate(black_box(&snap), black_box(wrong.clone())))
    });
    let stored = StoredHash::parse(&phc, &HashPolicy::default()).expect("valid");
    let pw = Secret::from("wrong");
    slow.bench_function("bare_verify", |b| b.iter(|| stored.verify(black_box(&pw))));
    slow.finish();
}

/// Cache miss against one bare verification, interleaved pair by pair so machine noise hits
/// both alike; prints the ratio of medians (target: within 5 %).
fn miss_versus_bare() {
    let (auth, snap, phc) = setup(Cost::DEFAULT);
    let stored = StoredHash::parse(&phc, &HashPolicy::default()).expect("valid");
    let (wrong, pw) = (
        Credentials::new("alice", "wrong").expect("valid"),
        Secret::from("wrong"),
    );
    let (mut miss, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..25 {
        let t = std::time::Instant::now();
        black_box(auth.authenticate(&snap, wrong.clone()));
        miss.push(t.elapsed().as_secs_f64() * 1e3);
        let t = std::time::Instant::now();
        black_box(stored.verify(&pw));
        bare.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (m, b) = (median(&mut miss), median(&mut bare));
    println!(
        "miss_versus_bare: cache miss {m:.2} ms, bare verify {b:.2} ms, ratio {:.3} (25 interleaved pairs)",
        m / b
    );
}

criterion_group!(core, benches);

fn main() {
    core();
    miss_versus_bare();
    Criterion::default().configure_from_args().final_summary();
}
