//! What `authserver rules check` reports beyond syntax: rules no request can reach, and
//! subjects naming roles no user holds.

use super::matcher::{HostPattern, prefix_matches};
use super::{Policy, Rule};

/// One finding of [`super::RuleSet::lint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `rule` can never decide: every request it matches is matched by `by`, earlier.
    Shadowed {
        /// The unreachable rule.
        rule: String,
        /// The earlier rule that matches all of its requests.
        by: String,
    },
    /// An `api_routes` template with a parameter under which rules decide differently by path:
    /// its one IAM statement cannot follow them, so it is Deny for whoever any of them refuses.
    CoarseRoute {
        /// The route as written.
        route: String,
        /// The rules that match only part of the paths below it.
        rules: Vec<String>,
    },
    /// An allow rule names a role no user of the store holds.
    UnknownRole {
        /// The rule.
        rule: String,
        /// The role.
        role: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Shadowed { rule, by } => {
                write!(
                    f,
                    "rule {rule:?} is unreachable: rule {by:?} before it matches every request it does"
                )
            }
            Finding::CoarseRoute { route, rules } => write!(
                f,
                "API route {route:?} covers paths that rules {rules:?} decide differently: its \
                 policy statement is Deny for whoever any of them refuses; list finer routes, \
                 or use a REQUEST authorizer with $context.path in its identity sources (or \
                 TTL 0) and no api_routes"
            ),
            Finding::UnknownRole { rule, role } => {
                write!(f, "rule {rule:?} names role {role:?}, which no user has")
            }
        }
    }
}

pub(super) fn findings(rules: &[Rule], known_roles: Option<&[String]>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (j, later) in rules.iter().enumerate() {
        if let Some(earlier) = rules[..j].iter().find(|e| covers(e, later)) {
            out.push(Finding::Shadowed {
                rule: later.name().to_owned(),
                by: earlier.name().to_owned(),
            });
        }
        if let (Policy::Allow(subject), Some(known)) = (later.policy(), known_roles) {
            for role in subject.roles().iter().filter(|r| !known.contains(r)) {
                out.push(Finding::UnknownRole {
                    rule: later.name().to_owned(),
                    role: role.clone(),
                });
            }
        }
    }
    out
}

/// True when `a` provably matches every request `b` matches (conservative: patterns other
/// than prefixes are only covered by a rule with no path criterion).
fn covers(a: &Rule, b: &Rule) -> bool {
    let hosts = a.hosts.is_empty()
        || (!b.hosts.is_empty()
            && b.hosts
                .iter()
                .all(|hb| a.hosts.iter().any(|ha| host_covers(ha, hb))));
    let paths = a.paths.is_empty()
        || (!a.paths.has_patterns()
            && !b.paths.is_empty()
            && !b.paths.has_patterns()
            && b.paths.prefixes().iter().all(|pb| {
                a.paths
                    .prefixes()
                    .iter()
                    .any(|pa| prefix_matches(pa, pb.trim_end_matches('/')) && prefix_matches(pa, pb))
            }));
    let methods =
        a.methods.is_empty() || (!b.methods.is_empty() && b.methods.iter().all(|m| a.methods.contains(m)));
    let networks = a.networks.is_empty()
        || (!b.networks.is_empty()
            && b.networks
                .iter()
                .all(|nb| a.networks.iter().any(|na| na.contains(nb))));
    hosts && paths && methods && networks
}

fn host_covers(a: &HostPattern, b: &HostPattern) -> bool {
    match (a, b) {
        (HostPattern::Exact(x), HostPattern::Exact(y)) => x == y,
        (HostPattern::Below(_), HostPattern::Exact(y)) => a.matches(y),
        (HostPattern::Below(x), HostPattern::Below(y)) => y.ends_with(x.as_str()),
        (HostPattern::Exact(_), HostPattern::Below(_)) => false,
    }
}
