//! Background jobs as `run_once` functions: each does one bounded step and says whether it
//! found work, so tests drive them directly and never sleep.

use std::collections::HashMap;

use crate::state::AppState;

#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    Did(u64),
    Idle,
}

/// One pass of re-encryption after a data key rotation: refreshes the keyring from the
/// database (another instance or the CLI may have rotated), then re-seals up to `batch`
/// customers whose documents are under an older key.
pub async fn rotation_run_once(state: &AppState, batch: u32) -> Result<Ran, String> {
    let fresh = crate::install::reload_keyring(state.store.as_ref(), &state.master)
        .await
        .map_err(|e| e.to_string())?;
    if fresh.active_key_id() != state.keyring().active_key_id() {
        tracing::info!(
            active_key_id = fresh.active_key_id(),
            "data key rotated; now sealing new records under it"
        );
        if let Ok(mut guard) = state.keyring.write() {
            *guard = std::sync::Arc::new(fresh);
        }
    }
    let keyring = state.keyring();
    let stale = state
        .store
        .customers_with_stale_key(keyring.active_key_id(), batch)
        .await
        .map_err(|e| e.to_string())?;
    if stale.is_empty() {
        return Ok(Ran::Idle);
    }
    let mut done = 0;
    for row in stale {
        let doc = crate::records::seal::reseal_document(&keyring, row.id, &row.document)
            .map_err(|e| e.to_string())?;
        // The digest is re-derived from the document, so a record written before digests
        // existed gets one at the next rotation.
        let (value, _) = crate::records::seal::open_document(
            &keyring,
            row.id,
            &doc,
            &crate::records::seal::Projection::all(),
        )
        .map_err(|e| e.to_string())?;
        let plain: crate::records::dto::CustomerDoc =
            serde_json::from_value(value).map_err(|e| e.to_string())?;
        let digest = crate::records::digest::seal(
            &keyring,
            row.id,
            row.version,
            &crate::records::digest::Digest::of(&plain),
        )
        .map_err(|e| e.to_string())?;
        if state
            .store
            .reseal_customer(
                row.id,
                row.version,
                doc,
                keyring.active_key_id(),
                Some(digest),
            )
            .await
            .map_err(|e| e.to_string())?
        {
            done += 1;
        }
    }
    Ok(Ran::Did(done))
}

/// One pass of the lifecycle's due work under the policy in force (`cip_core::lifecycle::
/// DUE_RULES`; the built-in policy until one is applied): accounts pending verification past
/// their risk tier's deadline fail, failed accounts past the policy's closing period close,
/// active accounts past their tier's re-verification interval become due; before the
/// deadlines the provider gets a reminder webhook (once per account and due date).
///
/// The tier needs the customer's facts: they come from the record digests of a page of
/// candidates (one read per page, audited as `lifecycle.tier`), and only when the tiers'
/// periods differ. Each move is an ordinary transition (account, transition, webhook event
/// and audit in one transaction) made with the version read, so when several instances run
/// this pass at once each move commits exactly once and the others see a version conflict
/// and skip it; a reminder's row is keyed by (account, kind, due date) and written with its
/// event and audit entry, so it too is sent once. `batch` is the page size; one call walks
/// every candidate.
pub async fn lifecycle_run_once(state: &AppState, now: i64, batch: u32) -> Result<Ran, String> {
    use cip_core::lifecycle::{DUE_RULES, Due};
    let store = state.store.as_ref();
    let (policy, _, _) = crate::policy::active(store).await?;
    let batch = batch.max(1);
    let mut done = 0u64;
    for rule in DUE_RULES {
        let by_tier = rule.by_tier(&policy);
        let before = now.saturating_sub(rule.min_age_micros(&policy));
        let mut after = None;
        loop {
            let page = store
                .accounts_entered_before(rule.from.as_str(), after, before, batch)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = Some(last.account.id);
            let full = page.len() as u32 == batch;
            let tiers = if by_tier {
                tiers_of(state, &policy, &page).await?
            } else {
                HashMap::new()
            };
            let mut reminders = Vec::new();
            for c in &page {
                let tier = tiers
                    .get(&c.account.id)
                    .copied()
                    .unwrap_or(policy.base_tier);
                match rule.decide(&policy, tier, c.since, now) {
                    Due::Nothing => {}
                    Due::Move { .. } => {
                        let reason = format!(
                            "{} (policy {}, {})",
                            rule.reason,
                            policy.version,
                            if by_tier {
                                format!(
                                    "tier {}: {} days",
                                    policy.tiers[tier].name,
                                    rule.days(&policy, tier)
                                )
                            } else {
                                format!("{} days", rule.days(&policy, tier))
                            }
                        );
                        // `false`: another instance (or a request) changed it first; its
                        // change stands.
                        if crate::api::lifecycle::system_transition(
                            store,
                            &c.account,
                            rule.to,
                            &reason,
                            SYSTEM_ACTOR,
                            None,
                            now,
                        )
                        .await?
                        {
                            done += 1;
                        }
                    }
                    Due::Remind { due_at } => {
                        if let Some(kind) = rule.reminder {
                            reminders.push((c, kind, due_at, tier));
                        }
                    }
                }
            }
            done += send_reminders(state, &policy, reminders, now).await?;
            if !full {
                break;
            }
        }
    }
    // Every account that failed (by the deadline above, or by failed checks) becomes an
    // unverified case for an analyst (docs/design/0011). Cases are not counted as moves: a
    // backlog beyond `batch` is opened by the next passes.
    crate::verification::open_cases(state, batch).await?;
    Ok(if done == 0 { Ran::Idle } else { Ran::Did(done) })
}

/// The risk tier of each account of a page under `policy`, from its customer's record
/// digest (opened on the blocking pool). The read is audited, one entry per page.
async fn tiers_of(
    state: &AppState,
    policy: &cip_core::policy::Policy,
    page: &[cip_store::AccountSince],
) -> Result<HashMap<uuid::Uuid, usize>, String> {
    let mut customers: Vec<uuid::Uuid> = page.iter().map(|c| c.account.customer_id).collect();
    customers.sort_unstable();
    customers.dedup();
    let rows = state
        .store
        .customer_digests(cip_store::DigestPart::Policy, &customers)
        .await
        .map_err(|e| e.to_string())?;
    state
        .store
        .append_audit(vec![cip_store::AuditDraft {
            at: crate::time::now_micros(),
            actor: SYSTEM_ACTOR.into(),
            role: "system".into(),
            action: "lifecycle.tier".into(),
            record_type: "customer".into(),
            record_id: None,
            fields: vec![
                format!("customers={}", rows.len()),
                "read=digest(determination facts)".into(),
            ],
            request_id: None,
            purpose: Some("risk tier for the policy's lifecycle deadlines".into()),
        }])
        .await
        .map_err(|e| e.to_string())?;
    let keyring = state.keyring();
    let facts: HashMap<uuid::Uuid, crate::policy::Facts> = tokio::task::spawn_blocking(move || {
        crate::records::digest::par_map(&rows, |r| {
            Ok((
                r.id,
                crate::policy::facts_of_digest(&crate::records::digest::policy_of_row(
                    &keyring, r,
                )?),
            ))
        })
    })
    .await
    .map_err(|e| format!("lifecycle tier task: {e}"))??
    .into_iter()
    .collect();
    let mut tiers = HashMap::new();
    for c in page {
        let Some(f) = facts.get(&c.account.customer_id) else {
            continue;
        };
        let account_type = cip_core::model::AccountType::parse(&c.account.account_type)
            .unwrap_or(cip_core::model::AccountType::Standard);
        // The tier comes from the risk factors only: evidence does not change it.
        let s = crate::policy::subject(
            f,
            account_type,
            &c.account.product,
            cip_core::policy::Methods::default(),
            0,
        );
        tiers.insert(c.account.id, cip_core::policy::evaluate(policy, &s).tier);
    }
    Ok(tiers)
}

/// Sends the reminders of a page not sent before: the row (account, kind, due date), the
/// webhook event and the audit entry commit together, and a reminder another instance has
/// recorded meanwhile is skipped by the store. Returns how many were sent.
async fn send_reminders(
    state: &AppState,
    policy: &cip_core::policy::Policy,
    due: Vec<(
        &cip_store::AccountSince,
        cip_core::lifecycle::Reminder,
        i64,
        usize,
    )>,
    now: i64,
) -> Result<u64, String> {
    use cip_core::lifecycle::Reminder;
    let mut writes = Vec::new();
    for kind in [Reminder::Verification, Reminder::Reverification] {
        let mine: Vec<_> = due.iter().filter(|(_, k, _, _)| *k == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let ids: Vec<uuid::Uuid> = mine.iter().map(|(c, ..)| c.account.id).collect();
        let sent: std::collections::HashSet<(uuid::Uuid, i64)> = state
            .store
            .reminders_sent(kind.kind(), &ids)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        for (c, _, due_at, tier) in mine {
            let a = &c.account;
            if sent.contains(&(a.id, *due_at)) {
                continue;
            }
            let due_date = crate::time::to_rfc3339(*due_at);
            let event = crate::webhooks::event(
                kind.event_type(),
                serde_json::json!({
                    "account_id": a.id,
                    "customer_id": a.customer_id,
                    "external_id": a.external_id,
                    "status": a.status,
                    "due_at": due_date,
                    "days_left": (due_at - now).max(0) / cip_core::lifecycle::DAY_MICROS,
                    "tier": policy.tiers[*tier].name,
                    "policy_version": policy.version,
                }),
            );
            writes.push(cip_store::ReminderWrite {
                row: cip_store::ReminderRow {
                    account_id: a.id,
                    kind: kind.kind().into(),
                    due_at: *due_at,
                    sent_at: event.created_at,
                    event_id: event.id,
                },
                event,
                audit: cip_store::AuditDraft {
                    at: crate::time::now_micros(),
                    actor: SYSTEM_ACTOR.into(),
                    role: "system".into(),
                    action: "account.reminder".into(),
                    record_type: "account".into(),
                    record_id: Some(a.id.to_string()),
                    fields: vec![
                        format!("kind={}", kind.kind()),
                        format!("due_at={due_date}"),
                    ],
                    request_id: None,
                    purpose: Some(match kind {
                        Reminder::Verification => "the verification deadline is near".into(),
                        Reminder::Reverification => "re-verification falls due soon".into(),
                    }),
                },
            });
        }
    }
    state
        .store
        .record_reminders(writes)
        .await
        .map_err(|e| e.to_string())
}

/// The actor recorded for moves the lifecycle job makes.
pub const SYSTEM_ACTOR: &str = "system:lifecycle";
