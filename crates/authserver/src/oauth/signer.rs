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
    keys: arc_swap::ArcSwap<Vec<LoadedKey>>,
    /// How long a retired key stays published: token lifetime plus skew.
    retention: u64,
    now: fn() -> u64,
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
/// recently started signing.
pub fn states(keys: &[keyset::Scheduled], now: u64, retention: u64) -> Vec<KeyState> {
    let active = keys
        .iter()
        .filter(|k| k.signs_from <= now)
        .map(|k| k.signs_from)
        .max();
    keys.iter()
        .map(|k| {
            if k.signs_from > now {
                return KeyState::Next;
            }
            if Some(k.signs_from) == active {
                return KeyState::Active;
            }
            // Retired when the first key after it started signing.
            let until = keys
                .iter()
                .map(|o| o.signs_from)
                .filter(|t| *t > k.signs_from && *t <= now)
                .min()
                .unwrap_or(now);
            if until.saturating_add(retention) > now {
                KeyState::Retired
            } else {
                KeyState::Expired
            }
        })
        .collect()
}

/// How long a just-retired key may still sign a token whose header was built before the switch
/// (an issuance takes milliseconds; a minute covers any stall; same as the AWS schedule's).
const SWITCH_GRACE: u64 = 60;

/// Whether key `i` retired (the next key started signing) less than [`SWITCH_GRACE`] ago.
fn retired_within_grace(keys: &[LoadedKey], i: usize, now: u64) -> bool {
    let from = keys[i].at.signs_from;
    keys.iter()
        .map(|k| k.at.signs_from)
        .filter(|t| *t > from && *t <= now)
        .min()
        .is_some_and(|at| now - at < SWITCH_GRACE)
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
    /// Loads the key set; refuses one with no key that signs now.
    pub fn open(dir: PathBuf, retention: u64) -> Result<Self, KeySetError> {
        Self::open_with_clock(dir, retention, unix_now)
    }

    /// [`LocalSigner::open`] with a clock (tests).
    pub fn open_with_clock(dir: PathBuf, retention: u64, now: fn() -> u64) -> Result<Self, KeySetError> {
        let keys = keyset::load(&dir)?;
        if !keys.iter().any(|k| k.at.signs_from <= now()) {
            return Err(KeySetError::Manifest(
                dir.join(keyset::MANIFEST),
                "no key signs now: run `authserver keys generate`".into(),
            ));
        }
        Ok(Self {
            dir,
            keys: arc_swap::ArcSwap::from_pointee(keys),
            retention,
            now,
        })
    }

    /// Re-reads the directory (a key added by `keys rotate`, removed by `keys remove`). A set
    /// that cannot be read, or has no key signing now, leaves the current one in service.
    pub fn reload(&self) -> Result<(), KeySetError> {
        let keys = keyset::load(&self.dir)?;
        if !keys.iter().any(|k| k.at.signs_from <= (self.now)()) {
            return Err(KeySetError::Manifest(
                self.dir.join(keyset::MANIFEST),
                "no key signs now".into(),
            ));
        }
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    fn with_states<T>(&self, f: impl FnOnce(&[LoadedKey], &[KeyState]) -> T) -> T {
        let keys = self.keys.load();
        let sched: Vec<keyset::Scheduled> = keys.iter().map(|k| k.at.clone()).collect();
        f(&keys, &states(&sched, (self.now)(), self.retention))
    }
}

impl TokenSigner for LocalSigner {
    fn active(&self) -> (String, Alg) {
        self.with_states(|keys, st| {
            keys.iter()
                .zip(st)
                .find(|(_, s)| **s == KeyState::Active)
                .inspect(|(k, _)| crate::telemetry::oauth::figures().active_key_since(k.at.signs_from))
                .map(|(k, _)| (k.at.kid.clone(), k.alg))
                // open() and reload() keep a key that signs now, and time only moves forward.
                .unwrap_or_else(|| (String::new(), Alg::Es256))
        })
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        // The key the header names, not "the active key now": the issuer reads `active()` for the
        // header and signs a moment later; at a `signs_from` instant (or a reload in between) the
        // two would disagree and the token would verify nowhere (the AWS schedule does the same).
        let result = header_kid(signing_input).and_then(|kid| {
            self.with_states(|keys, st| {
                let now = (self.now)();
                let i = keys
                    .iter()
                    .position(|k| k.at.kid == kid)
                    .ok_or_else(|| SignError("the header names a key not in the key set".into()))?;
                let usable = match st[i] {
                    KeyState::Active => true,
                    KeyState::Retired => retired_within_grace(keys, i, now),
                    KeyState::Next | KeyState::Expired => false,
                };
                if !usable {
                    return Err(SignError("the header names a key that does not sign now".into()));
                }
                keyset::sign(&keys[i].key, signing_input).map_err(|_| SignError("signature failed".into()))
            })
        });
        Box::pin(async move { result })
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.with_states(|keys, st| {
            keys.iter()
                .zip(st)
                .filter(|(_, s)| **s != KeyState::Expired)
                .map(|(k, _)| PublicJwk {
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
}
