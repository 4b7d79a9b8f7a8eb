//! The provider's own simple list CSV. Header (exactly, in this order):
//! `id,kind,name,aliases,birth_date,countries,identifiers,remarks`.
//! `aliases`, `birth_date`, `countries` and `identifiers` take `;`-separated values; an
//! identifier is `type:value` with type one of `passport`, `national_id`, `tax`, `imo`,
//! `wallet` (value `TICKER:address` or just the address), `email`, `registration`,
//! `other`. UTF-8 only.

use super::{Source, check_unique, multi, utf8};
use crate::error::{ParseError, ParseProblem};
use crate::model::{
    BirthDate, CountryRole, EntryKind, Identifier, IdentifierKind, ListEntry, ListId, NameKind,
};

pub const HEADER: [&str; 8] = [
    "id",
    "kind",
    "name",
    "aliases",
    "birth_date",
    "countries",
    "identifiers",
    "remarks",
];

/// The fields of one record of the provider's formats (CSV and JSON share it).
#[derive(Debug, Default)]
pub(crate) struct OwnRecord<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub aliases: Vec<&'a str>,
    pub birth_dates: Vec<&'a str>,
    pub countries: Vec<&'a str>,
    pub identifiers: Vec<&'a str>,
    pub remarks: &'a str,
}

pub(crate) fn identifier_kind(t: &str) -> Option<IdentifierKind> {
    Some(match t.trim().to_ascii_lowercase().as_str() {
        "passport" => IdentifierKind::Passport,
        "national_id" | "national-id" | "nid" => IdentifierKind::NationalId,
        "tax" | "tax_id" => IdentifierKind::Tax,
        "imo" => IdentifierKind::Imo,
        "wallet" | "crypto" => IdentifierKind::Wallet,
        "email" => IdentifierKind::Email,
        "registration" => IdentifierKind::Registration,
        "other" => IdentifierKind::Other,
        _ => return None,
    })
}

/// Builds an entry from a record; `Err` carries the problem (the caller adds the location).
pub(crate) fn build(list: &ListId, r: &OwnRecord<'_>) -> Result<ListEntry, ParseProblem> {
    let id = r.id.trim();
    if id.is_empty() {
        return Err(ParseProblem::MissingField { field: "id".into() });
    }
    let kind = EntryKind::parse_loose(r.kind).ok_or_else(|| ParseProblem::InvalidValue {
        field: "kind".into(),
        detail: format!("`{}` is not person|entity|vessel|aircraft|unknown", r.kind),
    })?;
    if r.name.trim().is_empty() {
        return Err(ParseProblem::MissingField {
            field: "name".into(),
        });
    }
    let mut e = ListEntry::new(list.clone(), id, kind);
    e.push_name(r.name, NameKind::Primary);
    for a in &r.aliases {
        e.push_name(a, NameKind::Aka);
    }
    for d in &r.birth_dates {
        let parsed = BirthDate::parse_loose(d).ok_or_else(|| ParseProblem::InvalidValue {
            field: "birth_date".into(),
            detail: format!("`{d}` is not a date, a year or `YYYY to YYYY`"),
        })?;
        e.push_birth_date(parsed);
    }
    for c in &r.countries {
        e.push_country(c, CountryRole::Other);
    }
    for raw in &r.identifiers {
        let (t, v) = raw
            .split_once(':')
            .ok_or_else(|| ParseProblem::InvalidValue {
                field: "identifiers".into(),
                detail: format!("`{raw}` is not `type:value`"),
            })?;
        let kind = identifier_kind(t).ok_or_else(|| ParseProblem::InvalidValue {
            field: "identifiers".into(),
            detail: format!("unknown identifier type `{t}`"),
        })?;
        let (scheme, v) = match (kind, v.split_once(':')) {
            (IdentifierKind::Wallet, Some((ticker, addr))) => (Some(ticker.to_owned()), addr),
            _ => (None, v),
        };
        let mut id = Identifier::new(kind, v);
        if id.normalized.is_empty() {
            return Err(ParseProblem::InvalidValue {
                field: "identifiers".into(),
                detail: format!("`{raw}` has an empty value"),
            });
        }
        id.scheme = scheme;
        e.push_identifier(id);
    }
    let remarks = r.remarks.trim();
    e.remarks = (!remarks.is_empty()).then(|| remarks.to_owned());
    Ok(e)
}

/// Parses the provider's CSV list.
pub fn parse(list: &ListId, src: &Source<'_>) -> Result<Vec<ListEntry>, ParseError> {
    let text = utf8(src)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| {
        ParseError::at_line(
            src.name,
            1,
            ParseProblem::Malformed {
                detail: e.to_string(),
            },
        )
    })?;
    let got: Vec<&str> = headers.iter().map(str::trim).collect();
    if got != HEADER {
        return Err(ParseError::at_line(
            src.name,
            1,
            ParseProblem::Malformed {
                detail: format!(
                    "header must be `{}`, found `{}`",
                    HEADER.join(","),
                    got.join(",")
                ),
            },
        ));
    }
    let mut entries = Vec::new();
    let mut where_ = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            ParseError::at_line(
                src.name,
                line,
                ParseProblem::Malformed {
                    detail: e.to_string(),
                },
            )
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != HEADER.len() {
            return Err(ParseError::at_line(
                src.name,
                line,
                ParseProblem::FieldCount {
                    expected: HEADER.len(),
                    found: rec.len(),
                },
            ));
        }
        let f = |i: usize| rec.get(i).unwrap_or("");
        let r = OwnRecord {
            id: f(0),
            kind: f(1),
            name: f(2),
            aliases: multi(f(3)).collect(),
            birth_dates: multi(f(4)).collect(),
            countries: multi(f(5)).collect(),
            identifiers: multi(f(6)).collect(),
            remarks: f(7),
        };
        let e = build(list, &r).map_err(|p| ParseError::at_line(src.name, line, p))?;
        entries.push(e);
        where_.push(format!("line {line}"));
    }
    check_unique(src.name, &entries, &where_)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let ok = "id,kind,name,aliases,birth_date,countries,identifiers,remarks\n\
                  c1,person,Ali Hassan,Ali Hasan;A. Hassan,1960-01-02;1961,IR;Iraq,passport:A123;wallet:XBT:1abc,note\n";
        let e = parse(&ListId::new("own"), &Source::new("own.csv", ok.as_bytes())).unwrap();
        assert_eq!(e[0].names.len(), 3);
        assert_eq!(e[0].identifiers.len(), 2);
        assert_eq!(e[0].countries[0].code.as_deref(), Some("IR"));
        let dup = format!("{ok}c1,entity,X,,,,,\n");
        let err = parse(&ListId::new("own"), &Source::new("own.csv", dup.as_bytes())).unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-DUPLICATE-ID");
        assert_eq!(err.location.as_deref(), Some("line 3"));
        let bad =
            "id,kind,name,aliases,birth_date,countries,identifiers,remarks\nc1,robot,X,,,,,\n";
        let err = parse(&ListId::new("own"), &Source::new("own.csv", bad.as_bytes())).unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-INVALID-VALUE");
        let latin1 = b"id,kind,name,aliases,birth_date,countries,identifiers,remarks\nc1,entity,Soci\xe9t\xe9,,,,,\n";
        let err = parse(&ListId::new("own"), &Source::new("own.csv", latin1)).unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-ENCODING");
    }
}
