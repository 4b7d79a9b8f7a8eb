//! Sanctions screening engine: list parsers into one domain model, snapshots and diffs,
//! name normalisation, a candidate index and explained scoring, and evaluation helpers.
//!
//! Pure library: it reads from `std::io::Read`/`&[u8]` handed to it and never depends on
//! an async runtime, a database or HTTP (CI checks `cargo tree -i` for tokio, sqlx, axum).

pub mod countries;
pub mod legal;
pub mod model;
pub mod normalize;
pub mod score;

pub use model::{
    BirthDate, CountryRole, EntryCountry, EntryKind, EntryName, Identifier, IdentifierKind,
    ListEntry, ListId, NameKind,
};
pub mod eval;

pub use score::{MatchHow, NameExplanation, TokenAlignment};

/// Default threshold: a candidate at or above it is a potential match for review.
pub const DEFAULT_THRESHOLD: f32 = 0.8;
pub mod error;
pub mod parse;

pub use error::{ParseError, ParseProblem, ScreenError};
pub mod index;
pub mod snapshot;

pub use index::{
    Agreement, BoundScratch, Candidate, ChangeBound, Explanation, IdentifierEvidence, Index,
    PreparedQuery, Query, QueryIdentifier, SCREEN_KEYS_VERSION, Work, YearMasks, YearSignature,
};
pub use snapshot::{ListDiff, ReplacePolicy, Snapshot, diff};
