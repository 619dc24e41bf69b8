//! Access rules on Envoy's ext_authz gRPC `Check`: the original request is the CheckRequest's
//! `attributes.request.http` (method, host, path), believed from a trusted peer only.
#![cfg(feature = "ext-authz-grpc")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::access::with_rules;
use authserver_testkit::grpc::{Answer, Code, Listener, answer, check_request};
use authserver_testkit::users::*;
use envoy_types::ext_authz::v3::pb::CheckRequest;

const RULES: &str = r#"
[[rule]]
name = "health"
paths = ["/healthz"]
policy = "bypass"

[[rule]]
name = "admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]
"#;

fn request(method: &str, host: &str, path: &str, auth: Option<&str>) -> CheckRequest {
    let mut headers = vec![("remote-user", "mallory")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let mut req = check_request(&headers, Some("198.51.100.9"));
    let http = req
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    (http.method, http.host, http.path) = (method.into(), host.into(), path.into());
    req
}

async fn check(listener: &Listener, req: CheckRequest) -> Answer {
    let mut client = listener.client().await;
    answer(client.check(req).await.unwrap().into_inner())
}

#[tokio::test]
async fn the_check_request_is_routed_by_its_method_host_and_path() {
    let f = fixture();
    let listener = Listener::start(with_rules(built(&f.users).state, RULES, "127.0.0.0/8")).await;
    let (alice, carol) = (basic(ALICE, ALICE_PW), basic(CAROL, CAROL_PW));

    let a = check(&listener, request("GET", "app.example", "/healthz", None)).await;
    assert_eq!((a.code, a.http_status), (Code::Ok, 200), "bypass: {a:?}");
    assert_eq!(
        a.header("remote-user"),
        Some(""),
        "the client's identity header is overwritten"
    );

    let a = check(&listener, request("GET", "app.example", "/admin/x", Some(&alice))).await;
    assert_eq!(
        (a.code, a.header("remote-user")),
        (Code::Ok, Some(ALICE)),
        "{a:?}"
    );
    let a = check(
        &listener,
        request("GET", "app.example", "/%61dmin/x", Some(&carol)),
    )
    .await;
    assert_eq!((a.code, a.http_status), (Code::PermissionDenied, 403), "{a:?}");
    assert!(a.body.contains("Forbidden"), "{}", a.body);
    let a = check(&listener, request("GET", "app.example", "/admin", None)).await;
    assert_eq!(a.http_status, 401, "{a:?}");
    let a = check(&listener, request("GET", "app.example", "/other", Some(&alice))).await;
    assert_eq!(a.http_status, 403, "the default denies: {a:?}");
    listener.stop().await;
}

#[tokio::test]
async fn an_untrusted_peer_says_nothing_of_the_request() {
    let f = fixture();
    let listener = Listener::start(with_rules(built(&f.users).state, RULES, "192.0.2.0/24")).await;
    let a = check(&listener, request("GET", "app.example", "/healthz", None)).await;
    assert_eq!(
        a.http_status, 403,
        "the path is unknown, so the first rule denies: {a:?}"
    );
    listener.stop().await;
}
