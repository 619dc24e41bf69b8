//! Pickup of `authserver users ... --table` writes by running servers (issue 17), measured end
//! to end: the real binary as a standalone server and as the Lambda proxy under the cargo-lambda
//! emulator, on one users table on moto holding `USERS_TABLE_USERS` users (default 3 000;
//! `scripts/bench-users-table` loads 100 000), every write made by the real CLI.
//!
//! Each change (disable, enable, password change through `import --replace`, remove, add) is
//! made at a random moment of the version-poll cycle while a client asks every 20 ms; the
//! pickup is the time from the CLI's exit to the start of the first request answered with the
//! new state. Every change must be in force within `version_poll` (`USERS_TABLE_POLL_SECONDS`,
//! default 1) plus a round trip (3 s of slack for a loaded host; the printed figures are the
//! measurement). The admin `/ready` then reports the table's user count, kept by the CLI, and
//! the entry cache separately.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_aws::UsersTable;
use authserver_testkit::cli::{isolated, run_cli, text};
use authserver_testkit::emulator::{Emulator, Function};
use authserver_testkit::hash::{CHEAP, hash};
use authserver_testkit::lambda::{fixture, with_authorization};
use authserver_testkit::moto::users_table as ut;
use authserver_testkit::process::Server;
use authserver_testkit::users::basic;
use authserver_testkit::{moto, or_skip, skip};
use std::time::{Duration, Instant};

fn number(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// How the server and the CLI reach the table: cheap hashes allowed, regulation off (a
/// password change is probed with the new password until it is accepted).
fn env(url: &str, table: &str, poll: u64) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AUTHSERVER_STORE_KIND", "dynamodb"),
        ("AUTHSERVER_USERS_TABLE", table),
        ("AUTHSERVER_STORE_ENDPOINT_URL", url),
        ("AUTHSERVER_USERS_TABLE_VERSION_POLL_SECONDS", &poll.to_string()),
        ("AUTHSERVER_HASH_MIN_M_KIB", "64"),
        ("AUTHSERVER_HASH_MIN_T", "1"),
        ("AUTHSERVER_REGULATION_ENABLED", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        env.push((k.into(), std::env::var(k).unwrap_or_else(|_| "testing".into())));
    }
    env
}

/// What answers: the standalone server over HTTP, or the Lambda proxy through the emulator.
enum Target {
    Server(Server),
    Lambda(Emulator, Function),
}

impl Target {
    async fn status(&self, client: &reqwest::Client, auth: &str) -> u16 {
        match self {
            Target::Server(server) => client
                .post(server.url("/auth/validate"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            Target::Lambda(emulator, _) => {
                let event = with_authorization(fixture("apigw_v2_http_api.json"), Some(auth));
                let (_, out) = emulator.invoke(client, &event).await;
                out["statusCode"].as_u64().unwrap_or(0) as u16
            }
        }
    }
}

/// One change made through the CLI, the request that shows it in force (asked until it
/// answers `want`), and the request asserted at that moment (`then`). Probes are chosen to be
/// answered 200 from the cache before the change where one exists: a denial is padded (tens to
/// hundreds of milliseconds), which would blur the moment the change went into service.
struct Change {
    kind: &'static str,
    args: Vec<String>,
    stdin: Option<String>,
    probe: String,
    want: u16,
    then: Option<(String, u16)>,
}

/// The five changes of one round on `user` (password `pw` on entry; removed, then added back
/// with another password); `dir` holds the import file of the password change.
fn round(user: &str, dir: &std::path::Path) -> Vec<Change> {
    let import = dir.join(format!("{user}.json"));
    std::fs::write(&import, format!(r#"{{"{user}":"{}"}}"#, hash("pw-new", CHEAP))).unwrap();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let file = import.to_string_lossy().into_owned();
    vec![
        Change {
            kind: "disable",
            args: s(&["disable", user]),
            stdin: None,
            probe: basic(user, "pw"),
            want: 401,
            then: None,
        },
        Change {
            kind: "enable",
            args: s(&["enable", user]),
            stdin: None,
            probe: basic(user, "pw"),
            want: 200,
            then: None,
        },
        Change {
            kind: "password",
            args: s(&["import", &file, "--format", "json", "--replace"]),
            stdin: None,
            probe: basic(user, "pw"),
            want: 401,
            then: Some((basic(user, "pw-new"), 200)),
        },
        Change {
            kind: "remove",
            args: s(&["remove", user]),
            stdin: None,
            probe: basic(user, "pw-new"),
            want: 401,
            then: None,
        },
        Change {
            kind: "add",
            args: s(&["add", user, "--m-cost", "64", "--t-cost", "1"]),
            stdin: Some("pw-added\n".into()),
            probe: basic(user, "pw-added"),
            want: 200,
            then: None,
        },
    ]
}

/// Runs one CLI write (the real binary) to its exit.
async fn cli(env: &[(String, String)], table: &str, change: &Change) {
    let (env, table, args, stdin) = (
        env.to_vec(),
        table.to_owned(),
        change.args.clone(),
        change.stdin.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = isolated();
        cmd.envs(env).args(["users", "--table", &table]).args(&args);
        run_cli(&mut cmd, stdin.as_deref())
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A pseudo-random fraction in [0, 1) (no RNG crate needed for spreading writes over a cycle).
fn fraction() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(Instant::now()) % 10_000) as f64 / 10_000.0
}

/// Every change of `rounds` rounds against `target`: (kind, pickup) per change.
async fn measure(
    target: &Target,
    env: &[(String, String)],
    table: &str,
    users: &[String],
    poll: Duration,
) -> Vec<(&'static str, Duration)> {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let every = Duration::from_millis(20);
    let mut pickups = Vec::new();
    for user in users {
        let mut current = (basic(user, "pw"), 200);
        for change in round(user, dir.path()) {
            // Steady traffic for a random part of the poll cycle, then the write.
            let until = Instant::now() + poll.mul_f64(fraction());
            while Instant::now() < until {
                assert_eq!(
                    target.status(&client, &current.0).await,
                    current.1,
                    "before {}",
                    change.kind
                );
                tokio::time::sleep(every).await;
            }
            cli(env, table, &change).await;
            let written = Instant::now();
            loop {
                let asked = Instant::now();
                if target.status(&client, &change.probe).await == change.want {
                    pickups.push((change.kind, asked - written));
                    if let Some((auth, want)) = &change.then {
                        assert_eq!(target.status(&client, auth).await, *want, "{}", change.kind);
                    }
                    break;
                }
                assert!(
                    written.elapsed() < poll + Duration::from_secs(3),
                    "{} of {user} not in force within {poll:?} plus a round trip",
                    change.kind
                );
                tokio::time::sleep(every).await;
            }
            current = change.then.clone().unwrap_or((change.probe.clone(), change.want));
        }
    }
    pickups
}

/// Median and max of `pickups` (all, or of one kind), in milliseconds.
fn summary(pickups: &[(&str, Duration)], kind: Option<&str>) -> String {
    let mut ms: Vec<f64> = pickups
        .iter()
        .filter(|(k, _)| kind.is_none_or(|want| *k == want))
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    format!(
        "median {:.0} ms max {:.0} ms over {}",
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        ms.len()
    )
}

fn report(label: &str, poll: Duration, n: usize, pickups: &[(&str, Duration)]) {
    eprintln!(
        "FIGURE users_table pickup {label} ({n} users, version poll {} ms): all changes {}; \
         disable refused {}; enable {}; password change accepted {}; remove {}; add {}",
        poll.as_millis(),
        summary(pickups, None),
        summary(pickups, Some("disable")),
        summary(pickups, Some("enable")),
        summary(pickups, Some("password")),
        summary(pickups, Some("remove")),
        summary(pickups, Some("add")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_writes_are_in_force_within_one_poll_standalone_and_on_lambda() {
    let url = or_skip!(moto::url(
        "cli_writes_are_in_force_within_one_poll_standalone_and_on_lambda"
    ));
    let cargo_lambda = skip::env(
        "CARGO_LAMBDA",
        "cli_writes_are_in_force_within_one_poll_standalone_and_on_lambda (Lambda part)",
    );
    let n = number("USERS_TABLE_USERS", 3000) as usize;
    let rounds = number("PICKUP_ROUNDS", 2) as usize;
    let poll_s = number("USERS_TABLE_POLL_SECONDS", 1);
    let poll = Duration::from_secs(poll_s);
    let c = ut::client(&url).await;
    let name = ut::create(&c).await;
    let table = UsersTable::new(c, &name);
    let loaded = ut::load(&table, n, &hash("pw", CHEAP), 8).await;
    // The bulk load is around the CLI: it sets the count the CLI then keeps.
    table.bump_counting(n as i64).await.unwrap();
    eprintln!(
        "FIGURE users_table load: {n} users in {:.1} s",
        loaded.as_secs_f64()
    );
    let env = env(&url, &name, poll_s);
    let pick =
        |offset: usize| -> Vec<String> { (0..rounds).map(|r| ut::name((offset + r * 997) % n)).collect() };

    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Target::Server(Server::start(
        std::path::Path::new("/nonexistent-users.json"),
        &[],
        &pairs,
    ));
    let standalone = measure(&server, &env, &name, &pick(1), poll).await;
    report("standalone", poll, n, &standalone);

    // The admin /ready: the table's count (the CLI's adds and removes balance out here) and
    // the entry cache, apart.
    let Target::Server(server) = &server else {
        unreachable!()
    };
    // The count is read with the version: give the last write's bump one poll.
    tokio::time::sleep(poll + Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let ask = client
        .post(server.url("/auth/validate"))
        .header("authorization", basic("nobody", "x"));
    assert_eq!(ask.send().await.unwrap().status(), 401, "reads the version");
    let ready: serde_json::Value = reqwest::get(server.admin_url("/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["store"]["kind"], "dynamodb", "{ready}");
    assert_eq!(ready["store"]["users"], n, "{ready}");
    let cached = ready["store"]["cachedEntries"].as_u64().unwrap();
    assert!((1..=rounds as u64).contains(&cached), "{ready}");

    let Some(cargo_lambda) = cargo_lambda else {
        return;
    };
    let emulator = Emulator::start(&cargo_lambda);
    let function = Function::start(&emulator, &pairs);
    let lambda = Target::Lambda(emulator, function);
    let on_lambda = measure(&lambda, &env, &name, &pick(2), poll).await;
    report("lambda proxy", poll, n, &on_lambda);
    let Target::Lambda(_, function) = &lambda else {
        unreachable!()
    };
    let logs = function.logs();
    for secret in ["pw-new", "pw-added", "$argon2id", "user-0"] {
        assert!(!logs.contains(secret), "{secret} in the function's logs:\n{logs}");
    }
}
