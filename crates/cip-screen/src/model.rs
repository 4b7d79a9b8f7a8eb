//! The one domain model every list parser produces.

use serde::{Deserialize, Serialize};

/// Which list an entry came from (`"ofac-sdn"`, `"un-sc"`, `"opensanctions"`, …).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ListId(pub String);

impl ListId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ListId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of party a list entry designates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Person,
    Entity,
    Vessel,
    Aircraft,
    Unknown,
}

impl EntryKind {
    /// Parses the spellings used by the lists and by our own formats.
    pub fn parse_loose(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "person" | "individual" | "natural person" => Some(Self::Person),
            "entity" | "company" | "organization" | "organisation" | "legalentity"
            | "legal_entity" | "business" | "-0-" | "" => Some(Self::Entity),
            "vessel" => Some(Self::Vessel),
            "aircraft" | "airplane" => Some(Self::Aircraft),
            "unknown" => Some(Self::Unknown),
            _ => None,
        }
    }
}

/// How a name relates to the party: the primary name or one of the alias kinds lists use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    Primary,
    /// "also known as".
    Aka,
    /// "formerly known as" (also vessel `ex-` names).
    Fka,
    /// "now known as".
    Nka,
    /// Low-quality alias (OFAC "weak aka", UN quality "Low", FtM `weakAlias`).
    Weak,
    /// A name written in its original script.
    OriginalScript,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryName {
    pub text: String,
    pub kind: NameKind,
}

/// A birth date as lists give it: full, month, year only, or a range of years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "precision", rename_all = "snake_case")]
pub enum BirthDate {
    Full { year: u16, month: u8, day: u8 },
    Month { year: u16, month: u8 },
    Year { year: u16 },
    Range { from: u16, to: u16 },
}

impl BirthDate {
    /// Year span covered by this date.
    pub fn years(&self) -> (u16, u16) {
        match *self {
            Self::Full { year, .. } | Self::Month { year, .. } | Self::Year { year } => {
                (year, year)
            }
            Self::Range { from, to } => (from, to),
        }
    }

    /// Parses `1960-01-31`, `1960-01`, `1960`, `01 Jan 1960`, `Jan 1960`, `1960 to 1962`,
    /// `circa 1960`.
    pub fn parse_loose(raw: &str) -> Option<Self> {
        let s = raw.trim().trim_end_matches('.');
        let s = s
            .strip_prefix("circa ")
            .or_else(|| s.strip_prefix("ca. "))
            .unwrap_or(s)
            .trim();
        if let Some((a, b)) = s.split_once(" to ").or_else(|| {
            if s.len() == 9 && s.as_bytes().get(4) == Some(&b'-') {
                s.split_once('-')
            } else {
                None
            }
        }) {
            let from = parse_year(a.trim())?;
            let to = parse_year(b.trim())?;
            return (from <= to).then_some(Self::Range { from, to });
        }
        let parts: Vec<&str> = s.split(['-', ' ', '/']).filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [y] => Some(Self::Year {
                year: parse_year(y)?,
            }),
            [y, m] if y.len() == 4 => Some(Self::Month {
                year: parse_year(y)?,
                month: parse_month(m)?,
            }),
            [m, y] => Some(Self::Month {
                year: parse_year(y)?,
                month: parse_month(m)?,
            }),
            [y, m, d] if y.len() == 4 => full(parse_year(y)?, parse_month(m)?, d.parse().ok()?),
            [d, m, y] => full(parse_year(y)?, parse_month(m)?, d.parse().ok()?),
            _ => None,
        }
    }
}

fn full(year: u16, month: u8, day: u8) -> Option<BirthDate> {
    (1..=31)
        .contains(&day)
        .then_some(BirthDate::Full { year, month, day })
}

fn parse_year(s: &str) -> Option<u16> {
    let y: u16 = s.parse().ok()?;
    (s.len() == 4 && (1800..=2100).contains(&y)).then_some(y)
}

fn parse_month(s: &str) -> Option<u8> {
    if let Ok(m) = s.parse::<u8>() {
        return (1..=12).contains(&m).then_some(m);
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let lower = s.to_ascii_lowercase();
    let prefix = lower.get(..3)?;
    MONTHS
        .iter()
        .position(|m| *m == prefix)
        .and_then(|i| u8::try_from(i + 1).ok())
}

/// How a country relates to the party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountryRole {
    Nationality,
    Citizenship,
    Address,
    BirthPlace,
    Registration,
    Other,
}

/// A country: ISO 3166 alpha-2 where it could be derived, else the list's own text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryCountry {
    /// ISO alpha-2 (upper case) when known.
    pub code: Option<String>,
    pub name: String,
    pub role: CountryRole,
}

impl EntryCountry {
    pub fn new(name: &str, role: CountryRole) -> Self {
        Self {
            code: crate::countries::to_alpha2(name).map(str::to_owned),
            name: name.trim().to_owned(),
            role,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    Passport,
    NationalId,
    Tax,
    Imo,
    /// Digital currency address (the currency ticker goes to `Identifier::scheme`).
    Wallet,
    Email,
    Registration,
    Other,
}

/// An identifier; `value` keeps the list's spelling, `normalized` is the comparison key
/// (alphanumerics only, upper case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub value: String,
    pub normalized: String,
    /// Currency ticker for wallets, document type text for others.
    pub scheme: Option<String>,
    pub country: Option<String>,
}

impl Identifier {
    pub fn new(kind: IdentifierKind, value: &str) -> Self {
        Self {
            kind,
            value: value.trim().to_owned(),
            normalized: normalize_identifier(kind, value),
            scheme: None,
            country: None,
        }
    }
}

/// Comparison key for identifiers. Wallet addresses are case sensitive (base58), so only
/// whitespace is removed; everything else keeps ASCII alphanumerics, upper-cased.
pub fn normalize_identifier(kind: IdentifierKind, value: &str) -> String {
    match kind {
        IdentifierKind::Wallet => value.chars().filter(|c| !c.is_whitespace()).collect(),
        IdentifierKind::Email => value.trim().to_lowercase(),
        _ => value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    }
}

/// One designated party on one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub list: ListId,
    pub entry_id: String,
    pub kind: EntryKind,
    /// The primary name comes first.
    pub names: Vec<EntryName>,
    pub birth_dates: Vec<BirthDate>,
    pub countries: Vec<EntryCountry>,
    pub identifiers: Vec<Identifier>,
    pub programs: Vec<String>,
    pub gender: Option<String>,
    pub remarks: Option<String>,
}

impl ListEntry {
    pub fn new(list: ListId, entry_id: impl Into<String>, kind: EntryKind) -> Self {
        Self {
            list,
            entry_id: entry_id.into(),
            kind,
            names: Vec::new(),
            birth_dates: Vec::new(),
            countries: Vec::new(),
            identifiers: Vec::new(),
            programs: Vec::new(),
            gender: None,
            remarks: None,
        }
    }

    pub fn primary_name(&self) -> &str {
        self.names.first().map_or("", |n| n.text.as_str())
    }

    /// Adds a name unless the same text is already there (lists repeat aliases).
    pub fn push_name(&mut self, text: &str, kind: NameKind) {
        let text = text.trim();
        if text.is_empty() || self.names.iter().any(|n| n.text == text) {
            return;
        }
        self.names.push(EntryName {
            text: text.to_owned(),
            kind,
        });
    }

    pub fn push_country(&mut self, name: &str, role: CountryRole) {
        let c = EntryCountry::new(name, role);
        if !c.name.is_empty() && !self.countries.contains(&c) {
            self.countries.push(c);
        }
    }

    pub fn push_identifier(&mut self, id: Identifier) {
        if !id.normalized.is_empty() && !self.identifiers.contains(&id) {
            self.identifiers.push(id);
        }
    }

    pub fn push_birth_date(&mut self, d: BirthDate) {
        if !self.birth_dates.contains(&d) {
            self.birth_dates.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_dates() {
        assert_eq!(
            BirthDate::parse_loose("01 Jan 1960"),
            Some(BirthDate::Full {
                year: 1960,
                month: 1,
                day: 1
            })
        );
        assert_eq!(
            BirthDate::parse_loose("1960-02-03"),
            Some(BirthDate::Full {
                year: 1960,
                month: 2,
                day: 3
            })
        );
        assert_eq!(
            BirthDate::parse_loose("1960"),
            Some(BirthDate::Year { year: 1960 })
        );
        assert_eq!(
            BirthDate::parse_loose("1960 to 1962"),
            Some(BirthDate::Range {
                from: 1960,
                to: 1962
            })
        );
        assert_eq!(
            BirthDate::parse_loose("circa 1971"),
            Some(BirthDate::Year { year: 1971 })
        );
        assert_eq!(
            BirthDate::parse_loose("Feb 1963"),
            Some(BirthDate::Month {
                year: 1963,
                month: 2
            })
        );
        assert_eq!(BirthDate::parse_loose("banana"), None);
    }
}
