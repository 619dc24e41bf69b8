//! How a users-file edit fails.

use crate::files::FileError;
use authserver_core::StoreError;
use std::io;
use std::path::PathBuf;

/// Why an edit (or the read before it) failed. Each names the path it concerns; the CLI prints
/// the chain of sources after it.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The users file, or the directory a new one would go in, cannot be read (also: it does
    /// not exist and the edit needs it).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The users file's content cannot be read ([`read`]: missing, not a regular file, over
    /// the size cap).
    #[error("cannot read {}", path.display())]
    Content {
        /// The file as given.
        path: PathBuf,
        /// Why.
        source: FileError,
    },
    /// Read, but not a users document.
    #[error("{} is not a valid users file", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// A symlink that cannot be followed to its target.
    #[error("cannot resolve {} (a symlink to a missing file?)", path.display())]
    Resolve {
        /// The file as given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path ends in no file name (`/`, `..`).
    #[error("{} does not name a file", path.display())]
    NoFileName {
        /// The path as given.
        path: PathBuf,
    },
    /// The file's directory cannot be inspected.
    #[error("cannot read directory {}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The directory is writable by group or others: refused.
    #[error(
        "refusing to edit {}: its directory {} is writable by group or others (mode {mode:o}), so anyone \
         who can write there could replace the users file or plant files we open; run `chmod go-w {}`",
        path.display(),
        dir.display(),
        dir.display()
    )]
    OpenDirectory {
        /// The users file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// The directory's mode.
        mode: u32,
    },
    /// Something other than a regular file is at the path.
    #[error("{} is not a regular file", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// The sidecar lock file cannot be created or opened.
    #[error("cannot open the edit lock {}", lock.display())]
    LockFile {
        /// The lock file.
        lock: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The edit lock cannot be taken.
    #[error("cannot lock {}", lock.display())]
    Lock {
        /// The lock file.
        lock: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The listing could not be written (`users list` into a closed pipe, say).
    #[error("cannot write the listing")]
    Output {
        /// Why.
        source: io::Error,
    },
    /// The new content could not be written and renamed into place (the old file is intact).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file as given.
        path: PathBuf,
        /// Why.
        source: WriteError,
    },
}

/// Why the new content could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No temp file could be created beside the target.
    #[error("cannot create a temp file in {}", dir.display())]
    Temp {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Every random temp name tried already exists (something plants them).
    #[error("cannot create a temp file in {}: every name tried exists", dir.display())]
    TempNames {
        /// The directory.
        dir: PathBuf,
    },
    /// Writing, syncing or renaming failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The document could not be serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
