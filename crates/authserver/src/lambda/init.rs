//! Init of the HTTP-shaped modes (proxy, authorizer) within a time budget.
//!
//! Lambda kills an init that takes 10 s, and an endpoint that accepts connections and never
//! answers makes each AWS call wait for its timeouts and retries. So init spends at most
//! `lambda.init_budget_ms` (default 4 s) on AWS: the `user_hash` key, then the first secret
//! fetch with what is left. (The store names users in its validation errors with the key, so it
//! is built once the key is known.) When the budget runs out init finishes anyway, the fetches go
//! on in the background, and invocations answer 503 (authorizer: an error, which API Gateway does
//! not cache) until a snapshot exists: the documented answer instead of a timed-out cold start.
//!
//! A key secret that *answers* with an error (denied, missing, empty) fails init: a random key
//! would split the fleet's per-user locks without anyone noticing.

use crate::config::Settings;
use crate::http::AppState;
use crate::telemetry::EmfSink;
use authserver_aws::SecretsManagerStore;
use authserver_core::UserHasher;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Everything an invocation needs once init has produced it.
#[derive(Debug)]
pub struct Ready {
    /// Request state.
    pub state: Arc<AppState>,
    /// The Secrets Manager store, checked for freshness before each invocation.
    pub secrets: Option<SecretsManagerStore>,
    /// The proxy router over `state`.
    pub router: axum::Router,
}

impl Ready {
    /// `state` and its router.
    pub fn new(state: Arc<AppState>, secrets: Option<SecretsManagerStore>) -> Self {
        let router = crate::http::app(state.clone());
        Self {
            state,
            secrets,
            router,
        }
    }
}

/// The state as init left it: ready, or still being built in the background. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<OnceLock<Ready>>);

impl Shared {
    /// Already ready.
    pub fn ready(ready: Ready) -> Self {
        let shared = Self::default();
        shared.set(ready);
        shared
    }

    /// The state, once built.
    pub fn get(&self) -> Option<&Ready> {
        self.0.get()
    }

    fn set(&self, ready: Ready) {
        if self.0.set(ready).is_err() {
            tracing::warn!("lambda state built twice; keeping the first");
        }
    }
}

/// Builds the state within `budget`: see the module docs. `emf` switches CloudWatch EMF on.
pub async fn build(settings: Settings, budget: Duration, emf: Option<EmfSink>) -> anyhow::Result<Shared> {
    let deadline = Instant::now() + budget;
    if settings.log.user_hash_key_secret_id.is_empty() {
        let hasher = crate::wiring::user_hasher(&settings);
        return Ok(Shared::ready(assemble(settings, hasher, deadline, emf)?));
    }
    let reader = settings.clone();
    let mut key = tokio::spawn(async move { crate::wiring::user_hasher_from_secret(&reader).await });
    match tokio::time::timeout(budget, &mut key).await {
        Ok(joined) => {
            let hasher = joined??;
            Ok(Shared::ready(assemble(settings, hasher, deadline, emf)?))
        }
        Err(_) => {
            tracing::warn!(
                budget_ms = budget.as_millis() as u64,
                "user_hash key secret still being read at the end of the init budget; \
                 answering 503 until it and the credential secret are loaded"
            );
            let shared = Shared::default();
            tokio::spawn(finish_in_background(shared.clone(), settings, key, emf));
            Ok(shared)
        }
    }
}

/// Waits for the key (reading it again after failures, with backoff), then builds the state.
async fn finish_in_background(
    shared: Shared,
    settings: Settings,
    first: tokio::task::JoinHandle<anyhow::Result<UserHasher>>,
    emf: Option<EmfSink>,
) {
    let mut attempt = match first.await {
        Ok(result) => result,
        Err(e) => Err(anyhow::anyhow!("user_hash key read failed: {e}")),
    };
    let mut wait = Duration::from_secs(1);
    let hasher = loop {
        match attempt {
            Ok(hasher) => break hasher,
            Err(e) => {
                // Fail closed (503) and loud: never a random key.
                tracing::error!(error = %e, "cannot read the user_hash key; answering 503");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
                attempt = crate::wiring::user_hasher_from_secret(&settings).await;
            }
        }
    };
    // No budget left to keep here: nobody waits for this task but the invocations' 503s.
    match crate::wiring::build_with(settings, hasher, None, emf) {
        Ok(built) => {
            shared.set(Ready::new(built.state, built.secrets));
            tracing::info!("lambda state ready (after the init budget)");
        }
        Err(e) => tracing::error!(error = %e, "building the lambda state failed; answering 503"),
    }
}

fn assemble(
    settings: Settings,
    hasher: UserHasher,
    deadline: Instant,
    emf: Option<EmfSink>,
) -> anyhow::Result<Ready> {
    let left = deadline.saturating_duration_since(Instant::now());
    let built = crate::wiring::build_with(settings, hasher, Some(left), emf)?;
    Ok(Ready::new(built.state, built.secrets))
}
