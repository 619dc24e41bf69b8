//! The standalone [`JtiStore`]s: in memory, and an append-only file read back at start.
//!
//! Ids are kept as the first 128 bits of their SHA-256 (hex): an assertion's `jti` is the
//! client's text, and hashing gives every stored line one shape (no newline or space can reach
//! the file) and one size, whatever the client sent.

use authserver_core::oauth::JtiStore;
use authserver_core::regulation::{BackendError, BoxFuture};
use sha2::Digest as _;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::signer::unix_now;

/// Ids kept before expired ones are swept (a sweep is a pass over the map; at most one per
/// this many inserts keeps inserts O(1) amortised).
const SWEEP_EVERY: usize = 4096;

fn key(jti: &str) -> String {
    let digest = sha2::Sha256::digest(jti.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Default)]
struct Ids {
    map: HashMap<String, u64>,
    since_sweep: usize,
}

impl Ids {
    /// Inserts if absent (or expired); true when inserted.
    fn insert(&mut self, k: String, exp: u64, now: u64) -> bool {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.map.retain(|_, e| *e > now);
            self.since_sweep = 0;
        }
        match self.map.get(&k) {
            Some(e) if *e > now => false,
            _ => {
                self.map.insert(k, exp);
                true
            }
        }
    }

    fn contains(&self, k: &str, now: u64) -> bool {
        self.map.get(k).is_some_and(|e| *e > now)
    }
}

/// Ids in this process only.
#[derive(Debug, Default)]
pub struct MemoryJtiStore {
    ids: Mutex<Ids>,
}

impl MemoryJtiStore {
    fn ids(&self) -> Result<std::sync::MutexGuard<'_, Ids>, BackendError> {
        self.ids
            .lock()
            .map_err(|_| BackendError("jti store lock poisoned".into()))
    }
}

impl JtiStore for MemoryJtiStore {
    fn insert<'a>(&'a self, jti: &'a str, exp: u64) -> BoxFuture<'a, Result<bool, BackendError>> {
        let r = self.ids().map(|mut ids| ids.insert(key(jti), exp, unix_now()));
        Box::pin(async move { r })
    }

    fn contains<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        let r = self.ids().map(|ids| ids.contains(&key(jti), unix_now()));
        Box::pin(async move { r })
    }
}

/// Ids in memory and appended to a file (`<exp> <hash>` lines, fsynced): a restart reads the
/// unexpired ones back, so a revoked token stays revoked. One process writes the file.
#[derive(Debug)]
pub struct FileJtiStore {
    path: PathBuf,
    ids: Mutex<(Ids, std::fs::File)>,
}

impl FileJtiStore {
    /// Opens (creating) the file, keeping the unexpired ids; rewrites it without the expired
    /// ones so it does not grow forever.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let now = unix_now();
        let mut ids = Ids::default();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                // A torn last line (crash mid-write) is skipped, like any line not ours.
                let Some((exp, k)) = line.split_once(' ') else {
                    continue;
                };
                if let Ok(exp) = exp.parse::<u64>()
                    && exp > now
                    && k.len() == 32
                {
                    ids.map.insert(k.to_owned(), exp);
                }
            }
        }
        let tmp = path.with_extension("tmp");
        let body: String = ids.map.iter().map(|(k, e)| format!("{e} {k}\n")).collect();
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            ids: Mutex::new((ids, file)),
        })
    }
}

impl JtiStore for FileJtiStore {
    fn insert<'a>(&'a self, jti: &'a str, exp: u64) -> BoxFuture<'a, Result<bool, BackendError>> {
        // Blocking I/O under the lock: one short append and fsync per revocation or assertion
        // (rate-limited per client), never per bearer check.
        let r = (|| {
            let mut guard = self
                .ids
                .lock()
                .map_err(|_| BackendError("jti store lock poisoned".into()))?;
            let (ids, file) = &mut *guard;
            let k = key(jti);
            if !ids.insert(k.clone(), exp, unix_now()) {
                return Ok(false);
            }
            let written = writeln!(file, "{exp} {k}").and_then(|()| file.sync_data());
            written.map_err(|e| BackendError(format!("{}: {e}", self.path.display())))?;
            Ok(true)
        })();
        Box::pin(async move { r })
    }

    fn contains<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        let r = self
            .ids
            .lock()
            .map(|g| g.0.contains(&key(jti), unix_now()))
            .map_err(|_| BackendError("jti store lock poisoned".into()));
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn an_id_is_inserted_once_and_survives_a_restart_in_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jti");
        let later = unix_now() + 600;
        {
            let s = FileJtiStore::open(&path).unwrap();
            assert!(ready(s.insert("a", later)).unwrap());
            assert!(!ready(s.insert("a", later)).unwrap(), "second insert of one id");
            assert!(ready(s.insert("gone", unix_now() - 1)).unwrap());
        }
        let s = FileJtiStore::open(&path).unwrap();
        assert!(ready(s.contains("a")).unwrap());
        assert!(!ready(s.contains("gone")).unwrap(), "expired ids are not kept");
        assert!(!ready(s.contains("b")).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(" a\n"), "ids are stored hashed");
        let m = MemoryJtiStore::default();
        assert!(ready(m.insert("x", later)).unwrap());
        assert!(!ready(m.insert("x", later)).unwrap());
        assert!(ready(m.contains("x")).unwrap());
    }
}
