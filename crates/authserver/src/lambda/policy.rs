//! Authorizer answers under access rules (`rules.file`; docs/access-rules.md#api-gateway).
//!
//! API Gateway caches an authorizer's answer per identity for the authorizer's TTL and applies
//! it to every route of the stage: an answer must be right for all routes, not only the one
//! that happened to ask first.
//!
//! - REST (TOKEN / REQUEST): the IAM policy lists every route of the rules file's `api_routes`,
//!   `Allow` where the rules let the principal in and `Deny` elsewhere, so the cached policy
//!   answers every route correctly. Without `api_routes` only the route that asked is listed
//!   (Allow or Deny): a cached answer then denies the other routes (IAM's implicit deny), safe
//!   but wrong until the TTL ends; set the authorizer's TTL to 0 or list the routes.
//! - HTTP API (simple responses): one boolean per answer, which cannot differ per route; the
//!   request's own method and (stage-free) path decide, so the authorizer's identity sources
//!   must include `$context.httpMethod` and `$context.path` (or its TTL be 0) for API Gateway
//!   to cache per request line (`deploy/aws/authserver.yaml` does). `$context.routeKey` is not
//!   enough under a greedy route (`ANY /protected/{proxy+}` is one key for every path).

use authserver_core::rules::{self, ApiRoute, Identity, Policy, Request, RuleSet};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The policy statements for `who` under `set`; `stage` is `arn:...:{api}/{stage}/`, and
/// `method_arn` the route that asked. `None` when `method_arn` is not a route ARN.
pub fn rest_statements(
    set: &RuleSet,
    stage: &str,
    method_arn: &str,
    who: &Identity,
    client: Option<IpAddr>,
) -> Option<Value> {
    let routes: Vec<ApiRoute> = if set.api_routes().is_empty() {
        vec![asking_route(stage, method_arn)?]
    } else {
        set.api_routes().to_vec()
    };
    let (mut allow, mut deny) = (Vec::new(), Vec::new());
    for route in &routes {
        let arn = format!("{stage}{}", route.arn_suffix());
        if set.permits_route(route, who, client) {
            allow.push(arn);
        } else {
            deny.push(arn);
        }
    }
    let statement = |effect: &str, resources: Vec<String>| json!({"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources});
    let mut statements = Vec::new();
    if !allow.is_empty() {
        statements.push(statement("Allow", allow));
    }
    if !deny.is_empty() {
        statements.push(statement("Deny", deny));
    }
    Some(Value::Array(statements))
}

/// The route of a method ARN (`.../{stage}/GET/orders/42` → `GET /orders/42`).
fn asking_route(stage: &str, method_arn: &str) -> Option<ApiRoute> {
    let rest = method_arn.strip_prefix(stage)?;
    let (verb, path) = rest.split_once('/').unwrap_or((rest, ""));
    let verb = if verb == "*" { "ANY" } else { verb };
    ApiRoute::parse(&format!("{verb} /{path}")).ok()
}

/// The HTTP API verdict for the request `method path` (path without the stage); a path
/// that cannot be normalised is refused.
pub fn http_permits(set: &RuleSet, method: &str, path: &str, who: &Identity, client: Option<IpAddr>) -> bool {
    verdict(set, method, path, who, client).1
}

/// The rule that decides the request `method path` (path without the stage) and whether it
/// lets `who` in: what the audit's `access_decision` event and the `rule` field say, as on
/// `/auth/forward`. A path that cannot be normalised: `invalid_request`, refused.
pub fn verdict(
    set: &RuleSet,
    method: &str,
    path: &str,
    who: &Identity,
    client: Option<IpAddr>,
) -> (String, bool) {
    let Ok(path) = rules::normalise(path) else {
        return ("invalid_request".to_owned(), false);
    };
    let method = method.to_ascii_uppercase();
    let req = Request {
        method: Some(&method),
        host: None,
        path: Some(&path),
        client,
    };
    let route = set.route(&req);
    let permitted = match route.policy {
        Policy::Bypass => true,
        Policy::Deny => false,
        Policy::Allow(subject) => subject.permits(who),
    };
    (route.name.to_owned(), permitted)
}

/// The request that asked a REST authorizer (`.../{stage}/GET/orders/42` → `GET`,
/// `/orders/42`); `None` when `method_arn` is not a route of `stage`.
pub fn asking_request(stage: &str, method_arn: &str) -> Option<(String, String)> {
    let rest = method_arn.strip_prefix(stage)?;
    let (verb, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some((verb.to_owned(), format!("/{path}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const STAGE: &str = "arn:aws:execute-api:eu-west-1:1:api/prod/";

    fn who(roles: &[&str]) -> Identity {
        Identity {
            user: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            scopes: Arc::from([]),
        }
    }

    #[test]
    fn without_api_routes_only_the_asking_route_is_listed() {
        let set = RuleSet::from_toml(
            "[[rule]]\nname = \"admin\"\npaths = [\"/admin\"]\npolicy = \"allow\"\nroles = [\"admin\"]\n",
        )
        .expect("valid");
        let st =
            rest_statements(&set, STAGE, &format!("{STAGE}GET/admin/x"), &who(&[]), None).expect("route");
        assert_eq!(
            st,
            json!([{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [format!("{STAGE}GET/admin/x")]}])
        );
        let st = rest_statements(
            &set,
            STAGE,
            &format!("{STAGE}GET/admin/x"),
            &who(&["admin"]),
            None,
        )
        .expect("route");
        assert_eq!(st[0]["Effect"], "Allow");
        assert!(
            rest_statements(
                &set,
                STAGE,
                "arn:aws:execute-api:eu-west-1:1:other/prod/GET/x",
                &who(&[]),
                None
            )
            .is_none()
        );
    }

    #[test]
    fn http_requests_are_judged_by_method_and_path() {
        let set = RuleSet::from_toml(
            "[[rule]]\nname = \"orders\"\npaths = [\"/orders\"]\nmethods = [\"GET\"]\npolicy = \"allow\"\n",
        )
        .expect("valid");
        assert!(http_permits(&set, "get", "/orders/7", &who(&[]), None));
        assert!(!http_permits(&set, "POST", "/orders", &who(&[]), None));
        assert!(
            !http_permits(&set, "GET", "/x/../admin", &who(&[]), None),
            "default deny"
        );
        assert!(
            !http_permits(&set, "GET", "/orders%2F..", &who(&[]), None),
            "refused"
        );
    }
}
