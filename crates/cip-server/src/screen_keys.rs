//! The keyed re-screen's index (docs/design/0008-screening-service.md, "Keyed re-screen"):
//! every customer's screening keys — the engine's keys through which screening can find a
//! candidate for any of its subjects — blinded under a key derived from the index root, and
//! stored with each version of the record. A list change then looks up the keys of the
//! changed entries and reads only the customers that share one, instead of every customer:
//! a customer sharing none cannot be a candidate of any changed entry
//! (`cip_screen::PreparedQuery::screen_keys`, proven in `cip-screen/tests/screen_keys.rs`).
//! The stored set also holds the alignment keys, from which the change's threshold bound
//! (`cip_screen::ChangeBound`) skips the sharing customers that cannot reach the threshold
//! ([`customers_to_read`]).
//!
//! Records without keys of the current [`GENERATION`] (written before migration 0012, or
//! keyed under an earlier derivation) are keyed by [`backfill_run_once`]; until every
//! customer is keyed, a list change reads every customer as before ([`all_keyed`]).

use cip_screen::{ChangeBound, PreparedQuery, Query, YearSignature};
use cip_store::{AuditDraft, KeyHolder, ScreenKeys};
use cip_vault::Keyring;
use uuid::Uuid;

use crate::jobs::Ran;
use crate::records::digest;
use crate::state::AppState;

/// The derivation of the stored keys: the engine's key version, the birth-year signature's
/// ([`SIGNATURE_VERSION`]) and the blinding key's version. Changing any makes every stored
/// key set stale: the backfill re-keys each customer and, until it is done, list changes
/// re-screen every customer.
pub const GENERATION: i64 = cip_screen::SCREEN_KEYS_VERSION as i64 * 1000
    + SIGNATURE_VERSION * 100
    + cip_vault::SCREEN_KEY_BLIND_VERSION as i64;

/// Version of the birth-year signature stored with the keys ([`year_bucket`]; 0: none was
/// stored, before migration 0013).
const SIGNATURE_VERSION: i64 = 1;

/// The bucket of a birth year in a [`YearSignature`]: the low six bits of the year blinded
/// like a key, so the stored signature does not hold the year (docs/design/0008, "The
/// birth-date factor of the bound"). Years share buckets; that only costs pruning.
fn year_bucket(keyring: &Keyring, year: u16) -> u8 {
    let plain = (u64::from(b'y') << 56) | u64::from(year);
    keyring
        .blind_screen_keys(&[plain])
        .first()
        .map_or(0, |b| (*b as u64 % 64) as u8)
}

/// The blinded screening keys of a record's screening queries (its digest's `queries`: the
/// customer and each beneficial owner). A query the engine refuses (nothing left of its names
/// and no identifier) is not screened (`reviews::find_hits`), so it has no keys.
pub fn of_queries(keyring: &Keyring, queries: &[Query]) -> ScreenKeys {
    let prepared: Vec<PreparedQuery> = queries
        .iter()
        .filter_map(|q| PreparedQuery::new(q).ok())
        .collect();
    let mut plain: Vec<u64> = prepared
        .iter()
        // The screening keys, and the alignment keys the threshold bound of a list change
        // reads (`cip_screen::ChangeBound`).
        .flat_map(|q| {
            let mut k = q.screen_keys();
            k.extend(q.alignment_keys());
            k
        })
        .collect();
    plain.sort_unstable();
    plain.dedup();
    let born = YearSignature::of(&prepared, |y| year_bucket(keyring, y));
    ScreenKeys {
        generation: GENERATION,
        keys: keyring.blind_screen_keys(&plain),
        born: born.0 as i64,
    }
}

/// Whether every stored customer has keys of the current generation. The keyed count is read
/// before the customer count: customers are never deleted and a key set exists only for a
/// stored customer, so equal counts mean every customer that existed at the first read was
/// keyed (a customer written in between only makes the second count larger).
pub async fn all_keyed(state: &AppState) -> Result<bool, String> {
    let (keyed, customers) = status(state).await?;
    Ok(keyed >= customers)
}

/// Looked up per statement: the keys of a large change go in several lookups.
const LOOKUP_CHUNK: usize = 20_000;

/// The customers a change can give a candidate at or above the bound's threshold, in id
/// order: those
/// sharing a key with `bound` (its screening keys, alignment keys and identifiers) that the
/// bound does not rule out (`ChangeBound::may_reach`, docs/design/0008, "The threshold
/// bound"). Also returns how many customers shared a key.
pub async fn customers_to_read(
    state: &AppState,
    bound: std::sync::Arc<ChangeBound>,
) -> Result<(Vec<Uuid>, usize), String> {
    // Each key blinded on its own, to read back which plain keys a customer shares.
    let keyring = state.keyring();
    let mut blinded: Vec<(i64, u64)> = bound
        .keys()
        .iter()
        .filter_map(|k| Some((*keyring.blind_screen_keys(&[*k]).first()?, *k)))
        .collect();
    blinded.sort_unstable();
    let lookup: Vec<i64> = blinded.iter().map(|(b, _)| *b).collect();
    let mut holders = Vec::new();
    for chunk in lookup.chunks(LOOKUP_CHUNK) {
        holders.extend(
            state
                .store
                .screen_key_holders(chunk)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    tokio::task::spawn_blocking(move || {
        // The change's birth-date windows in the stored signatures' buckets.
        let masks = bound.year_masks(|y| year_bucket(&keyring, y));
        // By customer (several chunks each come sorted).
        holders.sort_unstable();
        let mut read = Vec::new();
        let mut sharing = 0;
        let mut shared: Vec<u64> = Vec::new();
        let mut scratch = cip_screen::BoundScratch::default();
        for group in holders.chunk_by(|a, b| a.customer == b.customer) {
            let Some(&KeyHolder { customer, .. }) = group.first() else {
                continue;
            };
            sharing += 1;
            shared.clear();
            shared.extend(group.iter().filter_map(|h| {
                let i = blinded.binary_search_by_key(&h.key, |(b, _)| *b).ok()?;
                blinded.get(i).map(|(_, p)| *p)
            }));
            shared.sort_unstable();
            shared.dedup();
            // One write stores a customer's rows with one signature; rows read by different
            // statements may straddle a write: unknown (0) then, unless they agree.
            let born = group
                .iter()
                .map(|h| h.born)
                .reduce(|a, b| if a == b { a } else { 0 });
            let born = YearSignature(born.unwrap_or(0) as u64);
            if bound.may_reach_with(&shared, Some((&masks, born)), &mut scratch) {
                read.push(customer);
            }
        }
        (read, sharing)
    })
    .await
    .map_err(|e| format!("threshold bound: {e}"))
}

/// One pass of the backfill: keys every customer that has no keys of the current generation
/// (records written before migration 0012, or keyed under an earlier derivation), a page at a
/// time, from each record's digest (the document where there is none). Each page's keys and
/// the audit entry of that read commit together; a record changed meanwhile keeps the keys
/// its own write brought. A record that cannot be opened stays unkeyed (logged by id), and
/// list changes keep re-screening every customer while any is. `Idle` when every customer is
/// keyed.
pub async fn backfill_run_once(state: &AppState, batch: u32) -> Result<Ran, String> {
    if all_keyed(state).await? {
        return Ok(Ran::Idle);
    }
    let stored = backfill(state, batch, &|_| {}).await?;
    Ok(if stored > 0 {
        Ran::Did(stored)
    } else {
        Ran::Idle
    })
}

/// How far the keyed index is: customers keyed under the current generation, and all
/// customers. The re-screen uses the index only when the two are equal. The keyed count is
/// read first: customers are never deleted, so equal counts mean every customer that
/// existed at the first read is keyed.
pub async fn status(state: &AppState) -> Result<(u64, u64), String> {
    let keyed = state
        .store
        .count_screen_keyed(GENERATION)
        .await
        .map_err(|e| e.to_string())?;
    let customers = state
        .store
        .count_customers()
        .await
        .map_err(|e| e.to_string())?;
    Ok((keyed, customers))
}

/// The backfill itself (`backfill_run_once` and `cip lists keys --backfill`): every customer
/// without keys of the current generation, a page of `batch` at a time; `progress` is called
/// with the customers read after each page. Returns the customers keyed.
pub async fn backfill(
    state: &AppState,
    batch: u32,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, String> {
    let mut after: Option<Uuid> = None;
    let mut stored = 0u64;
    loop {
        let rows = state
            .store
            .customers_without_screen_keys(GENERATION, after, batch)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        progress(rows.len() as u64);
        let keyring = state.keyring();
        let derived = tokio::task::spawn_blocking(move || {
            digest::par_map(&rows, |row| {
                Ok(match digest::screening_of_row(&keyring, row) {
                    Ok(d) => Ok((row.id, row.version, of_queries(&keyring, &d.queries))),
                    Err(_) => Err(row.id),
                })
            })
        })
        .await
        .map_err(|e| format!("screening keys task: {e}"))??;
        let mut keys = Vec::with_capacity(derived.len());
        for d in derived {
            match d {
                Ok(k) => keys.push(k),
                Err(id) => tracing::warn!(
                    customer_id = %id,
                    "the record could not be opened to derive its screening keys; list changes re-screen every customer until it is keyed"
                ),
            }
        }
        if keys.is_empty() {
            continue;
        }
        let now = crate::time::now_micros();
        let audit = AuditDraft {
            at: now,
            actor: "system:screen-keys".into(),
            role: "system".into(),
            action: "customer.screen_keys".into(),
            record_type: "customer".into(),
            record_id: None,
            fields: vec![
                format!("customers={}", keys.len()),
                format!("generation={GENERATION}"),
                "read=digest(screening queries)".into(),
            ],
            request_id: None,
            purpose: Some("keyed index of screening keys".into()),
        };
        stored += state
            .store
            .put_screen_keys(keys, audit)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(stored)
}
