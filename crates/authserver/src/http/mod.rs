//! The HTTP surface: one [`app`] for the standalone server and Lambda alike.
//!
//! # Layout
//! - [`handlers`]: the auth and health routes.
//! - [`admin`]: `/metrics`, `/stats`, `/dashboard`, the detailed `/ready`, the cache purge (on
//!   the admin listener only).
//! - [`original`]: the request a proxy asks about (method, host, path), from its headers.
//! - [`access`]: access rules on `/auth/forward`: bypass, deny, or authenticate and check.
//! - [`client`]: the client address (socket peer, or `X-Forwarded-For` past trusted proxies).
//! - [`reply`]: decisions → status, headers and JSON body (the contract table).
//! - [`oauth`]: the OAuth 2.0 token, introspection, revocation, JWKS and discovery routes.
//! - [`middleware`]: request id, trace ids, JSON error bodies, `Cache-Control`, telemetry and the
//!   per-request log line.
//! - `grpc` (feature `ext-authz-grpc`): Envoy's ext_authz `Authorization/Check` over gRPC, the
//!   same decision as `/auth/forward` on its own listener.

pub mod access;
pub mod admin;
pub mod bearer;
pub mod client;
#[cfg(feature = "ext-authz-grpc")]
pub mod grpc;
pub mod handlers;
pub mod middleware;
pub mod oauth;
pub mod original;
pub mod reply;

use crate::config::Settings;
use crate::decide::Gate;
use crate::telemetry::Telemetry;
use axum::Router;
use axum::routing::{any, get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Everything a request handler may touch.
#[derive(Debug)]
pub struct AppState {
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// The decision machinery (shared with the verifications it starts, which finish and are
    /// recorded even when their request is dropped).
    pub gate: Arc<Gate>,
    /// Metrics, stats, EMF.
    pub telemetry: Telemetry,
    /// The audit trail.
    pub audit: Arc<dyn authserver_core::AuditSink>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub proxies: client::TrustedProxies,
    /// The access rules in service (none: any authenticated user passes).
    pub rules: Arc<crate::access::AccessRules>,
    /// The OAuth 2.0 issuer, when `[oauth]` is enabled.
    pub oauth: Option<Arc<crate::oauth::Issuer>>,
}

/// The client's address as the server saw it (a request extension set per connection).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Marks a request the standalone server read from a socket (not a Lambda event, not a test's
/// in-process request): wire-level rules such as RFC 9112's `Host` rule apply to it.
#[derive(Debug, Clone, Copy)]
pub struct FromSocket;

/// What a surface that carries the client in its message (gRPC `CheckRequest`), not in the
/// HTTP request, tells the middleware (a response extension): the route label and the client
/// the attempt was regulated as, for the log line, metrics and audit event.
#[derive(Debug, Clone, Copy)]
pub struct Surface {
    /// The route label (a fixed string: bounded).
    pub route: &'static str,
    /// The client address the attempt used.
    pub source: Option<std::net::IpAddr>,
}

/// The public router (standalone server and Lambda proxy): the auth routes, `/health` and a
/// `/ready` that says ready or not and nothing more. Operational routes are never here.
pub fn app(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/auth/validate", post(handlers::validate))
        .route("/auth", post(handlers::validate))
        .route("/auth/forward", any(handlers::forward))
        // Envoy's HTTP ext_authz (and Envoy Gateway's extAuth.http) append the original path to
        // their path prefix; the decision never depends on it, and the route template (not the
        // raw path) labels metrics, so the label set stays bounded. The wildcard does not match an
        // empty rest, hence the bare `/auth/forward/` (a request for `/`).
        .route("/auth/forward/", any(handlers::forward))
        .route("/auth/forward/{*path}", any(handlers::forward))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .merge(oauth::routes());
    layered(router, state)
}

/// The admin router, for the admin listener only (loopback by default): `/metrics`, `/stats`,
/// `/dashboard`, the detailed `/ready`, the cache purge; `Host` checked against DNS rebinding.
pub fn admin_app(state: Arc<AppState>) -> Router {
    let router = admin::routes()
        .route("/health", get(handlers::health))
        .route("/ready", get(admin::ready))
        .layer(axum::middleware::from_fn_with_state(state.clone(), admin::guard));
    layered(router, state)
}

fn layered(router: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let server = &state.settings.server;
    let timeout = Duration::from_millis(server.request_timeout_ms);
    router
        .fallback(handlers::not_found)
        // A panicking handler answers 500 (JSON, filled in by the middleware) without its
        // payload, and the connection stays up; the panic hook logs the location only.
        .layer(CatchPanicLayer::custom(|_payload| {
            axum::response::IntoResponse::into_response(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        }))
        .layer(RequestBodyLimitLayer::new(server.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .with_state(state)
}
