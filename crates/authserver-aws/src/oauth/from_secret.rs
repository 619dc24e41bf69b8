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

/// The schedule in service and where it comes from.
pub struct SecretSchedule<K> {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    retain_for: u64,
    now: WallClock,
    parse: Parse<K>,
    /// What the secret holds, for errors ("signing key secret").
    what: &'static str,
    schedule: RwLock<Arc<Schedule<K>>>,
}

impl<K> SecretSchedule<K> {
    /// Reads the secret; fails when it is unreadable, does not parse or has no active key.
    pub async fn load(
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        retain_for: u64,
        now: WallClock,
        parse: Parse<K>,
        what: &'static str,
    ) -> Result<Self, LoadError> {
        let schedule = fetch(&client, &secret_id, retain_for, now(), parse, what).await?;
        Ok(Self {
            client,
            secret_id,
            retain_for,
            now,
            parse,
            what,
            schedule: RwLock::new(Arc::new(schedule)),
        })
    }

    /// Re-reads the secret (a rotation added a key); on failure the loaded schedule stays.
    pub async fn refresh(&self) -> Result<(), LoadError> {
        let fresh = fetch(
            &self.client,
            &self.secret_id,
            self.retain_for,
            self.now(),
            self.parse,
            self.what,
        )
        .await?;
        *self.schedule.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// The schedule in service.
    pub fn current(&self) -> Arc<Schedule<K>> {
        self.schedule.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The wall clock's now, in seconds.
    pub fn now(&self) -> u64 {
        (self.now)()
    }

    /// The secret's id.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
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

async fn fetch<K>(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    retain_for: u64,
    now: u64,
    parse: Parse<K>,
    what: &str,
) -> Result<Schedule<K>, LoadError> {
    let value = crate::secrets::current_value(client, secret_id, &RetryPolicy::default())
        .await
        .map_err(|e| LoadError(format!("{what}: {e}")))?;
    let schedule = parse(&value, retain_for)?;
    super::check_schedule(&schedule, now)?;
    Ok(schedule)
}
