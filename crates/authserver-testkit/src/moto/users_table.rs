//! The DynamoDB users table on moto: a table shaped like the template's, a bulk load of
//! numbered users, and latency percentiles for the figures the tests print.

use authserver_aws::UsersTable;
use authserver_aws::users_table::BATCH;
use authserver_core::{Status, UserRecord};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use std::time::{Duration, Instant};

/// A DynamoDB client for moto (the environment's credentials, as `start_aws_env` exports).
pub async fn client(url: &str) -> aws_sdk_dynamodb::Client {
    authserver_aws::dynamodb_client(&authserver_aws::sdk_config(Some(url)).await)
}

/// A DynamoDB client for moto whose calls go through the wire tap `wire` (counted, and
/// faults injected by operation name, e.g. `"UpdateItem"`).
pub async fn tapped_client(url: &str, wire: std::sync::Arc<super::wire::Wire>) -> aws_sdk_dynamodb::Client {
    let plain = client(url).await;
    aws_sdk_dynamodb::Client::from_conf(
        plain
            .config()
            .to_builder()
            .interceptor(super::wire::Tap(wire))
            .build(),
    )
}

/// A new users table (partition key `username`, on demand), named uniquely.
pub async fn create(c: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("users-{}", super::unique());
    create_named(c, &name).await;
    name
}

/// Creates the users table `name` (the schema of [`create`]): a table that comes back under
/// the same name after it was deleted.
pub async fn create_named(c: &aws_sdk_dynamodb::Client, name: &str) {
    c.create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("username")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("username")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// The name of user `i` of a bulk load.
pub fn name(i: usize) -> String {
    format!("user-{i:07}")
}

/// Loads users `0..count` (all ACTIVE, role `reader`, the one `hash`) with `BatchWriteItem`,
/// `parallel` batches at a time; returns how long it took.
pub async fn load(table: &UsersTable, count: usize, hash: &str, parallel: usize) -> Duration {
    let record = UserRecord {
        password_hash: hash.to_owned(),
        status: Status::Active,
        roles: vec!["reader".to_owned()],
        password_changed_at: None,
        delivery_secret_id: None,
        oauth: None,
    };
    let start = Instant::now();
    let batches: Vec<Vec<(String, UserRecord)>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| c.iter().map(|i| (name(*i), record.clone())).collect())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for batch in batches {
        if tasks.len() >= parallel.max(1) {
            tasks.join_next().await.unwrap().unwrap();
        }
        let table = table.clone();
        tasks.spawn(async move { table.put_batch(&batch).await.unwrap() });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    start.elapsed()
}

/// The `p`-th percentile (0–100) of `samples` (sorted in place), in milliseconds.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A user record with the password `pw` (cheap Argon2id), `status` and the role `ops`.
pub fn record(pw: &str, status: Status) -> UserRecord {
    UserRecord {
        password_hash: crate::hash::hash(pw, crate::hash::CHEAP),
        status,
        roles: vec!["ops".into()],
        password_changed_at: None,
        delivery_secret_id: None,
        oauth: None,
    }
}

/// `POST /auth/validate` with `auth` from 192.0.2.7: the status and any `Retry-After`.
pub async fn validate(
    state: &std::sync::Arc<authserver::http::AppState>,
    auth: &str,
) -> (axum::http::StatusCode, Option<String>) {
    use tower::ServiceExt as _;
    let mut req = axum::http::Request::post("/auth/validate")
        .header(axum::http::header::AUTHORIZATION, auth)
        .body(axum::body::Body::empty())
        .expect("request");
    req.extensions_mut().insert(authserver::http::ClientAddr(
        "192.0.2.7:1000".parse().expect("address"),
    ));
    let res = authserver::http::app(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let retry = res
        .headers()
        .get(axum::http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (res.status(), retry)
}

/// `authserver users --table TABLE ARGS...` against moto at `url` (low Argon2id floors for
/// speed, an isolated environment), with `stdin` piped in: (success, stdout, stderr).
pub fn cli(url: &str, table: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = crate::cli::isolated();
    cmd.env("AUTHSERVER_STORE_ENDPOINT_URL", url)
        .env("AUTHSERVER_HASH_MIN_M_KIB", "64")
        .env("AUTHSERVER_HASH_MIN_T", "1")
        .args(["users", "--table", table])
        .args(args);
    let out = crate::cli::run_cli(&mut cmd, stdin);
    (
        out.status.success(),
        crate::cli::text(&out.stdout),
        crate::cli::text(&out.stderr),
    )
}
