//! Legacy hashes imported from htpasswd files and other tools: bcrypt (`$2y$`, `$2b$`, `$2a$`)
//! and SHA-crypt (`$5$`, `$6$`). Accepted only when [`HashPolicy::legacy`] is set, and meant to
//! be short-lived: the server re-hashes a legacy user to Argon2id on their next successful login.
//!
//! A legacy hash is a [`StoredHash`] whose [`Cost`] has `p = 0` (Argon2 never has a zero lane
//! count), `m_kib` naming the scheme and `t` its work factor, so each legacy work factor is a cost
//! class of its own for the limiter and the denial pacing, and nothing else in the store had to
//! learn a second hash type. Schemes that are too weak to keep even for one login (apr1/MD5,
//! `{SHA}`, crypt(3) DES, plaintext) are refused with a reason that never quotes the hash.

use crate::hash::{Cost, HashError, HashPolicy, StoredHash};
use crate::secret::Secret;
use subtle::ConstantTimeEq;

/// bcrypt cost ceiling: 2^14 rounds take ~1 s on one core (release build); more would let one
/// stored entry tie up a verification slot for seconds per request.
pub const BCRYPT_MAX_COST: u32 = 14;
/// SHA-crypt rounds ceiling: 1,000,000 rounds of SHA-512 take ~0.4 s (release build); passlib's
/// default (656,000) fits, glibc's limit (999,999,999) would be a DoS.
pub const SHA_CRYPT_MAX_ROUNDS: u32 = 1_000_000;

/// A legacy scheme. Its number is the `m_kib` of the cost class (the scheme's working memory
/// rounded up to a KiB: bcrypt's 4 KiB Blowfish state, SHA-crypt's few hundred bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `$2a$`, `$2b$`, `$2y$` (Apache `htpasswd -B`).
    Bcrypt,
    /// `$5$` (SHA-256 crypt).
    Sha256Crypt,
    /// `$6$` (SHA-512 crypt, `mkpasswd -m sha-512`).
    Sha512Crypt,
}

impl Scheme {
    fn tag(self) -> u32 {
        match self {
            Scheme::Bcrypt => 4,
            Scheme::Sha256Crypt => 1,
            Scheme::Sha512Crypt => 2,
        }
    }

    /// Algorithm label for listings and metrics: `bcrypt` or `sha-crypt`.
    pub fn label(self) -> &'static str {
        match self {
            Scheme::Bcrypt => "bcrypt",
            Scheme::Sha256Crypt | Scheme::Sha512Crypt => "sha-crypt",
        }
    }

    fn of(cost: Cost) -> Option<Scheme> {
        if cost.p != 0 {
            return None;
        }
        [Scheme::Bcrypt, Scheme::Sha256Crypt, Scheme::Sha512Crypt]
            .into_iter()
            .find(|s| s.tag() == cost.m_kib)
    }
}

/// Why a legacy or foreign hash is not accepted. Never contains the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LegacyProblem {
    /// A bcrypt or SHA-crypt hash while `hash.legacy` is off.
    #[error("{0} hashes are accepted only with hash.legacy = true")]
    NotEnabled(&'static str),
    /// A scheme too weak to accept at all.
    #[error("{0} hashes are not accepted (too weak to keep): set a new password for this user")]
    Weak(&'static str),
    /// A bcrypt or SHA-crypt string that does not parse.
    #[error("malformed {0} hash")]
    Malformed(&'static str),
    /// A work factor above the ceiling (bcrypt cost, SHA-crypt rounds).
    #[error("{scheme} work factor {found} is above the ceiling {max}")]
    TooExpensive {
        /// `bcrypt` or `sha-crypt`.
        scheme: &'static str,
        /// The work factor found.
        found: u32,
        /// The ceiling.
        max: u32,
    },
}

impl Cost {
    /// True for the cost class of a legacy (bcrypt, SHA-crypt) hash.
    pub fn is_legacy(&self) -> bool {
        Scheme::of(*self).is_some()
    }
}

impl StoredHash {
    /// `argon2id`, `bcrypt` or `sha-crypt`.
    pub fn algorithm(&self) -> &'static str {
        Scheme::of(self.cost()).map_or("argon2id", Scheme::label)
    }

    /// The parameters for listings: `argon2id m=…,t=…,p=…`, `bcrypt cost=N`,
    /// `sha-crypt rounds=N`. Never the hash.
    pub fn describe(&self) -> String {
        let c = self.cost();
        match Scheme::of(c) {
            None => format!("argon2id {c}"),
            Some(Scheme::Bcrypt) => format!("bcrypt cost={}", c.t),
            Some(Scheme::Sha256Crypt) => format!("sha256-crypt rounds={}", c.t),
            Some(Scheme::Sha512Crypt) => format!("sha512-crypt rounds={}", c.t),
        }
    }

    /// True for a bcrypt or SHA-crypt hash (re-hashed to Argon2id on the next login).
    pub fn is_legacy(&self) -> bool {
        self.cost().is_legacy()
    }
}

/// A successful login against a legacy hash: what a store needs to replace that hash with an
/// Argon2id one of the same password. `Debug` shows neither password nor hash.
#[derive(Clone)]
pub struct LegacyLogin {
    /// The user.
    pub username: String,
    /// The password that just matched (zeroized on drop).
    pub password: Secret,
    /// The legacy hash it matched: replace only if the store still holds exactly this one.
    pub legacy: StoredHash,
}

impl std::fmt::Debug for LegacyLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LegacyLogin({} hash, REDACTED)", self.legacy.algorithm())
    }
}

/// Recognises the foreign and legacy formats. `None`: not one of them (try PHC).
pub(crate) fn parse(s: &str, policy: &HashPolicy) -> Option<Result<StoredHash, HashError>> {
    let found = classify(s)?;
    Some(found.map_err(HashError::from).and_then(|(scheme, factor)| {
        if !policy.legacy {
            return Err(LegacyProblem::NotEnabled(scheme.label()).into());
        }
        Ok(StoredHash::from_parts(
            s,
            Cost {
                m_kib: scheme.tag(),
                t: factor,
                p: 0,
            },
        ))
    }))
}

/// The scheme and work factor of a legacy string, an error for a refused or malformed one,
/// `None` for anything else.
fn classify(s: &str) -> Option<Result<(Scheme, u32), LegacyProblem>> {
    let weak = |name| Some(Err(LegacyProblem::Weak(name)));
    if s.starts_with("$apr1$") || s.starts_with("$1$") {
        return weak("apr1/MD5");
    }
    if s.starts_with("{SHA}") || s.starts_with("{SSHA}") {
        return weak("{SHA}");
    }
    if let Some(rest) = ["$2a$", "$2b$", "$2y$"].iter().find_map(|p| s.strip_prefix(p)) {
        return Some(bcrypt_cost(rest));
    }
    if let Some(rest) = s.strip_prefix("$5$") {
        return Some(sha_parts(rest, 43).map(|(r, _, _)| (Scheme::Sha256Crypt, r)));
    }
    if let Some(rest) = s.strip_prefix("$6$") {
        return Some(sha_parts(rest, 86).map(|(r, _, _)| (Scheme::Sha512Crypt, r)));
    }
    // crypt(3) DES: 13 characters of [./0-9A-Za-z]. Anything else without a `$` prefix is
    // plaintext or unknown; PHC parsing reports those.
    let des = s.len() == 13
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    des.then_some(Err(LegacyProblem::Weak("crypt(3) DES")))
}

fn bcrypt_cost(rest: &str) -> Result<(Scheme, u32), LegacyProblem> {
    let bad = LegacyProblem::Malformed("bcrypt");
    let (cost_text, body) = rest.split_once('$').ok_or(bad)?;
    // Exactly two digits, as every bcrypt writes it: the verifier cannot read `5` or `+5`, and
    // such a hash loaded as a user that never verifies (an attack).
    if cost_text.len() != 2 || !cost_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let cost: u32 = cost_text.parse().map_err(|_| bad)?;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    if body.len() != 53 || !body.bytes().all(alphabet) || cost < 4 {
        return Err(bad);
    }
    if cost > BCRYPT_MAX_COST {
        return Err(LegacyProblem::TooExpensive {
            scheme: "bcrypt",
            found: cost,
            max: BCRYPT_MAX_COST,
        });
    }
    Ok((Scheme::Bcrypt, cost))
}

/// `[rounds=N$]salt$hash` → (rounds, salt, hash).
fn sha_parts(rest: &str, hash_len: usize) -> Result<(u32, &str, &str), LegacyProblem> {
    let bad = LegacyProblem::Malformed("sha-crypt");
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r.split_once('$').ok_or(bad)?;
            (n.parse::<u32>().map_err(|_| bad)?, rest)
        }
        None => (5000, rest),
    };
    let (salt, hash) = rest.split_once('$').ok_or(bad)?;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    if salt.len() > 16 || hash.len() != hash_len || !hash.bytes().all(alphabet) || salt.contains('$') {
        return Err(bad);
    }
    if rounds < 1000 {
        return Err(bad);
    }
    if rounds > SHA_CRYPT_MAX_ROUNDS {
        return Err(LegacyProblem::TooExpensive {
            scheme: "sha-crypt",
            found: rounds,
            max: SHA_CRYPT_MAX_ROUNDS,
        });
    }
    Ok((rounds, salt, hash))
}

/// Verifies `password` against a legacy `hash` of class `cost` (CPU-heavy: call off the
/// executor). Comparisons are constant-time; anything unexpected denies.
pub(crate) fn verify(hash: &str, cost: Cost, password: &Secret) -> bool {
    let pw = password.expose().as_bytes();
    match Scheme::of(cost) {
        // `verify` accepts $2a$/$2b$/$2y$ alike (same algorithm; the letters record old bugs
        // in other implementations) and compares in constant time.
        Some(Scheme::Bcrypt) => bcrypt::verify(pw, hash).unwrap_or(false),
        Some(Scheme::Sha256Crypt) => sha_verify(hash, "$5$", 43, pw, |pw, salt, rounds| {
            let params = sha_crypt::Sha256Params::new(rounds).ok()?;
            sha_crypt::sha256_crypt_b64(pw, salt, &params).ok()
        }),
        Some(Scheme::Sha512Crypt) => sha_verify(hash, "$6$", 86, pw, |pw, salt, rounds| {
            let params = sha_crypt::Sha512Params::new(rounds).ok()?;
            sha_crypt::sha512_crypt_b64(pw, salt, &params).ok()
        }),
        None => false,
    }
}

fn sha_verify(
    hash: &str,
    prefix: &str,
    len: usize,
    pw: &[u8],
    crypt: impl Fn(&[u8], &[u8], usize) -> Option<String>,
) -> bool {
    let Some(Ok((rounds, salt, want))) = hash.strip_prefix(prefix).map(|r| sha_parts(r, len)) else {
        return false;
    };
    let Ok(rounds) = usize::try_from(rounds) else {
        return false;
    };
    crypt(pw, salt.as_bytes(), rounds).is_some_and(|got| bool::from(got.as_bytes().ct_eq(want.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy() -> HashPolicy {
        HashPolicy {
            legacy: true,
            ..HashPolicy::default()
        }
    }

    /// Made by `htpasswd -B` and `mkpasswd`: the commands and passwords are in
    /// crates/authserver/tests/fixtures/htpasswd/README.md.
    const FIXTURE: &str = include_str!("../../../authserver/tests/fixtures/htpasswd/legacy.htpasswd");
    const BCRYPT: &str = "$2y$05$4jH9N/BYOMxYYi7SFKLjP.0aGG5VsABVdQU.DBy07WDHnkusT8Tem";

    #[test]
    fn verifies_hashes_made_by_real_tools() {
        let passwords = [
            ("bella", "bcrypt-pass-1", "bcrypt"),
            ("bruno", "bcrypt-pass-2", "bcrypt"),
            ("sasha", "sha512-pass-1", "sha-crypt"),
            ("samir", "sha256-pass-1", "sha-crypt"),
            ("sven", "sha512-pass-2", "sha-crypt"),
        ];
        let lines: Vec<(&str, &str)> = FIXTURE.lines().filter_map(|l| l.split_once(':')).collect();
        assert_eq!(lines.len(), passwords.len());
        for ((user, hash), (want_user, pw, algorithm)) in lines.into_iter().zip(passwords) {
            assert_eq!(user, want_user);
            let h = StoredHash::parse(hash, &legacy()).expect(user);
            assert_eq!(h.algorithm(), algorithm, "{user}");
            assert!(h.verify(&Secret::from(pw)), "{user}");
            assert!(!h.verify(&Secret::from("wrong")), "{user}");
            assert!(!h.verify(&Secret::from(&pw[..pw.len() - 1])), "{user}");
        }
    }

    #[test]
    fn refusals_name_the_scheme_never_the_hash() {
        let cases = [
            ("$apr1$abcdefgh$0123456789012345678901", "apr1/MD5"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}"),
            ("abJnggxhB/yWI", "crypt(3) DES"),
        ];
        for (hash, name) in cases {
            let err = StoredHash::parse(hash, &legacy()).expect_err(hash);
            let msg = err.to_string();
            assert!(msg.contains(name) && !msg.contains(hash), "{msg}");
        }
        let err = StoredHash::parse(BCRYPT, &HashPolicy::default()).expect_err("legacy off");
        assert!(err.to_string().contains("hash.legacy = true"), "{err}");
        let dear = BCRYPT.replace("$05$", "$15$");
        assert!(matches!(
            StoredHash::parse(&dear, &legacy()),
            Err(HashError::Legacy(LegacyProblem::TooExpensive { found: 15, .. }))
        ));
        let sha = format!("$6$rounds=2000000$salt${}", "a".repeat(86));
        assert!(matches!(
            StoredHash::parse(&sha, &legacy()),
            Err(HashError::Legacy(LegacyProblem::TooExpensive { .. }))
        ));
        for broken in ["$2y$05$short", "$6$salt$short", "$5$rounds=x$s$h"] {
            assert!(
                matches!(
                    StoredHash::parse(broken, &legacy()),
                    Err(HashError::Legacy(LegacyProblem::Malformed(_)))
                ),
                "{broken}"
            );
        }
    }

    #[test]
    fn legacy_cost_classes_are_apart_from_argon2() {
        let h = StoredHash::parse(BCRYPT, &legacy()).expect("bcrypt");
        assert!(h.is_legacy() && h.cost().is_legacy());
        assert_eq!(h.algorithm(), "bcrypt");
        assert_eq!(h.cost().t, 5);
        assert!(!Cost::DEFAULT.is_legacy());
        assert!(!format!("{h:?}").contains(BCRYPT));
    }
}
