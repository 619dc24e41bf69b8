//! Access rules on `/auth/forward`: the request is routed to one rule before credentials are
//! read, so `bypass` (200) and `deny` (403) never touch them (no regulation, no Argon2id);
//! `allow` authenticates as always and then checks the subject (403 when it refuses).
//!
//! | situation | answer |
//! |---|---|
//! | no rules configured | as before rules: any authenticated user, 401 otherwise |
//! | `bypass` | 200, identity headers present and empty |
//! | `deny`, or a rule that needs a part of the request not known | 403 |
//! | proxy headers that contradict each other, a path that cannot be normalised | 403 (rule `invalid_request`) |
//! | `allow`, not authenticated | 401 with the challenge (429/503 as always) |
//! | `allow`, authenticated, subject refuses | 403 |
//! | `allow`, authenticated, subject permits | 200 with identity headers |
//!
//! Every 403 has the same body, whatever the reason. `/auth/validate` applies no rules: it
//! answers "who is this?" for a caller with no original request to speak of.

use super::original::{Conflict, Original, original};
use super::{AppState, ClientAddr, reply};
use crate::access::{Loaded, RuleCounts};
use crate::decide::Attempt;
use authserver_core::rules::{self, INVALID_REQUEST, Identity, Policy, Request};
use authserver_core::{Outcome, Reason};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Which rule a response was decided by, and whether it let the request through (a response
/// extension, for the log line and the audit event).
#[derive(Debug, Clone)]
pub struct RuleRecord(pub Arc<str>, pub bool);

/// A request routed to one rule.
#[derive(Debug)]
pub struct Routed {
    loaded: Arc<Loaded>,
    /// The rule's position; `None`: the default (or refused before matching, then `deny`).
    index: Option<usize>,
    name: Arc<str>,
    /// Denied whatever the rule says: undetermined, or refused before matching.
    deny: bool,
    counts: Arc<RuleCounts>,
}

impl Routed {
    fn policy(&self) -> &Policy {
        match (self.deny, self.index) {
            (true, _) => &DENY,
            (false, Some(i)) => self.loaded.set.rules().get(i).map_or(&DENY, |r| r.policy()),
            (false, None) => self.loaded.set.default_policy(),
        }
    }

    /// The answer without credentials (bypass, deny), if the rule gives one. A bypass carries
    /// the identity headers empty: a proxy that copies them from the answer (Caddy's
    /// `copy_headers`) would otherwise pass its unreplaced placeholder
    /// (`{http.reverse_proxy.header.Remote-User}`) to the application as the user's name.
    pub fn early(&self, server: &crate::config::ServerSettings) -> Option<Response> {
        match self.policy() {
            Policy::Bypass => {
                let mut response = reply::bypassed();
                for name in [&server.forward_user_header, &server.forward_roles_header] {
                    let name: &str = name;
                    if let Ok(name) = axum::http::HeaderName::try_from(name) {
                        response
                            .headers_mut()
                            .insert(name, axum::http::HeaderValue::from_static(""));
                    }
                }
                Some(self.counted(response, true))
            }
            Policy::Deny => Some(self.counted(reply::forbidden(), false)),
            Policy::Allow(_) => None,
        }
    }

    /// The answer once `attempt` ran: `response` as built for it, or 403 when the identity
    /// authenticated but the subject refuses it.
    pub fn finish(&self, response: Response, attempt: &Attempt) -> Response {
        let Policy::Allow(subject) = self.policy() else {
            return self.counted(reply::forbidden(), false);
        };
        match (&attempt.decision.outcome, &attempt.username) {
            (Outcome::Allowed { roles }, Some(user)) => {
                let who = Identity {
                    user: user.clone(),
                    roles: roles.clone(),
                    scopes: Arc::from(attempt.scopes.as_slice()),
                };
                if subject.permits(&who) {
                    self.counted(response, true)
                } else {
                    self.counted(reply::forbidden(), false)
                }
            }
            // Not authenticated: 401/429/503 as always; counted as this rule's denial only
            // when the credentials themselves were refused.
            (Outcome::Denied(reason), _) => {
                if reason.is_credential_failure() || matches!(reason, Reason::Missing | Reason::Malformed) {
                    self.counts.denied.fetch_add(1, Relaxed);
                }
                tagged(response, &self.name, false)
            }
            (Outcome::Allowed { .. }, None) => self.counted(reply::forbidden(), false),
        }
    }

    fn counted(&self, response: Response, allowed: bool) -> Response {
        let counter = if allowed {
            &self.counts.allowed
        } else {
            &self.counts.denied
        };
        counter.fetch_add(1, Relaxed);
        tagged(response, &self.name, allowed)
    }
}

/// The policy of a request that cannot be matched safely.
static DENY: Policy = Policy::Deny;

fn tagged(mut response: Response, name: &Arc<str>, allowed: bool) -> Response {
    response
        .extensions_mut()
        .insert(RuleRecord(name.clone(), allowed));
    response
}

/// Routes a `/auth/forward` call; `None` when no rules are configured.
pub fn route(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    method: &Method,
    peer: Option<ClientAddr>,
) -> Option<Routed> {
    state.rules.current()?;
    let peer_ip = peer.map(|p| p.0.ip());
    let trusted = peer_ip.is_some_and(|ip| state.proxies.trusts(ip.to_canonical()));
    let told = original(headers, uri, method, trusted);
    let client = peer_ip.and_then(|ip| state.proxies.client(ip, headers));
    route_told(state, told, client)
}

/// Routes a request the caller already read: `told` by a proxy (or a contradiction), from
/// `client` (the gRPC surface reads both from its `CheckRequest`).
pub fn route_told(
    state: &AppState,
    told: Result<Original, Conflict>,
    client: Option<IpAddr>,
) -> Option<Routed> {
    let loaded = state.rules.current()?;
    let invalid = |loaded| Routed {
        loaded,
        index: None,
        name: Arc::from(INVALID_REQUEST),
        deny: true,
        counts: crate::access::figures().counts(INVALID_REQUEST),
    };
    let Ok(told) = told else {
        return Some(invalid(loaded));
    };
    let path = match told.target.as_deref().map(rules::normalise).transpose() {
        Ok(p) => p,
        Err(_) => return Some(invalid(loaded)),
    };
    let host = told.host.as_deref().map(rules::host_key);
    let req = Request {
        method: told.method.as_deref(),
        host: host.as_deref(),
        path: path.as_ref(),
        client,
    };
    let route = loaded.set.route(&req);
    let (index, name, deny) = (route.index, Arc::from(route.name), route.undetermined);
    Some(Routed {
        counts: loaded.counts(index),
        loaded,
        index,
        name,
        deny,
    })
}
