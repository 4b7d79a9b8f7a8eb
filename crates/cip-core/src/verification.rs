//! Verification methods, results, and the rule that turns a customer's evidence into an
//! outcome (docs/design/0011-verification.md). Deliberately simple and written down; the
//! provider's policy file will replace [`Rule`] later.

use uuid::Uuid;

use crate::model::CustomerKind;

/// How a result was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// An identity document (machine-readable zone checked, compared with the record).
    Document,
    /// An entity's formation document (type, registry, number, jurisdiction).
    FormationDocument,
    OtpEmail,
    OtpPhone,
    /// The provider's billing system confirmed a payment instrument.
    PaymentConfirmation,
    /// An external vendor's documentary check.
    VendorDocumentary,
    /// An external vendor's non-documentary check (database, phone, …).
    VendorNonDocumentary,
    /// The collected data compared with itself: address, phone, payment instrument,
    /// document and access countries (docs/design/0015). Non-documentary, but it contacts no
    /// one and consults no independent source, so it counts only where the provider's
    /// policy names it: it is not one of the [`Method::is_non_documentary`] methods that the
    /// fixed rule and `beneficial_owners_verified` accept.
    ConsistencyCheck,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Document,
        Method::FormationDocument,
        Method::OtpEmail,
        Method::OtpPhone,
        Method::PaymentConfirmation,
        Method::VendorDocumentary,
        Method::VendorNonDocumentary,
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
            Method::ConsistencyCheck => "consistency_check",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Government identity documents (or a vendor's check of one).
    pub fn is_documentary(self) -> bool {
        matches!(self, Method::Document | Method::VendorDocumentary)
    }

    /// Contacting the customer, independent data, payment instruments.
    pub fn is_non_documentary(self) -> bool {
        matches!(
            self,
            Method::OtpEmail
                | Method::OtpPhone
                | Method::PaymentConfirmation
                | Method::VendorNonDocumentary
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Pass,
    Fail,
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "pass" => Some(Outcome::Pass),
            "fail" => Some(Outcome::Fail),
            "pending" => Some(Outcome::Pending),
            _ => None,
        }
    }
}

/// One stored result, as the rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Result {
    /// `None`: the customer itself; else the beneficial owner.
    pub beneficial_owner: Option<Uuid>,
    pub method: Method,
    pub outcome: Outcome,
    pub at: i64,
}

/// Who must be verified (from the U.S./foreign determination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    pub kind: CustomerKind,
    /// The customer (or entity) is not established as a U.S. person.
    pub customer: bool,
    /// Beneficial owners not established as U.S. persons.
    pub beneficial_owners: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Verified { reason: String },
    Failed { reason: String },
    Pending { missing: Vec<String> },
}

/// The default rule:
/// - a person (an individual customer, or a beneficial owner) who must be verified is
///   verified by one passing documentary result **and** one passing non-documentary result;
/// - an entity that must be verified, by one passing formation document;
/// - an entity customer's beneficial owners who must be verified, each as a person;
/// - `failure_limit` failed results counted since `since` (the start of the current
///   verification round) fail the verification, unless it is already complete.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub failure_limit: u32,
}

impl Rule {
    pub fn evaluate(&self, who: &Subjects, results: &[Result], since: i64) -> Verdict {
        let passed = |owner: Option<Uuid>, pred: fn(Method) -> bool| {
            results.iter().any(|r| {
                r.beneficial_owner == owner && r.outcome == Outcome::Pass && pred(r.method)
            })
        };
        let mut missing = Vec::new();
        let mut people: Vec<(Option<Uuid>, String)> = Vec::new();
        if who.customer {
            match who.kind {
                CustomerKind::Individual => people.push((None, "customer".into())),
                CustomerKind::Entity => {
                    if !passed(None, |m| m == Method::FormationDocument) {
                        missing.push("entity: a passing formation document".into());
                    }
                }
            }
        }
        for bo in &who.beneficial_owners {
            people.push((Some(*bo), format!("beneficial owner {bo}")));
        }
        for (owner, label) in people {
            if !passed(owner, Method::is_documentary) {
                missing.push(format!("{label}: a passing documentary check"));
            }
            if !passed(owner, Method::is_non_documentary) {
                missing.push(format!("{label}: a passing non-documentary check"));
            }
        }
        if missing.is_empty() {
            return Verdict::Verified {
                reason: "verified: every required check passed".into(),
            };
        }
        let failures = results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail && r.at >= since)
            .count();
        if self.failure_limit > 0 && failures >= self.failure_limit as usize {
            return Verdict::Failed {
                reason: format!(
                    "verification failed: {failures} failed checks (limit {})",
                    self.failure_limit
                ),
            };
        }
        Verdict::Pending { missing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(owner: Option<Uuid>, method: Method, outcome: Outcome, at: i64) -> Result {
        Result {
            beneficial_owner: owner,
            method,
            outcome,
            at,
        }
    }

    const RULE: Rule = Rule { failure_limit: 3 };

    #[test]
    fn an_individual_needs_one_documentary_and_one_non_documentary_pass() {
        let who = Subjects {
            kind: CustomerKind::Individual,
            customer: true,
            beneficial_owners: vec![],
        };
        let doc = r(None, Method::Document, Outcome::Pass, 1);
        let v = RULE.evaluate(&who, std::slice::from_ref(&doc), 0);
        assert!(
            matches!(&v, Verdict::Pending { missing } if missing.len() == 1 && missing[0].contains("non-documentary")),
            "{v:?}"
        );
        let v = RULE.evaluate(
            &who,
            &[doc.clone(), r(None, Method::OtpEmail, Outcome::Pass, 2)],
            0,
        );
        assert!(matches!(v, Verdict::Verified { .. }), "{v:?}");
        // Two documentary passes are not enough.
        let v = RULE.evaluate(
            &who,
            &[doc, r(None, Method::VendorDocumentary, Outcome::Pass, 2)],
            0,
        );
        assert!(matches!(v, Verdict::Pending { .. }), "{v:?}");
    }

    #[test]
    fn failures_in_the_current_round_fail_it() {
        let who = Subjects {
            kind: CustomerKind::Individual,
            customer: true,
            beneficial_owners: vec![],
        };
        let fails: Vec<Result> = (0..3)
            .map(|i| r(None, Method::Document, Outcome::Fail, 10 + i))
            .collect();
        assert!(matches!(
            RULE.evaluate(&who, &fails, 0),
            Verdict::Failed { .. }
        ));
        // Failures before the round started do not count.
        assert!(matches!(
            RULE.evaluate(&who, &fails, 11),
            Verdict::Pending { .. }
        ));
        // A limit of 0 never fails.
        assert!(matches!(
            Rule { failure_limit: 0 }.evaluate(&who, &fails, 0),
            Verdict::Pending { .. }
        ));
    }

    #[test]
    fn an_entity_needs_its_formation_document_and_each_foreign_owner() {
        let bo = Uuid::from_u128(7);
        let who = Subjects {
            kind: CustomerKind::Entity,
            customer: true,
            beneficial_owners: vec![bo],
        };
        let mut results = vec![r(None, Method::FormationDocument, Outcome::Pass, 1)];
        assert!(matches!(
            RULE.evaluate(&who, &results, 0),
            Verdict::Pending { .. }
        ));
        results.push(r(Some(bo), Method::Document, Outcome::Pass, 2));
        // The customer's own code does not verify the owner.
        results.push(r(None, Method::OtpEmail, Outcome::Pass, 3));
        assert!(matches!(
            RULE.evaluate(&who, &results, 0),
            Verdict::Pending { .. }
        ));
        results.push(r(Some(bo), Method::OtpPhone, Outcome::Pass, 4));
        assert!(matches!(
            RULE.evaluate(&who, &results, 0),
            Verdict::Verified { .. }
        ));
    }

    #[test]
    fn methods_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert!(
                matches!(m, Method::FormationDocument | Method::ConsistencyCheck)
                    || m.is_documentary() != m.is_non_documentary()
            );
        }
        assert_eq!(Method::parse("selfie"), None);
    }
}
