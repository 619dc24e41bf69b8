//! Parsing a store document strictly: duplicate keys refuse it, a UTF-8 BOM is skipped.
//!
//! serde_json's maps keep the last of two equal keys, so `"status": "DISABLED"` written above
//! an existing `"status": "ACTIVE"` (or a second entry for one username) would load silently
//! and could re-enable a user just disabled, or let an invalid first copy skip validation.
//! The document is therefore streamed entry by entry ([`read_entries`], from any reader through
//! a small buffer): each entry's fields are read straight into an [`Entry`] (strings borrowed
//! from the buffer), checked for duplicate fields and handed over; duplicate usernames are
//! refused by whoever collects the entries ([`parse_document`], the snapshot builder). No copy
//! of the whole document, or of its bytes, is held.
//!
//! A leading UTF-8 byte order mark (what some Windows editors write) is accepted and skipped:
//! it carries no meaning in JSON and refusing it only produced a baffling "syntax" error.

mod entry;
mod stream;

pub use entry::Entry;
pub use stream::{StreamError, read_entries};

use crate::record::{StoreDocument, StoreError, UserRecord};

/// The fields an entry may have, in the order the docs list them.
const FIELDS: [&str; 6] = [
    "passwordHash",
    "status",
    "roles",
    "passwordChangedAt",
    "deliverySecretId",
    "oauth",
];

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses a store document and checks every entry's shape (not the hash policy, nor the names:
/// [`crate::Snapshot::build`] does those).
///
/// serde's own messages can quote input values (a hash, say), so field errors are reduced to
/// the field name.
pub fn parse_document(bytes: &[u8]) -> Result<StoreDocument, StoreError> {
    let mut doc = StoreDocument::new();
    for_each_entry(bytes, |user, record| {
        if doc.contains_key(&user) {
            return Err(StoreError::Entry {
                user,
                problem: crate::record::EntryProblem::DuplicateUser,
            });
        }
        doc.insert(user, record);
        Ok(())
    })?;
    Ok(doc)
}

/// Streams a store document held in memory: `each` receives every entry, in document order, as
/// soon as it is parsed, so no copy of the whole document (a map, a list of pairs) is ever held.
/// The first error (a JSON error, a shape error, or one `each` returns) stops the parse.
/// Duplicate usernames are `each`'s to refuse (it holds what was seen); duplicate fields are
/// refused here. [`read_entries`] does the same from any reader, with borrowed entries.
///
/// Why: reading a 1 M users file into `serde_json::Value`s before building the snapshot held
/// ~1.4 KB per user at its peak (the JSON is ~200 B per user).
pub fn for_each_entry(
    bytes: &[u8],
    mut each: impl FnMut(String, UserRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    read_entries(bytes, |name, entry| each(name.to_owned(), entry.into_record())).map_err(|e| match e {
        StreamError::Invalid(e) => e,
        // Reading a slice cannot fail; were it to, the document is refused, not served.
        StreamError::Read(_) => StoreError::Json {
            category: "io",
            line: 0,
            column: 0,
        },
    })
}

/// serde_json's error category, as the refusal names it.
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "not an object of user entries",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EntryProblem;

    /// Hands out at most `step` bytes per read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Entries, or the error, as a string; `chunk`/`step` cut the input anywhere.
    fn outcome(json: &str, chunk: usize, step: usize) -> String {
        let mut seen = Vec::new();
        let reader = Trickle {
            bytes: json.as_bytes(),
            step,
        };
        let done = stream::read_chunked(reader, chunk, |name, entry| {
            seen.push(format!("{name}={:?}", entry.into_record()));
            Ok(())
        });
        match done {
            Ok(()) => seen.join(";"),
            Err(StreamError::Invalid(e)) => format!("{e}"),
            Err(StreamError::Read(e)) => format!("read {e}"),
        }
    }

    /// Whatever the buffer size and however the reads cut the input, the entries and the
    /// errors (with their positions) are those of the whole input read at once.
    #[test]
    fn cuts_anywhere_read_like_the_whole() {
        let docs = [
            format!(
                "{{\n \"a\": {{\"passwordHash\":\"{H}\",\"roles\":[\"x\",\"y\"]}},\n \"b\\u0041\" : {{\"passwordHash\":\"{H}\",\"passwordChangedAt\":null}} }}\n"
            ),
            format!("\u{FEFF}{{\"a\":{{\"passwordHash\":\"{H}\"}}}}"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}\"}},\n\"b\":12345}}"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}\"}},\n\"b\":123x}}"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}\"}}\n,\n\"b\" {{}}}}"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}\"}},}}"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}\"}}}} x"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}\"}}"),
            format!("{{\"a\":{{\"passwordHash\":\"{H}"),
            "{}".to_owned(),
            " ".to_owned(),
            "[1,2]".to_owned(),
            "{\"a\":{\"passwordHash\":\"x\",\"roles\":[1]},\"b\":[[[[]]]]}".to_owned(),
        ];
        for doc in &docs {
            let whole = outcome(doc, 1 << 20, usize::MAX);
            for (chunk, step) in [(4, 1), (5, 3), (16, 7), (64, 64), (1 << 20, 1)] {
                assert_eq!(outcome(doc, chunk, step), whole, "{doc} cut at {chunk}/{step}");
            }
        }
        assert!(outcome(&docs[0], 8, 2).contains("bA="), "escaped name decoded");
        assert!(
            outcome(&docs[3], 8, 2).contains("(syntax) at line 2"),
            "{}",
            outcome(&docs[3], 8, 2)
        );
        assert!(
            outcome(&docs[2], 4, 1).contains("\"b\": invalid entry"),
            "{}",
            outcome(&docs[2], 4, 1)
        );
    }

    /// Positions are those serde_json gives for the whole document.
    #[test]
    fn error_positions_match_serde_json_on_the_whole_input() {
        for doc in [
            "{\n  \"a\": {\"passwordHash\": \"h\"} \n  \"b\": 1}",
            "{\"a\": {\"passwordHash\": \"h\",,}}",
            "{\n\n  \"a\": {\"passwordHash\": tru}}",
            "{\"a\": {\"passwordHash\": \"h\"}}\n\n  ]",
        ] {
            let theirs = serde_json::from_str::<serde_json::Value>(doc).expect_err(doc);
            let Err(StoreError::Json { line, column, .. }) = parse_document(doc.as_bytes()) else {
                panic!("{doc}: not a JSON error");
            };
            assert_eq!((line, column), (theirs.line(), theirs.column()), "{doc}");
        }
    }

    const H: &str = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    fn problem(json: &str) -> (String, EntryProblem) {
        match parse_document(json.as_bytes()) {
            Err(StoreError::Entry { user, problem }) => (user, problem),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn duplicate_usernames_refuse_the_document() {
        let json = format!(
            r#"{{"alice":{{"passwordHash":"{H}","status":"DISABLED"}},"bob":{{"passwordHash":"{H}"}},
                "alice":{{"passwordHash":"{H}"}}}}"#
        );
        let (user, p) = problem(&json);
        assert_eq!((user.as_str(), &p), ("alice", &EntryProblem::DuplicateUser));
        let err = parse_document(json.as_bytes()).expect_err("dup");
        assert!(err.to_string().contains("more than once"), "{err}");
        assert!(!err.to_string().contains(H));
    }

    #[test]
    fn duplicate_fields_refuse_the_document_whichever_copy_is_invalid() {
        for json in [
            format!(r#"{{"al":{{"status":"DISABLED","passwordHash":"{H}","status":"ACTIVE"}}}}"#),
            format!(r#"{{"al":{{"passwordHash":"nonsense","passwordHash":"{H}"}}}}"#),
            format!(r#"{{"al":{{"passwordHash":"{H}","roles":[],"roles":["admin"]}}}}"#),
        ] {
            let (user, p) = problem(&json);
            assert_eq!(user, "al");
            assert!(matches!(p, EntryProblem::DuplicateField(_)), "{p:?}");
            let msg = p.to_string();
            assert!(msg.contains("more than once") && !msg.contains(H), "{msg}");
        }
        let (_, p) = problem(&format!(
            r#"{{"al":{{"passwordHash":"{H}","x\u0007":1,"x\u0007":2}}}}"#
        ));
        assert_eq!(p, EntryProblem::DuplicateField("(unknown)"));
        // Escaped spellings of one key are the same key.
        let (user, p) = problem(&format!(
            r#"{{"alice":{{"passwordHash":"{H}"}},"\u0061lice":{{"passwordHash":"{H}"}}}}"#
        ));
        assert_eq!((user.as_str(), p), ("alice", EntryProblem::DuplicateUser));
        let (_, p) = problem(&format!(
            r#"{{"al":{{"passwordHash":"{H}","status":"DISABLED","st\u0061tus":"ACTIVE"}}}}"#
        ));
        assert_eq!(p, EntryProblem::DuplicateField("status"));
    }

    #[test]
    fn a_bom_is_skipped_and_shapes_still_name_the_user() {
        let json = format!("\u{FEFF}{{\"alice\":{{\"passwordHash\":\"{H}\"}}}}");
        let doc = parse_document(json.as_bytes()).expect("BOM accepted");
        assert!(doc.contains_key("alice"));
        let (user, p) = problem(r#"{"eve":[1,{"a":2}]}"#);
        assert_eq!(user, "eve");
        assert!(p.to_string().contains("entry must be an object"), "{p}");
        assert!(matches!(
            parse_document(b"\xEF\xBB\xBF\xEF\xBB\xBF{}"),
            Err(StoreError::Json { .. })
        ));
    }
}
