//! One authentication attempt from raw `Authorization` header values to a [`Decision`]: the
//! piece every surface (HTTP routes, Lambda authorizer) shares.

use crate::limiter::HashLimiter;
use crate::store::SnapshotSource;
use authserver_core::{Authenticator, Credentials, Decision, ParseError, Reason, Step, UserHasher};
use std::fmt;
use std::time::Duration;

/// Retry-After for 503 overloaded.
pub const OVERLOADED_RETRY: Duration = Duration::from_secs(1);

/// What one attempt produced.
pub struct Attempt {
    /// The decision.
    pub decision: Decision,
    /// The username (plaintext: for forward headers and authorizer context only, never logs).
    pub username: Option<String>,
    /// Keyed hash of the username, for logs.
    pub user_hash: Option<String>,
    /// Retry-After for 429 / 503.
    pub retry_after: Option<Duration>,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("decision", &self.decision)
            .field("user_hash", &self.user_hash)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

/// The parts of the server an attempt needs.
#[derive(Debug)]
pub struct Gate {
    /// Snapshots.
    pub store: std::sync::Arc<dyn SnapshotSource>,
    /// Decisions and the verified cache.
    pub auth: Authenticator,
    /// Verification limiter.
    pub limiter: HashLimiter,
    /// `user_hash` for logs.
    pub user_hasher: UserHasher,
}

impl Gate {
    /// Decides for the given `Authorization` values (all of them: more than one is malformed).
    pub async fn attempt<'a>(&self, mut authorization: impl Iterator<Item = &'a [u8]>) -> Attempt {
        let deny = |reason, retry_after| Attempt {
            decision: Decision::denied(reason),
            username: None,
            user_hash: None,
            retry_after,
        };
        let Some(value) = authorization.next() else {
            return deny(Reason::Missing, None);
        };
        if authorization.next().is_some() {
            return deny(Reason::Malformed, None);
        }
        let creds = match Credentials::parse(value) {
            Ok(c) => c,
            Err(ParseError::NotBasic) => return deny(Reason::Missing, None),
            Err(ParseError::Malformed(_)) => return deny(Reason::Malformed, None),
        };
        let username = creds.username().to_owned();
        let user_hash = Some(self.user_hasher.hash(&username));
        let with_user = |decision, retry_after| Attempt {
            decision,
            username: Some(username.clone()),
            user_hash: user_hash.clone(),
            retry_after,
        };
        let snapshot = match self.store.current() {
            Ok(s) => s,
            Err(u) => return with_user(Decision::denied(Reason::StoreUnavailable), Some(u.retry_after)),
        };
        let decision = match self.auth.begin(&snapshot, creds) {
            Step::Done(d) => d,
            Step::Verify(task) => match self.limiter.run(task).await {
                Ok(verified) => self.auth.finish(verified),
                Err(e) => {
                    tracing::warn!(error = %e, "verification refused: overloaded");
                    return with_user(Decision::denied(Reason::Overloaded), Some(OVERLOADED_RETRY));
                }
            },
        };
        with_user(decision, None)
    }
}
