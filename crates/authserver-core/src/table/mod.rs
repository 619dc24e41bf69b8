//! The users of a snapshot, laid out for a million of them and for reloads that change a few:
//! users spread over shards by a keyed hash of their name; each shard holds its users in one
//! exact-size slice, their names in one string and an open-addressing index of `u32`s; role
//! lists are interned (users with the same roles share one list).
//!
//! Why shards: a reload builds the new table while the old one serves. Built whole, the new
//! table doubled the memory for as long as both lived (2.2x the steady state measured at 1 M
//! users). The builder ([`build`]) compares each entry with the user of the same name in the
//! table in service and keeps every shard none of whose users changed, appeared or went: an edit
//! of one user rebuilds one shard of ~250, and the rest is shared by both snapshots.
//!
//! Why not `HashMap<String, User>`: a hash map keeps up to twice its entries in empty slots, and
//! each slot held the whole `User` (~100 B) plus the name's `String` (an allocation per user).
//! Here an empty slot is 4 bytes and names share one allocation per shard.
//!
//! [`User`] and [`RefusedEntry`] live here (re-exported by [`crate::store`]) so that the
//! snapshot depends on its table and not the other way round.

mod build;

pub(crate) use build::{Builder, Built};

use crate::hash::HashError;
use crate::hash::StoredHash;
use crate::record::Status;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use time::OffsetDateTime;

/// A user ready for authentication.
#[derive(Debug, Clone)]
pub struct User {
    /// Validated hash.
    pub hash: StoredHash,
    /// Active or disabled.
    pub status: Status,
    /// Roles, shared cheaply with every decision.
    pub roles: Arc<[String]>,
    /// When the password last changed.
    pub password_changed_at: Option<OffsetDateTime>,
    /// Set for service accounts: the secret their rotated password is delivered to.
    pub delivery_secret_id: Option<String>,
    /// The OAuth 2.0 client registration, when the entry is a client.
    pub oauth: Option<Arc<crate::oauth::OAuthClient>>,
}

/// An entry kept out of service because its hash fails the policy (too weak, too costly, not
/// Argon2id, not a PHC string). Its user is denied exactly like an unknown user (a verification
/// against the dummy hash, the same answer), so neither the answer nor its timing tells a
/// refused entry from an unknown user or a wrong password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEntry {
    /// The username (PII: server logs name it by its keyed user hash).
    pub user: String,
    /// Why the hash was refused (never contains the hash).
    pub problem: HashError,
}

/// Average users per shard the shard count aims at.
const PER_SHARD: usize = 256;

/// Most shards (2^16): past ~16 M users shards grow instead.
const MAX_SHARD_BITS: u32 = 16;

/// The shard count (as bits) for about `users` users.
fn shard_bits(users: usize) -> u32 {
    let shards = (users / PER_SHARD).max(1).next_power_of_two();
    shards.trailing_zeros().min(MAX_SHARD_BITS)
}

/// Username → user, for lookups and iteration.
#[derive(Debug, Clone)]
pub(crate) struct UserTable {
    /// The keys of the name hash: the same in a table and the tables built after it, so their
    /// shards line up and can be shared.
    keys: RandomState,
    bits: u32,
    shards: Box<[Arc<Shard>]>,
    len: usize,
}

impl Default for UserTable {
    fn default() -> Self {
        Self {
            keys: RandomState::new(),
            bits: 0,
            shards: Box::new([Arc::new(Shard::default())]),
            len: 0,
        }
    }
}

/// Some of the users: names in `names` (user i's name ends at `ends[i]`), users in `users`,
/// `slots` an open-addressing index (power-of-two size, at most half full) of `i + 1`.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    names: Box<str>,
    ends: Box<[u32]>,
    users: Box<[User]>,
    slots: Box<[u32]>,
}

impl Shard {
    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.names.get(start..self.ends[i] as usize).unwrap_or("")
    }

    /// The index of the user called `name`, whose name hashes to `hash`.
    fn find(&self, name: &str, hash: u64) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut at = (hash as usize) & mask;
        loop {
            let slot = *self.slots.get(at)?;
            let i = usize::try_from(slot).ok()?.checked_sub(1)?;
            if self.name(i) == name {
                return Some(i);
            }
            at = (at + 1) & mask;
        }
    }

    fn len(&self) -> usize {
        self.users.len()
    }
}

impl UserTable {
    fn hash(&self, name: &str) -> u64 {
        self.keys.hash_one(name)
    }

    fn shard_of(&self, hash: u64) -> usize {
        // High bits pick the shard, low bits the slot in it.
        if self.bits == 0 {
            0
        } else {
            (hash >> (64 - self.bits)) as usize
        }
    }

    /// True when `name` is in the table.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The user called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&User> {
        let hash = self.hash(name);
        let shard = self.shards.get(self.shard_of(hash))?;
        shard.users.get(shard.find(name, hash)?)
    }

    /// Every user with its name, shard by shard.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &User)> {
        self.shards
            .iter()
            .flat_map(|s| s.users.iter().enumerate().map(move |(i, u)| (s.name(i), u)))
    }

    /// Users held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use crate::hash::{HashPolicy, hash_password, tests::FAST};
    use crate::record::{EntryProblem, StoreError};
    use crate::secret::Secret;
    use crate::store::Snapshot;
    use std::sync::Arc;

    fn doc(h: &str, extra: &str) -> String {
        format!(
            r#"{{"a":{{"passwordHash":"{h}","roles":["r1","r2"]}},"b":{{"passwordHash":"{h}","roles":["r1","r2"]}},
                "c":{{"passwordHash":"{h}"}}{extra}}}"#
        )
    }

    #[test]
    fn equal_role_lists_share_one_allocation() {
        let h = hash_password(&Secret::from("pw"), FAST).expect("hash");
        let s = Snapshot::from_json(doc(&h, "").as_bytes(), &HashPolicy::default(), "v").expect("ok");
        let roles = |u: &str| s.user(u).expect("user").roles.clone();
        assert!(Arc::ptr_eq(&roles("a"), &roles("b")));
        assert_eq!(&*roles("a"), ["r1", "r2"]);
        assert!(roles("c").is_empty());
        assert_eq!((s.len(), s.users().count()), (3, 3));
    }

    /// A reload shares the parsed hash of every user whose hash did not change, and only under
    /// the same policy.
    #[test]
    fn a_reload_reuses_unchanged_hashes_of_the_snapshot_in_service() {
        let (h, h2) = (
            hash_password(&Secret::from("pw"), FAST).expect("hash"),
            hash_password(&Secret::from("other"), FAST).expect("hash"),
        );
        let policy = HashPolicy::default();
        let old = Snapshot::from_json(doc(&h, "").as_bytes(), &policy, "v1").expect("ok");
        let changed = format!(
            r#"{{"a":{{"passwordHash":"{h}"}},"b":{{"passwordHash":"{h2}"}},"d":{{"passwordHash":"{h}"}}}}"#
        );
        let new = Snapshot::from_json_after(changed.as_bytes(), &policy, "v2", Some(&old)).expect("ok");
        let ptr = |s: &Snapshot, u: &str| s.user(u).expect("user").hash.expose().as_ptr();
        assert_eq!(ptr(&new, "a"), ptr(&old, "a"), "unchanged: shared");
        assert_ne!(ptr(&new, "b"), ptr(&old, "b"), "changed: its own");
        assert_eq!(new.user("b").expect("b").hash.expose(), h2);
        assert!(new.user("c").is_none() && new.user("d").is_some());
        let stricter = HashPolicy {
            min_m_kib: 8,
            ..policy
        };
        let other = Snapshot::from_json_after(changed.as_bytes(), &stricter, "v3", Some(&old)).expect("ok");
        assert_ne!(ptr(&other, "a"), ptr(&old, "a"), "another policy parses again");
    }

    /// A reload after an edit of one user shares every shard that edit did not touch: the
    /// users there are the very same objects in both snapshots (no second copy in memory).
    #[test]
    fn a_reload_shares_every_shard_an_edit_did_not_touch() {
        let h = hash_password(&Secret::from("pw"), FAST).expect("hash");
        let doc = |n: usize, edited: &str| {
            let entries: Vec<String> = (0..n)
                .map(|i| {
                    let status = if format!("u{i}") == edited {
                        "DISABLED"
                    } else {
                        "ACTIVE"
                    };
                    format!(
                        r#""u{i}":{{"passwordHash":"{h}","status":"{status}","roles":["r{}"]}}"#,
                        i % 3
                    )
                })
                .collect();
            format!("{{{}}}", entries.join(","))
        };
        let policy = HashPolicy::default();
        let n = 20_000;
        let old = Snapshot::from_json(doc(n, "").as_bytes(), &policy, "v1").expect("ok");
        let new = Snapshot::from_json_after(doc(n, "u7").as_bytes(), &policy, "v2", Some(&old)).expect("ok");
        let same = |u: &str| std::ptr::eq(old.user(u).expect("old"), new.user(u).expect("new"));
        let shared = (0..n).filter(|i| same(&format!("u{i}"))).count();
        assert!(!same("u7"), "the edited user is its own");
        assert_eq!(
            new.user("u7").map(|u| u.status),
            Some(crate::record::Status::Disabled)
        );
        assert!(shared >= n - 2 * super::PER_SHARD, "{shared} of {n} shared");
        assert_eq!(new.len(), n);
        // Removed and added users: found, gone, and the rest still shared.
        let mut fewer = doc(n, "");
        fewer = fewer.replacen(
            &format!(r#""u3":{{"passwordHash":"{h}","status":"ACTIVE","roles":["r0"]}},"#),
            "",
            1,
        );
        fewer = fewer.replacen('{', &format!(r#"{{"fresh":{{"passwordHash":"{h}"}},"#), 1);
        let third = Snapshot::from_json_after(fewer.as_bytes(), &policy, "v3", Some(&new)).expect("ok");
        assert!(third.user("u3").is_none() && third.user("fresh").is_some() && third.user("u7").is_some());
        assert_eq!((third.len(), third.users().count()), (n, n));
        // Listed twice, once unchanged: still refused.
        let twice = doc(n, "").replacen(
            '{',
            &format!(r#"{{"u9":{{"passwordHash":"{h}","status":"ACTIVE","roles":["r0"]}},"#),
            1,
        );
        assert!(Snapshot::from_json_after(twice.as_bytes(), &policy, "v4", Some(&old)).is_err());
    }

    #[test]
    fn duplicates_are_refused_while_streaming_even_after_a_refused_entry() {
        let h = hash_password(&Secret::from("pw"), FAST).expect("hash");
        for extra in [
            format!(r#","a":{{"passwordHash":"{h}"}}"#),
            r#","x":{"passwordHash":"nonsense"},"x":{"passwordHash":"nonsense"}"#.to_owned(),
        ] {
            let err = Snapshot::from_json(doc(&h, &extra).as_bytes(), &HashPolicy::default(), "v")
                .expect_err("duplicate");
            assert!(
                matches!(
                    &err,
                    StoreError::Entry {
                        problem: EntryProblem::DuplicateUser,
                        ..
                    }
                ),
                "{err}"
            );
        }
        let refused = Snapshot::from_json(
            br#"{"z":{"passwordHash":"x"},"m":{"passwordHash":"y"}}"#,
            &HashPolicy::default(),
            "v",
        )
        .expect("refused entries only");
        let names: Vec<_> = refused.refused().iter().map(|r| r.user.as_str()).collect();
        assert_eq!(names, ["m", "z"], "sorted by username");
    }
}
