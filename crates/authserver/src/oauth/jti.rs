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

/// Lines in the file below which it is never compacted: 1024 lines of 44 bytes are 45 KB, read
/// in well under a millisecond at start; rewriting it more often would cost more than it saves.
const COMPACT_MIN_LINES: usize = 1024;

/// The map and the file it is appended to.
#[derive(Debug)]
struct Logged {
    ids: Ids,
    file: std::fs::File,
    /// Lines in the file now.
    lines: usize,
    /// Lines at which the expired share is next looked at (amortised O(1) per insert).
    check_at: usize,
}

/// Ids in memory and appended to a file (`<exp> <hash>` lines, fsynced): a restart reads the
/// unexpired ones back, so a revoked token stays revoked. One process writes the file. While
/// running, the file is rewritten without the expired ids once more than half of its lines are
/// expired (and it has at least [`COMPACT_MIN_LINES`]): it grows with the live ids, not with the
/// process's lifetime. File I/O runs on tokio's blocking pool, never on an async worker.
#[derive(Debug)]
pub struct FileJtiStore {
    path: PathBuf,
    inner: std::sync::Arc<Mutex<Logged>>,
}

/// Writes `ids` to `path` atomically (temp file, fsync, rename, fsync of the directory) and
/// opens it for appending.
fn rewrite(path: &Path, ids: &Ids) -> std::io::Result<std::fs::File> {
    let tmp = path.with_extension("tmp");
    let body: String = ids.map.iter().map(|(k, e)| format!("{e} {k}\n")).collect();
    let mut out = std::fs::File::create(&tmp)?;
    out.write_all(body.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::OpenOptions::new().append(true).open(path)
}

impl Logged {
    /// Inserts and appends; on a write failure the id is not left recorded (a retry must not
    /// be told `Ok(false)`, "already used", for an id that never reached the file).
    fn insert(&mut self, path: &Path, k: String, exp: u64, now: u64) -> std::io::Result<bool> {
        let previous = self.ids.map.get(&k).copied();
        if !self.ids.insert(k.clone(), exp, now) {
            return Ok(false);
        }
        if exp <= now {
            // Already expired: nothing a later check would find; no line.
            return Ok(true);
        }
        if let Err(e) = writeln!(self.file, "{exp} {k}").and_then(|()| self.file.sync_data()) {
            match previous {
                Some(p) => self.ids.map.insert(k, p),
                None => self.ids.map.remove(&k),
            };
            return Err(e);
        }
        self.lines += 1;
        if self.lines >= self.check_at {
            self.compact(path, now)?;
        }
        Ok(true)
    }

    /// Drops the expired ids; rewrites the file when more than half of its lines were expired.
    /// A failed rewrite leaves the old file (a superset) in use.
    fn compact(&mut self, path: &Path, now: u64) -> std::io::Result<()> {
        self.ids.map.retain(|_, e| *e > now);
        let live = self.ids.map.len();
        if self.lines > 2 * live {
            self.file = rewrite(path, &self.ids)?;
            self.lines = live;
        }
        self.check_at = COMPACT_MIN_LINES.max(2 * self.lines);
        Ok(())
    }
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
        let file = rewrite(path, &ids)?;
        let lines = ids.map.len();
        Ok(Self {
            path: path.to_owned(),
            inner: std::sync::Arc::new(Mutex::new(Logged {
                ids,
                file,
                lines,
                check_at: COMPACT_MIN_LINES.max(2 * lines),
            })),
        })
    }
}

impl JtiStore for FileJtiStore {
    fn insert<'a>(&'a self, jti: &'a str, exp: u64) -> BoxFuture<'a, Result<bool, BackendError>> {
        let k = key(jti);
        let inner = std::sync::Arc::clone(&self.inner);
        let path = self.path.clone();
        Box::pin(async move {
            // The append and fsync (and a compaction) block: on the blocking pool.
            let joined = tokio::task::spawn_blocking(move || {
                let mut guard = inner
                    .lock()
                    .map_err(|_| BackendError("jti store lock poisoned".into()))?;
                guard
                    .insert(&path, k, exp, unix_now())
                    .map_err(|e| BackendError(format!("{}: {e}", path.display())))
            })
            .await;
            joined.map_err(|e| BackendError(format!("jti store task: {e}")))?
        })
    }

    fn contains<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        // A map lookup under the lock, no I/O: fine on the async worker.
        let r = self
            .inner
            .lock()
            .map(|g| g.ids.contains(&key(jti), unix_now()))
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

    #[test]
    fn expired_ids_are_compacted_away_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jti");
        let s = FileJtiStore::open(&path).unwrap();
        let now = unix_now();
        let mut inner = s.inner.lock().unwrap();
        for i in 0..COMPACT_MIN_LINES - 1 {
            assert!(
                inner
                    .insert(&path, key(&format!("old-{i}")), now + 1, now)
                    .unwrap()
            );
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            COMPACT_MIN_LINES - 1
        );
        // Later, all of those expired: the next line reaches the threshold and the rewrite
        // keeps only the live id.
        assert!(inner.insert(&path, key("live"), now + 600, now + 5).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with(&format!(" {}\n", key("live"))));
    }

    #[test]
    fn a_failed_write_leaves_the_id_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jti");
        let s = FileJtiStore::open(&path).unwrap();
        let later = unix_now() + 600;
        let good = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        // A read-only handle: the append fails as on a full or failing disk.
        s.inner.lock().unwrap().file = std::fs::File::open(&path).unwrap();
        assert!(ready(s.insert("a", later)).is_err());
        assert!(!ready(s.contains("a")).unwrap(), "not recorded");
        s.inner.lock().unwrap().file = good;
        assert!(ready(s.insert("a", later)).unwrap(), "the retry records it");
        assert!(ready(s.contains("a")).unwrap());
    }
}
