//! OAuth 2.0 issuer ports (the adapters live in `authserver` and `authserver-aws`).

pub mod ports;
pub use ports::*;
