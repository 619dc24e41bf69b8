//! The Argon2id limiter: runs verifications on the blocking pool, at most `max_concurrent` at a
//! time and never more than the memory budget together (permits are MiB of `m_cost`). Waiting
//! is bounded in count and time; beyond either the request is refused as overloaded.

use authserver_core::{Verified, VerifyTask};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

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

/// Bounded, memory-aware runner for [`VerifyTask`]s.
#[derive(Debug)]
pub struct HashLimiter {
    slots: Arc<Semaphore>,
    memory_mib: Arc<Semaphore>,
    budget_mib: u32,
    waiting: AtomicUsize,
    max_queue: usize,
    timeout: Duration,
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
        }
    }

    /// Verifications that could start now without waiting.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// Runs `task` when a slot and its memory are free.
    pub async fn run(&self, task: VerifyTask) -> Result<Verified, Overloaded> {
        let need = task.cost().m_kib.div_ceil(1024).clamp(1, self.budget_mib.max(1));
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded::QueueFull);
        }
        let acquired = tokio::time::timeout(self.timeout, async {
            let slot = self.slots.clone().acquire_owned().await;
            let memory = self.memory_mib.clone().acquire_many_owned(need).await;
            (slot, memory)
        })
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let (Ok(slot), Ok(memory)) = acquired.map_err(|_| Overloaded::Timeout)? else {
            return Err(Overloaded::TaskFailed); // semaphores are never closed
        };
        // The permits move into the blocking task: they are released when the work really ends,
        // even if the request that asked for it has gone.
        let span = tracing::info_span!("hash_verify", m_kib = task.cost().m_kib, t = task.cost().t);
        tokio::task::spawn_blocking(move || {
            let verified = span.in_scope(|| task.run());
            drop((slot, memory));
            verified
        })
        .await
        .map_err(|_| Overloaded::TaskFailed)
    }
}
