//! One user as one DynamoDB item, in the users file's entry format: the partition key
//! `username` and one attribute per entry field, named as in the file (`passwordHash`,
//! `status`, `roles`, `passwordChangedAt`, `deliverySecretId`, `oauth`). Strings are `S`, roles
//! an `L` of `S` (a list, so an empty role list survives: a string set cannot be empty), the
//! `oauth` object (issue 14) an `M` holding the file's JSON as it is (`L` for arrays, `M` for
//! objects, `N` for numbers, `BOOL`, `NULL`): its JWK set too, so a console reader sees the same
//! fields as in the file. Reading goes through the same `UserRecord` deserializer as the file,
//! so an unknown attribute (a typo such as `satus`) or a value of the wrong type refuses the
//! entry instead of leaving the user ACTIVE, and an `oauth` object is checked as the file's is.

use authserver_core::UserRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// An item as the SDK carries it.
pub type Item = HashMap<String, AttributeValue>;

/// The partition key attribute (string): the username.
pub const KEY: &str = "username";

/// The key of the version item every CLI write bumps. It can never be a username: usernames
/// cannot contain `:` (Basic auth splits at the first colon), so no user shadows it.
pub const VERSION_KEY: &str = ":version";

/// The version item's counter attribute (number).
pub const VERSION_ATTR: &str = "version";

/// Why an item is not a user entry. Names no value (a hash must never reach a message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// An attribute is not a string / list of strings, or the fields do not make an entry.
    #[error("the item's attributes do not make a users-file entry ({0})")]
    Shape(&'static str),
}

/// The entry stored in `item` (the key attribute is skipped).
pub fn record_of(item: &Item) -> Result<UserRecord, ItemError> {
    let mut fields = serde_json::Map::with_capacity(item.len());
    for (name, value) in item.iter().filter(|(name, _)| name.as_str() != KEY) {
        fields.insert(name.clone(), json_of(value)?);
    }
    // serde's message may quote a value (an unknown status, a malformed date): not passed on.
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|_| ItemError::Shape("unknown attribute, missing passwordHash or a malformed value"))
}

fn json_of(value: &AttributeValue) -> Result<serde_json::Value, ItemError> {
    use serde_json::Value;
    Ok(match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(
            n.parse::<serde_json::Number>()
                .map_err(|_| ItemError::Shape("a number attribute is not a JSON number"))?,
        ),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(list) => Value::Array(list.iter().map(json_of).collect::<Result<_, _>>()?),
        AttributeValue::M(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), json_of(v)?)))
                .collect::<Result<_, ItemError>>()?,
        ),
        _ => {
            return Err(ItemError::Shape(
                "an attribute is a set or binary, which no entry field is",
            ));
        }
    })
}

/// The item storing `record` for `username`.
pub fn item_of(username: &str, record: &UserRecord) -> Item {
    let mut item = Item::with_capacity(6);
    item.insert(KEY.to_owned(), AttributeValue::S(username.to_owned()));
    // A UserRecord always serializes to an object (strings, string lists, the oauth object).
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(record) {
        for (name, value) in fields {
            if let Some(value) = attribute_of(value) {
                item.insert(name, value);
            }
        }
    }
    item
}

fn attribute_of(value: serde_json::Value) -> Option<AttributeValue> {
    use serde_json::Value;
    Some(match value {
        Value::String(s) => AttributeValue::S(s),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Null => AttributeValue::Null(true),
        Value::Array(list) => AttributeValue::L(list.into_iter().filter_map(attribute_of).collect()),
        Value::Object(map) => AttributeValue::M(
            map.into_iter()
                .filter_map(|(k, v)| Some((k, attribute_of(v)?)))
                .collect(),
        ),
    })
}

/// The `oauth` attribute storing `client` (`None`: the client object serializes to no map).
pub fn oauth_attribute(client: &authserver_core::oauth::OAuthClient) -> Option<AttributeValue> {
    serde_json::to_value(client).ok().and_then(attribute_of)
}

/// The username of `item`, unless it is the version item or has no string key.
pub fn username_of(item: &Item) -> Option<&str> {
    item.get(KEY)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .filter(|name| *name != VERSION_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_core::Status;

    fn record() -> UserRecord {
        serde_json::from_str(
            r#"{"passwordHash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                "status":"DISABLED","roles":[],"passwordChangedAt":"2026-01-02T03:04:05Z"}"#,
        )
        .expect("record")
    }

    #[test]
    fn round_trips_the_file_entry_format_with_an_empty_role_list() {
        let item = item_of("alice", &record());
        assert_eq!(item.get("roles"), Some(&AttributeValue::L(vec![])));
        assert_eq!(item.get("status"), Some(&AttributeValue::S("DISABLED".into())));
        assert_eq!(username_of(&item), Some("alice"));
        let back = record_of(&item).expect("entry");
        assert_eq!(back, record());
        assert_eq!(back.status, Status::Disabled);
    }

    #[test]
    fn a_typo_or_a_wrong_type_refuses_the_entry_without_quoting_it() {
        let mut typo = item_of("alice", &record());
        typo.insert("satus".into(), AttributeValue::S("ACTIVE".into()));
        let mut number = item_of("alice", &record());
        number.insert("status".into(), AttributeValue::N("1".into()));
        let mut lowercase = item_of("alice", &record());
        lowercase.insert("status".into(), AttributeValue::S("active".into()));
        for item in [typo, number, lowercase] {
            let err = record_of(&item).expect_err("refused").to_string();
            assert!(!err.contains("argon2id") && !err.contains("active"), "{err}");
        }
    }

    #[test]
    fn an_oauth_client_round_trips_as_a_map_with_its_jwks() {
        let mut with_client = record();
        with_client.oauth = Some(
            serde_json::from_value(serde_json::json!({
                "scopes": ["read", "write"], "audiences": ["https://api.example.test"],
                "defaultScopes": ["read"], "tokenEndpointAuthMethod": "private_key_jwt",
                "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
                    "x": "UyH_9bPqz0xBXLEAkaDWt64YNDZ6e7oMAlKC0FmPbRE",
                    "y": "lMp2Gdp1Om8nVdH0UM2gBlkPFiBG2gcQeAdPQPph-Uo"}]}
            }))
            .expect("client"),
        );
        let item = item_of("svc", &with_client);
        let Some(AttributeValue::M(oauth)) = item.get("oauth") else {
            panic!("oauth is a map: {:?}", item.get("oauth"));
        };
        assert!(matches!(oauth.get("scopes"), Some(AttributeValue::L(_))));
        assert!(matches!(oauth.get("jwks"), Some(AttributeValue::M(_))));
        assert_eq!(record_of(&item).expect("entry"), with_client);
        let mut typo = item.clone();
        if let Some(AttributeValue::M(o)) = typo.get_mut("oauth") {
            o.insert("scope".into(), AttributeValue::S("admin".into()));
        }
        assert!(
            record_of(&typo).is_err(),
            "an unknown oauth field refuses the entry"
        );
    }

    #[test]
    fn the_version_item_is_no_user() {
        let item = Item::from([(KEY.to_owned(), AttributeValue::S(VERSION_KEY.into()))]);
        assert_eq!(username_of(&item), None);
        assert!(authserver_core::names::check_names(VERSION_KEY, &[]).is_err());
    }
}
