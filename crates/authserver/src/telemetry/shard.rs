//! Per-thread shards for the counters every request writes (issue 17). One shared atomic per
//! counter made the worker threads take turns owning its cache line: callgrind, which runs
//! threads one at a time, counted the increments as a handful of instructions, while on two
//! cores every request paid for moving ~10 contended lines between them. Each thread now
//! writes its own shard, on its own cache lines; readers (`/metrics`, `/stats`) add the shards
//! up, which costs the rare reader what it saves the requests.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Shards per counter set. Threads are given shards round robin, so up to this many threads
/// that record (the runtime's workers, and the blocking threads Argon2id runs on) never share
/// one; more only share, which is still correct.
pub const SHARDS: usize = 8;

/// `T` alone on its cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// One `T` per shard.
#[derive(Debug)]
pub struct Sharded<T>([Padded<T>; SHARDS]);

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Padded(T::default())))
    }
}

impl<T> Sharded<T> {
    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        &self.0[index()].0
    }

    /// Every shard (to add them up).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|p| &p.0)
    }
}

/// The calling thread's shard index, given at its first use. A plain `Cell` with a constant
/// start (no lazy-init state, no destructor): every request asks several times.
fn index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut index = i.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Relaxed) % SHARDS;
            i.set(index);
        }
        index
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn shards_sit_on_their_own_lines_and_the_sum_counts_every_thread() {
        let s: Sharded<AtomicU64> = Sharded::default();
        let at: Vec<usize> = s.iter().map(|c| std::ptr::from_ref(c) as usize).collect();
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= 128, "two shards share a cache line pair");
        }
        std::thread::scope(|scope| {
            for _ in 0..SHARDS + 3 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        s.local().fetch_add(1, Relaxed);
                    }
                });
            }
        });
        assert_eq!(
            s.iter().map(|c| c.load(Relaxed)).sum::<u64>(),
            1000 * (SHARDS as u64 + 3)
        );
        assert!(
            s.iter().filter(|c| c.load(Relaxed) > 0).count() > 1,
            "all threads in one shard"
        );
    }
}
