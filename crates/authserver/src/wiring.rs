//! Builds the running server's parts from settings: store, authenticator, limiter, state.

use crate::config::{OAuthSigner, Settings, StoreKind};
use crate::decide::Gate;
use crate::http::AppState;
use crate::limiter::HashLimiter;
use crate::store::file::FileStore;
use crate::telemetry::EmfSink;
use anyhow::{Context, bail};
use authserver_aws::{RetryPolicy, SecretsManagerStore, SecretsStoreConfig};
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
    /// The Secrets Manager store, when configured: Lambda checks its freshness before each
    /// invocation (the background refresher cannot run while the sandbox is frozen).
    pub secrets: Option<SecretsManagerStore>,
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

/// The `user_hash` key: from `log.user_hash_key_secret_id` when set (needs the multi-thread
/// Tokio runtime; a secret that cannot be read is an error), else from `log.user_hash_key`,
/// else random.
pub fn hasher(settings: &Settings) -> anyhow::Result<UserHasher> {
    if settings.log.user_hash_key_secret_id.is_empty() {
        Ok(user_hasher(settings))
    } else {
        let settings = settings.clone();
        block_on_aws(async move { user_hasher_from_secret(&settings).await })?
    }
}

/// The users-file read bounds from `[store]`.
pub fn file_limits(settings: &Settings) -> crate::store::file::FileLimits {
    crate::store::file::FileLimits {
        max_bytes: settings.store.max_file_bytes,
        reload_deadline: Duration::from_millis(settings.store.reload_deadline_ms),
    }
}

/// Builds everything for the standalone server (no EMF sink: it serves `/metrics`); must run
/// inside a Tokio runtime (it spawns the store watcher).
pub fn build(settings: Settings) -> anyhow::Result<Built> {
    let hasher = hasher(&settings)?;
    build_with(settings, hasher, None, None)
}

/// [`build`] with the `user_hash` key already read. `first_fetch`: how long to wait for the
/// Secrets Manager store's first load (`None`: until it ends); past that the load goes on in
/// the background and the store answers unavailable (503) until it succeeds. `emf`: where
/// Lambda writes its CloudWatch EMF blob, one per invocation (`None`: EMF off).
pub fn build_with(
    settings: Settings,
    hasher: UserHasher,
    first_fetch: Option<Duration>,
    emf: Option<EmfSink>,
) -> anyhow::Result<Built> {
    let audit: Arc<dyn authserver_core::AuditSink> = Arc::new(crate::audit::Audit::from_settings(
        &settings.audit,
        crate::audit::Stream::Stdout,
    )?);
    let mut secrets = None;
    let (store, tasks): (Arc<dyn crate::store::SnapshotSource>, Vec<_>) = match settings.store.kind {
        StoreKind::File => {
            let store = Arc::new(
                FileStore::open(
                    &settings.store.file,
                    settings.hash.policy.clone(),
                    hasher.clone(),
                    file_limits(&settings),
                )
                .context("cannot start with this users file")?
                .with_audit(audit.clone()),
            );
            let watcher = store
                .clone()
                .watch(Duration::from_millis(settings.store.poll_interval_ms));
            (store, vec![watcher])
        }
        StoreKind::SecretsManager => {
            let store = secrets_manager(&settings, hasher.clone(), first_fetch)?.with_audit(audit.clone());
            let refresher = store.spawn_refresher();
            secrets = Some(store.clone());
            (Arc::new(store), vec![refresher])
        }
        StoreKind::Dynamodb => (users_table(&settings, hasher.clone(), first_fetch)?, Vec::new()),
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
    let regulator = crate::regulation::Regulator::new(
        settings.regulation.policy.clone(),
        regulation_store(&settings)?,
        audit.clone(),
        crate::regulation::system_clock(),
        settings.regulation.trusted_source_seconds,
    )
    .with_prefixes(crate::regulation::SourcePrefixes {
        v4: settings.regulation.ipv4_prefix,
        v6: settings.regulation.ipv6_prefix,
    });
    let gate = Gate {
        regulator,
        store,
        auth: Authenticator::new(cache),
        limiter,
        user_hasher: hasher,
        pacer: Default::default(),
        flights: Default::default(),
        legacy_not_rehashed: Default::default(),
    };
    let mut tasks = tasks;
    let oauth =
        crate::oauth::from_settings(&settings.oauth, oauth_aws_ports(&settings)?)?.map(|(issuer, reload)| {
            tasks.extend(reload);
            issuer
        });
    let (rules, watcher) = access_rules(&settings)?;
    tasks.extend(watcher);
    let telemetry = crate::telemetry::Telemetry::new(&settings, emf);
    let proxies = settings.server.trusted_proxies.clone();
    Ok(Built {
        state: Arc::new(AppState {
            settings: Arc::new(settings),
            gate: Arc::new(gate),
            telemetry,
            audit,
            proxies,
            rules,
            oauth,
        }),
        tasks,
        secrets,
    })
}

/// The AWS signer (KMS or a Secrets Manager key set) and DynamoDB jti store of `[oauth_aws]`,
/// when OAuth is on and they are configured. A signer that cannot load stops the start (as a
/// broken local key set does): an issuer without a key would answer every token request 500.
fn oauth_aws_ports(settings: &Settings) -> anyhow::Result<crate::oauth::Ports> {
    let aws = &settings.oauth_aws;
    if !settings.oauth.enabled() || (aws.signer == OAuthSigner::Local && aws.jti_table.is_empty()) {
        return Ok(crate::oauth::Ports::default());
    }
    let (endpoint, choice, retain, table) = (
        settings.store.endpoint_url.clone(),
        aws.signer_choice(),
        aws.retain_retired(),
        aws.jti_table.clone(),
    );
    block_on_aws(async move {
        let sdk = authserver_aws::sdk_config(Some(&endpoint)).await;
        let signer = authserver_aws::oauth::build_signer(&sdk, &choice, retain)
            .await
            .context("OAuth signing key on AWS")?;
        let jti = (!table.is_empty()).then(|| authserver_aws::oauth::build_jti_store(&sdk, &table));
        Ok(crate::oauth::Ports { signer, jti })
    })?
}

/// The access rules of `rules.file` and their watcher; none when unset. A file that cannot be
/// used is an error: the server must not start open because of a typo.
fn access_rules(
    settings: &Settings,
) -> anyhow::Result<(
    Arc<crate::access::AccessRules>,
    Option<tokio::task::JoinHandle<()>>,
)> {
    if settings.rules.file.is_empty() {
        return Ok((Arc::new(crate::access::AccessRules::none()), None));
    }
    let rules = Arc::new(
        crate::access::AccessRules::open(
            std::path::Path::new(&settings.rules.file),
            settings.store.max_file_bytes,
        )
        .context("cannot start with this rules file")?,
    );
    let watcher = rules.clone().watch(
        Duration::from_millis(settings.store.poll_interval_ms),
        Duration::from_millis(settings.store.reload_deadline_ms),
    );
    Ok((rules, watcher))
}

/// Where regulation state lives: DynamoDB when `regulation.dynamodb_table` is set (a fleet shares
/// bans), else memory.
fn regulation_store(
    settings: &Settings,
) -> anyhow::Result<Arc<dyn authserver_core::regulation::RegulationStore>> {
    let table = settings.regulation.dynamodb_table.clone();
    if table.is_empty() {
        return Ok(Arc::new(authserver_core::regulation::MemoryStore::new(
            settings.regulation.max_entries,
        )));
    }
    let endpoint = settings.store.endpoint_url.clone();
    let client = block_on_aws(async move {
        authserver_aws::dynamodb_client(&authserver_aws::sdk_config(Some(&endpoint)).await)
    })?;
    Ok(Arc::new(authserver_aws::DynamoDbRegulation::new(client, table)))
}

/// The DynamoDB users store, its table version read once so that `/ready` tells at start
/// whether the table answers (a failure is logged and kept; requests retry it). No background
/// task: the first request after each `version_poll` reads the version (Lambda freezes tasks).
/// `first_fetch` bounds the wait for that first read as for the secret (Lambda init): past it
/// the read goes on in the background and requests get 503 until a read succeeds.
fn users_table(
    settings: &Settings,
    hasher: UserHasher,
    first_fetch: Option<Duration>,
) -> anyhow::Result<Arc<dyn crate::store::SnapshotSource>> {
    let config = settings.users_table.config(
        Duration::from_secs(settings.store.max_stale_minutes * 60),
        settings.hash.policy.clone(),
    );
    let (endpoint, name) = (
        settings.store.endpoint_url.clone(),
        settings.users_table.name.clone(),
    );
    let store = block_on_aws(async move {
        let client = authserver_aws::dynamodb_client(&authserver_aws::sdk_config(Some(&endpoint)).await);
        let table = authserver_aws::UsersTable::new(client, name)
            .with_retry(authserver_aws::users_table::REQUEST_RETRY);
        let store = authserver_aws::UsersTableStore::new(table, config, hasher, Arc::new(SystemClock));
        // Its own task, so that a read outliving `first_fetch` is not cancelled half-way; it
        // holds the store's poll meanwhile (requests answer 503 instead of reading again).
        let reading = store.clone();
        let first = tokio::spawn(async move {
            let _ = reading.refresh().await;
        });
        first_read_within(first, first_fetch, "first users table version read").await;
        store
    })?;
    Ok(Arc::new(store))
}

/// The Secrets Manager store with its first load done (or given `first_fetch` to finish), so
/// that Lambda's init covers the first fetch and a standalone server starts ready. A failed load
/// is logged by the store, which then starts unavailable (503) and keeps trying.
fn secrets_manager(
    settings: &Settings,
    hasher: UserHasher,
    first_fetch: Option<Duration>,
) -> anyhow::Result<SecretsManagerStore> {
    let s = &settings.store;
    let config = SecretsStoreConfig {
        secret_id: s.secret_id.clone(),
        ttl: Duration::from_secs(s.cache_ttl_minutes * 60),
        version_check: Duration::from_secs(s.version_check_seconds.max(1)),
        max_stale: Duration::from_secs(s.max_stale_minutes * 60),
        retry: RetryPolicy::default(),
        policy: settings.hash.policy.clone(),
        accept_pending: s.accept_pending,
        previous_grace: Duration::from_secs(s.previous_grace_seconds),
    };
    let endpoint = s.endpoint_url.clone();
    block_on_aws(async move {
        let sdk = authserver_aws::sdk_config(Some(&endpoint)).await;
        let client = authserver_aws::secrets_client(&sdk);
        let store = SecretsManagerStore::new(client, config, hasher, Arc::new(SystemClock));
        // Its own task, so that a load outliving `first_fetch` is not cancelled half-way.
        let loading = store.clone();
        let first = tokio::spawn(async move {
            let _ = loading.refresh().await;
        });
        first_read_within(first, first_fetch, "first credential secret fetch").await;
        store
    })
}

/// Waits for a store's first read (`first`, on its own task) for at most `budget` (`None`: until
/// it ends). Past the budget the read goes on and the store answers 503 until it succeeds; the
/// log line names what was being read, never a value.
async fn first_read_within(first: tokio::task::JoinHandle<()>, budget: Option<Duration>, what: &str) {
    match budget {
        None => {
            let _ = first.await;
        }
        Some(budget) => {
            if tokio::time::timeout(budget, first).await.is_err() {
                tracing::warn!(
                    budget_ms = budget.as_millis() as u64,
                    "{what} still running at the end of the init budget; answering 503 until it \
                     completes"
                );
            }
        }
    }
}

/// The `user_hash` key from the secret `log.user_hash_key_secret_id`, so that all instances
/// hash usernames alike (per-user locks in a shared regulation table depend on it). A secret
/// that cannot be read or is empty is an error naming the secret id and the failure, never its
/// value: a random key would silently split the fleet's locks and log correlation.
pub async fn user_hasher_from_secret(settings: &Settings) -> anyhow::Result<UserHasher> {
    let id = &settings.log.user_hash_key_secret_id;
    let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
    let client = authserver_aws::secrets_client(&sdk);
    match authserver_aws::current_value(&client, id, &RetryPolicy::default()).await {
        Ok(key) if !key.is_empty() => Ok(UserHasher::new(&key)),
        Ok(_) => bail!(
            "the user_hash key secret {id:?} (log.user_hash_key_secret_id / \
             AUTHSERVER_USER_HASH_KEY_SECRET_ARN) is empty"
        ),
        Err(e) => bail!(
            "cannot read the user_hash key secret {id:?} (log.user_hash_key_secret_id / \
             AUTHSERVER_USER_HASH_KEY_SECRET_ARN): {e}"
        ),
    }
}

/// Runs async AWS set-up to completion from the synchronous `build` (its callers and tests are
/// synchronous), before the first request: what Lambda init wants. `block_in_place` needs the
/// multi-thread runtime, which `serve` and `lambda` both use.
fn block_on_aws<F: std::future::Future>(work: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Handle::try_current().context("AWS set-up needs a Tokio runtime")?;
    if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        bail!(
            "AWS set-up (secrets_manager store, user_hash key secret) needs the multi-thread Tokio runtime"
        );
    }
    Ok(tokio::task::block_in_place(|| runtime.block_on(work)))
}
