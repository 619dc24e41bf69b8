//! CloudWatch Embedded Metric Format: one JSON blob per Lambda invocation, written to stdout,
//! which CloudWatch Logs turns into metrics without any API call on the request path.
//!
//! Directives: `{Service,Stage}` with every metric of the invocation (including `Bans` and
//! `RegulationBackendError`, counted since the previous blob), `{Service,Stage,Reason}` with
//! `AuthFailure` when denied, `{Service,Stage,Country}` with `Requests` when a trusted country
//! header was present. Latency and hash time are values, so CloudWatch computes P50/P95/P99 from
//! them.
//!
//! With an OAuth issuer in the process, the blob also carries the OAuth figures since the
//! previous blob (tokens issued, client-authentication failures, bearer validations,
//! introspections, revocations) and the signing key's age, under `{Service,Stage}`; a
//! client-authentication failure adds `{Service,Stage,Reason}` for `OAuthClientAuthFailure` and a
//! validation `{Service,Stage,Result}` for `OAuthTokenValidation`. One request authenticates one
//! client and checks one token at most, so one label moves per invocation; should more move
//! (or the `Reason` key be taken by a denied `AuthFailure`), each further label gets a small blob
//! of its own ([`blobs`]) rather than a wrong attribution.

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
    /// The OAuth figures since the previous blob, when an issuer runs.
    pub oauth: Option<super::oauth::OAuthEmf>,
}

fn def(id: MetricId) -> Value {
    let m = id.metric();
    json!({"Name": m.cloudwatch, "Unit": m.unit})
}

/// Labels of one OAuth metric that moved since the previous blob, with their counts.
type Moved<'i> = &'i [(&'static str, u64)];

/// The labelled OAuth metrics: metric, dimension, and the labels that moved.
fn oauth_labelled<'i>(inv: &'i Invocation<'_>) -> [(MetricId, &'static str, Moved<'i>); 2] {
    let o = inv.oauth.as_ref();
    [
        (
            MetricId::OAuthClientAuthFailure,
            "Reason",
            o.map_or(&[][..], |o| &o.auth_failures),
        ),
        (
            MetricId::OAuthTokenValidation,
            "Result",
            o.map_or(&[][..], |o| &o.validations),
        ),
    ]
}

/// Whether the labelled series of `dim` fits the main blob: one label moved, and the dimension
/// key is free (`Reason` is `AuthFailure`'s on a denied authentication).
fn fits(inv: &Invocation<'_>, dim: &str, moved: Moved<'_>) -> bool {
    let taken = dim == "Reason" && inv.auth && !inv.allowed && inv.reason.is_some();
    moved.len() == 1 && !taken
}

/// Every blob of one invocation: [`blob`], then one per OAuth label that could not go in it
/// (see the module docs; none in the usual case).
pub fn blobs(inv: &Invocation<'_>) -> Vec<Value> {
    let mut out = vec![blob(inv)];
    for (id, dim, moved) in oauth_labelled(inv) {
        if fits(inv, dim, moved) {
            continue;
        }
        for (label, n) in moved {
            let mut root = Map::new();
            root.insert(id.name().to_owned(), json!(n));
            root.insert(dim.to_owned(), json!(label));
            root.insert("Service".into(), json!(inv.service));
            root.insert("Stage".into(), json!(inv.stage));
            root.insert("request_id".into(), json!(inv.request_id));
            let directive = json!({"Namespace": NAMESPACE, "Dimensions": [["Service", "Stage", dim]],
                "Metrics": [def(id)]});
            root.insert(
                "_aws".into(),
                json!({"Timestamp": inv.timestamp_ms, "CloudWatchMetrics": [directive]}),
            );
            out.push(Value::Object(root));
        }
    }
    out
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
    if let Some(o) = &inv.oauth {
        let sum = |rows: &[(&'static str, u64)]| rows.iter().map(|(_, n)| n).sum::<u64>();
        put(MetricId::OAuthTokensIssued, json!(o.issued), &mut root);
        put(
            MetricId::OAuthClientAuthFailure,
            json!(sum(&o.auth_failures)),
            &mut root,
        );
        put(
            MetricId::OAuthTokenValidation,
            json!(sum(&o.validations)),
            &mut root,
        );
        put(MetricId::OAuthIntrospections, json!(o.introspections), &mut root);
        put(MetricId::OAuthRevocations, json!(o.revocations), &mut root);
        put(MetricId::OAuthSigningKeyAge, json!(o.key_age), &mut root);
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
    for (id, dim, moved) in oauth_labelled(inv) {
        if let (true, Some((label, _))) = (fits(inv, dim, moved), moved.first()) {
            root.insert(dim.into(), json!(label));
            directives.push(json!({
                "Namespace": NAMESPACE,
                "Dimensions": [["Service", "Stage", dim]],
                "Metrics": [def(id)],
            }));
        }
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
    use crate::telemetry::oauth::OAuthEmf;
    use std::collections::BTreeSet;

    /// An invocation on which every EMF path runs: denied after a verification, with a country,
    /// and an OAuth token validated (the OAuth client-authentication failure of the same
    /// invocation cannot share `Reason` with the denial: it gets a blob of its own).
    fn everything() -> Invocation<'static> {
        Invocation {
            service: "svc",
            stage: "test",
            auth: true,
            reason: Some("wrong_password"),
            hash_ms: Some(40.0),
            country: Some("DE"),
            request_id: "r",
            oauth: Some(OAuthEmf {
                issued: 1,
                key_age: 60,
                auth_failures: vec![("unknown_client", 1)],
                validations: vec![("client", 1)],
                ..OAuthEmf::default()
            }),
            ..Invocation::default()
        }
    }

    /// The metrics, dimension sets and dimension values of `blob`'s directives.
    fn directives(blob: &Value) -> BTreeSet<(String, Vec<String>, Vec<String>)> {
        let mut out = BTreeSet::new();
        for d in blob["_aws"]["CloudWatchMetrics"].as_array().expect("directives") {
            let dims: Vec<String> = serde_json::from_value(d["Dimensions"][0].clone()).expect("dims");
            let values: Vec<String> = dims
                .iter()
                .map(|k| blob[k].as_str().unwrap_or("").to_owned())
                .collect();
            for m in d["Metrics"].as_array().expect("metrics") {
                let name = m["Name"].as_str().expect("name").to_owned();
                out.insert((name, dims.clone(), values.clone()));
            }
        }
        out
    }

    #[test]
    fn oauth_figures_reach_the_blob_with_their_label_when_an_issuer_runs() {
        let token_request = Invocation {
            service: "svc",
            stage: "test",
            request_id: "r",
            oauth: Some(OAuthEmf {
                key_age: 120,
                auth_failures: vec![("assertion_replay", 1)],
                ..OAuthEmf::default()
            }),
            ..Invocation::default()
        };
        let all = blobs(&token_request);
        assert_eq!(all.len(), 1, "one label moved: one blob");
        let b = &all[0];
        assert_eq!(b["OAuthClientAuthFailure"], 1);
        assert_eq!(b["OAuthTokensIssued"], 0);
        assert_eq!(b["OAuthSigningKeyAgeSeconds"], 120);
        let d = directives(b);
        let labelled = (
            "OAuthClientAuthFailure".to_owned(),
            vec!["Service".into(), "Stage".into(), "Reason".into()],
            vec!["svc".into(), "test".into(), "assertion_replay".into()],
        );
        assert!(d.contains(&labelled), "{d:?}");
        // Without an issuer: no OAuth metric at all.
        let plain = blob(&Invocation {
            oauth: None,
            ..token_request.clone()
        });
        assert!(plain.get("OAuthTokensIssued").is_none() && plain.get("Reason").is_none());
        // Two labels moved (never one request, but never misattributed): one blob each.
        let two = Invocation {
            oauth: Some(OAuthEmf {
                validations: vec![("valid", 2), ("expired", 1)],
                ..OAuthEmf::default()
            }),
            ..token_request
        };
        let all = blobs(&two);
        assert_eq!(all[0]["OAuthTokenValidation"], 3);
        assert!(
            all[0].get("Result").is_none(),
            "the total only, under {{Service,Stage}}"
        );
        let extra: Vec<_> = all[1..]
            .iter()
            .map(|b| (b["Result"].clone(), b["OAuthTokenValidation"].clone()))
            .collect();
        assert_eq!(extra, [(json!("valid"), json!(2)), (json!("expired"), json!(1))]);
    }

    /// Every EMF metric has a value in the blob, under exactly the dimension sets the table
    /// declares (what the deploy checker and the dashboards rely on); nothing else is emitted.
    #[test]
    fn every_emf_metric_has_a_value_under_its_declared_dimensions() {
        let all = blobs(&everything());
        let blob = &all[0];
        let emitted: BTreeSet<(String, Vec<String>)> = all
            .iter()
            .flat_map(directives)
            .map(|(name, dims, _)| (name, dims))
            .collect();
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
