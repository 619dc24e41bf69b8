//! OAuth 2.0 client credentials (issue 14): the ports of the token issuer. The JWT format,
//! client registrations and the endpoints build on these.

pub mod ports;

pub use ports::{Alg, JtiStore, PublicJwk, SignError, TokenSigner};
