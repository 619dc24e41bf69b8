//! Delivery secrets: where a service account's client reads its password (`AWSCURRENT`).
//!
//! Value format: when the secret's current value is a JSON object, the new value is that
//! object with `"username"` and `"password"` set (other fields kept, e.g. a URL); otherwise
//! (plain text, or no value yet) it is the bare password.

use super::{RotationError, Rotator};
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
    if let Some(staged) = sm::get(client, retry, delivery, Some(token), None).await? {
        return Ok(password_of(&staged.text));
    }
    let current = sm::get(client, retry, delivery, None, Some(CURRENT)).await?;
    let password = generate();
    let value = compose(current.as_ref().map(|v| v.text.as_str()), username, &password);
    sm::put(client, retry, delivery, token, &value, &[PENDING]).await?;
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
    let described = sm::describe(client, retry, delivery).await?;
    let stages = sm::stages(&described);
    if !stages.contains_key(token) {
        return Err(RotationError::Invalid(format!(
            "delivery secret {delivery} has no version {token}: createSecret did not stage its \
             password; remove AWSPENDING from the credential secret's pending version and rotate again"
        )));
    }
    if !sm::has(&stages, token, PENDING) && !sm::has(&stages, token, CURRENT) {
        let holder = sm::holder(&stages, PENDING);
        sm::move_label(client, retry, delivery, PENDING, Some(token), holder.as_deref()).await?;
    }
    let staged = sm::get(client, retry, delivery, Some(token), None)
        .await?
        .ok_or_else(|| {
            RotationError::Invalid(format!("delivery secret {delivery} version {token} has no value"))
        })?;
    Ok(password_of(&staged.text))
}

/// Moves `AWSCURRENT` of `delivery` to the token's version and removes `AWSPENDING` from it.
pub(super) async fn promote(rotator: &Rotator, delivery: &str, token: &str) -> Result<(), RotationError> {
    let (client, retry) = (rotator.client(), &rotator.config().retry);
    let stages = sm::stages(&sm::describe(client, retry, delivery).await?);
    if !stages.contains_key(token) {
        return Err(RotationError::Invalid(format!(
            "delivery secret {delivery} has no version {token} to make current"
        )));
    }
    if !sm::has(&stages, token, CURRENT) {
        let from = sm::holder(&stages, CURRENT);
        sm::move_label(client, retry, delivery, CURRENT, Some(token), from.as_deref()).await?;
    }
    if sm::has(&stages, token, PENDING) {
        sm::move_label(client, retry, delivery, PENDING, None, Some(token)).await?;
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
