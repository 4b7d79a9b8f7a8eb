//! The scale-out path: PostgreSQL, shared by several `cip serve` instances.
//!
//! Each write is its own transaction. Writes that append to the audit chain first take a
//! transaction-scoped advisory lock, so the chain has one total order across every instance;
//! the lock is released by the commit or rollback, never leaked.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

use crate::*;

mod ops {
    crate::ops::define_ops!(sqlx::PgConnection);
}

/// The advisory lock key that serialises audit-chain appends ("cip-audit" as an integer).
const AUDIT_LOCK: i64 = 0x6369_702d_6175_6474;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and applies migrations (concurrent starters are serialised by sqlx's
    /// migration lock).
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(crate::sqlite::migrate_error)?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `f` in a transaction holding the audit lock, with the chain head loaded.
    async fn with_chain<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'c> FnOnce(
                &'c mut sqlx::PgConnection,
                &'c mut ops::Head,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T>> + Send + 'c>,
            > + Send,
        T: Send,
    {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await?;
        let mut head = ops::load_head(&mut tx).await?;
        let out = f(&mut tx, &mut head).await?;
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        ops::get_meta(&mut *self.pool.acquire().await?, name).await
    }

    async fn init_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        ops::init_meta(&mut *self.pool.acquire().await?, name, value).await
    }

    async fn set_meta(&self, name: &str, value: &[u8], audit: AuditDraft) -> Result<()> {
        let (name, value) = (name.to_string(), value.to_vec());
        self.with_chain(move |c, h| {
            Box::pin(async move { ops::set_meta(c, h, &name, &value, audit).await })
        })
        .await
    }

    async fn insert_api_key(&self, key: ApiKeyRow, audit: AuditDraft) -> Result<()> {
        self.with_chain(move |c, h| {
            Box::pin(async move { ops::insert_api_key(c, h, &key, audit).await })
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        ops::get_api_key(&mut *self.pool.acquire().await?, id).await
    }

    async fn revoke_api_key(&self, id: &str, at: i64, audit: AuditDraft) -> Result<bool> {
        let id = id.to_string();
        self.with_chain(move |c, h| {
            Box::pin(async move { ops::revoke_api_key(c, h, &id, at, audit).await })
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        ops::list_api_keys(&mut *self.pool.acquire().await?).await
    }

    async fn insert_customer(&self, write: CustomerWrite) -> Result<()> {
        self.with_chain(move |c, h| {
            Box::pin(async move { ops::insert_customer(c, h, write).await })
        })
        .await
    }

    async fn update_customer(&self, write: CustomerWrite, expected_version: i64) -> Result<()> {
        self.with_chain(move |c, h| {
            Box::pin(async move { ops::update_customer(c, h, write, expected_version).await })
        })
        .await
    }

    async fn get_customer(&self, id: Uuid) -> Result<Option<CustomerRow>> {
        ops::get_customer(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Vec<CustomerRow>> {
        ops::list_customers(&mut *self.pool.acquire().await?, filter, page).await
    }

    async fn find_customers_by_term(&self, kind: &str, hash: &[u8; 32]) -> Result<Vec<Uuid>> {
        ops::find_customers_by_term(&mut *self.pool.acquire().await?, kind, hash).await
    }

    async fn customers_with_stale_key(
        &self,
        active_key_id: u32,
        limit: u32,
    ) -> Result<Vec<CustomerRow>> {
        ops::customers_with_stale_key(&mut *self.pool.acquire().await?, active_key_id, limit).await
    }

    async fn reseal_customer(
        &self,
        id: Uuid,
        version: i64,
        document: Vec<u8>,
        key_id: u32,
    ) -> Result<bool> {
        let audit = crate::sqlite::reseal_audit(id, key_id);
        self.with_chain(move |c, h| {
            Box::pin(async move {
                ops::reseal_customer(c, h, id, version, document, key_id, audit).await
            })
        })
        .await
    }

    async fn count_customers(&self) -> Result<u64> {
        ops::count_customers(&mut *self.pool.acquire().await?).await
    }

    async fn insert_account(&self, write: AccountWrite) -> Result<()> {
        self.with_chain(move |c, h| Box::pin(async move { ops::insert_account(c, h, write).await }))
            .await
    }

    async fn update_account(&self, write: AccountWrite, expected_version: i64) -> Result<()> {
        self.with_chain(move |c, h| {
            Box::pin(async move { ops::update_account(c, h, write, expected_version).await })
        })
        .await
    }

    async fn get_account(&self, id: Uuid) -> Result<Option<AccountRow>> {
        ops::get_account(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_accounts(
        &self,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRow>> {
        ops::list_accounts(&mut *self.pool.acquire().await?, filter, page).await
    }

    async fn get_idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        ops::get_idempotency(&mut *self.pool.acquire().await?, principal, key).await
    }

    async fn append_audit(&self, drafts: Vec<AuditDraft>) -> Result<()> {
        if drafts.is_empty() {
            return Ok(());
        }
        self.with_chain(move |c, h| {
            Box::pin(async move {
                for d in drafts {
                    ops::append_audit(c, h, d).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>> {
        ops::list_audit(&mut *self.pool.acquire().await?, filter, limit).await
    }

    async fn audit_range(&self, from_seq: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        ops::audit_range(&mut *self.pool.acquire().await?, from_seq, limit).await
    }

    async fn audit_head(&self) -> Result<(i64, [u8; 32])> {
        ops::load_head(&mut *self.pool.acquire().await?).await
    }

    async fn insert_checkpoint(&self, checkpoint: CheckpointRow) -> Result<()> {
        ops::insert_checkpoint(&mut *self.pool.acquire().await?, checkpoint).await
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        ops::list_checkpoints(&mut *self.pool.acquire().await?).await
    }
}

/// Test support: creates a fresh database on the server at `admin_url` and returns its URL.
/// Each test run gets its own database and drops it afterwards ([`drop_database`]).
pub async fn create_scratch_database(admin_url: &str) -> Result<(String, String)> {
    let name = format!("cip_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_else(|| admin_url.to_string());
    Ok((format!("{base}/{name}"), name))
}

pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}
