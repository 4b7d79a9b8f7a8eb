//! UN Security Council Consolidated List XML (`<CONSOLIDATED_LIST>` with `<INDIVIDUAL>` and
//! `<ENTITY>` records), read as a stream with quick-xml.

use super::{Source, check_unique, utf8};
use crate::error::{ParseError, ParseProblem};
use crate::model::{
    BirthDate, CountryRole, EntryKind, Identifier, IdentifierKind, ListEntry, ListId, NameKind,
};
use quick_xml::events::Event;

#[derive(Default)]
struct Record {
    kind: Option<EntryKind>,
    id: String,
    name_parts: [String; 4],
    original_script: String,
    list_type: String,
    reference: String,
    comments: String,
    gender: String,
    nationalities: Vec<String>,
    aliases: Vec<(String, String)>,
    alias_quality: String,
    alias_name: String,
    countries: Vec<(String, CountryRole)>,
    dob: DobParts,
    dobs: Vec<BirthDate>,
    doc: DocParts,
    docs: Vec<Identifier>,
}

#[derive(Default)]
struct DobParts {
    date: String,
    year: String,
    from: String,
    to: String,
}

#[derive(Default)]
struct DocParts {
    kind: String,
    number: String,
    country: String,
}

fn doc_kind(t: &str) -> IdentifierKind {
    let t = t.to_ascii_lowercase();
    if t.contains("passport") {
        IdentifierKind::Passport
    } else if t.contains("tax") {
        IdentifierKind::Tax
    } else if t.contains("national") || t.contains("identi") {
        IdentifierKind::NationalId
    } else {
        IdentifierKind::Other
    }
}

/// Parses the UN consolidated list.
pub fn parse(list: &ListId, src: &Source<'_>) -> Result<Vec<ListEntry>, ParseError> {
    let text = utf8(src)?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut path: Vec<String> = Vec::new();
    let mut buf = String::new();
    let mut rec: Option<Record> = None;
    let mut entries = Vec::new();
    let mut where_ = Vec::new();
    let mut saw_root = false;
    let err_at = |pos: u64, problem: ParseProblem| {
        let line = text
            .as_bytes()
            .get(..usize::try_from(pos).unwrap_or(usize::MAX).min(text.len()))
            .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
            + 1;
        ParseError::at_line(src.name, line as u64, problem)
    };
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| {
            err_at(
                reader.error_position(),
                ParseProblem::Malformed {
                    detail: e.to_string(),
                },
            )
        })?;
        match ev {
            Event::Start(s) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "CONSOLIDATED_LIST" {
                        return Err(err_at(
                            pos,
                            ParseProblem::Malformed {
                                detail: format!(
                                    "root element is <{name}>, expected <CONSOLIDATED_LIST>"
                                ),
                            },
                        ));
                    }
                    saw_root = true;
                }
                if name == "INDIVIDUAL" || name == "ENTITY" {
                    rec = Some(Record {
                        kind: Some(if name == "INDIVIDUAL" {
                            EntryKind::Person
                        } else {
                            EntryKind::Entity
                        }),
                        ..Record::default()
                    });
                    where_.push(format!("record {} (byte {pos})", where_.len() + 1));
                }
                path.push(name);
                buf.clear();
            }
            Event::Empty(_) => {}
            Event::Text(t) => {
                let s = t.decode().map_err(|e| {
                    err_at(
                        pos,
                        ParseProblem::Malformed {
                            detail: e.to_string(),
                        },
                    )
                })?;
                buf.push_str(&s);
            }
            Event::CData(t) => buf.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    buf.push(c);
                } else {
                    match r.as_ref() {
                        b"amp" => buf.push('&'),
                        b"lt" => buf.push('<'),
                        b"gt" => buf.push('>'),
                        b"quot" => buf.push('"'),
                        b"apos" => buf.push('\''),
                        other => {
                            return Err(err_at(
                                pos,
                                ParseProblem::Malformed {
                                    detail: format!(
                                        "unknown entity &{};",
                                        String::from_utf8_lossy(other)
                                    ),
                                },
                            ));
                        }
                    }
                }
            }
            Event::End(_) => {
                let Some(name) = path.pop() else { continue };
                let parent = path.last().map(String::as_str).unwrap_or("");
                let value = buf.trim().to_owned();
                buf.clear();
                if name == "INDIVIDUAL" || name == "ENTITY" {
                    if let Some(r) = rec.take() {
                        entries.push(finish(list, r, src.name, where_.last().cloned())?);
                    }
                    continue;
                }
                let Some(r) = rec.as_mut() else { continue };
                match (parent, name.as_str()) {
                    ("INDIVIDUAL" | "ENTITY", "DATAID") => r.id = value,
                    ("INDIVIDUAL" | "ENTITY", "FIRST_NAME") => r.name_parts[0] = value,
                    ("INDIVIDUAL" | "ENTITY", "SECOND_NAME") => r.name_parts[1] = value,
                    ("INDIVIDUAL" | "ENTITY", "THIRD_NAME") => r.name_parts[2] = value,
                    ("INDIVIDUAL" | "ENTITY", "FOURTH_NAME") => r.name_parts[3] = value,
                    ("INDIVIDUAL" | "ENTITY", "NAME_ORIGINAL_SCRIPT") => r.original_script = value,
                    ("INDIVIDUAL" | "ENTITY", "UN_LIST_TYPE") => r.list_type = value,
                    ("INDIVIDUAL" | "ENTITY", "REFERENCE_NUMBER") => r.reference = value,
                    ("INDIVIDUAL" | "ENTITY", "COMMENTS1") => r.comments = value,
                    ("INDIVIDUAL" | "ENTITY", "GENDER") => r.gender = value,
                    ("NATIONALITY", "VALUE") => r.nationalities.push(value),
                    ("INDIVIDUAL_ALIAS" | "ENTITY_ALIAS", "QUALITY") => r.alias_quality = value,
                    ("INDIVIDUAL_ALIAS" | "ENTITY_ALIAS", "ALIAS_NAME") => r.alias_name = value,
                    (_, "INDIVIDUAL_ALIAS" | "ENTITY_ALIAS") => {
                        let q = std::mem::take(&mut r.alias_quality);
                        let n = std::mem::take(&mut r.alias_name);
                        if !n.is_empty() {
                            r.aliases.push((n, q));
                        }
                    }
                    ("INDIVIDUAL_ADDRESS" | "ENTITY_ADDRESS", "COUNTRY") => {
                        r.countries.push((value, CountryRole::Address));
                    }
                    ("INDIVIDUAL_PLACE_OF_BIRTH", "COUNTRY") => {
                        r.countries.push((value, CountryRole::BirthPlace));
                    }
                    ("INDIVIDUAL_DATE_OF_BIRTH", "DATE") => r.dob.date = value,
                    ("INDIVIDUAL_DATE_OF_BIRTH", "YEAR") => r.dob.year = value,
                    ("INDIVIDUAL_DATE_OF_BIRTH", "FROM_YEAR") => r.dob.from = value,
                    ("INDIVIDUAL_DATE_OF_BIRTH", "TO_YEAR") => r.dob.to = value,
                    (_, "INDIVIDUAL_DATE_OF_BIRTH") => {
                        let d = std::mem::take(&mut r.dob);
                        let parsed = if !d.date.is_empty() {
                            BirthDate::parse_loose(&d.date)
                        } else if !d.from.is_empty() && !d.to.is_empty() {
                            BirthDate::parse_loose(&format!("{} to {}", d.from, d.to))
                        } else {
                            BirthDate::parse_loose(&d.year)
                        };
                        if let Some(p) = parsed {
                            r.dobs.push(p);
                        }
                    }
                    ("INDIVIDUAL_DOCUMENT", "TYPE_OF_DOCUMENT") => r.doc.kind = value,
                    ("INDIVIDUAL_DOCUMENT", "NUMBER") => r.doc.number = value,
                    ("INDIVIDUAL_DOCUMENT", "ISSUING_COUNTRY" | "COUNTRY_OF_ISSUE") => {
                        r.doc.country = value;
                    }
                    (_, "INDIVIDUAL_DOCUMENT") => {
                        let d = std::mem::take(&mut r.doc);
                        if !d.number.is_empty() {
                            let mut id = Identifier::new(doc_kind(&d.kind), &d.number);
                            id.scheme = (!d.kind.is_empty()).then_some(d.kind);
                            id.country = crate::countries::to_alpha2(&d.country).map(str::to_owned);
                            r.docs.push(id);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() || rec.is_some() {
        return Err(ParseError::new(
            src.name,
            Some(format!("byte {}", text.len())),
            ParseProblem::Truncated {
                detail: format!("unclosed <{}>", path.last().map_or("?", String::as_str)),
            },
        ));
    }
    if !saw_root {
        return Err(ParseError::new(
            src.name,
            None,
            ParseProblem::Malformed {
                detail: "no <CONSOLIDATED_LIST> element".into(),
            },
        ));
    }
    check_unique(src.name, &entries, &where_)?;
    Ok(entries)
}

fn finish(
    list: &ListId,
    r: Record,
    file: &str,
    location: Option<String>,
) -> Result<ListEntry, ParseError> {
    if r.id.is_empty() {
        return Err(ParseError::new(
            file,
            location,
            ParseProblem::MissingField {
                field: "DATAID".into(),
            },
        ));
    }
    let mut e = ListEntry::new(list.clone(), r.id, r.kind.unwrap_or(EntryKind::Unknown));
    let primary = r
        .name_parts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if primary.is_empty() {
        return Err(ParseError::new(
            file,
            location,
            ParseProblem::MissingField {
                field: "FIRST_NAME".into(),
            },
        ));
    }
    e.push_name(&primary, NameKind::Primary);
    e.push_name(&r.original_script, NameKind::OriginalScript);
    for (n, q) in &r.aliases {
        let kind = if q.eq_ignore_ascii_case("low") {
            NameKind::Weak
        } else {
            NameKind::Aka
        };
        e.push_name(n, kind);
    }
    for n in &r.nationalities {
        e.push_country(n, CountryRole::Nationality);
    }
    for (c, role) in &r.countries {
        e.push_country(c, *role);
    }
    for d in r.dobs {
        e.push_birth_date(d);
    }
    for id in r.docs {
        e.push_identifier(id);
    }
    if !r.list_type.is_empty() {
        e.programs.push(r.list_type);
    }
    if !r.reference.is_empty() {
        let mut id = Identifier::new(IdentifierKind::Other, &r.reference);
        id.scheme = Some("UN reference".into());
        e.push_identifier(id);
    }
    e.gender = (!r.gender.is_empty()).then_some(r.gender);
    e.remarks = (!r.comments.is_empty()).then_some(r.comments);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID><FIRST_NAME>ERIC</FIRST_NAME>
<SECOND_NAME>BADEGE</SECOND_NAME><UN_LIST_TYPE>DRC</UN_LIST_TYPE>
<NATIONALITY><VALUE>Democratic Republic of the Congo</VALUE></NATIONALITY>
<INDIVIDUAL_ALIAS><QUALITY>Low</QUALITY><ALIAS_NAME>E &amp; B</ALIAS_NAME></INDIVIDUAL_ALIAS>
<INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>BETWEEN</TYPE_OF_DATE><FROM_YEAR>1973</FROM_YEAR><TO_YEAR>1974</TO_YEAR></INDIVIDUAL_DATE_OF_BIRTH>
<INDIVIDUAL_DOCUMENT><TYPE_OF_DOCUMENT>Passport</TYPE_OF_DOCUMENT><NUMBER>OB 0243318</NUMBER></INDIVIDUAL_DOCUMENT>
</INDIVIDUAL></INDIVIDUALS><ENTITIES/></CONSOLIDATED_LIST>"#;

    #[test]
    fn sample() {
        let e = parse(
            &ListId::new("un"),
            &Source::new("un.xml", SAMPLE.as_bytes()),
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].primary_name(), "ERIC BADEGE");
        assert_eq!(e[0].names[1].text, "E & B");
        assert_eq!(e[0].names[1].kind, NameKind::Weak);
        assert_eq!(
            e[0].birth_dates,
            vec![BirthDate::Range {
                from: 1973,
                to: 1974
            }]
        );
        assert_eq!(e[0].countries[0].code.as_deref(), Some("CD"));
        assert_eq!(e[0].identifiers[0].normalized, "OB0243318");
    }

    #[test]
    fn truncated() {
        let cut = &SAMPLE[..SAMPLE.len() / 2];
        let err = parse(&ListId::new("un"), &Source::new("un.xml", cut.as_bytes())).unwrap_err();
        assert!(err.code().starts_with("CIP-SCREEN-PARSE-"), "{err}");
    }
}
