//! Credential store adapters behind the core's `SnapshotSource` port.
//!
//! # Layout
//! - [`file`]: the JSON file store (the embedded default), polled for changes, and the locked,
//!   atomic edits of that file the `users` commands make.

pub mod file;

pub use authserver_core::source::{SnapshotSource, StoreStatus, Unavailable};
