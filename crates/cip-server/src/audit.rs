//! The audit trail's integrity: verification of the hash chain and of the signed checkpoints,
//! and the periodic checkpoint that seals the chain head.

use cip_store::{CheckpointRow, Store, StoreError, canonical_audit_body};
use cip_vault::{ChainVerifier, CheckpointKey};
use serde::Serialize;
use utoipa::ToSchema;

/// What `cip audit verify` and `GET /v1/audit/verify` report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: u64,
    pub head_seq: u64,
    /// Hex of the head hash.
    pub head_hash: String,
    pub checkpoints: u64,
    /// Every problem found, as auditor-readable sentences.
    pub problems: Vec<String>,
}

/// Walks the whole chain in order. `progress` is called with the number of entries checked.
pub async fn verify(
    store: &dyn Store,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, StoreError> {
    let mut verifier = ChainVerifier::new();
    let mut problems = Vec::new();
    let mut entries = 0u64;
    let mut from = 1i64;
    let mut hashes_at = std::collections::HashMap::new();
    let checkpoints = store.list_checkpoints().await?;
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    'outer: loop {
        let batch = store.audit_range(from, 5000).await?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            if let Err(b) = verifier.push(
                e.seq as u64,
                &canonical_audit_body(&e.draft),
                &e.hash,
                &e.prev_hash,
            ) {
                problems.push(b.to_string());
                break 'outer;
            }
            if wanted.contains(&e.seq) {
                hashes_at.insert(e.seq, e.hash);
            }
            entries += 1;
        }
        progress(entries);
        from = batch.last().map(|e| e.seq + 1).unwrap_or(from);
    }
    let (head_seq, head_hash) = verifier.head();
    for cp in &checkpoints {
        let sig: Result<[u8; 64], _> = cp.signature.as_slice().try_into();
        let signed = sig.map_err(|_| ()).and_then(|sig| {
            cip_vault::verify_checkpoint(&cp.public_key, cp.seq as u64, &cp.head_hash, cp.at, &sig)
                .map_err(|_| ())
        });
        if signed.is_err() {
            problems.push(format!(
                "checkpoint at entry {} has an invalid signature",
                cp.seq
            ));
            continue;
        }
        match hashes_at.get(&cp.seq) {
            Some(h) if *h == cp.head_hash => {}
            Some(_) => problems.push(format!(
                "checkpoint at entry {} sealed a different chain: entries up to {} were changed after it was signed",
                cp.seq, cp.seq
            )),
            None if problems.is_empty() => problems.push(format!(
                "checkpoint at entry {} seals an entry that is no longer in the trail: entries were deleted",
                cp.seq
            )),
            None => {}
        }
    }
    Ok(VerifyReport {
        ok: problems.is_empty(),
        entries,
        head_seq,
        head_hash: hex::encode(head_hash),
        checkpoints: checkpoints.len() as u64,
        problems,
    })
}

/// Signs the current chain head, unless it is already sealed. Returns the sealed sequence.
pub async fn checkpoint(store: &dyn Store, key: &CheckpointKey) -> Result<Option<i64>, StoreError> {
    let (seq, hash) = store.audit_head().await?;
    if seq == 0 {
        return Ok(None);
    }
    let existing = store.list_checkpoints().await?;
    if existing.last().is_some_and(|c| c.seq >= seq) {
        return Ok(None);
    }
    let at = crate::time::now_micros();
    let signature = cip_vault::sign_checkpoint(key, seq as u64, &hash, at);
    store
        .insert_checkpoint(CheckpointRow {
            seq,
            head_hash: hash,
            at,
            signature: signature.to_vec(),
            public_key: key.verifying_key_bytes(),
        })
        .await?;
    Ok(Some(seq))
}
