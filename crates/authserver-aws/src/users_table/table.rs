//! The calls on the users table: consistent reads of one user and of the version item, the
//! operators' conditional writes (each followed by a version bump), paginated listing and the
//! bulk load.

use super::item::{Item, KEY, VERSION_ATTR, VERSION_KEY, item_of, record_of, username_of};
use crate::retry::{CallError, RetryPolicy, classify, with_retries};
use authserver_core::{Status, UserRecord};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

/// Items per `BatchWriteItem` call: the API's limit.
pub const BATCH: usize = 25;

/// The users table and how its calls are retried.
#[derive(Debug, Clone)]
pub struct UsersTable {
    client: Client,
    name: String,
    retry: RetryPolicy,
}

/// Why an operator's write was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// `users add`: the user is already in the table (another operator may just have added it).
    #[error("user {0:?} already exists in the table")]
    Exists(String),
    /// The user is not in the table (another operator may just have removed it).
    #[error("no user {0:?} in the table")]
    Missing(String),
    /// The call failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// One page of `users list`: entries by username (an entry that does not parse is reported as
/// such, never quoted) and where the next page starts.
pub type Page = (Vec<(String, Result<UserRecord, super::ItemError>)>, Option<Item>);

fn key(username: &str) -> Item {
    Item::from([(KEY.to_owned(), AttributeValue::S(username.to_owned()))])
}

fn conditional_failed<E>(
    e: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl UsersTable {
    /// The table `name` (partition key `username`, string), with the default retries.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// The same table with other retries (the request path retries less than the CLI).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The item of `username`, read strongly consistent: a read after a write's success
    /// returns that write (the pickup bound rests on it).
    pub async fn get(&self, username: &str) -> Result<Option<Item>, CallError> {
        with_retries(&self.retry, || async {
            let out = self
                .client
                .get_item()
                .table_name(&self.name)
                .set_key(Some(key(username)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify("GetItem", &e))?;
            Ok(out.item)
        })
        .await
    }

    /// The table's version: the counter every CLI write bumps (0 before the first).
    pub async fn version(&self) -> Result<u64, CallError> {
        Ok(self.head().await?.version)
    }

    /// The version item: the version and the user count the CLI keeps beside it. A version
    /// that is not a whole number from 0 to 2^64 − 1 (a hand edit, a restore) is an error,
    /// not 0: read as 0 it would hide every later bump; any CLI write repairs it.
    pub async fn head(&self) -> Result<Head, CallError> {
        let item = self.get(VERSION_KEY).await?;
        match item.as_ref() {
            None => Ok(Head::default()),
            Some(item) => head_of(item).ok_or_else(bad_version),
        }
    }

    /// Adds one to the version and returns it.
    pub async fn bump_version(&self) -> Result<u64, CallError> {
        self.bump_counting(0).await
    }

    /// [`Self::bump_version`] for a write that added (`users` > 0) or removed (< 0) users:
    /// the version item's count moves by `users` in the same `UpdateItem`.
    ///
    /// Idempotent, so it can be retried: the version read is the write's condition, and the
    /// write leaves a token of its own on the item. An attempt whose answer was lost (applied
    /// or not) is told by the next read: our token there means it was applied, so the count
    /// moves exactly once; another operator's bump in between fails the condition and the bump
    /// is made again on the new version. A version that is not a `u64` (see [`Self::head`])
    /// is replaced by the current Unix time in milliseconds: a value no server has seen.
    pub async fn bump_counting(&self, users: i64) -> Result<u64, CallError> {
        let token = format!("{:016x}", rand::random::<u64>());
        let attempts = self.retry.max_attempts.max(1) + CONFLICTS;
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            let item = self.get(VERSION_KEY).await?;
            let attr = |name: &str| item.as_ref().and_then(|i| i.get(name));
            let raw = attr(VERSION_ATTR).and_then(|v| v.as_n().ok()).cloned();
            if attr(BUMP_ATTR).and_then(|v| v.as_s().ok()) == Some(&token) {
                // An earlier attempt was applied and its answer lost.
                return item
                    .as_ref()
                    .and_then(head_of)
                    .map(|h| h.version)
                    .ok_or_else(bad_version);
            }
            let next = match raw.as_deref().map(str::parse::<u64>) {
                None => 1,
                Some(Ok(v)) if v < u64::MAX => v + 1,
                Some(_) => {
                    let repaired = repair_version();
                    tracing::warn!(
                        table = %self.name,
                        version = repaired,
                        "users table version was not a u64 (servers refused it): reset"
                    );
                    repaired
                }
            };
            let count = if users == 0 { "" } else { " ADD #u :users" };
            let mut update = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key(VERSION_KEY)))
                .update_expression(format!("SET #v = :next, #b = :token{count}"))
                .expression_attribute_names("#v", VERSION_ATTR)
                .expression_attribute_names("#b", BUMP_ATTR)
                .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
                .expression_attribute_values(":token", AttributeValue::S(token.clone()));
            update = match raw {
                Some(cur) => update
                    .condition_expression("#v = :cur")
                    .expression_attribute_values(":cur", AttributeValue::N(cur)),
                None => update.condition_expression("attribute_not_exists(#v)"),
            };
            if users != 0 {
                update = update
                    .expression_attribute_names("#u", USERS_ATTR)
                    .expression_attribute_values(":users", AttributeValue::N(users.to_string()));
            }
            match update.send().await {
                Ok(_) => return Ok(next),
                Err(e) if conditional_failed(&e) => {
                    last = Some(CallError {
                        operation: "UpdateItem",
                        code: Some("ConditionalCheckFailedException".into()),
                        message: "the version kept changing under the bump (other operators)".into(),
                        retryable: true,
                    });
                }
                Err(e) => {
                    let e = classify("UpdateItem", &e);
                    if !e.retryable {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(bad_version))
    }

    /// Puts a new user; refused when the username exists (`attribute_not_exists`), so two
    /// operators adding the same name do not overwrite each other.
    ///
    /// Conditional writes are not retried: a retry of an attempt that timed out after being
    /// applied would fail its own condition and report another operator's write that never was.
    pub async fn add(&self, username: &str, record: &UserRecord) -> Result<(), WriteError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item_of(username, record)))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", KEY);
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(WriteError::Exists(username.to_owned())),
            Err(e) => Err(classify("PutItem", &e).into()),
        }
    }

    /// Sets one attribute of an existing user (`attribute_exists`): other attributes, which
    /// another operator may be changing at the same moment, are left as they are.
    pub async fn set(&self, username: &str, attribute: &str, value: String) -> Result<(), WriteError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(username)))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_names("#k", KEY)
            .expression_attribute_values(":v", AttributeValue::S(value));
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(WriteError::Missing(username.to_owned())),
            Err(e) => Err(classify("UpdateItem", &e).into()),
        }
    }

    /// `users import --replace` on an existing user, as the file import does: the hash, the
    /// roles when `roles` is not empty, and `passwordChangedAt` removed (the password changed
    /// hands, not value: when it was set is unknown). Status and the rest are kept. One
    /// conditional `UpdateItem`, so the entry is never seen half replaced.
    pub async fn replace_credential(
        &self,
        username: &str,
        hash: String,
        roles: &[String],
    ) -> Result<(), WriteError> {
        let set_roles = if roles.is_empty() { "" } else { ", #r = :r" };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(username)))
            .update_expression(format!("SET #h = :h{set_roles} REMOVE #c"))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#h", "passwordHash")
            .expression_attribute_names("#c", "passwordChangedAt")
            .expression_attribute_names("#k", KEY)
            .expression_attribute_values(":h", AttributeValue::S(hash));
        if !roles.is_empty() {
            let list = roles.iter().map(|r| AttributeValue::S(r.clone())).collect();
            update = update
                .expression_attribute_names("#r", "roles")
                .expression_attribute_values(":r", AttributeValue::L(list));
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(WriteError::Missing(username.to_owned())),
            Err(e) => Err(classify("UpdateItem", &e).into()),
        }
    }

    /// `users oauth`: sets the user's `oauth` map (`Some`) or removes it (`None`), leaving
    /// every other attribute as it is; refused when the user does not exist.
    pub async fn set_oauth(
        &self,
        username: &str,
        client: Option<&authserver_core::oauth::OAuthClient>,
    ) -> Result<(), WriteError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(username)))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#o", "oauth")
            .expression_attribute_names("#k", KEY);
        update = match client.and_then(super::item::oauth_attribute) {
            Some(map) => update
                .update_expression("SET #o = :o")
                .expression_attribute_values(":o", map),
            None => update.update_expression("REMOVE #o"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(WriteError::Missing(username.to_owned())),
            Err(e) => Err(classify("UpdateItem", &e).into()),
        }
    }

    /// `users disable` / `users enable`.
    pub async fn set_status(&self, username: &str, status: Status) -> Result<(), WriteError> {
        let status = match status {
            Status::Active => "ACTIVE",
            Status::Disabled => "DISABLED",
        };
        self.set(username, "status", status.to_owned()).await
    }

    /// Deletes an existing user (`attribute_exists`: a second `remove` says so).
    pub async fn remove(&self, username: &str) -> Result<(), WriteError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key(username)))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", KEY);
        match delete.send().await {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(WriteError::Missing(username.to_owned())),
            Err(e) => Err(classify("DeleteItem", &e).into()),
        }
    }

    /// One page of users (a `Scan` page, at most 1 MB as DynamoDB returns it), from `start`.
    pub async fn page(&self, start: Option<Item>) -> Result<Page, CallError> {
        let out = with_retries(&self.retry, || async {
            self.client
                .scan()
                .table_name(&self.name)
                .set_exclusive_start_key(start.clone())
                .send()
                .await
                .map_err(|e| classify("Scan", &e))
        })
        .await?;
        let entries = out
            .items()
            .iter()
            .filter_map(|item| Some((username_of(item)?.to_owned(), record_of(item))))
            .collect();
        Ok((entries, out.last_evaluated_key))
    }

    /// Writes up to [`BATCH`] entries in one `BatchWriteItem`, retrying the items DynamoDB
    /// leaves unprocessed (throttling) with backoff. Unconditional: for the initial bulk load
    /// of an empty table, never for edits.
    pub async fn put_batch(&self, entries: &[(String, UserRecord)]) -> Result<(), CallError> {
        let mut pending: Vec<WriteRequest> = entries
            .iter()
            .filter_map(|(name, record)| {
                let put = PutRequest::builder()
                    .set_item(Some(item_of(name, record)))
                    .build()
                    .ok()?;
                Some(WriteRequest::builder().put_request(put).build())
            })
            .collect();
        let mut round = 0;
        while !pending.is_empty() {
            if round > 0 {
                tokio::time::sleep(self.retry.delay(round - 1)).await;
            }
            let batch = std::mem::take(&mut pending);
            let out = with_retries(&self.retry, || async {
                self.client
                    .batch_write_item()
                    .request_items(&self.name, batch.clone())
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", &e))
            })
            .await?;
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.name))
                .unwrap_or_default();
            round += 1;
        }
        Ok(())
    }
}

/// The version item's count of users (number): moved by `users add` (+1), `users remove` (−1)
/// and `users import` (+ the users added), in the same `UpdateItem` as the version bump.
pub const USERS_ATTR: &str = "users";

/// What the version item says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// The version (0 before the first CLI write).
    pub version: u64,
    /// Users in the table as the CLI counted them; `None` when the version item has no count
    /// (no user added through the CLI yet) or one below zero (users removed through the CLI that
    /// were loaded around it): then the count is unknown, not zero.
    pub users: Option<u64>,
}

/// The version item's token of the last bump (string): how a bump whose answer was lost
/// tells that it was applied.
pub const BUMP_ATTR: &str = "lastBump";

/// Further bump attempts allowed for conflicts with other operators' bumps.
const CONFLICTS: u32 = 5;

/// `None` when the version is present but not a `u64`.
fn head_of(item: &Item) -> Option<Head> {
    let number = |attr: &str| item.get(attr).and_then(|v| v.as_n().ok()).cloned();
    let version = match number(VERSION_ATTR) {
        None => 0,
        Some(n) => n.parse().ok()?,
    };
    Some(Head {
        version,
        users: number(USERS_ATTR).and_then(|n| n.parse::<i64>().ok()?.try_into().ok()),
    })
}

/// [`CallError::code`] of a version item whose version is not a `u64`.
pub const INVALID_VERSION: &str = "InvalidVersion";

fn bad_version() -> CallError {
    CallError {
        operation: "GetItem",
        code: Some(INVALID_VERSION.into()),
        message: format!(
            "the {VERSION_KEY:?} item's version is not a whole number from 0 to 2^64-1: no CLI \
             write can be picked up; any `users ... --table` write resets it"
        ),
        retryable: false,
    }
}

/// A version for an item whose version was not a `u64`: the Unix time in milliseconds, far
/// above any count of CLI writes and different from every value servers have read.
fn repair_version() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attrs: &[(&str, &str)]) -> Item {
        attrs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::N(v.to_string())))
            .collect()
    }

    #[test]
    fn the_user_count_is_unknown_when_absent_or_below_zero_never_zero() {
        let head = |attrs: &[(&str, &str)]| head_of(&item(attrs)).expect("a u64 version");
        assert_eq!(head(&[("version", "7"), ("users", "42")]).users, Some(42));
        let absent = head(&[("version", "7")]);
        assert_eq!((absent.version, absent.users), (7, None));
        // Users loaded around the CLI, then removed through it: the count went below zero.
        assert_eq!(head(&[("version", "7"), ("users", "-3")]).users, None);
        assert_eq!(head(&[]), Head::default());
    }

    #[test]
    fn a_version_that_is_not_a_u64_is_refused_not_read_as_zero() {
        for bad in ["18446744073709551616", "7.5", "-1", "1e3"] {
            assert_eq!(head_of(&item(&[("version", bad)])), None, "{bad}");
        }
    }
}
