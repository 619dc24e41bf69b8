//! authserver-aws: the adapters that talk to AWS, behind the ports of `authserver-core`.
//!
//! The `authserver` crate wires them in when the configuration asks for them; nothing here
//! knows about HTTP, Lambda or the settings file (plain config structs come in instead).
//!
//! # Layout
//! - [`client`]: the shared SDK configuration (standard chain, endpoint override, timeouts).
//! - [`regulation`]: [`DynamoDbRegulation`], brute-force regulation state shared by a fleet.
//! - [`retry`]: bounded retries with exponential backoff and jitter; AWS errors reduced to
//!   loggable, secret-free [`CallError`]s.
//! - [`secrets`]: [`SecretsManagerStore`], the credential store over one Secrets Manager secret.

pub mod client;
pub mod regulation;
pub mod retry;
pub mod secrets;

pub use client::{dynamodb_client, sdk_config, secrets_client};
pub use regulation::DynamoDbRegulation;
pub use retry::{CallError, RetryPolicy};
pub use secrets::{RefreshError, Refreshed, SecretsManagerStore, SecretsStoreConfig, current_value};
