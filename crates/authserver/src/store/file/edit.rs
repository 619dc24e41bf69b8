//! Serialised, atomic edits of a users file: what `users add|disable|enable|remove|pull` write
//! through. The server only reads the file ([`super::FileStore`]); this is the write side of the
//! same file, kept beside it so the CLI and tests call one owner.
//!
//! Each step and why:
//! - **Resolve the path first.** A symlinked users file is canonicalised, so the link stays a
//!   link and its target (what the server reads) gets the edit; replacing the link with a
//!   regular file would leave the server on the old target.
//! - **Refuse a directory writable by group or others** (the sticky bit does not help: anyone
//!   there can still plant names we must open). **Warn** about a users file writable by group or
//!   others: the edit keeps its mode, and the operator should tighten it.
//! - **One editor at a time.** An exclusive `flock` on the sidecar `.NAME.lock` (mode 0600) is
//!   held from the read to the rename, so concurrent commands queue instead of overwriting each
//!   other's edits. A sidecar rather than the file itself: the rename replaces the users file's
//!   inode, and a lock on the old inode would guard nothing. It is never deleted (deleting a lock
//!   file lets two holders lock two different inodes).
//! - **The temp file** gets a random name and is created with `O_CREAT|O_EXCL` and mode 0600:
//!   a symlink or file planted at any name makes creation fail instead of being followed, and the
//!   hashes are never readable by others, not even briefly. The existing file's mode (and owner,
//!   when we may set it) is applied before the rename; new files stay 0600.
//! - **Durability.** fsync the temp file, rename it over the target, fsync the directory.
//!
//! Two ways to edit: [`edit`] hands the whole document to a closure (`users import`, `pull`);
//! [`edit_user`] changes one user while the file streams through (`users add`, `disable`,
//! `enable`, `remove`, the legacy re-hash), which a file of a million users needs.
//!
//! Edits are made by an operator's command, not by the server: the warnings (a loose mode, a
//! wait for another editor, an owner that cannot be kept) go to stderr, where that operator is.

mod error;
mod stream;

pub use error::{EditError, WriteError};
pub use stream::{Change, Outcome, edit_user, for_each_user, may_hold};

use authserver_core::{StoreDocument, parse_document};
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a users file this module creates (it holds password hashes).
const NEW_FILE_MODE: u32 = 0o600;

/// Largest users file the edit commands read: 1 GiB, ~5 M users at ~210 B each. Not the
/// server's `store.max_file_bytes` (8 MiB by default): these commands are the operator's, on a
/// file the operator owns, and a store of a million users (~210 MB) must stay editable; the cap
/// only keeps a wrong path (a disk image, say) from being read whole.
pub const EDIT_MAX_BYTES: u64 = 1 << 30;

/// What an edit does when the users file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Start from an empty document (`users add`).
    Create,
    /// Fail with "cannot read" (every other edit).
    Fail,
}

/// A users file path, resolved.
#[derive(Debug)]
struct Target {
    /// The file to replace (symlinks resolved).
    path: PathBuf,
    /// Its directory (canonical).
    dir: PathBuf,
    /// Its file name.
    name: OsString,
}

/// Reads a users file (shape only: `users` commands must work on files whose hashes a stricter
/// policy would refuse, so an operator can fix them).
pub fn read(file: &Path) -> Result<StoreDocument, EditError> {
    // Regular files only, opened non-blocking: a FIFO or device at the path must not hang or
    // pin the command.
    let (bytes, _) =
        crate::files::read_regular(file, EDIT_MAX_BYTES).map_err(|source| EditError::Content {
            path: file.to_owned(),
            source,
        })?;
    parse_document(&bytes).map_err(|source| EditError::Invalid {
        path: file.to_owned(),
        source,
    })
}

/// Applies `change` to the users file under the edit lock and writes the result atomically.
/// Nothing is written when `change` fails; its error is the caller's own type.
pub fn edit<T, E: From<EditError>>(
    file: &Path,
    missing: Missing,
    change: impl FnOnce(&mut StoreDocument) -> Result<T, E>,
) -> Result<T, E> {
    let target = resolve(file)?;
    let _lock = lock(&target)?;
    remove_stale_temps(&target);
    let existing = existing(&target)?;
    let mut doc = match (&existing, missing) {
        (Some(_), _) => read(&target.path)?,
        (None, Missing::Create) => StoreDocument::new(),
        (None, Missing::Fail) => {
            return Err(read_error(file, io::ErrorKind::NotFound.into()).into());
        }
    };
    let out = change(&mut doc)?;
    let (mode, owner) = existing.as_ref().map_or((NEW_FILE_MODE, None), |m| {
        (m.mode() & 0o777, Some((m.uid(), m.gid())))
    });
    write_locked(&target, &doc, mode, owner).map_err(|source| EditError::Write {
        path: file.to_owned(),
        source,
    })?;
    Ok(out)
}

/// Replaces the users file's content with `doc` under the edit lock, keeping its mode.
pub fn write(file: &Path, doc: &StoreDocument) -> Result<(), EditError> {
    edit(file, Missing::Create, |current| {
        current.clone_from(doc);
        Ok::<_, EditError>(())
    })
}

/// Replaces the users file with `doc`, mode 0600 whatever it was (`users pull`).
pub fn replace(file: &Path, doc: &StoreDocument) -> Result<(), EditError> {
    let target = resolve(file)?;
    let _lock = lock(&target)?;
    remove_stale_temps(&target);
    let owner = existing(&target)?.map(|m| (m.uid(), m.gid()));
    write_locked(&target, doc, NEW_FILE_MODE, owner).map_err(|source| EditError::Write {
        path: file.to_owned(),
        source,
    })
}

/// `cannot read FILE: why`.
fn read_error(file: &Path, source: io::Error) -> EditError {
    EditError::Read {
        path: file.to_owned(),
        source,
    }
}

/// Canonicalises the file (or, when it does not exist yet, its directory) and checks the
/// directory's permissions.
fn resolve(file: &Path) -> Result<Target, EditError> {
    let path = match std::fs::symlink_metadata(file) {
        Ok(_) => std::fs::canonicalize(file).map_err(|source| EditError::Resolve {
            path: file.to_owned(),
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let dir = std::fs::canonicalize(dir).map_err(|e| read_error(file, e))?;
            let name = file.file_name().ok_or_else(|| no_file_name(file))?;
            dir.join(name)
        }
        Err(e) => return Err(read_error(file, e)),
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(no_file_name(file));
    };
    let target = Target {
        dir: dir.to_owned(),
        name: name.to_owned(),
        path: path.clone(),
    };
    check_directory(&target)?;
    Ok(target)
}

fn no_file_name(file: &Path) -> EditError {
    EditError::NoFileName {
        path: file.to_owned(),
    }
}

/// Refuses a directory writable by group or others.
fn check_directory(target: &Target) -> Result<(), EditError> {
    let meta = std::fs::metadata(&target.dir).map_err(|source| EditError::Directory {
        dir: target.dir.clone(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(EditError::OpenDirectory {
            path: target.path.clone(),
            dir: target.dir.clone(),
            mode,
        });
    }
    Ok(())
}

/// The users file's metadata, or None when it does not exist; warns when it is group/other
/// writable; refuses anything but a regular file.
fn existing(target: &Target) -> Result<Option<Metadata>, EditError> {
    match std::fs::metadata(&target.path) {
        Ok(m) if !m.is_file() => Err(EditError::NotRegular {
            path: target.path.clone(),
        }),
        Ok(m) => {
            if m.mode() & 0o022 != 0 {
                eprintln!(
                    "warning: {} is writable by group or others (mode {:o}); the edit keeps that mode: \
                     run `chmod go-w` on it",
                    target.path.display(),
                    m.mode() & 0o7777
                );
            }
            Ok(Some(m))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(&target.path, e)),
    }
}

/// Takes the exclusive edit lock (waits for other editors). Released when the file drops.
fn lock(target: &Target) -> Result<File, EditError> {
    let mut name = OsString::from(".");
    name.push(&target.name);
    name.push(".lock");
    let path = target.dir.join(name);
    let file = open_lock(&path)?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            // Edits are short; a long wait means a stopped or stuck editor, which the operator
            // should be able to see.
            eprintln!(
                "waiting for another edit of {} to finish (lock {})",
                target.path.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(EditError::Lock {
                lock: path,
                source: e,
            });
        }
    }
    file.lock()
        .map_err(|source| EditError::Lock { lock: path, source })?;
    Ok(file)
}

/// Opens (creating it when absent) the lock file at `path`.
fn open_lock(path: &Path) -> Result<File, EditError> {
    // Created with O_EXCL so a name planted meanwhile is never followed; an existing lock file
    // is opened read-only (flock needs no write access), so even a planted symlink only gets
    // locked, never created or written.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => File::open(path),
        Err(e) => Err(e),
    }
    .map_err(|source| EditError::LockFile {
        lock: path.to_owned(),
        source,
    })
}

/// Writes `doc` to a fresh temp file and renames it over the target. The caller holds the lock.
fn write_locked(
    target: &Target,
    doc: &StoreDocument,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), WriteError> {
    let (tmp, f) = create_temp(target)?;
    let result = (|| -> io::Result<()> {
        // Streamed through a buffer: the pretty JSON of 1 M users is ~210 MB that need not be
        // held in memory next to the document.
        let mut out = io::BufWriter::with_capacity(1 << 16, &f);
        serde_json::to_writer_pretty(&mut out, doc)?;
        out.write_all(b"\n")?;
        out.flush()?;
        drop(out);
        if let Some((uid, gid)) = owner {
            keep_owner(&f, target, uid, gid);
        }
        // fchmod after the write: the data was 0600 while written; umask plays no part.
        f.set_permissions(Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target.path)?;
        File::open(&target.dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// Creates `.NAME.<random>.tmp` beside the target: `O_CREAT|O_EXCL`, mode 0600.
fn create_temp(target: &Target) -> Result<(PathBuf, File), WriteError> {
    for _ in 0..16 {
        let mut name = OsString::from(".");
        name.push(&target.name);
        name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
        let tmp = target.dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(WriteError::Temp {
                    dir: target.dir.clone(),
                    source,
                });
            }
        }
    }
    Err(WriteError::TempNames {
        dir: target.dir.clone(),
    })
}

/// Removes temp files an editor killed mid-write left behind. Under the lock no other editor is
/// writing one, so every `.NAME.<16 hex>.tmp` is stale (removing a planted symlink removes the
/// link, never its target).
fn remove_stale_temps(target: &Target) {
    let mut prefix = OsString::from(".");
    prefix.push(&target.name);
    let prefix = prefix.to_string_lossy().into_owned() + ".";
    let Ok(entries) = std::fs::read_dir(&target.dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Gives the new file the old one's owner, so a server running as that user keeps reading it
/// after root edits. Only root may do that for another user: otherwise say so.
fn keep_owner(f: &File, target: &Target, uid: u32, gid: u32) {
    let Ok(meta) = f.metadata() else { return };
    if (meta.uid(), meta.gid()) == (uid, gid) {
        return;
    }
    if let Err(e) = std::os::unix::fs::fchown(f, Some(uid), Some(gid)) {
        eprintln!(
            "warning: {} now belongs to uid {} (cannot keep owner {uid}:{gid}: {e}); check the server can read it",
            target.path.display(),
            meta.uid()
        );
    }
}
