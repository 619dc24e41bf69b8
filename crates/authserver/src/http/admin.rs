//! Operator endpoints: Prometheus `/metrics`, JSON `/stats`, the self-contained `/dashboard`.

use super::AppState;
use super::ClientAddr;
use super::reply::now_ms;
use axum::Extension;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;

/// The dashboard page: inline CSS and JS, no CDN, no external fonts.
const DASHBOARD: &str = include_str!("dashboard.html");

/// The admin routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/dashboard", get(dashboard))
        .route("/admin/cache/purge", axum::routing::post(purge))
}

/// `POST /admin/cache/purge`: drops every verified credential (after a suspected leak, so the
/// next request of every client runs a fresh verification against the current store). Only
/// from a loopback address: the admin routes may share the public listener.
pub async fn purge(State(state): State<Arc<AppState>>, peer: Option<Extension<ClientAddr>>) -> Response {
    if !peer.is_some_and(|p| p.0.0.ip().is_loopback()) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "purge is allowed from loopback only"})),
        )
            .into_response();
    }
    let dropped = state.gate.auth.cache().len();
    state.gate.auth.cache().clear();
    state.audit.emit(authserver_core::AuditEvent::AdminAction {
        action: "cache.purge".into(),
        target_user_hash: None,
        resource: "verified-credential cache".into(),
        actor: "admin-endpoint".into(),
    });
    tracing::warn!(dropped, "verified-credential cache purged");
    Json(json!({"purged": dropped, "timestamp": now_ms()})).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let store = &state.gate.store;
    let reg = &state.gate.regulator;
    let regulation = crate::telemetry::metrics::RegulationCounters {
        bans: reg.bans.load(std::sync::atomic::Ordering::Relaxed),
        backend_errors: reg.backend_errors.load(std::sync::atomic::Ordering::Relaxed),
    };
    let registry = &state.telemetry.registry;
    let body = registry.render_prometheus(&store.status(), store.counters(), regulation);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /stats`: the sliding-window figures plus store and cache state.
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let now = now_ms();
    let summary = state.telemetry.window.summary(now / 1000);
    let store = state.gate.store.status();
    Json(json!({
        "timestamp": now,
        "window": summary,
        "store": store,
        "credentialCache": {"entries": state.gate.auth.cache().len()},
        "hashSlotsFree": state.gate.limiter.available(),
        "regulation": state.gate.regulator.status(),
    }))
}

/// `GET /dashboard`: live charts fed by `/stats`.
pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}
