//! `cip-server`: the JSON API over HTTP (with its OpenAPI document), authentication and roles,
//! field encryption of records on their way to the store, the audit trail's use, background
//! jobs, configuration and installation set-up.
//!
//! Invariants:
//! - Personal data reaches the store only sealed (see `records::seal`); plaintext exists only
//!   in request/response handling.
//! - No handler returns personal data before the read's audit entry is committed.
//! - Nothing here logs a request body, a header value or a decrypted field.

pub mod access;
pub mod access_stream;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod geoip;
pub mod history;
pub mod install;
pub mod jobs;
pub mod measures;
pub mod policy;
pub mod policy_file;
pub mod records;
pub mod reviews;
pub mod screen_keys;
pub mod screening;
pub mod smtp;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod verification;
pub mod webhooks;
