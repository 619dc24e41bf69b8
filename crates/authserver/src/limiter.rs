//! The Argon2id limiter: runs verifications on the blocking pool, at most `max_concurrent` at a
//! time and never more than the memory budget together (permits are MiB of `m_cost`). Waiting
//! is bounded in count and time; beyond either the request is refused as overloaded.
//!
//! Two phases, so the caller can re-check regulation once it holds a slot and keep the slot
//! until it has recorded the outcome: [`HashLimiter::acquire`] waits for a [`Permit`],
//! [`HashLimiter::run`] verifies with it and hands it back. Every exit releases what it took:
//! the queue place is a drop guard (a request future dropped while queued — client gone,
//! HTTP/2 reset, request timeout — gives its place back and is counted as abandoned), and the
//! permits are owned values that travel into the blocking task and back.

use authserver_core::{Cost, Verified, VerifyTask};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most one "abandoned while queued" log line per this many milliseconds (one per burst).
const ABANDONED_LOG_EVERY_MS: u64 = 10_000;

/// Why a verification did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overloaded {
    /// Too many requests already waiting.
    #[error("verification queue full")]
    QueueFull,
    /// No slot within the queue timeout.
    #[error("verification queue timeout")]
    Timeout,
    /// The blocking task died (a panic inside Argon2id): answered like overload, never leaked.
    #[error("verification failed")]
    TaskFailed,
}

/// A verification slot and its memory, held from [`HashLimiter::acquire`] until dropped.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

/// Bounded, memory-aware runner for [`VerifyTask`]s.
#[derive(Debug)]
pub struct HashLimiter {
    slots: Arc<Semaphore>,
    memory_mib: Arc<Semaphore>,
    budget_mib: u32,
    waiting: AtomicUsize,
    max_queue: usize,
    timeout: Duration,
    abandoned: AtomicU64,
    abandoned_logged: AtomicU64,
    last_abandoned_log_ms: AtomicU64,
    started: std::time::Instant,
}

/// Holds one place in the queue; gives it back on every exit path, and counts the wait as
/// abandoned unless [`QueuePlace::done`] was called (the future was dropped mid-wait).
struct QueuePlace<'a> {
    limiter: &'a HashLimiter,
    done: bool,
}

impl QueuePlace<'_> {
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.limiter.waiting.fetch_sub(1, Ordering::AcqRel);
        if !self.done {
            self.limiter.note_abandoned();
        }
    }
}

impl HashLimiter {
    /// `max_concurrent` of 0 means one per CPU but one (at least one).
    pub fn new(max_concurrent: usize, memory_budget_mib: u64, max_queue: usize, timeout: Duration) -> Self {
        let slots = if max_concurrent == 0 {
            // Leave one core to the cache-hit path: with every core hashing, cached clients
            // queue behind Argon2id (measured: legitimate P99 16 ms → 5 ms during a spray on 2 cores).
            std::thread::available_parallelism().map_or(1, |n| usize::from(n).saturating_sub(1).max(1))
        } else {
            max_concurrent
        };
        let budget_mib = u32::try_from(memory_budget_mib)
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            memory_mib: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
            waiting: AtomicUsize::new(0),
            max_queue,
            timeout,
            abandoned: AtomicU64::new(0),
            abandoned_logged: AtomicU64::new(0),
            last_abandoned_log_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// Verifications that could start now without waiting.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Requests that gave up (were dropped) while waiting for a slot, since start.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    fn note_abandoned(&self) {
        let total = self.abandoned.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_abandoned_log_ms.load(Ordering::Relaxed);
        let first = self.abandoned_logged.load(Ordering::Relaxed) == 0;
        if (first || now.saturating_sub(last) >= ABANDONED_LOG_EVERY_MS)
            && self
                .last_abandoned_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let before = self.abandoned_logged.swap(total, Ordering::Relaxed);
            tracing::warn!(
                abandoned = total - before,
                total,
                "requests abandoned while queued for a verification slot (clients gone or timed out); their places were released"
            );
        }
    }

    /// Waits for a slot and the memory for a verification of `cost`.
    pub async fn acquire(&self, cost: Cost) -> Result<Permit, Overloaded> {
        let need = cost.m_kib.div_ceil(1024).clamp(1, self.budget_mib.max(1));
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded::QueueFull);
        }
        let place = QueuePlace {
            limiter: self,
            done: false,
        };
        let acquired = tokio::time::timeout(self.timeout, async {
            let slot = self.slots.clone().acquire_owned().await;
            let memory = self.memory_mib.clone().acquire_many_owned(need).await;
            (slot, memory)
        })
        .await;
        place.done();
        let (Ok(slot), Ok(memory)) = acquired.map_err(|_| Overloaded::Timeout)? else {
            return Err(Overloaded::TaskFailed); // semaphores are never closed
        };
        Ok(Permit {
            _slot: slot,
            _memory: memory,
        })
    }

    /// Runs `task` on the blocking pool under `permit` and returns the permit with the result,
    /// so the caller decides when the slot frees. If the caller goes away meanwhile, the permit
    /// is released when the work really ends.
    pub async fn run(&self, task: VerifyTask, permit: Permit) -> Result<(Verified, Permit), Overloaded> {
        let span = tracing::info_span!("hash_verify", m_kib = task.cost().m_kib, t = task.cost().t);
        tokio::task::spawn_blocking(move || (span.in_scope(|| task.run()), permit))
            .await
            .map_err(|_| Overloaded::TaskFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COST: Cost = Cost {
        m_kib: 1024,
        t: 1,
        p: 1,
    };

    #[tokio::test(flavor = "current_thread")]
    async fn dropped_waiters_release_their_queue_places() {
        let limiter = Arc::new(HashLimiter::new(1, 1024, 2, Duration::from_secs(60)));
        let held = limiter.acquire(COST).await.expect("free slot");
        for _round in 0..3 {
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let l = limiter.clone();
                    tokio::spawn(async move { l.acquire(COST).await.map(drop) })
                })
                .collect();
            tokio::task::yield_now().await;
            assert_eq!(limiter.waiting(), 2, "both queued");
            assert_eq!(
                limiter.acquire(COST).await.err(),
                Some(Overloaded::QueueFull),
                "queue full while they wait"
            );
            waiters.iter().for_each(tokio::task::JoinHandle::abort);
            for w in waiters {
                let _ = w.await;
            }
            assert_eq!(limiter.waiting(), 0, "aborted waiters gave their places back");
        }
        assert_eq!(limiter.abandoned(), 6);
        drop(held);
        assert!(
            limiter.acquire(COST).await.is_ok(),
            "capacity intact after the bursts"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_past_the_timeout_is_refused_and_releases() {
        let limiter = HashLimiter::new(1, 1024, 4, Duration::from_millis(100));
        let held = limiter.acquire(COST).await.expect("free slot");
        assert_eq!(limiter.acquire(COST).await.err(), Some(Overloaded::Timeout));
        assert_eq!((limiter.waiting(), limiter.abandoned()), (0, 0));
        drop(held);
        assert_eq!(limiter.available(), 1);
    }
}
