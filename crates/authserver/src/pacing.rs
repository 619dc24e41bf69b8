//! Denial pacing: every credential denial that ran a verification takes as long as a
//! verification at the store's most expensive cost class, so response time does not tell a
//! user whose hash is cheaper (an allowed but older or imported cost) from an unknown one.
//!
//! Measured before this (release build, 2 cores): a wrong password for a user at m=19 MiB,t=2
//! answered in 27 ms, an unknown user (dummy at m=64 MiB,t=3) in 120 ms. The padding is a
//! timer, not CPU: it costs the attacker's connection time, not the server's cores, and it is
//! taken after the verification slot is released.
//!
//! The target is learnt: a moving average of measured verification times per cost class (the
//! unknown-user dummy runs at the most expensive class, so that class is sampled as soon as
//! anyone fails), and before any sample of it, the nearest measured class scaled by m·t.

use authserver_core::Cost;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Weight of a new sample in the moving average (1/8: smooths scheduler noise, follows drift).
const NEW_SAMPLE_WEIGHT: f64 = 0.125;

/// Learns verification times per cost class and says how long a denial must wait.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Cost class → average seconds of one Argon2id run.
    per_run: Mutex<HashMap<Cost, f64>>,
}

fn work(c: Cost) -> f64 {
    f64::from(c.m_kib) * f64::from(c.t.max(1))
}

impl Pacer {
    /// Records one verification of `cost` that took `elapsed` over `runs` Argon2id runs.
    pub fn observe(&self, cost: Cost, elapsed: Duration, runs: u8) {
        let sample = elapsed.as_secs_f64() / f64::from(runs.max(1));
        let mut map = self.per_run.lock().unwrap_or_else(|e| e.into_inner());
        let avg = map.entry(cost).or_insert(sample);
        *avg += (sample - *avg) * NEW_SAMPLE_WEIGHT;
    }

    /// The expected time of `runs` runs at `target` (None until any cost class was measured).
    fn expected(&self, target: Cost, runs: u8) -> Option<f64> {
        let map = self.per_run.lock().unwrap_or_else(|e| e.into_inner());
        let per_run = match map.get(&target) {
            Some(s) => *s,
            None => {
                // Scale the class closest in work: Argon2id time is close to linear in m·t.
                let (cost, secs) = map.iter().min_by(|a, b| {
                    (work(*a.0) - work(target))
                        .abs()
                        .total_cmp(&(work(*b.0) - work(target)).abs())
                })?;
                secs * work(target) / work(*cost)
            }
        };
        Some(per_run * f64::from(runs.max(1)))
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
}
