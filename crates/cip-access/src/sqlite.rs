//! The embedded engine: one SQLite file per 13-week segment of events under `<data dir>/access/`, and a
//! small `catalog.db` beside them (import positions, legal holds).
//!
//! Each segment file holds:
//! - `events`, a WITHOUT ROWID table keyed by (account, time, ip, principal, action,
//!   event id): the key is the event's identity (a re-sent event is stored once) and the
//!   per-account time index at once;
//! - `account_ip` (account, ip → first, last, count) and `ip_account` (ip, account): the two
//!   summaries the queries read, changed in the same transaction as the events;
//! - dictionaries (`accounts`, `ips`, `strings`) so an event row holds small integers: an
//!   account uuid, an address or a user agent is stored once per segment, not once per event.
//!   Times are microseconds from the segment's start (6 bytes instead of 8).
//!
//! Retention deletes whole files. Writes hold one process-wide lock and run in
//! `spawn_blocking`; reads use their own connections and never wait for it (WAL).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use crate::*;

/// Segment writers kept open (each holds its dictionaries in memory).
const MAX_OPEN_SEGMENTS: usize = 16;
const MAX_IDLE_READERS_PER_SEGMENT: usize = 4;

const SEGMENT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, uuid BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ips (id INTEGER PRIMARY KEY, ip BLOB NOT NULL UNIQUE);
-- Free text, sealed; `h` is its keyed hash (the dictionary key).
CREATE TABLE IF NOT EXISTS strings (id INTEGER PRIMARY KEY, h BLOB NOT NULL UNIQUE, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    account    INTEGER NOT NULL,
    t          INTEGER NOT NULL,
    ip         INTEGER NOT NULL,
    principal  INTEGER NOT NULL,
    action     INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    user_agent INTEGER,
    session    INTEGER,
    resource   INTEGER,
    PRIMARY KEY (account, t, ip, principal, action, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS account_ip (
    account INTEGER NOT NULL,
    ip      INTEGER NOT NULL,
    first   INTEGER NOT NULL,
    last    INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (account, ip)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ip_account (
    ip      INTEGER NOT NULL,
    account INTEGER NOT NULL,
    PRIMARY KEY (ip, account)
) WITHOUT ROWID;
";

const CATALOG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS import_marks (
    file_key   BLOB PRIMARY KEY,
    offset     INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS legal_holds (
    account BLOB PRIMARY KEY,
    set_at  INTEGER NOT NULL
) WITHOUT ROWID;
";

/// How writes reach the disk. `Full` (the default) fsyncs the WAL at every commit, so an
/// acknowledged batch survives a power cut; `Off` exists only for the benchmark's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Full,
    Off,
}

pub struct SqliteAccess {
    dir: PathBuf,
    durability: Durability,
    vault: Arc<dyn TextVault>,
    writer: Arc<Mutex<Writer>>,
    /// Batches waiting for the writer: whoever takes the writer next stores them all in one
    /// transaction per segment (group commit), and answers each.
    queue: Arc<Mutex<Vec<Pending>>>,
    readers: Arc<Readers>,
}

/// One caller's batch, waiting in the group-commit queue.
struct Pending {
    events: Vec<AccessEvent>,
    mark: Option<ImportMark>,
    done: tokio::sync::oneshot::Sender<Result<IngestOutcome>>,
}

struct Writer {
    dir: PathBuf,
    durability: Durability,
    vault: Arc<dyn TextVault>,
    catalog: Connection,
    open: HashMap<i64, SegmentWriter>,
    /// Use order of `open`, for closing the least recently used.
    tick: u64,
}

struct SegmentWriter {
    conn: Connection,
    accounts: HashMap<Uuid, i64>,
    ips: HashMap<IpKey, i64>,
    /// Plaintext → id, filled as values are met (the table holds only hashes and sealed text).
    strings: HashMap<String, i64>,
    hashes: HashMap<[u8; 16], i64>,
    /// (account id, ip id) pairs known to be in `ip_account` (committed, or in the open
    /// transaction: a failed transaction drops this whole writer). A pair not in it is
    /// written with `INSERT OR IGNORE`, so the set is only a shortcut, capped in size.
    pairs: HashSet<(i64, i64)>,
    used: u64,
}

/// Pairs remembered per open segment (about 32 bytes each).
const MAX_KNOWN_PAIRS: usize = 2_000_000;

struct Readers {
    dir: PathBuf,
    idle: Mutex<HashMap<i64, Vec<Connection>>>,
}

fn segment_path(dir: &Path, seg: i64) -> PathBuf {
    dir.join(format!("seg-{seg}.db"))
}

pub fn segment_of(at: i64) -> i64 {
    at.div_euclid(SEGMENT_MICROS)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn join_err(e: tokio::task::JoinError) -> AccessError {
    AccessError::Storage(format!("worker stopped: {e}"))
}

fn pragmas(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.set_prepared_statement_cache_capacity(32);
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Off => "OFF",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 4096;"
    ))?;
    Ok(())
}

impl SqliteAccess {
    /// Opens (creating) the record in `dir` (normally `<data dir>/access`).
    pub fn open(dir: &Path, vault: Arc<dyn TextVault>) -> Result<Self> {
        Self::open_with(dir, vault, Durability::Full)
    }

    pub fn open_with(
        dir: &Path,
        vault: Arc<dyn TextVault>,
        durability: Durability,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let catalog = Connection::open(dir.join("catalog.db"))?;
        pragmas(&catalog, durability)?;
        catalog.execute_batch(CATALOG_SCHEMA)?;
        Ok(SqliteAccess {
            dir: dir.to_path_buf(),
            durability,
            vault: vault.clone(),
            writer: Arc::new(Mutex::new(Writer {
                dir: dir.to_path_buf(),
                durability,
                vault,
                catalog,
                open: HashMap::new(),
                tick: 0,
            })),
            queue: Arc::new(Mutex::new(Vec::new())),
            readers: Arc::new(Readers {
                dir: dir.to_path_buf(),
                idle: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Stores a batch on the calling thread (the importer runs it on its own thread).
    pub fn ingest_blocking(
        &self,
        events: Vec<AccessEvent>,
        mark: Option<ImportMark>,
    ) -> Result<IngestOutcome> {
        let mut out = lock(&self.writer)
            .ingest_many(vec![(events, mark)])
            .map_err(|e| classify_io(e, &self.dir))?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Rewrites a segment file compactly (`VACUUM`): pages filled by inserts in key order
    /// are about two-thirds full; a segment that no longer receives events can be packed.
    pub fn compact_segment(&self, seg: i64) -> Result<()> {
        let mut w = lock(&self.writer);
        w.open.remove(&seg);
        let conn = Connection::open(segment_path(&self.dir, seg))?;
        pragmas(&conn, self.durability)?;
        conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// Checkpoints every open segment's WAL into its file (for honest size figures).
    pub fn checkpoint(&self) -> Result<()> {
        let w = lock(&self.writer);
        for s in w.open.values() {
            s.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(())
    }

    fn segment_ids(&self) -> Result<Vec<i64>> {
        list_segments(&self.dir)
    }
}

fn list_segments(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("seg-")
            .and_then(|r| r.strip_suffix(".db"))
            .and_then(|n| n.parse::<i64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Writer {
    fn segment(&mut self, seg: i64) -> Result<&mut SegmentWriter> {
        self.tick += 1;
        let tick = self.tick;
        if !self.open.contains_key(&seg) {
            if self.open.len() >= MAX_OPEN_SEGMENTS
                && let Some(oldest) = self
                    .open
                    .iter()
                    .min_by_key(|(_, s)| s.used)
                    .map(|(k, _)| *k)
            {
                self.open.remove(&oldest);
            }
            let sw = SegmentWriter::open(&segment_path(&self.dir, seg), self.durability)?;
            self.open.insert(seg, sw);
        }
        let sw = self
            .open
            .get_mut(&seg)
            .ok_or_else(|| AccessError::Storage("segment vanished".into()))?;
        sw.used = tick;
        Ok(sw)
    }

    /// Stores several callers' batches together: one transaction per segment for all of
    /// them, then their import marks. Returns each batch's outcome, in order. An event sent
    /// by two batches of the group is stored once (the first met counts it as accepted).
    fn ingest_many(
        &mut self,
        batches: Vec<(Vec<AccessEvent>, Option<ImportMark>)>,
    ) -> Result<Vec<IngestOutcome>> {
        let mut outcomes = vec![IngestOutcome::default(); batches.len()];
        let mut events: Vec<(u32, AccessEvent)> =
            Vec::with_capacity(batches.iter().map(|b| b.0.len()).sum());
        let mut marks = Vec::new();
        for (i, (evs, mark)) in batches.into_iter().enumerate() {
            events.extend(evs.into_iter().map(|e| (i as u32, e)));
            marks.extend(mark);
        }
        // Key order: each segment's inserts walk its B-tree once, left to right.
        events.sort_unstable_by(|(_, a), (_, b)| {
            (segment_of(a.at), a.account, a.at).cmp(&(segment_of(b.at), b.account, b.at))
        });
        let mut start = 0;
        while start < events.len() {
            let seg = segment_of(events[start].1.at);
            let end = start
                + events[start..]
                    .iter()
                    .position(|(_, e)| segment_of(e.at) != seg)
                    .unwrap_or(events.len() - start);
            let vault = self.vault.clone();
            let result = self
                .segment(seg)
                .and_then(|sw| sw.apply(seg, &events[start..end], vault.as_ref(), &mut outcomes));
            if let Err(e) = result {
                // Looked at before the connection closes: closing checkpoints and removes
                // the WAL, the very file that may have reached its limit.
                let e = classify_io(e, &self.dir);
                // Its dictionaries may hold ids of the rolled-back transaction.
                self.open.remove(&seg);
                return Err(e);
            }
            start = end;
        }
        for m in marks {
            // After the events: a crash in between replays the batch, which the primary key
            // turns into duplicates, never into a gap.
            self.catalog
                .prepare_cached(
                    "INSERT INTO import_marks (file_key, offset, line, updated_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (file_key) DO UPDATE SET \
                     offset = excluded.offset, line = excluded.line, updated_at = excluded.updated_at",
                )?
                .execute(params![
                    &m.file_key[..],
                    m.offset as i64,
                    m.line as i64,
                    jiff::Timestamp::now().as_microsecond()
                ])?;
        }
        Ok(outcomes)
    }
}

impl SegmentWriter {
    fn open(path: &Path, durability: Durability) -> Result<Self> {
        let conn = Connection::open(path)?;
        pragmas(&conn, durability)?;
        conn.execute_batch(SEGMENT_SCHEMA)?;
        let mut accounts = HashMap::new();
        let mut ips = HashMap::new();
        let strings = HashMap::new();
        let mut hashes = HashMap::new();
        {
            let mut st = conn.prepare("SELECT id, uuid FROM accounts")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                accounts.insert(r.get::<_, Uuid>(1)?, r.get(0)?);
            }
            let mut st = conn.prepare("SELECT id, ip FROM ips")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let ip: Vec<u8> = r.get(1)?;
                if let Ok(k) = <IpKey>::try_from(ip.as_slice()) {
                    ips.insert(k, r.get(0)?);
                }
            }
            let mut st = conn.prepare("SELECT id, h FROM strings")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let h: Vec<u8> = r.get(1)?;
                if let Ok(h) = <[u8; 16]>::try_from(h.as_slice()) {
                    hashes.insert(h, r.get(0)?);
                }
            }
        }
        Ok(SegmentWriter {
            conn,
            accounts,
            ips,
            strings,
            hashes,
            pairs: HashSet::new(),
            used: 0,
        })
    }

    /// One transaction: the events, then the summaries of the events that were new.
    fn apply(
        &mut self,
        seg: i64,
        events: &[(u32, AccessEvent)],
        vault: &dyn TextVault,
        outcomes: &mut [IngestOutcome],
    ) -> Result<()> {
        let base = seg * SEGMENT_MICROS;
        let SegmentWriter {
            conn,
            accounts,
            ips,
            strings,
            hashes,
            pairs: known,
            ..
        } = self;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // (account id, ip id) → (first, last, count) of the new events.
        let mut agg: HashMap<(i64, i64), (i64, i64, i64)> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (account, t, ip, principal, action, event_id, \
                 user_agent, session, resource) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut intern = Interner {
                tx: &tx,
                vault,
                hashes,
            };
            for (batch, e) in events {
                let out = &mut outcomes[*batch as usize];
                let a = intern.account(accounts, e.account)?;
                let ip = intern.ip(ips, e.ip)?;
                let p = intern.string(strings, &e.principal)?;
                let ua = e
                    .user_agent
                    .as_deref()
                    .map(|s| intern.string(strings, s))
                    .transpose()?;
                let se = e
                    .session
                    .as_deref()
                    .map(|s| intern.string(strings, s))
                    .transpose()?;
                let re = e
                    .resource
                    .as_deref()
                    .map(|s| intern.string(strings, s))
                    .transpose()?;
                let t = e.at - base;
                let n = insert.execute(params![
                    a,
                    t,
                    ip,
                    p,
                    e.action.code(),
                    e.event_id.as_deref().unwrap_or(""),
                    ua,
                    se,
                    re
                ])?;
                if n == 1 {
                    out.accepted += 1;
                    let s = agg.entry((a, ip)).or_insert((t, t, 0));
                    s.0 = s.0.min(t);
                    s.1 = s.1.max(t);
                    s.2 += 1;
                } else {
                    out.duplicates += 1;
                }
            }
            let mut pairs: Vec<_> = agg.into_iter().collect();
            pairs.sort_unstable_by_key(|(k, _)| *k);
            let mut upsert = tx.prepare_cached(
                "INSERT INTO account_ip (account, ip, first, last, n) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (account, ip) DO UPDATE SET first = min(first, excluded.first), \
                 last = max(last, excluded.last), n = n + excluded.n",
            )?;
            for ((a, ip), (f, l, n)) in &pairs {
                upsert.execute(params![a, ip, f, l, n])?;
            }
            pairs.sort_unstable_by_key(|((a, ip), _)| (*ip, *a));
            let mut by_ip = tx
                .prepare_cached("INSERT OR IGNORE INTO ip_account (ip, account) VALUES (?1, ?2)")?;
            for ((a, ip), _) in &pairs {
                // Most pairs of a batch were met by an earlier one: no write for those.
                if known.contains(&(*a, *ip)) {
                    continue;
                }
                by_ip.execute(params![ip, a])?;
                if known.len() < MAX_KNOWN_PAIRS {
                    known.insert((*a, *ip));
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Dictionary ids, from the cache or the table (another process may have added the value
/// since this one loaded its cache: the insert is `ON CONFLICT DO NOTHING` then a read, under
/// the transaction's write lock).
struct Interner<'a, 'c> {
    tx: &'a rusqlite::Transaction<'c>,
    vault: &'a dyn TextVault,
    hashes: &'a mut HashMap<[u8; 16], i64>,
}

impl Interner<'_, '_> {
    fn account(&mut self, cache: &mut HashMap<Uuid, i64>, v: Uuid) -> Result<i64> {
        if let Some(id) = cache.get(&v) {
            return Ok(*id);
        }
        let id = self.get_or_insert("accounts", "uuid", &v)?;
        cache.insert(v, id);
        Ok(id)
    }

    fn ip(&mut self, cache: &mut HashMap<IpKey, i64>, v: IpKey) -> Result<i64> {
        if let Some(id) = cache.get(&v) {
            return Ok(*id);
        }
        let id = self.get_or_insert("ips", "ip", &&v[..])?;
        cache.insert(v, id);
        Ok(id)
    }

    fn string(&mut self, cache: &mut HashMap<String, i64>, v: &str) -> Result<i64> {
        if let Some(id) = cache.get(v) {
            return Ok(*id);
        }
        let h = self.vault.blind(v);
        let id = match self.hashes.get(&h) {
            Some(id) => *id,
            None => {
                let n = self
                    .tx
                    .prepare_cached(
                        "INSERT INTO strings (h, sealed) VALUES (?1, ?2) ON CONFLICT (h) DO NOTHING",
                    )?
                    .execute(params![&h[..], self.vault.seal(v)?])?;
                let id = if n == 1 {
                    self.tx.last_insert_rowid()
                } else {
                    self.tx
                        .prepare_cached("SELECT id FROM strings WHERE h = ?1")?
                        .query_row([&h[..]], |r| r.get(0))?
                };
                self.hashes.insert(h, id);
                id
            }
        };
        cache.insert(v.to_string(), id);
        Ok(id)
    }

    fn get_or_insert(&mut self, table: &str, col: &str, v: &dyn rusqlite::ToSql) -> Result<i64> {
        let n = self
            .tx
            .prepare_cached(&format!(
                "INSERT INTO {table} ({col}) VALUES (?1) ON CONFLICT ({col}) DO NOTHING"
            ))?
            .execute([v])?;
        if n == 1 {
            return Ok(self.tx.last_insert_rowid());
        }
        Ok(self
            .tx
            .prepare_cached(&format!("SELECT id FROM {table} WHERE {col} = ?1"))?
            .query_row([v], |r| r.get(0))?)
    }
}

impl Readers {
    /// Runs `f` on a read connection of segment `seg`; `None` when the segment is gone.
    fn with<T>(&self, seg: i64, f: impl FnOnce(&Connection) -> Result<T>) -> Result<Option<T>> {
        let taken = lock(&self.idle).get_mut(&seg).and_then(Vec::pop);
        let conn = match taken {
            Some(c) => c,
            None => {
                let path = segment_path(&self.dir, seg);
                if !path.exists() {
                    return Ok(None);
                }
                let c = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(16);
                c
            }
        };
        let result = f(&conn);
        if result.is_ok() {
            let mut idle = lock(&self.idle);
            let list = idle.entry(seg).or_default();
            if list.len() < MAX_IDLE_READERS_PER_SEGMENT {
                list.push(conn);
            }
        }
        result.map(Some)
    }

    fn forget(&self, seg: i64) {
        lock(&self.idle).remove(&seg);
    }
}

/// Segments overlapping `[from, to)`, with whether each is covered whole.
fn overlapping(segments: &[i64], from: i64, to: i64) -> Vec<(i64, bool)> {
    segments
        .iter()
        .copied()
        .filter(|s| {
            let (a, b) = (s * SEGMENT_MICROS, (s + 1) * SEGMENT_MICROS);
            a < to && from < b
        })
        .map(|s| {
            let (a, b) = (s * SEGMENT_MICROS, (s + 1) * SEGMENT_MICROS);
            (s, from <= a && b <= to)
        })
        .collect()
}

struct Cursor {
    seg: i64,
    t: i64,
    ip: i64,
    principal: i64,
    action: i64,
    event_id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}.{}",
            self.seg,
            self.t,
            self.ip,
            self.principal,
            self.action,
            hex_encode(self.event_id.as_bytes())
        )
    }

    fn decode(s: &str) -> Result<Cursor> {
        let parts: Vec<&str> = s.split('.').collect();
        let [seg, t, ip, principal, action, eid] = parts.as_slice() else {
            return Err(AccessError::BadCursor);
        };
        let n = |x: &str| x.parse::<i64>().map_err(|_| AccessError::BadCursor);
        Ok(Cursor {
            seg: n(seg)?,
            t: n(t)?,
            ip: n(ip)?,
            principal: n(principal)?,
            action: n(action)?,
            event_id: String::from_utf8(hex_decode(eid).ok_or(AccessError::BadCursor)?)
                .map_err(|_| AccessError::BadCursor)?,
        })
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn key_of(v: Vec<u8>) -> Result<IpKey> {
    IpKey::try_from(v.as_slice())
        .map_err(|_| AccessError::Storage("stored ip is not 16 bytes".into()))
}

/// Opens sealed dictionary text, each id once per query.
struct Opener<'a> {
    vault: &'a dyn TextVault,
    seen: HashMap<i64, String>,
}

impl Opener<'_> {
    fn text(&mut self, conn: &Connection, id: Option<i64>) -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        if let Some(s) = self.seen.get(&id) {
            return Ok(Some(s.clone()));
        }
        let sealed: Vec<u8> = conn
            .prepare_cached("SELECT sealed FROM strings WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let s = self.vault.open(&sealed)?;
        self.seen.insert(id, s.clone());
        Ok(Some(s))
    }
}

#[allow(clippy::too_many_arguments)]
fn read_account_events(
    readers: &Readers,
    vault: &dyn TextVault,
    segments: &[i64],
    account: Uuid,
    from: i64,
    to: i64,
    cursor: Option<Cursor>,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    for (seg, _) in overlapping(segments, from, to) {
        if let Some(c) = &cursor
            && seg < c.seg
        {
            continue;
        }
        let want = limit as usize - out.len();
        if want == 0 {
            break;
        }
        let base = seg * SEGMENT_MICROS;
        let (lo, hi) = ((from - base).max(0), (to - base).min(SEGMENT_MICROS));
        let after = match &cursor {
            Some(c) if c.seg == seg => (c.t, c.ip, c.principal, c.action, c.event_id.clone()),
            _ => (lo - 1, 0, 0, 0, String::new()),
        };
        let got = readers.with(seg, |conn| {
            let mut open = Opener {
                vault,
                seen: HashMap::new(),
            };
            let mut st = conn.prepare_cached(
                "SELECT e.t, i.ip, e.principal, e.action, e.event_id, e.user_agent, e.session, \
                        e.resource, e.ip, e.principal \
                 FROM events e JOIN ips i ON i.id = e.ip \
                 WHERE e.account = (SELECT id FROM accounts WHERE uuid = ?1) \
                   AND e.t >= ?2 AND e.t < ?3 \
                   AND (e.t, e.ip, e.principal, e.action, e.event_id) > (?4, ?5, ?6, ?7, ?8) \
                 ORDER BY e.t, e.ip, e.principal, e.action, e.event_id LIMIT ?9",
            )?;
            let mut rows = st.query(params![
                account,
                lo,
                hi,
                after.0,
                after.1,
                after.2,
                after.3,
                after.4,
                want as i64
            ])?;
            let mut v = Vec::new();
            while let Some(r) = rows.next()? {
                let t: i64 = r.get(0)?;
                let action_code: i64 = r.get(3)?;
                let event_id: String = r.get(4)?;
                let cursor = Cursor {
                    seg,
                    t,
                    ip: r.get(8)?,
                    principal: r.get(9)?,
                    action: action_code,
                    event_id: event_id.clone(),
                }
                .encode();
                v.push(StoredEvent {
                    event: AccessEvent {
                        account,
                        principal: open.text(conn, r.get(2)?)?.unwrap_or_default(),
                        ip: key_of(r.get(1)?)?,
                        at: base + t,
                        action: Action::from_code(action_code).ok_or_else(|| {
                            AccessError::Storage(format!("unknown action code {action_code}"))
                        })?,
                        user_agent: open.text(conn, r.get(5)?)?,
                        session: open.text(conn, r.get(6)?)?,
                        resource: open.text(conn, r.get(7)?)?,
                        event_id: (!event_id.is_empty()).then_some(event_id),
                    },
                    cursor,
                });
            }
            Ok(v)
        })?;
        out.extend(got.unwrap_or_default());
    }
    Ok(out)
}

fn read_account_ips(
    readers: &Readers,
    segments: &[i64],
    account: Uuid,
    from: i64,
    to: i64,
) -> Result<Vec<IpUse>> {
    let mut merged: BTreeMap<IpKey, IpUse> = BTreeMap::new();
    for (seg, whole) in overlapping(segments, from, to) {
        let base = seg * SEGMENT_MICROS;
        let (lo, hi) = ((from - base).max(0), (to - base).min(SEGMENT_MICROS));
        let got = readers.with(seg, |conn| {
            let mut st = if whole {
                conn.prepare_cached(
                    "SELECT i.ip, s.first, s.last, s.n FROM account_ip s JOIN ips i ON i.id = s.ip \
                     WHERE s.account = (SELECT id FROM accounts WHERE uuid = ?1) \
                       AND ?2 <= ?3",
                )?
            } else {
                conn.prepare_cached(
                    "SELECT i.ip, min(e.t), max(e.t), count(*) FROM events e \
                     JOIN ips i ON i.id = e.ip \
                     WHERE e.account = (SELECT id FROM accounts WHERE uuid = ?1) \
                       AND e.t >= ?2 AND e.t < ?3 GROUP BY e.ip",
                )?
            };
            let mut rows = st.query(params![account, lo, hi])?;
            let mut v = Vec::new();
            while let Some(r) = rows.next()? {
                v.push(IpUse {
                    ip: key_of(r.get(0)?)?,
                    first_seen: base + r.get::<_, i64>(1)?,
                    last_seen: base + r.get::<_, i64>(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                });
            }
            Ok(v)
        })?;
        for u in got.unwrap_or_default() {
            merge_ip(&mut merged, u);
        }
    }
    Ok(merged.into_values().collect())
}

fn merge_ip(m: &mut BTreeMap<IpKey, IpUse>, u: IpUse) {
    match m.get_mut(&u.ip) {
        Some(e) => {
            e.first_seen = e.first_seen.min(u.first_seen);
            e.last_seen = e.last_seen.max(u.last_seen);
            e.count += u.count;
        }
        None => {
            m.insert(u.ip, u);
        }
    }
}

fn read_ip_accounts(
    readers: &Readers,
    segments: &[i64],
    range: IpRange,
    from: i64,
    to: i64,
) -> Result<Vec<AccountUse>> {
    let mut merged: BTreeMap<(Uuid, IpKey), AccountUse> = BTreeMap::new();
    for (seg, whole) in overlapping(segments, from, to) {
        let base = seg * SEGMENT_MICROS;
        let (lo, hi) = ((from - base).max(0), (to - base).min(SEGMENT_MICROS));
        let got = readers.with(seg, |conn| {
            let mut st = conn.prepare_cached(
                "SELECT a.uuid, i.ip, s.first, s.last, s.n, s.account, s.ip \
                 FROM ips i JOIN ip_account x ON x.ip = i.id \
                 JOIN account_ip s ON s.account = x.account AND s.ip = x.ip \
                 JOIN accounts a ON a.id = x.account \
                 WHERE i.ip BETWEEN ?1 AND ?2",
            )?;
            let mut rows = st.query(params![&range.first[..], &range.last[..]])?;
            let mut v = Vec::new();
            while let Some(r) = rows.next()? {
                let (first, last): (i64, i64) = (r.get(2)?, r.get(3)?);
                let mut u = AccountUse {
                    account: r.get(0)?,
                    ip: key_of(r.get(1)?)?,
                    first_seen: base + first,
                    last_seen: base + last,
                    count: r.get::<_, i64>(4)? as u64,
                };
                if !whole {
                    if last < lo || first >= hi {
                        continue;
                    }
                    if !(lo <= first && last < hi) {
                        // The pair's span crosses the range's edge: count its events inside.
                        let (a_id, ip_id): (i64, i64) = (r.get(5)?, r.get(6)?);
                        let (f, l, n): (Option<i64>, Option<i64>, i64) = conn
                            .prepare_cached(
                                "SELECT min(t), max(t), count(*) FROM events \
                                 WHERE account = ?1 AND t >= ?2 AND t < ?3 AND ip = ?4",
                            )?
                            .query_row(params![a_id, lo, hi, ip_id], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                            })?;
                        let (Some(f), Some(l)) = (f, l) else { continue };
                        u.first_seen = base + f;
                        u.last_seen = base + l;
                        u.count = n as u64;
                    }
                }
                v.push(u);
            }
            Ok(v)
        })?;
        for u in got.unwrap_or_default() {
            match merged.get_mut(&(u.account, u.ip)) {
                Some(e) => {
                    e.first_seen = e.first_seen.min(u.first_seen);
                    e.last_seen = e.last_seen.max(u.last_seen);
                    e.count += u.count;
                }
                None => {
                    merged.insert((u.account, u.ip), u);
                }
            }
        }
    }
    Ok(merged.into_values().collect())
}

#[async_trait]
impl AccessStore for SqliteAccess {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ingest(
        &self,
        events: Vec<AccessEvent>,
        mark: Option<ImportMark>,
    ) -> Result<IngestOutcome> {
        let (done, answer) = tokio::sync::oneshot::channel();
        lock(&self.queue).push(Pending { events, mark, done });
        let (writer, queue, dir) = (self.writer.clone(), self.queue.clone(), self.dir.clone());
        tokio::task::spawn_blocking(move || {
            let mut w = lock(&writer);
            // Everything queued while the previous group was being stored, this batch
            // included unless that group's writer already took it.
            let group = std::mem::take(&mut *lock(&queue));
            if group.is_empty() {
                return;
            }
            let (batches, answers): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|p| ((p.events, p.mark), p.done))
                .unzip();
            match w.ingest_many(batches) {
                Ok(outcomes) => {
                    for (a, o) in answers.into_iter().zip(outcomes) {
                        let _ = a.send(Ok(o));
                    }
                }
                Err(e) => {
                    let e = classify_io(e, &dir);
                    for a in answers {
                        let _ = a.send(Err(e.clone()));
                    }
                }
            }
        })
        .await
        .map_err(join_err)?;
        answer
            .await
            .map_err(|_| AccessError::Storage("the access writer stopped".into()))?
    }

    async fn import_mark(&self, file_key: [u8; 32]) -> Result<Option<ImportMark>> {
        let w = lock(&self.writer);
        Ok(w.catalog
            .prepare_cached("SELECT offset, line FROM import_marks WHERE file_key = ?1")?
            .query_row([&file_key[..]], |r| {
                Ok(ImportMark {
                    file_key,
                    offset: r.get::<_, i64>(0)? as u64,
                    line: r.get::<_, i64>(1)? as u64,
                })
            })
            .optional()?)
    }

    async fn account_events(
        &self,
        account: Uuid,
        from: i64,
        to: i64,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let cursor = cursor.map(Cursor::decode).transpose()?;
        let segments = self.segment_ids()?;
        let readers = self.readers.clone();
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || {
            read_account_events(
                &readers,
                vault.as_ref(),
                &segments,
                account,
                from,
                to,
                cursor,
                limit,
            )
        })
        .await
        .map_err(join_err)?
    }

    async fn account_ips(&self, account: Uuid, from: i64, to: i64) -> Result<Vec<IpUse>> {
        let segments = self.segment_ids()?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            read_account_ips(&readers, &segments, account, from, to)
        })
        .await
        .map_err(join_err)?
    }

    async fn ip_accounts(&self, range: IpRange, from: i64, to: i64) -> Result<Vec<AccountUse>> {
        let segments = self.segment_ids()?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || read_ip_accounts(&readers, &segments, range, from, to))
            .await
            .map_err(join_err)?
    }

    async fn set_legal_hold(&self, account: Uuid, held: bool, at: i64) -> Result<()> {
        let w = lock(&self.writer);
        if held {
            w.catalog.execute(
                "INSERT INTO legal_holds (account, set_at) VALUES (?1, ?2) \
                 ON CONFLICT (account) DO NOTHING",
                params![account, at],
            )?;
        } else {
            w.catalog
                .execute("DELETE FROM legal_holds WHERE account = ?1", [account])?;
        }
        Ok(())
    }

    async fn legal_holds(&self) -> Result<Vec<Uuid>> {
        let w = lock(&self.writer);
        let mut st = w
            .catalog
            .prepare_cached("SELECT account FROM legal_holds")?;
        let rows = st.query_map([], |r| r.get::<_, Uuid>(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    async fn segments(&self) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        for seg in self.segment_ids()? {
            let mut bytes = 0;
            for suffix in ["", "-wal"] {
                let p = PathBuf::from(format!(
                    "{}{suffix}",
                    segment_path(&self.dir, seg).display()
                ));
                bytes += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            }
            out.push(Segment {
                id: seg,
                from: seg * SEGMENT_MICROS,
                to: (seg + 1) * SEGMENT_MICROS,
                bytes,
            });
        }
        Ok(out)
    }

    async fn segment_accounts(&self, segment: i64) -> Result<Vec<Uuid>> {
        let readers = self.readers.clone();
        let got = tokio::task::spawn_blocking(move || {
            readers.with(segment, |conn| {
                let mut st = conn.prepare_cached("SELECT uuid FROM accounts ORDER BY uuid")?;
                let rows = st.query_map([], |r| r.get::<_, Uuid>(0))?;
                Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
            })
        })
        .await
        .map_err(join_err)??;
        Ok(got.unwrap_or_default())
    }

    async fn drop_segment(&self, segment: i64) -> Result<()> {
        let mut w = lock(&self.writer);
        w.open.remove(&segment);
        self.readers.forget(segment);
        let path = segment_path(&self.dir, segment);
        for suffix in ["-wal", "-shm", ""] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn disk_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            total += entry.metadata()?.len();
        }
        Ok(total)
    }

    async fn verify(&self) -> Result<Consistency> {
        let segments = self.segment_ids()?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Consistency::default();
            for seg in segments {
                let got = readers.with(seg, |conn| verify_segment(conn, seg))?;
                if let Some((events, pairs, problems)) = got {
                    out.segments += 1;
                    out.events += events;
                    out.pairs += pairs;
                    out.problems.extend(problems);
                }
            }
            Ok(out)
        })
        .await
        .map_err(join_err)?
    }
}

/// One segment's events recounted against its summaries, in one read transaction (a
/// consistent snapshot even while a writer commits). Problems name the segment and a count,
/// never an account or address.
fn verify_segment(conn: &Connection, seg: i64) -> Result<(u64, u64, Vec<String>)> {
    conn.execute_batch("BEGIN")?;
    let run = || -> Result<(u64, u64, Vec<String>)> {
        let one = |sql: &str| -> Result<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        let events = one("SELECT count(*) FROM events")?;
        let pairs = one("SELECT count(*) FROM account_ip")?;
        let mut problems = Vec::new();
        for (sql, what) in [
            (
                "SELECT count(*) FROM (SELECT account, ip, min(t), max(t), count(*) FROM events                  GROUP BY account, ip EXCEPT SELECT account, ip, first, last, n FROM account_ip)",
                "(account, address) pairs of the events missing from account_ip or counted differently there",
            ),
            (
                "SELECT count(*) FROM (SELECT account, ip, first, last, n FROM account_ip EXCEPT                  SELECT account, ip, min(t), max(t), count(*) FROM events GROUP BY account, ip)",
                "account_ip rows that the events do not support",
            ),
            (
                "SELECT count(*) FROM (SELECT ip, account FROM account_ip EXCEPT                  SELECT ip, account FROM ip_account)",
                "account_ip pairs missing from ip_account",
            ),
            (
                "SELECT count(*) FROM (SELECT ip, account FROM ip_account EXCEPT                  SELECT ip, account FROM account_ip)",
                "ip_account pairs without an account_ip row",
            ),
            (
                "SELECT count(*) FROM events WHERE account NOT IN (SELECT id FROM accounts)                  OR ip NOT IN (SELECT id FROM ips) OR principal NOT IN (SELECT id FROM strings)",
                "events naming a dictionary entry that does not exist",
            ),
        ] {
            let n = one(sql)?;
            if n != 0 {
                problems.push(format!("segment {seg}: {n} {what}"));
            }
        }
        Ok((events as u64, pairs as u64, problems))
    };
    let result = run();
    conn.execute_batch("COMMIT")?;
    result
}
