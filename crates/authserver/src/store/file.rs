//! The file store: loads a JSON users file and reloads it when it changes on disk.
//!
//! Polling (metadata every `poll_interval`, content digest on change) rather than inotify: it
//! sees atomic renames, editors' save dances and network filesystems alike, and costs one
//! `stat` per interval. A broken edit keeps the last good snapshot and logs one error per
//! distinct broken content.

use super::{SnapshotSource, StoreStatus, Unavailable};
use arc_swap::ArcSwap;
use authserver_core::{
    AuditEvent, AuditSink, HashPolicy, NoAudit, Snapshot, StoreCounters, StoreError, UserHasher,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Why the file could not become a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum FileStoreError {
    /// Could not read the file.
    #[error("cannot read users file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
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

/// A users file kept in memory as a snapshot.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    policy: HashPolicy,
    hasher: UserHasher,
    audit: Arc<dyn AuditSink>,
    current: ArcSwap<Snapshot>,
    state: Mutex<State>,
    refreshes: AtomicU64,
    fetch_errors: AtomicU64,
}

#[derive(Debug)]
struct State {
    /// (mtime, len) last seen, to skip reading an unchanged file.
    seen: Option<(SystemTime, u64)>,
    /// Digest of the content last tried, good or bad.
    tried: [u8; 32],
    loaded_at: Instant,
    last_error: Option<String>,
}

impl FileStore {
    /// Loads `path`; fails when it cannot be read or is invalid (a server must not start with
    /// no users by accident).
    pub fn open(path: &Path, policy: HashPolicy, hasher: UserHasher) -> Result<Self, FileStoreError> {
        let read = |source| FileStoreError::Read {
            path: path.to_owned(),
            source,
        };
        let seen = metadata_key(&std::fs::metadata(path).map_err(read)?);
        let bytes = std::fs::read(path).map_err(read)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let snapshot = Snapshot::from_json(&bytes, &policy, version_of(&digest)).map_err(|source| {
            FileStoreError::Invalid {
                path: path.to_owned(),
                source,
            }
        })?;
        tracing::info!(
            version = snapshot.version(),
            users = snapshot.len(),
            "users file loaded"
        );
        Ok(Self {
            path: path.to_owned(),
            policy,
            hasher,
            audit: Arc::new(NoAudit),
            current: ArcSwap::from_pointee(snapshot),
            state: Mutex::new(State {
                seen: Some(seen),
                tried: digest,
                loaded_at: Instant::now(),
                last_error: None,
            }),
            refreshes: AtomicU64::new(1),
            fetch_errors: AtomicU64::new(0),
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
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => metadata_key(&m),
            Err(e) => {
                self.note_error(format!("cannot read users file: {e}"));
                return false;
            }
        };
        if self.lock().seen == Some(meta) {
            return false;
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                self.note_error(format!("cannot read users file: {e}"));
                return false;
            }
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        {
            let mut st = self.lock();
            st.seen = Some(meta);
            if st.tried == digest {
                return false; // touched, or rewritten with the same content
            }
            st.tried = digest;
        }
        match Snapshot::from_json(&bytes, &self.policy, version_of(&digest)) {
            Ok(snapshot) => {
                tracing::info!(
                    version = snapshot.version(),
                    users = snapshot.len(),
                    "users file reloaded"
                );
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
                st.loaded_at = Instant::now();
                st.last_error = None;
                true
            }
            Err(e) => {
                let safe = e.log_safe(|u| self.hasher.hash(u));
                self.note_error(safe);
                false
            }
        }
    }

    /// Polls every `interval` until the returned task is aborted.
    pub fn watch(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let me = self.clone();
                if tokio::task::spawn_blocking(move || me.check()).await.is_err() {
                    tracing::error!("users file check panicked; keeping last good snapshot");
                }
            }
        })
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
            users: snap.len(),
            age_seconds: st.loaded_at.elapsed().as_secs(),
            ready: true,
            last_error: st.last_error.clone(),
        }
    }

    fn counters(&self) -> StoreCounters {
        StoreCounters {
            refreshes: self.refreshes.load(Relaxed),
            fetch_errors: self.fetch_errors.load(Relaxed),
        }
    }
}

fn metadata_key(m: &std::fs::Metadata) -> (SystemTime, u64) {
    (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())
}

fn version_of(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}
