//! Which other version of the secret the store serves beside `AWSCURRENT`, and until when.
//!
//! - While a rotation is under way (`AWSPENDING` on another version), the pending version's
//!   service-account passwords work too: clients may switch as soon as their new password is
//!   delivered.
//! - After `finishSecret`, the replaced version (`AWSPREVIOUS`) keeps working for the grace
//!   period, counted from the end of the rotation: from when this process saw the pending
//!   version become current, or else (a process started after the rotation) from the secret's
//!   `LastRotatedDate`. Without either (a plain `PutSecretValue` by an operator, no rotation)
//!   there is no grace: a pushed store takes effect at once.
//!
//! Only service accounts get an alternate hash (see `Snapshot::with_alternates`).

use super::SecretsStoreConfig;
use super::fetch::Labels;
use authserver_core::AlternateKind;
use std::time::{Instant, SystemTime};

/// The alternate version to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// Pending or previous.
    pub kind: AlternateKind,
    /// Its version id.
    pub version: String,
    /// When a previous version stops being accepted (pending versions have no end).
    pub until: Option<Instant>,
}

/// A rotation this process watched finish: the version that was current before, and when the
/// pending one replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Switch {
    /// The version `AWSCURRENT` left.
    pub from: String,
    /// When this process saw it happen.
    pub at: Instant,
}

/// The alternate to serve given the labels, or none. `now` and `wall` are the same moment on
/// the store's clock and on the wall clock (`LastRotatedDate` is wall-clock time).
pub(crate) fn wanted(
    labels: &Labels,
    config: &SecretsStoreConfig,
    switch: Option<&Switch>,
    now: Instant,
    wall: SystemTime,
) -> Option<Wanted> {
    if config.accept_pending
        && let Some(pending) = &labels.pending
    {
        return Some(Wanted {
            kind: AlternateKind::Pending,
            version: pending.clone(),
            until: None,
        });
    }
    let previous = labels.previous.as_ref()?;
    if config.previous_grace.is_zero() {
        return None;
    }
    let from_rotation = labels
        .last_rotated
        .and_then(|at| (at + config.previous_grace).duration_since(wall).ok())
        .map(|left| now + left);
    let from_switch = switch
        .filter(|s| s.from == *previous)
        .map(|s| s.at + config.previous_grace);
    let until = from_rotation.max(from_switch).filter(|until| *until > now)?;
    Some(Wanted {
        kind: AlternateKind::Previous,
        version: previous.clone(),
        until: Some(until),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_core::HashPolicy;
    use std::time::Duration;

    fn labels(
        pending: Option<&str>,
        previous: Option<&str>,
        rotated_ago: Option<u64>,
        wall: SystemTime,
    ) -> Labels {
        Labels {
            current: "c".into(),
            pending: pending.map(Into::into),
            previous: previous.map(Into::into),
            last_rotated: rotated_ago.map(|s| wall - Duration::from_secs(s)),
        }
    }

    #[test]
    fn pending_wins_then_previous_within_the_grace_period() {
        let mut config = SecretsStoreConfig::new("s", HashPolicy::default());
        config.previous_grace = Duration::from_secs(100);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let w = wanted(
            &labels(Some("p"), Some("o"), Some(10), wall),
            &config,
            None,
            now,
            wall,
        );
        assert_eq!(
            w.map(|w| (w.kind, w.version, w.until)),
            Some((AlternateKind::Pending, "p".into(), None))
        );

        // Previous: from LastRotatedDate (cold start) ...
        let w = wanted(&labels(None, Some("o"), Some(40), wall), &config, None, now, wall).unwrap();
        assert_eq!(w.kind, AlternateKind::Previous);
        let left = w.until.unwrap() - now;
        assert!((59..=60).contains(&left.as_secs()), "{left:?}");
        // ... or from the switch this process saw, whichever ends later.
        let switch = Switch {
            from: "o".into(),
            at: now,
        };
        let w = wanted(
            &labels(None, Some("o"), Some(40), wall),
            &config,
            Some(&switch),
            now,
            wall,
        )
        .unwrap();
        assert_eq!(w.until, Some(now + Duration::from_secs(100)));
        let other = Switch {
            from: "x".into(),
            at: now,
        };
        let w = wanted(
            &labels(None, Some("o"), None, wall),
            &config,
            Some(&other),
            now,
            wall,
        );
        assert_eq!(w, None, "a switch away from another version does not count");

        // Over, never rotated, or switched off.
        assert_eq!(
            wanted(
                &labels(None, Some("o"), Some(101), wall),
                &config,
                None,
                now,
                wall
            ),
            None
        );
        assert_eq!(
            wanted(&labels(None, Some("o"), None, wall), &config, None, now, wall),
            None
        );
        assert_eq!(
            wanted(&labels(None, None, Some(1), wall), &config, None, now, wall),
            None
        );
        config.previous_grace = Duration::ZERO;
        assert_eq!(
            wanted(
                &labels(None, Some("o"), Some(1), wall),
                &config,
                Some(&switch),
                now,
                wall
            ),
            None
        );
        config.accept_pending = false;
        assert_eq!(
            wanted(&labels(Some("p"), None, None, wall), &config, None, now, wall),
            None
        );
        assert!(!config.follows_rotation());
    }
}
