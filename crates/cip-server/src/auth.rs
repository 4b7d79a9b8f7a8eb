//! API keys: `cip_<id>_<secret>` bearer tokens. The id finds the key; the secret's SHA-256 is
//! what is stored (a 256-bit random secret needs no slow hash). Every `/v1` route extracts a
//! [`Principal`] and checks its permission before doing anything else.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cip_core::model::{Permission, Role, role_allows};
use cip_store::{ApiKeyRow, AuditDraft, Store};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
}

impl Principal {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if role_allows(self.role, permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(match permission {
                Permission::ReadPersonalData => "permission to read personal data",
                Permission::WriteRecords => {
                    "permission to write records (admin, analyst or integration)"
                }
                Permission::ListRecords => "permission to list records (admin, analyst or auditor)",
                Permission::ReadAudit => "permission to read the audit trail (admin or auditor)",
                Permission::ManageKeys
                | Permission::ManageLists
                | Permission::ManageSpecialMeasures
                | Permission::ManagePolicy => "the admin role",
                Permission::ReadSpecialMeasures => {
                    "permission to read special measures (admin, analyst or auditor)"
                }
                Permission::Screen => "permission to screen (admin, analyst or integration)",
                Permission::DecideReviews => "permission to decide review items (admin or analyst)",
                Permission::RecordVerification => {
                    "permission to record verification results (admin, analyst or integration)"
                }
                Permission::ResolveCases => {
                    "permission to resolve unverified cases (admin or analyst)"
                }
            }))
        }
    }
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Splits a token into (id, secret).
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("cip_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() < 32 {
        return None;
    }
    Some((id, secret))
}

/// Creates a key: returns the row to store and the token to show once.
pub fn new_api_key(
    role: Role,
    label: Option<String>,
    now: i64,
) -> Result<(ApiKeyRow, SecretString), ApiError> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| ApiError::Internal(format!("random: {e}")))?;
    getrandom::fill(&mut secret).map_err(|e| ApiError::Internal(format!("random: {e}")))?;
    let id = hex::encode(id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let token = SecretString::from(format!("cip_{id}_{secret}"));
    Ok((
        ApiKeyRow {
            id,
            role: role.as_str().into(),
            secret_hash: hash_secret(&secret),
            label,
            created_at: now,
            revoked_at: None,
        },
        token,
    ))
}

/// Creates and stores a key, with its audit entry. `actor` is who asked (e.g. `cli:keys`).
pub async fn create_api_key(
    store: &dyn Store,
    role: Role,
    label: Option<String>,
    actor: &str,
) -> Result<(ApiKeyRow, SecretString), ApiError> {
    let now = crate::time::now_micros();
    let (row, token) = new_api_key(role, label, now)?;
    store
        .insert_api_key(
            row.clone(),
            AuditDraft {
                at: now,
                actor: actor.into(),
                role: "admin".into(),
                action: "api_key.create".into(),
                record_type: "api_key".into(),
                record_id: Some(row.id.clone()),
                fields: vec![format!("role={}", role.as_str())],
                request_id: None,
                purpose: None,
            },
        )
        .await?;
    Ok((row, token))
}

pub async fn authenticate(store: &dyn Store, token: &SecretString) -> Result<Principal, ApiError> {
    let (id, secret) = split_token(token.expose_secret()).ok_or(ApiError::Unauthenticated)?;
    let row = store
        .get_api_key(id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if row.revoked_at.is_some() || !constant_time_eq(&row.secret_hash, &hash_secret(secret)) {
        return Err(ApiError::Unauthenticated);
    }
    let role = Role::parse(&row.role).ok_or(ApiError::Unauthenticated)?;
    Ok(Principal {
        key_id: row.id,
        role,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthenticated)?;
        let principal = authenticate(
            state.store.as_ref(),
            &SecretString::from(token.trim().to_string()),
        )
        .await;
        if principal.is_err() {
            metrics::counter!("cip_auth_failures_total").increment(1);
        }
        principal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_hash() {
        let (row, token) = new_api_key(Role::Analyst, None, 1).unwrap();
        let (id, secret) = split_token(token.expose_secret()).unwrap();
        assert_eq!(id, row.id);
        assert!(constant_time_eq(&row.secret_hash, &hash_secret(secret)));
        assert!(!constant_time_eq(&row.secret_hash, &hash_secret("other")));
        assert!(split_token("cip_zz_abc").is_none());
        assert!(split_token("Bearer x").is_none());
    }
}
