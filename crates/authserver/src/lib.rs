//! authserver: the HTTP Basic-auth authorization server's adapters and surfaces around
//! `authserver-core`.
//!
//! # Layout
//! - [`config`]: settings (TOML file + `AUTHSERVER_*` environment), validation.
//! - [`files`]: reading reloaded files (regular only, size-capped) and seeing every change (a
//!   leaf below `store` and `tls`).
//! - [`store`]: credential store adapters behind the `SnapshotSource` port.
//! - [`limiter`]: the memory-aware Argon2id limiter on the blocking pool.
//! - [`pacing`]: pads denials to the store's slowest hash cost (timing tells no cost apart).
//! - [`regulation`]: the regulator around each attempt (bans, spray detection, trusted sources).
//! - [`decide`]: one authentication attempt from header values to a decision.
//! - [`http`]: the axum router shared by the standalone server and Lambda.
//! - [`server`]: the standalone accept loop and graceful shutdown.
//! - [`conn`]: per-connection deadlines (first request, idle) and the per-address cap.
//! - [`lambda`]: the Lambda runtime: proxy (the same router), API Gateway authorizer, rotation
//!   and compliance modes.
//! - [`tls`]: rustls for the standalone server, certificates reloaded on change.
//! - [`wiring`]: builds the state from settings.
//! - [`telemetry`]: logs, metrics (the metric table, `/metrics`, `/stats`, Lambda EMF) and spans.
//! - [`audit`]: the audit trail sinks (stdout, hash-chained file) and its verifier.
//! - [`cli`]: the `authserver` command line.
//! - [`compliance`]: the compliance check's target (from settings) and its human table.

pub mod audit;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod conn;
pub mod decide;
pub mod files;
pub mod http;
pub mod lambda;
pub mod limiter;
pub mod pacing;
pub mod regulation;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod wiring;
