//! The calls on the users table: consistent reads of one user, the operators' conditional
//! writes (each followed by a version bump, see [`super::version`]), paginated listing and the
//! bulk load.

use super::item::{Item, KEY, item_of, record_of, username_of};
use crate::retry::{CallError, RetryPolicy, classify, with_retries};
use authserver_core::{Status, UserRecord};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

/// Items per `BatchWriteItem` call: the API's limit.
pub const BATCH: usize = 25;

/// The users table and how its calls are retried.
#[derive(Debug, Clone)]
pub struct UsersTable {
    pub(super) client: Client,
    pub(super) name: String,
    pub(super) retry: RetryPolicy,
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

pub(super) fn key(username: &str) -> Item {
    Item::from([(KEY.to_owned(), AttributeValue::S(username.to_owned()))])
}

pub(super) fn conditional_failed<E>(
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
