//! Property tests: the header parser and the store loader never panic on any input, and both
//! round-trip what they accept.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::credentials::{MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES};
use authserver_core::{Credentials, HashPolicy, ParseError, Snapshot, StoreDocument, parse_document};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Credentials::parse(&bytes);
    }

    #[test]
    fn parser_never_panics_on_basic_prefix(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut h = b"Basic ".to_vec();
        h.extend_from_slice(&tail);
        prop_assert!(!matches!(Credentials::parse(&h), Err(ParseError::NotBasic)));
    }

    #[test]
    fn valid_credentials_round_trip(
        user in "[^:\\p{Cc}]{1,40}",
        pass in "[^\\p{Cc}]{0,80}",
    ) {
        prop_assume!(user.len() <= MAX_USERNAME_BYTES && pass.len() <= MAX_PASSWORD_BYTES);
        let c = Credentials::new(&user, &pass).unwrap();
        let parsed = Credentials::parse(c.to_header_value().expose().as_bytes()).unwrap();
        prop_assert_eq!(parsed.username(), user.as_str());
        prop_assert_eq!(parsed.password().expose(), pass.as_str());
    }

    #[test]
    fn store_loader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_document(&bytes);
    }

    #[test]
    fn store_loader_never_panics_on_json_shapes(json in json_value()) {
        let text = json.to_string();
        if let Err(e) = Snapshot::from_json(text.as_bytes(), &HashPolicy::default(), "p") {
            // An error never quotes a value from the input beyond the username.
            prop_assert!(!e.to_string().contains("argon2"));
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("ACTIVE".to_owned()),
            Just("DISABLED".to_owned()),
            Just("$argon2id$v=19$m=1,t=1,p=1$xx$yy".to_owned()),
            "[a-z]{0,8}"
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("passwordHash".to_owned()),
                    Just("status".to_owned()),
                    Just("roles".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn store_document_round_trips_through_json() {
    let json = r#"{"a":{"passwordHash":"x","status":"DISABLED","roles":["r"],"passwordChangedAt":"2026-01-02T03:04:05Z","deliverySecretId":"s"},"b":{"passwordHash":"y"}}"#;
    let doc: StoreDocument = parse_document(json.as_bytes()).unwrap();
    let again = parse_document(serde_json::to_string(&doc).unwrap().as_bytes()).unwrap();
    assert_eq!(doc, again);
}
