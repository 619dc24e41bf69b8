//! Bounded retries with exponential backoff and jitter, and AWS errors reduced to what is safe
//! to log and what decides a retry.
//!
//! Retried: throttling (any `*Throttl*` / `TooManyRequests` / `RequestLimitExceeded` code, or
//! HTTP 429), server errors (5xx), timeouts, connection failures and unreadable responses.
//! Not retried: everything the caller must fix (access denied, no such secret, bad request).

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::future::Future;
use std::time::Duration;

/// How one AWS call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (0 behaves as 1).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles with every further retry.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): exponential, capped, with "equal
    /// jitter" (half fixed, half random) so that instances spread out yet never hammer.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        jittered(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// `cap / 2 + uniform(0, cap / 2)`.
pub(crate) fn jittered(cap: Duration) -> Duration {
    let half = cap / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// A failed AWS call: operation, error code and a message free of secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct CallError {
    /// The API operation, e.g. `GetSecretValue`.
    pub operation: &'static str,
    /// The AWS error code, when the service answered with one.
    pub code: Option<String>,
    /// What happened (the service's message or the transport failure).
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    // DynamoDB's throttling answer (HTTP 400, so the status alone does not say retry).
    "ProvisionedThroughputExceededException",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Reduces an SDK error. Only the service's error code and message (which never quote the
/// secret) and transport descriptions are kept; response bodies are not.
pub fn classify<E, R>(operation: &'static str, error: &SdkError<E, R>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let status = error.raw_response().map(HasStatus::status_code);
    let code = error.code().map(str::to_owned);
    let (retryable, message) = match error {
        SdkError::ServiceError(_) => {
            let retryable = status.is_some_and(|s| s >= 500 || s == 429)
                || code.as_deref().is_some_and(|c| RETRYABLE_CODES.contains(&c));
            let message = format!(
                "{}: {}",
                code.as_deref().unwrap_or("unknown error"),
                error.message().unwrap_or("no message")
            );
            (retryable, message)
        }
        SdkError::TimeoutError(_) => (true, "timed out".to_owned()),
        SdkError::DispatchFailure(_) => (true, format!("{}", DisplayErrorContext(error))),
        // A body the SDK could not read may be anything: never quote it.
        SdkError::ResponseError(_) => (true, "unreadable response".to_owned()),
        SdkError::ConstructionFailure(_) => (false, "request could not be built".to_owned()),
        _ => (false, "unexpected SDK error".to_owned()),
    };
    CallError {
        operation,
        code,
        message,
        retryable,
    }
}

/// The HTTP status of a raw response (a seam so [`classify`] stays generic).
pub trait HasStatus {
    /// The status code.
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_secretsmanager::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Runs `call` until it succeeds, fails for good, or `policy` runs out of attempts.
pub async fn with_retries<T, F, Fut>(policy: &RetryPolicy, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if e.retryable && attempt < policy.max_attempts => {
                let delay = policy.delay(attempt - 1);
                tracing::debug!(
                    operation = e.operation,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    error = %e,
                    "retrying AWS call"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_cap_and_jitter() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for _ in 0..50 {
            let d0 = p.delay(0);
            assert!((50..=100).contains(&d0.as_millis()), "{d0:?}");
            let d1 = p.delay(1);
            assert!((100..=200).contains(&d1.as_millis()), "{d1:?}");
            let d9 = p.delay(40);
            assert!((150..=300).contains(&d9.as_millis()), "{d9:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_errors_up_to_the_limit() {
        let err = |retryable| CallError {
            operation: "Op",
            code: None,
            message: "m".into(),
            retryable,
        };
        let p = RetryPolicy::default();
        let mut calls = 0;
        let r: Result<(), _> = with_retries(&p, || {
            calls += 1;
            std::future::ready(Err(err(true)))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let _ = with_retries::<(), _, _>(&p, || {
            calls += 1;
            std::future::ready(Err(err(false)))
        })
        .await;
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r = with_retries(&p, || {
            calls += 1;
            std::future::ready(if calls < 2 { Err(err(true)) } else { Ok(7) })
        })
        .await;
        assert_eq!(r, Ok(7));
    }
}
