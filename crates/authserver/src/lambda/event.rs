//! What kind of event arrived, judged on the raw JSON before any conversion, and the facts
//! lambda_http's conversion loses: repeated `Authorization` headers and the path as the caller
//! sent it.
//!
//! Each mode refuses the other modes' events loudly (an error log and an error answer), so a
//! mis-wired function shows at once instead of answering something plausible: an authorizer event
//! routed through the proxy, or a proxy event judged by the authorizer, is never authorized.

use serde_json::Value;

/// The shape of an incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// API Gateway REST API proxy integration, or an HTTP API route with payload 1.0.
    RestProxy,
    /// HTTP API proxy integration (payload 2.0) or a Function URL.
    HttpProxy,
    /// ALB target group.
    Alb,
    /// An API Gateway Lambda authorizer event (TOKEN, REQUEST, HTTP API REQUEST 2.0).
    Authorizer,
    /// Anything else.
    Unknown,
}

impl Shape {
    /// The shape's name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::RestProxy => "rest_proxy",
            Shape::HttpProxy => "http_proxy",
            Shape::Alb => "alb",
            Shape::Authorizer => "authorizer",
            Shape::Unknown => "unknown",
        }
    }
}

/// The shape of `event`. Authorizer events carry `type` TOKEN/REQUEST and a `methodArn` or
/// `routeArn`; no proxy event has either.
pub fn shape(event: &Value) -> Shape {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    let has = |name: &str| event.get(name).is_some_and(|v| !v.is_null());
    if matches!(text("type"), Some("TOKEN" | "REQUEST")) && (has("methodArn") || has("routeArn")) {
        return Shape::Authorizer;
    }
    let Some(context) = event.get("requestContext").filter(|c| c.is_object()) else {
        return Shape::Unknown;
    };
    if context.get("elb").is_some() && has("httpMethod") {
        return Shape::Alb;
    }
    if text("version") == Some("2.0") && has("rawPath") && context.get("http").is_some() {
        return Shape::HttpProxy;
    }
    // REST events have no `version`; HTTP API routes on payload 1.0 say "1.0".
    if has("httpMethod") && matches!(text("version"), None | Some("1.0")) {
        return Shape::RestProxy;
    }
    Shape::Unknown
}

/// Every `Authorization` value of a REST or ALB event when `multiValueHeaders` holds more than
/// one: lambda_http merges `headers` over `multiValueHeaders`, which keeps only one of them and
/// would let the request through as if it had sent one.
pub fn repeated_authorization(event: &Value) -> Option<Vec<String>> {
    let values: Vec<String> = event
        .get("multiValueHeaders")?
        .as_object()?
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .filter_map(|(_, v)| v.as_array())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    (values.len() > 1).then_some(values)
}

/// The path the router should see, from the raw event:
/// - REST API: `path`, which never carries the stage (`requestContext.path` does). So stage
///   `auth` with resource `/auth` is `/auth`, and with `/auth/validate` is `/auth/validate`.
/// - HTTP API: `rawPath` (payload 1.0: `path`) carries the stage for named stages on the
///   `execute-api` endpoint (`/prod/auth/validate`), taken off once as a whole segment; on a
///   custom domain it does not (`/auth/validate` under stage `auth` stays as it is).
/// - ALB, Function URL (`$default`): `path` / `rawPath` as they are.
///
/// `None`: the event has no path field.
pub fn routed_path(event: &Value, shape: Shape) -> Option<String> {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    match shape {
        Shape::RestProxy if text("version") == Some("1.0") => http_api_path(event, text("path")?),
        Shape::RestProxy | Shape::Alb => Some(text("path")?.to_owned()),
        Shape::HttpProxy => http_api_path(event, text("rawPath")?),
        Shape::Authorizer | Shape::Unknown => None,
    }
}

/// An HTTP API path without the stage where the endpoint puts it there.
fn http_api_path(event: &Value, raw: &str) -> Option<String> {
    let context = event.get("requestContext")?;
    let stage = context.get("stage").and_then(Value::as_str).unwrap_or("");
    let domain = context.get("domainName").and_then(Value::as_str);
    // Without a domain name (hand-made events) the stage is taken off when present.
    let stage_in_path = domain.is_none_or(is_execute_api);
    let stripped = stage_in_path.then(|| strip_stage(raw, stage)).flatten();
    Some(stripped.unwrap_or(raw).to_owned())
}

/// API Gateway's own endpoint (`{api}.execute-api.{region}.amazonaws.com[.cn]`), where the
/// stage is part of the path; any other host is a custom domain, whose mapping removes it.
fn is_execute_api(domain: &str) -> bool {
    let mut labels = domain.split('.');
    labels.next().is_some_and(|api| !api.is_empty()) && labels.next() == Some("execute-api")
}

/// `path` without a leading `/{stage}` segment, if it has one (`$default` never does).
pub fn strip_stage<'a>(path: &'a str, stage: &str) -> Option<&'a str> {
    if stage.is_empty() || stage == "$default" {
        return None;
    }
    let rest = path.strip_prefix('/')?.strip_prefix(stage)?;
    match rest {
        "" => Some("/"),
        r if r.starts_with('/') => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stage_stripping_takes_one_whole_segment() {
        assert_eq!(strip_stage("/prod/auth/validate", "prod"), Some("/auth/validate"));
        assert_eq!(strip_stage("/prod", "prod"), Some("/"));
        assert_eq!(strip_stage("/production/x", "prod"), None);
        assert_eq!(strip_stage("/auth/validate", "prod"), None);
        assert_eq!(strip_stage("/prod/x", "$default"), None);
        assert_eq!(strip_stage("/x", ""), None);
    }

    #[test]
    fn http_api_paths_keep_the_stage_only_on_custom_domains() {
        let event = |raw: &str, domain: &str| {
            json!({"version": "2.0", "rawPath": raw,
                   "requestContext": {"stage": "auth", "domainName": domain, "http": {}}})
        };
        let api = "k3x9q2w8v1.execute-api.eu-west-1.amazonaws.com";
        let path = |e: &Value| routed_path(e, shape(e));
        assert_eq!(
            path(&event("/auth/auth/validate", api)).as_deref(),
            Some("/auth/validate")
        );
        assert_eq!(
            path(&event("/auth/validate", "auth.example.com")).as_deref(),
            Some("/auth/validate")
        );
        assert_eq!(
            path(&event("/auth", "auth.example.com")).as_deref(),
            Some("/auth")
        );
        assert!(is_execute_api(api) && !is_execute_api("execute-api.example.com"));
        // HTTP API payload 1.0: `path` as HTTP API sees it.
        let v1 = json!({"version": "1.0", "httpMethod": "POST", "path": "/auth/auth/validate",
                        "requestContext": {"stage": "auth", "domainName": api}});
        assert_eq!(shape(&v1), Shape::RestProxy);
        assert_eq!(
            routed_path(&v1, Shape::RestProxy).as_deref(),
            Some("/auth/validate")
        );
    }
}
