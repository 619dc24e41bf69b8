//! Attacks on b4ebdab (the access line's head as one constant per kind of line, IPv4 octets and
//! the status from tables, the timestamp's second cached per thread in a `Cell` and its
//! fraction written by digit pairs, `EndClock` kept as a distance from the epoch, the counter
//! shard index a const `Cell`): the bytes must be the ones written before.
//!
//! In-process tests use the crate's public API (`audit::time_into`, `audit::epoch_time_into`,
//! `telemetry::EndClock`, `telemetry::shard::Sharded`) against oracles written here (a civil
//! calendar of their own, not the `time` crate the code uses). Black-box tests run the debug
//! `authserver` and rebuild each expected line byte for byte from the request's known facts.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::audit::{epoch_time_into, time_into};
use authserver::telemetry::EndClock;
use authserver::telemetry::shard::{SHARDS, Sharded};
use authserver_testkit::process::Server;
use authserver_testkit::users::{ALICE, ALICE_PW, basic, fixture};
use serde_json::Value;
use std::io::{BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Oracles and helpers
// ---------------------------------------------------------------------------------------------

/// `YYYY-MM-DDTHH:MM:SS.fffffffffZ` of `since` after the epoch (Howard Hinnant's
/// civil-from-days), for years up to 9999; later ones are the epoch (as `time` without
/// `large-dates` refuses them and the writer falls back to the epoch).
fn oracle(since: Duration) -> String {
    let secs = since.as_secs();
    let secs = if secs > 253_402_300_799 { 0 } else { secs };
    let nanos = since.subsec_nanos();
    let days = i64::try_from(secs / 86_400).unwrap();
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Nanoseconds since the epoch of a line's `YYYY-MM-DDTHH:MM:SS.fffffffffZ` (panics on any
/// other form: exactly nine fraction digits and a `Z`).
fn epoch_nanos(ts: &str) -> u128 {
    let b = ts.as_bytes();
    assert_eq!(b.len(), 30, "{ts}");
    for (i, c) in b.iter().enumerate() {
        let want = match i {
            4 | 7 => Some(b'-'),
            10 => Some(b'T'),
            13 | 16 => Some(b':'),
            19 => Some(b'.'),
            29 => Some(b'Z'),
            _ => None,
        };
        match want {
            Some(w) => assert_eq!(*c, w, "{ts}"),
            None => assert!(c.is_ascii_digit(), "{ts}"),
        }
    }
    let secs = u128::from(authserver_testkit::logs::epoch_second(ts));
    secs * 1_000_000_000 + ts[20..29].parse::<u128>().unwrap()
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

use authserver_testkit::wire::exchange;

fn connect(addr: &str) -> BufReader<TcpStream> {
    authserver_testkit::wire::connect(addr, Duration::from_secs(30))
}

/// One request on a fresh connection (closed after it): the status.
fn once(addr: &str, request: &str) -> u16 {
    exchange(&mut connect(addr), request.as_bytes())
        .map(|(s, _)| s)
        .unwrap_or(0)
}

/// The access lines (raw text) of `lines` whose `request_id` is `id`.
fn access_of<'a>(lines: &'a [String], id: &str) -> Vec<&'a str> {
    let key = format!("\"request_id\":\"{id}\"");
    lines
        .iter()
        .filter(|l| l.contains("\"target\":\"authserver::access\"") && l.contains(&key))
        .map(String::as_str)
        .collect()
}

/// What a line must be, but for its timestamp, `user_hash`, `verify_ms` and `latency_ms`
/// (taken from the line itself and checked for their form): the rest is rebuilt from the
/// request's facts, in the documented field order, so any byte the renderer gets wrong shows.
#[derive(Default)]
struct Want<'a> {
    auth: bool,
    id: &'a str,
    method: &'a str,
    route: &'a str,
    status: u16,
    outcome: Option<&'a str>,
    reason: Option<&'a str>,
    hashed: bool,
    source: Option<String>,
    cache: Option<&'a str>,
    verified: bool,
    rule: Option<&'a str>,
}

fn check_line(line: &str, w: &Want<'_>) {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let ts = v["timestamp"].as_str().unwrap();
    epoch_nanos(ts);
    let mut s = format!(
        "{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"message\":\"{}\",\"target\":\"authserver::access\",",
        if w.auth { "auth request" } else { "request" }
    );
    if w.auth {
        s.push_str("\"log_type\":\"audit\",\"event\":\"auth_attempt\",");
    }
    s.push_str(&format!(
        "\"request_id\":\"{}\",\"method\":\"{}\",\"route\":\"{}\",\"status\":{}",
        w.id, w.method, w.route, w.status
    ));
    if let Some(o) = w.outcome {
        s.push_str(&format!(",\"outcome\":\"{o}\""));
    }
    if let Some(r) = w.reason {
        s.push_str(&format!(",\"reason\":\"{r}\""));
    }
    if w.hashed {
        let h = v["user_hash"].as_str().expect("a user_hash");
        assert!(
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        s.push_str(&format!(",\"user_hash\":\"{h}\""));
    }
    if let Some(src) = &w.source {
        s.push_str(&format!(",\"source\":\"{src}\""));
    }
    if let Some(c) = w.cache {
        s.push_str(&format!(",\"cache\":\"{c}\""));
    }
    let raw = |name: &str| {
        let key = format!("\"{name}\":");
        let at = line.find(&key).unwrap_or_else(|| panic!("no {name}: {line}")) + key.len();
        let rest = &line[at..];
        let n = &rest[..rest.find([',', '}']).unwrap()];
        let (int, frac) = n.split_once('.').unwrap_or_else(|| panic!("{name}: {line}"));
        assert!(
            !int.is_empty() && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) && frac.len() == 3,
            "{name}: {line}"
        );
        n.to_owned()
    };
    if w.verified {
        s.push_str(&format!(",\"verify_ms\":{}", raw("verify_ms")));
    }
    if let Some(r) = w.rule {
        s.push_str(&format!(",\"rule\":\"{r}\""));
    }
    s.push_str(&format!(",\"latency_ms\":{}}}", raw("latency_ms")));
    assert_eq!(line, s, "the line's bytes");
}

// ---------------------------------------------------------------------------------------------
// In-process: the timestamp writer
// ---------------------------------------------------------------------------------------------

/// `time_into`/`epoch_time_into` against an independent calendar: every fraction digit
/// position with every digit, random seconds from 1970 to 9999 and beyond, in patterns that
/// hit and miss the per-thread second cache (same second, A-B-A-B, going backwards, one
/// second on, a failed format between two equal seconds), on 12 threads at once.
#[test]
fn timestamps_equal_an_independent_calendar_on_many_threads() {
    let checked = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..12u64 {
            let checked = &checked;
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut times = Vec::new();
                // Every digit at every fraction position, around a fixed second.
                for pos in 0..9u32 {
                    for digit in 0..10u32 {
                        let nanos = digit * 10u32.pow(pos);
                        times.push(Duration::new(1_765_000_000 + u64::from(digit % 2), nanos));
                        times.push(Duration::new(1_765_000_000, 999_999_999 - nanos));
                    }
                }
                let far = 253_402_300_800u64; // 10000-01-01: past `time`'s range
                for _ in 0..4000 {
                    let secs = match rng.next() % 6 {
                        0 => rng.next() % 253_402_300_800,
                        1 => 1_700_000_000 + rng.next() % 200_000_000,
                        2 => far + rng.next() % 1000,
                        3 => 253_402_300_799,
                        4 => rng.next() % 100,
                        _ => u64::MAX - rng.next() % 3,
                    };
                    let nanos = u32::try_from(rng.next() % 1_000_000_000).unwrap();
                    let a = Duration::new(secs, nanos);
                    let b = Duration::new(secs.wrapping_add(1) % far, nanos / 7);
                    // Same second, the next, back, a far one between two equal ones.
                    times.extend([a, a, b, a, b, b, Duration::new(far, 5), a, Duration::new(secs, 0)]);
                }
                for since in times {
                    let mut out = b"x".to_vec();
                    epoch_time_into(&mut out, since);
                    assert_eq!(
                        std::str::from_utf8(&out[1..]).unwrap(),
                        oracle(since),
                        "{since:?}"
                    );
                    if since.as_secs() < 1 << 40 {
                        let mut out2 = Vec::new();
                        time_into(&mut out2, UNIX_EPOCH + since);
                        assert_eq!(out[1..], out2[..], "{since:?}");
                    }
                    checked.fetch_add(1, Relaxed);
                }
                // Before the epoch: the epoch, whatever the cache holds.
                let mut out = Vec::new();
                time_into(&mut out, UNIX_EPOCH - Duration::new(3, 5));
                assert_eq!(out, b"1970-01-01T00:00:00.000000000Z");
            });
        }
    });
    assert!(checked.load(Relaxed) > 12 * 36_000);
}

/// `EndClock`: a time given is the time kept, to the nanosecond, by `now`, `since_epoch` and
/// `epoch_secs`, and the line's timestamp of it is that time.
#[test]
fn the_end_clock_keeps_the_time_it_was_given() {
    let mut rng = Rng(77);
    for _ in 0..10_000 {
        let since = Duration::new(
            rng.next() % (1 << 36),
            u32::try_from(rng.next() % 1_000_000_000).unwrap(),
        );
        let at = UNIX_EPOCH + since;
        let end = EndClock::at(at);
        assert_eq!(end.now(), at);
        assert_eq!(end.since_epoch(), since);
        assert_eq!(end.epoch_secs(), since.as_secs());
        let mut out = Vec::new();
        epoch_time_into(&mut out, end.since_epoch());
        assert_eq!(String::from_utf8(out).unwrap(), oracle(since));
    }
    // Read once: a clock read by the first call is the same at every later call.
    let end = EndClock::default();
    let first = end.since_epoch();
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(end.since_epoch(), first);
    assert_eq!(end.now(), UNIX_EPOCH + first);
}

/// Finding 1 (fixed): b4ebdab kept only the distance from the epoch, so `EndClock::at(t).now()`
/// came back as the epoch for a `t` before it (a broken clock); no output changed (the line and
/// `/stats` were zero-based before too), the public API did. The clock keeps both now.
#[test]
fn the_end_clock_keeps_a_time_before_the_epoch() {
    let at = UNIX_EPOCH - Duration::new(5, 7);
    let end = EndClock::at(at);
    assert_eq!(end.epoch_secs(), 0);
    assert_eq!(end.now(), at);
}

// ---------------------------------------------------------------------------------------------
// In-process: the shard index
// ---------------------------------------------------------------------------------------------

/// The shard tests take turns: the index is given round robin from one process-wide counter.
static SHARD_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

static COUNTS: std::sync::LazyLock<Sharded<AtomicU64>> = std::sync::LazyLock::new(Sharded::default);

struct RecordsOnExit;

impl Drop for RecordsOnExit {
    fn drop(&mut self) {
        COUNTS.local().fetch_add(1, Relaxed);
    }
}

thread_local! {
    static ON_EXIT: RecordsOnExit = const { RecordsOnExit };
}

/// 40 threads (five times the shards) record 5 000 increments each, and each records once
/// more from a thread-local destructor while it tears down (a thread whose first use of the
/// index is there, too): the sum of the shards is every increment.
#[test]
fn sharded_counts_are_exact_with_many_threads_and_from_thread_teardown() {
    const THREADS: u64 = 40;
    const EACH: u64 = 5_000;
    let _turn = SHARD_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let before: u64 = COUNTS.iter().map(|c| c.load(Relaxed)).sum();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                ON_EXIT.with(|_| ());
                // Half the threads use the index first in their teardown.
                if t % 2 == 0 {
                    for _ in 0..EACH {
                        COUNTS.local().fetch_add(1, Relaxed);
                    }
                } else {
                    for _ in 0..EACH {
                        COUNTS.iter().next().unwrap().fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let after: u64 = COUNTS.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(after - before, THREADS * EACH + THREADS);
}

/// Up to `SHARDS` threads that take their index one after the other never share a shard
/// (the module's promise), and a thread keeps its shard across calls.
#[test]
fn shards_threads_in_turn_get_distinct_shards() {
    let _turn = SHARD_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let set: Sharded<AtomicU64> = Sharded::default();
    let base = set.iter().next().unwrap() as *const AtomicU64 as usize;
    let stride = std::mem::size_of::<AtomicU64>().max(128);
    let gate = std::sync::Mutex::new(());
    let barrier = std::sync::Barrier::new(SHARDS);
    let indices: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SHARDS)
            .map(|_| {
                scope.spawn(|| {
                    let index = {
                        let _turn = gate.lock().unwrap();
                        (set.local() as *const AtomicU64 as usize - base) / stride
                    };
                    barrier.wait();
                    for _ in 0..100 {
                        assert_eq!((set.local() as *const AtomicU64 as usize - base) / stride, index);
                    }
                    index
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), SHARDS, "{indices:?}");
    assert!(indices.iter().all(|i| *i < SHARDS), "{indices:?}");
}

// ---------------------------------------------------------------------------------------------
// Black box: the debug binary's lines
// ---------------------------------------------------------------------------------------------

/// Sources of every octet width (1-3 digits in every position, 0 and 255, random ones),
/// IPv6, IPv4-mapped IPv6 and odd `X-Forwarded-For` forms through a trusted proxy: each
/// address's cache-hit line (200), missing-credentials line (401) and `/health` line are the
/// bytes rebuilt from the facts, the source as `Display` writes the parsed address.
#[test]
fn lines_are_byte_exact_for_every_address_form() {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let auth = basic(ALICE, ALICE_PW);
    let mut forwarded: Vec<(String, Option<String>)> = Vec::new();
    let widths = [7u8, 42, 199, 0, 255, 10, 100, 9, 99];
    for a in widths {
        for b in [0u8, 9, 10, 99, 100, 255] {
            let ip = Ipv4Addr::new(a, b, b.wrapping_mul(3), a ^ b);
            forwarded.push((ip.to_string(), Some(ip.to_string())));
        }
    }
    let mut rng = Rng(5);
    for _ in 0..40 {
        let ip = Ipv4Addr::from(u32::try_from(rng.next() >> 32).unwrap());
        forwarded.push((ip.to_string(), Some(ip.to_string())));
    }
    for (header, want) in [
        ("255.255.255.255", Some("255.255.255.255")),
        ("0.0.0.0", Some("0.0.0.0")),
        ("1.22.133.4", Some("1.22.133.4")),
        ("2001:db8::ff00:42:8329", Some("2001:db8::ff00:42:8329")),
        // IPv4-mapped: the proxy list reads the IPv4 address inside.
        ("::ffff:1.2.3.4", Some("1.2.3.4")),
        ("::ffff:0.0.0.0", Some("0.0.0.0")),
        ("255.255.255.255, 127.0.0.1", Some("255.255.255.255")),
        ("::", Some("::")),
        ("[2001:db8::2]:443", Some("2001:db8::2")),
        ("1.2.3.4:80", Some("1.2.3.4")),
        ("8.8.8.8, 9.9.9.9", Some("9.9.9.9")),
        ("fe80::1%eth0", None),
        ("001.002.003.004", None),
        ("garbage", None),
    ] {
        forwarded.push((header.to_owned(), want.map(str::to_owned)));
    }
    // Prime the cache: the lines below are all hits.
    assert_eq!(
        once(
            &server.addr,
            &format!(
                "POST /auth/validate HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Length: 0\r\n\r\n"
            )
        ),
        200
    );
    let mut conn = connect(&server.addr);
    for (i, (xff, _)) in forwarded.iter().enumerate() {
        for (kind, method, path, creds) in [
            ("ok", "POST", "/auth/validate", true),
            ("none", "POST", "/auth/validate", false),
            ("h", "GET", "/health", false),
        ] {
            let creds = if creds {
                format!("Authorization: {auth}\r\n")
            } else {
                String::new()
            };
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: a{i}-{kind}\r\n\
                 X-Forwarded-For: {xff}\r\n{creds}Content-Length: 0\r\n\r\n"
            );
            exchange(&mut conn, request.as_bytes()).expect("answered");
        }
    }
    drop(conn);
    std::thread::sleep(Duration::from_millis(300));
    let (_, lines) = server.terminate();
    let mut compared = 0;
    for (i, (xff, want)) in forwarded.iter().enumerate() {
        // A form the proxy list cannot read: no source at all.
        let source = want.clone();
        if let Some(w) = want {
            let parsed: IpAddr = w.parse().unwrap();
            assert_eq!(parsed.to_string(), *w, "{xff}");
        }
        for (kind, w) in [
            (
                "ok",
                Want {
                    auth: true,
                    method: "POST",
                    route: "/auth/validate",
                    status: 200,
                    outcome: Some("allowed"),
                    hashed: true,
                    source: source.clone(),
                    cache: Some("hit"),
                    ..Want::default()
                },
            ),
            (
                "none",
                Want {
                    auth: true,
                    method: "POST",
                    route: "/auth/validate",
                    status: 401,
                    outcome: Some("denied"),
                    reason: Some("missing"),
                    source: source.clone(),
                    cache: Some("none"),
                    ..Want::default()
                },
            ),
            (
                "h",
                Want {
                    method: "GET",
                    route: "/health",
                    status: 200,
                    ..Want::default()
                },
            ),
        ] {
            let id = format!("a{i}-{kind}");
            let of = access_of(&lines, &id);
            assert_eq!(of.len(), 1, "{id} ({xff}): {of:?}");
            check_line(of[0], &Want { id: &id, ..w });
            compared += 1;
        }
    }
    assert_eq!(compared, forwarded.len() * 3);
}

/// Every status the server answers with (200, 400, 401, 403, 404, 405, 413, 429, 499, 503),
/// with access rules, `/auth/forward` and its `X-Forwarded-*` headers: each line's bytes are
/// the ones rebuilt from its facts, its status the one the client got (499: the client left
/// during the verification). No output line holds the password, an `Authorization` value or
/// any part of the users file's hashes.
#[test]
fn every_status_is_written_as_answered_and_no_secret_leaks() {
    let users = authserver_testkit::authserver_dir().join("../../examples/users.json");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"health\"\npaths = [\"/healthz\"]\nmethods = [\"GET\"]\npolicy = \"bypass\"\n\n\
         [[rule]]\nname = \"closed\"\npaths = [\"/closed\"]\npolicy = \"deny\"\n\n\
         [[rule]]\nname = \"signed-in\"\npolicy = \"allow\"\n",
    )
    .unwrap();
    let server = Server::start(
        &users,
        &[],
        &[
            ("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTHSERVER_RULES_FILE", rules.to_str().unwrap()),
            ("AUTHSERVER_REGULATION_MAX_USER_FAILURES", "2"),
            ("AUTHSERVER_SERVER_MAX_BODY_BYTES", "64"),
            ("AUTHSERVER_HASH_MAX_CONCURRENT", "1"),
            ("AUTHSERVER_HASH_MAX_QUEUE", "1"),
            ("AUTHSERVER_HASH_QUEUE_TIMEOUT_MS", "50"),
        ],
    );
    let alice = "Basic YWxpY2U6d29uZGVybGFuZA=="; // alice:wonderland
    let carol_bad = basic("carol", "not-hers");
    let bob = basic("bob", "whatever-bob");
    let addr = server.addr.clone();
    let req = |id: &str, method: &str, path: &str, headers: &str, body: &str| {
        once(
            &addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n{headers}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let a = format!("Authorization: {alice}\r\n");
    let mut got = Vec::new();
    got.push(("s200", req("s200", "POST", "/auth/validate", &a, "")));
    got.push(("s200hit", req("s200hit", "POST", "/auth/validate", &a, "")));
    got.push((
        "s400",
        req(
            "s400",
            "POST",
            "/auth/validate",
            "Authorization: Basic !!!\r\n",
            "",
        ),
    ));
    got.push(("s401", req("s401", "POST", "/auth/validate", "", "")));
    got.push((
        "s401b",
        req(
            "s401b",
            "POST",
            "/auth/validate",
            &format!("Authorization: {bob}\r\n"),
            "",
        ),
    ));
    got.push(("s404", req("s404", "GET", "/no/such", "", "")));
    got.push(("s405", req("s405", "GET", "/auth/validate", &a, "")));
    got.push((
        "s413",
        req("s413", "POST", "/auth/validate", &a, &"x".repeat(500)),
    ));
    let fwd = |m: &str, uri: &str| {
        format!(
            "X-Forwarded-Method: {m}\r\nX-Forwarded-Uri: {uri}\r\nX-Forwarded-Host: app.example\r\n\
             X-Forwarded-Proto: https\r\nX-Forwarded-For: 198.51.100.7\r\n"
        )
    };
    got.push((
        "s403",
        req(
            "s403",
            "GET",
            "/auth/forward",
            &format!("{a}{}", fwd("GET", "/closed")),
            "",
        ),
    ));
    got.push((
        "fb200",
        req("fb200", "GET", "/auth/forward", &fwd("GET", "/healthz"), ""),
    ));
    got.push((
        "fa200",
        req(
            "fa200",
            "GET",
            "/auth/forward",
            &format!("{a}{}", fwd("DELETE", "/z")),
            "",
        ),
    ));
    for i in 0..4 {
        let id = format!("reg{i}");
        let s = req(
            &id,
            "POST",
            "/auth/validate",
            &format!("Authorization: {carol_bad}\r\n"),
            "",
        );
        got.push((Box::leak(id.into_boxed_str()), s));
    }
    // 499: the client leaves during a verification (alice, another password: a miss).
    {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(
            b"POST /auth/validate HTTP/1.1\r\nHost: t\r\nX-Request-Id: gone\r\n\
              Authorization: Basic YWxpY2U6bm90LXRoZS1vbmU=\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && access_of(&server.lines(), "gone").is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // 503: four misses at once for one slot and a queue of one.
    let busy: Vec<(String, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let req = &req;
                scope.spawn(move || {
                    let id = format!("busy{k}");
                    let h = format!("Authorization: {}\r\n", basic("alice", &format!("wrong-{k}")));
                    let s = req(&id, "POST", "/auth/validate", &h, "");
                    (id, s)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, lines) = server.terminate();

    let src = Some("127.0.0.1".to_owned());
    let auth_line = |status, reason: Option<&'static str>, hashed, cache| Want {
        auth: true,
        method: "POST",
        route: "/auth/validate",
        status,
        outcome: Some(if reason.is_some() { "denied" } else { "allowed" }),
        reason,
        hashed,
        source: src.clone(),
        cache: Some(cache),
        verified: cache == "miss",
        ..Want::default()
    };
    let plain = |method, route, status| Want {
        method,
        route,
        status,
        ..Want::default()
    };
    let mut wants: Vec<(&str, u16, Want<'_>)> = vec![
        ("s200", 200, auth_line(200, None, true, "miss")),
        ("s200hit", 200, auth_line(200, None, true, "hit")),
        ("s400", 400, auth_line(400, Some("malformed"), false, "none")),
        ("s401", 401, auth_line(401, Some("missing"), false, "none")),
        ("s401b", 401, auth_line(401, Some("wrong_password"), true, "miss")),
        ("s404", 404, plain("GET", "unmatched", 404)),
        ("s405", 405, plain("GET", "/auth/validate", 405)),
        ("s413", 413, plain("POST", "/auth/validate", 413)),
        (
            "s403",
            403,
            Want {
                rule: Some("closed"),
                ..plain("GET", "/auth/forward", 403)
            },
        ),
        (
            "fb200",
            200,
            Want {
                rule: Some("health"),
                ..plain("GET", "/auth/forward", 200)
            },
        ),
        (
            "fa200",
            200,
            Want {
                method: "GET",
                route: "/auth/forward",
                source: Some("198.51.100.7".to_owned()),
                rule: Some("signed-in"),
                ..auth_line(200, None, true, "hit")
            },
        ),
        ("reg0", 401, auth_line(401, Some("wrong_password"), true, "miss")),
        ("reg1", 401, auth_line(401, Some("wrong_password"), true, "miss")),
        ("reg2", 429, auth_line(429, Some("locked_out"), true, "none")),
        ("reg3", 429, auth_line(429, Some("locked_out"), true, "none")),
        ("gone", 499, auth_line(499, Some("wrong_password"), true, "miss")),
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for (id, s) in &busy {
        let w = match s {
            503 => auth_line(503, Some("overloaded"), true, "none"),
            401 => auth_line(401, Some("wrong_password"), true, "miss"),
            other => panic!("{id}: {other}"),
        };
        wants.push((id.as_str(), *s, w));
    }
    assert!(busy.iter().any(|(_, s)| *s == 503), "{busy:?}");
    for (id, status, w) in wants {
        if id != "gone" {
            let answered = got
                .iter()
                .map(|(i, s)| (*i, *s))
                .chain(busy.iter().map(|(i, s)| (i.as_str(), *s)))
                .find(|(i, _)| *i == id)
                .map(|(_, s)| s);
            assert_eq!(answered, Some(status), "{id}");
        }
        let of = access_of(&lines, id);
        assert_eq!(of.len(), 1, "{id}: {of:?}");
        check_line(of[0], &Want { id, ..w });
        statuses.insert(status);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [200, 400, 401, 403, 404, 405, 413, 429, 499, 503]
    );
    // Secrets: the password, every Authorization value sent, every part of every hash.
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&users).unwrap()).unwrap();
    let mut secrets = vec![
        "wonderland".to_owned(),
        alice.to_owned(),
        alice["Basic ".len()..].to_owned(),
        carol_bad.clone(),
        bob.clone(),
        "not-the-one".to_owned(),
        "YWxpY2U6bm90LXRoZS1vbmU=".to_owned(),
    ];
    for (_, u) in file.as_object().unwrap() {
        let h = u["passwordHash"].as_str().unwrap();
        secrets.push(h.to_owned());
        secrets.extend(h.split('$').filter(|p| p.len() >= 16).map(str::to_owned));
    }
    for line in &lines {
        for s in &secrets {
            assert!(!line.contains(s.as_str()), "{s:?} in {line}");
        }
    }
}

/// Four keep-alive connections send cache-hit auth requests and `/health` for ~2.5 s
/// (crossing at least two second boundaries on every worker thread): every line's timestamp
/// has nine fraction digits, lies between the client's clock reads around its request, and
/// a connection's timestamps never go back; `/stats` counts each auth request in its
/// line's second, and `/metrics` counts every auth request.
#[test]
fn timestamps_are_the_request_ends_across_seconds_and_counters_are_exact() {
    let f = fixture();
    let server = Server::start(&f.users, &[], &[]);
    let auth = basic(ALICE, ALICE_PW);
    assert_eq!(
        once(
            &server.addr,
            &format!(
                "POST /auth/validate HTTP/1.1\r\nHost: t\r\nX-Request-Id: prime\r\nAuthorization: {auth}\r\nContent-Length: 0\r\n\r\n"
            )
        ),
        200
    );
    let until = Instant::now() + Duration::from_millis(2500);
    let sent: Vec<Vec<(String, u128, u128)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (addr, auth) = (server.addr.clone(), auth.clone());
                scope.spawn(move || {
                    let mut conn = connect(&addr);
                    let mut done = Vec::new();
                    let mut i = 0;
                    while Instant::now() < until && i < 3000 {
                        let id = format!("c{t}-{i}");
                        let request = if i % 3 == 2 {
                            format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n\r\n")
                        } else {
                            format!(
                                "POST /auth/validate HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n\
                                 Authorization: {auth}\r\nContent-Length: 0\r\n\r\n"
                            )
                        };
                        let before = now_nanos();
                        let (status, _) = exchange(&mut conn, request.as_bytes()).expect("answered");
                        let after = now_nanos();
                        assert_eq!(status, 200, "{id}");
                        done.push((id, before, after));
                        i += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats: Value = reqwest::blocking::get(server.admin_url("/stats"))
        .unwrap()
        .json()
        .unwrap();
    let metrics = reqwest::blocking::get(server.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let (_, lines) = server.terminate();
    let mut auth_per_second: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut auth_total = 1u64; // the priming request
    let mut seconds = std::collections::BTreeSet::new();
    for conn in &sent {
        let mut last = 0u128;
        for (id, before, after) in conn {
            let of = access_of(&lines, id);
            assert_eq!(of.len(), 1, "{id}: {of:?}");
            let v: Value = serde_json::from_str(of[0]).unwrap();
            let ts = epoch_nanos(v["timestamp"].as_str().unwrap());
            assert!(
                *before <= ts && ts <= *after,
                "{id}: {before} <= {ts} <= {after}: {}",
                of[0]
            );
            assert!(ts >= last, "{id}: went back: {}", of[0]);
            last = ts;
            let second = u64::try_from(ts / 1_000_000_000).unwrap();
            seconds.insert(second);
            if v["message"] == "auth request" {
                *auth_per_second.entry(second).or_default() += 1;
                auth_total += 1;
            }
        }
    }
    assert!(seconds.len() >= 2, "{seconds:?}");
    let prime = access_of(&lines, "prime");
    let prime: Value = serde_json::from_str(prime[0]).unwrap();
    let prime_second =
        u64::try_from(epoch_nanos(prime["timestamp"].as_str().unwrap()) / 1_000_000_000).unwrap();
    *auth_per_second.entry(prime_second).or_default() += 1;
    let series = stats["window"]["series"].as_array().unwrap();
    for (second, count) in &auth_per_second {
        let bucket = series
            .iter()
            .find(|b| b["t"] == *second)
            .unwrap_or_else(|| panic!("no /stats second {second}"));
        assert_eq!(bucket["requests"], *count, "second {second}");
    }
    let counted = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(counted("authserver_auth_success_total "), auth_total);
    assert_eq!(counted("authserver_latency_seconds_count "), auth_total);
}
