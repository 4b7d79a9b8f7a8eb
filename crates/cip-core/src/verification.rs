//! Verification methods and results (docs/design/0011-verification.md). Which results verify
//! a customer is the provider's policy (`crate::policy`), which replaced the fixed rule that
//! was here.

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
    /// built-in policy's non-documentary group and `beneficial_owners_verified` accept.
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

#[cfg(test)]
mod tests {
    use super::*;

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
