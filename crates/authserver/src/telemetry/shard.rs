//! Per-thread shards for the counters every request writes (issue 17). One shared atomic per
//! counter made the worker threads take turns owning its cache line: callgrind, which runs
//! threads one at a time, counted the increments as a handful of instructions, while on two
//! cores every request paid for moving ~10 contended lines between them. Each thread now
//! writes its own shard, on its own cache lines; readers (`/metrics`, `/stats`) add the shards
//! up, which costs the rare reader what it saves the requests.
//!
//! A thread **owns** its shard while it lives (up to [`SHARDS`] threads at once; a thread's
//! claim is given back when it ends): nobody else writes an owned shard, so its owner adds by a
//! plain load and store (owner's [`Writer`]) instead of an atomic read-modify-write, whose
//! `lock` prefix waits for the core's pending stores (~10 of them a request were ~0.1 µs in the
//! pinned bench). Threads beyond [`SHARDS`], and a thread recording while it ends, share the
//! [`SHARED`] extra shards round robin and add atomically ([`Writer::SHARED`]). Readers load
//! each counter atomically either way: a sum is never torn, only a moment old.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Shards a thread can own, one thread each at a time.
pub const SHARDS: usize = 16;

/// Shards the threads beyond [`SHARDS`] share (atomic adds).
pub const SHARED: usize = 4;

/// How the calling thread adds to its shard. Only [`Sharded::writer`] makes an owner's, and it
/// cannot leave the thread: `Writer` is neither `Send` nor `Sync`, so a future holding one
/// across an `.await` is not `Send` and no multi-threaded runtime takes it (it could resume on
/// another worker while this one's other tasks write the same shard by load and store: the
/// attack on this change, finding 1, lost 295 of 800,000 adds that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    owner: bool,
    _thread: PhantomData<*const ()>,
}

impl Writer {
    /// Atomic adds: right for any shard, from any thread.
    pub const SHARED: Self = Self {
        owner: false,
        _thread: PhantomData,
    };

    const OWNER: Self = Self {
        owner: true,
        _thread: PhantomData,
    };

    /// Whether the thread owns the shard (adds by load and store).
    pub fn is_owner(self) -> bool {
        self.owner
    }
}

/// Compiles only while `Writer` is not `Send` (the blanket impl for `Send` types would make the
/// path below ambiguous): the owner's right stays on its thread.
const _: fn() = || {
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    <Writer as AmbiguousIfSend<_>>::check();
};

/// A counter in a shard, added to as its [`Writer`] allows.
pub trait Count {
    /// The counter's integer type.
    type N;
    /// Adds `n` (wrapping, as `fetch_add` does).
    fn add(&self, n: Self::N, writer: Writer);
}

macro_rules! count {
    ($atomic:ty, $n:ty) => {
        impl Count for $atomic {
            type N = $n;
            #[inline]
            fn add(&self, n: $n, writer: Writer) {
                if writer.owner {
                    // The only writer: nothing can come between the load and the store.
                    self.store(
                        self.load(Ordering::Relaxed).wrapping_add(n),
                        Ordering::Relaxed,
                    );
                } else {
                    self.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    };
}
count!(AtomicU64, u64);
count!(AtomicU32, u32);

/// `T` alone on its cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// One `T` per shard: [`SHARDS`] to own, then [`SHARED`] to share.
#[derive(Debug)]
pub struct Sharded<T>([Padded<T>; SHARDS + SHARED]);

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Padded(T::default())))
    }
}

impl<T> Sharded<T> {
    /// The calling thread's shard (to add to it atomically, which is right whoever owns it).
    pub fn local(&self) -> &T {
        self.writer().0
    }

    /// The calling thread's shard and how it may add to it ([`Count::add`]).
    pub fn writer(&self) -> (&T, Writer) {
        let (index, writer) = slot();
        (&self.0[index].0, writer)
    }

    /// Every shard (to add them up).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|p| &p.0)
    }
}

/// Owned shards, a bit each.
static OWNED: AtomicU32 = AtomicU32::new(0);
const _: () = assert!(SHARDS <= 32, "OWNED has a bit per shard");

/// The calling thread's slot, encoded: [`UNSET`], an owned index, or [`SHARED_FLAG`] | index.
const UNSET: u8 = u8::MAX;
const SHARED_FLAG: u8 = 0x80;

thread_local! {
    /// Read by every add: a constant-initialised `Cell` without a destructor (no lazy-init
    /// state), so it stays readable while the thread ends.
    static SLOT: Cell<u8> = const { Cell::new(UNSET) };
    /// Gives the owned shard back when the thread ends.
    static CLAIM: Claim = const { Claim(Cell::new(UNSET)) };
}

struct Claim(Cell<u8>);

impl Drop for Claim {
    fn drop(&mut self) {
        let index = self.0.get();
        if usize::from(index) < SHARDS {
            // Anything this thread records from now on goes to a shared shard; only then is
            // the owned one given back (Release: its next owner sees every add made to it).
            let _ = SLOT.try_with(|slot| slot.set(shared_slot()));
            OWNED.fetch_and(!(1 << index), Ordering::Release);
        }
    }
}

/// A shared shard's slot, round robin.
fn shared_slot() -> u8 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Below `SHARED` (4): fits the low bits.
    SHARED_FLAG | (NEXT.fetch_add(1, Ordering::Relaxed) % SHARED) as u8
}

/// The calling thread's shard index and writer (claimed at its first use).
fn slot() -> (usize, Writer) {
    // A thread whose locals are gone has no slot: it shares.
    let mut slot = SLOT.try_with(Cell::get).unwrap_or(UNSET);
    if slot == UNSET {
        slot = claim();
        let _ = SLOT.try_with(|s| s.set(slot));
    }
    if slot & SHARED_FLAG == 0 {
        (usize::from(slot), Writer::OWNER)
    } else {
        (SHARDS + usize::from(slot & !SHARED_FLAG), Writer::SHARED)
    }
}

/// A free shard to own, registered to be given back when the thread ends; a shared one when
/// all are owned or the thread is ending (it could not give one back).
fn claim() -> u8 {
    let mut owned = OWNED.load(Ordering::Relaxed);
    loop {
        let free = (!owned).trailing_zeros() as usize;
        if free >= SHARDS {
            return shared_slot();
        }
        // Acquire: the previous owner's adds happen before this thread's.
        match OWNED.compare_exchange_weak(owned, owned | (1 << free), Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                // `free` is below SHARDS (<= 32): fits a u8.
                let index = free as u8;
                if CLAIM.try_with(|c| c.0.set(index)).is_ok() {
                    return index;
                }
                OWNED.fetch_and(!(1 << free), Ordering::Release);
                return shared_slot();
            }
            Err(now) => owned = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    /// The shard tests take turns: they count owned shards, which are process-wide.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn turn() -> std::sync::MutexGuard<'static, ()> {
        TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sum(s: &Sharded<AtomicU64>) -> u64 {
        s.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Adds through `writer()` from a thread-local's destructor: a thread recording while it
    /// ends, after (or before) its claim was given back.
    struct AddsOnExit(&'static Sharded<AtomicU64>);

    impl Drop for AddsOnExit {
        fn drop(&mut self) {
            let (c, w) = self.0.writer();
            c.add(1, w);
        }
    }

    thread_local! {
        static ON_EXIT: Cell<Option<AddsOnExit>> = const { Cell::new(None) };
    }

    #[test]
    fn shards_sit_on_their_own_lines() {
        let s: Sharded<AtomicU64> = Sharded::default();
        let at: Vec<usize> = s.iter().map(|c| std::ptr::from_ref(c) as usize).collect();
        assert_eq!(at.len(), SHARDS + SHARED);
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= 128, "two shards share a cache line pair");
        }
    }

    /// Owners add by load and store: the sum is exact only if no two threads ever write one
    /// shard that way at once. Three waves of more threads than shards (owners, sharers, claims
    /// given back and taken again by the next wave), each thread also adding from a
    /// thread-local destructor while it ends.
    #[test]
    fn sums_are_exact_with_more_threads_than_shards_coming_and_going() {
        let _turn = turn();
        static S: std::sync::LazyLock<Sharded<AtomicU64>> = std::sync::LazyLock::new(Sharded::default);
        let before = sum(&S);
        let threads = SHARDS + SHARED + 5;
        let each = 20_000u64;
        for _wave in 0..3 {
            let start = std::sync::Arc::new(std::sync::Barrier::new(threads));
            // Joined, not scoped: a scope ends before its threads' locals are dropped, and the
            // adds from their destructors are part of the sum.
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let start = start.clone();
                    std::thread::spawn(move || {
                        if t % 2 == 0 {
                            ON_EXIT.with(|c| c.set(Some(AddsOnExit(&S))));
                        }
                        start.wait();
                        for _ in 0..each {
                            let (c, w) = S.writer();
                            c.add(1, w);
                        }
                        if t % 2 == 1 {
                            ON_EXIT.with(|c| c.set(Some(AddsOnExit(&S))));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        assert_eq!(sum(&S) - before, 3 * threads as u64 * (each + 1));
    }

    /// No two live threads own one shard, an owner keeps its shard, sharers never write an
    /// owned one. (Other tests of this binary may hold claims meanwhile, so how many of these
    /// threads own is not fixed; with nothing else running all SHARDS do, and the one after
    /// them shares: `attacks_line_render` checks that in a process of its own.)
    #[test]
    fn live_owners_hold_distinct_shards_and_sharers_use_the_shared_ones() {
        let _turn = turn();
        let s: Sharded<AtomicU64> = Sharded::default();
        let index = |c: &AtomicU64| s.iter().position(|x| std::ptr::eq(x, c)).unwrap_or(usize::MAX);
        let threads = SHARDS + 2;
        let all_claimed = std::sync::Barrier::new(threads);
        let slots: Vec<(usize, bool)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (all_claimed, s) = (&all_claimed, &s);
                    scope.spawn(move || {
                        let (c, w) = s.writer();
                        all_claimed.wait();
                        for _ in 0..100 {
                            let (again, w_again) = s.writer();
                            assert!(std::ptr::eq(again, c) && w_again == w);
                        }
                        // Every thread still holds its claim until all have looked.
                        all_claimed.wait();
                        (index(c), w.is_owner())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut owned: Vec<usize> = slots.iter().filter(|s| s.1).map(|s| s.0).collect();
        let owners = owned.len();
        owned.sort_unstable();
        owned.dedup();
        assert_eq!(owned.len(), owners, "two live owners of one shard: {slots:?}");
        assert!(owned.iter().all(|i| *i < SHARDS), "{slots:?}");
        assert!(owners <= SHARDS && owners > 0, "{slots:?}");
        assert!(slots.iter().filter(|s| !s.1).all(|s| s.0 >= SHARDS), "{slots:?}");
    }
}
