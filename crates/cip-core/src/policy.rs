//! The provider's risk-based verification policy (EO 13984 §1(a)(ii); the proposed rule lets
//! each provider decide how it verifies, in proportion to risk).
//!
//! A [`Policy`] is built from the provider's policy file at the boundary (`cip-server`'s
//! `policy_file`), which reports every problem with its line. A value of this type is always
//! consistent: tiers are named once, every reference resolves, every requirement can be met.
//! [`evaluate`] is a pure function of the policy and the facts of one customer and account;
//! it does no IO and allocates little, because a policy change re-evaluates every stored
//! customer.

use std::collections::BTreeSet;

use crate::determination::Status;
use crate::model::{AccountType, CustomerKind};
use crate::parse::CountryCode;

/// A way of verifying identity that the policy can require (issue: documentary,
/// non-documentary and vendor methods; `beneficial_owners_verified` for entities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// An identity document with a valid machine-readable zone that matches the record.
    Document,
    /// An entity's formation document (registry, number, jurisdiction) consistent with it.
    FormationDocument,
    OtpEmail,
    OtpPhone,
    /// The provider's billing system confirmed the payment instrument.
    PaymentConfirmation,
    /// An external vendor's documentary check.
    VendorDocumentary,
    /// An external vendor's non-documentary check.
    VendorNonDocumentary,
    /// Every foreign beneficial owner of the entity is verified.
    BeneficialOwnersVerified,
    /// The collected data is consistent with itself (countries of addresses, phones, payment
    /// instruments, documents and accesses).
    ConsistencyCheck,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::Document,
        Method::FormationDocument,
        Method::OtpEmail,
        Method::OtpPhone,
        Method::PaymentConfirmation,
        Method::VendorDocumentary,
        Method::VendorNonDocumentary,
        Method::BeneficialOwnersVerified,
        Method::ConsistencyCheck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Document => "document",
            Method::FormationDocument => "formation_document",
            Method::OtpEmail => "otp_email",
            Method::OtpPhone => "otp_phone",
            Method::PaymentConfirmation => "payment_confirmation",
            Method::VendorDocumentary => "vendor_documentary",
            Method::VendorNonDocumentary => "vendor_non_documentary",
            Method::BeneficialOwnersVerified => "beneficial_owners_verified",
            Method::ConsistencyCheck => "consistency_check",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl From<crate::verification::Method> for Method {
    fn from(m: crate::verification::Method) -> Self {
        use crate::verification::Method as E;
        match m {
            E::Document => Method::Document,
            E::FormationDocument => Method::FormationDocument,
            E::OtpEmail => Method::OtpEmail,
            E::OtpPhone => Method::OtpPhone,
            E::PaymentConfirmation => Method::PaymentConfirmation,
            E::VendorDocumentary => Method::VendorDocumentary,
            E::VendorNonDocumentary => Method::VendorNonDocumentary,
            E::ConsistencyCheck => Method::ConsistencyCheck,
        }
    }
}

/// A set of methods, as a bit set: evaluation compares sets for every customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Methods(u16);

impl Methods {
    pub fn insert(&mut self, m: Method) {
        self.0 |= m.bit();
    }
    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }
    pub fn intersects(self, other: Methods) -> bool {
        self.0 & other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Method> {
        Method::ALL.into_iter().filter(move |m| self.contains(*m))
    }
}

impl FromIterator<Method> for Methods {
    fn from_iter<I: IntoIterator<Item = Method>>(iter: I) -> Self {
        let mut s = Methods::default();
        for m in iter {
            s.insert(m);
        }
        s
    }
}

/// What an account may do while its verification is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InterimUse {
    /// No use until verified.
    None,
    /// Restricted use under enhanced monitoring.
    Restricted,
    /// Full use (a low-risk tier may allow it).
    Full,
}

impl InterimUse {
    pub fn as_str(self) -> &'static str {
        match self {
            InterimUse::None => "none",
            InterimUse::Restricted => "restricted",
            InterimUse::Full => "full",
        }
    }
    pub fn parse(s: &str) -> Option<InterimUse> {
        [InterimUse::None, InterimUse::Restricted, InterimUse::Full]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub interim_use: InterimUse,
    /// Days a pending account has to complete verification.
    pub verification_deadline_days: u32,
    /// Days after which a verified customer is verified again.
    pub reverify_days: u32,
}

/// A fact about the customer or account that raises its risk tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Factor {
    /// Any of the customer's (or its owners') countries is in this set.
    Jurisdiction(BTreeSet<CountryCode>),
    /// Pays with a crypto-currency wallet.
    CryptoPayment,
    /// A free or trial offering.
    TrialAccount,
    ResellerAccount,
    /// Accessed from an anonymising network (VPN, Tor, hosting ranges), as reported.
    AnonymizingIp,
    /// The collected data conflicts (the determination surfaced a conflict).
    DataMismatch,
    /// The U.S./foreign determination could not be made.
    Undetermined,
}

impl Factor {
    pub fn name(&self) -> &'static str {
        match self {
            Factor::Jurisdiction(_) => "jurisdiction",
            Factor::CryptoPayment => "crypto_payment",
            Factor::TrialAccount => "trial_account",
            Factor::ResellerAccount => "reseller_account",
            Factor::AnonymizingIp => "anonymizing_ip",
            Factor::DataMismatch => "data_mismatch",
            Factor::Undetermined => "undetermined",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskFactor {
    /// The provider's label for the factor (e.g. "high-risk jurisdictions").
    pub label: String,
    pub factor: Factor,
    /// Tiers to raise by (at least 1); the tier is capped at the highest.
    pub raise: u8,
}

/// Which evidence verifies customers the rule matches. `require` is a conjunction of
/// alternatives: every group must be met by at least one of its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub customer_kind: Option<CustomerKind>,
    /// Empty: any account type.
    pub account_types: Vec<AccountType>,
    /// Empty: any product.
    pub products: Vec<String>,
    /// Indexes into [`Policy::tiers`]; empty: any tier.
    pub tiers: Vec<usize>,
    pub require: Vec<Methods>,
}

/// A product, account type or lessee exempted under EO 13984 §1(c), with the conditions of
/// the exemption as the provider recorded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    pub name: String,
    pub legal_reference: String,
    pub products: Vec<String>,
    pub account_types: Vec<AccountType>,
    pub conditions: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The provider's label for this version, e.g. "2026-12".
    pub version: String,
    /// What the customer is told is collected and why (shown with this version).
    pub notice: String,
    /// Ordered from lowest to highest risk.
    pub tiers: Vec<Tier>,
    /// The tier every customer starts at, before factors.
    pub base_tier: usize,
    pub factors: Vec<RiskFactor>,
    /// First match wins; the last rule must match everything (checked when built).
    pub rules: Vec<Rule>,
    pub exemptions: Vec<Exemption>,
    /// Failed verification attempts after which the account is failed (and then closed).
    pub max_failed_attempts: u32,
    /// Whether U.S. persons are verified too (the order requires foreign persons only).
    pub verify_us_persons: bool,
    /// Days a failed account stays failed (for an analyst or a new verification round)
    /// before the lifecycle job closes it.
    pub close_failed_after_days: u32,
    /// Days before an active account's re-verification falls due that the provider is
    /// reminded (0: no reminder).
    pub reverification_reminder_days: u32,
    /// Days before a pending account's verification deadline that the provider is reminded
    /// (0: no reminder).
    pub verification_reminder_days: u32,
}

/// The facts of one customer and one account that a policy looks at. Countries are codes
/// only; the subject never carries personal data.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub kind: CustomerKind,
    pub account_type: AccountType,
    pub product: &'a str,
    /// The customer's own determination.
    pub status: Status,
    /// Any beneficial owner is foreign or undetermined.
    pub foreign_owner: bool,
    /// Every country in the customer's and its owners' evidence.
    pub countries: &'a [CountryCode],
    pub crypto_payment: bool,
    pub anonymizing_ip: bool,
    /// The determination surfaced conflicting evidence.
    pub conflict: bool,
    /// Methods with a passing result.
    pub passed: Methods,
    pub failed_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exempted under §1(c): no verification is required.
    Exempt { exemption: usize },
    /// A U.S. person (and no foreign owner) under a policy that verifies foreign persons only.
    NotRequired,
    /// Verification is required and the passed evidence meets the rule.
    Verified,
    /// Verification is required and evidence is missing.
    Pending { missing: Vec<Methods> },
    /// The failed attempts reached the policy's limit.
    Failed,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Exempt { .. } => "exempt",
            Verdict::NotRequired => "not_required",
            Verdict::Verified => "verified",
            Verdict::Pending { .. } => "pending",
            Verdict::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub tier: usize,
    /// Indexes into [`Policy::factors`] of the factors that applied.
    pub factors: Vec<usize>,
    /// Index into [`Policy::rules`] of the rule that decided the evidence (none when exempt
    /// or not required).
    pub rule: Option<usize>,
    pub interim_use: InterimUse,
    pub verification_deadline_days: u32,
    pub reverify_days: u32,
}

impl Policy {
    /// The policy in force when the provider has not written one: the proposed rule's
    /// default posture — foreign persons and accounts with a foreign owner are verified by a
    /// document plus one non-documentary method (entities: formation document and their
    /// owners), trial accounts and crypto payment raise the tier, nothing is exempt.
    pub fn builtin() -> Policy {
        let tier = |name: &str, interim_use, deadline, reverify| Tier {
            name: name.into(),
            interim_use,
            verification_deadline_days: deadline,
            reverify_days: reverify,
        };
        let set = |ms: &[Method]| ms.iter().copied().collect::<Methods>();
        let non_documentary = set(&[
            Method::OtpEmail,
            Method::OtpPhone,
            Method::PaymentConfirmation,
            Method::VendorNonDocumentary,
        ]);
        Policy {
            version: "builtin".into(),
            notice: "We collect your name, address, identification numbers, means of payment, \
                     email address, telephone number and the IP addresses you use, because \
                     U.S. law (Executive Order 13984) requires providers of Infrastructure as \
                     a Service to verify the identity of foreign customers and keep these \
                     records."
                .into(),
            tiers: vec![
                tier("low", InterimUse::Restricted, 30, 1095),
                tier("standard", InterimUse::Restricted, 30, 730),
                tier("high", InterimUse::None, 14, 365),
            ],
            base_tier: 1,
            factors: vec![
                RiskFactor {
                    label: "trial or free offering".into(),
                    factor: Factor::TrialAccount,
                    raise: 1,
                },
                RiskFactor {
                    label: "crypto-currency payment".into(),
                    factor: Factor::CryptoPayment,
                    raise: 1,
                },
                RiskFactor {
                    label: "conflicting data".into(),
                    factor: Factor::DataMismatch,
                    raise: 1,
                },
            ],
            rules: vec![
                Rule {
                    customer_kind: Some(CustomerKind::Entity),
                    account_types: vec![],
                    products: vec![],
                    tiers: vec![],
                    require: vec![
                        set(&[Method::FormationDocument, Method::VendorDocumentary]),
                        set(&[Method::BeneficialOwnersVerified]),
                    ],
                },
                Rule {
                    customer_kind: None,
                    account_types: vec![],
                    products: vec![],
                    tiers: vec![],
                    require: vec![
                        set(&[Method::Document, Method::VendorDocumentary]),
                        non_documentary,
                    ],
                },
            ],
            exemptions: vec![],
            max_failed_attempts: 3,
            verify_us_persons: false,
            close_failed_after_days: 7,
            reverification_reminder_days: 30,
            verification_reminder_days: 7,
        }
    }

    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }
}

fn matches_list<T: PartialEq>(list: &[T], value: &T) -> bool {
    list.is_empty() || list.contains(value)
}

/// What the policy requires of this customer and account, and whether it is met.
pub fn evaluate(policy: &Policy, s: &Subject<'_>) -> Outcome {
    let mut tier = policy.base_tier;
    let mut factors = Vec::new();
    for (i, f) in policy.factors.iter().enumerate() {
        let applies = match &f.factor {
            Factor::Jurisdiction(set) => s.countries.iter().any(|c| set.contains(c)),
            Factor::CryptoPayment => s.crypto_payment,
            Factor::TrialAccount => s.account_type == AccountType::Trial,
            Factor::ResellerAccount => s.account_type == AccountType::ResellerAccount,
            Factor::AnonymizingIp => s.anonymizing_ip,
            Factor::DataMismatch => s.conflict,
            Factor::Undetermined => s.status == Status::Undetermined,
        };
        if applies {
            tier = (tier + f.raise as usize).min(policy.tiers.len() - 1);
            factors.push(i);
        }
    }
    let t = &policy.tiers[tier];
    let mut outcome = Outcome {
        verdict: Verdict::NotRequired,
        tier,
        factors,
        rule: None,
        interim_use: t.interim_use,
        verification_deadline_days: t.verification_deadline_days,
        reverify_days: t.reverify_days,
    };
    if let Some(e) = policy.exemptions.iter().position(|e| {
        (e.products.is_empty() || e.products.iter().any(|p| p == s.product))
            && matches_list(&e.account_types, &s.account_type)
    }) {
        outcome.verdict = Verdict::Exempt { exemption: e };
        outcome.interim_use = InterimUse::Full;
        return outcome;
    }
    let required = policy.verify_us_persons || s.status != Status::UsPerson || s.foreign_owner;
    if !required {
        outcome.interim_use = InterimUse::Full;
        return outcome;
    }
    // A policy built from a file always has a last rule that matches everyone; one built by
    // hand without it leaves the customer pending (restricted), never verified.
    let Some(rule) = policy.rules.iter().position(|r| {
        r.customer_kind.is_none_or(|k| k == s.kind)
            && matches_list(&r.account_types, &s.account_type)
            && (r.products.is_empty() || r.products.iter().any(|p| p == s.product))
            && matches_list(&r.tiers, &tier)
    }) else {
        outcome.verdict = Verdict::Pending {
            missing: Vec::new(),
        };
        return outcome;
    };
    outcome.rule = Some(rule);
    let missing: Vec<Methods> = policy.rules[rule]
        .require
        .iter()
        .copied()
        .filter(|group| !group.intersects(s.passed))
        .collect();
    outcome.verdict = if missing.is_empty() {
        outcome.interim_use = InterimUse::Full;
        Verdict::Verified
    } else if s.failed_attempts >= policy.max_failed_attempts {
        outcome.interim_use = InterimUse::None;
        Verdict::Failed
    } else {
        Verdict::Pending { missing }
    };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).unwrap()
    }

    fn subject<'a>(countries: &'a [CountryCode]) -> Subject<'a> {
        Subject {
            kind: CustomerKind::Individual,
            account_type: AccountType::Standard,
            product: "compute",
            status: Status::ForeignPerson,
            foreign_owner: false,
            countries,
            crypto_payment: false,
            anonymizing_ip: false,
            conflict: false,
            passed: Methods::default(),
            failed_attempts: 0,
        }
    }

    #[test]
    fn foreign_individual_needs_a_document_and_a_non_documentary_method() {
        let p = Policy::builtin();
        let de = [cc("DE")];
        let mut s = subject(&de);
        let o = evaluate(&p, &s);
        assert_eq!(o.tier, 1);
        match &o.verdict {
            Verdict::Pending { missing } => assert_eq!(missing.len(), 2),
            v => panic!("{v:?}"),
        }
        assert_eq!(o.interim_use, InterimUse::Restricted);
        s.passed.insert(Method::Document);
        let o = evaluate(&p, &s);
        assert!(
            matches!(&o.verdict, Verdict::Pending { missing } if missing.len() == 1 && missing[0].contains(Method::OtpEmail))
        );
        s.passed.insert(Method::OtpEmail);
        assert_eq!(evaluate(&p, &s).verdict, Verdict::Verified);
    }

    #[test]
    fn us_person_without_foreign_owner_is_not_verified_unless_the_policy_says_so() {
        let mut p = Policy::builtin();
        let us = [cc("US")];
        let mut s = subject(&us);
        s.status = Status::UsPerson;
        assert_eq!(evaluate(&p, &s).verdict, Verdict::NotRequired);
        s.foreign_owner = true;
        assert!(matches!(evaluate(&p, &s).verdict, Verdict::Pending { .. }));
        s.foreign_owner = false;
        p.verify_us_persons = true;
        assert!(matches!(evaluate(&p, &s).verdict, Verdict::Pending { .. }));
    }

    #[test]
    fn factors_raise_the_tier_up_to_the_highest() {
        let mut p = Policy::builtin();
        p.factors.push(RiskFactor {
            label: "sanctioned".into(),
            factor: Factor::Jurisdiction([cc("IR")].into_iter().collect()),
            raise: 2,
        });
        let ir = [cc("IR")];
        let mut s = subject(&ir);
        s.account_type = AccountType::Trial;
        let o = evaluate(&p, &s);
        assert_eq!(o.tier, 2, "capped at the highest tier");
        assert_eq!(o.factors, vec![0, 3]);
        assert_eq!(o.interim_use, InterimUse::None);
        assert_eq!(o.verification_deadline_days, 14);
    }

    #[test]
    fn failures_reach_the_limit() {
        let p = Policy::builtin();
        let de = [cc("DE")];
        let mut s = subject(&de);
        s.failed_attempts = 2;
        assert!(matches!(evaluate(&p, &s).verdict, Verdict::Pending { .. }));
        s.failed_attempts = 3;
        assert_eq!(evaluate(&p, &s).verdict, Verdict::Failed);
        // Evidence that meets the rule wins over earlier failures.
        s.passed = [Method::VendorDocumentary, Method::OtpPhone]
            .into_iter()
            .collect();
        assert_eq!(evaluate(&p, &s).verdict, Verdict::Verified);
    }

    #[test]
    fn exemptions_and_entity_rules() {
        let mut p = Policy::builtin();
        p.exemptions.push(Exemption {
            name: "static hosting".into(),
            legal_reference: "EO 13984 §1(c), determination of 2026-10-01".into(),
            products: vec!["static-sites".into()],
            account_types: vec![],
            conditions: "no compute".into(),
        });
        let de = [cc("DE")];
        let mut s = subject(&de);
        s.product = "static-sites";
        assert_eq!(evaluate(&p, &s).verdict, Verdict::Exempt { exemption: 0 });
        s.product = "compute";
        s.kind = CustomerKind::Entity;
        s.passed = [Method::FormationDocument].into_iter().collect();
        let o = evaluate(&p, &s);
        assert_eq!(o.rule, Some(0));
        assert!(
            matches!(&o.verdict, Verdict::Pending { missing } if missing == &vec![[Method::BeneficialOwnersVerified].into_iter().collect::<Methods>()])
        );
    }

    #[test]
    fn methods_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        assert_eq!(Method::parse("passport"), None);
        let s: Methods = [Method::VendorDocumentary, Method::Document]
            .into_iter()
            .collect();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Method::Document, Method::VendorDocumentary]
        );
        // Every evidence method is a policy method of the same name.
        for m in crate::verification::Method::ALL {
            assert_eq!(Method::from(m).as_str(), m.as_str());
        }
    }
}
