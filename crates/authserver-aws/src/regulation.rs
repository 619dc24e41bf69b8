//! The DynamoDB regulation backend: one item per regulated key, so a fleet of Lambda instances
//! or servers shares failure windows and bans.
//!
//! Items: partition key `pk` (`source#<addr>` / `user#<user_hash>`), the entry's fields as
//! numbers, `usernames` as a list, `version` for optimistic concurrency, and `expires_at` (epoch
//! seconds) as the table's TTL attribute. Updates are read-modify-write with a conditional put
//! on `version`, retried on conflict, so concurrent failures from many instances all count.

use authserver_core::regulation::{BackendError, BoxFuture, Entry, RegulationStore, Update};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Attempts of one update before giving up (conflicts only happen under concurrent writes to
/// the same key; each round lets at least one writer through, and a jittered pause spreads the
/// losers out).
const MAX_ATTEMPTS: u32 = 16;

/// Regulation state in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbRegulation {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn n(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn num(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The entry stored in `item`, unless its TTL has passed (DynamoDB deletes expired items
/// lazily, up to days later).
fn entry_of(item: &Item) -> Option<Entry> {
    if n(item, "expires_at") <= now() {
        return None;
    }
    let usernames = item
        .get("usernames")
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|u| u.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    Some(Entry {
        window_start: n(item, "window_start"),
        failures: u32::try_from(n(item, "failures")).unwrap_or(u32::MAX),
        // Absent on items written before the sliding window: 0, as a fresh window.
        previous_failures: u32::try_from(n(item, "previous_failures")).unwrap_or(u32::MAX),
        usernames,
        previous_usernames: u32::try_from(n(item, "previous_usernames")).unwrap_or(u32::MAX),
        level: u32::try_from(n(item, "level")).unwrap_or(u32::MAX),
        banned_until: n(item, "banned_until"),
        version: n(item, "version"),
    })
}

fn item_of(key: &str, e: &Entry, expires_at: u64) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(key.to_owned())),
        ("window_start".to_owned(), num(e.window_start)),
        ("failures".to_owned(), num(u64::from(e.failures))),
        (
            "previous_failures".to_owned(),
            num(u64::from(e.previous_failures)),
        ),
        (
            "previous_usernames".to_owned(),
            num(u64::from(e.previous_usernames)),
        ),
        (
            "usernames".to_owned(),
            AttributeValue::L(e.usernames.iter().cloned().map(AttributeValue::S).collect()),
        ),
        ("level".to_owned(), num(u64::from(e.level))),
        ("banned_until".to_owned(), num(e.banned_until)),
        ("version".to_owned(), num(e.version)),
        ("expires_at".to_owned(), num(expires_at)),
    ])
}

/// An SDK error as safe text: the error code and the table, never request content.
fn backend_error<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    table: &str,
    op: &str,
    e: &E,
) -> BackendError {
    BackendError(format!(
        "DynamoDB {op} on {table}: {}",
        e.code().unwrap_or("connection or timeout")
    ))
}

impl DynamoDbRegulation {
    /// The backend over `table` (partition key `pk` string, TTL attribute `expires_at`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn read(&self, key: &str, consistent: bool) -> Result<Option<Item>, BackendError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| backend_error(&self.table, "GetItem", &e))?;
        Ok(out.item)
    }
}

impl RegulationStore for DynamoDbRegulation {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, BackendError>> {
        Box::pin(async move { Ok(self.read(key, false).await?.as_ref().and_then(entry_of)) })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        ttl_at: u64,
        f: Update<'a>,
    ) -> BoxFuture<'a, Result<Entry, BackendError>> {
        Box::pin(async move {
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    let ms = rand::random_range(1..=5 * u64::from(attempt.min(8)));
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                let item = self.read(key, true).await?;
                // The version guards the write even when the stored entry has expired.
                let stored_version = item.as_ref().map(|i| n(i, "version"));
                let current = item.as_ref().and_then(entry_of);
                let mut next = f(current.as_ref());
                next.version = stored_version.unwrap_or(0) + 1;
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item_of(key, &next, ttl_at)));
                let put = match stored_version {
                    None => put.condition_expression("attribute_not_exists(pk)"),
                    Some(v) => put
                        .condition_expression("#v = :v")
                        .expression_attribute_names("#v", "version")
                        .expression_attribute_values(":v", num(v)),
                };
                match put.send().await {
                    Ok(_) => return Ok(next),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                    {
                        continue; // another instance wrote first: read again and reapply
                    }
                    Err(e) => return Err(backend_error(&self.table, "PutItem", &e)),
                }
            }
            Err(BackendError(format!(
                "DynamoDB PutItem on {}: too many concurrent updates",
                self.table
            )))
        })
    }
}
