//! `finishSecret`: the only step clients notice, so the one that must never leave them with a
//! password the servers refuse.
//!
//! Order, and why:
//! 1. The pending store still matches `AWSCURRENT`, and every delivery secret holds the token's
//!    version (exists, not scheduled for deletion, has the value): checked before the wait to
//!    fail fast, and again after it.
//! 2. The settle wait (servers load `AWSPENDING` and accept the new passwords).
//! 3. Nothing moved during the wait: the token's version is still `AWSPENDING` (a forced
//!    `users push` removes it, abandoning the rotation) and `AWSCURRENT` is still on the
//!    version it was on (a push or a hand-made change moves it). Then step 1's delivery check.
//! 4. `AWSCURRENT` to the token's version on each delivery secret, then on the credential
//!    secret. If any of these moves fails, the delivery secrets already moved are moved back,
//!    so clients read passwords the servers accept (`AWSCURRENT`'s) again; unless the credential
//!    secret's move did take effect and only its answer was lost (checked): then the rotation
//!    is complete.
//! 5. `AWSPENDING` removed from the token's version, everywhere.
//!
//! A failure in 1-3 moves nothing. A failure in 4 moves back what it moved; when that too
//! fails, the error names the delivery secrets left holding the new passwords (which the
//! servers accept only while `AWSPENDING` stays on the credential secret's token version). The
//! runbook (docs/runbooks/secret-rotation-validation.md) has the recovery for each case.

use super::document::{same_but_rotated, service_accounts};
use super::steps::{Done, both, hashes};
use super::{Context, RotationError, Rotator, delivery, on};
use crate::secrets::{CURRENT, PENDING};
use crate::sm;

/// `finishSecret`.
pub(super) async fn finish(r: &Rotator, ctx: &Context) -> Result<Done, RotationError> {
    let (current, pending, _) = both(r, ctx).await?;
    same_but_rotated(&current, &pending, |u| r.user_hash(u))?;
    let accounts = service_accounts(&pending);
    let from = sm::holder(&ctx.stages, CURRENT);
    for (_, delivery_id) in &accounts {
        delivery::holds_token(r, delivery_id, &ctx.token).await?;
    }
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
        unchanged(r, ctx, from.as_deref()).await?;
        for (_, delivery_id) in &accounts {
            delivery::holds_token(r, delivery_id, &ctx.token).await?;
        }
    }
    let mut moved: Vec<(&str, Option<String>)> = Vec::new();
    for (_, delivery_id) in &accounts {
        match delivery::promote(r, delivery_id, &ctx.token).await {
            Ok(Some(left)) => moved.push((delivery_id, left)),
            Ok(None) => {}
            Err(e) => return Err(undo(r, ctx, &moved, e).await),
        }
    }
    let (client, retry) = (r.client(), &r.config().retry);
    if let Err(e) = sm::move_label(
        client,
        retry,
        &ctx.arn,
        CURRENT,
        Some(&ctx.token),
        from.as_deref(),
    )
    .await
    {
        // An answer lost after the move was made looks like a failure (and a retry then fails:
        // AWSCURRENT is no longer on `from`). Undoing then would hand clients old passwords
        // the servers accept only for the grace period: look first.
        if !now_current(r, ctx).await {
            return Err(undo(r, ctx, &moved, on(&ctx.arn)(e)).await);
        }
        tracing::warn!(secret = ctx.arn, error = %e, "the move of AWSCURRENT answered an error but took effect");
    }
    for (_, delivery_id) in &accounts {
        // The rotation is done once the credential secret moved: a label left behind here is
        // harmless (clients read AWSCURRENT; the next rotation moves AWSPENDING anyway).
        if let Err(e) = delivery::drop_pending(r, delivery_id, &ctx.token).await {
            tracing::warn!(secret = ctx.arn, error = %e, "AWSPENDING left on a delivery secret");
        }
    }
    drop_pending_label(r, ctx).await?;
    Ok(("done", hashes(r, &accounts)))
}

/// After the settle wait: the token's version is still `AWSPENDING` and `AWSCURRENT` still on
/// `from`, the version it was on when the step started.
async fn unchanged(r: &Rotator, ctx: &Context, from: Option<&str>) -> Result<(), RotationError> {
    let (client, retry) = (r.client(), &r.config().retry);
    let stages = sm::stages(
        &sm::describe(client, retry, &ctx.arn)
            .await
            .map_err(on(&ctx.arn))?,
    );
    let moved = |what: String| {
        RotationError::Invalid(format!(
            "{what} of {} during the settle wait: nothing was moved, clients keep their current \
             passwords (see docs/runbooks/secret-rotation-validation.md, a failed finishSecret)",
            ctx.arn
        ))
    };
    if !sm::has(&stages, &ctx.token, PENDING) {
        return Err(moved(format!(
            "AWSPENDING left version {} (a forced users push abandons the rotation)",
            ctx.token
        )));
    }
    let now = sm::holder(&stages, CURRENT);
    if now.as_deref() != from {
        return Err(moved(format!(
            "AWSCURRENT moved from version {} to {} (a users push or a hand-made change)",
            from.unwrap_or("(none)"),
            now.as_deref().unwrap_or("(none)")
        )));
    }
    Ok(())
}

/// Whether the token's version of the credential secret is `AWSCURRENT` (false when that
/// cannot be read either).
async fn now_current(r: &Rotator, ctx: &Context) -> bool {
    let (client, retry) = (r.client(), &r.config().retry);
    sm::describe(client, retry, &ctx.arn)
        .await
        .is_ok_and(|d| sm::has(&sm::stages(&d), &ctx.token, CURRENT))
}

/// Moves `AWSCURRENT` of every delivery secret in `moved` back to the version it left, and
/// turns `cause` into the step's error, saying what state it leaves.
async fn undo(
    r: &Rotator,
    ctx: &Context,
    moved: &[(&str, Option<String>)],
    cause: RotationError,
) -> RotationError {
    let mut stuck = Vec::new();
    for (delivery_id, left) in moved {
        let back = match left {
            Some(version) => delivery::demote(r, delivery_id, &ctx.token, version).await,
            None => Err(RotationError::Invalid("no version to move back to".into())),
        };
        if let Err(e) = back {
            tracing::error!(secret = *delivery_id, error = %e, "cannot move AWSCURRENT back");
            stuck.push(*delivery_id);
        }
    }
    let state = if moved.is_empty() {
        "no delivery secret had moved: clients keep their current passwords".to_owned()
    } else if stuck.is_empty() {
        format!(
            "{} delivery secret(s) moved back: clients keep their current passwords",
            moved.len()
        )
    } else {
        format!(
            "delivery secrets {} still hold the new passwords as AWSCURRENT, which servers accept \
             only while AWSPENDING stays on version {} of {}: do not remove it; fix the cause and \
             run finishSecret again, or move those secrets' AWSCURRENT back first (see \
             docs/runbooks/secret-rotation-validation.md)",
            stuck.join(", "),
            ctx.token,
            ctx.arn
        )
    };
    RotationError::Invalid(format!("finishSecret failed: {cause}; {state}"))
}

/// Removes `AWSPENDING` from the token's version (after `finishSecret`), if it is still there.
pub(super) async fn drop_pending_label(r: &Rotator, ctx: &Context) -> Result<(), RotationError> {
    let (client, retry) = (r.client(), &r.config().retry);
    let stages = sm::stages(
        &sm::describe(client, retry, &ctx.arn)
            .await
            .map_err(on(&ctx.arn))?,
    );
    if sm::has(&stages, &ctx.token, PENDING) {
        sm::move_label(client, retry, &ctx.arn, PENDING, None, Some(&ctx.token))
            .await
            .map_err(on(&ctx.arn))?;
    }
    Ok(())
}
