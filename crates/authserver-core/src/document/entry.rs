//! One user entry, parsed straight from the document's bytes into borrowed fields.
//!
//! Why not `serde_json::Value` per field (as before): a million entries cost ~10 allocations
//! each (every key, every string, the role array) only to be copied again into the snapshot.
//! Here strings borrow the input when they hold no escape, so the common entry costs no
//! allocation but its role list, and the checks are those of the `Value` version, in the same
//! order: a duplicate field first (whichever copy is invalid), then the first unknown or invalid
//! field in document order, then a missing `passwordHash`.

use super::FIELDS;
use crate::oauth::OAuthClient;
use crate::record::{EntryProblem, Status, UserRecord};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One entry's fields, borrowing the document where it can.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The PHC string (or legacy crypt string).
    pub password_hash: Cow<'a, str>,
    /// `ACTIVE` (default) or `DISABLED`.
    pub status: Status,
    /// Roles, in document order.
    pub roles: Vec<Cow<'a, str>>,
    /// When the password last changed.
    pub password_changed_at: Option<OffsetDateTime>,
    /// Service accounts: where their rotated password is delivered.
    pub delivery_secret_id: Option<Cow<'a, str>>,
    /// The OAuth 2.0 client registration, when the entry is a client.
    pub oauth: Option<OAuthClient>,
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("password_hash", &"REDACTED")
            .field("status", &self.status)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl<'a> Entry<'a> {
    /// A borrowed view of a stored record (the Secrets Manager and DynamoDB paths, which hold
    /// records already).
    pub fn of(rec: &'a UserRecord) -> Self {
        Self {
            password_hash: Cow::Borrowed(&rec.password_hash),
            status: rec.status,
            roles: rec.roles.iter().map(|r| Cow::Borrowed(r.as_str())).collect(),
            password_changed_at: rec.password_changed_at,
            delivery_secret_id: rec.delivery_secret_id.as_deref().map(Cow::Borrowed),
            oauth: rec.oauth.clone(),
        }
    }

    /// The owned record (what `users` edits and [`crate::parse_document`] hold).
    pub fn into_record(self) -> UserRecord {
        UserRecord {
            password_hash: self.password_hash.into_owned(),
            status: self.status,
            roles: self.roles.into_iter().map(Cow::into_owned).collect(),
            password_changed_at: self.password_changed_at,
            delivery_secret_id: self.delivery_secret_id.map(Cow::into_owned),
            oauth: self.oauth,
        }
    }
}

/// An entry as parsed: its fields, or what is wrong with them (the username is the caller's).
pub(crate) struct Parsed<'a>(pub(crate) Result<Entry<'a>, EntryProblem>);

/// A JSON string, borrowed when it holds no escape (object keys, usernames).
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, reduced to what a field check needs.
enum Val<'a> {
    Str(Cow<'a, str>),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Other)
    }
}

/// `roles`: an array of strings, or invalid (consumed either way).
struct Roles<'a>(Option<Vec<Cow<'a, str>>>);

impl<'de> Deserialize<'de> for Roles<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Roles<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("roles")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Roles<'de>, A::Error> {
                let mut roles = Some(Vec::new());
                while let Some(v) = seq.next_element::<Val<'de>>()? {
                    match (v, roles.as_mut()) {
                        (Val::Str(s), Some(list)) => list.push(s),
                        _ => roles = None,
                    }
                }
                Ok(Roles(roles))
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_unit<E>(self) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Roles<'de>, E> {
                Ok(Roles(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Roles<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Roles(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Parsed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

fn not_object<'a>() -> Parsed<'a> {
    Parsed(Err(EntryProblem::Shape(
        "entry must be an object with a passwordHash string".into(),
    )))
}

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Parsed<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut entry = Entry {
            password_hash: Cow::Borrowed(""),
            status: Status::Active,
            roles: Vec::new(),
            password_changed_at: None,
            delivery_secret_id: None,
            oauth: None,
        };
        let mut seen = 0u8;
        let mut unknown: Vec<Cow<'de, str>> = Vec::new();
        let mut duplicate: Option<&'static str> = None;
        let mut first: Option<EntryProblem> = None;
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            let Some(i) = FIELDS.iter().position(|f| *f == key) else {
                if unknown.contains(&key) {
                    duplicate.get_or_insert("(unknown)");
                } else {
                    unknown.push(key);
                }
                first.get_or_insert_with(|| {
                    EntryProblem::Shape(format!("unknown field (allowed: {})", FIELDS.join(", ")))
                });
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if seen & (1 << i) != 0 {
                duplicate.get_or_insert(FIELDS[i]);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            seen |= 1 << i;
            if first.is_some() || duplicate.is_some() {
                map.next_value::<IgnoredAny>()?; // the outcome is settled: only duplicates count now
                continue;
            }
            if let Err(problem) = field(&mut map, i, &mut entry)? {
                first = Some(problem);
            }
        }
        Ok(Parsed(match (duplicate, first) {
            (Some(name), _) => Err(EntryProblem::DuplicateField(name)),
            (None, Some(problem)) => Err(problem),
            (None, None) if seen & 1 == 0 => Err(invalid(0)),
            (None, None) => Ok(entry),
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_object())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Parsed<'de>, E> {
        Ok(not_object())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Parsed<'de>, E> {
        Ok(not_object())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Parsed<'de>, E> {
        Ok(not_object())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Parsed<'de>, E> {
        Ok(not_object())
    }
    fn visit_str<E>(self, _: &str) -> Result<Parsed<'de>, E> {
        Ok(not_object())
    }
    fn visit_unit<E>(self) -> Result<Parsed<'de>, E> {
        Ok(not_object())
    }
}

/// Reads `FIELDS[i]`'s value into `entry`, or says which field is invalid. The outer error is
/// the JSON's (it stops the parse); the inner one the field's.
fn field<'de, A: MapAccess<'de>>(
    map: &mut A,
    i: usize,
    entry: &mut Entry<'de>,
) -> Result<Result<(), EntryProblem>, A::Error> {
    let ok = match i {
        0 => match map.next_value::<Val<'de>>()? {
            Val::Str(hash) => {
                entry.password_hash = hash;
                true
            }
            _ => false,
        },
        1 => match map.next_value::<Val<'de>>()? {
            Val::Str(s) if s == "ACTIVE" => {
                entry.status = Status::Active;
                true
            }
            Val::Str(s) if s == "DISABLED" => {
                entry.status = Status::Disabled;
                true
            }
            _ => {
                return Ok(Err(EntryProblem::Shape(
                    "status must be ACTIVE or DISABLED".into(),
                )));
            }
        },
        2 => match map.next_value::<Roles<'de>>()? {
            Roles(Some(roles)) => {
                entry.roles = roles;
                true
            }
            Roles(None) => false,
        },
        3 => match map.next_value::<Val<'de>>()? {
            Val::Null => {
                entry.password_changed_at = None;
                true
            }
            Val::Str(s) => match OffsetDateTime::parse(&s, &Rfc3339) {
                Ok(at) => {
                    entry.password_changed_at = Some(at);
                    true
                }
                Err(_) => false,
            },
            Val::Other => false,
        },
        4 => match map.next_value::<Val<'de>>()? {
            Val::Null => {
                entry.delivery_secret_id = None;
                true
            }
            Val::Str(id) => {
                entry.delivery_secret_id = Some(id);
                true
            }
            Val::Other => false,
        },
        // serde's message could quote a value (a key's modulus is public, but a mistyped
        // secret pasted in is not): the field name is all the error says.
        _ => match map.next_value::<serde_json::Value>()? {
            serde_json::Value::Null => {
                entry.oauth = None;
                true
            }
            client @ serde_json::Value::Object(_) => match serde_json::from_value(client) {
                Ok(client) => {
                    entry.oauth = Some(client);
                    true
                }
                Err(_) => false,
            },
            _ => false,
        },
    };
    Ok(if ok { Ok(()) } else { Err(invalid(i)) })
}

pub(crate) fn invalid(i: usize) -> EntryProblem {
    EntryProblem::Shape(format!("field `{}` missing or invalid", FIELDS[i]))
}

/// Written exactly as the [`UserRecord`] it stands for (same names, order and omissions; a test
/// holds the two together), so an edit can copy entries without building records.
impl serde::Serialize for Entry<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            password_hash: &'a str,
            status: Status,
            roles: &'a [Cow<'a, str>],
            #[serde(
                skip_serializing_if = "Option::is_none",
                with = "time::serde::rfc3339::option"
            )]
            password_changed_at: Option<OffsetDateTime>,
            #[serde(skip_serializing_if = "Option::is_none")]
            delivery_secret_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            oauth: Option<&'a OAuthClient>,
        }
        Out {
            password_hash: &self.password_hash,
            status: self.status,
            roles: &self.roles,
            password_changed_at: self.password_changed_at,
            delivery_secret_id: self.delivery_secret_id.as_deref(),
            oauth: self.oauth.as_ref(),
        }
        .serialize(s)
    }
}
