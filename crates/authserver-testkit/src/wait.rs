//! Bounded polls: "eventually, within N seconds" rather than sleeping and asserting, so a slow
//! machine only makes a test slower, never flaky.

use std::time::{Duration, Instant};

/// Polls `check` every `every` until it holds or `limit` passes; whether it held.
pub async fn poll(limit: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    check()
}

/// [`poll`] for a test thread outside any runtime (it sleeps the thread).
pub fn poll_blocking(limit: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(every);
    }
    check()
}

/// Polls `check` every 10 ms; fails the test with `what` when it does not hold within `limit`.
pub async fn eventually(what: &str, limit: Duration, check: impl FnMut() -> bool) {
    let held = poll(limit, Duration::from_millis(10), check).await;
    assert!(held, "timed out waiting for: {what}");
}

/// [`eventually`] for a check that awaits (e.g. a request through the router).
pub async fn eventually_async(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
