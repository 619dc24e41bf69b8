//! Rotation mode: Secrets Manager calls the function with `{"Step", "SecretId",
//! "ClientRequestToken"}` for each of the four steps; [`authserver_aws::Rotator`] does the work
//! (see docs/rotation.md). A failed step answers an error, which Secrets Manager records as a
//! failed rotation (and retries); the message is safe to show (no password, hash or username).

use super::ColdStart;
use crate::config::Settings;
use authserver_aws::{RotationError, RotationEvent, Rotator};
use lambda_http::lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;

/// The handler state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Rotation {
    rotator: Rotator,
    cold: Arc<ColdStart>,
}

impl Rotation {
    /// Builds the rotator from settings: the SDK client, the `user_hash` key, the audit trail.
    /// Runs inside the multi-thread runtime (the `user_hash` key secret is read during init).
    pub async fn new(settings: &Settings, started: std::time::Instant) -> anyhow::Result<Self> {
        require_secret(settings)?;
        settings
            .rotation_config()
            .validate()
            .map_err(anyhow::Error::msg)?;
        let hasher = crate::wiring::hasher(settings)?;
        let audit = Arc::new(crate::audit::Audit::from_settings(
            &settings.audit,
            crate::audit::Stream::Stdout,
        )?);
        let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
        let rotator = Rotator::new(
            authserver_aws::secrets_client(&sdk),
            settings.rotation_config(),
            hasher,
            audit,
        );
        Ok(Self {
            rotator,
            cold: super::task_init_done("rotation", started),
        })
    }

    /// The rotator (tests drive it directly).
    pub fn rotator(&self) -> &Rotator {
        &self.rotator
    }

    /// Runs one step. A panic becomes a generic error.
    pub async fn handle(self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        self.cold.note("rotation");
        let Ok(event) = serde_json::from_value::<RotationEvent>(event.payload) else {
            return Err(diagnostic(
                "RotationRefused",
                "not a Secrets Manager rotation event",
            ));
        };
        let rotator = self.rotator.clone();
        match tokio::spawn(async move { rotator.run(&event).await }).await {
            Ok(Ok(report)) => {
                serde_json::to_value(report).map_err(|_| diagnostic("RotationError", "internal error"))
            }
            Ok(Err(e)) => Err(diagnostic(error_type(&e), &e.to_string())),
            Err(e) => {
                tracing::error!(panicked = e.is_panic(), "rotation step failed");
                Err(diagnostic("RotationError", "internal error"))
            }
        }
    }
}

/// The function rotates one credential secret: without it configured, it would act on events
/// for any secret its role can reach, so it refuses to start (an init error).
fn require_secret(settings: &Settings) -> anyhow::Result<()> {
    if settings.store.secret_id.trim().is_empty() {
        anyhow::bail!(
            "rotation mode needs the credential secret it rotates: set CREDENTIAL_SECRET_ARN \
             (store.secret_id); events for any other secret are refused"
        );
    }
    Ok(())
}

fn error_type(e: &RotationError) -> &'static str {
    match e {
        RotationError::Refused(_) => "RotationRefused",
        RotationError::Call(_) => "AwsCallFailed",
        RotationError::Invalid(_) => "RotationFailed",
    }
}

fn diagnostic(error_type: &str, message: &str) -> Diagnostic {
    Diagnostic {
        error_type: error_type.into(),
        error_message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_credential_secret_no_rotation_function() {
        let mut settings = Settings::default();
        settings.store.secret_id = String::new();
        let err = require_secret(&settings).unwrap_err().to_string();
        assert!(err.contains("CREDENTIAL_SECRET_ARN"), "{err}");
        settings.store.secret_id = "arn:aws:secretsmanager:us-east-1:1:secret:c-AbC123".into();
        assert!(require_secret(&settings).is_ok());
    }
}
