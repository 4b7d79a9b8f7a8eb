//! Continuous screening: every customer and each beneficial owner is screened at creation and
//! on every change; a hit at or above the threshold opens a review item; after a list change,
//! stored customers are re-screened against the added and changed entries only.
//!
//! A subject's screened data are its names, birth date, citizenships, national ids, emails and
//! (for the customer) crypto wallets. Its keyed hash (never the data) is stored with an item,
//! so a dismissal holds until that data or the entry's content changes.

use std::collections::BTreeMap;

use cip_screen::{
    EntryKind, IdentifierKind, Index, ListEntry, PreparedQuery, Query, QueryIdentifier,
};
use cip_store::{AuditDraft, ReviewRow};
use cip_vault::{BlindIndexKind, Keyring};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::jobs::Ran;
use crate::records::dto::{CustomerDoc, IdentityDto};
use crate::state::AppState;

/// One screened party of a customer record: `customer` or `owner/<n>`.
#[derive(Debug, Clone)]
pub struct Subject {
    pub key: String,
    pub query: Query,
}

fn identity_query(identity: &IdentityDto, kind: EntryKind, wallets: Vec<String>) -> Query {
    let mut identifiers: Vec<QueryIdentifier> = identity
        .national_ids
        .iter()
        .map(|n| QueryIdentifier {
            kind: match n.id_type.as_str() {
                "passport" => IdentifierKind::Passport,
                "national_id" => IdentifierKind::NationalId,
                "tax_id" => IdentifierKind::Tax,
                "registration" => IdentifierKind::Registration,
                _ => IdentifierKind::Other,
            },
            value: n.number.clone(),
        })
        .collect();
    identifiers.extend(identity.emails.iter().map(|e| QueryIdentifier {
        kind: IdentifierKind::Email,
        value: e.clone(),
    }));
    identifiers.extend(wallets.into_iter().map(|w| QueryIdentifier {
        kind: IdentifierKind::Wallet,
        value: w,
    }));
    Query {
        names: identity.names.iter().map(|n| n.full.clone()).collect(),
        kind: Some(kind),
        birth_date: identity.birth_date.clone(),
        countries: identity.citizenships.clone(),
        identifiers,
    }
}

/// The subjects of a customer document (plaintext, as sealed or as opened).
pub fn subjects(doc: &CustomerDoc) -> Vec<Subject> {
    let kind = if doc.kind == "individual" {
        EntryKind::Person
    } else {
        EntryKind::Entity
    };
    let wallets = doc
        .payment_methods
        .iter()
        .filter_map(|p| p.crypto_wallet.as_ref().map(|w| w.address.clone()))
        .collect();
    let mut out = vec![Subject {
        key: "customer".into(),
        query: identity_query(&doc.identity, kind, wallets),
    }];
    for (i, owner) in doc.beneficial_owners.iter().enumerate() {
        out.push(Subject {
            key: format!("owner/{i}"),
            query: identity_query(&owner.identity, EntryKind::Person, Vec::new()),
        });
    }
    out
}

/// Keyed hash of a subject's screened data: equal data, equal hash; reveals nothing.
pub fn subject_hash(keyring: &Keyring, q: &Query) -> [u8; 32] {
    let json = serde_json::to_string(q).unwrap_or_default();
    keyring.blind_index(BlindIndexKind::Name, &format!("screening-subject:{json}"))
}

/// Content hash of a list entry (public data: a plain hash).
pub fn entry_hash(e: &ListEntry) -> String {
    let json = serde_json::to_vec(e).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..16])
}

/// A hit to turn into a review item.
struct Hit {
    subject: String,
    subject_hash: [u8; 32],
    list_id: String,
    entry_id: String,
    entry_hash: String,
    score: f32,
    details: serde_json::Value,
}

/// Screens the subjects against `index` (the CPU part; no IO).
fn find_hits(keyring: &Keyring, index: &Index, subjects: &[Subject], threshold: f32) -> Vec<Hit> {
    let mut hits = Vec::new();
    for s in subjects {
        // A record's names passed the record's own validation; one the engine cannot use
        // (nothing left after normalisation) has nothing to screen.
        let Ok(q) = PreparedQuery::new(&s.query) else {
            continue;
        };
        let candidates = index.screen(&q, 10, threshold);
        if candidates.is_empty() {
            continue;
        }
        let hash = subject_hash(keyring, &s.query);
        for c in candidates {
            let entry_hash = index
                .entries()
                .iter()
                .find(|e| e.list == c.list && e.entry_id == c.entry_id)
                .map(entry_hash)
                .unwrap_or_default();
            hits.push(Hit {
                subject: s.key.clone(),
                subject_hash: hash,
                list_id: c.list.to_string(),
                entry_id: c.entry_id.clone(),
                entry_hash,
                score: c.score,
                details: serde_json::json!({
                    "entry_name": c.entry_name,
                    "score": c.score,
                    "explanation": c.explanation,
                }),
            });
        }
    }
    hits
}

/// Who caused a screening, for the audit entries of the items it opens.
pub struct Cause {
    pub actor: String,
    pub role: String,
    pub request_id: Option<String>,
}

async fn open_items(
    state: &AppState,
    customer_id: Uuid,
    hits: Vec<Hit>,
    versions: &BTreeMap<String, i64>,
    cause: &Cause,
) -> Result<usize, String> {
    let keyring = state.keyring();
    let mut opened = 0;
    for h in hits {
        let id = Uuid::now_v7();
        let details = serde_json::to_vec(&h.details).map_err(|e| e.to_string())?;
        let sealed = keyring
            .seal(format!("review/{id}").as_bytes(), &details)
            .map_err(|e| e.to_string())?;
        let row = ReviewRow {
            id,
            customer_id,
            subject: h.subject.clone(),
            list_id: h.list_id.clone(),
            entry_id: h.entry_id.clone(),
            list_version: versions.get(&h.list_id).copied().unwrap_or(0),
            entry_hash: h.entry_hash,
            subject_hash: h.subject_hash,
            score_bp: (f64::from(h.score) * 10_000.0).round() as i64,
            status: "open".into(),
            details: sealed,
            key_id: keyring.active_key_id(),
            created_at: crate::time::now_micros(),
            decided_at: None,
            decided_by: None,
            reason: None,
        };
        let audit = AuditDraft {
            at: row.created_at,
            actor: cause.actor.clone(),
            role: cause.role.clone(),
            action: "review.open".into(),
            record_type: "customer".into(),
            record_id: Some(customer_id.to_string()),
            fields: vec![
                format!("subject={}", h.subject),
                format!("list={}", h.list_id),
                format!("entry={}", h.entry_id),
                format!("review={id}"),
            ],
            request_id: cause.request_id.clone(),
            purpose: Some("screening".into()),
        };
        if state
            .store
            .open_review(row, audit)
            .await
            .map_err(|e| e.to_string())?
        {
            opened += 1;
        }
    }
    if opened > 0 {
        metrics::counter!("cip_reviews_opened_total").increment(opened as u64);
    }
    Ok(opened)
}

/// Screens a customer just created or changed against every loaded list. Returns the number
/// of review items opened.
pub async fn screen_customer(
    state: &AppState,
    customer_id: Uuid,
    doc: &CustomerDoc,
    cause: &Cause,
) -> Result<usize, String> {
    let loaded = state.screening.current();
    if loaded.versions.is_empty() {
        return Ok(0);
    }
    let subjects = subjects(doc);
    let keyring = state.keyring();
    let threshold = state.screening_threshold;
    let (loaded, hits) = tokio::task::spawn_blocking(move || {
        let hits = find_hits(&keyring, &loaded.index, &subjects, threshold);
        (loaded, hits)
    })
    .await
    .map_err(|e| format!("screening task: {e}"))?;
    open_items(state, customer_id, hits, &loaded.versions, cause).await
}

/// A list change waiting for the re-screen of stored customers.
#[derive(Debug, Clone)]
pub struct ListChange {
    pub list_id: String,
    pub version: i64,
    pub added_or_changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Customers read per step of the re-screen.
const RESCREEN_BATCH: u32 = 2000;

/// One re-screen of every stored customer against one list change: closes the open items
/// of removed entries, then screens each customer's subjects against an index of only the
/// added and changed entries (`Index::build_subset`). The customers are read by the system
/// (one audit entry per change records it). Returns `Idle` when nothing is queued, or when
/// the only change queued is being re-screened by another instance (it stays queued).
///
/// With several instances on one database each one queues every list change it loads; a
/// lease on `rescreen:<list>:<version>` lets one of them run it, and the others drop it once
/// the database says it is done. A lease left by an instance that died expires and another
/// instance takes the change over.
pub async fn rescreen_run_once(state: &AppState) -> Result<Ran, String> {
    rescreen_run_once_at(state, crate::time::now_micros()).await
}

/// [`rescreen_run_once`] as of `now`. A re-screen that fails is not dropped: it goes back to
/// the front of the queue and is retried after a back-off (60 s, doubling, at most an hour;
/// `Screening::retry_later`), and later changes of the same list wait for it. Until then a
/// pass finds nothing to do for that list (`Idle`). Tests pass a later `now` to see the
/// retry without waiting.
pub async fn rescreen_run_once_at(state: &AppState, now: i64) -> Result<Ran, String> {
    let _running = state.screening.rescreen_lock.lock().await;
    let Some(change) = state.screening.next_change_at(now) else {
        return Ok(Ran::Idle);
    };
    let done = match rescreened_version(state, &change.list_id).await {
        Ok(v) => v,
        Err(e) => {
            state.screening.retry_later(change, now);
            return Err(e);
        }
    };
    if done >= Some(change.version) {
        // Another instance (or an earlier run of this one) completed it.
        state.screening.succeeded(&change.list_id, change.version);
        return Ok(Ran::Did(0));
    }
    let lease = format!("rescreen:{}:{}", change.list_id, change.version);
    let holder = state.screening.instance.clone();
    match claim(state, &lease, &holder).await {
        Ok(true) => {}
        Ok(false) => {
            state.screening.requeue(change);
            return Ok(Ran::Idle);
        }
        Err(e) => {
            state.screening.retry_later(change, now);
            return Err(e);
        }
    }
    let kept = change.clone();
    let result = rescreen_change(state, change, &lease, &holder).await;
    match &result {
        Ok(_) => state.screening.succeeded(&kept.list_id, kept.version),
        Err(e) => {
            let at = state.screening.retry_later(kept.clone(), now);
            tracing::warn!(
                list = %kept.list_id,
                version = kept.version,
                error = %e,
                retry_at = %crate::time::to_rfc3339(at),
                "re-screen failed; it stays queued and is retried after a back-off"
            );
        }
    }
    // Released when done; on failure too, so another instance may retry at once.
    state
        .store
        .release_job(&lease, &holder)
        .await
        .map_err(|e| e.to_string())?;
    result
}

/// How long a re-screen lease lasts without renewal; renewed with every batch.
const RESCREEN_LEASE_MICROS: i64 = 5 * 60 * 1_000_000;

async fn claim(state: &AppState, lease: &str, holder: &str) -> Result<bool, String> {
    let now = crate::time::now_micros();
    state
        .store
        .claim_job(lease, holder, now, now + RESCREEN_LEASE_MICROS)
        .await
        .map_err(|e| e.to_string())
}

async fn rescreened_version(state: &AppState, list_id: &str) -> Result<Option<i64>, String> {
    Ok(state
        .store
        .get_meta(&rescreened_key(list_id))
        .await
        .map_err(|e| e.to_string())?
        .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok()))
}

async fn rescreen_change(
    state: &AppState,
    change: ListChange,
    lease: &str,
    holder: &str,
) -> Result<Ran, String> {
    let cause = Cause {
        actor: "system:rescreen".into(),
        role: "system".into(),
        request_id: None,
    };
    let now = crate::time::now_micros();
    if !change.removed.is_empty() {
        state
            .store
            .close_reviews_for_entries(
                &change.list_id,
                change.removed.clone(),
                now,
                AuditDraft {
                    at: now,
                    actor: cause.actor.clone(),
                    role: cause.role.clone(),
                    action: "review.close".into(),
                    record_type: "screening_list".into(),
                    record_id: Some(change.list_id.clone()),
                    fields: vec![
                        format!("version={}", change.version),
                        "reason=entry removed".into(),
                    ],
                    request_id: None,
                    purpose: Some("screening".into()),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    if change.added_or_changed.is_empty() {
        mark_rescreened(state, &change, 0, "none", &cause).await?;
        return Ok(Ran::Did(0));
    }
    let loaded = state.screening.current();
    let (subset, list_entries) = {
        let loaded = loaded.clone();
        let list = change.list_id.clone();
        let ids = change.added_or_changed.clone();
        tokio::task::spawn_blocking(move || {
            let entries: Vec<ListEntry> = loaded
                .index
                .entries()
                .iter()
                .filter(|e| e.list.as_str() == list)
                .cloned()
                .collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            // With the document frequencies of the loaded index: a key too common to be
            // looked up when a customer is screened is not looked up against the change
            // either (docs/design/0008, "Keyed re-screen").
            let subset = Index::build_subset(&entries, &ids).with_frequencies_of(&loaded.index);
            (std::sync::Arc::new(subset), entries.len())
        })
        .await
        .map_err(|e| format!("subset index: {e}"))?
    };
    // Only the customers sharing a screening key with a changed entry, when the keyed index
    // covers every customer; every customer otherwise (docs/design/0008, "Keyed re-screen").
    let keyed = keyed_customers(state, &subset, change.added_or_changed.len(), list_entries)
        .await?
        .map(std::sync::Arc::new);
    let pass = if keyed.is_some() { "keyed" } else { "all" };
    let mut screened = 0u64;
    // The lease is renewed when a quarter of it has passed, not with every batch: each
    // renewal is a durable write, and nobody can take a lease before it ends.
    let mut renewed = std::time::Instant::now();
    let renew_every = std::time::Duration::from_micros((RESCREEN_LEASE_MICROS / 4) as u64);
    // A page of customers and the cursor after it (`None`: no more).
    let page = |after: Option<Uuid>| {
        let keyed = keyed.clone();
        async move {
            match keyed {
                None => {
                    let rows = state
                        .store
                        .scan_customer_digests(
                            cip_store::DigestPart::Screening,
                            after,
                            RESCREEN_BATCH,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    let next = rows.last().map(|r| r.id);
                    Ok::<_, String>((rows, next))
                }
                Some(ids) => {
                    let start = after.map_or(0, |a| ids.partition_point(|id| *id <= a));
                    let end = ids.len().min(start + RESCREEN_BATCH as usize);
                    let chunk = ids.get(start..end).unwrap_or_default();
                    let rows = state
                        .store
                        .customer_digests(cip_store::DigestPart::Screening, chunk)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok((rows, chunk.last().copied()))
                }
            }
        }
    };
    let (mut rows, mut cursor) = page(None).await?;
    while let Some(last) = cursor {
        let after = Some(last);
        if renewed.elapsed() >= renew_every {
            if !claim(state, lease, holder).await? {
                return Err(format!(
                    "the lease {lease} was lost mid-run; another instance took it over"
                ));
            }
            renewed = std::time::Instant::now();
        }
        let keyring = state.keyring();
        let threshold = state.screening_threshold;
        let subset = subset.clone();
        let screening = tokio::task::spawn_blocking(move || -> Result<_, String> {
            // Each record's digest (not its document): the screened data only.
            let hits = crate::records::digest::par_map(&rows, |row| {
                let digest = crate::records::digest::screening_of_row(&keyring, row)?;
                Ok((
                    row.id,
                    find_hits(&keyring, &subset, &digest.subjects(), threshold),
                ))
            })?;
            let out: Vec<_> = hits.into_iter().filter(|(_, h)| !h.is_empty()).collect();
            Ok((rows.len(), out))
        });
        // The next page is read while this one is screened.
        let (batch_hits, next) = tokio::join!(screening, page(after));
        let batch_hits = batch_hits.map_err(|e| format!("re-screen task: {e}"))??;
        screened += batch_hits.0 as u64;
        for (customer_id, hits) in batch_hits.1 {
            open_items(state, customer_id, hits, &loaded.versions, &cause).await?;
        }
        (rows, cursor) = next?;
    }
    mark_rescreened(state, &change, screened, pass, &cause).await?;
    Ok(Ran::Did(screened))
}

/// The customers a list change can concern, by the keyed index: those sharing a blinded
/// screening key with the index of the changed entries (a customer sharing none has no
/// candidate among them, at any threshold). `None` — read every customer — when some
/// customer is not keyed yet (the backfill has not reached it), or when the change is most
/// of the list (a new list, a re-screen against every entry at start-up): then nearly every
/// customer shares a key and one pass over all of them is cheaper than the lookups.
async fn keyed_customers(
    state: &AppState,
    subset: &std::sync::Arc<Index>,
    changed: usize,
    list_entries: usize,
) -> Result<Option<Vec<Uuid>>, String> {
    if changed.saturating_mul(2) > list_entries {
        return Ok(None);
    }
    if !crate::screen_keys::all_keyed(state).await? {
        return Ok(None);
    }
    let subset = subset.clone();
    let threshold = state.screening_threshold;
    let bound = tokio::task::spawn_blocking(move || subset.change_bound(threshold))
        .await
        .map_err(|e| format!("threshold bound of the change: {e}"))?;
    crate::screen_keys::customers_to_read(state, std::sync::Arc::new(bound))
        .await
        .map(|(read, _)| Some(read))
}

/// The meta key that remembers up to which version of a list stored customers were
/// re-screened. Kept in the database, so a re-screen lost to a restart (or a list imported
/// by the CLI while no server ran) is found and run at the next start.
pub fn rescreened_key(list_id: &str) -> String {
    format!("screening.rescreened.{list_id}")
}

/// Records that the re-screen of `change` is complete. The same entry, in the same
/// transaction, says the system read every customer's screened data.
async fn mark_rescreened(
    state: &AppState,
    change: &ListChange,
    screened: u64,
    pass: &str,
    cause: &Cause,
) -> Result<(), String> {
    let audit = AuditDraft {
        at: crate::time::now_micros(),
        actor: cause.actor.clone(),
        role: cause.role.clone(),
        action: "customer.rescreen".into(),
        record_type: "screening_list".into(),
        record_id: Some(change.list_id.clone()),
        fields: vec![
            format!("version={}", change.version),
            format!("customers={screened}"),
            format!("entries={}", change.added_or_changed.len()),
            // `keyed`: only the customers sharing a screening key with a changed entry.
            format!("pass={pass}"),
            "read=/identity,/payment_methods,/beneficial_owners".into(),
        ],
        request_id: None,
        purpose: Some("continuous screening after a list change".into()),
    };
    // The marker is a high-water mark: when a later version of this list finished first (on
    // another instance, whose queue order differed), it stays; the read is still recorded.
    if rescreened_version(state, &change.list_id).await? >= Some(change.version) {
        return state
            .store
            .append_audit(vec![audit])
            .await
            .map_err(|e| e.to_string());
    }
    state
        .store
        .set_meta(
            &rescreened_key(&change.list_id),
            change.version.to_string().as_bytes(),
            audit,
        )
        .await
        .map_err(|e| e.to_string())
}
