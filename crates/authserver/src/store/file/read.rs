//! Reading the users file in one pass: parsed while read, digested while parsed.
//!
//! The file store names a snapshot by the SHA-256 of the bytes it was built from, and notices a
//! change by that digest. Reading the whole file first (210 MB at a million users), digesting
//! it, then parsing it held the bytes next to the snapshot and walked them twice; here every
//! buffer the parser reads goes through the digest on its way ([`Digesting`]), so the digest is
//! that of exactly the bytes parsed, and no more than the parser's buffer is held.
//!
//! A reload of a file whose size is that of the content in service (or of the content last
//! found broken) first digests it without parsing ([`digest`]: ~0.15 s for 210 MB): most polls
//! that read the file (a touched file, the periodic re-read, the seconds after a write while
//! timestamps cannot be trusted) find the content in service, and need no parse. A file of
//! another size holds new content for sure and is parsed at once.

use crate::files::{FileError, FileKey, open_regular};
use authserver_core::document::StreamError;
use authserver_core::store::BYTES_PER_USER;
use authserver_core::{HashPolicy, Snapshot, StoreError};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Read size for the digest-only pass.
const CHUNK: usize = 1 << 20;

/// A reader that digests what passes through it, and counts it in `progress` (the poller's
/// stall detector tells a long read that moves from one that hangs by it).
struct Digesting<'a, R> {
    inner: R,
    sha: Sha256,
    progress: &'a AtomicU64,
}

impl<R: Read> Read for Digesting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.progress.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

impl<R: Read> Digesting<'_, R> {
    /// Reads the rest (so the digest covers the whole content) and returns the digest.
    fn finish(mut self) -> Result<[u8; 32], FileError> {
        let mut buf = vec![0; CHUNK];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(self.sha.finalize().into()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FileError::from_read(e)),
            }
        }
    }
}

/// The digest of the file's content, and the key of the file read (bytes read counted in
/// `progress`).
pub(super) fn digest(path: &Path, max: u64, progress: &AtomicU64) -> Result<([u8; 32], FileKey), FileError> {
    let (file, key) = open_regular(path, max)?;
    let reader = Digesting {
        inner: file,
        sha: Sha256::new(),
        progress,
    };
    Ok((reader.finish()?, key))
}

/// One read of the file: the snapshot (or why the content is refused), the content's digest,
/// and the key of the file read.
pub(super) struct Read1 {
    pub(super) parsed: Result<Snapshot, StoreError>,
    pub(super) digest: [u8; 32],
    pub(super) key: FileKey,
}

/// Parses the file into a snapshot (sharing what it can with `previous`), digesting it on the
/// way (bytes read counted in `progress`). Fails only when the file cannot be read; refused
/// content is in [`Read1::parsed`].
pub(super) fn parse(
    path: &Path,
    max: u64,
    policy: &HashPolicy,
    previous: Option<&Snapshot>,
    progress: &AtomicU64,
) -> Result<Read1, FileError> {
    let (file, key) = open_regular(path, max)?;
    let by_size = usize::try_from(key.size() / BYTES_PER_USER as u64).unwrap_or(usize::MAX);
    let expected = previous.map_or(by_size, Snapshot::len);
    let mut reader = Digesting {
        inner: file,
        sha: Sha256::new(),
        progress,
    };
    let parsed = match Snapshot::read_after(&mut reader, policy, previous, expected) {
        Ok(snapshot) => Ok(snapshot),
        Err(StreamError::Invalid(e)) => Err(e),
        Err(StreamError::Read(e)) => return Err(FileError::from_read(e)),
    };
    let digest = reader.finish()?;
    Ok(Read1 {
        parsed: parsed.map(|s| s.with_version(version_of(&digest))),
        digest,
        key,
    })
}

/// The version label of a content: the first 6 bytes of its digest, in hex.
pub(super) fn version_of(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}
