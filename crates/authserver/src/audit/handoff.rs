//! The auth record of a request whose client left during its verification (issue 17).
//!
//! The request middleware writes each auth request's one record (access line and
//! `auth_attempt`) after the handler returns. A verification, once started, runs to the end
//! in a detached task and its failure is counted by regulation (`decide`), so a client that
//! leaves meanwhile (HTTP/1 close, HTTP/2 `RST_STREAM`) would leave a counted guess with no
//! record: a brute force of abandoned guesses, metered but absent from the audit trail.
//!
//! A [`Handoff`] joins the two sides. The middleware scopes one per request; the detached
//! verification [`Handoff::finish`]es it with its outcome; the middleware either
//! [`Handoff::close`]s it (the response was built: it writes the record itself) or, when its
//! future is dropped, [`Handoff::abandon`]s it with a writer, which runs once the outcome is
//! known (at once if it already is). Exactly one of the two sides writes: the state moves
//! under one lock and every terminal state is `Closed`.

use authserver_core::Decision;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Abandoned requests whose record is not written yet (their verification still runs).
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// Told when [`WAITING`] goes down.
static WRITTEN: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// One abandoned request counted in [`WAITING`] while it lives (in its slot).
struct Waiting;

impl Waiting {
    fn new() -> Self {
        WAITING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::SeqCst);
        WRITTEN.notify_waiters();
    }
}

/// Waits, at most `limit`, until every abandoned request's record is written (a server that
/// was told to stop: the runtime would otherwise drop the verifications' tasks with the
/// records they owe: the attack on issue 17's telemetry, finding 3). Returns how many are
/// still unwritten (0: all written).
pub async fn settled(limit: Duration) -> usize {
    let wait = async {
        loop {
            let notified = WRITTEN.notified();
            if WAITING.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(limit, wait).await;
    WAITING.load(Ordering::SeqCst)
}

/// What the verification ended with.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The decision.
    pub decision: Decision,
    /// The keyed username hash.
    pub user_hash: String,
}

/// Writes the record of an abandoned request.
pub type Writer = Box<dyn FnOnce(Finished) + Send>;

#[derive(Default)]
enum Slot {
    /// No verification started: an abandoned request writes nothing (nothing was counted).
    #[default]
    Idle,
    Started,
    Done(Finished),
    Abandoned(Writer, Waiting),
    Closed,
}

/// One request's hand-off (see the module docs).
#[derive(Default)]
pub struct Handoff(Mutex<Slot>);

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoff")
    }
}

tokio::task_local! {
    static HANDOFF: Arc<Handoff>;
}

/// Runs `f` (the request's inner layers) with `handoff` as its hand-off.
pub async fn scope<F: Future>(handoff: Arc<Handoff>, f: F) -> F::Output {
    HANDOFF.scope(handoff, f).await
}

/// Called on the request's task when its verification starts; the hand-off the detached task
/// finishes (`None` outside a scope: Lambda authorizer, gRPC, CLI).
pub fn started() -> Option<Arc<Handoff>> {
    HANDOFF
        .try_with(|h| {
            let mut slot = h.lock();
            if matches!(*slot, Slot::Idle) {
                *slot = Slot::Started;
            }
            drop(slot);
            h.clone()
        })
        .ok()
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The verification's outcome: written by the abandoned request's writer, or kept for it.
    pub fn finish(&self, finished: Finished) {
        let mut slot = self.lock();
        match std::mem::take(&mut *slot) {
            Slot::Abandoned(write, waiting) => {
                *slot = Slot::Closed;
                drop(slot);
                write(finished);
                drop(waiting);
            }
            Slot::Closed => *slot = Slot::Closed,
            Slot::Idle | Slot::Started | Slot::Done(_) => *slot = Slot::Done(finished),
        }
    }

    /// The request completed: its middleware writes the record; nothing is handed off.
    pub fn close(&self) {
        *self.lock() = Slot::Closed;
    }

    /// The request was dropped: `write` runs with the outcome, now or when it is known; never
    /// when no verification started.
    pub fn abandon(&self, write: Writer) {
        let mut slot = self.lock();
        match std::mem::take(&mut *slot) {
            Slot::Done(finished) => {
                *slot = Slot::Closed;
                drop(slot);
                write(finished);
            }
            Slot::Started => *slot = Slot::Abandoned(write, Waiting::new()),
            Slot::Idle | Slot::Abandoned(..) | Slot::Closed => *slot = Slot::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    fn done() -> Finished {
        Finished {
            decision: Decision::denied(authserver_core::Reason::WrongPassword),
            user_hash: "h".into(),
        }
    }

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Writer) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (n, move || {
            let m = m.clone();
            Box::new(move |_| {
                m.fetch_add(1, SeqCst);
            })
        })
    }

    #[tokio::test]
    async fn exactly_one_side_writes_in_either_order() {
        let (n, writer) = counter();
        // Abandoned first, finished later: the writer runs once, at finish.
        let h = scope(Arc::new(Handoff::default()), async { started() })
            .await
            .expect("scoped");
        h.abandon(writer());
        assert_eq!(n.load(SeqCst), 0);
        h.finish(done());
        h.finish(done());
        assert_eq!(n.load(SeqCst), 1);
        // Finished first, abandoned later: at abandon.
        let h = scope(Arc::new(Handoff::default()), async { started() })
            .await
            .expect("scoped");
        h.finish(done());
        h.abandon(writer());
        assert_eq!(n.load(SeqCst), 2);
        // Completed normally: never.
        let h = scope(Arc::new(Handoff::default()), async { started() })
            .await
            .expect("scoped");
        h.finish(done());
        h.close();
        h.abandon(writer());
        assert_eq!(n.load(SeqCst), 2);
        // No verification: never.
        let h = Handoff::default();
        h.abandon(writer());
        h.finish(done());
        assert_eq!(n.load(SeqCst), 2);
        assert!(started().is_none(), "outside a scope");
    }
}
