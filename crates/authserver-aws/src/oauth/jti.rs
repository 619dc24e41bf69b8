//! [`DynamoDbJtiStore`]: revoked access-token ids and used `private_key_jwt` assertion ids,
//! shared by every instance through one DynamoDB table.
//!
//! Table: partition key `jti` (string), attribute `exp` (number, unix seconds) as the table's
//! TTL attribute, so DynamoDB deletes items after their token expired without any sweep of ours.
//!
//! The key is not always the id as given ([`item_key`]): a namespaced id
//! (`assertion\n{client}\n{jti}`, built from a client's assertion) is stored as
//! `assertion#<base64url SHA-256 of the whole string>`. The assertion's parts are client text
//! of any length, and DynamoDB refuses a partition key over 2,048 bytes with a
//! ValidationException (a 4 KB jti used to answer 503 "jti store unavailable"); the hash gives
//! every key one short shape and keeps the kind readable in the console. Our own token ids
//! (22 base64url characters, signature-checked before any lookup) stay as they are, so
//! revocations recorded before this change are still found; an id over [`RAW_MAX`] bytes or
//! holding `#` is hashed as `token#<hash>` (`#` never occurs in base64url, so the two shapes
//! cannot meet). Changing the key shape of assertions forgets the ids used in the hour before
//! the upgrade (`MAX_ASSERTION_SECONDS`): an assertion captured then could be replayed once
//! after it.
//!
//! - `insert` is one conditional `PutItem`: `attribute_not_exists(jti) OR exp <= :now`. DynamoDB
//!   evaluates the condition and the write atomically per item, so of N concurrent inserts of one
//!   id exactly one succeeds; the others get `ConditionalCheckFailedException`, i.e. `false`. An
//!   item whose `exp` passed counts as absent even before TTL removed it.
//! - `contains` is a strongly consistent `GetItem` (an insert acknowledged a moment ago on another
//!   instance must be seen: a revocation that is not read back is no revocation) and also checks
//!   `exp`, because TTL deletion is lazy: AWS documents that expired items are typically deleted
//!   within a few days and show up in reads until then.
//! - Throttling and 5xx are retried through [`crate::retry`]; what remains becomes a
//!   [`BackendError`] naming the operation, the table and the AWS error code, never the `jti`.
//!   Callers decide what an outage means (the issuer fails closed on revocation checks).

use super::WallClock;
use crate::retry::{RetryPolicy, classify, with_retries};
use authserver_core::oauth::JtiStore;
use authserver_core::regulation::{BackendError, BoxFuture};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

/// The partition key attribute.
pub const KEY: &str = "jti";
/// The TTL attribute.
pub const TTL: &str = "exp";

/// Token ids in a DynamoDB table.
pub struct DynamoDbJtiStore {
    client: Client,
    table: String,
    now: WallClock,
    retry: RetryPolicy,
}

impl std::fmt::Debug for DynamoDbJtiStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbJtiStore")
            .field("table", &self.table)
            .finish()
    }
}

impl DynamoDbJtiStore {
    /// The store over `table` (partition key `jti`, TTL attribute `exp`).
    pub fn new(client: Client, table: impl Into<String>, now: WallClock) -> Self {
        Self {
            client,
            table: table.into(),
            now,
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the retry policy (tests of outages keep them short).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn error(&self, e: &crate::CallError) -> BackendError {
        BackendError(format!(
            "DynamoDB {} on {}: {}",
            e.operation,
            self.table,
            e.code.as_deref().unwrap_or(if e.retryable {
                "connection or timeout"
            } else {
                "request refused"
            })
        ))
    }
}

/// Longest id stored as given (ours are 22 bytes).
pub const RAW_MAX: usize = 256;

/// The partition key storing `jti` (see the module docs).
pub fn item_key(jti: &str) -> String {
    use base64::Engine as _;
    let hashed = |kind: &str| {
        let digest = ring::digest::digest(&ring::digest::SHA256, jti.as_bytes());
        format!(
            "{kind}#{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        )
    };
    match jti.split_once('\n') {
        Some((kind, _)) if !kind.is_empty() && kind.len() <= 32 && !kind.contains('#') => hashed(kind),
        Some(_) => hashed("ns"),
        None if jti.len() > RAW_MAX || jti.contains('#') => hashed("token"),
        None => jti.to_owned(),
    }
}

fn num(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl JtiStore for DynamoDbJtiStore {
    fn insert<'a>(&'a self, jti: &'a str, exp: u64) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let now = (self.now)();
            let key = item_key(jti);
            let put = with_retries(&self.retry, || async {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item(KEY, AttributeValue::S(key.clone()))
                    .item(TTL, num(exp))
                    .condition_expression("attribute_not_exists(#k) OR #e <= :now")
                    .expression_attribute_names("#k", KEY)
                    .expression_attribute_names("#e", TTL)
                    .expression_attribute_values(":now", num(now))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                    {
                        Ok(false) // recorded before and not expired
                    }
                    Err(e) => Err(classify("PutItem", &e)),
                }
            })
            .await;
            put.map_err(|e| self.error(&e))
        })
    }

    fn contains<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let key = item_key(jti);
            let out = with_retries(&self.retry, || async {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key(KEY, AttributeValue::S(key.clone()))
                    .consistent_read(true)
                    .projection_expression("#e")
                    .expression_attribute_names("#e", TTL)
                    .send()
                    .await
                    .map_err(|e| classify("GetItem", &e))
            })
            .await
            .map_err(|e| self.error(&e))?;
            let exp = out
                .item()
                .and_then(|i| i.get(TTL))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok());
            Ok(exp.is_some_and(|exp| exp > (self.now)()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::item_key;

    #[test]
    fn namespaced_ids_are_hashed_under_a_readable_kind_and_ours_stay_as_they_are() {
        let long = format!("assertion\nsvc\n{}", "j".repeat(4096));
        let key = item_key(&long);
        assert!(
            key.starts_with("assertion#") && key.len() == "assertion#".len() + 43,
            "{key}"
        );
        assert_ne!(item_key("assertion\nsvc\na"), item_key("assertion\nsvd\na"));
        assert_eq!(item_key("AAAAAAAAAAAAAAAAAAAAAA"), "AAAAAAAAAAAAAAAAAAAAAA");
        assert!(item_key(&"t".repeat(300)).starts_with("token#"));
        assert!(item_key("a#b").starts_with("token#"), "no raw id looks hashed");
        assert!(!item_key(&long).contains("jjjj"));
    }
}
