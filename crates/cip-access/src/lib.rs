//! `cip-access`: the access record (EO 13984 §1(a)(ii)(D)) — every IP address and time of
//! access or administrative action, for every account, for years. It owns the parsing of
//! access events at the boundary (NDJSON, CSV, gzip of either; [`parse`]), the storage engines
//! behind one trait, [`AccessStore`] (SQLite segment files, [`sqlite`]; time-partitioned
//! PostgreSQL with `COPY`, [`postgres`]), and the conformance suite both pass.
//!
//! It is a path of its own, apart from `cip-store`: access events are the highest-volume data
//! cip holds, so they never share a database file, a writer or a lock with the identity
//! records. It must never depend on HTTP (axum), on the identity store (`cip-store`) or on key
//! material: accounts arrive here already resolved to cip ids.
//!
//! Invariants:
//! - An ingest call returns only after its events are durable (SQLite `synchronous = FULL`,
//!   PostgreSQL commit).
//! - An event is stored once: its identity (account, time, ip, principal, action, event id)
//!   is checked before it is stored (PostgreSQL: the primary key; SQLite: the segment's tail
//!   and runs), so a re-sent batch or a resumed import adds nothing twice, and the summaries
//!   count only events that were new.
//! - The summaries (account → IPs, IP → accounts) change in the same transaction as the
//!   events they summarise (SQLite: a run's address lists are written with its blocks, in the
//!   transaction that takes the same events out of the log).

pub mod conformance;
pub mod parse;
pub mod postgres;
pub mod sqlite;

use std::net::IpAddr;
use std::path::Path;

use async_trait::async_trait;
use uuid::Uuid;

pub use parse::Action;

/// The width of a segment (a SQLite file, a PostgreSQL partition) and so the retention
/// granule: 13 weeks. Measured: with weekly segments a typical account (about two events a
/// week) paid its dictionary entries and summaries every week, 138 bytes per event in all;
/// 13-week segments spread them over ~13 times more events (BENCHMARKS.md).
pub const SEGMENT_MICROS: i64 = 13 * 7 * 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessError {
    #[error("storage full: {0}")]
    DiskFull(String),
    #[error("access store: {0}")]
    Storage(String),
    #[error("bad cursor")]
    BadCursor,
    /// An I/O error of the engine's files, before it is known whether storage ran out
    /// ([`storage_exhausted`] decides; see `sqlite::SqliteAccess`).
    #[error("storage I/O error: {0}")]
    Io(String),
}

impl From<rusqlite::Error> for AccessError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::DiskFull
        {
            return AccessError::DiskFull(e.to_string());
        }
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::SystemIoFailure
        {
            return AccessError::Io(e.to_string());
        }
        AccessError::Storage(e.to_string())
    }
}

impl From<sqlx::Error> for AccessError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error()
            && db.code().as_deref() == Some("53100")
        {
            return AccessError::DiskFull(e.to_string());
        }
        AccessError::Storage(e.to_string())
    }
}

impl From<std::io::Error> for AccessError {
    fn from(e: std::io::Error) -> Self {
        if matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::FileTooLarge
        ) {
            return AccessError::DiskFull(e.to_string());
        }
        AccessError::Storage(e.to_string())
    }
}

pub type Result<T, E = AccessError> = std::result::Result<T, E>;

/// Below this much free space, an I/O error while writing is storage running out.
const LOW_SPACE_BYTES: u64 = 64 << 20;

/// Whether the storage under `dir` is exhausted, and how: the file system nearly full, or a
/// file of `dir` at the process's file-size limit (`ulimit -f`, systemd `LimitFSIZE=`).
///
/// Why it exists: SQLite reports ENOSPC met by `write()` as `SQLITE_FULL`, but the same
/// exhaustion met elsewhere — EFBIG under a file-size limit, ENOSPC from `fallocate`,
/// `ftruncate` or `fsync` — arrives as a generic `SQLITE_IOERR_*`, and rusqlite does not
/// carry the errno. So after an I/O error the engine looks at the storage itself.
pub fn storage_exhausted(dir: &Path) -> Option<String> {
    if let Ok(v) = rustix::fs::statvfs(dir) {
        let free = v.f_bavail.saturating_mul(v.f_frsize);
        if free < LOW_SPACE_BYTES {
            return Some(format!(
                "no space left: the access record's file system has {free} bytes free"
            ));
        }
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize).current?;
    let at_limit = std::fs::read_dir(dir).ok()?.any(|e| {
        e.and_then(|e| e.metadata())
            .is_ok_and(|m| m.len().saturating_add(1 << 20) >= limit)
    });
    at_limit.then(|| {
        format!("a file of the access record reached the process's file size limit ({limit} bytes, RLIMIT_FSIZE)")
    })
}

/// An [`AccessError::Io`] becomes [`AccessError::DiskFull`] when the storage under `dir` is
/// exhausted; every other error passes unchanged.
pub fn classify_io(e: AccessError, dir: &Path) -> AccessError {
    match e {
        AccessError::Io(m) => match storage_exhausted(dir) {
            Some(why) => AccessError::DiskFull(format!("{why} ({m})")),
            None => AccessError::Io(m),
        },
        other => other,
    }
}

/// Encryption of the free-text parts of an event (principal, user agent, session, resource):
/// personal data, sealed before it reaches a table. The engines intern each distinct value
/// once per segment under its keyed hash, so sealing costs one encryption per new value, not
/// per event. IP addresses, times and account ids stay in clear: the queries range over them
/// (a CIDR is a key range), and retention reads them (docs/design/0007-access-record.md).
pub trait TextVault: Send + Sync + 'static {
    /// A keyed hash of the value (equal values, equal hashes; no key, no guess).
    fn blind(&self, value: &str) -> [u8; 16];
    fn seal(&self, value: &str) -> Result<Vec<u8>>;
    fn open(&self, sealed: &[u8]) -> Result<String>;
}

/// For tests and benchmarks of the engine alone: "seals" by copying. Never used by the server.
pub struct ClearText;

impl TextVault for ClearText {
    fn blind(&self, value: &str) -> [u8; 16] {
        let h = blake3::hash(value.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.as_bytes()[..16]);
        out
    }
    fn seal(&self, value: &str) -> Result<Vec<u8>> {
        Ok(value.as_bytes().to_vec())
    }
    fn open(&self, sealed: &[u8]) -> Result<String> {
        String::from_utf8(sealed.to_vec()).map_err(|e| AccessError::Storage(e.to_string()))
    }
}

/// An IP address as stored: 16 bytes, IPv4 as v4-mapped IPv6 (`::ffff:a.b.c.d`), so one
/// byte order covers both families and a CIDR is one key range.
pub type IpKey = [u8; 16];

pub fn ip_key(ip: IpAddr) -> IpKey {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

pub fn ip_from_key(key: IpKey) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// An access event with its account resolved to a cip id: what the engines store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    pub account: Uuid,
    pub principal: String,
    pub ip: IpKey,
    /// Unix microseconds, UTC.
    pub at: i64,
    pub action: Action,
    pub user_agent: Option<String>,
    pub session: Option<String>,
    pub resource: Option<String>,
    pub event_id: Option<String>,
}

/// Where a file import stands: the byte offset after the last committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportMark {
    pub file_key: [u8; 32],
    pub offset: u64,
    pub line: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events stored by this call.
    pub accepted: u64,
    /// Events already stored (re-sent or re-imported): stored once.
    pub duplicates: u64,
}

/// One address an account used in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpUse {
    pub ip: IpKey,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
}

/// One account that used an address (of a network) in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUse {
    pub account: Uuid,
    pub ip: IpKey,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
}

/// A network: every key in `[first, last]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub first: IpKey,
    pub last: IpKey,
}

impl IpRange {
    pub fn single(ip: IpKey) -> Self {
        IpRange {
            first: ip,
            last: ip,
        }
    }

    /// `a.b.c.d/n` or `x::/n` (IPv4 prefixes count in the v4-mapped space) or a bare address.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
        let max = match ip {
            IpAddr::V4(_) => 32u32,
            IpAddr::V6(_) => 128,
        };
        let bits = match prefix {
            None => max,
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("prefix length must be 0 to {max}"))?,
        };
        let key = u128::from_be_bytes(ip_key(ip));
        let host_bits = max - bits;
        let mask: u128 = if host_bits == 0 {
            0
        } else {
            (1u128 << host_bits) - 1
        };
        if key & mask != 0 {
            return Err(format!(
                "`{s}` has host bits set; the network is not aligned"
            ));
        }
        Ok(IpRange {
            first: key.to_be_bytes(),
            last: (key | mask).to_be_bytes(),
        })
    }
}

/// One stored event as read back, with its page cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event: AccessEvent,
    /// Opaque: pass it back to continue after this event.
    pub cursor: String,
}

/// A segment (a time slice of the record) and the accounts that have events in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: i64,
    /// Times covered: `[from, to)`.
    pub from: i64,
    pub to: i64,
    pub bytes: u64,
}

/// What retention needs to know about one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountClock {
    pub closed_at: Option<i64>,
    pub last_accessed_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Lower-case hex of bytes (cursor text).
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of [`hex`] text; `None` when it is not.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A stored address: exactly 16 bytes.
pub(crate) fn stored_ip(v: Vec<u8>) -> Result<IpKey> {
    IpKey::try_from(v.as_slice())
        .map_err(|_| AccessError::Storage("stored ip is not 16 bytes".into()))
}

/// The use of an address (by an account) found in several places — segments, partitions,
/// runs — kept once: the earliest first time, the latest last time, the counts added.
pub(crate) trait Widen {
    /// The key the uses are merged under.
    type Key: Ord;
    fn key(&self) -> Self::Key;
    fn widen(&mut self, other: &Self);
}

impl Widen for IpUse {
    type Key = IpKey;
    fn key(&self) -> IpKey {
        self.ip
    }
    fn widen(&mut self, o: &IpUse) {
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        self.count += o.count;
    }
}

impl Widen for AccountUse {
    type Key = (Uuid, IpKey);
    fn key(&self) -> (Uuid, IpKey) {
        (self.account, self.ip)
    }
    fn widen(&mut self, o: &AccountUse) {
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        self.count += o.count;
    }
}

/// Adds a use to `merged`, widening the one already there.
pub(crate) fn merge_use<U: Widen>(merged: &mut std::collections::BTreeMap<U::Key, U>, u: U) {
    match merged.get_mut(&u.key()) {
        Some(e) => e.widen(&u),
        None => {
            merged.insert(u.key(), u);
        }
    }
}

/// The access record, behind which each engine sits. Reads answer in time order; ranges are
/// `[from, to)` in Unix microseconds.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Stores a batch durably. With a mark, records the import position after the events
    /// are committed: a crash between the two re-imports the batch, and the primary key
    /// makes that a no-op.
    async fn ingest(
        &self,
        events: Vec<AccessEvent>,
        mark: Option<ImportMark>,
    ) -> Result<IngestOutcome>;

    /// The import position of a file (by its identity), if it was imported before.
    async fn import_mark(&self, file_key: [u8; 32]) -> Result<Option<ImportMark>>;

    /// An account's events in `[from, to)`, oldest first, at most `limit`, after `cursor`.
    async fn account_events(
        &self,
        account: Uuid,
        from: i64,
        to: i64,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;

    /// The distinct addresses an account used in `[from, to)`, by address.
    async fn account_ips(&self, account: Uuid, from: i64, to: i64) -> Result<Vec<IpUse>>;

    /// Every account that used an address in `range` during `[from, to)`, by account and ip.
    async fn ip_accounts(&self, range: IpRange, from: i64, to: i64) -> Result<Vec<AccountUse>>;

    /// Sets or lifts a legal hold: a held account's events are never deleted.
    async fn set_legal_hold(&self, account: Uuid, held: bool, at: i64) -> Result<()>;
    async fn legal_holds(&self) -> Result<Vec<Uuid>>;

    /// Segments, oldest first.
    async fn segments(&self) -> Result<Vec<Segment>>;
    /// Accounts that have events in a segment.
    async fn segment_accounts(&self, segment: i64) -> Result<Vec<Uuid>>;
    /// Deletes a whole segment (a file or a partition): the retention job's only deletion.
    async fn drop_segment(&self, segment: i64) -> Result<()>;

    /// Bytes on disk used by the record.
    async fn disk_bytes(&self) -> Result<u64>;

    /// Recounts the summaries from the events, segment by segment, and reports every
    /// disagreement: the check run after a crash (`cip access verify`) and by the tests that
    /// kill the writer. Reads everything: minutes at the sizes.
    async fn verify(&self) -> Result<Consistency>;
}

/// What [`AccessStore::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consistency {
    pub segments: u64,
    /// Events stored.
    pub events: u64,
    /// (account, address) pairs in the summaries.
    pub pairs: u64,
    /// Each disagreement between the events and the summaries, with its segment.
    pub problems: Vec<String>,
}

impl Consistency {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Two years: events are kept at least this long after the later of closure and last access.
pub const RETENTION_MICROS: i64 = 2 * 366 * 24 * 3600 * 1_000_000;

/// Whether an account's events may be deleted at `now`: not held, and two years past the later
/// of closure and last access. An account with neither time is kept (nothing to count from).
pub fn account_expired(clock: Option<AccountClock>, held: bool, now: i64) -> bool {
    if held {
        return false;
    }
    let Some(c) = clock else {
        // An account unknown to the identity store (deleted): its events are kept until an
        // operator decides; retention never guesses.
        return false;
    };
    match c.closed_at.max(c.last_accessed_at) {
        Some(t) => now >= t.saturating_add(RETENTION_MICROS),
        None => false,
    }
}

/// Which segments may be dropped at `now`: those whose every account is expired
/// ([`account_expired`]). The simplest honest rule: a segment holding one account still under
/// retention or hold is kept whole (documented in docs/design/0007-access-record.md).
///
/// An account's last access is taken as the later of its `last_accessed_at` and the start of
/// the newest segment holding one of its events: the access record itself is the evidence, so
/// a `last_accessed_at` that lags behind stored events (it is advanced after they are durable,
/// and a crash can lose an advance) never shortens retention.
pub async fn expired_segments<F, Fut>(
    store: &dyn AccessStore,
    now: i64,
    mut clock: F,
) -> Result<Vec<i64>>
where
    F: FnMut(Uuid) -> Fut,
    Fut: std::future::Future<Output = Result<Option<AccountClock>>>,
{
    let holds: std::collections::HashSet<Uuid> = store.legal_holds().await?.into_iter().collect();
    let segments = store.segments().await?;
    // A segment cannot expire before its own last event is two years old.
    let candidates: Vec<&Segment> = segments
        .iter()
        .filter(|s| now >= s.to.saturating_add(RETENTION_MICROS))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut accounts: Vec<(i64, Vec<Uuid>)> = Vec::with_capacity(candidates.len());
    // Accounts of the candidates → the start of the newest segment holding them.
    let mut seen_in: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    for seg in &candidates {
        let list = store.segment_accounts(seg.id).await?;
        for a in &list {
            let t = seen_in.entry(*a).or_insert(seg.from);
            *t = (*t).max(seg.from);
        }
        accounts.push((seg.id, list));
    }
    for seg in segments
        .iter()
        .filter(|s| now < s.to.saturating_add(RETENTION_MICROS))
    {
        for a in store.segment_accounts(seg.id).await? {
            if let Some(t) = seen_in.get_mut(&a) {
                *t = (*t).max(seg.from);
            }
        }
    }
    let mut out = Vec::new();
    for (seg, list) in accounts {
        let mut all = true;
        for account in list {
            let stored = clock(account).await?;
            let evidence = seen_in.get(&account).copied();
            let c = stored.map(|c| AccountClock {
                last_accessed_at: c.last_accessed_at.max(evidence),
                ..c
            });
            if !account_expired(c, holds.contains(&account), now) {
                all = false;
                break;
            }
        }
        if all {
            out.push(seg);
        }
    }
    Ok(out)
}

/// Runs retention once: drops every expired segment; returns how many were dropped.
pub async fn retention_run_once<F, Fut>(store: &dyn AccessStore, now: i64, clock: F) -> Result<u32>
where
    F: FnMut(Uuid) -> Fut,
    Fut: std::future::Future<Output = Result<Option<AccountClock>>>,
{
    let expired = expired_segments(store, now, clock).await?;
    for seg in &expired {
        store.drop_segment(*seg).await?;
    }
    Ok(expired.len() as u32)
}

/// The latest event time per account in a batch: what `last_accessed_at` must advance to.
pub fn last_access_by_account(events: &[AccessEvent]) -> Vec<(Uuid, i64)> {
    let mut map: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    for e in events {
        let t = map.entry(e.account).or_insert(e.at);
        if e.at > *t {
            *t = e.at;
        }
    }
    let mut v: Vec<(Uuid, i64)> = map.into_iter().collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A real SQLITE_FULL (a database at its page limit) is disk full; a generic I/O error
    /// stays an I/O error while the storage has room (`storage_exhausted` finds none here:
    /// the temp directory's file system has space and no file near a file-size limit).
    #[test]
    fn sqlite_full_is_disk_full_and_io_errors_are_classified_by_the_storage() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 4096; CREATE TABLE t (x BLOB); PRAGMA max_page_count = 3;",
        )
        .unwrap();
        let full = conn
            .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .unwrap_err();
        assert!(
            matches!(AccessError::from(full), AccessError::DiskFull(_)),
            "SQLITE_FULL"
        );
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_WRITE),
            None,
        );
        let e = AccessError::from(io);
        assert!(matches!(e, AccessError::Io(_)), "{e:?}");
        assert_eq!(storage_exhausted(dir.path()), None);
        assert!(matches!(classify_io(e, dir.path()), AccessError::Io(_)));
        let efbig = std::io::Error::from(std::io::ErrorKind::FileTooLarge);
        assert!(matches!(AccessError::from(efbig), AccessError::DiskFull(_)));
    }
}
