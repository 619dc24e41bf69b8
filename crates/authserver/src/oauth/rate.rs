//! Tokens per client per minute: a token bucket per client id (capacity and refill from
//! `oauth.tokens_per_minute`), so one client looping on `/oauth/token` cannot spend the
//! signer or flood the audit trail. In this process only (a fleet multiplies the limit).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients tracked before full buckets are swept (a full bucket is the default state).
const MAX_CLIENTS: usize = 100_000;

/// The per-client buckets.
#[derive(Debug)]
pub struct TokenRate {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TokenRate {
    /// `per_minute` tokens per client per minute, bursts up to the same number.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client` at `now`; `Err(wait)` when its bucket is empty.
    pub fn take(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_CLIENTS {
            let cap = self.per_minute;
            map.retain(|_, (left, at)| *left + now.duration_since(*at).as_secs_f64() * rate < cap);
        }
        let (left, at) = map.entry(client.to_owned()).or_insert((self.per_minute, now));
        let filled = (*left + now.duration_since(*at).as_secs_f64() * rate).min(self.per_minute);
        *at = now;
        if filled >= 1.0 {
            *left = filled - 1.0;
            Ok(())
        } else {
            *left = filled;
            Err(Duration::from_secs_f64(((1.0 - filled) / rate).ceil().max(1.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_rate_and_waits_after() {
        let r = TokenRate::new(2);
        let t0 = Instant::now();
        assert!(r.take("a", t0).is_ok());
        assert!(r.take("a", t0).is_ok());
        assert_eq!(r.take("a", t0), Err(Duration::from_secs(30)));
        assert!(r.take("b", t0).is_ok(), "buckets are per client");
        assert!(r.take("a", t0 + Duration::from_secs(30)).is_ok());
    }
}
