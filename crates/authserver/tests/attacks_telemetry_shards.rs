//! Attacks on the per-thread telemetry shards (be8ffa0: `/metrics` and `/stats` add up one
//! counter set per thread) and the per-thread log buffers (977c726: `telemetry/batch.rs`).
//!
//! What the product promises (docs/api.md `/metrics`, docs/security.md "Audit trail", the
//! `batch.rs` module doc): counters are exact and monotonic, histograms are valid Prometheus
//! histograms, every answered auth request's access line (its audit event) reaches stdout, also
//! across SIGTERM, and a dropped audit event is counted in `authserver_audit_dropped_total` with
//! one warning. The per-thread log buffers were reverted after this attack (finding 3); the
//! tests hold the shared buffer to the same promises.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::Reason;
use authserver_testkit::process::Server;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authserver::telemetry::metrics::{LegacyCounts, Registry, RegulationCounters};
use authserver::telemetry::shard::Count as _;

const ALICE: &str = "Basic YWxpY2U6d29uZGVybGFuZA=="; // alice:wonderland (README)

fn users() -> std::path::PathBuf {
    authserver_testkit::authserver_dir().join("../../examples/users.json")
}

use authserver_testkit::fakes::ready_file_status as status;

/// `name{labels} value` lines of a Prometheus text page.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Each histogram's buckets are cumulative (non-decreasing, `+Inf` last) and `_count` equals
/// the `+Inf` bucket: what Prometheus requires of one scrape.
fn histogram_problems(text: &str) -> Vec<String> {
    let s = samples(text);
    let mut bad = Vec::new();
    for h in [
        "authserver_latency_seconds",
        "authserver_hash_verify_duration_seconds",
    ] {
        let buckets: Vec<f64> = s
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{h}_bucket")))
            .map(|(_, v)| *v)
            .collect();
        for w in buckets.windows(2) {
            if w[1] < w[0] {
                bad.push(format!("{h}: bucket {} after {} ({buckets:?})", w[1], w[0]));
            }
        }
        let count = s
            .iter()
            .find(|(k, _)| k == &format!("{h}_count"))
            .map(|(_, v)| *v);
        if count != buckets.last().copied() {
            bad.push(format!("{h}: _count {count:?} != +Inf {:?}", buckets.last()));
        }
    }
    bad
}

/// Finding 1 (low). The histogram a scrape renders can have its `+Inf` bucket (and `_count`)
/// below a finite bucket: `Histogram::observe` increments the bucket, then `count`;
/// `HistogramSum::of` reads a shard's buckets, then its `count`, so a scrape that reads between
/// an observation's two increments sees the bucket counted and the total not. Prometheus then
/// sees a non-cumulative histogram (`histogram_quantile` answers NaN/garbage for that
/// evaluation). Present before the shards too (one histogram had the same two increments);
/// the shard sum keeps it.
///
/// Repro: one thread observes 10 µs in a loop; another renders `/metrics` and checks that each
/// bucket is >= the one before and `_count` == `+Inf`.
#[test]
fn a_scrape_never_shows_inf_below_a_finite_bucket_while_requests_are_observed() {
    let reg = Arc::new(Registry::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (reg, stop) = (reg.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let (hot, w) = reg.hot.writer();
                    hot.latency.observe(0.000_01, w);
                    hot.auth_success.add(1, w);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut problems = Vec::new();
    let mut scrapes = 0;
    while Instant::now() < deadline && problems.is_empty() {
        let text = reg.render_prometheus(
            &status(),
            Default::default(),
            RegulationCounters::default(),
            0,
            LegacyCounts::default(),
        );
        scrapes += 1;
        problems = histogram_problems(&text);
    }
    stop.store(true, Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(problems.is_empty(), "after {scrapes} scrapes: {problems:?}");
}

/// Held: the shard sums are exact once the threads stop (more threads than shards, every
/// counter of `Hot`), and a counter never decreases between two scrapes taken while threads
/// count.
#[test]
fn shard_sums_are_exact_and_monotonic_with_more_threads_than_shards() {
    let reg = Arc::new(Registry::default());
    let threads = authserver::telemetry::shard::SHARDS * 3 + 1;
    let per = 20_000u64;
    let done = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (reg, done) = (reg.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = (0u64, 0u64, 0u64);
            let mut n = 0;
            while !done.load(Relaxed) {
                let now = (
                    reg.total(|h| &h.auth_success),
                    reg.total(|h| &h.auth_failure[Reason::WrongPassword.index()]),
                    reg.total(|h| &h.cache_hit),
                );
                assert!(
                    now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2,
                    "{last:?} -> {now:?}"
                );
                last = now;
                n += 1;
            }
            n
        })
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            let reg = &reg;
            s.spawn(move || {
                for i in 0..per {
                    let (hot, w) = reg.hot.writer();
                    if (i + t as u64).is_multiple_of(3) {
                        hot.auth_failure[Reason::WrongPassword.index()].add(1, w);
                    } else {
                        hot.auth_success.add(1, w);
                        hot.cache_hit.add(1, w);
                    }
                    hot.latency.observe(0.000_2, w);
                }
            });
        }
    });
    done.store(true, Relaxed);
    assert!(scraper.join().unwrap() > 0);
    let total = per * threads as u64;
    let ok = reg.total(|h| &h.auth_success);
    let bad = reg.total(|h| &h.auth_failure[Reason::WrongPassword.index()]);
    assert_eq!(ok + bad, total);
    assert_eq!(reg.total(|h| &h.cache_hit), ok);
    let text = reg.render_prometheus(
        &status(),
        Default::default(),
        RegulationCounters::default(),
        0,
        LegacyCounts::default(),
    );
    assert!(
        histogram_problems(&text).is_empty(),
        "{:?}",
        histogram_problems(&text)
    );
    assert!(text.contains(&format!("authserver_latency_seconds_count {total}\n")));
}

// ---- the real server -----------------------------------------------------------------------

/// One keep-alive HTTP/1.1 connection; `post` returns the status, or None if the connection
/// broke (the request then counts as unanswered).
struct Conn(BufReader<TcpStream>);

impl Conn {
    fn open(addr: &str) -> Option<Conn> {
        let s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(Conn(BufReader::new(s)))
    }

    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.0.get_mut().write_all(req.as_bytes()).ok()?;
        let mut line = String::new();
        self.0.read_line(&mut line).ok()?;
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if self.0.read_line(&mut h).ok()? == 0 {
                return None;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).ok()?;
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn get(addr: &str, path: &str) -> String {
    let mut c = Conn::open(addr).expect("connect");
    c.request("GET", path, &[]).expect("answer").1
}

fn admin_addr(s: &Server) -> String {
    s.admin.clone().expect("admin listener")
}

fn value(text: &str, name: &str) -> u64 {
    samples(text)
        .into_iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| v as u64)
}

/// Runs `clients` keep-alive clients until `stop`, each request with a unique X-Request-Id;
/// returns the ids answered (with their status).
fn load(
    addr: String,
    clients: usize,
    stop: Arc<AtomicBool>,
    tag: &'static str,
) -> Vec<std::thread::JoinHandle<Vec<(String, u16)>>> {
    (0..clients)
        .map(|c| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                let mut conn = Conn::open(&addr);
                let mut i = 0u64;
                while !stop.load(Relaxed) && i < 200_000 {
                    let Some(cn) = conn.as_mut() else { break };
                    let id = format!("{tag}{c:03}x{i:07}");
                    // Every fifth without credentials (a cheap denial: a wrong password costs an
                    // Argon2id run, minutes in a debug build under load).
                    let auth: &[(&str, &str)] = if i % 5 == 4 {
                        &[]
                    } else {
                        &[("Authorization", ALICE)]
                    };
                    let headers: Vec<(&str, &str)> = auth
                        .iter()
                        .copied()
                        .chain([("X-Request-Id", id.as_str())])
                        .collect();
                    match cn.request("POST", "/auth/validate", &headers) {
                        Some((status, _)) => answered.push((id, status)),
                        None => conn = Conn::open(&addr),
                    }
                    i += 1;
                }
                answered
            })
        })
        .collect()
}

fn access_ids(lines: &[String]) -> (HashMap<String, usize>, usize) {
    let mut ids = HashMap::new();
    let mut torn = 0;
    for l in lines {
        match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => {
                if v["message"] == "auth request" {
                    *ids.entry(v["request_id"].as_str().unwrap_or("").to_owned())
                        .or_insert(0) += 1;
                }
            }
            Err(_) => torn += 1,
        }
    }
    (ids, torn)
}

/// Held: under load from 16 connections (every fifth request without credentials), `/metrics` scraped concurrently never shows a counter going
/// down nor an invalid histogram; after the load stops, success + missing, hits + misses, the latency
/// `_count` and `/stats` `requests` equal the answers the clients got; then, SIGTERM during
/// a second load: every answered request's access line is on stdout exactly once, no line is
/// torn, and no secret (password, Authorization value, hash) is in the output.
#[test]
fn counters_are_exact_and_every_answered_request_is_logged_across_sigterm() {
    let server = Server::start(
        &users(),
        &[],
        &[("LOG_LEVEL", "info"), ("AUTHSERVER_REGULATION_ENABLED", "false")],
    );
    let addr = server.addr.clone();
    let admin = admin_addr(&server);
    let base = get(&admin, "/metrics");
    let base_ok = value(&base, "authserver_auth_success_total");
    assert_eq!(base_ok, 0);

    // Phase 1: load with concurrent scrapes.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(addr.clone(), 16, stop.clone(), "a");
    let scraper = {
        let (admin, stop) = (admin.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut prev: HashMap<String, f64> = HashMap::new();
            let mut problems = Vec::new();
            let mut n = 0;
            while !stop.load(Relaxed) {
                let text = get(&admin, "/metrics");
                n += 1;
                let cur: HashMap<String, f64> = samples(&text).into_iter().collect();
                for (k, v) in &cur {
                    let counter = k.contains("_total") || k.contains("_bucket") || k.ends_with("_count");
                    if counter && prev.get(k).is_some_and(|p| v < p) {
                        problems.push(format!("{k} went {} -> {v}", prev[k]));
                    }
                }
                prev = cur;
            }
            (n, problems)
        })
    };
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Relaxed);
    let answered: Vec<(String, u16)> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let (scrapes, problems) = scraper.join().unwrap();
    assert!(problems.is_empty(), "after {scrapes} scrapes: {problems:?}");
    let ok = answered.iter().filter(|(_, s)| *s == 200).count() as u64;
    let denied = answered.iter().filter(|(_, s)| *s == 401).count() as u64;
    assert_eq!(ok + denied, answered.len() as u64, "only 200 and 401 expected");
    assert!(answered.len() > 1000, "too little load: {}", answered.len());
    let m = get(&admin, "/metrics");
    assert_eq!(value(&m, "authserver_auth_success_total"), ok, "success total");
    assert_eq!(
        value(&m, "authserver_auth_failure_total{reason=\"missing\"}"),
        denied,
        "missing total"
    );
    assert_eq!(
        value(&m, "authserver_latency_seconds_count"),
        ok + denied,
        "latency _count"
    );
    assert_eq!(
        value(&m, "authserver_credential_cache_hit_total")
            + value(&m, "authserver_credential_cache_miss_total"),
        ok - shared(&server),
        "hits + misses = allowed requests that did not share another's verification"
    );
    assert!(histogram_problems(&m).is_empty(), "{:?}", histogram_problems(&m));
    let stats: serde_json::Value = serde_json::from_str(&get(&admin, "/stats")).unwrap();
    assert_eq!(
        stats["window"]["requests"].as_u64(),
        Some(ok + denied),
        "/stats requests"
    );

    // Phase 2: SIGTERM during load.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(addr, 16, stop.clone(), "b");
    std::thread::sleep(Duration::from_millis(1200));
    let (clean, lines) = server.terminate();
    stop.store(true, Relaxed);
    let answered2: Vec<(String, u16)> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert!(clean, "exit status after SIGTERM");
    let (ids, torn) = access_ids(&lines);
    assert_eq!(torn, 0, "non-JSON lines on stdout/stderr");
    let missing: Vec<_> = answered
        .iter()
        .chain(&answered2)
        .filter(|(id, _)| ids.get(id) != Some(&1))
        .map(|(id, _)| id.clone())
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "answered requests without exactly one access line ({} answered): {missing:?}",
        answered.len() + answered2.len()
    );
    for secret in ["wonderland", "YWxpY2U6d29uZGVybGFuZA", "$argon2id$"] {
        assert!(
            !lines.iter().any(|l| l.contains(secret)),
            "{secret} in the output"
        );
    }
}

/// Requests that shared another's verification (single flight): neither hit nor miss.
fn shared(server: &Server) -> u64 {
    server
        .lines()
        .iter()
        .filter(|l| l.contains("\"message\":\"auth request\"") && l.contains("\"cache\":\"shared\""))
        .count() as u64
}

/// Finding 2 (medium; not introduced by 977c726, which kept `let _ = out.write_all(data)`).
/// When stdout fails (full disk, `/dev/full`, EPIPE from a log shipper that went away), every
/// line, the access lines that ARE the auth audit events included, is dropped silently: the
/// server keeps answering, `authserver_audit_dropped_total` stays 0 and nothing is said on
/// stderr. docs/security.md promises that dropped audit events ("a write ... failed, the
/// stream gone") are counted in `authserver_audit_dropped_total` with one warning per burst.
///
/// Repro: `AUTHSERVER_ADMIN_LISTEN=127.0.0.1:9091 authserver serve --listen 127.0.0.1:8081
/// --users examples/users.json >/dev/full`, three `curl -u alice:wonderland -X POST
/// 127.0.0.1:8081/auth/validate` (200), then `curl 127.0.0.1:9091/metrics | grep
/// audit_dropped` shows 0 and stderr is empty.
/// The same with a reader that goes away (`authserver serve ... | head -c 300`: EPIPE): the
/// server keeps answering, 90,238 auth events lost, the counter 0, stderr empty.
#[test]
fn a_failing_stdout_is_counted_as_dropped_audit_events_and_said_once() {
    let port = |_: ()| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (main, admin) = (
        format!("127.0.0.1:{}", port(())),
        format!("127.0.0.1:{}", port(())),
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut child = Command::new(env!("CARGO_BIN_EXE_authserver"))
        .args(["serve", "--listen", &main, "--users"])
        .arg(users())
        .env("AUTHSERVER_ADMIN_LISTEN", &admin)
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (mut err, stderr) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            stderr.lock().unwrap().push_str(&s);
        })
    };
    let up =
        authserver_testkit::wait::poll_blocking(Duration::from_secs(30), Duration::from_millis(50), || {
            Conn::open(&admin).is_some()
        });
    assert!(up, "server did not start");
    for _ in 0..3 {
        let mut c = Conn::open(&main).unwrap();
        let (status, _) = c
            .request("POST", "/auth/validate", &[("Authorization", ALICE)])
            .unwrap();
        assert_eq!(status, 200, "keeps answering");
    }
    // Past the 100 ms flush.
    std::thread::sleep(Duration::from_millis(400));
    let dropped = value(&get(&admin, "/metrics"), "authserver_audit_dropped_total");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    reader.join().unwrap();
    let said = stderr.lock().unwrap().clone();
    assert!(
        dropped >= 3,
        "3 auth audit events lost to a failing stdout, authserver_audit_dropped_total = {dropped}; stderr: {said:?}"
    );
    assert!(!said.trim().is_empty(), "nothing said about the failing stdout");
}

/// Held: `/stats` window with more threads than shards (threads share a shard's seconds and
/// its rollover), every thread's samples spread over a run of seconds that crosses a minute
/// boundary (1_799_999_990 .. 1_800_000_009), summaries read concurrently: once the threads
/// stop, each second's requests/allowed/denied/hits/misses are exact, the window's totals and
/// ratios match, and a concurrent summary never shows more requests than were recorded.
/// (The process clock itself, and so a real clock step, is out of reach of these tests.)
#[test]
fn stats_window_is_exact_per_second_with_more_threads_than_shards_across_a_minute() {
    use authserver::telemetry::stats::{Sample, Window};
    let w = Arc::new(Window::default());
    let first = 1_799_999_990u64;
    let secs = 20u64;
    let threads = authserver::telemetry::shard::SHARDS * 2 + 3;
    let per_second = 300u64;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (w, done) = (w.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Relaxed) {
                let s = w.summary(first + secs - 1);
                assert!(s.requests <= per_second * secs * threads as u64);
                n += 1;
            }
            n
        })
    };
    std::thread::scope(|scope| {
        for t in 0..threads {
            let w = &w;
            scope.spawn(move || {
                for sec in 0..secs {
                    for i in 0..per_second {
                        w.record(Sample {
                            epoch: first + sec,
                            auth: true,
                            allowed: i % 4 != 0,
                            cache_hit: Some(i % 2 == 0),
                            latency_ms: 0.05 + (t as f64) * 0.01,
                            failed_user_hash: None,
                            failed_source: None,
                        });
                    }
                }
            });
        }
    });
    done.store(true, Relaxed);
    assert!(reader.join().unwrap() > 0);
    let s = w.summary(first + secs - 1);
    let n = threads as u64;
    assert_eq!(s.requests, per_second * secs * n);
    for p in s.series.iter().filter(|p| p.t >= first) {
        assert_eq!(p.requests, per_second * n, "second {}", p.t);
        assert_eq!(p.allowed, per_second * n * 3 / 4, "second {}", p.t);
        assert_eq!(p.denied, per_second * n / 4, "second {}", p.t);
        assert_eq!(p.cache_hits, per_second * n / 2, "second {}", p.t);
        assert_eq!(p.cache_misses, per_second * n / 2, "second {}", p.t);
        assert!(p.latency_ms.p99.is_some());
    }
    assert_eq!(s.success_ratio, Some(0.75));
    assert_eq!(s.cache_hit_ratio, Some(0.5));
    // 60 s later every one of those seconds has left the window.
    assert_eq!(w.summary(first + secs - 1 + 60).requests, 0);
}

/// A stdout that takes 5 ms per write (a slow log shipper, a throttled pipe).
#[derive(Clone, Default)]
struct SlowSink(Arc<Mutex<Vec<u8>>>);

impl Write for SlowSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(5));
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Finding 3 (low, new in 977c726). `batch.rs` promises "Lines of different threads may
/// interleave a buffer at a time, up to FLUSH_EVERY apart (their timestamps tell the true
/// order)". With a slow stdout, a line left in one thread's partly filled buffer is written
/// after seconds of another thread's later lines: appenders that fall behind write only the
/// full queue (`drain(false)`), and the flush thread's `drain(true)` (the only taker of partial
/// buffers) waits for the output lock behind them. Before 977c726 one shared buffer kept the
/// stream in append order. A reader that orders by arrival (`tail -F`, a shipper stamping
/// ingestion time, an audit consumer) sees a request's access line far behind later ones.
///
/// Repro: thread A appends one line at 700 ms and goes idle; three threads B append 100-byte
/// lines for 1.5 s into a sink that takes 5 ms per write (~13 MB/s); count B lines written
/// before A's line that were appended more than 100 ms after it (seen: 150 to 53,791, the
/// latest appended up to 740 ms after A's).
#[test]
fn an_idle_threads_line_is_not_written_after_lines_appended_long_after_it() {
    // Up to 5 rounds (scheduling decides who takes the output lock next).
    let seen: Vec<String> = (0..5).filter_map(|_| displaced_round()).take(1).collect();
    assert!(seen.is_empty(), "{seen:?}");
}

/// One round of the finding 3 repro: what was displaced, if anything.
fn displaced_round() -> Option<String> {
    use authserver::telemetry::batch::Batch;
    let sink = SlowSink::default();
    let batch = Batch::start(Box::new(sink.clone()));
    let t0 = Instant::now();
    let stamp = |tag: &str| format!("{tag} {:012}\n", t0.elapsed().as_micros());
    std::thread::scope(|s| {
        let b = &batch;
        s.spawn(move || {
            // Once B has fallen behind (its appends write the full queue themselves).
            std::thread::sleep(Duration::from_millis(700));
            b.append(stamp("A").as_bytes());
            // idle from here on (a worker with no more requests)
        });
        for _ in 0..3 {
            s.spawn(move || {
                while t0.elapsed() < Duration::from_millis(1500) {
                    let mut line = stamp("B");
                    line.insert_str(line.len() - 1, &" ".repeat(80));
                    b.append(line.as_bytes());
                }
            });
        }
    });
    batch.close();
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let a_at: Option<u128> = text
        .lines()
        .find(|l| l.starts_with('A'))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    let a_at = a_at.expect("A's line written");
    let before: Vec<u128> = text
        .lines()
        .take_while(|l| !l.starts_with('A'))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    let displaced = text
        .lines()
        .take_while(|l| !l.starts_with('A'))
        .filter(|l| {
            let us: u128 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
            us > a_at + 100_000
        })
        .count();
    (displaced > 0).then(|| {
        format!(
            "{displaced} lines appended more than FLUSH_EVERY after A's line (at {a_at} us) were written \
         before it, the latest appended at {:?} us",
            before.iter().max()
        )
    })
}

/// A pipe on stdout (what container runtimes, journald and Lambda's log agent give a server)
/// is enlarged to 1 MiB at start, so a 256 KiB batch goes out in one write instead of the
/// flush thread and the reader waking each other every 64 KiB (docs/performance.md).
#[test]
fn a_pipe_on_stdout_is_enlarged_to_hold_whole_batches() {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let want = authserver::telemetry::batch::PIPE_BYTES;
    assert!(max >= want, "this kernel allows pipes of {max} bytes only");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let main = l.local_addr().unwrap().to_string();
    drop(l);
    let mut child = Command::new(env!("CARGO_BIN_EXE_authserver"))
        .args(["serve", "--listen", &main, "--users"])
        .arg(users())
        .env("AUTHSERVER_ADMIN_LISTEN", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let enlarged =
        authserver_testkit::wait::poll_blocking(Duration::from_secs(30), Duration::from_millis(20), || {
            rustix::pipe::fcntl_getpipe_size(&stdout).unwrap() == want
        });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        enlarged,
        "stdout pipe still {} bytes",
        rustix::pipe::fcntl_getpipe_size(&stdout).unwrap()
    );
}

// ---- stdout a pipe: 256 KiB batches, 1 MiB pipe (e93fb2b), failed writes counted (7ffce2a) ----

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// A server with the given stdout (stderr discarded); killed on drop.
struct Piped {
    child: std::process::Child,
    main: String,
    admin: String,
}

impl Piped {
    fn start(stdout: impl Into<Stdio>) -> Piped {
        let (main, admin) = (free_addr(), free_addr());
        let child = Command::new(env!("CARGO_BIN_EXE_authserver"))
            .args(["serve", "--listen", &main, "--users"])
            .arg(users())
            .env("AUTHSERVER_ADMIN_LISTEN", &admin)
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(stdout.into())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = authserver_testkit::wait::poll_blocking(
            Duration::from_secs(30),
            Duration::from_millis(50),
            || Conn::open(&admin).is_some() && Conn::open(&main).is_some(),
        );
        assert!(up, "server did not start");
        Piped { child, main, admin }
    }

    fn term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Whether the process exited within `limit`.
    fn exits_within(&mut self, limit: Duration) -> bool {
        authserver_testkit::wait::poll_blocking(limit, Duration::from_millis(50), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        })
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clients` keep-alive clients POST /auth/validate without credentials (a cheap 401, an
/// audit event each) for `run`; a client stops at its first unanswered request (2 s timeout).
/// Returns the answered count.
fn hammer(addr: &str, clients: usize, run: Duration) -> u64 {
    let end = Instant::now() + run;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let mut n = 0u64;
                    let Some(mut c) = Conn::open(addr) else { return 0 };
                    let _ = c.0.get_ref().set_read_timeout(Some(Duration::from_secs(2)));
                    while Instant::now() < end {
                        match c.request("POST", "/auth/validate", &[]) {
                            Some((401, _)) => n += 1,
                            _ => break,
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// Reads `r` to its end: slowly (16 KiB per 100 ms, so the pipe fills) until `fast` is set.
fn slow_reader(mut r: std::io::PipeReader, fast: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut all, mut buf) = (Vec::new(), vec![0u8; 16 * 1024]);
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if !fast.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

/// (lines that are not JSON objects (first 3 of them), audit records among those that are)
fn parse_lines(out: &[u8]) -> (Vec<String>, u64, u64) {
    let (mut bad, mut n_bad, mut audit) = (Vec::new(), 0u64, 0u64);
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => audit += u64::from(v["log_type"] == "audit"),
            _ => {
                n_bad += 1;
                if bad.len() < 3 {
                    bad.push(String::from_utf8_lossy(line).chars().take(200).collect());
                }
            }
        }
    }
    (bad, n_bad, audit)
}

/// Finding 4 (medium): SIGTERM never ends the server while its stdout reader is stopped
/// (`kill -STOP` on the log shipper, a stuck journald, an unread socket): shutdown's final
/// flush blocks in write(2) with no deadline, so the process stays up (and every worker, the
/// admin port's /metrics and /healthz included, is stuck in the same write) until the reader
/// resumes or SIGKILL. docs/security.md holds shutdown to "never blocks" for a FIFO users file.
///
/// Repro: `mkfifo /tmp/f; cat /tmp/f >/dev/null & AUTHSERVER_ADMIN_LISTEN=127.0.0.1:9091
/// authserver serve --listen 127.0.0.1:8081 --users examples/users.json >/tmp/f &`,
/// `kill -STOP <cat>`, ~20k `POST /auth/validate` (requests stall once 1 MiB pipe + 16 x 256
/// KiB are full; RSS stays ~22 MB: bounded), `kill -TERM <server>`: still running 10 s later
/// (seen with the release binary; it exits 0 only after `kill -CONT <cat>`).
#[test]
fn sigterm_ends_the_server_while_its_stdout_reader_is_stopped() {
    let (r, w) = std::io::pipe().unwrap();
    let mut server = Piped::start(w);
    // Never read: the reader is stopped. The clients stall once the pipe and the pending
    // batches are full.
    let answered = hammer(&server.main, 4, Duration::from_secs(12));
    assert!(answered > 0);
    server.term();
    // The bound: the connection drain (server::DRAIN_TIMEOUT, 10 s), the runtime (1 s), the log
    // batch (batch::CLOSE_WAIT, 2 s), with room for a loaded machine.
    let exited = server.exits_within(Duration::from_secs(20));
    drop(r);
    assert!(
        exited,
        "still running 20 s after SIGTERM with a stopped stdout reader ({answered} requests answered before the stall)"
    );
}

/// Finding 5 (medium): stdout a pipe whose file description is O_NONBLOCK (shared with a
/// writer that set it: node, some supervisors; or `exec >` from such a shell) and a slow
/// reader: a batch's write_all stops at EAGAIN part-way, the written part ends mid-line and
/// the next batch is glued to it (unparseable lines), and the whole batch is counted as lost,
/// so `authserver_audit_dropped_total` plus the audit records that did arrive exceed the auth
/// requests answered.
///
/// Repro (release binary): pipe with O_NONBLOCK on the write end as stdout, reader 64 KiB per
/// 50 ms, 2 keep-alive clients POST /auth/validate for 6 s: 131,067 answered, 24,938 audit
/// lines arrived, 117 lines not JSON (`{"timestamp":"2026-12-06{"timestamp":...`),
/// dropped_total 127,601 (arrived + dropped = 152,539 > 131,067); stderr says
/// "Resource temporarily unavailable (os error 11)".
#[test]
fn a_nonblocking_stdout_pipe_keeps_lines_whole_and_counts_only_lost_records() {
    let (r, w) = std::io::pipe().unwrap();
    // O_NONBLOCK on the pipe's write side (FIONBIO sets it on the file description).
    rustix::io::ioctl_fionbio(&w, true).unwrap();
    let fast = Arc::new(AtomicBool::new(false));
    let reader = slow_reader(r, fast.clone());
    let mut server = Piped::start(w);
    let answered = hammer(&server.main, 2, Duration::from_secs(8));
    fast.store(true, Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    let dropped = value(&get(&server.admin, "/metrics"), "authserver_audit_dropped_total");
    server.term();
    assert!(server.exits_within(Duration::from_secs(15)));
    drop(server);
    let out = reader.join().unwrap();
    let (bad, n_bad, arrived) = parse_lines(&out);
    // + 2: each of the 2 clients may give up (2 s read timeout) on one request the server did
    // answer and log while the slow reader held it back (CI saw 20,516 arrived + 2 dropped for
    // 20,517 answered).
    assert!(
        n_bad == 0 && arrived + dropped <= answered + 2,
        "{answered} auth requests answered, {arrived} audit records arrived, {dropped} counted dropped, {n_bad} lines not JSON: {bad:?}"
    );
}

/// Finding 6 (low-medium): two writers on one stdout pipe (two servers under one supervisor
/// or `{ a; b; } | shipper`, or anything sharing the pipe) and a reader that falls behind:
/// a 256 KiB batch is one write(2) far above PIPE_BUF, so when the pipe is full the kernel
/// lets the other writer's bytes in mid-batch, mid-line; lines arrive torn. (Lines of at most
/// PIPE_BUF written whole, or writes split at line ends, would keep them whole.)
///
/// Repro (release binary): one pipe as stdout of two servers, reader 64 KiB per 50 ms, 2
/// clients per server for 6 s: 50,160 lines, 104 not JSON.
#[test]
#[ignore = "finding 6, a documented limitation (docs/configuration.md [log]: one writer per stdout pipe): writes split to 4 KiB would undo the 1 MiB pipe's gain"]
fn two_servers_sharing_a_stdout_pipe_keep_their_lines_whole() {
    let (r, w) = std::io::pipe().unwrap();
    let fast = Arc::new(AtomicBool::new(false));
    let reader = slow_reader(r, fast.clone());
    let mut a = Piped::start(w.try_clone().unwrap());
    let mut b = Piped::start(w);
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(|| hammer(&a.main, 2, Duration::from_secs(8)));
        let y = s.spawn(|| hammer(&b.main, 2, Duration::from_secs(8)));
        (x.join().unwrap(), y.join().unwrap())
    });
    fast.store(true, Relaxed);
    a.term();
    b.term();
    assert!(a.exits_within(Duration::from_secs(15)) && b.exits_within(Duration::from_secs(15)));
    drop((a, b));
    let out = reader.join().unwrap();
    let (bad, n_bad, arrived) = parse_lines(&out);
    assert!(
        n_bad == 0,
        "{} requests answered, {arrived} audit records whole, {n_bad} lines not JSON: {bad:?}",
        x + y
    );
}
