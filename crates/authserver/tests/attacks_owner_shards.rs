//! Attacks on 863b65b (`telemetry/shard.rs`): a thread owns its shard while it lives and adds
//! by a plain load and store (`Writer::Owner`); threads beyond `SHARDS`, and threads recording
//! while they end, share `SHARED` shards with `fetch_add`; a thread-local `Claim` gives the
//! owned shard back when the thread ends.
//!
//! The promise: no two threads ever write one shard by load and store at the same time, so
//! every sum is exact; counters never go backwards; no shard stays claimed after its thread
//! ended. Ownership is process-wide, so every test here takes its turn (`turn()`), records only
//! from threads it joins (`JoinHandle::join` returns after the thread's locals were dropped),
//! and ends by checking that all `SHARDS` shards can be owned again.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::http::{AppState, admin_app, app};
use authserver::telemetry::shard::{Count as _, SHARDS, Sharded, Writer};
use authserver::telemetry::stats::{Sample, Window};
use authserver_testkit::users::{ALICE, ALICE_PW, basic, fixture, settings};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tower::ServiceExt;

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sum(s: &Sharded<AtomicU64>) -> u64 {
    s.iter().map(|c| c.load(Relaxed)).sum()
}

fn add(s: &Sharded<AtomicU64>) -> Writer {
    let (c, w) = s.writer();
    c.add(1, w);
    w
}

/// With no other thread of this process holding a claim, `SHARDS` threads alive at once all
/// own, each a different shard: no claim was leaked by what ran before.
fn assert_no_shard_leaked(what: &str) {
    let s: Arc<Sharded<AtomicU64>> = Arc::new(Sharded::default());
    let all = Arc::new(Barrier::new(SHARDS));
    let handles: Vec<_> = (0..SHARDS)
        .map(|_| {
            let (s, all) = (s.clone(), all.clone());
            std::thread::spawn(move || {
                let (c, w) = s.writer();
                let index = s.iter().position(|x| std::ptr::eq(x, c)).unwrap();
                all.wait();
                (index, w.is_owner())
            })
        })
        .collect();
    let mut got: Vec<(usize, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    got.sort_unstable_by_key(|g| g.0);
    let owned: Vec<usize> = got.iter().filter(|g| g.1).map(|g| g.0).collect();
    assert_eq!(
        owned,
        (0..SHARDS).collect::<Vec<_>>(),
        "after {what}: {SHARDS} live threads did not own every shard: {got:?}"
    );
}

// ---- thread churn and teardown ----------------------------------------------------------------

static CHURN: LazyLock<Sharded<AtomicU64>> = LazyLock::new(Sharded::default);

/// Adds once (and `extra` more times) when dropped; with `nested`, also makes the thread
/// register another such local from inside this destructor (a destructor registered while the
/// thread's destructors already run).
struct OnExit {
    extra: u64,
    nested: bool,
}

impl Drop for OnExit {
    fn drop(&mut self) {
        for _ in 0..=self.extra {
            add(&CHURN);
        }
        if self.nested {
            let _ = LATE.try_with(|l| {
                l.set(Some(OnExit {
                    extra: 2,
                    nested: false,
                }))
            });
        }
    }
}

thread_local! {
    static EARLY: Cell<Option<OnExit>> = const { Cell::new(None) };
    static AFTER: Cell<Option<OnExit>> = const { Cell::new(None) };
    static LATE: Cell<Option<OnExit>> = const { Cell::new(None) };
}

/// Held: four waves of 40 threads (2.5 x SHARDS), started together, most of them ending while
/// the next wave claims. Kinds of thread: a local registered before the first add (its
/// destructor runs after the claim was given back: adds shared), one registered after (runs
/// before: adds as owner), threads whose first add is in their teardown (they claim then, and
/// must give it back), and destructors that register another recording local while the
/// thread ends. Every add is counted once; afterwards all shards can be owned again.
#[test]
fn sums_are_exact_through_thread_waves_and_every_teardown_order() {
    let _turn = turn();
    let before = sum(&CHURN);
    const THREADS: u64 = 40;
    const EACH: u64 = 3_000;
    let mut expected = 0;
    for wave in 0..4u64 {
        let start = Arc::new(Barrier::new(THREADS as usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let start = start.clone();
                std::thread::spawn(move || {
                    let kind = (t + wave) % 5;
                    if kind == 0 || kind == 4 {
                        EARLY.set(Some(OnExit {
                            extra: 3,
                            nested: kind == 4,
                        }));
                    }
                    start.wait();
                    if kind != 3 {
                        for _ in 0..EACH {
                            add(&CHURN);
                        }
                    }
                    if kind == 1 || kind == 3 {
                        // kind 3: the first add of this thread is in its teardown.
                        AFTER.set(Some(OnExit {
                            extra: 5,
                            nested: kind == 3,
                        }));
                    }
                    if kind == 2 {
                        // Ends at once: the next wave's threads claim while these end.
                        return;
                    }
                    std::thread::yield_now();
                })
            })
            .collect();
        for t in 0..THREADS {
            expected += match (t + wave) % 5 {
                0 => EACH + 4,
                1 => EACH + 6,
                2 => EACH,
                3 => 6 + 3,
                _ => EACH + 4 + 3,
            };
        }
        // Join half the wave now, leave the other half ending while the next starts.
        for h in handles {
            h.join().unwrap();
        }
    }
    assert_eq!(sum(&CHURN) - before, expected);
    assert_no_shard_leaked("thread waves");
}

/// Held: waves overlap. 24 long-lived recorders run while 200 short threads (8 at a time)
/// come and go, each adding 500 times; a reader loads the sum meanwhile and it never goes
/// down; the total is exact.
#[test]
fn overlapping_short_threads_and_owners_never_lose_an_add_and_never_go_back() {
    let _turn = turn();
    let s: Arc<Sharded<AtomicU64>> = Arc::new(Sharded::default());
    let stop = Arc::new(AtomicBool::new(false));
    let long: Vec<_> = (0..24)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Relaxed) && n < 2_000_000 {
                    add(&s);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let reader = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut prev, mut reads) = (0, 0u64);
            while !stop.load(Relaxed) {
                let now = sum(&s);
                assert!(now >= prev, "the sum went from {prev} to {now}");
                prev = now;
                reads += 1;
            }
            reads
        })
    };
    let mut short_total = 0;
    for _ in 0..25 {
        let batch: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        add(&s);
                    }
                })
            })
            .collect();
        for h in batch {
            h.join().unwrap();
            short_total += 500;
        }
    }
    stop.store(true, Relaxed);
    let long_total: u64 = long.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reader.join().unwrap() > 0);
    assert_eq!(sum(&s), long_total + short_total);
    assert_no_shard_leaked("overlapping waves");
}

// ---- tokio runtimes through the public API --------------------------------------------------

async fn auth(state: &Arc<AppState>, value: Option<&str>) -> StatusCode {
    let mut req = Request::post("/auth/validate");
    if let Some(v) = value {
        req = req.header(header::AUTHORIZATION, v);
    }
    app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

async fn admin_get(state: &Arc<AppState>, path: &str) -> String {
    let req = Request::get(path).header("host", "127.0.0.1:9090");
    let res = admin_app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0.0) as u64
}

/// Requests of three kinds (alice right: cache hits after the first; alice with a password
/// of its own: an Argon2id run on a blocking thread, 401; no credentials: 401 at once), run on
/// `rt`; returns the statuses counted and the final /metrics and /stats.
fn drive(
    rt: &tokio::runtime::Runtime,
    requests: usize,
) -> (HashMap<u16, u64>, HashMap<String, f64>, serde_json::Value) {
    let f = fixture();
    let mut s = settings(&f.users);
    s.regulation.policy.enabled = false;
    let _in_rt = rt.enter();
    let state = Arc::new(Arc::into_inner(authserver::wiring::build(s).unwrap().state).unwrap());
    let good = basic(ALICE, ALICE_PW);
    let statuses = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..requests {
            let (state, good) = (state.clone(), good.clone());
            tasks.spawn(async move {
                let value = match i % 10 {
                    3 => Some(basic(ALICE, &format!("wrong-{i}"))),
                    7 => None,
                    _ => Some(good),
                };
                auth(&state, value.as_deref()).await.as_u16()
            });
            if i % 40 == 39 {
                // Let the blocking threads idle out between bursts (keep-alive is short).
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        let mut statuses: HashMap<u16, u64> = HashMap::new();
        while let Some(s) = tasks.join_next().await {
            *statuses.entry(s.unwrap()).or_default() += 1;
        }
        statuses
    });
    // Scrape from a fresh blocking thread of the runtime's pool too.
    let (m, st) = rt.block_on(async {
        let m = samples(&admin_get(&state, "/metrics").await);
        let st: serde_json::Value = serde_json::from_str(&admin_get(&state, "/stats").await).unwrap();
        (m, st)
    });
    (statuses, m, st)
}

fn check(
    what: &str,
    statuses: &HashMap<u16, u64>,
    m: &HashMap<String, f64>,
    st: &serde_json::Value,
    requests: u64,
) {
    let ok = statuses.get(&200).copied().unwrap_or(0);
    let denied = statuses.get(&401).copied().unwrap_or(0);
    assert_eq!(ok + denied, requests, "{what}: {statuses:?}");
    assert_eq!(value(m, "authserver_auth_success_total"), ok, "{what}");
    let failures: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("authserver_auth_failure_total"))
        .map(|(_, v)| *v as u64)
        .sum();
    assert_eq!(failures, denied, "{what}: {m:?}");
    assert_eq!(
        value(m, "authserver_auth_failure_total{reason=\"wrong_password\"}"),
        requests / 10,
        "{what}"
    );
    assert_eq!(value(m, "authserver_latency_seconds_count"), requests, "{what}");
    assert_eq!(
        value(m, "authserver_latency_seconds_bucket{le=\"+Inf\"}"),
        requests,
        "{what}"
    );
    assert_eq!(
        value(m, "authserver_hash_verify_duration_seconds_count"),
        value(m, "authserver_credential_cache_miss_total"),
        "{what}: one verification timed per miss"
    );
    assert!(
        value(m, "authserver_credential_cache_miss_total") >= requests / 10,
        "{what}: each wrong password is a miss"
    );
    assert!(
        value(m, "authserver_credential_cache_hit_total")
            + value(m, "authserver_credential_cache_miss_total")
            <= ok + requests / 10,
        "{what}"
    );
    assert_eq!(
        st["window"]["requests"].as_u64(),
        Some(requests),
        "{what}: /stats {st}"
    );
}

/// Held: a multi-thread runtime of 20 workers (more than SHARDS: four share) and a blocking
/// pool whose threads idle out after 2 ms (Argon2id runs come and go on new threads), 600
/// requests: /metrics and /stats count each exactly once; all shards free afterwards.
#[test]
fn a_multi_thread_runtime_with_churning_blocking_threads_counts_exactly() {
    let _turn = turn();
    // On a thread of its own: `block_on` runs the top future (and its requests) on the
    // calling thread, which then holds a claim until it ends.
    let (statuses, m, st) = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(20)
            .max_blocking_threads(24)
            .thread_keep_alive(Duration::from_millis(2))
            .enable_all()
            .build()
            .unwrap();
        drive(&rt, 600)
    })
    .join()
    .unwrap();
    check("multi-thread", &statuses, &m, &st, 600);
    assert_no_shard_leaked("a multi-thread runtime");
}

/// Held: the same on a current-thread runtime (one recorder, blocking threads for Argon2id).
#[test]
fn a_current_thread_runtime_with_churning_blocking_threads_counts_exactly() {
    let _turn = turn();
    let (statuses, m, st) = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(6)
            .thread_keep_alive(Duration::from_millis(2))
            .enable_all()
            .build()
            .unwrap();
        drive(&rt, 400)
    })
    .join()
    .unwrap();
    check("current-thread", &statuses, &m, &st, 400);
    assert_no_shard_leaked("a current-thread runtime");
}

// ---- the /stats window --------------------------------------------------------------------

fn sample(epoch: u64, allowed: bool) -> Sample<'static> {
    Sample {
        epoch,
        auth: true,
        allowed,
        cache_hit: Some(allowed),
        latency_ms: 0.5,
        failed_user_hash: None,
        failed_source: None,
    }
}

/// Held: 24 threads (16 owners, 8 sharing 4 shards) record seconds E..E+5 in step (a barrier
/// at each second, so every thread's slot rolls over while the others record the new second),
/// some threads ending after each second and new ones taking their shards; the window then
/// holds exactly what each second got, and the series never shrinks between two reads
/// within one second.
#[test]
fn the_stats_window_counts_each_second_exactly_across_rollovers_and_churn() {
    let _turn = turn();
    let window = Arc::new(Window::default());
    let e = 2_000_000_000u64;
    const SECONDS: u64 = 6;
    const EACH: u64 = 700;
    let mut per_second = vec![0u64; SECONDS as usize];
    let mut allowed = vec![0u64; SECONDS as usize];
    for sec in 0..SECONDS {
        // Each second: 24 threads; half of them new (the others ended after the last second).
        let start = Arc::new(Barrier::new(25));
        let handles: Vec<_> = (0..24u64)
            .map(|t| {
                let (window, start) = (window.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..EACH {
                        window.record(sample(e + sec, (i + t) % 3 != 0));
                    }
                })
            })
            .collect();
        start.wait();
        let mut prev = 0;
        for _ in 0..200 {
            let now = window.summary(e + sec).series.last().unwrap().requests;
            assert!(now >= prev, "second {sec}: {prev} -> {now}");
            prev = now;
        }
        for h in handles {
            h.join().unwrap();
        }
        per_second[sec as usize] = 24 * EACH;
        allowed[sec as usize] = (0..24u64)
            .map(|t| (0..EACH).filter(|i| (i + t) % 3 != 0).count() as u64)
            .sum();
    }
    let summary = window.summary(e + SECONDS - 1);
    let tail: Vec<_> = summary.series.iter().rev().take(SECONDS as usize).rev().collect();
    for (i, p) in tail.iter().enumerate() {
        assert_eq!(p.t, e + i as u64);
        assert_eq!(p.requests, per_second[i], "second {i}: {p:?}");
        assert_eq!(p.allowed, allowed[i], "second {i}: {p:?}");
        assert_eq!(p.denied, per_second[i] - allowed[i], "second {i}: {p:?}");
        assert_eq!(p.cache_hits, allowed[i], "second {i}");
        assert_eq!(p.cache_misses, per_second[i] - allowed[i], "second {i}");
    }
    assert_eq!(summary.requests, per_second.iter().sum::<u64>());
    assert_no_shard_leaked("the stats window");
}

/// Held: the same long-lived threads (owners and sharers) cross second boundaries without a
/// barrier: each records 4 000 samples whose second advances every 500 (its own pace), and
/// ends with its slot for second E+7 still current. Seconds E..E+7 add up to every sample.
#[test]
fn the_stats_window_is_exact_when_threads_roll_seconds_over_at_their_own_pace() {
    let _turn = turn();
    let window = Arc::new(Window::default());
    let e = 2_100_000_000u64;
    let handles: Vec<_> = (0..22u64)
        .map(|_| {
            let window = window.clone();
            std::thread::spawn(move || {
                for i in 0..4_000u64 {
                    window.record(sample(e + i / 500, i % 2 == 0));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = window.summary(e + 7);
    let tail: Vec<_> = s.series.iter().rev().take(8).rev().collect();
    for (i, p) in tail.iter().enumerate() {
        assert_eq!(p.t, e + i as u64);
        assert_eq!(
            (p.requests, p.allowed, p.denied),
            (22 * 500, 22 * 250, 22 * 250),
            "second {i}"
        );
    }
    assert_no_shard_leaked("the stats window at threads' own pace");
}

// ---- /metrics histograms while owners write -----------------------------------------------

/// Held: 20 writers (owners and sharers) observe into the latency histogram while a scraper
/// renders /metrics: no series ever goes down, buckets are cumulative in every scrape; after
/// the writers stop `_count` == `+Inf` == the observations made.
#[test]
fn histograms_stay_monotonic_and_end_exact_while_owners_observe() {
    let _turn = turn();
    let reg = Arc::new(authserver::telemetry::metrics::Registry::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..20u64)
        .map(|t| {
            let (reg, stop) = (reg.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Relaxed) && n < 300_000 {
                    let (hot, w) = reg.hot.writer();
                    hot.latency
                        .observe([0.000_01, 0.003, 0.2, 7.0][((n + t) % 4) as usize], w);
                    hot.auth_success.add(1, w);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let render = |reg: &authserver::telemetry::metrics::Registry| {
        samples(&reg.render_prometheus(
            &authserver_testkit::fakes::ready_file_status(),
            Default::default(),
            Default::default(),
            0,
            Default::default(),
        ))
    };
    let mut prev: HashMap<String, f64> = HashMap::new();
    let mut problems = Vec::new();
    for _ in 0..300 {
        let cur = render(&reg);
        for (k, v) in &cur {
            if k.starts_with("authserver_latency_seconds")
                && !k.ends_with("_sum")
                && prev.get(k).is_some_and(|p| v < p)
            {
                problems.push(format!("{k}: {} -> {v}", prev[k]));
            }
        }
        let mut buckets: Vec<(f64, f64)> = cur
            .iter()
            .filter_map(|(k, v)| {
                let le = k
                    .strip_prefix("authserver_latency_seconds_bucket{le=\"")?
                    .strip_suffix("\"}")?;
                Some((le.parse::<f64>().unwrap_or(f64::INFINITY), *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            problems.push(format!("not cumulative: {buckets:?}"));
        }
        prev = cur;
        if problems.len() > 5 {
            break;
        }
    }
    stop.store(true, Relaxed);
    let n: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(problems.is_empty(), "{problems:?}");
    let end = render(&reg);
    assert_eq!(value(&end, "authserver_latency_seconds_count"), n);
    assert_eq!(value(&end, "authserver_latency_seconds_bucket{le=\"+Inf\"}"), n);
    assert_eq!(value(&end, "authserver_auth_success_total"), n);
    assert_no_shard_leaked("histogram writers");
}

// ---- findings -------------------------------------------------------------------------------

/// Finding 1 (low, latent API hazard; fixed). The owner's right to add by load and store was a
/// `Copy + Send` value: a future holding `let (hot, w) = reg.hot.writer();` across an `.await`
/// was `Send`, ran under `tokio::spawn`, and resumed on another worker while the first worker's
/// other tasks wrote the same shard as its owner: 295 of 800,000 adds lost. `Writer` is now
/// neither `Send` nor `Sync` and only `Sharded::writer` makes an owner's: that future no longer
/// compiles (a compile-time check in `telemetry/shard.rs` keeps `Writer` from becoming `Send`).
/// What stays: tasks that move between workers at every `.await` and take the writer where
/// they add lose nothing.
#[test]
fn tasks_moving_between_workers_lose_no_adds() {
    let _turn = turn();
    let reg = Arc::new(authserver::telemetry::metrics::Registry::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    const TASKS: u64 = 4;
    const EACH: u64 = 200_000;
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let reg = reg.clone();
            set.spawn(async move {
                for i in 0..EACH {
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                    let (hot, w) = reg.hot.writer();
                    hot.auth_success.add(1, w);
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    drop(rt);
    assert_eq!(reg.total(|h| &h.auth_success), TASKS * EACH);
}
