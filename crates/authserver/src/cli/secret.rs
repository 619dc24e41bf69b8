//! `authserver users push|pull --secret-id ID FILE`: a users file to and from the credential
//! secret ([`authserver_aws::users`]). Both validate against the hash policy (`[hash]`), print
//! counts and version ids, never a hash, and emit a `secret.push` / `secret.pull` audit event.

use super::admin::{audit, block_on};
use crate::config::Settings;
use crate::store::file::edit;
use anyhow::Context;
use std::path::Path;

/// `users push`.
pub fn push(secret_id: &str, file: &Path, force: bool, config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let pushed = block_on(async {
        let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
        let client = authserver_aws::secrets_client(&sdk);
        authserver_aws::users::push(
            &client,
            &authserver_aws::RetryPolicy::default(),
            secret_id,
            &text,
            &settings.hash.policy,
            force,
        )
        .await
    })?
    .with_context(|| format!("{} not pushed to {secret_id}", file.display()))?;
    audit(
        &settings,
        "secret.push",
        None,
        format!("{secret_id} version {} ({} users)", pushed.version, pushed.users),
    )?;
    print_pushed(&pushed, file, secret_id);
    size_warning(&pushed.size);
    Ok(())
}

/// What a push did, and the rotation it abandoned, if any.
fn print_pushed(pushed: &authserver_aws::users::Pushed, file: &Path, secret_id: &str) {
    println!(
        "pushed {} users from {} to {secret_id}: version {} is AWSCURRENT{}",
        pushed.users,
        file.display(),
        pushed.version,
        pushed.replaced.as_deref().map_or(String::new(), |v| format!(
            " (replaced {v}; AWSPREVIOUS detached, so no previous password stays accepted)"
        ))
    );
    if let Some(pending) = &pushed.abandoned {
        eprintln!(
            "warning: the rotation preparing version {pending} is abandoned (AWSPENDING removed): \
             its remaining steps fail; rotate again once the push is in service"
        );
    }
}

/// `config check` cannot see the document of a `secrets_manager` store (it makes no AWS
/// call), so push and pull, which hold it, warn near Secrets Manager's size limit.
fn size_warning(size: &authserver_aws::users::Size) {
    if let Some(warning) = size.warning() {
        eprintln!("warning: {warning}");
    }
}

/// `users pull`: writes FILE (mode 0600) even when the document fails the policy (so that it
/// can be fixed), saying so; exits non-zero only when nothing could be written.
pub fn pull(secret_id: &str, file: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let pulled = block_on(async {
        let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
        let client = authserver_aws::secrets_client(&sdk);
        authserver_aws::users::pull(
            &client,
            &authserver_aws::RetryPolicy::default(),
            secret_id,
            &settings.hash.policy,
        )
        .await
    })?
    .with_context(|| format!("cannot pull {secret_id}"))?;
    // Written 0600 from the first byte (never world-readable, not even briefly), under the
    // users-file edit lock.
    edit::replace(file, &pulled.doc)?;
    audit(
        &settings,
        "secret.pull",
        None,
        format!("{secret_id} version {} ({} users)", pulled.version, pulled.users),
    )?;
    println!(
        "pulled {} users of {secret_id} version {} (AWSCURRENT) to {}",
        pulled.users,
        pulled.version,
        file.display()
    );
    match &pulled.policy {
        Ok(()) => println!("validation: OK (every entry meets the hash policy)"),
        Err(why) => eprintln!("validation: FAILED: {why}"),
    }
    size_warning(&pulled.size);
    Ok(())
}
