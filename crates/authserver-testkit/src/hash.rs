//! Cheap Argon2id costs: verification dominates test time, so tests hash at the lowest cost
//! the policy in force accepts.

use authserver_core::{Cost, HashPolicy, Secret, hash_password};

/// The cheapest cost the default policy accepts (the server's own tests and binaries).
pub const FAST: Cost = Cost {
    m_kib: 19456,
    t: 2,
    p: 1,
};

/// A cost at the floor of [`policy`]: microseconds per hash.
pub const CHEAP: Cost = Cost {
    m_kib: 64,
    t: 1,
    p: 1,
};

/// A cost below [`policy`]'s floor, so a store refuses it.
pub const WEAK: Cost = Cost {
    m_kib: 32,
    t: 1,
    p: 1,
};

/// A policy cheap enough for [`CHEAP`] hashes; [`WEAK`] is below its floor.
pub fn policy() -> HashPolicy {
    HashPolicy {
        min_m_kib: 64,
        min_t: 1,
        max_m_kib: 65536,
        max_t: 4,
        max_p: 2,
        legacy: false,
    }
}

/// The PHC string of `password` at `cost`.
pub fn hash(password: &str, cost: Cost) -> String {
    hash_password(&Secret::from(password), cost).unwrap()
}
