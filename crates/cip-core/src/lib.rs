//! `cip-core`: the domain of a Customer Identification Program — identity records, accounts,
//! roles — and the parsing of outside input into those types.
//!
//! Invariants:
//! - No IO: this crate never touches a database, a socket, a file or an async runtime.
//! - No serialisation formats: wire and storage shapes live at the boundary (`cip-server`,
//!   `cip-store`) and are converted by hand. A value of a type here is always valid.

pub mod determination;
pub mod lifecycle;
pub mod model;
pub mod mrz;
pub mod parse;
pub mod policy;
