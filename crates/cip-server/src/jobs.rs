//! Background jobs as `run_once` functions: each does one bounded step and says whether it
//! found work, so tests drive them directly and never sleep.

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

/// One pass of the lifecycle's due work (`DuePolicy::rules`): accounts pending verification
/// past the deadline fail, failed accounts past the closing period close, active accounts
/// past the re-verification interval become due. Each move is an ordinary transition
/// (account, transition, webhook event and audit in one transaction) made with the version
/// read, so when several instances run this pass at once, each move commits exactly once
/// and the others see a version conflict and skip it.
pub async fn lifecycle_run_once(
    state: &AppState,
    policy: &cip_core::lifecycle::DuePolicy,
    now: i64,
    batch: u32,
) -> Result<Ran, String> {
    let mut moved = 0u64;
    for (from, to, after_secs, reason) in policy.rules() {
        let due = state
            .store
            .accounts_in_status_since(from.as_str(), now - after_secs * 1_000_000, batch)
            .await
            .map_err(|e| e.to_string())?;
        for current in due {
            // `false`: another instance (or a request) changed it first; its change stands.
            if crate::api::lifecycle::system_transition(
                state.store.as_ref(),
                &current,
                to,
                reason,
                SYSTEM_ACTOR,
                None,
                now,
            )
            .await?
            {
                moved += 1;
            }
        }
    }
    // Every account that failed (by the deadline above, or by failed checks) becomes an
    // unverified case for an analyst (docs/design/0011). Cases are not counted as moves: a
    // backlog beyond `batch` is opened by the next passes.
    crate::verification::open_cases(state, batch).await?;
    Ok(if moved == 0 {
        Ran::Idle
    } else {
        Ran::Did(moved)
    })
}

/// The actor recorded for moves the lifecycle job makes.
pub const SYSTEM_ACTOR: &str = "system:lifecycle";
