//! authserver-core: the pure domain of the Basic-auth authorization server.
//!
//! No HTTP, no AWS, no async runtime: the adapters in the `authserver` crate feed it bytes and
//! snapshots and run its [`VerifyTask`]s where they like.
//!
//! # Layout
//! - [`secret`]: `Secret`, the redacting, zeroizing holder for passwords.
//! - [`credentials`]: `Authorization: Basic` parsing into our own `Credentials`.
//! - [`hash`]: Argon2id PHC hashes, the parameter policy, hashing and the dummy hash.
//! - [`legacy`] (in `hash`): bcrypt and SHA-crypt hashes imported from htpasswd files (`hash.legacy`).
//! - [`names`]: which usernames and roles are accepted; escaping for display.
//! - [`record`]: the stored format (`UserRecord`, `StoreDocument`) and why an entry is refused.
//! - [`document`]: the strict store-document parser (duplicate keys refused, BOM skipped).
//! - [`store`]: the immutable `Snapshot` built from a document (with the alternate hashes a
//!   rotation's pending or previous version contributes); re-exports the stored format.
//! - `table` (private): the snapshot's users as a slab and an index, role lists interned, and
//!   the builder entries stream into.
//! - [`source`]: the `SnapshotSource` port credential stores implement (with `Lookup`, a
//!   per-user store's answer that may need one fetch).
//! - [`cache`]: the verified-credential cache (HMAC keys, LRU, TTL, generation).
//! - [`authenticator`]: the two-phase decision with its reason.
//! - [`keyed`]: `UserHasher`, the keyed `user_hash` logs carry instead of usernames.
//! - [`clock`]: time as a port, and the wall clock (`now_ms`) every layer stamps with.
//! - [`regulation`]: brute-force regulation logic and the `RegulationStore` port.
//! - [`audit`]: the audit event type and the `AuditSink` port.
//! - [`rules`]: access rules (host, path, method, network → bypass, deny or allow a subject)
//!   and the path normalisation they match on.
//! - [`oauth`]: the OAuth 2.0 issuer's ports (`TokenSigner`, `JtiStore`) and token format.

pub mod audit;
pub mod authenticator;
pub mod cache;
pub mod clock;
pub mod credentials;
pub mod document;
pub mod hash;
pub mod keyed;
pub mod names;
pub mod oauth;
pub mod record;
pub mod regulation;
pub mod rules;
pub mod secret;
pub mod source;
pub mod store;
mod table;

pub use audit::{AuditEvent, AuditSink, NoAudit, OAuthRequest};
pub use authenticator::{
    Authenticator, CacheUse, Decision, FlightKey, Outcome, Reason, Step, Verified, VerifyTask,
};
pub use cache::VerifiedCache;
pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::{Credentials, Malformed, ParseError};
pub use hash::legacy;
pub use hash::{Cost, HashError, HashPolicy, OWASP_ARGON2ID, StoredHash, hash_password};
pub use keyed::UserHasher;
pub use secret::Secret;
pub use source::{Lookup, SnapshotSource, StoreCounters, StoreStatus, Unavailable};
pub use store::{
    AlternateKind, Alternates, RefusedEntry, Snapshot, Status, StoreDocument, StoreError, UserRecord,
    parse_document,
};
