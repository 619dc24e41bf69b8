//! The contract table: a decision becomes a status, headers and a JSON body. Unknown user, wrong
//! password and disabled user produce byte-identical bodies (bar the timestamp).

use authserver_core::clock::now_ms;
use authserver_core::{Decision, Outcome, Reason};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

/// The JSON body of every auth answer.
#[derive(Debug, Serialize)]
pub struct AuthBody<'a> {
    /// Whether the credentials were accepted.
    pub allowed: bool,
    /// A fixed message per status.
    pub message: &'static str,
    /// Roles, on success only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<&'a [String]>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// Status and message for a decision. `forward` maps malformed to 401, since reverse proxies
/// (nginx `auth_request`) only understand 2xx, 401 and 403 from an auth subrequest.
pub fn status_of(decision: &Decision, forward: bool) -> (StatusCode, &'static str) {
    match decision.outcome {
        Outcome::Allowed { .. } => (StatusCode::OK, "Authentication successful"),
        Outcome::Denied(r) => match r {
            Reason::UnknownUser | Reason::WrongPassword | Reason::Disabled | Reason::Missing => {
                (StatusCode::UNAUTHORIZED, "Invalid credentials")
            }
            Reason::Malformed if forward => (StatusCode::UNAUTHORIZED, "Invalid credentials"),
            Reason::Malformed => (StatusCode::BAD_REQUEST, "Invalid Authorization header format"),
            Reason::RateLimited | Reason::LockedOut => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            Reason::Overloaded | Reason::StoreUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable")
            }
        },
    }
}

/// The full response for a decision.
pub fn respond(decision: &Decision, retry_after: Option<Duration>, realm: &str, forward: bool) -> Response {
    let (status, message) = status_of(decision, forward);
    let roles = match &decision.outcome {
        Outcome::Allowed { roles } => Some(&roles[..]),
        Outcome::Denied(_) => None,
    };
    let body = AuthBody {
        allowed: roles.is_some(),
        message,
        roles,
        timestamp: now_ms(),
    };
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, challenge(realm));
    }
    if let Some(after) = retry_after.filter(|_| status.as_u16() == 429 || status.as_u16() == 503) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
    }
    response
}

/// 403 for access rules: one body for every reason (a deny rule, a subject that refuses the
/// user, a request that cannot be matched safely), so the answer tells nothing of the rules.
/// Never 401: a browser would prompt again for credentials that are valid.
pub fn forbidden() -> Response {
    let body = AuthBody {
        allowed: false,
        message: "Forbidden",
        roles: None,
        timestamp: now_ms(),
    };
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// 200 for a `bypass` rule: no credentials were read, so no roles and no identity headers.
pub fn bypassed() -> Response {
    let body = AuthBody {
        allowed: true,
        message: "Access allowed without authentication",
        roles: None,
        timestamp: now_ms(),
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// `Basic realm="...", charset="UTF-8"` (quotes and backslashes in the realm are escaped).
pub fn challenge(realm: &str) -> HeaderValue {
    let escaped: String = realm
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| {
            if c == '"' || c == '\\' {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect();
    HeaderValue::from_str(&format!("Basic realm=\"{escaped}\", charset=\"UTF-8\""))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"authserver\", charset=\"UTF-8\""))
}
