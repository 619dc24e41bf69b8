//! The SDK configuration every AWS adapter shares.
//!
//! Region and credentials come from the standard AWS chain (environment, profile, web identity,
//! container and instance metadata), so the same code runs on Lambda, ECS, EC2 and a laptop.
//! The SDK's own retries are turned off: the adapters retry through [`crate::retry`], and two
//! retry layers would multiply attempts (3 × 3) during an outage.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::tls;
use std::time::Duration;

/// Longest wait for a TCP/TLS connection to the AWS endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest one attempt (request and response) may take. Secrets Manager answers in tens of
/// milliseconds; a stuck attempt is better retried than waited for.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Loads the shared SDK configuration. `endpoint_url` (when non-empty) replaces every service
/// endpoint, for local AWS-compatible servers such as moto.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(url) = endpoint_url.filter(|u| !u.is_empty()) {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The SDK's HTTPS client on rustls with ring (the server's TLS uses ring too, so one crypto
/// library is linked, and cross-compiling for arm64 needs no C toolchain for it beyond ring's).
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// A Secrets Manager client for `sdk`.
pub fn secrets_client(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

/// A DynamoDB client for `sdk`.
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}
