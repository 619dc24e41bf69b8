//! The rotation tests' rig on moto: a credential secret with service accounts and their
//! delivery secrets, a rotator over it, and what a client sees (its delivered password, and
//! whether a server accepts it).

use super::store;
use super::wire::{Tap, Wire};
use super::{self as moto, Aws};
use crate::fakes::Recorder;
use crate::hash::{CHEAP, hash, policy};
use authserver_aws::{RetryPolicy, RotationConfig, RotationEvent, Rotator, SecretsManagerStore};
use authserver_core::{
    Authenticator, Credentials, Outcome, Secret, SnapshotSource, StoredHash, SystemClock, UserHasher,
    VerifiedCache,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The alphabet of generated passwords.
pub const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The rotation rig of one fresh account (see [`rig`]).
pub struct Rig {
    /// The account's clients.
    pub aws: Aws,
    /// The credential secret's ARN.
    pub arn: String,
    /// `svc-a`'s delivery secret (a JSON object with `password`).
    pub json_delivery: String,
    /// `svc-b`'s delivery secret (the bare password).
    pub plain_delivery: String,
    /// The disabled `off` account's delivery secret.
    pub off_delivery: String,
    /// The rotation function's ARN (stored in moto, never run).
    pub function: String,
    /// The rotators' audit events.
    pub audit: Arc<Recorder>,
}

/// A credential secret with two service accounts (`svc-a` delivering JSON, `svc-b` plain
/// text), a human and a disabled service account (`off`); rotation function stored in moto.
pub async fn rig(url: &str) -> Rig {
    let aws = Aws::fresh(url).await;
    let u = moto::unique();
    let json_delivery = format!("deliv/{u}/a");
    let plain_delivery = format!("deliv/{u}/b");
    let off_delivery = format!("deliv/{u}/off");
    aws.secret(
        &json_delivery,
        r#"{"url":"https://service-a.example","password":"initial-a"}"#,
        None,
    )
    .await;
    aws.secret(&plain_delivery, "initial-b", None).await;
    aws.secret(&off_delivery, "off-pw", None).await;
    let doc = json!({
        "svc-a": {"passwordHash": h("initial-a"), "deliverySecretId": json_delivery, "roles": ["m2m"],
                  "passwordChangedAt": "2020-01-01T00:00:00Z"},
        "svc-b": {"passwordHash": h("initial-b"), "deliverySecretId": plain_delivery},
        "human": {"passwordHash": h("human-pw"), "passwordChangedAt": "2020-01-01T00:00:00Z"},
        "off":   {"passwordHash": h("off-pw"), "status": "DISABLED", "deliverySecretId": off_delivery},
    });
    let arn = aws
        .secret(&format!("rot/{u}/credentials"), &doc.to_string(), None)
        .await;
    let function = aws.function(&format!("rot-{u}-rotation"), true).await;
    Rig {
        aws,
        arn,
        json_delivery,
        plain_delivery,
        off_delivery,
        function,
        audit: Arc::new(Recorder::default()),
    }
}

/// A hash at the tests' cheap cost.
pub fn h(pw: &str) -> String {
    hash(pw, CHEAP)
}

/// The rotation settings of the tests: [`ALPHABET`], the cheap policy, fast retries, no settle.
pub fn config(secret: Option<&str>) -> RotationConfig {
    RotationConfig {
        secret_id: secret.map(str::to_owned),
        password_length: 32,
        alphabet: ALPHABET.chars().collect(),
        policy: policy(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        },
        settle: Duration::ZERO,
    }
}

impl Rig {
    /// A rotator over the credential secret, finishing without a settle wait.
    pub fn rotator(&self) -> Rotator {
        self.settling_rotator(Duration::ZERO)
    }

    /// A rotator whose finishSecret waits `settle` first.
    pub fn settling_rotator(&self, settle: Duration) -> Rotator {
        self.rotator_on(self.aws.sm.clone(), settle)
    }

    /// A rotator over `client`.
    pub fn rotator_on(&self, client: aws_sdk_secretsmanager::Client, settle: Duration) -> Rotator {
        let config = RotationConfig {
            settle,
            ..config(Some(&self.arn))
        };
        Rotator::new(client, config, UserHasher::new(b"k"), self.audit.clone())
    }

    /// This account's Secrets Manager client, with `wire` seeing every call.
    pub fn tapped(&self, wire: Arc<Wire>) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::from_conf(
            self.aws.sm.config().to_builder().interceptor(Tap(wire)).build(),
        )
    }

    /// A server's store over the credential secret: pending passwords accepted, previous ones
    /// for `grace` after a rotation.
    pub fn store(&self, grace: Duration) -> SecretsManagerStore {
        let mut config = store::config(&self.arn);
        config.accept_pending = true;
        config.previous_grace = grace;
        SecretsManagerStore::new(
            self.aws.sm.clone(),
            config,
            UserHasher::new(b"k"),
            Arc::new(SystemClock),
        )
    }

    /// The password a client of `delivery` reads (its `AWSCURRENT`).
    pub async fn delivered(&self, delivery: &str) -> String {
        password_of(&self.aws.value(delivery, "AWSCURRENT").await)
    }

    /// Every active service account's client, reading its delivery secret now, is accepted by
    /// a server that starts now (2 h grace).
    pub async fn clients_work(&self) {
        let server = self.store(Duration::from_secs(7200));
        server.refresh().await.unwrap();
        for (user, delivery) in [("svc-a", &self.json_delivery), ("svc-b", &self.plain_delivery)] {
            let pw = self.delivered(delivery).await;
            assert!(accepted(&server, user, &pw), "{user}'s client is refused");
        }
    }

    /// Puts the credential secret's labels where AWS leaves them after a put of version `put`
    /// that replaced `old_current` during a rotation. moto's `RotateSecret` leaves its notion of
    /// the current version on the pending one, so moto's put relabels *that* version
    /// `AWSPREVIOUS` (dropping `AWSPENDING`) and leaves `AWSCURRENT` on `old_current` too.
    /// AWS moves `AWSCURRENT` to `put` and `AWSPREVIOUS` to `old_current` (which `users push`
    /// then detaches: `previous` false), and leaves `AWSPENDING` where it was: on `pending`,
    /// when the put did not remove it itself.
    pub async fn as_aws_after_put(
        &self,
        put: &str,
        old_current: &str,
        pending: Option<&str>,
        previous: bool,
    ) {
        let sm = &self.aws.sm;
        let stages = self.aws.stages(&self.arn).await;
        let has = |v: &str, l: &str| stages.get(v).is_some_and(|ls| ls.iter().any(|x| x == l));
        assert!(has(put, "AWSCURRENT"), "{stages:?}");
        if has(old_current, "AWSCURRENT") {
            sm.update_secret_version_stage()
                .secret_id(&self.arn)
                .version_stage("AWSCURRENT")
                .remove_from_version_id(old_current)
                .send()
                .await
                .unwrap();
        }
        let stages = self.aws.stages(&self.arn).await;
        let has = |v: &str, l: &str| stages.get(v).is_some_and(|ls| ls.iter().any(|x| x == l));
        if !previous && has(old_current, "AWSPREVIOUS") {
            sm.update_secret_version_stage()
                .secret_id(&self.arn)
                .version_stage("AWSPREVIOUS")
                .remove_from_version_id(old_current)
                .send()
                .await
                .unwrap();
        }
        if let Some(token) = pending.filter(|t| !has(t, "AWSPENDING")) {
            sm.update_secret_version_stage()
                .secret_id(&self.arn)
                .version_stage("AWSPENDING")
                .move_to_version_id(token)
                .send()
                .await
                .unwrap();
        }
        let stages = self.aws.stages(&self.arn).await;
        let current: Vec<_> = stages
            .iter()
            .filter(|(_, l)| l.iter().any(|x| x == "AWSCURRENT"))
            .map(|(v, _)| v.as_str())
            .collect();
        assert_eq!(current, [put], "{stages:?}");
    }

    /// The version carrying `label` on `secret`.
    pub async fn holder(&self, secret: &str, label: &str) -> String {
        self.aws
            .stages(secret)
            .await
            .into_iter()
            .find(|(_, l)| l.iter().any(|x| x == label))
            .map(|(id, _)| id)
            .unwrap_or_else(|| panic!("no {label} on {secret}"))
    }
}

/// A delivered value's password (JSON object or bare).
pub fn password_of(value: &str) -> String {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(map)) => map["password"].as_str().unwrap().to_owned(),
        _ => value.to_owned(),
    }
}

/// Whether `store`'s snapshot accepts `user`:`pw`.
pub fn accepted(store: &SecretsManagerStore, user: &str, pw: &str) -> bool {
    let auth = Authenticator::new(VerifiedCache::new(
        8,
        Duration::from_secs(1),
        Arc::new(SystemClock),
    ));
    let snapshot = store.current().unwrap();
    matches!(
        auth.authenticate(&snapshot, Credentials::new(user, pw).unwrap())
            .outcome,
        Outcome::Allowed { .. }
    )
}

/// The event Secrets Manager sends for `step`.
pub fn event(step: &str, secret: &str, token: &str) -> RotationEvent {
    RotationEvent {
        step: step.into(),
        secret_id: secret.into(),
        client_request_token: token.into(),
    }
}

/// The outcome a step reports (it must succeed).
pub async fn outcome(r: &Rotator, step: &str, secret: &str, token: &str) -> &'static str {
    r.run(&event(step, secret, token)).await.unwrap().outcome
}

/// The error a step fails with.
pub async fn failure(r: &Rotator, step: &str, secret: &str, token: &str) -> String {
    match r.run(&event(step, secret, token)).await {
        Ok(report) => panic!("{step} succeeded: {report:?}"),
        Err(e) => e.to_string(),
    }
}

/// Whether `phc` verifies `password` under the cheap policy.
pub fn verifies(phc: &str, password: &str) -> bool {
    StoredHash::parse(phc, &policy())
        .unwrap()
        .verify(&Secret::from(password))
}

/// The labels of one version.
pub fn labels(stages: &HashMap<String, Vec<String>>, version: &str) -> Vec<String> {
    let mut l = stages.get(version).cloned().unwrap_or_default();
    l.sort();
    l
}

/// The value of `version` of `secret`.
pub async fn value_of(aws: &Aws, secret: &str, version: &str) -> String {
    aws.sm
        .get_secret_value()
        .secret_id(secret)
        .version_id(version)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}
