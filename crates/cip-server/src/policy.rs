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
use cip_store::{AccountFilter, CustomerFilter, CustomerRow, PageRequest, Store};
use cip_vault::Keyring;
use uuid::Uuid;

use crate::records::dto::CustomerDoc;
use crate::records::seal;

/// What a policy needs to know about one customer: codes and flags, no personal data.
#[derive(Debug, Clone)]
pub struct Facts {
    pub kind: CustomerKind,
    pub status: Status,
    pub foreign_owner: bool,
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
/// methods a customer has passing evidence for, `progress` the customers done so far.
pub async fn check(
    store: &dyn Store,
    keyring: &Arc<Keyring>,
    in_force: &Policy,
    proposed: &Policy,
    passed: &(dyn Fn(Uuid) -> Methods + Sync),
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
            for account in accounts.get(&customer_id).into_iter().flatten() {
                let s = subject(
                    &f,
                    account.account_type,
                    &account.product,
                    passed(customer_id),
                    0,
                );
                tally(&mut report, in_force, proposed, &s, customer_id, account.id);
            }
        }
        progress(done);
    }
    Ok(report)
}

const PAGE: u32 = 1000;

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
