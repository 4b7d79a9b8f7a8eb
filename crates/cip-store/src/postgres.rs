//! The scale-out path: PostgreSQL, shared by several `cip serve` instances.
//!
//! Writes go through one writer task per instance that commits them in groups, each group in
//! one transaction that first takes a transaction-scoped advisory lock: the audit chain gets
//! one total order across every instance, the lock is released by the commit or rollback and
//! never leaked, and one commit (one fsync) serves a whole group.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::writer::{Job, Op, Out, boolean, claimed, count, fail_all, measures, next_group, unit};
use crate::*;

mod ops {
    crate::ops::define_ops!(sqlx::PgConnection);
}
mod due_ops;
pub(crate) mod history_ops;
pub(crate) mod screen_keys_ops;
mod verification_ops;

/// The advisory lock key that serialises audit-chain appends ("cip-audit" as an integer).
const AUDIT_LOCK: i64 = 0x6369_702d_6175_6474;

pub struct PgStore {
    pool: PgPool,
    writer: mpsc::Sender<Job>,
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
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer_loop(pool.clone(), rx));
        Ok(PgStore { pool, writer: tx })
    }

    async fn submit(&self, op: Op) -> Result<Out> {
        crate::writer::submit(&self.writer, op, "PostgreSQL").await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The most writes committed in one transaction.
const MAX_GROUP: usize = 256;

async fn exec(conn: &mut sqlx::PgConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

/// Commits writes in groups, like the SQLite writer: one transaction, one advisory lock and
/// one commit (one fsync) per group. PostgreSQL aborts a transaction on any failed statement,
/// so each write runs inside its own savepoint; a failing write is rolled back to it and its
/// neighbours commit.
async fn writer_loop(pool: PgPool, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let group = next_group(first, &mut rx, MAX_GROUP);
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                fail_all(group.into_iter().map(|j| j.reply), &e.into());
                continue;
            }
        };
        let started = async {
            exec(&mut conn, "BEGIN").await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK)
                .execute(&mut *conn)
                .await?;
            ops::load_head(&mut conn).await
        }
        .await;
        let mut head = match started {
            Ok(h) => h,
            Err(e) => {
                let _ = exec(&mut conn, "ROLLBACK").await;
                fail_all(group.into_iter().map(|j| j.reply), &e);
                continue;
            }
        };
        let mut outcomes = Vec::with_capacity(group.len());
        for job in group {
            let saved = head;
            let result = match exec(&mut conn, "SAVEPOINT op").await {
                Err(e) => Err(e),
                Ok(()) => ops::apply(&mut conn, &mut head, job.op).await,
            };
            let result = match result {
                Ok(out) => exec(&mut conn, "RELEASE SAVEPOINT op").await.map(|()| out),
                Err(e) => {
                    head = saved;
                    let _ = exec(&mut conn, "ROLLBACK TO SAVEPOINT op").await;
                    let _ = exec(&mut conn, "RELEASE SAVEPOINT op").await;
                    Err(e)
                }
            };
            outcomes.push((job.reply, result));
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
        ops::get_api_key(&mut *self.pool.acquire().await?, id).await
    }

    async fn revoke_api_key(&self, id: &str, at: i64, audit: AuditDraft) -> Result<bool> {
        boolean(
            self.submit(Op::RevokeApiKey(id.to_string(), at, audit))
                .await?,
        )
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        ops::list_api_keys(&mut *self.pool.acquire().await?).await
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
        digest: Option<SealedDigest>,
    ) -> Result<bool> {
        let audit = crate::sqlite::reseal_audit(id, key_id);
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
        ops::count_customers(&mut *self.pool.acquire().await?).await
    }

    async fn scan_customer_digests(
        &self,
        part: DigestPart,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CustomerDigestRow>> {
        ops::scan_customer_digests(&mut *self.pool.acquire().await?, part, after, limit).await
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
        ops::get_account(&mut *self.pool.acquire().await?, id).await
    }

    async fn get_account_by_external_id(&self, external_id: &str) -> Result<Option<AccountRow>> {
        ops::get_account_by_external_id(&mut *self.pool.acquire().await?, external_id).await
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
        unit(self.submit(Op::AppendAudit(drafts)).await?)
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
        unit(self.submit(Op::InsertCheckpoint(checkpoint)).await?)
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        ops::list_checkpoints(&mut *self.pool.acquire().await?).await
    }

    async fn accounts_in_status_since(
        &self,
        status: &str,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AccountRow>> {
        ops::accounts_in_status_since(&mut *self.pool.acquire().await?, status, before, limit).await
    }

    async fn list_transitions(&self, account_id: Uuid) -> Result<Vec<TransitionRow>> {
        ops::list_transitions(&mut *self.pool.acquire().await?, account_id).await
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
        ops::list_endpoints(&mut *self.pool.acquire().await?).await
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
        ops::list_deliveries(&mut *self.pool.acquire().await?, endpoint_id, limit).await
    }
}

#[async_trait]
impl ListStore for PgStore {
    async fn insert_list_version(&self, write: ListVersionWrite) -> Result<()> {
        unit(self.submit(Op::InsertListVersion(Box::new(write))).await?)
    }

    async fn list_lists(&self) -> Result<Vec<ListVersionMeta>> {
        ops::list_lists(&mut *self.pool.acquire().await?).await
    }

    async fn list_versions(&self, list_id: &str) -> Result<Vec<ListVersionMeta>> {
        ops::list_versions(&mut *self.pool.acquire().await?, list_id).await
    }

    async fn get_list_version(
        &self,
        list_id: &str,
        version: i64,
    ) -> Result<Option<ListVersionRow>> {
        ops::get_list_version(&mut *self.pool.acquire().await?, list_id, version).await
    }

    async fn active_list_versions(&self) -> Result<Vec<ListVersionRow>> {
        ops::active_list_versions(&mut *self.pool.acquire().await?).await
    }
}

#[async_trait]
impl ReviewStore for PgStore {
    async fn open_review(&self, review: ReviewRow, audit: AuditDraft) -> Result<bool> {
        boolean(self.submit(Op::OpenReview(Box::new(review), audit)).await?)
    }

    async fn get_review(&self, id: Uuid) -> Result<Option<ReviewRow>> {
        ops::get_review(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_reviews(
        &self,
        filter: &ReviewFilter,
        page: &PageRequest,
    ) -> Result<Vec<ReviewRow>> {
        ops::list_reviews(&mut *self.pool.acquire().await?, filter, page).await
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
impl MeasureStore for PgStore {
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
        ops::get_measure(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_measures(&self, page: &PageRequest) -> Result<Vec<MeasureRow>> {
        ops::list_measures(&mut *self.pool.acquire().await?, page).await
    }

    async fn measures_in_force(&self, now: i64) -> Result<Vec<MeasureRow>> {
        ops::measures_in_force(&mut *self.pool.acquire().await?, now).await
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
        ops::list_measure_actions(&mut *self.pool.acquire().await?, filter).await
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
        ops::list_refusals(&mut *self.pool.acquire().await?, measure_id).await
    }
}

#[async_trait]
impl VerificationStore for PgStore {
    async fn insert_evidence(&self, write: EvidenceWrite) -> Result<bool> {
        boolean(self.submit(Op::InsertEvidence(Box::new(write))).await?)
    }

    async fn list_evidence_between(&self, first: Uuid, last: Uuid) -> Result<Vec<EvidenceRow>> {
        verification_ops::list_evidence_between(&mut *self.pool.acquire().await?, first, last).await
    }

    async fn list_evidence(&self, customer_id: Uuid) -> Result<Vec<EvidenceRow>> {
        verification_ops::list_evidence(&mut *self.pool.acquire().await?, customer_id).await
    }

    async fn get_evidence_file(&self, evidence_id: Uuid) -> Result<Option<EvidenceFile>> {
        verification_ops::get_evidence_file(&mut *self.pool.acquire().await?, evidence_id).await
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
        verification_ops::get_otp(&mut *self.pool.acquire().await?, id).await
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
        verification_ops::recent_otps(
            &mut *self.pool.acquire().await?,
            customer_id,
            beneficial_owner_id,
            channel,
            since,
        )
        .await
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
        verification_ops::get_verification_request(&mut *self.pool.acquire().await?, id).await
    }

    async fn unverified_without_case(&self, limit: u32) -> Result<Vec<UnverifiedTransition>> {
        verification_ops::unverified_without_case(&mut *self.pool.acquire().await?, limit).await
    }

    async fn open_cases(&self, cases: Vec<(CaseRow, AuditDraft)>) -> Result<u64> {
        count(self.submit(Op::OpenCases(cases)).await?)
    }

    async fn get_case(&self, id: Uuid) -> Result<Option<CaseRow>> {
        verification_ops::get_case(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_cases(&self, filter: &CaseFilter, page: &PageRequest) -> Result<Vec<CaseRow>> {
        verification_ops::list_cases(&mut *self.pool.acquire().await?, filter, page).await
    }

    async fn resolve_case(&self, resolution: CaseResolution) -> Result<()> {
        unit(self.submit(Op::ResolveCase(Box::new(resolution))).await?)
    }
}

#[async_trait]
impl HistoryStore for PgStore {
    async fn insert_notices(&self, rows: Vec<NoticeRow>, audit: AuditDraft) -> Result<()> {
        unit(self.submit(Op::InsertNotices(rows, audit)).await?)
    }

    async fn list_notices(&self, customer_id: Uuid) -> Result<Vec<NoticeRow>> {
        history_ops::list_notices(&mut *self.pool.acquire().await?, customer_id).await
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
        history_ops::list_determinations(
            &mut *self.pool.acquire().await?,
            customer_id,
            after,
            limit,
        )
        .await
    }

    async fn accounts_accessed_after(
        &self,
        at: i64,
        id: Uuid,
        limit: u32,
    ) -> Result<Vec<AccountRow>> {
        history_ops::accounts_accessed_after(&mut *self.pool.acquire().await?, at, id, limit).await
    }
}

#[async_trait]
impl DueStore for PgStore {
    async fn accounts_entered_before(
        &self,
        status: &str,
        after: Option<Uuid>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AccountSince>> {
        due_ops::accounts_entered_before(
            &mut *self.pool.acquire().await?,
            status,
            after,
            before,
            limit,
        )
        .await
    }

    async fn customer_digests(
        &self,
        part: DigestPart,
        ids: &[Uuid],
    ) -> Result<Vec<CustomerDigestRow>> {
        due_ops::customer_digests(&mut *self.pool.acquire().await?, part, ids).await
    }

    async fn reminders_sent(&self, kind: &str, accounts: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        due_ops::reminders_sent(&mut *self.pool.acquire().await?, kind, accounts).await
    }

    async fn record_reminders(&self, reminders: Vec<ReminderWrite>) -> Result<u64> {
        if reminders.is_empty() {
            return Ok(0);
        }
        count(self.submit(Op::RecordReminders(reminders)).await?)
    }

    async fn list_reminders(&self, account_id: Uuid) -> Result<Vec<ReminderRow>> {
        due_ops::list_reminders(&mut *self.pool.acquire().await?, account_id).await
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

#[async_trait]
impl crate::ScreenKeyStore for PgStore {
    async fn customers_with_screen_keys(&self, keys: &[i64]) -> Result<Vec<Uuid>> {
        screen_keys_ops::customers_with_screen_keys(&mut *self.pool.acquire().await?, keys).await
    }

    async fn screen_key_holders(&self, keys: &[i64]) -> Result<Vec<KeyHolder>> {
        screen_keys_ops::screen_key_holders(&mut *self.pool.acquire().await?, keys).await
    }

    async fn count_screen_keyed(&self, generation: i64) -> Result<u64> {
        screen_keys_ops::count_screen_keyed(&mut *self.pool.acquire().await?, generation).await
    }

    async fn customers_without_screen_keys(
        &self,
        generation: i64,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CustomerDigestRow>> {
        screen_keys_ops::customers_without_screen_keys(
            &mut *self.pool.acquire().await?,
            generation,
            after,
            limit,
        )
        .await
    }

    async fn put_screen_keys(
        &self,
        keys: Vec<(Uuid, i64, crate::ScreenKeys)>,
        audit: AuditDraft,
    ) -> Result<u64> {
        count(self.submit(Op::PutScreenKeys(keys, audit)).await?)
    }
}
