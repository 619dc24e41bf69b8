//! [`LocalSigner`]: the standalone [`TokenSigner`] over the key set directory
//! ([`super::keyset`]), with the publish-before-sign schedule applied at every call (a key
//! written by `keys rotate` starts signing on time without a restart once it was read).

use super::keyset::{self, KeySetError, LoadedKey};
use authserver_core::oauth::{Alg, PublicJwk, SignError, TokenSigner};
use authserver_core::regulation::BoxFuture;
use std::path::PathBuf;
use std::sync::Arc;

/// Unix seconds now (a clock before 1970 reads as 0: tokens would then be expired, not valid).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs with the key set in `dir`.
#[derive(Debug)]
pub struct LocalSigner {
    dir: PathBuf,
    set: arc_swap::ArcSwap<KeySet>,
    /// How long a retired key stays published: token lifetime plus skew.
    retention: u64,
    now: fn() -> u64,
}

/// The set in service: the whole schedule (which key signs is decided on it, so an unreadable
/// newer key never hands signing back to an older one) and the keys loaded from it.
#[derive(Debug)]
struct KeySet {
    schedule: Vec<keyset::Scheduled>,
    /// Shared with the set before when a reload could not read a key again (a private key
    /// cannot be copied).
    keys: Vec<Arc<LoadedKey>>,
}

impl KeySet {
    fn key(&self, kid: &str) -> Option<&LoadedKey> {
        self.keys.iter().find(|k| k.at.kid == kid).map(|k| &**k)
    }
}

/// What a key is at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, signs later.
    Next,
    /// Signs now.
    Active,
    /// No longer signs; published until its tokens expired.
    Retired,
    /// Retired and all its tokens expired: no longer published, removable.
    Expired,
}

/// The state of each key of `keys` at `now` (same order). The active key is the one that most
/// recently started signing; of keys with the same `signs_from` (two `rotate --immediate` in
/// one second, or a clock set back), the one listed last: the newest.
pub fn states(keys: &[keyset::Scheduled], now: u64, retention: u64) -> Vec<KeyState> {
    let active = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.signs_from <= now)
        .max_by_key(|(i, k)| (k.signs_from, *i))
        .map(|(i, _)| i);
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            if k.signs_from > now {
                return KeyState::Next;
            }
            if Some(i) == active {
                return KeyState::Active;
            }
            let until = successor_start(keys, i, now).unwrap_or(now);
            if until.saturating_add(retention) > now {
                KeyState::Retired
            } else {
                KeyState::Expired
            }
        })
        .collect()
}

/// When key `i` retired: the first key after it, in (`signs_from`, position) order, started
/// signing (`None`: it has not retired by `now`).
fn successor_start(keys: &[keyset::Scheduled], i: usize, now: u64) -> Option<u64> {
    let from = (keys[i].signs_from, i);
    keys.iter()
        .enumerate()
        .filter(|(j, o)| (o.signs_from, *j) > from && o.signs_from <= now)
        .map(|(_, o)| o.signs_from)
        .min()
}

/// How long a just-retired key may still sign a token whose header was built before the switch
/// (an issuance takes milliseconds; a minute covers any stall; same as the AWS schedule's).
const SWITCH_GRACE: u64 = 60;

/// Whether key `i` retired (the next key started signing) less than [`SWITCH_GRACE`] ago.
fn retired_within_grace(keys: &[keyset::Scheduled], i: usize, now: u64) -> bool {
    successor_start(keys, i, now).is_some_and(|at| now.saturating_sub(at) < SWITCH_GRACE)
}

/// The `kid` of the JWS header at the start of `signing_input`.
fn header_kid(signing_input: &[u8]) -> Result<String, SignError> {
    use base64::Engine as _;
    let bad = || SignError("the signing input has no readable JWS header".into());
    let header = signing_input.split(|b| *b == b'.').next().ok_or_else(bad)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| bad())?;
    let value: serde_json::Value = serde_json::from_slice(&json).map_err(|_| bad())?;
    value
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(bad)
}

impl LocalSigner {
    /// Loads the key set; refuses one with no key that signs now, an unsafe directory, or any
    /// listed key that cannot be loaded (at start there is no earlier copy to fall back on, and
    /// the operator is there to see it).
    pub fn open(dir: PathBuf, retention: u64) -> Result<Self, KeySetError> {
        Self::open_with_clock(dir, retention, unix_now)
    }

    /// [`LocalSigner::open`] with a clock (tests).
    pub fn open_with_clock(dir: PathBuf, retention: u64, now: fn() -> u64) -> Result<Self, KeySetError> {
        let loaded = keyset::load(&dir)?;
        if let Some((_, e)) = loaded.unreadable.into_iter().next() {
            return Err(e);
        }
        if !loaded.schedule.iter().any(|k| k.signs_from <= now()) {
            return Err(KeySetError::Manifest(
                dir.join(keyset::MANIFEST),
                "no key signs now: run `authserver keys generate`".into(),
            ));
        }
        crate::telemetry::oauth::figures().set_unloadable_keys(0);
        let set = KeySet {
            schedule: loaded.schedule,
            keys: loaded.keys.into_iter().map(Arc::new).collect(),
        };
        Ok(Self {
            dir,
            set: arc_swap::ArcSwap::from_pointee(set),
            retention,
            now,
        })
    }

    /// Re-reads the directory (a key added by `keys rotate`, removed by `keys remove`).
    ///
    /// `keys.json` decides: a key it no longer lists leaves service now, whatever else this
    /// read finds. A listed key whose file cannot be loaded (unreadable, damaged, unsafe mode)
    /// keeps the copy loaded before if there is one, and is otherwise left out: if it is the
    /// key that signs now, token issuance fails closed rather than an older key signing again.
    /// Those keys are returned (the caller logs them). An unsafe directory, an unreadable
    /// `keys.json`, or a schedule with no key signing now leaves the current set in service.
    pub fn reload(&self) -> Result<Vec<(String, KeySetError)>, KeySetError> {
        let loaded = keyset::load(&self.dir)?;
        if !loaded.schedule.iter().any(|k| k.signs_from <= (self.now)()) {
            return Err(KeySetError::Manifest(
                self.dir.join(keyset::MANIFEST),
                "no key signs now".into(),
            ));
        }
        let before = self.set.load();
        let mut keys: Vec<Arc<LoadedKey>> = loaded.keys.into_iter().map(Arc::new).collect();
        // The same kid names the same key (`keys add` never overwrites a PEM): a listed key
        // that fails to load now keeps the copy read before. Its schedule entry is the new one
        // (states are computed on `schedule`, never on `LoadedKey::at`).
        keys.extend(
            loaded
                .unreadable
                .iter()
                .filter_map(|(kid, _)| before.keys.iter().find(|k| k.at.kid == *kid).map(Arc::clone)),
        );
        self.set.store(Arc::new(KeySet {
            schedule: loaded.schedule,
            keys,
        }));
        crate::telemetry::oauth::figures().set_unloadable_keys(loaded.unreadable.len());
        Ok(loaded.unreadable)
    }

    fn with_states<T>(&self, f: impl FnOnce(&KeySet, &[KeyState]) -> T) -> T {
        let set = self.set.load();
        f(&set, &states(&set.schedule, (self.now)(), self.retention))
    }
}

impl TokenSigner for LocalSigner {
    fn active(&self) -> (String, Alg) {
        self.with_states(|set, st| {
            let at = set
                .schedule
                .iter()
                .zip(st)
                .find(|(_, s)| **s == KeyState::Active)
                .map(|(at, _)| at);
            match at.and_then(|at| Some((at, set.key(&at.kid)?))) {
                Some((at, k)) => {
                    crate::telemetry::oauth::figures().active_key_since(at.signs_from);
                    (at.kid.clone(), k.alg)
                }
                // open() and reload() keep a schedule with a key that signs now; when that key
                // could not be loaded, no kid: `sign` refuses it and issuance fails closed.
                None => (String::new(), Alg::Es256),
            }
        })
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        // The key the header names, not "the active key now": the issuer reads `active()` for the
        // header and signs a moment later; at a `signs_from` instant (or a reload in between) the
        // two would disagree and the token would verify nowhere (the AWS schedule does the same).
        let result = header_kid(signing_input).and_then(|kid| {
            self.with_states(|set, st| {
                let now = (self.now)();
                let missing = || SignError("the header names a key not in the key set".into());
                let i = set
                    .schedule
                    .iter()
                    .position(|k| k.kid == kid)
                    .ok_or_else(missing)?;
                let key = set.key(&kid).ok_or_else(missing)?;
                let usable = match st[i] {
                    KeyState::Active => true,
                    KeyState::Retired => retired_within_grace(&set.schedule, i, now),
                    KeyState::Next | KeyState::Expired => false,
                };
                if !usable {
                    return Err(SignError("the header names a key that does not sign now".into()));
                }
                keyset::sign(&key.key, signing_input).map_err(|_| SignError("signature failed".into()))
            })
        });
        Box::pin(async move { result })
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.with_states(|set, st| {
            set.schedule
                .iter()
                .zip(st)
                .filter(|(_, s)| **s != KeyState::Expired)
                .filter_map(|(at, _)| set.key(&at.kid))
                .map(|k| PublicJwk {
                    kid: k.at.kid.clone(),
                    alg: k.alg,
                    jwk: k.jwk.clone(),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyset::Scheduled;

    fn at(kid: &str, signs_from: u64) -> Scheduled {
        Scheduled {
            kid: kid.into(),
            created: signs_from.saturating_sub(10),
            signs_from,
        }
    }

    #[test]
    fn a_key_is_published_before_it_signs_and_after_it_retires() {
        let keys = [at("a", 100), at("b", 5000)];
        let retention = 900;
        assert_eq!(states(&keys, 200, retention), [KeyState::Active, KeyState::Next]);
        assert_eq!(
            states(&keys, 5000, retention),
            [KeyState::Retired, KeyState::Active]
        );
        assert_eq!(
            states(&keys, 5899, retention),
            [KeyState::Retired, KeyState::Active]
        );
        assert_eq!(
            states(&keys, 5900, retention),
            [KeyState::Expired, KeyState::Active]
        );
    }

    fn input(kid: &str) -> Vec<u8> {
        use base64::Engine as _;
        let header = serde_json::json!({"alg": "ES256", "kid": kid}).to_string();
        format!(
            "{}.e30",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header)
        )
        .into_bytes()
    }

    fn new_key(dir: &std::path::Path, signs_from: u64) -> String {
        let kid = keyset::new_kid(Alg::Es256, signs_from);
        let pem = keyset::generate_es256_pem().unwrap();
        keyset::add(dir, &kid, &pem, signs_from, signs_from).unwrap();
        kid
    }

    fn damage(dir: &std::path::Path, kid: &str) {
        std::fs::write(dir.join(format!("{kid}.pem")), b"-----BEGIN PRIVATE KEY-----\nx").unwrap();
    }

    #[tokio::test]
    async fn a_listed_key_that_cannot_be_read_again_keeps_the_copy_loaded_before() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("keys");
        let a = new_key(&d, unix_now() - 1000);
        let signer = LocalSigner::open(d.clone(), 930).unwrap();
        damage(&d, &a);
        let unreadable = signer.reload().unwrap();
        assert_eq!(
            unreadable.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [a.as_str()]
        );
        // What the reload task logs names the file, never its content.
        let logged = unreadable[0].1.to_string();
        assert!(
            logged.contains(&format!("{a}.pem")) && !logged.contains("BEGIN"),
            "{logged}"
        );
        assert_eq!(signer.active().0, a);
        assert!(signer.sign(&input(&a)).await.is_ok());
        // At start there is no earlier copy: refused.
        assert!(LocalSigner::open(d, 930).is_err());
    }

    #[tokio::test]
    async fn an_active_key_never_loaded_fails_closed_and_the_older_key_does_not_sign_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("keys");
        let now = unix_now();
        let a = new_key(&d, now - 1000);
        let signer = LocalSigner::open(d.clone(), 930).unwrap();
        // B took over 100 s ago (past the switch grace) but its file cannot be read.
        let b = new_key(&d, now - 100);
        damage(&d, &b);
        assert_eq!(signer.reload().unwrap().len(), 1);
        assert_eq!(signer.active().0, "", "no key to sign with");
        assert!(
            signer.sign(&input(&a)).await.is_err(),
            "A retired: it must not sign"
        );
        assert!(signer.sign(&input(&b)).await.is_err());
        let published: Vec<String> = signer.published().into_iter().map(|k| k.kid).collect();
        assert_eq!(published, [a], "A stays published for its tokens; B cannot be");
    }

    #[test]
    fn of_keys_that_start_signing_in_the_same_second_the_one_listed_last_signs() {
        let keys = [at("a", 100), at("b", 200), at("c", 200)];
        assert_eq!(
            states(&keys, 300, 900),
            [KeyState::Retired, KeyState::Retired, KeyState::Active]
        );
        // b retired at c's start: it may still finish a token within the grace.
        let loaded: Vec<_> = keys.to_vec();
        assert!(retired_within_grace(&loaded, 1, 230));
        assert!(!retired_within_grace(&loaded, 1, 261));
    }
}
