//! Attacks on the access rules of issue 15 (docs/access-rules.md). Each test fails on the code
//! it was written against and states what the rules promise.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::access::{PROXY, forward, iam_allows, leak, traefik, with_rules};
use authserver_testkit::lambda::{STAGE, authorize, fixture, state_with_rules as lambda_state};
use authserver_testkit::users::*;
use axum::http::StatusCode;
use serde_json::Value;

/// Finding: `;` path parameters. Tomcat, Jetty, Spring (and anything on the Servlet API) strip
/// `;params` from each segment before routing, so `/admin;x` is `/admin` and `/public/..;/admin`
/// is `/admin` upstream. The normaliser keeps `admin;x` and `..;` as ordinary segments: a
/// request reaches the admin area of a Servlet upstream as a non-admin (falls to `default`),
/// or with no credentials at all (matches the `/public` bypass). The docs promise to refuse
/// "where two readings could differ".
#[tokio::test]
async fn semicolon_path_parameters_reach_a_protected_path_on_a_servlet_upstream() {
    const RULES: &str = r#"
default = "authenticated"

[[rule]]
name = "admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]

[[rule]]
name = "public"
paths = ["/public"]
policy = "bypass"
"#;
    let f = authserver_testkit::users::fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    let carol = leak(basic(CAROL, CAROL_PW));

    // The control: carol (no roles) is refused /admin.
    let mut h = traefik("GET", "/admin/users");
    h.push(("authorization", carol));
    assert_eq!(
        forward(&state, PROXY, "/auth/forward", &h).await.status,
        StatusCode::FORBIDDEN
    );

    // Tomcat serves /admin/users for each of these.
    let mut through = Vec::new();
    for spelling in ["/admin;jsessionid=x/users", "/admin;/users"] {
        let mut h = traefik("GET", spelling);
        h.push(("authorization", carol));
        let a = forward(&state, PROXY, "/auth/forward", &h).await;
        if a.status == StatusCode::OK {
            through.push(format!("{spelling} as carol (no roles): 200"));
        }
    }
    // No credentials at all: the bypass on /public lets `..;` through.
    for spelling in ["/public/..;/admin/users", "/public/..;x/admin/users"] {
        let a = forward(&state, PROXY, "/auth/forward", &traefik("GET", spelling)).await;
        if a.status == StatusCode::OK {
            through.push(format!("{spelling} without credentials: 200"));
        }
    }
    assert!(
        through.is_empty(),
        "a Servlet upstream serves /admin/users for: {through:#?}"
    );
}

/// Finding: a client behind nginx configured the "older" way (`X-Original-URI $request_uri`,
/// `X-Original-Method`, which `http/original.rs` supports) names the host the rules see. It
/// adds `X-Forwarded-Uri` equal to its own request target (it knows it) and
/// `X-Forwarded-Host: public.example.com`: nginx passes both on, the families "agree" on the
/// path, and the host, which nginx never told, is the client's. Without the forged header the
/// host is unknown and a host rule denies (403).
#[tokio::test]
async fn a_client_behind_nginx_names_the_host_through_the_family_nginx_does_not_set() {
    const RULES: &str = r#"
[[rule]]
name = "public-site"
hosts = ["public.example.com"]
policy = "bypass"

[[rule]]
name = "app"
hosts = ["admin.example.com"]
policy = "allow"
roles = ["admin"]
"#;
    let f = authserver_testkit::users::fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    // What nginx sends for `GET /users` on admin.example.com with
    // `proxy_set_header X-Original-URI $request_uri; proxy_set_header X-Original-Method $request_method;`
    let nginx = [("x-original-uri", "/users"), ("x-original-method", "GET")];
    let honest = forward(&state, PROXY, "/auth/forward", &nginx).await;
    assert_eq!(honest.status, StatusCode::FORBIDDEN, "host unknown: denied");

    // The same request with two headers the client added (nginx passes them through).
    let mut forged = nginx.to_vec();
    forged.push(("x-forwarded-uri", "/users"));
    forged.push(("x-forwarded-host", "public.example.com"));
    let a = forward(&state, PROXY, "/auth/forward", &forged).await;
    assert_ne!(
        a.status,
        StatusCode::OK,
        "a client steered the host rule with X-Forwarded-Host and got a bypass without credentials"
    );
}

/// Finding: with `api_routes`, a route is decided by its template (`/orders/{id}`) and never by
/// the path that asked, so any rule on a path below a parameter (`/orders/export`, a glob, a
/// regex) is silently ignored: the template falls past it and the policy Allows
/// `GET/orders/*`, which IAM matches for `/orders/export` too. The asking request itself
/// (`GET /orders/export`, denied by the first rule) is let through, and so is every other
/// route for the TTL. Without `api_routes` the same request is denied.
#[tokio::test]
async fn a_rule_below_a_path_parameter_is_ignored_by_the_rest_policy() {
    const RULES: &str = r#"
api_routes = ["GET /orders", "GET /orders/{id}"]

[[rule]]
name = "export-closed"
paths = ["/orders/export"]
policy = "deny"

[[rule]]
name = "orders-read"
paths = ["/orders"]
methods = ["GET"]
policy = "allow"
"#;
    let state = lambda_state(RULES);
    let mut event = fixture("authorizer_rest_token.json");
    event["methodArn"] = Value::String(format!("{STAGE}GET/orders/export"));
    let answer = authorize(&state, event).await.unwrap();
    assert!(
        !iam_allows(&answer, &format!("{STAGE}GET/orders/export")),
        "the rules deny GET /orders/export, the policy answered for it allows it: {answer:#}"
    );

    // Control: without api_routes the asking route is decided by its own path.
    let plain = lambda_state(&RULES.replace(r#"api_routes = ["GET /orders", "GET /orders/{id}"]"#, ""));
    let mut event = fixture("authorizer_rest_token.json");
    event["methodArn"] = Value::String(format!("{STAGE}GET/orders/export"));
    let answer = authorize(&plain, event).await.unwrap();
    assert!(!iam_allows(&answer, &format!("{STAGE}GET/orders/export")));
}

/// Finding: the rules file reuses the users file's reload (metadata poll, digest, no settle
/// time), but JSON is self-delimiting and TOML is not: a prefix of a users file never parses,
/// a prefix of a rules file often does. A writer that rewrites `rules.toml` in place (`>`
/// redirection, `open(..., "w")` with buffered writes, an editor writing a hard-linked file)
/// exposes a prefix to the poller; cut after `policy = "allow"` and before `roles = [...]`,
/// it is a valid file whose admin rule admits every authenticated user, and it goes into
/// service as a "good" edit until the next poll.
#[tokio::test]
async fn a_rules_file_caught_mid_write_goes_into_service_open() {
    const FULL: &str = "default = \"deny\"\n\n[[rule]]\nname = \"admin\"\npaths = [\"/admin\"]\npolicy = \"allow\"\nroles = [\"admin\"]\n\n[[rule]]\nname = \"app\"\npolicy = \"allow\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, FULL).unwrap();
    let rules = std::sync::Arc::new(authserver::access::AccessRules::open(&path, 1 << 20).unwrap());

    let f = authserver_testkit::users::fixture();
    let state = std::sync::Arc::into_inner(built(&f.users).state).unwrap();
    let state = std::sync::Arc::new(authserver::http::AppState {
        rules: rules.clone(),
        proxies: "10.0.0.0/8".parse().unwrap(),
        ..state
    });
    let carol = leak(basic(CAROL, CAROL_PW));
    let mut h = traefik("GET", "/admin/users");
    h.push(("authorization", carol));
    assert_eq!(
        forward(&state, PROXY, "/auth/forward", &h).await.status,
        StatusCode::FORBIDDEN
    );

    // The writer has written up to the end of the `policy` line (same inode, O_TRUNC then write).
    let cut = FULL.find("roles = ").unwrap();
    std::fs::write(&path, &FULL[..cut]).unwrap();
    rules.check();
    let a = forward(&state, PROXY, "/auth/forward", &h).await;
    assert_ne!(
        a.status,
        StatusCode::OK,
        "a half-written rules file went into service: carol (no roles) reaches /admin ({:?})",
        rules.status()
    );
}

/// Finding: host patterns accept `:` and `[ ]` (a port, an IPv6 literal) but requests are
/// compared by `host_key`, which drops the port and the brackets, so such a pattern never
/// matches anything and a `deny` written with it is silently inert (`rules check` says
/// nothing): the request falls through to the rules after it.
#[tokio::test]
async fn a_deny_on_a_host_with_a_port_or_an_ipv6_literal_never_matches() {
    const RULES: &str = r#"
default = "authenticated"

[[rule]]
name = "no-admin-port"
hosts = ["app.example.com:8443", "[2001:db8::1]"]
policy = "deny"
"#;
    // Fixed by refusing such patterns at load (and so in `rules check`), one of the two fixes
    // the finding allowed: a rules file with an inert deny must not go into service.
    for pattern in ["app.example.com:8443", "[2001:db8::1]"] {
        let one = RULES.replace(
            r#"hosts = ["app.example.com:8443", "[2001:db8::1]"]"#,
            &format!("hosts = [{pattern:?}]"),
        );
        let err = authserver::access::AccessRules::fixed(&one)
            .err()
            .unwrap_or_else(|| panic!("a deny on {pattern} that never matches went into service"));
        let msg = err.to_string();
        assert!(msg.contains(pattern) && msg.contains("no port"), "{msg}");
    }
}

/// Finding (the documented nginx configuration): nginx accepts `?` and `#` in `Host`
/// (`ngx_http_validate_host` refuses only `/`, `\`, NUL, controls and `..`), routes such a
/// request to its default server, and serves the real path; `X-Original-URL
/// $scheme://$http_host$request_uri` then reads `http://public.example.com?/admin/users`
/// (checked with nginx 1.22.1: `GET /admin/users` with `Host: public.example.com?` gives
/// `$uri=/admin/users`, `$http_host=public.example.com?`). `split_url` cuts the authority at
/// the `?`, so the rules judge host `public.example.com`, path `/`: any path rule is
/// sidestepped (a non-admin reaches /admin), and a host bypass or a bypass on `/` lets the
/// request through with no credentials at all.
#[tokio::test]
async fn a_question_mark_in_the_host_header_makes_the_rules_judge_the_root_path() {
    const RULES: &str = r#"
default = "authenticated"

[[rule]]
name = "public-site"
hosts = ["public.example.com"]
policy = "bypass"

[[rule]]
name = "admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]
"#;
    let f = authserver_testkit::users::fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    let carol = leak(basic(CAROL, CAROL_PW));
    let nginx = |url: &'static str, auth: Option<&'static str>| {
        let mut h = vec![("x-original-url", url), ("x-original-method", "GET")];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        h
    };
    // Control: the honest request for /admin/users on app.example.com, as carol: 403.
    let honest = nginx("http://app.example.com/admin/users", Some(carol));
    assert_eq!(
        forward(&state, PROXY, "/auth/forward", &honest).await.status,
        StatusCode::FORBIDDEN
    );

    let mut through = Vec::new();
    // `Host: app.example.com?`: nginx serves /admin/users; the rules see `/`.
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &nginx("http://app.example.com?/admin/users", Some(carol)),
    )
    .await;
    if a.status == StatusCode::OK {
        through.push("Host: app.example.com? as carol (no roles)");
    }
    // `Host: public.example.com?`: no credentials at all.
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &nginx("http://public.example.com?/admin/users", None),
    )
    .await;
    if a.status == StatusCode::OK {
        through.push("Host: public.example.com? without credentials");
    }
    // `#` then `?`: the same.
    let a = forward(
        &state,
        PROXY,
        "/auth/forward",
        &nginx("http://app.example.com#x?/admin/users", Some(carol)),
    )
    .await;
    if a.status == StatusCode::OK {
        through.push("Host: app.example.com#x? as carol (no roles)");
    }
    assert!(through.is_empty(), "nginx serves /admin/users for: {through:#?}");
}

/// The same through real nginx with the block of docs/integrations.md: carol (no roles) gets
/// the admin page by adding `?` to the Host header.
#[test]
fn nginx_serves_the_admin_page_to_a_non_admin_with_a_question_mark_in_host() {
    use authserver_testkit::process::Server;
    use authserver_testkit::{nginx, or_skip};
    use std::io::{Read, Write};
    const RULES: &str = r#"
[[rule]]
name = "admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]

[[rule]]
name = "signed-in"
policy = "allow"
"#;
    let bin = or_skip!(nginx::binary(
        "nginx_serves_the_admin_page_to_a_non_admin_with_a_question_mark_in_host"
    ));
    let f = authserver_testkit::users::fixture();
    let rules = f.dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_SERVER_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTHSERVER_RULES_FILE", rules.to_str().unwrap()),
        ],
    );
    let (ports, dir) = nginx::prepare();
    let block = nginx::render("nginx", &server.addr, &ports, dir.path());
    let proxy = nginx::start(&bin, &block, &ports, dir);
    let carol = basic(CAROL, CAROL_PW);
    let raw = |host: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "GET /admin/panel HTTP/1.1\r\nHost: {host}\r\nAuthorization: {carol}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let honest = raw("app.example.com");
    assert!(honest.starts_with("HTTP/1.1 403"), "control: {honest}");
    let forged = raw("app.example.com?");
    assert!(
        !forged.starts_with("HTTP/1.1 200"),
        "carol (no roles) reached /admin/panel through nginx with `Host: app.example.com?`:\n{forged}"
    );
}

/// The same with the most common REST shape, one greedy route: `ANY /{proxy+}` is judged as
/// the path `/{proxy+}`, which no path rule matches, so the default decides every route and a
/// user without the `auditor` role is allowed `*/*`, `/audit` included.
#[tokio::test]
async fn a_greedy_proxy_route_makes_every_path_rule_inert_in_the_rest_policy() {
    const RULES: &str = r#"
default = "authenticated"
api_routes = ["ANY /{proxy+}"]

[[rule]]
name = "audit"
paths = ["/audit"]
policy = "allow"
roles = ["auditor"]
"#;
    let state = lambda_state(RULES);
    let mut event = fixture("authorizer_rest_token.json");
    event["methodArn"] = Value::String(format!("{STAGE}GET/audit/log"));
    let answer = authorize(&state, event).await.unwrap();
    assert!(
        !iam_allows(&answer, &format!("{STAGE}GET/audit/log")),
        "fixture-user (roles admin, reader) is allowed GET /audit/log, which the rules reserve \
         for auditors: {answer:#}"
    );
}

/// The method variant: behind nginx with `X-Original-URI` (or `X-Original-URL`) and no
/// `X-Original-Method`, the method is unknown and a method rule denies, but a client that adds
/// `X-Forwarded-Uri` (its own target) and `X-Forwarded-Method: GET` to a `DELETE` gets the
/// `GET`-only bypass.
#[tokio::test]
async fn a_client_behind_nginx_names_the_method_through_the_family_nginx_does_not_set() {
    const RULES: &str = r#"
[[rule]]
name = "read-only-public"
paths = ["/public"]
methods = ["GET", "HEAD"]
policy = "bypass"

[[rule]]
name = "writers"
policy = "allow"
roles = ["writer"]
"#;
    let f = authserver_testkit::users::fixture();
    let state = with_rules(built(&f.users).state, RULES, "10.0.0.0/8");
    // `DELETE /public/doc` through nginx with `proxy_set_header X-Original-URL $scheme://$http_host$request_uri;` only.
    let nginx = [("x-original-url", "http://app.example.com/public/doc")];
    let honest = forward(&state, PROXY, "/auth/forward", &nginx).await;
    assert_eq!(honest.status, StatusCode::FORBIDDEN, "method unknown: denied");
    let mut forged = nginx.to_vec();
    forged.push(("x-forwarded-uri", "/public/doc"));
    forged.push(("x-forwarded-method", "GET"));
    let a = forward(&state, PROXY, "/auth/forward", &forged).await;
    assert_ne!(
        a.status,
        StatusCode::OK,
        "a DELETE was let through without credentials as a GET named by the client"
    );
}
