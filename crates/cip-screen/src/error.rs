//! The two error types of this crate, each with stable, greppable codes.

use serde::Serialize;

/// What went wrong while parsing a list file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ParseProblem {
    #[error("not valid UTF-8 at byte {byte_offset}")]
    Encoding { byte_offset: usize },
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("malformed: {detail}")]
    Malformed { detail: String },
    #[error("missing required field `{field}`")]
    MissingField { field: String },
    #[error("invalid value for `{field}`: {detail}")]
    InvalidValue { field: String, detail: String },
    #[error("duplicate entry id `{entry_id}` (first seen at {first_seen})")]
    DuplicateId {
        entry_id: String,
        first_seen: String,
    },
    #[error("reference to unknown entry id `{entry_id}`")]
    UnknownEntry { entry_id: String },
    #[error("file is truncated: {detail}")]
    Truncated { detail: String },
}

/// A parse error naming the file, the line (or record) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{file}:{}: {problem}", location.as_deref().unwrap_or("-"))]
pub struct ParseError {
    pub file: String,
    /// `line 12`, `record 7`, `byte 1024`.
    pub location: Option<String>,
    pub problem: ParseProblem,
}

impl ParseError {
    pub fn new(file: &str, location: Option<String>, problem: ParseProblem) -> Self {
        Self {
            file: file.to_owned(),
            location,
            problem,
        }
    }

    pub fn at_line(file: &str, line: u64, problem: ParseProblem) -> Self {
        Self::new(file, Some(format!("line {line}")), problem)
    }

    /// Stable code for logs and API answers.
    pub fn code(&self) -> &'static str {
        match self.problem {
            ParseProblem::Encoding { .. } => "CIP-SCREEN-PARSE-ENCODING",
            ParseProblem::FieldCount { .. } => "CIP-SCREEN-PARSE-FIELD-COUNT",
            ParseProblem::Malformed { .. } => "CIP-SCREEN-PARSE-MALFORMED",
            ParseProblem::MissingField { .. } => "CIP-SCREEN-PARSE-MISSING-FIELD",
            ParseProblem::InvalidValue { .. } => "CIP-SCREEN-PARSE-INVALID-VALUE",
            ParseProblem::DuplicateId { .. } => "CIP-SCREEN-PARSE-DUPLICATE-ID",
            ParseProblem::UnknownEntry { .. } => "CIP-SCREEN-PARSE-UNKNOWN-ENTRY",
            ParseProblem::Truncated { .. } => "CIP-SCREEN-PARSE-TRUNCATED",
        }
    }
}

/// Errors of screening and snapshot replacement.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ScreenError {
    #[error("the query has no name (or only punctuation)")]
    EmptyName,
    #[error("a query name is {len} characters long; the limit is {max}")]
    NameTooLong { len: usize, max: usize },
    #[error("a query name contains control characters")]
    ControlCharacters,
    #[error("the query has {count} names; the limit is {max}")]
    TooManyNames { count: usize, max: usize },
    #[error("invalid query {field}: {detail}")]
    InvalidField { field: String, detail: String },
    #[error("the new list is empty; refusing to replace a list of {previous} entries")]
    EmptyReplacement { previous: usize },
    #[error(
        "the new list has {new} entries, {previous} before: shrinks by more than {max_shrink_percent}%"
    )]
    DrasticShrink {
        previous: usize,
        new: usize,
        max_shrink_percent: u8,
    },
    #[error("the new snapshot is for list `{new}`, not `{previous}`")]
    ListMismatch { previous: String, new: String },
}

impl ScreenError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyName => "CIP-SCREEN-EMPTY-NAME",
            Self::NameTooLong { .. } => "CIP-SCREEN-NAME-TOO-LONG",
            Self::ControlCharacters => "CIP-SCREEN-CONTROL-CHARACTERS",
            Self::TooManyNames { .. } => "CIP-SCREEN-TOO-MANY-NAMES",
            Self::InvalidField { .. } => "CIP-SCREEN-INVALID-FIELD",
            Self::EmptyReplacement { .. } => "CIP-SCREEN-EMPTY-REPLACEMENT",
            Self::DrasticShrink { .. } => "CIP-SCREEN-DRASTIC-SHRINK",
            Self::ListMismatch { .. } => "CIP-SCREEN-LIST-MISMATCH",
        }
    }
}
