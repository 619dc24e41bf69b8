//! Core benchmarks: header parse, cache-hit decision, cache-miss decision vs one bare Argon2id
//! verification (the miss should cost within a few percent of the bare verification), and a
//! cache hit with 100 access rules against one without (docs/performance.md).
//!
//! Run: `cargo bench -p authserver-core` (add `-- --quick` for a fast pass).
#![allow(missing_docs, clippy::expect_used)]

use authserver_core::rules::{Identity, Policy, Request, RuleSet, host_key, normalise};
use authserver_core::{
    Authenticator, Cost, Credentials, HashPolicy, Secret, Snapshot, StoredHash, SystemClock, VerifiedCache,
    hash_password,
};
use criterion::{Criterion, criterion_group};
use std::hint::black_box;
use std::net::IpAddr;
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

/// 100 rules of every kind, the request matching none but the last (the whole list is scanned).
fn hundred_rules() -> RuleSet {
    let mut doc = String::new();
    for i in 0..99 {
        let criteria = match i % 5 {
            0 => format!("paths = [\"/area{i}\"]"),
            1 => format!("path_globs = [\"/api/v{i}/*/items/**\"]"),
            2 => format!("path_regexes = [\"/r{i}/[0-9]+(/.*)?\"]"),
            3 => format!("hosts = [\"*.h{i}.example.com\"]\npaths = [\"/x\"]"),
            _ => format!("networks = [\"10.{i}.0.0/16\"]\nmethods = [\"POST\"]"),
        };
        doc.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\n{criteria}\npolicy = \"deny\"\n"
        ));
    }
    doc.push_str("[[rule]]\nname = \"app\"\npaths = [\"/app\"]\npolicy = \"allow\"\nroles = [\"admin\"]\n");
    RuleSet::from_toml(&doc).expect("valid")
}

/// A cache hit plus what `/auth/forward` adds with rules: normalise, route, check the subject.
fn hit_with_rules(auth: &Authenticator, snap: &Arc<Snapshot>, creds: &Credentials, rules: &RuleSet) -> bool {
    let path = normalise("/app/section/../item?x=1").expect("normal");
    let host = host_key("app.example.com:443");
    let req = Request {
        method: Some("GET"),
        host: Some(&host),
        path: Some(&path),
        client: Some(IpAddr::from([198, 51, 100, 7])),
    };
    let route = rules.route(&req);
    let decision = auth.authenticate(snap, creds.clone());
    let who = Identity {
        user: "alice".into(),
        roles: match &decision.outcome {
            authserver_core::Outcome::Allowed { roles } => roles.clone(),
            authserver_core::Outcome::Denied(_) => Arc::from([]),
        },
        scopes: Arc::from([]),
    };
    matches!(route.policy, Policy::Allow(s) if s.permits(&who))
}

fn rules_benches(c: &mut Criterion) {
    let (auth, snap, _) = setup(Cost::DEFAULT);
    let creds = Credentials::new("alice", "correct horse").expect("valid");
    auth.authenticate(&snap, creds.clone());
    let rules = hundred_rules();
    assert!(
        hit_with_rules(&auth, &snap, &creds, &rules),
        "the last rule admits alice"
    );
    c.bench_function("decision_cache_hit_100_rules", |b| {
        b.iter(|| hit_with_rules(&auth, black_box(&snap), black_box(&creds), black_box(&rules)))
    });
}

/// Cache hits without and with 100 rules, interleaved in blocks of 2000 so machine noise hits
/// both alike; prints the ratio of medians.
fn rules_versus_none() {
    let (auth, snap, _) = setup(Cost::DEFAULT);
    let creds = Credentials::new("alice", "correct horse").expect("valid");
    auth.authenticate(&snap, creds.clone());
    let rules = hundred_rules();
    let (mut none, mut with) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            black_box(auth.authenticate(&snap, creds.clone()));
        }
        none.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            black_box(hit_with_rules(&auth, &snap, &creds, &rules));
        }
        with.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (n, w) = (median(&mut none), median(&mut with));
    println!(
        "rules_versus_none: cache hit {n:.3} us, with 100 rules {w:.3} us, +{:.3} us per request (40 interleaved blocks of 2000)",
        w - n
    );
}

criterion_group!(core, benches, rules_benches);

fn main() {
    core();
    miss_versus_bare();
    rules_versus_none();
    Criterion::default().configure_from_args().final_summary();
}
