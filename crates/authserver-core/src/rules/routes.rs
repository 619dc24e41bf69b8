//! The API Gateway routes a REST authorizer's policy lists (`api_routes` in the rules file).
//!
//! API Gateway caches an authorizer's policy per identity for the TTL and applies it to every
//! route of the stage, so a policy must answer for all of them at once: one statement per route,
//! `Allow` where the rules let the principal in, `Deny` elsewhere.

use super::{Identity, NormalPath, Policy, Request, RuleError, RuleSet, normalise};

/// One route, `METHOD /path` as API Gateway writes it (`ANY` for any method, `{name}` and
/// `{name+}` for path parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// Upper-case method; `None` for `ANY`.
    pub method: Option<String>,
    /// The path as written.
    pub template: String,
    path: NormalPath,
}

impl ApiRoute {
    /// Parses `GET /orders/{id}`.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let bad = || RuleError::Route(text.to_owned());
        let (method, template) = text.trim().split_once(' ').ok_or_else(bad)?;
        let method = method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad());
        }
        let template = template.trim();
        if template.contains(['*', '?', '#']) {
            return Err(bad());
        }
        let path = normalise(template).map_err(|_| bad())?;
        Ok(Self {
            method: (method != "ANY").then_some(method),
            template: template.to_owned(),
            path,
        })
    }

    /// The `{verb}/{path}` part of the route's `execute-api` resource ARN: path parameters
    /// become `*` (which IAM matches across `/`, as `{proxy+}` needs).
    pub fn arn_suffix(&self) -> String {
        let verb = self.method.as_deref().unwrap_or("*");
        let path: Vec<&str> = self
            .template
            .trim_start_matches('/')
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    "*"
                } else {
                    seg
                }
            })
            .collect();
        format!("{verb}/{}", path.join("/"))
    }
}

impl RuleSet {
    /// Whether the rules let `who` (from `client`) call `route`. The route's path is matched
    /// as written, parameters included (`/orders/{id}`): rules on a prefix above the
    /// parameters decide; a rule that needs what a template cannot tell (the host, the method
    /// of an `ANY` route) denies.
    pub fn permits_route(&self, route: &ApiRoute, who: &Identity, client: Option<std::net::IpAddr>) -> bool {
        let req = Request {
            method: route.method.as_deref(),
            host: None,
            path: Some(&route.path),
            client,
        };
        match self.route(&req).policy {
            Policy::Bypass => true,
            Policy::Deny => false,
            Policy::Allow(subject) => subject.permits(who),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_become_resources() {
        let r = ApiRoute::parse("get /orders/{id}").expect("valid");
        assert_eq!(
            (r.method.as_deref(), r.arn_suffix().as_str()),
            (Some("GET"), "GET/orders/*")
        );
        assert_eq!(
            ApiRoute::parse("ANY /{proxy+}").expect("valid").arn_suffix(),
            "*/*"
        );
        assert_eq!(ApiRoute::parse("POST /").expect("valid").arn_suffix(), "POST/");
        for bad in ["/orders", "GET orders", "GET /a/../..", "G3T /x", "GET /x*"] {
            assert!(ApiRoute::parse(bad).is_err(), "{bad}");
        }
    }
}
