//! Fakes for the ports: an audit sink that keeps what it is given, a credential store that is
//! down, regulation backends that fail or never answer, and the swap that puts one into a
//! built state.

use authserver::http::AppState;
use authserver_core::regulation::{BackendError, BoxFuture, Entry, RegulationStore, Update};
use authserver_core::{AuditEvent, AuditSink, Snapshot, SnapshotSource, StoreStatus, Unavailable};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps every audit event.
#[derive(Debug, Default)]
pub struct Recorder(pub Mutex<Vec<AuditEvent>>);

impl Recorder {
    /// The events so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.0.lock().unwrap().clone()
    }
}

impl AuditSink for Recorder {
    fn emit(&self, event: AuditEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// A credential store that never has a snapshot (an outage from the start): 503 with
/// `retry_after`, `/ready` false with `error`.
#[derive(Debug, Clone, Copy)]
pub struct DownStore {
    /// What `current()` tells clients to wait.
    pub retry_after: Duration,
    /// The status's `last_error`.
    pub error: &'static str,
}

impl SnapshotSource for DownStore {
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable> {
        Err(Unavailable {
            retry_after: self.retry_after,
        })
    }

    fn status(&self) -> StoreStatus {
        StoreStatus {
            kind: "test",
            version: None,
            users: None,
            cached_entries: None,
            refused: 0,
            age_seconds: 0,
            ready: false,
            last_error: Some(self.error.into()),
        }
    }
}

/// A regulation backend whose every call fails (DynamoDB down).
#[derive(Debug)]
pub struct BrokenBackend;

impl RegulationStore for BrokenBackend {
    fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, BackendError>> {
        Box::pin(async { Err(BackendError("table unreachable".into())) })
    }

    fn update<'a>(&'a self, _: &'a str, _: u64, _: Update<'a>) -> BoxFuture<'a, Result<Entry, BackendError>> {
        Box::pin(async { Err(BackendError("table unreachable".into())) })
    }
}

/// A regulation backend that accepts every call and never answers (a DynamoDB endpoint behind
/// a black-holed route, a stuck proxy).
#[derive(Debug)]
pub struct SilentBackend;

impl RegulationStore for SilentBackend {
    fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, BackendError>> {
        Box::pin(std::future::pending())
    }

    fn update<'a>(&'a self, _: &'a str, _: u64, _: Update<'a>) -> BoxFuture<'a, Result<Entry, BackendError>> {
        Box::pin(std::future::pending())
    }
}

/// `state` with its regulation backend replaced by `backend` (the policy kept), e.g. a backend
/// that fails or never answers. `state` must be the only reference (fresh from `build`).
pub fn with_regulation_backend(state: Arc<AppState>, backend: Arc<dyn RegulationStore>) -> Arc<AppState> {
    let built = Arc::into_inner(state).expect("the only reference to the state");
    let regulator = authserver::regulation::Regulator::new(
        built.settings.regulation.policy.clone(),
        backend,
        Arc::new(authserver_core::NoAudit),
        authserver::regulation::system_clock(),
        60,
    );
    let gate = authserver::decide::Gate {
        regulator,
        ..Arc::into_inner(built.gate).expect("the only reference to the gate")
    };
    Arc::new(AppState {
        gate: Arc::new(gate),
        ..built
    })
}

/// Serves another store's snapshots but is never written from the request path, like the
/// Secrets Manager store: `upgrade_legacy` keeps the port's default (report, do not write).
#[derive(Debug)]
pub struct ReadOnlyStore(pub Arc<dyn SnapshotSource>);

impl SnapshotSource for ReadOnlyStore {
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable> {
        self.0.current()
    }

    fn status(&self) -> StoreStatus {
        self.0.status()
    }
}

/// The status of a ready file store holding one user (what `/metrics` renders in tests that
/// only look at the per-request series).
pub fn ready_file_status() -> StoreStatus {
    StoreStatus {
        kind: "file",
        version: None,
        users: Some(1),
        cached_entries: None,
        refused: 0,
        age_seconds: 0,
        ready: true,
        last_error: None,
    }
}
