//! Which usernames and roles the store accepts, and how to show a refused one safely.
//!
//! Usernames travel in `Remote-User`, logs' user listings and `users list`; roles travel in
//! `Remote-Groups` (comma-separated) and tokens' scopes. So both refuse what would split a
//! header or a list (CR, LF, every other control character, `,`), and what makes two names
//! look alike on a screen while differing in bytes: invisible format characters (Unicode
//! general category Cf, e.g. U+200B ZERO WIDTH SPACE, U+202E RIGHT-TO-LEFT OVERRIDE, U+FEFF)
//! and the line / paragraph separators U+2028 / U+2029. Usernames also refuse `:` (it cannot
//! round-trip through Basic: the split is at the first colon).

use crate::credentials::MAX_USERNAME_BYTES;
use std::fmt::Write as _;

/// Longest role, in bytes.
pub const MAX_ROLE_BYTES: usize = 256;

/// What is wrong with a username or role. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// Empty.
    #[error("is empty")]
    Empty,
    /// Over the byte limit.
    #[error("is too long")]
    TooLong,
    /// Contains `:` (usernames only).
    #[error("contains ':'")]
    Colon,
    /// Contains `,` (would split a `Remote-Groups` list).
    #[error("contains ','")]
    Comma,
    /// Contains a control character (CR, LF, ESC, ...).
    #[error("contains a control character")]
    Control,
    /// Contains an invisible format character (Unicode Cf such as U+200B, U+202E, U+FEFF) or a
    /// line / paragraph separator.
    #[error("contains an invisible or format character")]
    Invisible,
}

/// Checks a username (the store loader and `users add` call this).
pub fn check_username(name: &str) -> Result<(), NameProblem> {
    check(name, MAX_USERNAME_BYTES)?;
    if name.contains(':') {
        return Err(NameProblem::Colon);
    }
    Ok(())
}

/// Checks a role (the store loader and the CLI's role options call this).
pub fn check_role(role: &str) -> Result<(), NameProblem> {
    check(role, MAX_ROLE_BYTES)
}

fn check(value: &str, max: usize) -> Result<(), NameProblem> {
    if value.is_empty() {
        return Err(NameProblem::Empty);
    }
    if value.len() > max {
        return Err(NameProblem::TooLong);
    }
    if value.is_ascii() {
        // The common case, a byte at a time (a million names load at start-up): no ASCII
        // character is invisible (the table starts at U+00AD).
        return match value.bytes().find(|b| b.is_ascii_control() || *b == b',') {
            Some(b',') => Err(NameProblem::Comma),
            Some(_) => Err(NameProblem::Control),
            None => Ok(()),
        };
    }
    for c in value.chars() {
        if c.is_control() {
            return Err(NameProblem::Control);
        }
        if c == ',' {
            return Err(NameProblem::Comma);
        }
        if is_invisible(c) {
            return Err(NameProblem::Invisible);
        }
    }
    Ok(())
}

/// Which name of a store entry is refused, and why. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryNameProblem {
    /// The username is unusable (over Basic auth, in `Remote-User`, or on a screen).
    #[error("username {0}")]
    Username(NameProblem),
    /// A role is unusable (in `Remote-Groups`, or on a screen). Counted from 1.
    #[error("role #{index} {problem}")]
    Role {
        /// Position in `roles`, from 1 (the value itself is not echoed: it may hold escapes).
        index: usize,
        /// What is wrong.
        problem: NameProblem,
    },
}

/// The username and roles of one entry against these rules (the loader and `users add`).
pub fn check_names(name: &str, roles: &[String]) -> Result<(), EntryNameProblem> {
    check_entry_names(name, roles)
}

/// [`check_names`] over borrowed roles (the loader's, straight from the document's buffer).
pub fn check_entry_names<R: AsRef<str>>(name: &str, roles: &[R]) -> Result<(), EntryNameProblem> {
    check_username(name).map_err(EntryNameProblem::Username)?;
    for (i, role) in roles.iter().enumerate() {
        check_role(role.as_ref()).map_err(|problem| EntryNameProblem::Role {
            index: i + 1,
            problem,
        })?;
    }
    Ok(())
}

/// Unicode general category Cf (format characters, Unicode 15.1), plus U+2028/U+2029.
/// A table rather than a dependency: it is short and changes rarely.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// True for format characters (Cf) and the line / paragraph separators.
pub fn is_invisible(c: char) -> bool {
    let c = u32::from(c);
    INVISIBLE.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// `value` with every control, invisible or format character written as `\u{XXXX}`, so a
/// terminal shows what is there and never interprets it (`users list` on a hand-edited file).
pub fn escape_for_display(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || is_invisible(c) || c == '\\' {
            let _ = write!(out, "\\u{{{:04X}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{HashPolicy, hash_password, tests::FAST};
    use crate::secret::Secret;
    use crate::store::Snapshot;

    fn phc() -> String {
        hash_password(&Secret::from("pw"), FAST).expect("hash")
    }

    #[test]
    fn bad_names_and_roles_refuse_the_whole_document() {
        let h = phc();
        for (json, want) in [
            (
                format!(
                    r#"{{"ok":{{"passwordHash":"{h}"}},"eve":{{"passwordHash":"{h}","roles":["a","x\r\nY: 1"]}}}}"#
                ),
                "role #2 contains a control",
            ),
            (
                format!(r#"{{"eve":{{"passwordHash":"{h}","roles":["reader,admin"]}}}}"#),
                "role #1 contains ','",
            ),
            (
                format!(r#"{{"eve":{{"passwordHash":"{h}","roles":["\u001b[31m"]}}}}"#),
                "control",
            ),
            (
                format!(r#"{{"ev\u200Be":{{"passwordHash":"{h}"}}}}"#),
                "username contains an invisible",
            ),
            (
                format!(r#"{{"\u202Eeve":{{"passwordHash":"{h}"}}}}"#),
                "invisible",
            ),
        ] {
            let err = Snapshot::from_json(json.as_bytes(), &HashPolicy::default(), "v").expect_err(&json);
            assert!(err.to_string().contains(want), "{err}");
            assert!(
                !err.to_string().contains('\u{1b}') && !err.to_string().contains('\r'),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_what_splits_headers_or_hides() {
        for (value, want) in [
            ("", NameProblem::Empty),
            ("a\r\nX-Evil: 1", NameProblem::Control),
            ("a\u{1b}[31m", NameProblem::Control),
            ("reader,admin", NameProblem::Comma),
            ("ad\u{200B}min", NameProblem::Invisible),
            ("\u{202E}nimda", NameProblem::Invisible),
            ("\u{FEFF}admin", NameProblem::Invisible),
            ("a\u{2028}b", NameProblem::Invisible),
            ("tag\u{E0041}", NameProblem::Invisible),
        ] {
            assert_eq!(check_role(value), Err(want), "{value:?}");
            assert_eq!(check_username(value), Err(want), "{value:?}");
        }
        assert_eq!(check_username("a:b"), Err(NameProblem::Colon));
        assert_eq!(
            check_role(&"r".repeat(MAX_ROLE_BYTES + 1)),
            Err(NameProblem::TooLong)
        );
        for ok in ["admin", "read:write", "Zoë", "名前", "svc-1.a_b@x"] {
            assert_eq!(check_role(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_username("Zoë Ünïcode"), Ok(()));
    }

    #[test]
    fn display_escapes_never_pass_raw() {
        assert_eq!(escape_for_display("ok"), "ok");
        assert_eq!(escape_for_display("a\u{1b}[2Jb"), "a\\u{001B}[2Jb");
        assert_eq!(escape_for_display("x\r\ny"), "x\\u{000D}\\u{000A}y");
        assert_eq!(escape_for_display("\u{202E}z"), "\\u{202E}z");
        assert_eq!(
            escape_for_display("a\\u{1B}"),
            "a\\u{005C}u{1B}",
            "no forged escapes"
        );
    }
}
