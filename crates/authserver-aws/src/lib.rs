//! authserver-aws: the adapters that talk to AWS, behind the ports of `authserver-core`.
//!
//! The `authserver` crate wires them in when the configuration asks for them; nothing here
//! knows about HTTP, Lambda or the settings file (plain config structs come in instead).
//!
//! # Layout
//! - [`alarms`]: `ops alarms test`, each alarm driven to `ALARM` and back with `SetAlarmState`.
//! - [`client`]: the shared SDK configuration (standard chain, endpoint override, timeouts).
//! - [`cloudwatch`]: the CloudWatch alarm calls `alarms` and `compliance` share (listing a
//!   deployment's alarms, the names a composite rule refers to).
//! - [`compliance`]: the compliance check of a deployment (controls, evidence, CIS references)
//!   and the `ComplianceViolations` metric.
//! - [`oauth`]: the OAuth issuer on AWS: [`oauth::KmsSigner`] and [`oauth::SecretKeySigner`]
//!   (token signing keys on a publish-before-sign schedule) and [`oauth::DynamoDbJtiStore`].
//! - [`regulation`]: [`DynamoDbRegulation`], brute-force regulation state shared by a fleet.
//! - [`retry`]: bounded retries with exponential backoff and jitter; AWS errors reduced to
//!   loggable, secret-free [`CallError`]s.
//! - [`rotation`]: [`Rotator`], the four Secrets Manager rotation steps for service accounts.
//! - [`secrets`]: [`SecretsManagerStore`], the credential store over one Secrets Manager secret
//!   (following rotations: pending and previous versions' service-account passwords).
//! - [`service_accounts`]: the rules for service accounts' delivery secrets (one each, never the
//!   credential secret), checked at push, load and rotation.
//! - `sm`: the small Secrets Manager calls rotation and `users push/pull` share.
//! - [`users`]: `users push/pull`, the users document to and from the credential secret.
//! - [`users_table`]: [`UsersTableStore`], the DynamoDB users store (one item per user, looked
//!   up on a cache miss) and [`UsersTable`], the CLI's conditional writes.

pub mod alarms;
pub mod client;
pub mod cloudwatch;
pub mod compliance;
pub mod oauth;
pub mod regulation;
pub mod retry;
pub mod rotation;
pub mod secrets;
pub mod service_accounts;
mod sm;
pub mod users;
pub mod users_table;

pub use client::{dynamodb_client, sdk_config, secrets_client};
pub use regulation::DynamoDbRegulation;
pub use retry::{CallError, RetryPolicy};
pub use rotation::{PasswordRuleError, RotationConfig, RotationError, RotationEvent, Rotator, StepReport};
pub use secrets::{RefreshError, Refreshed, SecretsManagerStore, SecretsStoreConfig, current_value};
pub use users_table::{UsersTable, UsersTableConfig, UsersTableStore};
