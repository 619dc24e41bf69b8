//! The OAuth 2.0 client-credentials issuer of the standalone server and the Lambda proxy
//! (issue 14): signing keys, the `jti` stores, client authentication through the [`Gate`], token
//! issuance, and bearer-token acceptance. No HTTP here: `http::oauth` maps these to answers.
//!
//! # Layout
//! - `keyset`: the key set directory (PEM files and the `keys.json` schedule).
//! - `signer`: `LocalSigner`, the `TokenSigner` over the key set, publish-before-sign.
//! - `jti`: the memory and file `JtiStore`s (revoked tokens, used assertion ids).
//!
//! [`Gate`]: crate::decide::Gate

pub mod jti;
pub mod keyset;
pub mod signer;
