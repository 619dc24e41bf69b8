//! OAuth 2.0 client credentials (issue 14), the pure part: the issuer's ports, client
//! registrations (the `oauth` object of a user entry), JWK public keys and the JWS format of
//! access tokens and client assertions.
//!
//! # Layout
//! - [`ports`]: `TokenSigner` and `JtiStore`, implemented by the server and the AWS adapters.
//! - [`client`]: `OAuthClient`, the registration, and its validation.
//! - [`jwk`]: `VerifyingKey` from a JWK; the RS256 / ES256 signature check.
//! - [`jwt`]: compact JWS parsing and checks; `AccessClaims` (RFC 9068).

pub mod client;
pub mod jwk;
pub mod jwt;
pub mod ports;

pub use client::{AuthMethod, ClientProblem, OAuthClient};
pub use jwk::VerifyingKey;
pub use jwt::{AccessClaims, Expect, Invalid, Jws};
pub use ports::{Alg, JtiStore, PublicJwk, SignError, TokenSigner};
