use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use cip_core::model::Permission;
use cip_core::mrz::{self, Mrz, Sex};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;
use uuid::Uuid;

use super::purpose;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::records::dto::{CustomerDoc, IdentityDto};
use crate::records::seal;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MrzCheckRequest {
    /// The machine-readable zone, lines separated by newlines.
    pub mrz: String,
    /// Compare the document with this customer's record.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// With `customer_id`: compare with this beneficial owner instead of the customer.
    #[serde(default)]
    pub beneficial_owner_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MrzFields {
    /// TD1, TD2, TD3, MRV-A or MRV-B
    pub format: &'static str,
    pub document_code: String,
    pub issuing_state: String,
    pub issuing_country: Option<String>,
    pub surname: String,
    pub given_names: String,
    pub document_number: String,
    pub nationality: String,
    pub nationality_country: Option<String>,
    pub birth_date: Option<String>,
    /// F, M or X
    pub sex: &'static str,
    pub expiry_date: String,
    pub optional_data: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    /// match, mismatch or missing (the record has no such field)
    pub name: &'static str,
    pub birth_date: &'static str,
    pub nationality: &'static str,
    /// The record's names compared, after transliteration to ASCII.
    pub detail: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MrzCheckResult {
    /// Every check digit, date and code is valid.
    pub valid: bool,
    pub expired: bool,
    pub fields: MrzFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

/// Folds a name for comparison: NFKD, marks stripped, transliterated to ASCII, uppercase,
/// letters only, as sorted tokens (word order differs between documents and records).
fn name_tokens(s: &str) -> Vec<String> {
    let ascii = any_ascii::any_ascii(
        &s.nfkd()
            .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
            .collect::<String>(),
    );
    let mut tokens: Vec<String> = ascii
        .to_ascii_uppercase()
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    tokens.sort();
    tokens
}

pub(crate) fn compare(m: &Mrz, ident: &IdentityDto) -> Comparison {
    let doc_tokens = name_tokens(&format!(
        "{} {}",
        m.primary_identifier, m.secondary_identifier
    ));
    let mut detail = Vec::new();
    // A record name matches when its tokens equal the document's, or the document's (which
    // may be truncated to fit the zone) start each of the record's tokens.
    let name = if ident.names.is_empty() {
        "missing"
    } else if ident.names.iter().any(|n| {
        let rec = name_tokens(&n.full);
        detail.push(format!("record name folds to {}", rec.join(" ")));
        rec == doc_tokens
            || (rec.len() == doc_tokens.len()
                && rec
                    .iter()
                    .zip(&doc_tokens)
                    .all(|(r, d)| r.starts_with(d.as_str()) || d.starts_with(r.as_str())))
    }) {
        "match"
    } else {
        "mismatch"
    };
    let birth_date = match (&ident.birth_date, m.birth_date) {
        (None, _) | (_, None) => "missing",
        (Some(r), Some(d)) if *r == d.to_string() => "match",
        _ => "mismatch",
    };
    let nationality = match m.nationality.country {
        None => "missing",
        Some(c) if ident.citizenships.iter().any(|x| x == c.as_str()) => "match",
        Some(_) if ident.citizenships.is_empty() => "missing",
        Some(_) => "mismatch",
    };
    Comparison {
        name,
        birth_date,
        nationality,
        detail,
    }
}

/// Check a travel document's machine-readable zone (ICAO 9303 TD1, TD2, TD3, MRV-A, MRV-B):
/// every check digit, dates, sex, state codes, expiry; optionally compared with a customer's
/// or beneficial owner's record (transliteration-aware names, birth date, nationality).
/// Nothing is stored: recording documentary evidence comes with the verification workflow.
#[utoipa::path(post, path = "/v1/documents/mrz-check", tag = "verification", request_body = MrzCheckRequest,
    responses((status = 200, body = MrzCheckResult), (status = 422, description = "The zone is invalid; details say where", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mrz_check(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<MrzCheckRequest>,
) -> Result<Json<MrzCheckResult>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let q = body.value;
    if q.mrz.len() > 400 {
        return Err(ApiError::Validation(vec![FieldProblem {
            field: "/mrz".into(),
            code: "too_long".into(),
            message: "a machine-readable zone has at most 3 lines of 44 characters".into(),
        }]));
    }
    let m = mrz::parse(&q.mrz).map_err(|e| {
        ApiError::Validation(vec![FieldProblem {
            field: "/mrz".into(),
            code: e.code().into(),
            message: e.to_string(),
        }])
    })?;
    let today = crate::time::today_utc();
    let comparison = match q.customer_id {
        None => {
            if q.beneficial_owner_id.is_some() {
                return Err(ApiError::Validation(vec![FieldProblem {
                    field: "/beneficial_owner_id".into(),
                    code: "requires".into(),
                    message: "give customer_id with beneficial_owner_id".into(),
                }]));
            }
            None
        }
        Some(id) => {
            let projection = seal::Projection {
                sections: Some(vec!["identity".into(), "beneficial_owners".into()]),
            };
            let (_, value) = super::customers::read_audited(
                &state,
                &principal,
                &headers,
                id,
                &projection,
                "customer.document_check",
                purpose(&headers)?,
            )
            .await?;
            let doc: CustomerDoc =
                serde_json::from_value(value).map_err(|e| ApiError::Internal(e.to_string()))?;
            let ident = match q.beneficial_owner_id {
                None => doc.identity,
                Some(bo) => doc
                    .beneficial_owners
                    .into_iter()
                    .find(|b| b.id == bo)
                    .map(|b| b.identity)
                    .ok_or(ApiError::NotFound("beneficial owner"))?,
            };
            Some(compare(&m, &ident))
        }
    };
    Ok(Json(MrzCheckResult {
        valid: true,
        expired: m.is_expired(today),
        comparison,
        fields: fields_of(&m),
    }))
}

/// The zone's fields as the API shows them.
pub(crate) fn fields_of(m: &Mrz) -> MrzFields {
    MrzFields {
        format: m.format.as_str(),
        document_code: m.document_code.clone(),
        issuing_state: m.issuing_state.code.to_string(),
        issuing_country: m.issuing_state.country.map(|c| c.as_str().to_string()),
        surname: m.primary_identifier.clone(),
        given_names: m.secondary_identifier.clone(),
        document_number: m.document_number.clone(),
        nationality: m.nationality.code.to_string(),
        nationality_country: m.nationality.country.map(|c| c.as_str().to_string()),
        birth_date: m.birth_date.map(|d| d.to_string()),
        sex: match m.sex {
            Sex::Female => "F",
            Sex::Male => "M",
            Sex::Unspecified => "X",
        },
        expiry_date: m.expiry_date.to_string(),
        optional_data: m.optional_data.clone(),
    }
}
