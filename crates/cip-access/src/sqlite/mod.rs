//! The embedded engine: one SQLite file per 13-week segment of events under
//! `<data dir>/access/`, and a small `catalog.db` beside them (import positions, legal holds).
//!
//! A segment is log-structured (format 2; docs/design/0007-access-record.md, "The
//! log-structured segment"):
//! - **the log**: each commit appends one row to `log`, its new events encoded together
//!   ([`format`]). Input arrives in time order, so a commit writes at the right edge of one
//!   small table instead of into every account's part of an account-first index.
//! - **the tail**: the log's events, held in memory per process ([`Tail`]) by account and by
//!   address, so queries and the dedupe check see them at once. It is rebuilt from the log
//!   after a restart, and caught up from it when another process wrote.
//! - **runs**: when the tail holds `run_events` events, one transaction writes them as a run —
//!   `blocks` (each account's events, in key order) and `ip_runs` (each address's accounts
//!   with first / last / count), up to 64 accounts or addresses to a row (format 4) — and
//!   empties the log. Runs of a level
//!   are merged in eights into one of the next level, so a segment holds a handful of runs.
//! - dictionaries (`accounts`, `ips`, `strings`), so events hold small integers.
//!
//! An event is stored once: a new event is checked against the tail (memory) and, only when
//! its time is not after the segment's latest run, against the runs' blocks of its account.
//! Retention deletes whole files. Writes hold one process-wide lock and run on the caller's
//! blocking thread; reads use their own connections and never wait for it (WAL).

mod dictionary;
mod format;
mod query;

use std::collections::HashMap;

/// Maps met once per event on the write path: seeded foldhash instead of SipHash.
type FastMap<K, V> = foldhash::HashMap<K, V>;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use crate::*;
use dictionary::{Dictionary, ip_bytes, remember_ip};
use format::{Bucket, Ev, Span};

/// Segment writers kept open (each holds its dictionaries and its tail in memory). Input in
/// time order writes one segment at a time; a few more take late events.
const MAX_OPEN_SEGMENTS: usize = 4;
/// A segment writer unused this long, while a newer segment is written, is closed: its tail
/// written out as a run, its memory returned.
const IDLE_SEGMENT: Duration = Duration::from_secs(60);
const MAX_IDLE_READERS_PER_SEGMENT: usize = 4;
/// Events of a segment's tail written out as one run (a few hundred MB of memory at most).
pub const RUN_EVENTS: usize = 2_000_000;
/// Runs of one level merged into one run of the next.
const MERGE_FAN_IN: usize = 8;
/// Accounts read at once when runs are merged or verified.
const ACCOUNT_CHUNK: i64 = 50_000;

const SEGMENT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, uuid BLOB NOT NULL UNIQUE);
-- No index on `ip`: the writer maps addresses to ids in memory (dictionary.rs), queries
-- reach runs by address through `ip_runs` and the tail through its own map. (Files made before
-- 2026-12-04 still carry a UNIQUE index here; it is harmless.)
CREATE TABLE IF NOT EXISTS ips (id INTEGER PRIMARY KEY, ip BLOB NOT NULL);
-- Free text, sealed; `h` is its keyed hash (the dictionary key).
CREATE TABLE IF NOT EXISTS strings (id INTEGER PRIMARY KEY, h BLOB NOT NULL UNIQUE, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
-- One row per commit of events not yet in a run.
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id     INTEGER PRIMARY KEY,
    level  INTEGER NOT NULL,
    events INTEGER NOT NULL,
    first  INTEGER NOT NULL,
    last   INTEGER NOT NULL
);
-- A run's blocks (each account's events), up to 64 consecutive accounts a row, keyed by the
-- first (format 4; the block bucket of format.rs).
CREATE TABLE IF NOT EXISTS blocks (
    run     INTEGER NOT NULL,
    account INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (run, account)
) WITHOUT ROWID;
-- A run's address lists, up to 64 consecutive addresses a row, keyed by the first
-- (format 3; the address bucket of format.rs).
CREATE TABLE IF NOT EXISTS ip_runs (
    run  INTEGER NOT NULL,
    ip   BLOB NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run, ip)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (k, v) VALUES ('format', 4), ('flushes', 0);
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

/// How the engine is opened. The defaults are the product's; tests make runs tiny so that
/// every path (runs, merges, the dedupe check against runs) is taken by a few events.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub durability: Durability,
    /// Events of a tail written out as one run.
    pub run_events: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Full,
            run_events: RUN_EVENTS,
        }
    }
}

/// The tails of this process, by segment: shared by the writer and the readers.
#[derive(Default)]
struct Tails(Mutex<HashMap<i64, Arc<RwLock<Tail>>>>);

impl Tails {
    fn get(&self, seg: i64) -> Arc<RwLock<Tail>> {
        lock(&self.0).entry(seg).or_default().clone()
    }

    fn forget(&self, seg: i64) {
        lock(&self.0).remove(&seg);
    }
}

/// A segment's events still in its log, in memory: by account (each list in key order) and
/// by address. `flushes` and `seq` say which state of the file it mirrors.
#[derive(Default)]
struct Tail {
    loaded: bool,
    /// Runs written from the log so far (the file's `meta.flushes`).
    flushes: i64,
    /// The last log record absorbed.
    seq: i64,
    accounts: FastMap<i64, Vec<Ev>>,
    /// Each address of the tail: its id and its accounts, each once ([`Tail::in_range`] for
    /// CIDR ranges; a hash map: a B-tree here was a sixth of the import's storing time at
    /// 500,000 accounts).
    by_ip: FastMap<IpKey, (i64, Vec<i64>)>,
    /// Addresses of the ids met in the log, when the tail was read from the file.
    ip_keys: query::Addresses,
    /// (address id, account id) pairs of the tail.
    pairs: foldhash::HashSet<(i64, i64)>,
    events: usize,
    /// The latest event time of any run: a later event cannot be in a run.
    runs_last: i64,
}

impl Tail {
    /// The tail's addresses in `[first, last]` with their accounts: each address of the range
    /// looked up when the range holds fewer addresses than the tail, else the tail scanned.
    fn in_range(&self, first: IpKey, last: IpKey) -> Vec<(IpKey, i64, &[i64])> {
        let (lo, hi) = (u128::from_be_bytes(first), u128::from_be_bytes(last));
        if hi < lo {
            return Vec::new();
        }
        if hi - lo < self.by_ip.len() as u128 {
            (lo..=hi)
                .filter_map(|k| {
                    let k = k.to_be_bytes();
                    self.by_ip.get(&k).map(|(id, a)| (k, *id, a.as_slice()))
                })
                .collect()
        } else {
            self.by_ip
                .iter()
                .filter(|(k, _)| first <= **k && **k <= last)
                .map(|(k, (id, a))| (*k, *id, a.as_slice()))
                .collect()
        }
    }

    /// Adds an event unless the tail holds it already; says whether it was added.
    fn insert(&mut self, account: i64, e: Ev, ip: IpKey) -> bool {
        let v = self.accounts.entry(account).or_default();
        // Usually the account's newest event: one comparison, appended.
        let pos = match v.last() {
            Some(l) if l.key() >= e.key() => {
                let key = e.key();
                match v.binary_search_by(|x| x.key().cmp(&key)) {
                    Ok(_) => return false,
                    Err(pos) => pos,
                }
            }
            _ => v.len(),
        };
        if self.pairs.insert((e.ip, account)) {
            self.by_ip
                .entry(ip)
                .or_insert_with(|| (e.ip, Vec::new()))
                .1
                .push(account);
        }
        v.insert(pos, e);
        self.events += 1;
        true
    }
}

/// What [`sync_tail`] found.
#[derive(Debug, PartialEq, Eq)]
enum Sync {
    /// The tail mirrors the transaction's snapshot (or more of the same log).
    Current { flushes: i64, seq: i64 },
    /// The tail is newer than the snapshot (a commit or a run landed after it began).
    Ahead,
}

/// The log position of the snapshot of the transaction open on `conn`: runs written from
/// the log so far, and its last record.
fn log_position(conn: &Connection) -> Result<(i64, i64)> {
    let flushes: i64 = conn
        .prepare_cached("SELECT v FROM meta WHERE k = 'flushes'")?
        .query_row([], |r| r.get(0))?;
    let seq: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM log")?
        .query_row([], |r| r.get(0))?;
    Ok((flushes, seq))
}

/// Brings a tail up to the snapshot of the transaction open on `conn`: reloads it when a run
/// was written since, reads the log records it has not absorbed.
fn sync_tail(conn: &Connection, tail: &mut Tail) -> Result<Sync> {
    let (flushes, seq) = log_position(conn)?;
    if tail.loaded && (tail.flushes > flushes || (tail.flushes == flushes && tail.seq > seq)) {
        return Ok(Sync::Ahead);
    }
    if !tail.loaded || tail.flushes < flushes {
        *tail = Tail {
            loaded: true,
            flushes,
            runs_last: conn
                .prepare_cached("SELECT coalesce(max(last), -1) FROM runs")?
                .query_row([], |r| r.get(0))?,
            ..Tail::default()
        };
    }
    if tail.seq < seq {
        let mut st = conn.prepare_cached(
            "SELECT seq, data FROM log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
        )?;
        let mut rows = st.query([tail.seq, seq])?;
        while let Some(r) = rows.next()? {
            let data: Vec<u8> = r.get(1)?;
            for (account, e) in format::decode_record(&data)? {
                let ip = tail.ip_keys.get(conn, e.ip)?;
                tail.insert(account, e, ip);
            }
            tail.seq = r.get(0)?;
        }
    }
    Ok(Sync::Current {
        flushes,
        seq: tail.seq,
    })
}

fn read_tail(t: &RwLock<Tail>) -> std::sync::RwLockReadGuard<'_, Tail> {
    t.read().unwrap_or_else(|p| p.into_inner())
}

fn write_tail(t: &RwLock<Tail>) -> std::sync::RwLockWriteGuard<'_, Tail> {
    t.write().unwrap_or_else(|p| p.into_inner())
}

pub struct SqliteAccess {
    dir: PathBuf,
    options: Options,
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
    options: Options,
    vault: Arc<dyn TextVault>,
    catalog: Connection,
    open: HashMap<i64, SegmentWriter>,
    tails: Arc<Tails>,
    /// Use order of `open`, for closing the least recently used.
    tick: u64,
}

struct SegmentWriter {
    conn: Connection,
    dict: Dictionary,
    used: u64,
    last_used: std::time::Instant,
    /// After a failed run write, the tail size at which it is tried again.
    run_retry_at: usize,
}

struct Readers {
    dir: PathBuf,
    idle: Mutex<HashMap<i64, Vec<Connection>>>,
    tails: Arc<Tails>,
}

fn segment_path(dir: &Path, seg: i64) -> PathBuf {
    dir.join(format!("seg-{seg}.db"))
}

pub fn segment_of(at: i64) -> i64 {
    at.div_euclid(SEGMENT_MICROS)
}

/// Frees `v` on a short-lived thread of its own: a batch's events or a written-out tail are
/// millions of small allocations, a few percent of the writer's time at 500,000 accounts.
fn drop_elsewhere<T: Send + 'static>(v: T) {
    // When no thread can be started, the closure — and `v` with it — is freed right here.
    let _ = std::thread::Builder::new()
        .name("cip-access-free".into())
        .spawn(move || drop(v));
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

/// Opens a segment file for writing: its schema, and a format-1 file (account-first `events`
/// table, before 2026-12-03) converted to one run.
fn open_segment(path: &Path, durability: Durability) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    pragmas(&conn, durability)?;
    conn.execute_batch(SEGMENT_SCHEMA)?;
    let old: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        [],
        |r| r.get(0),
    )?;
    if old {
        convert_format1(&mut conn)?;
    }
    let format: i64 = conn.query_row("SELECT v FROM meta WHERE k = 'format'", [], |r| r.get(0))?;
    match format {
        2 | 3 => upgrade_to_buckets(&mut conn, format)?,
        4 => {}
        n => {
            return Err(AccessError::Storage(format!(
                "{} is an access segment of format {n}, which this version of cip does not \
                 read; upgrade cip",
                path.display()
            )));
        }
    }
    Ok(conn)
}

impl SqliteAccess {
    /// Opens (creating) the record in `dir` (normally `<data dir>/access`).
    pub fn open(dir: &Path, vault: Arc<dyn TextVault>) -> Result<Self> {
        Self::open_with(dir, vault, Options::default())
    }

    pub fn open_with(dir: &Path, vault: Arc<dyn TextVault>, options: Options) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let catalog = Connection::open(dir.join("catalog.db"))?;
        pragmas(&catalog, options.durability)?;
        catalog.execute_batch(CATALOG_SCHEMA)?;
        // Older segment files are converted now, before any reader opens them.
        for seg in list_segments(dir)? {
            open_segment(&segment_path(dir, seg), options.durability)?;
        }
        let tails = Arc::new(Tails::default());
        Ok(SqliteAccess {
            dir: dir.to_path_buf(),
            options,
            vault: vault.clone(),
            writer: Arc::new(Mutex::new(Writer {
                dir: dir.to_path_buf(),
                options,
                vault,
                catalog,
                open: HashMap::new(),
                tails: tails.clone(),
                tick: 0,
            })),
            queue: Arc::new(Mutex::new(Vec::new())),
            readers: Arc::new(Readers {
                dir: dir.to_path_buf(),
                idle: Mutex::new(HashMap::new()),
                tails,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.options.durability
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

    /// Packs a segment that no longer receives events: its log written out as a run, all its
    /// runs merged into one, the file rewritten compactly (`VACUUM`).
    pub fn compact_segment(&self, seg: i64) -> Result<()> {
        let mut w = lock(&self.writer);
        let tails = w.tails.clone();
        let sw = w.segment(seg)?;
        sw.write_run(seg, &tails, true)?;
        w.open.remove(&seg);
        let conn = Connection::open(segment_path(&self.dir, seg))?;
        pragmas(&conn, self.options.durability)?;
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

    /// Runs a read on the blocking pool, with the readers and the segments as they are now.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Readers, Vec<i64>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let segments = self.segment_ids()?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || f(&readers, segments))
            .await
            .map_err(join_err)?
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
                self.close(oldest);
            }
            let sw = SegmentWriter::open(&segment_path(&self.dir, seg), self.options.durability)?;
            self.open.insert(seg, sw);
        }
        let sw = self
            .open
            .get_mut(&seg)
            .ok_or_else(|| AccessError::Storage("segment vanished".into()))?;
        sw.used = tick;
        sw.last_used = std::time::Instant::now();
        Ok(sw)
    }

    /// Closes a segment writer: its tail written out as a run (a failure leaves the events in
    /// the log, where whoever opens the segment next finds them), its memory returned.
    fn close(&mut self, seg: i64) {
        if let Some(mut old) = self.open.remove(&seg) {
            if let Err(e) = old.write_run(seg, &self.tails, false) {
                tracing::warn!(segment = seg, error = %e, "writing an access run failed; the events stay in the log");
            }
            self.tails.forget(seg);
        }
    }

    /// Closes the writers of older segments that have received nothing for [`IDLE_SEGMENT`].
    fn close_idle(&mut self) {
        let newest = self.open.keys().copied().max();
        let idle: Vec<i64> = self
            .open
            .iter()
            .filter(|(s, w)| Some(**s) != newest && w.last_used.elapsed() >= IDLE_SEGMENT)
            .map(|(s, _)| *s)
            .collect();
        for seg in idle {
            self.close(seg);
        }
    }

    /// Stores several callers' batches together: one transaction per segment for all of
    /// them, then their import marks. Returns each batch's outcome, in order. An event sent
    /// by two batches of the group is stored once (the first met counts it as accepted).
    fn ingest_many(
        &mut self,
        batches: Vec<(Vec<AccessEvent>, Option<ImportMark>)>,
    ) -> Result<Vec<IngestOutcome>> {
        let mut outcomes = vec![IngestOutcome::default(); batches.len()];
        let marks: Vec<ImportMark> = batches.iter().filter_map(|b| b.1).collect();
        // The events by reference, each with its batch: the batches themselves are not
        // copied (a copy of 200,000 events was a tenth of the storing thread, most of it the
        // kernel handing out fresh pages for it).
        let mut events: Vec<(u32, &AccessEvent)> = batches
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.0.iter().map(move |e| (i as u32, e)))
            .collect();
        // By segment (stable, so each batch's own order is kept); input in time order is
        // almost always one segment already, and then nothing moves.
        if events
            .windows(2)
            .any(|w| segment_of(w[0].1.at) != segment_of(w[1].1.at))
        {
            events.sort_by_key(|(_, e)| segment_of(e.at));
        }
        let mut start = 0;
        while start < events.len() {
            let seg = segment_of(events[start].1.at);
            let end = start
                + events[start..]
                    .iter()
                    .position(|(_, e)| segment_of(e.at) != seg)
                    .unwrap_or(events.len() - start);
            let (vault, tails, run_events) = (
                self.vault.clone(),
                self.tails.clone(),
                self.options.run_events,
            );
            let result = self.segment(seg).and_then(|sw| {
                sw.apply(
                    seg,
                    &events[start..end],
                    vault.as_ref(),
                    &tails,
                    &mut outcomes,
                )
            });
            if let Err(e) = result {
                // Looked at before the connection closes: closing checkpoints and removes
                // the WAL, the very file that may have reached its limit.
                let e = classify_io(e, &self.dir);
                // Its dictionaries may hold ids of the rolled-back transaction; the tail is
                // reloaded from the file by whoever reads it next.
                self.open.remove(&seg);
                self.tails.forget(seg);
                return Err(e);
            }
            // The batch is durable. Writing the run is the engine's own business: a failure
            // (storage running out) leaves the tail in the log and is tried again later, and
            // never turns an acknowledged batch into a refused one.
            let events_in_tail = read_tail(&self.tails.get(seg)).events;
            if let Some(sw) = self.open.get_mut(&seg)
                && events_in_tail >= run_events.max(sw.run_retry_at)
                && let Err(e) = sw.write_run(seg, &self.tails, false)
            {
                sw.run_retry_at = events_in_tail + run_events / 8 + 1;
                tracing::warn!(segment = seg, error = %e, "writing an access run failed; the events stay in the log and it is tried again");
            }
            start = end;
        }
        // Freeing a batch's events (a few allocations each) is not the writer's work.
        drop(events);
        drop_elsewhere(batches);
        self.close_idle();
        for m in marks {
            // After the events: a crash in between replays the batch, which the dedupe turns
            // into duplicates, never into a gap.
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
        let conn = open_segment(path, durability)?;
        let dict = Dictionary::load(&conn)?;
        Ok(SegmentWriter {
            conn,
            dict,
            used: 0,
            last_used: std::time::Instant::now(),
            run_retry_at: 0,
        })
    }

    /// One transaction: the batch's new events as one log record. The tail absorbs each new
    /// event as it is met (so a batch's duplicates of each other are found there too), under
    /// its write lock until the commit: readers never see an uncommitted event, and a failure
    /// empties the tail, to be reloaded from the file.
    fn apply(
        &mut self,
        seg: i64,
        events: &[(u32, &AccessEvent)],
        vault: &dyn TextVault,
        tails: &Tails,
        outcomes: &mut [IngestOutcome],
    ) -> Result<()> {
        let tail_lock = tails.get(seg);
        let mut tail = write_tail(&tail_lock);
        let result = self.apply_locked(seg, events, vault, &mut tail, outcomes);
        if result.is_err() {
            *tail = Tail::default();
        }
        result
    }

    fn apply_locked(
        &mut self,
        seg: i64,
        events: &[(u32, &AccessEvent)],
        vault: &dyn TextVault,
        tail: &mut Tail,
        outcomes: &mut [IngestOutcome],
    ) -> Result<()> {
        let base = seg * SEGMENT_MICROS;
        let SegmentWriter { conn, dict, .. } = self;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        dict.catch_up(&tx)?;
        let Sync::Current { seq, .. } = sync_tail(&tx, tail)? else {
            return Err(AccessError::Storage(
                "the access tail is ahead of the file it mirrors".into(),
            ));
        };
        let runs = if events.iter().any(|(_, e)| e.at - base <= tail.runs_last) {
            query::run_spans(&tx)?
        } else {
            Vec::new()
        };
        // Blocks of the runs, by account, read only for an event not after the latest run.
        let mut in_runs: HashMap<i64, Vec<Ev>> = HashMap::new();
        let mut record = format::RecordWriter::with_capacity(events.len());
        for (batch, e) in events {
            let out = &mut outcomes[*batch as usize];
            let a = dict.account(e.account);
            let ip = dict.ip(e.ip);
            let mut text =
                |s: &Option<String>| s.as_deref().map(|s| dict.string(vault, s)).transpose();
            let user_agent = text(&e.user_agent)?;
            let session = text(&e.session)?;
            let resource = text(&e.resource)?;
            let principal = dict.string(vault, &e.principal)?;
            let ev = Ev {
                t: e.at - base,
                ip,
                principal,
                action: e.action.code() as u8,
                event_id: e.event_id.as_deref().map(Into::into),
                user_agent,
                session,
                resource,
            };
            let in_a_run = ev.t <= tail.runs_last && {
                let stored = match in_runs.entry(a) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(query::account_run_events(&tx, &runs, a, 0, SEGMENT_MICROS)?)
                    }
                };
                let key = ev.key();
                stored.binary_search_by(|x| x.key().cmp(&key)).is_ok()
            };
            if in_a_run {
                out.duplicates += 1;
                continue;
            }
            let undo = record.position();
            record.push(a, &ev)?;
            if tail.insert(a, ev, e.ip) {
                out.accepted += 1;
            } else {
                record.truncate(undo);
                out.duplicates += 1;
            }
        }
        dict.write_new(&tx)?;
        if record.is_empty() {
            return Ok(tx.commit()?);
        }
        tx.prepare_cached("INSERT INTO log (seq, data) VALUES (?1, ?2)")?
            .execute(params![seq + 1, record.finish()])?;
        tx.commit()?;
        tail.seq = seq + 1;
        Ok(())
    }

    /// Writes the tail out as a run (one transaction, which also empties the log), then merges
    /// full levels; with `all`, merges every run of the segment into one.
    fn write_run(&mut self, seg: i64, tails: &Tails, all: bool) -> Result<()> {
        let tail_lock = tails.get(seg);
        let SegmentWriter { conn, dict, .. } = self;
        let ip_of = dict.ip_of();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Sync::Current { flushes, .. } = sync_tail(&tx, &mut write_tail(&tail_lock))? else {
            return Err(AccessError::Storage(
                "the access tail is ahead of the file it mirrors".into(),
            ));
        };
        let (events, last) = {
            let tail = read_tail(&tail_lock);
            let mut accounts: Vec<(&i64, &Vec<Ev>)> = tail.accounts.iter().collect();
            accounts.sort_unstable_by_key(|(a, _)| **a);
            let mut uses = Uses::default();
            let mut range = (i64::MAX, i64::MIN);
            let run = next_run(&tx)?;
            {
                let mut blocks = BlockRows::into_table(&tx, "blocks", run)?;
                for (a, evs) in &accounts {
                    blocks.push(**a, evs)?;
                    uses.add(ip_of, &tx, **a, evs)?;
                    if let (Some(f), Some(l)) = (evs.first(), evs.last()) {
                        range = (range.0.min(f.t), range.1.max(l.t));
                    }
                }
                blocks.finish()?;
            }
            if tail.events > 0 {
                put_users(&tx, run, uses)?;
                tx.prepare_cached(
                    "INSERT INTO runs (id, level, events, first, last) VALUES (?1, 0, ?2, ?3, ?4)",
                )?
                .execute(params![run, tail.events as i64, range.0, range.1])?;
                tx.execute_batch(
                    "DELETE FROM log; UPDATE meta SET v = v + 1 WHERE k = 'flushes';",
                )?;
            }
            (tail.events, range.1)
        };
        merge(&tx, ip_of, all)?;
        tx.commit()?;
        if events > 0 {
            let mut tail = write_tail(&tail_lock);
            let runs_last = tail.runs_last.max(last);
            drop_elsewhere(std::mem::replace(
                &mut *tail,
                Tail {
                    loaded: true,
                    flushes: flushes + 1,
                    runs_last,
                    ..Tail::default()
                },
            ));
        }
        Ok(())
    }
}

/// A run's address lists, in address order, up to [`format::BUCKET_ADDRESSES`] to a row:
/// the (address, account) uses sorted, then grouped — one sort of flat tuples instead of a
/// list per address (a tenth of the storing time at 500,000 accounts went to those lists).
fn put_users(tx: &Connection, run: i64, mut uses: Uses) -> Result<()> {
    uses.0.sort_unstable_by_key(|u| (u.0, u.1));
    let mut buckets = AddressRows::into_table(tx, "ip_runs", run)?;
    let mut list: Vec<(i64, Span)> = Vec::new();
    for by_ip in uses.0.chunk_by(|a, b| a.0 == b.0) {
        list.clear();
        list.extend(by_ip.iter().map(|u| (u.1, u.2)));
        buckets.push(by_ip[0].0, &list)?;
    }
    buckets.finish()
}

/// Writes a run's rows of one kind, keys given in ascending order, several to a row.
struct Rows<'c, B: Bucket> {
    put: rusqlite::CachedStatement<'c>,
    run: i64,
    open: Option<B>,
}

type AddressRows<'c> = Rows<'c, format::BucketWriter>;
type BlockRows<'c> = Rows<'c, format::BlockBucketWriter>;

impl<'c, B: Bucket> Rows<'c, B>
where
    B::Key: rusqlite::ToSql,
{
    /// `table` is `ip_runs` or `blocks` (or a table being built to replace one).
    fn into_table(conn: &'c Connection, table: &str, run: i64) -> Result<Self> {
        let key = B::KEY_COLUMN;
        Ok(Rows {
            put: conn.prepare_cached(&format!(
                "INSERT INTO {table} (run, {key}, data) VALUES (?1, ?2, ?3)"
            ))?,
            run,
            open: None,
        })
    }

    fn push(&mut self, key: B::Key, item: &B::Item) -> Result<()> {
        let b = self.open.get_or_insert_with(|| B::new(key));
        if !b.push(key, item)? {
            // Too large for this row: it starts the next one (an empty row takes anything).
            self.flush()?;
            self.open.insert(B::new(key)).push(key, item)?;
        }
        if self.open.as_ref().is_some_and(|b| b.is_full()) {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(b) = self.open.take() {
            let key = b.key();
            self.put.execute(params![self.run, key, b.finish()])?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()
    }
}

/// Converts a format-2 segment (one `ip_runs` row per address, one `blocks` row per account)
/// or a format-3 one (blocks still one per account) to format 4, in one transaction. Log and
/// dictionaries are the same in all three.
fn upgrade_to_buckets(conn: &mut Connection, from: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if from == 2 {
        rebucket::<format::BucketWriter, _>(&tx, "ip_runs", "BLOB", |r| {
            let data: Vec<u8> = r.get(2)?;
            Ok((stored_ip(r.get(1)?)?, format::decode_users(&data)?))
        })?;
    }
    rebucket::<format::BlockBucketWriter, _>(&tx, "blocks", "INTEGER", |r| {
        let data: Vec<u8> = r.get(2)?;
        Ok((r.get(1)?, format::decode_block(&data)?))
    })?;
    tx.execute("UPDATE meta SET v = 4 WHERE k = 'format'", [])?;
    tx.commit()?;
    Ok(())
}

/// Rewrites `table` (one row per key) as bucket rows: a new table filled run by run in key
/// order, then put in the old one's place.
fn rebucket<B: Bucket, T: std::borrow::Borrow<B::Item>>(
    tx: &Connection,
    table: &str,
    key_type: &str,
    read: impl Fn(&rusqlite::Row) -> Result<(B::Key, T)>,
) -> Result<()>
where
    B::Key: rusqlite::ToSql,
{
    let key = B::KEY_COLUMN;
    tx.execute_batch(&format!(
        "CREATE TABLE {table}_new (run INTEGER NOT NULL, {key} {key_type} NOT NULL, \
         data BLOB NOT NULL, PRIMARY KEY (run, {key})) WITHOUT ROWID;"
    ))?;
    {
        let mut st = tx.prepare(&format!(
            "SELECT run, {key}, data FROM {table} ORDER BY run, {key}"
        ))?;
        let mut rows = st.query([])?;
        let mut current: Option<(i64, Rows<B>)> = None;
        while let Some(r) = rows.next()? {
            let run: i64 = r.get(0)?;
            if current.as_ref().is_none_or(|c| c.0 != run) {
                if let Some((_, b)) = current.take() {
                    b.finish()?;
                }
                current = Some((run, Rows::into_table(tx, &format!("{table}_new"), run)?));
            }
            if let Some((_, b)) = current.as_mut() {
                let (k, item) = read(r)?;
                b.push(k, item.borrow())?;
            }
        }
        if let Some((_, b)) = current.take() {
            b.finish()?;
        }
    }
    tx.execute_batch(&format!(
        "DROP TABLE {table}; ALTER TABLE {table}_new RENAME TO {table};"
    ))?;
    Ok(())
}

/// Merges the runs of any level holding [`MERGE_FAN_IN`] into one of the next level
/// (repeatedly); with `all`, every run into one.
fn merge(tx: &Connection, ip_of: &[Option<IpKey>], all: bool) -> Result<()> {
    loop {
        let runs: Vec<(i64, i64)> = tx
            .prepare_cached("SELECT id, level FROM runs ORDER BY level, id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let pick: Vec<i64> = if all {
            if runs.len() < 2 {
                return Ok(());
            }
            runs.iter().map(|r| r.0).collect()
        } else {
            let mut by_level: HashMap<i64, Vec<i64>> = HashMap::new();
            for (id, level) in &runs {
                by_level.entry(*level).or_default().push(*id);
            }
            match by_level.into_values().find(|v| v.len() >= MERGE_FAN_IN) {
                Some(v) => v,
                None => return Ok(()),
            }
        };
        let level = 1 + runs
            .iter()
            .filter(|r| pick.contains(&r.0))
            .map(|r| r.1)
            .max()
            .unwrap_or(0);
        merge_runs(tx, ip_of, &pick, level)?;
        if all {
            return Ok(());
        }
    }
}

/// Merges `runs` into one new run of `level`, account by account, a chunk of accounts at a
/// time.
fn merge_runs(tx: &Connection, ip_of: &[Option<IpKey>], runs: &[i64], level: i64) -> Result<()> {
    let run = next_run(tx)?;
    let max_account: i64 = tx.query_row("SELECT coalesce(max(id), 0) FROM accounts", [], |r| {
        r.get(0)
    })?;
    let mut uses = Uses::default();
    let (mut events, mut range) = (0i64, (i64::MAX, i64::MIN));
    let mut blocks = BlockRows::into_table(tx, "blocks", run)?;
    let mut lo = 0;
    while lo <= max_account {
        let hi = lo + ACCOUNT_CHUNK;
        let mut chunk: std::collections::BTreeMap<i64, Vec<Ev>> = Default::default();
        for r in runs {
            for (a, evs) in query::blocks_between(tx, *r, lo, hi)? {
                chunk.entry(a).or_default().extend(evs);
            }
        }
        for (a, mut evs) in chunk {
            evs.sort_unstable_by(|x, y| x.key().cmp(&y.key()));
            blocks.push(a, &evs)?;
            uses.add(ip_of, tx, a, &evs)?;
            events += evs.len() as i64;
            if let (Some(f), Some(l)) = (evs.first(), evs.last()) {
                range = (range.0.min(f.t), range.1.max(l.t));
            }
        }
        lo = hi;
    }
    blocks.finish()?;
    put_users(tx, run, uses)?;
    tx.prepare_cached(
        "INSERT INTO runs (id, level, events, first, last) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![run, level, events, range.0, range.1])?;
    for r in runs {
        tx.prepare_cached("DELETE FROM blocks WHERE run = ?1")?
            .execute([r])?;
        tx.prepare_cached("DELETE FROM ip_runs WHERE run = ?1")?
            .execute([r])?;
        tx.prepare_cached("DELETE FROM runs WHERE id = ?1")?
            .execute([r])?;
    }
    Ok(())
}

fn next_run(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM runs")?
        .query_row([], |r| r.get(0))?)
}

/// A run's address uses being collected: (address, account, use) per pair.
#[derive(Default)]
struct Uses(Vec<(IpKey, i64, Span)>);

impl Uses {
    /// Adds an account's events (all of them in the run, given once): its (address, time)
    /// pairs sorted, then grouped.
    fn add(
        &mut self,
        ip_of: &[Option<IpKey>],
        conn: &Connection,
        account: i64,
        evs: &[Ev],
    ) -> Result<()> {
        let mut pairs: Vec<(i64, i64)> = evs.iter().map(|e| (e.ip, e.t)).collect();
        pairs.sort_unstable();
        for group in pairs.chunk_by(|a, b| a.0 == b.0) {
            let (ip, first) = group[0];
            self.0.push((
                ip_bytes(ip_of, conn, ip)?,
                account,
                Span {
                    first,
                    last: group[group.len() - 1].1,
                    n: group.len() as u64,
                },
            ));
        }
        Ok(())
    }
}

/// Converts a format-1 segment (account-first `events` table with `account_ip` and
/// `ip_account` summaries) into one run, in one transaction.
fn convert_format1(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ip_of = Vec::new();
    {
        let mut st = tx.prepare("SELECT id, ip FROM ips")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            remember_ip(&mut ip_of, r.get(0)?, crate::stored_ip(r.get(1)?)?);
        }
    }
    let run = next_run(&tx)?;
    let mut uses = Uses::default();
    let (mut events, mut range) = (0i64, (i64::MAX, i64::MIN));
    {
        let mut st = tx.prepare(
            "SELECT account, t, ip, principal, action, event_id, user_agent, session, resource \
             FROM events ORDER BY account, t, ip, principal, action, event_id",
        )?;
        let mut blocks = BlockRows::into_table(&tx, "blocks", run)?;
        let mut rows = st.query([])?;
        let mut current: Option<(i64, Vec<Ev>)> = None;
        let mut finish = |a: i64, mut evs: Vec<Ev>| -> Result<()> {
            evs.sort_unstable_by(|x, y| x.key().cmp(&y.key()));
            blocks.push(a, &evs)?;
            uses.add(&ip_of, &tx, a, &evs)?;
            events += evs.len() as i64;
            if let (Some(f), Some(l)) = (evs.first(), evs.last()) {
                range = (range.0.min(f.t), range.1.max(l.t));
            }
            Ok(())
        };
        while let Some(r) = rows.next()? {
            let a: i64 = r.get(0)?;
            let event_id: String = r.get(5)?;
            let ev = Ev {
                t: r.get(1)?,
                ip: r.get(2)?,
                principal: r.get(3)?,
                action: r.get::<_, i64>(4)? as u8,
                event_id: (!event_id.is_empty()).then(|| event_id.into()),
                user_agent: r.get(6)?,
                session: r.get(7)?,
                resource: r.get(8)?,
            };
            match &mut current {
                Some((x, v)) if *x == a => v.push(ev),
                _ => {
                    if let Some((x, v)) = current.take() {
                        finish(x, v)?;
                    }
                    current = Some((a, vec![ev]));
                }
            }
        }
        if let Some((x, v)) = current.take() {
            finish(x, v)?;
        }
        blocks.finish()?;
    }
    if events > 0 {
        put_users(&tx, run, uses)?;
        tx.execute(
            "INSERT INTO runs (id, level, events, first, last) VALUES (?1, 1, ?2, ?3, ?4)",
            params![run, events, range.0, range.1],
        )?;
    }
    tx.execute_batch("DROP TABLE events; DROP TABLE account_ip; DROP TABLE ip_account;")?;
    tx.commit()?;
    Ok(())
}

impl Readers {
    /// Runs `f` on a read snapshot of segment `seg` with its tail as of that snapshot; `None`
    /// when the segment is gone.
    fn with<T>(&self, seg: i64, f: impl Fn(&Connection, &Tail) -> Result<T>) -> Result<Option<T>> {
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
        let tail_lock = self.tails.get(seg);
        let result = (|| {
            // A run written or a commit absorbed between the snapshot and the tail's lock
            // makes the tail newer than the snapshot: take a new snapshot (it is rare and
            // the next one matches, since the tail only moves on a commit).
            for _ in 0..100 {
                conn.execute_batch("BEGIN")?;
                let attempt = (|| {
                    let (flushes, seq) = log_position(&conn)?;
                    let mirrors = |t: &Tail| t.loaded && t.flushes == flushes && t.seq == seq;
                    {
                        // Usually the tail is current: no need to wait for the writer.
                        let tail = read_tail(&tail_lock);
                        if mirrors(&tail) {
                            return f(&conn, &tail).map(Some);
                        }
                    }
                    if sync_tail(&conn, &mut write_tail(&tail_lock))? == Sync::Ahead {
                        return Ok(None);
                    }
                    let tail = read_tail(&tail_lock);
                    if !mirrors(&tail) {
                        return Ok(None);
                    }
                    f(&conn, &tail).map(Some)
                })();
                conn.execute_batch("COMMIT")?;
                if let Some(v) = attempt? {
                    return Ok(v);
                }
            }
            Err(AccessError::Storage(
                "the access segment kept changing under the reader".into(),
            ))
        })();
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
        self.tails.forget(seg);
    }
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
        let cursor = cursor.map(query::Cursor::decode).transpose()?;
        let vault = self.vault.clone();
        self.read(move |readers, segments| {
            query::account_events(
                readers,
                vault.as_ref(),
                &segments,
                account,
                (from, to),
                cursor,
                limit,
            )
        })
        .await
    }

    async fn account_ips(&self, account: Uuid, from: i64, to: i64) -> Result<Vec<IpUse>> {
        self.read(move |readers, segments| {
            query::account_ips(readers, &segments, account, from, to)
        })
        .await
    }

    async fn ip_accounts(&self, range: IpRange, from: i64, to: i64) -> Result<Vec<AccountUse>> {
        self.read(move |readers, segments| query::ip_accounts(readers, &segments, range, from, to))
            .await
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
            readers.with(segment, |conn, _| {
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
        self.read(move |readers, segments| {
            let mut out = Consistency::default();
            for seg in segments {
                let got = readers.with(seg, |conn, tail| query::verify_segment(conn, tail, seg))?;
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
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(t: i64, ip: i64) -> Ev {
        Ev {
            t,
            ip,
            principal: 1,
            action: 0,
            event_id: None,
            user_agent: None,
            session: None,
            resource: None,
        }
    }

    /// A CIDR range over the tail finds the same addresses whether it looks each address of
    /// the range up (a range smaller than the tail) or scans the tail (a larger one).
    #[test]
    fn tail_ranges_by_lookup_and_by_scan_agree() {
        let key = |i: u128| i.to_be_bytes();
        let mut tail = Tail::default();
        for i in 0..40u128 {
            // Addresses 100, 103, 106 …; two accounts on every fourth.
            let k = key(100 + 3 * i);
            tail.insert(1, ev(i as i64, i as i64), k);
            if i % 4 == 0 {
                tail.insert(2, ev(i as i64, i as i64), k);
            }
        }
        // Re-sent: stored once, the address's accounts unchanged.
        assert!(!tail.insert(1, ev(0, 0), key(100)));
        let expect = |lo: u128, hi: u128| -> Vec<(IpKey, Vec<i64>)> {
            (0..40u128)
                .map(|i| 100 + 3 * i)
                .filter(|a| lo <= *a && *a <= hi)
                .map(|a| {
                    let i = (a - 100) / 3;
                    (key(a), if i % 4 == 0 { vec![1, 2] } else { vec![1] })
                })
                .collect()
        };
        let got = |lo: u128, hi: u128| -> Vec<(IpKey, Vec<i64>)> {
            let mut v: Vec<(IpKey, Vec<i64>)> = tail
                .in_range(key(lo), key(hi))
                .into_iter()
                .map(|(k, _, a)| (k, a.to_vec()))
                .collect();
            v.sort();
            v
        };
        // 10 addresses in the range (< 40 in the tail): looked up.
        assert_eq!(got(100, 109), expect(100, 109));
        assert_eq!(got(101, 102), vec![]);
        // 1,000 addresses (> 40): scanned.
        assert_eq!(got(0, 999), expect(0, 999));
        assert_eq!(got(150, 1149), expect(150, 1149));
        // Reversed: nothing.
        assert_eq!(got(200, 100), vec![]);
        assert_eq!(tail.events, 50);
    }

    type Found = Vec<(IpKey, Uuid, i64, i64, u64)>;

    async fn answers(store: &dyn AccessStore, ranges: &[IpRange], t0: i64) -> Vec<Found> {
        let mut all = Vec::new();
        for r in ranges {
            let mut v = store.ip_accounts(*r, t0, t0 + 10_000).await.unwrap();
            v.sort_by_key(|u| (u.ip, u.account));
            all.push(
                v.into_iter()
                    .map(|u| (u.ip, u.account, u.first_seen, u.last_seen, u.count))
                    .collect(),
            );
        }
        all
    }

    /// Address lists in buckets: a range starting inside a bucket, or spanning two, finds
    /// what it finds address by address; and a format-2 segment (one row per address, one
    /// block row per account) is converted when the record opens, answering the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buckets_answer_like_single_addresses_and_format_2_converts() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::conformance::T0;
        let seg = segment_of(t0);
        let accounts: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let addr = |i: u32| format!("192.0.2.{i}");
        let open = || {
            let options = Options {
                run_events: 5,
                ..Options::default()
            };
            SqliteAccess::open_with(dir.path(), Arc::new(ClearText), options).unwrap()
        };
        let store = open();
        // 150 addresses (three buckets once packed into one run), each used by one or two
        // accounts, several times.
        let mut events = Vec::new();
        for i in 0..150u32 {
            for k in 0..=(i % 2) as usize {
                for n in 0..2 {
                    events.push(crate::conformance::event(
                        accounts[(i as usize + k) % 3],
                        &addr(i % 256),
                        t0 + i64::from(i) * 10 + n,
                        Action::Login,
                    ));
                }
            }
        }
        store.ingest_blocking(events, None).unwrap();
        store.compact_segment(seg).unwrap();
        let ranges: Vec<IpRange> = [
            "192.0.2.0/24",
            "192.0.2.70/31",
            "192.0.2.32/27",
            "192.0.2.149",
        ]
        .iter()
        .map(|r| IpRange::parse(r).unwrap())
        .chain((0..150).map(|i| IpRange::single(crate::conformance::ip(&addr(i)))))
        .collect();
        let before = answers(&store, &ranges, t0).await;
        let mut by_account = Vec::new();
        for a in &accounts {
            let ips = store.account_ips(*a, t0, t0 + 10_000).await.unwrap();
            let evs = store
                .account_events(*a, t0, t0 + 10_000, None, 1000)
                .await
                .unwrap();
            assert_eq!(evs.len() as u64, ips.iter().map(|u| u.count).sum::<u64>());
            by_account.push((ips, evs.len()));
        }
        // The whole /24: every address, by one account or two.
        assert_eq!(before[0].len(), 225);
        // Address by address agrees with the ranges that cover them.
        let singles: Vec<_> = before[4..].iter().flatten().cloned().collect();
        assert_eq!(before[0], singles);
        assert_eq!(before[1], before[4 + 70..4 + 72].concat());
        assert_eq!(before[2], before[4 + 32..4 + 64].concat());
        assert!(store.verify().await.unwrap().ok());
        drop(store);

        // Back to format 2: one address list per row.
        let path = segment_path(dir.path(), seg);
        {
            let c = Connection::open(&path).unwrap();
            let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = c
                .prepare("SELECT run, ip, data FROM ip_runs")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap();
            assert!(
                rows.len() >= 3 && rows.len() < 150,
                "{} bucket rows",
                rows.len()
            );
            let blocks: Vec<(i64, i64, Vec<u8>)> = c
                .prepare("SELECT run, account, data FROM blocks")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap();
            c.execute_batch(
                "DELETE FROM ip_runs; DELETE FROM blocks; \
                 UPDATE meta SET v = 2 WHERE k = 'format';",
            )
            .unwrap();
            for (run, key, data) in blocks {
                for (a, block) in format::split_block_bucket(key, &data).unwrap() {
                    c.execute(
                        "INSERT INTO blocks (run, account, data) VALUES (?1, ?2, ?3)",
                        params![run, a, block],
                    )
                    .unwrap();
                }
            }
            for (run, key, data) in rows {
                let key = crate::stored_ip(key).unwrap();
                for (ip, users) in format::decode_bucket(key, &data).unwrap() {
                    c.execute(
                        "INSERT INTO ip_runs (run, ip, data) VALUES (?1, ?2, ?3)",
                        params![run, &ip[..], format::encode_users(&users).unwrap()],
                    )
                    .unwrap();
                }
            }
            let n: i64 = c
                .query_row("SELECT count(*) FROM ip_runs", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 150);
        }
        let store = open();
        assert_eq!(answers(&store, &ranges, t0).await, before);
        for (a, (ips, n)) in accounts.iter().zip(&by_account) {
            assert_eq!(&store.account_ips(*a, t0, t0 + 10_000).await.unwrap(), ips);
            let evs = store
                .account_events(*a, t0, t0 + 10_000, None, 1000)
                .await
                .unwrap();
            assert_eq!(evs.len(), *n);
        }
        let v = store.verify().await.unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        let c = Connection::open(&path).unwrap();
        let (format, rows): (i64, i64) = c
            .query_row(
                "SELECT (SELECT v FROM meta WHERE k = 'format'), (SELECT count(*) FROM ip_runs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(format, 4);
        assert!(rows < 150, "{rows} rows after the conversion");
    }
}
