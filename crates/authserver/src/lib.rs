//! authserver: the HTTP Basic-auth authorization server's adapters and surfaces around
//! `authserver-core`.
//!
//! # Layout
//! - [`config`]: settings (TOML file + `AUTHSERVER_*` environment), validation.
//! - [`store`]: credential store adapters behind the `SnapshotSource` port.
//! - [`limiter`]: the memory-aware Argon2id limiter on the blocking pool.
//! - [`decide`]: one authentication attempt from header values to a decision.
//! - [`http`]: the axum router shared by the standalone server and Lambda.
//! - [`server`]: the standalone accept loop and graceful shutdown.
//! - [`wiring`]: builds the state from settings.
//! - [`telemetry`]: logging setup and the metric name table.
//! - [`audit`]: the audit trail sinks (stdout, hash-chained file) and its verifier.
//! - [`cli`]: the `authserver` command line.

pub mod audit;
pub mod cli;
pub mod config;
pub mod decide;
pub mod http;
pub mod limiter;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod wiring;
