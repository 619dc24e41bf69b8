//! The controls over the stored users document (the credential secret's AWSCURRENT value):
//! `stored-hash-policy`, `password-age`.

use super::control;
use crate::compliance::{Control, Target};
use authserver_core::{Status, StoreDocument, StoredHash};

/// `stored-hash-policy`.
pub(super) fn hash_policy(
    target: &Target,
    doc: &Result<StoreDocument, String>,
    name: &(dyn Fn(&str) -> String + Sync),
) -> Control {
    let p = &target.policy;
    let findings = match doc {
        Err(e) => vec![(false, format!("{}: {e}", target.credential_secret))],
        Ok(doc) => {
            let mut bad: Vec<(bool, String)> = doc
                .iter()
                .filter_map(|(user, rec)| {
                    StoredHash::parse(&rec.password_hash, p)
                        .err()
                        .map(|e| (false, format!("user {}: {e}", name(user))))
                })
                .collect();
            if bad.is_empty() {
                bad.push((
                    true,
                    format!(
                        "{} users, every hash Argon2id at or above OWASP's cost table scaled to m {} KiB at t {}, m <= {} KiB, t <= {}, p <= {}",
                        doc.len(),
                        p.min_m_kib,
                        p.min_t,
                        p.max_m_kib,
                        p.max_t,
                        p.max_p
                    ),
                ));
            }
            bad
        }
    };
    control(
        "stored-hash-policy",
        "Every stored password hash meets the hash policy",
        None,
        findings,
    )
}

/// `password-age`.
pub(super) fn password_age(
    target: &Target,
    doc: &Result<StoreDocument, String>,
    name: &(dyn Fn(&str) -> String + Sync),
) -> Control {
    let max = u64::from(target.max_password_age_days);
    let findings = match doc {
        Err(e) => vec![(false, format!("{}: {e}", target.credential_secret))],
        Ok(doc) => {
            let mut oldest = 0;
            let mut active = 0;
            let mut bad = Vec::new();
            for (user, rec) in doc.iter().filter(|(_, r)| r.status == Status::Active) {
                active += 1;
                match rec.password_changed_at {
                    None => bad.push((false, format!("user {}: no passwordChangedAt", name(user)))),
                    Some(at) => {
                        let age =
                            u64::try_from((time::OffsetDateTime::now_utc() - at).whole_days()).unwrap_or(0);
                        oldest = oldest.max(age);
                        if age > max {
                            bad.push((
                                false,
                                format!(
                                    "user {}: password changed {age} days ago (at most {max})",
                                    name(user)
                                ),
                            ));
                        }
                    }
                }
            }
            if bad.is_empty() {
                bad.push((
                    true,
                    format!(
                        "{active} active users, passwords changed within {max} days (oldest {oldest} days)"
                    ),
                ));
            }
            bad
        }
    };
    control(
        "password-age",
        "Every active user's password changed within the maximum age",
        Some("1.14 by analogy; 1.11 in v1.2.0 (passwords expire within 90 days)"),
        findings,
    )
}
