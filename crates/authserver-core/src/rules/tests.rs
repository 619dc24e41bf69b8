use super::*;
use proptest::prelude::*;

const DOC: &str = r#"
[[rule]]
name = "health"
paths = ["/health"]
methods = ["GET"]
policy = "bypass"

[[rule]]
name = "internal"
networks = ["10.0.0.0/8"]
policy = "bypass"

[[rule]]
name = "admin"
hosts = ["app.example.com"]
paths = ["/admin"]
policy = "allow"
roles = ["admins"]

[[rule]]
name = "admin-elsewhere"
paths = ["/admin"]
policy = "deny"

[[rule]]
name = "reports"
path_globs = ["/reports/**"]
policy = "allow"
roles = ["finance", "audit"]
require = "all"

[[rule]]
name = "api"
hosts = ["*.api.example.com"]
policy = "allow"
scopes = ["read"]
"#;

fn set() -> RuleSet {
    RuleSet::from_toml(DOC).expect("valid")
}

fn route<'a>(s: &'a RuleSet, method: &str, host: &str, path: &str, client: &str) -> &'a str {
    let path = normalise(path).expect("normal");
    let host = host_key(host);
    let req = Request {
        method: Some(method),
        host: Some(&host),
        path: Some(&path),
        client: client.parse().ok(),
    };
    s.route(&req).name
}

fn who(user: &str, roles: &[&str], scopes: &[&str]) -> Identity {
    Identity {
        user: user.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        scopes: scopes.iter().map(|r| (*r).to_owned()).collect(),
    }
}

#[test]
fn first_match_wins_then_the_default() {
    let s = set();
    let r = |m, h, p, c| route(&s, m, h, p, c);
    assert_eq!(r("GET", "app.example.com", "/health", "203.0.113.1"), "health");
    assert_eq!(r("POST", "app.example.com", "/health", "203.0.113.1"), "default");
    assert_eq!(r("POST", "app.example.com", "/admin/x", "10.1.2.3"), "internal");
    assert_eq!(
        r("GET", "App.Example.com:443", "/admin/x", "203.0.113.1"),
        "admin"
    );
    assert_eq!(
        r("GET", "other.example.com", "/admin", "203.0.113.1"),
        "admin-elsewhere"
    );
    assert_eq!(
        r("GET", "other.example.com", "/administrator", "203.0.113.1"),
        "default"
    );
    assert_eq!(r("GET", "x.api.example.com", "/v1", "203.0.113.1"), "api");
    assert_eq!(r("GET", "api.example.com", "/v1", "203.0.113.1"), "default");
    let root = normalise("/").expect("ok");
    let req = Request {
        method: Some("GET"),
        host: Some("h"),
        path: Some(&root),
        client: "203.0.113.1".parse().ok(),
    };
    assert_eq!(
        (s.route(&req).name, s.route(&req).policy),
        ("default", &Policy::Deny)
    );
}

#[test]
fn a_rule_that_needs_an_unknown_part_denies() {
    let s = set();
    let admin = normalise("/admin").expect("ok");
    let health = normalise("/health").expect("ok");
    let req = |path, host, client: Option<&str>| Request {
        method: Some("GET"),
        host,
        path,
        client: client.and_then(|c| c.parse().ok()),
    };
    // Client unknown: "internal" cannot tell, and must not fall through to a later allow.
    let r = s.route(&req(Some(&admin), Some("app.example.com"), None));
    assert_eq!(
        (r.name, r.policy, r.undetermined),
        ("internal", &Policy::Deny, true)
    );
    // A criterion that fails settles it even when another part is unknown.
    let r = s.route(&req(Some(&health), None, None));
    assert_eq!(
        (r.name, r.policy, r.undetermined),
        ("health", &Policy::Bypass, false)
    );
    let r = s.route(&req(None, None, Some("203.0.113.1")));
    assert_eq!((r.name, r.undetermined), ("health", true), "path unknown");
}

#[test]
fn subjects_any_and_all() {
    let s = set();
    let subject = |name: &str| match s.rules().iter().find(|r| r.name() == name).map(Rule::policy) {
        Some(Policy::Allow(subject)) => subject.clone(),
        other => panic!("{other:?}"),
    };
    let admin = subject("admin");
    assert!(admin.permits(&who("a", &["admins"], &[])));
    assert!(
        !admin.permits(&who("admins", &["users"], &[])),
        "a username is not a role"
    );
    let reports = subject("reports");
    assert!(reports.permits(&who("f", &["finance", "audit", "x"], &[])));
    assert!(!reports.permits(&who("f", &["finance"], &[])));
    let api = subject("api");
    assert!(api.permits(&who("c", &[], &["read"])) && !api.permits(&who("c", &["read"], &[])));
    assert!(Subject::anyone().permits(&who("x", &[], &[])));
}

#[test]
fn broken_documents_are_refused_with_the_reason() {
    let one = |body: &str| RuleSet::from_toml(&format!("[[rule]]\n{body}")).map(|_| ());
    assert!(matches!(
        one("name = \"Bad Name\"\npolicy = \"deny\""),
        Err(RuleError::Name(_))
    ));
    assert!(matches!(
        one("name = \"a\"\npolicy = \"deny\"\nroles = [\"x\"]"),
        Err(RuleError::Subject(..))
    ));
    assert!(matches!(one("name = \"a\""), Err(RuleError::Subject(..))));
    assert!(matches!(
        one("name = \"a\"\npolicy = \"deny\"\nnetworks = [\"10.0.0.0/33\"]"),
        Err(RuleError::Network(_))
    ));
    assert!(matches!(
        one("name = \"a\"\npolicy = \"deny\"\npaths = [\"admin\"]"),
        Err(RuleError::Path(_))
    ));
    assert!(matches!(
        one("name = \"a\"\npolicy = \"deny\"\nmethods = [\"GE T\"]"),
        Err(RuleError::Method(_))
    ));
    assert!(matches!(
        one("name = \"a\"\npolicy = \"deny\"\npathz = []"),
        Err(RuleError::Syntax(_))
    ));
    assert!(matches!(
        one("name = \"default\"\npolicy = \"deny\""),
        Err(RuleError::DuplicateName(_))
    ));
    let many: String = (0..=MAX_RULES)
        .map(|i| format!("[[rule]]\nname = \"r{i}\"\npolicy = \"deny\"\n"))
        .collect();
    assert_eq!(RuleSet::from_toml(&many).map(|_| ()), Err(RuleError::TooMany));
}

#[test]
fn lint_finds_shadowed_rules_and_unknown_roles() {
    let s = RuleSet::from_toml(
        r#"
[[rule]]
name = "all-admin"
paths = ["/admin"]
policy = "deny"
[[rule]]
name = "admin-users"
paths = ["/admin/users"]
methods = ["GET"]
policy = "allow"
roles = ["admins"]
[[rule]]
name = "wild"
hosts = ["*.example.com"]
policy = "bypass"
[[rule]]
name = "one-host"
hosts = ["a.example.com"]
networks = ["10.0.0.0/8"]
policy = "bypass"
[[rule]]
name = "glob"
path_globs = ["/x/*"]
policy = "allow"
roles = ["ghosts"]
"#,
    )
    .expect("valid");
    let found = s.lint(Some(&["admins".to_owned()]));
    assert_eq!(
        found,
        vec![
            Finding::Shadowed {
                rule: "admin-users".into(),
                by: "all-admin".into()
            },
            Finding::Shadowed {
                rule: "one-host".into(),
                by: "wild".into()
            },
            Finding::UnknownRole {
                rule: "glob".into(),
                role: "ghosts".into()
            },
        ]
    );
    assert!(s.lint(None).iter().all(|f| matches!(f, Finding::Shadowed { .. })));
}

/// How an upstream could read a raw path: stripping Servlet path parameters (`;...` up to the
/// next `/`, as Tomcat/Jetty do before anything else) or not, percent-decoding first or not,
/// merging `//` first or not, then RFC 3986 dot-segment removal. `None`: it would not serve it.
fn upstream_reading(raw: &str, servlet: bool, decode_first: bool, merge_first: bool) -> Option<String> {
    let mut text = raw.to_owned();
    if servlet {
        text = text
            .split('/')
            .map(|seg| seg.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/");
    }
    if decode_first {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match (
                bytes[i],
                bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
            ) {
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        text = String::from_utf8(out).ok()?;
    }
    if merge_first {
        while text.contains("//") {
            text = text.replace("//", "/");
        }
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in text.trim_start_matches('/').split('/') {
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")).to_ascii_lowercase())
}

/// Spellings of `/admin/<tail>`-like paths an attacker might try.
fn spelling() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("admin".to_owned()),
        Just("public".to_owned()),
        Just("x".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%61dmin".to_owned()),
        Just("%61%64%4D%49%4e".to_owned()),
        Just("ADMIN".to_owned()),
        Just("adm%69n".to_owned()),
        Just("%2561dmin".to_owned()),
        Just("admin%2F..".to_owned()),
        Just("..%2fadmin".to_owned()),
        Just("a%5cb".to_owned()),
        Just("admin;x".to_owned()),
        Just("..;".to_owned()),
        Just("..;x".to_owned()),
        Just(";".to_owned()),
    ];
    proptest::collection::vec(piece, 1..7).prop_map(|p| format!("/{}", p.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whatever an upstream makes of a spelling, if it lands under `/admin` (in any case: some
    /// upstreams are case-insensitive), the rule set routes it to the deny rule or refuses it.
    #[test]
    fn no_spelling_of_a_denied_path_slips_past(raw in spelling()) {
        let s = RuleSet::from_toml(
            "[[rule]]\nname = \"admin\"\npath_regexes = [\"(?i)/admin(/.*)?\"]\npolicy = \"deny\"\n\
             [[rule]]\nname = \"open\"\npolicy = \"bypass\"\n",
        ).expect("valid");
        let reaches_admin = [false, true]
            .into_iter()
            .flat_map(|s| [(s, true, true), (s, true, false), (s, false, true), (s, false, false)])
            .filter_map(|(s, d, m)| upstream_reading(&raw, s, d, m))
            .any(|p| p == "/admin" || p.starts_with("/admin/"));
        if let (true, Ok(path)) = (reaches_admin, normalise(&raw)) {
            let req = Request { method: Some("GET"), path: Some(&path), ..Request::default() };
            prop_assert_eq!(s.route(&req).name, "admin", "{} normalised to {}", raw, path);
        }
    }

    /// The single-pass route (one RegexSet for every rule's paths) agrees with testing each
    /// rule in turn.
    #[test]
    fn the_set_route_agrees_with_rule_by_rule(raw in spelling(), method in prop_oneof![Just("GET"), Just("POST")]) {
        let s = set();
        if let Ok(path) = normalise(&raw) {
            let host = host_key("app.example.com");
            let req = Request { method: Some(method), host: Some(&host), path: Some(&path), client: None };
            let naive = s.rules().iter().position(|r| r.matches(&req) != Some(false));
            prop_assert_eq!(s.route(&req).index, naive);
        }
    }

    /// Normalising twice changes nothing: rules see one canonical form.
    #[test]
    fn normalisation_is_idempotent(raw in spelling()) {
        if let Ok(once) = normalise(&raw) {
            prop_assert_eq!(normalise(once.as_str()), Ok(once.clone()));
        }
    }
}
