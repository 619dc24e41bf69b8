//! Hashes made by other implementations verify: the PHC strings in
//! `fixtures/foreign-hashes.json` come from argon2-cffi (the reference implementation's Python
//! binding; `fixtures/foreign-hashes.py` made them), one per row of OWASP's equivalence table
//! plus Caddy's argon2id parameters. They go through the store's own path (document → snapshot
//! under the default policy → authenticator), as a users file holding them would.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_core::{
    Authenticator, Credentials, HashPolicy, Outcome, Reason, Snapshot, SystemClock, VerifiedCache,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    name: String,
    password: String,
    phc: String,
}

fn fixtures() -> Vec<Fixture> {
    let text = include_str!("fixtures/foreign-hashes.json");
    let doc: Value = serde_json::from_str(text).expect("fixture is JSON");
    doc["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| Fixture {
            name: e["name"].as_str().expect("name").to_owned(),
            password: e["password"].as_str().expect("password").to_owned(),
            phc: e["phc"].as_str().expect("phc").to_owned(),
        })
        .collect()
}

#[test]
fn every_owasp_row_and_caddys_default_verify() {
    let all = fixtures();
    let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    for want in [
        "owasp-m47104-t1",
        "owasp-m19456-t2",
        "owasp-m12288-t3",
        "owasp-m9216-t4",
        "owasp-m7168-t5",
    ] {
        assert!(names.contains(&want), "{want} missing from the fixtures");
    }
    assert!(
        all.iter()
            .any(|f| f.phc.starts_with("$argon2id$v=19$m=47104,t=1,p=1$") && f.name.starts_with("caddy"))
    );
    let users: serde_json::Map<String, Value> = all
        .iter()
        .map(|f| (f.name.clone(), serde_json::json!({ "passwordHash": f.phc })))
        .collect();
    let json = serde_json::to_vec(&users).expect("document");
    let snapshot = Arc::new(Snapshot::from_json(&json, &HashPolicy::default(), "foreign").expect("loads"));
    assert!(snapshot.refused().is_empty(), "refused: {:?}", snapshot.refused());
    assert_eq!(snapshot.len(), all.len());
    let auth = Authenticator::new(VerifiedCache::new(
        16,
        Duration::from_secs(60),
        Arc::new(SystemClock),
    ));
    for f in &all {
        let right = auth.authenticate(&snapshot, Credentials::new(&f.name, &f.password).expect("creds"));
        assert!(
            matches!(right.outcome, Outcome::Allowed { .. }),
            "{}: {right:?}",
            f.name
        );
        let wrong = auth.authenticate(&snapshot, Credentials::new(&f.name, "not-it").expect("creds"));
        assert_eq!(wrong.reason(), Some(Reason::WrongPassword), "{}", f.name);
    }
}
