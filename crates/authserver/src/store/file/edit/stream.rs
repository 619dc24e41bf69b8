//! One user's edit, made while the users file streams through: what `users add`, `disable`,
//! `enable`, `remove` and the legacy re-hash write on a file of a million users.
//!
//! The whole-document edit ([`super::edit`]) parses the file into a map, changes it and writes
//! the map: at a million users that is the file's 210 MB held three times over (bytes, map,
//! output buffers) and most of the CPU spent building and dropping a million records. Here each
//! entry is read, checked and written to the temp file at once, the one entry concerned is
//! replaced, dropped or inserted on the way, and the rest of the edit is the same: the lock,
//! the fresh 0600 temp file, fsync, rename, fsync of the directory. Memory stays at the parser's
//! buffer plus 8 bytes per user (to find a username listed twice in a file that is not sorted).
//!
//! Output: each entry as the whole-document writer writes it (pretty JSON, two-space indent), in
//! the file's own order; a new user goes before the first name that sorts after it, so a file
//! the commands wrote (sorted) stays byte for byte what the whole-document writer would write.
//! Anything that stops the edit (a broken file, a name taken or missing) removes the temp file:
//! the users file is untouched.

use super::{
    EditError, Missing, Target, WriteError, create_temp, existing, lock, read_error, remove_stale_temps,
    resolve,
};
use crate::files::{FileError, open_regular};
use authserver_core::document::{StreamError, read_entries};
use authserver_core::store::EntryProblem;
use authserver_core::{StoreError, UserRecord};
use std::fs::{File, Permissions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What to do with the user.
pub enum Change<'a> {
    /// Add the user; refused when the name is taken.
    Add(UserRecord),
    /// Change the user's record; refused when the user is absent. The closure returns false to
    /// leave the file as it is (the re-hash, when the user's hash changed meanwhile).
    Update(&'a mut dyn FnMut(&mut UserRecord) -> bool),
    /// Remove the user; refused when absent.
    Remove,
}

/// What an edit came to. Only [`Outcome::Written`] changed the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The new content is in place.
    Written,
    /// `Add`: the user exists.
    Exists,
    /// `Update` / `Remove`: no such user.
    Missing,
    /// `Update`'s closure declined.
    Declined,
}

/// Applies `change` to `username` in the users file under the edit lock, in one streaming pass.
/// `users add` creates the file when it is absent (`Missing::Create`).
pub fn edit_user(
    file: &Path,
    missing: Missing,
    username: &str,
    mut change: Change<'_>,
) -> Result<Outcome, EditError> {
    let target = resolve(file)?;
    let _lock = lock(&target)?;
    remove_stale_temps(&target);
    let Some(meta) = existing(&target)? else {
        return match (missing, change) {
            (Missing::Create, Change::Add(record)) => {
                let doc = std::iter::once((username.to_owned(), record)).collect();
                super::write_locked(&target, &doc, super::NEW_FILE_MODE, None).map_err(|source| {
                    EditError::Write {
                        path: file.to_owned(),
                        source,
                    }
                })?;
                Ok(Outcome::Written)
            }
            (Missing::Create, _) => Ok(Outcome::Missing),
            (Missing::Fail, _) => Err(read_error(file, io::ErrorKind::NotFound.into())),
        };
    };
    let (tmp, f) = create_temp(&target).map_err(|source| EditError::Write {
        path: file.to_owned(),
        source,
    })?;
    let result = stream(file, &target, &f, username, &mut change).and_then(|outcome| {
        if outcome == Outcome::Written {
            finish(&target, &f, &tmp, (meta.mode() & 0o777, meta.uid(), meta.gid())).map_err(|source| {
                EditError::Write {
                    path: file.to_owned(),
                    source,
                }
            })?;
        }
        Ok(outcome)
    });
    if result.as_ref().map_or(true, |o| *o != Outcome::Written) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Streams the users file into `f` with the change applied; nothing is synced or renamed here.
fn stream(
    file: &Path,
    target: &Target,
    f: &File,
    username: &str,
    change: &mut Change<'_>,
) -> Result<Outcome, EditError> {
    let (input, _) =
        open_regular(&target.path, super::EDIT_MAX_BYTES).map_err(|source| EditError::Content {
            path: file.to_owned(),
            source,
        })?;
    let mut out = Out::new(BufWriter::with_capacity(1 << 16, f));
    let mut names = Names::default();
    let (mut found, mut declined, mut failed) = (false, false, None::<io::Error>);
    let mut add = match change {
        Change::Add(record) => Some(std::mem::replace(record, empty_record())),
        _ => None,
    };
    let streamed = read_entries(input, |name, entry| {
        names.note(name);
        let written = if name == username {
            found = true;
            match change {
                Change::Add(_) => return Err(stop()),
                Change::Remove => Ok(()),
                Change::Update(apply) => {
                    let mut record = entry.into_record();
                    if !apply(&mut record) {
                        declined = true;
                        return Err(stop());
                    }
                    out.entry(name, &record)
                }
            }
        } else {
            let before = match add.as_ref() {
                Some(record) if names.sorted && name > username => {
                    out.entry(username, record).map(|()| add = None)
                }
                _ => Ok(()),
            };
            before.and_then(|()| out.entry(name, &entry))
        };
        written.map_err(|e| {
            failed = Some(e);
            stop()
        })
    });
    if let Some(e) = failed {
        return Err(write_error(file, e));
    }
    if found && matches!(change, Change::Add(_)) {
        return Ok(Outcome::Exists);
    }
    if declined {
        return Ok(Outcome::Declined);
    }
    streamed.map_err(|e| stream_error(file, e))?;
    if names.maybe_twice() {
        // Some name hashed like another: the exact (and slower) check says which, if any.
        super::read(&target.path).map_err(|e| match e {
            EditError::Invalid { source, .. } => EditError::Invalid {
                path: file.to_owned(),
                source,
            },
            other => other,
        })?;
    }
    if !found && !matches!(change, Change::Add(_)) {
        return Ok(Outcome::Missing);
    }
    if let Some(record) = add {
        out.entry(username, &record).map_err(|e| write_error(file, e))?;
    }
    out.finish().map_err(|e| write_error(file, e))?;
    Ok(Outcome::Written)
}

/// Keeps the file's mode and owner, syncs, renames over the target and syncs the directory.
fn finish(
    target: &Target,
    f: &File,
    tmp: &Path,
    (mode, uid, gid): (u32, u32, u32),
) -> Result<(), WriteError> {
    super::keep_owner(f, target, uid, gid);
    f.set_permissions(Permissions::from_mode(mode))?;
    f.sync_all()?;
    std::fs::rename(tmp, &target.path)?;
    File::open(&target.dir)?.sync_all()?;
    Ok(())
}

fn write_error(file: &Path, e: io::Error) -> EditError {
    EditError::Write {
        path: file.to_owned(),
        source: WriteError::Io(e),
    }
}

/// Ends the stream early (the outcome is decided; the error itself is never shown).
fn stop() -> StoreError {
    StoreError::Entry {
        user: String::new(),
        problem: EntryProblem::DuplicateUser,
    }
}

fn empty_record() -> UserRecord {
    UserRecord {
        password_hash: String::new(),
        status: authserver_core::Status::Active,
        roles: Vec::new(),
        password_changed_at: None,
        delivery_secret_id: None,
        oauth: None,
    }
}

/// The names seen: whether they came sorted (then none can repeat), and a 64-bit keyed hash of
/// each for the case they did not.
struct Names {
    last: String,
    sorted: bool,
    hashes: Vec<u64>,
    keys: RandomState,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            last: String::new(),
            sorted: true,
            hashes: Vec::new(),
            keys: RandomState::new(),
        }
    }
}

impl Names {
    fn note(&mut self, name: &str) {
        if self.sorted {
            if self.hashes.is_empty() || name > self.last.as_str() {
                self.last.clear();
                self.last.push_str(name);
            } else {
                self.sorted = false;
            }
        }
        self.hashes.push(self.keys.hash_one(name));
    }

    /// False when no name can be listed twice; true when two names hash alike (then maybe).
    fn maybe_twice(mut self) -> bool {
        if self.sorted {
            return false;
        }
        self.hashes.sort_unstable();
        self.hashes.windows(2).any(|w| w[0] == w[1])
    }
}

/// The pretty JSON writer, one entry at a time.
struct Out<W: Write> {
    w: W,
    first: bool,
    scratch: Vec<u8>,
}

impl<W: Write> Out<W> {
    fn new(w: W) -> Self {
        Self {
            w,
            first: true,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// `"name": {entry}` at the first level, as `serde_json::to_writer_pretty` writes a map's
    /// entries: the entry is written pretty on its own and its lines indented by two spaces
    /// (JSON strings hold no raw newline, so every newline is the formatter's).
    fn entry(&mut self, name: &str, value: &impl serde::Serialize) -> io::Result<()> {
        self.w.write_all(if self.first { b"{\n  " } else { b",\n  " })?;
        self.first = false;
        serde_json::to_writer(&mut self.w, name)?;
        self.w.write_all(b": ")?;
        self.scratch.clear();
        serde_json::to_writer_pretty(&mut self.scratch, value)?;
        let mut lines = self.scratch.split(|b| *b == b'\n');
        if let Some(line) = lines.next() {
            self.w.write_all(line)?;
        }
        for line in lines {
            self.w.write_all(b"\n  ")?;
            self.w.write_all(line)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.w.write_all(if self.first { b"{}\n" } else { b"\n}\n" })?;
        self.w.flush()
    }
}

/// Every user of the file in its order, streamed (`users list`); a username listed twice is
/// found at the end. An error `each` returns (a closed stdout) ends the walk as
/// [`EditError::Output`].
pub fn for_each_user(
    file: &Path,
    mut each: impl FnMut(&str, UserRecord) -> io::Result<()>,
) -> Result<(), EditError> {
    let (input, _) = open_regular(file, super::EDIT_MAX_BYTES).map_err(|source| EditError::Content {
        path: file.to_owned(),
        source,
    })?;
    let mut names = Names::default();
    let mut failed = None;
    let streamed = read_entries(input, |name, entry| {
        names.note(name);
        each(name, entry.into_record()).map_err(|e| {
            failed = Some(e);
            stop()
        })
    });
    if let Some(source) = failed {
        return Err(EditError::Output { source });
    }
    streamed.map_err(|e| stream_error(file, e))?;
    if names.maybe_twice() {
        super::read(file)?; // the exact check names the user listed twice, if any
    }
    Ok(())
}

/// Whether the users file may hold `username`, before `users add` asks for a password: false
/// when the name, quoted as JSON writes it, appears nowhere in the file (a byte search, ~20 ms
/// for 210 MB); otherwise the file is parsed for it. A name written with escapes in the file is
/// missed here and refused under the lock instead, after the prompt.
pub fn may_hold(file: &Path, username: &str) -> Result<bool, EditError> {
    let content = |source| EditError::Content {
        path: file.to_owned(),
        source,
    };
    let needle = serde_json::to_vec(username).map_err(|e| content(FileError::Io(e.into())))?;
    let finder = memchr::memmem::Finder::new(&needle);
    let (mut input, _) = open_regular(file, super::EDIT_MAX_BYTES).map_err(content)?;
    let mut buf = vec![0; 1 << 20];
    let mut kept = 0;
    loop {
        let n = match input.read(&mut buf[kept..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(content(FileError::from_read(e))),
        };
        if n == 0 {
            return Ok(false);
        }
        let end = kept + n;
        if finder.find(&buf[..end]).is_some() {
            break;
        }
        kept = end.min(needle.len() - 1);
        buf.copy_within(end - kept..end, 0);
    }
    let (input, _) = open_regular(file, super::EDIT_MAX_BYTES).map_err(content)?;
    let mut hit = false;
    let streamed = read_entries(input, |name, _| {
        if name == username {
            hit = true;
            return Err(stop());
        }
        Ok(())
    });
    if hit {
        return Ok(true);
    }
    streamed.map_err(|e| stream_error(file, e))?;
    Ok(false)
}

fn stream_error(file: &Path, e: StreamError) -> EditError {
    match e {
        StreamError::Read(e) => EditError::Content {
            path: file.to_owned(),
            source: FileError::from_read(e),
        },
        StreamError::Invalid(source) => EditError::Invalid {
            path: file.to_owned(),
            source,
        },
    }
}
