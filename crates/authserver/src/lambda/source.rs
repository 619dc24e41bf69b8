//! Who the client is, read from the raw Lambda event (before lambda_http rewrites it).
//!
//! | event | client address |
//! |---|---|
//! | API Gateway REST (payload 1.0) | `requestContext.identity.sourceIp` |
//! | HTTP API (payload 2.0), Function URL | `requestContext.http.sourceIp` |
//! | ALB | the right-most `X-Forwarded-For` entry: the address the load balancer itself saw; everything left of it is whatever the client wrote |
//! | any, with `lambda.cloudfront_secret_header` set and present | `CloudFront-Viewer-Address` |
//!
//! Behind CloudFront, API Gateway's `sourceIp` is the edge, so one attacker would get every
//! viewer of that edge banned. `CloudFront-Viewer-Address` is believed only when the request
//! carries the secret origin header the distribution adds, compared in constant time: a caller
//! that reaches API Gateway directly can write `CloudFront-Viewer-Address` but not the secret,
//! and is then judged by its own `sourceIp`. An unparseable hop is never attributed to anyone
//! else (no address rather than the proxy's).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) become plain IPv4 everywhere.

use serde_json::Value;
use std::net::IpAddr;

/// The CloudFront origin secret: (lower-case header name, value). Its `Debug` hides the value.
#[derive(Clone, Default)]
pub struct OriginSecret(Option<(String, String)>);

impl std::fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some((name, _)) => write!(f, "OriginSecret({name}: REDACTED)"),
            None => f.write_str("OriginSecret(unset)"),
        }
    }
}

impl OriginSecret {
    /// From `lambda.cloudfront_secret_header` (see [`crate::config::LambdaSettings`]).
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self(settings.lambda.cloudfront_secret())
    }

    /// Whether `event` carries the secret header with exactly the configured value, once.
    fn proven(&self, event: &Value) -> bool {
        let Some((name, expected)) = &self.0 else {
            return false;
        };
        match header_values(event, name).as_slice() {
            [one] => bool::from(subtle::ConstantTimeEq::ct_eq(one.as_bytes(), expected.as_bytes())),
            _ => false,
        }
    }
}

/// The client address of a proxy event (see the module table); `None` when the event has none
/// that can be believed.
pub fn client_address(event: &Value, secret: &OriginSecret) -> Option<IpAddr> {
    if secret.proven(event) {
        return header_values(event, "cloudfront-viewer-address")
            .last()
            .and_then(|v| viewer_address(v));
    }
    let context = event.get("requestContext")?;
    if context.get("elb").is_some() {
        let last = header_values(event, "x-forwarded-for").pop()?;
        return parse_hop(last.rsplit(',').next()?);
    }
    let ip = context
        .pointer("/http/sourceIp")
        .or_else(|| context.pointer("/identity/sourceIp"))?
        .as_str()?;
    parse_hop(ip)
}

/// The values of header `name` (any case) in `multiValueHeaders`, else in `headers`.
pub fn header_values<'a>(event: &'a Value, name: &str) -> Vec<&'a str> {
    let find = |map: &'a Value| -> Vec<&'a Value> {
        map.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
                    .collect()
            })
            .unwrap_or_default()
    };
    let multi: Vec<&str> = event
        .get("multiValueHeaders")
        .map(find)
        .unwrap_or_default()
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !multi.is_empty() {
        return multi;
    }
    event
        .get("headers")
        .map(find)
        .unwrap_or_default()
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

pub use crate::http::client::parse_hop;

/// `CloudFront-Viewer-Address`: the viewer's address and port, `198.51.100.10:46532` or (IPv6,
/// unbracketed) `2001:db8::1:46532`. The port always comes last, so it is cut at the last `:`
/// first (`2001:db8::1:443` is also a valid IPv6 address on its own).
pub fn viewer_address(value: &str) -> Option<IpAddr> {
    let value = value.trim();
    value
        .rsplit_once(':')
        .filter(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(ip, _)| parse_hop(ip))
        .or_else(|| parse_hop(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap_or_else(|_| panic!("{s}")))
    }

    #[test]
    fn hops_parse_in_every_form_and_mapped_addresses_become_ipv4() {
        assert_eq!(parse_hop(" 198.51.100.7 "), ip("198.51.100.7"));
        assert_eq!(parse_hop("198.51.100.7:4711"), ip("198.51.100.7"));
        assert_eq!(parse_hop("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(parse_hop("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(parse_hop("::ffff:192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(viewer_address("198.51.100.10:46532"), ip("198.51.100.10"));
        assert_eq!(viewer_address("2001:db8::1:443"), ip("2001:db8::1"));
        assert_eq!(viewer_address("[2001:db8::2]:443"), ip("2001:db8::2"));
        assert_eq!(viewer_address("203.0.113.5"), ip("203.0.113.5"));
    }

    #[test]
    fn alb_uses_the_right_most_hop_only() {
        let event = |xff: &str| json!({"requestContext": {"elb": {}}, "headers": {"x-forwarded-for": xff}});
        let none = OriginSecret::default();
        assert_eq!(
            client_address(&event("6.6.6.6, 192.0.2.44"), &none),
            ip("192.0.2.44")
        );
        // Garbage in the last hop: no address, never the spoofed one to its left.
        assert_eq!(client_address(&event("6.6.6.6, junk"), &none), None);
        let multi = json!({"requestContext": {"elb": {}},
            "multiValueHeaders": {"X-Forwarded-For": ["6.6.6.6", "7.7.7.7, 192.0.2.45"]}});
        assert_eq!(client_address(&multi, &none), ip("192.0.2.45"));
    }

    #[test]
    fn cloudfront_viewer_address_needs_the_secret() {
        let secret = OriginSecret(Some(("x-origin-verify".into(), "s3cret-value".into())));
        let event = |verify: Option<&str>| {
            let mut headers = json!({"cloudfront-viewer-address": "198.51.100.10:46532"});
            if let Some(v) = verify {
                headers["X-Origin-Verify"] = json!(v);
            }
            json!({"headers": headers, "requestContext": {"http": {"sourceIp": "130.176.0.1"}}})
        };
        assert_eq!(
            client_address(&event(Some("s3cret-value")), &secret),
            ip("198.51.100.10")
        );
        assert_eq!(
            client_address(&event(Some("s3cret-valuE")), &secret),
            ip("130.176.0.1")
        );
        assert_eq!(
            client_address(&event(Some("s3cret-value-and-more")), &secret),
            ip("130.176.0.1"),
            "a longer value with the right prefix"
        );
        assert_eq!(client_address(&event(None), &secret), ip("130.176.0.1"));
        let unset = OriginSecret::default();
        assert_eq!(
            client_address(&event(Some("s3cret-value")), &unset),
            ip("130.176.0.1")
        );
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
