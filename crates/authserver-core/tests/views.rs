//! One-user views of a per-user store (`Snapshot::into_view`): the verified cache answers
//! across views of different users (they share a generation), yet a view carrying a changed
//! record (disabled, new password, new roles) is decided by that record.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::{
    Authenticator, Cost, Credentials, HashPolicy, Outcome, Reason, Secret, Snapshot, Step, SystemClock,
    VerifiedCache, hash_password,
};
use std::sync::Arc;
use std::time::Duration;

const CHEAP: Cost = Cost {
    m_kib: 64,
    t: 1,
    p: 1,
};

fn policy() -> HashPolicy {
    HashPolicy {
        min_m_kib: 64,
        min_t: 1,
        ..HashPolicy::default()
    }
}

fn view(generation: u64, user: &str, pw: &str, status: &str, role: &str) -> Arc<Snapshot> {
    let hash = hash_password(&Secret::from(pw), CHEAP).unwrap();
    let json = format!(r#"{{"{user}":{{"passwordHash":"{hash}","status":"{status}","roles":["{role}"]}}}}"#);
    let s = Snapshot::from_json(json.as_bytes(), &policy(), "t@1").unwrap();
    Arc::new(s.into_view(generation, Cost::DEFAULT))
}

/// (reason, answered from the cache, roles when allowed)
fn decide(
    auth: &Authenticator,
    v: &Arc<Snapshot>,
    user: &str,
    pw: &str,
) -> (Option<Reason>, bool, Vec<String>) {
    let d = match auth.begin(v, Credentials::new(user, pw).unwrap()) {
        Step::Done(d) => (d, true),
        Step::Verify(task) => (auth.finish(task.run()), false),
    };
    let roles = match &d.0.outcome {
        Outcome::Allowed { roles } => roles.to_vec(),
        Outcome::Denied(_) => vec![],
    };
    (d.0.reason(), d.1, roles)
}

#[test]
fn the_cache_answers_across_views_and_each_view_decides_by_its_record() {
    let g = Snapshot::reserve_generation();
    let auth = Authenticator::new(VerifiedCache::new(
        10,
        Duration::from_secs(60),
        Arc::new(SystemClock),
    ));
    let alice = view(g, "alice", "pw-a", "ACTIVE", "ops");
    let bob = view(g, "bob", "pw-b", "ACTIVE", "dev");
    assert_eq!(
        decide(&auth, &alice, "alice", "pw-a"),
        (None, false, vec!["ops".into()])
    );
    assert_eq!(
        decide(&auth, &bob, "bob", "pw-b"),
        (None, false, vec!["dev".into()])
    );
    assert!(
        decide(&auth, &alice, "alice", "pw-a").1,
        "bob's view swept nothing"
    );

    // The same hash, a new role: answered from the cache with the view's roles.
    let same_hash = {
        let json = format!(
            r#"{{"alice":{{"passwordHash":"{}","roles":["admin"]}}}}"#,
            alice.user("alice").unwrap().hash.expose()
        );
        Arc::new(
            Snapshot::from_json(json.as_bytes(), &policy(), "t@2")
                .unwrap()
                .into_view(g, Cost::DEFAULT),
        )
    };
    assert_eq!(
        decide(&auth, &same_hash, "alice", "pw-a"),
        (None, true, vec!["admin".into()])
    );
    // Disabled: the cached success does not answer.
    let disabled = view(g, "alice", "pw-a", "DISABLED", "ops");
    assert_eq!(
        decide(&auth, &disabled, "alice", "pw-a"),
        (Some(Reason::Disabled), false, vec![])
    );
    // A new password: the old one no longer matches the key (it covers the stored hash).
    let changed = view(g, "alice", "pw-new", "ACTIVE", "ops");
    assert_eq!(
        decide(&auth, &changed, "alice", "pw-a").0,
        Some(Reason::WrongPassword)
    );
}

#[test]
fn a_view_verifies_unknown_users_at_the_stores_top_cost_and_carries_its_generation() {
    let one_user = || {
        let hash = hash_password(&Secret::from("pw"), CHEAP).unwrap();
        let json = format!(r#"{{"carol":{{"passwordHash":"{hash}"}}}}"#);
        Snapshot::from_json(json.as_bytes(), &policy(), "t@1").unwrap()
    };
    assert_eq!(
        one_user().dummy().cost(),
        CHEAP,
        "alone, a snapshot knows only its user's cost"
    );
    let top = Cost {
        m_kib: 128,
        t: 1,
        p: 1,
    };
    let g = Snapshot::reserve_generation();
    let v = one_user().into_view(g, top);
    assert_eq!((v.dummy().cost(), v.generation()), (top, g));
    let cheaper = Cost {
        m_kib: 32,
        t: 1,
        p: 1,
    };
    assert_eq!(
        one_user().into_view(g, cheaper).dummy().cost(),
        CHEAP,
        "never cheaper than its own"
    );
}
