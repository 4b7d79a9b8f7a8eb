//! List parsers. Each takes the file bytes (no IO here) plus a display name for errors and
//! returns `ListEntry`s or a `ParseError` naming file, line or record, and the problem.
//! Parsers never panic (proptests and fuzz targets feed them arbitrary bytes).

pub mod ftm_jsonl;
pub mod ofac_legacy;
pub mod own_csv;
pub mod own_json;
pub mod remarks;
pub mod un_xml;

use crate::error::{ParseError, ParseProblem};
use crate::model::ListEntry;
use std::collections::HashMap;

/// A file handed to a parser: its name (for error messages) and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

impl<'a> Source<'a> {
    pub fn new(name: &'a str, bytes: &'a [u8]) -> Self {
        Self { name, bytes }
    }
}

/// Strict UTF-8: the error names the line and byte of the first invalid sequence.
pub(crate) fn utf8<'a>(src: &Source<'a>) -> Result<&'a str, ParseError> {
    std::str::from_utf8(src.bytes).map_err(|e| {
        let off = e.valid_up_to();
        let line = src
            .bytes
            .get(..off)
            .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
            + 1;
        ParseError::at_line(
            src.name,
            line as u64,
            ParseProblem::Encoding { byte_offset: off },
        )
    })
}

/// Refuses duplicate entry ids; `where_` gives the location of each entry.
pub(crate) fn check_unique(
    file: &str,
    entries: &[ListEntry],
    where_: &[String],
) -> Result<(), ParseError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if let Some(first) = seen.insert(e.entry_id.as_str(), i) {
            return Err(ParseError::new(
                file,
                where_.get(i).cloned(),
                ParseProblem::DuplicateId {
                    entry_id: e.entry_id.clone(),
                    first_seen: where_.get(first).cloned().unwrap_or_default(),
                },
            ));
        }
    }
    Ok(())
}

/// Splits a `;`-separated multi-value field.
pub(crate) fn multi(field: &str) -> impl Iterator<Item = &str> {
    field.split(';').map(str::trim).filter(|s| !s.is_empty())
}
