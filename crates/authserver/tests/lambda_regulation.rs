//! Brute-force regulation on Lambda: the authorizer regulates by the caller's address, and its
//! refusals are errors (API Gateway: 500, never cached) instead of Deny policies that API
//! Gateway would cache for the authorizer TTL; the proxy finds the client behind an ALB and,
//! with the origin secret, behind CloudFront.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authserver::lambda::proxy::Proxy;
use authserver_testkit::lambda::{
    GOOD, WRONG, authorize, cold, fixture, invoke, rest_request, settings, state_with,
};
use serde_json::{Value, json};

/// Settings with small thresholds: 3 failures ban a source, 4 lock a username.
fn strict() -> authserver::config::Settings {
    let mut s = settings();
    s.regulation.policy.max_source_failures = 3;
    s.regulation.policy.max_user_failures = 4;
    s.regulation.policy.max_source_usernames = 100;
    s
}

fn http_request(auth: &str, ip: &str) -> Value {
    let mut e = fixture("authorizer_http_api_v2.json");
    e["headers"]["authorization"] = json!(auth);
    e["identitySource"] = json!([auth]);
    e["requestContext"]["http"]["sourceIp"] = json!(ip);
    e
}

#[tokio::test]
async fn the_authorizer_bans_the_source_and_answers_an_uncacheable_error() {
    for (kind, event) in [
        ("REST", rest_request as fn(&str, &str) -> Value),
        ("HTTP API", http_request),
    ] {
        let state = state_with(strict());
        for _ in 0..3 {
            let denied = authorize(&state, event(WRONG, "198.51.100.9")).await.unwrap();
            assert_ne!(denied.get("isAuthorized"), Some(&json!(true)), "{kind}");
        }
        // The banned address is refused even with the right password, and not with a Deny
        // (API Gateway would cache it under this Authorization value for everyone).
        let refused = authorize(&state, event(GOOD, "198.51.100.9")).await;
        assert_eq!(refused, Err("AuthorizerError: rate limited".into()), "{kind}");
        // Another address with the same credential is allowed: the ban is per source.
        let allowed = authorize(&state, event(GOOD, "203.0.113.50")).await.unwrap();
        assert!(
            allowed.get("isAuthorized") == Some(&json!(true))
                || allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow",
            "{kind}: {allowed}"
        );
        // IPv4-mapped spelling of the banned address is the same address.
        let mapped = authorize(&state, event(GOOD, "::ffff:198.51.100.9")).await;
        assert_eq!(
            mapped,
            Err("AuthorizerError: rate limited".into()),
            "{kind} mapped"
        );
    }
}

#[tokio::test]
async fn a_locked_username_is_an_error_not_a_cached_deny() {
    let state = state_with(strict());
    // Four failures from four addresses (none banned) lock the username.
    for i in 0..4 {
        let denied = authorize(&state, rest_request(WRONG, &format!("192.0.2.{}", 10 + i))).await;
        assert_eq!(
            denied.unwrap()["policyDocument"]["Statement"][0]["Effect"],
            "Deny"
        );
    }
    let locked = authorize(&state, rest_request(GOOD, "192.0.2.99")).await;
    assert_eq!(locked, Err("AuthorizerError: rate limited".into()));
}

/// An ALB event from `xff` (as the load balancer forwards it).
fn alb(auth: &str, xff: &str) -> Value {
    let mut e = fixture("alb.json");
    e["headers"]["authorization"] = json!(auth);
    e["headers"]["x-forwarded-for"] = json!(xff);
    e
}

#[tokio::test]
async fn behind_an_alb_the_right_most_forwarded_hop_is_the_client() {
    let proxy = Proxy::new(state_with(strict()), None, cold());
    // The attacker writes its own X-Forwarded-For; the ALB appends the address it saw.
    for i in 0..3 {
        let spoof = format!("10.9.9.{i}, 198.51.100.66");
        assert_eq!(invoke(&proxy, alb(WRONG, &spoof)).await.0, 401);
    }
    let (status, headers, _) = invoke(&proxy, alb(GOOD, "203.0.113.1, 198.51.100.66")).await;
    assert_eq!(status, 429, "the ALB-seen address is banned");
    assert!(headers.get("retry-after").is_some());
    // A client whose own header names the banned address is judged by its real one.
    assert_eq!(
        invoke(&proxy, alb(GOOD, "198.51.100.66, 203.0.113.2")).await.0,
        200
    );
    // Port and bracket forms of the hop parse.
    assert_eq!(invoke(&proxy, alb(GOOD, "198.51.100.66:4711")).await.0, 429);
    assert_eq!(invoke(&proxy, alb(GOOD, "[2001:db8::5]:443")).await.0, 200);
}

/// An HTTP API event through a CloudFront edge `edge` for viewer `viewer`, with `secret`.
fn through_cloudfront(auth: &str, viewer: &str, secret: Option<&str>) -> Value {
    let mut e = fixture("apigw_v2_http_api.json");
    e["headers"]["authorization"] = json!(auth);
    e["headers"]["cloudfront-viewer-address"] = json!(format!("{viewer}:46532"));
    e["requestContext"]["http"]["sourceIp"] = json!("130.176.0.1");
    if let Some(s) = secret {
        e["headers"]["x-origin-verify"] = json!(s);
    }
    e
}

#[tokio::test]
async fn behind_cloudfront_the_viewer_address_counts_only_with_the_origin_secret() {
    let mut s = strict();
    s.lambda.cloudfront_secret_header = "X-Origin-Verify: 9f8e7d6c5b4a-origin".into();
    let proxy = Proxy::new(state_with(s), None, cold());
    let secret = Some("9f8e7d6c5b4a-origin");
    for _ in 0..3 {
        let e = through_cloudfront(WRONG, "198.51.100.70", secret);
        assert_eq!(invoke(&proxy, e).await.0, 401);
    }
    // The viewer is banned, not the edge: another viewer on the same edge passes.
    let banned = through_cloudfront(GOOD, "198.51.100.70", secret);
    assert_eq!(invoke(&proxy, banned).await.0, 429);
    let other = through_cloudfront(GOOD, "198.51.100.71", secret);
    assert_eq!(invoke(&proxy, other).await.0, 200);
    // Without the secret (or with a wrong one) CloudFront-Viewer-Address is not believed: the
    // request is judged by its own sourceIp, so writing the header frees nobody and bans nobody.
    for forged in [None, Some("9f8e7d6c5b4a-origiN")] {
        let e = through_cloudfront(GOOD, "198.51.100.71", forged);
        assert_eq!(invoke(&proxy, e).await.0, 200);
    }
    for _ in 0..3 {
        let e = through_cloudfront(WRONG, "198.51.100.72", None);
        assert_eq!(invoke(&proxy, e).await.0, 401);
    }
    // Those three failures banned the direct caller's sourceIp (the edge address here), not
    // the viewer they named.
    let named = through_cloudfront(GOOD, "198.51.100.72", secret);
    assert_eq!(invoke(&proxy, named).await.0, 200);
}
