//! Reading the files the server reloads (users file, TLS certificate and key): regular files
//! only, size-capped, and change detection that sees every content change.
//!
//! - **Regular files only.** The file is opened with `O_NONBLOCK` (opening a FIFO would
//!   otherwise wait for a writer, and reading it forever) and the *open descriptor* is
//!   `fstat`ed: a FIFO, a device such as `/dev/zero`, or a directory is refused with a clear
//!   error before a byte is read.
//! - **A size cap.** Larger files are refused (and reading stops at the cap even if the file
//!   grows meanwhile), so a wrong path or a runaway generator cannot exhaust memory.
//! - **Change detection.** A poll compares `(dev, inode, ctime, mtime, size)` of the path with
//!   what was last read, then the SHA-256 of the content. `(mtime, size)` alone misses a
//!   same-length edit within the filesystem's timestamp granularity and tools that keep mtimes
//!   (`cp -p`, `rsync -a`, `tar x`); the inode sees replacements, ctime (which no tool can set)
//!   sees in-place writes. Like git's "racy" index entries, a file whose timestamps were within
//!   [`RACY_WINDOW`] of the moment its read *started* (the `open`, not the end of a parse that
//!   may take seconds) is read again at every poll until they are not
//!   (a later write in the same timestamp tick would leave the metadata unchanged), and the
//!   content is re-read every [`DIGEST_EVERY`] regardless (filesystems with unreliable ctime,
//!   file servers whose clocks run far ahead).
//!
//! A leaf module: it uses nothing else in this crate, so `store` and `tls` can both use it.
//! [`poll`] (the poll loop and its stall report) is in `poll`.

mod poll;

pub use poll::{poll, poll_progress};

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Timestamps this close to the read are not trusted to reveal a later write (FAT has 2 s
/// granularity; older kernels and NFS 1 s).
pub const RACY_WINDOW: Duration = Duration::from_secs(3);

/// Content is re-read at least this often even when the metadata says nothing changed.
pub const DIGEST_EVERY: Duration = Duration::from_secs(60);

/// The metadata that changes when a file's content may have, and when it was taken.
///
/// Equality compares the metadata only. `taken` is the moment the timestamps are judged
/// against ([`Seen::after_read`]): the `stat`/`open` before a read, not the read's end. A
/// streamed parse of 1 M users takes seconds; judged at its end, a write made during it in the
/// same timestamp tick as the one that started it looked settled, and was missed until the
/// periodic digest (issue 17, finding 2).
#[derive(Debug, Clone, Copy)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
    len: u64,
    taken: (SystemTime, Instant),
}

impl PartialEq for FileKey {
    fn eq(&self, other: &Self) -> bool {
        (self.dev, self.ino, self.ctime, self.mtime, self.len)
            == (other.dev, other.ino, other.ctime, other.mtime, other.len)
    }
}

impl Eq for FileKey {}

impl FileKey {
    /// The key of `m`, stat'ed at `taken` (taken before the `stat`, so never late).
    fn of(m: &Metadata, taken: (SystemTime, Instant)) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            len: m.len(),
            taken,
        }
    }

    /// The file's size when the key was taken.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// True when either timestamp is within [`RACY_WINDOW`] before `read_at`, or after it by
    /// at most [`DIGEST_EVERY`] (a file server's clock running ahead). A timestamp further in
    /// the future would keep the file racy, and re-read at every poll, for as long as the skew:
    /// the periodic digest covers that case instead.
    fn racy(&self, read_at: SystemTime) -> bool {
        let since_epoch = |(s, ns): (i64, i64)| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
                + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
        };
        let read = read_at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        [self.ctime, self.mtime].into_iter().any(|t| {
            let t = since_epoch(t);
            t + RACY_WINDOW >= read && t <= read + DIGEST_EVERY
        })
    }
}

/// Why a file was not read. The messages name the problem, never content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// open/stat/read failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file.
    #[error("not a regular file (it is a {0}); only regular files are read")]
    NotRegular(&'static str),
    /// Over the size cap.
    #[error("file is larger than the {max}-byte limit")]
    TooLarge {
        /// The cap.
        max: u64,
    },
}

fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// The key of `path` now (follows symlinks; `stat` never blocks on a FIFO).
pub fn stat_key(path: &Path) -> std::io::Result<FileKey> {
    let taken = (SystemTime::now(), Instant::now());
    std::fs::metadata(path).map(|m| FileKey::of(&m, taken))
}

/// Reads `path` if it is a regular file of at most `max` bytes. The key returned is the open
/// file's, taken before reading, so a write during the read shows as a change next time.
pub fn read_regular(path: &Path, max: u64) -> Result<(Vec<u8>, FileKey), FileError> {
    let taken = (SystemTime::now(), Instant::now());
    let (file, meta) = open_checked(path, max)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge { max });
    }
    Ok((bytes, FileKey::of(&meta, taken)))
}

/// Opens `path` for reading if it is a regular file of at most `max` bytes (for now: the reader
/// returned stops with [`FileError::TooLarge`] should it grow past `max` while read). The key
/// is the open file's, taken before any byte is read.
pub fn open_regular(path: &Path, max: u64) -> Result<(Capped, FileKey), FileError> {
    let taken = (SystemTime::now(), Instant::now());
    let (file, meta) = open_checked(path, max)?;
    let capped = Capped {
        file,
        left: max.saturating_add(1),
        max,
    };
    Ok((capped, FileKey::of(&meta, taken)))
}

fn open_checked(path: &Path, max: u64) -> Result<(File, Metadata), FileError> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?; // fstat of the descriptor, not a second lookup of the path
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind(&meta)));
    }
    if meta.len() > max {
        return Err(FileError::TooLarge { max });
    }
    Ok((file, meta))
}

/// A regular file opened by [`open_regular`]: reads fail once more than its cap went through.
#[derive(Debug)]
pub struct Capped {
    file: File,
    left: u64,
    max: u64,
}

/// The error a [`Capped`] read fails with past the cap ([`FileError::from_read`] tells it).
#[derive(Debug, thiserror::Error)]
#[error("file is larger than the {0}-byte limit")]
struct OverCap(u64);

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.file.read(&mut buf[..room])?;
        self.left -= n as u64;
        if self.left == 0 && n > 0 {
            return Err(std::io::Error::other(OverCap(self.max)));
        }
        Ok(n)
    }
}

impl FileError {
    /// A read error from a [`Capped`] reader: over the cap, or the I/O error it was.
    pub fn from_read(e: std::io::Error) -> Self {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<OverCap>()) {
            Some(OverCap(max)) => FileError::TooLarge { max: *max },
            None => FileError::Io(e),
        }
    }
}

/// What a poller last read: when the metadata says nothing changed, whether to read anyway.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    key: FileKey,
    racy: bool,
    read_at: Instant,
}

impl Seen {
    /// Records a read of a file whose `key` was taken when the read started: the timestamps
    /// are judged against that moment, however long the read took, so a write made during
    /// the read in the tick of the last one is always checked again.
    pub fn after_read(key: FileKey) -> Self {
        let (wall, mono) = key.taken;
        Self {
            key,
            racy: key.racy(wall),
            read_at: mono,
        }
    }

    /// True when the file must be read to know whether it changed: its metadata differs, it
    /// was racy when read, or the periodic re-read is due.
    pub fn must_read(seen: Option<&Seen>, key: &FileKey) -> bool {
        seen.is_none_or(|s| s.key != *key || s.racy || s.read_at.elapsed() >= DIGEST_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        for (path, want) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
        ] {
            let err = read_regular(path, 1024).expect_err("refused");
            assert!(err.to_string().contains(want), "{err}");
        }
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).expect("write");
        assert!(matches!(
            read_regular(&big, 2047),
            Err(FileError::TooLarge { max: 2047 })
        ));
        let (bytes, key) = read_regular(&big, 2048).expect("at the cap");
        assert_eq!(bytes.len(), 2048);
        assert_eq!(stat_key(&big).expect("stat"), key);
    }

    #[test]
    fn racy_and_changed_files_are_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, "a").expect("write");
        let key = stat_key(&f).expect("stat");
        let fresh = Seen::after_read(key);
        assert!(fresh.racy, "just written");
        assert!(Seen::must_read(Some(&fresh), &key));
        assert!(Seen::must_read(None, &key));
        let old = SystemTime::now() - Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(old))
            .expect("set mtime");
        // ctime is now (set_modified changes it), so still racy: checked by the key itself.
        let settled = Seen {
            key,
            racy: false,
            read_at: Instant::now(),
        };
        assert!(!Seen::must_read(Some(&settled), &key));
        let after = stat_key(&f).expect("stat");
        assert_ne!(after, key, "set_modified changes mtime and ctime");
        assert!(Seen::must_read(Some(&settled), &after));
        let now = SystemTime::now();
        let at = |t: SystemTime| {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
            let stamp = (d.as_secs() as i64, i64::from(d.subsec_nanos()));
            FileKey {
                ctime: stamp,
                mtime: stamp,
                ..key
            }
        };
        // Judged when the read started, not when it ended: a write during a long read, in
        // the tick of the key, is read again (finding 2).
        let long_read = at(now - Duration::from_secs(9));
        let started = FileKey {
            taken: (now - Duration::from_secs(10), Instant::now()),
            ..long_read
        };
        assert!(Seen::after_read(started).racy, "racy when the read started");
        assert!(!long_read.racy(now), "settled by the read's end");
        assert!(at(now - Duration::from_secs(1)).racy(now));
        assert!(!at(now - Duration::from_secs(10)).racy(now));
        assert!(at(now + Duration::from_secs(30)).racy(now), "small clock skew");
        assert!(
            !at(now + Duration::from_secs(3600)).racy(now),
            "skew: left to the digest"
        );
    }
}
