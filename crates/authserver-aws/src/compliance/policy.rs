//! Resource policies (Lambda function policies, secret policies): which `Allow` statements open
//! a resource to anyone.

use serde_json::Value;

/// Condition keys that tie a statement to specific callers (case-insensitive, as IAM compares
/// condition keys).
const NARROWING: &[&str] = &[
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
];

/// Why an `Allow` statement is too open, if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Open {
    /// Any principal (`"*"` or `{"AWS": "*"}`) without a condition naming the caller.
    Public,
    /// A service principal without `aws:SourceArn` / `aws:SourceAccount`: any account's use
    /// of that service can invoke (the confused-deputy problem).
    AnyAccountOf(String),
}

/// Statements of a policy document (`Statement` may be one object or a list).
pub(crate) fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Every too-open `Allow` statement of `doc`, with its `Sid`.
pub(crate) fn open_statements(doc: &Value) -> Vec<(String, Open)> {
    statements(doc)
        .into_iter()
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
        .filter_map(|s| {
            let sid = s
                .get("Sid")
                .and_then(Value::as_str)
                .unwrap_or("(no Sid)")
                .to_owned();
            if narrowed(s.get("Condition")) {
                return None;
            }
            let principal = s.get("Principal")?;
            if any_principal(principal) {
                return Some((sid, Open::Public));
            }
            let service = principal.get("Service").and_then(|v| match v {
                Value::String(one) => Some(one.clone()),
                Value::Array(list) => list.first().and_then(Value::as_str).map(str::to_owned),
                _ => None,
            })?;
            Some((sid, Open::AnyAccountOf(service)))
        })
        .collect()
}

/// `"*"`, `{"AWS": "*"}` or `{"AWS": [..., "*"]}`.
fn any_principal(principal: &Value) -> bool {
    let star = |v: &Value| match v {
        Value::String(s) => s == "*",
        Value::Array(list) => list.iter().any(|x| x.as_str() == Some("*")),
        _ => false,
    };
    star(principal) || principal.get("AWS").is_some_and(star)
}

/// Whether a condition block names the caller (any operator over a narrowing key).
fn narrowed(condition: Option<&Value>) -> bool {
    let Some(Value::Object(operators)) = condition else {
        return false;
    };
    operators.values().any(|keys| {
        keys.as_object().is_some_and(|keys| {
            keys.keys()
                .any(|k| NARROWING.contains(&k.to_ascii_lowercase().as_str()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn public_and_confused_deputy_statements_are_found() {
        let doc = json!({"Statement": [
            {"Sid": "api", "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
             "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:x"}}},
            {"Sid": "open", "Effect": "Allow", "Principal": "*"},
            {"Sid": "aws-star", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:root", "*"]}},
            {"Sid": "deputy", "Effect": "Allow", "Principal": {"Service": ["events.amazonaws.com"]}},
            {"Sid": "org", "Effect": "Allow", "Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}},
            {"Sid": "deny", "Effect": "Deny", "Principal": "*"},
            {"Sid": "acct", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}}
        ]});
        assert_eq!(
            open_statements(&doc),
            vec![
                ("open".to_owned(), Open::Public),
                ("aws-star".to_owned(), Open::Public),
                (
                    "deputy".to_owned(),
                    Open::AnyAccountOf("events.amazonaws.com".into())
                ),
            ]
        );
        let single = json!({"Statement": {"Effect": "Allow", "Principal": "*"}});
        assert_eq!(
            open_statements(&single),
            vec![("(no Sid)".to_owned(), Open::Public)]
        );
        assert!(statements(&json!({})).is_empty());
    }
}
