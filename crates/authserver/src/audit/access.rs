//! The one record per request: the access line, which for an auth request is also its audit
//! event. Before, an auth request wrote an access line and an audit line with the same facts
//! (two JSON lines, ~550 MB in 18 s of load); now one line carries `"message":"auth request"`
//! for the log queries and, when `audit.stdout` is on, `"log_type":"audit"` and
//! `"event":"auth_attempt"` for the audit consumers, and the audit file gets the same facts as
//! [`AuditEvent::AuthAttempt`].
//!
//! Who writes what (see [`write`]):
//! - auth request, `audit.stdout` on: the line, always (the audit trail does not depend on
//!   `log.access` or the log level), plus the file sink;
//! - otherwise: the line when `log.access` wants it and the access target is enabled; an auth
//!   request still reaches the audit sinks through [`AuditSink::emit`].
//!
//! The line is serialised into a per-thread buffer that is reused (no allocation per request
//! once warm), and handed to the batched stdout (`telemetry::write_stdout`), which never blocks
//! a request thread on the output.

use crate::config::AccessLog;
use authserver_core::{AuditEvent, AuditSink};
use serde::Serialize;
use std::cell::RefCell;
use std::net::IpAddr;

/// Log target of the access line (filter it like any target, e.g. `authserver::access=warn`).
pub const ACCESS_TARGET: &str = "authserver::access";

/// The facts of one request. Adding a field to the line is one line here (optional fields
/// with `skip_serializing_if`) and its value where the record is built.
#[derive(Debug, Default, Serialize)]
pub struct Access<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// X-Ray trace id, when the request has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xray_trace_id: Option<&'a str>,
    /// W3C `traceparent`, when the request has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<&'a str>,
    /// HTTP method (none for Lambda authorizer events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    /// The route template (`authorizer` for the Lambda authorizer), never the raw path.
    pub route: &'a str,
    /// The authorizer event type (`http_request`, `rest_token`, `rest_request`), authorizer lines only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<&'static str>,
    /// HTTP status (none for authorizer events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `allowed` or `denied`: set on auth requests only (what makes the line an audit event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// Denial reason label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Keyed username hash, when credentials were presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_hash: Option<&'a str>,
    /// Client address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// `hit`, `miss` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// Argon2id time, when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ms: Option<f64>,
    /// The access rule that decided (`/auth/forward` with rules configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// Total handling time.
    pub latency_ms: f64,
}

impl Access<'_> {
    /// The audit event of an auth request (none for other routes).
    pub fn audit_event(&self) -> Option<AuditEvent> {
        self.outcome.map(|outcome| self.attempt(outcome))
    }

    fn attempt(&self, outcome: &'static str) -> AuditEvent {
        AuditEvent::AuthAttempt {
            outcome,
            reason: self.reason,
            user_hash: self.user_hash.map(str::to_owned),
            source: self.source.map(|s| s.to_string()),
            request_id: self.request_id.to_owned(),
            trace_id: self.xray_trace_id.or(self.traceparent).map(str::to_owned),
            rule: self.rule.map(str::to_owned),
        }
    }
}

/// Writes the request's line and audit event as the module docs say. `log_enabled`: whether
/// the access target is enabled at INFO (the caller asks tracing: the macro needs a callsite).
pub fn write(audit: &dyn AuditSink, access: &Access<'_>, policy: AccessLog, log_enabled: bool) {
    let denied = access.reason.is_some();
    let as_access = log_enabled && policy.wants(denied, access.status.unwrap_or(200));
    let Some(outcome) = access.outcome else {
        if as_access {
            let _ = write_line(access, false);
        }
        return;
    };
    if audit.streams_to_stdout() {
        let written = write_line(access, true).is_ok();
        audit.emit_streamed(&|| access.attempt(outcome), written);
    } else {
        if as_access {
            let _ = write_line(access, false);
        }
        audit.emit(access.attempt(outcome));
    }
}

thread_local! {
    /// The line being built: reused, so a warm thread allocates nothing for it.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One JSON line: the fixed head (`timestamp`, `level`, `message`, `target`, and `log_type` and
/// `event` when it is the audit record), then the fields of `access` spliced in (cheaper than
/// `#[serde(flatten)]`, which buffers every field).
fn write_line(access: &Access<'_>, as_audit: bool) -> std::io::Result<()> {
    LINE.with(|line| {
        let mut line = line.try_borrow_mut().map_err(std::io::Error::other)?;
        line.clear();
        render(&mut line, access, as_audit)?;
        crate::telemetry::write_stdout(&line)
    })
}

/// See [`write_line`].
fn render(line: &mut Vec<u8>, access: &Access<'_>, as_audit: bool) -> std::io::Result<()> {
    line.extend_from_slice(b"{\"timestamp\":\"");
    super::now_into(line);
    line.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":");
    line.extend_from_slice(match access.outcome {
        Some(_) => b"\"auth request\"",
        None => b"\"request\"",
    });
    line.extend_from_slice(b",\"target\":\"authserver::access\",");
    if as_audit {
        line.extend_from_slice(b"\"log_type\":\"audit\",\"event\":\"auth_attempt\",");
    }
    let fields_at = line.len();
    serde_json::to_writer(&mut *line, access)?;
    // The struct's own `{` is replaced by the head's trailing comma.
    line.remove(fields_at);
    line.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(access: &Access<'_>, as_audit: bool) -> serde_json::Value {
        let mut line = Vec::new();
        render(&mut line, access, as_audit).unwrap();
        assert!(line.ends_with(b"}\n") && !line[..line.len() - 1].contains(&b'\n'));
        serde_json::from_slice(&line).unwrap()
    }

    fn denied() -> Access<'static> {
        Access {
            request_id: "r-1",
            traceparent: Some("00-abc-def-01"),
            method: Some("POST"),
            route: "/auth/validate",
            status: Some(401),
            outcome: Some("denied"),
            reason: Some("wrong_password"),
            user_hash: Some("0123abcd"),
            source: Some(IpAddr::from([192, 0, 2, 1])),
            cache: Some("miss"),
            latency_ms: 1.5,
            ..Access::default()
        }
    }

    #[test]
    fn an_auth_line_is_the_audit_event_with_the_same_facts() {
        let access = denied();
        let v = rendered(&access, true);
        assert_eq!(v["log_type"], "audit");
        assert_eq!(v["event"], "auth_attempt");
        assert_eq!(v["message"], "auth request");
        assert_eq!(v["target"], ACCESS_TARGET);
        let event = serde_json::to_value(access.audit_event().unwrap()).unwrap();
        for (k, want) in event.as_object().unwrap() {
            let got = if k == "trace_id" { &v["traceparent"] } else { &v[k] };
            assert_eq!(got, want, "{k}");
        }
        assert_eq!(v["status"], 401);
        assert!(v.get("xray_trace_id").is_none() && v.get("verify_ms").is_none());
    }

    #[test]
    fn without_the_audit_stream_the_line_is_access_only() {
        let v = rendered(&denied(), false);
        assert!(v.get("log_type").is_none() && v.get("event").is_none(), "{v}");
        assert_eq!(v["reason"], "wrong_password");
        let health = Access {
            request_id: "r-2",
            method: Some("GET"),
            route: "/health",
            status: Some(200),
            ..Access::default()
        };
        let v = rendered(&health, true);
        assert_eq!(v["message"], "request");
        assert!(v.get("outcome").is_none() && health.audit_event().is_none());
    }

    #[test]
    fn the_policy_keeps_denials_and_errors_or_nothing() {
        assert!(AccessLog::All.wants(false, 200));
        assert!(!AccessLog::Denied.wants(false, 200));
        assert!(AccessLog::Denied.wants(true, 401));
        assert!(AccessLog::Denied.wants(false, 503));
        assert!(!AccessLog::None.wants(true, 401));
    }
}
