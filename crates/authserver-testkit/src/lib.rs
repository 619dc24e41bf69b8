//! Test support for the integration tests of every authserver crate: one place for the moto
//! and emulator harnesses, the real-binary runners, fakes and fixtures that the tests of
//! `authserver-aws` and `authserver` share, instead of files included by `#[path]` or copied
//! from one test to the next. `publish = false`: nothing here ships.
//!
//! Helpers fail by panicking (`unwrap`, `expect`, `assert!`): in a test a broken fixture is a
//! failed test, with the panic message as its report, which is why the crate allows them.
//!
//! # Layout
//! - [`skip`]: the one "skip or require" rule: a test whose tool or service is absent prints
//!   why and passes, unless its `TESTS_REQUIRE_*=1` switch makes it fail.
//! - [`moto`]: the moto harness: accounts, SDK clients against `MOTO_URL`, resources, the
//!   wire tap that counts and injects faults, the store and rotation rigs.
//! - [`emulator`]: cargo-lambda's Runtime API emulator and the function process.
//! - [`lambda`]: the Lambda handlers in process over the fixtures in
//!   `crates/authserver/tests/fixtures/lambda`.
//! - [`integrations`]: the proxy configurations of `docs/integrations.md`, taken from the doc by
//!   marker, with the test's addresses, run as a foreground child on a free port.
//! - [`nginx`]: nginx (unprivileged, temp prefix) around a doc block, with an echoing upstream.
//! - [`caddy`]: Caddy (no admin API, no automatic HTTPS) around a doc block.
//! - `grpc` (feature `ext-authz-grpc`): the ext_authz gRPC listener, a client from the same
//!   protos and `CheckRequest`s as Envoy sends them.
//! - [`process`]: the real `authserver serve` process with its output (`url`, `admin_url`).
//! - [`cli`]: the real `authserver` command line (`cli()`, `run_cli`).
//! - [`logs`]: capturing the `tracing` output of a test.
//! - [`wait`]: bounded polls (`eventually`), never timed assertions.
//! - [`fakes`]: the recording audit sink, stores that are down, regulation backends that fail
//!   or never answer, and swapping a state's regulation backend.
//! - [`kubelet`]: a Secret volume as the kubelet lays it out and swaps it (`..data`).
//! - [`tls`]: self-signed certificates.
//! - [`oauth_aws`]: signing keys for the OAuth signer tests (a fixed test-only RSA key, fresh P-256
//!   keys), JWS signing inputs, and verification from a published JWK with ring.
//! - [`hash`]: cheap hash costs and policies, so tests hash in microseconds.
//! - [`access`]: access rules in process: a state with rules, `/auth/forward` from a peer.
//! - [`users`]: users documents and files with distinctive plaintexts, settings over them.
//! - [`oauth`]: OAuth clients (one per authentication method), a signing key set, settings
//!   with `[oauth]` on, signed client assertions.
//! - [`oauth_http`]: the OAuth endpoints in process from a peer, the audit trail recorded,
//!   `/metrics` series read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod access;
pub mod caddy;
pub mod cli;
pub mod emulator;
pub mod fakes;
#[cfg(feature = "ext-authz-grpc")]
pub mod grpc;
pub mod hash;
pub mod integrations;
pub mod kubelet;
pub mod lambda;
pub mod logs;
pub mod moto;
pub mod nginx;
pub mod oauth;
pub mod oauth_aws;
pub mod oauth_http;
pub mod process;
pub mod skip;
pub mod tls;
pub mod users;
pub mod wait;
pub mod wire;

use std::path::PathBuf;

/// The `authserver` crate's directory (its fixtures live under `tests/fixtures`).
pub fn authserver_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../authserver")
}
