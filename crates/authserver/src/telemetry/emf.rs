//! CloudWatch Embedded Metric Format: one JSON blob per Lambda invocation, written to stdout,
//! which CloudWatch Logs turns into metrics without any API call on the request path.
//!
//! Three directives at most: `{Service,Stage}` with every metric of the invocation (including
//! `Bans` and `RegulationBackendError`, counted since the previous blob),
//! `{Service,Stage,Reason}` with `AuthFailure` when denied, `{Service,Stage,Country}` with
//! `Requests` when a trusted country header was present. Latency and hash time are values, so
//! CloudWatch computes P50/P95/P99 from them.

use super::names::{self, Metric, NAMESPACE};
use serde_json::{Map, Value, json};

/// The figures of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Invocation<'a> {
    /// `Service` dimension.
    pub service: &'a str,
    /// `Stage` dimension.
    pub stage: &'a str,
    /// Milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// Whether this was an authentication request (else only Requests/ColdStart are emitted).
    pub auth: bool,
    /// Allowed?
    pub allowed: bool,
    /// Denial reason label.
    pub reason: Option<&'a str>,
    /// Cache hit (Some(true)), miss (Some(false)), not consulted (None).
    pub cache_hit: Option<bool>,
    /// Decision latency in ms.
    pub latency_ms: f64,
    /// Argon2id time in ms, if one ran.
    pub hash_ms: Option<f64>,
    /// First invocation of this process.
    pub cold_start: bool,
    /// Snapshot age in seconds.
    pub staleness_s: u64,
    /// Store loads since the previous blob.
    pub store_refreshes: u64,
    /// Store failures since the previous blob.
    pub store_fetch_errors: u64,
    /// Bans issued since the previous blob.
    pub bans: u64,
    /// Regulation backend failures since the previous blob (regulation failed open).
    pub regulation_backend_errors: u64,
    /// Audit events dropped since the previous blob.
    pub audit_dropped: u64,
    /// Requests gone while queued for a verification slot since the previous blob.
    pub hash_abandoned: u64,
    /// Country from a trusted header.
    pub country: Option<&'a str>,
    /// Request id (a plain property for correlation, not a dimension).
    pub request_id: &'a str,
}

fn def(m: &Metric) -> Value {
    json!({"Name": m.cloudwatch, "Unit": m.unit})
}

/// The blob for one invocation.
pub fn blob(inv: &Invocation<'_>) -> Value {
    let mut root = Map::new();
    let mut metrics = Vec::new();
    let mut put = |m: &Metric, v: Value, root: &mut Map<String, Value>| {
        metrics.push(def(m));
        root.insert(m.cloudwatch.to_owned(), v);
    };
    put(&names::REQUESTS, json!(1), &mut root);
    put(&names::COLD_START, json!(u8::from(inv.cold_start)), &mut root);
    put(&names::STORE_STALENESS, json!(inv.staleness_s), &mut root);
    put(&names::STORE_REFRESH, json!(inv.store_refreshes), &mut root);
    put(
        &names::STORE_FETCH_ERROR,
        json!(inv.store_fetch_errors),
        &mut root,
    );
    // Always present (0 when nothing happened), so alarms see data rather than gaps.
    put(&names::BANS, json!(inv.bans), &mut root);
    put(
        &names::REGULATION_BACKEND_ERROR,
        json!(inv.regulation_backend_errors),
        &mut root,
    );
    put(&names::AUDIT_DROPPED, json!(inv.audit_dropped), &mut root);
    put(&names::HASH_QUEUE_ABANDONED, json!(inv.hash_abandoned), &mut root);
    if inv.auth {
        put(&names::AUTH_SUCCESS, json!(u8::from(inv.allowed)), &mut root);
        put(&names::AUTH_FAILURE, json!(u8::from(!inv.allowed)), &mut root);
        put(&names::LATENCY, json!(inv.latency_ms), &mut root);
        put(
            &names::CACHE_HIT,
            json!(u8::from(inv.cache_hit == Some(true))),
            &mut root,
        );
        put(
            &names::CACHE_MISS,
            json!(u8::from(inv.cache_hit == Some(false))),
            &mut root,
        );
        if let Some(ms) = inv.hash_ms {
            put(&names::HASH_VERIFY_DURATION, json!(ms), &mut root);
        }
        put(
            &names::HASH_QUEUE_REJECTED,
            json!(u8::from(inv.reason == Some("overloaded"))),
            &mut root,
        );
        let limited = matches!(inv.reason, Some("rate_limited" | "locked_out"));
        put(&names::RATE_LIMITED, json!(u8::from(limited)), &mut root);
    }
    let mut directives = vec![json!({
        "Namespace": NAMESPACE,
        "Dimensions": [["Service", "Stage"]],
        "Metrics": metrics,
    })];
    if let (true, Some(reason)) = (inv.auth && !inv.allowed, inv.reason) {
        root.insert("Reason".into(), json!(reason));
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Service", "Stage", "Reason"]],
            "Metrics": [def(&names::AUTH_FAILURE)],
        }));
    }
    if let Some(country) = inv.country {
        root.insert("Country".into(), json!(country));
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Service", "Stage", "Country"]],
            "Metrics": [def(&names::REQUESTS)],
        }));
    }
    root.insert("Service".into(), json!(inv.service));
    root.insert("Stage".into(), json!(inv.stage));
    root.insert("request_id".into(), json!(inv.request_id));
    root.insert(
        "_aws".into(),
        json!({"Timestamp": inv.timestamp_ms, "CloudWatchMetrics": directives}),
    );
    Value::Object(root)
}
