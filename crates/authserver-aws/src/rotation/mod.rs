//! Secrets Manager rotation of the credential secret: the four steps a rotation function runs
//! (`createSecret`, `setSecret`, `testSecret`, `finishSecret`), for the service accounts in
//! the store (users with a `deliverySecretId`).
//!
//! | step | what it does |
//! |---|---|
//! | `createSecret` | for each service account (ACTIVE or DISABLED: a disabled one stays so), a new random password (length and alphabet from the config), staged in its delivery secret as `AWSPENDING` under the rotation token, hashed with Argon2id at the cost of the account's current hash; the store with those hashes written as the credential secret's `AWSPENDING` version |
//! | `setSecret` | makes sure every delivery secret has that password staged `AWSPENDING` (the version the token names) |
//! | `testSecret` | the pending store meets the hash policy and differs from `AWSCURRENT` only in the rotated accounts' hashes and `passwordChangedAt`; each delivered password verifies against its pending hash. On a pending version without a value (the rotation schedule's configuration probe: Secrets Manager runs only `testSecret` then) it checks that `AWSCURRENT` parses and every delivery secret can be described, and succeeds |
//! | `finishSecret` | checks that every delivery secret holds the token's version, waits the settle time, checks again (and that `AWSCURRENT` and `AWSPENDING` did not move meanwhile), then moves `AWSCURRENT` to the token's version on each delivery secret, then on the credential secret; `AWSPENDING` removed. A failure after a delivery secret moved moves it back ([`finish`]) |
//!
//! `createSecret` (and the probe) first check the service accounts' delivery secrets
//! ([`crate::service_accounts`]: one each, never the credential secret, compared by ARN), so
//! nothing is written for a document that breaks those rules.
//!
//! Why `createSecret` already writes the delivery secrets: the new plaintext passwords must
//! survive from one invocation to the next, and the only place they may live is the delivery
//! secret (never next to the hashes). Writing them there first, under the token as client
//! request token, makes a retried `createSecret` find the same passwords instead of inventing
//! others; clients read `AWSCURRENT`, so nothing changes for them before `finishSecret`.
//!
//! Every step is idempotent under retries. Every step first checks, as Secrets Manager's own
//! templates do, that rotation is enabled, that the token names a version of the secret, and
//! that the version is staged `AWSPENDING` (a token whose version is already `AWSCURRENT`
//! means the rotation is done: nothing to do). Any other token is refused. Every write to a
//! secret passes `VersionStages=["AWSPENDING"]` explicitly (the rotation role may write nothing
//! else). Logs and errors name accounts by `user_hash`, never by name, name the secret a failed
//! call was about, and never carry a password or hash.

mod delivery;
mod document;
mod finish;
mod steps;

use crate::retry::{CallError, RetryPolicy};
use crate::sm;
use authserver_core::{AuditEvent, AuditSink, HashPolicy, UserHasher};
use aws_sdk_secretsmanager::Client;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

pub use document::generate_password;

/// The plain configuration of a [`Rotator`].
#[derive(Debug, Clone, PartialEq)]
pub struct RotationConfig {
    /// The credential secret this function rotates (name or ARN); events for any other
    /// secret are refused. `None`: any secret (tests, one-off use).
    pub secret_id: Option<String>,
    /// Length of generated passwords.
    pub password_length: usize,
    /// Characters generated passwords are drawn from (uniformly).
    pub alphabet: Vec<char>,
    /// The hash policy the pending store must meet.
    pub policy: HashPolicy,
    /// Retries of each AWS call.
    pub retry: RetryPolicy,
    /// How long `finishSecret` waits before moving `AWSCURRENT`: longer than the servers'
    /// version check, so each of them accepts the new passwords (as `AWSPENDING`) before any
    /// client can read them as current. Zero: no wait.
    pub settle: std::time::Duration,
}

impl RotationConfig {
    /// Checks that generated passwords are usable over Basic auth and strong: printable
    /// ASCII, at most 1024 characters, at least 128 bits of entropy.
    pub fn validate(&self) -> Result<(), PasswordRuleError> {
        let mut distinct = self.alphabet.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != self.alphabet.len() {
            return Err(PasswordRuleError::AlphabetRepeats);
        }
        if self.alphabet.iter().any(|c| !c.is_ascii_graphic()) {
            return Err(PasswordRuleError::AlphabetNotPrintable);
        }
        if self.password_length > 1024 {
            return Err(PasswordRuleError::TooLong);
        }
        let bits = self.password_length as f64 * (distinct.len().max(1) as f64).log2();
        if bits < 128.0 {
            return Err(PasswordRuleError::TooWeak { bits });
        }
        Ok(())
    }
}

/// Why [`RotationConfig::validate`] refuses the generated passwords' length or alphabet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PasswordRuleError {
    /// A character appears twice in the alphabet, so draws would not be uniform.
    #[error("the password alphabet repeats characters (it must be uniform)")]
    AlphabetRepeats,
    /// The alphabet holds a space, a control or a non-ASCII character.
    #[error("the password alphabet must be printable ASCII without spaces")]
    AlphabetNotPrintable,
    /// The length is over 1024 characters.
    #[error("passwords longer than 1024 characters do not fit Basic auth here")]
    TooLong,
    /// Length and alphabet together give less than 128 bits of entropy.
    #[error(
        "generated passwords would have {bits:.0} bits of entropy; at least 128 are required \
         (raise the length or widen the alphabet)"
    )]
    TooWeak {
        /// The entropy they would have.
        bits: f64,
    },
}

/// One invocation from Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    /// `createSecret`, `setSecret`, `testSecret` or `finishSecret`.
    pub step: String,
    /// The secret's ARN (or name).
    pub secret_id: String,
    /// The rotation token: the id of the version being prepared.
    pub client_request_token: String,
}

/// The four steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Generate and stage the new passwords and hashes.
    Create,
    /// Make sure every delivery secret has its new password staged.
    Set,
    /// Verify the pending version.
    Test,
    /// Move `AWSCURRENT`.
    Finish,
}

impl Step {
    /// The step named in an event.
    pub fn parse(name: &str) -> Option<Step> {
        match name {
            "createSecret" => Some(Step::Create),
            "setSecret" => Some(Step::Set),
            "testSecret" => Some(Step::Test),
            "finishSecret" => Some(Step::Finish),
            _ => None,
        }
    }

    /// The event's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// The step.
    pub step: &'static str,
    /// The secret's ARN.
    pub secret: String,
    /// The rotation token (a version id: not secret).
    pub token: String,
    /// `done`, `already done` (a retry found the work done), `already current` (the token's
    /// version is `AWSCURRENT`: the rotation is over) or `configuration checked` (`testSecret`
    /// on a pending version without a value: the rotation schedule's probe).
    pub outcome: &'static str,
    /// `user_hash` of every service account the step handled.
    pub accounts: Vec<String>,
}

/// Why a step failed. Messages are safe to log (no password, hash or username).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// The event is not one this function may act on: unknown step, another secret, rotation
    /// disabled, or a token that is not the pending version.
    #[error("rotation refused: {0}")]
    Refused(String),
    /// An AWS call failed (after retries, when retryable).
    #[error(transparent)]
    Call(#[from] CallError),
    /// A secret's content is not what the rotation needs (invalid store, stale pending
    /// version, a delivered password that does not verify).
    #[error("rotation failed: {0}")]
    Invalid(String),
}

/// Runs rotation steps against Secrets Manager. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Rotator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: RotationConfig,
    hasher: UserHasher,
    audit: Arc<dyn AuditSink>,
}

/// What every step learns first.
struct Context {
    arn: String,
    /// The secret's name, when Secrets Manager gave it.
    name: Option<String>,
    token: String,
    stages: HashMap<String, Vec<String>>,
}

impl Context {
    /// The ids the credential secret is known by, for [`crate::service_accounts::check`].
    fn ids(&self) -> Vec<&str> {
        std::iter::once(self.arn.as_str())
            .chain(self.name.as_deref())
            .collect()
    }
}

/// A failed call on `secret`, with the secret named (AWS's own messages do not name it).
fn on(secret: &str) -> impl FnOnce(CallError) -> RotationError + '_ {
    move |e| {
        RotationError::Call(CallError {
            message: format!("{} (secret {secret})", e.message),
            ..e
        })
    }
}

impl Rotator {
    /// A rotator; `hasher` names accounts in logs, `audit` receives one event per step.
    pub fn new(
        client: Client,
        config: RotationConfig,
        hasher: UserHasher,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                hasher,
                audit,
            }),
        }
    }

    /// Runs the step an event names.
    pub async fn run(&self, event: &RotationEvent) -> Result<StepReport, RotationError> {
        let step = Step::parse(&event.step)
            .ok_or_else(|| RotationError::Refused(format!("unknown step {:?}", event.step)))?;
        let result = self.step(step, event).await;
        match &result {
            Ok(report) => {
                tracing::info!(
                    step = report.step,
                    secret = report.secret,
                    token = report.token,
                    outcome = report.outcome,
                    accounts = ?report.accounts,
                    "rotation step"
                );
                self.inner.audit.emit(AuditEvent::AdminAction {
                    action: format!("rotation.{}", report.step),
                    target_user_hash: None,
                    resource: format!("{} version {} ({})", report.secret, report.token, report.outcome),
                    actor: "rotation".into(),
                });
            }
            Err(e) => tracing::error!(
                step = step.as_str(),
                secret = event.secret_id,
                token = event.client_request_token,
                error = %e,
                "rotation step failed"
            ),
        }
        result
    }

    async fn step(&self, step: Step, event: &RotationEvent) -> Result<StepReport, RotationError> {
        let ctx = self.context(event).await?;
        let report = |outcome, accounts| StepReport {
            step: step.as_str(),
            secret: ctx.arn.clone(),
            token: ctx.token.clone(),
            outcome,
            accounts,
        };
        if sm::has(&ctx.stages, &ctx.token, crate::secrets::CURRENT) {
            if step == Step::Finish {
                finish::drop_pending_label(self, &ctx).await?;
            }
            return Ok(report("already current", Vec::new()));
        }
        let (outcome, accounts) = match step {
            Step::Create => steps::create(self, &ctx).await?,
            Step::Set => steps::set(self, &ctx).await?,
            Step::Test => steps::test(self, &ctx).await?,
            Step::Finish => finish::finish(self, &ctx).await?,
        };
        Ok(report(outcome, accounts))
    }

    /// The checks every step starts with.
    async fn context(&self, event: &RotationEvent) -> Result<Context, RotationError> {
        let cfg = &self.inner.config;
        let described = sm::describe(&self.inner.client, &cfg.retry, &event.secret_id)
            .await
            .map_err(on(&event.secret_id))?;
        let arn = described.arn().unwrap_or(&event.secret_id).to_owned();
        if let Some(expected) = &cfg.secret_id {
            let names = [Some(event.secret_id.as_str()), described.arn(), described.name()];
            if !names.contains(&Some(expected.as_str())) {
                return Err(RotationError::Refused(format!(
                    "this function rotates {expected} only, not {}",
                    event.secret_id
                )));
            }
        }
        if described.rotation_enabled() != Some(true) {
            return Err(RotationError::Refused(format!(
                "rotation is not enabled on {arn}"
            )));
        }
        let stages = sm::stages(&described);
        let token = event.client_request_token.clone();
        if !stages.contains_key(&token) {
            return Err(RotationError::Refused(format!(
                "token {token} is not a version of {arn}"
            )));
        }
        let current = sm::has(&stages, &token, crate::secrets::CURRENT);
        if !current && !sm::has(&stages, &token, crate::secrets::PENDING) {
            return Err(RotationError::Refused(format!(
                "version {token} of {arn} is not staged AWSPENDING"
            )));
        }
        Ok(Context {
            name: described.name().map(str::to_owned),
            arn,
            token,
            stages,
        })
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }

    fn config(&self) -> &RotationConfig {
        &self.inner.config
    }

    fn user_hash(&self, user: &str) -> String {
        self.inner.hasher.hash(user)
    }
}
