//! Access rules: which identities may reach which host, path and method.
//!
//! A [`RuleSet`] is an ordered list compiled once from a [`RulesDocument`]. The first rule
//! whose request criteria (host, path, method, client network: each empty list means any)
//! match the [`Request`] decides; when none does, the document's default does. The subject of
//! an `allow` rule is then checked against the [`Identity`] (it is not a match criterion: a
//! request is routed to one rule before anyone authenticates, so `bypass` and `deny` never
//! touch credentials and `rules explain` can name the rule without a password).
//!
//! # Layout
//! - this module: [`RuleSet`], [`Rule`], [`Policy`], [`Request`] and how a request is routed.
//! - `document`: the rules file as written ([`RulesDocument`], [`RuleSpec`]).
//! - `subject`: [`Subject`] and [`Identity`].
//! - [`path`]: normalisation of the request path, or a refusal.
//! - `matcher`: host, path, method and network patterns.
//! - `lint`: what `rules check` reports (shadowed rules, unknown roles).
//! - `routes`: the API Gateway routes a REST authorizer policy lists, and their verdicts.

mod document;
mod lint;
mod matcher;
pub mod path;
mod routes;
mod subject;

pub use document::{DefaultPolicy, PolicyKind, Require, RuleSpec, RulesDocument};
pub use lint::Finding;
pub use matcher::host_key;
pub use path::{NormalPath, PathError, normalise};
pub use routes::ApiRoute;
pub use subject::{Identity, Subject};

use ipnet::IpNet;
use matcher::{HostPattern, PathPatterns};
use std::net::IpAddr;
use std::sync::Arc;

/// Most rules a document may hold: rule names are metric labels, which must stay bounded.
pub const MAX_RULES: usize = 256;

/// Why a rules document was refused. Each names the rule (by position and name) it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not TOML, or not the document's shape (unknown keys included).
    #[error("rules document: {0}")]
    Syntax(String),
    /// A rule without a usable name (labels are `[a-z0-9_-]`, at most 64 characters).
    #[error("rule name {0:?}: use 1-64 characters of a-z, 0-9, _ and -")]
    Name(String),
    /// Two rules with one name (their metrics would merge).
    #[error("two rules are named {0:?}")]
    DuplicateName(String),
    /// More than [`MAX_RULES`].
    #[error("more than {MAX_RULES} rules")]
    TooMany,
    /// A host pattern that is neither a name nor `*.name`.
    #[error(
        "host pattern {0:?}: use a name or *.name (no port, no IPv6 literal: hosts are compared without them)"
    )]
    Host(String),
    /// A path prefix or glob not starting with `/`.
    #[error("path pattern {0:?} must start with /")]
    Path(String),
    /// A regex that does not compile.
    #[error("regex {0:?}: {1}")]
    Regex(String, String),
    /// A method that is not a token of letters.
    #[error("method {0:?}")]
    Method(String),
    /// A network that is not CIDR.
    #[error("network {0:?}: use CIDR (10.0.0.0/8) or an address")]
    Network(String),
    /// An `api_routes` entry that is not `METHOD /path`.
    #[error("API route {0:?}: use METHOD /path (ANY for any method, {{name}} for parameters)")]
    Route(String),
    /// `allow` without a subject, or a subject on `bypass`/`deny`.
    #[error("rule {0:?}: {1}")]
    Subject(String, &'static str),
}

/// A compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No credentials needed.
    Bypass,
    /// Refused for everyone.
    Deny,
    /// Authenticated identities the subject permits.
    Allow(Subject),
}

/// The request as rules see it. `None`: not known (a proxy that did not say, or a peer that is
/// not trusted to say); a rule that needs an unknown part denies (see [`RuleSet::route`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Upper-case method.
    pub method: Option<&'a str>,
    /// Host as [`host_key`] made it.
    pub host: Option<&'a str>,
    /// The normalised path.
    pub path: Option<&'a NormalPath>,
    /// The client address.
    pub client: Option<IpAddr>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    name: Arc<str>,
    hosts: Vec<HostPattern>,
    paths: PathPatterns,
    methods: Vec<String>,
    networks: Vec<IpNet>,
    policy: Policy,
}

impl Rule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule's policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether the request criteria match: `None` when that depends on a part of the request
    /// that is not known.
    pub fn matches(&self, req: &Request<'_>) -> Option<bool> {
        self.matches_with(req, req.path.map(|p| self.paths.matches(p.as_str())))
    }

    /// [`Rule::matches`] with the path test already done (`path_hit`, `None`: path unknown).
    fn matches_with(&self, req: &Request<'_>, path_hit: Option<bool>) -> Option<bool> {
        let method = crit(self.methods.is_empty(), req.method, |m| {
            self.methods.iter().any(|x| x == m)
        });
        let path = if self.paths.is_empty() {
            Some(true)
        } else {
            path_hit
        };
        let host = crit(self.hosts.is_empty(), req.host, |h| {
            self.hosts.iter().any(|p| p.matches(h))
        });
        let client = crit(self.networks.is_empty(), req.client, |c| {
            self.networks.iter().any(|n| n.contains(&c))
        });
        // A criterion that fails settles it, known or not the others.
        let all = [method, path, host, client];
        if all.contains(&Some(false)) {
            return Some(false);
        }
        all.iter().all(Option::is_some).then_some(true)
    }

    /// Whether the rule needs the original request's host, path or client (which only a
    /// trusted proxy can tell).
    pub fn needs_request(&self) -> bool {
        !(self.hosts.is_empty()
            && self.paths.is_empty()
            && self.methods.is_empty()
            && self.networks.is_empty())
    }

    fn compile(spec: &RuleSpec) -> Result<Self, RuleError> {
        let valid_name = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(RuleError::Name(spec.name.clone()));
        }
        Ok(Self {
            name: spec.name.as_str().into(),
            hosts: spec
                .hosts
                .iter()
                .map(|h| HostPattern::parse(h))
                .collect::<Result<_, _>>()?,
            paths: PathPatterns::compile(&spec.paths, &spec.path_globs, &spec.path_regexes)?,
            methods: matcher::parse_methods(&spec.methods)?,
            networks: matcher::parse_networks(&spec.networks)?,
            policy: policy_of(spec)?,
        })
    }
}

/// One criterion: any when `empty`, unknown when the request part is missing.
fn crit<T: Copy>(empty: bool, part: Option<T>, test: impl Fn(T) -> bool) -> Option<bool> {
    if empty {
        return Some(true);
    }
    part.map(test)
}

fn policy_of(spec: &RuleSpec) -> Result<Policy, RuleError> {
    let has_subject = !(spec.users.is_empty() && spec.roles.is_empty() && spec.scopes.is_empty());
    let err = |why| Err(RuleError::Subject(spec.name.clone(), why));
    match spec.policy {
        None => err("policy missing: bypass, deny or allow"),
        Some(PolicyKind::Bypass | PolicyKind::Deny) if has_subject => {
            err("users, roles and scopes belong to allow rules only")
        }
        Some(PolicyKind::Bypass) => Ok(Policy::Bypass),
        Some(PolicyKind::Deny) => Ok(Policy::Deny),
        Some(PolicyKind::Allow) => Ok(Policy::Allow(Subject {
            users: spec.users.clone(),
            roles: spec.roles.clone(),
            scopes: spec.scopes.clone(),
            require: spec.require,
        })),
    }
}

/// Which rule decided, and its policy.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The rule's position, `None` for the default.
    pub index: Option<usize>,
    /// The rule's name, `"default"` for the default.
    pub name: &'a str,
    /// What to do.
    pub policy: &'a Policy,
    /// The rule needed a part of the request that is not known, so it denies whatever its
    /// policy (an unknown path must not fall past a `deny` to a later `allow`).
    pub undetermined: bool,
}

/// The policy of an undetermined route.
static DENY: Policy = Policy::Deny;

/// The compiled, ordered rules.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Policy,
    api_routes: Vec<ApiRoute>,
    /// Every rule's path patterns in one set, so a request's path is read once for all rules
    /// instead of once per rule (100 rules: 6.1 µs → see docs/performance.md).
    paths: regex::RegexSet,
    /// Rule index → its pattern in `paths` (`None`: the rule has no path criterion).
    path_slot: Vec<Option<usize>>,
}

/// The rule name metrics and logs use when no rule matched.
pub const DEFAULT_RULE: &str = "default";

/// The rule name of requests refused before matching (contradictory proxy headers, a path
/// that cannot be normalised).
pub const INVALID_REQUEST: &str = "invalid_request";

/// Names no rule may take: the labels above.
const RESERVED: [&str; 2] = [DEFAULT_RULE, INVALID_REQUEST];

impl RuleSet {
    /// Compiles a document; every pattern is checked and compiled here, never per request.
    pub fn compile(doc: &RulesDocument) -> Result<Self, RuleError> {
        if doc.rules.len() > MAX_RULES {
            return Err(RuleError::TooMany);
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(doc.rules.len());
        for spec in &doc.rules {
            let rule = Rule::compile(spec)?;
            if RESERVED.contains(&spec.name.as_str()) || rules.iter().any(|r| r.name == rule.name) {
                return Err(RuleError::DuplicateName(spec.name.clone()));
            }
            rules.push(rule);
        }
        let default = match doc.default {
            DefaultPolicy::Deny => Policy::Deny,
            DefaultPolicy::Authenticated => Policy::Allow(Subject::anyone()),
        };
        let api_routes = doc
            .api_routes
            .iter()
            .map(|r| ApiRoute::parse(r))
            .collect::<Result<_, _>>()?;
        let (mut patterns, mut path_slot) = (Vec::new(), Vec::with_capacity(rules.len()));
        for rule in &rules {
            path_slot.push(rule.paths.as_one_regex().map(|p| {
                patterns.push(p);
                patterns.len() - 1
            }));
        }
        let paths = regex::RegexSetBuilder::new(&patterns)
            .dfa_size_limit(8 << 20)
            .build()
            .map_err(|e| RuleError::Regex(String::new(), e.to_string()))?;
        Ok(Self {
            rules,
            default,
            api_routes,
            paths,
            path_slot,
        })
    }

    /// Parses and compiles TOML text.
    pub fn from_toml(text: &str) -> Result<Self, RuleError> {
        Self::compile(&RulesDocument::parse(text)?)
    }

    /// The API Gateway routes of `api_routes`.
    pub fn api_routes(&self) -> &[ApiRoute] {
        &self.api_routes
    }

    /// The policy when no rule matches.
    pub fn default_policy(&self) -> &Policy {
        &self.default
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule that decides `req`: the first whose criteria match, else the default. A rule
    /// that cannot tell (it needs an unknown part of the request) decides too, as a denial.
    pub fn route(&self, req: &Request<'_>) -> Route<'_> {
        let hits = req.path.map(|p| self.paths.matches(p.as_str()));
        for (i, rule) in self.rules.iter().enumerate() {
            let path_hit = match (self.path_slot.get(i).copied().flatten(), &hits) {
                (Some(slot), Some(hits)) => Some(hits.matched(slot)),
                (Some(_), None) => None,
                (None, _) => Some(true),
            };
            let undetermined = match rule.matches_with(req, path_hit) {
                Some(false) => continue,
                Some(true) => false,
                None => true,
            };
            return Route {
                index: Some(i),
                name: &rule.name,
                policy: if undetermined { &DENY } else { &rule.policy },
                undetermined,
            };
        }
        Route {
            index: None,
            name: DEFAULT_RULE,
            policy: &self.default,
            undetermined: false,
        }
    }

    /// What `rules check` reports; `known_roles` is `None` when no users are at hand.
    pub fn lint(&self, known_roles: Option<&[String]>) -> Vec<Finding> {
        let mut out = lint::findings(&self.rules, known_roles);
        out.extend(self.api_routes.iter().filter_map(|r| self.coarse_route(r)));
        out
    }
}

#[cfg(test)]
mod tests;
