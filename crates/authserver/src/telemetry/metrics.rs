//! The in-process metric registry: lock-free counters and fixed-bucket histograms for the
//! metrics in [`super::names`], rendered as Prometheus text on `/metrics`.
//!
//! One registry held in the application state (no global recorder): tests run in parallel with
//! their own, and the same numbers feed `/metrics`, `/stats` and the Lambda EMF blobs.

use super::names::{Metric, MetricId};
use super::shard::{Count as _, Sharded, Writer};
use authserver_core::{Reason, StoreStatus};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// Histogram bucket upper bounds in seconds: resolves 0.05 ms to 200 ms finely, then coarser.
pub const BUCKETS: [f64; 20] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15,
    0.2, 0.3, 0.5, 1.0, 2.5, 5.0,
];

/// Countries tracked at most; further ones count as `other` (the label set stays bounded).
const MAX_COUNTRIES: usize = 256;

/// A fixed-bucket histogram of seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds (integer, so it can be atomic).
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation (`writer`: how this thread adds to the shard it holds).
    pub fn observe(&self, seconds: f64, writer: Writer) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].add(1, writer);
        }
        self.count.add(1, writer);
        self.sum_ns.add((seconds * 1e9) as u64, writer);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// A histogram's shards added up.
struct HistogramSum {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_ns: u64,
}

impl HistogramSum {
    fn of<'a>(shards: impl Iterator<Item = &'a Histogram>) -> Self {
        let mut s = Self {
            buckets: [0; BUCKETS.len()],
            count: 0,
            sum_ns: 0,
        };
        for h in shards {
            for (acc, b) in s.buckets.iter_mut().zip(&h.buckets) {
                *acc += b.load(Relaxed);
            }
            s.count += h.count.load(Relaxed);
            s.sum_ns = s.sum_ns.wrapping_add(h.sum_ns.load(Relaxed));
        }
        s
    }
}

/// The series every request writes, one set per thread ([`Sharded`]): `/metrics` adds them up.
#[derive(Debug, Default)]
pub struct Hot {
    /// AuthSuccess.
    pub auth_success: AtomicU64,
    /// AuthFailure by reason (index: [`Reason::index`]).
    pub auth_failure: [AtomicU64; Reason::ALL.len()],
    /// Latency.
    pub latency: Histogram,
    /// CredentialCacheHit.
    pub cache_hit: AtomicU64,
    /// CredentialCacheMiss.
    pub cache_miss: AtomicU64,
    /// HashVerifyDuration.
    pub hash_verify: Histogram,
    /// HashQueueRejected.
    pub hash_queue_rejected: AtomicU64,
    /// RateLimited.
    pub rate_limited: AtomicU64,
    /// Requests without a country (rendered as `country="unknown"`).
    pub requests_unknown: AtomicU64,
}

/// Every series the service keeps.
#[derive(Debug, Default)]
pub struct Registry {
    /// The per-request series, per thread.
    pub hot: Sharded<Hot>,
    /// ColdStart.
    pub cold_start: AtomicU64,
    /// Requests by country from a trusted header.
    pub requests: Mutex<HashMap<String, u64>>,
    /// ComplianceViolations (last check).
    pub compliance_violations: AtomicU64,
    /// AuditDropped: shared with the audit sink (see [`audit_dropped_counter`]).
    pub audit_dropped: Arc<AtomicU64>,
}

/// The `AuditDropped` counter of the audit file `path` (empty: no file), one per file in the
/// process. Keyed by path rather than held by one registry because the audit sink is built
/// before the telemetry that reports it, and Lambda replaces its telemetry after wiring; tests
/// running several servers side by side use different files.
pub fn audit_dropped_counter(path: &str) -> Arc<AtomicU64> {
    static COUNTERS: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    let mut map = COUNTERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(path.to_owned()).or_default().clone()
}

impl Registry {
    /// A counter of [`Hot`], every thread's shard added up.
    pub fn total(&self, counter: impl Fn(&Hot) -> &AtomicU64) -> u64 {
        self.hot.iter().map(|h| counter(h).load(Relaxed)).sum()
    }

    /// Argon2id verifications timed so far (every thread's).
    pub fn verifications(&self) -> u64 {
        self.hot.iter().map(|h| h.hash_verify.count()).sum()
    }

    /// Counts one request from `country`.
    pub fn count_request(&self, country: Option<&str>) {
        let Some(country) = country else {
            // The common case takes no lock.
            let (hot, w) = self.hot.writer();
            hot.requests_unknown.add(1, w);
            return;
        };
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let key = if map.contains_key(country) || map.len() < MAX_COUNTRIES {
            country
        } else {
            "other"
        };
        *map.entry(key.to_owned()).or_default() += 1;
    }

    /// Prometheus text exposition (format 0.0.4) of every metric; store figures come from `store`.
    pub fn render_prometheus(
        &self,
        store: &StoreStatus,
        counters: StoreCounters,
        regulation: RegulationCounters,
        hash_abandoned: u64,
        legacy: LegacyCounts,
    ) -> String {
        let readings = Readings {
            store,
            legacy,
            counters,
            regulation,
            hash_abandoned,
        };
        let mut out = String::with_capacity(8192);
        for id in MetricId::ALL {
            header(&mut out, id.metric());
            self.render_value(&mut out, id, &readings);
        }
        out
    }

    /// The sample lines of `id`. One arm per metric and no catch-all, so a metric added to the
    /// table does not compile until it has a value here.
    fn render_value(&self, out: &mut String, id: MetricId, r: &Readings<'_>) {
        let p = id.metric().prometheus;
        let mut one = |v: u64| sample(out, p, "", v);
        match id {
            MetricId::AuthSuccess => one(self.total(|h| &h.auth_success)),
            MetricId::AuthFailure => self.render_failures(out, p),
            MetricId::Latency => histogram(out, p, &HistogramSum::of(self.hot.iter().map(|h| &h.latency))),
            MetricId::HashVerifyDuration => {
                histogram(out, p, &HistogramSum::of(self.hot.iter().map(|h| &h.hash_verify)));
            }
            MetricId::CacheHit => one(self.total(|h| &h.cache_hit)),
            MetricId::CacheMiss => one(self.total(|h| &h.cache_miss)),
            MetricId::StoreRefresh => one(r.counters.refreshes),
            MetricId::StoreFetchError => one(r.counters.fetch_errors),
            MetricId::StoreStaleness => one(r.store.age_seconds),
            MetricId::StoreRefusedEntries => one(u64::try_from(r.store.refused).unwrap_or(u64::MAX)),
            MetricId::StoreReloadStalled => one(r.counters.reload_stalls),
            MetricId::LegacyHashUsers => one(r.legacy.users),
            MetricId::LegacyLoginNotRehashed => one(r.legacy.not_rehashed),
            MetricId::TlsReloadFailure => one(crate::tls::figures().reload_failures),
            // 0 without TLS (every series is always exposed); alerts select `> 0`.
            MetricId::TlsCertNotAfter => {
                let at = crate::tls::figures().not_after.unwrap_or(0).max(0);
                one(u64::try_from(at).unwrap_or(0));
            }
            MetricId::HashQueueRejected => one(self.total(|h| &h.hash_queue_rejected)),
            MetricId::HashQueueAbandoned => one(r.hash_abandoned),
            MetricId::RateLimited => one(self.total(|h| &h.rate_limited)),
            MetricId::RegulationBackendError => one(r.regulation.backend_errors),
            MetricId::Bans => one(r.regulation.bans),
            MetricId::ColdStart => one(self.cold_start.load(Relaxed)),
            MetricId::ComplianceViolations => one(self.compliance_violations.load(Relaxed)),
            MetricId::AuditDropped => one(self.audit_dropped.load(Relaxed)),
            MetricId::Requests => self.render_requests(out, p),
            MetricId::RuleAllowed => render_rules(out, p, |c| c.1),
            MetricId::RuleDenied => render_rules(out, p, |c| c.2),
            MetricId::RulesReloadFailure => one(crate::access::figures().reload_failures.load(Relaxed)),
            MetricId::OAuthTokensIssued => one(super::oauth::figures().issued_total()),
            MetricId::OAuthIntrospections => one(super::oauth::figures().introspections_total()),
            MetricId::OAuthRevocations => one(super::oauth::figures().revocations_total()),
            MetricId::OAuthSigningKeyAge => {
                let now = authserver_core::clock::now_ms() / 1000;
                one(super::oauth::figures().key_age(now));
            }
            MetricId::OAuthSigningKeysUnloadable => one(super::oauth::figures().unloadable_keys()),
            MetricId::OAuthClientAuthFailure => {
                labelled(out, p, "reason", &super::oauth::figures().auth_failure_rows());
            }
            MetricId::OAuthTokenValidation => {
                labelled(out, p, "result", &super::oauth::figures().validation_rows())
            }
        }
    }

    /// One `reason` series per reason, zeros included.
    fn render_failures(&self, out: &mut String, p: &str) {
        for r in Reason::ALL {
            let label = format!("{{reason=\"{}\"}}", r.as_str());
            sample(out, p, &label, self.total(|h| &h.auth_failure[r.index()]));
        }
    }

    /// One `country` series per country seen; `unknown` only once a request had none.
    fn render_requests(&self, out: &mut String, p: &str) {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = map.iter().collect();
        rows.sort();
        for (country, n) in rows {
            sample(out, p, &format!("{{country=\"{country}\"}}"), *n);
        }
        let unknown = self.total(|h| &h.requests_unknown);
        if unknown > 0 {
            sample(out, p, "{country=\"unknown\"}", unknown);
        }
    }
}

/// One `rule` series per rule name counted (names are checked `[a-z0-9_-]` on load, so they
/// need no escaping); `default` alone before any rules were loaded.
fn render_rules(out: &mut String, p: &str, value: impl Fn(&(String, u64, u64)) -> u64) {
    let rows = crate::access::figures().snapshot();
    if rows.is_empty() {
        sample(out, p, "{rule=\"default\"}", 0);
    }
    for row in &rows {
        sample(out, p, &format!("{{rule=\"{}\"}}", row.0), value(row));
    }
}

/// One series per label value seen (fixed label sets: see `telemetry::oauth`).
fn labelled(out: &mut String, p: &str, label: &str, rows: &[(&'static str, u64)]) {
    for (value, n) in rows {
        sample(out, p, &format!("{{{label}=\"{value}\"}}"), *n);
    }
}

/// What `/metrics` shows beside the registry's own series: figures other components keep.
struct Readings<'a> {
    store: &'a StoreStatus,
    legacy: LegacyCounts,
    counters: StoreCounters,
    regulation: RegulationCounters,
    hash_abandoned: u64,
}

/// Legacy-hash figures (htpasswd migration): users still on a legacy hash in the snapshot in
/// service, and logins with one that the store did not re-hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegacyCounts {
    /// Users on bcrypt / SHA-crypt.
    pub users: u64,
    /// Legacy logins not re-hashed (Secrets Manager).
    pub not_rehashed: u64,
}

/// Regulation totals (kept by the regulator).
#[derive(Debug, Clone, Copy, Default)]
pub struct RegulationCounters {
    /// Bans issued.
    pub bans: u64,
    /// Backend failures.
    pub backend_errors: u64,
}

impl RegulationCounters {
    /// A reading of the regulator's two counters (`Regulator::bans`, `::backend_errors`).
    pub fn read(bans: &AtomicU64, backend_errors: &AtomicU64) -> Self {
        Self {
            bans: bans.load(Relaxed),
            backend_errors: backend_errors.load(Relaxed),
        }
    }
}

/// Store counters that adapters keep (see `SnapshotSource::counters`).
pub use authserver_core::source::StoreCounters;

fn header(out: &mut String, m: &Metric) {
    let _ = writeln!(
        out,
        "# HELP {} {}\n# TYPE {} {}",
        m.prometheus,
        m.help,
        m.prometheus,
        m.kind.as_str()
    );
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

fn histogram(out: &mut String, name: &str, h: &HistogramSum) {
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += h.buckets[i];
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    // An observation counts its bucket before `count`; a scrape between the two would show
    // +Inf below the last finite bucket, which is no histogram (finding 1 of the shards attack).
    let count = h.count.max(cumulative);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::super::names;
    use super::*;

    fn status() -> StoreStatus {
        StoreStatus {
            kind: "file",
            version: None,
            users: Some(1),
            cached_entries: None,
            refused: 0,
            age_seconds: 42,
            ready: true,
            last_error: None,
        }
    }

    #[test]
    fn renders_every_metric_with_valid_histograms() {
        let r = Registry::default();
        // Two threads' shards: /metrics shows their sum.
        r.hot.local().auth_success.fetch_add(1, Relaxed);
        r.hot.local().latency.observe(0.000_07, Writer::SHARED);
        std::thread::scope(|s| {
            s.spawn(|| {
                r.hot.local().auth_success.fetch_add(2, Relaxed);
                r.hot.local().auth_failure[Reason::WrongPassword.index()].fetch_add(2, Relaxed);
                let (hot, w) = r.hot.writer();
                hot.latency.observe(0.15, w);
                hot.latency.observe(9.0, w);
            });
        });
        r.count_request(Some("DE"));
        let text = r.render_prometheus(
            &status(),
            StoreCounters {
                refreshes: 4,
                fetch_errors: 1,
                reload_stalls: 5,
            },
            RegulationCounters {
                bans: 2,
                backend_errors: 0,
            },
            5,
            LegacyCounts {
                users: 3,
                not_rehashed: 1,
            },
        );
        assert!(text.contains("authserver_bans_total 2\n"));
        assert!(text.contains("authserver_legacy_hash_users 3\n"));
        assert!(text.contains("authserver_legacy_login_not_rehashed_total 1\n"));
        assert!(text.contains("authserver_hash_queue_abandoned_total 5\n"));
        for m in names::ALL {
            assert!(
                text.contains(&format!("# TYPE {} ", m.prometheus)),
                "{}",
                m.prometheus
            );
        }
        assert!(text.contains("authserver_auth_success_total 3\n"));
        assert!(text.contains("authserver_auth_failure_total{reason=\"wrong_password\"} 2\n"));
        assert!(text.contains("authserver_latency_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("authserver_latency_seconds_bucket{le=\"0.2\"} 2\n"));
        assert!(text.contains("authserver_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("authserver_latency_seconds_count 3\n"));
        assert!(text.contains("authserver_store_staleness_seconds 42\n"));
        assert!(text.contains("authserver_store_refresh_total 4\n"));
        assert!(text.contains("authserver_store_reload_stalled_total 5\n"));
        assert!(text.contains("authserver_tls_reload_failure_total "));
        assert!(
            text.contains("authserver_tls_cert_not_after_seconds 0\n"),
            "no TLS in this process: 0, which alerts skip"
        );
        assert!(text.contains("authserver_requests_total{country=\"DE\"} 1\n"));
        assert!(text.contains("authserver_bans_total 2\n"));
    }

    /// The defect this guards against: a metric in the table whose `# TYPE` header renders and
    /// no sample does (a catch-all arm swallowed it).
    #[test]
    fn every_metric_renders_a_value() {
        let r = Registry::default();
        r.count_request(None);
        let text = r.render_prometheus(
            &status(),
            StoreCounters::default(),
            RegulationCounters::default(),
            0,
            LegacyCounts::default(),
        );
        let series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        for id in MetricId::ALL {
            let m = id.metric();
            let want: Vec<String> = match m.kind {
                names::Kind::Histogram => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{}{s}", m.prometheus))
                    .collect(),
                _ => vec![m.prometheus.to_owned()],
            };
            for name in want {
                assert!(series.contains(&name.as_str()), "{id:?}: no {name} sample");
            }
        }
    }

    #[test]
    fn country_labels_are_bounded() {
        let r = Registry::default();
        for i in 0..(MAX_COUNTRIES + 10) {
            r.count_request(Some(&format!("C{i}")));
        }
        let map = r.requests.lock().unwrap();
        assert_eq!(map.len(), MAX_COUNTRIES + 1);
        assert_eq!(map["other"], 10);
    }
}
