//! Path normalisation before rules match: one canonical form, or a refusal.
//!
//! A rule is only as good as the agreement between the path it matched and the path the
//! upstream serves. Upstreams differ (some percent-decode before routing, some do not; nginx
//! merges `//`, most frameworks do not), so this module normalises where every reading agrees
//! and refuses ([`PathError`]) where they could disagree, instead of guessing one reading:
//!
//! 1. The query and fragment are dropped (`?`, `#`); the path must start with `/`.
//! 2. Each segment (split at the literal `/` only) is percent-decoded once (`%61` → `a`, hex in
//!    either case). The decoded bytes must be UTF-8 without control characters (NUL included).
//! 3. Refused: an encoded slash or backslash (`%2F`, `%5C`) and a literal backslash (a decoding
//!    upstream would see another segment structure, Windows servers a separator); a decoded
//!    segment that is still percent-encoded (`%2561` → `%61`: an upstream that decodes twice
//!    would see another path); an encoded dot segment (`%2e%2e`: a non-decoding upstream would
//!    not resolve it).
//!    Also refused: a `;` in a segment, literal or encoded (`/admin;jsessionid=x/users`,
//!    `/public/..;/admin`). Servlet containers (Tomcat, Jetty, Spring) strip `;params` from
//!    each segment before routing, other upstreams keep them as part of the name: stripping
//!    here would be wrong for the latter, keeping them wrong for the former.
//! 4. Dot segments are removed (RFC 3986 §5.2.4): `.` disappears, `..` removes the previous
//!    segment. A `..` above the root is refused (RFC 3986 drops it, some servers answer 400,
//!    some serve it), and so is a `..` that would remove an empty segment (`/a//../b` is `/a/b`
//!    by RFC 3986 and `/b` where `//` is merged first).
//! 5. Empty segments are dropped (`//` → `/`); a trailing `/` is kept (`/admin/` ≠ `/admin`
//!    for a router, and prefix rules match both).
//!
//! The result is decoded text: rules are written as plain paths (`/café`, not `/caf%C3%A9`).

use std::fmt;

/// Why a path cannot be normalised safely. Every variant gets the same answer (see
/// `docs/access-rules.md`): the request is refused, never matched against a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not starting with `/` (and not empty).
    #[error("path does not start with /")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadEscape,
    /// Decoded bytes that are not UTF-8.
    #[error("path is not UTF-8 once decoded")]
    NotUtf8,
    /// A control character (NUL, CR, LF, DEL ...), literal or encoded.
    #[error("control character in path")]
    Control,
    /// `%2F`, `%5C` or `\`.
    #[error("encoded slash or backslash in path")]
    Separator,
    /// Still percent-encoded after one decoding.
    #[error("double percent-encoding in path")]
    DoubleEncoded,
    /// `%2e` forming a dot segment.
    #[error("encoded dot segment in path")]
    EncodedDot,
    /// `;` (a path parameter to Servlet upstreams, part of the name to others).
    #[error("path parameter (;) in path")]
    Semicolon,
    /// `..` above the root, or over an empty segment.
    #[error("dot segment escapes its parent")]
    Escapes,
}

/// A normalised path: starts with `/`, decoded, no dot segments, no empty segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalPath(String);

impl NormalPath {
    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Normalises the path of a request target (`/a/b?q` or `/a/b`); see the module docs.
pub fn normalise(target: &str) -> Result<NormalPath, PathError> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        return Ok(NormalPath("/".into()));
    }
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out: Vec<Option<String>> = Vec::new(); // None: an empty segment (from `//`)
    let raw: Vec<&str> = rest.split('/').collect();
    let last = raw.len() - 1;
    let mut trailing = false;
    for (i, seg) in raw.into_iter().enumerate() {
        let decoded = decode(seg)?;
        match decoded.as_str() {
            "." | ".." if seg != decoded => return Err(PathError::EncodedDot),
            "." => trailing = i == last,
            ".." => {
                match out.pop() {
                    Some(Some(_)) => {}
                    Some(None) | None => return Err(PathError::Escapes),
                }
                trailing = i == last;
            }
            "" => {
                trailing = i == last;
                if i != last {
                    out.push(None);
                }
            }
            _ => {
                trailing = false;
                out.push(Some(decoded));
            }
        }
    }
    let mut text = String::with_capacity(path.len());
    for seg in out.into_iter().flatten() {
        text.push('/');
        text.push_str(&seg);
    }
    if trailing || text.is_empty() {
        text.push('/');
    }
    Ok(NormalPath(text))
}

/// One segment, percent-decoded once, with the refusals of step 2 and 3.
fn decode(seg: &str) -> Result<String, PathError> {
    if !seg.contains('%') {
        return check_text(seg).map(|()| seg.to_owned());
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let byte = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or(PathError::BadEscape)?;
            if byte == b'/' || byte == b'\\' {
                return Err(PathError::Separator);
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| PathError::NotUtf8)?;
    check_text(&text)?;
    if has_escape(text.as_bytes()) {
        return Err(PathError::DoubleEncoded);
    }
    Ok(text)
}

fn check_text(text: &str) -> Result<(), PathError> {
    if text.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if text.contains(';') {
        return Err(PathError::Semicolon);
    }
    if text.contains('\\') {
        return Err(PathError::Separator);
    }
    Ok(())
}

fn has_escape(bytes: &[u8]) -> bool {
    bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalise(p).map(|p| p.0)
    }

    #[test]
    fn equivalent_spellings_meet() {
        for (raw, want) in [
            ("", "/"),
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("/%61dmin", "/admin"),
            ("/%61DMIN", "/aDMIN"),
            ("/x/../admin", "/admin"),
            ("/./admin/.", "/admin/"),
            ("//admin//x", "/admin/x"),
            ("/admin?x=/../y", "/admin"),
            ("/admin#frag", "/admin"),
            ("/caf%C3%A9", "/café"),
            ("/a/b/..", "/a/"),
            ("/a/b/../", "/a/"),
            ("/a/..", "/"),
        ] {
            assert_eq!(n(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn what_upstreams_could_read_differently_is_refused() {
        for (raw, why) in [
            ("admin", PathError::NotAbsolute),
            ("/%zz", PathError::BadEscape),
            ("/%4", PathError::BadEscape),
            ("/%ff", PathError::NotUtf8),
            ("/a%00b", PathError::Control),
            ("/a\nb", PathError::Control),
            ("/admin%2Fx", PathError::Separator),
            ("/admin%2fx", PathError::Separator),
            ("/admin%5Cx", PathError::Separator),
            ("/admin\\x", PathError::Separator),
            ("/%2561dmin", PathError::DoubleEncoded),
            ("/x/%2e%2e/admin", PathError::EncodedDot),
            ("/x/.%2E/admin", PathError::EncodedDot),
            ("/x/%2e/admin", PathError::EncodedDot),
            ("/..", PathError::Escapes),
            ("/a/../../admin", PathError::Escapes),
            ("/public//../admin", PathError::Escapes),
            ("/admin;jsessionid=x/users", PathError::Semicolon),
            ("/admin;/users", PathError::Semicolon),
            ("/public/..;/admin", PathError::Semicolon),
            ("/public/%2e%2e%3b/admin", PathError::Semicolon),
            ("/a%3bb", PathError::Semicolon),
        ] {
            assert_eq!(n(raw), Err(why), "{raw}");
        }
    }
}
