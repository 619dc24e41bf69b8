//! `authserver users oauth` (issue 14) with the real binary: on a users file (the locked atomic
//! edit of `users add`) and on the DynamoDB users table over moto. A client made by the command
//! gets a token from a server over that store, the DynamoDB-backed store handing the `oauth`
//! object to the client registry exactly as the file store does; bad input is refused with a
//! clear error and leaves the file untouched; `users list` shows which entries are clients.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::StoreKind;
use authserver_aws::UsersTable;
use authserver_testkit::cli::{isolated, run_cli, text};
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::oauth::*;
use authserver_testkit::oauth_http::post_form;
use authserver_testkit::{moto, or_skip};
use axum::http::StatusCode;
use std::path::Path;

const PEER: &str = "192.0.2.8:5000";

fn users(args: &[&str]) -> (bool, String, String) {
    let out = run_cli(isolated().arg("users").args(args), None);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// A `client_secret_post` token request for `id` / `secret`.
fn post_client(id: &str, secret: &str) -> String {
    format!("grant_type=client_credentials&client_id={id}&client_secret={secret}")
}

#[tokio::test]
async fn users_oauth_makes_a_file_entry_a_client_and_refuses_bad_input_untouched() {
    let f = fixture();
    let file = f.users.to_str().unwrap().to_owned();
    let before = std::fs::read(&f.users).unwrap();
    let jwks_dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = jwks_dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let private = write(
        "private.json",
        r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRjmGgsZRHv_d3KvEJSvBIZOC3vcuDozKqBoA4s","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#,
    );
    let not_json = write("broken.json", "{\"keys\": [");
    let refusals: [(&[&str], &str); 7] = [
        (
            &["--scopes", "read", "--method", "client_secret_jwt"],
            "unknown method",
        ),
        (&["--scopes", ""], "at least one scope"),
        (
            &["--scopes", "read", "--default-scopes", "write"],
            "defaultScopes",
        ),
        (&["--scopes", "read", "--method", "private_key_jwt"], "jwks"),
        (
            &[
                "--scopes",
                "read",
                "--method",
                "private_key_jwt",
                "--jwks",
                &not_json,
            ],
            "not JSON",
        ),
        (
            &[
                "--scopes",
                "read",
                "--method",
                "private_key_jwt",
                "--jwks",
                &private,
            ],
            "private key",
        ),
        (&["--scopes", "bad scope"], "scope"),
    ];
    for (opts, why) in refusals {
        let args = [&["oauth", &file, PLAIN_USER][..], opts].concat();
        let (ok, _, err) = users(&args);
        assert!(!ok && err.contains(why), "{opts:?}: {err}");
        assert!(!err.contains("jpsQnnGQ"), "the private key is not echoed: {err}");
        assert_eq!(
            std::fs::read(&f.users).unwrap(),
            before,
            "{opts:?} changed the file"
        );
    }
    let (ok, _, err) = users(&["oauth", &file, "nobody", "--scopes", "read"]);
    assert!(!ok && err.contains("no user"), "{err}");

    let args = [
        "oauth",
        &file,
        PLAIN_USER,
        "--scopes",
        "read,write",
        "--default-scopes",
        "read",
    ];
    let (ok, _, err) = users(&[&args[..], &["--method", "client_secret_post"]].concat());
    assert!(ok, "{err}");
    let (ok, out, _) = users(&["list", &file]);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(ok && row(PLAIN_USER).ends_with("client_secret_post"), "{out}");
    assert!(
        row(BASIC_CLIENT).ends_with("client_secret_basic") && out.contains("OAUTH"),
        "{out}"
    );

    let state = authserver::wiring::build(settings(&f)).unwrap().state;
    let token = post_form(
        &state,
        PEER,
        "/oauth/token",
        None,
        &post_client(PLAIN_USER, PLAIN_PW),
    )
    .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    assert_eq!(token.body["scope"], "read");

    let (ok, _, err) = users(&["oauth", &file, PLAIN_USER, "--clear"]);
    assert!(ok, "{err}");
    let state = authserver::wiring::build(settings(&f)).unwrap().state;
    let refused = post_form(
        &state,
        PEER,
        "/oauth/token",
        None,
        &post_client(PLAIN_USER, PLAIN_PW),
    )
    .await;
    assert_eq!(refused.body["error"], "unauthorized_client", "{:?}", refused.body);
}

/// A server over the users table `name` with `[oauth]` on (the fixture's signing keys).
fn table_state(f: &OAuthFixture, url: &str, name: &str) -> std::sync::Arc<authserver::http::AppState> {
    let mut s = settings(f);
    s.store.kind = StoreKind::Dynamodb;
    s.store.file = Path::new("/nonexistent").into();
    s.store.endpoint_url = url.to_owned();
    s.users_table.name = name.to_owned();
    s.hash.policy = authserver_testkit::hash::policy();
    authserver::wiring::build(s).unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_defined_in_the_users_table_gets_a_token() {
    let url = or_skip!(moto::url("a_client_defined_in_the_users_table_gets_a_token"));
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c.clone(), &name);
    let run = |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let (url, name) = (url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            authserver_testkit::moto::users_table::cli(&url, &name, &args, stdin)
        })
    };
    let add = vec!["add", "svc-table", "--m-cost", "64", "--t-cost", "1"];
    let (ok, _, err) = run(add, Some("Table-Secret-77\n")).await.unwrap();
    assert!(ok, "{err}");
    let oauth = vec![
        "oauth",
        "svc-table",
        "--scopes",
        "read,write",
        "--method",
        "client_secret_post",
    ];
    let (ok, _, err) = run(oauth, None).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        table.version().await.unwrap(),
        2,
        "add and oauth bumped the version"
    );
    let item = table.get("svc-table").await.unwrap().unwrap();
    assert!(item.get("oauth").is_some_and(|o| o.is_m()), "{item:?}");
    let (ok, out, err) = run(vec!["list"], None).await.unwrap();
    assert!(
        ok && out
            .lines()
            .any(|l| l.starts_with("svc-table") && l.ends_with("client_secret_post")),
        "{out}{err}"
    );

    let f = fixture();
    let state = table_state(&f, &url, &name);
    let form = post_client("svc-table", "Table-Secret-77") + "&scope=write";
    let token = post_form(&state, PEER, "/oauth/token", None, &form).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let bearer = format!("Bearer {}", token.body["access_token"].as_str().unwrap());
    let forward = authserver_testkit::oauth_http::get_with(&state, "/auth/forward", Some(&bearer)).await;
    assert_eq!(
        forward.status,
        StatusCode::OK,
        "the table client's token passes the client check"
    );

    let (ok, _, err) = run(vec!["oauth", "svc-table", "--clear"], None).await.unwrap();
    assert!(ok, "{err}");
    let cleared = table.get("svc-table").await.unwrap().unwrap();
    assert!(!cleared.contains_key("oauth"), "{cleared:?}");
    let state = table_state(&f, &url, &name);
    let refused = post_form(&state, PEER, "/oauth/token", None, &form).await;
    assert_eq!(refused.body["error"], "unauthorized_client", "{:?}", refused.body);
}
