//! authserver: the HTTP Basic-auth authorization server's adapters and surfaces around
//! `authserver-core`.
//!
//! # Layout
//! Each module has a rank and uses only modules of lower rank (or, without a cycle, its own);
//! `tests/layering.rs` holds the same table and fails on an edge upward or any cycle.
//! - [`config`] (0): settings (TOML file + `AUTHSERVER_*` environment), typed on load, each
//!   section validating its own keys.
//! - [`files`] (0): reading reloaded files (regular only, size-capped) and seeing every change.
//! - [`store`] (0): credential store adapters behind the `SnapshotSource` port, and the locked,
//!   atomic users-file edits the CLI makes.
//! - [`tls`] (0): rustls for the standalone server, certificates reloaded on change.
//! - [`limiter`] (0): the memory-aware Argon2id limiter on the blocking pool.
//! - [`conn`] (0): per-connection deadlines (first request, idle) and the per-address cap.
//! - [`access`] (0): the access rules in service, reloaded from `rules.file` (last good kept).
//! - [`pacing`] (0): pads denials to the store's slowest hash cost (timing tells no cost apart).
//! - [`flight`] (0): single flight, one Argon2id run shared by identical concurrent attempts.
//! - [`telemetry`] (1): logs, metrics (the metric table, `/metrics`, `/stats`, Lambda EMF) and spans.
//! - [`audit`] (1): the audit trail sinks (stdout, hash-chained file), its verifier, and the one
//!   record per request that is both the access line and the audit event.
//! - [`regulation`] (2): the regulator around each attempt (bans, spray detection, trusted sources).
//! - [`decide`] (2): one authentication attempt from header values to a decision.
//! - [`oauth`] (2): the OAuth 2.0 issuer: signing keys, jti stores, client authentication
//!   through `decide`, token issuance and bearer-token checks.
//! - [`http`] (3): the axum router shared by the standalone server and Lambda (and, with the
//!   `ext-authz-grpc` feature, Envoy's ext_authz gRPC router for the standalone server).
//! - [`wiring`] (4): builds the state from settings (and, for Lambda, its EMF metrics sink).
//! - [`server`] (4): the standalone accept loop (HTTP, admin and gRPC listeners) and graceful
//!   shutdown.
//! - [`lambda`] (4): the Lambda runtime: proxy (the same router), API Gateway authorizer, rotation
//!   and compliance modes.
//! - [`compliance`] (4): the compliance check's target (from settings) and its human table.
//! - [`cli`] (5): the `authserver` command line.
//!
//! Wall-clock time comes from `authserver_core::clock`, so no lower rank reaches up for it.

pub mod access;
pub mod audit;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod conn;
pub mod decide;
pub mod files;
pub mod flight;
pub mod http;
pub mod lambda;
pub mod limiter;
pub mod oauth;
pub mod pacing;
pub mod regulation;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod wiring;
