//! U.S. person / foreign person determination (EO 13984 §5; the proposed rule's default).
//!
//! A U.S. person is a U.S. citizen, a lawful permanent resident, an entity organised under
//! U.S. law (including its foreign branches), or any person located in the United States.
//! Following the proposed rule, an applicant is treated as possibly foreign until the
//! information collected *establishes* U.S. status. Facts that only point to the U.S. (an
//! address, a phone, a card) support a determination but do not establish it; facts that point
//! abroad make a person foreign unless U.S. status is established, and are then surfaced as a
//! conflict rather than hidden. Every conclusion carries the evidence it used.

use crate::parse::CountryCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    UsPerson,
    ForeignPerson,
    Undetermined,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::UsPerson => "us_person",
            Status::ForeignPerson => "foreign_person",
            Status::Undetermined => "undetermined",
        }
    }
}

/// Where a fact comes from. Values are country codes only: the determination never carries
/// the personal data it was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    DeclaredCitizenship,
    UsResidencePermit,
    PlaceOfOrganization,
    DocumentNationality,
    AddressCountry,
    PhoneCountry,
    PaymentCountry,
    IpGeolocation,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::DeclaredCitizenship => "declared_citizenship",
            EvidenceKind::UsResidencePermit => "us_residence_permit",
            EvidenceKind::PlaceOfOrganization => "place_of_organization",
            EvidenceKind::DocumentNationality => "document_nationality",
            EvidenceKind::AddressCountry => "address_country",
            EvidenceKind::PhoneCountry => "phone_country",
            EvidenceKind::PaymentCountry => "payment_country",
            EvidenceKind::IpGeolocation => "ip_geolocation",
        }
    }

    /// Whether this fact, pointing to the U.S., establishes U.S. status by itself.
    fn establishes_us_status(self) -> bool {
        matches!(
            self,
            EvidenceKind::DeclaredCitizenship
                | EvidenceKind::UsResidencePermit
                | EvidenceKind::PlaceOfOrganization
                | EvidenceKind::DocumentNationality
                | EvidenceKind::IpGeolocation
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    pub country: CountryCode,
    /// Where in the record the fact is (a JSON pointer), for the analyst.
    pub source: String,
}

impl Evidence {
    pub fn new(kind: EvidenceKind, country: CountryCode, source: impl Into<String>) -> Self {
        Evidence {
            kind,
            country,
            source: source.into(),
        }
    }

    pub fn points_to_us(&self) -> bool {
        is_us(self.country)
    }
}

/// U.S. territories count as the United States.
pub fn is_us(c: CountryCode) -> bool {
    matches!(c.as_str(), "US" | "PR" | "GU" | "VI" | "AS" | "MP" | "UM")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Determination {
    pub status: Status,
    pub reasons: Vec<String>,
    pub evidence: Vec<Evidence>,
    /// Facts that disagree with the status, surfaced for review.
    pub conflicts: Vec<String>,
}

/// Determines one person's (or entity's) status from its evidence.
pub fn determine(evidence: Vec<Evidence>) -> Determination {
    let establishing: Vec<&Evidence> = evidence
        .iter()
        .filter(|e| e.points_to_us() && e.kind.establishes_us_status())
        .collect();
    let supporting_us: Vec<&Evidence> = evidence
        .iter()
        .filter(|e| e.points_to_us() && !e.kind.establishes_us_status())
        .collect();
    let foreign: Vec<&Evidence> = evidence.iter().filter(|e| !e.points_to_us()).collect();

    let mut reasons = Vec::new();
    let mut conflicts = Vec::new();
    let status = if let Some(first) = establishing.first() {
        reasons.push(format!(
            "U.S. status established by {} ({})",
            first.kind.as_str().replace('_', " "),
            first.source
        ));
        for f in &foreign {
            conflicts.push(format!(
                "{} at {} is {}, outside the U.S.",
                f.kind.as_str().replace('_', " "),
                f.source,
                f.country
            ));
        }
        Status::UsPerson
    } else if !foreign.is_empty() {
        reasons.push(format!(
            "no fact establishes U.S. status, and {} point(s) outside the U.S. (e.g. {} {} at {})",
            foreign.len(),
            foreign[0].kind.as_str().replace('_', " "),
            foreign[0].country,
            foreign[0].source
        ));
        if !supporting_us.is_empty() {
            conflicts.push(format!(
                "{} fact(s) point to the U.S. but do not establish U.S. status (e.g. {} at {})",
                supporting_us.len(),
                supporting_us[0].kind.as_str().replace('_', " "),
                supporting_us[0].source
            ));
        }
        Status::ForeignPerson
    } else if !supporting_us.is_empty() {
        reasons.push(
            "only facts that point to the U.S. without establishing U.S. status (address, phone, payment); treated as possibly foreign until citizenship, permanent residence, place of organisation or location is established"
                .into(),
        );
        Status::Undetermined
    } else {
        reasons.push("no facts collected yet; treated as possibly foreign".into());
        Status::Undetermined
    };
    Determination {
        status,
        reasons,
        evidence,
        conflicts,
    }
}

/// The customer's determination with each beneficial owner's, and whether the account needs
/// verification under the default policy: anyone not established as a U.S. person does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDetermination {
    pub customer: Determination,
    pub beneficial_owners: Vec<(uuid::Uuid, Determination)>,
    pub requires_verification: bool,
    pub reasons: Vec<String>,
}

pub fn determine_customer(
    customer: Vec<Evidence>,
    owners: Vec<(uuid::Uuid, Vec<Evidence>)>,
) -> CustomerDetermination {
    let customer = determine(customer);
    let owners: Vec<(uuid::Uuid, Determination)> = owners
        .into_iter()
        .map(|(id, ev)| (id, determine(ev)))
        .collect();
    let mut reasons = Vec::new();
    if customer.status != Status::UsPerson {
        reasons.push(format!(
            "the customer is {}",
            customer.status.as_str().replace('_', " ")
        ));
    }
    let not_us = owners
        .iter()
        .filter(|(_, d)| d.status != Status::UsPerson)
        .count();
    if not_us > 0 {
        reasons.push(format!(
            "{not_us} beneficial owner(s) not established as U.S. persons"
        ));
    }
    CustomerDetermination {
        requires_verification: !reasons.is_empty(),
        customer,
        beneficial_owners: owners,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EvidenceKind, c: &str) -> Evidence {
        Evidence::new(kind, CountryCode::parse(c).unwrap(), "/x")
    }

    #[test]
    fn established_us_status_wins_and_conflicts_are_surfaced() {
        let d = determine(vec![
            ev(EvidenceKind::DeclaredCitizenship, "US"),
            ev(EvidenceKind::AddressCountry, "DE"),
        ]);
        assert_eq!(d.status, Status::UsPerson);
        assert_eq!(d.conflicts.len(), 1);
    }

    #[test]
    fn possibly_foreign_until_established() {
        assert_eq!(determine(vec![]).status, Status::Undetermined);
        assert_eq!(
            determine(vec![
                ev(EvidenceKind::AddressCountry, "US"),
                ev(EvidenceKind::PhoneCountry, "US")
            ])
            .status,
            Status::Undetermined
        );
        let d = determine(vec![
            ev(EvidenceKind::AddressCountry, "US"),
            ev(EvidenceKind::PhoneCountry, "FR"),
        ]);
        assert_eq!(d.status, Status::ForeignPerson);
        assert_eq!(d.conflicts.len(), 1, "the U.S. address is surfaced");
        assert_eq!(
            determine(vec![ev(EvidenceKind::IpGeolocation, "US")]).status,
            Status::UsPerson,
            "located in the U.S."
        );
        assert_eq!(
            determine(vec![ev(EvidenceKind::PlaceOfOrganization, "PR")]).status,
            Status::UsPerson,
            "territories count"
        );
    }

    #[test]
    fn any_foreign_owner_requires_verification() {
        let id = uuid::Uuid::nil();
        let d = determine_customer(
            vec![ev(EvidenceKind::PlaceOfOrganization, "US")],
            vec![
                (id, vec![ev(EvidenceKind::DeclaredCitizenship, "US")]),
                (id, vec![ev(EvidenceKind::DeclaredCitizenship, "JP")]),
            ],
        );
        assert_eq!(d.customer.status, Status::UsPerson);
        assert!(d.requires_verification);
        let all_us = determine_customer(
            vec![ev(EvidenceKind::PlaceOfOrganization, "US")],
            vec![(id, vec![ev(EvidenceKind::DeclaredCitizenship, "US")])],
        );
        assert!(!all_us.requires_verification);
    }
}
