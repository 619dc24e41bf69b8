//! The HTTP surface: one [`app`] for the standalone server and Lambda alike.
//!
//! # Layout
//! - [`handlers`]: the routes.
//! - [`reply`]: decisions → status, headers and JSON body (the contract table).
//! - [`middleware`]: request id, JSON error bodies, `Cache-Control`, the per-request log line.

pub mod handlers;
pub mod middleware;
pub mod reply;

use crate::config::Settings;
use crate::decide::Gate;
use axum::Router;
use axum::routing::{any, get, post};
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Everything a request handler may touch.
#[derive(Debug)]
pub struct AppState {
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// The decision machinery.
    pub gate: Gate,
}

/// The router with every route and layer.
pub fn app(state: Arc<AppState>) -> Router {
    let server = &state.settings.server;
    let timeout = Duration::from_millis(server.request_timeout_ms);
    let body_limit = server.max_body_bytes;
    Router::new()
        .route("/auth/validate", post(handlers::validate))
        .route("/auth", post(handlers::validate))
        .route("/auth/forward", any(handlers::forward))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .fallback(handlers::not_found)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::request_context))
        .with_state(state)
}
