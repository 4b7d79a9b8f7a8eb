//! The account lifecycle: which status may follow which, and what each status lets the
//! provider do with the account. One table, so the rules are reviewable in one place
//! (docs/design/0009-lifecycle.md).
//!
//! ```text
//! applied ──► pending_verification ──► active ──► reverification_due ──► active
//!    │              │   ▲   │             │               │
//!    │              ▼   │   ▼             ▼               ▼
//!    │          restricted  failed ───► closed ◄──── (any status but closed)
//!    └──────────────────────────────────►
//! ```

use crate::model::AccountStatus;

/// Whether `to` may follow `from`. Staying in the same status is not a transition.
pub fn transition_allowed(from: AccountStatus, to: AccountStatus) -> bool {
    use AccountStatus::*;
    if from == to {
        return false;
    }
    match from {
        // Closed is final: a closed account is never reopened; open a new one.
        Closed => false,
        // Everything else may be closed (by the customer, the provider or a policy action).
        _ if to == Closed => true,
        Applied => matches!(to, PendingVerification | Active | Restricted | Failed),
        PendingVerification => matches!(to, Active | Restricted | Failed),
        Restricted => matches!(to, PendingVerification | Active | Failed),
        Active => matches!(to, ReverificationDue | Restricted | PendingVerification),
        ReverificationDue => matches!(to, Active | Restricted | PendingVerification | Failed),
        // A failed verification may be retried (new evidence) or end in closure.
        Failed => matches!(to, PendingVerification),
    }
}

/// The statuses `from` may move to, in a stable order (for error messages and the API).
pub fn allowed_next(from: AccountStatus) -> Vec<AccountStatus> {
    AccountStatus::ALL
        .into_iter()
        .filter(|to| transition_allowed(from, *to))
        .collect()
}

/// What the provider may do with an account in a status (before special measures and
/// policy conditions, which can only narrow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Normal use.
    Full,
    /// Interim use while verification is pending or due: restricted and under enhanced
    /// monitoring.
    Restricted,
    /// No use: the account must not be used (and must be closed if verification failed).
    None,
}

impl Usage {
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Full => "full",
            Usage::Restricted => "restricted",
            Usage::None => "none",
        }
    }
}

/// The lifecycle's answer for an account: may it be used, must it be restricted or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleDecision {
    pub usage: Usage,
    /// The provider must close the account (verification failed).
    pub must_close: bool,
    /// Verification (or re-verification) evidence is still needed.
    pub verification_needed: bool,
    /// Why, in words for an analyst.
    pub reason: &'static str,
}

pub fn decide(status: AccountStatus) -> LifecycleDecision {
    use AccountStatus::*;
    let (usage, must_close, verification_needed, reason) = match status {
        Applied => (
            Usage::None,
            false,
            true,
            "application received; not yet opened",
        ),
        PendingVerification => (
            Usage::Restricted,
            false,
            true,
            "verification pending: interim use only, restricted and monitored",
        ),
        Active => (
            Usage::Full,
            false,
            false,
            "verified, or verification not required",
        ),
        ReverificationDue => (
            Usage::Restricted,
            false,
            true,
            "re-verification is due under the policy's interval",
        ),
        Restricted => (
            Usage::Restricted,
            false,
            false,
            "restricted by an analyst or a policy action",
        ),
        Failed => (
            Usage::None,
            true,
            false,
            "verification failed: the account must not be used and must be closed",
        ),
        Closed => (Usage::None, false, false, "closed"),
    };
    LifecycleDecision {
        usage,
        must_close,
        verification_needed,
        reason,
    }
}

/// Due work of the lifecycle: how long a status may last before the job moves the account
/// on. Defaults until the provider's policy file sets them per risk tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuePolicy {
    /// `pending_verification` longer than this → `failed`.
    pub verification_deadline_secs: i64,
    /// `failed` longer than this → `closed`.
    pub close_failed_after_secs: i64,
    /// `active` longer than this → `reverification_due`.
    pub reverification_interval_secs: i64,
}

impl Default for DuePolicy {
    fn default() -> Self {
        const DAY: i64 = 86_400;
        DuePolicy {
            verification_deadline_secs: 30 * DAY,
            close_failed_after_secs: 7 * DAY,
            reverification_interval_secs: 365 * DAY,
        }
    }
}

impl DuePolicy {
    /// The moves the job makes: (from, to, how long `from` may last, the reason recorded).
    pub fn rules(&self) -> [(AccountStatus, AccountStatus, i64, &'static str); 3] {
        use AccountStatus::*;
        [
            (
                PendingVerification,
                Failed,
                self.verification_deadline_secs,
                "verification not completed by the policy deadline",
            ),
            (
                Failed,
                Closed,
                self.close_failed_after_secs,
                "closed: verification failed and the policy's closing period ended",
            ),
            (
                Active,
                ReverificationDue,
                self.reverification_interval_secs,
                "the policy's re-verification interval elapsed",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccountStatus::*;

    #[test]
    fn closed_is_final_and_everything_else_can_close() {
        for s in AccountStatus::ALL {
            assert!(!transition_allowed(Closed, s), "closed -> {}", s.as_str());
            if s != Closed {
                assert!(transition_allowed(s, Closed), "{} -> closed", s.as_str());
            }
        }
    }

    #[test]
    fn verification_paths() {
        assert!(transition_allowed(Applied, PendingVerification));
        assert!(transition_allowed(PendingVerification, Active));
        assert!(transition_allowed(PendingVerification, Failed));
        assert!(transition_allowed(Failed, PendingVerification));
        assert!(transition_allowed(Active, ReverificationDue));
        assert!(transition_allowed(ReverificationDue, Active));
        // A failed verification cannot become active without a new verification.
        assert!(!transition_allowed(Failed, Active));
        // An active account does not fail without first being due or pending again.
        assert!(!transition_allowed(Active, Failed));
        // No self-loops.
        for s in AccountStatus::ALL {
            assert!(!transition_allowed(s, s));
        }
    }

    #[test]
    fn due_rules_are_legal_transitions() {
        for (from, to, after, _) in DuePolicy::default().rules() {
            assert!(
                transition_allowed(from, to),
                "{} -> {}",
                from.as_str(),
                to.as_str()
            );
            assert!(after > 0);
        }
    }

    #[test]
    fn decisions_follow_status() {
        assert_eq!(decide(Active).usage, Usage::Full);
        assert_eq!(decide(PendingVerification).usage, Usage::Restricted);
        assert!(decide(Failed).must_close);
        assert_eq!(decide(Failed).usage, Usage::None);
        assert_eq!(
            allowed_next(Failed),
            vec![PendingVerification, Closed],
            "failed may be retried or closed"
        );
    }
}
