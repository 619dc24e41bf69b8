//! The compliance check's surfaces: what to inspect (from settings) and how a report looks, for
//! `authserver compliance check` and the scheduled Lambda mode alike. The controls themselves
//! are in `authserver_aws::compliance`.

use crate::config::Settings;
use crate::telemetry::names;
use authserver_aws::compliance::{Outcome, Report, Target};
use std::fmt::Write as _;

/// The deployment named by `telemetry.service` / `telemetry.stage`, with the credential secret
/// from `store.secret_id` and the `user_hash` key secret from `log.user_hash_key_secret_id`
/// when set (otherwise their documented names), and the `[compliance]` limits.
pub fn target(settings: &Settings) -> Target {
    let t = &settings.telemetry;
    let mut target = Target::new(
        &t.service,
        &t.stage,
        settings.hash.policy.clone(),
        (names::NAMESPACE, names::MetricId::ComplianceViolations.name()),
    );
    if !settings.store.secret_id.is_empty() {
        target.credential_secret = settings.store.secret_id.clone();
    }
    if !settings.log.user_hash_key_secret_id.is_empty() {
        target.user_hash_key_secret = settings.log.user_hash_key_secret_id.clone();
    }
    let c = &settings.compliance;
    target.max_rotation_days = c.max_rotation_days;
    target.max_password_age_days = c.max_password_age_days;
    target.min_log_retention_days = c.min_log_retention_days;
    target
}

/// The human table: one block per control (result, id, CIS reference, evidence lines), then
/// a summary line.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "compliance of {}-{} at {}\n",
        report.service, report.stage, report.checked_at
    );
    let _ = writeln!(out, "{:<6} {:<24} {:<34} EVIDENCE", "RESULT", "CONTROL", "CIS");
    for c in &report.controls {
        let result = match c.result {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
        };
        let cis = c.cis.map_or("-".to_owned(), |s| shorten(s, 34));
        for (i, line) in c.evidence.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(out, "{result:<6} {:<24} {cis:<34} {line}", c.id);
            } else {
                let _ = writeln!(out, "{:<6} {:<24} {:<34} {line}", "", "", "");
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} controls, {} passed, {} failed",
        report.controls.len(),
        report.controls.len() - report.violations,
        report.violations
    );
    out
}

fn shorten(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let cut: String = s.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use authserver_aws::compliance::Control;

    #[test]
    fn the_table_shows_every_evidence_line_and_the_counts() {
        let report = Report {
            service: "svc".into(),
            stage: "dev".into(),
            checked_at: "2026-01-01T00:00:00Z".into(),
            controls: vec![
                Control {
                    id: "kms-key-rotation",
                    title: "t",
                    result: Outcome::Pass,
                    evidence: vec!["key a: on".into(), "key b: on".into()],
                    cis: Some("3.6 (v3.0.0; 3.8 in v1.4.0) and a long tail that gets cut"),
                },
                Control {
                    id: "password-age",
                    title: "t",
                    result: Outcome::Fail,
                    evidence: vec!["user x: no passwordChangedAt".into()],
                    cis: None,
                },
            ],
            violations: 1,
        };
        let t = table(&report);
        assert!(t.contains("PASS   kms-key-rotation"), "{t}");
        assert!(
            t.contains("key b: on") && t.contains("FAIL   password-age"),
            "{t}"
        );
        assert!(t.contains('…'));
        assert!(t.ends_with("2 controls, 1 passed, 1 failed\n"), "{t}");
        let mut s = Settings::default();
        s.store.secret_id = "arn:x".into();
        let target = target(&s);
        assert_eq!(target.credential_secret, "arn:x");
        assert_eq!(target.user_hash_key_secret, "authserver/dev/user-hash-key");
        assert_eq!(target.prefix(), "authserver-dev-");
        assert_eq!(target.violations_metric.1, "ComplianceViolations");
    }
}
