//! The key schedule both AWS signers share: every key has an activation time (unix seconds),
//! and time alone decides which key signs and which keys are published.
//!
//! - A key whose activation is ahead is *next*: published, never signing. Publishing it at
//!   least one consumer cache TTL before it activates is the operator's side of the contract
//!   (API Gateway caches JWKS up to an hour; [`MIN_PUBLISH_LEAD`] is the lead we warn below).
//! - The key with the latest activation in the past is *active*: it signs.
//! - An older key is *retired* once its successor activated: still published for `retain_for`
//!   (at least the token lifetime plus [`SWITCH_GRACE`]), so every token it signed can still be
//!   verified, then dropped from JWKS.
//!
//! Signing picks the key by the `kid` in the JWS header being signed (not by "the active key
//! now"): the issuer reads [`Schedule::active`] to build the header and signs a moment later,
//! and at an activation instant the two could otherwise disagree and yield an unverifiable
//! token. The header's key may sign while active or for [`SWITCH_GRACE`] after it retired.

use super::der::alg_name;
use authserver_core::oauth::{PublicJwk, SignError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a just-retired key may still sign a token whose header was built before the
/// switch (an issuance takes milliseconds; a minute covers any stall).
pub const SWITCH_GRACE: u64 = 60;

/// The publish-before-sign lead below which loading warns: API Gateway's documentation says it
/// caches an issuer's keys for up to 1 hour (REST API JWT authorizers) and up to 2 hours (the HTTP
/// API page), so the larger, plus 15 minutes for instances that loaded the key set before the new
/// key was added (the signer's refresh interval, 5 min by default) and clock skew
/// (docs/deployment.md "OAuth on AWS").
pub const MIN_PUBLISH_LEAD: u64 = 135 * 60;

/// One key of the schedule.
#[derive(Debug)]
pub struct Scheduled<K> {
    /// Its public JWK (`kid` = RFC 7638 thumbprint).
    pub public: PublicJwk,
    /// When it starts signing (unix seconds).
    pub activates_at: u64,
    /// The signing handle (a KMS key ARN, or a private key).
    pub key: K,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No key at all.
    #[error("the key set is empty")]
    Empty,
    /// Two entries are the same key (same thumbprint).
    #[error("key {0} is listed twice")]
    Duplicate(String),
    /// Two keys activate at the same second: which one signs would be ambiguous.
    #[error("two keys activate at {0}")]
    SameActivation(u64),
}

/// Keys ordered by activation.
#[derive(Debug)]
pub struct Schedule<K> {
    keys: Vec<Scheduled<K>>,
    retain_for: u64,
}

impl<K> Schedule<K> {
    /// A schedule over `keys`; a retired key stays published `retain_for` seconds after its
    /// successor activated.
    pub fn new(mut keys: Vec<Scheduled<K>>, retain_for: u64) -> Result<Self, ScheduleError> {
        if keys.is_empty() {
            return Err(ScheduleError::Empty);
        }
        keys.sort_by_key(|k| k.activates_at);
        for pair in keys.windows(2) {
            if pair[0].activates_at == pair[1].activates_at {
                return Err(ScheduleError::SameActivation(pair[0].activates_at));
            }
        }
        let mut kids: Vec<&str> = keys.iter().map(|k| k.public.kid.as_str()).collect();
        kids.sort_unstable();
        if let Some(w) = kids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ScheduleError::Duplicate(w[0].to_owned()));
        }
        Ok(Self { keys, retain_for })
    }

    /// The index of the key signing at `now`, if any key has activated.
    fn active_index(&self, now: u64) -> Option<usize> {
        self.keys.iter().rposition(|k| k.activates_at <= now)
    }

    /// Every key, in activation order.
    pub fn keys(&self) -> &[Scheduled<K>] {
        &self.keys
    }

    /// The earliest key (`new` refused an empty set, so there is one).
    pub fn first(&self) -> &Scheduled<K> {
        &self.keys[0]
    }

    /// The key signing at `now`.
    pub fn active(&self, now: u64) -> Option<&Scheduled<K>> {
        self.active_index(now).map(|i| &self.keys[i])
    }

    /// When key `i` stopped signing (its successor's activation), if it has one.
    fn retired_at(&self, i: usize) -> Option<u64> {
        self.keys.get(i + 1).map(|next| next.activates_at)
    }

    /// Every key to publish at `now`: next keys, the active one, and retired ones within
    /// `retain_for` of their retirement.
    pub fn published(&self, now: u64) -> Vec<PublicJwk> {
        (0..self.keys.len())
            .filter(|&i| {
                self.retired_at(i)
                    .is_none_or(|at| now < at.saturating_add(self.retain_for))
            })
            .map(|i| self.keys[i].public.clone())
            .collect()
    }

    /// Keys that activate within [`MIN_PUBLISH_LEAD`] of `now`: published too late for caches.
    pub fn late_keys(&self, now: u64) -> Vec<(&str, u64)> {
        self.keys
            .iter()
            .filter(|k| k.activates_at > now && k.activates_at - now < MIN_PUBLISH_LEAD)
            .map(|k| (k.public.kid.as_str(), k.activates_at - now))
            .collect()
    }

    /// The key that signs `signing_input` at `now`: the one its JWS header names, if that key
    /// is active or retired less than [`SWITCH_GRACE`] ago, and the header's `alg` is its own.
    pub fn signing_key(&self, signing_input: &[u8], now: u64) -> Result<&Scheduled<K>, SignError> {
        let (kid, alg) = header_kid_alg(signing_input)?;
        let i = self
            .keys
            .iter()
            .position(|k| k.public.kid == kid)
            .ok_or_else(|| SignError("the header names a key not in the key set".into()))?;
        let key = &self.keys[i];
        if key.activates_at > now {
            return Err(SignError("the header names a key not active yet".into()));
        }
        if self
            .retired_at(i)
            .is_some_and(|at| at <= now && now - at >= SWITCH_GRACE)
        {
            return Err(SignError("the header names a retired key".into()));
        }
        if alg != alg_name(key.public.alg) {
            return Err(SignError("the header's alg is not the key's".into()));
        }
        Ok(key)
    }
}

/// The `kid` and `alg` of the JWS header at the start of `signing_input`.
fn header_kid_alg(signing_input: &[u8]) -> Result<(String, String), SignError> {
    let bad = || SignError("the signing input has no readable JWS header".into());
    let header = signing_input.split(|b| *b == b'.').next().ok_or_else(bad)?;
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| bad())?;
    let value: serde_json::Value = serde_json::from_slice(&json).map_err(|_| bad())?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Ok((field("kid").ok_or_else(bad)?, field("alg").ok_or_else(bad)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use authserver_core::oauth::Alg;
    use serde_json::json;

    fn key(kid: &str, at: u64) -> Scheduled<()> {
        Scheduled {
            public: PublicJwk {
                kid: kid.into(),
                alg: Alg::Rs256,
                jwk: json!({}),
            },
            activates_at: at,
            key: (),
        }
    }

    fn header_for(kid: &str, alg: Alg) -> String {
        let json = json!({"alg": alg_name(alg), "typ": "at+jwt", "kid": kid});
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn kids(s: &Schedule<()>, now: u64) -> Vec<String> {
        s.published(now).into_iter().map(|k| k.kid).collect()
    }

    #[test]
    fn next_is_published_before_it_signs_and_retired_stays_for_retain() {
        let s = Schedule::new(vec![key("b", 10_000), key("a", 0)], 1_000).unwrap();
        assert_eq!(s.active(5_000).unwrap().public.kid, "a");
        assert_eq!(kids(&s, 5_000), ["a", "b"], "b is published before it signs");
        assert_eq!(s.active(10_000).unwrap().public.kid, "b");
        assert_eq!(kids(&s, 10_999), ["a", "b"], "a stays while its tokens live");
        assert_eq!(kids(&s, 11_000), ["b"]);
        let in_time = 10_000 - MIN_PUBLISH_LEAD;
        assert_eq!(s.late_keys(in_time), Vec::<(&str, u64)>::new());
        assert_eq!(s.late_keys(9_000), [("b", 1_000)]);
    }

    #[test]
    fn signing_follows_the_header_kid_with_a_grace_at_the_switch() {
        let s = Schedule::new(vec![key("a", 0), key("b", 10_000)], 1_000).unwrap();
        let input = |kid: &str, alg| format!("{}.e30", header_for(kid, alg));
        let a = input("a", Alg::Rs256);
        assert_eq!(s.signing_key(a.as_bytes(), 9_999).unwrap().public.kid, "a");
        assert!(
            s.signing_key(a.as_bytes(), 10_059).is_ok(),
            "header built before the switch"
        );
        assert!(s.signing_key(a.as_bytes(), 10_060).is_err(), "retired");
        let b = input("b", Alg::Rs256);
        assert!(s.signing_key(b.as_bytes(), 9_999).is_err(), "not active yet");
        assert!(s.signing_key(input("b", Alg::Es256).as_bytes(), 10_000).is_err());
        assert!(s.signing_key(input("c", Alg::Rs256).as_bytes(), 10_000).is_err());
        assert!(s.signing_key(b"not-base64!.e30", 10_000).is_err());
    }

    #[test]
    fn empty_duplicate_and_ambiguous_sets_are_refused() {
        assert_eq!(Schedule::<()>::new(vec![], 1).unwrap_err(), ScheduleError::Empty);
        let dup = Schedule::new(vec![key("a", 0), key("a", 5)], 1).unwrap_err();
        assert_eq!(dup, ScheduleError::Duplicate("a".into()));
        let same = Schedule::new(vec![key("a", 5), key("b", 5)], 1).unwrap_err();
        assert_eq!(same, ScheduleError::SameActivation(5));
    }
}
