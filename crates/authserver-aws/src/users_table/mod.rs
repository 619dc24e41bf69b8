//! The DynamoDB users store: one item per user, for user counts past what one Secrets Manager
//! secret holds (64 KB ≈ 370 users at the default cost).
//!
//! Behaviour:
//! - **One item per user**, in the users file's entry format ([`item`]); partition key
//!   `username`. A version item (key `:version`, never a username) counts the CLI's writes.
//! - **Lookup on a miss.** A request's user is read with one strongly consistent `GetItem`
//!   when the entry cache does not hold a current entry; the answer is a one-user view
//!   (`Snapshot::into_view`), so the Basic-auth decision code is the file store's and the
//!   secret's. The entry cache is an LRU of at most `entry_capacity` views.
//! - **Unknown users** are answered by an empty view whose dummy hash runs at the dearest cost
//!   read so far (at least the default cost, or the policy's floor `min_m_kib` at `min_t`
//!   when dearer): the same verification, the same denial. Absent
//!   answers are never cached: a negative cache would keep denying a user just added until it
//!   expired, and timing does not need one (the decision path pads denials by the lookup time
//!   too, so an uncached user's `GetItem` is not what tells it from a cached one).
//! - **Pickup.** The version item is read (strongly consistent) at most every `version_poll`,
//!   by the first request after that interval (no background task: Lambda freezes those); a
//!   version different from the last one read (up, or down when the version item was deleted)
//!   starts a new *epoch* and makes every cached entry stale, and each is read again on its
//!   next use. An entry counts under the epoch its `GetItem` was *sent* in, so an answer that
//!   left DynamoDB before a write is never current after the store saw that write's bump. A
//!   request dropped mid-poll releases the poll (a drop guard). A write through the CLI is
//!   therefore in force for every request that starts more than `version_poll` plus one round
//!   trip after the write returned. Writes made around the CLI (console, scripts) do not bump
//!   the version: `entry_ttl` bounds those (and a version item deleted and bumped back to the
//!   same value within one poll, which no poll can see).
//! - **Outage.** A failed call is retried (request path: 2 attempts). A failed `GetItem` backs
//!   off that username only (its cached entry or 503 for a second; a throttled hot key must
//!   not deny everyone) and has the next request read the version; a failed version read is
//!   the table's failure: cached entries keep answering, even past `entry_ttl`, for `max_stale`
//!   from the first failure (only entries read since the last version change seen: one read
//!   before a seen bump may predate a disable or removal, so it is never served, by an outage
//!   nor by its user's own failed `GetItem`; 503 instead), users not cached get 503 with `Retry-After` at once (no `GetItem` is
//!   sent while the table is failing), and the version is probed at most once a second
//!   meanwhile, on a task of its own (no request waits for it; on Lambda it runs while
//!   invocations do, the environment being frozen in between), also past `max_stale` and
//!   after a start without the table, and started by `status()` (`/ready`) as by requests, so
//!   an instance a readiness probe keeps out of traffic still heals: the first success ends it.
//!   A version item whose version is not a `u64` is such a failure (logged, `last_error`), not
//!   version 0, but the table answers, so requests keep reading the version themselves and the
//!   CLI's repair (any write's bump resets it) is in force within one `version_poll`. Past `max_stale`, or when the
//!   table never answered, everything else is 503, as with the secret. Until the failure is
//!   known, a request waits at most the SDK's bound (2 attempts of `crate::client::ATTEMPT_TIMEOUT`, ~4 s):
//!   the one reading the version, and uncached users' `GetItem`s meanwhile.
//! - **Start.** [`UsersTableStore::refresh`] reads the version once; Lambda init waits for it
//!   within its budget (`first_fetch`), and past that the read goes on while requests get 503
//!   until a read succeeds, as with the secret.
//! - **Status.** `users` is the table's user count that the CLI keeps in the version item
//!   (`users add` +1, `remove` −1, `import` + the users added, in the bump's `UpdateItem`),
//!   read with the version; users written around the CLI are not counted, and a version item
//!   without a count reads as unknown (`null`), not zero. `cached_entries` is the entry cache.
//! - **Refused entries** (hash outside the policy, unknown attribute, bad name) deny their user
//!   like an unknown one and are logged with the keyed `user_hash`, never the hash, at most
//!   once per `entry_ttl` per user (they are not cached, so every request reads them again).
//! - **Argon2id only.** Legacy hashes (bcrypt, SHA-crypt) are refused whatever `hash.legacy`
//!   says: their pacing would need the whole store's cost classes, which no view has.
//! - **Writes** ([`UsersTable`]) are conditional (`attribute_not_exists` / `attribute_exists`;
//!   status changes update one attribute), then bump the version (idempotent: conditional on
//!   the version read, with a token telling a lost answer's attempt; see `version.rs`). A write
//!   whose outcome is unknown still bumps (the CLI's part). `BatchWriteItem` is only for
//!   the bulk load of new users.
//! - **Not here:** rotation. Service accounts rotate through Secrets Manager versions
//!   (`AWSPENDING` / `AWSPREVIOUS`); a table has no versions, so no pending or previous
//!   password is accepted beside the current one.

pub mod item;
mod source;
mod state;
mod table;
mod version;

pub use item::{Item, ItemError};
pub use source::UsersTableStore;
pub use table::{BATCH, Page, UsersTable, WriteError};
pub use version::{BUMP_ATTR, Head, INVALID_VERSION, USERS_ATTR};

use crate::retry::RetryPolicy;
use authserver_core::HashPolicy;
use std::time::Duration;

/// Plain configuration of a [`UsersTableStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct UsersTableConfig {
    /// Entries (one-user views) kept per instance.
    pub entry_capacity: usize,
    /// Longest an entry serves without being read again, version unchanged.
    pub entry_ttl: Duration,
    /// Shortest time between two reads of the version item.
    pub version_poll: Duration,
    /// How long cached entries keep answering after the table stopped answering.
    pub max_stale: Duration,
    /// The hash policy every entry must meet (`legacy` is always off for a table).
    pub policy: HashPolicy,
}

impl UsersTableConfig {
    /// The documented defaults: 10 000 entries, entry TTL 5 min, version poll 5 s, max stale
    /// 60 min.
    pub fn new(policy: HashPolicy) -> Self {
        Self {
            entry_capacity: 10_000,
            entry_ttl: Duration::from_secs(300),
            version_poll: Duration::from_secs(5),
            max_stale: Duration::from_secs(3600),
            policy,
        }
    }
}

/// Retries on the request path: one more attempt, soon, so a throttled or lost call costs the
/// request tens of milliseconds, not seconds (the CLI keeps [`RetryPolicy::default`]).
pub const REQUEST_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    base_delay: Duration::from_millis(20),
    max_delay: Duration::from_millis(50),
};
