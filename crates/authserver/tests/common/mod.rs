//! Shared test fixtures: a users file with cheap (policy-floor) hashes and a built state.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod lambda;
pub mod process;

use authserver::config::Settings;
use authserver::wiring::{Built, build};
use authserver_core::{Cost, Secret, hash_password};
use std::path::{Path, PathBuf};

/// The cheapest cost the default policy accepts: keeps tests fast.
pub const FAST: Cost = Cost {
    m_kib: 19456,
    t: 2,
    p: 1,
};

/// Distinctive plaintexts, so a search of captured output means something.
pub const ALICE: &str = "alice-plaintext-user";
pub const ALICE_PW: &str = "Correct-Horse-Battery-7731";
pub const BOB: &str = "bob-plaintext-user";
pub const BOB_PW: &str = "Disabled-Pass-Word-4410";
pub const CAROL: &str = "carol-plaintext-user";
pub const CAROL_PW: &str = "with:colons:inside";

/// Writes a users file: alice (ACTIVE, admin+reader), bob (DISABLED), carol (ACTIVE, no roles).
/// Returns the hashes so tests can search output for them.
pub fn write_users(path: &Path) -> Vec<String> {
    let hashes: Vec<String> = [ALICE_PW, BOB_PW, CAROL_PW]
        .iter()
        .map(|p| hash_password(&Secret::from(*p), FAST).unwrap())
        .collect();
    let json = serde_json::json!({
        ALICE: {"passwordHash": hashes[0], "status": "ACTIVE", "roles": ["admin", "reader"]},
        BOB: {"passwordHash": hashes[1], "status": "DISABLED", "roles": []},
        CAROL: {"passwordHash": hashes[2]},
    });
    std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    hashes
}

/// A temp dir holding `users.json`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub users: PathBuf,
    pub hashes: Vec<String>,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let hashes = write_users(&users);
    Fixture { dir, users, hashes }
}

/// Settings for `users`, with a fast poll interval.
pub fn settings(users: &Path) -> Settings {
    let mut s = Settings::default();
    s.store.file = users.to_owned();
    s.store.poll_interval_ms = 50;
    s.log.user_hash_key = "test-key".into();
    s.audit.stdout = false;
    s
}

pub fn built(users: &Path) -> Built {
    build(settings(users)).unwrap()
}

/// `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    authserver_core::Credentials::new(user, pass)
        .unwrap()
        .to_header_value()
        .expose()
        .to_owned()
}

/// A credential store that never has a snapshot (an outage from the start): 503 with
/// `retry_after`, `/ready` false with `error`.
#[derive(Debug, Clone, Copy)]
pub struct DownStore {
    pub retry_after: std::time::Duration,
    pub error: &'static str,
}

impl authserver_core::SnapshotSource for DownStore {
    fn current(&self) -> Result<std::sync::Arc<authserver_core::Snapshot>, authserver_core::Unavailable> {
        Err(authserver_core::Unavailable {
            retry_after: self.retry_after,
        })
    }
    fn status(&self) -> authserver_core::StoreStatus {
        authserver_core::StoreStatus {
            kind: "test",
            version: None,
            users: 0,
            age_seconds: 0,
            ready: false,
            last_error: Some(self.error.into()),
        }
    }
}

/// `state` with its regulation backend replaced by `backend` (the policy kept), e.g. a backend
/// that fails or never answers.
pub fn with_regulation_backend(
    state: std::sync::Arc<authserver::http::AppState>,
    backend: std::sync::Arc<dyn authserver_core::regulation::RegulationStore>,
) -> std::sync::Arc<authserver::http::AppState> {
    use std::sync::Arc;
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
    Arc::new(authserver::http::AppState {
        gate: Arc::new(gate),
        ..built
    })
}
