//! The outermost layer: request id in and out, `Cache-Control: no-store` and a JSON body on
//! every response, and exactly one log line per request. The line carries `user_hash`, never the
//! username, password, header or hash.

use super::reply::now_ms;
use authserver_core::{CacheUse, Reason};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

/// The request id header (read when valid, always written).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What the auth handlers tell the log line (a response extension).
#[derive(Debug, Clone)]
pub struct AuthRecord {
    /// Denial reason, if denied.
    pub reason: Option<Reason>,
    /// Cache use.
    pub cache: CacheUse,
    /// Keyed username hash.
    pub user_hash: Option<String>,
    /// Argon2id time, if one ran.
    pub verify_time: Option<Duration>,
}

/// An incoming id is kept when it is short and plain; anything else is replaced.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| format!("{:032x}", rand::random::<u128>()), str::to_owned)
}

/// See the module docs.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    // The route template, not the raw path: raw paths are caller-chosen text.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|v| v != "application/json")
    {
        // Framework answers (405, 413, 503 timeout, ...) get the same JSON shape as ours.
        let mut json = axum::Json(serde_json::json!({
            "allowed": false,
            "message": status.canonical_reason().unwrap_or("Error"),
            "timestamp": now_ms(),
        }))
        .into_response();
        *json.status_mut() = status;
        let (mut parts, _) = response.into_parts();
        parts.headers.extend(json.headers().clone());
        response = Response::from_parts(parts, json.into_body());
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), v);
    }
    let record = response.extensions().get::<AuthRecord>().cloned();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    match record {
        Some(r) => tracing::info!(
            request_id = %id,
            method = %method,
            route = %route,
            status = status.as_u16(),
            outcome = if r.reason.is_none() { "allowed" } else { "denied" },
            reason = r.reason.map(Reason::as_str),
            user_hash = r.user_hash.as_deref(),
            cache = r.cache.as_str(),
            verify_ms = r.verify_time.map(|d| d.as_secs_f64() * 1000.0),
            latency_ms,
            "auth request"
        ),
        None => tracing::info!(
            request_id = %id,
            method = %method,
            route = %route,
            status = status.as_u16(),
            latency_ms,
            "request"
        ),
    }
    response
}
