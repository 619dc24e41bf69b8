//! The file store: loads a JSON users file and reloads it when it changes on disk.
//!
//! Polling (metadata every `poll_interval`, content digest on change) rather than inotify: it
//! sees atomic renames, editors' save dances and network filesystems alike, and costs one
//! `stat` per interval. [`crate::files`] decides when to read (every content change is seen,
//! also same-length edits that keep the mtime) and reads regular files only, up to
//! `store.max_file_bytes`. Each poll runs on a thread of its own with a deadline
//! (`store.reload_deadline_ms`): a read that has read no byte for that long is reported as
//! "reload stalled" instead of blocking polling or shutdown; a long parse that reads on (1 M
//! users under load) is not a stall. A broken edit (not JSON, duplicate keys, wrong shape, an
//! unusable name) keeps the last good snapshot and logs one error per distinct broken content.
//! An entry whose hash fails the policy is not a broken file: that user alone is denied, with
//! one ERROR (by `user_hash`) per load and the `refused` count in [`StoreStatus`].
//!
//! Staleness (`age_seconds`) counts from the last poll that found the content in service on
//! disk, so an unedited, healthy file never looks stale.
//!
//! # Layout
//! - this module: [`FileStore`], the read side the server polls.
//! - `read`: one pass over the file, parsed and digested together (and a digest-only pass
//!   that tells a reload whether to parse).
//! - [`edit`]: the write side: one editor at a time, atomic replacement, modes kept.

pub mod edit;
mod read;
pub mod rehash;

use super::{SnapshotSource, StoreStatus, Unavailable};
use crate::files::{FileError, Seen, poll_progress, stat_key};
use arc_swap::ArcSwap;
use authserver_core::{
    AuditEvent, AuditSink, HashPolicy, NoAudit, Snapshot, StoreCounters, StoreError, UserHasher,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the file could not become a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum FileStoreError {
    /// Could not read the file (missing, unreadable, not a regular file, too large).
    #[error("cannot read users file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: FileError,
    },
    /// Read, but refused.
    #[error("users file {} refused", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
}

/// Bounds on reading the users file.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    /// Larger files are refused (`store.max_file_bytes`).
    pub max_bytes: u64,
    /// A poll that reads no byte for this long is reported as stalled (`store.reload_deadline_ms`).
    pub reload_deadline: Duration,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024,
            reload_deadline: Duration::from_secs(10),
        }
    }
}

/// A users file kept in memory as a snapshot.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    policy: HashPolicy,
    hasher: UserHasher,
    limits: FileLimits,
    audit: Arc<dyn AuditSink>,
    current: ArcSwap<Snapshot>,
    state: Mutex<State>,
    refreshes: AtomicU64,
    fetch_errors: AtomicU64,
    stalls: AtomicU64,
    /// Bytes read by this store's reads so far: the stall detector's sign of progress.
    progress: Arc<AtomicU64>,
}

#[derive(Debug)]
struct State {
    /// The metadata last read, to skip reading an unchanged file.
    seen: Option<Seen>,
    /// Digest of the content in service.
    loaded: [u8; 32],
    /// Digest of the content last read, good or bad.
    tried: [u8; 32],
    /// Sizes of those two contents: a file of another size holds new content for sure, so a
    /// reload parses it at once instead of digesting it first.
    sizes: (u64, u64),
    /// Last poll that found the content in service on disk.
    confirmed_at: Instant,
    last_error: Option<String>,
}

impl FileStore {
    /// Loads `path`; fails when it cannot be read or is invalid (a server must not start with
    /// no users by accident). Entries whose hash fails the policy do not fail it: they are
    /// logged and their users denied.
    pub fn open(
        path: &Path,
        policy: HashPolicy,
        hasher: UserHasher,
        limits: FileLimits,
    ) -> Result<Self, FileStoreError> {
        let progress = Arc::new(AtomicU64::new(0));
        let read = read::parse(path, limits.max_bytes, &policy, None, &progress).map_err(|source| {
            FileStoreError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        let (key, digest) = (read.key, read.digest);
        let snapshot = read.parsed.map_err(|source| FileStoreError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        tracing::info!(
            version = snapshot.version(),
            users = snapshot.len(),
            "users file loaded"
        );
        log_refused(&snapshot, &hasher);
        Ok(Self {
            path: path.to_owned(),
            policy,
            hasher,
            limits,
            audit: Arc::new(NoAudit),
            current: ArcSwap::from_pointee(snapshot),
            state: Mutex::new(State {
                seen: Some(Seen::after_read(key)),
                loaded: digest,
                tried: digest,
                sizes: (key.size(), key.size()),
                confirmed_at: Instant::now(),
                last_error: None,
            }),
            refreshes: AtomicU64::new(1),
            fetch_errors: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            progress,
        })
    }

    /// Sends store version changes and reload failures to `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// Checks the file once and reloads it if its content changed. Returns true when a new
    /// snapshot went into service. Blocking I/O and possibly one hashing: call off the executor.
    pub fn check(&self) -> bool {
        let _span = tracing::info_span!("store_fetch", store = "file").entered();
        let Some(len) = self.may_have_changed() else {
            return false;
        };
        let (loaded, tried) = self.lock().sizes;
        let resized = len != loaded && len != tried;
        if !resized && !self.content_is_new() {
            return false;
        }
        self.load()
    }

    /// Stats the file: its size when it must be read, None when the stat fails (noted) or the
    /// metadata says it is unchanged since the last read (which confirms the content in
    /// service).
    fn may_have_changed(&self) -> Option<u64> {
        let key = match stat_key(&self.path) {
            Ok(k) => k,
            Err(e) => {
                self.note_error(format!("cannot read users file: {e}"));
                return None;
            }
        };
        let mut st = self.lock();
        if Seen::must_read(st.seen.as_ref(), &key) {
            return Some(key.size());
        }
        if st.tried == st.loaded {
            // Unchanged and still the content in service: confirmed, and any error left (a
            // stall, a passing stat failure) is over.
            st.confirmed_at = Instant::now();
            st.last_error = None;
        }
        None
    }

    /// Digests the file (no parse): true when it holds content neither in service nor already
    /// reported broken. False too when it cannot be read (noted).
    fn content_is_new(&self) -> bool {
        let (digest, key) = match read::digest(&self.path, self.limits.max_bytes, &self.progress) {
            Ok(read) => read,
            Err(e) => {
                self.cannot_read(&e);
                return false;
            }
        };
        let mut st = self.lock();
        st.seen = Some(Seen::after_read(key));
        !self.known(&mut st, digest)
    }

    /// True when `digest` is the content in service (confirming it) or content already
    /// reported broken.
    fn known(&self, st: &mut State, digest: [u8; 32]) -> bool {
        if st.loaded == digest {
            // Touched, rewritten identical, or back after a broken edit or a deletion.
            st.tried = digest;
            st.sizes.1 = st.sizes.0;
            st.confirmed_at = Instant::now();
            if st.last_error.take().is_some() {
                tracing::info!("users file holds the content in service again");
            }
            return true;
        }
        st.tried == digest // the broken content already reported
    }

    fn cannot_read(&self, e: &crate::files::FileError) {
        self.lock().seen = None; // retried at every poll until it reads
        self.note_error(format!("cannot read users file: {e}"));
    }

    /// Parses the file (digesting it again: the parse's own digest names what was parsed) and
    /// puts it in service; a broken content is noted and the last good snapshot stays.
    fn load(&self) -> bool {
        // The snapshot in service lends every unchanged shard of users (and the parsed hashes
        // of users changed otherwise), so a reload of 1 M users after a small edit holds little
        // more than the snapshot in service.
        let current = self.current.load_full();
        let read = match read::parse(
            &self.path,
            self.limits.max_bytes,
            &self.policy,
            Some(&current),
            &self.progress,
        ) {
            Ok(read) => read,
            Err(e) => {
                self.cannot_read(&e);
                return false;
            }
        };
        drop(current);
        {
            let mut st = self.lock();
            st.seen = Some(Seen::after_read(read.key));
            if self.known(&mut st, read.digest) {
                return false; // changed back between the digest and the parse
            }
            st.tried = read.digest;
            st.sizes.1 = read.key.size();
        }
        match read.parsed {
            Ok(snapshot) if snapshot.serves_nobody() && !self.current.load().serves_nobody() => {
                // A policy change or a file regenerated with refused hashes: keep the users who
                // can sign in rather than deny everyone behind a green readiness check.
                log_refused(&snapshot, &self.hasher);
                self.note_error("every entry failed the hash policy; keeping the users in service".into());
                false
            }
            Ok(snapshot) => {
                self.swap(snapshot, read.digest, read.key.size());
                true
            }
            Err(e) => {
                let safe = e.log_safe(|u| self.hasher.hash(u));
                self.note_error(safe);
                false
            }
        }
    }

    /// Puts `snapshot` in service and audits the version change.
    fn swap(&self, snapshot: Snapshot, digest: [u8; 32], len: u64) {
        tracing::info!(
            version = snapshot.version(),
            users = snapshot.len(),
            "users file reloaded"
        );
        log_refused(&snapshot, &self.hasher);
        let event = AuditEvent::StoreVersionChanged {
            store: "file",
            previous: Some(self.current.load().version().to_owned()),
            version: snapshot.version().to_owned(),
            users: snapshot.len(),
        };
        self.current.store(Arc::new(snapshot));
        self.refreshes.fetch_add(1, Relaxed);
        self.audit.emit(event);
        let mut st = self.lock();
        st.loaded = digest;
        st.sizes.0 = len;
        st.confirmed_at = Instant::now();
        st.last_error = None;
    }

    /// Polls every `interval` until the returned task is aborted; a poll that has read nothing
    /// for the reload deadline is reported as stalled (log, metric, `lastError`).
    pub fn watch(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let (me, stalled) = (self.clone(), self);
        poll_progress(
            interval,
            stalled.limits.reload_deadline,
            stalled.progress.clone(),
            move || {
                me.check();
            },
            move |running| {
                stalled.stalls.fetch_add(1, Relaxed);
                let message = format!(
                    "users file reload stalled: a read has read nothing for {} ms",
                    running.as_millis()
                );
                tracing::error!(error = %message, "users file reload stalled; keeping last good snapshot");
                stalled.lock().last_error = Some(message);
            },
        )
    }

    /// Records a failure, logging it once per distinct message.
    fn note_error(&self, message: String) {
        self.fetch_errors.fetch_add(1, Relaxed);
        let mut st = self.lock();
        if st.last_error.as_deref() != Some(message.as_str()) {
            tracing::error!(error = %message, "users file not reloaded; keeping last good snapshot");
            self.audit.emit(AuditEvent::StoreReloadFailed {
                store: "file",
                error: message.clone(),
            });
            st.last_error = Some(message);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // State holds plain values; a poisoned lock still holds a consistent one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SnapshotSource for FileStore {
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable> {
        // The file store always has a snapshot: `open` refuses to start without one.
        Ok(self.current.load_full())
    }

    fn status(&self) -> StoreStatus {
        let snap = self.current.load();
        let st = self.lock();
        StoreStatus {
            kind: "file",
            version: Some(snap.version().to_owned()),
            users: Some(snap.len()),
            cached_entries: None,
            refused: snap.refused().len(),
            age_seconds: st.confirmed_at.elapsed().as_secs(),
            ready: !snap.serves_nobody(),
            last_error: st.last_error.clone(),
        }
    }

    fn counters(&self) -> StoreCounters {
        StoreCounters {
            refreshes: self.refreshes.load(Relaxed),
            fetch_errors: self.fetch_errors.load(Relaxed),
            reload_stalls: self.stalls.load(Relaxed),
        }
    }

    fn upgrade_legacy(&self, login: authserver_core::legacy::LegacyLogin) -> bool {
        rehash::spawn(self.path.clone(), login, &self.policy, &self.hasher)
    }
}

/// One ERROR per entry whose hash failed the policy, naming the user by its keyed hash (the
/// username is PII, the hash a secret), at each load: the entry stays refused until edited.
fn log_refused(snapshot: &Snapshot, hasher: &UserHasher) {
    for r in snapshot.refused() {
        tracing::error!(
            user_hash = %hasher.hash(&r.user),
            reason = %r.problem,
            "users file entry refused by the hash policy; that user is denied"
        );
    }
}
