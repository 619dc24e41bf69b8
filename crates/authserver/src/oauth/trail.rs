//! The audit record of one request to an OAuth endpoint (`oauth_token`, `oauth_introspect`,
//! `oauth_revoke`): the endpoint code fills a [`Trail`] as it goes (who was presented, how, what
//! was granted), and the route turns it into one [`AuditEvent`] through the audit pipeline every
//! `auth_attempt` takes (same stdout stream, same hash-chained file).
//!
//! What a trail may hold is what the event may show: the presented client id is kept only when
//! it is a possible name (a username's bounds: `names::check_username`), and shown only when it
//! names a registered OAuth client; otherwise the event has its keyed `user_hash` alone. Never
//! the secret, the assertion, a token or the `Authorization` header.

use super::error::OAuthError;
use crate::decide::Gate;
use authserver_core::{AuditEvent, OAuthRequest};
use std::net::IpAddr;

/// Which endpoint a trail is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth/token`.
    Token,
    /// `POST /oauth/introspect`.
    Introspect,
    /// `POST /oauth/revoke`.
    Revoke,
}

/// What one request to an OAuth endpoint did, for its audit event.
#[derive(Debug, Default)]
pub struct Trail {
    /// The presented client id, when within a username's bounds.
    client_id: Option<String>,
    /// Whether `client_id` is known to name a registered OAuth client.
    registered: bool,
    /// The client-authentication method presented.
    pub method: Option<&'static str>,
    /// The client-authentication failure label (as in the metric), when that was the refusal.
    reason: Option<&'static str>,
    /// Granted scopes (token issued).
    pub scope: Option<String>,
    /// The token's audience (token issued).
    pub audience: Option<String>,
    /// The jti of the token issued or revoked.
    pub jti: Option<String>,
    /// Introspection: whether the token was active.
    pub active: Option<bool>,
}

impl Trail {
    /// The client id the request presented (kept only within a username's bounds).
    pub fn presented(&mut self, id: &str) {
        self.client_id = authserver_core::names::check_username(id)
            .is_ok()
            .then(|| id.to_owned());
        self.registered = false;
    }

    /// The presented client authenticated: a registered OAuth client.
    pub fn authenticated(&mut self) {
        self.registered = self.client_id.is_some();
    }

    /// Client authentication failed for `why` (the metric's label): counted and recorded.
    pub fn auth_failed(&mut self, why: &'static str) {
        crate::telemetry::oauth::figures().client_auth_failure(why);
        self.reason = Some(why);
    }

    /// The event for a request answered `result` from `source`.
    pub async fn event(
        self,
        endpoint: Endpoint,
        result: Result<(), &OAuthError>,
        gate: &Gate,
        source: Option<IpAddr>,
    ) -> AuditEvent {
        let user_hash = self.client_id.as_deref().map(|id| gate.user_hasher.hash(id));
        let shown = match (&self.client_id, self.registered) {
            (Some(id), true) => Some(id.clone()),
            // The store already said it holds no such id: no second lookup (on the DynamoDB
            // users table, a spray of unknown ids would cost two reads each).
            (Some(_), false) if matches!(self.reason, Some("unknown_user" | "unknown_client")) => None,
            // A refusal after the id was presented: shown if it names an OAuth client anyway
            // (a wrong secret of a real client), never a plain user's name.
            (Some(id), false) => super::registry::registration(gate, id).await.map(|_| id.clone()),
            (None, _) => None,
        };
        let (outcome, reason) = match (result, endpoint) {
            (Err(e), _) => ("refused", Some(self.reason.unwrap_or_else(|| e.code()))),
            (Ok(()), Endpoint::Token) => ("issued", None),
            (Ok(()), Endpoint::Introspect) => ("answered", None),
            (Ok(()), Endpoint::Revoke) if self.jti.is_some() => ("revoked", None),
            (Ok(()), Endpoint::Revoke) => ("ignored", None),
        };
        let ctx = crate::telemetry::context::current();
        let request = OAuthRequest {
            outcome,
            reason,
            client_id: shown,
            user_hash,
            auth_method: self.method,
            scope: self.scope,
            audience: self.audience,
            jti: self.jti,
            active: self.active,
            source: source.map(|s| s.to_string()),
            request_id: ctx.as_ref().map(|c| c.request_id.to_string()).unwrap_or_default(),
            trace_id: ctx.and_then(|c| c.xray_trace_id.or(c.traceparent)),
        };
        match endpoint {
            Endpoint::Token => AuditEvent::OauthToken(request),
            Endpoint::Introspect => AuditEvent::OauthIntrospect(request),
            Endpoint::Revoke => AuditEvent::OauthRevoke(request),
        }
    }
}
