//! Keyed HMAC-SHA256 digests: the `user_hash` that logs carry instead of usernames.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// HMAC-SHA256 with one fixed key.
type HmacSha256 = Hmac<Sha256>;

/// Produces `user_hash`: a keyed digest of a username, stable across instances that share the
/// key, meaningless without it. 16 hex characters (64 bits) are plenty to correlate log lines.
#[derive(Clone)]
pub struct UserHasher {
    mac: HmacSha256,
}

impl fmt::Debug for UserHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserHasher(REDACTED)")
    }
}

impl UserHasher {
    /// A hasher with the given key (any length; from config or the secret store).
    pub fn new(key: &[u8]) -> Self {
        Self { mac: mac(key) }
    }

    /// A hasher with a random key: hashes are then stable for this process only.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// The `user_hash` of a username.
    pub fn hash(&self, username: &str) -> String {
        let mut m = self.mac.clone();
        m.update(username.as_bytes());
        let out = m.finalize().into_bytes();
        out[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// An HMAC instance for `key`. HMAC accepts keys of any length, so this cannot fail.
pub(crate) fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_key_and_different_across_keys() {
        let a = UserHasher::new(b"k1");
        assert_eq!(a.hash("alice"), UserHasher::new(b"k1").hash("alice"));
        assert_ne!(a.hash("alice"), UserHasher::new(b"k2").hash("alice"));
        assert_ne!(a.hash("alice"), a.hash("bob"));
        assert_eq!(a.hash("alice").len(), 16);
        assert!(!format!("{a:?}").contains("k1"));
        assert_ne!(UserHasher::random().hash("x"), UserHasher::random().hash("x"));
    }
}
