//! The client registry: which user entries are OAuth clients now, and how (their `oauth`
//! object). The store in service is the registry; this asks it for one client. Client
//! authentication, the bearer tokens' client check and the audit trail all ask here, so none of
//! them depends on another for it.

use crate::decide::Gate;
use authserver_core::Status;
use authserver_core::oauth::OAuthClient;
use std::sync::Arc;

/// The registration of an ACTIVE client in the store in service (also what keeps a bearer
/// token valid: [`super::bearer::current`]). Asked per client (`current_for`), so a per-user
/// store (the DynamoDB users table) answers from its entry cache or one lookup, exactly as
/// the whole-document stores answer from their snapshot.
pub async fn registration(gate: &Gate, id: &str) -> Option<Arc<OAuthClient>> {
    let snapshot = gate.store.current_for(id).resolve().await.ok()?;
    let user = snapshot.user(id)?;
    (user.status == Status::Active)
        .then(|| user.oauth.clone())
        .flatten()
}
