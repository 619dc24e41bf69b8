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
//! The line is written into a per-thread buffer that is reused (no allocation per request once
//! warm), and handed to the batched stdout (`telemetry::write_stdout`), which never blocks a
//! request thread on the output. It is written field by field ([`render`]), not through a
//! derived `Serialize`: the bytes are the ones `serde_json` wrote before (a test pins them),
//! at a fraction of the instructions (`scripts/bench-telemetry`).

use super::json::{address, float, label, number, string};
use crate::config::AccessLog;
use authserver_core::{AuditEvent, AuditSink};
use std::cell::RefCell;
use std::net::IpAddr;

/// Log target of the access line (filter it like any target, e.g. `authserver::access=warn`).
pub const ACCESS_TARGET: &str = "authserver::access";

/// The facts of one request, in the order of the line's fields. Adding a field is a line here,
/// one in [`render`] and its value where the record is built.
#[derive(Debug, Default)]
pub struct Access<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// X-Ray trace id, when the request has one.
    pub xray_trace_id: Option<&'a str>,
    /// W3C `traceparent`, when the request has one.
    pub traceparent: Option<&'a str>,
    /// HTTP method (none for Lambda authorizer events).
    pub method: Option<&'a str>,
    /// The route template (`authorizer` for the Lambda authorizer), never the raw path.
    pub route: &'a str,
    /// The authorizer event type (`http_request`, `rest_token`, `rest_request`), authorizer lines only.
    pub authorizer: Option<&'static str>,
    /// HTTP status (none for authorizer events).
    pub status: Option<u16>,
    /// `allowed` or `denied`: set on auth requests only (what makes the line an audit event).
    pub outcome: Option<&'static str>,
    /// Denial reason label.
    pub reason: Option<&'static str>,
    /// Keyed username hash, when credentials were presented.
    pub user_hash: Option<&'a str>,
    /// Client address, when known.
    pub source: Option<IpAddr>,
    /// `hit`, `miss` or `none`.
    pub cache: Option<&'static str>,
    /// Argon2id time, when one ran.
    pub verify_ms: Option<f64>,
    /// The access rule that decided (`/auth/forward` with rules configured).
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
/// the access target is enabled at INFO (the caller asks tracing: the macro needs a callsite),
/// asked only when the answer matters (the filter's directives cost a few hundred instructions).
pub fn write(
    audit: &dyn AuditSink,
    access: &Access<'_>,
    policy: AccessLog,
    log_enabled: impl FnOnce() -> bool,
) {
    let denied = access.reason.is_some();
    let as_access = || policy.wants(denied, access.status.unwrap_or(200)) && log_enabled();
    let Some(outcome) = access.outcome else {
        if as_access() {
            let _ = write_line(access, false);
        }
        return;
    };
    if audit.streams_to_stdout() {
        let written = write_line(access, true).is_ok();
        audit.emit_streamed(&|| access.attempt(outcome), written);
    } else {
        if as_access() {
            let _ = write_line(access, false);
        }
        // No stdout stream: "every sink but stdout" is every sink, and the event is built only
        // if one of them takes it (with audit off altogether, nothing is built).
        audit.emit_streamed(&|| access.attempt(outcome), true);
    }
}

thread_local! {
    /// The line being built: reused, so a warm thread allocates nothing for it.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One JSON line (see [`render`]) through the per-thread buffer to the batched stdout.
fn write_line(access: &Access<'_>, as_audit: bool) -> std::io::Result<()> {
    LINE.with(|line| {
        let mut line = line.try_borrow_mut().map_err(std::io::Error::other)?;
        line.clear();
        render(&mut line, access, as_audit);
        crate::telemetry::write_stdout(&line)
    })
}

/// The line: the fixed head (`timestamp`, `level`, `message`, `target`, and `log_type` and
/// `event` when it is the audit record), then the fields of `access` in declaration order,
/// absent options left out. Field names are constants; string values are written as they are
/// unless JSON needs an escape in them (then `serde_json` escapes them, so caller-chosen text
/// can never end the string or the line); numbers as `serde_json` writes them.
fn render(line: &mut Vec<u8>, a: &Access<'_>, as_audit: bool) {
    line.extend_from_slice(b"{\"timestamp\":\"");
    super::now_into(line);
    line.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":");
    line.extend_from_slice(match a.outcome {
        Some(_) => b"\"auth request\"",
        None => b"\"request\"",
    });
    line.extend_from_slice(b",\"target\":\"authserver::access\",");
    if as_audit {
        line.extend_from_slice(b"\"log_type\":\"audit\",\"event\":\"auth_attempt\",");
    }
    line.extend_from_slice(b"\"request_id\":");
    string(line, a.request_id);
    optional(line, b",\"xray_trace_id\":", a.xray_trace_id, string);
    optional(line, b",\"traceparent\":", a.traceparent, string);
    optional(line, b",\"method\":", a.method, string);
    optional(line, b",\"route\":", Some(a.route), string);
    optional(line, b",\"authorizer\":", a.authorizer, label);
    optional(line, b",\"status\":", a.status, |line, s| {
        number(line, u64::from(s))
    });
    optional(line, b",\"outcome\":", a.outcome, label);
    optional(line, b",\"reason\":", a.reason, label);
    optional(line, b",\"user_hash\":", a.user_hash, string);
    optional(line, b",\"source\":", a.source, address);
    optional(line, b",\"cache\":", a.cache, label);
    optional(line, b",\"verify_ms\":", a.verify_ms, float);
    optional(line, b",\"rule\":", a.rule, string);
    optional(line, b",\"latency_ms\":", Some(a.latency_ms), float);
    line.extend_from_slice(b"}\n");
}

/// `key` (`,"name":`) and the value, when there is one. The key's length is a constant, so
/// its copy is a few moves, not a `memcpy` call (those were 260 instructions a line).
fn optional<T, const N: usize>(
    line: &mut Vec<u8>,
    key: &[u8; N],
    value: Option<T>,
    write: impl Fn(&mut Vec<u8>, T),
) {
    if let Some(value) = value {
        line.extend_from_slice(key);
        write(line, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(access: &Access<'_>, as_audit: bool) -> serde_json::Value {
        let mut line = Vec::new();
        render(&mut line, access, as_audit);
        assert!(line.ends_with(b"}\n") && !line[..line.len() - 1].contains(&b'\n'));
        serde_json::from_slice(&line).unwrap()
    }

    /// The line without its timestamp (which moves).
    fn text(access: &Access<'_>, as_audit: bool) -> String {
        let mut line = Vec::new();
        render(&mut line, access, as_audit);
        let line = String::from_utf8(line).unwrap();
        let (head, rest) = line.split_at(line.find("\",\"level\"").unwrap());
        assert!(
            head.starts_with("{\"timestamp\":\"20") && head.ends_with('Z'),
            "{head}"
        );
        rest.to_owned()
    }

    /// The exact bytes `serde_json` wrote for these records before the line was written by hand
    /// (field names, order, number forms): the log contract the dashboards' queries read.
    #[test]
    fn the_line_keeps_its_bytes() {
        let full = Access {
            request_id: "0123456789abcdef0123456789abcdef",
            xray_trace_id: Some("Root=1-5759e988-bd862e3fe1be46a994272793"),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            method: Some("GET"),
            route: "/auth/forward/{*path}",
            authorizer: Some("rest_request"),
            status: Some(403),
            outcome: Some("denied"),
            reason: Some("wrong_password"),
            user_hash: Some("9f86d081884c7d65"),
            source: Some(IpAddr::from([203, 0, 113, 250])),
            cache: Some("shared"),
            verify_ms: Some(131.25),
            rule: Some("admin-area"),
            latency_ms: 0.0421,
        };
        assert_eq!(
            text(&full, true),
            concat!(
                r#"","level":"INFO","message":"auth request","target":"authserver::access","#,
                r#""log_type":"audit","event":"auth_attempt","#,
                r#""request_id":"0123456789abcdef0123456789abcdef","#,
                r#""xray_trace_id":"Root=1-5759e988-bd862e3fe1be46a994272793","#,
                r#""traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","#,
                r#""method":"GET","route":"/auth/forward/{*path}","authorizer":"rest_request","#,
                r#""status":403,"outcome":"denied","reason":"wrong_password","#,
                r#""user_hash":"9f86d081884c7d65","source":"203.0.113.250","cache":"shared","#,
                r#""verify_ms":131.25,"rule":"admin-area","latency_ms":0.0421}"#,
                "\n"
            )
        );
        let least = Access {
            request_id: "r",
            route: "unmatched",
            source: Some(IpAddr::from([0, 0, 0, 0])),
            latency_ms: 1e-5,
            ..Access::default()
        };
        assert_eq!(
            text(&least, false),
            concat!(
                r#"","level":"INFO","message":"request","target":"authserver::access","#,
                r#""request_id":"r","route":"unmatched","source":"0.0.0.0","latency_ms":0.00001}"#,
                "\n"
            )
        );
    }

    /// Text a caller chose cannot end a string or the line; addresses of both families.
    #[test]
    fn strings_that_need_escapes_are_escaped_and_addresses_are_plain() {
        let nasty = "a\"b\\c\u{1}d\ne\u{e9}";
        let v6: IpAddr = "2001:db8::8a2e:370:7334".parse().unwrap();
        let access = Access {
            request_id: nasty,
            route: "/x\"},{\"allowed\":true",
            source: Some(v6),
            latency_ms: 2.0,
            ..Access::default()
        };
        let v = rendered(&access, false);
        assert_eq!(
            (v["request_id"].as_str(), v["route"].as_str()),
            (Some(nasty), Some(access.route))
        );
        assert_eq!(v["source"], "2001:db8::8a2e:370:7334");
        assert_eq!(v["latency_ms"], 2.0);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v = rendered(
            &Access {
                source: Some(mapped),
                ..Access::default()
            },
            false,
        );
        assert_eq!(v["source"], "::ffff:192.0.2.1");
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

/// Attack (wt-atklog): the hand-written line against `serde_json` for arbitrary text in every
/// caller-reachable string field and arbitrary addresses (IPv4, IPv6, IPv4-mapped). Every line
/// must be one line, parse with `serde_json` and carry the same values a `serde_json` rendering
/// of the same fields carries; the string writer must emit exactly `serde_json`'s bytes.
#[cfg(test)]
mod attack_proptests {
    use super::*;
    use proptest::prelude::*;

    fn special() -> impl Strategy<Value = String> {
        // Text dense in the bytes that matter, at every offset mod 8 and at the end.
        let piece = prop_oneof![
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just("\u{0}".to_owned()),
            Just("\u{1f}".to_owned()),
            Just("\u{7f}".to_owned()),
            Just("\u{2028}".to_owned()),
            Just("\u{2029}".to_owned()),
            Just("\u{feff}".to_owned()),
            Just("\u{10ffff}".to_owned()),
            Just("é".to_owned()),
            "[a-z]{0,9}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|v4| IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped())),
        ]
    }

    /// CI's case: a subnormal time is written by `serde_json`'s writer and read back within
    /// one ulp, which for a subnormal is far more than any relative bound.
    #[test]
    fn a_subnormal_time_is_written_as_a_number() {
        let f = -2.40279332237763e-309_f64;
        let a = Access {
            request_id: "r",
            route: "/",
            verify_ms: Some(f),
            latency_ms: f,
            ..Access::default()
        };
        let mut line = Vec::new();
        render(&mut line, &a, true);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        for k in ["verify_ms", "latency_ms"] {
            let g = v[k].as_f64().unwrap();
            assert!(g < 0.0 && (g - f).abs() <= f64::MIN_POSITIVE, "{k}: {g}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn string_writer_is_byte_identical_to_serde_json(s in special()) {
            let mut mine = Vec::new();
            super::super::json::string(&mut mine, &s);
            prop_assert_eq!(mine, serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn any_string_at_any_offset(prefix in 0usize..16, body in any::<String>(), tail in special()) {
            let s = format!("{}{body}{tail}", "x".repeat(prefix));
            let mut mine = Vec::new();
            super::super::json::string(&mut mine, &s);
            prop_assert_eq!(mine, serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn the_line_round_trips(
            id in special(), xray in special(), tp in special(), method in special(),
            route in special(), hash in special(), rule in special(), source in ip(),
            status in any::<u16>(), verify in any::<f64>(), latency in any::<f64>(),
        ) {
            let a = Access {
                request_id: &id, xray_trace_id: Some(&xray), traceparent: Some(&tp),
                method: Some(&method), route: &route, authorizer: Some("http_request"),
                status: Some(status), outcome: Some("denied"), reason: Some("wrong_password"),
                user_hash: Some(&hash), source: Some(source), cache: Some("shared"),
                verify_ms: Some(verify), rule: Some(&rule), latency_ms: latency,
            };
            let mut line = Vec::new();
            render(&mut line, &a, true);
            prop_assert!(line.ends_with(b"}\n"), "line end");
            prop_assert!(!line[..line.len() - 1].contains(&b'\n'), "one line");
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            let want = serde_json::json!({
                "request_id": id, "xray_trace_id": xray, "traceparent": tp, "method": method,
                "route": route, "status": status, "user_hash": hash,
                "source": source.to_string(), "rule": rule,
            });
            // Floats: serde_json's own writer; its parser (no `float_roundtrip`) may be one ulp off,
            // and for a subnormal one ulp is larger than any relative bound (CI found -2.4e-309).
            for (k, f) in [("verify_ms", verify), ("latency_ms", latency)] {
                match v[k].as_f64() {
                    Some(g) => prop_assert!(
                        f.is_finite() && (g - f).abs() <= f.abs() * 1e-15 + f64::MIN_POSITIVE,
                        "{} {} {}", k, g, f
                    ),
                    None => prop_assert!(!f.is_finite() && v[k].is_null(), "{}", k),
                }
            }
            for (k, w) in want.as_object().unwrap() {
                prop_assert_eq!(&v[k], w, "{}", k);
            }
            let event = serde_json::to_value(a.audit_event().unwrap()).unwrap();
            prop_assert_eq!(&event["source"], &v["source"]);
        }
    }
}
