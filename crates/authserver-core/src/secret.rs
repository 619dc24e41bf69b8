//! A redacting, zeroizing holder for secret strings (passwords).

use std::fmt;
use zeroize::Zeroizing;

/// A secret string: `Debug`/`Display` print `REDACTED`, the bytes are zeroized on drop, there is
/// no `Serialize`, and the value is read only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value; the caller's copy is moved in, so no other copy remains.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The plaintext. Call sites are few and greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::from("hunter2");
        assert_eq!(
            format!("{s:?} {s} {:?}", Some(&s)),
            "REDACTED REDACTED Some(REDACTED)"
        );
        assert_eq!(s.expose(), "hunter2");
    }
}
