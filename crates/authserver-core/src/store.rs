//! The immutable [`Snapshot`] the rest of the program reads, built from a parsed store
//! document (the stored format itself is [`crate::record`]; its parser [`crate::document`]).

use crate::document::{Entry, StreamError};
use crate::hash::{Cost, HashPolicy, StoredHash, dummy_hash};
use crate::table::{Builder, Built, UserTable};
pub use crate::table::{RefusedEntry, User};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

// Callers have always found the stored format and its parser here.
pub use crate::document::parse_document;
pub use crate::record::{EntryProblem, Status, StoreDocument, StoreError, UserRecord};

/// About how many bytes one user takes in a users file (pretty JSON, an Argon2id hash): sizes
/// the table before the document is read.
pub const BYTES_PER_USER: usize = 200;

/// An immutable, validated view of the store. Replaced whole on every change.
#[derive(Debug)]
pub struct Snapshot {
    version: String,
    generation: u64,
    /// Shared by the snapshots derived from this one (rotation alternates).
    users: Arc<UserTable>,
    /// Sorted by username.
    refused: Arc<[RefusedEntry]>,
    dummy: StoredHash,
    alternates: Option<Alternates>,
    policy: HashPolicy,
}

/// Which other version of the store an [`Alternates`] set comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlternateKind {
    /// The version a rotation is preparing (`AWSPENDING`): new passwords already work.
    Pending,
    /// The version a rotation replaced (`AWSPREVIOUS`), during its grace period: old passwords
    /// still work.
    Previous,
}

impl AlternateKind {
    /// Log label: `pending` or `previous`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlternateKind::Pending => "pending",
            AlternateKind::Previous => "previous",
        }
    }
}

/// A second accepted hash per service account, taken from another version of the store while
/// a rotation is under way (pending) or just finished (previous). Status and roles always come
/// from the snapshot's own version; only the password may match either hash.
#[derive(Debug, Clone)]
pub struct Alternates {
    kind: AlternateKind,
    version: String,
    hashes: HashMap<String, StoredHash>,
}

impl Alternates {
    /// Pending or previous.
    pub fn kind(&self) -> AlternateKind {
        self.kind
    }

    /// The version the hashes come from.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The alternate hash of `user`, if it has one.
    pub fn get(&self, user: &str) -> Option<&StoredHash> {
        self.hashes.get(user)
    }

    /// Users with an alternate hash.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True when no user has one (never the case for a set attached to a snapshot).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Snapshot {
    /// Validates a parsed document against `policy`. An entry whose hash fails the policy
    /// denies that user only: it is kept aside as a [`RefusedEntry`] (a hash from another tool
    /// or an old policy must not take every other user down). A refused name or role refuses
    /// the whole document, so a half-applied store never serves: dropping such an entry could
    /// silently change who `Remote-User` names.
    ///
    /// Generates (once per cost per process) the dummy hash for unknown users at the most
    /// expensive cost any user has: that may take one Argon2id hashing time.
    pub fn build(
        doc: StoreDocument,
        policy: &HashPolicy,
        version: impl Into<String>,
    ) -> Result<Self, StoreError> {
        let mut builder = Builder::new(policy, None, false, doc.len());
        for (name, rec) in &doc {
            builder.add(name, Entry::of(rec))?;
        }
        Ok(Self::from_built(builder.finish()?, policy, version.into()))
    }

    fn from_built(built: Built, policy: &HashPolicy, version: String) -> Self {
        Self {
            version,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            users: Arc::new(built.users),
            refused: built.refused.into(),
            dummy: dummy_hash(built.top_cost),
            alternates: None,
            policy: policy.clone(),
        }
    }

    /// A process-unique generation that no snapshot has yet, for a store whose snapshots are
    /// views of one source (see [`Snapshot::into_view`]).
    pub fn reserve_generation() -> u64 {
        GENERATION.fetch_add(1, Ordering::Relaxed)
    }

    /// This snapshot as one *view* of a per-user store (DynamoDB): it holds only the users a
    /// lookup fetched, carries the store's shared `generation` (so the verified cache does not
    /// sweep every other user's entries, which no single view holds, on each lookup), and
    /// verifies unknown users against a dummy at `dummy_cost` or this view's own dearest cost,
    /// whichever is dearer (one view knows one user's cost; the store knows its dearest).
    ///
    /// Sound for the verified cache because a cached success is only answered when the key
    /// (which covers the stored hash) matches and the view's record says ACTIVE, and the roles
    /// answered are the view's: a changed hash, status or role takes effect with the view that
    /// carries it. Views carry no rotation alternates.
    pub fn into_view(mut self, generation: u64, dummy_cost: Cost) -> Self {
        let dearer = |c: Cost| (u64::from(c.m_kib) * u64::from(c.t), c.m_kib, c.t);
        if !dummy_cost.is_legacy() && dearer(dummy_cost) > dearer(self.dummy.cost()) {
            self.dummy = dummy_hash(dummy_cost);
        }
        self.generation = generation;
        self.alternates = None;
        self
    }

    /// A new snapshot (new generation) of the same version that also accepts, for each
    /// ACTIVE service account (`deliverySecretId` set), the password hash it has in `other`,
    /// when that differs and `other` has the account ACTIVE too. Everyone else gets nothing
    /// from `other`: humans' old passwords are never accepted, and a user disabled or removed
    /// here stays so. `other` was validated against the policy when it was built. With no
    /// account to take a hash for, the result has no alternates.
    ///
    /// A *previous* version's password is an older one: it is taken only when its
    /// `passwordChangedAt` is not later than the current one's (unknown counts as oldest). So
    /// after a rollback of a rotation (`AWSCURRENT` moved back, the rotated version now
    /// `AWSPREVIOUS`), the rolled-back, newer passwords get no grace period.
    pub fn with_alternates(&self, kind: AlternateKind, other: &Snapshot) -> Snapshot {
        let hashes: HashMap<String, StoredHash> = self
            .users
            .iter()
            .filter(|(_, u)| u.status == Status::Active && u.delivery_secret_id.is_some())
            .filter_map(|(name, u)| {
                let alt = other.user(name)?;
                let older = match (alt.password_changed_at, u.password_changed_at) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(then), Some(now)) => then <= now,
                };
                let in_time = kind == AlternateKind::Pending || older;
                (alt.status == Status::Active && alt.hash.expose() != u.hash.expose() && in_time)
                    .then(|| (name.to_owned(), alt.hash.clone()))
            })
            .collect();
        let alternates = (!hashes.is_empty()).then(|| Alternates {
            kind,
            version: other.version.clone(),
            hashes,
        });
        self.derive(alternates)
    }

    /// A new snapshot (new generation) of the same version without alternates: what serves
    /// when a rotation's pending version is gone or the previous version's grace period ended.
    pub fn without_alternates(&self) -> Snapshot {
        self.derive(None)
    }

    fn derive(&self, alternates: Option<Alternates>) -> Snapshot {
        Snapshot {
            version: self.version.clone(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            users: Arc::clone(&self.users),
            refused: self.refused.clone(),
            dummy: self.dummy.clone(),
            alternates,
            policy: self.policy.clone(),
        }
    }

    /// This snapshot, or the first refused entry as an error: for the paths that write a store
    /// (`users push`), where a hash the servers would refuse is the operator's mistake to fix
    /// before upload rather than a user to deny afterwards.
    pub fn strict(self) -> Result<Self, StoreError> {
        match self.refused.first() {
            Some(r) => Err(StoreError::Entry {
                user: r.user.clone(),
                problem: r.problem.clone().into(),
            }),
            None => Ok(self),
        }
    }

    /// Parses and validates in one step.
    pub fn from_json(
        bytes: &[u8],
        policy: &HashPolicy,
        version: impl Into<String>,
    ) -> Result<Self, StoreError> {
        Self::from_json_after(bytes, policy, version, None)
    }

    /// [`Snapshot::from_json`] for a reload: entries stream from the bytes straight into the
    /// new snapshot (no intermediate document), and every shard of users none of which changed
    /// is shared with `previous` (when `previous` was built under the same policy), as are the
    /// parsed hashes and role lists of users that changed otherwise. Same result as
    /// `from_json`; what changes is the memory and time a reload takes next to the snapshot in
    /// service.
    pub fn from_json_after(
        bytes: &[u8],
        policy: &HashPolicy,
        version: impl Into<String>,
        previous: Option<&Snapshot>,
    ) -> Result<Self, StoreError> {
        let expected = (bytes.len() / BYTES_PER_USER).max(1);
        Self::read_after(bytes, policy, previous, expected)
            .map(|s| s.with_version(version.into()))
            .map_err(|e| match e {
                StreamError::Invalid(e) => e,
                // A slice reads without failing; were it to, nothing goes into service.
                StreamError::Read(_) => StoreError::Json {
                    category: "io",
                    line: 0,
                    column: 0,
                },
            })
    }

    /// Builds a snapshot from a document read from `reader` through a small buffer (the file
    /// store's start and reloads), sharing what it can with `previous` as
    /// [`Snapshot::from_json_after`] does. `expected`: about how many users (sizes the table).
    /// The version is empty: the reader's digest names it ([`Snapshot::with_version`]).
    pub fn read_after(
        reader: impl std::io::Read,
        policy: &HashPolicy,
        previous: Option<&Snapshot>,
        expected: usize,
    ) -> Result<Self, StreamError> {
        let same_policy = previous.is_some_and(|p| p.policy == *policy);
        let mut builder = Builder::new(policy, previous.map(|p| &*p.users), same_policy, expected);
        crate::document::read_entries(reader, |name, entry| builder.add(name, entry))?;
        Ok(Self::from_built(builder.finish()?, policy, String::new()))
    }

    /// This snapshot under another version label (before it goes into service).
    pub fn with_version(mut self, version: String) -> Self {
        self.version = version;
        self
    }

    /// The hash policy this snapshot's entries were checked against.
    pub fn policy(&self) -> &HashPolicy {
        &self.policy
    }

    /// The store's version label (file digest, Secrets Manager version id).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Process-unique number of this snapshot: caches compare it to notice a change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Looks a user up (usernames are case-sensitive). `None` for a refused entry too.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Entries whose hash failed the policy, by username: their users are denied.
    pub fn refused(&self) -> &[RefusedEntry] {
        &self.refused
    }

    /// Number of users in service (refused entries not counted).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the document holds entries but none is in service (every hash refused): no
    /// one can sign in, so the store is not ready and a reload does not put it in service over
    /// one that serves.
    pub fn serves_nobody(&self) -> bool {
        self.users.len() == 0 && !self.refused.is_empty()
    }

    /// True when the store holds no user.
    pub fn is_empty(&self) -> bool {
        self.users.len() == 0
    }

    /// All users, for compliance checks.
    pub fn users(&self) -> impl Iterator<Item = (&str, &User)> {
        self.users.iter()
    }

    /// The hash verified for unknown usernames, at the most expensive cost class of the store
    /// ([`Cost::DEFAULT`] when empty).
    pub fn dummy(&self) -> &StoredHash {
        &self.dummy
    }

    /// The other version's hashes this snapshot also accepts, if any.
    pub fn alternates(&self) -> Option<&Alternates> {
        self.alternates.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{HashError, hash_password, tests::FAST};
    use crate::secret::Secret;

    fn phc() -> String {
        hash_password(&Secret::from("pw"), FAST).expect("hash")
    }

    #[test]
    fn loads_the_documented_format() {
        let h = phc();
        let json = format!(
            r#"{{"alice":{{"passwordHash":"{h}","status":"ACTIVE","roles":["admin"],"passwordChangedAt":"2026-01-02T03:04:05Z"}},
                "bob":{{"passwordHash":"{h}","status":"DISABLED","roles":[]}},
                "carol":{{"passwordHash":"{h}"}}}}"#
        );
        let s = Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v1").expect("valid");
        assert_eq!(s.len(), 3);
        assert_eq!(s.version(), "v1");
        assert_eq!(
            s.user("alice").map(|u| &*u.roles),
            Some(&["admin".to_owned()][..])
        );
        assert_eq!(s.user("bob").map(|u| u.status), Some(Status::Disabled));
        assert_eq!(s.user("carol").map(|u| u.status), Some(Status::Active));
        assert!(s.user("Alice").is_none(), "case-sensitive");
        assert_eq!(s.dummy().cost(), FAST);
        assert!(s.user("alice").and_then(|u| u.password_changed_at).is_some());
    }

    #[test]
    fn errors_name_the_user_never_the_hash() {
        let h = phc();
        let weak = hash_password(
            &Secret::from("pw"),
            Cost {
                m_kib: 4096,
                t: 1,
                p: 1,
            },
        )
        .expect("hash");
        let cases = [
            (
                format!(r#"{{"eve":{{"passwordHash":"{h}","status":"active"}}}}"#),
                "status must be ACTIVE or DISABLED",
            ),
            (
                format!(r#"{{"eve":{{"passwordHash":"{h}","satus":"DISABLED"}}}}"#),
                "unknown field",
            ),
            (r#"{"eve":{"passwordHash":42}}"#.to_owned(), "passwordHash"),
            (r#"{"eve":"nope"}"#.to_owned(), "entry must be an object"),
            (format!(r#"{{"e:ve":{{"passwordHash":"{h}"}}}}"#), "username"),
        ];
        for (json, want) in cases {
            let err = Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v").expect_err(&json);
            let msg = err.to_string();
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("eve") || msg.contains("e:ve"), "{msg}");
            for secret in [&h, &weak, "secretish"] {
                assert!(!msg.contains(secret), "{msg}");
            }
            let safe = err.log_safe(|_| "H".into());
            assert!(!safe.contains("eve") && safe.contains("user_hash H"), "{safe}");
        }
    }

    /// A hash that fails the policy denies its user only; the rest of the store serves, and
    /// `strict` (the upload path) still refuses the document naming the user, never the hash.
    #[test]
    fn a_refused_hash_denies_only_its_user() {
        let h = phc();
        let weak = hash_password(
            &Secret::from("pw"),
            Cost {
                m_kib: 4096,
                t: 1,
                p: 1,
            },
        )
        .expect("hash");
        let json = format!(
            r#"{{"alice":{{"passwordHash":"{h}"}},"eve":{{"passwordHash":"{weak}"}},
                "mal":{{"passwordHash":"$argon2id$v=19$m=65536,t=3,p=1$secretish"}},
                "old":{{"passwordHash":"$2y$10$abcdefghijklmnopqrstuu5Ro3IyBd/4eZ3ZCOS0QP6jG6Yw6U7xa"}}}}"#
        );
        let s = Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v").expect("serves");
        assert!(s.user("alice").is_some());
        assert_eq!((s.len(), s.users().count()), (1, 1));
        let refused: Vec<_> = s.refused().iter().map(|r| r.user.as_str()).collect();
        assert_eq!(refused, ["eve", "mal", "old"]);
        assert!(
            refused.iter().all(|u| s.user(u).is_none()),
            "denied like unknown users"
        );
        assert!(matches!(s.refused()[0].problem, HashError::Policy { .. }));
        assert_eq!(s.refused()[1].problem, HashError::NotPhc);
        // bcrypt without `hash.legacy`: refused as a legacy hash, that user only.
        assert!(matches!(s.refused()[2].problem, HashError::Legacy(_)));
        assert_eq!(s.dummy().cost(), FAST, "refused costs do not set the dummy's");
        let err = s.strict().expect_err("upload refuses");
        let msg = err.to_string();
        assert!(msg.contains("eve") && msg.contains("outside policy"), "{msg}");
        assert!(!msg.contains(&weak) && !msg.contains("secretish"), "{msg}");
    }

    /// The refused user walks the unknown user's path: the dummy verification at the store's
    /// top cost (so pacing and timing match) and the same denial, right password or not.
    #[test]
    fn a_refused_user_is_verified_and_denied_like_an_unknown_one() {
        use crate::authenticator::{Authenticator, Reason, Step};
        use crate::{cache::VerifiedCache, clock::SystemClock, credentials::Credentials};
        let weak = hash_password(
            &Secret::from("pw"),
            Cost {
                m_kib: 4096,
                t: 1,
                p: 1,
            },
        )
        .expect("hash");
        let json = format!(
            r#"{{"alice":{{"passwordHash":"{}"}},"eve":{{"passwordHash":"{weak}"}}}}"#,
            phc()
        );
        let s = Arc::new(Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v").expect("serves"));
        let auth = Authenticator::new(VerifiedCache::new(
            4,
            std::time::Duration::from_secs(60),
            Arc::new(SystemClock),
        ));
        for (user, pw) in [("eve", "pw"), ("eve", "other"), ("nobody", "pw")] {
            let Step::Verify(task) = auth.begin(&s, Credentials::new(user, pw).expect("creds")) else {
                panic!("a verification runs for {user}");
            };
            assert_eq!(task.cost(), s.dummy().cost(), "{user}: the dummy's cost");
            assert_eq!(
                auth.finish(task.run()).reason(),
                Some(Reason::UnknownUser),
                "{user}"
            );
        }
    }

    #[test]
    fn invalid_json_gives_position_only() {
        let err = Snapshot::from_json(
            b"{\"alice\": {\"passwordHash\": \"$argon",
            &HashPolicy::default(),
            "v",
        )
        .expect_err("truncated");
        assert!(matches!(err, StoreError::Json { line: 1, .. }), "{err}");
        assert!(!err.to_string().contains("argon"));
        let err = Snapshot::from_json(b"[1,2]", &HashPolicy::default(), "v").expect_err("array");
        assert!(err.to_string().contains("not an object"), "{err}");
        assert_eq!(err.log_safe(|_| String::new()), err.to_string());
    }

    #[test]
    fn generations_differ_and_empty_store_uses_default_dummy_cost() {
        let a = Snapshot::from_json(b"{}", &HashPolicy::default(), "a").expect("empty ok");
        let b = Snapshot::from_json(b"{}", &HashPolicy::default(), "a").expect("empty ok");
        assert_ne!(a.generation(), b.generation());
        assert!(a.is_empty());
        assert_eq!(a.dummy().cost(), Cost::DEFAULT);
        assert_eq!(a.users().count(), 0);
    }

    #[test]
    fn record_debug_is_redacted() {
        let doc =
            parse_document(format!(r#"{{"a":{{"passwordHash":"{}"}}}}"#, phc()).as_bytes()).expect("ok");
        let dbg = format!("{doc:?}");
        assert!(!dbg.contains("argon2id"), "{dbg}");
    }
    /// A previous version's password is accepted only when it is the older one: the grace
    /// period never covers passwords a rollback of a rotation took away.
    #[test]
    fn previous_passwords_must_be_older_than_current_ones() {
        let snap = |pw: &str, changed: Option<&str>, version: &str| {
            let hash = hash_password(&Secret::from(pw), FAST).expect("hash");
            let changed = changed.map_or(String::new(), |c| format!(r#","passwordChangedAt":"{c}""#));
            let json = format!(r#"{{"svc":{{"passwordHash":"{hash}","deliverySecretId":"d"{changed}}}}}"#);
            Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), version).expect("ok")
        };
        let old = snap("old", Some("2026-01-01T00:00:00Z"), "o");
        let rotated = snap("new", Some("2026-06-01T00:00:00Z"), "r");
        let undated = snap("legacy", None, "l");
        let accepted = |current: &Snapshot, other: &Snapshot, kind| {
            current
                .with_alternates(kind, other)
                .alternates()
                .is_some_and(|a| a.get("svc").is_some())
        };
        // After a rotation: the replaced (older or undated) password gets its grace period.
        assert!(accepted(&rotated, &old, AlternateKind::Previous));
        assert!(accepted(&rotated, &undated, AlternateKind::Previous));
        // After a rollback: the rotated (newer) password does not.
        assert!(!accepted(&old, &rotated, AlternateKind::Previous));
        assert!(!accepted(&undated, &rotated, AlternateKind::Previous));
        // A pending password is always the newer one and is accepted.
        assert!(accepted(&old, &rotated, AlternateKind::Pending));
        assert!(accepted(
            &undated,
            &snap("other", None, "u2"),
            AlternateKind::Pending
        ));
    }
}
