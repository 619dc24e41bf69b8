//! AWS Lambda: the same binary is the function's `bootstrap` on `provided.al2023`.
//!
//! How it starts: `authserver lambda`, or `authserver` with no arguments while
//! `AWS_LAMBDA_RUNTIME_API` is set (how Lambda starts `bootstrap`); see [`crate::cli`].
//! Init (settings, SDK client, the `user_hash` key, the first secret fetch, the router) runs
//! once, before the first invocation is polled, within `lambda.init_budget_ms` ([`init`]); the
//! first invocation logs `cold_start` once, with the init time.
//!
//! Modes (`AUTHSERVER_LAMBDA_MODE`, settings key `lambda.mode`):
//! - `proxy` (default): [`proxy`], the HTTP router for API Gateway, ALB and Function URL events.
//! - `authorizer`: [`authorizer`], API Gateway Lambda authorizers.
//! - `rotation`: [`rotation`], the Secrets Manager rotation function of the credential secret.
//! - `compliance`: [`compliance`], the scheduled compliance check and its metric.
//!
//! Panics inside a handler answer 500 (proxy) or a generic error (authorizer) and the runtime
//! loop goes on; the panic hook ([`crate::telemetry::install_panic_hook`]) logs where a panic
//! happened, never its message.
//!
//! # Layout
//! - [`init`]: the budgeted init of the HTTP-shaped modes; 503 until a state exists.
//! - [`event`]: event shapes (each mode refuses the others'), stage-free paths, repeated headers.
//! - [`source`]: the client address (sourceIp, ALB `X-Forwarded-For`, proven CloudFront).
//! - [`proxy`]: the router behind `lambda_http`'s conversion, 500 on panic.
//! - [`authorizer`]: HTTP API simple responses and REST IAM policies.
//! - [`policy`]: the authorizer's answers under access rules, right for every route of the stage.
//! - [`rotation`]: the four rotation steps.
//! - [`compliance`]: the daily check publishing `ComplianceViolations`.

pub mod authorizer;
pub mod compliance;
pub mod event;
pub mod init;
pub mod policy;
pub mod proxy;
pub mod rotation;
pub mod source;

use crate::config::Settings;
use crate::telemetry::EmfSink;
use anyhow::anyhow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the function does: `lambda.mode`, parsed when the settings load.
pub use crate::config::LambdaMode as Mode;

/// The cold-start flag: the first invocation of the process logs it once, with the init time.
#[derive(Debug)]
pub struct ColdStart {
    started: Instant,
    init_ms: f64,
    first: AtomicBool,
}

impl ColdStart {
    /// `started`: when the process began its work; `init_done`: when init finished.
    pub fn new(started: Instant, init_done: Instant) -> Self {
        Self {
            started,
            init_ms: init_done.duration_since(started).as_secs_f64() * 1000.0,
            first: AtomicBool::new(true),
        }
    }

    /// Call at the start of every invocation; logs on the first only.
    pub fn note(&self, mode: &str) {
        if self.first.swap(false, Ordering::Relaxed) {
            tracing::info!(
                cold_start = true,
                mode,
                init_ms = self.init_ms,
                since_start_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "first invocation"
            );
        }
    }
}

/// Runs the function until the runtime stops (it does not, on Lambda). Starts its own Tokio
/// runtime (multi-thread: the store's first fetch needs it).
pub fn run(settings: Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::telemetry::init(&settings.log);
    settings.log_env_warnings();
    let mode = settings.lambda.mode;
    crate::telemetry::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if matches!(mode, Mode::Rotation | Mode::Compliance) {
        return runtime.block_on(run_task(settings, mode, started));
    }
    runtime.block_on(async move {
        let budget = std::time::Duration::from_millis(settings.lambda.init_budget_ms);
        let secret = source::OriginSecret::from_settings(&settings);
        let emf: EmfSink = Arc::new(|blob| println!("{blob}"));
        let shared = init::build(settings, budget, Some(emf)).await?;
        let status = shared.get().map(|r| r.state.gate.store.status());
        let cold = Arc::new(ColdStart::new(started, Instant::now()));
        tracing::info!(
            mode = mode.as_str(),
            init_ms = cold.init_ms,
            budget_ms = budget.as_millis() as u64,
            store = status.as_ref().map(|s| s.kind),
            ready = status.as_ref().is_some_and(|s| s.ready),
            version = status.as_ref().and_then(|s| s.version.as_deref()),
            "lambda init complete"
        );
        let result = match mode {
            Mode::Proxy => {
                let proxy = proxy::Proxy::from_shared(shared, secret, cold);
                lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
                    proxy.clone().handle(event)
                }))
                .await
            }
            Mode::Authorizer => {
                let authorizer = authorizer::Authorizer::from_shared(shared, secret, cold);
                lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
                    authorizer.clone().handle(event)
                }))
                .await
            }
            Mode::Rotation | Mode::Compliance => unreachable_mode(mode),
        };
        result.map_err(|e| anyhow!("lambda runtime stopped: {e}"))
    })
}

/// The rotation and compliance functions: no router, no credential store, only their own
/// clients (built during init, before the first invocation).
async fn run_task(settings: Settings, mode: Mode, started: Instant) -> anyhow::Result<()> {
    let result = if mode == Mode::Rotation {
        let handler = rotation::Rotation::new(&settings, started).await?;
        lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
            handler.clone().handle(event)
        }))
        .await
    } else {
        let handler = compliance::Compliance::new(&settings, started).await?;
        lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
            handler.clone().handle(event)
        }))
        .await
    };
    result.map_err(|e| anyhow!("lambda runtime stopped: {e}"))
}

/// Logs the end of init for the task modes and returns their cold-start flag.
fn task_init_done(mode: &str, started: Instant) -> Arc<ColdStart> {
    let cold = Arc::new(ColdStart::new(started, Instant::now()));
    tracing::info!(mode, init_ms = cold.init_ms, "lambda init complete");
    cold
}

/// The HTTP-shaped modes' match never sees the task modes (they return earlier).
fn unreachable_mode(mode: Mode) -> Result<(), lambda_http::Error> {
    Err(format!("mode {} is not an HTTP mode", mode.as_str()).into())
}
