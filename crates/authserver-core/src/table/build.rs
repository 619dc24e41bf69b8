//! Building a [`UserTable`] as the document streams by, sharing what the table in service holds.
//!
//! With a table in service (a reload under the same hash policy), each entry is compared with
//! the user of the same name there: an identical one only sets a bit (no allocation, no PHC
//! parse, no name check: it passed them when it loaded); a changed one is built anew, reusing
//! the parsed hash and the role list when those did not change. At the end, a shard none of
//! whose users changed, appeared or went is shared whole; the others are rebuilt from their
//! unchanged users (cheap clones) and the new ones. Duplicate usernames are found when a shard's
//! index is built (and through the bits, for an unchanged user listed twice).

use super::{Shard, User, UserTable, shard_bits};
use crate::document::Entry;
use crate::hash::{Cost, HashPolicy, StoredHash};
use crate::names::check_entry_names;
use crate::record::{EntryProblem, StoreError};
use crate::table::RefusedEntry;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;

/// Collects entries into a [`UserTable`], one at a time.
#[derive(Debug)]
pub(crate) struct Builder<'a> {
    policy: &'a HashPolicy,
    /// The table in service, when built under the same policy: unchanged users are taken from
    /// it (compared field by field).
    previous: Option<&'a UserTable>,
    /// True when `previous` has this table's shard layout, so its shards can be shared whole.
    aligned: bool,
    keys: RandomState,
    bits: u32,
    /// New and changed users, per shard.
    shards: Vec<ShardBuild>,
    /// Per previous user (`offsets[shard] + index`): listed unchanged in this document.
    seen: Vec<u64>,
    offsets: Vec<usize>,
    seen_count: Vec<usize>,
    refused: Vec<RefusedEntry>,
    refused_names: HashSet<String>,
    costs: HashSet<Cost>,
    roles: RoleLists,
}

/// What a [`Builder`] produced.
pub(crate) struct Built {
    pub(crate) users: UserTable,
    /// Sorted by username.
    pub(crate) refused: Vec<RefusedEntry>,
    /// The most expensive Argon2id cost present ([`Cost::DEFAULT`] with none).
    pub(crate) top_cost: Cost,
}

/// One shard's new users while the document streams.
#[derive(Debug, Default)]
struct ShardBuild {
    names: String,
    ends: Vec<u32>,
    hashes: Vec<u64>,
    users: Vec<User>,
}

impl ShardBuild {
    fn push(&mut self, name: &str, hash: u64, user: User) -> Result<(), StoreError> {
        self.names.push_str(name);
        let end = u32::try_from(self.names.len()).map_err(|_| too_many(name))?;
        self.ends.push(end);
        self.hashes.push(hash);
        self.users.push(user);
        Ok(())
    }

    /// The shard, with its index; a name listed twice is an error naming it.
    fn seal(self) -> Result<Shard, StoreError> {
        let n = self.users.len();
        let size = if n == 0 { 0 } else { (2 * n).next_power_of_two() };
        let mut shard = Shard {
            names: self.names.into_boxed_str(),
            ends: self.ends.into_boxed_slice(),
            users: self.users.into_boxed_slice(),
            slots: vec![0; size].into_boxed_slice(),
        };
        let mask = size.wrapping_sub(1);
        for (i, hash) in self.hashes.iter().enumerate() {
            let mut at = (*hash as usize) & mask;
            while let Some(&slot) = shard.slots.get(at).filter(|s| **s != 0) {
                let other = slot as usize - 1;
                if shard.name(other) == shard.name(i) {
                    return Err(duplicate(shard.name(i)));
                }
                at = (at + 1) & mask;
            }
            let slot = u32::try_from(i + 1).map_err(|_| too_many(shard.name(i)))?;
            if let Some(s) = shard.slots.get_mut(at) {
                *s = slot;
            }
        }
        Ok(shard)
    }
}

impl<'a> Builder<'a> {
    /// A builder for about `expected` users. `previous` is the table in service, lent only when
    /// `same_policy` (its hashes were checked against this policy).
    pub(crate) fn new(
        policy: &'a HashPolicy,
        previous: Option<&'a UserTable>,
        same_policy: bool,
        expected: usize,
    ) -> Self {
        let (keys, bits, previous) = match previous {
            Some(p) => {
                // Keep the layout while the size stays within 4x of what it was made for, so
                // the shards of the two tables line up.
                let want = shard_bits(p.len.max(expected));
                let bits = if want.abs_diff(p.bits) <= 2 { p.bits } else { want };
                (p.keys.clone(), bits, same_policy.then_some(p))
            }
            None => (RandomState::new(), shard_bits(expected), None),
        };
        let aligned = previous.is_some_and(|p| p.bits == bits);
        let mut offsets = Vec::new();
        let mut total = 0;
        for s in previous.map_or(&[][..], |p| &p.shards[..]) {
            offsets.push(total);
            total += s.len();
        }
        let per_shard = expected.div_ceil(1 << bits) + expected.div_ceil(1 << bits) / 8;
        let fresh = previous.is_none();
        Self {
            policy,
            previous,
            aligned,
            keys,
            bits,
            shards: (0..1usize << bits)
                .map(|_| ShardBuild {
                    users: Vec::with_capacity(if fresh { per_shard } else { 0 }),
                    ..ShardBuild::default()
                })
                .collect(),
            seen: vec![0; total.div_ceil(64)],
            seen_count: vec![0; offsets.len()],
            offsets,
            refused: Vec::new(),
            refused_names: HashSet::new(),
            costs: HashSet::new(),
            roles: RoleLists::default(),
        }
    }

    fn shard_of(&self, hash: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (hash >> (64 - self.bits)) as usize
        }
    }

    /// Adds one entry. A refused name or role, or a username seen before, refuses the whole
    /// document; a hash outside the policy refuses that entry only (see `Snapshot::build`).
    pub(crate) fn add(&mut self, name: &str, entry: Entry<'_>) -> Result<(), StoreError> {
        let hash = self.keys.hash_one(name);
        let shard = self.shard_of(hash);
        let mut old = None;
        if let Some(prev) = self.previous {
            let ps = prev.shard_of(hash);
            if let Some((i, user)) = prev
                .shards
                .get(ps)
                .and_then(|s| Some((s.find(name, hash)?, s)))
                .and_then(|(i, s)| Some((i, s.users.get(i)?)))
            {
                if same(&entry, user) {
                    let bit = self.offsets.get(ps).copied().unwrap_or(0) + i;
                    let word = self.seen.get_mut(bit / 64).ok_or_else(|| duplicate(name))?;
                    if *word & (1 << (bit % 64)) != 0 {
                        return Err(duplicate(name));
                    }
                    *word |= 1 << (bit % 64);
                    if let Some(c) = self.seen_count.get_mut(ps) {
                        *c += 1;
                    }
                    self.costs.insert(user.hash.cost());
                    if !self.aligned {
                        self.shards[shard].push(name, hash, user.clone())?;
                    }
                    return Ok(());
                }
                old = Some(user);
            }
        }
        if let Err(problem) = check_entry_names(name, &entry.roles) {
            return Err(entry_error(name, problem.into()));
        }
        if let Some(Err(problem)) = entry.oauth.as_ref().map(crate::oauth::OAuthClient::validate) {
            return Err(entry_error(name, problem.into()));
        }
        let parsed = match old.filter(|u| u.hash.expose() == entry.password_hash) {
            Some(u) => Ok(u.hash.clone()),
            None => StoredHash::parse(&entry.password_hash, self.policy),
        };
        let hash_of_password = match parsed {
            Ok(h) => h,
            Err(problem) => {
                if !self.refused_names.insert(name.to_owned()) {
                    return Err(duplicate(name));
                }
                self.refused.push(RefusedEntry {
                    user: name.to_owned(),
                    problem,
                });
                return Ok(());
            }
        };
        self.costs.insert(hash_of_password.cost());
        let roles = match old.filter(|u| same_roles(&u.roles, &entry.roles)) {
            Some(u) => Arc::clone(&u.roles),
            None => self.roles.intern(&entry.roles),
        };
        let user = User {
            hash: hash_of_password,
            status: entry.status,
            roles,
            password_changed_at: entry.password_changed_at,
            delivery_secret_id: entry.delivery_secret_id.map(Cow::into_owned),
            oauth: entry.oauth.map(Arc::new),
        };
        self.shards[shard].push(name, hash, user)
    }

    /// The table: unchanged shards shared, the others sealed; fails on a username listed twice.
    pub(crate) fn finish(mut self) -> Result<Built, StoreError> {
        let mut shards = Vec::with_capacity(self.shards.len());
        let mut len = 0;
        for (s, mut build) in std::mem::take(&mut self.shards).into_iter().enumerate() {
            let old = self
                .previous
                .filter(|_| self.aligned)
                .and_then(|p| p.shards.get(s));
            if let Some(old) = old {
                let kept = self.seen_count.get(s).copied().unwrap_or(0);
                if build.users.is_empty() && kept == old.len() {
                    len += old.len();
                    shards.push(Arc::clone(old));
                    continue;
                }
                let offset = self.offsets.get(s).copied().unwrap_or(0);
                for (i, user) in old.users.iter().enumerate() {
                    let bit = offset + i;
                    if self
                        .seen
                        .get(bit / 64)
                        .is_some_and(|w| w & (1 << (bit % 64)) != 0)
                    {
                        let name = old.name(i);
                        build.push(name, self.keys.hash_one(name), user.clone())?;
                    }
                }
            }
            len += build.users.len();
            shards.push(Arc::new(build.seal()?));
        }
        let users = UserTable {
            keys: self.keys,
            bits: self.bits,
            shards: shards.into_boxed_slice(),
            len,
        };
        if let Some(r) = self.refused.iter().find(|r| users.contains(&r.user)) {
            return Err(duplicate(&r.user));
        }
        self.refused.sort_by(|a, b| a.user.cmp(&b.user));
        // The dummy runs at the most expensive class present, so an unknown user's denial is
        // never faster than any real user's (the server pads cheaper denials up to it).
        // Legacy classes (bcrypt, SHA-crypt) are not Argon2id costs: the server pads to their
        // measured time instead (see the server's pacing).
        let top_cost = self
            .costs
            .into_iter()
            .filter(|c| !c.is_legacy())
            .max_by_key(|c| (u64::from(c.m_kib) * u64::from(c.t), c.m_kib, c.t))
            .unwrap_or(Cost::DEFAULT);
        Ok(Built {
            users,
            refused: self.refused,
            top_cost,
        })
    }
}

/// True when `entry` is exactly what `user` was built from.
fn same(entry: &Entry<'_>, user: &User) -> bool {
    user.hash.expose() == entry.password_hash
        && user.status == entry.status
        && user.password_changed_at == entry.password_changed_at
        && user.delivery_secret_id.as_deref() == entry.delivery_secret_id.as_deref()
        && same_roles(&user.roles, &entry.roles)
        && user.oauth.as_deref() == entry.oauth.as_ref()
}

fn same_roles(list: &[String], roles: &[Cow<'_, str>]) -> bool {
    list.len() == roles.len() && list.iter().zip(roles).all(|(a, b)| a == b)
}

/// One shared allocation per distinct role list.
#[derive(Debug, Default)]
struct RoleLists {
    keys: RandomState,
    lists: HashMap<u64, Vec<Arc<[String]>>>,
}

impl RoleLists {
    /// The shared list equal to `roles`.
    fn intern(&mut self, roles: &[Cow<'_, str>]) -> Arc<[String]> {
        let mut h = self.keys.build_hasher();
        for r in roles {
            h.write(r.as_bytes());
            h.write_u8(0xff); // not UTF-8: no role ends where another starts
        }
        let bucket = self.lists.entry(h.finish()).or_default();
        if let Some(list) = bucket.iter().find(|l| same_roles(l, roles)) {
            return Arc::clone(list);
        }
        let list: Arc<[String]> = roles.iter().map(|r| r.to_string()).collect();
        bucket.push(Arc::clone(&list));
        list
    }
}

fn entry_error(user: &str, problem: EntryProblem) -> StoreError {
    StoreError::Entry {
        user: user.to_owned(),
        problem,
    }
}

fn duplicate(user: &str) -> StoreError {
    entry_error(user, EntryProblem::DuplicateUser)
}

/// A shard past 4 GiB of names or 4 G users: far beyond any file the readers accept.
fn too_many(user: &str) -> StoreError {
    entry_error(user, EntryProblem::Shape("the store is too large".into()))
}
