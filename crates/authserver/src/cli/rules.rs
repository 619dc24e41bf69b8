//! `rules check|explain`: an access rules file checked before it goes live, and one request
//! explained (which rule decides and why) without a password.

use crate::config::Settings;
use anyhow::{Context, bail};
use authserver_core::rules::{self, Identity, Policy, Request, RuleSet};
use clap::{Args, Subcommand};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `rules` options.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Config file (TOML): `rules.file` and `store.file` when not given.
    #[arg(long, env = "AUTHSERVER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: RulesCommand,
}

/// `rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check a rules file: syntax, rules shadowed by earlier ones, roles no user has. Exit 1 on
    /// any finding.
    Check {
        /// The rules file [default: rules.file].
        file: Option<PathBuf>,
        /// Users file whose roles subjects may name [default: store.file, when it exists].
        #[arg(long)]
        users: Option<PathBuf>,
    },
    /// Print which rule decides a request and why (no password needed).
    Explain {
        /// The rules file [default: rules.file].
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Users file for the user's roles [default: store.file].
        #[arg(long)]
        users: Option<PathBuf>,
        /// The user (omit: an anonymous request).
        #[arg(long)]
        user: Option<String>,
        /// The method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The URL (`https://host/path?query`) or a path.
        #[arg(long)]
        url: String,
        /// The client address.
        #[arg(long)]
        from: Option<IpAddr>,
    },
}

/// Runs a `rules` subcommand.
pub fn run(args: RulesArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_deref())?;
    match args.command {
        RulesCommand::Check { file, users } => check(&settings, file, users),
        RulesCommand::Explain {
            rules,
            users,
            user,
            method,
            url,
            from,
        } => {
            let set = load(&settings, rules)?;
            let roles = roles_of(&settings, users.as_deref(), user.as_deref())?;
            let query = Query { method, url, from };
            print!("{}", explain(&set, user.as_deref().zip(roles), &query)?);
            Ok(())
        }
    }
}

fn rules_path(settings: &Settings, file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match file {
        Some(f) => Ok(f),
        None if !settings.rules.file.is_empty() => Ok(PathBuf::from(&settings.rules.file)),
        None => bail!("no rules file: give one, or set rules.file"),
    }
}

fn load(settings: &Settings, file: Option<PathBuf>) -> anyhow::Result<RuleSet> {
    let path = rules_path(settings, file)?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    RuleSet::from_toml(&text).with_context(|| format!("{} refused", path.display()))
}

fn check(settings: &Settings, file: Option<PathBuf>, users: Option<PathBuf>) -> anyhow::Result<()> {
    let set = load(settings, file)?;
    let users = users.or_else(|| Some(settings.store.file.clone()).filter(|p| p.exists()));
    let known = match &users {
        Some(path) => Some(all_roles(path)?),
        None => None,
    };
    let findings = set.lint(known.as_deref());
    for f in &findings {
        println!("{f}");
    }
    if !findings.is_empty() {
        bail!("{} finding(s)", findings.len());
    }
    let roles_note = if known.is_some() {
        ""
    } else {
        " (no users file: roles not checked)"
    };
    println!("ok: {} rules{roles_note}", set.rules().len());
    Ok(())
}

fn document(path: &Path) -> anyhow::Result<authserver_core::StoreDocument> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    authserver_core::parse_document(&bytes).with_context(|| format!("{} refused", path.display()))
}

fn all_roles(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut roles: Vec<String> = document(path)?.into_values().flat_map(|u| u.roles).collect();
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// The user's roles, read from the users file (no password: `explain` shows the rule's
/// verdict for that identity as if it had authenticated).
fn roles_of(
    settings: &Settings,
    users: Option<&Path>,
    user: Option<&str>,
) -> anyhow::Result<Option<Vec<String>>> {
    let Some(user) = user else { return Ok(None) };
    let path = users.unwrap_or(&settings.store.file);
    let doc = document(path)?;
    let record = doc
        .get(user)
        .with_context(|| format!("no user {user:?} in {}", path.display()))?;
    Ok(Some(record.roles.clone()))
}

/// One request to explain.
#[derive(Debug)]
pub struct Query {
    /// Method.
    pub method: String,
    /// URL or path.
    pub url: String,
    /// Client address.
    pub from: Option<IpAddr>,
}

/// The explanation: the normalised request, the rule that decides, the verdict.
pub fn explain(set: &RuleSet, who: Option<(&str, Vec<String>)>, q: &Query) -> anyhow::Result<String> {
    // The server's own reading of `X-Original-URL`, so explain refuses what it refuses (a user
    // part, `?` or `#` in the host) instead of judging another path.
    let (host, target) = if q.url.contains("://") {
        let Some((host, target)) = crate::http::original::split_url(&q.url) else {
            return Ok(format!(
                "URL {:?} refused before matching: the host must be a name, an IPv4 or [IPv6] \
                 address and an optional port\nverdict: 403 (invalid_request)\n",
                q.url
            ));
        };
        (host.map(|h| rules::host_key(&h)), target)
    } else {
        (None, q.url.clone())
    };
    let method = q.method.to_ascii_uppercase();
    let mut out = String::new();
    let path = match rules::normalise(&target) {
        Ok(p) => p,
        Err(e) => {
            out.push_str(&format!(
                "path {target:?} refused before matching: {e}\nverdict: 403 (invalid_request)\n"
            ));
            return Ok(out);
        }
    };
    let req = Request {
        method: Some(&method),
        host: host.as_deref(),
        path: Some(&path),
        client: q.from,
    };
    out.push_str(&format!(
        "request: {method} host={} path={path} client={}\n",
        host.as_deref().unwrap_or("(unknown)"),
        q.from.map_or("(unknown)".into(), |c| c.to_string())
    ));
    let route = set.route(&req);
    for rule in &set.rules()[..route.index.unwrap_or(set.rules().len())] {
        out.push_str(&format!("  rule {:?}: no match\n", rule.name()));
    }
    let why = match route.index {
        Some(_) if route.undetermined => {
            "needs a part of the request that is unknown (give --url with a host, --from)"
        }
        Some(_) => "first rule whose criteria all match",
        None => "no rule matches: the default",
    };
    out.push_str(&format!("decided by: {:?} ({why})\n", route.name));
    out.push_str(&format!("verdict: {}\n", verdict(route.policy, who)));
    Ok(out)
}

fn verdict(policy: &Policy, who: Option<(&str, Vec<String>)>) -> String {
    match (policy, who) {
        (Policy::Bypass, _) => "200 without credentials (bypass)".into(),
        (Policy::Deny, _) => "403 for everyone (deny)".into(),
        (Policy::Allow(_), None) => "401 until authenticated (allow)".into(),
        (Policy::Allow(subject), Some((user, roles))) => {
            let who = Identity {
                user: user.to_owned(),
                roles: Arc::from(roles),
                scopes: Arc::from([]),
            };
            if subject.permits(&who) {
                format!("200 for {user} with the right password (the subject includes them)")
            } else {
                format!("403 for {user} (authenticated, but the subject does not include them)")
            }
        }
    }
}
