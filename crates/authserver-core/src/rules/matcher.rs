//! The request side of a rule: host, path, method and client network, compiled once.

use super::RuleError;
use ipnet::IpNet;
use regex::Regex;
use std::net::IpAddr;

/// One host pattern: exact (`app.example.com`) or a wildcard (`*.example.com`: any name below
/// `example.com`, not `example.com` itself). Compared case-insensitively, port ignored.
#[derive(Debug, Clone)]
pub(super) enum HostPattern {
    Exact(String),
    Below(String),
}

impl HostPattern {
    pub(super) fn parse(text: &str) -> Result<Self, RuleError> {
        let lower = text.trim().to_ascii_lowercase();
        let valid = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        match lower.strip_prefix("*.") {
            Some(base) if valid(base) => Ok(Self::Below(format!(".{base}"))),
            None if valid(&lower) => Ok(Self::Exact(lower)),
            _ => Err(RuleError::Host(text.to_owned())),
        }
    }

    /// `host` is already lower-case and without port (see [`host_key`]).
    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => host == h,
            Self::Below(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

/// A `Host` (or `X-Forwarded-Host`) value as patterns compare it: lower-case, port dropped,
/// a trailing dot dropped (`example.com.` is `example.com`).
pub fn host_key(host: &str) -> String {
    let host = host.trim();
    let bare = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

/// Path patterns of one rule: any of them matching is a match.
#[derive(Debug, Clone, Default)]
pub(super) struct PathPatterns {
    prefixes: Vec<String>,
    /// Globs and regexes, compiled into one anchored alternation.
    regex: Option<Regex>,
}

impl PathPatterns {
    pub(super) fn compile(
        prefixes: &[String],
        globs: &[String],
        regexes: &[String],
    ) -> Result<Self, RuleError> {
        for p in prefixes.iter().chain(globs) {
            if !p.starts_with('/') {
                return Err(RuleError::Path(p.clone()));
            }
        }
        let mut parts: Vec<String> = globs.iter().map(|g| glob_regex(g)).collect();
        for r in regexes {
            // Checked alone first, so the error names the pattern that is wrong.
            Regex::new(r).map_err(|e| RuleError::Regex(r.clone(), e.to_string()))?;
            parts.push(format!("(?:{r})"));
        }
        let regex = if parts.is_empty() {
            None
        } else {
            let joined = format!("^(?:{})$", parts.join("|"));
            Some(Regex::new(&joined).map_err(|e| RuleError::Regex(joined, e.to_string()))?)
        };
        Ok(Self {
            prefixes: prefixes.to_vec(),
            regex,
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.regex.is_none()
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        self.prefixes.iter().any(|p| prefix_matches(p, path))
            || self.regex.as_ref().is_some_and(|r| r.is_match(path))
    }

    /// The prefixes, for the shadowing check.
    pub(super) fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    pub(super) fn has_patterns(&self) -> bool {
        self.regex.is_some()
    }

    /// All of this rule's path patterns as one anchored regex (prefixes included), for the
    /// rule set's single-pass [`regex::RegexSet`]; `None` without path criteria.
    pub(super) fn as_one_regex(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut parts: Vec<String> = self
            .prefixes
            .iter()
            .map(|p| match p.strip_suffix('/') {
                Some(dir) => format!("{}(?:/.*)?", regex::escape(dir)),
                None => format!("{}(?:/.*)?", regex::escape(p)),
            })
            .collect();
        if let Some(r) = &self.regex {
            parts.push(r.as_str().to_owned());
        }
        Some(format!("^(?:{})$", parts.join("|")))
    }
}

/// Segment-aware prefix: `/admin` matches `/admin`, `/admin/` and `/admin/x`, not
/// `/administrator`; a prefix ending in `/` matches that directory and below.
pub(super) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix) || path == prefix.trim_end_matches('/');
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `*` is any run within one segment, `**` any run across segments, `?` one character;
/// everything else literal. The caller anchors the result.
fn glob_regex(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() * 2);
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// Methods, upper-cased; empty means any.
pub(super) fn parse_methods(methods: &[String]) -> Result<Vec<String>, RuleError> {
    methods
        .iter()
        .map(|m| {
            let up = m.trim().to_ascii_uppercase();
            if up.is_empty() || !up.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(RuleError::Method(m.clone()));
            }
            Ok(up)
        })
        .collect()
}

/// Networks in CIDR notation (a bare address is a /32 or /128).
pub(super) fn parse_networks(networks: &[String]) -> Result<Vec<IpNet>, RuleError> {
    networks
        .iter()
        .map(|n| {
            let t = n.trim();
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| RuleError::Network(n.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_compare_without_case_port_or_trailing_dot() {
        assert_eq!(host_key("App.Example.COM:8443"), "app.example.com");
        assert_eq!(host_key("example.com."), "example.com");
        assert_eq!(host_key("[2001:db8::1]:443"), "2001:db8::1");
        let below = HostPattern::parse("*.example.com").expect("valid");
        assert!(below.matches("a.example.com") && below.matches("a.b.example.com"));
        assert!(!below.matches("example.com") && !below.matches("badexample.com"));
        let exact = HostPattern::parse("App.example.com").expect("valid");
        assert!(exact.matches("app.example.com") && !exact.matches("x.app.example.com"));
        assert!(HostPattern::parse("*.").is_err() && HostPattern::parse("a b").is_err());
        for never_matches in [
            "app.example.com:8443",
            "[2001:db8::1]",
            "*.example.com:443",
            "::1",
        ] {
            assert!(HostPattern::parse(never_matches).is_err(), "{never_matches}");
        }
    }

    #[test]
    fn prefixes_respect_segments_and_globs_compile() {
        assert!(prefix_matches("/admin", "/admin/x") && prefix_matches("/admin", "/admin"));
        assert!(!prefix_matches("/admin", "/administrator"));
        assert!(prefix_matches("/admin/", "/admin") && prefix_matches("/admin/", "/admin/x"));
        let p = PathPatterns::compile(
            &[],
            &["/api/*/items".into(), "/files/**".into()],
            &["/v[0-9]+/x".into()],
        )
        .expect("valid");
        assert!(p.matches("/api/v1/items") && !p.matches("/api/v1/x/items"));
        assert!(p.matches("/files/a/b/c") && p.matches("/v12/x") && !p.matches("/v12/x/y"));
        assert!(!p.matches("/pre/v1/x"), "regexes are anchored");
        assert!(matches!(
            PathPatterns::compile(&[], &[], &["(".into()]),
            Err(RuleError::Regex(..))
        ));
    }
}
