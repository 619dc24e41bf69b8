//! Compliance mode: the daily EventBridge schedule invokes the function (the event's content
//! does not matter); it runs every control of [`authserver_aws::compliance`], logs one line per
//! control (accounts named by `user_hash` only) and publishes the number of failed controls as
//! `ComplianceViolations` (namespace `AuthServer`, dimensions `Service`, `Stage`), which the
//! `<svc>-<stage>-compliance-violations` alarm watches. Failed controls are a result, not an
//! error; an error (so that the invocation is retried, then dead-lettered) means the metric
//! could not be published.

use super::ColdStart;
use crate::config::Settings;
use authserver_aws::compliance::{Clients, Outcome, Report, Target};
use authserver_core::{AuditEvent, AuditSink, UserHasher};
use lambda_http::lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use std::sync::Arc;

/// The handler state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Compliance {
    clients: Clients,
    target: Arc<Target>,
    hasher: UserHasher,
    audit: Arc<dyn AuditSink>,
    cold: Arc<ColdStart>,
}

impl Compliance {
    /// Builds the SDK clients and the target from settings (runs inside the multi-thread
    /// runtime: the `user_hash` key secret is read during init).
    pub async fn new(settings: &Settings, started: std::time::Instant) -> anyhow::Result<Self> {
        let hasher = crate::wiring::hasher(settings)?;
        let audit = Arc::new(crate::audit::Audit::from_settings(
            &settings.audit,
            crate::audit::Stream::Stdout,
        )?);
        let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
        Ok(Self {
            clients: Clients::new(&sdk),
            target: Arc::new(crate::compliance::target(settings)),
            hasher,
            audit,
            cold: super::task_init_done("compliance", started),
        })
    }

    /// A handler from its parts (tests: clients of another account).
    pub fn from_parts(
        clients: Clients,
        target: Target,
        hasher: UserHasher,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self {
            clients,
            target: Arc::new(target),
            hasher,
            audit,
            cold: super::task_init_done("compliance", std::time::Instant::now()),
        }
    }

    /// Runs the check, logs it and publishes the metric.
    pub async fn handle(self, _event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        self.cold.note("compliance");
        let this = self.clone();
        match tokio::spawn(async move { this.run().await }).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(panicked = e.is_panic(), "compliance check failed");
                Err(Diagnostic {
                    error_type: "ComplianceError".into(),
                    error_message: "internal error".into(),
                })
            }
        }
    }

    /// One check: the report, logged and published. Public for tests.
    pub async fn run(&self) -> Result<Value, Diagnostic> {
        let hasher = self.hasher.clone();
        let report = authserver_aws::compliance::check(&self.clients, &self.target, &move |u| {
            format!("user_hash {}", hasher.hash(u))
        })
        .await;
        log(&report);
        self.audit.emit(AuditEvent::AdminAction {
            action: "compliance.check".into(),
            target_user_hash: None,
            resource: format!(
                "{}-{}: {} of {} controls failed",
                report.service,
                report.stage,
                report.violations,
                report.controls.len()
            ),
            actor: "compliance".into(),
        });
        authserver_aws::compliance::publish(
            &self.clients.cloudwatch,
            &self.target.retry,
            &self.target,
            report.violations,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot publish ComplianceViolations");
            Diagnostic {
                error_type: "MetricNotPublished".into(),
                error_message: e.to_string(),
            }
        })?;
        Ok(json!({
            "violations": report.violations,
            "failed": report
                .controls
                .iter()
                .filter(|c| c.result == Outcome::Fail)
                .map(|c| c.id)
                .collect::<Vec<_>>(),
        }))
    }
}

/// One line per control (warn when failed), then the summary.
fn log(report: &Report) {
    for c in &report.controls {
        match c.result {
            Outcome::Pass => {
                tracing::info!(control = c.id, result = "pass", cis = c.cis, evidence = ?c.evidence, "compliance control")
            }
            Outcome::Fail => {
                tracing::warn!(control = c.id, result = "fail", cis = c.cis, evidence = ?c.evidence, "compliance control")
            }
        }
    }
    tracing::info!(
        violations = report.violations,
        controls = report.controls.len(),
        "compliance check complete"
    );
}
