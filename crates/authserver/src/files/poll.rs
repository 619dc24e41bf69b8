//! The poll loop of the reloaded files: each check on a thread of its own, a stuck one
//! reported once and never doubled.
//!
//! Why a thread per run: a read stuck on a hung network filesystem must not block the poll task,
//! the runtime's blocking pool, or shutdown. Why progress: a healthy reload of a million users
//! parses for seconds (12.9 s measured under CPU contention at 1 M users, past the 10 s default
//! deadline), which is not a stall; a read whose byte count no longer advances is. A poller that
//! reports its bytes read ([`poll_progress`]) is stalled only after a deadline without progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Runs `check` every `interval`, each run on a thread of its own: a stuck read (a hung network
/// filesystem) never blocks the poll task or the runtime's blocking pool, no second run starts
/// while one is stuck, and shutdown never waits for it (the thread is detached). A run still
/// going after `deadline` is reported once through `on_stall`. Stops when the task is aborted.
pub fn poll<C, S>(
    interval: Duration,
    deadline: Duration,
    check: C,
    on_stall: S,
) -> tokio::task::JoinHandle<()>
where
    C: Fn() + Send + Sync + 'static,
    S: Fn(Duration) + Send + 'static,
{
    poll_progress(interval, deadline, Arc::new(AtomicU64::new(0)), check, on_stall)
}

/// [`poll`] for a check that counts what it has read in `progress`: a run is reported as
/// stalled (with the time since its last progress) once `progress` has not moved for
/// `deadline`, however long the run has been going. Progress is looked at once per tick.
pub fn poll_progress<C, S>(
    interval: Duration,
    deadline: Duration,
    progress: Arc<AtomicU64>,
    check: C,
    on_stall: S,
) -> tokio::task::JoinHandle<()>
where
    C: Fn() + Send + Sync + 'static,
    S: Fn(Duration) + Send + 'static,
{
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release); // also when `check` panics
        }
    }
    let check = Arc::new(check);
    tokio::spawn(async move {
        let busy = Arc::new(AtomicBool::new(false));
        // When the running check last moved, and its progress then.
        let mut moved = (Instant::now(), progress.load(Ordering::Relaxed));
        let mut reported = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if busy.load(Ordering::Acquire) {
                let now = progress.load(Ordering::Relaxed);
                if now != moved.1 {
                    moved = (Instant::now(), now);
                }
                if !reported && moved.0.elapsed() >= deadline {
                    on_stall(moved.0.elapsed());
                    reported = true;
                }
                continue;
            }
            (moved, reported) = ((Instant::now(), progress.load(Ordering::Relaxed)), false);
            busy.store(true, Ordering::Release);
            let (run, done) = (check.clone(), Done(busy.clone()));
            let spawned = std::thread::Builder::new()
                .name("file-poll".into())
                .spawn(move || {
                    let _done = done;
                    run();
                });
            if let Err(e) = spawned {
                busy.store(false, Ordering::Release);
                tracing::error!(error = %e, "cannot start a file poll thread");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_check_is_reported_once_and_never_doubled() {
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let stalls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (r, s) = (runs.clone(), stalls.clone());
        let task = poll(
            Duration::from_millis(10),
            Duration::from_millis(50),
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
            },
            move |_| {
                s.fetch_add(1, Ordering::SeqCst);
            },
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "no second run while one is stuck");
        assert_eq!(stalls.load(Ordering::SeqCst), 1, "reported once");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(runs.load(Ordering::SeqCst) >= 2, "polling resumes");
        task.abort();
    }

    /// A long run whose progress keeps moving is not a stall; once it stops moving it is.
    #[tokio::test]
    async fn a_run_that_reads_on_is_not_stalled_until_its_reads_stop() {
        let progress = Arc::new(AtomicU64::new(0));
        let stalls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (p, s) = (progress.clone(), stalls.clone());
        let task = poll_progress(
            Duration::from_millis(10),
            Duration::from_millis(150),
            progress,
            move || {
                for _ in 0..30 {
                    p.fetch_add(1 << 20, Ordering::Relaxed); // a buffer read every 10 ms
                    std::thread::sleep(Duration::from_millis(10));
                }
                std::thread::sleep(Duration::from_millis(700)); // then hung
            },
            move |_| {
                s.fetch_add(1, Ordering::SeqCst);
            },
        );
        tokio::time::sleep(Duration::from_millis(280)).await;
        assert_eq!(
            stalls.load(Ordering::SeqCst),
            0,
            "reading on, past the deadline: no stall"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            stalls.load(Ordering::SeqCst),
            1,
            "no progress for the deadline: stalled"
        );
        task.abort();
    }
}
