//! Attacks on the DynamoDB users store's latest changes (issue 17): the version item the CLI
//! keeps (version and user count), writes whose answer is lost, and usernames DynamoDB itself
//! refuses as keys. The server talks to moto through the testkit's relay; the CLI is the real
//! binary.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::StoreKind;
use authserver::http::{AppState, ClientAddr, app};
use authserver_aws::UsersTable;
use authserver_core::{Status, UserRecord};
use authserver_testkit::cli::{isolated, run_cli, text};
use authserver_testkit::hash::{CHEAP, hash, policy};
use authserver_testkit::moto::relay::{Hold, Relay};
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::moto::wire::Wire;
use authserver_testkit::users::{basic, settings};
use authserver_testkit::{moto, or_skip};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A table holding alice (ACTIVE, added and counted as the CLI does) and a server on it through
/// a relay, polling the version every second, entries kept for the default five minutes.
async fn rig(url: &str) -> (aws_sdk_dynamodb::Client, UsersTable, Relay, Arc<AppState>) {
    let c = ut::client(url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c.clone(), &name);
    table
        .add("alice", &ut::record("alice-pw", Status::Active))
        .await
        .unwrap();
    table.bump_counting(1).await.unwrap();
    let relay = Relay::start(url).await;
    let state = server(&relay.url, &name);
    (c, table, relay, state)
}

fn server(endpoint: &str, table: &str) -> Arc<AppState> {
    let mut s = settings(std::path::Path::new("/nonexistent"));
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = endpoint.to_owned();
    s.users_table.name = table.to_owned();
    s.users_table.version_poll_seconds = 1;
    s.users_table.entry_ttl_seconds = 300;
    s.hash.policy = policy();
    authserver::wiring::build(s).unwrap().state
}

/// `users --table` (see the testkit's `cli`): (success, stderr).
fn cli(url: &str, table: &str, args: &[&str]) -> (bool, String) {
    let (ok, _, stderr) = ut::cli(url, table, args, None);
    (ok, stderr)
}

/// Finding 1. A version item whose `version` does not parse as a `u64` (a hand edit, a restore,
/// a number DynamoDB holds fine such as 2^64 or 7.5) is read as version 0 by `head_of`, and so
/// is every later value the CLI's `ADD` makes of it: the version the servers see never changes,
/// no CLI write is ever picked up within `version_poll`, silently (the CLI reports success and
/// `/ready` shows the same `@0` label). The contract: a CLI write is in force for every request
/// that starts more than `version_poll` plus one round trip after it returned.
///
/// Repro: put `{username: ":version", version: N "18446744073709551616"}`; a server polling
/// every 1 s caches alice; `users disable alice --table T` (bump +1); 2.5 s later alice is
/// still accepted (for `entry_ttl`, 5 min).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_past_u64_hides_every_later_cli_write() {
    let url = or_skip!(moto::url("a_version_past_u64_hides_every_later_cli_write"));
    let (c, table, _relay, state) = rig(&url).await;
    c.put_item()
        .table_name(table.name())
        .item("username", AttributeValue::S(":version".into()))
        .item("version", AttributeValue::N("18446744073709551616".into()))
        .item("users", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "alice cached"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "version polled"
    );

    // `users disable alice --table T`: the conditional write, then the bump.
    table.set_status("alice", Status::Disabled).await.unwrap();
    let bumped = table.bump_version().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::UNAUTHORIZED,
        "alice was disabled 2.5 s ago through the CLI path (version_poll = 1 s, bump returned \
         {bumped}); the server still accepts her: a version past u64 reads as 0 for good"
    );
}

/// Finding 2. The version bump (`ADD version 1, users N`) is not idempotent but is retried by
/// `with_retries`: an `UpdateItem` that DynamoDB applied and whose answer was lost (a 500, a
/// timeout, a reset connection) is applied again, and the user count `/ready` reports drifts
/// by N per lost answer, for good (the docs promise "users add +1"; only a hand edit repairs it).
///
/// Repro: `bump_counting(1)` through a client whose first `UpdateItem` answer is replaced by a
/// 500 after moto applied it: the count goes 1 -> 3 for one added user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_bump_answer_counts_the_added_user_twice() {
    let url = or_skip!(moto::url("a_lost_bump_answer_counts_the_added_user_twice"));
    let (_c, table, _relay, _state) = rig(&url).await;
    let before = table.head().await.unwrap();
    assert_eq!(before.users, Some(1), "alice counted");

    let wire = Arc::new(Wire::default());
    let tapped = UsersTable::new(ut::tapped_client(&url, wire.clone()).await, table.name());
    tapped
        .add("bob", &ut::record("bob-pw", Status::Active))
        .await
        .unwrap();
    // The UpdateItem reaches moto and takes effect; its answer is a 500.
    wire.inject("UpdateItem", 500, "InternalServerError", 1);
    let bumped = tapped.bump_counting(1).await;
    let after = table.head().await.unwrap();
    assert_eq!(
        after.users,
        Some(2),
        "one user added (bump {bumped:?}, {} UpdateItem attempts): the table holds 2 users, \
         the count says {:?}",
        wire.attempts("UpdateItem"),
        after.users
    );
}

/// Finding 3. `users remove U --table T` whose `DeleteItem` took effect but whose answer was lost
/// (timeout, reset) fails without bumping the version (a conditional write is not retried, and
/// `write` bumps only after a success); the operator runs it again and is told `no user "U" in
/// the table`, again without a bump. No CLI command bumps the version then, and the servers that
/// cached U keep accepting the removed user for `entry_ttl` (5 min by default) instead of
/// `version_poll`, with no warning printed (the warning exists only for a failed bump).
///
/// Repro: a server caches alice; `users remove alice --table T` through a relay holding the
/// `DeleteItem` answers (fails after the SDK's timeouts); hold released; `users remove alice`
/// again ("no user"); 2.5 s later (poll 1 s) alice is still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_whose_answer_was_lost_is_never_picked_up() {
    let url = or_skip!(moto::url("a_remove_whose_answer_was_lost_is_never_picked_up"));
    let (_c, table, relay, state) = rig(&url).await;
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "alice cached"
    );
    let version = table.version().await.unwrap();

    // The CLI's own relay: its DeleteItem answers are held (the delete takes effect).
    let cli_relay = Relay::start(&url).await;
    cli_relay.hold(Hold::Matching(b"DeleteItem".to_vec()));
    let (u, n) = (cli_relay.url.clone(), table.name().to_owned());
    let (ok, err) = tokio::task::spawn_blocking(move || cli(&u, &n, &["remove", "alice"]))
        .await
        .unwrap();
    assert!(!ok, "the remove's answer was lost: {err}");
    cli_relay.hold(Hold::Nothing);
    assert!(
        table.get("alice").await.unwrap().is_none(),
        "the delete took effect"
    );

    // The operator runs it again.
    let (u, n) = (cli_relay.url.clone(), table.name().to_owned());
    let (ok, err2) = tokio::task::spawn_blocking(move || cli(&u, &n, &["remove", "alice"]))
        .await
        .unwrap();
    assert!(!ok && err2.contains("no user"), "{err2}");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = ut::validate(&state, &alice).await.0;
    let after = table.version().await.unwrap();
    drop(relay);
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "alice was removed (first remove: {err:?}; second: {err2:?}); version {version} -> \
         {after}: 2.5 s later (version_poll = 1 s) the server still accepts her, for entry_ttl"
    );
}

/// Held (not a finding): usernames DynamoDB might choke on as keys (empty, control characters
/// and past 256 bytes never get this far: the Basic parser refuses them), a 256-byte name of 4-byte characters, RTL and combining marks, `:version`-like
/// names) are unknown users: 401, and the store stays healthy for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_usernames_are_unknown_users_not_a_store_outage() {
    let url = or_skip!(moto::url("odd_usernames_are_unknown_users_not_a_store_outage"));
    let (_c, _table, _relay, state) = rig(&url).await;
    let odd = [
        "\u{1F600}".repeat(64),
        "\u{202E}nimda\u{301}".to_owned(),
        "\u{FEFF}alice".to_owned(),
        "username".to_owned(),
        " ".to_owned(),
    ];
    for name in &odd {
        assert_eq!(
            ut::validate(&state, &basic(name, "x")).await.0,
            StatusCode::UNAUTHORIZED,
            "{name:?}"
        );
    }
    assert_eq!(
        ut::validate(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK
    );
}

/// Finding 4. OAuth on with the DynamoDB users store: no OAuth client can exist. `item_of`
/// drops a record's `oauth` object (only strings and lists become attributes) and `record_of`
/// refuses a map attribute, though the module promises "one user as one DynamoDB item, in the
/// users file's entry format"; and `client_auth::registration` reads `store.current()`, which
/// for the table is the empty unknown-user view. So a client registered in the table gets
/// `unauthorized_client` at the token endpoint, every bearer token is refused by the proxy and
/// the Lambda authorizer, and nothing refuses or warns about the combination: the template
/// accepts `UsersStore=table` with `OAuthSigner=kms`, and `wiring::build` starts.
///
/// Repro: a table holding `svc-post` written with `UsersTable::add` (its record has an
/// `oauth` registration, client_secret_post); a server with `[oauth]` on over that table;
/// `POST /oauth/token grant_type=client_credentials&client_id=svc-post&client_secret=…`
/// (expected 200 with a token, as with the users file); today 400 `unauthorized_client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_client_in_the_users_table_can_get_a_token() {
    use authserver_testkit::oauth::{POST_CLIENT, POST_SECRET, fixture};
    use http_body_util::BodyExt as _;
    let url = or_skip!(moto::url("an_oauth_client_in_the_users_table_can_get_a_token"));
    let f = fixture();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&f.users).unwrap()).unwrap();
    let client: UserRecord = serde_json::from_value(doc[POST_CLIENT].clone()).unwrap();
    assert!(client.oauth.is_some(), "the fixture's client has a registration");
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c, &name);
    table.add(POST_CLIENT, &client).await.unwrap();
    table.bump_counting(1).await.unwrap();

    let mut s = authserver_testkit::oauth::settings(&f);
    s.store.kind = StoreKind::Dynamodb;
    s.store.endpoint_url = url.clone();
    s.users_table.name = name;
    s.users_table.version_poll_seconds = 1;
    let state = authserver::wiring::build(s).unwrap().state;
    let form = format!("grant_type=client_credentials&client_id={POST_CLIENT}&client_secret={POST_SECRET}");
    let mut req = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr("192.0.2.7:1000".parse().unwrap()));
    let res = app(state).oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let stored = table.get(POST_CLIENT).await.unwrap().unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "a client_secret_post client stored in the table (attributes {:?}) gets no token: {}",
        stored.keys().collect::<Vec<_>>(),
        String::from_utf8_lossy(&body)
    );
}

/// Finding 8. One throttled version read (both request-path attempts answered
/// `ThrottlingException`, a burst on the one hot `:version` key every instance polls) turns the
/// store to "failing": every uncached user gets 503 at once, and the probe that would end it is
/// only started by a request once `version_poll` (5 s by default) has passed since the failed
/// read, though the table answers again at once. The contract: "the version is probed at most
/// once a second meanwhile … the first success ends it", and the 503 says `Retry-After: 1`.
/// So a single throttled poll costs every uncached user (a cold instance: all of them)
/// `version_poll` seconds of 503, each instance polling alike.
///
/// Repro: a store (poll 5 s) that read the version and cached alice; 5 s later the next
/// request's version read gets two ThrottlingExceptions; the table is fine from then on;
/// bob (not cached), asked every 250 ms, is 503 for ~5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_throttled_version_read_503s_uncached_users_for_a_whole_poll() {
    use authserver_aws::users_table::REQUEST_RETRY;
    use authserver_aws::{UsersTableConfig, UsersTableStore};
    use authserver_core::{SnapshotSource, SystemClock, UserHasher};
    let url = or_skip!(moto::url(
        "one_throttled_version_read_503s_uncached_users_for_a_whole_poll"
    ));
    let (_c, table, _relay, _state) = rig(&url).await;
    table
        .add("bob", &ut::record("bob-pw", Status::Active))
        .await
        .unwrap();
    table.bump_counting(1).await.unwrap();
    let wire = Arc::new(Wire::default());
    let tapped =
        UsersTable::new(ut::tapped_client(&url, wire.clone()).await, table.name()).with_retry(REQUEST_RETRY);
    let config = UsersTableConfig::new(policy()); // version_poll 5 s
    let store = UsersTableStore::new(tapped, config, UserHasher::new(b"k"), Arc::new(SystemClock));
    store.refresh().await.unwrap();
    assert!(store.current_for("alice").resolve().await.is_ok(), "alice cached");

    tokio::time::sleep(Duration::from_millis(5100)).await;
    let before = wire.attempts("GetItem");
    wire.inject("GetItem", 400, "ThrottlingException", 2);
    assert!(
        store.current_for("alice").resolve().await.is_ok(),
        "alice from the cache"
    );
    assert_eq!(
        wire.attempts("GetItem") - before,
        2,
        "the version read was throttled twice"
    );
    assert!(store.status().last_error.is_some(), "the store is failing");

    // The table answers again. Bob is asked every 250 ms for 2 s.
    let start = std::time::Instant::now();
    let mut answers = Vec::new();
    while start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        answers.push(store.current_for("bob").resolve().await.is_ok());
    }
    assert!(
        answers.iter().rev().take(3).all(|ok| *ok),
        "the table answered again 2 s ago (one probe a second promised); bob, not cached, is \
         still 503: {answers:?} (last error {:?})",
        store.status().last_error
    );
}

/// Finding 9. `users import --table` that writes some users and then fails (one entry already
/// exists without `--replace`, or a conflict with another operator, or a throttled write)
/// returns the error before `audit.emit`: the users it did add are in the table, counted, in
/// force, and no `admin_action` audit event records the import. The module promises "each
/// change is an audit event like a file edit's". An operator (or anyone holding the CLI's
/// credentials) can add any number of users with no audit trail by putting one existing name in
/// the file.
///
/// Repro: a table holding alice; `users import --table T f.json --format json` with
/// `{"alice": H, "mallory": H}`: exit 1 "import incomplete: 1 added", mallory is in the table,
/// no `"action":"users.import"` event on either stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_failed_import_still_leaves_an_audit_event() {
    let url = or_skip!(moto::url("a_partly_failed_import_still_leaves_an_audit_event"));
    let (_c, table, _relay, _state) = rig(&url).await;
    let (ok, stdout, stderr) = import(&url, table.name(), &["alice", "mallory"]).await;
    assert!(!ok, "alice exists: {stderr}");
    assert!(table.get("mallory").await.unwrap().is_some(), "mallory was added");
    assert!(
        stdout.contains("\"action\":\"users.import\"") || stderr.contains("\"action\":\"users.import\""),
        "mallory was written to the table by this import, and no audit event says so:\n\
         stdout: {stdout}\nstderr: {stderr}"
    );
}

/// Control for finding 9: an import that succeeds does leave its audit event on the same
/// streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_a_complete_import_leaves_an_audit_event() {
    let url = or_skip!(moto::url("control_a_complete_import_leaves_an_audit_event"));
    let (_c, table, _relay, _state) = rig(&url).await;
    let (ok, stdout, stderr) = import(&url, table.name(), &["mallory"]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("\"action\":\"users.import\"") || stderr.contains("\"action\":\"users.import\""),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}

/// `users import --table T FILE --format json` of `users` (one hash), through the binary.
async fn import(url: &str, table: &str, users: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("import.json");
    let h = hash("mallory-pw", CHEAP);
    let doc: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .map(|u| ((*u).to_owned(), serde_json::Value::String(h.clone())))
        .collect();
    std::fs::write(&source, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (u, n, src) = (
        url.to_owned(),
        table.to_owned(),
        source.to_string_lossy().into_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = isolated();
        cmd.env("AUTHSERVER_STORE_ENDPOINT_URL", &u)
            .env("AUTHSERVER_HASH_MIN_M_KIB", "64")
            .env("AUTHSERVER_HASH_MIN_T", "1")
            .args(["users", "--table", &n, "import", &src, "--format", "json"]);
        run_cli(&mut cmd, None)
    })
    .await
    .unwrap();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Finding 11 (high). A store that is not ready (it started while the table was missing or
/// unreachable: IAM or endpoint still propagating, table created by the same deploy; or one
/// that failed past `max_stale`) is probed only by credential requests: `/ready` does not probe.
/// Behind a readiness probe (deploy/kubernetes: `readinessProbe: /ready`; a load balancer's
/// health check) a not-ready instance gets no traffic, so nothing ever probes, and it stays out
/// of service for good after the table is back: a permanent outage from a transient error. The
/// contract: "the version is probed at most once a second meanwhile … also past `max_stale` and
/// after a start without the table: the first success ends it".
///
/// Repro (release binary, loopback moto): `authserver serve` with `store.kind=dynamodb` and a
/// table name that does not exist; create the table and `users add alice --table`; `curl
/// /ready` once a second: 503 forever (8 s measured), until one `POST /auth/validate` (503)
/// probes it and the next `/ready` is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_started_without_its_table_becomes_ready_with_only_readiness_probes() {
    use http_body_util::BodyExt as _;
    let url = or_skip!(moto::url(
        "a_store_started_without_its_table_becomes_ready_with_only_readiness_probes"
    ));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    c.delete_table().table_name(&name).send().await.unwrap();
    let state = server(&url, &name);
    assert!(!state.gate.store.status().ready, "no table: not ready");

    // The table appears (same name) with alice in it.
    ut::create_named(&c, &name).await;
    let table = UsersTable::new(c, &name);
    table
        .add("alice", &ut::record("alice-pw", Status::Active))
        .await
        .unwrap();
    table.bump_counting(1).await.unwrap();

    // Only the readiness probe asks, once a second, for 5 s.
    let mut answers = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let res = app(state.clone())
            .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let _ = res.into_body().collect().await;
        answers.push(status);
    }
    assert_eq!(
        answers.last(),
        Some(&StatusCode::OK),
        "the table has answered for 5 s; /ready said {answers:?}: a not-ready instance gets no \
         traffic, so nothing probes the table and it never becomes ready"
    );
}

/// Held: items the CLI did not write (hand-edited: a hash below the policy, a wrong type, a
/// typo'd attribute, a string set for roles, a huge role list) deny their user like an unknown
/// one (401, not 503, not 500), the store stays healthy, and the warning names neither the hash
/// nor the username.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edited_items_deny_their_user_and_leak_nothing() {
    let url = or_skip!(moto::url("hand_edited_items_deny_their_user_and_leak_nothing"));
    let (logs, _guard) = authserver_testkit::logs::capture_logs();
    let (c, table, _relay, state) = rig(&url).await;
    let weak = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    let good = hash("pw", CHEAP);
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let items: Vec<(&str, Vec<(&str, AttributeValue)>)> = vec![
        ("weak-user", vec![("passwordHash", s(weak))]),
        (
            "number-user",
            vec![
                ("passwordHash", s(&good)),
                ("status", AttributeValue::N("1".into())),
            ],
        ),
        (
            "typo-user",
            vec![("passwordHash", s(&good)), ("satus", s("ACTIVE"))],
        ),
        (
            "set-user",
            vec![
                ("passwordHash", s(&good)),
                ("roles", AttributeValue::Ss(vec!["a".into()])),
            ],
        ),
        (
            "map-user",
            vec![("passwordHash", AttributeValue::M(Default::default()))],
        ),
        (
            "huge-user",
            vec![
                ("passwordHash", s(&good)),
                (
                    "roles",
                    AttributeValue::L((0..5000).map(|i| s(&format!("role-{i}"))).collect()),
                ),
            ],
        ),
    ];
    for (user, attrs) in &items {
        let mut put = c.put_item().table_name(table.name()).item("username", s(user));
        for (k, v) in attrs {
            put = put.item(*k, v.clone());
        }
        put.send().await.unwrap();
    }
    for (user, _) in &items {
        let got = ut::validate(&state, &basic(user, "pw")).await.0;
        assert!(
            got == StatusCode::UNAUTHORIZED || (*user == "huge-user" && got == StatusCode::OK),
            "{user}: {got}"
        );
    }
    assert_eq!(
        ut::validate(&state, &basic("alice", "alice-pw")).await.0,
        StatusCode::OK
    );
    let text = logs.text();
    assert!(
        !text.contains("aGFzaGhhc2hoYXNo") && !text.contains("$argon2id$"),
        "{text}"
    );
    for (user, _) in &items {
        assert!(!text.contains(user), "{user} named in the logs: {text}");
    }
}

/// Finding 13. A user disabled (or removed) through the CLI, once the server has seen the bump,
/// is served again from the entry the server *knows* is stale whenever that user's own
/// `GetItem` fails: `read` falls back to `last_good` on a per-key failure although the table
/// answers (the version read just succeeded) and the entry's epoch is past. The failing key is
/// the user's own name, the one key its owner can hammer (a DynamoDB partition throttles one
/// hot key at ~3 000 reads/s; the server sends one `GetItem` per concurrent miss, no single
/// flight), so a disabled user who gets one read throttled is let in with the old password,
/// and again for each back-off second that follows. `max_stale` exists for table outages,
/// not for one key of a healthy table.
///
/// Repro: alice cached; `users disable alice --table` (bump); 1.5 s later (poll 1 s) the
/// version is read; alice's next `GetItem` answers are held (a throttled key: the SDK gives up
/// after 2 × 2 s); that request answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_whose_own_read_fails_is_let_in_from_the_stale_entry() {
    let url = or_skip!(moto::url(
        "a_disabled_user_whose_own_read_fails_is_let_in_from_the_stale_entry"
    ));
    let (_c, table, relay, state) = rig(&url).await;
    let alice = basic("alice", "alice-pw");
    assert_eq!(
        ut::validate(&state, &alice).await.0,
        StatusCode::OK,
        "alice cached"
    );
    table.set_status("alice", Status::Disabled).await.unwrap();
    table.bump_version().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Another user's request reads the bumped version: alice's entry is now stale.
    assert_eq!(
        ut::validate(&state, &basic("nobody", "x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    relay.hold(Hold::Matching(br#"{"S":"alice"}"#.to_vec()));
    let got = ut::validate(&state, &alice).await.0;
    relay.hold(Hold::Nothing);
    assert_ne!(
        got,
        StatusCode::OK,
        "alice was disabled and the server saw the bump; her own GetItem failed and she was let \
         in from the entry the server knew was stale"
    );
}

/// Finding 14 (low). `users remove|disable|enable --table` do not check the name (only `add`
/// does): `users remove :version --table T` deletes the version item ("removed user
/// \":version\""), the bump recreates it at version 1 with the count at -1, so `/ready` shows
/// `users: null` for good and the version goes back; `users disable :version` writes a
/// `status` onto it.
///
/// Repro: three users added through the CLI; `users remove :version --table T` → exit 0;
/// the version item reads `{version: 1, users: -1}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_to_remove_the_version_item() {
    let url = or_skip!(moto::url("the_cli_refuses_to_remove_the_version_item"));
    let (_c, table, _relay, _state) = rig(&url).await;
    let before = table.head().await.unwrap();
    let (u, n) = (url.clone(), table.name().to_owned());
    let (ok, err) = tokio::task::spawn_blocking(move || cli(&u, &n, &["remove", ":version"]))
        .await
        .unwrap();
    let after = table.head().await.unwrap();
    assert!(
        !ok && after.users == before.users,
        "`users remove :version` succeeded ({err:?}): head {before:?} -> {after:?}"
    );
}
