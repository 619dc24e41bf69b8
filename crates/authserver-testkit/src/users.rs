//! Users documents and files: distinctive plaintexts (so a search of captured output means
//! something), the files and settings built over them, and `Authorization` values.

use crate::hash::{FAST, hash};
use authserver::config::Settings;
use authserver::wiring::{Built, build};
use authserver_core::Cost;
use std::path::{Path, PathBuf};

/// An ACTIVE user with the roles admin and reader.
pub const ALICE: &str = "alice-plaintext-user";
/// [`ALICE`]'s password.
pub const ALICE_PW: &str = "Correct-Horse-Battery-7731";
/// A DISABLED user.
pub const BOB: &str = "bob-plaintext-user";
/// [`BOB`]'s password.
pub const BOB_PW: &str = "Disabled-Pass-Word-4410";
/// An ACTIVE user without roles.
pub const CAROL: &str = "carol-plaintext-user";
/// [`CAROL`]'s password (colons are legal in a Basic password).
pub const CAROL_PW: &str = "with:colons:inside";

/// Writes a users file: alice (ACTIVE, admin+reader), bob (DISABLED), carol (ACTIVE, no roles).
/// Returns the hashes so tests can search output for them.
pub fn write_users(path: &Path) -> Vec<String> {
    let hashes: Vec<String> = [ALICE_PW, BOB_PW, CAROL_PW]
        .iter()
        .map(|p| hash(p, FAST))
        .collect();
    let json = serde_json::json!({
        ALICE: {"passwordHash": hashes[0], "status": "ACTIVE", "roles": ["admin", "reader"]},
        BOB: {"passwordHash": hashes[1], "status": "DISABLED", "roles": []},
        CAROL: {"passwordHash": hashes[2]},
    });
    std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    hashes
}

/// A temp dir holding `users.json` (deleted on drop).
pub struct Fixture {
    /// The directory; keep it alive as long as the file is needed.
    pub dir: tempfile::TempDir,
    /// `dir/users.json`, written by [`write_users`].
    pub users: PathBuf,
    /// The users' hashes, in the order alice, bob, carol.
    pub hashes: Vec<String>,
}

/// A fresh [`Fixture`].
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let hashes = write_users(&users);
    Fixture { dir, users, hashes }
}

/// Settings for `users`, with a fast poll interval.
pub fn settings(users: &Path) -> Settings {
    let mut s = Settings::default();
    s.store.file = users.to_owned();
    s.store.poll_interval_ms = 50;
    s.log.user_hash_key = "test-key".into();
    s.audit.stdout = false;
    s
}

/// The server wired over `users` with [`settings`].
pub fn built(users: &Path) -> Built {
    build(settings(users)).unwrap()
}

/// `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    authserver_core::Credentials::new(user, pass)
        .unwrap()
        .to_header_value()
        .expose()
        .to_owned()
}

/// A store document: (username, password) pairs with reader role → JSON, hashes at `cost`.
pub fn document(users: &[(&str, &str)], cost: Cost) -> String {
    let map: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .map(|(user, pw)| {
            let entry = serde_json::json!({"passwordHash": hash(pw, cost), "roles": ["reader"]});
            ((*user).to_owned(), entry)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A fixture of `crates/authserver/tests/fixtures/htpasswd/` (made with `htpasswd -B` and
/// `mkpasswd`; the commands are in its README).
pub fn htpasswd_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../authserver/tests/fixtures/htpasswd")
        .join(name)
}

/// The users of `legacy.htpasswd`: (username, password, algorithm).
pub const LEGACY_USERS: [(&str, &str, &str); 5] = [
    ("bella", "bcrypt-pass-1", "bcrypt"),
    ("bruno", "bcrypt-pass-2", "bcrypt"),
    ("sasha", "sha512-pass-1", "sha-crypt"),
    ("samir", "sha256-pass-1", "sha-crypt"),
    ("sven", "sha512-pass-2", "sha-crypt"),
];
/// The user of `slow.htpasswd` (bcrypt cost 10) and its password.
pub const SLOW_BCRYPT: (&str, &str) = ("bertha", "bcrypt-pass-10");

/// Writes a users file of `count` users (`user-0000000`, ...; sorted, pretty, as `users add`
/// writes it), all with one FAST hash of `pw`: a large store without hashing per user.
pub fn write_many(path: &Path, count: usize) {
    use std::io::Write;
    let h = crate::hash::hash("pw", crate::hash::FAST);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut doc = authserver_core::StoreDocument::new();
    for i in 0..count {
        let rec =
            serde_json::from_value(serde_json::json!({"passwordHash": h, "roles": ["reader"]})).unwrap();
        doc.insert(format!("user-{i:07}"), rec);
    }
    serde_json::to_writer_pretty(&mut out, &doc).unwrap();
    out.write_all(b"\n").unwrap();
}
