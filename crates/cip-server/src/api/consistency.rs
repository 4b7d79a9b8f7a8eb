//! Consistency checks: a non-documentary verification method that compares the collected data
//! with itself and records the result as evidence (`consistency_check`). See
//! docs/design/0015-notices-history-consistency.md.
//!
//! Two comparisons, each only when both sides have data:
//! - **where the person lives**: the countries of the phones (E.164), of the payment
//!   instruments (card issuing country, bank account country) and of the accesses (IP
//!   geolocation of the accounts) must each include a country of the person's addresses;
//! - **who the person is**: the nationality and issuing country of each passing identity
//!   document must be among the declared citizenships and passport issuing countries.
//!
//! A traveller or an expatriate is not a mismatch: a category matches when *any* of its
//! countries is an address country (accesses from abroad are fine as long as one access came
//! from home), and documents are compared with declared nationality, not with residence.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use cip_core::model::Permission;
use cip_core::parse::Phone;
use cip_core::verification::{Method, Outcome};
use cip_store::EvidenceWrite;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::verification::RecordedEvidence;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::records::dto::{CustomerDoc, IdentityDto};
use crate::records::seal;
use crate::state::AppState;

type Countries = BTreeSet<String>;

/// The countries found in the collected data, by where they come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub address: Countries,
    pub phone: Countries,
    pub payment: Countries,
    pub access: Countries,
    /// Declared citizenships and passport issuing countries of the record.
    pub declared_nationality: Countries,
    /// Nationality and issuing country of passing identity documents.
    pub document: Countries,
}

fn list(c: &Countries) -> String {
    c.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Compares; `None` when nothing can be compared (no pair of categories has data).
pub fn compare(c: &Collected) -> Option<(Outcome, Vec<String>)> {
    let mut compared = 0;
    let mut reasons = Vec::new();
    if !c.address.is_empty() {
        for (name, set) in [
            ("phone", &c.phone),
            ("payment instrument", &c.payment),
            ("access (IP geolocation)", &c.access),
        ] {
            if set.is_empty() {
                continue;
            }
            compared += 1;
            if set.is_disjoint(&c.address) {
                reasons.push(format!(
                    "{name} countries ({}) include no address country ({})",
                    list(set),
                    list(&c.address)
                ));
            }
        }
    }
    if !c.document.is_empty() && !c.declared_nationality.is_empty() {
        compared += 1;
        if !c.document.is_subset(&c.declared_nationality) {
            let other: Countries = c
                .document
                .difference(&c.declared_nationality)
                .cloned()
                .collect();
            reasons.push(format!(
                "identity document countries ({}) are not among the declared nationalities ({})",
                list(&other),
                list(&c.declared_nationality)
            ));
        }
    }
    if compared == 0 {
        return None;
    }
    let outcome = if reasons.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    Some((outcome, reasons))
}

fn identity_countries(c: &mut Collected, ident: &IdentityDto) {
    c.address
        .extend(ident.addresses.iter().map(|a| a.country.clone()));
    c.phone.extend(
        ident
            .phones
            .iter()
            .filter_map(|p| Phone::parse(p).ok().and_then(|p| p.country()))
            .map(|c| c.as_str().to_string()),
    );
    c.declared_nationality
        .extend(ident.citizenships.iter().cloned());
    c.declared_nationality.extend(
        ident
            .national_ids
            .iter()
            .filter(|n| n.id_type == "passport")
            .map(|n| n.issuing_country.clone()),
    );
}

/// The countries of a customer's record (or of one beneficial owner's identity: owners have
/// no payment instruments or accounts of their own).
pub fn collected_of(doc: &CustomerDoc, owner: Option<Uuid>) -> Option<Collected> {
    let mut c = Collected::default();
    match owner {
        Some(id) => {
            let bo = doc.beneficial_owners.iter().find(|b| b.id == id)?;
            identity_countries(&mut c, &bo.identity);
        }
        None => {
            identity_countries(&mut c, &doc.identity);
            if let Some(p) = doc
                .entity
                .as_ref()
                .and_then(|e| e.place_of_organization.clone())
            {
                c.declared_nationality.insert(p);
            }
            for pm in &doc.payment_methods {
                if let Some(x) = pm.card.as_ref().and_then(|c| c.issuing_country.clone()) {
                    c.payment.insert(x);
                }
                if let Some(x) = pm.bank_account.as_ref().and_then(|b| b.country.clone()) {
                    c.payment.insert(x);
                }
            }
        }
    }
    Some(c)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyIn {
    /// Check a beneficial owner's data instead of the customer's.
    #[serde(default)]
    pub beneficial_owner_id: Option<Uuid>,
}

/// Compares the collected data (address, phone, payment instrument, identity document and
/// access countries) and records the result as `consistency_check` evidence: `pass`, or
/// `fail` with each mismatch as a reason. When nothing can be compared (e.g. no address, or
/// only an address) the answer is 422 `CIP-VERIFY-0010` and nothing is recorded. The record,
/// the documents' details and the accounts' countries are read (audited). (admin, analyst,
/// integration)
#[utoipa::path(post, path = "/v1/customers/{id}/verification/consistency", tag = "verification",
    request_body = ConsistencyIn, params(("id" = Uuid, Path)),
    responses((status = 201, body = RecordedEvidence), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_consistency(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<ConsistencyIn>,
) -> Result<(StatusCode, Json<RecordedEvidence>), ApiError> {
    principal.require(Permission::RecordVerification)?;
    let owner = body.value.beneficial_owner_id;
    let purpose = super::purpose(&headers)?;
    let (_, value) = super::customers::read_audited(
        &state,
        &principal,
        &headers,
        id,
        &seal::Projection::all(),
        "customer.consistency_check",
        purpose.clone(),
    )
    .await?;
    let doc: CustomerDoc =
        serde_json::from_value(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut collected = collected_of(&doc, owner).ok_or_else(|| {
        ApiError::Validation(vec![crate::error::FieldProblem {
            field: "/beneficial_owner_id".into(),
            code: "not_found".into(),
            message: "no such beneficial owner of this customer".into(),
        }])
    })?;
    // Passing identity documents of this person: their details are sealed, opened here.
    let keyring = state.keyring();
    let mut documents = 0;
    for e in state.store.list_evidence(id).await? {
        if e.method != Method::Document.as_str()
            || e.result != "pass"
            || e.beneficial_owner_id != owner
        {
            continue;
        }
        let plain = keyring
            .open(
                crate::verification::evidence_aad(e.id).as_bytes(),
                &e.details,
            )
            .map_err(|err| ApiError::Internal(format!("opening evidence {}: {err}", e.id)))?;
        let details: Value =
            serde_json::from_slice(&plain).map_err(|err| ApiError::Internal(err.to_string()))?;
        for key in ["nationality_country", "issuing_country"] {
            if let Some(c) = details["document"][key].as_str() {
                collected.document.insert(c.to_string());
            }
        }
        documents += 1;
    }
    if documents > 0 {
        state
            .store
            .append_audit(vec![super::audit_draft(
                &principal,
                &headers,
                "evidence.read",
                "customer",
                Some(id.to_string()),
                vec!["/evidence/document".into(), format!("count={documents}")],
                purpose.clone(),
            )])
            .await?;
    }
    if owner.is_none() {
        let access =
            super::determination::access_evidence(&state, &principal, &headers, id, &purpose)
                .await?;
        collected
            .access
            .extend(access.iter().map(|e| e.country.as_str().to_string()));
    }
    let Some((outcome, reasons)) = compare(&collected) else {
        return Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "CIP-VERIFY-0010",
            message: "nothing to compare: a consistency check needs an address country and a phone, payment instrument or access country, or a passing identity document and a declared nationality".into(),
            details: vec![],
        });
    };
    let details = json!({"compared": collected, "reasons": reasons});
    let row = crate::verification::evidence_row(
        &keyring,
        id,
        owner,
        Method::ConsistencyCheck,
        outcome,
        &principal.key_id,
        None,
        &details,
    )
    .map_err(ApiError::Internal)?;
    let audit = super::audit_draft(
        &principal,
        &headers,
        "evidence.create",
        "customer",
        Some(id.to_string()),
        vec![format!("/evidence/{}", Method::ConsistencyCheck.as_str())],
        None,
    );
    let write = EvidenceWrite {
        row,
        file: None,
        completes_request: None,
        audit,
    };
    super::verification::record(&state, &headers, write, reasons).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> Countries {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[track_caller]
    fn check(c: Collected, expect: Option<(Outcome, usize)>) {
        let got = compare(&c).map(|(o, r)| (o, r.len()));
        assert_eq!(got, expect, "{c:?}");
    }

    #[test]
    fn compares_what_can_be_compared() {
        let home = Collected {
            address: set(&["DE"]),
            ..Default::default()
        };
        check(home.clone(), None);
        check(
            Collected {
                phone: set(&["DE"]),
                payment: set(&["DE", "FR"]),
                access: set(&["US", "DE"]),
                ..home.clone()
            },
            Some((Outcome::Pass, 0)),
        );
        check(
            Collected {
                phone: set(&["FR"]),
                access: set(&["US"]),
                ..home.clone()
            },
            Some((Outcome::Fail, 2)),
        );
        // An expatriate: documents are compared with nationality, not residence.
        check(
            Collected {
                address: set(&["US"]),
                phone: set(&["US"]),
                declared_nationality: set(&["DE"]),
                document: set(&["DE"]),
                ..Default::default()
            },
            Some((Outcome::Pass, 0)),
        );
        check(
            Collected {
                declared_nationality: set(&["DE"]),
                document: set(&["DE", "RU"]),
                ..Default::default()
            },
            Some((Outcome::Fail, 1)),
        );
        // Without an address nothing of the residence kind is compared.
        check(
            Collected {
                phone: set(&["FR"]),
                payment: set(&["DE"]),
                ..Default::default()
            },
            None,
        );
    }
}
