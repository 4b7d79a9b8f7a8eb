//! The provider's own JSON list: an array of objects with the fields of the CSV format;
//! multi-valued fields are arrays of strings. Unknown fields are rejected.

use super::own_csv::{OwnRecord, build};
use super::{Source, check_unique, utf8};
use crate::error::{ParseError, ParseProblem};
use crate::model::{ListEntry, ListId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    id: String,
    kind: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    birth_date: Vec<String>,
    #[serde(default)]
    countries: Vec<String>,
    #[serde(default)]
    identifiers: Vec<String>,
    #[serde(default)]
    remarks: Option<String>,
}

/// Parses the provider's JSON list.
pub fn parse(list: &ListId, src: &Source<'_>) -> Result<Vec<ListEntry>, ParseError> {
    let text = utf8(src)?;
    let records: Vec<JsonRecord> = serde_json::from_str(text).map_err(|e| {
        let problem = if e.is_eof() {
            ParseProblem::Truncated {
                detail: e.to_string(),
            }
        } else {
            ParseProblem::Malformed {
                detail: e.to_string(),
            }
        };
        ParseError::new(
            src.name,
            Some(format!("line {} column {}", e.line(), e.column())),
            problem,
        )
    })?;
    let mut entries = Vec::with_capacity(records.len());
    let mut where_ = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let rec = OwnRecord {
            id: &r.id,
            kind: &r.kind,
            name: &r.name,
            aliases: r.aliases.iter().map(String::as_str).collect(),
            birth_dates: r.birth_date.iter().map(String::as_str).collect(),
            countries: r.countries.iter().map(String::as_str).collect(),
            identifiers: r.identifiers.iter().map(String::as_str).collect(),
            remarks: r.remarks.as_deref().unwrap_or(""),
        };
        let location = format!("record {}", i + 1);
        entries.push(
            build(list, &rec).map_err(|p| ParseError::new(src.name, Some(location.clone()), p))?,
        );
        where_.push(location);
    }
    check_unique(src.name, &entries, &where_)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_fields() {
        let ok =
            r#"[{"id":"v1","kind":"vessel","name":"MV Ocean Star","identifiers":["imo:9187629"]}]"#;
        let e = parse(&ListId::new("own"), &Source::new("own.json", ok.as_bytes())).unwrap();
        assert_eq!(e[0].identifiers[0].normalized, "9187629");
        let bad = r#"[{"id":"v1","kind":"vessel","name":"X","colour":"red"}]"#;
        let err = parse(
            &ListId::new("own"),
            &Source::new("own.json", bad.as_bytes()),
        )
        .unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-MALFORMED");
        assert!(err.to_string().contains("colour"));
        let cut = r#"[{"id":"v1","kind":"vessel","#;
        let err = parse(
            &ListId::new("own"),
            &Source::new("own.json", cut.as_bytes()),
        )
        .unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-TRUNCATED");
    }
}
