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

/// Whether the customer and each beneficial owner is a U.S. or a foreign person, with the
/// evidence used and any conflicting facts, and whether the account requires verification.
/// Computed from the current record (IP geolocation and verified documents join the evidence
/// as those records are kept). The read is audited like any read of the record.
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
        purpose,
    )
    .await?;
    let doc: CustomerDoc = serde_json::from_value(value)
        .map_err(|e| ApiError::Internal(format!("stored document of {id}: {e}")))?;
    let (customer, owners) = evidence_of(&doc);
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
    }))
}
