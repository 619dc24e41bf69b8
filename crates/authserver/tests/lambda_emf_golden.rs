//! Golden CloudWatch EMF blobs: what the real emitter writes for every kind of invocation,
//! captured from the Lambda handlers (and, for the two outcomes a test cannot provoke cheaply,
//! from `Telemetry::record` itself), normalised and compared with
//! `tests/fixtures/emf-golden.jsonl`. `scripts/check-metric-names.py` reads that file and fails
//! when an alarm or dashboard queries a metric + dimension set that no blob contains, so a
//! metric the code never emits can no longer sit behind a silent alarm.
//!
//! The same cases also give the server's Prometheus series (`tests/fixtures/prometheus-golden.txt`),
//! which the checker holds Prometheus rules and the Grafana dashboard to.
//!
//! After a deliberate change to the emitter: `UPDATE_GOLDEN=1 cargo test -p authserver --test
//! lambda_emf_golden`, and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver::http::AppState;
use authserver::lambda::authorizer::Authorizer;
use authserver::lambda::proxy::Proxy;
use authserver::telemetry::metrics::RegulationCounters;
use authserver::telemetry::{AuthRecord, EmfSink, RequestRecord, Telemetry};
use authserver_core::{CacheUse, Reason};
use authserver_testkit::fakes::DownStore;
use authserver_testkit::lambda::{GOOD, cold, fixture, invoke, settings, with_authorization};
use authserver_testkit::users::basic;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store is down from the start.
const DOWN: DownStore = DownStore {
    retry_after: Duration::from_secs(5),
    error: "down",
};

const GOLDEN: &str = "tests/fixtures/emf-golden.jsonl";
/// The series the server's `/metrics` exposes after the same cases (names and labels, no
/// values, histogram `le` labels folded): the checker's reference for Prometheus rules and
/// the Grafana dashboard.
const PROMETHEUS_GOLDEN: &str = "tests/fixtures/prometheus-golden.txt";

/// Values that change from run to run; the shape around them is what the golden file keeps.
/// The OAuth figures are process-wide: the two tests of this file issue tokens concurrently.
const VARIABLE: &[&str] = &[
    "Latency",
    "HashVerifyDuration",
    "StoreStalenessSeconds",
    "OAuthTokensIssued",
    "OAuthClientAuthFailure",
    "OAuthTokenValidation",
    "OAuthIntrospections",
    "OAuthRevocations",
    "OAuthSigningKeyAgeSeconds",
];

type Captured = Arc<Mutex<Vec<String>>>;

/// The two tests of this file take turns at the OAuth case (its figures are process-wide).
static OAUTH_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A state whose EMF blobs land in the returned buffer.
fn capturing(mut s: authserver::config::Settings) -> (Arc<AppState>, Captured) {
    s.telemetry.service = "authserver".into();
    s.telemetry.stage = "golden".into();
    s.telemetry.country_header = "CloudFront-Viewer-Country".parse().expect("header name");
    s.regulation.policy.max_source_failures = 3;
    s.regulation.policy.max_user_failures = 3;
    let captured: Captured = Arc::default();
    let sink: EmfSink = {
        let captured = captured.clone();
        Arc::new(move |blob| captured.lock().unwrap().push(blob))
    };
    let mut state = authserver::wiring::build(s).unwrap().state;
    let inner = Arc::get_mut(&mut state).unwrap();
    inner.telemetry = Telemetry::new(&inner.settings, Some(sink));
    (state, captured)
}

fn take(captured: &Captured) -> Value {
    let mut blobs = captured.lock().unwrap();
    assert_eq!(blobs.len(), 1, "one blob per invocation: {blobs:?}");
    normalise(serde_json::from_str(&blobs.remove(0)).unwrap())
}

fn normalise(mut blob: Value) -> Value {
    blob["_aws"]["Timestamp"] = json!(0);
    blob["request_id"] = json!("-");
    for name in VARIABLE {
        if blob.get(*name).is_some() {
            blob[*name] = json!(0);
        }
    }
    blob
}

fn rest(auth: Option<&str>, ip: &str) -> Value {
    let mut e = with_authorization(fixture("apigw_v1_rest_api.json"), auth);
    e["requestContext"]["identity"]["sourceIp"] = json!(ip);
    e
}

/// The series of `state`'s Prometheus exposition, one `name{labels}` per line, sorted.
fn exposed_series(state: &AppState) -> String {
    let store = state.gate.store.as_ref();
    let regulation =
        RegulationCounters::read(&state.gate.regulator.bans, &state.gate.regulator.backend_errors);
    let text = state.telemetry.registry.render_prometheus(
        &store.status(),
        store.counters(),
        regulation,
        state.gate.limiter.abandoned(),
        state.gate.legacy_counts(),
    );
    let mut series: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
        .map(|series| match series.split_once("{le=") {
            Some((name, _)) => name.to_owned(),
            None => series.to_owned(),
        })
        .collect();
    series.sort();
    series.dedup();
    series.join("\n") + "\n"
}

/// Every emitting path, in order: (case, blob); and the Prometheus series after them.
async fn golden_cases() -> (Vec<(String, Value)>, String) {
    let mut out = Vec::new();
    let series;
    {
        let (state, captured) = capturing(settings());
        let proxy = Proxy::new(state.clone(), None, cold());
        let mut run = async |case: &str, event: Value, status: u16| {
            assert_eq!(invoke(&proxy, event).await.0, status, "{case}");
            out.push((case.to_owned(), take(&captured)));
        };
        run(
            "allowed (cold start, country)",
            rest(Some(GOOD), "192.0.2.1"),
            200,
        )
        .await;
        let mut no_country = rest(Some(GOOD), "192.0.2.1");
        for map in ["headers", "multiValueHeaders"] {
            no_country[map]
                .as_object_mut()
                .unwrap()
                .remove("CloudFront-Viewer-Country");
        }
        run("allowed (cache hit, no country)", no_country, 200).await;
        let wrong = basic("fixture-user", "wrong-1");
        run("wrong_password", rest(Some(&wrong), "192.0.2.2"), 401).await;
        run(
            "unknown_user",
            rest(Some(&basic("nobody", "x")), "192.0.2.3"),
            401,
        )
        .await;
        let disabled = basic("disabled-user", "Disabled-Password-2");
        run("disabled", rest(Some(&disabled), "192.0.2.4"), 401).await;
        run("missing", rest(None, "192.0.2.5"), 401).await;
        run("malformed", rest(Some("Basic !!!"), "192.0.2.6"), 400).await;
        // Two more failures from 192.0.2.2 ban it (Bans = 1 in the blob that issued it).
        run("wrong_password (second)", rest(Some(&wrong), "192.0.2.2"), 401).await;
        run(
            "wrong_password (ban issued)",
            rest(Some(&wrong), "192.0.2.2"),
            401,
        )
        .await;
        run("rate_limited", rest(Some(GOOD), "192.0.2.2"), 429).await;
        // fixture-user now has 3 failures: locked for new verifications from untrusted sources.
        let other = basic("fixture-user", "another-guess");
        run("locked_out", rest(Some(&other), "192.0.2.9"), 429).await;
        let mut health = fixture("apigw_v2_http_api.json");
        health["rawPath"] = json!("/prod/health");
        health["requestContext"]["http"]["method"] = json!("GET");
        run("not an auth request (/health)", health, 200).await;
        series = exposed_series(&state);
    }

    // With `[oauth]` on: a token issued through the proxy carries the OAuth figures.
    {
        let f = authserver_testkit::oauth::fixture();
        let (state, captured) = capturing(authserver_testkit::oauth::settings(&f));
        let proxy = Proxy::new(state, None, cold());
        let form = "grant_type=client_credentials";
        let mut event = fixture("apigw_v2_http_api.json");
        event["rawPath"] = json!("/prod/oauth/token");
        event["requestContext"]["http"]["path"] = json!("/prod/oauth/token");
        let auth = authserver_testkit::oauth::basic_client(
            authserver_testkit::oauth::BASIC_CLIENT,
            authserver_testkit::oauth::BASIC_SECRET,
        );
        event["headers"]["authorization"] = json!(auth);
        event["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
        event["headers"]["content-length"] = json!(form.len().to_string());
        event["body"] = json!(form);
        // The figures are process-wide: one token request at a time, so the delta is this one.
        let _turn = OAUTH_TURN.lock().await;
        assert_eq!(invoke(&proxy, event).await.0, 200, "oauth token");
        let raw: Value = serde_json::from_str(&captured.lock().unwrap()[0]).unwrap();
        assert_eq!(raw["OAuthTokensIssued"], 1, "{raw}");
        assert_eq!(raw["OAuthClientAuthFailure"], 0, "{raw}");
        out.push(("oauth token issued (with [oauth])".into(), take(&captured)));
    }

    // The authorizer's own accounting, with the store down.
    let (mut state, captured) = capturing(settings());
    Arc::get_mut(&mut Arc::get_mut(&mut state).unwrap().gate)
        .unwrap()
        .store = Arc::new(DOWN);
    let answer = Authorizer::new(state.clone(), None, cold())
        .handle(LambdaEvent::new(
            fixture("authorizer_http_api_v2.json"),
            Context::default(),
        ))
        .await;
    assert!(answer.is_err());
    out.push(("store_unavailable (authorizer)".into(), take(&captured)));

    // Through the emitter directly: a full hash queue, a failing regulation backend.
    let record = |reason, errors| {
        record_directly(
            &state,
            reason,
            errors,
            &authserver::telemetry::EndClock::default(),
        );
        take(&captured)
    };
    out.push(("overloaded".into(), record(Some(Reason::Overloaded), 0)));
    out.push((
        "regulation backend error (failed open, allowed)".into(),
        record(None, 1),
    ));
    (out, series)
}

/// One auth request recorded through the emitter directly (no handler): `reason` (none:
/// allowed), the regulation backend's error total, the request's end.
fn record_directly(
    state: &AppState,
    reason: Option<Reason>,
    errors: u64,
    end: &authserver::telemetry::EndClock,
) {
    let auth = AuthRecord {
        reason,
        cache: CacheUse::None,
        user_hash: Some("uh".into()),
        verify_time: None,
    };
    state.telemetry.record(
        &RequestRecord {
            auth: Some(&auth),
            latency: Duration::from_millis(1),
            source: None,
            country: None,
            request_id: "-",
            regulation: RegulationCounters {
                bans: 0,
                backend_errors: errors,
            },
            hash_abandoned: 0,
            end,
        },
        state.gate.store.as_ref(),
    );
}

/// Compares `generated` with the file at `rel` (or writes it under `UPDATE_GOLDEN=1`).
fn compare(rel: &str, generated: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    for (i, (want, got)) in golden.lines().zip(generated.lines()).enumerate() {
        assert_eq!(
            got,
            want,
            "line {} of {rel} differs (UPDATE_GOLDEN=1 to accept)",
            i + 1
        );
    }
    assert_eq!(
        golden.lines().count(),
        generated.lines().count(),
        "{rel} has another number of lines (UPDATE_GOLDEN=1 to accept)"
    );
}

#[tokio::test]
async fn emf_blobs_and_prometheus_series_match_the_golden_files() {
    let (cases, series) = golden_cases().await;
    let lines: Vec<String> = cases
        .into_iter()
        .map(|(case, blob)| json!({"case": case, "blob": blob}).to_string())
        .collect();
    compare(GOLDEN, &(lines.join("\n") + "\n"));
    compare(PROMETHEUS_GOLDEN, &series);
}

#[tokio::test]
async fn every_reason_and_the_regulation_metrics_are_covered() {
    let (cases, series) = golden_cases().await;
    let blobs: Vec<Value> = cases.into_iter().map(|(_, b)| b).collect();
    for metric in authserver::telemetry::names::ALL {
        assert!(
            series.lines().any(|s| s.starts_with(metric.prometheus)),
            "/metrics never exposes {}",
            metric.prometheus
        );
    }
    for reason in authserver::telemetry::names::REASONS {
        assert!(
            blobs.iter().any(|b| b["Reason"] == *reason),
            "no golden blob with Reason={reason}"
        );
    }
    for metric in ["Bans", "RegulationBackendError"] {
        assert!(
            blobs.iter().any(|b| b[metric].as_u64().unwrap_or(0) > 0),
            "no golden blob where {metric} counted"
        );
    }
    assert!(blobs.iter().any(|b| b["ColdStart"] == 1));
    assert!(blobs.iter().any(|b| b.get("Country").is_some()));
}

/// The blob's `Timestamp` is the request's end as its access line and `/stats` second have it
/// (one clock read): a separate read, as before, could fall in the next minute at a boundary,
/// and CloudWatch would file the metric under another minute than the line.
#[tokio::test]
async fn the_blob_is_stamped_with_the_requests_end() {
    let (state, captured) = capturing(settings());
    let end_at = std::time::UNIX_EPOCH + Duration::from_millis(1_765_000_059_999);
    record_directly(&state, None, 0, &authserver::telemetry::EndClock::at(end_at));
    let blob: Value = serde_json::from_str(&captured.lock().unwrap()[0]).unwrap();
    assert_eq!(blob["_aws"]["Timestamp"], 1_765_000_059_999u64, "{blob}");
}
