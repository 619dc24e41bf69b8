//! `Authorization: Basic` parsing (RFC 7617 over RFC 7235) into our own [`Credentials`].
//!
//! The header is converted at the edge so that no third-party type holding the plaintext (and
//! deriving `Debug` over it) travels further into the program.

use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::fmt;

/// Longest `Authorization` value we look at, in bytes; longer is `Malformed(TooLong)`.
pub const MAX_HEADER_BYTES: usize = 4096;
/// Longest username, in bytes after decoding.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest password, in bytes after decoding.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Standard alphabet; padding optional because some clients omit it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A username and password taken from a Basic `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: Secret,
}

/// Why a header did not yield credentials. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The header names another scheme (or is empty): answered like a missing header.
    #[error("authorization scheme is not Basic")]
    NotBasic,
    /// The header says Basic but its content is unusable: answered 400.
    #[error("malformed Basic credentials: {0}")]
    Malformed(Malformed),
}

/// What exactly was wrong with a Basic header (for logs; callers see one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Header, username or password over its size limit.
    #[error("too long")]
    TooLong,
    /// No token after the scheme, or invalid base64.
    #[error("invalid base64")]
    Base64,
    /// Decoded bytes are not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// No `:` between username and password.
    #[error("no colon")]
    NoColon,
    /// Empty username.
    #[error("empty username")]
    EmptyUsername,
    /// A control character in username or password (forbidden by RFC 7617).
    #[error("control character")]
    ControlCharacter,
}

impl Credentials {
    /// Builds credentials directly (CLI, tests). Applies the same rules as the parser.
    pub fn new(username: &str, password: &str) -> Result<Self, Malformed> {
        validate(username, password)?;
        Ok(Self {
            username: username.to_owned(),
            password: Secret::from(password),
        })
    }

    /// Parses an `Authorization` header value.
    ///
    /// Scheme is case-insensitive; whitespace around scheme and token is optional; the decoded
    /// text splits at the first `:` so passwords may contain colons.
    pub fn parse(header: &[u8]) -> Result<Self, ParseError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(ParseError::Malformed(Malformed::TooLong));
        }
        let value = header.trim_ascii();
        let (scheme, rest) = match value.iter().position(|b| *b == b' ' || *b == b'\t') {
            Some(i) => (&value[..i], value[i..].trim_ascii()),
            None => (value, &value[value.len()..]),
        };
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(ParseError::NotBasic);
        }
        if rest.is_empty() {
            return Err(ParseError::Malformed(Malformed::Base64));
        }
        let decoded = zeroize::Zeroizing::new(
            BASE64
                .decode(rest)
                .map_err(|_| ParseError::Malformed(Malformed::Base64))?,
        );
        let text = std::str::from_utf8(&decoded).map_err(|_| ParseError::Malformed(Malformed::NotUtf8))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or(ParseError::Malformed(Malformed::NoColon))?;
        Self::new(user, pass).map_err(ParseError::Malformed)
    }

    /// The username (plaintext: PII, never log it; log [`crate::UserHasher`] output instead).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password.
    pub fn password(&self) -> &Secret {
        &self.password
    }

    /// The `Authorization` header value for these credentials (clients, tests, benchmarks).
    pub fn to_header_value(&self) -> Secret {
        let plain = zeroize::Zeroizing::new(format!("{}:{}", self.username, self.password.expose()));
        Secret::new(format!("Basic {}", BASE64.encode(plain.as_bytes())))
    }
}

fn validate(username: &str, password: &str) -> Result<(), Malformed> {
    if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
        return Err(Malformed::TooLong);
    }
    if username.is_empty() {
        return Err(Malformed::EmptyUsername);
    }
    if username.contains(':') {
        // A colon cannot round-trip through Basic: the split is at the first colon.
        return Err(Malformed::NoColon);
    }
    if username.chars().chain(password.chars()).any(char::is_control) {
        return Err(Malformed::ControlCharacter);
    }
    Ok(())
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &"REDACTED")
            .field("password", &self.password)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn ok(header: &str) -> (String, String) {
        let c = Credentials::parse(header.as_bytes()).expect("valid");
        (c.username().to_owned(), c.password().expose().to_owned())
    }

    #[test]
    fn accepts_scheme_in_any_case_with_optional_whitespace() {
        let t = b64("alice:secret");
        for h in [
            format!("Basic {t}"),
            format!("basic {t}"),
            format!("BASIC   {t}  "),
            format!("  bAsIc\t{t}"),
        ] {
            assert_eq!(ok(&h), ("alice".into(), "secret".into()), "{h}");
        }
    }

    #[test]
    fn splits_at_first_colon_and_allows_empty_password_and_unicode() {
        assert_eq!(ok(&format!("Basic {}", b64("bob:a:b:c"))).1, "a:b:c");
        assert_eq!(ok(&format!("Basic {}", b64("bob:"))).1, "");
        assert_eq!(
            ok(&format!("Basic {}", b64("zoë:пароль"))),
            ("zoë".into(), "пароль".into())
        );
        // RFC 7617 example, and the unpadded form of a padded token.
        assert_eq!(
            ok("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            ("Aladdin".into(), "open sesame".into())
        );
        assert_eq!(
            ok("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ"),
            ("Aladdin".into(), "open sesame".into())
        );
    }

    #[test]
    fn other_schemes_are_not_basic() {
        for h in ["Bearer abc", "", "   ", "Basicx abc", "Digest username=x"] {
            assert_eq!(
                Credentials::parse(h.as_bytes()),
                Err(ParseError::NotBasic),
                "{h:?}"
            );
        }
    }

    #[test]
    fn malformed_inputs_say_why() {
        use Malformed::*;
        let cases: Vec<(Vec<u8>, Malformed)> = vec![
            (b"Basic".to_vec(), Base64),
            (b"Basic !!!!".to_vec(), Base64),
            (format!("Basic {}", b64("nocolon")).into_bytes(), NoColon),
            (format!("Basic {}", b64(":pw")).into_bytes(), EmptyUsername),
            (
                format!("Basic {}", b64("al\u{7}ice:pw")).into_bytes(),
                ControlCharacter,
            ),
            (
                format!("Basic {}", b64("alice:p\nw")).into_bytes(),
                ControlCharacter,
            ),
            (
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])
                )
                .into_bytes(),
                NotUtf8,
            ),
            (
                format!("Basic {}", "A".repeat(MAX_HEADER_BYTES)).into_bytes(),
                TooLong,
            ),
            (
                format!("Basic {}", b64(&format!("{}:x", "u".repeat(300)))).into_bytes(),
                TooLong,
            ),
            (
                format!("Basic {}", b64(&format!("u:{}", "p".repeat(1100)))).into_bytes(),
                TooLong,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(Credentials::parse(&h), Err(ParseError::Malformed(want)));
        }
    }

    #[test]
    fn debug_hides_username_and_password() {
        let c = Credentials::new("alice", "hunter2").expect("valid");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("alice") && !dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn header_round_trip() {
        let c = Credentials::new("carol", "pa:ss word").expect("valid");
        let h = c.to_header_value();
        assert_eq!(Credentials::parse(h.expose().as_bytes()), Ok(c));
    }
}
