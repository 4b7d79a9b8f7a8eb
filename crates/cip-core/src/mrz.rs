//! Machine-readable zones of travel documents (ICAO Doc 9303): TD1 (3×30), TD2 (2×36),
//! TD3 passports (2×44) and machine-readable visas MRV-A (2×44) and MRV-B (2×36).
//!
//! [`parse`] checks the character set, every check digit (document number, birth date, expiry,
//! optional data where the format has one, and the composite), the dates, the sex and the
//! state codes, and returns the fields. It allocates only for the returned names and never
//! panics on any input (a proptest and a fuzz target hold it to that).

use jiff::civil::Date;

use crate::parse::CountryCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrzFormat {
    Td1,
    Td2,
    Td3,
    MrvA,
    MrvB,
}

impl MrzFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            MrzFormat::Td1 => "TD1",
            MrzFormat::Td2 => "TD2",
            MrzFormat::Td3 => "TD3",
            MrzFormat::MrvA => "MRV-A",
            MrzFormat::MrvB => "MRV-B",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
    Unspecified,
}

/// A state code as written in the zone, and the ISO country it stands for (none for the
/// ICAO codes of organisations and of stateless persons and refugees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrzState {
    pub code: &'static str,
    pub country: Option<CountryCode>,
}

/// The checked contents of a machine-readable zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mrz {
    pub format: MrzFormat,
    pub document_code: String,
    pub issuing_state: MrzState,
    pub primary_identifier: String,
    pub secondary_identifier: String,
    pub document_number: String,
    pub nationality: MrzState,
    /// `None` when the zone marks the date as unknown with `<`.
    pub birth_date: Option<Date>,
    pub sex: Sex,
    pub expiry_date: Date,
    pub optional_data: String,
}

impl Mrz {
    pub fn is_expired(&self, today: Date) -> bool {
        self.expiry_date < today
    }

    /// "SECONDARY PRIMARY" — given names then surname, as people write them.
    pub fn full_name(&self) -> String {
        if self.secondary_identifier.is_empty() {
            self.primary_identifier.clone()
        } else {
            format!("{} {}", self.secondary_identifier, self.primary_identifier)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MrzError {
    /// The number of lines or their lengths fit no format.
    Shape(String),
    /// A character outside A–Z, 0–9 and `<` (lowercase included: the zone is uppercase).
    Character {
        line: usize,
        column: usize,
        found: char,
    },
    CheckDigit {
        field: &'static str,
        expected: char,
        found: char,
    },
    Date {
        field: &'static str,
        value: String,
    },
    Sex(char),
    State {
        field: &'static str,
        code: String,
    },
    Field {
        field: &'static str,
        message: &'static str,
    },
}

impl MrzError {
    /// A stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            MrzError::Shape(_) => "mrz_shape",
            MrzError::Character { .. } => "mrz_character",
            MrzError::CheckDigit { .. } => "checksum_mismatch",
            MrzError::Date { .. } => "invalid_date",
            MrzError::Sex(_) => "invalid_sex",
            MrzError::State { .. } => "invalid_country",
            MrzError::Field { .. } => "invalid_format",
        }
    }
}

impl std::fmt::Display for MrzError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MrzError::Shape(m) => write!(f, "{m}"),
            MrzError::Character {
                line,
                column,
                found,
            } => write!(
                f,
                "line {line}, column {column}: {:?} is not allowed (only A-Z, 0-9 and <; the zone is uppercase)",
                found
            ),
            MrzError::CheckDigit {
                field,
                expected,
                found,
            } => write!(
                f,
                "the check digit of the {field} is {found} but the field computes to {expected}"
            ),
            MrzError::Date { field, value } => {
                write!(f, "the {field} {value:?} is not a date (YYMMDD)")
            }
            MrzError::Sex(c) => write!(f, "sex {c:?} is not F, M or <"),
            MrzError::State { field, code } => {
                write!(f, "the {field} {code:?} is not an ICAO state code")
            }
            MrzError::Field { field, message } => write!(f, "{field}: {message}"),
        }
    }
}

impl std::error::Error for MrzError {}

/// The check digit of `field` (weights 7, 3, 1; `<` counts 0, letters 10–35).
pub fn check_digit(field: &[u8]) -> u8 {
    const W: [u32; 3] = [7, 3, 1];
    let mut sum = 0u32;
    for (i, &c) in field.iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => 0,
        };
        sum += v * W[i % 3];
    }
    b'0' + (sum % 10) as u8
}

fn verify(field: &'static str, data: &[u8], digit: u8) -> Result<(), MrzError> {
    let expected = check_digit(data);
    // A field that is entirely filler may carry `<` as its check digit.
    if digit == b'<' && data.iter().all(|&c| c == b'<') {
        return Ok(());
    }
    if digit == expected {
        Ok(())
    } else {
        Err(MrzError::CheckDigit {
            field,
            expected: char::from(expected),
            found: char::from(digit),
        })
    }
}

/// Parses with today's date (UTC) deciding the century of two-digit years.
pub fn parse(text: &str) -> Result<Mrz, MrzError> {
    parse_at(text, current_year())
}

/// Splits text into lines: newlines separate them; surrounding whitespace and a final
/// newline are ignored. `this_year` decides the century of two-digit years: birth years
/// after it belong to the previous century, expiry years more than 50 years ahead too.
pub fn parse_at(text: &str, this_year: i16) -> Result<Mrz, MrzError> {
    let mut lines: [&[u8]; 3] = [&[], &[], &[]];
    let mut n = 0;
    for line in text.trim().lines() {
        let line = line.trim_end_matches('\r').trim();
        if n == 3 {
            return Err(MrzError::Shape(
                "a machine-readable zone has 2 or 3 lines".into(),
            ));
        }
        lines[n] = line.as_bytes();
        n += 1;
    }
    parse_lines(&lines[..n], this_year)
}

pub fn parse_lines(lines: &[&[u8]], this_year: i16) -> Result<Mrz, MrzError> {
    for (li, line) in lines.iter().enumerate() {
        for (ci, &c) in line.iter().enumerate() {
            if !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'<') {
                let found = std::str::from_utf8(&line[ci..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .unwrap_or(char::from(c));
                return Err(MrzError::Character {
                    line: li + 1,
                    column: ci + 1,
                    found,
                });
            }
        }
    }
    match lines {
        [a, b, c] if a.len() == 30 && b.len() == 30 && c.len() == 30 => td1(a, b, c, this_year),
        [a, b] if a.len() == 36 && b.len() == 36 && a[0] == b'V' => {
            visa(a, b, MrzFormat::MrvB, this_year)
        }
        [a, b] if a.len() == 44 && b.len() == 44 && a[0] == b'V' => {
            visa(a, b, MrzFormat::MrvA, this_year)
        }
        [a, b] if a.len() == 36 && b.len() == 36 => td2_td3(a, b, MrzFormat::Td2, this_year),
        [a, b] if a.len() == 44 && b.len() == 44 => td2_td3(a, b, MrzFormat::Td3, this_year),
        _ => {
            let lens: Vec<usize> = lines.iter().map(|l| l.len()).collect();
            Err(MrzError::Shape(format!(
                "lines of lengths {lens:?} fit no format: TD1 is 3×30, TD2 and MRV-B 2×36, TD3 and MRV-A 2×44"
            )))
        }
    }
}

/// Copies the parts one after another into `buf` (sized for the longest composite, 50).
fn concat_into(buf: &mut [u8; 64], parts: &[&[u8]]) -> usize {
    let mut n = 0;
    for p in parts {
        buf[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    }
    n
}

fn text(b: &[u8]) -> String {
    // Fillers become spaces; runs collapse; the ends are trimmed.
    let mut out = String::with_capacity(b.len());
    let mut space = false;
    for &c in b {
        if c == b'<' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(char::from(c));
        }
    }
    out
}

fn names(b: &[u8]) -> Result<(String, String), MrzError> {
    let split = b.windows(2).position(|w| w == b"<<");
    let (primary, secondary) = match split {
        Some(i) => (&b[..i], &b[i + 2..]),
        None => (b, &b[b.len()..]),
    };
    let primary = text(primary);
    if primary.is_empty() {
        return Err(MrzError::Field {
            field: "name",
            message: "the primary identifier (surname) is empty",
        });
    }
    Ok((primary, text(secondary)))
}

/// ICAO codes that are not ISO 3166 alpha-3 (Doc 9303 part 3).
const ICAO_SPECIAL: &[(&str, Option<&str>)] = &[
    ("D", Some("DE")),
    ("GBD", Some("GB")),
    ("GBN", Some("GB")),
    ("GBO", Some("GB")),
    ("GBP", Some("GB")),
    ("GBS", Some("GB")),
    ("RKS", Some("XK")),
    ("EUE", None),
    ("UNO", None),
    ("UNA", None),
    ("UNK", Some("XK")),
    ("XBA", None),
    ("XIM", None),
    ("XCC", None),
    ("XCO", None),
    ("XEC", None),
    ("XPO", None),
    ("XES", None),
    ("XMP", None),
    ("XOM", None),
    ("XDC", None),
    ("XXA", None),
    ("XXB", None),
    ("XXC", None),
    ("XXX", None),
    ("UTO", None), // Utopia, the fictional state of ICAO's specimens
];

fn state(field: &'static str, b: &[u8]) -> Result<MrzState, MrzError> {
    let end = b.iter().rposition(|&c| c != b'<').map_or(0, |i| i + 1);
    // The zone was checked to be ASCII, so this cannot fail.
    let code = std::str::from_utf8(&b[..end]).unwrap_or("");
    if let Some((c, iso)) = ICAO_SPECIAL.iter().find(|(c, _)| *c == code) {
        return Ok(MrzState {
            code: c,
            country: iso.and_then(|i| CountryCode::parse(i).ok()),
        });
    }
    match crate::parse::lookup_alpha3(code) {
        Some((country, code)) => Ok(MrzState {
            code,
            country: Some(country),
        }),
        None => Err(MrzError::State {
            field,
            code: code.to_string(),
        }),
    }
}

fn two(b: &[u8]) -> Option<i16> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(i16::from(a - b'0') * 10 + i16::from(c - b'0')),
        _ => None,
    }
}

/// YYMMDD → date. Birth dates pivot on the current century; expiry dates are this century.
fn date(
    field: &'static str,
    b: &[u8],
    is_birth: bool,
    this_year: i16,
) -> Result<Option<Date>, MrzError> {
    let bad = || MrzError::Date {
        field,
        value: String::from_utf8_lossy(b).into_owned(),
    };
    if is_birth && b.contains(&b'<') {
        // Doc 9303 allows unknown birth date parts to be filled with `<`.
        return Ok(None);
    }
    let (yy, mm, dd) = (two(&b[0..2]), two(&b[2..4]), two(&b[4..6]));
    let (Some(yy), Some(mm), Some(dd)) = (yy, mm, dd) else {
        return Err(bad());
    };
    let century = this_year / 100 * 100;
    let year = if is_birth {
        if century + yy > this_year {
            century - 100 + yy
        } else {
            century + yy
        }
    } else if century + yy > this_year + 50 {
        century - 100 + yy
    } else {
        century + yy
    };
    Date::new(year, mm as i8, dd as i8)
        .map(Some)
        .map_err(|_| bad())
}

pub fn current_year() -> i16 {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .year()
}

fn sex(c: u8) -> Result<Sex, MrzError> {
    match c {
        b'F' => Ok(Sex::Female),
        b'M' => Ok(Sex::Male),
        b'<' | b'X' => Ok(Sex::Unspecified),
        other => Err(MrzError::Sex(char::from(other))),
    }
}

fn doc_code(b: &[u8]) -> Result<String, MrzError> {
    if !b[0].is_ascii_uppercase() {
        return Err(MrzError::Field {
            field: "document code",
            message: "the first character must be a letter (P, I, A, C, V)",
        });
    }
    Ok(text(b))
}

/// Fields shared by TD2, TD3 and the visas from the second line.
struct Line2 {
    number: String,
    nationality: MrzState,
    birth: Option<Date>,
    sex: Sex,
    expiry: Date,
}

fn line2_common(b: &[u8], year: i16) -> Result<Line2, MrzError> {
    verify("document number", &b[0..9], b[9])?;
    verify("birth date", &b[13..19], b[19])?;
    verify("expiry date", &b[21..27], b[27])?;
    let number = text(&b[0..9]);
    if number.is_empty() {
        return Err(MrzError::Field {
            field: "document number",
            message: "empty",
        });
    }
    let expiry = date("expiry date", &b[21..27], false, year)?.ok_or(MrzError::Date {
        field: "expiry date",
        value: String::from_utf8_lossy(&b[21..27]).into_owned(),
    })?;
    Ok(Line2 {
        number,
        nationality: state("nationality", &b[10..13])?,
        birth: date("birth date", &b[13..19], true, year)?,
        sex: sex(b[20])?,
        expiry,
    })
}

fn td2_td3(a: &[u8], b: &[u8], format: MrzFormat, year: i16) -> Result<Mrz, MrzError> {
    let l2 = line2_common(b, year)?;
    let (optional, composite_end) = match format {
        MrzFormat::Td3 => {
            verify("personal number", &b[28..42], b[42])?;
            (&b[28..42], 43)
        }
        _ => (&b[28..35], 35),
    };
    let mut composite = [0u8; 64];
    let n = concat_into(
        &mut composite,
        &[&b[0..10], &b[13..20], &b[21..composite_end]],
    );
    verify("composite", &composite[..n], b[composite_end])?;
    two_line(a, l2, format, text(optional))
}

fn visa(a: &[u8], b: &[u8], format: MrzFormat, year: i16) -> Result<Mrz, MrzError> {
    let l2 = line2_common(b, year)?;
    two_line(a, l2, format, text(&b[28..]))
}

/// Assembles a two-line document (TD2, TD3, visas) from its first line and checked second.
fn two_line(
    a: &[u8],
    l2: Line2,
    format: MrzFormat,
    optional_data: String,
) -> Result<Mrz, MrzError> {
    let (primary, secondary) = names(&a[5..])?;
    Ok(Mrz {
        format,
        document_code: doc_code(&a[0..2])?,
        issuing_state: state("issuing state", &a[2..5])?,
        primary_identifier: primary,
        secondary_identifier: secondary,
        document_number: l2.number,
        nationality: l2.nationality,
        birth_date: l2.birth,
        sex: l2.sex,
        expiry_date: l2.expiry,
        optional_data,
    })
}

fn td1(a: &[u8], b: &[u8], c: &[u8], year: i16) -> Result<Mrz, MrzError> {
    // A document number longer than 9 characters: position 15 holds `<`, and the number
    // goes on in the optional data up to its check digit, which precedes the first filler.
    let (number, optional1): (String, &[u8]) =
        if a[14] == b'<' && a[5..14].iter().all(|&x| x != b'<') {
            let rest = &a[15..30];
            let end = rest.iter().position(|&x| x == b'<').unwrap_or(rest.len());
            if end == 0 {
                return Err(MrzError::Field {
                    field: "document number",
                    message: "the check digit is missing",
                });
            }
            let mut full = a[5..14].to_vec();
            full.extend_from_slice(&rest[..end - 1]);
            verify("document number", &full, rest[end - 1])?;
            (text(&full), &rest[end..])
        } else {
            verify("document number", &a[5..14], a[14])?;
            (text(&a[5..14]), &a[15..30])
        };
    if number.is_empty() {
        return Err(MrzError::Field {
            field: "document number",
            message: "empty",
        });
    }
    verify("birth date", &b[0..6], b[6])?;
    verify("expiry date", &b[8..14], b[14])?;
    let mut composite = [0u8; 64];
    let n = concat_into(
        &mut composite,
        &[&a[5..30], &b[0..7], &b[8..15], &b[18..29]],
    );
    verify("composite", &composite[..n], b[29])?;
    let expiry = date("expiry date", &b[8..14], false, year)?.ok_or(MrzError::Date {
        field: "expiry date",
        value: String::from_utf8_lossy(&b[8..14]).into_owned(),
    })?;
    let (primary, secondary) = names(c)?;
    let mut optional = text(optional1);
    let optional2 = text(&b[18..29]);
    if !optional2.is_empty() {
        if !optional.is_empty() {
            optional.push(' ');
        }
        optional.push_str(&optional2);
    }
    Ok(Mrz {
        format: MrzFormat::Td1,
        document_code: doc_code(&a[0..2])?,
        issuing_state: state("issuing state", &a[2..5])?,
        primary_identifier: primary,
        secondary_identifier: secondary,
        document_number: number,
        nationality: state("nationality", &b[15..18])?,
        birth_date: date("birth date", &b[0..6], true, year)?,
        sex: sex(b[7])?,
        expiry_date: expiry,
        optional_data: optional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ICAO Doc 9303 specimens (Utopia).
    const TD3: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";
    const TD1: &str = "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<";
    const TD2: &str = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6";
    const MRVA: &str = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<<";
    const MRVB: &str = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<";

    #[test]
    fn icao_specimens_parse() {
        let p = parse(TD3).unwrap();
        assert_eq!(p.format, MrzFormat::Td3);
        assert_eq!(p.primary_identifier, "ERIKSSON");
        assert_eq!(p.secondary_identifier, "ANNA MARIA");
        assert_eq!(p.document_number, "L898902C3");
        assert_eq!(p.birth_date, Some(jiff::civil::date(1974, 8, 12)));
        assert_eq!(p.expiry_date, jiff::civil::date(2012, 4, 15));
        assert_eq!(p.sex, Sex::Female);
        assert_eq!(p.optional_data, "ZE184226B");
        assert!(p.is_expired(jiff::civil::date(2026, 1, 1)));
        assert_eq!(parse(TD1).unwrap().document_number, "D23145890");
        assert_eq!(parse(TD2).unwrap().format, MrzFormat::Td2);
        let v = parse(MRVA).unwrap();
        assert_eq!(
            (v.format, v.nationality.code, v.nationality.country),
            (MrzFormat::MrvA, "XXX", None)
        );
        assert_eq!(parse(MRVB).unwrap().format, MrzFormat::MrvB);
    }

    #[test]
    fn every_check_digit_is_checked() {
        // Change one character of each protected field in the TD3 specimen.
        for (pos, field) in [
            (44 + 2, "document number"),
            (44 + 15, "birth date"),
            (44 + 24, "expiry date"),
            (44 + 30, "personal number"),
            (44 + 43, "composite"),
        ] {
            let mut b = TD3.as_bytes().to_vec();
            b[pos + 1] = if b[pos + 1] == b'1' { b'2' } else { b'1' };
            let e = parse(std::str::from_utf8(&b).unwrap()).unwrap_err();
            assert!(
                matches!(e, MrzError::CheckDigit { .. }),
                "mutating {field} at {pos}: {e}"
            );
        }
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        assert_eq!(
            parse(&TD3.to_lowercase()).unwrap_err().code(),
            "mrz_character"
        );
        assert_eq!(parse(&TD3[..60]).unwrap_err().code(), "mrz_shape");
        assert_eq!(parse("garbage").unwrap_err().code(), "mrz_character");
        assert_eq!(parse("GARBAGE").unwrap_err().code(), "mrz_shape");
        assert_eq!(parse("").unwrap_err().code(), "mrz_shape");
        // 30 February with valid check digits.
        let bad_date = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7402300F1204159ZE184226B<<<<<18";
        let e = parse(bad_date).unwrap_err();
        assert!(
            matches!(e, MrzError::Date { .. } | MrzError::CheckDigit { .. }),
            "{e}"
        );
        // Unknown nationality code with correct check digits is refused by name.
        let msg = parse("P<QQQERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10").unwrap_err();
        assert_eq!(msg.code(), "invalid_country");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[A-Z0-9<\\n]{0,140}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,100}") {
            let _ = parse(&s);
        }
    }
}
