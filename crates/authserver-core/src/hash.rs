//! Argon2id PHC hashes: the parameter policy, verification, hashing and the dummy hash.

use crate::secret::Secret;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

pub mod legacy;

/// Argon2id cost parameters as they appear in a PHC string (`m` in KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cost {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl Cost {
    /// The defaults for new hashes: m=64 MiB, t=3, p=1.
    pub const DEFAULT: Cost = Cost {
        m_kib: 65536,
        t: 3,
        p: 1,
    };
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_kib, self.t, self.p)
    }
}

/// Which hashes a store may hold. Enforced when a store loads.
///
/// The floor is a cost, not two separate floors: `min_m_kib` at `min_t` names one row of
/// OWASP's equivalence table ([`OWASP_ARGON2ID`]) and scales the whole table (see
/// [`HashPolicy::floor_m_kib`]), so fewer iterations with more memory (or the reverse) pass
/// when OWASP counts them as equally strong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashPolicy {
    /// Memory floor (KiB) at `min_t` iterations. Default 19456 (OWASP's m=19 MiB, t=2 row).
    pub min_m_kib: u32,
    /// The iteration count `min_m_kib` applies at. Default 2.
    pub min_t: u32,
    /// Ceiling on memory (KiB): one request must not be able to make us allocate more. Default 262144 (256 MiB).
    pub max_m_kib: u32,
    /// Ceiling on iterations (a CPU-time DoS bound). Default 10.
    pub max_t: u32,
    /// Ceiling on parallelism. Default 4.
    pub max_p: u32,
    /// Accept bcrypt and SHA-crypt hashes (imported from htpasswd files) until their users'
    /// next login re-hashes them. Default false: those users are refused. See [`legacy`].
    pub legacy: bool,
}

impl Default for HashPolicy {
    fn default() -> Self {
        Self {
            min_m_kib: 19456,
            min_t: 2,
            max_m_kib: 262_144,
            max_t: 10,
            max_p: 4,
            legacy: false,
        }
    }
}

/// OWASP's Argon2id settings of equal strength, as (t, m KiB), p = 1. The Password Storage
/// Cheat Sheet lists "m=47104 (46 MiB), t=1, p=1", "m=19456 (19 MiB), t=2, p=1",
/// "m=12288 (12 MiB), t=3, p=1", "m=9216 (9 MiB), t=4, p=1" and "m=7168 (7 MiB), t=5, p=1",
/// and says they "provide an equal level of defense, and the only difference is a trade off
/// between CPU and RAM usage". Past t = 5 (where the sheet stops) the table continues at the
/// t = 5 row's cost, m * t = 35840 KiB: a flat last row made `min_t` above 5 no floor at all.
/// <https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html>
pub const OWASP_ARGON2ID: [(u32, u32); 5] = [(1, 47104), (2, 19456), (3, 12288), (4, 9216), (5, 7168)];

/// OWASP's smallest memory row (7 MiB): no scaling takes the floor below it unless `min_m_kib`
/// itself is set lower. Under it, memory-hardness (the point of Argon2) is mostly gone.
const OWASP_LEAST_M_KIB: u64 = 7168;

/// The table's memory at `t` iterations (t = 0 reads as 1; t > 5 at the t = 5 row's cost).
fn owasp_m_kib(t: u32) -> u64 {
    let last = OWASP_ARGON2ID[OWASP_ARGON2ID.len() - 1];
    if t > last.0 {
        return (u64::from(last.0) * u64::from(last.1)).div_ceil(u64::from(t));
    }
    let row = usize::try_from(t.max(1) - 1).unwrap_or(0);
    u64::from(OWASP_ARGON2ID[row].1)
}

impl HashPolicy {
    /// The least memory (KiB) a hash with `t` iterations must use: OWASP's row for `t`
    /// scaled by how far the configured `min_m_kib` at `min_t` sits from OWASP's own row there,
    /// `ceil(table(t) * min_m_kib / table(min_t))`. The defaults (19456 at t=2) give exactly
    /// OWASP's table; every hash with `m >= min_m_kib` and `t >= min_t` still passes (the table
    /// only falls as t rises); raising either setting raises every row.
    ///
    /// Scaling never takes a row below OWASP's least memory (7 MiB) unless `min_m_kib` is set
    /// below it: `min_t = 1` with 19 MiB would otherwise admit 2.9 MiB at t = 5.
    pub fn floor_m_kib(&self, t: u32) -> u64 {
        let scaled = owasp_m_kib(t) * u64::from(self.min_m_kib);
        let least = OWASP_LEAST_M_KIB.min(u64::from(self.min_m_kib));
        scaled.div_ceil(owasp_m_kib(self.min_t)).max(least)
    }

    /// Whether `cost` is strong enough (at least [`HashPolicy::floor_m_kib`] for its t) and
    /// cheap enough (memory, iterations and parallelism under their ceilings) for this policy.
    pub fn accepts(&self, cost: Cost) -> bool {
        u64::from(cost.m_kib) >= self.floor_m_kib(cost.t)
            && cost.t >= 1
            && cost.m_kib <= self.max_m_kib
            && cost.t <= self.max_t
            && cost.p <= self.max_p
    }
}

/// Why a stored hash is not acceptable. Never contains the hash itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not a PHC string.
    #[error("password hash is not a valid PHC string")]
    NotPhc,
    /// A PHC string for another algorithm (only Argon2id is accepted).
    #[error("password hash algorithm {0} is not allowed (Argon2id required)")]
    Algorithm(String),
    /// Parameters outside the policy: below the cost floor or above a ceiling.
    #[error(
        "Argon2id parameters {cost} outside policy (at t={t} m >= {floor_m} KiB; m <= {max_m} KiB, t <= {max_t}, p <= {max_p})",
        t = .cost.t
    )]
    Policy {
        /// Parameters found.
        cost: Cost,
        /// The memory floor at the hash's own t ([`HashPolicy::floor_m_kib`]).
        floor_m: u64,
        /// Upper memory bound.
        max_m: u32,
        /// Upper iteration bound.
        max_t: u32,
        /// Upper parallelism bound.
        max_p: u32,
    },
    /// A legacy or foreign scheme that is refused (see [`legacy`]).
    #[error(transparent)]
    Legacy(#[from] legacy::LegacyProblem),
    /// Hashing failed (invalid parameters for new hashes).
    #[error("could not hash: invalid Argon2id parameters {0}")]
    Params(Cost),
}

/// A validated Argon2id PHC string. `Debug` is redacted: hashes never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    /// A PHC string, or a legacy crypt string ([`legacy`]).
    phc: Arc<str>,
    cost: Cost,
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({} {}, REDACTED)", self.algorithm(), self.cost)
    }
}

impl StoredHash {
    /// Parses a PHC string (or, with `policy.legacy`, a bcrypt / SHA-crypt string) and checks it
    /// against `policy`.
    pub fn parse(phc: &str, policy: &HashPolicy) -> Result<Self, HashError> {
        if let Some(legacy) = legacy::parse(phc, policy) {
            return legacy;
        }
        let parsed = PasswordHash::new(phc).map_err(|_| HashError::NotPhc)?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return Err(HashError::Algorithm(parsed.algorithm.as_str().to_owned()));
        }
        let params = Params::try_from(&parsed).map_err(|_| HashError::NotPhc)?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(HashError::NotPhc);
        }
        let cost = Cost {
            m_kib: params.m_cost(),
            t: params.t_cost(),
            p: params.p_cost(),
        };
        if !policy.accepts(cost) {
            return Err(HashError::Policy {
                cost,
                floor_m: policy.floor_m_kib(cost.t),
                max_m: policy.max_m_kib,
                max_t: policy.max_t,
                max_p: policy.max_p,
            });
        }
        Ok(Self {
            phc: phc.into(),
            cost,
        })
    }

    /// A hash already validated by [`legacy`].
    pub(crate) fn from_parts(phc: &str, cost: Cost) -> Self {
        Self {
            phc: phc.into(),
            cost,
        }
    }

    /// The cost parameters read from the string.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// The PHC string (for writing stores back; never log it).
    pub fn expose(&self) -> &str {
        &self.phc
    }

    /// Runs one Argon2id verification. CPU- and memory-heavy: call off the async executor.
    pub fn verify(&self, password: &Secret) -> bool {
        if self.cost.is_legacy() {
            return legacy::verify(&self.phc, self.cost, password);
        }
        // The string was parsed at construction, so parsing again cannot fail; a failure
        // would still only deny.
        PasswordHash::new(&self.phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// Hashes a new password with Argon2id at `cost` and a random salt.
pub fn hash_password(password: &Secret, cost: Cost) -> Result<String, HashError> {
    let params = Params::new(cost.m_kib, cost.t, cost.p, None).map_err(|_| HashError::Params(cost))?;
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|_| HashError::Params(cost))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError::Params(cost))
}

/// Dummy hashes for common costs, made once with random passwords that were then discarded.
/// Shipping them keeps a store load (a Lambda cold start) from paying a full Argon2id hashing
/// (~170 ms at the default cost). They are safe to publish: an unknown user's verification is
/// never allowed, whatever it matches.
const PRECOMPUTED: &[&str] = &[
    "$argon2id$v=19$m=65536,t=3,p=1$3eTo6XRyovQWN+FADuuWqw$DRlrDUBaiA4udVLdhNOPEiibMofhAByLZfipoyoFBi8",
    "$argon2id$v=19$m=19456,t=2,p=1$yyf3XLgAzmhWNXJeJdEHRg$Ls9TTRxdpST9SPaFgfP6Qot9Ugxc1axKgm3eYYNt6Hk",
    "$argon2id$v=19$m=47104,t=1,p=1$d7CIeMAaEAd5ZZ+d5i5SIw$CE7UIdrIuypUzs6f2KsUKUt+x0W3yZ/+pFtet0w5h50",
    "$argon2id$v=19$m=65536,t=2,p=1$yChQ7PAN7C9yTUwuoeYMXA$dOQpmbuP9kfV9kgTFCkY4dm1/cZkOO4dbDsPUeParyg",
    "$argon2id$v=19$m=131072,t=3,p=1$XtKZzmZL9Qb6fZtF8rCUBQ$d4YxQhqjBGv85c4exG2NYw3DHDuWhti9he0/PhUCDtA",
];

/// A hash of a random password at `cost`, verified against when a username is unknown so that
/// unknown users cost the same time as known ones. Precomputed for common costs; otherwise
/// generated once per cost per process.
pub fn dummy_hash(cost: Cost) -> StoredHash {
    static DUMMIES: OnceLock<Mutex<HashMap<Cost, StoredHash>>> = OnceLock::new();
    let dummies = DUMMIES.get_or_init(|| {
        let open = HashPolicy {
            min_m_kib: 8,
            min_t: 1,
            max_m_kib: u32::MAX,
            max_t: u32::MAX,
            max_p: u32::MAX,
            legacy: false,
        };
        let table = PRECOMPUTED
            .iter()
            .filter_map(|phc| StoredHash::parse(phc, &open).ok())
            .map(|h| (h.cost, h));
        Mutex::new(table.collect())
    });
    if let Some(h) = dummies.lock().unwrap_or_else(|e| e.into_inner()).get(&cost) {
        return h.clone();
    }
    let random = Secret::new(format!("{:032x}", rand::random::<u128>()));
    // The cost comes from a hash that already passed the policy, so hashing with it succeeds;
    // if it somehow did not, the default is a safe stand-in.
    let phc = hash_password(&random, cost)
        .or_else(|_| hash_password(&random, Cost::DEFAULT))
        .unwrap_or_default();
    let hash = StoredHash {
        phc: phc.into(),
        cost,
    };
    dummies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(cost, hash.clone());
    hash
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The cheapest cost the default policy accepts: keeps tests fast.
    pub const FAST: Cost = Cost {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    #[test]
    fn hash_then_verify() {
        let phc = hash_password(&Secret::from("pw"), FAST).expect("hash");
        let h = StoredHash::parse(&phc, &HashPolicy::default()).expect("valid");
        assert_eq!(h.cost(), FAST);
        assert!(h.verify(&Secret::from("pw")));
        assert!(!h.verify(&Secret::from("pW")));
        assert!(!format!("{h:?}").contains(&phc));
    }

    #[test]
    fn policy_floor_and_ceiling() {
        let policy = HashPolicy::default();
        let weak = hash_password(
            &Secret::from("pw"),
            Cost {
                m_kib: 1024,
                t: 1,
                p: 1,
            },
        )
        .expect("hash");
        let err = StoredHash::parse(&weak, &policy).expect_err("below floor");
        assert!(matches!(err, HashError::Policy { .. }));
        assert!(!err.to_string().contains(&weak));
        let tight = HashPolicy {
            max_m_kib: 19000,
            min_m_kib: 8,
            ..policy.clone()
        };
        let ok = hash_password(&Secret::from("pw"), FAST).expect("hash");
        assert!(matches!(
            StoredHash::parse(&ok, &tight),
            Err(HashError::Policy { .. })
        ));
    }

    /// A well-formed PHC string at `m`, `t` (salt and tag are placeholders: parsing checks
    /// the policy, not the password).
    fn phc_at(m: u32, t: u32) -> String {
        format!("$argon2id$v=19$m={m},t={t},p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
    }

    fn accepted(policy: &HashPolicy, m: u32, t: u32) -> bool {
        StoredHash::parse(&phc_at(m, t), policy).is_ok()
    }

    #[test]
    fn the_default_floor_is_owasps_table() {
        let p = HashPolicy::default();
        for (t, m) in OWASP_ARGON2ID {
            assert!(accepted(&p, m, t), "OWASP row m={m},t={t}");
            assert!(!accepted(&p, m - 1, t), "just below m={m},t={t}");
        }
        // Past the table the cost continues, but never under OWASP's least memory row.
        assert!(accepted(&p, 7168, 8) && !accepted(&p, 7167, 8));
        assert_eq!(owasp_m_kib(10), 3584);
        let err = StoredHash::parse(&phc_at(47103, 1), &p).expect_err("below");
        assert!(err.to_string().contains("at t=1 m >= 47104 KiB"), "{err}");
    }

    /// The settings name one row and scale the table: what passed under the old separate
    /// floors (m >= min_m_kib and t >= min_t) still passes, and raising a setting raises
    /// every row.
    #[test]
    fn the_settings_scale_every_row() {
        let doubled = HashPolicy {
            min_m_kib: 38912,
            ..HashPolicy::default()
        };
        for (t, m) in OWASP_ARGON2ID {
            assert_eq!(doubled.floor_m_kib(t), 2 * u64::from(m), "t={t}");
        }
        assert!(!accepted(&doubled, 47104, 1) && accepted(&doubled, 94208, 1));
        // Named at another row: 64 MiB at t=3 is OWASP's t=3 row times 16/3.
        let t3 = HashPolicy {
            min_m_kib: 65536,
            min_t: 3,
            ..HashPolicy::default()
        };
        assert_eq!(t3.floor_m_kib(3), 65536);
        assert_eq!(t3.floor_m_kib(1), 251_222, "ceil(47104 * 65536 / 12288)");
        assert_eq!(t3.floor_m_kib(5), 38230, "ceil(7168 * 65536 / 12288)");
        // A min_t past the table is still a floor on iterations (an attack: with a flat last
        // row, m=19456,t=5 passed a policy of 19456 KiB at t=10).
        let t10 = HashPolicy {
            min_t: 10,
            ..HashPolicy::default()
        };
        assert!(accepted(&t10, 19456, 10) && !accepted(&t10, 19456, 5));
        assert_eq!(t10.floor_m_kib(5), 38912);
        // A low min_t scales rows down, but not under 7 MiB.
        let t1 = HashPolicy {
            min_t: 1,
            ..HashPolicy::default()
        };
        assert_eq!(t1.floor_m_kib(5), 7168, "not ceil(7168 * 19456 / 47104) = 2961");
        for p in [HashPolicy::default(), doubled, t3, t10, t1] {
            for t in p.min_t..=p.max_t {
                assert!(accepted(&p, p.min_m_kib, t), "old floor m={},t={t}", p.min_m_kib);
            }
        }
    }

    #[test]
    fn ceilings_still_hold() {
        let p = HashPolicy::default();
        assert!(!accepted(&p, p.max_m_kib + 1, 2));
        assert!(!accepted(&p, 65536, p.max_t + 1));
        let wide = "$argon2id$v=19$m=65536,t=3,p=5$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(StoredHash::parse(wide, &p).is_err());
    }

    #[test]
    fn rejects_other_algorithms_and_garbage() {
        let p = HashPolicy::default();
        assert_eq!(StoredHash::parse("plaintext", &p), Err(HashError::NotPhc));
        let argon2i = "$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$7Zsb2iZ3qQ0zLwD1c7YgOs3k8x0A2zY8j4bXkDqP0mE";
        assert!(matches!(
            StoredHash::parse(argon2i, &p),
            Err(HashError::Algorithm(_))
        ));
        assert_eq!(
            StoredHash::parse("$argon2id$v=19$m=65536,t=3,p=1", &p),
            Err(HashError::NotPhc)
        );
        assert!(matches!(
            hash_password(&Secret::from("x"), Cost { m_kib: 1, t: 0, p: 0 }),
            Err(HashError::Params(_))
        ));
    }

    #[test]
    fn precomputed_dummies_are_valid_at_their_cost() {
        assert_eq!(PRECOMPUTED.len(), 5);
        for phc in PRECOMPUTED {
            let parsed = PasswordHash::new(phc).expect("phc");
            let p = Params::try_from(&parsed).expect("params");
            let cost = Cost {
                m_kib: p.m_cost(),
                t: p.t_cost(),
                p: p.p_cost(),
            };
            assert_eq!(dummy_hash(cost).expose(), *phc, "table used for {cost}");
        }
        assert_eq!(dummy_hash(Cost::DEFAULT).cost(), Cost::DEFAULT);
    }

    #[test]
    fn dummy_hash_is_cached_per_cost() {
        let odd = Cost {
            m_kib: 20480,
            t: 2,
            p: 1,
        }; // not precomputed: generated once
        let a = dummy_hash(odd);
        let b = dummy_hash(odd);
        assert_eq!(a.expose(), b.expose());
        assert_eq!(a.cost(), odd);
        assert!(!a.verify(&Secret::from("")));
    }
}
