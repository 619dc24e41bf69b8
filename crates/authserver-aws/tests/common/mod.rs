//! Shared harness for the tests against a real moto server over the real SDK.
//!
//! Calls are counted, and faults injected, by an SDK interceptor ([`Wire`]) on the store's
//! client: it sees every HTTP attempt (retries included) with its `X-Amz-Target` operation.
//! Injected faults replace moto's real response with the error AWS sends (status, JSON body
//! with `__type`), so the SDK's own error parsing classifies them; the request still went to
//! moto over HTTP, and took effect unless the fault was injected with [`Wire::refuse_after`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../moto/mod.rs"]
pub mod moto;

/// The moto server's URL, or return from the test (skipped) when no moto server is configured
/// (`moto::url` fails the test instead when `AUTHSERVER_REQUIRE_AWS_TESTS` is set).
#[allow(unused_macros)] // likewise
macro_rules! moto_or_skip {
    ($test:literal) => {
        match $crate::common::moto::url($test) {
            Some(url) => url,
            None => return,
        }
    };
}
#[allow(unused_imports)] // test files that need no moto server include this module too
pub(crate) use moto_or_skip;
pub mod rotation;

use authserver_aws::{RetryPolicy, SecretsManagerStore, SecretsStoreConfig};
use authserver_core::{Clock, Cost, HashPolicy, ManualClock, Secret, UserHasher, hash_password};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_secretsmanager::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_secretsmanager::error::BoxError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The moto endpoint, or `None` after printing why the test is skipped (see [`moto::url`]).
pub fn moto_url(test: &str) -> Option<String> {
    moto::url(test)
}

/// A cheap policy so tests hash in microseconds; [`WEAK`] is below its floor.
pub fn policy() -> HashPolicy {
    HashPolicy {
        min_m_kib: 64,
        min_t: 1,
        max_m_kib: 65536,
        max_t: 4,
        max_p: 2,
    }
}
pub const CHEAP: Cost = Cost {
    m_kib: 64,
    t: 1,
    p: 1,
};
pub const WEAK: Cost = Cost {
    m_kib: 32,
    t: 1,
    p: 1,
};

/// A store document: (username, password, status) → JSON with hashes at `cost`.
pub fn document(users: &[(&str, &str)], cost: Cost) -> String {
    let map: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .map(|(user, pw)| {
            let hash = hash_password(&Secret::from(*pw), cost).unwrap();
            (
                (*user).to_owned(),
                serde_json::json!({"passwordHash": hash, "roles": ["reader"]}),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// What the wire saw, and faults to inject.
#[derive(Debug, Default)]
pub struct Wire {
    attempts: Mutex<HashMap<String, usize>>,
    faults: Mutex<Vec<Fault>>,
}

#[derive(Debug)]
struct Fault {
    operation: &'static str,
    status: u16,
    code: &'static str,
    skip: usize,
    remaining: usize,
    /// The request never takes effect (it reaches moto as an unknown operation); otherwise it
    /// does and only the answer is replaced (an answer lost after the work was done).
    blocked: bool,
}

impl Wire {
    /// HTTP attempts of `operation` so far (retries included).
    pub fn attempts(&self, operation: &str) -> usize {
        self.attempts.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    /// Every operation attempted so far, sorted.
    pub fn operations(&self) -> Vec<String> {
        let mut ops: Vec<String> = self.attempts.lock().unwrap().keys().cloned().collect();
        ops.sort();
        ops
    }

    /// Makes the next `times` answers to `operation` the AWS error `code` with `status` (the
    /// requests themselves still reach moto and take effect).
    pub fn inject(&self, operation: &'static str, status: u16, code: &'static str, times: usize) {
        self.inject_after(operation, 0, status, code, times);
    }

    /// Like [`Self::inject`], after `skip` answers to `operation` went through untouched.
    pub fn inject_after(
        &self,
        operation: &'static str,
        skip: usize,
        status: u16,
        code: &'static str,
        times: usize,
    ) {
        self.push(operation, skip, status, code, times, false);
    }

    /// Like [`Self::inject_after`], but the failed requests take no effect: a real refusal.
    pub fn refuse_after(
        &self,
        operation: &'static str,
        skip: usize,
        status: u16,
        code: &'static str,
        times: usize,
    ) {
        self.push(operation, skip, status, code, times, true);
    }

    fn push(
        &self,
        operation: &'static str,
        skip: usize,
        status: u16,
        code: &'static str,
        times: usize,
        blocked: bool,
    ) {
        self.faults.lock().unwrap().push(Fault {
            operation,
            status,
            code,
            skip,
            remaining: times,
            blocked,
        });
    }

    /// The fault due for this attempt of `op`, if any: (status, code, blocked).
    fn due(&self, op: &str) -> Option<(u16, &'static str, bool)> {
        let mut faults = self.faults.lock().unwrap();
        let fault = faults.iter_mut().find(|f| f.operation == op && f.remaining > 0)?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        fault.remaining -= 1;
        Some((fault.status, fault.code, fault.blocked))
    }
}

fn operation(headers: &aws_smithy_runtime_api::http::Headers) -> String {
    headers
        .get("x-amz-target")
        .and_then(|t| t.strip_prefix("secretsmanager."))
        .unwrap_or("unknown")
        .to_owned()
}

/// The fault decided for the attempt in flight (none: moto's answer stands), kept in the
/// config bag between hooks.
#[derive(Debug, Clone)]
struct Injected(Option<(u16, &'static str)>);

impl Storable for Injected {
    type Storer = StoreReplace<Self>;
}

/// The interceptor that feeds a [`Wire`].
#[derive(Debug)]
pub struct Tap(pub Arc<Wire>);

impl Intercept for Tap {
    fn name(&self) -> &'static str {
        "test-wire-tap"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(context.request().headers());
        *self.0.attempts.lock().unwrap().entry(op.clone()).or_default() += 1;
        // The request is gone by the time the response arrives: remember the fault, if any.
        let due = self.0.due(&op);
        if let Some((_, _, true)) = due {
            // moto refuses an operation it does not know, and changes nothing.
            context
                .request_mut()
                .headers_mut()
                .insert("x-amz-target", "secretsmanager.RefusedByTheTest");
        }
        cfg.interceptor_state()
            .store_put(Injected(due.map(|(status, code, _)| (status, code))));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Injected(Some((status, code)))) = cfg.load::<Injected>().cloned() else {
            return Ok(());
        };
        let body = format!(r#"{{"__type":"{code}","message":"injected by the test"}}"#);
        let mut response = aws_sdk_secretsmanager::config::http::HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        *context.response_mut() = response;
        Ok(())
    }
}

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
/// counts these tests assert are those of `AWSCURRENT` alone; `secrets_rotation.rs` covers it.
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
    pub admin: Client,
    pub wire: Arc<Wire>,
    pub clock: Arc<ManualClock>,
    pub store: SecretsManagerStore,
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

/// Polls `check` every 10 ms for up to 5 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
