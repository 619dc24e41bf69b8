//! Transparent re-hash of legacy (bcrypt, SHA-crypt) users to Argon2id on their next successful
//! login, written back to the users file.
//!
//! Off the request path: the login is answered first, the write-back runs on the blocking pool.
//! One at a time per process (a semaphore of one): a burst of legacy logins must not run an
//! Argon2id hashing each (64 MiB at the default cost) next to the limiter's budget. Under the
//! same lock as `users` commands ([`super::edit::edit_user`]), the file is re-read and the hash is
//! replaced only if the user still has the very legacy string that matched, so an edit made in
//! between (a password reset, a removal) is never undone. A failure logs (user_hash, never the
//! hash) and keeps the legacy hash: the next login tries again. The poll picks up the new file
//! like any other change.

use super::edit::{self, Change, Missing, Outcome};
use authserver_core::legacy::LegacyLogin;
use authserver_core::{Cost, HashPolicy, UserHasher, hash_password};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// What a write-back did.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgraded {
    /// The legacy hash was replaced by an Argon2id one.
    Replaced,
    /// The user's hash had changed (or the user is gone) since the login: nothing written.
    Changed,
}

/// The Argon2id cost for re-hashed users: the default, brought inside the policy's bounds.
pub fn upgrade_cost(policy: &HashPolicy) -> Cost {
    let d = Cost::DEFAULT;
    Cost {
        m_kib: d
            .m_kib
            .clamp(policy.min_m_kib, policy.max_m_kib.max(policy.min_m_kib)),
        t: d.t.clamp(policy.min_t, policy.max_t.max(policy.min_t)),
        p: d.p.min(policy.max_p.max(1)),
    }
}

/// Hashes and writes back, synchronously (the blocking pool's side).
pub fn write_back(file: &Path, login: &LegacyLogin, cost: Cost) -> anyhow::Result<Upgraded> {
    let phc = hash_password(&login.password, cost)?;
    let mut replace = |rec: &mut authserver_core::UserRecord| {
        if rec.password_hash != login.legacy.expose() {
            return false;
        }
        rec.password_hash.clone_from(&phc);
        true
    };
    let done = edit::edit_user(file, Missing::Fail, &login.username, Change::Update(&mut replace))?;
    Ok(if done == Outcome::Written {
        Upgraded::Replaced
    } else {
        Upgraded::Changed
    })
}

/// How long re-hashes pause after a write-back failed.
const FAILURE_PAUSE: std::time::Duration = std::time::Duration::from_secs(600);

/// When the last write-back failed.
static LAST_FAILURE: Mutex<Option<std::time::Instant>> = Mutex::new(None);

fn note_failure() {
    *LAST_FAILURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
}

fn recently_failed() -> bool {
    LAST_FAILURE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|at| at.elapsed() < FAILURE_PAUSE)
}

/// Starts the write-back in the background; false when there is no runtime to run it on.
pub fn spawn(file: PathBuf, login: LegacyLogin, policy: &HashPolicy, hasher: &UserHasher) -> bool {
    static ONE_AT_A_TIME: OnceLock<Arc<Mutex<()>>> = OnceLock::new();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let gate = Arc::clone(ONE_AT_A_TIME.get_or_init(Arc::default));
    let (cost, user_hash) = (upgrade_cost(policy), hasher.hash(&login.username));
    let span = tracing::info_span!("legacy_rehash", user_hash = %user_hash);
    runtime.spawn_blocking(move || {
        let _span = span.entered();
        let _one = gate.lock().unwrap_or_else(|e| e.into_inner());
        if recently_failed() {
            // A read-only file (a Kubernetes Secret mount) fails every time: not another
            // 64 MiB Argon2id hash per login for nothing.
            return;
        }
        match write_back(&file, &login, cost) {
            Ok(Upgraded::Replaced) => tracing::info!(algorithm = login.legacy.algorithm(), "legacy hash re-hashed to Argon2id"),
            Ok(Upgraded::Changed) => tracing::info!("legacy hash not re-hashed: the user's entry changed since the login"),
            Err(e) => {
                note_failure();
                tracing::warn!(error = %e, "legacy hash re-hash failed; the legacy hash stays, re-hashes paused for 10 min");
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_core::{Secret, StoredHash, UserRecord};

    const BELLA: &str = "$2y$05$4jH9N/BYOMxYYi7SFKLjP.0aGG5VsABVdQU.DBy07WDHnkusT8Tem";

    fn login() -> LegacyLogin {
        let policy = HashPolicy {
            legacy: true,
            ..HashPolicy::default()
        };
        LegacyLogin {
            username: "bella".into(),
            password: Secret::from("bcrypt-pass-1"),
            legacy: StoredHash::parse(BELLA, &policy).expect("fixture"),
        }
    }

    fn file_with(hash: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.json");
        let mut doc = authserver_core::StoreDocument::new();
        doc.insert(
            "bella".into(),
            UserRecord {
                password_hash: hash.into(),
                status: Default::default(),
                roles: vec!["ops".into()],
                password_changed_at: None,
                delivery_secret_id: None,
                oauth: None,
            },
        );
        edit::write(&path, &doc).expect("write");
        (dir, path)
    }

    const FAST: Cost = Cost {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    #[test]
    fn replaces_only_the_legacy_string_that_matched() {
        let (_dir, path) = file_with(BELLA);
        assert_eq!(write_back(&path, &login(), FAST).expect("ok"), Upgraded::Replaced);
        let doc = edit::read(&path).expect("read");
        let rec = &doc["bella"];
        let h = StoredHash::parse(&rec.password_hash, &HashPolicy::default()).expect("argon2id");
        assert_eq!(h.algorithm(), "argon2id");
        assert!(h.verify(&Secret::from("bcrypt-pass-1")));
        assert_eq!(rec.roles, ["ops"]);
        // A CLI edit in between (here: the hash already changed) is never undone.
        let (_dir2, path2) = file_with("$argon2id$v=19$set-by-an-admin");
        assert_eq!(write_back(&path2, &login(), FAST).expect("ok"), Upgraded::Changed);
        assert_eq!(
            edit::read(&path2).expect("read")["bella"].password_hash,
            "$argon2id$v=19$set-by-an-admin"
        );
    }

    #[test]
    fn upgrade_cost_stays_inside_the_policy() {
        assert_eq!(upgrade_cost(&HashPolicy::default()), Cost::DEFAULT);
        let tight = HashPolicy {
            max_m_kib: 32768,
            min_t: 4,
            ..HashPolicy::default()
        };
        assert_eq!(
            upgrade_cost(&tight),
            Cost {
                m_kib: 32768,
                t: 4,
                p: 1
            }
        );
    }
}
