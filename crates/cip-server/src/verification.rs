//! Verification machinery shared by the routes and the jobs: one-time code senders, code
//! hashing, sealing of evidence, the account outcome after new evidence, and the opening of
//! unverified cases. See docs/design/0011-verification.md.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cip_core::determination::Status;
use cip_core::model::{AccountStatus, CustomerKind};
use cip_core::verification::{Method, Outcome, Rule, Subjects, Verdict};
use cip_store::{AccountFilter, AuditDraft, CaseRow, EvidenceRow, PageRequest};
use cip_vault::{BlindIndexKind, Keyring};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::{OtpSenderConfig, VerificationConfig};
use crate::records::dto::CustomerDoc;
use crate::records::seal;
use crate::state::AppState;
use crate::time::now_micros;

/// The actor recorded for transitions made because of evidence.
pub const SYSTEM_ACTOR: &str = "system:verification";

/// A code on its way to a customer. Holds the code: never logged (no `Debug` of the code).
pub struct CodeMessage {
    pub challenge_id: Uuid,
    /// `email` or `phone`.
    pub channel: String,
    /// The address or E.164 number.
    pub to: String,
    pub code: String,
    pub expires_at: i64,
}

/// Delivers one-time codes. Implementations must not log the code or the destination.
#[async_trait]
pub trait CodeSender: Send + Sync {
    async fn send(&self, message: &CodeMessage) -> Result<(), String>;
}

/// Development sender: one JSON file per code in `dir` (`<challenge id>.json`, mode 0600).
pub struct FileSender {
    pub dir: PathBuf,
}

#[async_trait]
impl CodeSender for FileSender {
    async fn send(&self, m: &CodeMessage) -> Result<(), String> {
        let body = json!({
            "challenge_id": m.challenge_id,
            "channel": m.channel,
            "to": m.to,
            "code": m.code,
            "expires_at": crate::time::to_rfc3339(m.expires_at),
        });
        let dir = self.dir.clone();
        let path = dir.join(format!("{}.json", m.challenge_id));
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&dir).map_err(|e| format!("creating the outbox: {e}"))?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(&path)
                .map_err(|e| format!("writing the code file: {e}"))?;
            std::io::Write::write_all(&mut f, body.to_string().as_bytes())
                .map_err(|e| format!("writing the code file: {e}"))
        })
        .await
        .map_err(|e| format!("sender task: {e}"))?
    }
}

/// Production sender: POSTs `{challenge_id, channel, to, code, expires_at}` to an SMS gateway
/// or email relay, signed like webhooks (`Cip-Signature: t=…,v1=HMAC(secret, "t.body")`).
pub struct HttpSender {
    pub url: String,
    pub secret: SecretString,
    pub client: reqwest::Client,
}

#[async_trait]
impl CodeSender for HttpSender {
    async fn send(&self, m: &CodeMessage) -> Result<(), String> {
        let body = serde_json::to_vec(&json!({
            "challenge_id": m.challenge_id,
            "channel": m.channel,
            "to": m.to,
            "code": m.code,
            "expires_at": crate::time::to_rfc3339(m.expires_at),
        }))
        .map_err(|e| e.to_string())?;
        let t = now_micros() / 1_000_000;
        let sig = cip_vault::webhook_signature(self.secret.expose_secret(), t, &body);
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("cip-signature", format!("t={t},v1={sig}"))
            .body(body)
            .send()
            .await
            // reqwest errors may carry the URL; say only what kind of failure it was.
            .map_err(|e| {
                if e.is_timeout() {
                    "the relay timed out".to_string()
                } else {
                    "the relay could not be reached".to_string()
                }
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("the relay answered {}", resp.status().as_u16()))
        }
    }
}

/// Settings and sender, shared by the handlers.
pub struct Verification {
    pub config: VerificationConfig,
    pub sender: Arc<dyn CodeSender>,
}

impl Verification {
    pub fn from_config(config: &VerificationConfig, data_dir: &std::path::Path) -> Self {
        let sender: Arc<dyn CodeSender> = match &config.otp_sender {
            OtpSenderConfig::File => Arc::new(FileSender {
                dir: data_dir.join("otp-outbox"),
            }),
            OtpSenderConfig::Http { url, secret } => Arc::new(HttpSender {
                url: url.clone(),
                secret: secret.clone(),
                client: crate::webhooks::client(),
            }),
        };
        // Email codes through SMTP when it is configured.
        let sender: Arc<dyn CodeSender> = match &config.smtp {
            None => sender,
            Some(smtp) => Arc::new(crate::smtp::ByChannel {
                email: crate::smtp::SmtpSender::new(smtp),
                other: sender,
            }),
        };
        Verification {
            config: config.clone(),
            sender,
        }
    }
}

/// A 6-digit code from the operating system's CSPRNG, without modulo bias.
pub fn new_code() -> Result<String, String> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| format!("random: {e}"))?;
        let n = u32::from_le_bytes(b);
        // 4_294_000_000 is the largest multiple of 10^6 below 2^32.
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// Keyed hash of a code, bound to its challenge.
pub fn code_hash(keyring: &Keyring, challenge_id: Uuid, code: &str) -> [u8; 32] {
    keyring.blind_index(BlindIndexKind::OtpCode, &format!("{challenge_id}:{code}"))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn evidence_aad(id: Uuid) -> String {
    format!("evidence/{id}")
}

pub fn evidence_file_aad(id: Uuid) -> String {
    format!("evidence-file/{id}")
}

pub fn request_secret_aad(id: Uuid) -> String {
    format!("verification-request/{id}")
}

pub fn case_reason_aad(id: Uuid) -> String {
    format!("case/{id}")
}

/// A new evidence row with its details sealed.
#[allow(clippy::too_many_arguments)]
pub fn evidence_row(
    keyring: &Keyring,
    customer_id: Uuid,
    beneficial_owner_id: Option<Uuid>,
    method: Method,
    outcome: Outcome,
    actor: &str,
    source_key: Option<String>,
    details: &Value,
) -> Result<EvidenceRow, String> {
    let id = Uuid::now_v7();
    let sealed = keyring
        .seal(
            evidence_aad(id).as_bytes(),
            &serde_json::to_vec(details).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    Ok(EvidenceRow {
        id,
        customer_id,
        beneficial_owner_id,
        method: method.as_str().into(),
        result: outcome.as_str().into(),
        at: now_micros(),
        actor: actor.into(),
        source_key,
        details: sealed,
    })
}

/// What evidence did to an account.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountOutcome {
    pub account_id: Uuid,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The verification state of a customer after its latest evidence.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Settlement {
    /// verified, failed, pending, or not_required (nobody needs verification).
    pub state: &'static str,
    /// What is still needed (when pending).
    pub missing: Vec<String>,
    /// Accounts moved because of it.
    pub accounts: Vec<AccountOutcome>,
}

/// Who must be verified, from the customer's determination.
pub fn subjects(doc: &CustomerDoc) -> Subjects {
    let (customer, owners) = crate::api::determination::evidence_of(doc);
    let d = cip_core::determination::determine_customer(customer, owners);
    Subjects {
        kind: if doc.kind == "entity" {
            CustomerKind::Entity
        } else {
            CustomerKind::Individual
        },
        customer: d.customer.status != Status::UsPerson,
        beneficial_owners: d
            .beneficial_owners
            .iter()
            .filter(|(_, o)| o.status != Status::UsPerson)
            .map(|(id, _)| *id)
            .collect(),
    }
}

/// After new evidence: evaluates the rule for each of the customer's accounts pending
/// verification and moves them (`active` when verified, `failed` at the failure limit)
/// through the ordinary lifecycle transition, so webhooks fire. Reading the record to
/// determine who must be verified is audited (`verification.evaluate`).
pub async fn settle(
    state: &AppState,
    customer_id: Uuid,
    request_id: Option<String>,
) -> Result<Settlement, String> {
    let accounts = state
        .store
        .list_accounts(
            &AccountFilter {
                customer_id: Some(customer_id),
                status: Some(AccountStatus::PendingVerification.as_str().into()),
                account_type: None,
            },
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let row = state
        .store
        .get_customer(customer_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("customer not found")?;
    let projection = seal::Projection {
        sections: Some(vec![
            "identity".into(),
            "entity".into(),
            "beneficial_owners".into(),
            "payment_methods".into(),
        ]),
    };
    let (value, fields) =
        seal::open_document(&state.keyring(), customer_id, &row.document, &projection)
            .map_err(|e| e.to_string())?;
    state
        .store
        .append_audit(vec![AuditDraft {
            at: now_micros(),
            actor: SYSTEM_ACTOR.into(),
            role: "system".into(),
            action: "verification.evaluate".into(),
            record_type: "customer".into(),
            record_id: Some(customer_id.to_string()),
            fields,
            request_id: request_id.clone(),
            purpose: Some("who must be verified (determination)".into()),
        }])
        .await
        .map_err(|e| e.to_string())?;
    let doc: CustomerDoc = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let who = subjects(&doc);
    let results: Vec<cip_core::verification::Result> = state
        .store
        .list_evidence(customer_id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|e| {
            Some(cip_core::verification::Result {
                beneficial_owner: e.beneficial_owner_id,
                method: Method::parse(&e.method)?,
                outcome: Outcome::parse(&e.result)?,
                at: e.at,
            })
        })
        .collect();
    let rule = Rule {
        failure_limit: state.verification.config.failure_limit,
    };
    if !who.customer && who.beneficial_owners.is_empty() {
        return Ok(Settlement {
            state: "not_required",
            missing: vec![],
            accounts: vec![],
        });
    }
    let mut moved = Vec::new();
    let mut overall = rule.evaluate(&who, &results, 0);
    for account in accounts {
        // The round starts when the account last became pending.
        let since = state
            .store
            .list_transitions(account.id)
            .await
            .map_err(|e| e.to_string())?
            .last()
            .map(|t| t.at)
            .unwrap_or(0);
        let verdict = rule.evaluate(&who, &results, since);
        let (to, reason) = match &verdict {
            Verdict::Verified { reason } => (AccountStatus::Active, reason.clone()),
            Verdict::Failed { reason } => (AccountStatus::Failed, reason.clone()),
            Verdict::Pending { .. } => {
                overall = verdict;
                continue;
            }
        };
        overall = verdict.clone();
        if let Some(o) = transition(state, &account, to, &reason, request_id.clone()).await? {
            moved.push(o);
        }
    }
    if moved.iter().any(|o| o.to == AccountStatus::Failed.as_str()) {
        open_cases(state, 100).await?;
    }
    Ok(match overall {
        Verdict::Verified { .. } => Settlement {
            state: "verified",
            missing: vec![],
            accounts: moved,
        },
        Verdict::Failed { .. } => Settlement {
            state: "failed",
            missing: vec![],
            accounts: moved,
        },
        Verdict::Pending { missing } => Settlement {
            state: "pending",
            missing,
            accounts: moved,
        },
    })
}

async fn transition(
    state: &AppState,
    current: &cip_store::AccountRow,
    to: AccountStatus,
    reason: &str,
    request_id: Option<String>,
) -> Result<Option<AccountOutcome>, String> {
    // A `false`: changed meanwhile (another result, a request, the job): its change stands.
    let moved = crate::api::lifecycle::system_transition(
        state.store.as_ref(),
        current,
        to,
        reason,
        SYSTEM_ACTOR,
        request_id,
        now_micros(),
    )
    .await?;
    Ok(moved.then(|| AccountOutcome {
        account_id: current.id,
        from: current.status.clone(),
        to: to.as_str().into(),
        reason: reason.into(),
    }))
}

/// Opens a case for every transition to `failed` that has none yet (up to `limit`).
pub async fn open_cases(state: &AppState, limit: u32) -> Result<u64, String> {
    let todo = state
        .store
        .unverified_without_case(limit)
        .await
        .map_err(|e| e.to_string())?;
    if todo.is_empty() {
        return Ok(0);
    }
    let now = now_micros();
    let cases = todo
        .into_iter()
        .map(|t| {
            let id = Uuid::now_v7();
            (
                CaseRow {
                    id,
                    account_id: t.account_id,
                    customer_id: t.customer_id,
                    transition_version: t.version,
                    reason: t.reason,
                    opened_at: now,
                    status: "open".into(),
                    resolution: None,
                    resolution_reason: None,
                    resolved_by: None,
                    resolved_at: None,
                },
                AuditDraft {
                    at: now,
                    actor: crate::jobs::SYSTEM_ACTOR.into(),
                    role: "system".into(),
                    action: "case.open".into(),
                    record_type: "case".into(),
                    record_id: Some(id.to_string()),
                    fields: vec![],
                    request_id: None,
                    purpose: Some("account not verified".into()),
                },
            )
        })
        .collect();
    state
        .store
        .open_cases(cases)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let c = new_code().unwrap();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn equal_codes_of_two_challenges_hash_apart() {
        let ring = Keyring::new(
            cip_vault::DataKey::generate(1).unwrap(),
            vec![],
            cip_vault::IndexRootKey::from_bytes([5; 32]),
        );
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_ne!(code_hash(&ring, a, "123456"), code_hash(&ring, b, "123456"));
        assert_eq!(code_hash(&ring, a, "123456"), code_hash(&ring, a, "123456"));
        assert!(constant_time_eq(&[1, 2], &[1, 2]) && !constant_time_eq(&[1, 2], &[1, 3]));
    }
}
