//! The users of a snapshot, laid out for a million of them: one slab of [`User`]s and one
//! index from username to slot, with role lists interned (users with the same roles share one
//! list).
//!
//! Why not `HashMap<String, User>`: a hash map keeps up to twice its entries in empty slots, and
//! each slot held the whole `User` (~100 B) plus the name's `String`; at 1 M users that was
//! ~240 B per user of slots alone, and every user's roles were an allocation of their own. Here
//! the index's slots hold a boxed name and a `u32` (24 B), the slab is exactly sized, and a role
//! list is allocated once per distinct list.
//!
//! [`User`] and [`RefusedEntry`] live here (re-exported by [`crate::store`]) so that the
//! snapshot depends on its table and not the other way round.

use crate::hash::HashError;
use crate::hash::{Cost, HashPolicy, StoredHash};
use crate::names::check_names;
use crate::record::Status;
use crate::record::{EntryProblem, StoreError, UserRecord};
use std::collections::{HashMap, HashSet};
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

/// Username → user, for lookups and iteration.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserTable {
    index: HashMap<Box<str>, u32>,
    slab: Vec<User>,
}

impl UserTable {
    /// An empty table with room for `n` users.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            index: HashMap::with_capacity(n),
            slab: Vec::with_capacity(n),
        }
    }

    /// Adds `user` under `name`; false (and nothing added) when the name is taken or the table
    /// is full (`u32::MAX` users, far beyond any file the reader accepts).
    pub(crate) fn insert(&mut self, name: String, user: User) -> bool {
        let Ok(slot) = u32::try_from(self.slab.len()) else {
            return false;
        };
        match self.index.entry(name.into_boxed_str()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot);
                self.slab.push(user);
                true
            }
        }
    }

    /// True when `name` is in the table.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The user called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&User> {
        let slot = *self.index.get(name)?;
        self.slab.get(usize::try_from(slot).ok()?)
    }

    /// Every user with its name, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &User)> {
        self.index.iter().filter_map(|(name, slot)| {
            let user = self.slab.get(usize::try_from(*slot).ok()?)?;
            Some((&**name, user))
        })
    }

    /// Users held.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Gives back what a capacity estimate left over.
    pub(crate) fn shrink(&mut self) {
        self.slab.shrink_to_fit();
        self.index.shrink_to_fit();
    }
}

/// One shared allocation per distinct role list.
#[derive(Debug, Default)]
pub(crate) struct RoleLists {
    lists: HashMap<Vec<String>, Arc<[String]>>,
}

impl RoleLists {
    /// The shared list equal to `roles`.
    pub(crate) fn intern(&mut self, roles: Vec<String>) -> Arc<[String]> {
        if let Some(list) = self.lists.get(&roles) {
            return Arc::clone(list);
        }
        let list: Arc<[String]> = roles.clone().into();
        self.lists.insert(roles, Arc::clone(&list));
        list
    }
}

/// Collects entries into a [`UserTable`], one at a time, as the document streams by.
#[derive(Debug)]
pub(crate) struct Builder<'a> {
    policy: &'a HashPolicy,
    /// The users of the snapshot this one replaces, when built under the same policy: their
    /// hashes are reused for the users whose hash did not change (no second copy, no second
    /// parse).
    previous: Option<&'a UserTable>,
    users: UserTable,
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

impl<'a> Builder<'a> {
    /// A builder for about `capacity` users (growing past it rehashes the index once per
    /// doubling).
    pub(crate) fn new(policy: &'a HashPolicy, previous: Option<&'a UserTable>, capacity: usize) -> Self {
        Self {
            policy,
            previous,
            users: UserTable::with_capacity(capacity),
            refused: Vec::new(),
            refused_names: HashSet::new(),
            costs: HashSet::new(),
            roles: RoleLists::default(),
        }
    }

    /// Adds one entry. A refused name or role, or a username seen before, refuses the whole
    /// document; a hash outside the policy refuses that entry only (see `Snapshot::build`).
    pub(crate) fn add(&mut self, name: String, rec: UserRecord) -> Result<(), StoreError> {
        if self.users.contains(&name) || self.refused_names.contains(&name) {
            return Err(entry_error(name, EntryProblem::DuplicateUser));
        }
        if let Err(problem) = check_names(&name, &rec.roles) {
            return Err(entry_error(name, problem.into()));
        }
        if let Some(Err(problem)) = rec.oauth.as_ref().map(crate::oauth::OAuthClient::validate) {
            return Err(entry_error(name, problem.into()));
        }
        let reused = self
            .previous
            .and_then(|p| p.get(&name))
            .filter(|u| u.hash.expose() == rec.password_hash)
            .map(|u| u.hash.clone());
        let hash = match reused.map_or_else(|| StoredHash::parse(&rec.password_hash, self.policy), Ok) {
            Ok(h) => h,
            Err(problem) => {
                self.refused_names.insert(name.clone());
                self.refused.push(RefusedEntry { user: name, problem });
                return Ok(());
            }
        };
        self.costs.insert(hash.cost());
        let user = User {
            hash,
            status: rec.status,
            roles: self.roles.intern(rec.roles),
            password_changed_at: rec.password_changed_at,
            delivery_secret_id: rec.delivery_secret_id,
            oauth: rec.oauth.map(Arc::new),
        };
        self.users.insert(name, user);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Built {
        self.users.shrink();
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
        Built {
            users: self.users,
            refused: self.refused,
            top_cost,
        }
    }
}

fn entry_error(user: String, problem: EntryProblem) -> StoreError {
    StoreError::Entry { user, problem }
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
