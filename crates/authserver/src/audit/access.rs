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
//! The line is written straight into the batched stdout's buffer
//! (`telemetry::write_stdout_with`: no buffer of its own, no copy, no allocation), which never
//! blocks a request thread on the output. It is written field by field ([`render`]), not
//! through a derived `Serialize`: the bytes are the ones `serde_json` wrote before, durations
//! aside (a test pins them), at a fraction of the instructions (`scripts/bench-telemetry`).

use super::json::{address, label, millis, status, string, trusted};
use crate::config::AccessLog;
use authserver_core::{AuditEvent, AuditSink};
use std::net::IpAddr;
use std::time::Duration;

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
    /// Argon2id time, when one ran (`verify_ms`, milliseconds with three decimals).
    pub verify: Option<Duration>,
    /// The access rule that decided (`/auth/forward` with rules configured).
    pub rule: Option<&'a str>,
    /// Total handling time (`latency_ms`, milliseconds with three decimals).
    pub latency: Duration,
    /// When the request ended (`timestamp`; the clock is read when absent).
    pub end: Option<&'a crate::telemetry::EndClock>,
    /// `request_id`, `traceparent`, `method`, `route` and `user_hash` are known to need no JSON
    /// escape, so they are written without looking (the HTTP middleware: a request id it
    /// generated or took only from `[A-Za-z0-9-_.:]`, a `traceparent` filtered the same way, a
    /// method `http` parsed (RFC 9110 token characters), a route template of ours, a hex hash).
    /// False (the default): every string is checked and escaped when it needs it. Only this
    /// crate can set it (the attack on this change, finding 4).
    pub(crate) trusted: bool,
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

/// One JSON line (see [`render`]) written straight into the batched stdout's buffer.
fn write_line(access: &Access<'_>, as_audit: bool) -> std::io::Result<()> {
    // Checked here, before the output's lock is taken (see `json::trusted`).
    debug_assert!(
        (!access.trusted || trusted_text_is_plain(access)) && labels_are_plain(access),
        "a trusted record or a label holds text that needs a JSON escape"
    );
    crate::telemetry::write_stdout_with(|line| render(line, access, as_audit))
}

/// Whether the program's own labels (written unchecked, see `json::label`) need no JSON escape.
fn labels_are_plain(a: &Access<'_>) -> bool {
    [a.authorizer, a.outcome, a.reason, a.cache]
        .into_iter()
        .flatten()
        .all(|s| !super::json::needs_escape(s.as_bytes()))
}

/// Whether every field [`Access::trusted`] vouches for needs no JSON escape.
fn trusted_text_is_plain(a: &Access<'_>) -> bool {
    [
        Some(a.request_id),
        a.traceparent,
        a.method,
        Some(a.route),
        a.user_hash,
    ]
    .into_iter()
    .flatten()
    .all(|s| !super::json::needs_escape(s.as_bytes()))
}

/// The line: the fixed head (`timestamp`, `level`, `message`, `target`, and `log_type` and
/// `event` when it is the audit record), then the fields of `access` in declaration order,
/// absent options left out. Field names are constants; string values are written as they are
/// unless JSON needs an escape in them (then `serde_json` escapes them, so caller-chosen text
/// can never end the string or the line); numbers as `serde_json` writes them.
fn render(line: &mut Vec<u8>, a: &Access<'_>, as_audit: bool) {
    line.extend_from_slice(b"{\"timestamp\":\"");
    match a.end {
        Some(end) => super::epoch_time_into(line, end.since_epoch()),
        None => super::now_into(line),
    }
    // The head after the timestamp, up to the request id's key: one constant per kind of line.
    macro_rules! head {
        ($message:literal $(, $audit:literal)?) => {
            concat!(
                "\",\"level\":\"INFO\",\"message\":\"", $message,
                "\",\"target\":\"authserver::access\",", $($audit,)? "\"request_id\":"
            )
        };
    }
    line.extend_from_slice(match (a.outcome.is_some(), as_audit) {
        (true, true) => head!(
            "auth request",
            "\"log_type\":\"audit\",\"event\":\"auth_attempt\","
        )
        .as_bytes(),
        (true, false) => head!("auth request").as_bytes(),
        (false, true) => head!("request", "\"log_type\":\"audit\",\"event\":\"auth_attempt\",").as_bytes(),
        (false, false) => head!("request").as_bytes(),
    });
    if a.trusted {
        fields::<true>(line, a);
    } else {
        fields::<false>(line, a);
    }
}

/// The fields after the head. `TRUSTED`: [`Access::trusted`] (a type parameter, not a function
/// pointer, so the writes are inlined).
fn fields<const TRUSTED: bool>(line: &mut Vec<u8>, a: &Access<'_>) {
    let text = |line: &mut Vec<u8>, s: &str| {
        if TRUSTED {
            trusted(line, s);
        } else {
            string(line, s);
        }
    };
    text(line, a.request_id);
    optional(line, b",\"xray_trace_id\":", a.xray_trace_id, string);
    optional(line, b",\"traceparent\":", a.traceparent, text);
    optional(line, b",\"method\":", a.method, text);
    optional(line, b",\"route\":", Some(a.route), text);
    optional(line, b",\"authorizer\":", a.authorizer, label);
    optional(line, b",\"status\":", a.status, status);
    optional(line, b",\"outcome\":", a.outcome, label);
    optional(line, b",\"reason\":", a.reason, label);
    optional(line, b",\"user_hash\":", a.user_hash, text);
    optional(line, b",\"source\":", a.source, address);
    optional(line, b",\"cache\":", a.cache, label);
    optional(line, b",\"verify_ms\":", a.verify, millis);
    optional(line, b",\"rule\":", a.rule, string);
    optional(line, b",\"latency_ms\":", Some(a.latency), millis);
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

    /// The exact bytes of the line (field names, order, number forms): the log contract the
    /// dashboards' queries read. `serde_json` wrote these bytes before the line was written by
    /// hand, but for the durations: milliseconds with three decimals since issue 17.
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
            verify: Some(Duration::from_micros(131_250)),
            rule: Some("admin-area"),
            latency: Duration::from_nanos(42_199),
            end: None,
            trusted: false,
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
                r#""verify_ms":131.250,"rule":"admin-area","latency_ms":0.042}"#,
                "\n"
            )
        );
        let least = Access {
            request_id: "r",
            route: "unmatched",
            source: Some(IpAddr::from([0, 0, 0, 0])),
            latency: Duration::from_nanos(10),
            ..Access::default()
        };
        assert_eq!(
            text(&least, false),
            concat!(
                r#"","level":"INFO","message":"request","target":"authserver::access","#,
                r#""request_id":"r","route":"unmatched","source":"0.0.0.0","latency_ms":0.000}"#,
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
            latency: Duration::from_millis(2),
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
            latency: Duration::from_micros(1500),
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

    /// Attack on the access line (finding 4): a trusted record whose text needs an escape is
    /// refused (debug builds) before the shared output's lock is taken, so nothing of it is
    /// written and the output stays usable.
    #[test]
    #[cfg(debug_assertions)]
    fn a_bad_trusted_record_panics_before_the_output_is_touched() {
        let bad = Access {
            request_id: "a\"b",
            route: "/health",
            trusted: true,
            ..Access::default()
        };
        assert!(!trusted_text_is_plain(&bad));
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_line(&bad, false)));
        assert!(refused.is_err(), "a debug build refuses the record");
        // The lock was never taken: a plain record still goes out (to the process's stdout,
        // no batch in unit tests).
        assert!(
            write_line(
                &Access {
                    trusted: true,
                    ..denied()
                },
                false
            )
            .is_ok()
        );
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

    /// Durations are milliseconds with three decimals, from zero to the largest `Duration`.
    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        for (d, want) in [
            (Duration::ZERO, "0.000"),
            (Duration::from_nanos(999), "0.000"),
            (Duration::from_micros(1), "0.001"),
            (Duration::from_micros(58_625), "58.625"),
            (Duration::from_secs(3600), "3600000.000"),
            (Duration::MAX, "18446744073709551615.999"),
        ] {
            let a = Access {
                request_id: "r",
                route: "/",
                verify: Some(d),
                latency: d,
                ..Access::default()
            };
            let mut line = Vec::new();
            render(&mut line, &a, true);
            let line = String::from_utf8(line).unwrap();
            assert!(
                line.contains(&format!(r#""verify_ms":{want},"#))
                    && line.ends_with(&format!(
                        r#""latency_ms":{want}}}
"#
                    )),
                "{line}"
            );
            serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
    }

    /// The line's timestamp is the request's end when the caller read it (one clock read for
    /// the metrics and the line).
    #[test]
    fn the_timestamp_is_the_end_the_caller_read() {
        let at = std::time::UNIX_EPOCH + Duration::new(1_765_000_000, 123_456_789);
        let end = crate::telemetry::EndClock::at(at);
        let a = Access {
            request_id: "r",
            route: "/",
            end: Some(&end),
            ..Access::default()
        };
        let mut line = Vec::new();
        render(&mut line, &a, false);
        assert!(
            line.starts_with(br#"{"timestamp":"2025-12-06T05:46:40.123456789Z","#),
            "{}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(end.epoch_secs(), 1_765_000_000);
    }

    /// A trusted record is written byte for byte as the checked one when its text is plain.
    #[test]
    fn trusted_text_is_written_as_checked_text_would_be() {
        let a = Access {
            request_id: "0af7651916cd43dd8448eb211c80319c",
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            method: Some("PROPFIND"),
            route: "/auth/forward/{*path}",
            user_hash: Some("9f86d081884c7d65"),
            outcome: Some("allowed"),
            latency: Duration::from_micros(42),
            ..Access::default()
        };
        let (mut checked, mut fast) = (Vec::new(), Vec::new());
        render(&mut checked, &a, true);
        render(&mut fast, &Access { trusted: true, ..a }, true);
        let after_time = |l: &[u8]| l[l.iter().position(|b| *b == b'Z').unwrap()..].to_vec();
        assert_eq!(after_time(&checked), after_time(&fast));
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
            status in any::<u16>(), verify in any::<u64>(), latency in any::<u64>(),
        ) {
            let a = Access {
                request_id: &id, xray_trace_id: Some(&xray), traceparent: Some(&tp),
                method: Some(&method), route: &route, authorizer: Some("http_request"),
                status: Some(status), outcome: Some("denied"), reason: Some("wrong_password"),
                user_hash: Some(&hash), source: Some(source), cache: Some("shared"),
                verify: Some(Duration::from_nanos(verify)), rule: Some(&rule),
                latency: Duration::from_nanos(latency), end: None, trusted: false,
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
            // Durations: milliseconds with three decimals, the microseconds exactly.
            let text = String::from_utf8(line.clone()).unwrap();
            for (k, n) in [("verify_ms", verify), ("latency_ms", latency)] {
                let us = n / 1000;
                let want = format!("\"{k}\":{}.{:03}", us / 1000, us % 1000);
                prop_assert!(text.contains(&want), "{} {}", want, text);
            }
            for (k, w) in want.as_object().unwrap() {
                prop_assert_eq!(&v[k], w, "{}", k);
            }
            let event = serde_json::to_value(a.audit_event().unwrap()).unwrap();
            prop_assert_eq!(&event["source"], &v["source"]);
        }
    }
}
