//! `authserver rules check|explain`, through the real binary.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::cli::{isolated, run_cli, text};
use authserver_testkit::users::*;

const RULES: &str = r#"
[[rule]]
name = "all-admin"
paths = ["/admin"]
policy = "allow"
roles = ["admin"]

[[rule]]
name = "admin-users"
paths = ["/admin/users"]
policy = "deny"

[[rule]]
name = "reports"
paths = ["/reports"]
policy = "allow"
roles = ["finance"]

[[rule]]
name = "office"
networks = ["10.0.0.0/8"]
policy = "bypass"
"#;

#[test]
fn check_reports_shadowed_rules_and_unknown_roles_and_fails() {
    let f = fixture();
    let rules = f.dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let out = run_cli(
        isolated()
            .args(["rules", "check"])
            .arg(&rules)
            .arg("--users")
            .arg(&f.users),
        None,
    );
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(r#"rule "admin-users" is unreachable: rule "all-admin""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"rule "reports" names role "finance", which no user has"#),
        "{stdout}"
    );
    assert!(!stdout.contains("office"), "{stdout}");

    std::fs::write(
        &rules,
        "[[rule]]\nname = \"a\"\npaths = [\"/x\"]\npolicy = \"allow\"\nroles = [\"admin\"]\n",
    )
    .unwrap();
    let out = run_cli(
        isolated()
            .args(["rules", "check"])
            .arg(&rules)
            .arg("--users")
            .arg(&f.users),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: 1 rules"));

    std::fs::write(&rules, "[[rule]]\nname = \"a\"\npolicy = \"maybe\"\n").unwrap();
    let out = run_cli(isolated().args(["rules", "check"]).arg(&rules), None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("refused"), "{}", text(&out.stderr));

    // A greedy REST route over path rules: one policy statement cannot follow them.
    std::fs::write(
        &rules,
        "api_routes = [\"ANY /{proxy+}\"]\n[[rule]]\nname = \"audit\"\npaths = [\"/audit\"]\npolicy = \"deny\"\n",
    )
    .unwrap();
    let out = run_cli(isolated().args(["rules", "check"]).arg(&rules), None);
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\"ANY /{proxy+}\"") && stdout.contains("$context.path"),
        "{stdout}"
    );

    // A host pattern with a port could never match: refused.
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"a\"\nhosts = [\"a.example.com:8443\"]\npolicy = \"deny\"\n",
    )
    .unwrap();
    let out = run_cli(isolated().args(["rules", "check"]).arg(&rules), None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no port"), "{}", text(&out.stderr));
}

#[test]
fn explain_names_the_rule_and_the_verdict_without_a_password() {
    let f = fixture();
    let rules = f.dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let explain = |user: Option<&str>, url: &str, from: Option<&str>| {
        let mut cmd = isolated();
        cmd.args(["rules", "explain", "--rules"])
            .arg(&rules)
            .arg("--users")
            .arg(&f.users);
        cmd.args(["--method", "get", "--url", url]);
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        if let Some(ip) = from {
            cmd.args(["--from", ip]);
        }
        let out = run_cli(&mut cmd, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = explain(Some(ALICE), "https://app.example.com/x/../%61dmin/users", None);
    assert!(out.contains("path=/admin/users"), "{out}");
    assert!(out.contains(r#"decided by: "all-admin""#), "{out}");
    assert!(out.contains(&format!("200 for {ALICE}")), "{out}");
    let out = explain(Some(CAROL), "/admin", None);
    assert!(out.contains(&format!("403 for {CAROL}")), "{out}");
    let out = explain(None, "/other", Some("10.1.2.3"));
    assert!(
        out.contains(r#"decided by: "office""#) && out.contains("bypass"),
        "{out}"
    );
    let out = explain(None, "/other", None);
    assert!(out.contains("unknown") && out.contains("403"), "{out}");
    let out = explain(None, "/admin%2Fusers", None);
    assert!(out.contains("invalid_request"), "{out}");
    // Refused as the server refuses them in X-Original-URL: a user part, `?` in the host.
    for url in [
        "https://me@app.example.com/admin",
        "https://app.example.com?/admin",
    ] {
        let out = explain(None, url, None);
        assert!(
            out.contains("refused before matching") && out.contains("invalid_request"),
            "{url}: {out}"
        );
    }
}
