//! Parsing a store document strictly: duplicate keys refuse it, a UTF-8 BOM is skipped.
//!
//! serde_json's maps keep the last of two equal keys, so `"status": "DISABLED"` written above
//! an existing `"status": "ACTIVE"` (or a second entry for one username) would load silently
//! and could re-enable a user just disabled, or let an invalid first copy skip validation.
//! The document is therefore read into ordered key/value lists first (a visitor that keeps
//! every pair), checked for duplicates at both levels, and only then turned into records.
//!
//! A leading UTF-8 byte order mark (what some Windows editors write) is accepted and skipped:
//! it carries no meaning in JSON and refusing it only produced a baffling "syntax" error.

use crate::record::{EntryProblem, StoreDocument, StoreError, UserRecord};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

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
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let Pairs(entries): Pairs<RawEntry> = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    let mut seen = HashSet::with_capacity(entries.len());
    let mut doc = StoreDocument::new();
    for (user, raw) in entries {
        if !seen.insert(user.clone()) {
            return Err(StoreError::Entry {
                user,
                problem: EntryProblem::DuplicateUser,
            });
        }
        match entry(raw) {
            Ok(record) => {
                doc.insert(user, record);
            }
            Err(problem) => return Err(StoreError::Entry { user, problem }),
        }
    }
    Ok(doc)
}

fn entry(raw: RawEntry) -> Result<UserRecord, EntryProblem> {
    let RawEntry::Object(fields) = raw else {
        return Err(EntryProblem::Shape(
            "entry must be an object with a passwordHash string".into(),
        ));
    };
    let mut map = serde_json::Map::with_capacity(fields.len());
    for (name, value) in fields {
        if map.contains_key(&name) {
            // Only a known field's name is echoed: an unknown key could be anything.
            let field = FIELDS.iter().find(|f| **f == name).copied();
            return Err(EntryProblem::DuplicateField(field.unwrap_or("(unknown)")));
        }
        map.insert(name, value);
    }
    serde_json::from_value::<UserRecord>(Value::Object(map)).map_err(|e| EntryProblem::Shape(shape_hint(&e)))
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

/// The part of a serde message that names a field or expected values, never an input value.
fn shape_hint(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.starts_with("unknown variant") {
        return "status must be ACTIVE or DISABLED".into();
    }
    if msg.starts_with("unknown field") {
        return format!("unknown field (allowed: {})", FIELDS.join(", "));
    }
    for known in FIELDS {
        if msg.contains(&format!("`{known}`")) {
            return format!("field `{known}` missing or invalid");
        }
    }
    "entry must be an object with a passwordHash string".into()
}

/// A JSON object as the list of its pairs, duplicates kept.
struct Pairs<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
                while let Some(pair) = map.next_entry::<String, V>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(PairsVisitor(std::marker::PhantomData))
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
