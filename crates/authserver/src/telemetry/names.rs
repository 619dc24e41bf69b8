//! Every metric the service emits, defined once.
//!
//! One `metrics!` table gives each metric a [`MetricId`] variant and its [`Metric`] row: the
//! CloudWatch name (namespace [`NAMESPACE`], dimensions `Service`, `Stage`), the Prometheus
//! name, kind, unit, extra dimension, where it is emitted ([`Reach`]) and its help line.
//! Outputs match on [`MetricId`], so the compiler finds every place a new metric needs a value.
//!
//! Dashboards, alarms and alert rules refer only to these: `scripts/check-metric-names.py`
//! reads the table from the binary (`authserver metrics-names --format json`, see
//! [`super::listing`]) and checks `deploy/` against it and against the golden files of
//! `tests/lambda_emf_golden.rs`.

use authserver_core::Reason;

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

impl Kind {
    /// The Prometheus `# TYPE` word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Where a metric reaches CloudWatch. Every metric is on the standalone server's `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// In the EMF blob of each Lambda invocation (see [`super::emf`]).
    Emf,
    /// Published by the compliance function with `PutMetricData` under `{Service,Stage}`.
    PutMetricData,
    /// Nowhere: the file store's reload and TLS do not exist on Lambda, so the CloudWatch
    /// dashboard need not show these.
    StandaloneOnly,
}

/// One metric, under both of its names.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Which metric this is.
    pub id: MetricId,
    /// CloudWatch metric name.
    pub cloudwatch: &'static str,
    /// Prometheus metric name (with the `authserver_` prefix).
    pub prometheus: &'static str,
    /// Series kind.
    pub kind: Kind,
    /// CloudWatch unit.
    pub unit: &'static str,
    /// Extra dimension / label beyond `Service` and `Stage`, if any (the Prometheus label is
    /// its lower-case form).
    pub dimension: Option<&'static str>,
    /// Where it reaches CloudWatch.
    pub reach: Reach,
    /// One line for the docs and the Prometheus `# HELP`.
    pub help: &'static str,
}

macro_rules! metrics {
    ($($id:ident = ($cw:literal, $prom:literal, $kind:ident, $unit:literal, $dim:expr, $reach:ident,
        $help:literal);)*) => {
        /// Every metric, one variant each (documentation order).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MetricId {
            $(#[doc = $help] $id,)*
        }

        impl MetricId {
            /// Every metric, in documentation order.
            pub const ALL: [MetricId; [$(MetricId::$id),*].len()] = [$(MetricId::$id),*];

            /// The metric's row of the table.
            pub const fn metric(self) -> &'static Metric {
                match self {
                    $(MetricId::$id => &Metric {
                        id: MetricId::$id, cloudwatch: $cw, prometheus: $prom, kind: Kind::$kind,
                        unit: $unit, dimension: $dim, reach: Reach::$reach, help: $help,
                    },)*
                }
            }
        }

        /// All metrics, in documentation order.
        pub const ALL: &[Metric] = &[$(*MetricId::$id.metric()),*];
    };
}

metrics! {
    AuthSuccess = ("AuthSuccess", "authserver_auth_success_total", Counter, "Count", None, Emf,
        "Authentication requests that were allowed.");
    AuthFailure = ("AuthFailure", "authserver_auth_failure_total", Counter, "Count", Some("Reason"), Emf,
        "Authentication requests that were denied, by reason.");
    Latency = ("Latency", "authserver_latency_seconds", Histogram, "Milliseconds", None, Emf,
        "Time to decide one authentication request (CloudWatch in ms, Prometheus in s).");
    CacheHit = ("CredentialCacheHit", "authserver_credential_cache_hit_total", Counter, "Count", None, Emf,
        "Decisions answered from the verified-credential cache.");
    CacheMiss = ("CredentialCacheMiss", "authserver_credential_cache_miss_total", Counter, "Count", None, Emf,
        "Decisions that needed an Argon2id verification.");
    StoreRefresh = ("StoreRefresh", "authserver_store_refresh_total", Counter, "Count", None, Emf,
        "Credential store snapshots loaded (initial load and every change).");
    StoreFetchError = ("StoreFetchError", "authserver_store_fetch_error_total", Counter, "Count", None, Emf,
        "Credential store fetch, parse or policy failures (last good snapshot kept).");
    StoreStaleness = ("StoreStalenessSeconds", "authserver_store_staleness_seconds", Gauge, "Seconds", None, Emf,
        "Age of the snapshot in service since it was last confirmed current.");
    StoreRefusedEntries = ("StoreRefusedEntries", "authserver_store_refused_entries", Gauge, "Count", None, Emf,
        "Entries of the store in service whose password hash fails the hash policy (those users are denied; the log names them by user_hash).");
    StoreReloadStalled = ("StoreReloadStalled", "authserver_store_reload_stalled_total", Counter, "Count", None,
        StandaloneOnly,
        "Users-file reloads that read no byte for store.reload_deadline_ms (the last good snapshot serves).");
    LegacyHashUsers = ("LegacyHashUsers", "authserver_legacy_hash_users", Gauge, "Count", None, StandaloneOnly,
        "Users of the snapshot in service still on a legacy (bcrypt, SHA-crypt) hash; each is re-hashed to Argon2id at its next login (file store).");
    LegacyLoginNotRehashed = ("LegacyLoginNotRehashed", "authserver_legacy_login_not_rehashed_total", Counter, "Count",
        None, StandaloneOnly,
        "Logins with a legacy hash the store does not re-hash from the request path (Secrets Manager): set new passwords.");
    TlsReloadFailure = ("TlsReloadFailure", "authserver_tls_reload_failure_total", Counter, "Count", None,
        StandaloneOnly,
        "Failed attempts to load a changed TLS certificate and key (retried every reload interval; the last good pair serves).");
    TlsCertNotAfter = ("TlsCertNotAfter", "authserver_tls_cert_not_after_seconds", Gauge, "Seconds", None,
        StandaloneOnly,
        "Expiry (notAfter) of the TLS certificate in service, in Unix seconds; 0 without TLS.");
    HashVerifyDuration = ("HashVerifyDuration", "authserver_hash_verify_duration_seconds", Histogram, "Milliseconds",
        None, Emf,
        "Time of one Argon2id verification (CloudWatch in ms, Prometheus in s).");
    HashQueueRejected = ("HashQueueRejected", "authserver_hash_queue_rejected_total", Counter, "Count", None, Emf,
        "Verifications refused because the hash limiter was full (answered 503).");
    HashQueueAbandoned = ("HashQueueAbandoned", "authserver_hash_queue_abandoned_total", Counter, "Count", None, Emf,
        "Requests that went away (client gone, timeout) while queued for a verification slot; their places were released.");
    RateLimited = ("RateLimited", "authserver_rate_limited_total", Counter, "Count", None, Emf,
        "Requests refused by brute-force regulation (answered 429).");
    RegulationBackendError = ("RegulationBackendError", "authserver_regulation_backend_error_total", Counter, "Count",
        None, Emf,
        "Regulation backend failures; regulation failed open for those requests.");
    Bans = ("Bans", "authserver_bans_total", Counter, "Count", None, Emf,
        "Bans issued by brute-force regulation (source or username).");
    ColdStart = ("ColdStart", "authserver_cold_start_total", Counter, "Count", None, Emf,
        "Process starts (Lambda cold starts).");
    Requests = ("Requests", "authserver_requests_total", Counter, "Count", Some("Country"), Emf,
        "Authentication requests, by country where a trusted header gives one.");
    AuditDropped = ("AuditDropped", "authserver_audit_dropped_total", Counter, "Count", None, Emf,
        "Audit events not written (file writer queue full, write or lock failed, stream gone).");
    RuleAllowed = ("RuleAllowed", "authserver_rule_allowed_total", Counter, "Count", Some("Rule"), StandaloneOnly,
        "/auth/forward answers allowed by an access rule (bypass, or allow with a permitted subject), by rule name (bounded: a rules file holds at most 256).");
    RuleDenied = ("RuleDenied", "authserver_rule_denied_total", Counter, "Count", Some("Rule"), StandaloneOnly,
        "/auth/forward answers an access rule refused (403, or 401 for credentials refused on an allow rule), by rule name; invalid_request: headers or path refused before matching.");
    RulesReloadFailure = ("RulesReloadFailure", "authserver_rules_reload_failure_total", Counter, "Count", None,
        StandaloneOnly,
        "Rules-file reloads that failed (unreadable, broken, stalled); the last good rules stay in service.");
    OAuthTokensIssued = ("OAuthTokensIssued", "authserver_oauth_tokens_issued_total", Counter, "Count", None,
        Emf,
        "OAuth access tokens issued by /oauth/token.");
    OAuthClientAuthFailure = ("OAuthClientAuthFailure", "authserver_oauth_client_auth_failure_total", Counter, "Count",
        Some("Reason"), Emf,
        "Failed OAuth client authentications (token, introspection, revocation), by reason.");
    OAuthTokenValidation = ("OAuthTokenValidation", "authserver_oauth_token_validation_total", Counter, "Count",
        Some("Result"), Emf,
        "Bearer-token checks, by result: valid, or the check that failed (clients are never told which).");
    OAuthIntrospections = ("OAuthIntrospections", "authserver_oauth_introspections_total", Counter, "Count", None,
        Emf,
        "Introspection requests answered (RFC 7662).");
    OAuthRevocations = ("OAuthRevocations", "authserver_oauth_revocations_total", Counter, "Count", None,
        Emf,
        "Access tokens revoked (RFC 7009).");
    OAuthSigningKeyAge = ("OAuthSigningKeyAgeSeconds", "authserver_oauth_signing_key_age_seconds", Gauge, "Seconds",
        None, Emf,
        "Seconds the active OAuth signing key has signed (set when the issuer starts and at each token); 0 without [oauth].");
    OAuthSigningKeysUnloadable = ("OAuthSigningKeysUnloadable", "authserver_oauth_signing_keys_unloadable", Gauge, "Count",
        None, StandaloneOnly,
        "Keys listed in the local OAuth key set's keys.json that the last reload could not load (unreadable, damaged, unsafe mode); 0 when every key loads.");
    ComplianceViolations = ("ComplianceViolations", "authserver_compliance_violations", Gauge, "Count", None,
        PutMetricData,
        "Failed controls in the last compliance check.");
}

impl MetricId {
    /// The CloudWatch name.
    pub const fn name(self) -> &'static str {
        self.metric().cloudwatch
    }
}

/// Failure reasons: the values of the `Reason` dimension / `reason` label, in `Reason::ALL`
/// order (a test holds them to the core's labels). Written out, not computed, because
/// `scripts/drills/check-runbooks.py` reads this list from the source.
pub const REASONS: [&str; Reason::ALL.len()] = [
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
    }

    #[test]
    fn the_enum_and_the_table_agree() {
        assert_eq!(ALL.len(), MetricId::ALL.len());
        for (row, id) in ALL.iter().zip(MetricId::ALL) {
            assert_eq!(row.id, id);
            assert_eq!(id.metric().id, id, "{id:?}'s row names another metric");
            assert_eq!(id.name(), row.cloudwatch);
        }
    }

    #[test]
    fn reasons_are_the_core_labels_in_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(REASONS[i], r.as_str());
        }
    }
}
