//! Store JSON loader: never panics on any bytes; whatever it accepts the CLI can write back and
//! load again unchanged; the policy check agrees with `Snapshot::build`; no error message
//! quotes a password hash.
//!
//! Hashing is kept out of the loop. `Snapshot::build` computes a dummy Argon2id hash for the
//! store's most common cost (~20-150 ms, memoised per distinct cost for the whole process), so
//! running it with the default policy on fuzzed costs would spend nearly all the time hashing
//! and grow the memo without bound. Instead:
//! - every entry goes through the same cheap checks `build` makes (username rules, PHC parse,
//!   the default [`HashPolicy`]) without building;
//! - `Snapshot::build` itself runs with a policy pinned to the floor cost (m=19456, t=2, p=1),
//!   so only two dummy hashes are ever computed per process (the floor, and the default cost
//!   for an empty store), once each, and everything after that is cheap.
#![no_main]

use authserver_core::store::EntryProblem;
use authserver_core::{Credentials, HashPolicy, Snapshot, StoreError, StoredHash, parse_document};
use libfuzzer_sys::fuzz_target;

const PINNED: HashPolicy = HashPolicy {
    min_m_kib: 19456,
    max_m_kib: 19456,
    min_t: 2,
    max_t: 2,
    max_p: 1,
};

fuzz_target!(|data: &[u8]| {
    let doc = match parse_document(data) {
        Ok(doc) => doc,
        Err(e) => {
            let _ = (e.to_string(), e.log_safe(|_| "H".into()));
            return;
        }
    };

    // What `authserver users ...` writes back loads again, identically.
    let written = serde_json::to_vec_pretty(&doc).expect("a loaded document serialises");
    let reread = parse_document(&written).expect("a written document loads");
    assert!(reread == doc, "write-back changed the document");

    // The cheap per-entry checks, with the default policy.
    let default = HashPolicy::default();
    let mut default_ok = true;
    for (name, rec) in &doc {
        let name_ok = Credentials::new(name, "").is_ok();
        let hash = StoredHash::parse(&rec.password_hash, &default);
        if let Err(e) = &hash {
            assert_no_hash_in(&e.to_string(), &doc);
        }
        default_ok &= name_ok && hash.is_ok();
    }

    // The real build, hash-free after the first two calls of the process.
    match Snapshot::build(doc.clone(), &PINNED, "fuzz") {
        Ok(snap) => {
            assert!(default_ok, "the pinned policy is inside the default one");
            assert_eq!(snap.len(), doc.len());
            for (name, rec) in &doc {
                let user = snap.user(name).expect("every entry is a user");
                assert_eq!(user.status, rec.status);
                assert_eq!(user.hash.expose(), rec.password_hash);
                assert_eq!(&*user.roles, &rec.roles[..]);
            }
        }
        Err(StoreError::Entry { user, problem }) => {
            let rec = doc.get(&user).expect("the error names an entry of the document");
            match &problem {
                EntryProblem::Username => assert!(Credentials::new(&user, "").is_err()),
                EntryProblem::Hash(_) => assert!(StoredHash::parse(&rec.password_hash, &PINNED).is_err()),
                EntryProblem::Shape(_) => panic!("shape problems are found by parse_document"),
            }
            let err = StoreError::Entry { user, problem };
            assert_no_hash_in(&err.log_safe(|_| "H".into()), &doc);
        }
        Err(e @ StoreError::Json { .. }) => panic!("build never reports JSON errors: {e}"),
    }
});

/// No hash-like value (a `$`-prefixed string of 20+ characters) of the document appears in `msg`.
fn assert_no_hash_in(msg: &str, doc: &authserver_core::StoreDocument) {
    for rec in doc.values() {
        let h = &rec.password_hash;
        if h.starts_with('$') && h.len() >= 20 {
            assert!(!msg.contains(h.as_str()), "message quotes a hash: {msg}");
        }
    }
}
