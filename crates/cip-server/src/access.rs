//! The access record's glue between the API/CLI and `cip-access`: opening the engine beside
//! the identity store, sealing its free text with the installation's keys, resolving the
//! accounts events name (cip id or the provider's external id), keeping `last_accessed_at`
//! current, and the retention job.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cip_access::parse::{ParsedEvent, Rejected};
use cip_access::{AccessError, AccessEvent, AccessStore, AccountClock, ImportMark, IngestOutcome};
use cip_store::Store;
use cip_vault::{BlindIndexKind, Keyring};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::Config;

/// Seals access-event text with the installation's active data key; the dictionary hash is
/// the blind index of kind `access_text` (stable across data-key rotations).
pub struct KeyringText {
    pub keyring: Arc<RwLock<Arc<Keyring>>>,
}

const TEXT_AAD: &[u8] = b"access/text";

impl cip_access::TextVault for KeyringText {
    fn blind(&self, value: &str) -> [u8; 16] {
        let h = crate::install::current_keyring(&self.keyring)
            .blind_index(BlindIndexKind::AccessText, value);
        let mut out = [0u8; 16];
        out.copy_from_slice(&h[..16]);
        out
    }

    fn seal(&self, value: &str) -> cip_access::Result<Vec<u8>> {
        crate::install::current_keyring(&self.keyring)
            .seal_str(TEXT_AAD, value)
            .map_err(|e| AccessError::Storage(format!("sealing: {e}")))
    }

    fn open(&self, sealed: &[u8]) -> cip_access::Result<String> {
        crate::install::current_keyring(&self.keyring)
            .open_str(TEXT_AAD, sealed)
            .map(|s| s.to_string())
            .map_err(|e| AccessError::Storage(format!("opening: {e}")))
    }
}

/// Opens the access record: `<data dir>/access/` with the embedded store, the same
/// PostgreSQL database (its own tables) otherwise.
pub async fn open(
    config: &Config,
    keyring: Arc<RwLock<Arc<Keyring>>>,
) -> Result<Arc<dyn AccessStore>, AccessError> {
    let vault = Arc::new(KeyringText { keyring });
    match &config.database_url {
        Some(url) if url.expose_secret().starts_with("postgres") => Ok(Arc::new(
            cip_access::postgres::PgAccess::open(
                url.expose_secret(),
                config.postgres_max_connections,
                vault,
            )
            .await?,
        )),
        _ => Ok(Arc::new(cip_access::sqlite::SqliteAccess::open(
            &config.data_dir.join("access"),
            vault,
        )?)),
    }
}

/// Cip ids known to name an account, shared by the resolvers of a process (every HTTP
/// request, the stream consumer). Accounts are never deleted, so a hit stays true; external
/// ids are not kept here, since `PATCH` can move one to another account. Bounded: emptied
/// when it reaches [`KnownAccounts::MAX`] ids (about 100 MB).
#[derive(Clone, Default)]
pub struct KnownAccounts(Arc<RwLock<std::collections::HashSet<Uuid>>>);

impl KnownAccounts {
    pub const MAX: usize = 2_000_000;

    fn contains(&self, id: &Uuid) -> bool {
        self.0.read().is_ok_and(|s| s.contains(id))
    }

    fn insert(&self, id: Uuid) {
        if let Ok(mut s) = self.0.write() {
            if s.len() >= Self::MAX {
                s.clear();
            }
            s.insert(id);
        }
    }
}

/// Account references → cip ids, remembered for the life of the resolver (one request, one
/// import run), and cip ids for the life of the process when given [`KnownAccounts`]. A
/// reference is a cip id when it parses as one and such an account exists, else the
/// provider's external id.
#[derive(Default)]
pub struct Resolver {
    known: HashMap<String, Option<Uuid>>,
    accounts: Option<KnownAccounts>,
}

impl Resolver {
    /// A resolver that also consults and fills the process-wide set of known cip ids.
    pub fn with_known(accounts: KnownAccounts) -> Self {
        Resolver {
            known: HashMap::new(),
            accounts: Some(accounts),
        }
    }

    pub async fn resolve(
        &mut self,
        store: &dyn Store,
        reference: &str,
    ) -> Result<Option<Uuid>, cip_store::StoreError> {
        if let Some(hit) = self.known.get(reference) {
            return Ok(*hit);
        }
        let mut found = None;
        if let Ok(id) = Uuid::parse_str(reference) {
            if self.accounts.as_ref().is_some_and(|k| k.contains(&id)) {
                found = Some(id);
            } else if store.get_account(id).await?.is_some() {
                if let Some(k) = &self.accounts {
                    k.insert(id);
                }
                found = Some(id);
            }
        }
        if found.is_none() {
            found = store
                .get_account_by_external_id(reference)
                .await?
                .map(|a| a.id);
        }
        self.known.insert(reference.to_string(), found);
        Ok(found)
    }
}

/// Why an ingestion failed as a whole (nothing from the failing batch is acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Access(#[from] AccessError),
    #[error("{0}")]
    Store(#[from] cip_store::StoreError),
}

/// Resolves and stores durably, then queues the `last_accessed_at` advances (written by
/// [`LastAccess::run`] within [`LastAccess::EVERY`]). Lines naming an unknown account join
/// `rejected`.
pub async fn ingest(
    store: &dyn Store,
    access: &dyn AccessStore,
    last_access: &LastAccess,
    resolver: &mut Resolver,
    parsed: Vec<(u64, ParsedEvent)>,
    rejected: &mut Vec<Rejected>,
    mark: Option<ImportMark>,
) -> Result<IngestOutcome, IngestError> {
    let (outcome, last) =
        ingest_then_touch(store, access, resolver, parsed, rejected, mark).await?;
    last_access.add(last);
    Ok(outcome)
}

/// `last_accessed_at` advances waiting to be written, coalesced: each account once, at its
/// latest time, however many batches named it (docs/design/0016). Writing them batch by batch
/// rewrote an account row per account per batch — at 500,000 accounts, half a core of the
/// identity store during an import. Readers of an account ([`LastAccess::pending`]) see the
/// advance at once; the store sees it within [`LastAccess::EVERY`]. An advance lost in a crash
/// cannot shorten retention (it takes an account's last access from the access record too:
/// `cip_access::expired_segments`); the next event of the account writes it again.
#[derive(Default)]
pub struct LastAccess {
    pending: std::sync::Mutex<HashMap<Uuid, i64>>,
    wake: tokio::sync::Notify,
}

impl LastAccess {
    /// The longest a queued advance waits before it is written.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(2);

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, i64>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues advances (an account's latest time wins).
    pub fn add(&self, times: Vec<(Uuid, i64)>) {
        if times.is_empty() {
            return;
        }
        {
            let mut p = self.lock();
            for (id, at) in times {
                let t = p.entry(id).or_insert(at);
                *t = (*t).max(at);
            }
        }
        self.wake.notify_one();
    }

    /// The queued advance of an account, if any (not yet in the store).
    pub fn pending(&self, id: Uuid) -> Option<i64> {
        self.lock().get(&id).copied()
    }

    /// Writes every queued advance in one call; on failure they are queued again.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), cip_store::StoreError> {
        let mut batch: Vec<(Uuid, i64)> = std::mem::take(&mut *self.lock()).into_iter().collect();
        if batch.is_empty() {
            return Ok(());
        }
        batch.sort_unstable();
        if let Err(e) = store.touch_last_accessed(batch.clone()).await {
            self.add(batch);
            return Err(e);
        }
        Ok(())
    }

    /// Writes queued advances until `cancel`: when one arrives, then at most every
    /// [`LastAccess::EVERY`]. The server flushes once more after its requests have drained.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            if let Err(e) = self.flush(store.as_ref()).await {
                tracing::warn!(error = %e, "last_accessed_at not advanced; will retry");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Self::EVERY) => {}
            }
        }
    }
}

/// [`ingest`] up to the durable store: returns, beside the outcome, the `last_accessed_at`
/// times the caller must queue next ([`LastAccess::add`]; the importer keeps its own queue and
/// writes it on its own pace).
pub async fn ingest_then_touch(
    store: &dyn Store,
    access: &dyn AccessStore,
    resolver: &mut Resolver,
    parsed: Vec<(u64, ParsedEvent)>,
    rejected: &mut Vec<Rejected>,
    mark: Option<ImportMark>,
) -> Result<(IngestOutcome, Vec<(Uuid, i64)>), IngestError> {
    let events = resolve_events(store, resolver, parsed, rejected).await?;
    store_events(access, events, mark).await
}

/// The first half of [`ingest_then_touch`]: each event's account reference resolved to its cip
/// id; lines naming an unknown account join `rejected`. The importer resolves the next batch
/// while the previous one is being stored.
pub async fn resolve_events(
    store: &dyn Store,
    resolver: &mut Resolver,
    parsed: Vec<(u64, ParsedEvent)>,
    rejected: &mut Vec<Rejected>,
) -> Result<Vec<AccessEvent>, IngestError> {
    let mut events = Vec::with_capacity(parsed.len());
    for (line, p) in parsed {
        match resolver.resolve(store, &p.account).await? {
            Some(account) => events.push(AccessEvent {
                account,
                principal: p.principal,
                ip: p.ip,
                at: p.at,
                action: p.action,
                user_agent: p.user_agent,
                session: p.session,
                resource: p.resource,
                event_id: p.event_id,
            }),
            None => rejected.push(Rejected {
                line,
                reason: "account: no account has this cip id or external id".into(),
            }),
        }
    }
    Ok(events)
}

/// The second half of [`ingest_then_touch`]: resolved events stored durably; returns the
/// outcome and the `last_accessed_at` times to queue.
pub async fn store_events(
    access: &dyn AccessStore,
    events: Vec<AccessEvent>,
    mark: Option<ImportMark>,
) -> Result<(IngestOutcome, Vec<(Uuid, i64)>), IngestError> {
    let last = cip_access::last_access_by_account(&events);
    let outcome = access.ingest(events, mark).await?;
    metrics::counter!("cip_access_events_accepted_total").increment(outcome.accepted);
    metrics::counter!("cip_access_events_duplicate_total").increment(outcome.duplicates);
    Ok((outcome, last))
}

/// One pass of retention: drops the segments whose every account is two years past the later
/// of closure and last access and not under legal hold. Returns the segments dropped.
pub async fn retention_run_once(
    store: &dyn Store,
    access: &dyn AccessStore,
    now: i64,
) -> Result<u32, IngestError> {
    let clock = |id: Uuid| async move {
        store
            .get_account(id)
            .await
            .map(|a| {
                a.map(|a| AccountClock {
                    closed_at: a.closed_at,
                    last_accessed_at: a.last_accessed_at,
                })
            })
            .map_err(|e| AccessError::Storage(e.to_string()))
    };
    Ok(cip_access::retention_run_once(access, now, clock).await?)
}

/// The addresses of an account grouped by the country they geolocate to: when it was first
/// and last accessed from there, how often, from how many addresses, and the address it was
/// first accessed from. Countries are looked up now, with the database configured now
/// (docs/design/0012): `None` collects the addresses whose country is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryUse {
    pub country: Option<cip_core::parse::CountryCode>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    pub ips: u64,
    pub first_ip: cip_access::IpKey,
}

pub fn countries(geo: &dyn crate::geoip::Geolocate, ips: &[cip_access::IpUse]) -> Vec<CountryUse> {
    let mut by: Vec<CountryUse> = Vec::new();
    for u in ips {
        let c = geo.country(cip_access::ip_from_key(u.ip));
        match by.iter_mut().find(|x| x.country == c) {
            Some(x) => {
                if u.first_seen < x.first_seen {
                    x.first_seen = u.first_seen;
                    x.first_ip = u.ip;
                }
                x.last_seen = x.last_seen.max(u.last_seen);
                x.count += u.count;
                x.ips += 1;
            }
            None => by.push(CountryUse {
                country: c,
                first_seen: u.first_seen,
                last_seen: u.last_seen,
                count: u.count,
                ips: 1,
                first_ip: u.ip,
            }),
        }
    }
    // First accessed from first; unknown last.
    by.sort_by_key(|x| (x.country.is_none(), x.first_seen));
    by
}
