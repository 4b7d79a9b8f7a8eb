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
use cip_store::{AccountFilter, CustomerDigestRow, DigestPart, EvidenceRow, PageRequest, Store};
use cip_vault::Keyring;
use uuid::Uuid;

use crate::records::digest::{self, PolicyPart};
use crate::records::dto::CustomerDoc;

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
    facts_from(
        &doc.kind,
        doc.payment_methods
            .iter()
            .any(|p| p.crypto_wallet.is_some()),
        customer,
        owners,
    )
}

/// The facts of a record from its digest (the bulk passes' way: no document opened).
pub fn facts_of_digest(d: &PolicyPart) -> Facts {
    let (customer, owners) = d.evidence();
    facts_from(&d.kind, d.crypto_payment, customer, owners)
}

fn facts_from(
    kind: &str,
    crypto_payment: bool,
    customer: Vec<determination::Evidence>,
    owners: Vec<(Uuid, Vec<determination::Evidence>)>,
) -> Facts {
    let mut countries: Vec<CountryCode> = customer
        .iter()
        .chain(owners.iter().flat_map(|(_, e)| e.iter()))
        .map(|e| e.country)
        .collect();
    countries.sort_unstable();
    countries.dedup();
    let d = determination::determine_customer(customer, owners);
    Facts {
        kind: CustomerKind::parse(kind).unwrap_or(CustomerKind::Individual),
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
        crypto_payment,
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

/// An open account as the bulk passes need it.
#[derive(Debug, Clone)]
pub struct OpenAccount {
    pub id: Uuid,
    pub account_type: AccountType,
    pub product: String,
    pub status: String,
    pub version: i64,
}

/// One customer with open accounts, as a bulk pass sees it: its facts (from the record
/// digest) and the methods its stored evidence passes.
pub struct Evaluable<'a> {
    pub customer_id: Uuid,
    pub facts: &'a Facts,
    pub passed: Methods,
    pub accounts: &'a [OpenAccount],
}

/// Counts of a bulk pass over the stored accounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scanned {
    pub customers: u64,
    pub closed_skipped: u64,
}

/// Calls `visit` for every customer with open accounts. Two scans, no point reads: the
/// accounts (kept in memory by customer: ids and codes only), then the customers page by page
/// — each record's digest opened on the blocking pool, split across the cores, and the
/// evidence of the whole page read at once. This is a bulk read of every record, which the
/// caller audits. `progress` gives the customers done so far.
pub async fn for_each_evaluable(
    store: &dyn Store,
    keyring: &Arc<Keyring>,
    progress: &(dyn Fn(u64) + Sync),
    mut visit: impl FnMut(Evaluable<'_>),
) -> Result<Scanned, String> {
    let mut scanned = Scanned::default();
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
                scanned.closed_skipped += 1;
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
                    status: a.status,
                    version: a.version,
                });
        }
    }
    let mut after = None;
    let mut done = 0u64;
    loop {
        let rows = store
            .scan_customer_digests(DigestPart::Policy, after, PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            break;
        };
        let (first, last) = (first.id, last.id);
        after = Some(last);
        done += rows.len() as u64;
        let rows: Vec<CustomerDigestRow> = rows
            .into_iter()
            .filter(|r| accounts.contains_key(&r.id))
            .collect();
        if rows.is_empty() {
            progress(done);
            continue;
        }
        let keyring = keyring.clone();
        let facts = tokio::task::spawn_blocking(move || {
            digest::par_map(&rows, |r| {
                Ok((r.id, facts_of_digest(&digest::policy_of_row(&keyring, r)?)))
            })
        })
        .await
        .map_err(|e| format!("policy pass task: {e}"))??;
        let evidence = store
            .list_evidence_between(first, last)
            .await
            .map_err(|e| e.to_string())?;
        let mut by_customer: HashMap<Uuid, Vec<EvidenceRow>> = HashMap::new();
        for e in evidence {
            by_customer.entry(e.customer_id).or_default().push(e);
        }
        for (customer_id, f) in &facts {
            scanned.customers += 1;
            let evidence = by_customer
                .get(customer_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            visit(Evaluable {
                customer_id: *customer_id,
                facts: f,
                passed: passed_methods(f, evidence),
                accounts: accounts
                    .get(customer_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            });
        }
        progress(done);
    }
    Ok(scanned)
}

/// Evaluates every open account under the policy in force and under `proposed`
/// (`cip policy check`): which verdicts and tiers would move.
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
    let scanned = for_each_evaluable(store, keyring, progress, |e| {
        for account in e.accounts {
            let s = subject(e.facts, account.account_type, &account.product, e.passed, 0);
            tally(
                &mut report,
                in_force,
                proposed,
                &s,
                e.customer_id,
                account.id,
            );
        }
    })
    .await?;
    report.customers = scanned.customers;
    report.closed_skipped = scanned.closed_skipped;
    Ok(report)
}

/// Where the version whose re-evaluation completed is kept.
const REEVALUATED: &str = "policy.reevaluated";

/// The actor recorded for moves a policy change makes.
pub const POLICY_ACTOR: &str = "system:policy";

/// How long a re-evaluation lease lasts without renewal; renewed with every page of moves.
const LEASE_MICROS: i64 = 10 * 60 * 1_000_000;

/// One account a policy change moves.
#[derive(Debug, Clone)]
struct Move {
    account: OpenAccount,
    to: cip_core::model::AccountStatus,
    reason: String,
}

/// What a policy says of one account's current status: the move it requires, if any. Only
/// the verification states move: a pending account whose requirements the policy in force
/// meets (or no longer has) becomes active; an active account that no longer meets them goes
/// back to pending verification (interim use as the policy's tier says). Failed, restricted,
/// re-verification-due and applied accounts are left to their own paths (analysts, the
/// lifecycle job, the opening flow).
pub fn required_move(
    policy: &Policy,
    account: &OpenAccount,
    outcome: &policy::Outcome,
) -> Option<(cip_core::model::AccountStatus, String)> {
    use cip_core::model::AccountStatus;
    use policy::Verdict;
    let tier = &policy.tiers[outcome.tier].name;
    match (account.status.as_str(), &outcome.verdict) {
        ("pending_verification", Verdict::Verified) => Some((
            AccountStatus::Active,
            format!(
                "policy {}: the stored evidence meets its requirements",
                policy.version
            ),
        )),
        ("pending_verification", Verdict::NotRequired) => Some((
            AccountStatus::Active,
            format!(
                "policy {}: verification is not required (U.S. person, no foreign owner)",
                policy.version
            ),
        )),
        ("pending_verification", Verdict::Exempt { exemption }) => Some((
            AccountStatus::Active,
            format!(
                "policy {}: exempted ({})",
                policy.version,
                policy
                    .exemptions
                    .get(*exemption)
                    .map(|e| e.name.as_str())
                    .unwrap_or("exemption")
            ),
        )),
        ("active", Verdict::Pending { missing }) => Some((
            AccountStatus::PendingVerification,
            format!(
                "policy {} (tier {tier}) requires verification: {}",
                policy.version,
                missing
                    .iter()
                    .map(|set| set
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        _ => None,
    }
}

/// What a re-evaluation did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Reevaluated {
    pub version: String,
    pub customers: u64,
    pub accounts: u64,
    pub moved: u64,
    /// Moves another writer beat (the account changed meanwhile; its change stands).
    pub skipped: u64,
}

/// The background job that re-evaluates every open account after a policy change: when the
/// version in force is not the one last re-evaluated, one instance (lease
/// `policy.reevaluate:<version>`) evaluates every account under it and moves those whose
/// status the policy no longer supports ([`required_move`]), each by an ordinary transition
/// (account, transition, webhook event and audit in one transaction, with the version read,
/// so a concurrent change wins). The completion is recorded (meta `policy.reevaluated`) with
/// the audit entry of the bulk read; a run cut short is redone from the start by the next
/// pass, and the moves it made are not made twice (the statuses already moved).
pub async fn reevaluate_run_once(
    state: &crate::state::AppState,
) -> Result<crate::jobs::Ran, String> {
    use crate::jobs::Ran;
    let store = state.store.as_ref();
    let version = match store.get_meta(ACTIVE).await.map_err(|e| e.to_string())? {
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
        // The built-in policy has been in force since the install: nothing changed.
        None => return Ok(Ran::Idle),
    };
    let done = store
        .get_meta(REEVALUATED)
        .await
        .map_err(|e| e.to_string())?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    if done.as_deref() == Some(version.as_str()) {
        return Ok(Ran::Idle);
    }
    let lease = format!("policy.reevaluate:{version}");
    let holder = state.screening.instance.clone();
    let claim = || async {
        let now = crate::time::now_micros();
        store
            .claim_job(&lease, &holder, now, now + LEASE_MICROS)
            .await
            .map_err(|e| e.to_string())
    };
    if !claim().await? {
        return Ok(Ran::Idle);
    }
    let result = reevaluate(state, &version, &claim).await;
    store
        .release_job(&lease, &holder)
        .await
        .map_err(|e| e.to_string())?;
    let r = result?;
    tracing::info!(
        version = %r.version,
        accounts = r.accounts,
        moved = r.moved,
        "re-evaluated the accounts under the policy in force"
    );
    Ok(Ran::Did(r.moved))
}

async fn reevaluate<F, Fut>(
    state: &crate::state::AppState,
    version: &str,
    claim: &F,
) -> Result<Reevaluated, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let (policy, _, _) = active(state.store.as_ref()).await?;
    if policy.version != version {
        return Err(format!(
            "the policy in force changed during the re-evaluation ({version} → {})",
            policy.version
        ));
    }
    let keyring = state.keyring();
    let mut moves = Vec::new();
    let mut accounts = 0u64;
    let scanned = for_each_evaluable(state.store.as_ref(), &keyring, &|_| {}, |e| {
        for account in e.accounts {
            accounts += 1;
            let s = subject(e.facts, account.account_type, &account.product, e.passed, 0);
            let outcome = policy::evaluate(&policy, &s);
            if let Some((to, reason)) = required_move(&policy, account, &outcome) {
                moves.push(Move {
                    account: account.clone(),
                    to,
                    reason,
                });
            }
        }
    })
    .await?;
    let mut report = Reevaluated {
        version: version.to_string(),
        customers: scanned.customers,
        accounts,
        ..Default::default()
    };
    for chunk in moves.chunks(200) {
        if !claim().await? {
            return Err(format!(
                "the lease on policy {version} was lost mid-run; another instance took it over"
            ));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for m in chunk.iter().cloned() {
            let state = state.clone();
            tasks.spawn(async move { move_account(&state, m).await });
        }
        while let Some(r) = tasks.join_next().await {
            match r.map_err(|e| format!("move task: {e}"))?? {
                true => report.moved += 1,
                false => report.skipped += 1,
            }
        }
    }
    let now = crate::time::now_micros();
    state
        .store
        .set_meta(
            REEVALUATED,
            version.as_bytes(),
            cip_store::AuditDraft {
                at: now,
                actor: POLICY_ACTOR.into(),
                role: "system".into(),
                action: "policy.reevaluate".into(),
                record_type: "policy".into(),
                record_id: Some(version.to_string()),
                fields: vec![
                    format!("version={version}"),
                    format!("customers={}", report.customers),
                    format!("accounts={}", report.accounts),
                    format!("moved={}", report.moved),
                    "read=digest(determination facts),verification_evidence".into(),
                ],
                request_id: None,
                purpose: Some("re-evaluate accounts under the policy in force".into()),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(report)
}

/// Moves one account; `false` when it changed meanwhile (its change stands).
async fn move_account(state: &crate::state::AppState, m: Move) -> Result<bool, String> {
    let Some(current) = state
        .store
        .get_account(m.account.id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    if current.version != m.account.version {
        return Ok(false);
    }
    crate::api::lifecycle::system_transition(
        state.store.as_ref(),
        &current,
        m.to,
        &m.reason,
        POLICY_ACTOR,
        None,
        crate::time::now_micros(),
    )
    .await
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
