//! OpenSanctions / FollowTheMoney entities, one JSON object per line:
//! `{"id": …, "schema": "Person", "properties": {"name": [..], "alias": [..], …}}`.
//! Schemata Person, Company, Organization, LegalEntity, Vessel, Airplane are read; other
//! schemata (Address, Sanction, Ownership …) are skipped because they are not parties.

use super::{Source, check_unique, utf8};
use crate::error::{ParseError, ParseProblem};
use crate::model::{
    BirthDate, CountryRole, EntryKind, Identifier, IdentifierKind, ListEntry, ListId, NameKind,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct FtmEntity {
    id: String,
    schema: String,
    #[serde(default)]
    properties: BTreeMap<String, Vec<serde_json::Value>>,
}

fn kind_of(schema: &str) -> Option<EntryKind> {
    Some(match schema {
        "Person" => EntryKind::Person,
        "Company" | "Organization" | "LegalEntity" | "PublicBody" => EntryKind::Entity,
        "Vessel" => EntryKind::Vessel,
        "Airplane" => EntryKind::Aircraft,
        _ => return None,
    })
}

/// Parses FollowTheMoney JSON lines.
pub fn parse(list: &ListId, src: &Source<'_>) -> Result<Vec<ListEntry>, ParseError> {
    let text = utf8(src)?;
    let mut entries = Vec::new();
    let mut where_ = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = (i + 1) as u64;
        if line.trim().is_empty() {
            continue;
        }
        let ent: FtmEntity = serde_json::from_str(line).map_err(|e| {
            let problem = if e.is_eof() {
                ParseProblem::Truncated {
                    detail: e.to_string(),
                }
            } else {
                ParseProblem::Malformed {
                    detail: e.to_string(),
                }
            };
            ParseError::at_line(src.name, line_no, problem)
        })?;
        let Some(kind) = kind_of(&ent.schema) else {
            continue;
        };
        let strings = |prop: &str| -> Vec<&str> {
            ent.properties
                .get(prop)
                .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default()
        };
        let mut e = ListEntry::new(list.clone(), ent.id.trim(), kind);
        if e.entry_id.is_empty() {
            return Err(ParseError::at_line(
                src.name,
                line_no,
                ParseProblem::MissingField { field: "id".into() },
            ));
        }
        for (prop, nk) in [
            ("name", NameKind::Primary),
            ("alias", NameKind::Aka),
            ("previousName", NameKind::Fka),
            ("weakAlias", NameKind::Weak),
        ] {
            for n in strings(prop) {
                let nk = if nk == NameKind::Primary && !e.names.is_empty() {
                    NameKind::Aka
                } else {
                    nk
                };
                e.push_name(n, nk);
            }
        }
        if e.names.is_empty() {
            return Err(ParseError::at_line(
                src.name,
                line_no,
                ParseProblem::MissingField {
                    field: "properties.name".into(),
                },
            ));
        }
        for d in strings("birthDate") {
            if let Some(b) = BirthDate::parse_loose(d) {
                e.push_birth_date(b);
            }
        }
        for (prop, role) in [
            ("nationality", CountryRole::Nationality),
            ("citizenship", CountryRole::Citizenship),
            ("country", CountryRole::Other),
            ("jurisdiction", CountryRole::Registration),
            ("flag", CountryRole::Registration),
            ("birthCountry", CountryRole::BirthPlace),
        ] {
            for c in strings(prop) {
                e.push_country(c, role);
            }
        }
        for (prop, ik) in [
            ("passportNumber", IdentifierKind::Passport),
            ("idNumber", IdentifierKind::NationalId),
            ("taxNumber", IdentifierKind::Tax),
            ("innCode", IdentifierKind::Tax),
            ("vatCode", IdentifierKind::Tax),
            ("imoNumber", IdentifierKind::Imo),
            ("registrationNumber", IdentifierKind::Registration),
            ("ogrnCode", IdentifierKind::Registration),
            ("email", IdentifierKind::Email),
            ("cryptoWallet", IdentifierKind::Wallet),
            ("publicKey", IdentifierKind::Wallet),
        ] {
            for v in strings(prop) {
                e.push_identifier(Identifier::new(ik, v));
            }
        }
        e.programs = strings("program").into_iter().map(str::to_owned).collect();
        if let Some(g) = strings("gender").first() {
            e.gender = Some((*g).to_owned());
        }
        let notes = strings("notes").join(" ");
        e.remarks = (!notes.is_empty()).then_some(notes);
        entries.push(e);
        where_.push(format!("line {line_no}"));
    }
    check_unique(src.name, &entries, &where_)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_people_and_skips_other_schemata() {
        let text = concat!(
            r#"{"id":"Q1","schema":"Person","properties":{"name":["Ivan Petrov"],"alias":["Иван Петров"],"birthDate":["1970-05-01"],"nationality":["ru"],"passportNumber":["7201 123456"]}}"#,
            "\n",
            r#"{"id":"s1","schema":"Sanction","properties":{"program":["X"]}}"#,
            "\n"
        );
        let e = parse(&ListId::new("os"), &Source::new("e.jsonl", text.as_bytes())).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].names.len(), 2);
        assert_eq!(e[0].countries[0].code.as_deref(), Some("RU"));
        assert_eq!(e[0].identifiers[0].normalized, "7201123456");
        let err = parse(&ListId::new("os"), &Source::new("e.jsonl", b"{\"id\":")).unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-TRUNCATED");
    }
}
