//! OFAC remarks: `DOB 01 Jan 1960; POB Tehran, Iran; nationality Iran; Passport 123
//! (Iran); Digital Currency Address - XBT 1abc…; Vessel Registration Identification IMO
//! 1234567; Gender Male; a.k.a. 'X'`. Known statements become structured data on the
//! entry; the text stays in `remarks` too.

use crate::model::{BirthDate, CountryRole, Identifier, IdentifierKind, ListEntry, NameKind};

/// Statement prefixes that carry an identifier, longest first where they share a start.
const ID_PREFIXES: &[(&str, IdentifierKind)] = &[
    (
        "Vessel Registration Identification IMO",
        IdentifierKind::Imo,
    ),
    ("IMO", IdentifierKind::Imo),
    ("Passport", IdentifierKind::Passport),
    ("Diplomatic Passport", IdentifierKind::Passport),
    ("National ID No.", IdentifierKind::NationalId),
    ("National Foreign ID Number", IdentifierKind::NationalId),
    ("Cedula No.", IdentifierKind::NationalId),
    ("Identification Number", IdentifierKind::NationalId),
    ("Personal ID Card", IdentifierKind::NationalId),
    ("D.N.I.", IdentifierKind::NationalId),
    ("C.U.R.P.", IdentifierKind::NationalId),
    ("SSN", IdentifierKind::NationalId),
    ("Birth Certificate Number", IdentifierKind::NationalId),
    ("Tax ID No.", IdentifierKind::Tax),
    ("RFC", IdentifierKind::Tax),
    ("NIT #", IdentifierKind::Tax),
    ("R.U.C. #", IdentifierKind::Tax),
    ("C.U.I.T.", IdentifierKind::Tax),
    ("Registration ID", IdentifierKind::Registration),
    ("Registration Number", IdentifierKind::Registration),
    ("Company Number", IdentifierKind::Registration),
    ("Business Registration Number", IdentifierKind::Registration),
    ("Commercial Registry Number", IdentifierKind::Registration),
    ("Chinese Commercial Code", IdentifierKind::Other),
    ("SWIFT/BIC", IdentifierKind::Other),
    (
        "Aircraft Manufacturer's Serial Number (MSN)",
        IdentifierKind::Other,
    ),
    ("Email Address", IdentifierKind::Email),
];

/// Applies the remarks text to the entry and stores it.
pub fn apply(entry: &mut ListEntry, remarks: &str) {
    for raw in remarks.split(';') {
        let stmt = raw.trim().trim_end_matches('.').trim();
        let stmt = stmt.strip_prefix("alt. ").unwrap_or(stmt).trim();
        if let Some(rest) = stmt.strip_prefix("DOB ") {
            if let Some(d) = BirthDate::parse_loose(rest) {
                entry.push_birth_date(d);
            }
        } else if let Some(rest) = stmt.strip_prefix("POB ") {
            if let Some(country) = rest.rsplit(',').next() {
                push_country_if_known(entry, country, CountryRole::BirthPlace);
            }
        } else if let Some(rest) = stmt.strip_prefix("nationality ") {
            entry.push_country(rest, CountryRole::Nationality);
        } else if let Some(rest) = stmt.strip_prefix("citizen ") {
            entry.push_country(rest, CountryRole::Citizenship);
        } else if let Some(rest) = stmt.strip_prefix("Gender ") {
            entry.gender = Some(rest.trim().to_owned());
        } else if let Some(rest) = stmt.strip_prefix("Digital Currency Address - ") {
            let mut parts = rest.splitn(2, ' ');
            if let (Some(ticker), Some(addr)) = (parts.next(), parts.next()) {
                let mut id = Identifier::new(IdentifierKind::Wallet, addr.trim());
                id.scheme = Some(ticker.to_owned());
                entry.push_identifier(id);
            }
        } else if let Some(name) = quoted_alias(stmt) {
            let kind = if stmt.starts_with("f.k.a.") {
                NameKind::Fka
            } else if stmt.starts_with("n.k.a.") {
                NameKind::Nka
            } else {
                NameKind::Weak
            };
            entry.push_name(name, kind);
        } else if let Some((kind, prefix, rest)) = ID_PREFIXES
            .iter()
            .find_map(|(p, k)| stmt.strip_prefix(p).map(|r| (*k, *p, r)))
        {
            push_identifier(entry, kind, prefix, rest);
        }
    }
    let text = remarks.trim();
    if !text.is_empty() {
        entry.remarks = Some(text.to_owned());
    }
}

fn push_country_if_known(entry: &mut ListEntry, raw: &str, role: CountryRole) {
    if crate::countries::to_alpha2(raw).is_some() {
        entry.push_country(raw, role);
    }
}

fn quoted_alias(stmt: &str) -> Option<&str> {
    let rest = ["a.k.a. ", "f.k.a. ", "n.k.a. "]
        .iter()
        .find_map(|p| stmt.strip_prefix(p))?;
    let rest = rest.trim();
    let inner = rest.strip_prefix('\'')?;
    let end = inner.rfind('\'')?;
    inner.get(..end)
}

fn push_identifier(entry: &mut ListEntry, kind: IdentifierKind, prefix: &str, rest: &str) {
    let rest = rest.trim().trim_start_matches(['#', ':']).trim();
    // Cut "issued …", "expires …".
    let rest = [" issued ", " expires ", " Issue Date "]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .map_or(rest, |i| rest.get(..i).unwrap_or(rest));
    let (value, country) = match (rest.find(" ("), rest.rfind(')')) {
        (Some(open), Some(close)) if close > open => {
            (rest.get(..open).unwrap_or(rest), rest.get(open + 2..close))
        }
        _ => (rest, None),
    };
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    let mut id = Identifier::new(kind, value);
    id.scheme = Some(prefix.trim_end_matches(['.', '#', ' ']).to_owned());
    id.country = country
        .and_then(crate::countries::to_alpha2)
        .map(str::to_owned);
    if let Some(c) = country.filter(|_| kind == IdentifierKind::Passport) {
        push_country_if_known(entry, c, CountryRole::Other);
    }
    entry.push_identifier(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryKind, ListId};

    #[test]
    fn parses_the_usual_statements() {
        let mut e = ListEntry::new(ListId::new("t"), "1", EntryKind::Person);
        apply(
            &mut e,
            "DOB 25 Mar 1977; alt. DOB 1978; POB Wuhan City, Hubei, China; nationality Iran; \
             Gender Male; Digital Currency Address - XBT 12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h; \
             Passport T14553558 (Iran) issued 28 Oct 2008 expires 29 Oct 2013; a.k.a. 'KAMEL'; \
             Vessel Registration Identification IMO 9187629.",
        );
        assert_eq!(e.birth_dates.len(), 2);
        assert!(e.countries.iter().any(|c| c.code.as_deref() == Some("CN")));
        assert!(e.countries.iter().any(|c| c.code.as_deref() == Some("IR")));
        assert_eq!(e.gender.as_deref(), Some("Male"));
        let kinds: Vec<_> = e
            .identifiers
            .iter()
            .map(|i| (i.kind, i.normalized.as_str()))
            .collect();
        assert!(kinds.contains(&(IdentifierKind::Wallet, "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h")));
        assert!(kinds.contains(&(IdentifierKind::Passport, "T14553558")));
        assert!(kinds.contains(&(IdentifierKind::Imo, "9187629")));
        assert_eq!(e.names.first().map(|n| n.text.as_str()), Some("KAMEL"));
    }
}
