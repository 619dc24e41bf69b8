//! Sliding-window figures for `/stats` and the dashboard: per-second request, outcome, cache and
//! latency buckets over the last [`WINDOW`] seconds, and the top failing `user_hash` values and
//! source addresses over the current and previous minute. Never plaintext usernames.

use super::shard::{Count as _, Sharded};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Seconds of history kept.
pub const WINDOW: usize = 60;
/// Distinct keys tracked per minute for the top lists (bounded memory under a spray).
const MAX_KEYS: usize = 4096;
/// Log-spaced latency buckets: 10 µs · 1.2^i, up to ~10 s.
const LAT_BUCKETS: usize = 76;

/// The latency bucket of `ms`: the first whose upper bound holds it (the last one above them
/// all). A search of the bounds computed once: the logarithm it replaced was the largest part
/// of recording a request here.
fn bucket_of(ms: f64) -> usize {
    static UPPERS: std::sync::LazyLock<[f64; LAT_BUCKETS]> =
        std::sync::LazyLock::new(|| std::array::from_fn(bucket_upper_ms));
    UPPERS.partition_point(|upper| *upper < ms).min(LAT_BUCKETS - 1)
}

fn bucket_upper_ms(i: usize) -> f64 {
    0.01 * 1.2f64.powi(i as i32)
}

#[derive(Debug, Clone)]
struct Second {
    requests: u64,
    allowed: u64,
    denied: u64,
    cache_hits: u64,
    cache_misses: u64,
    latency: [u32; LAT_BUCKETS],
}

impl Second {
    fn add(&mut self, o: &Self) {
        self.requests += o.requests;
        self.allowed += o.allowed;
        self.denied += o.denied;
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
        for (acc, c) in self.latency.iter_mut().zip(&o.latency) {
            *acc += c;
        }
    }

    fn empty() -> Self {
        Self {
            requests: 0,
            allowed: 0,
            denied: 0,
            cache_hits: 0,
            cache_misses: 0,
            latency: [0; LAT_BUCKETS],
        }
    }
}

/// One second of the window, updated without a lock (every request records into it).
#[derive(Debug)]
struct Slot {
    epoch: AtomicU64,
    requests: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latency: [AtomicU32; LAT_BUCKETS],
}

impl Slot {
    fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// The counts, when the slot holds second `t`.
    fn load(&self, t: u64) -> Second {
        let r = Ordering::Relaxed;
        if self.epoch.load(Ordering::Acquire) != t {
            return Second::empty();
        }
        Second {
            requests: self.requests.load(r),
            allowed: self.allowed.load(r),
            denied: self.denied.load(r),
            cache_hits: self.cache_hits.load(r),
            cache_misses: self.cache_misses.load(r),
            latency: std::array::from_fn(|i| self.latency[i].load(r)),
        }
    }

    /// Zeroes the counts, then labels the slot `epoch` (callers hold the rollover lock).
    fn reset(&self, epoch: u64) {
        let r = Ordering::Relaxed;
        for c in [
            &self.requests,
            &self.allowed,
            &self.denied,
            &self.cache_hits,
            &self.cache_misses,
        ] {
            c.store(0, r);
        }
        for c in &self.latency {
            c.store(0, r);
        }
        // Release: whoever sees the new epoch sees zeroed counts, so its increments count.
        self.epoch.store(epoch, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct Tops {
    minute: u64,
    current: HashMap<String, u64>,
    previous: HashMap<String, u64>,
}

impl Tops {
    fn add(&mut self, minute: u64, key: &str) {
        if minute != self.minute {
            self.previous = if minute == self.minute + 1 {
                std::mem::take(&mut self.current)
            } else {
                HashMap::new()
            };
            self.current.clear();
            self.minute = minute;
        }
        if self.current.len() < MAX_KEYS || self.current.contains_key(key) {
            *self.current.entry(key.to_owned()).or_default() += 1;
        }
    }

    fn top(&self, minute: u64, n: usize) -> Vec<(String, u64)> {
        let mut sum: HashMap<&str, u64> = HashMap::new();
        let fresh = |m: u64| minute.saturating_sub(m) <= 1;
        if fresh(self.minute) {
            for (k, v) in &self.current {
                *sum.entry(k).or_default() += v;
            }
            if minute == self.minute {
                for (k, v) in &self.previous {
                    *sum.entry(k).or_default() += v;
                }
            }
        }
        let mut rows: Vec<_> = sum.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(n);
        rows
    }
}

/// One request as the window sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Unix seconds.
    pub epoch: u64,
    /// Whether it was an auth request (others count as requests only).
    pub auth: bool,
    /// Allowed?
    pub allowed: bool,
    /// Cache hit / miss / neither.
    pub cache_hit: Option<bool>,
    /// Latency in ms.
    pub latency_ms: f64,
    /// `user_hash` of a credential failure.
    pub failed_user_hash: Option<&'a str>,
    /// Source of a failure.
    pub failed_source: Option<IpAddr>,
}

/// One thread's seconds.
#[derive(Debug)]
struct Seconds(Vec<Slot>);

impl Default for Seconds {
    fn default() -> Self {
        Self((0..WINDOW).map(|_| Slot::new()).collect())
    }
}

/// The window. Counts are atomics, one set of seconds per thread ([`Sharded`]: requests on two
/// cores do not write the same cache lines) added up by [`Window::summary`]; the hot path takes
/// no lock; the second's rollover and the failure top lists take one.
#[derive(Debug)]
pub struct Window {
    seconds: Sharded<Seconds>,
    rollover: Mutex<()>,
    tops: Mutex<TopLists>,
}

#[derive(Debug, Default)]
struct TopLists {
    users: Tops,
    sources: Tops,
}

/// Figures over the window, as served by `/stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Seconds covered.
    pub window_seconds: usize,
    /// Auth requests per second over the last 10 s.
    pub requests_per_second: f64,
    /// Auth requests in the window.
    pub requests: u64,
    /// Allowed / auth requests in the window (null with no requests).
    pub success_ratio: Option<f64>,
    /// Cache hits / (hits + misses) in the window.
    pub cache_hit_ratio: Option<f64>,
    /// Latency percentiles in ms over the window.
    pub latency_ms: Percentiles,
    /// Per-second series, oldest first (for charts).
    pub series: Vec<Point>,
    /// Top failing `user_hash` values (last 1-2 minutes).
    pub top_failing_user_hashes: Vec<Top>,
    /// Top failing source addresses (last 1-2 minutes).
    pub top_failing_sources: Vec<Top>,
}

/// P50/P95/P99 (upper bucket bounds, ±10 %).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th.
    pub p95: Option<f64>,
    /// 99th.
    pub p99: Option<f64>,
}

/// One second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Unix seconds.
    pub t: u64,
    /// Auth requests.
    pub requests: u64,
    /// Allowed.
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// Cache misses.
    pub cache_misses: u64,
    /// Percentiles of this second.
    pub latency_ms: Percentiles,
}

/// A top-list row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Top {
    /// `user_hash` or address.
    pub key: String,
    /// Failures.
    pub failures: u64,
}

fn percentiles(hist: &[u32; LAT_BUCKETS]) -> Percentiles {
    let total: u64 = hist.iter().map(|c| u64::from(*c)).sum();
    if total == 0 {
        return Percentiles::default();
    }
    let at = |q: f64| {
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in hist.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some((bucket_upper_ms(i) * 1000.0).round() / 1000.0);
            }
        }
        None
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

impl Default for Window {
    fn default() -> Self {
        Self {
            seconds: Sharded::default(),
            rollover: Mutex::new(()),
            tops: Mutex::new(TopLists::default()),
        }
    }
}

impl Window {
    /// Adds one request.
    pub fn record(&self, s: Sample<'_>) {
        let (seconds, w) = self.seconds.writer();
        let slot = &seconds.0[(s.epoch % WINDOW as u64) as usize];
        if s.auth && self.claim(slot, s.epoch) {
            slot.requests.add(1, w);
            if s.allowed {
                slot.allowed.add(1, w);
            } else {
                slot.denied.add(1, w);
            }
            match s.cache_hit {
                Some(true) => slot.cache_hits.add(1, w),
                Some(false) => slot.cache_misses.add(1, w),
                None => {}
            }
            slot.latency[bucket_of(s.latency_ms)].add(1, w);
        }
        if s.failed_user_hash.is_none() && s.failed_source.is_none() {
            return;
        }
        let minute = s.epoch / 60;
        let mut tops = self.tops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = s.failed_user_hash {
            tops.users.add(minute, u);
        }
        if let Some(a) = s.failed_source {
            tops.sources.add(minute, &a.to_string());
        }
    }

    /// Makes `slot` hold second `epoch` (a new second zeroes what it held 60 s ago); false for
    /// a sample older than what the slot holds (a clock step back): it is not counted.
    fn claim(&self, slot: &Slot, epoch: u64) -> bool {
        let held = slot.epoch.load(Ordering::Acquire);
        if held == epoch {
            return true;
        }
        if held > epoch {
            return false;
        }
        let _rollover = self.rollover.lock().unwrap_or_else(|e| e.into_inner());
        let held = slot.epoch.load(Ordering::Acquire);
        if held < epoch {
            slot.reset(epoch);
        }
        held <= epoch
    }

    /// The figures as of `now` (Unix seconds).
    pub fn summary(&self, now: u64) -> Summary {
        let oldest = now.saturating_sub(WINDOW as u64 - 1);
        let mut series = Vec::with_capacity(WINDOW);
        let mut total = [0u32; LAT_BUCKETS];
        let (mut req, mut ok, mut hit, mut miss, mut recent) = (0, 0, 0, 0, 0);
        for t in oldest..=now {
            let i = (t % WINDOW as u64) as usize;
            let mut s = Second::empty();
            for shard in self.seconds.iter() {
                s.add(&shard.0[i].load(t));
            }
            req += s.requests;
            ok += s.allowed;
            hit += s.cache_hits;
            miss += s.cache_misses;
            if now - t < 10 {
                recent += s.requests;
            }
            for (acc, c) in total.iter_mut().zip(s.latency.iter()) {
                *acc += c;
            }
            series.push(Point {
                t,
                requests: s.requests,
                allowed: s.allowed,
                denied: s.denied,
                cache_hits: s.cache_hits,
                cache_misses: s.cache_misses,
                latency_ms: percentiles(&s.latency),
            });
        }
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let tops = self.tops.lock().unwrap_or_else(|e| e.into_inner());
        let top = |t: &Tops| {
            t.top(now / 60, 10)
                .into_iter()
                .map(|(key, failures)| Top { key, failures })
                .collect()
        };
        Summary {
            window_seconds: WINDOW,
            requests_per_second: recent as f64 / 10.0,
            requests: req,
            success_ratio: ratio(ok, req),
            cache_hit_ratio: ratio(hit, hit + miss),
            latency_ms: percentiles(&total),
            series,
            top_failing_user_hashes: top(&tops.users),
            top_failing_sources: top(&tops.sources),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_falls_in_the_first_bucket_whose_bound_holds_it() {
        for i in 0..LAT_BUCKETS {
            let upper = bucket_upper_ms(i);
            assert_eq!(bucket_of(upper), i, "{upper}");
            assert_eq!(
                bucket_of(upper * 1.000_001),
                (i + 1).min(LAT_BUCKETS - 1),
                "{upper}"
            );
        }
        for (ms, want) in [
            (0.0, 0),
            (-1.0, 0),
            (f64::NAN, 0),
            (1e9, LAT_BUCKETS - 1),
            (f64::INFINITY, LAT_BUCKETS - 1),
        ] {
            assert_eq!(bucket_of(ms), want, "{ms}");
        }
    }

    fn sample(epoch: u64, allowed: bool, ms: f64) -> Sample<'static> {
        Sample {
            epoch,
            auth: true,
            allowed,
            cache_hit: Some(allowed),
            latency_ms: ms,
            failed_user_hash: (!allowed).then_some("u1"),
            failed_source: (!allowed).then(|| "10.0.0.9".parse().expect("ip")),
        }
    }

    /// Each thread counts into its own seconds; the summary adds every thread's up, and a
    /// thread whose slot still holds an older second adds nothing to this one.
    #[test]
    fn every_threads_requests_are_summed() {
        let w = Window::default();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..50 {
                        w.record(sample(2000, i % 5 != 0, 0.2));
                    }
                });
            }
            scope.spawn(|| w.record(sample(2000 - WINDOW as u64, true, 0.2)));
        });
        let s = w.summary(2000);
        assert_eq!(
            s.requests, 200,
            "all four threads' requests, not the one of 60 s before"
        );
        assert_eq!(s.success_ratio, Some(0.8));
        assert_eq!(s.series.last().map(|p| p.cache_misses), Some(40));
    }

    #[test]
    fn ratios_percentiles_and_expiry() {
        let w = Window::default();
        for i in 0..100 {
            w.record(sample(1000, i % 4 != 0, if i < 98 { 0.2 } else { 150.0 }));
        }
        let s = w.summary(1000);
        assert_eq!(s.requests, 100);
        assert_eq!(s.success_ratio, Some(0.75));
        assert_eq!(s.cache_hit_ratio, Some(0.75));
        assert_eq!(s.requests_per_second, 10.0);
        let p50 = s.latency_ms.p50.expect("p50");
        assert!((0.2..0.25).contains(&p50), "{p50}");
        let p99 = s.latency_ms.p99.expect("p99");
        assert!((150.0..181.0).contains(&p99), "{p99}");
        assert_eq!(s.series.len(), WINDOW);
        assert_eq!(s.series.last().map(|p| p.requests), Some(100));
        assert_eq!(
            s.top_failing_user_hashes,
            vec![Top {
                key: "u1".into(),
                failures: 25
            }]
        );
        assert_eq!(s.top_failing_sources[0].key, "10.0.0.9");
        let later = w.summary(1000 + WINDOW as u64);
        assert_eq!((later.requests, later.success_ratio), (0, None));
        assert!(
            w.summary(1000 + 180).top_failing_user_hashes.is_empty(),
            "old minutes expire"
        );
    }

    #[test]
    fn concurrent_records_all_count_and_seconds_roll_over() {
        let w = Window::default();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..5000 {
                        w.record(sample(2000 + i % 2, true, 0.3));
                    }
                });
            }
        });
        let s = w.summary(2001);
        assert_eq!(s.requests, 20_000);
        assert_eq!(s.success_ratio, Some(1.0));
        // 60 s later the same slots hold the new seconds; the old counts are gone.
        w.record(sample(2060, false, 0.3));
        let s = w.summary(2061);
        assert_eq!((s.requests, s.success_ratio), (1, Some(0.0)));
        // A late sample for a second the slot no longer holds is dropped, not mixed in.
        w.record(sample(2000, true, 0.3));
        assert_eq!(w.summary(2061).requests, 1);
    }

    #[test]
    fn tops_are_bounded_and_roll_over() {
        let mut t = Tops::default();
        for i in 0..(MAX_KEYS + 50) {
            t.add(5, &format!("k{i}"));
        }
        assert_eq!(t.current.len(), MAX_KEYS);
        t.add(6, "k0");
        assert_eq!(t.top(6, 1), vec![("k0".to_owned(), 2)]);
        t.add(9, "z");
        assert_eq!(
            t.top(9, 5),
            vec![("z".to_owned(), 1)],
            "a gap drops the previous minute"
        );
    }
}
