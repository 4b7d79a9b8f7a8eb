//! Audit entries: who did what to which record, when, why. The canonical body is what the
//! hash chain covers; `cip audit verify` recomputes it from the stored columns.

use serde::Serialize;

/// An audit entry before the store gives it its place (sequence number and hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    pub at: i64,
    /// The API key id, or `system:<job>` / `cli:<command>` for work nobody's key started.
    pub actor: String,
    pub role: String,
    /// What happened: `customer.create`, `customer.read`, `api_key.revoke`, ….
    pub action: String,
    pub record_type: String,
    pub record_id: Option<String>,
    /// The fields read or changed (JSON pointers into the record), never their values.
    pub fields: Vec<String>,
    pub request_id: Option<String>,
    /// The purpose the caller stated (`X-Purpose` header), where given.
    pub purpose: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub draft: AuditDraft,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

#[derive(Serialize)]
struct CanonicalBody<'a> {
    v: u8,
    at: i64,
    actor: &'a str,
    role: &'a str,
    action: &'a str,
    record_type: &'a str,
    record_id: Option<&'a str>,
    fields: &'a [String],
    request_id: Option<&'a str>,
    purpose: Option<&'a str>,
}

/// The bytes the chain hash covers. serde_json writes struct fields in declaration order and
/// escapes strings one way, so the encoding is canonical for a given draft.
pub fn canonical_audit_body(d: &AuditDraft) -> Vec<u8> {
    let body = CanonicalBody {
        v: 1,
        at: d.at,
        actor: &d.actor,
        role: &d.role,
        action: &d.action,
        record_type: &d.record_type,
        record_id: d.record_id.as_deref(),
        fields: &d.fields,
        request_id: d.request_id.as_deref(),
        purpose: d.purpose.as_deref(),
    };
    // Serialising a struct of strings and integers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Gives a draft its place in the chain.
pub(crate) fn seal_entry(prev_seq: i64, prev_hash: [u8; 32], draft: AuditDraft) -> AuditEntry {
    let seq = prev_seq + 1;
    let body = canonical_audit_body(&draft);
    let hash = cip_vault::chain_hash(&prev_hash, seq as u64, &body);
    AuditEntry {
        seq,
        draft,
        prev_hash,
        hash,
    }
}
