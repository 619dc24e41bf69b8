//! `authserver users import`: brings users from an htpasswd file (nginx `auth_basic`, Apache,
//! Traefik, Caddy exports) or another tool's JSON into a users file, in one locked atomic edit
//! ([`crate::store::file::edit`]) with one audit event.
//!
//! Every entry is checked before anything is written: a refused entry (a scheme too weak to keep,
//! a legacy hash while `hash.legacy` is off, a bad name) refuses the whole import, with one line
//! per refused user naming the user and the reason, never the hash. Argon2id entries are checked
//! against the `[hash]` policy like any other.

use super::admin::AdminAudit;
use crate::config::Settings;
use crate::store::file::edit::{self, Missing};
use anyhow::bail;
use authserver_core::{HashError, HashPolicy, Status, StoredHash, UserRecord};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the source file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `user:hash` lines (`#` comments and blank lines skipped).
    Htpasswd,
    /// `{"user": "hash", ...}` or `[{"username": "...", "hash": "...", "roles": [...]}, ...]`.
    Json,
}

/// One user to import.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Username.
    pub username: String,
    /// The hash as the other tool stored it (never printed).
    pub hash: String,
    /// Roles (JSON list form only).
    #[serde(default)]
    pub roles: Vec<String>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({:?}, REDACTED, {:?})", self.username, self.roles)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonSource {
    Map(BTreeMap<String, String>),
    List(Vec<Entry>),
}

/// Parses the source. Errors give line numbers or JSON positions, never content.
pub fn parse(text: &str, format: Format) -> anyhow::Result<Vec<Entry>> {
    match format {
        Format::Htpasswd => parse_htpasswd(text),
        Format::Json => match serde_json::from_str::<JsonSource>(text) {
            Ok(JsonSource::Map(m)) => Ok(m
                .into_iter()
                .map(|(username, hash)| Entry {
                    username,
                    hash,
                    roles: Vec::new(),
                })
                .collect()),
            Ok(JsonSource::List(l)) => Ok(l),
            // serde's untagged error quotes nothing, but say what shape was expected.
            Err(e) => bail!(
                "import file is not {{\"user\": \"hash\"}} or [{{\"username\", \"hash\", \"roles\"}}] JSON \
                 (line {}, column {})",
                e.line(),
                e.column()
            ),
        },
    }
}

fn parse_htpasswd(text: &str) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        // htpasswd's format: the username ends at the first ':'; the hash is the rest.
        let Some((user, hash)) = line.split_once(':') else {
            bail!("line {}: not a `user:hash` line", n + 1);
        };
        out.push(Entry {
            username: user.to_owned(),
            hash: hash.to_owned(),
            roles: Vec::new(),
        });
    }
    Ok(out)
}

/// Why one entry is refused, for the user-naming report.
fn refusal(e: &Entry, policy: &HashPolicy) -> Option<String> {
    if let Err(p) = authserver_core::names::check_names(&e.username, &e.roles) {
        return Some(p.to_string());
    }
    match StoredHash::parse(&e.hash, policy) {
        Ok(_) => None,
        Err(HashError::NotPhc) => {
            Some("unrecognised hash format (plaintext or an unsupported scheme)".into())
        }
        Err(other) => Some(other.to_string()),
    }
}

/// Counts per algorithm of an accepted import, for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Users added.
    pub added: usize,
    /// Existing users whose hash was replaced (`--replace`).
    pub replaced: usize,
    /// Per algorithm (`argon2id`, `bcrypt`, `sha-crypt`).
    pub algorithms: BTreeMap<&'static str, usize>,
}

/// Checks every entry against `policy`; all refusals at once, each naming its user.
pub fn check(entries: &[Entry], policy: &HashPolicy) -> anyhow::Result<BTreeMap<&'static str, usize>> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut algorithms = BTreeMap::new();
    for e in entries {
        let name = authserver_core::names::escape_for_display(&e.username);
        if !seen.insert(e.username.as_str()) {
            problems.push(format!("user {name:?}: appears more than once in the import"));
        } else if let Some(why) = refusal(e, policy) {
            problems.push(format!("user {name:?}: {why}"));
        } else if let Ok(h) = StoredHash::parse(&e.hash, policy) {
            *algorithms.entry(h.algorithm()).or_insert(0) += 1;
        }
    }
    if !problems.is_empty() {
        bail!(
            "import refused, nothing written ({} of {} entries):\n  {}",
            problems.len(),
            entries.len(),
            problems.join("\n  ")
        );
    }
    Ok(algorithms)
}

/// Imports `entries` into `users_file` under the edit lock. Existing users are refused unless
/// `replace`, which swaps their hash (and roles, when the import gives some) and keeps status.
pub fn apply(
    users_file: &Path,
    entries: Vec<Entry>,
    policy: &HashPolicy,
    replace: bool,
) -> anyhow::Result<Summary> {
    let algorithms = check(&entries, policy)?;
    edit::edit(users_file, Missing::Create, |doc| {
        let existing: Vec<String> = entries
            .iter()
            .filter(|e| doc.contains_key(&e.username))
            .map(|e| format!("{:?}", authserver_core::names::escape_for_display(&e.username)))
            .collect();
        if !existing.is_empty() && !replace {
            bail!(
                "import refused, nothing written: {} already exist in {} (use --replace): {}",
                existing.len(),
                users_file.display(),
                existing.join(", ")
            );
        }
        let summary = Summary {
            replaced: existing.len(),
            added: entries.len() - existing.len(),
            algorithms,
        };
        for e in entries {
            merge(doc, e);
        }
        Ok(summary)
    })
}

fn merge(doc: &mut authserver_core::StoreDocument, e: Entry) {
    match doc.get_mut(&e.username) {
        Some(rec) => {
            rec.password_hash = e.hash;
            if !e.roles.is_empty() {
                rec.roles = e.roles;
            }
            // The password changed hands, not value: when it was set is unknown.
            rec.password_changed_at = None;
        }
        None => {
            doc.insert(
                e.username,
                UserRecord {
                    password_hash: e.hash,
                    status: Status::Active,
                    roles: e.roles,
                    password_changed_at: None,
                    delivery_secret_id: None,
                    oauth: None,
                },
            );
        }
    }
}

/// `users import`: one audit event (`users.import`) for the whole edit.
pub fn run(
    source: &Path,
    format: Format,
    users: Option<PathBuf>,
    replace: bool,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let users = users.unwrap_or_else(|| settings.store.file.clone());
    let max = crate::store::file::FileLimits::default().max_bytes;
    let (bytes, _) = crate::files::read_regular(source, max)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", source.display()))?;
    let Ok(text) = String::from_utf8(bytes) else {
        bail!("{} is not UTF-8 text", source.display());
    };
    let entries = parse(&text, format)?;
    let audit = AdminAudit::open(&settings)?;
    let summary = apply(&users, entries, &settings.hash.policy, replace)?;
    let algorithms: Vec<String> = summary
        .algorithms
        .iter()
        .map(|(a, n)| format!("{a}: {n}"))
        .collect();
    eprintln!(
        "imported into {}: {} added, {} replaced ({})",
        users.display(),
        summary.added,
        summary.replaced,
        algorithms.join(", ")
    );
    audit.emit("users.import", None, users.display().to_string());
    audit.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = include_str!("../../tests/fixtures/htpasswd/legacy.htpasswd");
    const REFUSED: &str = include_str!("../../tests/fixtures/htpasswd/refused.htpasswd");

    fn policy(legacy: bool) -> HashPolicy {
        HashPolicy {
            legacy,
            ..HashPolicy::default()
        }
    }

    #[test]
    fn legacy_lines_need_the_setting_and_weak_ones_never_pass() {
        let entries = parse(LEGACY, Format::Htpasswd).expect("parse");
        assert_eq!(entries.len(), 5);
        let counts = check(&entries, &policy(true)).expect("legacy on");
        assert_eq!(counts.get("bcrypt"), Some(&2));
        assert_eq!(counts.get("sha-crypt"), Some(&3));
        let err = check(&entries, &policy(false))
            .expect_err("legacy off")
            .to_string();
        assert!(
            err.contains("user \"bella\"") && err.contains("hash.legacy = true"),
            "{err}"
        );
        let refused = parse(REFUSED, Format::Htpasswd).expect("parse");
        let err = check(&refused, &policy(true)).expect_err("weak").to_string();
        for (user, why) in [
            ("mona", "apr1/MD5"),
            ("shay", "{SHA}"),
            ("dora", "crypt(3) DES"),
            ("pia", "unrecognised"),
        ] {
            assert!(
                err.lines()
                    .any(|l| l.contains(&format!("\"{user}\"")) && l.contains(why)),
                "{user}: {err}"
            );
        }
        for e in &refused {
            assert!(!err.contains(&e.hash), "{err}");
        }
    }

    #[test]
    fn json_shapes_and_bad_input() {
        let map = parse(r#"{"a": "$2y$05$x", "b": "y"}"#, Format::Json).expect("map");
        assert_eq!(map.len(), 2);
        let list = parse(
            r#"[{"username": "a", "hash": "h", "roles": ["ops"]}]"#,
            Format::Json,
        )
        .expect("list");
        assert_eq!(list[0].roles, ["ops"]);
        let err = parse(r#"{"a": {"secret-hash": 1}}"#, Format::Json).expect_err("shape");
        assert!(!err.to_string().contains("secret-hash"), "{err}");
        let err = parse("ok:h\nsecret-without-colon\n", Format::Htpasswd).expect_err("line");
        assert!(err.to_string().starts_with("line 2") && !err.to_string().contains("secret"));
        let dup = parse("a:h\na:h\n", Format::Htpasswd).expect("parse");
        assert!(check(&dup, &policy(true)).is_err());
    }

    #[test]
    fn argon2id_lines_import_as_they_are_within_the_policy() {
        let pw = authserver_core::Secret::from("pw");
        let fast = authserver_core::Cost {
            m_kib: 19456,
            t: 2,
            p: 1,
        };
        let weak = authserver_core::Cost {
            m_kib: 1024,
            t: 1,
            p: 1,
        };
        let good = authserver_core::hash_password(&pw, fast).expect("hash");
        let low = authserver_core::hash_password(&pw, weak).expect("hash");
        let text = format!("ann:{good}\n# comment\n\nbea:{low}\n");
        let entries = parse(&text, Format::Htpasswd).expect("parse");
        let err = check(&entries, &policy(false))
            .expect_err("below floor")
            .to_string();
        assert!(
            err.contains("\"bea\"") && !err.contains("\"ann\"") && !err.contains(&low),
            "{err}"
        );
        let counts = check(&entries[..1], &policy(false)).expect("argon2id passes");
        assert_eq!(counts.get("argon2id"), Some(&1));
    }
}
