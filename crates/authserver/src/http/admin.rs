//! Operator endpoints: Prometheus `/metrics`, JSON `/stats`, the self-contained `/dashboard`,
//! the detailed `/ready` and the cache purge. Served on the admin listener only.
//!
//! Browsers are the threat here even on loopback: a web page the operator visits can send
//! requests to `127.0.0.1:9090`. So every admin route checks `Host` (a DNS-rebinding page
//! arrives with its own name), the purge refuses anything a browser sends cross-site (an
//! `Origin` header) or that came through a proxy, and the pages carry a CSP that allows only
//! their own inline code and same-origin `fetch`.

use super::AppState;
use super::ClientAddr;
use authserver_core::clock::now_ms;
use axum::Extension;
use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
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

/// Headers that say a request was relayed by a proxy.
const FORWARDING_HEADERS: [&str; 4] = ["forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host"];

fn is_allowed_host(host: &str, allowed: &[String]) -> bool {
    // `Host` is `name[:port]` or `[v6][:port]`; an IP literal cannot be rebound by DNS. Anything
    // else (a bad port, text after `]`) is refused rather than guessed at.
    let is_port = |p: &str| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').is_some_and(|(ip, after)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
        });
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return false,
        None => host,
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Every admin route: `Host` must be an IP literal, `localhost` or one of `admin.allowed_hosts`
/// (421 otherwise); responses are never sniffed, framed or sent with a referrer.
pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // Every name the request carries must pass: the `Host` header (an unreadable one is not
    // skipped) and the request target's authority (absolute-form, HTTP/2 `:authority`), which
    // RFC 9112 says wins over `Host` when both are there.
    let allowed = &state.settings.admin.allowed_hosts;
    let header = req.headers().get(header::HOST).map(|h| h.to_str().ok());
    let target = req.uri().authority().map(|a| a.as_str());
    let ok = (header.is_some() || target.is_some())
        && header.is_none_or(|h| h.is_some_and(|h| is_allowed_host(h, allowed)))
        && target.is_none_or(|t| is_allowed_host(t, allowed));
    if !ok {
        tracing::warn!("admin request refused: Host is not an address, localhost or admin.allowed_hosts");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            Json(json!({"message": "unknown Host for the admin listener (see admin.allowed_hosts)"})),
        )
            .into_response();
    }
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `GET /ready` on the admin listener: readiness with the store's details.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let status = state.gate.store.status();
    let code = if status.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut store = json!({"kind": status.kind, "version": status.version, "users": status.users,
                           "ageSeconds": status.age_seconds, "lastError": status.last_error});
    if let Some(entries) = status.cached_entries {
        store["cachedEntries"] = entries.into();
    }
    let body = json!({
        "ready": status.ready,
        "store": store,
        "rules": rules_detail(&state),
        "timestamp": now_ms(),
    });
    (code, Json(body)).into_response()
}

/// The access rules in service (`null` without rules): version, count and the last reload
/// error while a broken edit is on disk (the last good rules serve, so readiness is unchanged).
fn rules_detail(state: &AppState) -> serde_json::Value {
    let r = state.rules.status();
    if !r.configured {
        return serde_json::Value::Null;
    }
    json!({"version": r.version, "rules": r.rules, "lastError": r.last_error})
}

/// `POST /admin/cache/purge`: drops every verified credential (after a suspected leak, so the
/// next request of every client runs a fresh verification against the current store).
///
/// Only a direct, non-browser request from loopback: the client as resolved through
/// `trusted_proxies` must be loopback and nothing may say the request was forwarded (a local
/// reverse proxy would otherwise make every remote client "loopback"); a request carrying
/// `Origin` is a browser's, possibly a cross-site form the operator's browser was tricked into
/// sending (no preflight protects a form POST), and is refused.
pub async fn purge(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let forwarded = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
    let client = peer.and_then(|p| state.proxies.client(p.0.0.ip(), &headers));
    let refusal = if forwarded {
        Some("purge is refused through a proxy: call the admin listener directly")
    } else if headers.contains_key(header::ORIGIN) {
        Some("purge is refused from a browser (Origin present)")
    } else if !client.is_some_and(|c| c.is_loopback()) {
        Some("purge is allowed from loopback only")
    } else {
        None
    };
    if let Some(message) = refusal {
        tracing::warn!(reason = message, "cache purge refused");
        return (StatusCode::FORBIDDEN, Json(json!({"message": message}))).into_response();
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
    let abandoned = state.gate.limiter.abandoned();
    let legacy = state.gate.legacy_counts();
    let body = registry.render_prometheus(&store.status(), store.counters(), regulation, abandoned, legacy);
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

/// The dashboard's Content-Security-Policy: its own inline style and script by hash, `fetch` to
/// the same origin, nothing else; never framed.
fn dashboard_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        let hashes = |tag: &str| {
            let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
            DASHBOARD
                .split(open.as_str())
                .skip(1)
                .filter_map(|rest| rest.split_once(close.as_str()).map(|(body, _)| body))
                .map(|body| {
                    use base64::Engine as _;
                    use sha2::Digest as _;
                    let digest = sha2::Sha256::digest(body.as_bytes());
                    format!(" 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
                })
                .collect::<String>()
        };
        format!(
            "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hashes("script"),
            hashes("style")
        )
    })
}

/// `GET /dashboard`: live charts fed by `/stats`.
pub async fn dashboard() -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, dashboard_csp())],
        Html(DASHBOARD),
    )
        .into_response()
}
