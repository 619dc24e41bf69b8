//! The store documents a rotation reads and writes: which accounts rotate, what may differ
//! between `AWSCURRENT` and `AWSPENDING`, and new passwords.

use super::RotationError;
use authserver_core::{Secret, StoreDocument, UserRecord, parse_document};
use rand::Rng;

/// A password of `length` characters drawn uniformly from `alphabet` with the thread's CSPRNG
/// (ChaCha, seeded from the OS).
pub fn generate_password(length: usize, alphabet: &[char]) -> Secret {
    let mut rng = rand::rng();
    let mut password = String::with_capacity(length);
    for _ in 0..length {
        if let Some(c) = alphabet.get(rng.random_range(0..alphabet.len().max(1))) {
            password.push(*c);
        }
    }
    Secret::new(password)
}

/// The accounts a rotation changes: users with a delivery secret, with that secret. DISABLED
/// ones too: disabling a leaked service account, then rotating it, gives it a new password
/// without ever accepting the leaked one again (it stays DISABLED until an operator enables it).
pub(super) fn service_accounts(doc: &StoreDocument) -> Vec<(String, String)> {
    doc.iter()
        .filter_map(|(name, rec)| Some((name.clone(), rec.delivery_secret_id.clone()?)))
        .collect()
}

/// Parses a store document read from a secret version; errors name no user (the caller adds
/// `user_hash`es where useful) and quote nothing.
pub(super) fn parse(text: &str, what: &str) -> Result<StoreDocument, RotationError> {
    parse_document(text.as_bytes()).map_err(|e| {
        RotationError::Invalid(format!(
            "{what} is not a valid store document: {}",
            e.log_safe(|_| "(a user)".into())
        ))
    })
}

/// Checks that `pending` is `current` with only the rotated accounts' `passwordHash` and
/// `passwordChangedAt` changed: anything else means `AWSCURRENT` moved during the rotation
/// (say, an operator pushed users), and finishing would undo that change.
pub(super) fn same_but_rotated(
    current: &StoreDocument,
    pending: &StoreDocument,
    user_hash: impl Fn(&str) -> String,
) -> Result<(), RotationError> {
    let stale = |why: String| {
        RotationError::Invalid(format!(
            "the pending version no longer matches AWSCURRENT ({why}): AWSCURRENT changed during \
             the rotation; remove AWSPENDING from the pending version and rotate again"
        ))
    };
    if current.len() != pending.len() || current.keys().any(|k| !pending.contains_key(k)) {
        return Err(stale("different users".into()));
    }
    for (name, now) in current {
        let Some(new) = pending.get(name) else {
            return Err(stale("different users".into()));
        };
        let rotated = now.delivery_secret_id.is_some();
        let comparable = |r: &UserRecord| UserRecord {
            password_hash: if rotated {
                String::new()
            } else {
                r.password_hash.clone()
            },
            password_changed_at: if rotated { None } else { r.password_changed_at },
            ..r.clone()
        };
        if comparable(now) != comparable(new) {
            return Err(stale(format!("user_hash {} differs", user_hash(name))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_core::Status;

    fn rec(hash: &str, delivery: Option<&str>, status: Status) -> UserRecord {
        UserRecord {
            password_hash: hash.into(),
            status,
            roles: vec!["r".into()],
            password_changed_at: None,
            delivery_secret_id: delivery.map(Into::into),
            oauth: None,
        }
    }

    #[test]
    fn passwords_use_the_whole_alphabet_and_nothing_else() {
        let alphabet: Vec<char> = "ab".chars().collect();
        let pw = generate_password(200, &alphabet);
        assert_eq!(pw.expose().len(), 200);
        assert!(pw.expose().contains('a') && pw.expose().contains('b'));
        assert!(pw.expose().chars().all(|c| alphabet.contains(&c)));
        assert_ne!(
            generate_password(32, &alphabet).expose(),
            generate_password(32, &alphabet).expose()
        );
    }

    #[test]
    fn only_rotated_fields_of_service_accounts_may_differ() {
        let mut current = StoreDocument::new();
        current.insert("svc".into(), rec("h1", Some("d"), Status::Active));
        current.insert("off".into(), rec("h2", Some("d2"), Status::Disabled));
        current.insert("human".into(), rec("h3", None, Status::Active));
        assert_eq!(
            service_accounts(&current),
            vec![
                ("off".to_owned(), "d2".to_owned()),
                ("svc".to_owned(), "d".to_owned())
            ],
            "disabled service accounts rotate too"
        );
        let mut pending = current.clone();
        pending.get_mut("svc").unwrap().password_hash = "new".into();
        pending.get_mut("off").unwrap().password_hash = "new2".into();
        assert!(same_but_rotated(&current, &pending, |u| u.into()).is_ok());
        let mut bad = pending.clone();
        bad.get_mut("human").unwrap().password_hash = "x".into();
        let err = same_but_rotated(&current, &bad, |u| format!("H({u})")).unwrap_err();
        assert!(err.to_string().contains("H(human)"), "{err}");
        let mut bad = pending.clone();
        bad.get_mut("svc").unwrap().roles.push("admin".into());
        assert!(same_but_rotated(&current, &bad, |u| u.into()).is_err());
        let mut bad = pending.clone();
        bad.get_mut("off").unwrap().status = Status::Active;
        assert!(
            same_but_rotated(&current, &bad, |u| u.into()).is_err(),
            "a rotation never enables an account"
        );
        let mut bad = pending;
        bad.insert("extra".into(), rec("h", None, Status::Active));
        assert!(same_but_rotated(&current, &bad, |u| u.into()).is_err());
        assert!(
            parse("{", "x")
                .unwrap_err()
                .to_string()
                .contains("x is not a valid store document")
        );
    }
}
