//! OFAC legacy "delimited" CSV set: `sdn.csv` (or `cons_prim.csv`) plus optional
//! `alt.csv`, `add.csv` and `sdn_comments.csv` (`cons_alt`/`cons_add`/`cons_comments`).
//!
//! Layout: no header; `-0- ` is the null marker; CRLF line endings; a trailing 0x1A
//! (Ctrl-Z) byte. The comments file carries the overflow of the Remarks field and is
//! appended to it verbatim.
//!
//! Encoding decision: OFAC publishes these files in a single-byte Windows code page. We
//! accept UTF-8 as is; bytes that are not valid UTF-8 are transcoded from Windows-1252
//! (every byte has a meaning there, so this cannot fail and never guesses wrong for ASCII).

use super::{Source, check_unique, remarks};
use crate::error::{ParseError, ParseProblem};
use crate::model::{CountryRole, EntryKind, ListEntry, ListId, NameKind};
use std::borrow::Cow;
use std::collections::HashMap;

/// The files of one OFAC legacy list.
#[derive(Debug, Clone, Copy)]
pub struct OfacFiles<'a> {
    pub primary: Source<'a>,
    pub alt: Option<Source<'a>>,
    pub add: Option<Source<'a>>,
    pub comments: Option<Source<'a>>,
}

/// Decodes bytes: UTF-8 if valid, else Windows-1252.
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| cp1252(b)).collect()),
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH
            .get(usize::from(b - 0x80))
            .copied()
            .unwrap_or('\u{FFFD}'),
        _ => char::from(b),
    }
}

fn null(field: &str) -> Option<&str> {
    let t = field.trim();
    (!t.is_empty() && t != "-0-").then_some(t)
}

/// Reads one legacy CSV into records of exactly `expected` fields, with line numbers.
fn records(src: &Source<'_>, expected: usize) -> Result<Vec<(u64, Vec<String>)>, ParseError> {
    let text = decode(src.bytes);
    // Drop the trailing Ctrl-Z end-of-file marker.
    let text = text.trim_end_matches(['\u{1A}', '\r', '\n', ' ']);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                return Err(ParseError::at_line(
                    src.name,
                    line,
                    ParseProblem::Malformed {
                        detail: e.to_string(),
                    },
                ));
            }
        }
        let line = rec.position().map_or(line, |p| p.line());
        if rec.len() == 1 && rec.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue;
        }
        if rec.len() != expected {
            return Err(ParseError::at_line(
                src.name,
                line,
                ParseProblem::FieldCount {
                    expected,
                    found: rec.len(),
                },
            ));
        }
        out.push((line, rec.iter().map(str::to_owned).collect()));
    }
    Ok(out)
}

fn kind_of(sdn_type: &str) -> EntryKind {
    match null(sdn_type).map(str::to_ascii_lowercase).as_deref() {
        None => EntryKind::Entity,
        Some("individual") => EntryKind::Person,
        Some("vessel") => EntryKind::Vessel,
        Some("aircraft") => EntryKind::Aircraft,
        Some(_) => EntryKind::Unknown,
    }
}

/// OFAC writes individuals `LAST, First`; screening wants `First LAST` (order does not
/// matter to the scorer, but explanations and alias joins read better).
fn display_name(raw: &str, kind: EntryKind) -> String {
    if kind == EntryKind::Person
        && let Some((last, first)) = raw.split_once(", ")
    {
        return format!("{} {}", first.trim(), last.trim());
    }
    raw.trim().to_owned()
}

fn field(rec: &[String], i: usize) -> &str {
    rec.get(i).map_or("", String::as_str)
}

/// Parses an OFAC legacy list.
pub fn parse(list: &ListId, files: &OfacFiles<'_>) -> Result<Vec<ListEntry>, ParseError> {
    let prim = records(&files.primary, 12)?;
    let mut entries: Vec<ListEntry> = Vec::with_capacity(prim.len());
    let mut where_: Vec<String> = Vec::with_capacity(prim.len());
    let mut remarks_text: Vec<String> = Vec::with_capacity(prim.len());
    for (line, rec) in &prim {
        let id = field(rec, 0).trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::at_line(
                files.primary.name,
                *line,
                ParseProblem::InvalidValue {
                    field: "ent_num".into(),
                    detail: format!("`{id}` is not a number"),
                },
            ));
        }
        let kind = kind_of(field(rec, 2));
        let mut e = ListEntry::new(list.clone(), id, kind);
        let Some(name) = null(field(rec, 1)) else {
            return Err(ParseError::at_line(
                files.primary.name,
                *line,
                ParseProblem::MissingField {
                    field: "SDN_Name".into(),
                },
            ));
        };
        e.push_name(&display_name(name, kind), NameKind::Primary);
        if let Some(p) = null(field(rec, 3)) {
            e.programs = p
                .split([';', ']', '['])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(flag) = null(field(rec, 9)) {
            e.push_country(flag, CountryRole::Registration);
        }
        where_.push(format!("line {line}"));
        remarks_text.push(null(field(rec, 11)).unwrap_or("").to_owned());
        entries.push(e);
    }
    check_unique(files.primary.name, &entries, &where_)?;
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.entry_id.clone(), i))
        .collect();
    let lookup = |src: &Source<'_>, line: u64, id: &str| -> Result<usize, ParseError> {
        index.get(id.trim()).copied().ok_or_else(|| {
            ParseError::at_line(
                src.name,
                line,
                ParseProblem::UnknownEntry {
                    entry_id: id.trim().to_owned(),
                },
            )
        })
    };
    if let Some(src) = &files.comments {
        for (line, rec) in records(src, 2)? {
            let i = lookup(src, line, field(&rec, 0))?;
            if let (Some(r), Some(more)) = (remarks_text.get_mut(i), null(field(&rec, 1))) {
                r.push_str(more);
            }
        }
    }
    if let Some(src) = &files.alt {
        for (line, rec) in records(src, 5)? {
            let i = lookup(src, line, field(&rec, 0))?;
            let Some(e) = entries.get_mut(i) else {
                continue;
            };
            let Some(name) = null(field(&rec, 3)) else {
                continue;
            };
            let kind = match null(field(&rec, 2)).map(str::to_ascii_lowercase).as_deref() {
                Some("fka") => NameKind::Fka,
                Some("nka") => NameKind::Nka,
                Some("aka") | None => NameKind::Aka,
                Some(_) => NameKind::Weak,
            };
            let kind =
                if null(field(&rec, 4)).is_some_and(|r| r.to_ascii_lowercase().contains("weak")) {
                    NameKind::Weak
                } else {
                    kind
                };
            let entry_kind = e.kind;
            e.push_name(&display_name(name, entry_kind), kind);
        }
    }
    if let Some(src) = &files.add {
        for (line, rec) in records(src, 6)? {
            let i = lookup(src, line, field(&rec, 0))?;
            if let (Some(e), Some(country)) = (entries.get_mut(i), null(field(&rec, 4))) {
                e.push_country(country, CountryRole::Address);
            }
        }
    }
    for (e, r) in entries.iter_mut().zip(&remarks_text) {
        remarks::apply(e, r);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_set() {
        let sdn = b"36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n7555,\"ZIMONDI, Paradzai\",\"individual\",\"ZIMBABWE\",\"Chief\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 04 Mar 1947; Zimbabwe Prisons Chief.\"\r\n\x1a";
        let alt = b"36,12,\"aka\",\"AERO-CARIBBEAN\",-0- \r\n";
        let files = OfacFiles {
            primary: Source::new("sdn.csv", sdn),
            alt: Some(Source::new("alt.csv", alt)),
            add: None,
            comments: None,
        };
        let e = parse(&ListId::new("ofac-sdn"), &files).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].names.len(), 2);
        assert_eq!(e[1].primary_name(), "Paradzai ZIMONDI");
        assert_eq!(e[1].birth_dates.len(), 1);
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        let sdn = b"36,\"A\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n||||\n";
        let files = OfacFiles {
            primary: Source::new("sdn.csv", sdn),
            alt: None,
            add: None,
            comments: None,
        };
        let err = parse(&ListId::new("x"), &files).unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-FIELD-COUNT");
        assert_eq!(err.location.as_deref(), Some("line 2"));
    }

    #[test]
    fn latin1_is_transcoded() {
        assert_eq!(decode(b"Soci\xe9t\xe9"), "Société");
    }
}
