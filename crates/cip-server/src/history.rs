//! The history of each customer's U.S./foreign determination: what is kept (statuses and
//! the codes of the evidence, no personal data), when it is recomputed (every write of the
//! record, in the same transaction; an access from a country the account was not seen in
//! before, by a background pass under a job lease), and the pass itself. See
//! docs/design/0015-notices-history-consistency.md.

use cip_core::determination::{self, Evidence};
use cip_store::{AuditDraft, DeterminationRow};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::jobs::Ran;
use crate::records::dto::CustomerDoc;
use crate::records::seal;
use crate::state::AppState;

/// Why a determination was recomputed.
pub const CUSTOMER_CREATED: &str = "customer_created";
pub const CUSTOMER_UPDATED: &str = "customer_updated";
pub const ACCESS_COUNTRY: &str = "access_country";

/// One fact as the history keeps it: its kind and country, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct FactCode {
    /// declared_citizenship, us_residence_permit, place_of_organization, document_nationality,
    /// address_country, phone_country, payment_country, ip_geolocation
    pub kind: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PersonSummary {
    /// us_person, foreign_person or undetermined
    pub status: String,
    /// Distinct (kind, country) of the evidence used, sorted.
    pub evidence: Vec<FactCode>,
    /// How many conflicting facts were surfaced.
    pub conflicts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OwnerSummary {
    pub beneficial_owner_id: Uuid,
    #[serde(flatten)]
    pub person: PersonSummary,
}

/// A determination reduced to codes: what the history stores and compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub requires_verification: bool,
    pub customer: PersonSummary,
    /// Sorted by id.
    pub beneficial_owners: Vec<OwnerSummary>,
}

fn person(d: &determination::Determination) -> PersonSummary {
    let mut evidence: Vec<FactCode> = d
        .evidence
        .iter()
        .map(|e| FactCode {
            kind: e.kind.as_str().into(),
            country: e.country.as_str().into(),
        })
        .collect();
    evidence.sort();
    evidence.dedup();
    PersonSummary {
        status: d.status.as_str().into(),
        evidence,
        conflicts: d.conflicts.len() as u32,
    }
}

/// The determination of a record and its access facts, as codes.
pub fn summarize(doc: &CustomerDoc, access: Vec<Evidence>) -> Summary {
    let (mut customer, owners) = crate::api::determination::evidence_of(doc);
    customer.extend(access);
    let d = determination::determine_customer(customer, owners);
    let mut beneficial_owners: Vec<OwnerSummary> = d
        .beneficial_owners
        .iter()
        .map(|(id, o)| OwnerSummary {
            beneficial_owner_id: *id,
            person: person(o),
        })
        .collect();
    beneficial_owners.sort_by_key(|o| o.beneficial_owner_id);
    Summary {
        requires_verification: d.requires_verification,
        customer: person(&d.customer),
        beneficial_owners,
    }
}

/// The history row of a summary (its `seq` and previous status are given by the store).
pub fn row(
    customer_id: Uuid,
    record_version: i64,
    cause: &str,
    account_id: Option<Uuid>,
    summary: &Summary,
    at: i64,
) -> DeterminationRow {
    // Serialising a struct of strings, booleans and integers cannot fail; field order is the
    // declaration order, so equal summaries give equal bytes.
    let bytes = serde_json::to_vec(summary).unwrap_or_default();
    DeterminationRow {
        customer_id,
        seq: 0,
        at,
        cause: cause.into(),
        record_version,
        account_id,
        previous_status: None,
        status: summary.customer.status.clone(),
        digest: Sha256::digest(&bytes).into(),
        summary: bytes,
    }
}

/// The history row for a record being written by a request: the record as submitted and
/// the countries its accounts were accessed from so far.
pub async fn row_for_write(
    state: &AppState,
    customer_id: Uuid,
    record_version: i64,
    cause: &str,
    doc: &CustomerDoc,
) -> Result<DeterminationRow, crate::error::ApiError> {
    let access = if cause == CUSTOMER_CREATED {
        Vec::new()
    } else {
        crate::api::determination::access_facts(state, customer_id)
            .await?
            .into_iter()
            .flat_map(|(_, f)| f)
            .collect()
    };
    let summary = summarize(doc, access);
    Ok(row(
        customer_id,
        record_version,
        cause,
        None,
        &summary,
        crate::time::now_micros(),
    ))
}

/// The job lease of the access-country pass and the meta key of its cursor.
const LEASE: &str = "determination.access";
const CURSOR: &str = "determination.access_cursor";
const LEASE_MICROS: i64 = 5 * 60 * 1_000_000;

fn parse_cursor(raw: &[u8]) -> Option<(i64, Uuid)> {
    let s = std::str::from_utf8(raw).ok()?;
    let (at, id) = s.split_once(':')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

fn system_audit(
    action: &str,
    record_type: &str,
    id: Option<String>,
    fields: Vec<String>,
) -> AuditDraft {
    AuditDraft {
        at: crate::time::now_micros(),
        actor: "system:determination".into(),
        role: "system".into(),
        action: action.into(),
        record_type: record_type.into(),
        record_id: id,
        fields,
        request_id: None,
        purpose: None,
    }
}

/// One step of the access-country pass: the accounts accessed since the cursor (up to
/// `limit`), each customer's determination recomputed from its record and the countries of
/// all its accounts, a history row appended where it changed (cause `access_country`), then
/// the cursor moved past them. Runs under the job lease `determination.access`, so one
/// instance does it at a time; a step repeated after a crash appends nothing twice (a row is
/// appended only when the determination differs from the latest). `holder` names this
/// instance. `Did(n)`: n rows appended (the step found accounts); `Idle`: nothing new, or
/// another instance holds the lease.
pub async fn access_run_once(state: &AppState, holder: &str, limit: u32) -> Result<Ran, String> {
    let now = crate::time::now_micros();
    let store = state.store.as_ref();
    if !store
        .claim_job(LEASE, holder, now, now + LEASE_MICROS)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(Ran::Idle);
    }
    let result = access_step(state, limit).await;
    store
        .release_job(LEASE, holder)
        .await
        .map_err(|e| e.to_string())?;
    result
}

async fn access_step(state: &AppState, limit: u32) -> Result<Ran, String> {
    let store = state.store.as_ref();
    // This instance's queued last_accessed_at advances first (docs/design/0016); another
    // instance's reach the store within two seconds and the next step.
    state
        .last_access
        .flush(store)
        .await
        .map_err(|e| e.to_string())?;
    let (at, id) = store
        .get_meta(CURSOR)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|raw| parse_cursor(&raw))
        .unwrap_or((i64::MIN, Uuid::nil()));
    let accounts = store
        .accounts_accessed_after(at, id, limit)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = accounts.last() else {
        return Ok(Ran::Idle);
    };
    let cursor = (last.last_accessed_at.unwrap_or(at), last.id);
    // One recomputation per customer, attributed to its first account in this step.
    let mut customers: Vec<(Uuid, Uuid)> = Vec::new();
    for a in &accounts {
        if !customers.iter().any(|(c, _)| *c == a.customer_id) {
            customers.push((a.customer_id, a.id));
        }
    }
    let keyring = state.keyring();
    let mut appended = 0;
    for (customer_id, account_id) in customers {
        let Some(row) = store
            .get_customer(customer_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let (value, _) = seal::open_document(
            &keyring,
            customer_id,
            &row.document,
            &seal::Projection::all(),
        )
        .map_err(|e| format!("opening customer {customer_id}: {e}"))?;
        let doc: CustomerDoc = serde_json::from_value(value)
            .map_err(|e| format!("customer {customer_id} document: {e}"))?;
        let facts = crate::api::determination::access_facts(state, customer_id)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let fields = facts
            .iter()
            .map(|(account, _)| format!("/accounts/{account}/countries"))
            .collect();
        let summary = summarize(&doc, facts.into_iter().flat_map(|(_, f)| f).collect());
        let history = self::row(
            customer_id,
            row.version,
            ACCESS_COUNTRY,
            Some(account_id),
            &summary,
            crate::time::now_micros(),
        );
        let audit = system_audit(
            "determination.record",
            "customer",
            Some(customer_id.to_string()),
            fields,
        );
        if store
            .record_determination(history, Some(audit))
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            appended += 1;
        }
    }
    store
        .set_meta(
            CURSOR,
            format!("{}:{}", cursor.0, cursor.1).as_bytes(),
            system_audit(
                "determination.access_pass",
                "meta",
                Some(CURSOR.into()),
                vec![
                    format!("accounts={}", accounts.len()),
                    format!("appended={appended}"),
                ],
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(Ran::Did(appended))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(parse_cursor(format!("-5:{id}").as_bytes()), Some((-5, id)));
        assert_eq!(parse_cursor(b"12"), None);
        assert_eq!(parse_cursor(b"x:y"), None);
    }

    #[test]
    fn equal_summaries_have_equal_digests_and_a_change_differs() {
        let s = Summary {
            requires_verification: true,
            customer: PersonSummary {
                status: "foreign_person".into(),
                evidence: vec![FactCode {
                    kind: "address_country".into(),
                    country: "DE".into(),
                }],
                conflicts: 0,
            },
            beneficial_owners: vec![],
        };
        let id = Uuid::now_v7();
        let a = row(id, 1, CUSTOMER_CREATED, None, &s, 1);
        let b = row(id, 2, CUSTOMER_UPDATED, None, &s, 2);
        assert_eq!(a.digest, b.digest);
        let mut t = s.clone();
        t.customer.evidence.push(FactCode {
            kind: "ip_geolocation".into(),
            country: "FR".into(),
        });
        assert_ne!(a.digest, row(id, 2, ACCESS_COUNTRY, None, &t, 3).digest);
    }
}
