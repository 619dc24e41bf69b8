//! Builds the running server's parts from settings: store, authenticator, limiter, state.

use crate::config::{Settings, StoreKind};
use crate::decide::Gate;
use crate::http::AppState;
use crate::limiter::HashLimiter;
use crate::store::file::FileStore;
use anyhow::{Context, bail};
use authserver_core::{Authenticator, SystemClock, UserHasher, VerifiedCache};
use std::sync::Arc;
use std::time::Duration;

/// The state plus the background tasks that keep it current.
#[derive(Debug)]
pub struct Built {
    /// Request state.
    pub state: Arc<AppState>,
    /// Store refresh tasks (aborted on drop of the server).
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The `user_hash` key from settings, or a random one (hashes then differ per process).
pub fn user_hasher(settings: &Settings) -> UserHasher {
    if settings.log.user_hash_key.is_empty() {
        tracing::warn!("log.user_hash_key not set: user_hash values are random per process");
        UserHasher::random()
    } else {
        UserHasher::new(settings.log.user_hash_key.as_bytes())
    }
}

/// Builds everything; must run inside a Tokio runtime (it spawns the store watcher).
pub fn build(settings: Settings) -> anyhow::Result<Built> {
    let hasher = user_hasher(&settings);
    let audit: Arc<dyn authserver_core::AuditSink> = Arc::new(crate::audit::Audit::from_settings(
        &settings.audit,
        crate::audit::Stream::Stdout,
    )?);
    let (store, tasks): (Arc<dyn crate::store::SnapshotSource>, _) = match settings.store.kind {
        StoreKind::File => {
            let store = Arc::new(
                FileStore::open(&settings.store.file, settings.hash.policy.clone(), hasher.clone())
                    .context("cannot start with this users file")?
                    .with_audit(audit.clone()),
            );
            let watcher = store
                .clone()
                .watch(Duration::from_millis(settings.store.poll_interval_ms));
            (store, vec![watcher])
        }
        StoreKind::SecretsManager => bail!("the secrets_manager store is not built into this binary yet"),
    };
    let cache = VerifiedCache::new(
        settings.cache.capacity,
        settings.cache_ttl(),
        Arc::new(SystemClock),
    );
    let limiter = HashLimiter::new(
        settings.hash.max_concurrent,
        settings.hash.memory_budget_mib,
        settings.hash.max_queue,
        Duration::from_millis(settings.hash.queue_timeout_ms),
    );
    let gate = Gate {
        store,
        auth: Authenticator::new(cache),
        limiter,
        user_hasher: hasher,
    };
    let telemetry = crate::telemetry::Telemetry::new(&settings, None);
    Ok(Built {
        state: Arc::new(AppState {
            settings: Arc::new(settings),
            gate,
            telemetry,
            audit,
        }),
        tasks,
    })
}
