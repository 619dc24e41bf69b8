//! CloudWatch Embedded Metric Format: one JSON blob per Lambda invocation, written to stdout,
//! which CloudWatch Logs turns into metrics without any API call on the request path.
//!
//! Three directives at most: `{Service,Stage}` with every metric of the invocation (including
//! `Bans` and `RegulationBackendError`, counted since the previous blob),
//! `{Service,Stage,Reason}` with `AuthFailure` when denied, `{Service,Stage,Country}` with
//! `Requests` when a trusted country header was present. Latency and hash time are values, so
//! CloudWatch computes P50/P95/P99 from them.

use super::names::{MetricId, NAMESPACE};
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
    /// Entries of the snapshot in service refused by the hash policy.
    pub store_refused: usize,
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

fn def(id: MetricId) -> Value {
    let m = id.metric();
    json!({"Name": m.cloudwatch, "Unit": m.unit})
}

/// The blob for one invocation.
pub fn blob(inv: &Invocation<'_>) -> Value {
    let mut root = Map::new();
    let mut metrics = Vec::new();
    let mut put = |id: MetricId, v: Value, root: &mut Map<String, Value>| {
        metrics.push(def(id));
        root.insert(id.name().to_owned(), v);
    };
    put(MetricId::Requests, json!(1), &mut root);
    put(MetricId::ColdStart, json!(u8::from(inv.cold_start)), &mut root);
    put(MetricId::StoreStaleness, json!(inv.staleness_s), &mut root);
    put(MetricId::StoreRefusedEntries, json!(inv.store_refused), &mut root);
    put(MetricId::StoreRefresh, json!(inv.store_refreshes), &mut root);
    put(
        MetricId::StoreFetchError,
        json!(inv.store_fetch_errors),
        &mut root,
    );
    // Always present (0 when nothing happened), so alarms see data rather than gaps.
    put(MetricId::Bans, json!(inv.bans), &mut root);
    put(
        MetricId::RegulationBackendError,
        json!(inv.regulation_backend_errors),
        &mut root,
    );
    put(MetricId::AuditDropped, json!(inv.audit_dropped), &mut root);
    put(MetricId::HashQueueAbandoned, json!(inv.hash_abandoned), &mut root);
    if inv.auth {
        put(MetricId::AuthSuccess, json!(u8::from(inv.allowed)), &mut root);
        put(MetricId::AuthFailure, json!(u8::from(!inv.allowed)), &mut root);
        put(MetricId::Latency, json!(inv.latency_ms), &mut root);
        put(
            MetricId::CacheHit,
            json!(u8::from(inv.cache_hit == Some(true))),
            &mut root,
        );
        put(
            MetricId::CacheMiss,
            json!(u8::from(inv.cache_hit == Some(false))),
            &mut root,
        );
        if let Some(ms) = inv.hash_ms {
            put(MetricId::HashVerifyDuration, json!(ms), &mut root);
        }
        put(
            MetricId::HashQueueRejected,
            json!(u8::from(inv.reason == Some("overloaded"))),
            &mut root,
        );
        let limited = matches!(inv.reason, Some("rate_limited" | "locked_out"));
        put(MetricId::RateLimited, json!(u8::from(limited)), &mut root);
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
            "Metrics": [def(MetricId::AuthFailure)],
        }));
    }
    if let Some(country) = inv.country {
        root.insert("Country".into(), json!(country));
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Service", "Stage", "Country"]],
            "Metrics": [def(MetricId::Requests)],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::listing::cloudwatch_dimensions;
    use crate::telemetry::names::Reach;
    use std::collections::BTreeSet;

    /// An invocation on which every EMF path runs: denied after a verification, with a country.
    fn everything() -> Invocation<'static> {
        Invocation {
            service: "svc",
            stage: "test",
            auth: true,
            reason: Some("wrong_password"),
            hash_ms: Some(40.0),
            country: Some("DE"),
            request_id: "r",
            ..Invocation::default()
        }
    }

    /// Every EMF metric has a value in the blob, under exactly the dimension sets the table
    /// declares (what the deploy checker and the dashboards rely on); nothing else is emitted.
    #[test]
    fn every_emf_metric_has_a_value_under_its_declared_dimensions() {
        let blob = blob(&everything());
        let mut emitted: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
        for d in blob["_aws"]["CloudWatchMetrics"].as_array().expect("directives") {
            let dims: Vec<String> = serde_json::from_value(d["Dimensions"][0].clone()).expect("dims");
            for m in d["Metrics"].as_array().expect("metrics") {
                emitted.insert((m["Name"].as_str().expect("name").to_owned(), dims.clone()));
            }
        }
        let mut declared = BTreeSet::new();
        for id in MetricId::ALL
            .into_iter()
            .filter(|id| id.metric().reach == Reach::Emf)
        {
            assert!(blob[id.name()].is_number(), "{id:?} has no value");
            for set in cloudwatch_dimensions(id.metric()) {
                declared.insert((id.name().to_owned(), set.iter().map(|s| s.to_string()).collect()));
            }
        }
        assert_eq!(emitted, declared);
    }
}
