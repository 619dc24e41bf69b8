//! The access rules in service: loaded from `rules.file`, reloaded when it changes, the last
//! good set kept on a broken edit. See `docs/access-rules.md`.
//!
//! A separate file, not a section of the config file: the config file is read once at start
//! (its settings size listeners and pools that cannot change under a running server), while
//! rules are data that changes as users and paths do, like the users file. Reloading it reuses
//! the users file's machinery ([`crate::files`]): metadata poll, content digest, regular files
//! only, a bound on size, a stalled read reported and never waited for.
//!
//! One addition: new content goes into service only once two consecutive checks read the same
//! digest (it has settled for one poll interval). A users file is JSON, which is
//! self-delimiting: a prefix caught mid-write never parses. TOML is not: a rules file cut after
//! `policy = "allow"` and before `roles = [...]` is a valid, wider file. Writers should still
//! replace the file by rename (docs/access-rules.md); the settle check covers in-place writers
//! that finish within one interval.
//!
//! No file configured: [`AccessRules::current`] is `None` and every surface behaves as before
//! rules existed (any authenticated user passes). A file that is configured but cannot be read
//! or compiled at start is an error: a server must not start open by accident.
//!
//! Per-rule counters (allowed / denied) live in a process-wide registry keyed by rule name, so
//! a reload keeps the counts of rules that keep their names; names are bounded by
//! [`MAX_NAMES`] (past it, `other`).

use crate::files::{FileError, Seen, read_regular, stat_key};
use arc_swap::ArcSwapOption;
use authserver_core::rules::{RuleError, RuleSet};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Most distinct rule names counted per process (4 full rule sets' worth of renames).
pub const MAX_NAMES: usize = 4 * authserver_core::rules::MAX_RULES;

/// Allowed and denied answers of one rule.
#[derive(Debug, Default)]
pub struct RuleCounts {
    /// 200 answers (bypass, or allow with a permitted subject).
    pub allowed: AtomicU64,
    /// 403 answers (deny, a subject not permitted, a request that cannot be matched safely).
    pub denied: AtomicU64,
}

/// The counters of every rule name seen, and of reload failures.
#[derive(Debug, Default)]
pub struct Figures {
    names: Mutex<BTreeMap<String, Arc<RuleCounts>>>,
    /// Rules-file reads or compilations that failed (the last good set kept).
    pub reload_failures: AtomicU64,
}

impl Figures {
    /// The counters of `name` (`other` once [`MAX_NAMES`] are taken).
    pub fn counts(&self, name: &str) -> Arc<RuleCounts> {
        let mut map = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let key = if map.contains_key(name) || map.len() < MAX_NAMES {
            name
        } else {
            "other"
        };
        map.entry(key.to_owned()).or_default().clone()
    }

    /// `(name, allowed, denied)` for every name, sorted.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        let map = self.names.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(n, c)| (n.clone(), c.allowed.load(Relaxed), c.denied.load(Relaxed)))
            .collect()
    }
}

/// The process-wide figures (`/metrics` reads them).
pub fn figures() -> &'static Figures {
    static FIGURES: OnceLock<Figures> = OnceLock::new();
    FIGURES.get_or_init(Figures::default)
}

/// A compiled rule set with its counters (index `i` for rule `i`, the last for the default).
#[derive(Debug)]
pub struct Loaded {
    /// The rules.
    pub set: RuleSet,
    counts: Vec<Arc<RuleCounts>>,
    /// Short digest of the file's content (`/ready`, logs).
    pub version: String,
}

impl Loaded {
    /// Compiles `text` (`version` names it in logs and `/ready`).
    pub fn compile(text: &str, version: String) -> Result<Self, RuleError> {
        let set = RuleSet::from_toml(text)?;
        let figures = figures();
        let counts = set
            .rules()
            .iter()
            .map(|r| r.name())
            .chain([authserver_core::rules::DEFAULT_RULE])
            .map(|n| figures.counts(n))
            .collect();
        Ok(Self { set, counts, version })
    }

    /// The counters of the rule at `index` (`None`: the default).
    pub fn counts(&self, index: Option<usize>) -> Arc<RuleCounts> {
        // `counts` holds one entry per rule plus the default's, so it is never empty.
        let last = self.counts.len().saturating_sub(1);
        self.counts
            .get(index.map_or(last, |i| i.min(last)))
            .cloned()
            .unwrap_or_default()
    }
}

/// Why the rules file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    /// Missing, unreadable, not a regular file, too large.
    #[error("cannot read rules file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: FileError,
    },
    /// Not UTF-8, or refused by the compiler.
    #[error("rules file {} refused: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: RuleError,
    },
}

/// What `/ready` (admin) says of the rules.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RulesStatus {
    /// Rules configured at all.
    pub configured: bool,
    /// Version (content digest) in service.
    pub version: Option<String>,
    /// Number of rules in service.
    pub rules: usize,
    /// The last reload error, while the file on disk is not the set in service.
    pub last_error: Option<String>,
}

/// The rules in service, and how to reload them.
#[derive(Debug, Default)]
pub struct AccessRules {
    path: Option<PathBuf>,
    max_bytes: u64,
    current: ArcSwapOption<Loaded>,
    state: Mutex<PollState>,
}

#[derive(Debug, Default)]
struct PollState {
    seen: Option<Seen>,
    tried: [u8; 32],
    /// Content read once and not yet seen again (not in service until it is).
    pending: Option<[u8; 32]>,
    last_error: Option<String>,
}

impl AccessRules {
    /// No rules: every surface behaves as before rules existed.
    pub fn none() -> Self {
        Self::default()
    }

    /// Rules compiled from `text` (tests, `rules explain`); never reloaded.
    pub fn fixed(text: &str) -> Result<Self, RuleError> {
        let rules = Self::default();
        rules.current.store(Some(Arc::new(Loaded::compile(
            text,
            version_of(text.as_bytes()),
        )?)));
        Ok(rules)
    }

    /// Loads `path` (at most `max_bytes`); an error when it cannot be read or compiled.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, RulesFileError> {
        let rules = Self {
            path: Some(path.to_owned()),
            max_bytes,
            ..Self::default()
        };
        let (bytes, key) = read_regular(path, max_bytes).map_err(|source| RulesFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let loaded = compile_bytes(&bytes).map_err(|source| RulesFileError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        tracing::info!(
            version = loaded.version,
            rules = loaded.set.rules().len(),
            "rules file loaded"
        );
        {
            let mut st = rules.lock();
            st.seen = Some(Seen::after_read(key));
            st.tried = Sha256::digest(&bytes).into();
        }
        rules.current.store(Some(Arc::new(loaded)));
        Ok(rules)
    }

    /// The set in service, `None` when no rules are configured.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// For `/ready`.
    pub fn status(&self) -> RulesStatus {
        let current = self.current();
        RulesStatus {
            configured: current.is_some(),
            version: current.as_ref().map(|l| l.version.clone()),
            rules: current.map_or(0, |l| l.set.rules().len()),
            last_error: self.lock().last_error.clone(),
        }
    }

    /// Checks the file once; true when a new set went into service. Blocking I/O.
    pub fn check(&self) -> bool {
        let Some(path) = &self.path else { return false };
        let key = match stat_key(path) {
            Ok(k) => k,
            Err(e) => return self.failed(format!("cannot read rules file: {e}")),
        };
        let pending = self.lock().pending.is_some();
        if !pending && !Seen::must_read(self.lock().seen.as_ref(), &key) {
            return false;
        }
        let (bytes, key) = match read_regular(path, self.max_bytes) {
            Ok(read) => read,
            Err(e) => return self.failed(format!("cannot read rules file: {e}")),
        };
        if !self.settled(&bytes, key) {
            return false;
        }
        match compile_bytes(&bytes) {
            Ok(loaded) => {
                tracing::info!(
                    version = loaded.version,
                    rules = loaded.set.rules().len(),
                    "rules file reloaded"
                );
                self.current.store(Some(Arc::new(loaded)));
                self.lock().last_error = None;
                true
            }
            Err(e) => self.failed(format!("rules file refused: {e}")),
        }
    }

    /// Records a read; true when `bytes` are new content that the previous check read too
    /// (settled), false when unchanged from the content last tried or not yet settled.
    fn settled(&self, bytes: &[u8], key: crate::files::FileKey) -> bool {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let mut st = self.lock();
        st.seen = Some(Seen::after_read(key));
        if st.tried == digest {
            st.pending = None;
            return false;
        }
        if st.pending.replace(digest) != Some(digest) {
            return false;
        }
        st.pending = None;
        st.tried = digest;
        true
    }

    /// Logs (once per distinct broken content: `check` skips content already tried) and
    /// counts a failed reload; the set in service stays.
    fn failed(&self, why: String) -> bool {
        let mut st = self.lock();
        if st.last_error.as_deref() != Some(why.as_str()) {
            figures().reload_failures.fetch_add(1, Relaxed);
            tracing::error!(error = %why, "rules file not reloaded; the last good rules stay in service");
            st.last_error = Some(why);
        }
        false
    }

    /// Polls the file every `interval` (reads stuck past `deadline` are reported, never awaited).
    pub fn watch(
        self: Arc<Self>,
        interval: Duration,
        deadline: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.path.as_ref()?;
        let stalled = self.clone();
        Some(crate::files::poll(
            interval,
            deadline,
            move || {
                self.check();
            },
            move |took| {
                stalled.failed(format!("rules file read stalled for {} ms", took.as_millis()));
            },
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn compile_bytes(bytes: &[u8]) -> Result<Loaded, RuleError> {
    let text = std::str::from_utf8(bytes).map_err(|_| RuleError::Syntax("not UTF-8".into()))?;
    Loaded::compile(text, version_of(bytes))
}

fn version_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[[rule]]\nname = \"open\"\npaths = [\"/public\"]\npolicy = \"bypass\"\n";

    #[test]
    fn a_broken_edit_keeps_the_last_good_set_and_a_fix_replaces_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, GOOD).expect("write");
        let rules = AccessRules::open(&path, 1 << 20).expect("good");
        let first = rules.status().version.expect("version");
        let failures = figures().reload_failures.load(Relaxed);
        std::fs::write(&path, "[[rule]]\nname = \"Bad\"\n").expect("write");
        assert!(!rules.check(), "read once: not settled");
        assert!(
            rules.status().last_error.is_none(),
            "not compiled before it settles"
        );
        assert!(!rules.check());
        assert!(!rules.check(), "the same broken content is reported once");
        let status = rules.status();
        assert_eq!(status.version.as_deref(), Some(first.as_str()));
        assert!(status.last_error.is_some_and(|e| e.contains("rule name")));
        assert!(figures().reload_failures.load(Relaxed) > failures);
        std::fs::write(
            &path,
            format!("{GOOD}\n[[rule]]\nname = \"x\"\npolicy = \"deny\"\n"),
        )
        .expect("write");
        assert!(!rules.check(), "read once: not settled");
        assert!(rules.check());
        assert_eq!((rules.status().rules, rules.status().last_error), (2, None));
    }

    #[test]
    fn a_file_that_cannot_be_used_at_start_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rules.toml");
        assert!(matches!(
            AccessRules::open(&path, 1 << 20),
            Err(RulesFileError::Read { .. })
        ));
        std::fs::write(&path, "policy = 1").expect("write");
        assert!(matches!(
            AccessRules::open(&path, 1 << 20),
            Err(RulesFileError::Invalid { .. })
        ));
        assert!(AccessRules::none().current().is_none());
    }
}
