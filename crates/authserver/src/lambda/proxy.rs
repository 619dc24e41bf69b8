//! Proxy mode: API Gateway REST API (payload 1.0), HTTP API (payload 2.0), ALB and Function URL
//! events through the same router as the standalone server ([`crate::http::app`]).
//!
//! Before routing, the API Gateway stage is taken off the path, so `/prod/auth/validate` and
//! `/prod/health` reach `/auth/validate` and `/health`, and the caller's address from the event
//! becomes the [`ClientAddr`] the router's telemetry and regulation use.

use crate::http::reply::now_ms;
use crate::http::{AppState, ClientAddr, app};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower::ServiceExt;

use super::ColdStart;
use authserver_aws::SecretsManagerStore;

/// Everything one proxy invocation needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Proxy {
    router: axum::Router,
    secrets: Option<SecretsManagerStore>,
    cold: Arc<ColdStart>,
}

impl Proxy {
    /// The handler over `state`'s router. `secrets` (when that store is configured) is checked
    /// for freshness before each invocation.
    pub fn new(state: Arc<AppState>, secrets: Option<SecretsManagerStore>, cold: Arc<ColdStart>) -> Self {
        Self {
            router: app(state),
            secrets,
            cold,
        }
    }

    /// Answers one request: never fails, a panic becomes a 500.
    pub async fn handle(self, request: Request) -> Result<Response, Infallible> {
        self.cold.note("proxy");
        or_500(async move {
            if let Some(store) = &self.secrets {
                store.ensure_fresh().await;
            }
            self.router.oneshot(prepare(request)).await
        })
        .await
    }
}

/// Runs `response` on its own task so that a panic inside becomes a 500 without the panic's
/// message (it may quote request data) and the runtime loop carries on. The router catches its
/// handlers' panics itself; this covers everything else on the invocation path.
pub async fn or_500<F>(response: F) -> Result<Response, Infallible>
where
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    match tokio::spawn(response).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(panicked = e.is_panic(), "request handler failed; answering 500");
            Ok(internal_error())
        }
    }
}

/// The 500 answer: the JSON shape of every other answer, nothing about the failure.
pub fn internal_error() -> Response {
    let body = serde_json::json!({
        "allowed": false,
        "message": "Internal server error",
        "timestamp": now_ms(),
    });
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Strips the stage from the path and records the caller's address.
pub fn prepare(mut request: Request) -> Request {
    if let Some(path) = routed_path(&request) {
        let mut parts = request.uri().clone().into_parts();
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        if let Ok(pq) = PathAndQuery::try_from(format!("{path}{query}")) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    if let Some(ip) = source_ip(&request) {
        request
            .extensions_mut()
            .insert(ClientAddr(SocketAddr::new(ip, 0)));
    }
    request
}

/// The path the router should see, when it differs from the one lambda_http built.
///
/// lambda_http puts the stage in front of API Gateway paths (`/{stage}{path}`) unless the path
/// already starts with it. HTTP API's `rawPath` carries the stage for named stages, so it is
/// taken off once. REST API's `path` is stage-free (its `requestContext.path` has the stage), so
/// the prefix lambda_http added is taken off, except when the path merely begins with a segment
/// named like the stage (then lambda_http added nothing). ALB and Function URL paths (stage
/// `$default`) are left alone.
fn routed_path(request: &Request) -> Option<String> {
    let path = request.uri().path();
    let (stage, keep) = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => (ctx.stage.as_deref()?, false),
        RequestContext::ApiGatewayV1(ctx) => {
            let raw = request.raw_http_path();
            let stage = ctx.stage.as_deref()?;
            let raw_has_stage_segment = strip_stage(raw, stage).is_some();
            (stage, raw_has_stage_segment && ctx.path.as_deref() != Some(raw))
        }
        _ => return None,
    };
    if keep {
        return None;
    }
    strip_stage(path, stage).map(str::to_owned)
}

/// `path` without a leading `/{stage}` segment, if it has one (`$default` never does).
fn strip_stage<'a>(path: &'a str, stage: &str) -> Option<&'a str> {
    if stage.is_empty() || stage == "$default" {
        return None;
    }
    let rest = path.strip_prefix('/')?.strip_prefix(stage)?;
    match rest {
        "" => Some("/"),
        r if r.starts_with('/') => Some(r),
        _ => None,
    }
}

/// The caller's address as API Gateway saw it.
fn source_ip(request: &Request) -> Option<IpAddr> {
    let ip = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.as_deref(),
        _ => None,
    };
    ip?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::strip_stage;

    #[test]
    fn stage_stripping_takes_one_whole_segment() {
        assert_eq!(strip_stage("/prod/auth/validate", "prod"), Some("/auth/validate"));
        assert_eq!(strip_stage("/prod", "prod"), Some("/"));
        assert_eq!(strip_stage("/production/x", "prod"), None);
        assert_eq!(strip_stage("/auth/validate", "prod"), None);
        assert_eq!(strip_stage("/prod/x", "$default"), None);
        assert_eq!(strip_stage("/x", ""), None);
    }
}
