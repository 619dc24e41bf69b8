//! Parsing a store document strictly: duplicate keys refuse it, a UTF-8 BOM is skipped.
//!
//! serde_json's maps keep the last of two equal keys, so `"status": "DISABLED"` written above
//! an existing `"status": "ACTIVE"` (or a second entry for one username) would load silently
//! and could re-enable a user just disabled, or let an invalid first copy skip validation.
//! The document is therefore streamed entry by entry (a visitor over the users map): each
//! entry is read into its ordered key/value list (every pair kept), checked for duplicate
//! fields and turned into a record; duplicate usernames are refused by whoever collects the
//! records ([`parse_document`], the snapshot builder). No copy of the whole document is held.
//!
//! A leading UTF-8 byte order mark (what some Windows editors write) is accepted and skipped:
//! it carries no meaning in JSON and refusing it only produced a baffling "syntax" error.

use crate::record::{EntryProblem, Status, StoreDocument, StoreError, UserRecord};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
                problem: EntryProblem::DuplicateUser,
            });
        }
        doc.insert(user, record);
        Ok(())
    })?;
    Ok(doc)
}

/// Streams a store document: `each` receives every entry, in document order, as soon as it is
/// parsed, so no copy of the whole document (a map, a list of pairs) is ever held. The first
/// error (a JSON error, a shape error, or one `each` returns) stops the parse. Duplicate
/// usernames are `each`'s to refuse (it holds what was seen); duplicate fields are refused here.
///
/// Why: reading a 1 M users file into `serde_json::Value`s before building the snapshot held
/// ~1.4 KB per user at its peak (the JSON is ~200 B per user).
pub fn for_each_entry(
    bytes: &[u8],
    each: impl FnMut(String, UserRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = de
        .deserialize_map(EntriesVisitor {
            each,
            stopped: &mut stopped,
        })
        .and_then(|()| de.end());
    match (stopped, parsed) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(json_error(&e)),
        (None, Ok(())) => Ok(()),
    }
}

/// Visits the top-level object, handing each entry to `each`; an error from it is kept in
/// `stopped` (a serde error could not carry it) and ends the parse.
struct EntriesVisitor<'s, F> {
    each: F,
    stopped: &'s mut Option<StoreError>,
}

impl<'de, F: FnMut(String, UserRecord) -> Result<(), StoreError>> Visitor<'de> for EntriesVisitor<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(user) = map.next_key::<String>()? {
            let outcome = match entry(map.next_value::<RawEntry>()?) {
                Ok(record) => (self.each)(user, record),
                Err(problem) => Err(StoreError::Entry { user, problem }),
            };
            if let Err(e) = outcome {
                *self.stopped = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// One entry's fields into a record: duplicates first (whichever copy is invalid), then each
/// field's type, without going through serde_json's `from_value` (an allocation per field).
fn entry(raw: RawEntry) -> Result<UserRecord, EntryProblem> {
    let RawEntry::Object(fields) = raw else {
        return Err(EntryProblem::Shape(
            "entry must be an object with a passwordHash string".into(),
        ));
    };
    for (i, (name, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(earlier, _)| earlier == name) {
            // Only a known field's name is echoed: an unknown key could be anything.
            let field = FIELDS.iter().find(|f| **f == name).copied();
            return Err(EntryProblem::DuplicateField(field.unwrap_or("(unknown)")));
        }
    }
    let mut record = UserRecord {
        password_hash: String::new(),
        status: Status::Active,
        roles: Vec::new(),
        password_changed_at: None,
        delivery_secret_id: None,
        oauth: None,
    };
    let mut has_hash = false;
    for (name, value) in fields {
        let Some(i) = FIELDS.iter().position(|f| *f == name) else {
            return Err(EntryProblem::Shape(format!(
                "unknown field (allowed: {})",
                FIELDS.join(", ")
            )));
        };
        has_hash |= i == 0;
        set_field(&mut record, i, value)?;
    }
    if !has_hash {
        return Err(invalid(0));
    }
    Ok(record)
}

/// Sets `FIELDS[i]` from `value`, or says which field is invalid.
fn set_field(record: &mut UserRecord, i: usize, value: Value) -> Result<(), EntryProblem> {
    match (i, value) {
        (0, Value::String(hash)) => record.password_hash = hash,
        (1, Value::String(s)) if s == "ACTIVE" => record.status = Status::Active,
        (1, Value::String(s)) if s == "DISABLED" => record.status = Status::Disabled,
        (1, _) => return Err(EntryProblem::Shape("status must be ACTIVE or DISABLED".into())),
        (2, Value::Array(items)) => {
            record.roles = items
                .into_iter()
                .map(|v| match v {
                    Value::String(role) => Ok(role),
                    _ => Err(invalid(2)),
                })
                .collect::<Result<_, _>>()?;
        }
        (3, Value::Null) => record.password_changed_at = None,
        (3, Value::String(s)) => {
            let at = OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| invalid(3))?;
            record.password_changed_at = Some(at);
        }
        (4, Value::Null) => record.delivery_secret_id = None,
        (4, Value::String(id)) => record.delivery_secret_id = Some(id),
        (5, Value::Null) => record.oauth = None,
        // serde's message could quote a value (a key's modulus is public, but a mistyped secret
        // pasted in is not): the field name is all the error says.
        (5, client @ Value::Object(_)) => {
            record.oauth = Some(serde_json::from_value(client).map_err(|_| invalid(5))?);
        }
        (i, _) => return Err(invalid(i)),
    }
    Ok(())
}

fn invalid(i: usize) -> EntryProblem {
    EntryProblem::Shape(format!("field `{}` missing or invalid", FIELDS[i]))
}

fn json_error(e: &serde_json::Error) -> StoreError {
    let category = match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "not an object of user entries",
        serde_json::error::Category::Eof => "unexpected end",
    };
    StoreError::Json {
        category,
        line: e.line(),
        column: e.column(),
    }
}

/// One entry before validation: an object's pairs, or anything else (refused later with the
/// username in the message, which a serde error at this level could not carry).
enum RawEntry {
    Object(Vec<(String, Value)>),
    NotObject,
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RawEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    pairs.push(pair);
                }
                Ok(RawEntry::Object(pairs))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawEntry::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawEntry, E> {
                Ok(RawEntry::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawEntry, E> {
                Ok(RawEntry::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawEntry, E> {
                Ok(RawEntry::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawEntry, E> {
                Ok(RawEntry::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<RawEntry, E> {
                Ok(RawEntry::NotObject)
            }
            fn visit_unit<E>(self) -> Result<RawEntry, E> {
                Ok(RawEntry::NotObject)
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
