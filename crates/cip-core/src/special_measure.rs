//! Special measures (EO 13984 §2): Commerce may prohibit or impose conditions on opening or
//! maintaining an account, including a Reseller Account, for foreign persons located in a
//! designated foreign jurisdiction, or for designated foreign persons.
//!
//! This module holds the measure as the domain sees it (parsed from raw input, every problem
//! named by field), when it is in force, which pieces of evidence tie a customer to its
//! target, and what it requires of a new or an existing account. No IO, no serialisation:
//! the server converts its DTOs by hand (docs/design/0010-special-measures.md).

use jiff::civil::Date;

use crate::model::AccountType;
use crate::parse::{CountryCode, FieldError, Subdivision, parse_date};

/// Days a measure lasts when no expiry is given (the NPRM's 365 days unless extended).
pub const DEFAULT_TERM_DAYS: i32 = 365;
/// Days an existing account has to comply (close or meet the conditions) when the measure
/// does not say.
pub const DEFAULT_COMPLIANCE_DAYS: u16 = 30;

/// Whom a measure is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasureTarget {
    /// Foreign persons located in a designated foreign jurisdiction (a country, or one
    /// subdivision of it).
    Jurisdiction {
        country: CountryCode,
        subdivision: Option<Subdivision>,
    },
    /// Designated foreign persons: the entries of one screening list (all of them when
    /// `entry_ids` is empty).
    DesignatedPersons {
        list_id: String,
        entry_ids: Vec<String>,
    },
}

/// What a measure does to one kind of act (opening, or maintaining, an account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Prohibited,
    Conditioned,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Prohibited => "prohibited",
            Effect::Conditioned => "conditioned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prohibited" => Some(Effect::Prohibited),
            "conditioned" => Some(Effect::Conditioned),
            _ => None,
        }
    }
}

/// A condition a measure imposes: a closed set, so every condition can be enforced or at
/// least shown for what it is (never free text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Identity must be verified with enhanced evidence before (continued) use.
    EnhancedVerification,
    /// The customer may not hold a Reseller Account.
    NoResellerAccounts,
    /// Only these products may be provided.
    ProductLimit { allowed_products: Vec<String> },
    /// At most this many units of capacity (vCPUs) may be provided.
    CapacityLimit { max_vcpus: u32 },
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::EnhancedVerification => "enhanced_verification",
            Condition::NoResellerAccounts => "no_reseller_accounts",
            Condition::ProductLimit { .. } => "product_limit",
            Condition::CapacityLimit { .. } => "capacity_limit",
        }
    }
}

/// A special measure, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialMeasure {
    pub target: MeasureTarget,
    /// What the measure does to opening accounts (`None`: opening is not covered).
    pub opening: Option<Effect>,
    /// What the measure does to maintaining accounts (`None`: existing accounts are not
    /// covered).
    pub maintaining: Option<Effect>,
    /// Required when either effect is `Conditioned`, refused otherwise.
    pub conditions: Vec<Condition>,
    pub covers_reseller_accounts: bool,
    pub legal_reference: String,
    pub determination_date: Date,
    pub effective_date: Date,
    /// The first day the measure no longer applies.
    pub expiry_date: Date,
    /// Days an existing account has to comply once the measure applies to it.
    pub compliance_days: u16,
}

/// The raw input of a measure, as strings and plain values from the wire.
#[derive(Debug, Clone, Default)]
pub struct MeasureInput {
    pub target_kind: String,
    pub country: Option<String>,
    pub subdivision: Option<String>,
    pub list_id: Option<String>,
    pub entry_ids: Vec<String>,
    pub opening: Option<String>,
    pub maintaining: Option<String>,
    pub conditions: Vec<ConditionInput>,
    pub covers_reseller_accounts: bool,
    pub legal_reference: String,
    pub determination_date: String,
    pub effective_date: String,
    pub expiry_date: Option<String>,
    pub compliance_days: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ConditionInput {
    pub kind: String,
    pub allowed_products: Option<Vec<String>>,
    pub max_vcpus: Option<u32>,
}

/// One refused field: its JSON pointer and why.
pub type Problem = (String, FieldError);

fn problem(field: &str, code: &'static str, message: impl Into<String>) -> Problem {
    (
        field.to_string(),
        FieldError {
            code,
            message: message.into(),
        },
    )
}

/// A list id as screening keeps them: 1–64 of `a-z 0-9 . _ -`, starting with a letter or
/// digit.
pub fn valid_list_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
}

fn text(field: &str, s: &str, max: usize, problems: &mut Vec<Problem>) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        problems.push(problem(
            field,
            "invalid_text",
            format!("1 to {max} printable characters"),
        ));
        return None;
    }
    Some(t.to_string())
}

impl SpecialMeasure {
    /// Parses every field and reports every problem, or returns a valid measure.
    pub fn parse(input: &MeasureInput) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let target = match input.target_kind.as_str() {
            "jurisdiction" => {
                if input.list_id.is_some() || !input.entry_ids.is_empty() {
                    problems.push(problem(
                        "/target/list_id",
                        "not_allowed",
                        "a jurisdiction measure names a country, not a list",
                    ));
                }
                let country = match input.country.as_deref() {
                    None => {
                        problems.push(problem(
                            "/target/country",
                            "required",
                            "a jurisdiction measure needs an ISO 3166-1 country code",
                        ));
                        None
                    }
                    Some(c) => match CountryCode::parse(c) {
                        Ok(c) if c.as_str() == "US" => {
                            problems.push(problem(
                                "/target/country",
                                "not_foreign",
                                "a special measure designates a foreign jurisdiction",
                            ));
                            None
                        }
                        Ok(c) => Some(c),
                        Err(e) => {
                            problems.push(("/target/country".into(), e));
                            None
                        }
                    },
                };
                let subdivision = match input.subdivision.as_deref() {
                    None => None,
                    Some(s) => match Subdivision::parse(s) {
                        Ok(sd) if country.is_some_and(|c| sd.country() != c) => {
                            problems.push(problem(
                                "/target/subdivision",
                                "country_mismatch",
                                "the subdivision must belong to the target country",
                            ));
                            None
                        }
                        Ok(sd) => Some(sd),
                        Err(e) => {
                            problems.push(("/target/subdivision".into(), e));
                            None
                        }
                    },
                };
                country.map(|country| MeasureTarget::Jurisdiction {
                    country,
                    subdivision,
                })
            }
            "designated_persons" => {
                if input.country.is_some() || input.subdivision.is_some() {
                    problems.push(problem(
                        "/target/country",
                        "not_allowed",
                        "a designated-persons measure names a list, not a country",
                    ));
                }
                let list_id = match input.list_id.as_deref() {
                    Some(l) if valid_list_id(l) => Some(l.to_string()),
                    Some(_) => {
                        problems.push(problem(
                            "/target/list_id",
                            "invalid_list_id",
                            "list ids are 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
                        ));
                        None
                    }
                    None => {
                        problems.push(problem(
                            "/target/list_id",
                            "required",
                            "a designated-persons measure needs the list of the designated persons",
                        ));
                        None
                    }
                };
                let mut entry_ids = Vec::new();
                for (i, e) in input.entry_ids.iter().enumerate() {
                    if let Some(t) = text(&format!("/target/entry_ids/{i}"), e, 200, &mut problems)
                    {
                        if entry_ids.contains(&t) {
                            problems.push(problem(
                                &format!("/target/entry_ids/{i}"),
                                "duplicate",
                                "this entry id is listed twice",
                            ));
                        } else {
                            entry_ids.push(t);
                        }
                    }
                }
                list_id.map(|list_id| MeasureTarget::DesignatedPersons { list_id, entry_ids })
            }
            _ => {
                problems.push(problem(
                    "/target/kind",
                    "invalid_enum",
                    "must be jurisdiction or designated_persons",
                ));
                None
            }
        };
        let mut effect = |field: &str, v: &Option<String>| -> Option<Effect> {
            let s = v.as_deref()?;
            let e = Effect::parse(s);
            if e.is_none() {
                problems.push(problem(
                    field,
                    "invalid_enum",
                    "must be prohibited or conditioned (or left out)",
                ));
            }
            e
        };
        let opening = effect("/opening", &input.opening);
        let maintaining = effect("/maintaining", &input.maintaining);
        if input.opening.is_none() && input.maintaining.is_none() {
            problems.push(problem(
                "/opening",
                "required",
                "a measure prohibits or conditions opening and/or maintaining accounts",
            ));
        }
        let mut conditions: Vec<Condition> = Vec::new();
        for (i, c) in input.conditions.iter().enumerate() {
            let field = format!("/conditions/{i}");
            let parsed = match c.kind.as_str() {
                "enhanced_verification" => Some(Condition::EnhancedVerification),
                "no_reseller_accounts" => Some(Condition::NoResellerAccounts),
                "product_limit" => match &c.allowed_products {
                    Some(p) if !p.is_empty() => {
                        let mut ok = Vec::new();
                        for (j, name) in p.iter().enumerate() {
                            if let Some(t) = text(
                                &format!("{field}/allowed_products/{j}"),
                                name,
                                100,
                                &mut problems,
                            ) {
                                ok.push(t);
                            }
                        }
                        Some(Condition::ProductLimit {
                            allowed_products: ok,
                        })
                    }
                    _ => {
                        problems.push(problem(
                            &format!("{field}/allowed_products"),
                            "required",
                            "a product limit lists the products that remain allowed",
                        ));
                        None
                    }
                },
                "capacity_limit" => match c.max_vcpus {
                    Some(n) if n > 0 => Some(Condition::CapacityLimit { max_vcpus: n }),
                    _ => {
                        problems.push(problem(
                            &format!("{field}/max_vcpus"),
                            "required",
                            "a capacity limit gives max_vcpus, at least 1",
                        ));
                        None
                    }
                },
                _ => {
                    problems.push(problem(
                        &format!("{field}/kind"),
                        "invalid_enum",
                        "must be enhanced_verification, no_reseller_accounts, product_limit or capacity_limit",
                    ));
                    None
                }
            };
            if let Some(p) = parsed {
                if conditions.iter().any(|x| x.kind() == p.kind()) {
                    problems.push(problem(
                        &format!("{field}/kind"),
                        "duplicate",
                        "each kind of condition is given once",
                    ));
                } else {
                    conditions.push(p);
                }
            }
        }
        let conditioned =
            opening == Some(Effect::Conditioned) || maintaining == Some(Effect::Conditioned);
        if conditioned && input.conditions.is_empty() {
            problems.push(problem(
                "/conditions",
                "required",
                "a conditioned measure lists its conditions",
            ));
        }
        if !conditioned && !input.conditions.is_empty() {
            problems.push(problem(
                "/conditions",
                "not_allowed",
                "conditions belong to a measure that conditions opening or maintaining",
            ));
        }
        let legal_reference = text(
            "/legal_reference",
            &input.legal_reference,
            300,
            &mut problems,
        );
        let mut date = |field: &str, s: &str| match parse_date(s) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.push((field.into(), e));
                None
            }
        };
        let determination_date = date("/determination_date", &input.determination_date);
        let effective_date = date("/effective_date", &input.effective_date);
        let expiry_date = match &input.expiry_date {
            Some(s) => date("/expiry_date", s),
            None => effective_date.and_then(|d| {
                d.checked_add(jiff::Span::new().days(DEFAULT_TERM_DAYS))
                    .ok()
            }),
        };
        if let (Some(e), Some(x)) = (effective_date, expiry_date)
            && x <= e
        {
            problems.push(problem(
                "/expiry_date",
                "before_effective",
                "the expiry date must be after the effective date",
            ));
        }
        if let (Some(d), Some(e)) = (determination_date, effective_date)
            && e < d
        {
            problems.push(problem(
                "/effective_date",
                "before_determination",
                "a measure cannot take effect before it was determined",
            ));
        }
        let compliance_days = match input.compliance_days {
            None => Some(DEFAULT_COMPLIANCE_DAYS),
            Some(n) if n <= 365 => u16::try_from(n).ok(),
            Some(_) => {
                problems.push(problem("/compliance_days", "out_of_range", "0 to 365 days"));
                None
            }
        };
        match (
            target,
            legal_reference,
            determination_date,
            effective_date,
            expiry_date,
            compliance_days,
        ) {
            (Some(target), Some(legal_reference), Some(dd), Some(ed), Some(xd), Some(cd))
                if problems.is_empty() =>
            {
                Ok(SpecialMeasure {
                    target,
                    opening,
                    maintaining,
                    conditions,
                    covers_reseller_accounts: input.covers_reseller_accounts,
                    legal_reference,
                    determination_date: dd,
                    effective_date: ed,
                    expiry_date: xd,
                    compliance_days: cd,
                })
            }
            _ => Err(problems),
        }
    }

    /// Whether the measure applies on `today` (effective, not yet expired). Revocation is
    /// the record's business, not the measure's.
    pub fn in_force_on(&self, today: Date) -> bool {
        self.effective_date <= today && today < self.expiry_date
    }

    /// Whether the measure reaches an account of this type (Reseller Accounts only when it
    /// says it covers them).
    pub fn covers(&self, account_type: AccountType) -> bool {
        account_type != AccountType::ResellerAccount || self.covers_reseller_accounts
    }

    /// What the measure requires when an account of `account_type` is applied for by a
    /// customer tied to its target. A measure that prohibits maintaining accounts also bars
    /// opening one (an account that may not be maintained may not be opened); one that only
    /// conditions maintaining attaches its conditions to new accounts too.
    pub fn at_opening(&self, account_type: AccountType) -> Option<OpeningOutcome> {
        if !self.covers(account_type) {
            return None;
        }
        let effect = match (self.opening, self.maintaining) {
            (Some(Effect::Prohibited), _) | (_, Some(Effect::Prohibited)) => Effect::Prohibited,
            (Some(Effect::Conditioned), _) | (_, Some(Effect::Conditioned)) => Effect::Conditioned,
            (None, None) => return None,
        };
        Some(match effect {
            Effect::Prohibited => OpeningOutcome::Refuse,
            Effect::Conditioned
                if account_type == AccountType::ResellerAccount
                    && self.conditions.contains(&Condition::NoResellerAccounts) =>
            {
                OpeningOutcome::Refuse
            }
            Effect::Conditioned => OpeningOutcome::Conditions,
        })
    }

    /// What an existing account tied to the target must do once the measure applies.
    pub fn for_existing(&self, account_type: AccountType) -> Option<RequiredAction> {
        if !self.covers(account_type) {
            return None;
        }
        match self.maintaining? {
            Effect::Prohibited => Some(RequiredAction::Close),
            Effect::Conditioned
                if account_type == AccountType::ResellerAccount
                    && self.conditions.contains(&Condition::NoResellerAccounts) =>
            {
                Some(RequiredAction::Close)
            }
            Effect::Conditioned => Some(RequiredAction::ApplyConditions),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpeningOutcome {
    /// The application is refused.
    Refuse,
    /// The account is opened with the measure's conditions attached.
    Conditions,
}

/// What the provider must do with an account a measure (or a confirmed hit) reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredAction {
    /// Restrict use (pending review).
    Restrict,
    /// Close the account by the deadline; no use meanwhile.
    Close,
    /// Keep the account only under the measure's conditions.
    ApplyConditions,
}

impl RequiredAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RequiredAction::Restrict => "restrict",
            RequiredAction::Close => "close",
            RequiredAction::ApplyConditions => "apply_conditions",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "restrict" => Some(RequiredAction::Restrict),
            "close" => Some(RequiredAction::Close),
            "apply_conditions" => Some(RequiredAction::ApplyConditions),
            _ => None,
        }
    }
}

/// Where a country came from in a customer's record (or elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    AddressCountry,
    PlaceOfOrganization,
    NationalIdIssuingCountry,
    Nationality,
    PhoneCountry,
    CardIssuingCountry,
    IbanCountry,
    BankAccountCountry,
    AccessCountry,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::AddressCountry => "address_country",
            EvidenceKind::PlaceOfOrganization => "place_of_organization",
            EvidenceKind::NationalIdIssuingCountry => "national_id_issuing_country",
            EvidenceKind::Nationality => "nationality",
            EvidenceKind::PhoneCountry => "phone_country",
            EvidenceKind::CardIssuingCountry => "card_issuing_country",
            EvidenceKind::IbanCountry => "iban_country",
            EvidenceKind::BankAccountCountry => "bank_account_country",
            EvidenceKind::AccessCountry => "access_country",
        }
    }
}

/// One country fact about a customer or one of its beneficial owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryEvidence {
    /// `customer` or `owner/<n>`.
    pub subject: String,
    pub kind: EvidenceKind,
    pub country: CountryCode,
    /// Known for addresses and places of organisation only.
    pub subdivision: Option<Subdivision>,
}

/// The pieces of evidence that tie a customer to a jurisdiction target. A subdivision
/// target is met only by evidence that names the subdivision (an address, a place of
/// organisation): a phone or document country says nothing about a region.
pub fn jurisdiction_ties<'a>(
    target: &MeasureTarget,
    evidence: &'a [CountryEvidence],
) -> Vec<&'a CountryEvidence> {
    let MeasureTarget::Jurisdiction {
        country,
        subdivision,
    } = target
    else {
        return Vec::new();
    };
    evidence
        .iter()
        .filter(|e| {
            e.country == *country
                && match subdivision {
                    None => true,
                    Some(sd) => e.subdivision.as_ref() == Some(sd),
                }
        })
        .collect()
}

/// Whether a confirmed hit on `list_id`/`entry_id` is a designated person of this target.
pub fn person_targeted(target: &MeasureTarget, list_id: &str, entry_id: &str) -> bool {
    match target {
        MeasureTarget::DesignatedPersons {
            list_id: l,
            entry_ids,
        } => l == list_id && (entry_ids.is_empty() || entry_ids.iter().any(|e| e == entry_id)),
        MeasureTarget::Jurisdiction { .. } => false,
    }
}

/// One use of an account the provider's control plane asks about: a product, and how many
/// vCPUs of capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Use<'a> {
    pub product: Option<&'a str>,
    pub vcpus: Option<u32>,
}

/// Product names compare trimmed and without regard to ASCII case (`Compute` = `compute`).
pub fn same_product(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl Condition {
    /// Whether this condition permits `usage`. Only the limits constrain a use: a product
    /// limit refuses a product outside its list, a capacity limit more vCPUs than its
    /// maximum; what the use does not name is not refused.
    pub fn permits(&self, usage: Use<'_>) -> bool {
        match self {
            Condition::ProductLimit { allowed_products } => usage
                .product
                .is_none_or(|p| allowed_products.iter().any(|a| same_product(a, p))),
            Condition::CapacityLimit { max_vcpus } => usage.vcpus.is_none_or(|n| n <= *max_vcpus),
            Condition::EnhancedVerification | Condition::NoResellerAccounts => true,
        }
    }
}

impl SpecialMeasure {
    /// The limits of this measure that `usage` breaks (empty: permitted).
    pub fn limits_broken(&self, usage: Use<'_>) -> Vec<&Condition> {
        self.conditions
            .iter()
            .filter(|c| !c.permits(usage))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_only_what_they_limit() {
        let products = Condition::ProductLimit {
            allowed_products: vec!["storage".into(), "Object Storage".into()],
        };
        let capacity = Condition::CapacityLimit { max_vcpus: 8 };
        let check = |c: &Condition, product: Option<&str>, vcpus: Option<u32>| {
            c.permits(Use { product, vcpus })
        };
        assert!(check(&products, Some("storage"), None));
        assert!(check(&products, Some(" object storage "), Some(64)));
        assert!(!check(&products, Some("compute"), None));
        assert!(check(&products, None, Some(64)), "a use naming no product");
        assert!(check(&capacity, Some("compute"), Some(8)));
        assert!(!check(&capacity, None, Some(9)));
        assert!(check(&capacity, Some("compute"), None));
        assert!(check(
            &Condition::EnhancedVerification,
            Some("compute"),
            Some(1000)
        ));
    }

    fn input() -> MeasureInput {
        MeasureInput {
            target_kind: "jurisdiction".into(),
            country: Some("kp".into()),
            opening: Some("prohibited".into()),
            legal_reference: "15 CFR 7.310 (example)".into(),
            determination_date: "2026-01-01".into(),
            effective_date: "2026-02-01".into(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_and_defaults_the_term() {
        let m = SpecialMeasure::parse(&input()).unwrap();
        assert_eq!(
            m.target,
            MeasureTarget::Jurisdiction {
                country: CountryCode::parse("KP").unwrap(),
                subdivision: None
            }
        );
        assert_eq!(m.expiry_date, jiff::civil::date(2027, 2, 1));
        assert_eq!(m.compliance_days, DEFAULT_COMPLIANCE_DAYS);
        assert!(m.in_force_on(jiff::civil::date(2026, 2, 1)));
        assert!(!m.in_force_on(jiff::civil::date(2026, 1, 31)));
        assert!(!m.in_force_on(jiff::civil::date(2027, 2, 1)));
    }

    fn fields(i: &MeasureInput) -> Vec<String> {
        SpecialMeasure::parse(i)
            .unwrap_err()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn every_problem_is_named() {
        let mut i = input();
        i.country = Some("XX".into());
        i.expiry_date = Some("2026-01-15".into());
        i.conditions = vec![ConditionInput {
            kind: "enhanced_verification".into(),
            ..Default::default()
        }];
        assert_eq!(
            fields(&i),
            vec!["/target/country", "/conditions", "/expiry_date"]
        );
        let mut i = input();
        i.opening = Some("conditioned".into());
        i.conditions = vec![
            ConditionInput {
                kind: "capacity_limit".into(),
                ..Default::default()
            },
            ConditionInput {
                kind: "colour".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            fields(&i),
            vec!["/conditions/0/max_vcpus", "/conditions/1/kind"]
        );
        let mut i = input();
        i.country = Some("US".into());
        assert_eq!(fields(&i), vec!["/target/country"]);
    }

    #[test]
    fn opening_and_existing_accounts() {
        let mut i = input();
        i.opening = None;
        i.maintaining = Some("conditioned".into());
        i.conditions = vec![ConditionInput {
            kind: "no_reseller_accounts".into(),
            ..Default::default()
        }];
        let m = SpecialMeasure::parse(&i).unwrap();
        assert_eq!(
            m.at_opening(AccountType::Standard),
            Some(OpeningOutcome::Conditions)
        );
        // Reseller Accounts are outside the measure unless it covers them.
        assert_eq!(m.at_opening(AccountType::ResellerAccount), None);
        let mut m2 = m.clone();
        m2.covers_reseller_accounts = true;
        assert_eq!(
            m2.at_opening(AccountType::ResellerAccount),
            Some(OpeningOutcome::Refuse)
        );
        assert_eq!(
            m2.for_existing(AccountType::ResellerAccount),
            Some(RequiredAction::Close)
        );
        assert_eq!(
            m.for_existing(AccountType::Standard),
            Some(RequiredAction::ApplyConditions)
        );
        let opening_only = SpecialMeasure::parse(&input()).unwrap();
        assert_eq!(opening_only.for_existing(AccountType::Standard), None);
    }

    #[test]
    fn subdivision_targets_need_regional_evidence() {
        let target = MeasureTarget::Jurisdiction {
            country: CountryCode::parse("UA").unwrap(),
            subdivision: Some(Subdivision::parse("UA-43").unwrap()),
        };
        let ev = vec![
            CountryEvidence {
                subject: "customer".into(),
                kind: EvidenceKind::PhoneCountry,
                country: CountryCode::parse("UA").unwrap(),
                subdivision: None,
            },
            CountryEvidence {
                subject: "owner/0".into(),
                kind: EvidenceKind::AddressCountry,
                country: CountryCode::parse("UA").unwrap(),
                subdivision: Some(Subdivision::parse("UA-43").unwrap()),
            },
        ];
        let ties = jurisdiction_ties(&target, &ev);
        assert_eq!(ties.len(), 1);
        assert_eq!(ties[0].subject, "owner/0");
    }

    #[test]
    fn person_targets() {
        let t = MeasureTarget::DesignatedPersons {
            list_id: "commerce".into(),
            entry_ids: vec!["P-1".into()],
        };
        assert!(person_targeted(&t, "commerce", "P-1"));
        assert!(!person_targeted(&t, "commerce", "P-2"));
        assert!(!person_targeted(&t, "ofac_sdn", "P-1"));
    }
}
