use std::sync::{Arc, RwLock};

use cip_store::Store;
use cip_vault::{CheckpointKey, Keyring, MasterKey};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub access: Arc<dyn cip_access::AccessStore>,
    /// Ingestion requests in flight at once (4): the rest wait, so a flood of event batches
    /// cannot take every worker from the other routes. Those in flight parse in parallel and
    /// are stored together (the access writer's group commit).
    pub access_ingest: Arc<tokio::sync::Semaphore>,
    pub access_max_body_bytes: usize,
    pub access_future_skew_micros: i64,
    /// Countries of IP addresses (`geoip_db`; without it every country is unknown).
    pub geoip: Arc<dyn crate::geoip::Geolocate>,
    pub keyring: Arc<RwLock<Arc<Keyring>>>,
    pub master: Arc<MasterKey>,
    pub checkpoint_key: Arc<CheckpointKey>,
    pub max_body_bytes: usize,
    /// Policy default from the proposed rule: owners of ≥25 % are beneficial owners.
    pub ownership_threshold_bp: u16,
    /// The screening index over every list's active version.
    pub screening: Arc<crate::screening::Screening>,
    /// Hits at or above this score open a review item (`screening_threshold`, default 0.80).
    pub screening_threshold: f32,
    /// One-time code settings and sender, the failure limit (docs/design/0011).
    pub verification: Arc<crate::verification::Verification>,
    /// Cip ids of accounts met by access-event ingestion (HTTP, the stream), shared by every
    /// request so a batch does not look each account up again.
    pub access_accounts: crate::access::KnownAccounts,
    /// `last_accessed_at` advances of ingested events, written within two seconds by a job
    /// (and read through by the account views meanwhile).
    pub last_access: Arc<crate::access::LastAccess>,
}

impl AppState {
    pub fn keyring(&self) -> Arc<Keyring> {
        crate::install::current_keyring(&self.keyring)
    }
}
