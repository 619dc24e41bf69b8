//! The Secrets Manager store rig: clients for moto's default account (optionally tapped),
//! unique secret names, versions put by an admin, and a store with the tests' timings on a
//! manual clock.

use super::wire::{Tap, Wire};
use crate::hash::policy;
use authserver_aws::{RetryPolicy, SecretsManagerStore, SecretsStoreConfig};
use authserver_core::{Clock, ManualClock, UserHasher};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use std::sync::Arc;
use std::time::Duration;

/// A client for moto, fake credentials and region, through the crate's own SDK config (so the
/// endpoint override, timeouts and disabled SDK retries are the production ones).
pub async fn client(url: &str, wire: Option<Arc<Wire>>) -> Client {
    let sdk = authserver_aws::sdk_config(Some(url)).await;
    let mut config = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"));
    if let Some(wire) = wire {
        config = config.interceptor(Tap(wire));
    }
    Client::from_conf(config.build())
}

/// A unique secret name per test (tests share one moto server and run in parallel).
pub fn secret_name(test: &str) -> String {
    format!("authserver-test/{test}/{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Creates the secret with `value`; returns its version id.
pub async fn create(admin: &Client, name: &str, value: &str) -> String {
    let out = admin
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.version_id().unwrap().to_owned()
}

/// Puts a new `AWSCURRENT` version; returns its id.
pub async fn put(admin: &Client, name: &str, value: &str) -> String {
    let out = admin
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.version_id().unwrap().to_owned()
}

/// Test timings: short TTLs, fast retries. Rotation following is off here, so the call
/// counts the store tests assert are those of `AWSCURRENT` alone; `secrets_rotation.rs`
/// covers it.
pub fn config(name: &str) -> SecretsStoreConfig {
    let mut c = SecretsStoreConfig::new(name, policy());
    c.ttl = Duration::from_secs(60);
    c.version_check = Duration::from_secs(10);
    c.max_stale = Duration::from_secs(120);
    c.accept_pending = false;
    c.previous_grace = Duration::ZERO;
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
    };
    c
}

/// Everything one store test needs.
pub struct Setup {
    /// An untapped client, for the test's own changes.
    pub admin: Client,
    /// What the store's client sent.
    pub wire: Arc<Wire>,
    /// The store's clock.
    pub clock: Arc<ManualClock>,
    /// The store under test.
    pub store: SecretsManagerStore,
    /// The secret's name (not created yet).
    pub name: String,
}

/// A store over a fresh secret name (not created), on a manual clock.
pub async fn setup(url: &str, test: &str, tweak: impl FnOnce(&mut SecretsStoreConfig)) -> Setup {
    let admin = client(url, None).await;
    let wire = Arc::new(Wire::default());
    let name = secret_name(test);
    let mut cfg = config(&name);
    tweak(&mut cfg);
    let clock = Arc::new(ManualClock::default());
    let store = SecretsManagerStore::new(
        client(url, Some(wire.clone())).await,
        cfg,
        UserHasher::new(b"test-key"),
        clock.clone() as Arc<dyn Clock>,
    );
    Setup {
        admin,
        wire,
        clock,
        store,
        name,
    }
}
