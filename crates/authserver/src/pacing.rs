//! Denial pacing: every credential denial that ran a verification takes as long as a
//! verification at the store's most expensive cost class, so response time does not tell a
//! user whose hash is cheaper (an allowed but older or imported cost) from an unknown one.
//!
//! Measured before this (release build, 2 cores): a wrong password for a user at m=19 MiB,t=2
//! answered in 27 ms, an unknown user (dummy at m=64 MiB,t=3) in 120 ms. The padding is a
//! timer, not CPU: it costs the attacker's connection time, not the server's cores, and it is
//! taken after the verification slot is released.
//!
//! Legacy (bcrypt, SHA-crypt) cost classes are not comparable in m·t: their times are only
//! measured, never scaled, and the target is the slowest of the Argon2id dummy's class and every
//! measured legacy class the store holds. A legacy class not yet measured is measured by the
//! caller before the first denial is padded (`Gate::calibrate_legacy`), so a bcrypt user
//! slower than Argon2id is not told apart by the first probe either.
//!
//! The target is learnt: a moving average of measured verification times per cost class, plus
//! two moving mean deviations (see [`Average::target`]) (the
//! unknown-user dummy runs at the most expensive class, so that class is sampled as soon as
//! anyone fails), and before any sample of it, the nearest measured class scaled by m·t.

use authserver_core::{Cost, Snapshot, StoredHash};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Weight of a new sample in the moving average (1/8: smooths scheduler noise, follows drift).
const NEW_SAMPLE_WEIGHT: f64 = 0.125;

/// Learns verification times per cost class and says how long a denial must wait.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Cost class → seconds of one Argon2id run.
    per_run: Mutex<HashMap<Cost, Average>>,
    /// The legacy classes of the last snapshot seen: (generation, one hash per class).
    legacy: Mutex<(u64, Vec<StoredHash>)>,
}

/// Moving mean and mean deviation of one class's run time.
#[derive(Debug, Clone, Copy)]
struct Average {
    mean: f64,
    deviation: f64,
}

impl Average {
    /// The time denials are padded to: mean plus two mean deviations (like TCP's RTO estimate),
    /// i.e. above most real runs. Padding to the mean alone made padded denials faster than real
    /// ones on a loaded machine: a real run takes max(target, its own time), and its median sat
    /// above the mean. Measured (debug build, 2 busy cores): bcrypt-user denials padded to the
    /// Argon2id mean had a median of 52-55 ms against 57-61 ms for Argon2id users (10-12 %).
    fn target(self) -> f64 {
        self.mean + 2.0 * self.deviation
    }
}

fn work(c: Cost) -> f64 {
    f64::from(c.m_kib) * f64::from(c.t.max(1))
}

impl Pacer {
    /// Records one verification of `cost` that took `elapsed` over `runs` Argon2id runs.
    pub fn observe(&self, cost: Cost, elapsed: Duration, runs: u8) {
        let sample = elapsed.as_secs_f64() / f64::from(runs.max(1));
        let mut map = self.per_run.lock().unwrap_or_else(|e| e.into_inner());
        let avg = map.entry(cost).or_insert(Average {
            mean: sample,
            deviation: 0.0,
        });
        avg.deviation += ((sample - avg.mean).abs() - avg.deviation) * NEW_SAMPLE_WEIGHT;
        avg.mean += (sample - avg.mean) * NEW_SAMPLE_WEIGHT;
    }

    /// The expected time of `runs` runs at `target` (None until any cost class was measured).
    fn expected(&self, target: Cost, runs: u8) -> Option<f64> {
        let map = self.per_run.lock().unwrap_or_else(|e| e.into_inner());
        let per_run = match map.get(&target) {
            Some(s) => s.target(),
            None => {
                // Scale the class closest in work: Argon2id time is close to linear in m·t.
                // Legacy classes are not Argon2id: never scale from or to them.
                if target.is_legacy() {
                    return None;
                }
                let (cost, secs) = map.iter().filter(|(c, _)| !c.is_legacy()).min_by(|a, b| {
                    (work(*a.0) - work(target))
                        .abs()
                        .total_cmp(&(work(*b.0) - work(target)).abs())
                })?;
                secs.target() * work(target) / work(*cost)
            }
        };
        Some(per_run * f64::from(runs.max(1)))
    }

    /// One hash per legacy cost class in `snapshot` (recomputed once per snapshot generation).
    fn legacy_classes(&self, snapshot: &Snapshot) -> Vec<StoredHash> {
        let mut seen = self.legacy.lock().unwrap_or_else(|e| e.into_inner());
        if seen.0 != snapshot.generation() {
            let mut classes: HashMap<Cost, StoredHash> = HashMap::new();
            for (_, u) in snapshot.users().filter(|(_, u)| u.hash.is_legacy()) {
                classes.entry(u.hash.cost()).or_insert_with(|| u.hash.clone());
            }
            *seen = (snapshot.generation(), classes.into_values().collect());
        }
        seen.1.clone()
    }

    /// The legacy classes of `snapshot` no verification measured yet.
    pub fn unmeasured_legacy(&self, snapshot: &Snapshot) -> Vec<StoredHash> {
        let mut classes = self.legacy_classes(snapshot);
        let map = self.per_run.lock().unwrap_or_else(|e| e.into_inner());
        classes.retain(|h| !map.contains_key(&h.cost()));
        classes
    }

    /// How much longer a denial must wait to look like the slowest verification `snapshot` can
    /// run: its dummy's Argon2id class or any measured legacy class it holds.
    pub fn padding_in(&self, snapshot: &Snapshot, elapsed: Duration, runs: u8) -> Duration {
        let legacy = self.legacy_classes(snapshot);
        let slowest = legacy
            .iter()
            .filter_map(|h| self.expected(h.cost(), runs))
            .chain(self.expected(snapshot.dummy().cost(), runs))
            .fold(None, |max: Option<f64>, s| Some(max.map_or(s, |m| m.max(s))));
        slowest
            .map(|secs| Duration::from_secs_f64(secs).saturating_sub(elapsed))
            .unwrap_or_default()
    }

    /// How much longer a denial whose verification took `elapsed` (at `runs` runs) must wait to
    /// look like one at `slowest`.
    pub fn padding(&self, slowest: Cost, elapsed: Duration, runs: u8) -> Duration {
        self.expected(slowest, runs)
            .map(|secs| Duration::from_secs_f64(secs).saturating_sub(elapsed))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Cost = Cost {
        m_kib: 19456,
        t: 2,
        p: 1,
    };
    const DEAR: Cost = Cost {
        m_kib: 65536,
        t: 3,
        p: 1,
    };

    #[test]
    fn pads_cheaper_verifications_to_the_dearest_class() {
        let p = Pacer::default();
        assert_eq!(
            p.padding(DEAR, Duration::from_millis(27), 1),
            Duration::ZERO,
            "nothing learnt yet"
        );
        p.observe(CHEAP, Duration::from_millis(27), 1);
        let scaled = p.padding(DEAR, Duration::from_millis(27), 1);
        assert!(
            (100..=115).contains(&scaled.as_millis()),
            "scaled by m·t (27 ms × 5.05 − 27 ms): {scaled:?}"
        );
        for _ in 0..40 {
            p.observe(DEAR, Duration::from_millis(120), 1);
        }
        let pad = p.padding(DEAR, Duration::from_millis(27), 1);
        assert!(
            (90..=95).contains(&pad.as_millis()),
            "measured class wins: {pad:?}"
        );
        assert_eq!(p.padding(DEAR, Duration::from_millis(130), 1), Duration::ZERO);
        let two_runs = p.padding(DEAR, Duration::from_millis(54), 2);
        assert!((180..=190).contains(&two_runs.as_millis()), "{two_runs:?}");
    }

    #[test]
    fn legacy_classes_are_measured_never_scaled_and_can_set_the_pace() {
        let bcrypt = "$2y$05$4jH9N/BYOMxYYi7SFKLjP.0aGG5VsABVdQU.DBy07WDHnkusT8Tem";
        let policy = authserver_core::HashPolicy {
            legacy: true,
            ..Default::default()
        };
        let doc = format!(r#"{{"bella":{{"passwordHash":"{bcrypt}"}}}}"#);
        let snap = Snapshot::from_json(doc.as_bytes(), &policy, "v").expect("legacy store");
        let p = Pacer::default();
        let class = p.unmeasured_legacy(&snap);
        assert_eq!(class.len(), 1, "bcrypt cost 5 is one class");
        let legacy = class[0].cost();
        // Only Argon2id known: a legacy class is not guessed from it.
        p.observe(snap.dummy().cost(), Duration::from_millis(100), 1);
        assert_eq!(p.expected(legacy, 1), None);
        let pad = p.padding_in(&snap, Duration::from_millis(2), 1);
        assert_eq!(pad.as_millis(), 98, "padded to the Argon2id dummy: {pad:?}");
        // A measured legacy class slower than the dummy sets the pace.
        p.observe(legacy, Duration::from_millis(300), 1);
        assert!(p.unmeasured_legacy(&snap).is_empty());
        assert_eq!(
            p.padding_in(&snap, Duration::from_millis(100), 1).as_millis(),
            200
        );
        // Spread raises the target above the mean.
        p.observe(legacy, Duration::from_millis(200), 1);
        let after = p.padding_in(&snap, Duration::ZERO, 1).as_millis();
        assert!(after > 290, "mean 287.5 ms + 2 × 12.5 ms deviation: {after}");
    }
}
