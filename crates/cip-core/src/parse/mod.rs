//! Boundary parsers ("parse, don't validate"): each turns outside text into a type that can only
//! hold a valid value, or a [`FieldError`] with a stable code and a sentence a user can act on.
//! The caller adds the field's JSON pointer. No IO happens here.

mod countries;

use std::fmt;

use jiff::civil::Date;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// Why a field was refused. `code` is stable snake_case; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        code,
        message: message.into(),
    }
}

/// Shows untrusted input in an error message without letting it run on: at most 40 chars,
/// control characters escaped.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(40).flat_map(char::escape_debug).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

// ------------------------------------------------------------------ countries

/// ISO 3166-1 alpha-2 country code, stored uppercase.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        let up = t.to_ascii_uppercase();
        match countries::COUNTRIES.iter().find(|(a2, _, _)| *a2 == up) {
            Some((a2, _, _)) => {
                let b = a2.as_bytes();
                Ok(CountryCode([b[0], b[1]]))
            }
            None => Err(err(
                "invalid_country",
                format!("'{}' is not an ISO 3166-1 alpha-2 country code", shown(t)),
            )),
        }
    }

    pub fn from_alpha3(s: &str) -> Result<Self, FieldError> {
        let up = s.trim().to_ascii_uppercase();
        match lookup_alpha3(&up) {
            Some((c, _)) => Ok(c),
            None => Err(err(
                "invalid_country",
                format!("'{}' is not an ISO 3166-1 alpha-3 country code", shown(s)),
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from the ASCII table above.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    fn entry(&self) -> Option<&'static (&'static str, &'static str, &'static str)> {
        countries::COUNTRIES
            .iter()
            .find(|(a2, _, _)| a2.as_bytes() == self.0)
    }

    pub fn alpha3(&self) -> &'static str {
        self.entry().map(|e| e.1).unwrap_or("???")
    }

    pub fn name(&self) -> &'static str {
        self.entry().map(|e| e.2).unwrap_or("unknown")
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Finds an uppercase alpha-3 code without allocating (binary search over a sorted index);
/// returns the country and the code as a static string.
pub fn lookup_alpha3(code: &str) -> Option<(CountryCode, &'static str)> {
    static INDEX: std::sync::OnceLock<Vec<(&'static str, &'static str)>> =
        std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut v: Vec<(&'static str, &'static str)> = countries::COUNTRIES
            .iter()
            .map(|(a2, a3, _)| (*a3, *a2))
            .collect();
        v.sort_unstable();
        v
    });
    let i = index.binary_search_by(|(a3, _)| (*a3).cmp(code)).ok()?;
    let (a3, a2) = index[i];
    let b = a2.as_bytes();
    Some((CountryCode([b[0], b[1]]), a3))
}

/// ISO 3166-2 subdivision such as `US-CA`. U.S. codes are checked against the full list;
/// for other countries the country part is checked and the rest must be 1–3 letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subdivision(String);

impl Subdivision {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let up = s.trim().to_ascii_uppercase();
        let bad = || {
            err(
                "invalid_subdivision",
                format!("'{}' is not an ISO 3166-2 code like US-CA", shown(s)),
            )
        };
        let (c, rest) = up.split_once('-').ok_or_else(bad)?;
        let country = CountryCode::parse(c).map_err(|_| bad())?;
        if rest.is_empty() || rest.len() > 3 || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        if country.as_str() == "US" && !countries::US_SUBDIVISIONS.contains(&rest) {
            return Err(err(
                "invalid_subdivision",
                format!("'{}' is not a U.S. state or territory code", shown(s)),
            ));
        }
        Ok(Subdivision(up))
    }

    pub fn country(&self) -> CountryCode {
        CountryCode::parse(&self.0[..2]).unwrap_or(CountryCode(*b"ZZ"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subdivision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ------------------------------------------------------------------ contact

/// An email address (syntax only: deliverability is proven by a one-time code, not here).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if t.len() > 254 {
            return Err(err(
                "too_long",
                "an email address has at most 254 characters",
            ));
        }
        if !email_address::EmailAddress::is_valid(t) || !t.contains('@') {
            return Err(err(
                "invalid_email",
                format!("'{}' is not an email address", shown(t)),
            ));
        }
        let (local, domain) = t
            .rsplit_once('@')
            .ok_or_else(|| err("invalid_email", "missing @"))?;
        if !domain.contains('.') && domain != "localhost" {
            return Err(err(
                "invalid_email",
                format!("'{}' has no domain", shown(t)),
            ));
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fully lowercased: the form exact lookups compare.
    pub fn index_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid phone number in E.164 form (`+14155552671`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone {
    e164: String,
    country: Option<CountryCode>,
}

impl Phone {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if !t.starts_with('+') {
            return Err(err(
                "invalid_phone",
                "phone numbers must be in international form starting with + and the country code",
            ));
        }
        if t.len() > 32
            || !t[1..]
                .chars()
                .all(|c| c.is_ascii_digit() || " -().".contains(c))
        {
            return Err(err(
                "invalid_phone",
                format!("'{}' is not a phone number", shown(t)),
            ));
        }
        let number = phonenumber::parse(None, t).map_err(|_| {
            err(
                "invalid_phone",
                format!("'{}' is not a phone number", shown(t)),
            )
        })?;
        if !phonenumber::is_valid(&number) {
            return Err(err(
                "invalid_phone",
                format!("'{}' is not a valid number for its country code", shown(t)),
            ));
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        let country = number
            .country()
            .id()
            .and_then(|id| CountryCode::parse(id.as_ref()).ok());
        Ok(Phone { e164, country })
    }

    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The country of the number; `None` for non-geographic numbers (+800, +882…).
    pub fn country(&self) -> Option<CountryCode> {
        self.country
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

// ------------------------------------------------------------------ payment

/// An IBAN with a valid checksum and country format, stored in electronic form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Iban {
    value: String,
    country: CountryCode,
}

impl Iban {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        use iban::IbanLike;
        let compact: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let parsed: iban::Iban = compact.parse().map_err(|e: iban::ParseIbanError| {
            let code = match e {
                iban::ParseIbanError::InvalidBaseIban {
                    source: iban::ParseBaseIbanError::InvalidChecksum,
                } => "checksum_mismatch",
                _ => "invalid_iban",
            };
            err(code, format!("'{}' is not a valid IBAN ({e})", shown(s)))
        })?;
        let country = CountryCode::parse(parsed.country_code())?;
        Ok(Iban {
            value: parsed.electronic_str().to_string(),
            country,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn country(&self) -> CountryCode {
        self.country
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    UnionPay,
    DinersClub,
    Maestro,
    Mir,
    Other,
}

impl CardBrand {
    const ALL: [CardBrand; 10] = [
        CardBrand::Visa,
        CardBrand::Mastercard,
        CardBrand::Amex,
        CardBrand::Discover,
        CardBrand::Jcb,
        CardBrand::UnionPay,
        CardBrand::DinersClub,
        CardBrand::Maestro,
        CardBrand::Mir,
        CardBrand::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            CardBrand::Visa => "visa",
            CardBrand::Mastercard => "mastercard",
            CardBrand::Amex => "amex",
            CardBrand::Discover => "discover",
            CardBrand::Jcb => "jcb",
            CardBrand::UnionPay => "unionpay",
            CardBrand::DinersClub => "diners_club",
            CardBrand::Maestro => "maestro",
            CardBrand::Mir => "mir",
            CardBrand::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        let t = match t.as_str() {
            "american_express" => "amex".to_string(),
            "master_card" => "mastercard".to_string(),
            "diners" => "diners_club".to_string(),
            "union_pay" => "unionpay".to_string(),
            _ => t,
        };
        Self::ALL
            .iter()
            .find(|b| b.as_str() == t)
            .copied()
            .ok_or_else(|| {
                err(
                    "invalid_enum",
                    "brand must be visa, mastercard, amex, discover, jcb, unionpay, diners_club, maestro, mir or other",
                )
            })
    }

    /// The brand from the issuer identification number ranges.
    pub fn detect(digits: &str) -> Self {
        let p = |n: usize| {
            digits
                .get(..n)
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let (p1, p2, p3, p4, p6) = (p(1), p(2), p(3), p(4), p(6));
        if p1 == 4 {
            CardBrand::Visa
        } else if (51..=55).contains(&p2) || (222_100..=272_099).contains(&p6) {
            CardBrand::Mastercard
        } else if p2 == 34 || p2 == 37 {
            CardBrand::Amex
        } else if (2200..=2204).contains(&p4) {
            CardBrand::Mir
        } else if p4 == 6011
            || p2 == 65
            || (644..=649).contains(&p3)
            || (622_126..=622_925).contains(&p6)
        {
            CardBrand::Discover
        } else if (3528..=3589).contains(&p4) {
            CardBrand::Jcb
        } else if p2 == 62 {
            CardBrand::UnionPay
        } else if p2 == 36 || p2 == 38 || p2 == 39 || (300..=305).contains(&p3) {
            CardBrand::DinersClub
        } else if p2 == 50 || (56..=69).contains(&p2) {
            CardBrand::Maestro
        } else {
            CardBrand::Other
        }
    }
}

impl fmt::Display for CardBrand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A full card number, held only long enough to derive brand, BIN, last four and a keyed
/// fingerprint. Its digits are wiped on drop and never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(Zeroizing<String>);

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

impl CardNumber {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if !t
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        {
            return Err(err(
                "invalid_card_number",
                "a card number has only digits, spaces and dashes",
            ));
        }
        let digits = Zeroizing::new(t.chars().filter(char::is_ascii_digit).collect::<String>());
        if !(12..=19).contains(&digits.len()) {
            return Err(err(
                "invalid_card_number",
                "a card number has 12 to 19 digits",
            ));
        }
        if !luhn::valid(&digits) {
            return Err(err(
                "checksum_mismatch",
                "the card number fails the Luhn check",
            ));
        }
        Ok(CardNumber(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn brand(&self) -> CardBrand {
        CardBrand::detect(&self.0)
    }

    /// The first 8 digits for 16+ digit numbers, else the first 6.
    pub fn bin(&self) -> String {
        let n = if self.0.len() >= 16 { 8 } else { 6 };
        self.0[..n].to_string()
    }

    pub fn last4(&self) -> String {
        self.0[self.0.len() - 4..].to_string()
    }
}

/// The issuer identification number: 6 or 8 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardBin(String);

impl CardBin {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if (t.len() == 6 || t.len() == 8) && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(CardBin(t.to_string()))
        } else {
            Err(err("invalid_bin", "a BIN is 6 or 8 digits"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The last four digits of a card number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardLast4(String);

impl CardLast4 {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(CardLast4(t.to_string()))
        } else {
            Err(err("invalid_last4", "last4 is exactly 4 digits"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WalletChain {
    Bitcoin,
    Ethereum,
    /// Another chain, by lowercase name; its addresses get no checksum check.
    Other(String),
}

impl WalletChain {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "bitcoin" | "btc" | "xbt" => Ok(WalletChain::Bitcoin),
            "ethereum" | "eth" => Ok(WalletChain::Ethereum),
            _ if !t.is_empty()
                && t.len() <= 32
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Ok(WalletChain::Other(t))
            }
            _ => Err(err(
                "invalid_chain",
                "chain must be bitcoin, ethereum or a lowercase chain name",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            WalletChain::Bitcoin => "bitcoin",
            WalletChain::Ethereum => "ethereum",
            WalletChain::Other(s) => s,
        }
    }
}

/// A wallet address whose checksum was verified where the chain has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WalletAddress {
    chain: WalletChain,
    address: String,
}

impl WalletAddress {
    pub fn parse(chain: &WalletChain, s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if t.is_empty() || t.len() > 128 {
            return Err(err("invalid_address", "an address has 1 to 128 characters"));
        }
        let address = match chain {
            WalletChain::Bitcoin => parse_btc(t)?,
            WalletChain::Ethereum => parse_eth(t)?,
            WalletChain::Other(_) => {
                if !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b))
                {
                    return Err(err(
                        "invalid_address",
                        "an address has only letters, digits, ':', '_' and '-'",
                    ));
                }
                t.to_string()
            }
        };
        Ok(WalletAddress {
            chain: chain.clone(),
            address,
        })
    }

    pub fn chain(&self) -> &WalletChain {
        &self.chain
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The form exact lookups compare: `chain:address`, case-folded where case carries no
    /// meaning (Ethereum hex, bech32).
    pub fn index_key(&self) -> String {
        let addr = match &self.chain {
            WalletChain::Ethereum => self.address.to_ascii_lowercase(),
            WalletChain::Bitcoin if !is_base58(&self.address) => self.address.to_ascii_lowercase(),
            _ => self.address.clone(),
        };
        format!("{}:{addr}", self.chain.as_str())
    }
}

fn is_base58(s: &str) -> bool {
    s.starts_with('1')
        || s.starts_with('3')
        || s.starts_with('m')
        || s.starts_with('n')
        || s.starts_with('2')
}

fn parse_btc(t: &str) -> Result<String, FieldError> {
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("bc1") || lower.starts_with("tb1") {
        if t != lower && t != t.to_ascii_uppercase() {
            return Err(err(
                "invalid_address",
                "a bech32 address must not mix upper and lower case",
            ));
        }
        return match bech32::segwit::decode(&lower) {
            Ok(_) => Ok(lower),
            Err(e) => Err(err(
                "checksum_mismatch",
                format!("not a valid segwit address: {e}"),
            )),
        };
    }
    let bytes = bs58::decode(t)
        .with_check(None)
        .into_vec()
        .map_err(|e| match e {
            bs58::decode::Error::InvalidChecksum { .. } => err(
                "checksum_mismatch",
                "the Base58Check checksum does not match",
            ),
            _ => err("invalid_address", "not a Bitcoin address"),
        })?;
    match (bytes.first(), bytes.len()) {
        (Some(0x00 | 0x05 | 0x6f | 0xc4), 21) => Ok(t.to_string()),
        _ => Err(err(
            "invalid_address",
            "not a Bitcoin P2PKH or P2SH address",
        )),
    }
}

fn parse_eth(t: &str) -> Result<String, FieldError> {
    use sha3::{Digest, Keccak256};
    let hex_part = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .ok_or_else(|| err("invalid_address", "an Ethereum address starts with 0x"))?;
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(
            "invalid_address",
            "an Ethereum address is 0x and 40 hex digits",
        ));
    }
    let lower = hex_part.to_ascii_lowercase();
    let mixed = hex_part != lower && hex_part != hex_part.to_ascii_uppercase();
    if mixed {
        // EIP-55: a letter is uppercase iff the matching nibble of keccak(lowercase) is ≥ 8.
        let hash = Keccak256::digest(lower.as_bytes());
        for (i, c) in hex_part.chars().enumerate() {
            if c.is_ascii_alphabetic() {
                let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
                if (nibble >= 8) != c.is_ascii_uppercase() {
                    return Err(err(
                        "checksum_mismatch",
                        "the EIP-55 mixed-case checksum does not match",
                    ));
                }
            }
        }
        Ok(format!("0x{hex_part}"))
    } else {
        Ok(format!("0x{lower}"))
    }
}

// ------------------------------------------------------------------ identity

/// A national identification number: separators removed, uppercase letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NationalIdNumber(String);

impl NationalIdNumber {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let n: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '/'))
            .collect::<String>()
            .to_ascii_uppercase();
        if n.is_empty() {
            return Err(err("empty", "the number is empty"));
        }
        if n.len() > 64 {
            return Err(err("too_long", "at most 64 characters"));
        }
        if !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(
                "invalid_format",
                "only letters, digits and the separators space - . / are allowed",
            ));
        }
        Ok(NationalIdNumber(n))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn clean_text(s: &str, max: usize, what: &str) -> Result<String, FieldError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(err(
            "control_character",
            format!("{what} must not contain control characters"),
        ));
    }
    let collapsed = s
        .nfc()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if collapsed.is_empty() {
        return Err(err("empty", format!("{what} is empty")));
    }
    if collapsed.chars().count() > max {
        return Err(err(
            "too_long",
            format!("{what} has at most {max} characters"),
        ));
    }
    Ok(collapsed)
}

/// A person's or organisation's name: NFC, trimmed, single spaces, 1–300 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        clean_text(s, 300, "a name").map(PersonName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A short free-text field (street line, city, institution, product, identifier): NFC,
/// trimmed, single spaces, 1–500 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShortText(String);

impl ShortText {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        clean_text(s, 500, "the text").map(ShortText)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A calendar date written `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, FieldError> {
    let t = s.trim();
    let b = t.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(err("invalid_date", "dates are written YYYY-MM-DD"));
    }
    t.parse::<Date>().map_err(|_| {
        err(
            "invalid_date",
            format!("'{}' is not a real calendar date", shown(t)),
        )
    })
}

/// A birth date: a real date, not in the future, not before 1900.
pub fn parse_birth_date(s: &str, today: Date) -> Result<Date, FieldError> {
    let d = parse_date(s)?;
    if d > today {
        return Err(err(
            "date_in_future",
            "a birth date cannot be in the future",
        ));
    }
    if d < jiff::civil::date(1900, 1, 1) {
        return Err(err(
            "out_of_range",
            "a birth date before 1900 is not plausible",
        ));
    }
    Ok(d)
}

/// An ownership share, 0–100 %, kept in basis points (two decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnershipPercent(u16);

impl OwnershipPercent {
    pub fn from_f64(v: f64) -> Result<Self, FieldError> {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            return Err(err(
                "out_of_range",
                "ownership is a percentage from 0 to 100",
            ));
        }
        let bp = (v * 100.0).round();
        if ((v * 100.0) - bp).abs() > 1e-6 {
            return Err(err("too_precise", "ownership has at most two decimals"));
        }
        Ok(OwnershipPercent(bp as u16))
    }
    pub fn basis_points(&self) -> u16 {
        self.0
    }
    pub fn as_f64(&self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

#[cfg(test)]
mod tests;
