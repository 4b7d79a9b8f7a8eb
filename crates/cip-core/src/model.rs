//! The records a Customer Identification Program keeps (EO 13984 §1(a)(ii)), as validated
//! domain values. Every field here was parsed at the boundary; nothing here can be invalid.
//!
//! The regulation's words are the domain's words: customer, beneficial owner, Account,
//! Reseller Account, means and source of payment.

use jiff::civil::Date;
use uuid::Uuid;

use crate::parse::{
    CardBin, CardBrand, CardLast4, CountryCode, Email, Iban, NationalIdNumber, OwnershipPercent,
    PersonName, Phone, ShortText, Subdivision, WalletAddress,
};

/// Whether the customer is a natural person or a legal entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerKind {
    Individual,
    Entity,
}

impl CustomerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerKind::Individual => "individual",
            CustomerKind::Entity => "entity",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "individual" => Some(CustomerKind::Individual),
            "entity" => Some(CustomerKind::Entity),
            _ => None,
        }
    }
}

/// Which of a person's names this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// The legal name (for an entity: its registered name).
    Legal,
    /// Any other name used: alias, trading name, transliteration.
    Other,
    /// A former name.
    Former,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub kind: NameKind,
    pub full: PersonName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NationalIdType {
    Passport,
    NationalId,
    TaxId,
    DriversLicense,
    ResidencePermit,
    /// Registry number of an entity (company number, LEI and similar).
    Registration,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalId {
    pub id_type: NationalIdType,
    pub number: NationalIdNumber,
    pub issuing_country: CountryCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    Residential,
    Business,
    Mailing,
    Registered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub kind: AddressKind,
    pub lines: Vec<ShortText>,
    pub city: Option<ShortText>,
    pub postal_code: Option<ShortText>,
    pub subdivision: Option<Subdivision>,
    pub country: CountryCode,
}

/// The identity fields kept for a customer and for each beneficial owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub names: Vec<Name>,
    pub birth_date: Option<Date>,
    /// Citizenships / nationalities as declared by the customer.
    pub citizenships: Vec<CountryCode>,
    pub national_ids: Vec<NationalId>,
    pub addresses: Vec<Address>,
    pub emails: Vec<Email>,
    pub phones: Vec<Phone>,
}

/// A payment card, kept the PCI-safe way: never the full number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFacts {
    pub brand: CardBrand,
    pub bin: CardBin,
    pub last4: CardLast4,
    pub issuing_country: Option<CountryCode>,
    /// Keyed fingerprint of the full number (hex of 32 bytes), derived when the full number was
    /// given once; lets the provider see the same card on two accounts without storing it.
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    pub institution: Option<ShortText>,
    pub iban: Option<Iban>,
    /// Account reference when there is no IBAN (e.g. a U.S. account and routing number).
    pub account_reference: Option<ShortText>,
    pub country: Option<CountryCode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentInstrument {
    Card(CardFacts),
    BankAccount(BankAccount),
    CryptoWallet(WalletAddress),
    /// A payment processor account known only by the provider's identifiers.
    Other {
        description: ShortText,
    },
}

/// Means and source of payment (EO 13984 §1(a)(ii)(B)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub instrument: PaymentInstrument,
    /// Who or what pays, when it is not the customer itself ("employer", "parent company").
    pub source: Option<ShortText>,
    /// The customer's identifier at the payment processor.
    pub external_customer_id: Option<ShortText>,
    /// Identifiers of transactions made with this method.
    pub transaction_ids: Vec<ShortText>,
}

/// An individual who owns or controls an entity customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeneficialOwner {
    pub id: Uuid,
    pub identity: Identity,
    pub ownership: Option<OwnershipPercent>,
    /// The control role ("CEO", "managing director", "signatory").
    pub control_role: Option<ShortText>,
}

/// Facts that only entities have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntityDetails {
    /// Where the entity is organised (incorporated). An entity organised under U.S. law is a
    /// U.S. person, including its foreign branches.
    pub place_of_organization: Option<CountryCode>,
    pub organization_subdivision: Option<Subdivision>,
    pub entity_type: Option<ShortText>,
}

/// A customer's full identity record as it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    pub kind: CustomerKind,
    /// The provider's own identifier for this customer.
    pub external_id: Option<ShortText>,
    pub identity: Identity,
    pub entity: Option<EntityDetails>,
    pub payment_methods: Vec<PaymentMethod>,
    pub beneficial_owners: Vec<BeneficialOwner>,
}

/// Account types the regulation distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountType {
    Standard,
    /// A free or trial offering (a risk factor in most policies).
    Trial,
    /// An account through which a reseller resells IaaS to third parties.
    ResellerAccount,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Standard => "standard",
            AccountType::Trial => "trial",
            AccountType::ResellerAccount => "reseller_account",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(AccountType::Standard),
            "trial" => Some(AccountType::Trial),
            "reseller_account" => Some(AccountType::ResellerAccount),
            _ => None,
        }
    }
}

/// Where an account stands. Which status may follow which is `crate::lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// Application received, not yet opened.
    Applied,
    /// Verification required and not complete: interim use only, restricted.
    PendingVerification,
    /// Verified, or verification not required (U.S. person, exempt).
    Active,
    /// Restricted by an analyst or a policy action.
    Restricted,
    /// Verification failed: must not be used, must be closed.
    Failed,
    /// Verified once; the policy's re-verification interval has elapsed.
    ReverificationDue,
    /// Final.
    Closed,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 7] = [
        AccountStatus::Applied,
        AccountStatus::PendingVerification,
        AccountStatus::Active,
        AccountStatus::Restricted,
        AccountStatus::Failed,
        AccountStatus::ReverificationDue,
        AccountStatus::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Applied => "applied",
            AccountStatus::PendingVerification => "pending_verification",
            AccountStatus::Active => "active",
            AccountStatus::Restricted => "restricted",
            AccountStatus::Failed => "failed",
            AccountStatus::ReverificationDue => "reverification_due",
            AccountStatus::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Roles of API keys. Least privilege: each route names the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, including key management.
    Admin,
    /// Compliance analyst: reads and decides on records.
    Analyst,
    /// Read-only, plus the audit trail.
    Auditor,
    /// The provider's backend: writes records, reads single records, no bulk export.
    Integration,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Analyst, Role::Auditor, Role::Integration];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Integration => "integration",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "auditor" => Some(Role::Auditor),
            "integration" => Some(Role::Integration),
            _ => None,
        }
    }
}

/// What a role may do. Kept here, in one table, so the policy is reviewable in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ReadPersonalData,
    WriteRecords,
    ListRecords,
    ReadAudit,
    ManageKeys,
    /// Screen a name against the loaded lists (ad hoc, `/v1/screen`).
    Screen,
    /// Load new versions of screening lists.
    ManageLists,
    /// Confirm or dismiss screening review items.
    DecideReviews,
    /// Create, extend and revoke special measures (EO 13984 §2).
    ManageSpecialMeasures,
    /// Read special measures and their reports.
    ReadSpecialMeasures,
    /// Record verification results (documents, codes, payment confirmations, vendor
    /// requests).
    RecordVerification,
    /// Resolve unverified cases.
    ResolveCases,
    /// Apply a new verification policy.
    ManagePolicy,
}

pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::Analyst => matches!(
            permission,
            ReadPersonalData
                | WriteRecords
                | ListRecords
                | Screen
                | DecideReviews
                | ReadSpecialMeasures
                | RecordVerification
                | ResolveCases
        ),
        Role::Auditor => matches!(
            permission,
            ReadPersonalData | ListRecords | ReadAudit | ReadSpecialMeasures
        ),
        Role::Integration => matches!(
            permission,
            ReadPersonalData | WriteRecords | Screen | RecordVerification
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(s.as_str()), Some(s));
        }
        for t in [
            AccountType::Standard,
            AccountType::Trial,
            AccountType::ResellerAccount,
        ] {
            assert_eq!(AccountType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn least_privilege_table() {
        assert!(!role_allows(Role::Integration, Permission::ListRecords));
        assert!(!role_allows(Role::Integration, Permission::ReadAudit));
        assert!(!role_allows(Role::Auditor, Permission::WriteRecords));
        assert!(role_allows(Role::Auditor, Permission::ReadAudit));
        assert!(!role_allows(Role::Analyst, Permission::ManageKeys));
        assert!(role_allows(Role::Admin, Permission::ManageKeys));
        assert!(role_allows(Role::Integration, Permission::Screen));
        assert!(!role_allows(Role::Auditor, Permission::Screen));
        assert!(!role_allows(Role::Analyst, Permission::ManageLists));
        assert!(role_allows(Role::Admin, Permission::ManageLists));
    }
}
