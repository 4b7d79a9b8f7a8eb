//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes go through a single writer task per process that commits them in groups: requests
//! that arrive while a commit is being flushed to disk are applied together in the next
//! transaction, and an expected failure of one (a version conflict, a duplicate) does not fail
//! its neighbours. With `synchronous = FULL` every acknowledged write is on disk, and group
//! commit spreads the cost of that one fsync over all the writes of a group. The writer reads
//! the audit chain's head once per group, under the write lock, so other processes (the CLI)
//! can append safely. Reads use a separate pool of connections and never wait for the writer.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection as _};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::sqlite_ops as ops;
use crate::writer::{
    Job, Op, Out, boolean, claimed, count, fail_all, group_error, is_clean_failure, measures,
    next_group, unit,
};
use crate::*;

/// The most writes committed in one transaction.
const MAX_GROUP: usize = 512;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 128;

pub struct SqliteStore {
    reads: Arc<ReadPool>,
    writer: mpsc::Sender<Job>,
}

/// Read-only connections, taken and given back. Point reads (a key, a customer, a head) run on
/// the calling task's thread: they take microseconds from SQLite's page cache, and a hop to
/// another thread would cost more than the read. Scans run under `spawn_blocking`.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch("PRAGMA mmap_size = 268435456;")?;
    Ok(conn)
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL + synchronous=FULL: every acknowledged commit is on disk. Checkpoints run on their
    // own thread (`checkpoint_loop`), so a commit never copies the WAL into the database;
    // the writer's own auto-checkpoint stays only as a backstop should that thread fall far
    // behind (64 Ki pages = 256 MiB of WAL).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 65536;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::open_with(options).await
    }

    /// Opens a database from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        // Migrations run through sqlx (its migration table and checksums), on a connection
        // that is closed before the rusqlite connections take over.
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .disable_statement_logging();
        let path = options.get_filename().to_path_buf();
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .map_err(migrate_error)?;
        conn.close().await?;

        let writer = open_writer(&path)?;
        let reads = Arc::new(ReadPool {
            idle: Mutex::new(vec![open_reader(&path)?]),
            path,
        });
        let checkpointer = open_checkpointer(&reads.path)?;
        let (ckpt_tx, ckpt_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("cip-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, ckpt_rx))
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the SQLite checkpointer: {e}"))
            })?;
        let (tx, rx) = mpsc::channel(4096);
        std::thread::Builder::new()
            .name("cip-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx, ckpt_tx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(SqliteStore { reads, writer: tx })
    }

    async fn submit(&self, op: Op) -> Result<Out> {
        crate::writer::submit(&self.writer, op, "SQLite").await
    }

    /// A point read on this thread.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.reads.with(f)
    }

    /// A scan, on the blocking pool so it does not hold up the async workers.
    async fn scan<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reads = self.reads.clone();
        tokio::task::spawn_blocking(move || reads.with(f))
            .await
            .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::VersionMissing(_) => StoreError::SchemaTooNew,
        other => StoreError::Backend(format!("migration failed: {other}")),
    }
}

fn open_checkpointer(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    Ok(conn)
}

/// Copies committed WAL frames into the database file after commits, off the writer's
/// thread. PASSIVE never waits for readers or the writer: frames a reader still needs are
/// left for the next pass, and the writer keeps appending meanwhile. Wake-ups coalesce, so
/// under load this runs back to back and each pass copies what the last groups wrote.
/// Ends when the writer (the only sender) ends.
fn checkpoint_loop(conn: Connection, wake: std::sync::mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        let started = std::time::Instant::now();
        // (busy, frames in the WAL, frames copied into the database)
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((log, copied)) => {
                let took = started.elapsed();
                metrics::histogram!("cip_sqlite_checkpoint_seconds").record(took.as_secs_f64());
                metrics::gauge!("cip_sqlite_wal_frames").set(log as f64);
                tracing::debug!(
                    target: "cip_store::wal",
                    ms = took.as_secs_f64() * 1e3,
                    wal_frames = log,
                    copied_frames = copied,
                    "checkpoint pass"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; the next commit retries it")
            }
        }
    }
}

/// Owns this process's write connection, on its own thread: a whole group of writes runs
/// here without a thread hop per statement. Ends when every `SqliteStore` handle is dropped.
fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    while let Some(first) = rx.blocking_recv() {
        let group = next_group(first, &mut rx, MAX_GROUP);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            fail_all(group.into_iter().map(|j| j.reply), &e.into());
            continue;
        }
        // Another process (the CLI) may have appended to the chain since our last group:
        // re-read the head now that BEGIN IMMEDIATE holds the database's write lock.
        let mut head = match ops::load_head(&conn) {
            Ok(h) => h,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                fail_all(group.into_iter().map(|j| j.reply), &e);
                continue;
            }
        };
        // No savepoints: every operation meets its expected failures (not found, version
        // conflict, duplicate, idempotency replay) before or at its first write statement,
        // and SQLite undoes a failed statement by itself, so such a failure leaves nothing
        // behind and its neighbours commit. Any other failure (I/O, full disk) may have left
        // partial writes: then the whole group is rolled back and fails.
        let mut outcomes = Vec::with_capacity(group.len());
        let mut fatal: Option<StoreError> = None;
        for job in group {
            if fatal.is_some() {
                outcomes.push((job.reply, Ok(Out::Unit)));
                continue;
            }
            let saved = head;
            let result = ops::apply(&conn, &mut head, job.op);
            if let Err(e) = &result {
                head = saved;
                if !is_clean_failure(e) {
                    fatal = Some(group_error(e));
                }
            }
            outcomes.push((job.reply, result));
        }
        if let Some(e) = fatal {
            tracing::error!(error = %e, "a write failed unexpectedly; the group was rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(outcomes.into_iter().map(|(reply, _)| reply), &e);
            continue;
        }
        let committing = std::time::Instant::now();
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                let took = committing.elapsed();
                metrics::histogram!("cip_sqlite_commit_seconds").record(took.as_secs_f64());
                if took > Duration::from_millis(20) {
                    tracing::debug!(
                        target: "cip_store::wal",
                        ms = took.as_secs_f64() * 1e3,
                        jobs = outcomes.len(),
                        "slow commit"
                    );
                }
                for (reply, result) in outcomes {
                    let _ = reply.send(result);
                }
                // Wake the checkpointer; if it is busy, the wake-up already pending covers
                // this commit too.
                let _ = checkpoint.try_send(());
            }
            Err(e) => {
                let e = StoreError::from(e);
                tracing::error!(error = %e, "group commit failed; the group was rolled back");
                let _ = conn.execute_batch("ROLLBACK");
                fail_all(outcomes.into_iter().map(|(reply, _)| reply), &e);
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read(|c| ops::get_meta(c, name))
    }

    async fn init_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        match self
            .submit(Op::InitMeta(name.to_string(), value.to_vec()))
            .await?
        {
            Out::Bytes(b) => Ok(b),
            _ => Err(StoreError::Backend(
                "writer returned an unexpected result".into(),
            )),
        }
    }

    async fn claim_job(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool> {
        boolean(
            self.submit(Op::ClaimJob {
                name: name.to_string(),
                holder: holder.to_string(),
                now,
                until,
            })
            .await?,
        )
    }

    async fn release_job(&self, name: &str, holder: &str) -> Result<()> {
        unit(
            self.submit(Op::ReleaseJob {
                name: name.to_string(),
                holder: holder.to_string(),
            })
            .await?,
        )
    }

    async fn set_meta(&self, name: &str, value: &[u8], audit: AuditDraft) -> Result<()> {
        unit(
            self.submit(Op::SetMeta(name.to_string(), value.to_vec(), audit))
                .await?,
        )
    }

    async fn insert_api_key(&self, key: ApiKeyRow, audit: AuditDraft) -> Result<()> {
        unit(self.submit(Op::InsertApiKey(key, audit)).await?)
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        self.read(|c| ops::get_api_key(c, id))
    }

    async fn revoke_api_key(&self, id: &str, at: i64, audit: AuditDraft) -> Result<bool> {
        boolean(
            self.submit(Op::RevokeApiKey(id.to_string(), at, audit))
                .await?,
        )
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        self.scan(ops::list_api_keys).await
    }

    async fn insert_customer(&self, write: CustomerWrite) -> Result<()> {
        unit(self.submit(Op::InsertCustomer(write)).await?)
    }

    async fn update_customer(&self, write: CustomerWrite, expected_version: i64) -> Result<()> {
        unit(
            self.submit(Op::UpdateCustomer(write, expected_version))
                .await?,
        )
    }

    async fn get_customer(&self, id: Uuid) -> Result<Option<CustomerRow>> {
        self.read(|c| ops::get_customer(c, id))
    }

    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Vec<CustomerRow>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.scan(move |c| ops::list_customers(c, &filter, &page))
            .await
    }

    async fn find_customers_by_term(&self, kind: &str, hash: &[u8; 32]) -> Result<Vec<Uuid>> {
        self.read(|c| ops::find_customers_by_term(c, kind, hash))
    }

    async fn customers_with_stale_key(
        &self,
        active_key_id: u32,
        limit: u32,
    ) -> Result<Vec<CustomerRow>> {
        self.scan(move |c| ops::customers_with_stale_key(c, active_key_id, limit))
            .await
    }

    async fn reseal_customer(
        &self,
        id: Uuid,
        version: i64,
        document: Vec<u8>,
        key_id: u32,
        digest: Option<SealedDigest>,
    ) -> Result<bool> {
        let audit = reseal_audit(id, key_id);
        boolean(
            self.submit(Op::Reseal(
                id,
                version,
                crate::writer::Resealed {
                    document,
                    key_id,
                    digest,
                },
                audit,
            ))
            .await?,
        )
    }

    async fn count_customers(&self) -> Result<u64> {
        self.scan(ops::count_customers).await
    }

    async fn scan_customer_digests(
        &self,
        part: DigestPart,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CustomerDigestRow>> {
        self.scan(move |c| ops::scan_customer_digests(c, part, after, limit))
            .await
    }

    async fn insert_account(&self, write: AccountWrite) -> Result<()> {
        unit(self.submit(Op::InsertAccount(write)).await?)
    }

    async fn update_account(&self, write: AccountWrite, expected_version: i64) -> Result<()> {
        unit(
            self.submit(Op::UpdateAccount(write, expected_version))
                .await?,
        )
    }

    async fn get_account(&self, id: Uuid) -> Result<Option<AccountRow>> {
        self.read(|c| ops::get_account(c, id))
    }

    async fn get_account_by_external_id(&self, external_id: &str) -> Result<Option<AccountRow>> {
        self.read(|c| ops::get_account_by_external_id(c, external_id))
    }

    async fn touch_last_accessed(&self, times: Vec<(Uuid, i64)>) -> Result<()> {
        if times.is_empty() {
            return Ok(());
        }
        unit(self.submit(Op::TouchLastAccessed(times)).await?)
    }

    async fn list_accounts(
        &self,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRow>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.scan(move |c| ops::list_accounts(c, &filter, &page))
            .await
    }

    async fn get_idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        self.read(|c| ops::get_idempotency(c, principal, key))
    }

    async fn append_audit(&self, drafts: Vec<AuditDraft>) -> Result<()> {
        if drafts.is_empty() {
            return Ok(());
        }
        unit(self.submit(Op::AppendAudit(drafts)).await?)
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>> {
        let filter = filter.clone();
        self.scan(move |c| ops::list_audit(c, &filter, limit)).await
    }

    async fn audit_range(&self, from_seq: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        self.scan(move |c| ops::audit_range(c, from_seq, limit))
            .await
    }

    async fn audit_head(&self) -> Result<(i64, [u8; 32])> {
        self.read(ops::load_head)
    }

    async fn insert_checkpoint(&self, checkpoint: CheckpointRow) -> Result<()> {
        unit(self.submit(Op::InsertCheckpoint(checkpoint)).await?)
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        self.scan(ops::list_checkpoints).await
    }

    async fn accounts_in_status_since(
        &self,
        status: &str,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AccountRow>> {
        let status = status.to_string();
        self.scan(move |c| ops::accounts_in_status_since(c, &status, before, limit))
            .await
    }

    async fn list_transitions(&self, account_id: Uuid) -> Result<Vec<TransitionRow>> {
        self.read(|c| ops::list_transitions(c, account_id))
    }

    async fn insert_webhook_endpoint(
        &self,
        endpoint: WebhookEndpointRow,
        audit: AuditDraft,
    ) -> Result<()> {
        unit(self.submit(Op::InsertEndpoint(endpoint, audit)).await?)
    }

    async fn disable_webhook_endpoint(&self, id: Uuid, at: i64, audit: AuditDraft) -> Result<bool> {
        boolean(self.submit(Op::DisableEndpoint(id, at, audit)).await?)
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpointRow>> {
        self.read(ops::list_endpoints)
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        claimed(
            self.submit(Op::ClaimDeliveries {
                now,
                lease_until,
                limit,
            })
            .await?,
        )
    }

    async fn finish_delivery(
        &self,
        event_id: Uuid,
        endpoint_id: Uuid,
        outcome: DeliveryOutcome,
    ) -> Result<()> {
        unit(
            self.submit(Op::FinishDelivery(event_id, endpoint_id, outcome))
                .await?,
        )
    }

    async fn list_deliveries(&self, endpoint_id: Uuid, limit: u32) -> Result<Vec<DeliveryRow>> {
        self.scan(move |c| ops::list_deliveries(c, endpoint_id, limit))
            .await
    }
}

#[async_trait]
impl ListStore for SqliteStore {
    async fn insert_list_version(&self, write: ListVersionWrite) -> Result<()> {
        unit(self.submit(Op::InsertListVersion(Box::new(write))).await?)
    }

    async fn list_lists(&self) -> Result<Vec<ListVersionMeta>> {
        self.scan(ops::list_lists).await
    }

    async fn list_versions(&self, list_id: &str) -> Result<Vec<ListVersionMeta>> {
        let list_id = list_id.to_string();
        self.scan(move |c| ops::list_versions(c, &list_id)).await
    }

    async fn get_list_version(
        &self,
        list_id: &str,
        version: i64,
    ) -> Result<Option<ListVersionRow>> {
        let list_id = list_id.to_string();
        self.scan(move |c| ops::get_list_version(c, &list_id, version))
            .await
    }

    async fn active_list_versions(&self) -> Result<Vec<ListVersionRow>> {
        self.scan(ops::active_list_versions).await
    }
}

#[async_trait]
impl ReviewStore for SqliteStore {
    async fn open_review(&self, review: ReviewRow, audit: AuditDraft) -> Result<bool> {
        boolean(self.submit(Op::OpenReview(Box::new(review), audit)).await?)
    }

    async fn get_review(&self, id: Uuid) -> Result<Option<ReviewRow>> {
        self.read(|c| ops::get_review(c, id))
    }

    async fn list_reviews(
        &self,
        filter: &ReviewFilter,
        page: &PageRequest,
    ) -> Result<Vec<ReviewRow>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.scan(move |c| ops::list_reviews(c, &filter, &page))
            .await
    }

    async fn decide_review(&self, decision: ReviewDecision) -> Result<()> {
        unit(self.submit(Op::DecideReview(Box::new(decision))).await?)
    }

    async fn close_reviews_for_entries(
        &self,
        list_id: &str,
        entry_ids: Vec<String>,
        at: i64,
        audit: AuditDraft,
    ) -> Result<u64> {
        count(
            self.submit(Op::CloseReviews(list_id.to_string(), entry_ids, at, audit))
                .await?,
        )
    }
}

#[async_trait]
impl MeasureStore for SqliteStore {
    async fn insert_measure(&self, row: MeasureRow, audit: AuditDraft) -> Result<()> {
        unit(self.submit(Op::InsertMeasure(Box::new(row), audit)).await?)
    }

    async fn update_measure(
        &self,
        row: MeasureRow,
        expected_version: i64,
        audit: AuditDraft,
    ) -> Result<()> {
        unit(
            self.submit(Op::UpdateMeasure(Box::new(row), expected_version, audit))
                .await?,
        )
    }

    async fn get_measure(&self, id: Uuid) -> Result<Option<MeasureRow>> {
        self.read(|c| ops::get_measure(c, id))
    }

    async fn list_measures(&self, page: &PageRequest) -> Result<Vec<MeasureRow>> {
        let page = page.clone();
        self.scan(move |c| ops::list_measures(c, &page)).await
    }

    async fn measures_in_force(&self, now: i64) -> Result<Vec<MeasureRow>> {
        self.read(|c| ops::measures_in_force(c, now))
    }

    async fn claim_measure_sweeps(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<MeasureRow>> {
        measures(
            self.submit(Op::ClaimMeasureSweeps {
                now,
                lease_until,
                limit,
            })
            .await?,
        )
    }

    async fn finish_measure_sweep(&self, id: Uuid, at: i64) -> Result<()> {
        unit(self.submit(Op::FinishMeasureSweep(id, at)).await?)
    }

    async fn record_measure_actions(&self, actions: Vec<MeasureActionWrite>) -> Result<u64> {
        count(self.submit(Op::RecordMeasureActions(actions)).await?)
    }

    async fn insert_account_with_actions(
        &self,
        write: AccountWrite,
        actions: Vec<MeasureActionWrite>,
    ) -> Result<()> {
        unit(
            self.submit(Op::InsertAccountWithActions(write, actions))
                .await?,
        )
    }

    async fn list_measure_actions(
        &self,
        filter: &MeasureActionFilter,
    ) -> Result<Vec<MeasureActionRow>> {
        let filter = filter.clone();
        self.scan(move |c| ops::list_measure_actions(c, &filter))
            .await
    }

    async fn update_customer_with_actions(
        &self,
        write: CustomerWrite,
        expected_version: i64,
        actions: Vec<MeasureActionWrite>,
        ties: Vec<TieChange>,
    ) -> Result<()> {
        unit(
            self.submit(Op::UpdateCustomerWithActions(
                Box::new(write),
                expected_version,
                actions,
                ties,
            ))
            .await?,
        )
    }

    async fn record_refusals(&self, refusals: Vec<RefusalRow>, audit: AuditDraft) -> Result<()> {
        unit(self.submit(Op::RecordRefusals(refusals, audit)).await?)
    }

    async fn list_refusals(&self, measure_id: Uuid) -> Result<Vec<RefusalRow>> {
        self.scan(move |c| ops::list_refusals(c, measure_id)).await
    }
}

#[async_trait]
impl VerificationStore for SqliteStore {
    async fn insert_evidence(&self, write: EvidenceWrite) -> Result<bool> {
        boolean(self.submit(Op::InsertEvidence(Box::new(write))).await?)
    }

    async fn list_evidence_between(&self, first: Uuid, last: Uuid) -> Result<Vec<EvidenceRow>> {
        self.scan(move |c| crate::sqlite_verification::list_evidence_between(c, first, last))
            .await
    }

    async fn list_evidence(&self, customer_id: Uuid) -> Result<Vec<EvidenceRow>> {
        self.scan(move |c| crate::sqlite_verification::list_evidence(c, customer_id))
            .await
    }

    async fn get_evidence_file(&self, evidence_id: Uuid) -> Result<Option<EvidenceFile>> {
        self.scan(move |c| crate::sqlite_verification::get_evidence_file(c, evidence_id))
            .await
    }

    async fn insert_otp(&self, row: OtpRow, audit: AuditDraft) -> Result<()> {
        unit(self.submit(Op::InsertOtp(Box::new(row), audit)).await?)
    }

    async fn insert_otp_throttled(
        &self,
        row: OtpRow,
        throttle: OtpThrottle,
        audit: AuditDraft,
    ) -> Result<OtpOutcome> {
        crate::writer::otp(
            self.submit(Op::InsertOtpThrottled(Box::new(row), throttle, audit))
                .await?,
        )
    }

    async fn get_otp(&self, id: Uuid) -> Result<Option<OtpRow>> {
        self.read(|c| crate::sqlite_verification::get_otp(c, id))
    }

    async fn update_otp(&self, update: OtpUpdate) -> Result<()> {
        unit(self.submit(Op::UpdateOtp(Box::new(update))).await?)
    }

    async fn recent_otps(
        &self,
        customer_id: Uuid,
        beneficial_owner_id: Option<Uuid>,
        channel: &str,
        since: i64,
    ) -> Result<Vec<OtpRow>> {
        self.read(|c| {
            crate::sqlite_verification::recent_otps(
                c,
                customer_id,
                beneficial_owner_id,
                channel,
                since,
            )
        })
    }

    async fn insert_verification_request(
        &self,
        row: VerificationRequestRow,
        audit: AuditDraft,
    ) -> Result<()> {
        unit(
            self.submit(Op::InsertVerificationRequest(Box::new(row), audit))
                .await?,
        )
    }

    async fn get_verification_request(&self, id: Uuid) -> Result<Option<VerificationRequestRow>> {
        self.read(|c| crate::sqlite_verification::get_verification_request(c, id))
    }

    async fn unverified_without_case(&self, limit: u32) -> Result<Vec<UnverifiedTransition>> {
        self.scan(move |c| crate::sqlite_verification::unverified_without_case(c, limit))
            .await
    }

    async fn open_cases(&self, cases: Vec<(CaseRow, AuditDraft)>) -> Result<u64> {
        count(self.submit(Op::OpenCases(cases)).await?)
    }

    async fn get_case(&self, id: Uuid) -> Result<Option<CaseRow>> {
        self.read(|c| crate::sqlite_verification::get_case(c, id))
    }

    async fn list_cases(&self, filter: &CaseFilter, page: &PageRequest) -> Result<Vec<CaseRow>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.scan(move |c| crate::sqlite_verification::list_cases(c, &filter, &page))
            .await
    }

    async fn resolve_case(&self, resolution: CaseResolution) -> Result<()> {
        unit(self.submit(Op::ResolveCase(Box::new(resolution))).await?)
    }
}

/// The audit entry of a background re-encryption (key rotation touches every record).
pub(crate) fn reseal_audit(id: Uuid, key_id: u32) -> AuditDraft {
    AuditDraft {
        at: now_micros(),
        actor: "system:rotate-data-key".into(),
        role: "system".into(),
        action: "customer.reseal".into(),
        record_type: "customer".into(),
        record_id: Some(id.to_string()),
        fields: vec![format!("key_id={key_id}")],
        request_id: None,
        purpose: Some("data key rotation".into()),
    }
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn insert_notices(&self, rows: Vec<NoticeRow>, audit: AuditDraft) -> Result<()> {
        crate::writer::unit(self.submit(Op::InsertNotices(rows, audit)).await?)
    }

    async fn list_notices(&self, customer_id: Uuid) -> Result<Vec<NoticeRow>> {
        self.read(|c| crate::sqlite_history::list_notices(c, customer_id))
    }

    async fn record_determination(
        &self,
        row: DeterminationRow,
        audit: Option<AuditDraft>,
    ) -> Result<Option<i64>> {
        crate::writer::seq(
            self.submit(Op::RecordDetermination(Box::new(row), audit))
                .await?,
        )
    }

    async fn list_determinations(
        &self,
        customer_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeterminationRow>> {
        self.read(|c| crate::sqlite_history::list_determinations(c, customer_id, after, limit))
    }

    async fn accounts_accessed_after(
        &self,
        at: i64,
        id: Uuid,
        limit: u32,
    ) -> Result<Vec<AccountRow>> {
        self.scan(move |c| crate::sqlite_history::accounts_accessed_after(c, at, id, limit))
            .await
    }
}

#[async_trait]
impl DueStore for SqliteStore {
    async fn accounts_entered_before(
        &self,
        status: &str,
        after: Option<Uuid>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AccountSince>> {
        let status = status.to_string();
        self.scan(move |c| {
            crate::sqlite_due::accounts_entered_before(c, &status, after, before, limit)
        })
        .await
    }

    async fn customer_digests(
        &self,
        part: DigestPart,
        ids: &[Uuid],
    ) -> Result<Vec<CustomerDigestRow>> {
        let ids = ids.to_vec();
        self.scan(move |c| crate::sqlite_due::customer_digests(c, part, &ids))
            .await
    }

    async fn reminders_sent(&self, kind: &str, accounts: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        let (kind, accounts) = (kind.to_string(), accounts.to_vec());
        self.scan(move |c| crate::sqlite_due::reminders_sent(c, &kind, &accounts))
            .await
    }

    async fn record_reminders(&self, reminders: Vec<ReminderWrite>) -> Result<u64> {
        if reminders.is_empty() {
            return Ok(0);
        }
        crate::writer::count(self.submit(Op::RecordReminders(reminders)).await?)
    }

    async fn list_reminders(&self, account_id: Uuid) -> Result<Vec<ReminderRow>> {
        self.read(|c| crate::sqlite_due::list_reminders(c, account_id))
    }
}

#[async_trait]
impl crate::ScreenKeyStore for SqliteStore {
    async fn customers_with_screen_keys(&self, keys: &[i64]) -> Result<Vec<Uuid>> {
        let keys = keys.to_vec();
        self.scan(move |c| crate::sqlite_screen_keys::customers_with_screen_keys(c, &keys))
            .await
    }

    async fn screen_key_holders(&self, keys: &[i64]) -> Result<Vec<KeyHolder>> {
        let keys = keys.to_vec();
        self.scan(move |c| crate::sqlite_screen_keys::screen_key_holders(c, &keys))
            .await
    }

    async fn count_screen_keyed(&self, generation: i64) -> Result<u64> {
        self.scan(move |c| crate::sqlite_screen_keys::count_screen_keyed(c, generation))
            .await
    }

    async fn customers_without_screen_keys(
        &self,
        generation: i64,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CustomerDigestRow>> {
        self.scan(move |c| {
            crate::sqlite_screen_keys::customers_without_screen_keys(c, generation, after, limit)
        })
        .await
    }

    async fn put_screen_keys(
        &self,
        keys: Vec<(Uuid, i64, crate::ScreenKeys)>,
        audit: AuditDraft,
    ) -> Result<u64> {
        crate::writer::count(self.submit(Op::PutScreenKeys(keys, audit)).await?)
    }
}
