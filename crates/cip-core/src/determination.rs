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

    pub const ALL: [EvidenceKind; 8] = [
        EvidenceKind::DeclaredCitizenship,
        EvidenceKind::UsResidencePermit,
        EvidenceKind::PlaceOfOrganization,
        EvidenceKind::DocumentNationality,
        EvidenceKind::AddressCountry,
        EvidenceKind::PhoneCountry,
        EvidenceKind::PaymentCountry,
        EvidenceKind::IpGeolocation,
    ];

    pub fn parse(s: &str) -> Option<EvidenceKind> {
        EvidenceKind::ALL.into_iter().find(|k| k.as_str() == s)
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
    /// For IP geolocation: the address located (the first one the account used in that
    /// country), so the analyst can see which access the fact comes from.
    pub ip: Option<std::net::IpAddr>,
}

impl Evidence {
    pub fn new(kind: EvidenceKind, country: CountryCode, source: impl Into<String>) -> Self {
        Evidence {
            kind,
            country,
            source: source.into(),
            ip: None,
        }
    }

    /// An access from `ip`, located in `country` ("any person located in the United States").
    pub fn located(country: CountryCode, ip: std::net::IpAddr, source: impl Into<String>) -> Self {
        Evidence {
            kind: EvidenceKind::IpGeolocation,
            country,
            source: source.into(),
            ip: Some(ip),
        }
    }

    /// "ip geolocation at /accounts/…/countries/DE (198.51.100.7)": how a fact is named in
    /// reasons and conflicts.
    fn describe(&self) -> String {
        let mut s = format!(
            "{} at {}",
            self.kind.as_str().replace('_', " "),
            self.source
        );
        if let Some(ip) = self.ip {
            s.push_str(&format!(" ({ip})"));
        }
        s
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
        reasons.push(format!("U.S. status established by {}", first.describe()));
        for f in &foreign {
            conflicts.push(format!(
                "{} is {}, outside the U.S.",
                f.describe(),
                f.country
            ));
        }
        Status::UsPerson
    } else if !foreign.is_empty() {
        reasons.push(format!(
            "no fact establishes U.S. status, and {} point(s) outside the U.S. (e.g. {}: {})",
            foreign.len(),
            foreign[0].describe(),
            foreign[0].country,
        ));
        if !supporting_us.is_empty() {
            conflicts.push(format!(
                "{} fact(s) point to the U.S. but do not establish U.S. status (e.g. {})",
                supporting_us.len(),
                supporting_us[0].describe()
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

    #[test]
    fn evidence_kinds_round_trip_their_names() {
        for k in EvidenceKind::ALL {
            assert_eq!(EvidenceKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EvidenceKind::parse("address"), None);
    }

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
    fn a_us_location_against_foreign_documents_is_a_surfaced_conflict() {
        let c = |s: &str| CountryCode::parse(s).unwrap();
        let d = determine(vec![
            ev(EvidenceKind::DeclaredCitizenship, "DE"),
            Evidence::located(
                c("US"),
                "192.0.2.7".parse().unwrap(),
                "/accounts/a/countries/US",
            ),
            Evidence::located(
                c("FR"),
                "2001:db8::1".parse().unwrap(),
                "/accounts/a/countries/FR",
            ),
        ]);
        assert_eq!(d.status, Status::UsPerson, "any person located in the U.S.");
        assert!(d.reasons[0].contains("192.0.2.7"), "{:?}", d.reasons);
        assert_eq!(d.conflicts.len(), 2, "{:?}", d.conflicts);
        assert!(
            d.conflicts
                .iter()
                .any(|c| c.contains("declared citizenship") && c.contains("DE"))
        );
        assert!(
            d.conflicts
                .iter()
                .any(|c| c.contains("2001:db8::1") && c.contains("FR"))
        );
        // Foreign accesses only: foreign, with the address named.
        let d = determine(vec![Evidence::located(
            c("DE"),
            "198.51.100.7".parse().unwrap(),
            "/accounts/a/countries/DE",
        )]);
        assert_eq!(d.status, Status::ForeignPerson);
        assert!(d.reasons[0].contains("198.51.100.7"), "{:?}", d.reasons);
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
