//! Per-connection limits of the standalone server, outside hyper: the deadline for the first
//! request head, the idle timeout and the per-address connection cap.
//!
//! Why not hyper's own: `header_read_timeout` starts inside the HTTP/1 dispatcher, after
//! protocol detection (which has no deadline) and not at all for HTTP/2; HTTP/2 connections
//! without streams are never closed. Measured before: 10 silent sockets held a
//! `max_connections=10` server for good, and three idle h2c connections held `max_connections=3`.
//! Here the connection's task watches an [`Activity`] that the service updates, and drops the
//! connection (only ever with no request in flight) when a deadline passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest sleep between two looks at a connection with requests in flight.
const RECHECK: Duration = Duration::from_secs(1);

/// What a connection is doing, shared by its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    seen_request: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` of the last request's end.
    last_ms: AtomicU64,
}

/// Ends a request's in-flight span on drop (a cancelled request ends it too).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.elapsed_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head within the header deadline.
    NoRequest,
    /// No request in flight for the idle timeout.
    Idle,
}

impl Activity {
    /// A connection opened now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            seen_request: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request head arrived (called by the service): in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.seen_request.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Whether the connection has outlived a deadline, or else how long until it may.
    pub fn check(&self, first_request: Duration, idle: Duration) -> Result<Duration, Expiry> {
        self.check_at(self.elapsed_ms(), first_request, idle)
    }

    fn check_at(&self, now: u64, first_request: Duration, idle: Duration) -> Result<Duration, Expiry> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Ok(RECHECK);
        }
        let (since, limit, expiry) = if self.seen_request.load(Ordering::Relaxed) {
            let last = self.last_ms.load(Ordering::Relaxed);
            (now.saturating_sub(last), idle, Expiry::Idle)
        } else {
            (now, first_request, Expiry::NoRequest)
        };
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        if since >= limit_ms {
            return Err(expiry);
        }
        Ok(Duration::from_millis(limit_ms - since).min(RECHECK))
    }
}

/// Counts open connections per client address (grouped by the caller's key).
#[derive(Debug, Default)]
pub struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<String, usize>>,
    refused: AtomicU64,
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub struct Counted {
    table: Arc<PerAddress>,
    key: String,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl PerAddress {
    /// At most `cap` connections per key (0: no cap).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            ..Self::default()
        })
    }

    /// Counts a connection for `key`, or `None` when the key already holds `cap`.
    pub fn admit(self: &Arc<Self>, key: String) -> Option<Counted> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_default();
        if self.cap > 0 && *n >= self.cap {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Counted {
            table: self.clone(),
            key,
        })
    }

    /// Connections refused by the cap since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_deadline_then_idle_deadline() {
        let a = Activity::new();
        let (first, idle) = (Duration::from_millis(30), Duration::from_millis(60));
        assert_eq!(a.check_at(10, first, idle), Ok(Duration::from_millis(20)));
        assert_eq!(a.check_at(30, first, idle), Err(Expiry::NoRequest));
        let guard = a.begin();
        assert_eq!(
            a.check_at(10_000, first, idle),
            Ok(RECHECK),
            "never while a request is in flight"
        );
        drop(guard);
        a.last_ms.store(1000, Ordering::Relaxed);
        assert!(
            a.check_at(1059, first, idle).is_ok(),
            "idle counts from the last request's end"
        );
        assert_eq!(a.check_at(1060, first, idle), Err(Expiry::Idle));
    }

    #[test]
    fn per_address_cap_counts_and_releases() {
        let t = PerAddress::new(2);
        let a = t.admit("a".into()).expect("1st");
        let b = t.admit("a".into()).expect("2nd");
        assert!(t.admit("a".into()).is_none(), "3rd over the cap");
        assert!(t.admit("b".into()).is_some(), "other addresses unaffected");
        drop(a);
        assert!(t.admit("a".into()).is_some(), "released on drop");
        drop(b);
        assert_eq!(t.refused(), 1);
        let unlimited = PerAddress::new(0);
        let held: Vec<_> = (0..1000).filter_map(|_| unlimited.admit("x".into())).collect();
        assert_eq!(held.len(), 1000);
    }
}
