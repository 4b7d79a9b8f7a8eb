//! The one integration-test binary: boots the real server (in process, on port 0, over a fresh
//! database) or the real `cip` binary, and talks HTTP to it. Scenarios that touch storage run
//! on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod access;
mod access_faults;
mod access_stream;
mod audit;
mod auth;
mod customers;
mod encryption;
mod faults;
mod geo;
mod lifecycle;
mod notices;
mod policy;
mod policy_lifecycle;
mod reviews;
mod screen_keys;
mod screening;
mod smtp;
mod special_measures;
mod system;
mod validation;
mod verification;
