//! The API Gateway routes a REST authorizer's policy lists (`api_routes` in the rules file).
//!
//! API Gateway caches an authorizer's policy per identity for the TTL and applies it to every
//! route of the stage, so a policy must answer for all of them at once: one statement per route,
//! `Allow` where the rules let the principal in, `Deny` elsewhere.

//!
//! A template with a path parameter (`/orders/{id}`, `/{proxy+}`) stands for every path the
//! parameter can expand to, and IAM applies the route's statement (`GET/orders/*`) to all of
//! them. So such a route is `Allow` only when every rule that could match a path below the
//! template's literal prefix permits the principal, up to the first rule that takes every such
//! path (and the default, when no rule does): a `deny` on `/orders/export` makes
//! `GET /orders/{id}` `Deny` for everyone. A greedy route over rules that differ by path
//! (`ANY /{proxy+}`) is then `Deny` for most principals: list finer routes, or use a REQUEST
//! authorizer with the path in its identity sources (or TTL 0) and no `api_routes`.

use super::matcher::prefix_matches;
use super::{Identity, NormalPath, Policy, Request, Rule, RuleError, RuleSet, normalise};

/// One route, `METHOD /path` as API Gateway writes it (`ANY` for any method, `{name}` and
/// `{name+}` for path parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// Upper-case method; `None` for `ANY`.
    pub method: Option<String>,
    /// The path as written.
    pub template: String,
    path: NormalPath,
    /// The literal part before the first parameter; `None` without parameters.
    below: Option<String>,
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
        let below = template.find('{').map(|at| {
            let literal = template[..at].trim_end_matches('/');
            if literal.is_empty() {
                "/".to_owned()
            } else {
                literal.to_owned()
            }
        });
        Ok(Self {
            method: (method != "ANY").then_some(method),
            template: template.to_owned(),
            path,
            below,
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
        if !permits(self.route(&req).policy, who) {
            return false;
        }
        let Some(below) = &route.below else {
            return true;
        };
        for rule in self.rules.iter().filter(|r| may_match_below(r, route, below)) {
            if !permits(&rule.policy, who) {
                return false;
            }
            if takes_all_below(rule, route, below) {
                return true;
            }
        }
        permits(&self.default, who)
    }
}

impl RuleSet {
    /// The `rules check` finding for `route`: rules that match some but not all paths below
    /// its parameter (a greedy `ANY /{proxy+}` over path rules, a deny on `/orders/export`
    /// under `GET /orders/{id}`).
    pub(super) fn coarse_route(&self, route: &ApiRoute) -> Option<super::Finding> {
        let below = route.below.as_deref()?;
        let mut partial = Vec::new();
        for rule in self.rules.iter().filter(|r| may_match_below(r, route, below)) {
            if takes_all_below(rule, route, below) {
                break;
            }
            partial.push(rule.name().to_owned());
        }
        (!partial.is_empty()).then(|| super::Finding::CoarseRoute {
            route: format!("{} {}", route.method.as_deref().unwrap_or("ANY"), route.template),
            rules: partial,
        })
    }
}

fn permits(policy: &Policy, who: &Identity) -> bool {
    match policy {
        Policy::Bypass => true,
        Policy::Deny => false,
        Policy::Allow(subject) => subject.permits(who),
    }
}

/// Whether `rule` could match some request of `route` whose path is `below` or under it
/// (conservative: hosts, networks, globs and regexes are assumed to match).
fn may_match_below(rule: &Rule, route: &ApiRoute, below: &str) -> bool {
    let method = rule.methods.is_empty() || route.method.as_ref().is_none_or(|m| rule.methods.contains(m));
    let path = rule.paths.is_empty()
        || rule.paths.has_patterns()
        || rule
            .paths
            .prefixes()
            .iter()
            .any(|p| prefix_matches(p, below) || prefix_matches(below, p.trim_end_matches('/')));
    method && path
}

/// Whether `rule` matches every request of `route` under `below`: no rules after it can decide.
fn takes_all_below(rule: &Rule, route: &ApiRoute, below: &str) -> bool {
    let method = rule.methods.is_empty() || route.method.as_ref().is_some_and(|m| rule.methods.contains(m));
    let path = rule.paths.is_empty()
        || rule
            .paths
            .prefixes()
            .iter()
            .any(|p| prefix_matches(p.trim_end_matches('/'), below) && (below != "/" || p == "/"));
    method && path && rule.hosts.is_empty() && rule.networks.is_empty()
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
        assert_eq!(
            ApiRoute::parse("ANY /{proxy+}").expect("valid").below.as_deref(),
            Some("/")
        );
        assert_eq!(
            ApiRoute::parse("GET /a/{id}/b").expect("valid").below.as_deref(),
            Some("/a")
        );
        assert_eq!(ApiRoute::parse("GET /a/b").expect("valid").below, None);
        for bad in ["/orders", "GET orders", "GET /a/../..", "G3T /x", "GET /x*"] {
            assert!(ApiRoute::parse(bad).is_err(), "{bad}");
        }
    }

    fn who(roles: &[&str]) -> Identity {
        Identity {
            user: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            scopes: std::sync::Arc::from([]),
        }
    }

    #[test]
    fn a_template_is_allowed_only_when_every_rule_below_it_allows() {
        let set = RuleSet::from_toml(
            "default = \"deny\"\n             [[rule]]\nname = \"export\"\npaths = [\"/orders/export\"]\npolicy = \"deny\"\n             [[rule]]\nname = \"read\"\npaths = [\"/orders\"]\nmethods = [\"GET\"]\npolicy = \"allow\"\nroles = [\"r\"]\n             [[rule]]\nname = \"items\"\npaths = [\"/items\"]\npolicy = \"allow\"\nroles = [\"r\"]\n",
        )
        .expect("valid");
        let r = who(&["r"]);
        let ok = |route: &str| set.permits_route(&ApiRoute::parse(route).expect("route"), &r, None);
        assert!(ok("GET /orders"), "no parameter: its own path decides");
        assert!(
            !ok("GET /orders/{id}"),
            "the export deny lies below the parameter"
        );
        assert!(
            ok("GET /items/{id}"),
            "only the items rule, which allows, lies below"
        );
        assert!(ok("POST /items/{id+}"));
        assert!(!ok("ANY /{proxy+}"), "the deny and the default lie below");
        assert!(!ok("GET /other/{id}"), "the default (deny) decides below");
        let coarse = |route: &str| set.coarse_route(&ApiRoute::parse(route).expect("route"));
        assert!(coarse("GET /items/{id}").is_none() && coarse("GET /orders").is_none());
        assert!(
            matches!(coarse("GET /orders/{id}"), Some(super::super::Finding::CoarseRoute { rules, .. }) if rules == ["export"])
        );
        assert!(
            matches!(coarse("ANY /{proxy+}"), Some(super::super::Finding::CoarseRoute { rules, .. }) if rules.len() == 3)
        );
    }
}
