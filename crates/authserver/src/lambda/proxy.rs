//! Proxy mode: API Gateway REST API (payload 1.0), HTTP API (payload 2.0), ALB and Function URL
//! events through the same router as the standalone server ([`crate::http::app`]).
//!
//! The handler takes the raw event, so that it can judge what lambda_http's conversion hides or
//! gets wrong ([`super::event`], [`super::source`]):
//! - an event of another shape (an authorizer event, anything unknown) is refused with an error
//!   log and a Lambda error, never answered;
//! - the path the router sees is the caller's path without the API Gateway stage (REST `path`;
//!   HTTP API `rawPath` less the stage on the `execute-api` endpoint only);
//! - repeated `Authorization` headers in `multiValueHeaders` all reach the router (→ 400);
//! - the client address comes from `sourceIp`, the right-most ALB `X-Forwarded-For` hop, or a
//!   proven `CloudFront-Viewer-Address`, and becomes the [`ClientAddr`] regulation uses.
//!
//! lambda_http's conversion panics on some inputs (a body marked base64 that is not, a `Host` or
//! `X-Forwarded-Proto` that makes no URL); such an event answers the JSON 500 like any other
//! internal failure, not a Lambda error. Before init has a snapshot to decide with, every request
//! answers 503 with `Retry-After`.

use super::ColdStart;
use super::event::{self, Shape};
use super::init::{Ready, Shared};
use super::source::{self, OriginSecret};
use crate::http::{AppState, ClientAddr};
use authserver_aws::SecretsManagerStore;
use authserver_core::clock::now_ms;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use lambda_http::lambda_runtime::Diagnostic;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Request, Service};
use serde::Deserialize;
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tower::ServiceExt;

/// Everything one proxy invocation needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Shared,
    secret: OriginSecret,
    cold: Arc<ColdStart>,
}

/// What the raw event says that the converted request no longer does.
#[derive(Debug, Clone, Default)]
struct Facts {
    path: Option<String>,
    source: Option<IpAddr>,
    authorization: Option<Vec<String>>,
}

impl Proxy {
    /// The handler over `state`'s router. `secrets` (when that store is configured) is checked
    /// for freshness before each invocation.
    pub fn new(state: Arc<AppState>, secrets: Option<SecretsManagerStore>, cold: Arc<ColdStart>) -> Self {
        let secret = OriginSecret::from_settings(&state.settings);
        Self::from_shared(Shared::ready(Ready::new(state, secrets)), secret, cold)
    }

    /// The handler over a state init may still be building (503 until it is ready).
    pub fn from_shared(shared: Shared, secret: OriginSecret, cold: Arc<ColdStart>) -> Self {
        Self { shared, secret, cold }
    }

    /// Answers one event with the response lambda_http would serialise. Never fails for an HTTP
    /// event (a panic becomes a 500); refuses other events with an error.
    pub async fn handle(self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        self.cold.note("proxy");
        let LambdaEvent { payload, context } = event;
        let shape = event::shape(&payload);
        if !matches!(shape, Shape::RestProxy | Shape::HttpProxy | Shape::Alb) {
            return Err(refuse(shape));
        }
        let facts = Facts {
            path: event::routed_path(&payload, shape),
            source: source::client_address(&payload, &self.secret),
            authorization: event::repeated_authorization(&payload),
        };
        let request = LambdaRequest::deserialize(&payload).map_err(|_| refuse(Shape::Unknown))?;
        let answer = {
            let this = self.clone();
            adapt(request, context.clone(), move |req| {
                this.clone().route(req, facts.clone())
            })
        };
        match answer {
            Some(future) => future.await,
            None => {
                // The conversion panicked on something in the event: answer 500 in the shape
                // the event's source expects, from a copy without the parts that panic.
                tracing::warn!(
                    event = shape.as_str(),
                    "event not convertible to an HTTP request; answering 500"
                );
                let request =
                    LambdaRequest::deserialize(&sanitised(payload)).map_err(|_| refuse(Shape::Unknown))?;
                let fallback = adapt(request, context, |_| async { Ok(internal_error()) });
                match fallback {
                    Some(future) => future.await,
                    None => Err(diagnostic("InternalError", "event not convertible")),
                }
            }
        }
    }

    /// The router's answer for one converted request (503 while init is unfinished).
    async fn route(self, mut request: Request, facts: Facts) -> Result<Response, Infallible> {
        let Some(ready) = self.shared.get() else {
            tracing::warn!("not ready (init still loading the key or the first snapshot); answering 503");
            return Ok(not_ready());
        };
        apply(&mut request, facts);
        let (router, secrets) = (ready.router.clone(), ready.secrets.clone());
        or_500(async move {
            if let Some(store) = &secrets {
                store.ensure_fresh().await;
            }
            router.oneshot(request).await
        })
        .await
    }
}

/// Converts `request` with lambda_http's [`Adapter`] (its request conversion, context and
/// X-Ray header, its response shapes) around `service`; `None` when the conversion panicked.
fn adapt<S, F>(
    request: LambdaRequest,
    context: Context,
    service: S,
) -> Option<impl Future<Output = Result<Value, Diagnostic>>>
where
    S: FnMut(Request) -> F + Send + 'static,
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    let mut adapter = Adapter::from(lambda_http::service_fn(service));
    let event = LambdaEvent::new(request, context);
    let future = std::panic::catch_unwind(AssertUnwindSafe(move || adapter.call(event))).ok()?;
    Some(async move {
        let response = future.await.unwrap_or_else(|never| match never {});
        serde_json::to_value(&response).map_err(|_| diagnostic("InternalError", "response not serialisable"))
    })
}

/// The event without what lambda_http's conversion panics on: body, host and scheme headers,
/// domain name, odd paths.
fn sanitised(mut event: Value) -> Value {
    if let Some(map) = event.as_object_mut() {
        map.insert("body".into(), Value::Null);
        map.insert("isBase64Encoded".into(), Value::Bool(false));
        for path in ["path", "rawPath"] {
            if map.contains_key(path) {
                map.insert(path.into(), Value::String("/".into()));
            }
        }
        for headers in ["headers", "multiValueHeaders"] {
            if let Some(h) = map.get_mut(headers).and_then(Value::as_object_mut) {
                h.retain(|k, _| {
                    !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("x-forwarded-proto")
                });
            }
        }
        if let Some(ctx) = map.get_mut("requestContext").and_then(Value::as_object_mut) {
            ctx.remove("domainName");
        }
    }
    event
}

/// Puts the raw event's facts on the converted request.
fn apply(request: &mut Request, facts: Facts) {
    if let Some(path) = facts.path.filter(|p| p != request.uri().path()) {
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(format!("{path}{query}")) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    if let Some(values) = facts.authorization {
        let headers = request.headers_mut();
        headers.remove(header::AUTHORIZATION);
        for v in values {
            // An unrepresentable value still counts: two values are malformed whatever they hold.
            let v = HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("invalid"));
            headers.append(header::AUTHORIZATION, v);
        }
    }
    if let Some(ip) = facts.source {
        request
            .extensions_mut()
            .insert(ClientAddr(SocketAddr::new(ip, 0)));
    }
}

/// Logs and builds the refusal of an event this mode does not serve.
fn refuse(shape: Shape) -> Diagnostic {
    tracing::error!(
        event = shape.as_str(),
        "proxy mode received an event it does not serve; refusing it (check the function's trigger and AUTHSERVER_LAMBDA_MODE)"
    );
    diagnostic(
        "UnsupportedEvent",
        &format!("proxy mode does not answer {} events", shape.as_str()),
    )
}

fn diagnostic(kind: &str, message: &str) -> Diagnostic {
    Diagnostic {
        error_type: kind.into(),
        error_message: message.into(),
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
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// The answer before init has a state: 503, try again in a second.
fn not_ready() -> Response {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "allowed": false,
        "message": message,
        "timestamp": now_ms(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
