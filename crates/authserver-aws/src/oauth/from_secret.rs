//! [`SecretSchedule`]: a key schedule read from one Secrets Manager secret at init and re-read
//! by the refresher, shared by [`super::secret_key::SecretKeySigner`] (private keys) and
//! [`super::public_key::PublicKeySet`] (their public half): the two differ only in how the
//! secret's value is parsed.

use super::schedule::Schedule;
use super::{LoadError, WallClock};
use crate::retry::RetryPolicy;
use authserver_core::oauth::{Alg, PublicJwk};
use std::sync::{Arc, RwLock};

/// Parses a secret's value into a schedule keeping retired keys `retain_for` seconds.
pub type Parse<K> = fn(&[u8], u64) -> Result<Schedule<K>, LoadError>;

/// Where a schedule comes from: one secret, and how its value is read.
pub struct SecretSource<K> {
    /// The Secrets Manager client.
    pub client: aws_sdk_secretsmanager::Client,
    /// The secret.
    pub secret_id: String,
    /// How long retired keys stay published, in seconds.
    pub retain_for: u64,
    /// The wall clock.
    pub now: WallClock,
    /// The parser of the secret's value.
    pub parse: Parse<K>,
    /// What the secret holds, for errors ("signing key secret").
    pub what: &'static str,
}

impl<K> SecretSource<K> {
    /// Reads and parses the secret; refuses a schedule with no key active now.
    async fn fetch(&self) -> Result<Schedule<K>, LoadError> {
        let value = crate::secrets::current_value(&self.client, &self.secret_id, &RetryPolicy::default())
            .await
            .map_err(|e| LoadError(format!("{}: {e}", self.what)))?;
        let schedule = (self.parse)(&value, self.retain_for)?;
        super::check_schedule(&schedule, (self.now)())?;
        Ok(schedule)
    }
}

/// The schedule in service and where it comes from.
pub struct SecretSchedule<K> {
    source: SecretSource<K>,
    schedule: RwLock<Arc<Schedule<K>>>,
}

impl<K> SecretSchedule<K> {
    /// Reads the secret; fails when it is unreadable, does not parse or has no active key.
    pub async fn load(source: SecretSource<K>) -> Result<Self, LoadError> {
        let schedule = source.fetch().await?;
        Ok(Self {
            source,
            schedule: RwLock::new(Arc::new(schedule)),
        })
    }

    /// Re-reads the secret (a rotation added a key); on failure the loaded schedule stays.
    pub async fn refresh(&self) -> Result<(), LoadError> {
        let fresh = self.source.fetch().await?;
        *self.schedule.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// The schedule in service.
    pub fn current(&self) -> Arc<Schedule<K>> {
        self.schedule.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The wall clock's now, in seconds.
    pub fn now(&self) -> u64 {
        (self.source.now)()
    }

    /// The secret's id.
    pub fn secret_id(&self) -> &str {
        &self.source.secret_id
    }

    /// The key that signs now (`load` and `refresh` refuse a schedule without an active key, so
    /// the first one only stands in for a clock set before every activation; see
    /// `KmsSigner::active`).
    pub fn active(&self) -> (String, Alg) {
        let schedule = self.current();
        let key = schedule.active(self.now()).unwrap_or_else(|| schedule.first());
        (key.public.kid.clone(), key.public.alg)
    }

    /// When the key that signs now became active.
    pub fn active_since(&self) -> Option<u64> {
        self.current().active(self.now()).map(|k| k.activates_at)
    }

    /// The keys JWKS publishes now.
    pub fn published(&self) -> Vec<PublicJwk> {
        self.current().published(self.now())
    }
}
