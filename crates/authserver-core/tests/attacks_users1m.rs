//! Attacks on the streamed users-file parser (issue 17, "a million users"): the document is
//! read through a 1 MiB buffer and each `"name": {entry}` pair is handed to serde_json on the
//! bytes in the buffer, retried with more bytes when serde_json reports the end of its input.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::document::{StreamError, read_entries};
use authserver_core::parse_document;

/// The first buffer the streamed parser reads (`document::stream::CHUNK`).
const CHUNK: usize = 1 << 20;

/// The error of the streamed parse of `doc` (through the 1 MiB buffer), as a string.
fn streamed(doc: &[u8]) -> String {
    match read_entries(doc, |_, _| Ok(())) {
        Ok(()) => "ok".into(),
        Err(StreamError::Invalid(e)) => e.to_string(),
        Err(StreamError::Read(e)) => format!("read {e}"),
    }
}

/// `{` + padding + `pair`, where the first `cut` bytes of `pair` end exactly at the 1 MiB
/// buffer boundary.
fn with_cut_at_boundary(pair: &str, cut: usize) -> Vec<u8> {
    let pad = CHUNK - 1 - cut;
    let mut doc = b"{".to_vec();
    doc.extend(std::iter::repeat_n(b' ', pad));
    doc.extend_from_slice(pair.as_bytes());
    assert_eq!(&doc[CHUNK - cut..CHUNK], &pair.as_bytes()[..cut]);
    doc
}

/// Finding 1 (low): the streamed parse's refusal depends on where the 1 MiB buffer ends.
/// `stream.rs` promises "Errors are those of a whole-document serde_json parse: the category
/// and the position", and `cuts_anywhere_read_like_the_whole` tests it, but only its own
/// documents. serde_json skips a value it ignores (`IgnoredAny`: an unknown field, a
/// duplicate field, a field after the entry is already refused) with `ignore_integer` /
/// `ignore_decimal` / `ignore_exponent`, which read the end of the input as a NUL byte and
/// report `InvalidNumber`, not an end-of-input error. A number such as `1.5`, `-3` or `2e9`
/// cut by the buffer right after `1.`, `-` or `2e` is therefore refused as a syntax error at
/// a position inside a well-formed number, instead of "unknown field" for the user: the
/// operator is sent to a spot where nothing is wrong, and the message changes when lines are
/// added above (the buffer boundary moves).
///
/// Repro: a users file of > 1 MiB whose entry `"a": {"passwordHash": "h", "x": 1.5}` has
/// `1.` ending at byte 1048576; `authserver serve` (and `users list`) say `(syntax) at line 1, column 1048576`;
/// move it one byte and it says the entry `"a"` has an unknown field.
#[test]
fn an_ignored_number_cut_by_the_buffer_is_refused_like_the_whole_document() {
    for (pair, cut_after) in [
        (r#""a":{"passwordHash":"h","x":1.5}}"#, "1."),
        (r#""a":{"passwordHash":"h","x":-3}}"#, "-"),
        (r#""a":{"passwordHash":"h","x":2e9}}"#, "2e"),
    ] {
        let cut = pair.find(cut_after).unwrap() + cut_after.len();
        // Control: the same entry cut one byte earlier is refused for what it is.
        let elsewhere = streamed(&with_cut_at_boundary(pair, cut - 1));
        assert!(elsewhere.contains("unknown field"), "{elsewhere}");
        let doc = with_cut_at_boundary(pair, cut);
        assert_eq!(streamed(&doc), elsewhere, "{pair} cut after {cut_after:?}");
        // `parse_document` (the CLI's whole-file read) streams the same way.
        let whole = parse_document(&doc).expect_err("unknown field").to_string();
        assert_eq!(whole, elsewhere, "parse_document: {pair} cut after {cut_after:?}");
    }
}
