//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes go through a single writer task per process that commits them in groups: requests
//! that arrive while a commit is being flushed to disk are applied together in the next
//! transaction, and an expected failure of one (a version conflict, a duplicate) does not fail
//! its neighbours. With `synchronous = FULL` every acknowledged write is on disk, and group
//! commit spreads the cost of that one fsync over all the writes of a group. The writer reads
//! the audit chain's head once per group, under the write lock, so other processes (the CLI)
//! can append safely. Reads use a separate pool of connections and never wait for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::writer::{
    Job, Op, Out, boolean, fail_all, group_error, is_clean_failure, next_group, unit,
};
use crate::*;

mod ops {
    crate::ops::define_ops!(sqlx::SqliteConnection);
}

/// The most writes committed in one transaction.
const MAX_GROUP: usize = 512;

pub struct SqliteStore {
    read: SqlitePool,
    writer: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .disable_statement_logging();
        Self::open_with(options).await
    }

    /// Opens a database from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .disable_statement_logging();
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .map_err(migrate_error)?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone().read_only(true))
            .await?;
        // SQLite's own auto-checkpoint (every 1000 WAL pages, inside a commit) is kept: a
        // checkpointer on a separate connection was tried and made tail latency worse (its
        // fsync of the database file stalls the writer's WAL fsync; half-rate p99 ~20 ms
        // inline vs 31-108 ms with it).
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer_loop(conn, rx));
        Ok(SqliteStore { read, writer: tx })
    }

    async fn submit(&self, op: Op) -> Result<Out> {
        crate::writer::submit(&self.writer, op, "SQLite").await
    }

    async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        Ok(self.read.acquire().await?)
    }
}

pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::VersionMissing(_) => StoreError::SchemaTooNew,
        other => StoreError::Backend(format!("migration failed: {other}")),
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

/// Owns this process's write connection. Ends when every `SqliteStore` handle is dropped.
async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let group = next_group(first, &mut rx, MAX_GROUP);
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            fail_all(group.into_iter().map(|j| j.reply), &e);
            continue;
        }
        // Another process (the CLI) may have appended to the chain since our last group:
        // re-read the head now that BEGIN IMMEDIATE holds the database's write lock.
        let mut head = match ops::load_head(&mut conn).await {
            Ok(h) => h,
            Err(e) => {
                let _ = exec(&mut conn, "ROLLBACK").await;
                fail_all(group.into_iter().map(|j| j.reply), &e);
                continue;
            }
        };
        // No savepoints: every operation in `ops` meets its expected failures (not found,
        // version conflict, duplicate, idempotency replay) before or at its first write
        // statement, and SQLite undoes a failed statement by itself, so such a failure leaves
        // nothing behind and its neighbours commit. Any other failure (I/O, full disk) may
        // have left partial writes: then the whole group is rolled back and fails.
        let mut outcomes = Vec::with_capacity(group.len());
        let mut fatal: Option<StoreError> = None;
        for job in group {
            if fatal.is_some() {
                outcomes.push((job.reply, Ok(Out::Unit)));
                continue;
            }
            let saved = head;
            let result = ops::apply(&mut conn, &mut head, job.op).await;
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
            let _ = exec(&mut conn, "ROLLBACK").await;
            fail_all(outcomes.into_iter().map(|(reply, _)| reply), &e);
            continue;
        }
        match exec(&mut conn, "COMMIT").await {
            Ok(()) => {
                for (reply, result) in outcomes {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; the group was rolled back");
                let _ = exec(&mut conn, "ROLLBACK").await;
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
        let mut c = self.read_conn().await?;
        sqlx::query("SELECT 1").execute(&mut *c).await?;
        Ok(())
    }

    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        ops::get_meta(&mut *self.read_conn().await?, name).await
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
        ops::get_api_key(&mut *self.read_conn().await?, id).await
    }

    async fn revoke_api_key(&self, id: &str, at: i64, audit: AuditDraft) -> Result<bool> {
        boolean(
            self.submit(Op::RevokeApiKey(id.to_string(), at, audit))
                .await?,
        )
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        ops::list_api_keys(&mut *self.read_conn().await?).await
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
        ops::get_customer(&mut *self.read_conn().await?, id).await
    }

    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Vec<CustomerRow>> {
        ops::list_customers(&mut *self.read_conn().await?, filter, page).await
    }

    async fn find_customers_by_term(&self, kind: &str, hash: &[u8; 32]) -> Result<Vec<Uuid>> {
        ops::find_customers_by_term(&mut *self.read_conn().await?, kind, hash).await
    }

    async fn customers_with_stale_key(
        &self,
        active_key_id: u32,
        limit: u32,
    ) -> Result<Vec<CustomerRow>> {
        ops::customers_with_stale_key(&mut *self.read_conn().await?, active_key_id, limit).await
    }

    async fn reseal_customer(
        &self,
        id: Uuid,
        version: i64,
        document: Vec<u8>,
        key_id: u32,
    ) -> Result<bool> {
        let audit = reseal_audit(id, key_id);
        boolean(
            self.submit(Op::Reseal(id, version, document, key_id, audit))
                .await?,
        )
    }

    async fn count_customers(&self) -> Result<u64> {
        ops::count_customers(&mut *self.read_conn().await?).await
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
        ops::get_account(&mut *self.read_conn().await?, id).await
    }

    async fn list_accounts(
        &self,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRow>> {
        ops::list_accounts(&mut *self.read_conn().await?, filter, page).await
    }

    async fn get_idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        ops::get_idempotency(&mut *self.read_conn().await?, principal, key).await
    }

    async fn append_audit(&self, drafts: Vec<AuditDraft>) -> Result<()> {
        if drafts.is_empty() {
            return Ok(());
        }
        unit(self.submit(Op::AppendAudit(drafts)).await?)
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>> {
        ops::list_audit(&mut *self.read_conn().await?, filter, limit).await
    }

    async fn audit_range(&self, from_seq: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        ops::audit_range(&mut *self.read_conn().await?, from_seq, limit).await
    }

    async fn audit_head(&self) -> Result<(i64, [u8; 32])> {
        ops::load_head(&mut *self.read_conn().await?).await
    }

    async fn insert_checkpoint(&self, checkpoint: CheckpointRow) -> Result<()> {
        unit(self.submit(Op::InsertCheckpoint(checkpoint)).await?)
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        ops::list_checkpoints(&mut *self.read_conn().await?).await
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
