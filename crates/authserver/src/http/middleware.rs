//! The outermost layer: request id in and out, the request context (the id and the X-Ray and
//! W3C trace ids) of every line logged meanwhile, `Cache-Control: no-store` and a JSON body on
//! every response, and at most one log line per request, which for an auth request is also its
//! audit event ([`crate::audit::access`]). The line carries `user_hash`, never the username,
//! password, header or hash.

use super::{AppState, ClientAddr};
use crate::audit::access::Access;
use crate::audit::handoff::Handoff;
use crate::telemetry::context::RequestContext;
use crate::telemetry::metrics::RegulationCounters;
use crate::telemetry::{AuthRecord, EndClock, RequestRecord};
use authserver_core::Reason;
use authserver_core::clock::now_ms;
use axum::extract::State;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Log target of the per-request line (filter it like any target, e.g. `authserver::access=warn`).
pub use crate::audit::access::ACCESS_TARGET;

/// The request id header (read when valid, always written).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// A header value when it is short and plain (ids, trace ids, country codes); else `None`.
fn plain_header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).filter(|v| {
        (1..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:;=".contains(&b))
    })
}

/// RFC 9112 §3.2: an HTTP/1.1 request without exactly one `Host` header is answered 400. Only
/// for requests read from a socket ([`super::FromSocket`]): Lambda events are not HTTP/1.1 wire
/// requests, and API Gateway has already judged them. Checked in [`request_context`] rather than
/// a middleware of its own: each `from_fn` layer clones and boxes the inner service per request
/// (dhat: ~30 of the ~88 allocations of a cache hit are the router's boxed layers).
fn lacks_one_host(req: &Request) -> bool {
    req.version() == axum::http::Version::HTTP_11
        && req.extensions().get::<super::FromSocket>().is_some()
        && req.headers().get_all(header::HOST).iter().count() != 1
}

/// Whether this process is a Lambda function (the runtime sets `_X_AMZN_TRACE_ID` there).
static ON_LAMBDA: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some());

/// The X-Ray trace id: the header, or on Lambda the runtime's `_X_AMZN_TRACE_ID` (read only
/// there: the environment is behind a process-wide lock).
fn xray_trace_id(req: &Request) -> Option<String> {
    plain_header(req, "x-amzn-trace-id")
        .map(str::to_owned)
        .or_else(|| {
            (*ON_LAMBDA)
                .then(|| std::env::var("_X_AMZN_TRACE_ID").ok())
                .flatten()
                .filter(|v| v.len() <= 256)
        })
}

/// See the module docs. Each step below does one of its jobs, in this order.
pub async fn request_context(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let incoming = Incoming::read(&state, &req);
    req.extensions_mut().insert(RequestId(incoming.id.clone()));
    let handoff = Arc::new(Handoff::default());
    let mut pending = Pending {
        state: state.clone(),
        handoff: handoff.clone(),
        incoming: Some(incoming),
    };
    // `incoming` is set until `complete` below.
    let response = match &pending.incoming {
        Some(incoming) if !lacks_one_host(&req) => {
            crate::audit::handoff::scope(handoff, incoming.handle(req, next)).await
        }
        _ => axum::http::StatusCode::BAD_REQUEST.into_response(),
    };
    let Some(mut incoming) = pending.complete() else {
        return response;
    };
    if let Some(surface) = response.extensions().get::<super::Surface>() {
        incoming.route = Route::Surface(surface.route);
        incoming.source = surface.source;
    }
    let mut response = json_for_framework_errors(response);
    stamp_headers(&mut response, &incoming.id);
    let latency = incoming.start.elapsed();
    let record = response.extensions().get::<AuthRecord>();
    let rule = response.extensions().get::<super::access::RuleRecord>();
    let end = EndClock::default();
    incoming.measure(&state, record, latency, &end);
    incoming.account(&state, response.status().as_u16(), record, rule, latency, &end);
    response
}

/// The request's facts while its inner layers run. Dropped before [`Pending::complete`] (the
/// client left and the server dropped the request future), it hands them to the verification
/// still running (`audit::handoff`), which writes the one record once it ends; its access line
/// has status 499 (nginx's "client closed request").
struct Pending {
    state: Arc<AppState>,
    handoff: Arc<Handoff>,
    incoming: Option<Incoming>,
}

impl Pending {
    /// The response was built: this middleware writes the record.
    fn complete(&mut self) -> Option<Incoming> {
        self.handoff.close();
        self.incoming.take()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(incoming) = self.incoming.take() else {
            return;
        };
        let state = self.state.clone();
        self.handoff.abandon(Box::new(move |done| {
            let record = AuthRecord {
                reason: done.decision.reason(),
                cache: done.decision.cache,
                user_hash: Some(done.user_hash),
                verify_time: done.decision.verify_time,
            };
            let latency = incoming.start.elapsed();
            let end = EndClock::default();
            incoming.measure(&state, Some(&record), latency, &end);
            incoming.account(&state, CLIENT_CLOSED, Some(&record), None, latency, &end);
        }));
    }
}

/// The status an abandoned request's access line carries (nginx's "client closed request").
const CLIENT_CLOSED: u16 = 499;

/// What is known of a request before it is handled: the facts its log line, metrics and audit
/// event carry afterwards.
struct Incoming {
    start: Instant,
    id: Arc<str>,
    xray: Option<String>,
    traceparent: Option<String>,
    source: Option<IpAddr>,
    country: Option<String>,
    method: Method,
    route: Route,
}

/// The route label: the matched template (an `Arc` inside, so no copy) or the handler's own.
enum Route {
    Matched(MatchedPath),
    Surface(&'static str),
    Unmatched,
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Self::Matched(p) => p.as_str(),
            Self::Surface(s) => s,
            Self::Unmatched => "unmatched",
        }
    }
}

impl Incoming {
    fn read(state: &AppState, req: &Request) -> Self {
        let start = Instant::now();
        let source = req
            .extensions()
            .get::<ClientAddr>()
            .and_then(|c| state.proxies.client(c.0.ip(), req.headers()));
        Self {
            start,
            id: request_id(req),
            xray: xray_trace_id(req),
            traceparent: plain_header(req, "traceparent").map(str::to_owned),
            source,
            country: country(req, &state.settings.telemetry.country_header),
            method: req.method().clone(),
            // The route template, not the raw path: raw paths are caller-chosen text.
            route: req
                .extensions()
                .get::<MatchedPath>()
                .map_or(Route::Unmatched, |p| Route::Matched(p.clone())),
        }
    }

    /// Runs the inner layers. Lines logged meanwhile carry the ids (telemetry::context); a span
    /// only when traces are exported.
    async fn handle(&self, req: Request, next: Next) -> Response {
        let ctx = RequestContext {
            request_id: self.id.clone(),
            xray_trace_id: self.xray.clone(),
            traceparent: self.traceparent.clone(),
        };
        let handled = crate::telemetry::context::scope(ctx, next.run(req));
        if crate::telemetry::exports_spans() {
            let span = tracing::info_span!(
                "request",
                request_id = %self.id,
                xray_trace_id = self.xray.as_deref(),
                traceparent = self.traceparent.as_deref(),
            );
            handled.instrument(span).await
        } else {
            handled.await
        }
    }

    /// The request's metrics (and the regulation and limiter gauges read with them).
    fn measure(&self, state: &AppState, record: Option<&AuthRecord>, latency: Duration, end: &EndClock) {
        state.telemetry.record(
            &RequestRecord {
                auth: record,
                latency,
                source: self.source,
                country: self.country.as_deref(),
                request_id: &self.id,
                regulation: RegulationCounters::read(
                    &state.gate.regulator.bans,
                    &state.gate.regulator.backend_errors,
                ),
                hash_abandoned: state.gate.limiter.abandoned(),
                end,
            },
            state.gate.store.as_ref(),
        );
    }

    /// The one record: access line and audit event (see [`crate::audit::access`]); the rule
    /// that decided is its `rule` field. A rule's decision gets an `access_decision` audit event
    /// of its own when there is no auth event to ride on (bypass, a deny before credentials) or
    /// when it denied an authenticated user (the auth event says `allowed`: the credentials
    /// were right). A request allowed by its rule stays one record.
    fn account(
        &self,
        state: &AppState,
        status: u16,
        record: Option<&AuthRecord>,
        rule: Option<&super::access::RuleRecord>,
        latency: Duration,
        end: &EndClock,
    ) {
        if let Some(r) = rule.filter(|r| record.is_none() || !r.1) {
            state.audit.emit(authserver_core::AuditEvent::AccessDecision {
                rule: r.0.to_string(),
                outcome: if r.1 { "allowed" } else { "denied" },
                source: self.source.map(|s| s.to_string()),
                request_id: self.id.to_string(),
            });
        }
        let access = Access {
            request_id: &self.id,
            xray_trace_id: self.xray.as_deref(),
            traceparent: self.traceparent.as_deref(),
            method: Some(self.method.as_str()),
            route: self.route.as_str(),
            status: Some(status),
            outcome: record.map(outcome),
            reason: record.and_then(|r| r.reason).map(Reason::as_str),
            user_hash: record.and_then(|r| r.user_hash.as_deref()),
            source: record.and(self.source),
            cache: record.map(|r| r.cache.as_str()),
            verify: record.and_then(|r| r.verify_time),
            rule: rule.map(|r| &*r.0),
            latency,
            end: Some(end),
            // See `Access::trusted`: every one of those fields is ours or filtered above.
            trusted: true,
            ..Access::default()
        };
        let enabled = || tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO);
        crate::audit::access::write(state.audit.as_ref(), &access, state.settings.log.access, enabled);
    }
}

/// The caller's request id when it is plain (and holds no `=` or `;`), else a random one.
fn request_id(req: &Request) -> Arc<str> {
    plain_header(req, REQUEST_ID.as_str())
        .filter(|v| !v.contains(['=', ';']))
        .map_or_else(random_id, Arc::from)
}

/// 32 lowercase hex digits. Written into a stack buffer: `format!("{:032x}")` grew its String
/// 9 times per request (dhat, cache-hit path), the most allocations of any single call site.
fn random_id() -> Arc<str> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = rand::random::<u128>();
    let mut out = [0u8; 32];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = HEX[((n >> (4 * (31 - i))) & 0xf) as usize];
    }
    // Only ASCII hex digits were written.
    Arc::from(std::str::from_utf8(&out).unwrap_or_default())
}

/// The two-letter country from the configured header (none when unset or not two letters).
fn country(req: &Request, header: &str) -> Option<String> {
    (!header.is_empty())
        .then(|| plain_header(req, header))
        .flatten()
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase)
}

fn outcome(record: &AuthRecord) -> &'static str {
    if record.reason.is_none() {
        "allowed"
    } else {
        "denied"
    }
}

/// Framework answers (405, 413, 503 timeout, ...) get the same JSON shape as ours.
fn json_for_framework_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json");
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let mut json = axum::Json(serde_json::json!({
        "allowed": false,
        "message": status.canonical_reason().unwrap_or("Error"),
        "timestamp": now_ms(),
    }))
    .into_response();
    *json.status_mut() = status;
    let (mut parts, _) = response.into_parts();
    parts.headers.extend(json.headers().clone());
    let mut response = Response::from_parts(parts, json.into_body());
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// `Cache-Control: no-store` (unless the route chose a policy: the public JWKS and discovery
/// documents are meant to be cached) and the request id on every response.
fn stamp_headers(response: &mut Response, id: &str) {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_ids_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (super::random_id(), super::random_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                "{id}"
            );
        }
        assert_ne!(a, b);
    }
}
