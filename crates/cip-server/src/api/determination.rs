use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use cip_core::determination::{self, Determination, Evidence, EvidenceKind};
use cip_core::model::Permission;
use cip_core::parse::{CountryCode, Phone};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::purpose;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::records::dto::{CustomerDoc, IdentityDto};
use crate::records::seal;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceDto {
    /// declared_citizenship, us_residence_permit, place_of_organization, document_nationality,
    /// address_country, phone_country, payment_country, ip_geolocation
    pub kind: &'static str,
    pub country: String,
    /// JSON pointer of the fact in the customer record.
    pub source: String,
    pub points_to_us: bool,
    /// For ip_geolocation: the address located (the first the account used in that country).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonDetermination {
    /// us_person, foreign_person or undetermined
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub conflicts: Vec<String>,
    pub evidence: Vec<EvidenceDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerDetermination {
    pub beneficial_owner_id: Uuid,
    #[serde(flatten)]
    pub determination: PersonDetermination,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeterminationDto {
    pub customer_id: Uuid,
    pub record_version: i64,
    pub policy: &'static str,
    pub requires_verification: bool,
    pub reasons: Vec<String>,
    pub customer: PersonDetermination,
    pub beneficial_owners: Vec<OwnerDetermination>,
    /// Where the countries of the customer's accesses come from; without a database
    /// (`available: false`) no ip_geolocation evidence can be given.
    pub geolocation: crate::geoip::GeoSource,
}

const POLICY: &str = "default (proposed rule): possibly foreign until citizenship, permanent residence, place of organisation or location establishes U.S. status; any beneficial owner not established as a U.S. person requires verification";

fn dto(d: Determination) -> PersonDetermination {
    PersonDetermination {
        status: d.status.as_str(),
        reasons: d.reasons,
        conflicts: d.conflicts,
        evidence: d
            .evidence
            .into_iter()
            .map(|e| EvidenceDto {
                kind: e.kind.as_str(),
                points_to_us: e.points_to_us(),
                country: e.country.as_str().to_string(),
                source: e.source,
                ip: e.ip.map(|ip| ip.to_string()),
            })
            .collect(),
    }
}

fn push(out: &mut Vec<Evidence>, kind: EvidenceKind, country: &str, source: String) {
    if let Ok(c) = CountryCode::parse(country) {
        out.push(Evidence::new(kind, c, source));
    }
}

fn identity_evidence(out: &mut Vec<Evidence>, ident: &IdentityDto, base: &str) {
    for (i, c) in ident.citizenships.iter().enumerate() {
        push(
            out,
            EvidenceKind::DeclaredCitizenship,
            c,
            format!("{base}/citizenships/{i}"),
        );
    }
    for (i, n) in ident.national_ids.iter().enumerate() {
        let source = format!("{base}/national_ids/{i}");
        match n.id_type.as_str() {
            // A U.S. residence permit (green card) declares lawful permanent residence.
            "residence_permit" => push(
                out,
                EvidenceKind::UsResidencePermit,
                &n.issuing_country,
                source,
            ),
            // A passport's issuing state is the holder's nationality, as declared.
            "passport" => push(
                out,
                EvidenceKind::DeclaredCitizenship,
                &n.issuing_country,
                source,
            ),
            _ => {}
        }
    }
    for (i, a) in ident.addresses.iter().enumerate() {
        push(
            out,
            EvidenceKind::AddressCountry,
            &a.country,
            format!("{base}/addresses/{i}/country"),
        );
    }
    for (i, p) in ident.phones.iter().enumerate() {
        if let Some(c) = Phone::parse(p).ok().and_then(|p| p.country()) {
            out.push(Evidence::new(
                EvidenceKind::PhoneCountry,
                c,
                format!("{base}/phones/{i}"),
            ));
        }
    }
}

/// The evidence of a stored customer document and of each beneficial owner.
pub fn evidence_of(doc: &CustomerDoc) -> (Vec<Evidence>, Vec<(Uuid, Vec<Evidence>)>) {
    let mut customer = Vec::new();
    identity_evidence(&mut customer, &doc.identity, "/identity");
    if let Some(e) = &doc.entity
        && let Some(p) = &e.place_of_organization
    {
        push(
            &mut customer,
            EvidenceKind::PlaceOfOrganization,
            p,
            "/entity/place_of_organization".into(),
        );
    }
    for (i, pm) in doc.payment_methods.iter().enumerate() {
        if let Some(c) = pm.card.as_ref().and_then(|c| c.issuing_country.as_ref()) {
            push(
                &mut customer,
                EvidenceKind::PaymentCountry,
                c,
                format!("/payment_methods/{i}/card/issuing_country"),
            );
        }
        if let Some(c) = pm.bank_account.as_ref().and_then(|b| b.country.as_ref()) {
            push(
                &mut customer,
                EvidenceKind::PaymentCountry,
                c,
                format!("/payment_methods/{i}/bank_account/country"),
            );
        }
    }
    let owners = doc
        .beneficial_owners
        .iter()
        .enumerate()
        .map(|(i, bo)| {
            let mut ev = Vec::new();
            identity_evidence(
                &mut ev,
                &bo.identity,
                &format!("/beneficial_owners/{i}/identity"),
            );
            (bo.id, ev)
        })
        .collect();
    (customer, owners)
}

/// Where each of the customer's accounts was accessed from: one `ip_geolocation` fact per
/// account and country (known countries only), the address being the first the account used
/// there. Not audited: callers that show the facts audit the read (`access_evidence`); the
/// determination history keeps only their codes.
pub(crate) async fn access_facts(
    state: &AppState,
    customer: Uuid,
) -> Result<Vec<(Uuid, Vec<Evidence>)>, ApiError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_accounts(
                &cip_store::AccountFilter {
                    customer_id: Some(customer),
                    status: None,
                    account_type: None,
                },
                &cip_store::PageRequest { after, limit: 200 },
            )
            .await?;
        for account in &page {
            let ips = state.access.account_ips(account.id, 0, i64::MAX).await?;
            if ips.is_empty() {
                continue;
            }
            let by = crate::access::countries(state.geoip.as_ref(), &ips);
            let facts = by
                .into_iter()
                .filter_map(|c| {
                    c.country.map(|country| {
                        Evidence::located(
                            country,
                            cip_access::ip_from_key(c.first_ip),
                            format!("/accounts/{}/countries/{}", account.id, country.as_str()),
                        )
                    })
                })
                .collect();
            out.push((account.id, facts));
        }
        match page.last() {
            Some(last) if page.len() == 200 => after = Some(last.id),
            _ => break,
        }
    }
    Ok(out)
}

/// [`access_facts`] for a reader: each account's countries read is audited like
/// `GET /v1/accounts/{id}/countries`.
pub(crate) async fn access_evidence(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    customer: Uuid,
    purpose: &Option<String>,
) -> Result<Vec<Evidence>, ApiError> {
    let facts = access_facts(state, customer).await?;
    let drafts: Vec<_> = facts
        .iter()
        .map(|(account, by)| {
            super::audit_draft(
                principal,
                headers,
                "access_countries.read",
                "account",
                Some(account.to_string()),
                vec!["/countries".into(), format!("count={}", by.len())],
                purpose.clone(),
            )
        })
        .collect();
    if !drafts.is_empty() {
        state.store.append_audit(drafts).await?;
    }
    Ok(facts.into_iter().flat_map(|(_, f)| f).collect())
}

/// Whether the customer and each beneficial owner is a U.S. or a foreign person, with the
/// evidence used and any conflicting facts, and whether the account requires verification.
/// Computed from the current record and the access record: the countries the customer's
/// accounts were accessed from (`geoip_db`) are `ip_geolocation` evidence, an access from
/// the U.S. establishing U.S. status ("any person located in the United States"), foreign
/// documents against it surfaced as conflicts. The reads are audited like any read of the
/// record.
#[utoipa::path(get, path = "/v1/customers/{id}/determination", tag = "customers",
    params(("id" = Uuid, Path), ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = DeterminationDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_determination(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<DeterminationDto>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let (row, value) = super::customers::read_audited(
        &state,
        &principal,
        &headers,
        id,
        &seal::Projection::all(),
        "customer.determination",
        purpose.clone(),
    )
    .await?;
    let doc: CustomerDoc = serde_json::from_value(value)
        .map_err(|e| ApiError::Internal(format!("stored document of {id}: {e}")))?;
    let (mut customer, owners) = evidence_of(&doc);
    customer.extend(access_evidence(&state, &principal, &headers, id, &purpose).await?);
    let d = determination::determine_customer(customer, owners);
    Ok(Json(DeterminationDto {
        customer_id: id,
        record_version: row.version,
        policy: POLICY,
        requires_verification: d.requires_verification,
        reasons: d.reasons,
        customer: dto(d.customer),
        beneficial_owners: d
            .beneficial_owners
            .into_iter()
            .map(|(id, d)| OwnerDetermination {
                beneficial_owner_id: id,
                determination: dto(d),
            })
            .collect(),
        geolocation: state.geoip.source(),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Cursor: the `next_cursor` of the previous page (a sequence number).
    pub after: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryDto {
    /// 1, 2, … per customer.
    pub seq: i64,
    pub at: String,
    /// customer_created, customer_updated (a change of the record: addresses, owners, …) or
    /// access_country (an account was accessed from a country not seen before)
    pub cause: String,
    /// The record version it was computed from.
    pub record_version: i64,
    /// For access_country: the account whose accesses were looked at.
    pub account_id: Option<Uuid>,
    /// The customer's status before (none for the first entry).
    pub previous_status: Option<String>,
    pub status: String,
    /// The determination as codes: statuses and the (kind, country) of the evidence.
    pub determination: crate::history::Summary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntryDto>,
    pub next_cursor: Option<i64>,
}

/// How the customer's determination changed over time, oldest first: one entry per change
/// (a record write that changed it, or an access from a new country), with its cause and
/// the statuses and evidence codes. Audited like a read of the record (admin, analyst,
/// auditor, integration).
#[utoipa::path(get, path = "/v1/customers/{id}/determination/history", tag = "customers",
    params(("id" = Uuid, Path), HistoryQuery, ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_determination_history(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    axum::extract::Query(q): axum::extract::Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let limit = super::page_limit(q.limit)?;
    state
        .store
        .get_customer(id)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let rows = state
        .store
        .list_determinations(id, q.after.unwrap_or(0), limit)
        .await?;
    let next_cursor = super::next_cursor(&rows, limit, |r| r.seq);
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(HistoryEntryDto {
                determination: serde_json::from_slice(&r.summary).map_err(|e| {
                    ApiError::Internal(format!("determination history of {id}: {e}"))
                })?,
                seq: r.seq,
                at: crate::time::to_rfc3339(r.at),
                cause: r.cause,
                record_version: r.record_version,
                account_id: r.account_id,
                previous_status: r.previous_status,
                status: r.status,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    state
        .store
        .append_audit(vec![super::audit_draft(
            &principal,
            &headers,
            "determination_history.read",
            "customer",
            Some(id.to_string()),
            vec![
                "/determination/history".into(),
                format!("count={}", items.len()),
            ],
            purpose,
        )])
        .await?;
    Ok(Json(HistoryPage { items, next_cursor }))
}
