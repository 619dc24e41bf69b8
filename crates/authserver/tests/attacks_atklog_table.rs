//! Attack (wt-atklog) on the OAuth audit event's client lookup on the DynamoDB users table.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::StoreKind;
use authserver_testkit::hash::policy;
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::oauth::{fixture, settings};
use authserver_testkit::oauth_http::post_form;
use authserver_testkit::{moto, or_skip};
use axum::http::StatusCode;

/// Finding 3 (medium, cost/availability): an `/oauth/token` request the gate never judged
/// costs one users-table `GetItem` for its audit event, with no regulation at all.
///
/// `Trail::event` looks a presented id up in the store (`registry::registration`) to decide
/// whether to show it, unless the refusal was `unknown_user`/`unknown_client`. A request whose
/// form `client_id` differs from the Basic id is refused `invalid_request` *before*
/// `attempt_credentials` (no regulation check, no failure counted, so the source is never
/// banned), yet its event reads the table for the Basic id. The table has no negative cache,
/// so a spray of unique ids is one `GetItem` per request, unbounded and unmetered: read
/// capacity (money on on-demand, throttling and then 503 for every user on provisioned) spent
/// by an anonymous caller. The same holds for a source already banned (`rate_limited`: the
/// gate refused without a read, the event reads). The trail's own comment states the rule this
/// breaks: "a spray of unknown ids would cost two reads each" is what it avoids.
///
/// Repro: 60 × `POST /oauth/token` with `Authorization: Basic base64(rnd-i:x)` and body
/// `grant_type=client_credentials&client_id=other`: 60 × 400, 60 more table reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unjudged_oauth_request_costs_no_table_read_for_its_audit_event() {
    let url = or_skip!(moto::url(
        "an_unjudged_oauth_request_costs_no_table_read_for_its_audit_event"
    ));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = authserver_aws::UsersTable::new(c.clone(), &name);
    table.bump_counting(0).await.unwrap();
    let f = fixture();
    let mut s = settings(&f);
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = url.clone();
    s.users_table.name = name.clone();
    s.hash.policy = policy();
    let state = authserver::wiring::build(s).unwrap().state;
    let reads = || state.gate.store.counters().refreshes;
    // Warm: the version poll and the first lookups.
    let _ = post_form(
        &state,
        "192.0.2.9:1",
        "/oauth/token",
        Some(&authserver_testkit::oauth::basic_client("warm", "x")),
        "grant_type=client_credentials&client_id=other",
    )
    .await;
    let before = reads();
    for i in 0..60 {
        let auth = authserver_testkit::oauth::basic_client(&format!("rnd-{i}"), "x");
        let a = post_form(
            &state,
            "192.0.2.9:1",
            "/oauth/token",
            Some(&auth),
            "grant_type=client_credentials&client_id=other",
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    }
    let spent = reads() - before;
    assert!(spent <= 5, "60 unjudged requests cost {spent} users-table reads");
}

/// Finding 3, second path: a source banned by regulation is refused `rate_limited` by the
/// gate before any table read (`check_local`), but each refused request's audit event still
/// reads the table for the presented id (`rate_limited` is not among the reasons that skip
/// the lookup). A ban does not stop a banned source from spending read capacity.
///
/// Repro: ban 192.0.2.10 (`max_source_failures` wrong secrets), then 60 × Basic `rnd-i:x`
/// from it: 60 × 429, 60 table reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_source_costs_no_table_read() {
    let url = or_skip!(moto::url("a_banned_source_costs_no_table_read"));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = authserver_aws::UsersTable::new(c.clone(), &name);
    table.bump_counting(0).await.unwrap();
    let f = fixture();
    let mut s = settings(&f);
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = url.clone();
    s.users_table.name = name.clone();
    s.hash.policy = policy();
    s.regulation.policy.enabled = true;
    s.regulation.policy.max_source_failures = 3;
    let state = authserver::wiring::build(s).unwrap().state;
    let reads = || state.gate.store.counters().refreshes;
    let peer = "192.0.2.10:1";
    let mut banned = false;
    for i in 0..20 {
        let auth = authserver_testkit::oauth::basic_client(&format!("ban-{i}"), "x");
        let a = post_form(
            &state,
            peer,
            "/oauth/token",
            Some(&auth),
            "grant_type=client_credentials",
        )
        .await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            banned = true;
            break;
        }
    }
    assert!(banned, "the source is banned");
    let before = reads();
    for i in 0..60 {
        let auth = authserver_testkit::oauth::basic_client(&format!("rnd-{i}"), "x");
        let a = post_form(
            &state,
            peer,
            "/oauth/token",
            Some(&auth),
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", a.body);
    }
    let spent = reads() - before;
    assert!(
        spent <= 5,
        "60 requests of a banned source cost {spent} users-table reads"
    );
}
