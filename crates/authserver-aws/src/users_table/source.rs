//! [`UsersTableStore`]: the users table as a [`SnapshotSource`] of one-user views.

use super::item::record_of;
use super::state::{Cached, State};
use super::{UsersTable, UsersTableConfig};
use crate::retry::CallError;
use authserver_core::{
    Clock, Lookup, Snapshot, SnapshotSource, StoreCounters, StoreDocument, StoreStatus, Unavailable,
    UserHasher,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shortest time between two warnings of a failed `GetItem` (counted in `fetch_errors`).
const KEY_LOG_EVERY: Duration = Duration::from_secs(60);

/// The users table as a credential store: each request's user is read with one `GetItem` on an
/// entry-cache miss and answered from a view holding only that user. See the module docs of
/// [`super`] for the contract.
#[derive(Debug, Clone)]
pub struct UsersTableStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    table: UsersTable,
    config: UsersTableConfig,
    hasher: UserHasher,
    clock: Arc<dyn Clock>,
    /// The one generation all views share (see `Snapshot::into_view`).
    generation: u64,
    state: Mutex<State>,
    /// A version read is under way: other requests go on with what is known.
    polling: AtomicBool,
    reads: AtomicU64,
    errors: AtomicU64,
}

impl UsersTableStore {
    /// A store over `table`. Nothing is read until [`UsersTableStore::refresh`] or the first
    /// request.
    pub fn new(
        table: UsersTable,
        mut config: UsersTableConfig,
        hasher: UserHasher,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // Argon2id only: denial pacing learns a store's legacy (bcrypt, SHA-crypt) cost classes
        // from the snapshot's generation, which every view shares, so a legacy class would be
        // known only if the first view seen held it, and a slower bcrypt user could then be told
        // apart by timing. A table is never re-hashed from the request path either.
        config.policy.legacy = false;
        let mut state = State::new(config.entry_capacity);
        state.top_cost = super::state::dummy_floor(&config.policy);
        let state = Mutex::new(state);
        Self {
            shared: Arc::new(Shared {
                table,
                config,
                hasher,
                clock,
                generation: Snapshot::reserve_generation(),
                state,
                polling: AtomicBool::new(false),
                reads: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        }
    }

    /// Reads the table version now (start-up, tests); the error is also logged and kept for
    /// `/ready`. Holds the poll meanwhile (when no request does): requests go on with what is
    /// known, and a store that has never read the version answers them 503, so a start-up read
    /// left running past Lambda's init budget is not read again by every invocation.
    pub async fn refresh(&self) -> Result<u64, CallError> {
        let _polling = Polling::start(&self.shared);
        self.read_version().await
    }

    async fn read_version(&self) -> Result<u64, CallError> {
        let result = self.shared.table.head().await;
        let now = self.shared.clock.now();
        let mut state = self.shared.lock();
        state.polled_at = Some(now);
        match result {
            Ok(head) => {
                let version = head.version;
                state.users = head.users;
                if state.set_version(version) {
                    tracing::debug!(table = self.shared.table.name(), version, "users table version");
                }
                self.shared.confirm(&mut state, now);
                Ok(version)
            }
            Err(e) => {
                self.shared.fail(&mut state, now, &e);
                // A version that is not a u64: the table answers, only that item is wrong.
                state.answering = e.code.as_deref() == Some(super::INVALID_VERSION);
                Err(e)
            }
        }
    }

    /// Entries held in the entry cache.
    pub fn cached_entries(&self) -> usize {
        self.shared.lock().entries.len()
    }

    async fn lookup(&self, user: &str) -> Result<Arc<Snapshot>, Unavailable> {
        self.poll_if_due().await;
        let now = self.shared.clock.now();
        let epoch = {
            let mut state = self.shared.lock();
            if let Some(u) = state.unavailable(now, self.shared.config.max_stale) {
                return Err(u);
            }
            if state.confirmed_at.is_none() {
                // The first version read is still under way (Lambda init's budget ran out).
                return Err(UNAVAILABLE);
            }
            if let Some(view) = state.fresh(user, now, self.shared.config.entry_ttl) {
                return Ok(view);
            }
            // While the table is failing only the probe calls it: a user not cached gets 503
            // at once instead of a `GetItem` that waits for the SDK's timeouts.
            let failing = state.failing_since.is_some();
            if failing || state.backing_off(now) || state.key_backing_off(user, now) {
                return state.last_good(user).ok_or(UNAVAILABLE);
            }
            // Taken before the call: see `Cached::epoch`.
            state.epoch
        };
        self.read(user, epoch).await
    }

    /// Reads the version when it is due, or when the store is unavailable (so that it recovers:
    /// one probe a second, as the secret store's refresh), unless the store backs off or
    /// another request is reading it. A healthy store's request waits for the read (it then
    /// sees a write's bump itself); a failing store's probe runs on its own task, so that no
    /// request waits for the SDK's timeouts against a table that does not answer.
    async fn poll_if_due(&self) {
        let now = self.shared.clock.now();
        let (due, failing) = {
            let state = self.shared.lock();
            // Failing (even within `max_stale`, entries still answering): probe once a second,
            // not once per `version_poll`, so a single failed read costs uncached users about a
            // second of 503, as `Retry-After: 1` says.
            let failing = state.failing_since.is_some();
            let unavailable = state.unavailable(now, self.shared.config.max_stale).is_some();
            let due = (failing || unavailable || state.poll_due(now, self.shared.config.version_poll))
                && !state.backing_off(now);
            (due, failing && !state.answering)
        };
        // The guard clears the flag however this ends, a request dropped mid-read included.
        let Some(polling) = due.then(|| Polling::start(&self.shared)).flatten() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if failing => {
                let store = self.clone();
                runtime.spawn(async move {
                    let _polling = polling;
                    let _ = store.read_version().await;
                });
            }
            // Healthy (or no runtime to spawn on): this request reads it.
            _ => {
                let _polling = polling;
                let _ = self.read_version().await;
            }
        }
    }

    /// Starts a version read on a task of its own when the store is failing or has never read
    /// the version, unless it backs off or a read is under way. Needs a Tokio runtime (none:
    /// nothing starts; the next request probes).
    fn probe_if_unhealthy(&self) {
        let now = self.shared.clock.now();
        let due = {
            let state = self.shared.lock();
            (state.failing_since.is_some() || state.confirmed_at.is_none()) && !state.backing_off(now)
        };
        if !due {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(polling) = Polling::start(&self.shared) else {
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            let _polling = polling;
            let _ = store.read_version().await;
        });
    }

    /// One `GetItem` for `user`, sent in `epoch`: its view (or the unknown-user view), or on
    /// failure its last good view, or unavailable.
    async fn read(&self, user: &str, epoch: u64) -> Result<Arc<Snapshot>, Unavailable> {
        self.shared.reads.fetch_add(1, Ordering::Relaxed);
        let result = self.shared.table.get(user).await;
        let now = self.shared.clock.now();
        let mut state = self.shared.lock();
        let item = match result {
            Ok(item) => item,
            Err(e) => {
                self.shared.fail_key(&mut state, user, now, &e);
                return state.last_good(user).ok_or(UNAVAILABLE);
            }
        };
        self.shared.confirm(&mut state, now);
        state.failed_keys.pop(user);
        let Some(item) = item else {
            // Absent: nothing is cached (no negative cache), the stale entry goes.
            state.entries.pop(user);
            return self.shared.unknown_view(&state);
        };
        let view = match self.shared.view_of(user, &item, &mut state) {
            Some(view) => view,
            None => return self.shared.unknown_view(&state),
        };
        state.keep(
            user,
            Cached {
                view: view.clone(),
                read_at: now,
                epoch,
            },
        );
        Ok(view)
    }
}

/// 503 for a user neither cached nor readable now; one probe a second.
const UNAVAILABLE: Unavailable = Unavailable {
    retry_after: super::state::PROBE_EVERY,
};

/// Holds [`Shared::polling`] for one version read and clears it when dropped: a request
/// cancelled while reading the version (client gone, request timeout) must not leave it set,
/// or no version would ever be read again and CLI writes would wait for `entry_ttl`.
struct Polling(Arc<Shared>);

impl Polling {
    /// `None` when another request is reading the version.
    fn start(shared: &Arc<Shared>) -> Option<Self> {
        (!shared.polling.swap(true, Ordering::AcqRel)).then(|| Self(shared.clone()))
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.polling.store(false, Ordering::Release);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst an entry missing or a health field
        // behind: the next read puts it right.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn label(&self, state: &State) -> String {
        format!("{}@{}", self.table.name(), state.version.unwrap_or(0))
    }

    fn confirm(&self, state: &mut State, now: Instant) {
        if state.confirmed(now) {
            tracing::info!(table = self.table.name(), "users table reachable again");
        }
    }

    /// One user's `GetItem` failed: that key backs off and the version is read next (see
    /// [`State::key_failed`]); store health is the version read's to judge. Logged at most once
    /// per [`KEY_LOG_EVERY`]: any client can make one key fail (throttling a hot key).
    fn fail_key(&self, state: &mut State, user: &str, now: Instant, error: &CallError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        state.key_failed(user, now);
        if state.failing_since.is_some() {
            // The version read failed too, and nothing answered since: a table outage, so the
            // whole store backs off (one probe a second), as before.
            self.fail(state, now, error);
            return;
        }
        if state
            .key_logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= KEY_LOG_EVERY)
        {
            state.key_logged_at = Some(now);
            tracing::warn!(
                table = self.table.name(),
                error = %error,
                "users table GetItem failed: that user gets the cached entry or 503 for 1 s; \
                 the table version is read next to tell an outage"
            );
        }
    }

    fn fail(&self, state: &mut State, now: Instant, error: &CallError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if state.failed(now, error.to_string()) {
            tracing::warn!(
                table = self.table.name(),
                error = %error,
                max_stale_s = self.config.max_stale.as_secs(),
                "users table read failed: cached entries keep answering until max_stale, others 503"
            );
        }
    }

    /// The view holding `user`'s entry, or `None` when the entry is refused (denied like an
    /// unknown user, logged with the user's keyed hash).
    fn view_of(&self, user: &str, item: &super::Item, state: &mut State) -> Option<Arc<Snapshot>> {
        let record = match record_of(item) {
            Ok(record) => record,
            Err(e) => return self.refuse(state, user, e.to_string()),
        };
        let doc = StoreDocument::from([(user.to_owned(), record)]);
        let snapshot = match Snapshot::build(doc, &self.config.policy, self.label(state)) {
            Ok(s) => s,
            Err(e) => return self.refuse(state, user, e.log_safe(|u| self.hasher.hash(u))),
        };
        if let Some(r) = snapshot.refused().first() {
            return self.refuse(state, user, r.problem.to_string());
        }
        if let Some(cost) = snapshot
            .user(user)
            .map(|u| u.hash.cost())
            .filter(|c| !c.is_legacy())
        {
            let work = |c: authserver_core::Cost| u64::from(c.m_kib) * u64::from(c.t);
            if work(cost) > work(state.top_cost) {
                state.top_cost = cost;
            }
        }
        Some(Arc::new(snapshot.into_view(self.generation, state.top_cost)))
    }

    /// Logs a refused entry (keyed `user_hash`, never the hash) at most once per `entry_ttl`
    /// per user: refused entries are not cached, so each of that user's requests reads it
    /// again, and any client can send those. Always `None` (the user is denied).
    fn refuse(&self, state: &mut State, user: &str, problem: String) -> Option<Arc<Snapshot>> {
        let now = self.clock.now();
        if state.refusal_log_due(user, now, self.config.entry_ttl) {
            tracing::warn!(
                table = self.table.name(),
                user_hash = %self.hasher.hash(user),
                problem,
                "users table entry refused: that user is denied"
            );
        }
        None
    }

    /// The view of a user the table does not hold: empty, its dummy at the dearest cost read.
    fn unknown_view(&self, state: &State) -> Result<Arc<Snapshot>, Unavailable> {
        let empty = Snapshot::build(StoreDocument::new(), &self.config.policy, self.label(state));
        // An empty document has no entry to refuse, so this never fails; were it to, 503.
        let empty = empty.map_err(|_| Unavailable {
            retry_after: super::state::PROBE_EVERY,
        })?;
        Ok(Arc::new(empty.into_view(self.generation, state.top_cost)))
    }
}

impl SnapshotSource for UsersTableStore {
    /// The unknown-user view (no user): what status, metrics and scans see. Requests go
    /// through [`SnapshotSource::current_for`].
    fn current(&self) -> Result<Arc<Snapshot>, Unavailable> {
        let now = self.shared.clock.now();
        let state = self.shared.lock();
        if let Some(u) = state.unavailable(now, self.shared.config.max_stale) {
            return Err(u);
        }
        self.shared.unknown_view(&state)
    }

    fn current_for<'a>(&'a self, username: &'a str) -> Lookup<'a> {
        let now = self.shared.clock.now();
        {
            let mut state = self.shared.lock();
            // Unavailable: 503 at once while backing off; otherwise the lookup probes the table.
            if let Some(u) = state.unavailable(now, self.shared.config.max_stale) {
                if state.backing_off(now) {
                    return Lookup::Ready(Err(u));
                }
            } else if !state.poll_due(now, self.shared.config.version_poll)
                && let Some(view) = state.fresh(username, now, self.shared.config.entry_ttl)
            {
                return Lookup::Ready(Ok(view));
            }
        }
        Lookup::Fetch(Box::pin(self.lookup(username)))
    }

    /// Also drives the probe of a store that is not healthy (failing, or never read): behind
    /// a readiness probe a not-ready instance gets no traffic, so `/ready` itself must start
    /// the read that ends the failure (on a task of its own, at most one a second).
    fn status(&self) -> StoreStatus {
        self.probe_if_unhealthy();
        let now = self.shared.clock.now();
        let state = self.shared.lock();
        StoreStatus {
            kind: "dynamodb",
            version: state.version.map(|_| self.shared.label(&state)),
            // The table's count (the CLI keeps it in the version item), not the cache's.
            users: state.users.and_then(|n| usize::try_from(n).ok()),
            cached_entries: Some(state.entries.len()),
            refused: 0,
            age_seconds: state
                .confirmed_at
                .map_or(0, |at| now.saturating_duration_since(at).as_secs()),
            ready: state.confirmed_at.is_some()
                && state.unavailable(now, self.shared.config.max_stale).is_none(),
            last_error: state.last_error.clone(),
        }
    }

    fn counters(&self) -> StoreCounters {
        StoreCounters {
            refreshes: self.shared.reads.load(Ordering::Relaxed),
            fetch_errors: self.shared.errors.load(Ordering::Relaxed),
            reload_stalls: 0,
        }
    }
}
