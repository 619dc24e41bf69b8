//! The four steps (see the module docs of [`super`] for what each does and why).

use super::document::{generate_password, parse, same_but_rotated, service_accounts};
use super::{Context, RotationError, Rotator, delivery};
use crate::secrets::{CURRENT, PENDING};
use crate::sm;
use authserver_core::{Cost, HashPolicy, Secret, Snapshot, StoreDocument, StoredHash, hash_password};
use time::OffsetDateTime;

type Done = (&'static str, Vec<String>);

/// `createSecret`.
pub(super) async fn create(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let (client, cfg) = (r.client(), r.config());
    if let Some(pending) = sm::get(client, &cfg.retry, &ctx.arn, Some(&ctx.token), Some(PENDING)).await? {
        let doc = parse(&pending.text, "the pending version")?;
        return Ok(("already done", hashes(r, &service_accounts(&doc))));
    }
    let mut doc = current(r, ctx).await?;
    let accounts = service_accounts(&doc);
    if accounts.is_empty() {
        tracing::warn!(
            secret = ctx.arn,
            "no service account (deliverySecretId) to rotate"
        );
    }
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    for (name, delivery_id) in &accounts {
        let (length, alphabet) = (cfg.password_length, &cfg.alphabet);
        let password = delivery::stage(r, delivery_id, name, &ctx.token, || {
            generate_password(length, alphabet)
        })
        .await?;
        let Some(record) = doc.get_mut(name) else {
            continue; // listed from this very document
        };
        let cost = cost_of(&record.password_hash, &cfg.policy);
        record.password_hash = hash(password, cost).await?;
        record.password_changed_at = Some(now);
    }
    let text = zeroize::Zeroizing::new(
        serde_json::to_string(&doc)
            .map_err(|e| RotationError::Invalid(format!("cannot serialise the store: {e}")))?,
    );
    meets_policy(&text, &cfg.policy, r)?;
    sm::put(client, &cfg.retry, &ctx.arn, &ctx.token, &text, &[PENDING]).await?;
    Ok(("done", hashes(r, &accounts)))
}

/// `setSecret`.
pub(super) async fn set(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let pending = pending(r, ctx).await?;
    let accounts = service_accounts(&pending);
    for (_, delivery_id) in &accounts {
        delivery::ensure_staged(r, delivery_id, &ctx.token).await?;
    }
    Ok(("done", hashes(r, &accounts)))
}

/// `testSecret`.
pub(super) async fn test(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let (current, pending, text) = both(r, ctx).await?;
    same_but_rotated(&current, &pending, |u| r.user_hash(u))?;
    meets_policy(&text, &r.config().policy, r)?;
    let accounts = service_accounts(&pending);
    for (name, delivery_id) in &accounts {
        let password = delivery::ensure_staged(r, delivery_id, &ctx.token).await?;
        let phc = pending
            .get(name)
            .map(|rec| rec.password_hash.clone())
            .unwrap_or_default();
        if !verify(password, phc, r.config().policy.clone()).await? {
            return Err(RotationError::Invalid(format!(
                "the password staged in {delivery_id} does not verify against the pending hash of user_hash {}",
                r.user_hash(name)
            )));
        }
    }
    Ok(("done", hashes(r, &accounts)))
}

/// `finishSecret`: delivery secrets first, so that at every moment a client's password is one
/// the servers accept (pending while `AWSPENDING` exists, previous during the grace period).
pub(super) async fn finish(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let (current, pending, _) = both(r, ctx).await?;
    same_but_rotated(&current, &pending, |u| r.user_hash(u))?;
    let accounts = service_accounts(&pending);
    let settle = r.config().settle;
    if !settle.is_zero() {
        // Secrets Manager runs the four steps back to back: without this wait a client reading
        // its delivery secret right after this step could present the new password to a server
        // that has not yet seen AWSPENDING, and fail until its next version check.
        tracing::info!(
            settle_seconds = settle.as_secs(),
            "waiting for every server's version check to load the pending version"
        );
        tokio::time::sleep(settle).await;
    }
    for (_, delivery_id) in &accounts {
        delivery::promote(r, delivery_id, &ctx.token).await?;
    }
    let (client, retry) = (r.client(), &r.config().retry);
    let from = sm::holder(&ctx.stages, CURRENT);
    sm::move_label(
        client,
        retry,
        &ctx.arn,
        CURRENT,
        Some(&ctx.token),
        from.as_deref(),
    )
    .await?;
    drop_pending_label(r, ctx).await?;
    Ok(("done", hashes(r, &accounts)))
}

/// Removes `AWSPENDING` from the token's version (after `finishSecret`), if it is still there.
pub(super) async fn drop_pending_label(r: &Rotator, ctx: &Context) -> Result<(), RotationError> {
    let (client, retry) = (r.client(), &r.config().retry);
    let stages = sm::stages(&sm::describe(client, retry, &ctx.arn).await?);
    if sm::has(&stages, &ctx.token, PENDING) {
        sm::move_label(client, retry, &ctx.arn, PENDING, None, Some(&ctx.token)).await?;
    }
    Ok(())
}

async fn current(r: &Rotator, ctx: &Context) -> Result<StoreDocument, RotationError> {
    let value = sm::get(r.client(), &r.config().retry, &ctx.arn, None, Some(CURRENT))
        .await?
        .ok_or_else(|| RotationError::Invalid(format!("{} has no AWSCURRENT value", ctx.arn)))?;
    parse(&value.text, "AWSCURRENT")
}

async fn pending(r: &Rotator, ctx: &Context) -> Result<StoreDocument, RotationError> {
    parse(&pending_text(r, ctx).await?, "the pending version")
}

async fn pending_text(r: &Rotator, ctx: &Context) -> Result<zeroize::Zeroizing<String>, RotationError> {
    sm::get(
        r.client(),
        &r.config().retry,
        &ctx.arn,
        Some(&ctx.token),
        Some(PENDING),
    )
    .await?
    .map(|v| v.text)
    .ok_or_else(|| {
        RotationError::Invalid(format!(
            "version {} of {} has no value: createSecret has not run",
            ctx.token, ctx.arn
        ))
    })
}

async fn both(
    r: &Rotator,
    ctx: &Context,
) -> Result<(StoreDocument, StoreDocument, zeroize::Zeroizing<String>), RotationError> {
    let current = current(r, ctx).await?;
    let text = pending_text(r, ctx).await?;
    let pending = parse(&text, "the pending version")?;
    Ok((current, pending, text))
}

/// The whole pending store must load on the servers once it is current.
fn meets_policy(text: &str, policy: &HashPolicy, r: &Rotator) -> Result<(), RotationError> {
    Snapshot::from_json(text.as_bytes(), policy, "pending")
        .map(|_| ())
        .map_err(|e| {
            RotationError::Invalid(format!(
                "the pending store fails the policy: {}",
                e.log_safe(|u| r.user_hash(u))
            ))
        })
}

/// New hashes keep the account's current cost (so that a denial costs the same with either
/// hash, see `VerifyTask::run`), unless that cost is outside the policy.
fn cost_of(phc: &str, policy: &HashPolicy) -> Cost {
    StoredHash::parse(phc, policy).map_or(Cost::DEFAULT, |h| h.cost())
}

async fn hash(password: Secret, cost: Cost) -> Result<String, RotationError> {
    tokio::task::spawn_blocking(move || hash_password(&password, cost))
        .await
        .map_err(|_| RotationError::Invalid("hashing did not complete".into()))?
        .map_err(|e| RotationError::Invalid(e.to_string()))
}

async fn verify(password: Secret, phc: String, policy: HashPolicy) -> Result<bool, RotationError> {
    tokio::task::spawn_blocking(move || StoredHash::parse(&phc, &policy).is_ok_and(|h| h.verify(&password)))
        .await
        .map_err(|_| RotationError::Invalid("verification did not complete".into()))
}

fn hashes(r: &Rotator, accounts: &[(String, String)]) -> Vec<String> {
    accounts.iter().map(|(name, _)| r.user_hash(name)).collect()
}
