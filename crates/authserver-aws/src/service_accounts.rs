//! The rules a store document's service accounts (users with a `deliverySecretId`) must meet,
//! checked wherever a document enters Secrets Manager or service: `users push`, every load by
//! the store, and the rotation's `createSecret` (which also resolves each delivery secret to
//! its ARN, see `rotation::delivery::resolve`).
//!
//! - **Each account has a delivery secret of its own.** Two accounts sharing one would get the
//!   same password at the next rotation: a client of one could log in as the other (a read-only
//!   client as an admin account, say).
//! - **No delivery secret is the credential secret itself.** A rotation would write a plaintext
//!   password next to the hashes.
//!
//! Secret identities are compared as Secrets Manager resolves them: a name, a partial ARN
//! (`...:secret:NAME`) and a full ARN (`...:secret:NAME-AbCdEf`, the six random characters
//! Secrets Manager appends) of one secret are the same secret. Like Secrets Manager itself, this
//! takes an ARN whose name ends in a hyphen and six letters or digits for a full ARN.

/// What identifies a secret: its name, and the region and account when the id is an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity<'a> {
    name: &'a str,
    place: Option<(&'a str, &'a str)>,
}

fn identity(id: &str) -> Identity<'_> {
    let parts: Vec<&str> = id.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "secretsmanager", region, account, "secret", rest] => Identity {
            name: without_suffix(rest),
            place: Some((region, account)),
        },
        _ => Identity {
            name: id,
            place: None,
        },
    }
}

/// `NAME-AbCdEf` → `NAME` (the suffix of a full ARN).
fn without_suffix(rest: &str) -> &str {
    match rest.rsplit_once('-') {
        Some((name, suffix))
            if !name.is_empty() && suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            name
        }
        _ => rest,
    }
}

/// Whether two ids (names or ARNs) name the same secret. Two ARNs must also agree on region
/// and account; a name matches an ARN of that name anywhere.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (identity(a), identity(b));
    a.name == b.name
        && match (a.place, b.place) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// Checks `accounts` (username, `deliverySecretId`) against the rules above, with
/// `credential` the ids the credential secret is known by (its configured id, ARN, name).
/// Errors name users through `name` (a `user_hash` where logs must not carry usernames) and
/// secrets by id; never a value.
pub fn check<'a>(
    credential: &[&str],
    accounts: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: impl Fn(&str) -> String,
) -> Result<(), String> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (user, delivery) in accounts {
        if delivery.trim().is_empty() {
            return Err(format!(
                "{}: deliverySecretId is empty (give the service account its own delivery secret, \
                 or remove the field)",
                name(user)
            ));
        }
        if credential
            .iter()
            .any(|c| !c.is_empty() && same_secret(c, delivery))
        {
            return Err(format!(
                "{}: deliverySecretId {delivery} is the credential secret itself; a rotation would \
                 write a plaintext password next to the hashes (give the account a delivery secret \
                 of its own)",
                name(user)
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, d)| same_secret(d, delivery)) {
            return Err(format!(
                "{} and {} share the delivery secret {delivery}; a rotation would give both the \
                 same password, so a client of one could log in as the other (give each service \
                 account its own delivery secret)",
                name(other),
                name(user)
            ));
        }
        seen.push((user, delivery));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/prod/credentials-AbC123";

    #[test]
    fn names_partial_and_full_arns_of_one_secret_are_the_same() {
        assert!(same_secret(ARN, "app/prod/credentials"));
        assert!(same_secret(
            ARN,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/prod/credentials"
        ));
        assert!(!same_secret(
            ARN,
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/prod/credentials"
        ));
        assert!(!same_secret("app/prod/credentials", "app/prod/credentials2"));
        assert!(!same_secret("svc-a", "svc-b"));
        assert_eq!(identity("a-b-c").name, "a-b-c", "plain names keep their hyphens");
    }

    #[test]
    fn shared_empty_and_self_delivery_secrets_are_refused() {
        let cred = [ARN];
        let named = |u: &str| format!("user {u:?}");
        assert!(check(&cred, [("a", "d/a"), ("b", "d/b")], named).is_ok());
        let err = check(&cred, [("a", "d/x"), ("b", "d/y"), ("c", "d/x")], named).unwrap_err();
        assert!(
            err.contains(r#"user "a" and user "c" share the delivery secret d/x"#),
            "{err}"
        );
        let err = check(&cred, [("a", "app/prod/credentials")], named).unwrap_err();
        assert!(err.contains("is the credential secret itself"), "{err}");
        let err = check(&["app/prod/credentials"], [("a", ARN)], named).unwrap_err();
        assert!(err.contains("is the credential secret itself"), "{err}");
        assert!(
            check(&cred, [("a", " ")], named)
                .unwrap_err()
                .contains("is empty")
        );
        let arn_b = "arn:aws:secretsmanager:us-east-1:123456789012:secret:d/b-XyZ789";
        assert!(check(&cred, [("a", "d/b"), ("b", arn_b)], named).is_err());
    }
}
