//! Reading a store document from any `Read`, entry by entry, through a small buffer.
//!
//! Why: a million users is a ~210 MB file. Reading it whole before parsing held the bytes (as
//! much again as the snapshot) and walked them twice. Here the top level (`{`, `,`, `}`, the
//! whitespace between) is read by hand and each `"name": {entry}` pair is handed to serde_json
//! on the bytes in the buffer, so strings still borrow and nothing outlives its entry; a pair cut
//! by the buffer's end is parsed again once more bytes are in (at most one per refill). The
//! caller sees every byte go through its reader, which is how the file store digests the content
//! in the same pass.
//!
//! Errors are those of a whole-document serde_json parse: the category and the position (line
//! and column, counted over the whole input, so an operator finds the spot), never content.

use super::entry::{Parsed, Str};
use super::{BOM, Entry};
use crate::record::{EntryProblem, StoreError};
use std::io::Read;

/// First buffer size; doubled while one entry does not fit.
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    Start,
    /// After `{`: a key or `}`.
    First,
    /// After an entry: `,` or `}`.
    After,
    /// After `,`: a key.
    Next,
    /// After the closing `}`: whitespace only.
    Done,
}

/// What one attempt at the pair under the cursor came to.
enum Step {
    /// Parsed and handed over: this many bytes consumed.
    Took(usize),
    /// Cut by the buffer's end: read more and try again.
    More,
}

/// The buffer and where the cursor is, in it and in the whole input.
struct Cursor<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    eof: bool,
    /// Input offset of `buf[0]`.
    base: u64,
    /// Lines before `buf[0]` (0-based), and the input offset where `buf[0]`'s line starts.
    line: usize,
    line_start: u64,
}

/// Why a streamed document was not read to its end.
#[derive(Debug)]
pub enum StreamError {
    /// The reader failed (the file store's size cap is one such failure).
    Read(std::io::Error),
    /// The bytes are not a valid store document, or `each` refused an entry.
    Invalid(StoreError),
}

impl From<StoreError> for StreamError {
    fn from(e: StoreError) -> Self {
        StreamError::Invalid(e)
    }
}

/// Streams the document in `reader` and hands each entry to `each` (see
/// [`super::for_each_entry`]); an entry whose fields are wrong stops the read with the username
/// in the error, like any error `each` returns. The reader is read to its end only when the
/// document is valid.
pub fn read_entries<R: Read>(
    reader: R,
    each: impl FnMut(&str, Entry<'_>) -> Result<(), StoreError>,
) -> Result<(), StreamError> {
    read_chunked(reader, CHUNK, each)
}

/// [`read_entries`] with a first buffer of `chunk` bytes (tests cut entries everywhere).
pub(super) fn read_chunked<R: Read>(
    reader: R,
    chunk: usize,
    mut each: impl FnMut(&str, Entry<'_>) -> Result<(), StoreError>,
) -> Result<(), StreamError> {
    let mut c = Cursor {
        reader,
        buf: vec![0; chunk.max(4)],
        pos: 0,
        filled: 0,
        eof: false,
        base: 0,
        line: 0,
        line_start: 0,
    };
    c.fill()?;
    if c.buf[..c.filled].starts_with(BOM) {
        (c.pos, c.line_start) = (BOM.len(), BOM.len() as u64); // columns count after it, as before
    }
    let mut state = State::Start;
    loop {
        while c.pos < c.filled && matches!(c.buf[c.pos], b' ' | b'\n' | b'\t' | b'\r') {
            c.pos += 1;
        }
        if c.pos == c.filled {
            if !c.eof {
                c.fill()?;
                continue;
            }
            return match state {
                State::Done => Ok(()),
                _ => Err(c.error(c.pos, "unexpected end").into()),
            };
        }
        match (state, c.buf[c.pos]) {
            (State::Start, b'{') => (c.pos, state) = (c.pos + 1, State::First),
            (State::Start, b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                return Err(c.error(c.pos + 1, "not an object of user entries").into());
            }
            (State::First | State::After, b'}') => (c.pos, state) = (c.pos + 1, State::Done),
            (State::After, b',') => (c.pos, state) = (c.pos + 1, State::Next),
            (State::First | State::Next, b'"') => match pair(&c.buf[c.pos..c.filled], c.eof, &mut each) {
                Ok(Step::Took(n)) => (c.pos, state) = (c.pos + n, State::After),
                Ok(Step::More) => c.fill()?,
                Err((at, PairProblem::Json(e))) => return Err(c.json_error(c.pos + at, &e).into()),
                Err((at, PairProblem::Syntax(category))) => return Err(c.error(c.pos + at, category).into()),
                Err((_, PairProblem::Store(e))) => return Err(e.into()),
            },
            _ => return Err(c.error(c.pos + 1, "syntax").into()),
        }
    }
}

impl<R: Read> Cursor<R> {
    /// Drops the consumed bytes (noting their lines) and reads until the buffer is full or the
    /// input ends; doubles the buffer when one pair fills it whole.
    fn fill(&mut self) -> Result<(), StreamError> {
        if self.pos > 0 {
            let consumed = &self.buf[..self.pos];
            if let Some(last) = consumed.iter().rposition(|b| *b == b'\n') {
                self.line += newlines(consumed);
                self.line_start = self.base + last as u64 + 1;
            }
            self.buf.copy_within(self.pos..self.filled, 0);
            (self.filled, self.base, self.pos) = (self.filled - self.pos, self.base + self.pos as u64, 0);
        } else if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        while self.filled < self.buf.len() {
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StreamError::Read(e)),
            }
        }
        Ok(())
    }

    /// Line (1-based) and column (bytes before it on its line, as serde_json counts) of
    /// `buf[index]`.
    fn position(&self, index: usize) -> (usize, usize) {
        let before = &self.buf[..index.min(self.filled)];
        let (line, start) = match before.iter().rposition(|b| *b == b'\n') {
            Some(last) => (self.line + newlines(before), self.base + last as u64 + 1),
            None => (self.line, self.line_start),
        };
        let column = (self.base + index as u64).saturating_sub(start);
        (line + 1, usize::try_from(column).unwrap_or(usize::MAX))
    }

    fn error(&self, index: usize, category: &'static str) -> StoreError {
        let (line, column) = self.position(index);
        StoreError::Json {
            category,
            line,
            column,
        }
    }

    /// serde_json's error on the slice from `buf[start]`, positioned in the whole input.
    fn json_error(&self, start: usize, e: &serde_json::Error) -> StoreError {
        let (line, column) = self.position(start);
        let (line, column) = if e.line() <= 1 {
            (line, column + e.column())
        } else {
            (line + e.line() - 1, e.column())
        };
        StoreError::Json {
            category: super::category(e),
            line,
            column,
        }
    }
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

/// An error from parsing the pair at `buf[0]`, at offset `.0`.
type PairError = (usize, PairProblem);

/// What stopped a pair.
pub(super) enum PairProblem {
    /// serde_json's error, positioned relative to the pair's first byte.
    Json(serde_json::Error),
    /// The top-level syntax around the pair (a missing `:`), or the end of the input.
    Syntax(&'static str),
    /// The entry (or `each`) refused it.
    Store(StoreError),
}

/// Parses `"name": value` at the start of `buf` (which starts with `"`) and hands the entry
/// over. `eof`: nothing follows `buf`, so a cut pair is an error rather than a reason to wait.
fn pair(
    buf: &[u8],
    eof: bool,
    each: &mut impl FnMut(&str, Entry<'_>) -> Result<(), StoreError>,
) -> Result<Step, PairError> {
    let mut keys = serde_json::Deserializer::from_slice(buf).into_iter::<Str<'_>>();
    let name = match keys.next() {
        Some(Ok(Str(name))) => name,
        Some(Err(e)) if e.is_eof() && !eof => return Ok(Step::More),
        Some(Err(e)) => return Err((0, PairProblem::Json(e))),
        None => return Ok(Step::More), // cannot happen: buf starts with a quote
    };
    let mut at = keys.byte_offset();
    let skip = |at: &mut usize| {
        while *at < buf.len() && matches!(buf[*at], b' ' | b'\n' | b'\t' | b'\r') {
            *at += 1;
        }
    };
    skip(&mut at);
    match buf.get(at) {
        Some(b':') => at += 1,
        Some(_) => return Err((at + 1, PairProblem::Syntax("syntax"))),
        None if eof => return Err((at, PairProblem::Syntax("unexpected end"))),
        None => return Ok(Step::More),
    }
    skip(&mut at);
    let Some(&first) = buf.get(at) else {
        return if eof {
            Err((at, PairProblem::Syntax("unexpected end")))
        } else {
            Ok(Step::More)
        };
    };
    let mut values = serde_json::Deserializer::from_slice(&buf[at..]).into_iter::<Parsed<'_>>();
    let parsed = match values.next() {
        Some(Ok(parsed)) => parsed,
        Some(Err(e)) if !eof && (e.is_eof() || at_end(&buf[at..], &e)) => return Ok(Step::More),
        Some(Err(e)) => return Err((at, PairProblem::Json(e))),
        None => return Ok(Step::More),
    };
    let end = at + values.byte_offset();
    if end == buf.len() && !eof && !matches!(first, b'{' | b'[' | b'"') {
        return Ok(Step::More); // a number or literal may go on in the next read
    }
    let outcome = match parsed.0 {
        Ok(entry) => each(&name, entry),
        Err(problem) => Err(entry_error(&name, problem)),
    };
    outcome.map_err(|e| (0, PairProblem::Store(e)))?;
    Ok(Step::Took(end))
}

/// True when serde_json's error `e` on `slice` is at its last byte or past it. serde_json skips
/// an ignored number (an unknown or duplicate field, or one after the entry is refused) reading
/// the end of its input as a NUL: `1.`, `-` or `2e` cut by the buffer is "invalid number", not
/// "end of input". Such an error may vanish with more bytes, so the pair is retried once more
/// are in; a real error there comes back at the same spot with bytes after it.
fn at_end(slice: &[u8], e: &serde_json::Error) -> bool {
    let line_start = match e.line() {
        0 | 1 => Some(0),
        n => slice
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(n - 2)
            .map(|(i, _)| i + 1),
    };
    line_start.is_some_and(|start| start + e.column() + 1 >= slice.len())
}

fn entry_error(name: &str, problem: EntryProblem) -> StoreError {
    StoreError::Entry {
        user: name.to_owned(),
        problem,
    }
}
