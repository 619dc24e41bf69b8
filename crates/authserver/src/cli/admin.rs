//! What the administrative subcommands share: running async work from the synchronous CLI, and
//! the `AdminAction` audit event each change leaves.

use crate::audit::{Audit, Stream};
use crate::config::Settings;
use authserver_core::{AuditEvent, AuditSink};

/// Runs async work (AWS calls, HTTP to a running server) from the synchronous CLI, on a
/// current-thread runtime: one command makes its calls one after another.
pub fn block_on<F: std::future::Future>(work: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(work))
}

/// The audit sinks of one administrative command (stderr and/or the audit file, per `[audit]`).
#[derive(Debug)]
pub struct AdminAudit(Audit);

impl AdminAudit {
    /// Opens the sinks. Commands that must not change anything they cannot audit open them
    /// before the change: an audit file that cannot be written then stops it.
    pub fn open(settings: &Settings) -> anyhow::Result<Self> {
        Audit::from_settings(&settings.audit, Stream::Stderr).map(Self)
    }

    /// Emits one `AdminAction` by the OS user running the command.
    pub fn emit(&self, action: &str, target_user_hash: Option<String>, resource: String) {
        self.0.emit(AuditEvent::AdminAction {
            action: action.into(),
            target_user_hash,
            resource,
            actor: crate::audit::actor(),
        });
    }

    /// Writes everything queued; fails when an event was dropped, so a change whose audit
    /// record was lost does not exit 0.
    pub fn close(self) -> anyhow::Result<()> {
        self.0.close()
    }
}

/// Opens the sinks, emits one `AdminAction` and closes them (commands that audit after the
/// change: `users push|pull`).
pub fn audit(
    settings: &Settings,
    action: &str,
    target_user_hash: Option<String>,
    resource: String,
) -> anyhow::Result<()> {
    let audit = AdminAudit::open(settings)?;
    audit.emit(action, target_user_hash, resource);
    audit.close()
}
