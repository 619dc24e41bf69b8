//! The guards around the key set directory ([`super::keyset`]): who may have written it, and
//! one `keys` command at a time. [`KeySetError`] lives here (re-exported by `keyset`) so the
//! guards need nothing from the key set they guard.
//!
//! - **Permissions.** Whoever can write the directory can drop a PEM and a `keys.json` naming
//!   it, and within one reload the server publishes it and signs with it (forged tokens for any
//!   client). So the directory must be owned by us or root and not writable by group or others
//!   (the sticky bit does not help: anyone there can still plant the names we open), and each
//!   private key file the same, with nothing for others (group read stays allowed: a root-owned
//!   0640 key readable by the service's group is a normal deployment). The same rule as the
//!   users-file editor's and OpenSSH's `StrictModes`. Checked by the server at start and at every
//!   reload, and by `keys generate|rotate|remove` before they write.
//! - **One editor at a time.** `keys rotate` reads `keys.json`, appends, and renames a copy over
//!   it; two at once would lose one key (its command printed `added KID` and exited 0). An
//!   exclusive `flock` on the sidecar `.keys.json.lock` (0600, never deleted: deleting a lock
//!   file lets two holders lock two inodes) is held from the read to the rename, like the
//!   users-file editor's (`store::file::edit`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Why a key set could not be read or changed (paths and kids only, never key material).
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `keys.json` is not a schedule.
    #[error("{0}: not a key schedule ({1})")]
    Manifest(PathBuf, String),
    /// A PEM file holds no usable RS256 / ES256 private key.
    #[error("{0}: no PKCS#8 / PKCS#1 P-256 or RSA (>= 2048 bits) private key")]
    Key(PathBuf),
    /// A kid of the schedule is not a plain file name.
    #[error("key id {0:?} is not [A-Za-z0-9_-]+")]
    Kid(String),
    /// Key generation failed.
    #[error("key generation failed")]
    Generate,
    /// The directory or a key file could have been written by another user: refused.
    #[error("refusing {0}: {1}")]
    Unsafe(PathBuf, String),
}

/// The lock file of a key set directory.
pub const LOCK: &str = ".keys.json.lock";

/// This process's effective uid, from `/proc/self/status` (no `unsafe` FFI; `None` when it
/// cannot be read, and then only root-owned files pass the owner check).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn owner_ok(uid: u32) -> bool {
    uid == 0 || Some(uid) == euid()
}

fn refused(path: &Path, why: String) -> KeySetError {
    KeySetError::Unsafe(path.to_owned(), why)
}

/// Refuses a key set directory another user could write: writable by group or others, or
/// owned by someone other than us or root. A directory that does not exist yet passes (the
/// caller creates it with the default mode).
pub fn check_dir(dir: &Path) -> Result<(), KeySetError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(KeySetError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(
            dir,
            format!("writable by group or others (mode {mode:o}): run `chmod go-w` on it"),
        ));
    }
    if !owner_ok(meta.uid()) {
        return Err(refused(
            dir,
            format!("owned by uid {}, neither this user nor root", meta.uid()),
        ));
    }
    Ok(())
}

/// Refuses a private key file others could read or write, or group could write, or owned by
/// someone other than us or root.
pub fn check_key_file(path: &Path) -> Result<(), KeySetError> {
    let meta = std::fs::metadata(path).map_err(|source| KeySetError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(refused(
            path,
            format!("private key with mode {mode:o}: run `chmod 600` (or 640) on it"),
        ));
    }
    if !owner_ok(meta.uid()) {
        return Err(refused(
            path,
            format!("owned by uid {}, neither this user nor root", meta.uid()),
        ));
    }
    Ok(())
}

/// Takes the exclusive edit lock of the key set in `dir` (waits for another `keys` command,
/// saying so on stderr). Released when the returned file drops.
pub fn lock(dir: &Path) -> Result<File, KeySetError> {
    let path = dir.join(LOCK);
    let io_err = |source| KeySetError::Io {
        path: path.clone(),
        source,
    };
    // O_EXCL so a name planted meanwhile is never followed; an existing lock file is opened
    // read-only (flock needs no write access), so a planted symlink only gets locked.
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => File::open(&path).map_err(io_err)?,
        Err(e) => return Err(io_err(e)),
    };
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for another `keys` command on {} to finish (lock {})",
                dir.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    file.lock().map_err(io_err)?;
    Ok(file)
}
