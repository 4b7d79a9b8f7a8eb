//! Applying the verification policy to stored customers: the facts a policy looks at,
//! computed once per customer from its sealed record, and `check`, which tells what a
//! proposed policy would change for every account compared with the policy in force
//! (`cip policy check FILE`). See docs/design/0013-policy.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cip_core::determination::{self, Status};
use cip_core::model::{AccountType, CustomerKind};
use cip_core::parse::CountryCode;
use cip_core::policy::{self, Methods, Policy, Subject};
use cip_core::verification;
use cip_store::{AccountFilter, CustomerFilter, CustomerRow, EvidenceRow, PageRequest, Store};
use cip_vault::Keyring;
use uuid::Uuid;

use crate::records::dto::CustomerDoc;
use crate::records::seal;

/// Where the active policy's version label is kept; the text of each applied version is
/// kept under `policy.text.<version>` (so an auditor can read any version that was in force).
const ACTIVE: &str = "policy.active";

fn text_key(version: &str) -> String {
    format!("policy.text.{version}")
}

/// The policy in force: the one last applied, or the built-in one. Returns the policy, its
/// file text and whether it is the built-in one.
pub async fn active(store: &dyn Store) -> Result<(Policy, String, bool), String> {
    let Some(version) = store.get_meta(ACTIVE).await.map_err(|e| e.to_string())? else {
        return Ok((
            Policy::builtin(),
            crate::policy_file::EXAMPLE.to_string(),
            true,
        ));
    };
    let version = String::from_utf8_lossy(&version).into_owned();
    let text = store
        .get_meta(&text_key(&version))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the active policy {version} has no stored text"))?;
    let text = String::from_utf8(text).map_err(|_| "stored policy text is not UTF-8")?;
    let policy = crate::policy_file::parse(&text).map_err(|p| {
        format!(
            "the stored policy {version} no longer parses: {}",
            p.first().map(|p| p.to_string()).unwrap_or_default()
        )
    })?;
    Ok((policy, text, false))
}

/// What applying a policy text did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The version is now in force.
    Applied,
    /// This exact version was already in force.
    Unchanged,
}

#[derive(Debug)]
pub enum ApplyError {
    /// The file does not parse or contradicts itself (every problem, with its line).
    Invalid(Vec<crate::policy_file::Problem>),
    /// The version label was applied before with another text: versions are immutable.
    VersionReused(String),
    Store(String),
}

/// Validates and applies a policy file: its text is kept under its version, then the version
/// becomes the active one; both writes are audited. A refused file writes nothing.
pub async fn apply(
    store: &dyn Store,
    text: &str,
    audit: impl Fn(&str, Vec<String>) -> cip_store::AuditDraft,
) -> Result<(Policy, Applied), ApplyError> {
    let policy = crate::policy_file::parse(text).map_err(ApplyError::Invalid)?;
    let key = text_key(&policy.version);
    match store.get_meta(&key).await {
        Err(e) => return Err(ApplyError::Store(e.to_string())),
        Ok(Some(old)) if old != text.as_bytes() => {
            return Err(ApplyError::VersionReused(policy.version.clone()));
        }
        Ok(Some(_)) => {}
        Ok(None) => store
            .set_meta(
                &key,
                text.as_bytes(),
                audit("policy.store", vec![format!("version={}", policy.version)]),
            )
            .await
            .map_err(|e| ApplyError::Store(e.to_string()))?,
    }
    let current = store
        .get_meta(ACTIVE)
        .await
        .map_err(|e| ApplyError::Store(e.to_string()))?;
    if current.as_deref() == Some(policy.version.as_bytes()) {
        return Ok((policy, Applied::Unchanged));
    }
    store
        .set_meta(
            ACTIVE,
            policy.version.as_bytes(),
            audit(
                "policy.apply",
                vec![
                    format!("version={}", policy.version),
                    format!(
                        "previous={}",
                        current
                            .map(|v| String::from_utf8_lossy(&v).into_owned())
                            .unwrap_or_else(|| "builtin".into())
                    ),
                ],
            ),
        )
        .await
        .map_err(|e| ApplyError::Store(e.to_string()))?;
    Ok((policy, Applied::Applied))
}

/// What a policy needs to know about one customer: codes and flags, no personal data.
#[derive(Debug, Clone)]
pub struct Facts {
    pub kind: CustomerKind,
    pub status: Status,
    pub foreign_owner: bool,
    /// Beneficial owners not established as U.S. persons (each must be verified).
    pub foreign_owners: Vec<Uuid>,
    pub countries: Vec<CountryCode>,
    pub crypto_payment: bool,
    pub conflict: bool,
}

pub fn facts_of(doc: &CustomerDoc) -> Facts {
    let (customer, owners) = crate::api::determination::evidence_of(doc);
    let mut countries: Vec<CountryCode> = customer
        .iter()
        .chain(owners.iter().flat_map(|(_, e)| e.iter()))
        .map(|e| e.country)
        .collect();
    countries.sort_unstable();
    countries.dedup();
    let d = determination::determine_customer(customer, owners);
    Facts {
        kind: CustomerKind::parse(&doc.kind).unwrap_or(CustomerKind::Individual),
        status: d.customer.status,
        foreign_owner: d
            .beneficial_owners
            .iter()
            .any(|(_, o)| o.status != Status::UsPerson),
        foreign_owners: d
            .beneficial_owners
            .iter()
            .filter(|(_, o)| o.status != Status::UsPerson)
            .map(|(id, _)| *id)
            .collect(),
        crypto_payment: doc
            .payment_methods
            .iter()
            .any(|p| p.crypto_wallet.is_some()),
        conflict: !d.customer.conflicts.is_empty()
            || d.beneficial_owners
                .iter()
                .any(|(_, o)| !o.conflicts.is_empty()),
        countries,
    }
}

pub fn subject<'a>(
    facts: &'a Facts,
    account_type: AccountType,
    product: &'a str,
    passed: Methods,
    failed_attempts: u32,
) -> Subject<'a> {
    Subject {
        kind: facts.kind,
        account_type,
        product,
        status: facts.status,
        foreign_owner: facts.foreign_owner,
        countries: &facts.countries,
        crypto_payment: facts.crypto_payment,
        anonymizing_ip: false,
        conflict: facts.conflict,
        passed,
        failed_attempts,
    }
}

/// One account whose verdict or tier a proposed policy changes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub verdict_before: &'static str,
    pub verdict_after: &'static str,
    pub tier_before: String,
    pub tier_after: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub policy_in_force: String,
    pub proposed: String,
    pub accounts: u64,
    pub customers: u64,
    /// Closed accounts are not evaluated.
    pub closed_skipped: u64,
    pub verdicts_before: BTreeMap<&'static str, u64>,
    pub verdicts_after: BTreeMap<&'static str, u64>,
    /// "pending -> verified": how many accounts move so.
    pub moves: BTreeMap<String, u64>,
    pub tier_changes: u64,
    pub changes: Vec<Change>,
}

/// An open account as the check needs it.
struct OpenAccount {
    id: Uuid,
    account_type: AccountType,
    product: String,
}

/// Evaluates every open account under the policy in force and under `proposed`. Two scans,
/// no point reads: the accounts (kept in memory by customer: ids and codes only), then the
/// customers page by page, each record opened once on the blocking pool, split across the
/// cores. This is a bulk read of every record, which the caller audits. `passed` gives the
/// customers done so far. Each customer's stored evidence decides which methods it passed.
pub async fn check(
    store: &dyn Store,
    keyring: &Arc<Keyring>,
    in_force: &Policy,
    proposed: &Policy,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CheckReport, String> {
    let mut report = CheckReport {
        policy_in_force: in_force.version.clone(),
        proposed: proposed.version.clone(),
        ..Default::default()
    };
    let mut accounts: HashMap<Uuid, Vec<OpenAccount>> = HashMap::new();
    let mut after = None;
    loop {
        let page = store
            .list_accounts(
                &AccountFilter::default(),
                &PageRequest { after, limit: PAGE },
            )
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for a in page {
            if a.status == "closed" {
                report.closed_skipped += 1;
                continue;
            }
            accounts
                .entry(a.customer_id)
                .or_default()
                .push(OpenAccount {
                    id: a.id,
                    account_type: AccountType::parse(&a.account_type)
                        .unwrap_or(AccountType::Standard),
                    product: a.product,
                });
        }
    }
    let mut after = None;
    let mut done = 0u64;
    loop {
        let rows = store
            .list_customers(
                &CustomerFilter::default(),
                &PageRequest { after, limit: PAGE },
            )
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        done += rows.len() as u64;
        let rows: Vec<CustomerRow> = rows
            .into_iter()
            .filter(|r| accounts.contains_key(&r.id))
            .collect();
        let keyring = keyring.clone();
        let facts = tokio::task::spawn_blocking(move || facts_in_parallel(&keyring, &rows))
            .await
            .map_err(|e| format!("policy check task: {e}"))??;
        for (customer_id, f) in facts {
            report.customers += 1;
            let evidence = store
                .list_evidence(customer_id)
                .await
                .map_err(|e| e.to_string())?;
            let passed = passed_methods(&f, &evidence);
            for account in accounts.get(&customer_id).into_iter().flatten() {
                let s = subject(&f, account.account_type, &account.product, passed, 0);
                tally(&mut report, in_force, proposed, &s, customer_id, account.id);
            }
        }
        progress(done);
    }
    Ok(report)
}

const PAGE: u32 = 1000;

/// The policy methods a customer's stored evidence passes: its own passing results, and
/// `beneficial_owners_verified` when every owner not established as a U.S. person has a
/// passing documentary and non-documentary result.
pub fn passed_methods(facts: &Facts, evidence: &[EvidenceRow]) -> Methods {
    let passes = || evidence.iter().filter(|e| e.result == "pass");
    let mut methods: Methods = passes()
        .filter(|e| e.beneficial_owner_id.is_none())
        .filter_map(|e| verification::Method::parse(&e.method))
        .map(policy::Method::from)
        .collect();
    let owner_has = |id: Uuid, kind: fn(verification::Method) -> bool| {
        passes().any(|e| {
            e.beneficial_owner_id == Some(id)
                && verification::Method::parse(&e.method).is_some_and(kind)
        })
    };
    if facts.foreign_owners.iter().all(|id| {
        owner_has(*id, verification::Method::is_documentary)
            && owner_has(*id, verification::Method::is_non_documentary)
    }) {
        methods.insert(policy::Method::BeneficialOwnersVerified);
    }
    methods
}

/// Opens each record and computes its facts, on two threads (the machine's cores; more
/// would only queue behind the server's own work).
fn facts_in_parallel(
    keyring: &Keyring,
    rows: &[CustomerRow],
) -> Result<Vec<(Uuid, Facts)>, String> {
    let one = |rows: &[CustomerRow]| -> Result<Vec<(Uuid, Facts)>, String> {
        rows.iter()
            .map(|row| {
                let (value, _) =
                    seal::open_document(keyring, row.id, &row.document, &seal::Projection::all())
                        .map_err(|e| format!("opening customer {}: {e}", row.id))?;
                let doc: CustomerDoc = serde_json::from_value(value)
                    .map_err(|e| format!("customer {} document: {e}", row.id))?;
                Ok((row.id, facts_of(&doc)))
            })
            .collect()
    };
    let (a, b) = rows.split_at(rows.len() / 2);
    let (ra, rb) = std::thread::scope(|scope| {
        let h = scope.spawn(|| one(a));
        let rb = one(b);
        (h.join(), rb)
    });
    let mut out = ra.map_err(|_| "policy check thread panicked".to_string())??;
    out.extend(rb?);
    Ok(out)
}

fn tally(
    report: &mut CheckReport,
    in_force: &Policy,
    proposed: &Policy,
    s: &Subject<'_>,
    customer_id: Uuid,
    account_id: Uuid,
) {
    let before = policy::evaluate(in_force, s);
    let after = policy::evaluate(proposed, s);
    report.accounts += 1;
    *report
        .verdicts_before
        .entry(before.verdict.as_str())
        .or_default() += 1;
    *report
        .verdicts_after
        .entry(after.verdict.as_str())
        .or_default() += 1;
    let tier_before = &in_force.tiers[before.tier].name;
    let tier_after = &proposed.tiers[after.tier].name;
    if tier_before != tier_after {
        report.tier_changes += 1;
    }
    let verdict_moved = before.verdict.as_str() != after.verdict.as_str();
    if verdict_moved {
        *report
            .moves
            .entry(format!(
                "{} -> {}",
                before.verdict.as_str(),
                after.verdict.as_str()
            ))
            .or_default() += 1;
    }
    if verdict_moved || tier_before != tier_after {
        report.changes.push(Change {
            account_id,
            customer_id,
            verdict_before: before.verdict.as_str(),
            verdict_after: after.verdict.as_str(),
            tier_before: tier_before.clone(),
            tier_after: tier_after.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cip_core::policy::Method;

    fn ev(owner: Option<Uuid>, method: &str, result: &str) -> EvidenceRow {
        EvidenceRow {
            id: Uuid::now_v7(),
            customer_id: Uuid::nil(),
            beneficial_owner_id: owner,
            method: method.into(),
            result: result.into(),
            at: 1,
            actor: "test".into(),
            source_key: None,
            details: Vec::new(),
        }
    }

    #[test]
    fn evidence_passes_methods_and_owners() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let facts = Facts {
            kind: CustomerKind::Entity,
            status: Status::ForeignPerson,
            foreign_owner: true,
            foreign_owners: vec![a, b],
            countries: vec![],
            crypto_payment: false,
            conflict: false,
        };
        let mut evidence = vec![
            ev(None, "formation_document", "pass"),
            ev(None, "otp_email", "fail"),
            ev(Some(a), "document", "pass"),
            ev(Some(a), "otp_phone", "pass"),
            ev(Some(b), "document", "pass"),
            ev(Some(b), "payment_confirmation", "fail"),
        ];
        let m = passed_methods(&facts, &evidence);
        assert!(m.contains(Method::FormationDocument));
        assert!(
            !m.contains(Method::OtpEmail),
            "a failed result passes nothing"
        );
        assert!(
            !m.contains(Method::Document),
            "an owner's document is not the customer's"
        );
        assert!(
            !m.contains(Method::BeneficialOwnersVerified),
            "b lacks a non-documentary pass"
        );
        evidence.push(ev(Some(b), "vendor_non_documentary", "pass"));
        assert!(passed_methods(&facts, &evidence).contains(Method::BeneficialOwnersVerified));
        let no_owners = Facts {
            foreign_owners: vec![],
            ..facts
        };
        assert!(passed_methods(&no_owners, &[]).contains(Method::BeneficialOwnersVerified));
    }
}
