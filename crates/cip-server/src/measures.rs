//! Enforcement of special measures (EO 13984 §2; docs/design/0010-special-measures.md):
//! the stored form of a measure, the evidence that ties a customer to a measure's target,
//! the check at account opening, the job that applies a measure to existing accounts when it
//! takes effect, and the policy action of a confirmed screening hit.

use std::collections::HashMap;

use cip_core::model::AccountType;
use cip_core::parse::{CountryCode, Iban, Phone, Subdivision};
use cip_core::special_measure::{
    self as sm, ConditionInput, CountryEvidence, EvidenceKind, MeasureInput, MeasureTarget,
    OpeningOutcome, RequiredAction, SpecialMeasure,
};
use cip_store::{
    AccountFilter, AccountRow, AuditDraft, MeasureActionFilter, MeasureActionRow,
    MeasureActionWrite, MeasureRow, PageRequest, ReviewFilter, ReviewRow, TieChange,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, FieldProblem};
use crate::jobs::Ran;
use crate::records::dto::{CustomerDoc, IdentityDto};
use crate::state::AppState;
use crate::time::to_rfc3339;

/// The actor of actions the sweep job records.
pub const SYSTEM_ACTOR: &str = "system:special-measures";
/// The webhook event announcing an action on an account.
pub const EVENT_TYPE: &str = "account.special_measure";
/// How long a claimed sweep is reserved for the instance applying it.
const SWEEP_LEASE_MICROS: i64 = 10 * 60 * 1_000_000;
const DAY_MICROS: i64 = 86_400 * 1_000_000;

// ---- wire and stored shapes ----

/// Whom the measure targets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetDto {
    /// `jurisdiction` or `designated_persons`.
    pub kind: String,
    /// ISO 3166-1 alpha-2 code of the designated foreign jurisdiction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// ISO 3166-2 subdivision of that country (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivision: Option<String>,
    /// The screening list holding the designated foreign persons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<String>,
    /// Specific entries of that list (all of its entries when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_ids: Vec<String>,
}

/// One condition: `enhanced_verification`, `no_reseller_accounts`, `product_limit`
/// (with `allowed_products`) or `capacity_limit` (with `max_vcpus`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionDto {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_products: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vcpus: Option<u32>,
}

/// A new special measure.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureIn {
    pub target: TargetDto,
    /// `prohibited` or `conditioned`: what the measure does to opening accounts.
    #[serde(default)]
    pub opening: Option<String>,
    /// `prohibited` or `conditioned`: what it does to maintaining (existing) accounts.
    #[serde(default)]
    pub maintaining: Option<String>,
    /// Required for a conditioned measure; a typed set, not free text.
    #[serde(default)]
    pub conditions: Vec<ConditionDto>,
    /// Whether the measure also reaches Reseller Accounts.
    #[serde(default)]
    pub covers_reseller_accounts: bool,
    /// The legal reference (Federal Register citation, determination number…).
    pub legal_reference: String,
    /// YYYY-MM-DD.
    pub determination_date: String,
    /// YYYY-MM-DD: the measure applies from 00:00 UTC that day.
    pub effective_date: String,
    /// YYYY-MM-DD, the first day it no longer applies; default effective date + 365 days.
    #[serde(default)]
    pub expiry_date: Option<String>,
    /// Days an existing account has to comply (close, or meet the conditions); default 30.
    #[serde(default)]
    pub compliance_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExtensionDto {
    pub previous_expiry_date: String,
    pub expiry_date: String,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevocationDto {
    pub reason: String,
    pub actor: String,
    pub at: String,
}

/// What the store keeps: the normalised measure with its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasureDoc {
    pub measure: MeasureIn,
    #[serde(default)]
    pub extensions: Vec<ExtensionDto>,
    #[serde(default)]
    pub revocation: Option<RevocationDto>,
    pub created_by: String,
}

impl MeasureDoc {
    pub fn from_row(row: &MeasureRow) -> Result<Self, ApiError> {
        serde_json::from_slice(&row.document)
            .map_err(|e| ApiError::Internal(format!("stored measure {}: {e}", row.id)))
    }

    /// The measure as the domain sees it (a stored measure was valid when stored).
    pub fn domain(&self) -> Result<SpecialMeasure, ApiError> {
        SpecialMeasure::parse(&input_of(&self.measure))
            .map_err(|p| ApiError::Internal(format!("stored measure does not parse: {p:?}")))
    }
}

/// The wire shape → the domain's raw input (by hand: the domain knows no serde).
pub fn input_of(m: &MeasureIn) -> MeasureInput {
    MeasureInput {
        target_kind: m.target.kind.clone(),
        country: m.target.country.clone(),
        subdivision: m.target.subdivision.clone(),
        list_id: m.target.list_id.clone(),
        entry_ids: m.target.entry_ids.clone(),
        opening: m.opening.clone(),
        maintaining: m.maintaining.clone(),
        conditions: m
            .conditions
            .iter()
            .map(|c| ConditionInput {
                kind: c.kind.clone(),
                allowed_products: c.allowed_products.clone(),
                max_vcpus: c.max_vcpus,
            })
            .collect(),
        covers_reseller_accounts: m.covers_reseller_accounts,
        legal_reference: m.legal_reference.clone(),
        determination_date: m.determination_date.clone(),
        effective_date: m.effective_date.clone(),
        expiry_date: m.expiry_date.clone(),
        compliance_days: m.compliance_days,
    }
}

pub fn condition_dto(c: &sm::Condition) -> ConditionDto {
    let mut d = ConditionDto {
        kind: c.kind().into(),
        allowed_products: None,
        max_vcpus: None,
    };
    match c {
        sm::Condition::ProductLimit { allowed_products } => {
            d.allowed_products = Some(allowed_products.clone())
        }
        sm::Condition::CapacityLimit { max_vcpus } => d.max_vcpus = Some(*max_vcpus),
        _ => {}
    }
    d
}

/// The domain's measure → its normalised wire shape (defaults filled in, codes uppercase).
pub fn wire_of(m: &SpecialMeasure) -> MeasureIn {
    let target = match &m.target {
        MeasureTarget::Jurisdiction {
            country,
            subdivision,
        } => TargetDto {
            kind: "jurisdiction".into(),
            country: Some(country.as_str().into()),
            subdivision: subdivision.as_ref().map(|s| s.as_str().to_string()),
            ..Default::default()
        },
        MeasureTarget::DesignatedPersons { list_id, entry_ids } => TargetDto {
            kind: "designated_persons".into(),
            list_id: Some(list_id.clone()),
            entry_ids: entry_ids.clone(),
            ..Default::default()
        },
    };
    MeasureIn {
        target,
        opening: m.opening.map(|e| e.as_str().into()),
        maintaining: m.maintaining.map(|e| e.as_str().into()),
        conditions: m.conditions.iter().map(condition_dto).collect(),
        covers_reseller_accounts: m.covers_reseller_accounts,
        legal_reference: m.legal_reference.clone(),
        determination_date: m.determination_date.to_string(),
        effective_date: m.effective_date.to_string(),
        expiry_date: Some(m.expiry_date.to_string()),
        compliance_days: Some(u32::from(m.compliance_days)),
    }
}

/// Unix micros of 00:00 UTC on `date`.
pub fn day_start(date: jiff::civil::Date) -> i64 {
    jiff::tz::TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .map(|t| t.as_microsecond())
        .unwrap_or(i64::MAX)
}

pub fn in_force(row: &MeasureRow, now: i64) -> bool {
    row.revoked_at.is_none() && row.effective_at <= now && now < row.expires_at
}

/// `scheduled`, `in_force`, `expired` or `revoked`.
pub fn status_of(row: &MeasureRow, now: i64) -> &'static str {
    if row.revoked_at.is_some() {
        "revoked"
    } else if now < row.effective_at {
        "scheduled"
    } else if now < row.expires_at {
        "in_force"
    } else {
        "expired"
    }
}

/// One piece of evidence that tied an account to a measure's target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EvidenceDto {
    /// `customer` or `owner/<n>` (the n-th beneficial owner).
    pub subject: String,
    /// `address_country`, `place_of_organization`, `national_id_issuing_country`,
    /// `nationality`, `phone_country`, `card_issuing_country`, `iban_country`,
    /// `bank_account_country` or `confirmed_screening_hit`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
}

fn country_dto(e: &CountryEvidence) -> EvidenceDto {
    EvidenceDto {
        subject: e.subject.clone(),
        kind: e.kind.as_str().into(),
        country: Some(e.country.as_str().into()),
        subdivision: e.subdivision.as_ref().map(|s| s.as_str().to_string()),
        review_id: None,
        list_id: None,
        entry_id: None,
    }
}

fn hit_dto(r: &ReviewRow) -> EvidenceDto {
    EvidenceDto {
        subject: r.subject.clone(),
        kind: "confirmed_screening_hit".into(),
        country: None,
        subdivision: None,
        review_id: Some(r.id),
        list_id: Some(r.list_id.clone()),
        entry_id: Some(r.entry_id.clone()),
    }
}

// ---- evidence from a customer's record ----

fn identity_countries(out: &mut Vec<CountryEvidence>, subject: &str, id: &IdentityDto) {
    let mut push = |kind, country: &str, subdivision: Option<&str>| {
        if let Ok(country) = CountryCode::parse(country) {
            out.push(CountryEvidence {
                subject: subject.into(),
                kind,
                country,
                subdivision: subdivision.and_then(|s| Subdivision::parse(s).ok()),
            });
        }
    };
    for a in &id.addresses {
        push(
            EvidenceKind::AddressCountry,
            &a.country,
            a.subdivision.as_deref(),
        );
    }
    for n in &id.national_ids {
        push(
            EvidenceKind::NationalIdIssuingCountry,
            &n.issuing_country,
            None,
        );
    }
    for c in &id.citizenships {
        push(EvidenceKind::Nationality, c, None);
    }
    for p in &id.phones {
        if let Some(c) = Phone::parse(p).ok().and_then(|p| p.country()) {
            push(EvidenceKind::PhoneCountry, c.as_str(), None);
        }
    }
}

/// Every country fact of a customer and its beneficial owners: addresses, place of
/// organisation, national-ID issuing countries, nationalities, phone countries (E.164), card
/// issuing countries, IBAN and bank-account countries.
pub fn country_evidence(doc: &CustomerDoc) -> Vec<CountryEvidence> {
    let mut out = Vec::new();
    identity_countries(&mut out, "customer", &doc.identity);
    if let Some(e) = &doc.entity
        && let Some(p) = &e.place_of_organization
        && let Ok(country) = CountryCode::parse(p)
    {
        out.push(CountryEvidence {
            subject: "customer".into(),
            kind: EvidenceKind::PlaceOfOrganization,
            country,
            subdivision: e
                .organization_subdivision
                .as_deref()
                .and_then(|s| Subdivision::parse(s).ok()),
        });
    }
    for pm in &doc.payment_methods {
        let mut push = |kind, c: &str| {
            if let Ok(country) = CountryCode::parse(c) {
                out.push(CountryEvidence {
                    subject: "customer".into(),
                    kind,
                    country,
                    subdivision: None,
                });
            }
        };
        if let Some(c) = pm.card.as_ref().and_then(|c| c.issuing_country.as_deref()) {
            push(EvidenceKind::CardIssuingCountry, c);
        }
        if let Some(b) = &pm.bank_account {
            if let Some(iban) = b.iban.as_deref().and_then(|i| Iban::parse(i).ok()) {
                push(EvidenceKind::IbanCountry, iban.country().as_str());
            }
            if let Some(c) = b.country.as_deref() {
                push(EvidenceKind::BankAccountCountry, c);
            }
        }
    }
    for (n, owner) in doc.beneficial_owners.iter().enumerate() {
        identity_countries(&mut out, &format!("owner/{n}"), &owner.identity);
    }
    out
}

/// What ties a customer to one measure's target: country evidence for a jurisdiction,
/// confirmed hits on the targeted list entries for designated persons.
pub fn ties(
    measure: &SpecialMeasure,
    countries: &[CountryEvidence],
    confirmed: &[ReviewRow],
) -> Vec<EvidenceDto> {
    match &measure.target {
        MeasureTarget::Jurisdiction { .. } => sm::jurisdiction_ties(&measure.target, countries)
            .into_iter()
            .map(country_dto)
            .collect(),
        MeasureTarget::DesignatedPersons { .. } => confirmed
            .iter()
            .filter(|r| sm::person_targeted(&measure.target, &r.list_id, &r.entry_id))
            .map(hit_dto)
            .collect(),
    }
}

/// The customer's record opened for enforcement (the caller audits the read).
async fn open_customer(state: &AppState, customer_id: Uuid) -> Result<CustomerDoc, ApiError> {
    let row = state
        .store
        .get_customer(customer_id)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let (value, _) = crate::records::seal::open_document(
        &state.keyring(),
        customer_id,
        &row.document,
        &crate::records::seal::Projection::all(),
    )
    .map_err(|e| ApiError::Internal(format!("opening customer {customer_id}: {e}")))?;
    serde_json::from_value(value).map_err(|e| ApiError::Internal(format!("stored document: {e}")))
}

async fn confirmed_hits(state: &AppState, customer_id: Uuid) -> Result<Vec<ReviewRow>, ApiError> {
    Ok(state
        .store
        .list_reviews(
            &ReviewFilter {
                status: Some("confirmed".into()),
                customer_id: Some(customer_id),
            },
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await?)
}

/// The record fields enforcement reads (for the audit entry of the read).
pub const EVIDENCE_FIELDS: &[&str] = &[
    "/identity/addresses/*/country",
    "/identity/national_ids/*/issuing_country",
    "/identity/citizenships",
    "/identity/phones",
    "/entity/place_of_organization",
    "/payment_methods/*/card/issuing_country",
    "/payment_methods/*/bank_account",
    "/beneficial_owners/*/identity",
];

// ---- at account opening ----

/// A measure that refuses an application.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub measure_id: Uuid,
    pub legal_reference: String,
    pub evidence: Vec<EvidenceDto>,
    /// Empty when the measure prohibits the account; otherwise the limits of a conditioning
    /// measure that the application breaks (a product outside its product limit).
    pub limits: Vec<ConditionDto>,
}

/// A measure whose conditions a new account gets.
#[derive(Debug, Clone)]
pub struct Attached {
    pub row: MeasureRow,
    pub measure: SpecialMeasure,
    pub evidence: Vec<EvidenceDto>,
}

#[derive(Debug, Default)]
pub struct OpeningCheck {
    pub refusals: Vec<Refusal>,
    pub attached: Vec<Attached>,
    /// Whether the customer's record was read (the caller audits the read).
    pub read_record: bool,
}

/// What the measures in force say about opening an account of `account_type` for
/// `product` for `customer_id`. Reads the customer's record only when a measure is in force.
/// A conditioning measure whose product limit leaves out `product` refuses the application
/// like a prohibition, with the limit cited.
pub async fn check_opening(
    state: &AppState,
    customer_id: Uuid,
    account_type: AccountType,
    product: &str,
    now: i64,
) -> Result<OpeningCheck, ApiError> {
    let rows = state.store.measures_in_force(now).await?;
    let mut check = OpeningCheck::default();
    if rows.is_empty() {
        return Ok(check);
    }
    let doc = open_customer(state, customer_id).await?;
    check.read_record = true;
    let countries = country_evidence(&doc);
    let confirmed = confirmed_hits(state, customer_id).await?;
    for row in rows {
        let measure = MeasureDoc::from_row(&row)?.domain()?;
        let evidence = ties(&measure, &countries, &confirmed);
        if evidence.is_empty() {
            continue;
        }
        match measure.at_opening(account_type) {
            None => {}
            Some(OpeningOutcome::Refuse) => check.refusals.push(Refusal {
                measure_id: row.id,
                legal_reference: measure.legal_reference.clone(),
                evidence,
                limits: Vec::new(),
            }),
            Some(OpeningOutcome::Conditions)
                if !measure
                    .limits_broken(sm::Use {
                        product: Some(product),
                        vcpus: None,
                    })
                    .is_empty() =>
            {
                check.refusals.push(Refusal {
                    measure_id: row.id,
                    legal_reference: measure.legal_reference.clone(),
                    evidence,
                    limits: measure
                        .limits_broken(sm::Use {
                            product: Some(product),
                            vcpus: None,
                        })
                        .into_iter()
                        .map(condition_dto)
                        .collect(),
                })
            }
            Some(OpeningOutcome::Conditions) => check.attached.push(Attached {
                row,
                measure,
                evidence,
            }),
        }
    }
    Ok(check)
}

fn event_for(row: &MeasureActionRow, legal_reference: Option<&str>) -> cip_store::EventDraft {
    crate::webhooks::event(
        EVENT_TYPE,
        json!({
            "account_id": row.account_id,
            "customer_id": row.customer_id,
            "measure_id": row.measure_id,
            "review_id": row.review_id,
            "legal_reference": legal_reference,
            "action": row.action,
            "deadline": row.deadline.map(to_rfc3339),
            "cause": row.cause,
        }),
    )
}

/// Builds an action with its event and audit entry.
#[allow(clippy::too_many_arguments)]
pub fn action_write(
    account: &AccountRow,
    measure: Option<(&MeasureRow, &SpecialMeasure)>,
    review_id: Option<Uuid>,
    action: RequiredAction,
    deadline: Option<i64>,
    evidence: &[EvidenceDto],
    cause: &str,
    audit: AuditDraft,
    with_event: bool,
) -> MeasureActionWrite {
    let row = MeasureActionRow {
        id: Uuid::now_v7(),
        measure_id: measure.map(|(r, _)| r.id),
        review_id,
        account_id: account.id,
        customer_id: account.customer_id,
        action: action.as_str().into(),
        deadline,
        evidence: serde_json::to_vec(evidence).unwrap_or_else(|_| b"[]".to_vec()),
        cause: cause.into(),
        actor: audit.actor.clone(),
        at: audit.at,
        untied_at: None,
    };
    let event =
        with_event.then(|| event_for(&row, measure.map(|(_, m)| m.legal_reference.as_str())));
    MeasureActionWrite { row, event, audit }
}

fn system_audit(
    action: &str,
    record_type: &str,
    id: String,
    fields: Vec<String>,
    purpose: String,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: SYSTEM_ACTOR.into(),
        role: "system".into(),
        action: action.into(),
        record_type: record_type.into(),
        record_id: Some(id),
        fields,
        request_id: None,
        purpose: Some(purpose),
    }
}

// ---- existing accounts when a measure takes effect ----

/// One pass of the special-measures job: claims measures in force that were not yet applied
/// to existing accounts (a lease, so with several instances on one database each measure is
/// worked by one of them at a time), records the action every tied account must take, with
/// its deadline and webhook event, and marks the measure applied. An action is recorded at
/// most once per (measure, account) — the store's unique index — so even a pass that lost
/// its lease and a second instance that took over record each account exactly once.
pub async fn measures_run_once(state: &AppState, now: i64, batch: u32) -> Result<Ran, String> {
    let claimed = state
        .store
        .claim_measure_sweeps(now, now + SWEEP_LEASE_MICROS, batch)
        .await
        .map_err(|e| e.to_string())?;
    if claimed.is_empty() {
        return Ok(Ran::Idle);
    }
    let mut recorded = 0u64;
    for row in claimed {
        recorded += apply_to_existing(state, &row, now)
            .await
            .map_err(|e| format!("measure {}: {e:?}", row.id))?;
        state
            .store
            .finish_measure_sweep(row.id, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Ran::Did(recorded))
}

async fn apply_to_existing(state: &AppState, row: &MeasureRow, now: i64) -> Result<u64, ApiError> {
    let measure = MeasureDoc::from_row(row)?.domain()?;
    let deadline = now.max(row.effective_at) + i64::from(measure.compliance_days) * DAY_MICROS;
    let purpose = format!("special measure {} in effect", row.id);
    // Which accounts to look at: every account for a jurisdiction, the accounts of customers
    // with a confirmed hit on the targeted entries for designated persons.
    let mut candidates: Vec<AccountRow> = Vec::new();
    let mut hits_by_customer: HashMap<Uuid, Vec<ReviewRow>> = HashMap::new();
    match &measure.target {
        MeasureTarget::Jurisdiction { .. } => {
            let mut after = None;
            loop {
                let page = state
                    .store
                    .list_accounts(
                        &AccountFilter::default(),
                        &PageRequest { after, limit: 500 },
                    )
                    .await?;
                after = page.last().map(|a| a.id);
                let done = page.len() < 500;
                candidates.extend(page.into_iter().filter(|a| a.status != "closed"));
                if done {
                    break;
                }
            }
        }
        MeasureTarget::DesignatedPersons { .. } => {
            let mut after = None;
            loop {
                let page = state
                    .store
                    .list_reviews(
                        &ReviewFilter {
                            status: Some("confirmed".into()),
                            customer_id: None,
                        },
                        &PageRequest { after, limit: 500 },
                    )
                    .await?;
                after = page.last().map(|r| r.id);
                let done = page.len() < 500;
                for r in page {
                    if sm::person_targeted(&measure.target, &r.list_id, &r.entry_id) {
                        hits_by_customer.entry(r.customer_id).or_default().push(r);
                    }
                }
                if done {
                    break;
                }
            }
            for customer_id in hits_by_customer.keys() {
                let accounts = state
                    .store
                    .list_accounts(
                        &AccountFilter {
                            customer_id: Some(*customer_id),
                            ..Default::default()
                        },
                        &PageRequest {
                            after: None,
                            limit: 500,
                        },
                    )
                    .await?;
                candidates.extend(accounts.into_iter().filter(|a| a.status != "closed"));
            }
        }
    }
    let mut countries: HashMap<Uuid, Vec<CountryEvidence>> = HashMap::new();
    let mut writes = Vec::new();
    let mut recorded = 0u64;
    for account in candidates {
        let Some(account_type) = AccountType::parse(&account.account_type) else {
            continue;
        };
        let Some(action) = measure.for_existing(account_type) else {
            continue;
        };
        let evidence = match &measure.target {
            MeasureTarget::Jurisdiction { .. } => {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    countries.entry(account.customer_id)
                {
                    let doc = open_customer(state, account.customer_id).await?;
                    slot.insert(country_evidence(&doc));
                }
                let c = countries
                    .get(&account.customer_id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                ties(&measure, c, &[])
            }
            MeasureTarget::DesignatedPersons { .. } => ties(
                &measure,
                &[],
                hits_by_customer
                    .get(&account.customer_id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            ),
        };
        if evidence.is_empty() {
            continue;
        }
        let audit = system_audit(
            "special_measure.apply",
            "account",
            account.id.to_string(),
            vec![
                format!("measure={}", row.id),
                format!("action={}", action.as_str()),
            ],
            purpose.clone(),
            now,
        );
        writes.push(action_write(
            &account,
            Some((row, &measure)),
            None,
            action,
            Some(deadline),
            &evidence,
            "measure_in_effect",
            audit,
            true,
        ));
        if writes.len() >= 200 {
            recorded += state
                .store
                .record_measure_actions(std::mem::take(&mut writes))
                .await?;
        }
    }
    if !writes.is_empty() {
        recorded += state.store.record_measure_actions(writes).await?;
    }
    // The job read customers' records to find the ties: one entry says which and why.
    if !countries.is_empty() {
        state
            .store
            .append_audit(vec![system_audit(
                "special_measure.read_records",
                "special_measure",
                row.id.to_string(),
                std::iter::once(format!("customers={}", countries.len()))
                    .chain(EVIDENCE_FIELDS.iter().map(|f| f.to_string()))
                    .collect(),
                purpose,
                now,
            )])
            .await?;
    }
    Ok(recorded)
}

// ---- a confirmed screening hit ----

/// The policy action of a confirmed hit: each open account of the customer gets the action
/// of every designated-persons measure in force that targets the entry; an account no such
/// measure reaches is restricted pending review (the configured default,
/// docs/design/0010-special-measures.md). Returns the actions (with events and audit
/// entries) to record in the decision's own transaction (`ReviewDecision::actions`), so a
/// confirmation never stands without its actions.
pub async fn confirmed_hit_actions(
    state: &AppState,
    review: &ReviewRow,
    audit_of: impl Fn(&AccountRow, &str) -> AuditDraft,
    now: i64,
) -> Result<Vec<MeasureActionWrite>, ApiError> {
    let mut measures = Vec::new();
    for row in state.store.measures_in_force(now).await? {
        let m = MeasureDoc::from_row(&row)?.domain()?;
        if sm::person_targeted(&m.target, &review.list_id, &review.entry_id) {
            measures.push((row, m));
        }
    }
    let accounts = state
        .store
        .list_accounts(
            &AccountFilter {
                customer_id: Some(review.customer_id),
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await?;
    let evidence = vec![hit_dto(review)];
    let mut writes = Vec::new();
    for account in accounts.iter().filter(|a| a.status != "closed") {
        let account_type = AccountType::parse(&account.account_type);
        let mut reached = false;
        for (row, m) in &measures {
            let Some(action) = account_type.and_then(|t| m.for_existing(t)) else {
                continue;
            };
            reached = true;
            let deadline = now + i64::from(m.compliance_days) * DAY_MICROS;
            writes.push(action_write(
                account,
                Some((row, m)),
                Some(review.id),
                action,
                Some(deadline),
                &evidence,
                "confirmed_hit",
                audit_of(account, action.as_str()),
                true,
            ));
        }
        if !reached {
            writes.push(action_write(
                account,
                None,
                Some(review.id),
                RequiredAction::Restrict,
                Some(now),
                &evidence,
                "confirmed_hit",
                audit_of(account, RequiredAction::Restrict.as_str()),
                true,
            ));
        }
    }
    Ok(writes)
}

// ---- a use of an account ----

/// A limit of a measure in force on an account, and whether the asked use keeps within it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitDto {
    pub measure_id: Uuid,
    pub legal_reference: String,
    /// `product_limit` or `capacity_limit`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_products: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vcpus: Option<u32>,
    /// Whether the asked use keeps within this limit.
    pub permitted: bool,
}

/// The product and capacity limits of the measures in force on an account (through their
/// `apply_conditions` actions), each checked against `usage`.
pub async fn account_limits(
    state: &AppState,
    account_id: Uuid,
    usage: sm::Use<'_>,
    now: i64,
) -> Result<Vec<LimitDto>, ApiError> {
    let actions = state
        .store
        .list_measure_actions(&MeasureActionFilter {
            measure_id: None,
            account_id: Some(account_id),
        })
        .await?;
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for a in actions {
        let Some(measure_id) = a.measure_id else {
            continue;
        };
        if a.action != RequiredAction::ApplyConditions.as_str() || seen.contains(&measure_id) {
            continue;
        }
        seen.push(measure_id);
        let Some(row) = state.store.get_measure(measure_id).await? else {
            continue;
        };
        if !in_force(&row, now) {
            continue;
        }
        let m = MeasureDoc::from_row(&row)?.domain()?;
        for c in &m.conditions {
            if matches!(
                c,
                sm::Condition::ProductLimit { .. } | sm::Condition::CapacityLimit { .. }
            ) {
                let d = condition_dto(c);
                out.push(LimitDto {
                    measure_id,
                    legal_reference: m.legal_reference.clone(),
                    kind: d.kind,
                    allowed_products: d.allowed_products,
                    max_vcpus: d.max_vcpus,
                    permitted: c.permits(usage),
                });
            }
        }
    }
    Ok(out)
}

/// A use the provider's control plane asks about (`GET /v1/accounts/{id}/decision?product=…&vcpus=…`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UseQuery {
    /// A product the account would use (default: the account's own product when `vcpus` is
    /// asked).
    pub product: Option<String>,
    /// vCPUs of capacity the account would use, at least 1.
    pub vcpus: Option<u32>,
}

/// The answer about one use: allowed or not, and which limits of which measures say so.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UseCheckDto {
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// The account may be used (not closed, not barred by a measure) and the use keeps
    /// within every product and capacity limit in force on it.
    pub allowed: bool,
    /// Every product and capacity limit in force on the account, each checked.
    pub limits: Vec<LimitDto>,
    pub reasons: Vec<String>,
}

/// A use asked about, parsed (before anything is read or written).
#[derive(Debug, Clone)]
pub struct AskedUse {
    pub product: String,
    pub vcpus: Option<u32>,
}

/// Parses the asked use: `None` when none was asked; the product defaults to the
/// account's own.
pub fn parse_use(q: &UseQuery, account: &AccountRow) -> Result<Option<AskedUse>, ApiError> {
    if q.product.is_none() && q.vcpus.is_none() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let product = match &q.product {
        None => account.product.clone(),
        Some(p) => match cip_core::parse::ShortText::parse(p) {
            Ok(t) => t.as_str().to_string(),
            Err(e) => {
                problems.push(FieldProblem {
                    field: "product".into(),
                    code: e.code.into(),
                    message: e.message,
                });
                String::new()
            }
        },
    };
    if q.vcpus == Some(0) {
        problems.push(FieldProblem {
            field: "vcpus".into(),
            code: "out_of_range".into(),
            message: "at least 1".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    Ok(Some(AskedUse {
        product,
        vcpus: q.vcpus,
    }))
}

/// Checks an asked use against the limits in force on the account. `may_use` is the
/// decision's answer without the use (a closed or barred account allows no use at all).
pub async fn check_use(
    state: &AppState,
    account_id: Uuid,
    asked: AskedUse,
    may_use: bool,
    now: i64,
) -> Result<UseCheckDto, ApiError> {
    let limits = account_limits(
        state,
        account_id,
        sm::Use {
            product: Some(&asked.product),
            vcpus: asked.vcpus,
        },
        now,
    )
    .await?;
    let mut reasons = Vec::new();
    if !may_use {
        reasons.push("the account may not be used at all".to_string());
    }
    for l in limits.iter().filter(|l| !l.permitted) {
        reasons.push(format!("outside the limit: {}", limit_text(l)));
    }
    let allowed = may_use && limits.iter().all(|l| l.permitted);
    if allowed {
        reasons.push(if limits.is_empty() {
            "no product or capacity limit applies to this account".to_string()
        } else {
            "within every product and capacity limit in force".to_string()
        });
    }
    Ok(UseCheckDto {
        product: asked.product,
        vcpus: asked.vcpus,
        allowed,
        limits,
        reasons,
    })
}

/// The refusal of a use outside a measure's limits: 422 `CIP-MEASURE-0002`, every broken
/// limit cited with its measure (at `field`).
pub fn limit_refusal(broken: &[LimitDto], field: &str, what: &str) -> ApiError {
    let first = broken.first();
    ApiError::Coded {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "CIP-MEASURE-0002",
        message: format!(
            "{what} is outside the limits of special measure {} ({}). Nothing was stored.",
            first.map(|l| l.measure_id.to_string()).unwrap_or_default(),
            first
                .map(|l| l.legal_reference.as_str())
                .unwrap_or_default()
        ),
        details: broken
            .iter()
            .map(|l| FieldProblem {
                field: field.into(),
                code: format!("outside_{}", l.kind),
                message: limit_text(l),
            })
            .collect(),
    }
}

/// `special measure <id> (<reference>) allows only …`.
pub fn limit_text(l: &LimitDto) -> String {
    let what = match (&l.allowed_products, l.max_vcpus) {
        (Some(p), _) => format!("allows only the products {}", p.join(", ")),
        (None, Some(n)) => format!("allows at most {n} vCPUs"),
        _ => "limits this use".into(),
    };
    format!(
        "special measure {} ({}) {what}",
        l.measure_id, l.legal_reference
    )
}

// ---- a change of the customer's record ----

/// What a change of a customer's record does to the actions of measures in force on its
/// accounts: to record in the same transaction as the record
/// (`MeasureStore::update_customer_with_actions`).
#[derive(Debug, Default)]
pub struct Recheck {
    /// Accounts the new record ties to a measure that reaches existing accounts and that
    /// carry no action of it yet: the measure's action, with deadline, event and evidence.
    pub actions: Vec<MeasureActionWrite>,
    /// Actions whose tie changed: marked no longer tied (the record stopped naming the
    /// target), or tied again.
    pub ties: Vec<TieChange>,
}

impl Recheck {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.ties.is_empty()
    }
}

/// Re-checks a customer's accounts against the measures in force when its record changes
/// to `doc` (docs/design/0010-special-measures.md, "A change of the customer's record"):
/// - an account the new record ties to a measure that reaches existing accounts and that
///   has no action of that measure gets it (cause `record_changed`, deadline now + the
///   measure's compliance days, an `account.special_measure` event) — once: the store's
///   unique index keeps an action single per (measure, account);
/// - an action of a measure in force whose tie is gone is **not removed**: it is marked
///   `untied_at` (shown as `no_longer_tied_since`) and keeps applying until an analyst
///   lifts it, because a record edit alone must not undo a legal measure's action;
/// - a marked action whose tie returns is unmarked.
///
/// The new record is in hand (plaintext, just parsed), so nothing stored is opened.
pub async fn recheck_customer(
    state: &AppState,
    customer_id: Uuid,
    doc: &CustomerDoc,
    audit_of: impl Fn(&AccountRow, &str, Vec<String>) -> AuditDraft,
    now: i64,
) -> Result<Recheck, ApiError> {
    let mut out = Recheck::default();
    let rows = state.store.measures_in_force(now).await?;
    if rows.is_empty() {
        return Ok(out);
    }
    let accounts: Vec<AccountRow> = state
        .store
        .list_accounts(
            &AccountFilter {
                customer_id: Some(customer_id),
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await?
        .into_iter()
        .filter(|a| a.status != "closed")
        .collect();
    if accounts.is_empty() {
        return Ok(out);
    }
    let countries = country_evidence(doc);
    let confirmed = confirmed_hits(state, customer_id).await?;
    let mut measures = Vec::with_capacity(rows.len());
    for row in rows {
        let m = MeasureDoc::from_row(&row)?.domain()?;
        measures.push((row, m));
    }
    for account in &accounts {
        let recorded = state
            .store
            .list_measure_actions(&MeasureActionFilter {
                measure_id: None,
                account_id: Some(account.id),
            })
            .await?;
        let account_type = AccountType::parse(&account.account_type);
        for (row, m) in &measures {
            let evidence = ties(m, &countries, &confirmed);
            let existing = recorded.iter().find(|a| a.measure_id == Some(row.id));
            match (existing, evidence.is_empty()) {
                (None, false) => {
                    let Some(action) = account_type.and_then(|t| m.for_existing(t)) else {
                        continue;
                    };
                    let deadline = now + i64::from(m.compliance_days) * DAY_MICROS;
                    out.actions.push(action_write(
                        account,
                        Some((row, m)),
                        None,
                        action,
                        Some(deadline),
                        &evidence,
                        "record_changed",
                        audit_of(
                            account,
                            "special_measure.apply",
                            vec![
                                format!("measure={}", row.id),
                                format!("action={}", action.as_str()),
                            ],
                        ),
                        true,
                    ));
                }
                (Some(a), true) if a.untied_at.is_none() => out.ties.push(TieChange {
                    action_id: a.id,
                    untied_at: Some(now),
                    audit: audit_of(
                        account,
                        "special_measure.untied",
                        vec![format!("measure={}", row.id), format!("action_id={}", a.id)],
                    ),
                }),
                (Some(a), false) if a.untied_at.is_some() => out.ties.push(TieChange {
                    action_id: a.id,
                    untied_at: None,
                    audit: audit_of(
                        account,
                        "special_measure.retied",
                        vec![format!("measure={}", row.id), format!("action_id={}", a.id)],
                    ),
                }),
                _ => {}
            }
        }
    }
    Ok(out)
}

// ---- what an account carries ----

/// A special measure (or the policy action of a confirmed hit) on an account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountMeasureDto {
    /// The measure; absent for the default action of a confirmed hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_reference: Option<String>,
    /// The confirmed review item behind the action, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<Uuid>,
    /// `apply_conditions`, `restrict` or `close`.
    pub action: String,
    pub conditions: Vec<ConditionDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// `opening`, `measure_in_effect`, `confirmed_hit` or `record_changed`.
    pub cause: String,
    pub evidence: Vec<EvidenceDto>,
    /// Whether the measure applies now (a measure that expired or was revoked no longer
    /// does; a confirmed hit's default action stays until reviewed).
    pub in_force: bool,
    /// Since when the customer's record no longer ties the account to the measure's target
    /// (it changed after the action was recorded). The action still applies until an
    /// analyst lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_longer_tied_since: Option<String>,
    pub recorded_at: String,
}

/// Every action recorded on an account, with whether it applies at `now`.
pub async fn account_measures(
    state: &AppState,
    account_id: Uuid,
    now: i64,
) -> Result<Vec<AccountMeasureDto>, ApiError> {
    let actions = state
        .store
        .list_measure_actions(&MeasureActionFilter {
            measure_id: None,
            account_id: Some(account_id),
        })
        .await?;
    let mut cache: HashMap<Uuid, Option<(MeasureRow, SpecialMeasure)>> = HashMap::new();
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        let measure = match a.measure_id {
            None => None,
            Some(id) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(id) {
                    let loaded = match state.store.get_measure(id).await? {
                        Some(row) => {
                            let m = MeasureDoc::from_row(&row)?.domain()?;
                            Some((row, m))
                        }
                        None => None,
                    };
                    slot.insert(loaded);
                }
                cache.get(&id).cloned().flatten()
            }
        };
        out.push(action_dto(&a, measure.as_ref(), now));
    }
    Ok(out)
}

pub fn action_dto(
    a: &MeasureActionRow,
    measure: Option<&(MeasureRow, SpecialMeasure)>,
    now: i64,
) -> AccountMeasureDto {
    AccountMeasureDto {
        measure_id: a.measure_id,
        legal_reference: measure.map(|(_, m)| m.legal_reference.clone()),
        review_id: a.review_id,
        action: a.action.clone(),
        conditions: match (a.action.as_str(), measure) {
            ("apply_conditions", Some((_, m))) => m.conditions.iter().map(condition_dto).collect(),
            _ => Vec::new(),
        },
        deadline: a.deadline.map(to_rfc3339),
        cause: a.cause.clone(),
        evidence: serde_json::from_slice(&a.evidence).unwrap_or_default(),
        in_force: match measure {
            Some((row, _)) => in_force(row, now),
            None => a.measure_id.is_none(),
        },
        no_longer_tied_since: a.untied_at.map(to_rfc3339),
        recorded_at: to_rfc3339(a.at),
    }
}
