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
        if state
            .store
            .reseal_customer(row.id, row.version, doc, keyring.active_key_id())
            .await
            .map_err(|e| e.to_string())?
        {
            done += 1;
        }
    }
    Ok(Ran::Did(done))
}
