//! The audit file's writer: appends hash-chained records so that any number of writers (a
//! server and CLI commands, two servers on one file) keep one intact chain.
//!
//! - **One writer at a time.** Each batch is appended under an exclusive `flock` on the audit
//!   file, waiting at most [`LOCK_WAIT`]; a writer that cannot get it fails (on open: an error
//!   naming the file; later: the batch is dropped and counted). The lock is held per batch, not
//!   for the process's life, so `users` commands can still record while a server runs; between
//!   two batches a writer leaves it free for [`APPEND_GAP`] so that a busy server cannot starve
//!   the others.
//! - **Catching up.** Under the lock the writer compares the file's length with where its own
//!   last write ended; when another writer appended meanwhile, it re-reads the tail and continues
//!   from that record (seq and prev), so the chain never forks.
//! - **Torn tail.** An unterminated last line is terminated; when it is not an intact record,
//!   a `recovered` record naming its bytes follows it (see [`super::chain`]).

use super::chain;
use anyhow::{Context, bail};
use serde_json::Value;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another writer's lock before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The least time between two appends of one writer, during which the lock is free.
pub const APPEND_GAP: Duration = Duration::from_millis(2);

/// How much of the file's end is read first to find the last record.
const TAIL_CHUNK: u64 = 64 * 1024;

/// An open audit file and where its chain stands.
#[derive(Debug)]
pub struct Writer {
    file: File,
    path: PathBuf,
    seq: u64,
    prev: String,
    /// File length after this writer's last append; any other length means another writer
    /// appended (or a write failed part-way) and the tail must be read again.
    end: u64,
}

impl Writer {
    /// Opens (creating) the file, takes the lock once to repair a torn tail and find the chain's
    /// end. Fails when another writer holds the lock for over [`LOCK_WAIT`].
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot open audit file {}", path.display()))?;
        let mut writer = Self {
            file,
            path: path.to_owned(),
            seq: 0,
            prev: chain::GENESIS.to_owned(),
            end: u64::MAX,
        };
        writer.append(Vec::new())?;
        Ok(writer)
    }

    /// The last record this writer knows of, as `SEQ:HASH`.
    pub fn anchor(&self) -> chain::Anchor {
        chain::Anchor {
            seq: self.seq,
            hash: self.prev.clone(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events` (time, event) in one write under the lock.
    pub fn append(&mut self, events: Vec<(String, Value)>) -> anyhow::Result<()> {
        self.lock()?;
        let result = self.catch_up().and_then(|()| self.write_records(events));
        let _ = self.file.unlock();
        result.with_context(|| format!("cannot append to audit file {}", self.path.display()))
    }

    /// Flushes to disk (at shutdown).
    pub fn sync(&self) {
        let _ = self.file.sync_all();
    }

    /// Takes the lock, waiting at most [`LOCK_WAIT`]. The wait is a blocking `flock` in a helper
    /// thread (woken by the kernel the moment the lock is free), not polling: polling every few
    /// milliseconds lost every race against a busy server re-locking at once (measured: a CLI
    /// command starved for the full 2 s).
    fn lock(&self) -> anyhow::Result<()> {
        match self.file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock audit file {}", self.path.display()));
            }
        }
        // The clone shares this file's open file description, so its lock is this writer's.
        let waiter = self
            .file
            .try_clone()
            .with_context(|| format!("cannot lock audit file {}", self.path.display()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("audit-lock".into())
            .spawn(move || {
                let locked = waiter.lock();
                if locked.is_ok() && tx.send(Ok(())).is_err() {
                    // Nobody waits any more: give the lock back.
                    let _ = waiter.unlock();
                } else if let Err(e) = locked {
                    let _ = tx.send(Err(e));
                }
            })
            .context("cannot start the audit lock waiter")?;
        match rx.recv_timeout(LOCK_WAIT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e).with_context(|| format!("cannot lock audit file {}", self.path.display())),
            Err(_) => bail!(
                "audit file {} is locked by another writer for over {} s; is a stuck process holding it?",
                self.path.display(),
                LOCK_WAIT.as_secs()
            ),
        }
    }

    /// Continues from the file's real end: another writer's records, a torn line. Under the lock.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len == self.end {
            return Ok(());
        }
        let region = read_tail(&self.file, len)?;
        let cut = region.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let (complete, fragment) = region.split_at(cut);
        (self.seq, self.prev) = chain::tail(complete);
        self.end = len;
        if fragment.is_empty() {
            return Ok(());
        }
        self.write_raw(b"\n")?;
        if fragment.trim_ascii().is_empty() {
            return Ok(());
        }
        if let Some(hash) = chain::continues(fragment, self.seq, &self.prev) {
            self.seq += 1;
            self.prev = hash;
            return Ok(());
        }
        tracing::warn!(
            path = %self.path.display(),
            bytes = fragment.len(),
            "audit file ended in a torn line (crash or full disk mid-write): terminated it and recorded a `recovered` event"
        );
        let event = chain::recovered_event(fragment);
        self.write_records(vec![(super::now(), event)])
    }

    fn write_records(&mut self, events: Vec<(String, Value)>) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        let mut buf = Vec::with_capacity(events.len() * 256);
        for (time, event) in events {
            seq += 1;
            let (line, hash) = chain::record(seq, &prev, &time, event);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            prev = hash;
        }
        self.write_raw(&buf)?;
        (self.seq, self.prev) = (seq, prev);
        Ok(())
    }

    /// One append; on failure part of it may be on disk, so the next append re-reads the tail
    /// (and repairs what is torn).
    fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.end += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.end = u64::MAX;
                Err(e)
            }
        }
    }
}

/// The file's end, from a line boundary (or the start), long enough to hold its last record.
fn read_tail(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut want = TAIL_CHUNK;
    loop {
        let start = len.saturating_sub(want);
        let mut buf = vec![0; usize::try_from(len - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, start)?;
        if start == 0 {
            return Ok(buf);
        }
        // Skip the first, partial line; done once a whole record follows it.
        if let Some(first) = buf.iter().position(|b| *b == b'\n') {
            let rest = &buf[first + 1..];
            if let Some(last) = rest.iter().rposition(|b| *b == b'\n')
                && chain::tail(&rest[..=last]).0 > 0
            {
                return Ok(rest.to_vec());
            }
        }
        want = want.saturating_mul(4);
    }
}
