//! Every metric the service emits, defined once.
//!
//! CloudWatch (namespace [`NAMESPACE`], dimensions `Service`, `Stage`) uses the `cloudwatch` name;
//! Prometheus uses the `prometheus` name. Dashboards, alarms and alert rules refer only to these
//! (a test in `tests/metric_names.rs` checks `deploy/` against this table).

/// CloudWatch namespace of every custom metric.
pub const NAMESPACE: &str = "AuthServer";

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count (CloudWatch unit `Count`, Prometheus `_total`).
    Counter,
    /// Point-in-time value.
    Gauge,
    /// Distribution (CloudWatch values → percentiles, Prometheus histogram).
    Histogram,
}

/// One metric, under both of its names.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// CloudWatch metric name.
    pub cloudwatch: &'static str,
    /// Prometheus metric name (with the `authserver_` prefix).
    pub prometheus: &'static str,
    /// Series kind.
    pub kind: Kind,
    /// CloudWatch unit.
    pub unit: &'static str,
    /// Extra dimension / label beyond `Service` and `Stage`, if any.
    pub dimension: Option<&'static str>,
    /// One line for the docs and the Prometheus `# HELP`.
    pub help: &'static str,
}

macro_rules! metrics {
    ($($id:ident = ($cw:literal, $prom:literal, $kind:ident, $unit:literal, $dim:expr, $help:literal);)*) => {
        $(
            #[doc = $help]
            pub const $id: Metric = Metric {
                cloudwatch: $cw, prometheus: $prom, kind: Kind::$kind, unit: $unit,
                dimension: $dim, help: $help,
            };
        )*
        /// All metrics, in documentation order.
        pub const ALL: &[Metric] = &[$($id),*];
    };
}

metrics! {
    AUTH_SUCCESS = ("AuthSuccess", "authserver_auth_success_total", Counter, "Count", None,
        "Authentication requests that were allowed.");
    AUTH_FAILURE = ("AuthFailure", "authserver_auth_failure_total", Counter, "Count", Some("Reason"),
        "Authentication requests that were denied, by reason.");
    LATENCY = ("Latency", "authserver_latency_seconds", Histogram, "Milliseconds", None,
        "Time to decide one authentication request (CloudWatch in ms, Prometheus in s).");
    CACHE_HIT = ("CredentialCacheHit", "authserver_credential_cache_hit_total", Counter, "Count", None,
        "Decisions answered from the verified-credential cache.");
    CACHE_MISS = ("CredentialCacheMiss", "authserver_credential_cache_miss_total", Counter, "Count", None,
        "Decisions that needed an Argon2id verification.");
    STORE_REFRESH = ("StoreRefresh", "authserver_store_refresh_total", Counter, "Count", None,
        "Credential store snapshots loaded (initial load and every change).");
    STORE_FETCH_ERROR = ("StoreFetchError", "authserver_store_fetch_error_total", Counter, "Count", None,
        "Credential store fetch, parse or policy failures (last good snapshot kept).");
    STORE_STALENESS = ("StoreStalenessSeconds", "authserver_store_staleness_seconds", Gauge, "Seconds", None,
        "Age of the snapshot in service since it was last confirmed current.");
    STORE_RELOAD_STALLED = ("StoreReloadStalled", "authserver_store_reload_stalled_total", Counter, "Count", None,
        "Users-file reloads still running after store.reload_deadline_ms (the last good snapshot serves).");
    TLS_RELOAD_FAILURE = ("TlsReloadFailure", "authserver_tls_reload_failure_total", Counter, "Count", None,
        "Failed attempts to load a changed TLS certificate and key (retried every reload interval; the last good pair serves).");
    TLS_CERT_NOT_AFTER = ("TlsCertNotAfter", "authserver_tls_cert_not_after_seconds", Gauge, "Seconds", None,
        "Expiry (notAfter) of the TLS certificate in service, in Unix seconds; 0 without TLS.");
    HASH_VERIFY_DURATION = ("HashVerifyDuration", "authserver_hash_verify_duration_seconds", Histogram, "Milliseconds", None,
        "Time of one Argon2id verification (CloudWatch in ms, Prometheus in s).");
    HASH_QUEUE_REJECTED = ("HashQueueRejected", "authserver_hash_queue_rejected_total", Counter, "Count", None,
        "Verifications refused because the hash limiter was full (answered 503).");
    HASH_QUEUE_ABANDONED = ("HashQueueAbandoned", "authserver_hash_queue_abandoned_total", Counter, "Count", None,
        "Requests that went away (client gone, timeout) while queued for a verification slot; their places were released.");
    RATE_LIMITED = ("RateLimited", "authserver_rate_limited_total", Counter, "Count", None,
        "Requests refused by brute-force regulation (answered 429).");
    REGULATION_BACKEND_ERROR = ("RegulationBackendError", "authserver_regulation_backend_error_total", Counter, "Count", None,
        "Regulation backend failures; regulation failed open for those requests.");
    BANS = ("Bans", "authserver_bans_total", Counter, "Count", None,
        "Bans issued by brute-force regulation (source or username).");
    COLD_START = ("ColdStart", "authserver_cold_start_total", Counter, "Count", None,
        "Process starts (Lambda cold starts).");
    REQUESTS = ("Requests", "authserver_requests_total", Counter, "Count", Some("Country"),
        "Authentication requests, by country where a trusted header gives one.");
    AUDIT_DROPPED = ("AuditDropped", "authserver_audit_dropped_total", Counter, "Count", None,
        "Audit events not written (file writer queue full, write or lock failed, stream gone).");
    COMPLIANCE_VIOLATIONS = ("ComplianceViolations", "authserver_compliance_violations", Gauge, "Count", None,
        "Failed controls in the last compliance check.");
}

/// CloudWatch names of the metrics only the standalone server emits (Prometheus): the file
/// store's reload and TLS do not exist on Lambda, so the CloudWatch dashboard need not show them
/// (`scripts/check-metric-names.py` reads this list).
pub const STANDALONE_ONLY: &[&str] = &["StoreReloadStalled", "TlsReloadFailure", "TlsCertNotAfter"];

/// Failure reasons: the values of the `Reason` dimension / `reason` label.
pub const REASONS: &[&str] = &[
    "unknown_user",
    "wrong_password",
    "disabled",
    "missing",
    "malformed",
    "rate_limited",
    "locked_out",
    "overloaded",
    "store_unavailable",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut cw: Vec<_> = ALL.iter().map(|m| m.cloudwatch).collect();
        let mut prom: Vec<_> = ALL.iter().map(|m| m.prometheus).collect();
        cw.sort_unstable();
        cw.dedup();
        prom.sort_unstable();
        prom.dedup();
        assert_eq!(cw.len(), ALL.len());
        assert_eq!(prom.len(), ALL.len());
        assert!(ALL.iter().all(|m| m.prometheus.starts_with("authserver_")));
        assert!(
            ALL.iter()
                .filter(|m| m.kind == Kind::Counter)
                .all(|m| m.prometheus.ends_with("_total"))
        );
        assert!(STANDALONE_ONLY.iter().all(|n| cw.contains(n)));
    }
}
