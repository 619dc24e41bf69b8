//! The audit record of one request to an OAuth endpoint (`oauth_token`, `oauth_introspect`,
//! `oauth_revoke`): the endpoint code fills a [`Trail`] as it goes (who was presented, how, what
//! was granted), and the route turns it into one [`AuditEvent`] through the audit pipeline every
//! `auth_attempt` takes (same stdout stream, same hash-chained file).
//!
//! What a trail may hold is what the event may show: the presented client id is kept only when
//! it is a possible name (a username's bounds: `names::check_username`), and shown only when
//! the request's own client authentication found it registered as an OAuth client (the gate's
//! lookup, or the assertion check's); otherwise the event has its keyed `user_hash` alone.
//! Building the event never reads the store: a request refused before any lookup (a `client_id`
//! mismatch, a banned source) must not cost a DynamoDB read for its audit line. Never the
//! secret, the assertion, a token or the `Authorization` header.

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
    /// Whether the request's own authentication found `client_id` registered as an OAuth client.
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

    /// The request's own authentication looked the presented id up and found an OAuth client
    /// (authenticated or not): the event may show the id.
    pub fn registered(&mut self) {
        self.registered = self.client_id.is_some();
    }

    /// Client authentication failed for `why` (the metric's label): counted and recorded.
    pub fn auth_failed(&mut self, why: &'static str) {
        crate::telemetry::oauth::figures().client_auth_failure(why);
        self.reason = Some(why);
    }

    /// The event for a request answered `result` from `source`.
    pub fn event(
        self,
        endpoint: Endpoint,
        result: Result<(), &OAuthError>,
        gate: &Gate,
        source: Option<IpAddr>,
    ) -> AuditEvent {
        let user_hash = self.client_id.as_deref().map(|id| gate.user_hasher.hash(id));
        let shown = self.client_id.filter(|_| self.registered);
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
