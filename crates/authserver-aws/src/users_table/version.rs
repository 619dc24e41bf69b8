//! The version item (key `:version`): the counter every CLI write bumps and the user count
//! beside it. Its own module because the bump must be idempotent (a lost answer retried must
//! not count twice) and must repair a version that is not a `u64` (which would otherwise hide
//! every later write from the servers).

use super::UsersTable;
use super::item::{Item, VERSION_ATTR, VERSION_KEY};
use super::table::{conditional_failed, key};
use crate::retry::{CallError, classify};
use aws_sdk_dynamodb::types::AttributeValue;

impl UsersTable {
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
