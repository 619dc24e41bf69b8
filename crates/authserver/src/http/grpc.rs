//! Envoy ext_authz over gRPC: `envoy.service.auth.v3.Authorization/Check` on its own listener
//! (`server.grpc_listen`), the same decision as `/auth/forward`.
//!
//! Contract:
//! - The attempt is the HTTP one: the headers Envoy copied from the client's request
//!   (`attributes.request.http.headers`, lower-case, with `:authority`, `:method`, `:path`) are
//!   made a `HeaderMap` and go through the same gate (regulation, cache, limiter, pacing); the
//!   answer is [`super::reply::respond`]'s, translated: OK carries the identity headers (replacing
//!   any the client sent), a denial carries the HTTP status, its headers (`WWW-Authenticate`,
//!   `Retry-After`) and the same JSON body.
//! - The client is `attributes.source.address` only when the gRPC peer is a trusted proxy (like
//!   `X-Forwarded-For`); otherwise the peer. A trusted peer's unreadable source is an unknown
//!   client, never the proxy (one attacker would otherwise ban everyone behind it).
//! - Telemetry and audit come from the same middleware as HTTP (one log line, one audit event),
//!   told the route label and the client through [`super::Surface`].
//! - Access rules (`rules.file`) route the request by `attributes.request.http`'s method, host
//!   and path, believed from a trusted peer only, as `/auth/forward` does ([`super::access`]):
//!   bypass is OK with empty identity headers, a refusal is the same 403 denial.
//! - Bad requests get a gRPC status and a log line that quotes nothing of the request:
//!   INVALID_ARGUMENT (no `attributes.request.http`, a header that cannot be one),
//!   RESOURCE_EXHAUSTED (a message over [`MAX_MESSAGE_BYTES`], headers over
//!   `server.max_header_bytes`). The transport (HTTP/2 limits, TLS, connection caps, drain) is
//!   the HTTP listener's: [`crate::server::serve`] runs this router.

use super::handlers::{auth_record, identity_headers};
use super::reply::respond;
use super::{AppState, ClientAddr, Surface};
use crate::decide::Attempt;
use authserver_core::Outcome;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue as HttpValue, StatusCode, header};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::google::rpc;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status};

/// The route label in the access log (a fixed string: the label set stays bounded).
pub const ROUTE: &str = "grpc:Check";

/// Largest `CheckRequest` accepted. Envoy sends the request's headers only (unless
/// `with_request_body` is on, which this server does not need); 64 KiB is four times the
/// default `server.max_header_bytes`, so a legitimate request never meets it.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest JSON body copied from a denial (ours are under 200 bytes).
const MAX_BODY_BYTES: usize = 4096;

/// The gRPC router for [`crate::server::serve`]: `Authorization/Check`, every other method
/// UNIMPLEMENTED (tonic's answer), with the HTTP surface's request context (log line, metrics,
/// audit).
pub fn app(state: Arc<AppState>) -> Router {
    let service =
        AuthorizationServer::new(Check { state: state.clone() }).max_decoding_message_size(MAX_MESSAGE_BYTES);
    Router::new()
        .fallback_service(service)
        .layer(axum::middleware::from_fn(edge))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_payload| {
            grpc_error(Code::Internal)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state,
            super::middleware::request_context,
        ))
}

/// The path of the one method served.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Around tonic: refusals that never reached [`Check`] are labelled and logged here.
///
/// tonic refuses an over-limit message with OUT_OF_RANGE; gRPC's own convention (and grpc-go's
/// servers, which Envoy users meet) is RESOURCE_EXHAUSTED, so the code is rewritten. A request
/// [`Check`] refused or never saw still gets a bounded route label (and the peer as its source).
async fn edge(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = if req.uri().path() == CHECK_PATH {
        ROUTE
    } else {
        "grpc:other"
    };
    let peer = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0.ip().to_canonical());
    let mut response = next.run(req).await;
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok());
    if code == Some("11") {
        tracing::warn!(
            limit = MAX_MESSAGE_BYTES,
            "ext_authz request refused: message too large"
        );
        let headers = response.headers_mut();
        headers.insert("grpc-status", HttpValue::from(Code::ResourceExhausted as i32));
        headers.insert(
            "grpc-message",
            HttpValue::from_static("CheckRequest%20too%20large"),
        );
    }
    if response.extensions().get::<Surface>().is_none() {
        response.extensions_mut().insert(Surface { route, source: peer });
    }
    response
}

/// A trailers-only gRPC error answer (for a panic, which never reaches tonic's own encoding).
fn grpc_error(code: Code) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::empty());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HttpValue::from_static("application/grpc"));
    headers.insert("grpc-status", HttpValue::from(code as i32));
    response
}

/// The `Authorization` service.
#[derive(Debug)]
struct Check {
    state: Arc<AppState>,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, Status> {
        let peer = request.extensions().get::<ClientAddr>().copied();
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let headers = headers_of(&attributes, self.state.settings.server.max_header_bytes).inspect_err(
            |e| tracing::info!(code = ?e.code(), reason = e.message(), "ext_authz request refused"),
        )?;
        let source = source_of(&self.state, peer, &attributes);
        let routed = super::access::route_told(&self.state, told(&self.state, peer, &attributes), source);
        if let Some(early) = routed.as_ref().and_then(|r| r.early(&self.state.settings.server)) {
            return Ok(surface(from_http(&self.state, early).await, source, None));
        }
        let timeout = Duration::from_millis(self.state.settings.server.request_timeout_ms);
        let values: Vec<&[u8]> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(HttpValue::as_bytes)
            .collect();
        let oauth = self.state.oauth.as_deref();
        let decide = crate::oauth::bearer::attempt_any(&self.state.gate, oauth, &values, source);
        let Ok(attempt) = tokio::time::timeout(timeout, decide).await else {
            // As the HTTP surface's timeout: 503, no decision recorded.
            return Ok(surface(timed_out(), source, None));
        };
        if let Some(routed) = &routed {
            // 200 here means "as the attempt says"; a 403 is the subject refusing the user.
            let verdict = routed.finish(axum::response::Response::default(), &attempt);
            if verdict.status() == StatusCode::FORBIDDEN {
                return Ok(surface(
                    from_http(&self.state, verdict).await,
                    source,
                    Some(attempt),
                ));
            }
        }
        let response = answer(&self.state, &attempt).await;
        Ok(surface(response, source, Some(attempt)))
    }
}

/// The original request for access rules: `attributes.request.http`'s method, host and path
/// (or the `:method`, `:authority`, `:path` pseudo-headers), believed from a trusted peer only.
fn told(
    state: &AppState,
    peer: Option<ClientAddr>,
    attributes: &AttributeContext,
) -> Result<super::original::Original, super::original::Conflict> {
    let trusted = peer.is_some_and(|p| state.proxies.trusts(p.0.ip().to_canonical()));
    let Some(http) = attributes
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .filter(|_| trusted)
    else {
        return Ok(super::original::Original::default());
    };
    let field = |value: &str, pseudo: &str| {
        Some(value.to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| http.headers.get(pseudo).cloned())
    };
    Ok(super::original::Original {
        method: field(&http.method, ":method").map(|m| m.to_ascii_uppercase()),
        host: field(&http.host, ":authority"),
        target: field(&http.path, ":path"),
    })
}

/// An HTTP answer of the rules (bypass 200 with empty identity headers, or 403) as a
/// `CheckResponse`.
async fn from_http(state: &AppState, http: axum::response::Response) -> CheckResponse {
    let (parts, body) = http.into_parts();
    if parts.status == StatusCode::OK {
        let scopes = scopes_header(state, &[]);
        let scopes_name = scopes
            .as_ref()
            .and_then(|h| h.header.as_ref())
            .map(|h| h.key.clone());
        let empty: Vec<(HeaderName, HttpValue)> = parts
            .headers
            .iter()
            .filter(|(n, _)| !matches!(*n, &header::CONTENT_TYPE | &header::CONTENT_LENGTH))
            .filter(|(n, _)| scopes_name.as_deref() != Some(n.as_str()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        return match <[(HeaderName, HttpValue); 2]>::try_from(empty) {
            Ok(identity) => allowed(&identity, scopes),
            // Never an OK without the (empty) identity headers the proxy copies.
            Err(_) => denied(
                StatusCode::INTERNAL_SERVER_ERROR,
                &HeaderMap::new(),
                internal_body(),
            ),
        };
    }
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    denied(
        parts.status,
        &parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The `CheckResponse` as a tonic response carrying what the middleware records.
fn surface(
    response: CheckResponse,
    source: Option<IpAddr>,
    attempt: Option<Attempt>,
) -> tonic::Response<CheckResponse> {
    let mut response = tonic::Response::new(response);
    let extensions = response.extensions_mut();
    extensions.insert(Surface { route: ROUTE, source });
    if let Some(attempt) = attempt {
        extensions.insert(auth_record(attempt));
    }
    response
}

/// The client's request headers as an HTTP `HeaderMap`. Envoy sends them in `headers` (or, with
/// `encode_raw_headers`, in `header_map` with raw values); both are read.
fn headers_of(attributes: &AttributeContext, limit: usize) -> Result<HeaderMap, Status> {
    let http = attributes
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or_else(|| Status::invalid_argument("attributes.request.http is missing"))?;
    let raw = http.header_map.iter().flat_map(|m| &m.headers).map(|h| {
        let value = if h.raw_value.is_empty() {
            h.value.as_bytes()
        } else {
            &h.raw_value[..]
        };
        (h.key.as_str(), value)
    });
    let pairs: Vec<(&str, &[u8])> = http
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .chain(raw)
        .collect();
    // Pseudo-headers (`:authority`, `:method`, `:path`) are no header names; the decision
    // needs none of them. They still count against the limit below.
    // The HTTP listener answers 431 past this; the same client must not get further here.
    if pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > limit {
        return Err(Status::resource_exhausted(
            "headers exceed server.max_header_bytes",
        ));
    }
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs.into_iter().filter(|(name, _)| !name.starts_with(':')) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Status::invalid_argument("a header name is not valid"))?;
        let value = HttpValue::from_bytes(value)
            .map_err(|_| Status::invalid_argument("a header value is not valid"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The client the attempt is regulated as: Envoy's `source.address` when the gRPC peer is a
/// trusted proxy (an unreadable one: unknown, never the proxy), else the peer itself.
fn source_of(state: &AppState, peer: Option<ClientAddr>, attributes: &AttributeContext) -> Option<IpAddr> {
    let peer = peer?.0.ip().to_canonical();
    if !state.proxies.trusts(peer) {
        return Some(peer);
    }
    let socket = attributes
        .source
        .as_ref()
        .and_then(|s| s.address.as_ref())
        .and_then(|a| a.address.as_ref());
    match socket {
        Some(address::Address::SocketAddress(s)) => super::client::parse_hop(&s.address),
        // A pipe or internal address: no client address to regulate by.
        Some(_) => None,
        // An Envoy that sends no source at all: the peer, as HTTP without X-Forwarded-For.
        None => Some(peer),
    }
}

/// The `rpc.Status` code for an HTTP answer (the ext_authz proto: OK allows, anything else
/// denies; the code says why, as gRPC's HTTP mapping does).
fn code_of(status: StatusCode) -> Code {
    match status.as_u16() {
        200 => Code::Ok,
        401 => Code::Unauthenticated,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        400..=499 => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

/// The decision as a `CheckResponse`, built from the same HTTP answer `/auth/forward` gives.
async fn answer(state: &AppState, attempt: &Attempt) -> CheckResponse {
    let server = &state.settings.server;
    let http = respond(&attempt.decision, attempt.retry_after, &server.realm, true);
    if let (Outcome::Allowed { roles }, Some(user)) = (&attempt.decision.outcome, &attempt.username) {
        if let Some(identity) = identity_headers(server, user, roles) {
            return allowed(&identity, scopes_header(state, &attempt.scopes));
        }
        tracing::error!(
            user_hash = attempt.user_hash.as_deref().unwrap_or(""),
            "identity not representable as forward headers; answering 500"
        );
        return denied(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            internal_body(),
        );
    }
    let (parts, body) = http.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    denied(
        parts.status,
        &parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn internal_body() -> String {
    serde_json::json!({"allowed": false, "message": "Internal server error", "timestamp": authserver_core::clock::now_ms()})
        .to_string()
}

fn timed_out() -> CheckResponse {
    let body = serde_json::json!({"allowed": false, "message": "Service Unavailable", "timestamp": authserver_core::clock::now_ms()});
    denied(
        StatusCode::SERVICE_UNAVAILABLE,
        &HeaderMap::new(),
        body.to_string(),
    )
}

/// One header Envoy sets on the request it forwards, replacing any the client sent (a client
/// must not be able to claim an identity).
fn overwrite(name: &str, value: &[u8]) -> HeaderValueOption {
    #[allow(deprecated)] // `append` is deprecated for `append_action`; older Envoys read only it.
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            raw_value: Vec::new(),
        }),
        append: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: true,
    }
}

/// The scopes header while OAuth is on (as `/auth/forward`): set on every OK answer, empty for
/// Basic users, so Envoy overwrites a client-sent `Remote-Scopes` instead of passing it on.
fn scopes_header(state: &AppState, scopes: &[String]) -> Option<HeaderValueOption> {
    let issuer = state.oauth.as_deref()?;
    let name = issuer.settings.forward_scopes_header.name();
    Some(overwrite(name.as_str(), scopes.join(" ").as_bytes()))
}

fn allowed(identity: &[(HeaderName, HttpValue); 2], scopes: Option<HeaderValueOption>) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::Ok as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: identity
                .iter()
                .map(|(n, v)| overwrite(n.as_str(), v.as_bytes()))
                .chain(scopes)
                .collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A denial: the HTTP status, the headers the HTTP answer had that a client needs (the challenge,
/// Retry-After; the JSON content type), and the body.
fn denied(status: StatusCode, headers: &HeaderMap, body: String) -> CheckResponse {
    let passed = [
        header::WWW_AUTHENTICATE,
        header::RETRY_AFTER,
        header::CONTENT_TYPE,
    ];
    let mut out: Vec<HeaderValueOption> = passed
        .iter()
        .filter_map(|name| headers.get(name).map(|v| overwrite(name.as_str(), v.as_bytes())))
        .collect();
    if !headers.contains_key(header::CONTENT_TYPE) {
        out.push(overwrite("content-type", b"application/json"));
    }
    out.push(overwrite("cache-control", b"no-store"));
    CheckResponse {
        status: Some(rpc::Status {
            code: code_of(status) as i32,
            message: status.canonical_reason().unwrap_or("denied").to_owned(),
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status.as_u16()),
            }),
            headers: out,
            body,
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_http_status() {
        assert_eq!(code_of(StatusCode::OK), Code::Ok);
        assert_eq!(code_of(StatusCode::UNAUTHORIZED), Code::Unauthenticated);
        assert_eq!(code_of(StatusCode::TOO_MANY_REQUESTS), Code::ResourceExhausted);
        assert_eq!(code_of(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(code_of(StatusCode::BAD_REQUEST), Code::PermissionDenied);
        assert_eq!(code_of(StatusCode::INTERNAL_SERVER_ERROR), Code::Internal);
    }

    #[test]
    fn headers_over_the_limit_or_invalid_are_refused() {
        use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
        let with = |k: &str, v: &str| AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    headers: [(k.to_owned(), v.to_owned())].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            headers_of(&with(":authority", "x"), 100).is_ok(),
            "pseudo-headers are fine"
        );
        let code = |a: &AttributeContext, limit| headers_of(a, limit).map(|_| ()).map_err(|e| e.code());
        assert_eq!(
            code(&with("a", &"x".repeat(200)), 100),
            Err(Code::ResourceExhausted)
        );
        assert_eq!(code(&with("bad name", "x"), 100), Err(Code::InvalidArgument));
        assert_eq!(code(&with("a", "x\ny"), 100), Err(Code::InvalidArgument));
        assert_eq!(
            code(&AttributeContext::default(), 100),
            Err(Code::InvalidArgument)
        );
    }
}
