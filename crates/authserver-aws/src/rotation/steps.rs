//! The four steps (see the module docs of [`super`] for what each does and why).

use super::document::{generate_password, parse, same_but_rotated, service_accounts};
use super::{Context, RotationError, Rotator, delivery, on};
use crate::secrets::{CURRENT, PENDING};
use crate::sm;
use crate::users::SECRET_STRING_LIMIT;
use authserver_core::{Cost, HashPolicy, Secret, Snapshot, StoreDocument, StoredHash, hash_password};
use time::OffsetDateTime;

pub(super) type Done = (&'static str, Vec<String>);

/// `createSecret`.
pub(super) async fn create(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let (client, cfg) = (r.client(), r.config());
    if let Some(pending) = sm::get(client, &cfg.retry, &ctx.arn, Some(&ctx.token), Some(PENDING))
        .await
        .map_err(on(&ctx.arn))?
    {
        let doc = parse(&pending.text, "the pending version")?;
        return Ok(("already done", hashes(r, &service_accounts(&doc))));
    }
    let mut doc = current(r, ctx).await?;
    let accounts = service_accounts(&doc);
    // Before any write: a delivery secret shared or the credential secret itself would put one
    // account's password in another's hands, or a plaintext password next to the hashes.
    delivery::resolve(r, ctx, &accounts).await?;
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
    if text.len() > SECRET_STRING_LIMIT {
        return Err(RotationError::Invalid(format!(
            "the pending store would be {} bytes, over Secrets Manager's limit of \
             {SECRET_STRING_LIMIT} bytes for a secret value (docs/runbooks/capacity-planning.md)",
            text.len()
        )));
    }
    sm::put(client, &cfg.retry, &ctx.arn, &ctx.token, &text, &[PENDING])
        .await
        .map_err(on(&ctx.arn))?;
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

/// `testSecret`; on a pending version without a value, the configuration probe.
pub(super) async fn test(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let Some(text) = pending_value(r, ctx).await? else {
        return probe(r, ctx).await;
    };
    let current = current(r, ctx).await?;
    let pending = parse(&text, "the pending version")?;
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

/// The rotation schedule's configuration probe. With `RotateImmediatelyOnUpdate: false`,
/// Secrets Manager checks a new schedule by running only `testSecret` on a fresh `AWSPENDING`
/// version that has no value (no `createSecret` before it): what can be checked then is what a
/// rotation will need, as AWS's own rotation templates do. `AWSCURRENT` parses as a store, and
/// every service account's delivery secret exists, can be described and follows the rules of
/// [`crate::service_accounts`]. Nothing is written.
async fn probe(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let doc = current(r, ctx).await?;
    let accounts = service_accounts(&doc);
    delivery::resolve(r, ctx, &accounts).await?;
    tracing::info!(
        secret = ctx.arn,
        token = ctx.token,
        service_accounts = accounts.len(),
        "testSecret on a pending version without a value: configuration probe passed"
    );
    Ok(("configuration checked", hashes(r, &accounts)))
}

pub(super) async fn current(r: &Rotator, ctx: &Context) -> Result<StoreDocument, RotationError> {
    let value = sm::get(r.client(), &r.config().retry, &ctx.arn, None, Some(CURRENT))
        .await
        .map_err(on(&ctx.arn))?
        .ok_or_else(|| RotationError::Invalid(format!("{} has no AWSCURRENT value", ctx.arn)))?;
    parse(&value.text, "AWSCURRENT")
}

async fn pending(r: &Rotator, ctx: &Context) -> Result<StoreDocument, RotationError> {
    parse(&pending_text(r, ctx).await?, "the pending version")
}

/// The pending version's value; `None` before `createSecret` wrote it.
async fn pending_value(
    r: &Rotator,
    ctx: &Context,
) -> Result<Option<zeroize::Zeroizing<String>>, RotationError> {
    let value = sm::get(
        r.client(),
        &r.config().retry,
        &ctx.arn,
        Some(&ctx.token),
        Some(PENDING),
    )
    .await
    .map_err(on(&ctx.arn))?;
    Ok(value.map(|v| v.text))
}

async fn pending_text(r: &Rotator, ctx: &Context) -> Result<zeroize::Zeroizing<String>, RotationError> {
    pending_value(r, ctx).await?.ok_or_else(|| {
        RotationError::Invalid(format!(
            "version {} of {} has no value: createSecret has not run",
            ctx.token, ctx.arn
        ))
    })
}

pub(super) async fn both(
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

pub(super) fn hashes(r: &Rotator, accounts: &[(String, String)]) -> Vec<String> {
    accounts.iter().map(|(name, _)| r.user_hash(name)).collect()
}
