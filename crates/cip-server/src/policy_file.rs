//! The provider's policy file (TOML) → [`cip_core::policy::Policy`].
//!
//! Every problem is reported with its line, all at once, so a provider fixes a file in one
//! pass; unknown keys are errors (a misspelt key must not silently fall back to a default).
//! A file that does not parse or contradicts itself is refused as a whole: the policy in
//! force stays in force. The shape is documented in docs/design/0013-policy.md.

use std::collections::BTreeSet;

use cip_core::model::{AccountType, CustomerKind};
use cip_core::parse::CountryCode;
use cip_core::policy::{
    Exemption, Factor, InterimUse, Method, Methods, Policy, RiskFactor, Rule, Tier,
};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the file.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    version: Spanned<String>,
    notice: Spanned<String>,
    #[serde(default = "default_attempts")]
    max_failed_attempts: Spanned<u32>,
    #[serde(default)]
    verify_us_persons: bool,
    #[serde(default)]
    close_failed_after_days: Option<Spanned<u32>>,
    #[serde(default)]
    reverification_reminder_days: Option<Spanned<u32>>,
    #[serde(default)]
    verification_reminder_days: Option<Spanned<u32>>,
    base_tier: Spanned<String>,
    tiers: Vec<Spanned<TierShape>>,
    #[serde(default)]
    factors: Vec<Spanned<FactorShape>>,
    rules: Vec<Spanned<RuleShape>>,
    #[serde(default)]
    exemptions: Vec<Spanned<ExemptionShape>>,
}

fn default_attempts() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}

/// Defaults of the lifecycle keys (the built-in policy's values).
const CLOSE_FAILED_AFTER_DAYS: u32 = 7;
const REVERIFICATION_REMINDER_DAYS: u32 = 30;
const VERIFICATION_REMINDER_DAYS: u32 = 7;
/// The longest period a policy may set, in days (100 years): deadlines are computed in
/// microseconds, and anything longer is a typo.
const MAX_DAYS: u32 = 36_500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierShape {
    name: String,
    interim_use: String,
    verification_deadline_days: u32,
    reverify_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FactorShape {
    kind: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    countries: Vec<String>,
    #[serde(default = "one")]
    raise: u8,
}

fn one() -> u8 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleShape {
    #[serde(default)]
    customer_kind: Option<String>,
    #[serde(default)]
    account_types: Vec<String>,
    #[serde(default)]
    products: Vec<String>,
    #[serde(default)]
    tiers: Vec<String>,
    require: Vec<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptionShape {
    name: String,
    legal_reference: String,
    #[serde(default)]
    products: Vec<String>,
    #[serde(default)]
    account_types: Vec<String>,
    #[serde(default)]
    conditions: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parses and checks a policy file. `Err` lists every problem found, in file order.
pub fn parse(text: &str) -> Result<Policy, Vec<Problem>> {
    let shape: FileShape = toml::from_str(text).map_err(|e| {
        vec![Problem {
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut problems = Vec::new();
    let mut say = |offset: usize, message: String| {
        problems.push(Problem {
            line: line_of(text, offset),
            message,
        })
    };
    let methods_list = Method::ALL.map(|m| m.as_str()).join(", ");

    let version = shape.version.get_ref().trim().to_string();
    if version.is_empty() {
        say(
            shape.version.span().start,
            "version must not be empty".into(),
        );
    }
    let notice = shape.notice.get_ref().trim().to_string();
    if notice.is_empty() {
        say(
            shape.notice.span().start,
            "notice must say what is collected and why (it is shown to customers)".into(),
        );
    }
    let max_failed_attempts = *shape.max_failed_attempts.get_ref();
    if max_failed_attempts == 0 {
        say(
            shape.max_failed_attempts.span().start,
            "max_failed_attempts must be at least 1".into(),
        );
    }

    let mut tiers = Vec::new();
    if shape.tiers.is_empty() {
        say(0, "at least one [[tiers]] is required".into());
    }
    for t in &shape.tiers {
        let at = t.span().start;
        let t = t.get_ref();
        if t.name.trim().is_empty() {
            say(at, "tier name must not be empty".into());
        }
        if tiers.iter().any(|x: &Tier| x.name == t.name) {
            say(at, format!("tier '{}' is defined twice", t.name));
        }
        let interim_use = InterimUse::parse(&t.interim_use).unwrap_or_else(|| {
            say(
                at,
                format!(
                    "interim_use '{}' is not one of: none, restricted, full",
                    t.interim_use
                ),
            );
            InterimUse::None
        });
        if t.verification_deadline_days == 0 || t.reverify_days == 0 {
            say(
                at,
                "verification_deadline_days and reverify_days must be at least 1".into(),
            );
        }
        if t.verification_deadline_days > MAX_DAYS || t.reverify_days > MAX_DAYS {
            say(
                at,
                format!("verification_deadline_days and reverify_days must be at most {MAX_DAYS}"),
            );
        }
        tiers.push(Tier {
            name: t.name.clone(),
            interim_use,
            verification_deadline_days: t.verification_deadline_days,
            reverify_days: t.reverify_days,
        });
    }
    let close_failed_after_days = match &shape.close_failed_after_days {
        None => CLOSE_FAILED_AFTER_DAYS,
        Some(v) => {
            if !(1..=MAX_DAYS).contains(v.get_ref()) {
                say(
                    v.span().start,
                    format!("close_failed_after_days must be between 1 and {MAX_DAYS}"),
                );
            }
            *v.get_ref()
        }
    };
    // A reminder must come before its deadline in every tier; 0 sends none.
    let mut reminder = |key: &str,
                        value: &Option<Spanned<u32>>,
                        default: u32,
                        deadline: fn(&TierShape) -> u32,
                        deadline_key: &str| {
        let days = value.as_ref().map(|v| *v.get_ref()).unwrap_or(default);
        for t in &shape.tiers {
            let limit = deadline(t.get_ref());
            if days > 0 && limit > 0 && days >= limit {
                match value {
                    Some(v) => say(
                        v.span().start,
                        format!(
                            "{key} ({days}) must be shorter than tier '{}' {deadline_key} ({limit}); 0 sends no reminder",
                            t.get_ref().name
                        ),
                    ),
                    None => say(
                        t.span().start,
                        format!(
                            "{deadline_key} ({limit}) must be longer than {key} ({days}, the default); set {key} lower, or 0 for no reminder",
                        ),
                    ),
                }
            }
        }
        days
    };
    let reverification_reminder_days = reminder(
        "reverification_reminder_days",
        &shape.reverification_reminder_days,
        REVERIFICATION_REMINDER_DAYS,
        |t| t.reverify_days,
        "reverify_days",
    );
    let verification_reminder_days = reminder(
        "verification_reminder_days",
        &shape.verification_reminder_days,
        VERIFICATION_REMINDER_DAYS,
        |t| t.verification_deadline_days,
        "verification_deadline_days",
    );
    let tier_index = |name: &str| tiers.iter().position(|t| t.name == name);
    let base_tier = tier_index(shape.base_tier.get_ref()).unwrap_or_else(|| {
        say(
            shape.base_tier.span().start,
            format!(
                "base_tier '{}' is not a defined tier",
                shape.base_tier.get_ref()
            ),
        );
        0
    });

    let mut factors = Vec::new();
    let mut seen_kinds = BTreeSet::new();
    for f in &shape.factors {
        let at = f.span().start;
        let f = f.get_ref();
        if f.raise == 0 {
            say(
                at,
                "raise must be at least 1 (a factor that raises nothing is a mistake)".into(),
            );
        }
        let factor = match f.kind.as_str() {
            "jurisdiction" => {
                if f.countries.is_empty() {
                    say(at, "a jurisdiction factor needs countries".into());
                }
                let mut set = BTreeSet::new();
                for c in &f.countries {
                    match CountryCode::parse(c) {
                        Ok(c) => {
                            set.insert(c);
                        }
                        Err(_) => say(at, format!("'{c}' is not an ISO 3166-1 alpha-2 country")),
                    }
                }
                Factor::Jurisdiction(set)
            }
            other => {
                if !f.countries.is_empty() {
                    say(
                        at,
                        format!("countries apply to jurisdiction factors, not to '{other}'"),
                    );
                }
                if !seen_kinds.insert(other.to_string()) {
                    say(at, format!("factor '{other}' is listed twice"));
                }
                match other {
                    "crypto_payment" => Factor::CryptoPayment,
                    "trial_account" => Factor::TrialAccount,
                    "reseller_account" => Factor::ResellerAccount,
                    "anonymizing_ip" => Factor::AnonymizingIp,
                    "data_mismatch" => Factor::DataMismatch,
                    "undetermined" => Factor::Undetermined,
                    _ => {
                        say(
                            at,
                            format!(
                                "factor kind '{other}' is not one of: jurisdiction, crypto_payment, trial_account, reseller_account, anonymizing_ip, data_mismatch, undetermined"
                            ),
                        );
                        continue;
                    }
                }
            }
        };
        factors.push(RiskFactor {
            label: f.label.clone().unwrap_or_else(|| f.kind.clone()),
            factor,
            raise: f.raise,
        });
    }

    let mut rules = Vec::new();
    if shape.rules.is_empty() {
        say(0, "at least one [[rules]] is required".into());
    }
    let mut catch_all_at: Option<usize> = None;
    for r in &shape.rules {
        let at = r.span().start;
        let r = r.get_ref();
        if let Some(prev) = catch_all_at {
            say(
                at,
                format!(
                    "this rule is never reached: the rule at line {} already matches every customer",
                    line_of(text, prev)
                ),
            );
        }
        let customer_kind = r.customer_kind.as_deref().and_then(|k| {
            let parsed = CustomerKind::parse(k);
            if parsed.is_none() {
                say(
                    at,
                    format!("customer_kind '{k}' is not one of: individual, entity"),
                );
            }
            parsed
        });
        let account_types = parse_account_types(&r.account_types, at, &mut say);
        let mut rule_tiers = Vec::new();
        for t in &r.tiers {
            match tier_index(t) {
                Some(i) => rule_tiers.push(i),
                None => say(at, format!("tier '{t}' is not a defined tier")),
            }
        }
        if r.require.is_empty() {
            say(
                at,
                "require must list at least one group of methods (use an exemption to require nothing)"
                    .into(),
            );
        }
        let mut require = Vec::new();
        for group in &r.require {
            if group.is_empty() {
                say(at, "an empty group in require can never be met".into());
            }
            let mut set = Methods::default();
            for m in group {
                match Method::parse(m) {
                    Some(m) => {
                        if customer_kind == Some(CustomerKind::Individual)
                            && matches!(
                                m,
                                Method::FormationDocument | Method::BeneficialOwnersVerified
                            )
                        {
                            say(
                                at,
                                format!(
                                    "'{}' applies to entities, but this rule is for individuals",
                                    m.as_str()
                                ),
                            );
                        }
                        set.insert(m)
                    }
                    None => say(at, format!("method '{m}' is not one of: {methods_list}")),
                }
            }
            require.push(set);
        }
        let matches_all = customer_kind.is_none()
            && r.account_types.is_empty()
            && r.products.is_empty()
            && r.tiers.is_empty();
        if matches_all && catch_all_at.is_none() {
            catch_all_at = Some(at);
        }
        rules.push(Rule {
            customer_kind,
            account_types,
            products: r.products.clone(),
            tiers: rule_tiers,
            require,
        });
    }
    if catch_all_at.is_none()
        && let Some(last) = shape.rules.last()
    {
        say(
            last.span().start,
            "the last rule must match every customer (no customer_kind, account_types, products or tiers), so that no customer is left without a requirement".into(),
        );
    }

    let mut exemptions = Vec::new();
    for e in &shape.exemptions {
        let at = e.span().start;
        let e = e.get_ref();
        if e.legal_reference.trim().is_empty() {
            say(
                at,
                "an exemption needs its legal_reference (the §1(c) determination it rests on)"
                    .into(),
            );
        }
        if e.products.is_empty() && e.account_types.is_empty() {
            say(
                at,
                "an exemption must name products or account_types; one that matches everything would exempt every customer".into(),
            );
        }
        let account_types = parse_account_types(&e.account_types, at, &mut say);
        exemptions.push(Exemption {
            name: e.name.clone(),
            legal_reference: e.legal_reference.clone(),
            products: e.products.clone(),
            account_types,
            conditions: e.conditions.clone(),
        });
    }

    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(problems);
    }
    Ok(Policy {
        version,
        notice,
        tiers,
        base_tier,
        factors,
        rules,
        exemptions,
        max_failed_attempts,
        verify_us_persons: shape.verify_us_persons,
        close_failed_after_days,
        reverification_reminder_days,
        verification_reminder_days,
    })
}

fn parse_account_types(
    names: &[String],
    at: usize,
    say: &mut impl FnMut(usize, String),
) -> Vec<AccountType> {
    let mut out = Vec::new();
    for a in names {
        match AccountType::parse(a) {
            Some(t) => out.push(t),
            None => say(
                at,
                format!("account type '{a}' is not one of: standard, trial, reseller_account"),
            ),
        }
    }
    out
}

/// The built-in policy written as a file: the starting point `cip policy init` prints, and
/// a test that the file format can say everything the built-in policy says.
pub const EXAMPLE: &str = include_str!("../../../docs/policy.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_the_builtin_policy() {
        let p = parse(EXAMPLE).unwrap();
        let mut builtin = Policy::builtin();
        builtin.version = p.version.clone();
        builtin.notice = p.notice.clone();
        assert_eq!(p, builtin);
    }

    #[test]
    fn unknown_keys_and_syntax_errors_have_lines() {
        let text = EXAMPLE.replace("reverify_days = 730", "reverify_days = 730\nreverfy = 1");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("reverfy"), "{errs:?}");
        let line = text.lines().position(|l| l == "reverfy = 1").unwrap() + 1;
        assert_eq!(errs[0].line, line, "{errs:?}");
        let errs = parse("version = \"x\"\nnotice = \n").unwrap_err();
        assert_eq!(errs[0].line, 2, "{errs:?}");
    }

    #[test]
    fn contradictions_are_all_reported_with_lines() {
        let text = r#"
version = "bad"
notice = "n"
base_tier = "medium"
max_failed_attempts = 0

[[tiers]]
name = "low"
interim_use = "sometimes"
verification_deadline_days = 30
reverify_days = 365

[[factors]]
kind = "jurisdiction"
countries = ["XX"]

[[rules]]
require = [["document"]]

[[rules]]
customer_kind = "individual"
tiers = ["high"]
require = [["formation_document"], []]

[[exemptions]]
name = "everything"
legal_reference = ""
"#;
        let errs = parse(text).unwrap_err();
        let has = |line: usize, needle: &str| {
            assert!(
                errs.iter()
                    .any(|e| e.line == line && e.message.contains(needle)),
                "no '{needle}' at line {line}: {errs:#?}"
            )
        };
        has(4, "base_tier 'medium'");
        has(5, "max_failed_attempts");
        has(7, "interim_use 'sometimes'");
        has(13, "'XX'");
        has(20, "never reached");
        has(20, "tier 'high'");
        has(20, "applies to entities");
        has(20, "empty group");
        has(25, "legal_reference");
        has(25, "matches everything");
        assert!(errs.windows(2).all(|w| w[0].line <= w[1].line));
    }

    #[test]
    fn lifecycle_keys_are_checked_with_lines() {
        let text = EXAMPLE
            .replace("close_failed_after_days = 7", "close_failed_after_days = 0")
            .replace(
                "reverification_reminder_days = 30",
                "reverification_reminder_days = 400",
            );
        assert_ne!(text, EXAMPLE);
        let errs = parse(&text).unwrap_err();
        let line = |key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        assert!(
            errs.iter()
                .any(|e| e.line == line("close_failed_after_days")
                    && e.message.contains("close_failed_after_days")),
            "{errs:?}"
        );
        // 400 days is not shorter than the high tier's 365.
        assert!(
            errs.iter()
                .any(|e| e.line == line("reverification_reminder_days")
                    && e.message.contains("tier 'high' reverify_days (365)")),
            "{errs:?}"
        );
        assert!(
            !errs.iter().any(|e| e.message.contains("tier 'low'")),
            "1095 days is longer than 400: {errs:?}"
        );
        // A default reminder that no longer fits a tier is reported at the tier.
        let text = EXAMPLE
            .replace("verification_reminder_days = 7\n", "")
            .replace(
                "verification_deadline_days = 14",
                "verification_deadline_days = 5",
            );
        let errs = parse(&text).unwrap_err();
        let tier_line = text
            .lines()
            .position(|l| l == "verification_deadline_days = 5")
            .unwrap()
            - 2;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, tier_line, "{errs:?}");
        assert!(errs[0].message.contains("(7, the default)"), "{errs:?}");
        // Without the keys, the defaults; 0 turns a reminder off.
        let p = parse(
            &EXAMPLE
                .replace("close_failed_after_days = 7\n", "")
                .replace(
                    "reverification_reminder_days = 30",
                    "reverification_reminder_days = 0",
                ),
        )
        .unwrap();
        assert_eq!(p.close_failed_after_days, 7);
        assert_eq!(p.reverification_reminder_days, 0);
        assert_eq!(p.verification_reminder_days, 7);
        let errs =
            parse(&EXAMPLE.replace("reverify_days = 730", "reverify_days = 99999")).unwrap_err();
        assert!(errs[0].message.contains("at most 36500"), "{errs:?}");
    }

    #[test]
    fn a_last_rule_that_does_not_match_everyone_is_refused() {
        let text = EXAMPLE.replace(
            "# The rule for everyone else.\n[[rules]]\n",
            "# The rule for everyone else.\n[[rules]]\ncustomer_kind = \"individual\"\n",
        );
        assert_ne!(text, EXAMPLE);
        let errs = parse(&text).unwrap_err();
        assert!(
            errs.iter().any(|e| e.message.contains("last rule")),
            "{errs:?}"
        );
    }
}
