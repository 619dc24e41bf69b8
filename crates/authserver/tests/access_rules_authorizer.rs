//! The Lambda authorizer under access rules, replaying the REST and HTTP API event fixtures:
//! API Gateway caches one answer per identity and applies it to every route of the stage, so
//! the answer given for any one route must be right for all of them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::access::iam_allows;
use authserver_testkit::lambda::{
    STAGE, authorize, fixture, settings, state_with, state_with_rules as state,
};
use serde_json::Value;

const RULES: &str = r#"
api_routes = ["GET /health", "GET /orders", "GET /orders/{id}", "POST /orders", "GET /admin/users", "DELETE /admin/users/{id}"]

[[rule]]
name = "health"
paths = ["/health"]
policy = "bypass"

[[rule]]
name = "admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]

[[rule]]
name = "orders-write"
paths = ["/orders"]
methods = ["POST"]
policy = "allow"
roles = ["writer"]

[[rule]]
name = "orders-read"
paths = ["/orders"]
methods = ["GET"]
policy = "allow"
"#;

/// A concrete request of each route: (method ARN suffix, what the rules say for fixture-user,
/// who has the roles admin and reader).
const CALLS: [(&str, bool); 6] = [
    ("GET/health", true),
    ("GET/orders", true),
    ("GET/orders/42", true),
    ("POST/orders", false),
    ("GET/admin/users", true),
    ("DELETE/admin/users/7", true),
];

async fn policy_for(state: &std::sync::Arc<authserver::http::AppState>, suffix: &str) -> Value {
    let mut event = fixture("authorizer_rest_token.json");
    event["methodArn"] = Value::String(format!("{STAGE}{suffix}"));
    authorize(state, event).await.unwrap()
}

#[tokio::test]
async fn a_cached_rest_policy_is_right_for_every_route_of_the_stage() {
    let state = state(RULES);
    for (asked, _) in CALLS {
        let cached = policy_for(&state, asked).await;
        assert_eq!(cached["principalId"], "fixture-user");
        for (other, want) in CALLS {
            let arn = format!("{STAGE}{other}");
            assert_eq!(
                iam_allows(&cached, &arn),
                want,
                "policy cached for {asked} answers {other} wrongly: {cached:#}"
            );
        }
    }
    // The same through a REQUEST event.
    let mut event = fixture("authorizer_rest_request.json");
    event["methodArn"] = Value::String(format!("{STAGE}POST/orders"));
    let answer = authorize(&state, event).await.unwrap();
    assert_eq!(answer["principalId"], "fixture-user");
    for (other, want) in CALLS {
        assert_eq!(iam_allows(&answer, &format!("{STAGE}{other}")), want, "{other}");
    }
}

#[tokio::test]
async fn without_api_routes_only_the_asking_route_is_answered() {
    let rules = RULES.lines().skip(2).collect::<Vec<_>>().join("\n");
    let state = state(&rules);
    let cached = policy_for(&state, "GET/orders/42").await;
    assert!(iam_allows(&cached, &format!("{STAGE}GET/orders/42")));
    // Cached for another route: denied (implicit), never wrongly allowed.
    assert!(!iam_allows(&cached, &format!("{STAGE}GET/admin/users")));
    let denied = policy_for(&state, "POST/orders").await;
    assert!(!iam_allows(&denied, &format!("{STAGE}POST/orders")));
}

#[tokio::test]
async fn without_rules_the_stage_wildcard_stays() {
    let state = state_with(settings());
    let cached = policy_for(&state, "POST/orders").await;
    for (other, _) in CALLS {
        assert!(iam_allows(&cached, &format!("{STAGE}{other}")), "{other}");
    }
}

#[tokio::test]
async fn http_api_simple_answers_follow_the_request_line() {
    let state = state(RULES);
    let mut event = fixture("authorizer_http_api_v2.json");
    assert_eq!(
        authorize(&state, event.clone()).await.unwrap()["isAuthorized"],
        true,
        "GET /prod/orders"
    );
    event["requestContext"]["http"]["method"] = Value::String("POST".into());
    let answer = authorize(&state, event).await.unwrap();
    assert_eq!(answer["isAuthorized"], false);
    assert_eq!(
        answer["context"],
        serde_json::json!({}),
        "no identity on a refusal"
    );
}

/// The credential is right and a rule refuses: the audit says so (an `access_decision` naming
/// the rule, `rule` on the record), as `/auth/forward` does, instead of a bare `allowed`.
#[tokio::test]
async fn a_rule_refusal_is_audited_with_the_rule() {
    use authserver_core::AuditEvent;
    let recorder = std::sync::Arc::new(authserver_testkit::fakes::Recorder::default());
    let state = std::sync::Arc::into_inner(state(RULES)).unwrap();
    let state = std::sync::Arc::new(authserver::http::AppState {
        audit: recorder.clone(),
        ..state
    });
    let mut event = fixture("authorizer_http_api_v2.json");
    event["requestContext"]["http"]["method"] = Value::String("POST".into());
    assert_eq!(authorize(&state, event).await.unwrap()["isAuthorized"], false);
    policy_for(&state, "POST/orders").await;
    policy_for(&state, "GET/orders/42").await;
    let events = recorder.events();
    let refusals: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::AccessDecision { rule, outcome, .. } => Some((rule.as_str(), *outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        [("orders-write", "denied"), ("orders-write", "denied")],
        "{events:?}"
    );
    let rules: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::AuthAttempt { rule, .. } => Some(rule.as_deref()),
            _ => None,
        })
        .collect();
    assert_eq!(
        rules,
        [Some("orders-write"), Some("orders-write"), Some("orders-read")]
    );
}
