//! Delivery secrets: where a service account's client reads its password (`AWSCURRENT`).
//!
//! Value format: when the secret's current value is a JSON object, the new value is that
//! object with `"username"` and `"password"` set (other fields kept, e.g. a URL); otherwise
//! (plain text, or no value yet) it is the bare password.

use super::{Context, RotationError, Rotator, on};
use crate::secrets::{CURRENT, PENDING};
use crate::sm;
use authserver_core::Secret;
use zeroize::Zeroizing;

/// The password in a delivery secret's value (see the module docs for the format).
pub(super) fn password_of(text: &str) -> Secret {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Secret::new(
            map.get("password")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => Secret::new(text.to_owned()),
    }
}

/// The new value: `current` (when a JSON object) with the username and password set.
fn compose(current: Option<&str>, username: &str, password: &Secret) -> Zeroizing<String> {
    match current.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Object(mut map))) => {
            map.insert("username".into(), username.into());
            map.insert("password".into(), password.expose().into());
            // serde_json's own copy is not zeroized; it lives only for this call.
            Zeroizing::new(serde_json::Value::Object(map).to_string())
        }
        _ => Zeroizing::new(password.expose().to_owned()),
    }
}

/// Before anything is written: every account's delivery secret exists, is not scheduled for
/// deletion, and is a secret of its own, neither the credential secret nor another account's.
/// Compared by the ARNs Secrets Manager resolves the ids to, so a name and an ARN of one secret
/// are caught too. `accounts` are (username, delivery secret id).
pub(super) async fn resolve(
    rotator: &Rotator,
    ctx: &Context,
    accounts: &[(String, String)],
) -> Result<(), RotationError> {
    let pairs = accounts.iter().map(|(user, id)| (user.as_str(), id.as_str()));
    crate::service_accounts::check(&ctx.ids(), pairs, |u| {
        format!("user_hash {}", rotator.user_hash(u))
    })
    .map_err(RotationError::Invalid)?;
    let mut arns: Vec<(String, &str)> = Vec::with_capacity(accounts.len());
    for (user, id) in accounts {
        let arn = describable(rotator, id, user).await?;
        let of = || format!("user_hash {}", rotator.user_hash(user));
        if arn == ctx.arn {
            return Err(RotationError::Invalid(format!(
                "{}: delivery secret {id} is the credential secret itself; refusing to write a \
                 plaintext password next to the hashes",
                of()
            )));
        }
        if let Some((_, other)) = arns.iter().find(|(a, _)| *a == arn) {
            return Err(RotationError::Invalid(format!(
                "user_hash {} and {}: delivery secrets {other} and {id} are the same secret ({arn}); \
                 each service account needs its own",
                rotator.user_hash(other),
                of()
            )));
        }
        arns.push((arn, user));
    }
    Ok(())
}

/// The delivery secret's ARN, when it exists and is not scheduled for deletion.
async fn describable(rotator: &Rotator, id: &str, user: &str) -> Result<String, RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    let described = match sm::describe(client, retry, id).await {
        Ok(d) => d,
        Err(e) if e.code.as_deref() == Some("ResourceNotFoundException") => {
            return Err(RotationError::Invalid(format!(
                "delivery secret {id} (user_hash {}) does not exist; create it, or remove the \
                 account's deliverySecretId",
                rotator.user_hash(user)
            )));
        }
        Err(e) => return Err(on(id)(e)),
    };
    if described.deleted_date().is_some() {
        return Err(RotationError::Invalid(format!(
            "delivery secret {id} (user_hash {}) is scheduled for deletion; restore it, or remove \
             the account's deliverySecretId",
            rotator.user_hash(user)
        )));
    }
    Ok(described.arn().unwrap_or(id).to_owned())
}

/// The password staged for this rotation in `delivery`: the one a previous attempt staged
/// under the token, or a new one (`generate`) staged now as `AWSPENDING`.
pub(super) async fn stage(
    rotator: &Rotator,
    delivery: &str,
    username: &str,
    token: &str,
    generate: impl FnOnce() -> Secret,
) -> Result<Secret, RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    if let Some(staged) = sm::get(client, retry, delivery, Some(token), None)
        .await
        .map_err(on(delivery))?
    {
        return Ok(password_of(&staged.text));
    }
    let current = sm::get(client, retry, delivery, None, Some(CURRENT))
        .await
        .map_err(on(delivery))?;
    let password = generate();
    let value = compose(current.as_ref().map(|v| v.text.as_str()), username, &password);
    sm::put(client, retry, delivery, token, &value, &[PENDING])
        .await
        .map_err(on(delivery))?;
    Ok(password)
}

/// Makes sure the token's version of `delivery` exists and carries `AWSPENDING` (or is already
/// `AWSCURRENT`); returns its password.
pub(super) async fn ensure_staged(
    rotator: &Rotator,
    delivery: &str,
    token: &str,
) -> Result<Secret, RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    let described = sm::describe(client, retry, delivery)
        .await
        .map_err(on(delivery))?;
    let stages = sm::stages(&described);
    if !stages.contains_key(token) {
        return Err(RotationError::Invalid(format!(
            "delivery secret {delivery} has no version {token}: createSecret did not stage its \
             password; remove AWSPENDING from the credential secret's pending version and rotate again"
        )));
    }
    if !sm::has(&stages, token, PENDING) && !sm::has(&stages, token, CURRENT) {
        let holder = sm::holder(&stages, PENDING);
        sm::move_label(client, retry, delivery, PENDING, Some(token), holder.as_deref())
            .await
            .map_err(on(delivery))?;
    }
    let staged = sm::get(client, retry, delivery, Some(token), None)
        .await
        .map_err(on(delivery))?
        .ok_or_else(|| {
            RotationError::Invalid(format!("delivery secret {delivery} version {token} has no value"))
        })?;
    Ok(password_of(&staged.text))
}

/// Before `finishSecret` moves anything: `delivery` exists, is not scheduled for deletion,
/// and holds the token's version with a value (staged `AWSPENDING`, or already `AWSCURRENT`
/// after an earlier attempt).
pub(super) async fn holds_token(rotator: &Rotator, delivery: &str, token: &str) -> Result<(), RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    let described = sm::describe(client, retry, delivery)
        .await
        .map_err(on(delivery))?;
    let stages = sm::stages(&described);
    let missing = |why: &str| {
        RotationError::Invalid(format!(
            "delivery secret {delivery} {why}: nothing was moved, clients keep their current \
             passwords; see docs/runbooks/secret-rotation-validation.md (a failed finishSecret)"
        ))
    };
    if described.deleted_date().is_some() {
        return Err(missing("is scheduled for deletion"));
    }
    if !sm::has(&stages, token, PENDING) && !sm::has(&stages, token, CURRENT) {
        return Err(missing(&format!("has no version {token} staged AWSPENDING")));
    }
    if sm::get(client, retry, delivery, Some(token), None)
        .await
        .map_err(on(delivery))?
        .is_none()
    {
        return Err(missing(&format!("has no value in version {token}")));
    }
    Ok(())
}

/// Moves `AWSCURRENT` of `delivery` to the token's version. Returns the version it left, for
/// [`demote`]; `None` when the token's version was current already.
pub(super) async fn promote(
    rotator: &Rotator,
    delivery: &str,
    token: &str,
) -> Result<Option<Option<String>>, RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    let stages = sm::stages(
        &sm::describe(client, retry, delivery)
            .await
            .map_err(on(delivery))?,
    );
    if !stages.contains_key(token) {
        return Err(RotationError::Invalid(format!(
            "delivery secret {delivery} has no version {token} to make current"
        )));
    }
    if sm::has(&stages, token, CURRENT) {
        return Ok(None);
    }
    let from = sm::holder(&stages, CURRENT);
    sm::move_label(client, retry, delivery, CURRENT, Some(token), from.as_deref())
        .await
        .map_err(on(delivery))?;
    Ok(Some(from))
}

/// Undoes [`promote`]: `AWSCURRENT` back to `to`, the version it left.
pub(super) async fn demote(
    rotator: &Rotator,
    delivery: &str,
    token: &str,
    to: &str,
) -> Result<(), RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    sm::move_label(client, retry, delivery, CURRENT, Some(to), Some(token))
        .await
        .map_err(on(delivery))
}

/// Removes `AWSPENDING` from the token's version of `delivery`, if it is still there (the end
/// of a rotation).
pub(super) async fn drop_pending(
    rotator: &Rotator,
    delivery: &str,
    token: &str,
) -> Result<(), RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    let stages = sm::stages(
        &sm::describe(client, retry, delivery)
            .await
            .map_err(on(delivery))?,
    );
    if sm::has(&stages, token, PENDING) {
        sm::move_label(client, retry, delivery, PENDING, None, Some(token))
            .await
            .map_err(on(delivery))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_keep_their_fields_and_anything_else_is_the_bare_password() {
        let pw = Secret::from("n3w-Pass");
        let v = compose(Some(r#"{"url":"https://x","password":"old"}"#), "svc", &pw);
        let parsed: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(parsed["url"], "https://x");
        assert_eq!(parsed["username"], "svc");
        assert_eq!(password_of(&v).expose(), "n3w-Pass");
        for current in [None, Some("old-plain"), Some("[1]")] {
            let v = compose(current, "svc", &pw);
            assert_eq!(v.as_str(), "n3w-Pass");
            assert_eq!(password_of(&v).expose(), "n3w-Pass");
        }
        assert_eq!(password_of(r#"{"user":"x"}"#).expose(), "");
    }
}
