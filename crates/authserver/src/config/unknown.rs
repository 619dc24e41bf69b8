//! `AUTHSERVER_*` variables that are no setting: Kubernetes service links (ignored silently)
//! and the rest (a warning each, with the closest known variable when one is near).
//!
//! Unknown variables warn rather than abort because the namespace is not ours alone: in a
//! Kubernetes namespace holding a Service named `authserver` (or `authserver-…`), the kubelet
//! injects `AUTHSERVER_SERVICE_HOST`, `AUTHSERVER_SERVICE_PORT[_<NAME>]`,
//! `AUTHSERVER_PORT=tcp://…` and `AUTHSERVER_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]` into every
//! pod (service links), and a server that refused them could not start next to its own
//! Service. Those shapes are recognised and skipped without a word; anything else is a warning
//! the server logs once after logging is set up and `config check` prints. A typo of a known
//! key is no longer fatal, so the warning names the key it probably meant.

use std::fmt;

/// An `AUTHSERVER_*` variable that was ignored. Holds the name only: values never reach logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWarning {
    /// The variable.
    pub var: String,
    /// The known variable within two edits of it, if any.
    pub did_you_mean: Option<String>,
}

impl fmt::Display for EnvWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown environment variable {} ignored", self.var)?;
        if let Some(known) = &self.did_you_mean {
            write!(f, " (did you mean {known}?)")?;
        }
        f.write_str(" (see docs/configuration.md)")
    }
}

impl EnvWarning {
    /// The warning for `var`, with the nearest of `known` (at most two edits away).
    pub(super) fn new<'a>(var: &str, known: impl Iterator<Item = &'a str>) -> Self {
        // Two edits cannot bridge a length gap of three: skipping those keeps a huge name from
        // costing a full edit-distance table per known key (12 names of 120 KB took 10.7 s).
        let did_you_mean = known
            .filter(|k| k.len().abs_diff(var.len()) <= 2)
            .map(|k| (distance(var, k), k))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, k)| k.to_owned());
        Self {
            // Printed by `config check` and logged: a name holding a newline or an escape
            // sequence must not forge lines or colours in either.
            var: var.escape_default().to_string(),
            did_you_mean,
        }
    }
}

/// Whether `var` (with `value`) has the shape of a Kubernetes service-link variable for a
/// Service whose name starts with `authserver`. Bare `…_PORT` is one only with a
/// `tcp://`/`udp://`/`sctp://` value, so a typo such as `AUTHSERVER_ADMIN_PORT=9000` still warns.
pub(super) fn is_service_link(var: &str, value: &str) -> bool {
    let Some(rest) = var.strip_prefix("AUTHSERVER") else {
        return false;
    };
    if rest.ends_with("_SERVICE_HOST") || rest.ends_with("_SERVICE_PORT") || rest.contains("_SERVICE_PORT_") {
        return true;
    }
    let tokens: Vec<&str> = rest.split('_').collect();
    if (0..tokens.len()).any(|i| port_link(&tokens[i..])) {
        return true;
    }
    rest.ends_with("_PORT")
        && ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|s| value.starts_with(s))
}

/// `PORT_<number>_<PROTO>` optionally followed by `_PROTO`, `_PORT` or `_ADDR`, at the end.
fn port_link(tokens: &[&str]) -> bool {
    let number = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match tokens {
        ["PORT", n, proto] | ["PORT", n, proto, "PROTO" | "PORT" | "ADDR"] => {
            number(n) && matches!(*proto, "TCP" | "UDP" | "SCTP")
        }
        _ => false,
    }
}

/// Levenshtein distance (the names are ASCII and short: ~40 × 40 cells per known key).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kubelet injects for `Service authserver` (ports 8080 named `http`, 9090
    /// `admin`) and for `Service authserver-admin`.
    const SERVICE_LINKS: &[(&str, &str)] = &[
        ("AUTHSERVER_SERVICE_HOST", "10.0.0.1"),
        ("AUTHSERVER_SERVICE_PORT", "8080"),
        ("AUTHSERVER_SERVICE_PORT_HTTP", "8080"),
        ("AUTHSERVER_SERVICE_PORT_ADMIN", "9090"),
        ("AUTHSERVER_PORT", "tcp://10.0.0.1:8080"),
        ("AUTHSERVER_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("AUTHSERVER_PORT_8080_TCP_PROTO", "tcp"),
        ("AUTHSERVER_PORT_8080_TCP_PORT", "8080"),
        ("AUTHSERVER_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("AUTHSERVER_PORT_9090_UDP_ADDR", "10.0.0.1"),
        ("AUTHSERVER_ADMIN_SERVICE_HOST", "10.0.0.2"),
        ("AUTHSERVER_ADMIN_PORT", "tcp://10.0.0.2:9090"),
        ("AUTHSERVER_ADMIN_PORT_9090_SCTP", "sctp://10.0.0.2:9090"),
    ];

    #[test]
    fn service_link_shapes_are_recognised() {
        for (var, value) in SERVICE_LINKS {
            assert!(is_service_link(var, value), "{var}");
        }
    }

    #[test]
    fn near_misses_are_not_service_links() {
        for (var, value) in [
            ("AUTHSERVER_ADMIN_PORT", "9090"),
            ("AUTHSERVER_PORT", "8080"),
            ("AUTHSERVER_PORT_HTTP_TCP", "tcp://x"),
            ("AUTHSERVER_PORT_8080_HTTP", "x"),
            ("AUTHSERVER_PORT_8080_TCP_HOST", "x"),
            ("AUTHSERVER_SERVICE", "authserver"),
            ("AUTHSERVER_SERVER_LISTN", "x"),
            ("OTHER_SERVICE_HOST", "10.0.0.1"),
        ] {
            assert!(!is_service_link(var, value), "{var}");
        }
    }

    #[test]
    fn a_hostile_name_is_escaped_and_cheap() {
        let w = EnvWarning::new(
            "AUTHSERVER_X\nerror: fake\u{1b}[31m",
            ["AUTHSERVER_X"].into_iter(),
        );
        assert_eq!(w.var, "AUTHSERVER_X\\nerror: fake\\u{1b}[31m");
        assert!(!w.to_string().contains('\n') && !w.to_string().contains('\u{1b}'));
        let huge = format!("AUTHSERVER_{}", "A".repeat(200_000));
        let w = EnvWarning::new(&huge, ["AUTHSERVER_SERVER_LISTEN"].into_iter());
        assert_eq!(w.did_you_mean, None);
    }

    #[test]
    fn a_typo_names_the_nearest_key() {
        let known = ["AUTHSERVER_SERVER_LISTEN", "AUTHSERVER_LOG_LEVEL", "LOG_LEVEL"];
        let w = EnvWarning::new("AUTHSERVER_SERVER_LISTN", known.into_iter());
        assert_eq!(w.did_you_mean.as_deref(), Some("AUTHSERVER_SERVER_LISTEN"));
        assert!(
            w.to_string().contains("did you mean AUTHSERVER_SERVER_LISTEN?"),
            "{w}"
        );
        let far = EnvWarning::new("AUTHSERVER_SOMETHING_ELSE", known.into_iter());
        assert_eq!(far.did_you_mean, None);
        assert!(!far.to_string().contains("did you mean"), "{far}");
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
