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
use crate::policy::Policy;

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

/// Microseconds in a day: the policy counts deadlines in days, the store in Unix micros.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// A notice the lifecycle job sends the provider before a deadline falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reminder {
    /// A pending account nears its tier's verification deadline.
    Verification,
    /// An active account nears its tier's re-verification date.
    Reverification,
}

impl Reminder {
    /// The key stored with each reminder sent (with the account and the due date).
    pub fn kind(self) -> &'static str {
        match self {
            Reminder::Verification => "verification",
            Reminder::Reverification => "reverification",
        }
    }

    /// The webhook event type.
    pub fn event_type(self) -> &'static str {
        match self {
            Reminder::Verification => "account.verification_reminder",
            Reminder::Reverification => "account.reverification_reminder",
        }
    }
}

/// Due work of the lifecycle: how long a status may last before the job moves the account
/// on, under the policy in force (docs/design/0009-lifecycle.md, 0013-policy.md): a pending
/// account fails after its risk tier's `verification_deadline_days`, an active account
/// becomes due after its tier's `reverify_days` (from when it last became active), a failed
/// account closes after the policy's `close_failed_after_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRule {
    pub from: AccountStatus,
    pub to: AccountStatus,
    /// The reason recorded with the move (the job adds the policy version and tier).
    pub reason: &'static str,
    /// The reminder sent before the move, if any.
    pub reminder: Option<Reminder>,
}

/// The moves the lifecycle job makes.
pub const DUE_RULES: [DueRule; 3] = [
    DueRule {
        from: AccountStatus::PendingVerification,
        to: AccountStatus::Failed,
        reason: "verification not completed by the policy deadline",
        reminder: Some(Reminder::Verification),
    },
    DueRule {
        from: AccountStatus::Failed,
        to: AccountStatus::Closed,
        reason: "closed: verification failed and the policy's closing period ended",
        reminder: None,
    },
    DueRule {
        from: AccountStatus::Active,
        to: AccountStatus::ReverificationDue,
        reason: "the policy's re-verification interval elapsed",
        reminder: Some(Reminder::Reverification),
    },
];

/// What the lifecycle job does with one account now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// The status has lasted longer than the policy allows: move it (`DueRule::to`).
    Move {
        due_at: i64,
    },
    /// The deadline is near: remind the provider (once per account and due date).
    Remind {
        due_at: i64,
    },
}

impl DueRule {
    /// Days the status may last for an account of risk tier `tier`.
    pub fn days(&self, policy: &Policy, tier: usize) -> u32 {
        let t = &policy.tiers[tier.min(policy.tiers.len().saturating_sub(1))];
        match self.from {
            AccountStatus::PendingVerification => t.verification_deadline_days,
            AccountStatus::Active => t.reverify_days,
            _ => policy.close_failed_after_days,
        }
    }

    /// Days before the deadline the reminder goes out (0: no reminder).
    pub fn remind_days(&self, policy: &Policy) -> u32 {
        match self.reminder {
            Some(Reminder::Verification) => policy.verification_reminder_days,
            Some(Reminder::Reverification) => policy.reverification_reminder_days,
            None => 0,
        }
    }

    /// Whether the deadline differs between tiers: only then is each account's tier (and so
    /// its customer's record digest) needed.
    pub fn by_tier(&self, policy: &Policy) -> bool {
        let first = self.days(policy, 0);
        (1..policy.tiers.len()).any(|t| self.days(policy, t) != first)
    }

    /// How long an account must have been in the status before the rule can do anything
    /// (remind or move), over every tier: younger accounts need not be read.
    pub fn min_age_micros(&self, policy: &Policy) -> i64 {
        let remind = self.remind_days(policy);
        (0..policy.tiers.len().max(1))
            .map(|t| i64::from(self.days(policy, t).saturating_sub(remind)))
            .min()
            .unwrap_or(0)
            .saturating_mul(DAY_MICROS)
    }

    /// When an account of tier `tier` that entered the status at `since` is due.
    pub fn due_at(&self, policy: &Policy, tier: usize, since: i64) -> i64 {
        since.saturating_add(i64::from(self.days(policy, tier)).saturating_mul(DAY_MICROS))
    }

    /// The work due at `now`: the move once the status has lasted longer than the policy
    /// allows, else a reminder within the policy's reminder window.
    pub fn decide(&self, policy: &Policy, tier: usize, since: i64, now: i64) -> Due {
        let due_at = self.due_at(policy, tier, since);
        let remind = i64::from(self.remind_days(policy)).saturating_mul(DAY_MICROS);
        if due_at < now {
            Due::Move { due_at }
        } else if remind > 0 && due_at.saturating_sub(remind) < now {
            Due::Remind { due_at }
        } else {
            Due::Nothing
        }
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
        let policy = Policy::builtin();
        for rule in DUE_RULES {
            assert!(
                transition_allowed(rule.from, rule.to),
                "{} -> {}",
                rule.from.as_str(),
                rule.to.as_str()
            );
            assert!(rule.min_age_micros(&policy) > 0);
        }
    }

    #[test]
    fn deadlines_follow_the_tier_and_reminders_come_first() {
        let policy = Policy::builtin();
        let [pending, failed, active] = DUE_RULES;
        // Built-in tiers: low 30/1095, standard 30/730, high 14/365 days; closing 7 days.
        assert!(pending.by_tier(&policy) && active.by_tier(&policy));
        assert!(
            !failed.by_tier(&policy),
            "the closing period is one for all"
        );
        let day = DAY_MICROS;
        let since = 1_000 * day;
        assert_eq!(
            pending.decide(&policy, 1, since, since + 20 * day),
            Due::Nothing
        );
        assert_eq!(
            pending.decide(&policy, 1, since, since + 24 * day),
            Due::Remind {
                due_at: since + 30 * day
            },
            "7 days ahead"
        );
        assert_eq!(
            pending.decide(&policy, 2, since, since + 15 * day),
            Due::Move {
                due_at: since + 14 * day
            },
            "the high tier has 14 days"
        );
        assert_eq!(
            pending.decide(&policy, 1, since, since + 30 * day),
            Due::Remind {
                due_at: since + 30 * day
            },
            "due at, not after"
        );
        assert_eq!(
            failed.decide(&policy, 0, since, since + 8 * day),
            Due::Move {
                due_at: since + 7 * day
            }
        );
        assert_eq!(
            failed.decide(&policy, 0, since, since + 6 * day),
            Due::Nothing,
            "no reminder before closing"
        );
        assert_eq!(
            active.decide(&policy, 2, since, since + 340 * day),
            Due::Remind {
                due_at: since + 365 * day
            }
        );
        assert_eq!(
            active.decide(&policy, 1, since, since + 340 * day),
            Due::Nothing
        );
        // The youngest candidates: the high tier's deadline less the reminder window.
        assert_eq!(pending.min_age_micros(&policy), 7 * day);
        assert_eq!(active.min_age_micros(&policy), 335 * day);
        assert_eq!(failed.min_age_micros(&policy), 7 * day);
        let mut quiet = policy.clone();
        quiet.verification_reminder_days = 0;
        assert_eq!(
            pending.decide(&quiet, 1, since, since + 29 * day),
            Due::Nothing
        );
        assert_eq!(pending.min_age_micros(&quiet), 14 * day);
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
