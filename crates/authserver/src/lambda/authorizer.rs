//! Authorizer mode: API Gateway Lambda authorizers, deciding with the same [`crate::decide::Gate`]
//! as the HTTP routes.
//!
//! | event | recognised by | answer |
//! |---|---|---|
//! | HTTP API, REQUEST, payload 2.0 | `"version": "2.0"` | simple response `{"isAuthorized", "context"}` |
//! | REST API, TOKEN | `"type": "TOKEN"` | IAM policy with `principalId` |
//! | REST API (or HTTP API payload 1.0), REQUEST | `"type": "REQUEST"` | IAM policy with `principalId` |
//!
//! Allowed: `context` carries `username` and `roles` (comma-separated: API Gateway context values
//! must be strings, numbers or booleans). Denied: the same answer whatever the reason (unknown
//! user, wrong password, disabled, missing, malformed). Refusals that say nothing about the
//! credential (rate limited, locked out, overloaded, store unavailable): an error, which API
//! Gateway answers with a 500 and does not cache. A Deny would be cached for the authorizer's TTL
//! under the `Authorization` value, locking the legitimate credential out after the ban ended.
//!
//! Regulation sees the client address: `requestContext.identity.sourceIp` (REST REQUEST) or
//! `requestContext.http.sourceIp` (HTTP API), or a proven `CloudFront-Viewer-Address`
//! ([`super::source`]). TOKEN events carry no address: only username locks apply there.
//!
//! Events of another shape (a proxy event, anything unknown) are refused with an error log and an
//! error answer, never authorized. An HTTP API event with `"headers": null` is judged as a
//! request without `Authorization` (denied).
//!
//! The policy resource is `arn:aws:execute-api:{region}:{account}:{api}/{stage}/*`, derived from
//! `methodArn`: API Gateway caches the policy per identity for the authorizer's TTL and applies
//! it to every route of the API, so a policy naming only the first route would deny the others.
//! With access rules (`rules.file`) the answer is per route instead: see [`super::policy`].

use super::ColdStart;
use super::event::{self, Shape};
use super::init::{Ready, Shared};
use super::source::{self, OriginSecret};
use crate::http::AppState;
use crate::telemetry::metrics::RegulationCounters;
use crate::telemetry::{AuthRecord, RequestRecord};
use authserver_aws::SecretsManagerStore;
use authserver_core::rules::{Identity, RuleSet};
use authserver_core::{Outcome, Reason};
use http::HeaderMap;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_http::lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// `principalId` of every denial (the attempted username is not echoed back).
pub const DENIED_PRINCIPAL: &str = "unauthorized";

/// One authorizer event, reduced to what the decision needs.
struct Event {
    kind: Kind,
    /// `Authorization` values as received (several → malformed).
    authorization: Vec<Vec<u8>>,
    /// `methodArn` (REST shapes).
    method_arn: Option<String>,
    source: Option<std::net::IpAddr>,
    /// HTTP API: the request's method and stage-free path, for access rules.
    route: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HttpSimple,
    Token,
    Request,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::HttpSimple => "http_request",
            Kind::Token => "rest_token",
            Kind::Request => "rest_request",
        }
    }
}

/// The handler state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Authorizer {
    shared: Shared,
    secret: OriginSecret,
    cold: Arc<ColdStart>,
}

impl Authorizer {
    /// The handler over `state`; `secrets` is checked for freshness before each invocation.
    pub fn new(state: Arc<AppState>, secrets: Option<SecretsManagerStore>, cold: Arc<ColdStart>) -> Self {
        let secret = OriginSecret::from_settings(&state.settings);
        Self::from_shared(Shared::ready(Ready::new(state, secrets)), secret, cold)
    }

    /// The handler over a state init may still be building (an error answer until it is ready).
    pub fn from_shared(shared: Shared, secret: OriginSecret, cold: Arc<ColdStart>) -> Self {
        Self { shared, secret, cold }
    }

    /// Answers one event. A panic or internal failure becomes a generic error (API Gateway: 500).
    pub async fn handle(self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        self.cold.note("authorizer");
        let request_id = event.context.request_id.clone();
        match tokio::spawn(self.decide(event.payload, request_id)).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(panicked = e.is_panic(), "authorizer failed; answering an error");
                Err(internal("internal error"))
            }
        }
    }

    async fn decide(self, payload: Value, request_id: String) -> Result<Value, Diagnostic> {
        let start = Instant::now();
        let event = parse(payload, &self.secret).map_err(|why| {
            tracing::error!(
                error = why,
                "authorizer mode received an event it does not serve; refusing it (check the \
                 authorizer's wiring and AUTHSERVER_LAMBDA_MODE)"
            );
            internal("unsupported authorizer event")
        })?;
        let Some(ready) = self.shared.get() else {
            tracing::warn!(
                request_id,
                "authorizer not ready (init still loading); answering an error"
            );
            return Err(internal("service unavailable"));
        };
        if let Some(store) = &ready.secrets {
            store.ensure_fresh().await;
        }
        let state = &ready.state;
        let authorization: Vec<&[u8]> = event.authorization.iter().map(Vec::as_slice).collect();
        let attempt = crate::oauth::bearer::attempt_any(
            &state.gate,
            state.oauth.as_deref(),
            &authorization,
            event.source,
        )
        .await;
        let reason = attempt.decision.reason();
        let record = AuthRecord {
            reason,
            cache: attempt.decision.cache,
            user_hash: attempt.user_hash.clone(),
            verify_time: attempt.decision.verify_time,
        };
        let mut decided_by = None;
        let answer = match (&attempt.decision.outcome, &attempt.username) {
            (Outcome::Allowed { roles }, Some(user)) => {
                let rules = state.rules.current();
                decided_by = rules.as_deref().and_then(|l| {
                    let who = Identity {
                        user: user.clone(),
                        roles: roles.clone(),
                        scopes: Arc::from(attempt.scopes.as_slice()),
                    };
                    rules_verdict(&event, &l.set, &who)
                });
                allow(
                    &event,
                    user,
                    roles,
                    &attempt.scopes,
                    rules.as_deref().map(|l| &l.set),
                )
            }
            (Outcome::Denied(Reason::StoreUnavailable | Reason::Overloaded), _) => {
                Err(internal("service unavailable"))
            }
            // Not a verdict on the credential: never a Deny that API Gateway would cache.
            (Outcome::Denied(Reason::RateLimited | Reason::LockedOut), _) => Err(internal("rate limited")),
            _ => deny(&event),
        };
        account(state, &event, &record, &request_id, start, decided_by);
        answer
    }
}

/// The rule that decides the request that asked and whether it lets `who` in, for the audit
/// (as `/auth/forward` records it: the credential was right, the rule may still refuse).
fn rules_verdict(event: &Event, set: &RuleSet, who: &Identity) -> Option<(String, bool)> {
    let (method, path) = match event.kind {
        Kind::HttpSimple => event.route.clone()?,
        Kind::Token | Kind::Request => {
            let arn = event.method_arn.as_deref()?;
            let stage = stage_wildcard(arn)?;
            super::policy::asking_request(stage.trim_end_matches('*'), arn)?
        }
    };
    let method = if method == "*" { "ANY".to_owned() } else { method };
    Some(super::policy::verdict(set, &method, &path, who, event.source))
}

/// Metrics, audit and the one log line, as the HTTP middleware does for routes.
fn account(
    state: &AppState,
    event: &Event,
    record: &AuthRecord,
    request_id: &str,
    start: Instant,
    decided_by: Option<(String, bool)>,
) {
    let latency = start.elapsed();
    let end = crate::telemetry::EndClock::default();
    if let Some((rule, _)) = decided_by.as_ref().filter(|(_, allowed)| !allowed) {
        // A credential allowed and a rule refusing: the auth_attempt stays `allowed` (the
        // credential was right) and the refusal is its own event, as on `/auth/forward`.
        state.audit.emit(authserver_core::AuditEvent::AccessDecision {
            rule: rule.clone(),
            outcome: "denied",
            source: event.source.map(|s| s.to_string()),
            request_id: request_id.to_owned(),
        });
    }
    let request = RequestRecord {
        auth: Some(record),
        latency,
        source: event.source,
        country: None,
        request_id,
        regulation: RegulationCounters::read(
            &state.gate.regulator.bans,
            &state.gate.regulator.backend_errors,
        ),
        hash_abandoned: state.gate.limiter.abandoned(),
        end: &end,
    };
    state.telemetry.record(&request, state.gate.store.as_ref());
    // The one record (line and audit event), as the HTTP middleware writes it.
    let access = crate::audit::access::Access {
        request_id,
        route: "authorizer",
        authorizer: Some(event.kind.as_str()),
        outcome: Some(if record.reason.is_none() {
            "allowed"
        } else {
            "denied"
        }),
        reason: record.reason.map(Reason::as_str),
        user_hash: record.user_hash.as_deref(),
        source: event.source,
        cache: Some(record.cache.as_str()),
        verify: record.verify_time,
        latency,
        end: Some(&end),
        rule: decided_by.as_ref().map(|(rule, _)| rule.as_str()),
        ..Default::default()
    };
    let enabled = || tracing::enabled!(target: crate::audit::access::ACCESS_TARGET, tracing::Level::INFO);
    crate::audit::access::write(state.audit.as_ref(), &access, state.settings.log.access, enabled);
}

fn internal(message: &str) -> Diagnostic {
    Diagnostic {
        error_type: "AuthorizerError".into(),
        error_message: message.into(),
    }
}

fn parse(mut payload: Value, secret: &OriginSecret) -> Result<Event, &'static str> {
    if event::shape(&payload) != Shape::Authorizer {
        return Err("not an authorizer event (a proxy event, or unknown)");
    }
    let source = source::client_address(&payload, secret);
    // `"headers": null` and kin mean "none": the event types want maps, and an absent map denies.
    if let Some(map) = payload.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let field = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
    if field("version").as_deref() == Some("2.0") {
        let path = event::routed_path(&payload, Shape::HttpProxy).unwrap_or_default();
        let e: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_value(payload).map_err(|_| "invalid HTTP API authorizer event")?;
        let route = Some((e.request_context.http.method.as_str().to_owned(), path));
        return Ok(Event {
            kind: Kind::HttpSimple,
            authorization: values(&e.headers),
            method_arn: e.route_arn,
            source,
            route,
        });
    }
    match field("type").as_deref() {
        Some("TOKEN") => {
            let e: ApiGatewayCustomAuthorizerRequest =
                serde_json::from_value(payload).map_err(|_| "invalid TOKEN authorizer event")?;
            Ok(Event {
                kind: Kind::Token,
                authorization: e
                    .authorization_token
                    .into_iter()
                    .map(String::into_bytes)
                    .collect(),
                method_arn: e.method_arn,
                source,
                route: None,
            })
        }
        Some("REQUEST") => {
            let e: ApiGatewayCustomAuthorizerRequestTypeRequest =
                serde_json::from_value(payload).map_err(|_| "invalid REQUEST authorizer event")?;
            // multiValueHeaders keeps repeated headers (which must fail as malformed).
            let headers = if e.multi_value_headers.is_empty() {
                &e.headers
            } else {
                &e.multi_value_headers
            };
            Ok(Event {
                kind: Kind::Request,
                authorization: values(headers),
                method_arn: e.method_arn,
                source,
                route: None,
            })
        }
        _ => Err("neither a 2.0 REQUEST, TOKEN nor REQUEST authorizer event"),
    }
}

fn values(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

/// The answer for an authenticated user; with access rules, per route ([`super::policy`]).
/// `scopes`: a bearer token's (space-separated in the context). Basic answers carry `scopes` too,
/// empty: the template maps `$context.authorizer.scopes` onto the `X-Authserver-Scopes` header
/// the backend trusts, and AWS does not document what an `overwrite` mapping does with a context
/// key that is absent, so the key is always there and a Basic caller's own header is replaced by
/// the empty value rather than perhaps passed through.
fn allow(
    event: &Event,
    username: &str,
    roles: &Arc<[String]>,
    scopes: &[String],
    rules: Option<&RuleSet>,
) -> Result<Value, Diagnostic> {
    let context = json!({"username": username, "roles": roles.join(","), "scopes": scopes.join(" ")});
    let who = || Identity {
        user: username.to_owned(),
        roles: roles.clone(),
        scopes: Arc::from(scopes),
    };
    match event.kind {
        Kind::HttpSimple => {
            let permitted = rules.is_none_or(|set| {
                let (method, path) = event.route.clone().unwrap_or_default();
                super::policy::http_permits(set, &method, &path, &who(), event.source)
            });
            Ok(json!({"isAuthorized": permitted, "context": if permitted { context } else { json!({}) }}))
        }
        Kind::Token | Kind::Request => {
            let arn = event.method_arn.as_deref().unwrap_or_default();
            let resource =
                stage_wildcard(arn).ok_or_else(|| internal("methodArn missing or not an execute-api ARN"))?;
            let Some(set) = rules else {
                return Ok(policy(username, "Allow", &resource, Some(context)));
            };
            let stage = resource.trim_end_matches('*');
            let statements = super::policy::rest_statements(set, stage, arn, &who(), event.source)
                .ok_or_else(|| internal("methodArn is not a route of its stage"))?;
            let mut answer = policy(username, "Allow", &resource, Some(context));
            answer["policyDocument"]["Statement"] = statements;
            Ok(answer)
        }
    }
}

fn deny(event: &Event) -> Result<Value, Diagnostic> {
    match event.kind {
        Kind::HttpSimple => Ok(json!({"isAuthorized": false, "context": {}})),
        Kind::Token | Kind::Request => {
            // Denying the whole stage for this identity is safe; an unparseable ARN denies all.
            let resource = event
                .method_arn
                .as_deref()
                .and_then(stage_wildcard)
                .unwrap_or_else(|| "*".to_owned());
            Ok(policy(DENIED_PRINCIPAL, "Deny", &resource, None))
        }
    }
}

fn policy(principal: &str, effect: &str, resource: &str, context: Option<Value>) -> Value {
    let mut answer = json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    });
    if let (Some(context), Some(map)) = (context, answer.as_object_mut()) {
        map.insert("context".into(), context);
    }
    answer
}

/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{verb}/{path}` →
/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/*`; `None` for anything else.
pub fn stage_wildcard(method_arn: &str) -> Option<String> {
    let mut parts = method_arn.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let ok = |s: &str| !s.is_empty() && !s.contains('*');
    if arn != "arn" || service != "execute-api" || ![partition, region, account].into_iter().all(ok) {
        return None;
    }
    let mut segments = resource.split('/');
    let (api, stage) = (segments.next()?, segments.next()?);
    if !ok(api) || !ok(stage) {
        return None;
    }
    Some(format!(
        "arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/*"
    ))
}

#[cfg(test)]
mod tests {
    use super::stage_wildcard;

    #[test]
    fn method_arns_become_stage_wildcards() {
        assert_eq!(
            stage_wildcard("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/POST/auth/validate")
                .as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*")
        );
        assert_eq!(
            stage_wildcard("arn:aws-cn:execute-api:cn-north-1:1:api/$default/GET/").as_deref(),
            Some("arn:aws-cn:execute-api:cn-north-1:1:api/$default/*")
        );
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:1:function/x",
            "arn:aws:execute-api:us-east-1:1:api",
            "arn:aws:execute-api:*:1:api/prod/GET/x",
            "arn:aws:execute-api:us-east-1:1:*/prod/GET/x",
            "not:an:arn:at:all:x/y",
        ] {
            assert_eq!(stage_wildcard(bad), None, "{bad}");
        }
    }
}
