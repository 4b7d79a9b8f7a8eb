//! Verification machinery shared by the routes and the jobs: one-time code senders, code
//! hashing, sealing of evidence, the account outcome after new evidence, and the opening of
//! unverified cases. See docs/design/0011-verification.md.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cip_core::model::{AccountStatus, AccountType, CustomerKind};
use cip_core::policy;
use cip_core::verification::{Method, Outcome};
use cip_store::{AccountFilter, AuditDraft, CaseRow, EvidenceRow, PageRequest};
use cip_vault::{BlindIndexKind, Keyring};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::{OtpSenderConfig, VerificationConfig};
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
        if config.failure_limit != 3 {
            // Superseded: the policy in force decides (docs/design/0013-policy.md, 2026-12).
            tracing::warn!(
                verification_failure_limit = config.failure_limit,
                "verification_failure_limit is no longer used: the policy file's max_failed_attempts decides when failed checks fail an account"
            );
        }
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

/// The verification state of a customer after its latest evidence, under the policy in
/// force (the same evaluation as `cip policy check` and the re-evaluation after a policy
/// change).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Settlement {
    /// verified, failed, pending, exempt, or not_required (a U.S. person with no foreign
    /// owner, under a policy that verifies foreign persons only).
    pub state: &'static str,
    /// What is still needed (when pending): one line per requirement of the policy's rule,
    /// each naming the methods that would meet it.
    pub missing: Vec<String>,
    /// Accounts moved because of it.
    pub accounts: Vec<AccountOutcome>,
    /// The policy version that decided.
    pub policy_version: String,
    /// The customer's risk tier under it (for the account that decided the state).
    pub tier: String,
}

/// The actor's words for a group of methods: "a passing document or vendor_documentary".
fn alternatives(group: policy::Methods) -> String {
    let names: Vec<&str> = group.iter().map(|m| m.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => format!("a passing {last}"),
        Some((last, rest)) => format!("a passing {} or {last}", rest.join(", ")),
        None => "nothing".into(),
    }
}

/// The missing groups of a pending verdict as lines for the API: the customer's own groups
/// (`customer: …` for individuals, `entity: …` for entities), and `beneficial_owners_verified`
/// spelt out per foreign owner that lacks a passing documentary or non-documentary result.
fn missing_lines(
    facts: &crate::policy::Facts,
    evidence: &[EvidenceRow],
    missing: &[policy::Methods],
) -> Vec<String> {
    let label = match facts.kind {
        CustomerKind::Individual => "customer",
        CustomerKind::Entity => "entity",
    };
    let mut lines = Vec::new();
    for group in missing {
        if group.iter().collect::<Vec<_>>() == [policy::Method::BeneficialOwnersVerified] {
            for owner in &facts.foreign_owners {
                let has = |kind: fn(Method) -> bool| {
                    evidence.iter().any(|e| {
                        e.result == "pass"
                            && e.beneficial_owner_id == Some(*owner)
                            && Method::parse(&e.method).is_some_and(kind)
                    })
                };
                if !has(Method::is_documentary) {
                    lines.push(format!(
                        "beneficial owner {owner}: a passing documentary check (document or vendor_documentary)"
                    ));
                }
                if !has(Method::is_non_documentary) {
                    lines.push(format!(
                        "beneficial owner {owner}: a passing non-documentary check (otp_email, otp_phone, payment_confirmation or vendor_non_documentary)"
                    ));
                }
            }
        } else {
            lines.push(format!("{label}: {}", alternatives(*group)));
        }
    }
    lines
}

/// How far a verdict is from done, for the customer's overall state: the least advanced
/// account decides.
fn rank(v: &policy::Verdict) -> u8 {
    match v {
        policy::Verdict::Pending { .. } => 4,
        policy::Verdict::Failed => 3,
        policy::Verdict::Verified => 2,
        policy::Verdict::Exempt { .. } => 1,
        policy::Verdict::NotRequired => 0,
    }
}

/// After new evidence: evaluates the policy in force (`cip_core::policy::evaluate`, the
/// built-in policy until one is applied) for each of the customer's open accounts, and moves
/// those pending verification that it settles through the ordinary lifecycle transition, so
/// webhooks fire: to `active` when the evidence meets the rule of the account's kind, type,
/// product and tier, or when the policy requires none (U.S. person, exemption); to `failed`
/// when the failed results since the account last became pending reach the policy's
/// `max_failed_attempts`. The customer's facts come from its record digest, as in the
/// re-evaluation after a policy change; the read is audited (`verification.evaluate`).
pub async fn settle(
    state: &AppState,
    customer_id: Uuid,
    request_id: Option<String>,
) -> Result<Settlement, String> {
    let accounts: Vec<cip_store::AccountRow> = state
        .store
        .list_accounts(
            &AccountFilter {
                customer_id: Some(customer_id),
                status: None,
                account_type: None,
            },
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|a| a.status != AccountStatus::Closed.as_str())
        .collect();
    let (policy, _, _) = crate::policy::active(state.store.as_ref()).await?;
    let row = state
        .store
        .get_customer(customer_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("customer not found")?;
    state
        .store
        .append_audit(vec![AuditDraft {
            at: now_micros(),
            actor: SYSTEM_ACTOR.into(),
            role: "system".into(),
            action: "verification.evaluate".into(),
            record_type: "customer".into(),
            record_id: Some(customer_id.to_string()),
            fields: vec!["read=digest(determination facts)".into()],
            request_id: request_id.clone(),
            purpose: Some("who must be verified (determination) and the risk tier".into()),
        }])
        .await
        .map_err(|e| e.to_string())?;
    let digest = crate::records::digest::policy_of_row(
        &state.keyring(),
        &cip_store::CustomerDigestRow {
            id: row.id,
            version: row.version,
            key_id: row.key_id,
            digest: row.digest.map(|d| d.policy),
            document: Some(row.document),
        },
    )?;
    let facts = crate::policy::facts_of_digest(&digest);
    let evidence = state
        .store
        .list_evidence(customer_id)
        .await
        .map_err(|e| e.to_string())?;
    let passed = crate::policy::passed_methods(&facts, &evidence);

    let pending = AccountStatus::PendingVerification.as_str();
    let due = AccountStatus::ReverificationDue.as_str();
    // Accounts in a verification round: pending, or due for re-verification.
    let in_round = |a: &cip_store::AccountRow| a.status == pending || a.status == due;
    let any_pending = accounts.iter().any(in_round);
    let mut outcomes: Vec<policy::Outcome> = Vec::new();
    // (index in `outcomes`, start of the round) of the re-verifications: their missing
    // methods are counted from the evidence of their round only.
    let mut round_since: Vec<(usize, i64)> = Vec::new();
    let mut moved = Vec::new();
    for account in &accounts {
        let is_pending = in_round(account);
        let reverifying = account.status == due;
        // The overall state follows the accounts in a round when there are any.
        if any_pending && !is_pending {
            continue;
        }
        let account_type =
            AccountType::parse(&account.account_type).unwrap_or(AccountType::Standard);
        // The round starts when the account last became pending (or due): failures of
        // earlier rounds do not count. Passes of earlier rounds count for a pending account,
        // but not for re-verification: that is what re-verifying means.
        let (failed, passed) = if is_pending {
            let since = state
                .store
                .list_transitions(account.id)
                .await
                .map_err(|e| e.to_string())?
                .last()
                .map(|t| t.at)
                .unwrap_or(0);
            let failed = evidence
                .iter()
                .filter(|e| e.result == "fail" && e.at >= since)
                .count() as u32;
            let passed = if reverifying {
                let recent: Vec<EvidenceRow> =
                    evidence.iter().filter(|e| e.at >= since).cloned().collect();
                round_since.push((outcomes.len(), since));
                crate::policy::passed_methods(&facts, &recent)
            } else {
                passed
            };
            (failed, passed)
        } else {
            (0, passed)
        };
        let subject =
            crate::policy::subject(&facts, account_type, &account.product, passed, failed);
        let outcome = policy::evaluate(&policy, &subject);
        if is_pending {
            let tier = &policy.tiers[outcome.tier].name;
            let open = crate::policy::OpenAccount {
                id: account.id,
                account_type,
                product: account.product.clone(),
                status: account.status.clone(),
                version: account.version,
            };
            let to = match &outcome.verdict {
                policy::Verdict::Failed => Some((
                    AccountStatus::Failed,
                    format!(
                        "verification failed: {failed} failed checks (limit {}, policy {}, tier {tier})",
                        policy.max_failed_attempts, policy.version
                    ),
                )),
                policy::Verdict::Verified if reverifying => Some((
                    AccountStatus::Active,
                    format!(
                        "re-verified: the evidence since re-verification fell due meets policy {} (tier {tier})",
                        policy.version
                    ),
                )),
                policy::Verdict::Verified => Some((
                    AccountStatus::Active,
                    format!(
                        "verified: the evidence meets policy {} (tier {tier})",
                        policy.version
                    ),
                )),
                // Exempt or not required: a due re-verification waits for the job's or an
                // analyst's decision, as the policy re-evaluation leaves it (docs/design/0013).
                _ if reverifying => None,
                _ => crate::policy::required_move(&policy, &open, &outcome),
            };
            if let Some((to, reason)) = to
                && let Some(o) = transition(state, account, to, &reason, request_id.clone()).await?
            {
                moved.push(o);
            }
        }
        outcomes.push(outcome);
    }
    if outcomes.is_empty() {
        // No open account: the state for a standard account of any product.
        outcomes.push(policy::evaluate(
            &policy,
            &crate::policy::subject(&facts, AccountType::Standard, "", passed, 0),
        ));
    }
    if moved.iter().any(|o| o.to == AccountStatus::Failed.as_str()) {
        open_cases(state, 100).await?;
    }
    let Some(decider) = outcomes
        .iter()
        .enumerate()
        .max_by_key(|(i, o)| (rank(&o.verdict), std::cmp::Reverse(*i)))
        .map(|(_, o)| o.clone())
    else {
        return Err("no outcome".into());
    };
    let mut missing = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        if let policy::Verdict::Pending { missing: groups } = &o.verdict {
            let recent: Vec<EvidenceRow>;
            let evidence = match round_since.iter().find(|(j, _)| *j == i) {
                Some((_, since)) => {
                    recent = evidence
                        .iter()
                        .filter(|e| e.at >= *since)
                        .cloned()
                        .collect();
                    &recent
                }
                None => &evidence,
            };
            for line in missing_lines(&facts, evidence, groups) {
                if !missing.contains(&line) {
                    missing.push(line);
                }
            }
        }
    }
    Ok(Settlement {
        state: decider.verdict.as_str(),
        missing,
        accounts: moved,
        policy_version: policy.version.clone(),
        tier: policy.tiers[decider.tier].name.clone(),
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
