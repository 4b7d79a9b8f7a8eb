//! The SQL of every operation, written once and instantiated for both backends.
//!
//! Rule for every write operation: its expected failures (not found, version conflict,
//! duplicate, idempotency replay) happen before or at its *first* write statement. A failed
//! statement changes nothing, so such a failure leaves no partial write and the SQLite writer
//! can commit the rest of a group without savepoints.
//!
//! Both SQLite (through sqlx) and PostgreSQL accept `$N` placeholders, and the schemas use the
//! same column names, so the statements are shared; only the connection type differs. Each
//! function runs inside a transaction its caller opened and, for changes, appends the audit
//! entry to the chain head it is given.

macro_rules! define_ops {
    ($conn:ty) => {
        use uuid::Uuid;
        use sqlx::Row;

        use crate::audit::seal_entry;
        use crate::*;

        pub(crate) type Head = (i64, [u8; 32]);

        fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
            v.try_into()
                .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
        }

        fn is_unique_violation(e: &sqlx::Error) -> bool {
            matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
        }

        pub(crate) async fn load_head(conn: &mut $conn) -> Result<Head> {
            let row = sqlx::query(crate::sql::LOAD_HEAD)
                .fetch_optional(&mut *conn)
                .await?;
            match row {
                None => Ok((0, cip_vault::GENESIS)),
                Some(r) => Ok((r.try_get::<i64, _>("seq")?, hash32(r.try_get("hash")?)?)),
            }
        }

        pub(crate) async fn append_audit(
            conn: &mut $conn,
            head: &mut Head,
            draft: AuditDraft,
        ) -> Result<()> {
            let entry = seal_entry(head.0, head.1, draft);
            let fields = serde_json::to_string(&entry.draft.fields)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            sqlx::query(crate::sql::INSERT_AUDIT)
            .bind(entry.seq)
            .bind(entry.draft.at)
            .bind(entry.draft.actor)
            .bind(entry.draft.role)
            .bind(entry.draft.action)
            .bind(entry.draft.record_type)
            .bind(entry.draft.record_id)
            .bind(fields)
            .bind(entry.draft.request_id)
            .bind(entry.draft.purpose)
            .bind(entry.prev_hash.to_vec())
            .bind(entry.hash.to_vec())
            .execute(&mut *conn)
            .await?;
            *head = (entry.seq, entry.hash);
            Ok(())
        }

        pub(crate) async fn init_meta(conn: &mut $conn, name: &str, value: &[u8]) -> Result<Vec<u8>> {
            sqlx::query(crate::sql::INIT_META)
                .bind(name.to_string())
                .bind(value.to_vec())
                .execute(&mut *conn)
                .await?;
            let row = sqlx::query(crate::sql::GET_META)
                .bind(name.to_string())
                .fetch_one(&mut *conn)
                .await?;
            Ok(row.try_get("value")?)
        }

        pub(crate) async fn set_meta(
            conn: &mut $conn,
            head: &mut Head,
            name: &str,
            value: &[u8],
            audit: AuditDraft,
        ) -> Result<()> {
            sqlx::query(crate::sql::SET_META)
            .bind(name.to_string())
            .bind(value.to_vec())
            .execute(&mut *conn)
            .await?;
            append_audit(conn, head, audit).await
        }

        pub(crate) async fn insert_api_key(
            conn: &mut $conn,
            head: &mut Head,
            key: &ApiKeyRow,
            audit: AuditDraft,
        ) -> Result<()> {
            let res = sqlx::query(crate::sql::INSERT_API_KEY)
            .bind(key.id.clone())
            .bind(key.role.clone())
            .bind(key.secret_hash.to_vec())
            .bind(key.label.clone())
            .bind(key.created_at)
            .bind(key.revoked_at)
            .execute(&mut *conn)
            .await;
            match res {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate { what: "api key id" }),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            append_audit(conn, head, audit).await
        }

        pub(crate) async fn revoke_api_key(
            conn: &mut $conn,
            head: &mut Head,
            id: &str,
            at: i64,
            audit: AuditDraft,
        ) -> Result<bool> {
            let done = sqlx::query(crate::sql::REVOKE_API_KEY)
                .bind(at)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            append_audit(conn, head, audit).await?;
            Ok(true)
        }

        async fn check_idempotency(conn: &mut $conn, rec: &Option<IdempotencyRecord>) -> Result<()> {
            if let Some(rec) = rec {
                if let Some(found) = get_idempotency(conn, &rec.principal, &rec.key).await? {
                    return Err(StoreError::IdempotencyReplay(Box::new(found)));
                }
            }
            Ok(())
        }

        async fn put_idempotency(conn: &mut $conn, rec: Option<IdempotencyRecord>) -> Result<()> {
            if let Some(rec) = rec {
                sqlx::query(crate::sql::INSERT_IDEMPOTENCY)
                .bind(rec.principal)
                .bind(rec.key)
                .bind(rec.request_hash.to_vec())
                .bind(i64::from(rec.status))
                .bind(rec.response)
                .bind(rec.created_at)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        pub(crate) async fn get_idempotency(
            conn: &mut $conn,
            principal: &str,
            key: &str,
        ) -> Result<Option<IdempotencyRecord>> {
            let row = sqlx::query(crate::sql::GET_IDEMPOTENCY)
            .bind(principal.to_string())
            .bind(key.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| {
                Ok(IdempotencyRecord {
                    principal: r.try_get("principal")?,
                    key: r.try_get("key")?,
                    request_hash: hash32(r.try_get("request_hash")?)?,
                    status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(500),
                    response: r.try_get("response")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .transpose()
        }

        async fn put_terms(conn: &mut $conn, id: Uuid, terms: &[IndexTerm]) -> Result<()> {
            // One multi-row statement per chunk: every statement is a round trip to the
            // database (a thread hop for SQLite), and a customer has a dozen terms.
            for chunk in terms.chunks(64) {
                // Only placeholders are formatted into the statement, never values.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::sql::insert_terms(chunk.len())));
                for t in chunk {
                    q = q.bind(t.kind.clone()).bind(t.hash.to_vec()).bind(id);
                }
                q.execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Writes (or, with `None`, removes) the digest of a record at `version`, in the
        /// record's own transaction.
        async fn put_digest(
            conn: &mut $conn,
            id: Uuid,
            version: i64,
            key_id: u32,
            digest: Option<&SealedDigest>,
        ) -> Result<()> {
            let Some(d) = digest else {
                sqlx::query(crate::sql::DELETE_DIGESTS).bind(id).execute(&mut *conn).await?;
                return Ok(());
            };
            for (part, sealed) in [(DigestPart::Policy, &d.policy), (DigestPart::Screening, &d.screening)] {
                sqlx::query(crate::sql::PUT_DIGEST)
                    .bind(part.code())
                    .bind(id)
                    .bind(version)
                    .bind(i64::from(key_id))
                    .bind(sealed.clone())
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        pub(crate) async fn insert_customer(
            conn: &mut $conn,
            head: &mut Head,
            w: CustomerWrite,
        ) -> Result<()> {
            check_idempotency(conn, &w.idempotency).await?;
            let r = &w.row;
            let res = sqlx::query(crate::sql::INSERT_CUSTOMER)
            .bind(r.id)
            .bind(r.kind.clone())
            .bind(r.version)
            .bind(r.created_at)
            .bind(r.updated_at)
            .bind(r.country.clone())
            .bind(i64::from(r.key_id))
            .bind(r.document.clone())
            .execute(&mut *conn)
            .await;
            match res {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate { what: "customer id" }),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            put_digest(conn, r.id, r.version, r.key_id, r.digest.as_ref()).await?;
            put_terms(conn, r.id, &w.terms).await?;
            crate::postgres::screen_keys_ops::write_screen_keys(conn, r.id, r.screen_keys.as_ref()).await?;
            put_idempotency(conn, w.idempotency).await?;
            crate::postgres::history_ops::write_extras(conn, w.extras).await?;
            append_audit(conn, head, w.audit).await
        }

        async fn current_version(conn: &mut $conn, table: &'static str, id: Uuid) -> Result<StoreError> {
            let sql: &'static str = if table == "customers" {
                crate::sql::CUSTOMER_VERSION
            } else {
                crate::sql::ACCOUNT_VERSION
            };
            let row = sqlx::query(sql).bind(id).fetch_optional(&mut *conn).await?;
            Ok(match row {
                None => StoreError::NotFound,
                Some(r) => StoreError::VersionConflict { current: r.try_get("version")? },
            })
        }

        pub(crate) async fn update_customer(
            conn: &mut $conn,
            head: &mut Head,
            w: CustomerWrite,
            expected_version: i64,
        ) -> Result<()> {
            let r = &w.row;
            let n = sqlx::query(crate::sql::UPDATE_CUSTOMER)
            .bind(r.kind.clone())
            .bind(r.version)
            .bind(r.updated_at)
            .bind(r.country.clone())
            .bind(i64::from(r.key_id))
            .bind(r.document.clone())
            .bind(r.id)
            .bind(expected_version)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(current_version(conn, "customers", r.id).await?);
            }
            put_digest(conn, r.id, r.version, r.key_id, r.digest.as_ref()).await?;
            sqlx::query(crate::sql::DELETE_TERMS)
                .bind(r.id)
                .execute(&mut *conn)
                .await?;
            put_terms(conn, r.id, &w.terms).await?;
            crate::postgres::screen_keys_ops::write_screen_keys(conn, r.id, r.screen_keys.as_ref()).await?;
            crate::postgres::history_ops::write_extras(conn, w.extras).await?;
            append_audit(conn, head, w.audit).await
        }

        pub(crate) async fn reseal_customer(
            conn: &mut $conn,
            head: &mut Head,
            id: Uuid,
            version: i64,
            r: crate::writer::Resealed,
            audit: AuditDraft,
        ) -> Result<bool> {
            let n = sqlx::query(crate::sql::RESEAL_CUSTOMER)
                .bind(r.document)
                .bind(i64::from(r.key_id))
                .bind(id)
                .bind(version)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            put_digest(conn, id, version, r.key_id, r.digest.as_ref()).await?;
            append_audit(conn, head, audit).await?;
            Ok(true)
        }

        pub(crate) async fn insert_account(conn: &mut $conn, head: &mut Head, w: AccountWrite) -> Result<()> {
            check_idempotency(conn, &w.idempotency).await?;
            let exists = sqlx::query(crate::sql::CUSTOMER_EXISTS)
                .bind(w.row.customer_id)
                .fetch_optional(&mut *conn)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let r = &w.row;
            let res = sqlx::query(crate::sql::INSERT_ACCOUNT)
            .bind(r.id)
            .bind(r.customer_id)
            .bind(r.external_id.clone())
            .bind(r.product.clone())
            .bind(r.account_type.clone())
            .bind(r.status.clone())
            .bind(r.opened_at)
            .bind(r.closed_at)
            .bind(r.last_accessed_at)
            .bind(r.version)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&mut *conn)
            .await;
            match res {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate { what: "account external_id" }),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            put_idempotency(conn, w.idempotency).await?;
            write_lifecycle(conn, w.transition, w.events).await?;
            append_audit(conn, head, w.audit).await
        }

        pub(crate) async fn update_account(
            conn: &mut $conn,
            head: &mut Head,
            w: AccountWrite,
            expected_version: i64,
        ) -> Result<()> {
            let r = &w.row;
            let res = sqlx::query(crate::sql::UPDATE_ACCOUNT)
            .bind(r.external_id.clone())
            .bind(r.product.clone())
            .bind(r.account_type.clone())
            .bind(r.status.clone())
            .bind(r.opened_at)
            .bind(r.closed_at)
            .bind(r.last_accessed_at)
            .bind(r.version)
            .bind(r.updated_at)
            .bind(r.id)
            .bind(expected_version)
            .execute(&mut *conn)
            .await;
            let n = match res {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate { what: "account external_id" }),
                Err(e) => return Err(e.into()),
                Ok(done) => done.rows_affected(),
            };
            if n == 0 {
                return Err(current_version(conn, "accounts", r.id).await?);
            }
            write_lifecycle(conn, w.transition, w.events).await?;
            append_audit(conn, head, w.audit).await
        }

        async fn write_lifecycle(
            conn: &mut $conn,
            transition: Option<TransitionRow>,
            events: Vec<EventDraft>,
        ) -> Result<()> {
            if let Some(t) = transition {
                sqlx::query(crate::sql::INSERT_TRANSITION)
                    .bind(t.account_id)
                    .bind(t.version)
                    .bind(t.from_status)
                    .bind(t.to_status)
                    .bind(t.reason)
                    .bind(t.actor)
                    .bind(t.at)
                    .execute(&mut *conn)
                    .await?;
            }
            for e in events {
                sqlx::query(crate::sql::INSERT_EVENT)
                    .bind(e.id)
                    .bind(e.event_type.clone())
                    .bind(e.payload)
                    .bind(e.created_at)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(crate::sql::FAN_OUT_EVENT)
                    .bind(e.id)
                    .bind(e.created_at)
                    .bind(e.event_type)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        pub(crate) async fn insert_endpoint(
            conn: &mut $conn,
            head: &mut Head,
            w: WebhookEndpointRow,
            audit: AuditDraft,
        ) -> Result<()> {
            sqlx::query(crate::sql::INSERT_ENDPOINT)
                .bind(w.id)
                .bind(w.url)
                .bind(w.events)
                .bind(w.secret)
                .bind(w.created_at)
                .bind(w.disabled_at)
                .execute(&mut *conn)
                .await?;
            append_audit(conn, head, audit).await
        }

        pub(crate) async fn disable_endpoint(
            conn: &mut $conn,
            head: &mut Head,
            id: Uuid,
            at: i64,
            audit: AuditDraft,
        ) -> Result<bool> {
            let n = sqlx::query(crate::sql::DISABLE_ENDPOINT)
                .bind(at)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            append_audit(conn, head, audit).await?;
            Ok(true)
        }

        pub(crate) async fn claim_deliveries(
            conn: &mut $conn,
            now: i64,
            lease_until: i64,
            limit: u32,
        ) -> Result<Vec<ClaimedDelivery>> {
            let rows = sqlx::query(sqlx::AssertSqlSafe(crate::sql::claim_deliveries(
                "FOR UPDATE SKIP LOCKED",
            )))
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let event_id: Uuid = r.try_get(0)?;
                let endpoint_id: Uuid = r.try_get(1)?;
                let attempts: i64 = r.try_get(2)?;
                let d = sqlx::query(crate::sql::CLAIMED_DETAILS)
                    .bind(event_id)
                    .bind(endpoint_id)
                    .fetch_one(&mut *conn)
                    .await?;
                out.push(ClaimedDelivery {
                    event_id,
                    endpoint_id,
                    attempts,
                    event_type: d.try_get(0)?,
                    payload: d.try_get(1)?,
                    url: d.try_get(2)?,
                    secret: d.try_get(3)?,
                });
            }
            Ok(out)
        }

        pub(crate) async fn finish_delivery(
            conn: &mut $conn,
            event_id: Uuid,
            endpoint_id: Uuid,
            o: DeliveryOutcome,
        ) -> Result<()> {
            let delivered_at = (o.state == "delivered").then_some(o.at);
            sqlx::query(crate::sql::FINISH_DELIVERY)
                .bind(o.state)
                .bind(o.status)
                .bind(o.error)
                .bind(delivered_at)
                .bind(o.next_attempt_at)
                .bind(event_id)
                .bind(endpoint_id)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(crate) async fn accounts_in_status_since(
            conn: &mut $conn,
            status: &str,
            before: i64,
            limit: u32,
        ) -> Result<Vec<AccountRow>> {
            let rows = sqlx::query(crate::sql::ACCOUNTS_IN_STATUS_SINCE)
                .bind(status)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(account_from_row).collect()
        }

        pub(crate) async fn list_transitions(conn: &mut $conn, account_id: Uuid) -> Result<Vec<TransitionRow>> {
            let rows = sqlx::query(crate::sql::LIST_TRANSITIONS)
                .bind(account_id)
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(TransitionRow {
                        account_id: r.try_get(0)?,
                        version: r.try_get(1)?,
                        from_status: r.try_get(2)?,
                        to_status: r.try_get(3)?,
                        reason: r.try_get(4)?,
                        actor: r.try_get(5)?,
                        at: r.try_get(6)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn list_endpoints(conn: &mut $conn) -> Result<Vec<WebhookEndpointRow>> {
            let rows = sqlx::query(crate::sql::LIST_ENDPOINTS)
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(WebhookEndpointRow {
                        id: r.try_get(0)?,
                        url: r.try_get(1)?,
                        events: r.try_get(2)?,
                        secret: r.try_get(3)?,
                        created_at: r.try_get(4)?,
                        disabled_at: r.try_get(5)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn list_deliveries(
            conn: &mut $conn,
            endpoint_id: Uuid,
            limit: u32,
        ) -> Result<Vec<DeliveryRow>> {
            let rows = sqlx::query(crate::sql::LIST_DELIVERIES)
                .bind(endpoint_id)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(DeliveryRow {
                        event_id: r.try_get(0)?,
                        endpoint_id: r.try_get(1)?,
                        event_type: r.try_get(2)?,
                        state: r.try_get(3)?,
                        attempts: r.try_get(4)?,
                        next_attempt_at: r.try_get(5)?,
                        last_status: r.try_get(6)?,
                        last_error: r.try_get(7)?,
                        delivered_at: r.try_get(8)?,
                        created_at: r.try_get(9)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn insert_checkpoint(conn: &mut $conn, cp: CheckpointRow) -> Result<()> {
            sqlx::query(crate::sql::INSERT_CHECKPOINT)
            .bind(cp.seq)
            .bind(cp.head_hash.to_vec())
            .bind(cp.at)
            .bind(cp.signature)
            .bind(cp.public_key.to_vec())
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        // ---- reads ----

        fn customer_from_row<R: Row>(r: &R) -> Result<CustomerRow>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            Ok(CustomerRow {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                version: r.try_get("version")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                country: r.try_get("country")?,
                document: r.try_get("document")?,
                key_id: u32::try_from(r.try_get::<i64, _>("key_id")?)
                    .map_err(|_| StoreError::Backend("key id out of range".into()))?,
                digest: match (
                    r.try_get::<Option<Vec<u8>>, _>("digest_policy")?,
                    r.try_get::<Option<Vec<u8>>, _>("digest_screening")?,
                ) {
                    (Some(policy), Some(screening)) => Some(SealedDigest { policy, screening }),
                    _ => None,
                },
                screen_keys: None,
            })
        }

        pub(crate) fn account_from_row<R: Row>(r: &R) -> Result<AccountRow>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            Ok(AccountRow {
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                external_id: r.try_get("external_id")?,
                product: r.try_get("product")?,
                account_type: r.try_get("account_type")?,
                status: r.try_get("status")?,
                opened_at: r.try_get("opened_at")?,
                closed_at: r.try_get("closed_at")?,
                last_accessed_at: r.try_get("last_accessed_at")?,
                version: r.try_get("version")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn audit_from_row<R: Row>(r: &R) -> Result<AuditEntry>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            let fields: String = r.try_get("fields")?;
            Ok(AuditEntry {
                seq: r.try_get("seq")?,
                draft: AuditDraft {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    record_type: r.try_get("record_type")?,
                    record_id: r.try_get("record_id")?,
                    fields: serde_json::from_str(&fields)
                        .map_err(|e| StoreError::Backend(format!("audit fields: {e}")))?,
                    request_id: r.try_get("request_id")?,
                    purpose: r.try_get("purpose")?,
                },
                prev_hash: hash32(r.try_get("prev_hash")?)?,
                hash: hash32(r.try_get("hash")?)?,
            })
        }

        pub(crate) async fn get_meta(conn: &mut $conn, name: &str) -> Result<Option<Vec<u8>>> {
            let row = sqlx::query(crate::sql::GET_META)
                .bind(name.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row.map(|r| r.try_get("value")).transpose()?)
        }

        fn api_key_from_row<R: Row>(r: &R) -> Result<ApiKeyRow>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            Ok(ApiKeyRow {
                id: r.try_get("id")?,
                role: r.try_get("role")?,
                secret_hash: hash32(r.try_get("secret_hash")?)?,
                label: r.try_get("label")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        }

        pub(crate) async fn get_api_key(conn: &mut $conn, id: &str) -> Result<Option<ApiKeyRow>> {
            let row = sqlx::query(crate::sql::GET_API_KEY)
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(api_key_from_row).transpose()
        }

        pub(crate) async fn list_api_keys(conn: &mut $conn) -> Result<Vec<ApiKeyRow>> {
            let rows = sqlx::query(crate::sql::LIST_API_KEYS)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(api_key_from_row).collect()
        }

        pub(crate) async fn get_customer(conn: &mut $conn, id: Uuid) -> Result<Option<CustomerRow>> {
            let row = sqlx::query(crate::sql::GET_CUSTOMER)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(customer_from_row).transpose()
        }

        pub(crate) async fn list_customers(
            conn: &mut $conn,
            filter: &CustomerFilter,
            page: &PageRequest,
        ) -> Result<Vec<CustomerRow>> {
            // Every optional filter is written as "$n IS NULL OR col = $n" so that the statement
            // text is fixed and prepared once.
            let rows = sqlx::query(crate::sql::LIST_CUSTOMERS)
            .bind(page.cursor())
            .bind(filter.kind.clone())
            .bind(filter.country.clone())
            .bind(filter.created_from)
            .bind(filter.created_to)
            .bind(i64::from(page.limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(customer_from_row).collect()
        }

        pub(crate) async fn find_customers_by_term(
            conn: &mut $conn,
            kind: &str,
            hash: &[u8; 32],
        ) -> Result<Vec<Uuid>> {
            let rows = sqlx::query(crate::sql::FIND_BY_TERM)
            .bind(kind.to_string())
            .bind(hash.to_vec())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(|r| Ok(r.try_get("customer_id")?)).collect()
        }

        pub(crate) async fn customers_with_stale_key(
            conn: &mut $conn,
            active_key_id: u32,
            limit: u32,
        ) -> Result<Vec<CustomerRow>> {
            let rows = sqlx::query(crate::sql::STALE_KEY_CUSTOMERS)
            .bind(i64::from(active_key_id))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(customer_from_row).collect()
        }

        pub(crate) async fn scan_customer_digests(
            conn: &mut $conn,
            part: DigestPart,
            after: Option<Uuid>,
            limit: u32,
        ) -> Result<Vec<CustomerDigestRow>> {
            let rows = sqlx::query(crate::sql::SCAN_CUSTOMER_DIGESTS)
                .bind(part.code())
                .bind(crate::types::cursor(after))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(crate::postgres::screen_keys_ops::customer_digest_from_row)
                .collect()
        }

        pub(crate) async fn count_customers(conn: &mut $conn) -> Result<u64> {
            let row = sqlx::query(crate::sql::COUNT_CUSTOMERS).fetch_one(&mut *conn).await?;
            Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
        }

        pub(crate) async fn get_account(conn: &mut $conn, id: Uuid) -> Result<Option<AccountRow>> {
            let row = sqlx::query(crate::sql::GET_ACCOUNT)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        }

        pub(crate) async fn get_account_by_external_id(conn: &mut $conn, external_id: &str) -> Result<Option<AccountRow>> {
            let row = sqlx::query(crate::sql::GET_ACCOUNT_BY_EXTERNAL_ID)
            .bind(external_id)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        }

        /// One statement for the whole batch (a round trip per account cost 0.1 ms each:
        /// 3,000 events/s over HTTP on PostgreSQL, measured).
        pub(crate) async fn touch_last_accessed(conn: &mut $conn, times: &[(Uuid, i64)]) -> Result<()> {
            let ids: Vec<Uuid> = times.iter().map(|(id, _)| *id).collect();
            let ats: Vec<i64> = times.iter().map(|(_, at)| *at).collect();
            sqlx::query(crate::sql::TOUCH_LAST_ACCESSED_MANY)
                .bind(ids)
                .bind(ats)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(crate) async fn list_accounts(
            conn: &mut $conn,
            filter: &AccountFilter,
            page: &PageRequest,
        ) -> Result<Vec<AccountRow>> {
            let rows = sqlx::query(crate::sql::list_accounts(filter.customer_id.is_some(), filter.status.is_some()))
            .bind(page.cursor())
            .bind(filter.customer_id)
            .bind(filter.status.clone())
            .bind(filter.account_type.clone())
            .bind(i64::from(page.limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(account_from_row).collect()
        }

        pub(crate) async fn list_audit(
            conn: &mut $conn,
            filter: &AuditFilter,
            limit: u32,
        ) -> Result<Vec<AuditEntry>> {
            let rows = sqlx::query(crate::sql::list_audit(filter.record_id.is_some(), filter.actor.is_some()))
            .bind(filter.after_seq.unwrap_or(-1))
            .bind(filter.record_id.clone())
            .bind(filter.actor.clone())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(audit_from_row).collect()
        }

        pub(crate) async fn audit_range(conn: &mut $conn, from_seq: i64, limit: u32) -> Result<Vec<AuditEntry>> {
            let rows = sqlx::query(crate::sql::AUDIT_RANGE)
            .bind(from_seq)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(audit_from_row).collect()
        }

        pub(crate) async fn list_checkpoints(conn: &mut $conn) -> Result<Vec<CheckpointRow>> {
            let rows = sqlx::query(crate::sql::LIST_CHECKPOINTS)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(CheckpointRow {
                        seq: r.try_get("seq")?,
                        head_hash: hash32(r.try_get("head_hash")?)?,
                        at: r.try_get("at")?,
                        signature: r.try_get("signature")?,
                        public_key: hash32(r.try_get("public_key")?)?,
                    })
                })
                .collect()
        }
        pub(crate) async fn insert_list_version(
            conn: &mut $conn,
            head: &mut Head,
            w: ListVersionWrite,
        ) -> Result<()> {
            let m = &w.row.meta;
            let current: Option<i64> = sqlx::query(crate::sql::ACTIVE_LIST_VERSION)
                .bind(m.list_id.clone())
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.try_get("active_version"))
                .transpose()?;
            if current != w.expected_active || m.version != w.expected_active.unwrap_or(0) + 1 {
                return Err(StoreError::VersionConflict { current: current.unwrap_or(0) });
            }
            sqlx::query(crate::sql::INSERT_LIST_VERSION)
                .bind(m.list_id.clone())
                .bind(m.version)
                .bind(m.content_hash.clone())
                .bind(m.entry_count)
                .bind(m.imported_at)
                .bind(m.source_format.clone())
                .bind(m.added)
                .bind(m.changed)
                .bind(m.removed)
                .bind(w.row.entries.as_slice())
                .execute(&mut *conn)
                .await?;
            sqlx::query(crate::sql::SET_ACTIVE_LIST)
                .bind(m.list_id.clone())
                .bind(m.version)
                .bind(m.imported_at)
                .execute(&mut *conn)
                .await?;
            append_audit(conn, head, w.audit).await
        }

        fn list_meta_from_row<R: Row>(r: &R) -> Result<ListVersionMeta>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            Ok(ListVersionMeta {
                list_id: r.try_get("list_id")?,
                version: r.try_get("version")?,
                content_hash: r.try_get("content_hash")?,
                entry_count: r.try_get("entry_count")?,
                imported_at: r.try_get("imported_at")?,
                source_format: r.try_get("source_format")?,
                added: r.try_get("added")?,
                changed: r.try_get("changed")?,
                removed: r.try_get("removed")?,
            })
        }

        pub(crate) async fn list_lists(conn: &mut $conn) -> Result<Vec<ListVersionMeta>> {
            let rows = sqlx::query(crate::sql::LIST_LISTS).fetch_all(&mut *conn).await?;
            rows.iter().map(list_meta_from_row).collect()
        }

        pub(crate) async fn list_versions(conn: &mut $conn, list_id: &str) -> Result<Vec<ListVersionMeta>> {
            let rows = sqlx::query(crate::sql::LIST_VERSIONS)
                .bind(list_id.to_string())
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(list_meta_from_row).collect()
        }

        pub(crate) async fn get_list_version(
            conn: &mut $conn,
            list_id: &str,
            version: i64,
        ) -> Result<Option<ListVersionRow>> {
            let row = sqlx::query(crate::sql::GET_LIST_VERSION)
                .bind(list_id.to_string())
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(|r| Ok(ListVersionRow { meta: list_meta_from_row(&r)?, entries: r.try_get("entries")? }))
                .transpose()
        }

        pub(crate) async fn active_list_versions(conn: &mut $conn) -> Result<Vec<ListVersionRow>> {
            let rows = sqlx::query(crate::sql::ACTIVE_LIST_VERSIONS).fetch_all(&mut *conn).await?;
            rows.iter()
                .map(|r| Ok(ListVersionRow { meta: list_meta_from_row(r)?, entries: r.try_get("entries")? }))
                .collect()
        }

        pub(crate) async fn open_review(
            conn: &mut $conn,
            head: &mut Head,
            r: ReviewRow,
            audit: AuditDraft,
        ) -> Result<bool> {
            let dismissed = sqlx::query(crate::sql::DISMISSAL_EXISTS)
                .bind(r.customer_id)
                .bind(r.subject.clone())
                .bind(r.list_id.clone())
                .bind(r.entry_id.clone())
                .bind(r.entry_hash.clone())
                .bind(r.subject_hash.to_vec())
                .fetch_optional(&mut *conn)
                .await?;
            let open = sqlx::query(crate::sql::OPEN_REVIEW_EXISTS)
                .bind(r.customer_id)
                .bind(r.subject.clone())
                .bind(r.list_id.clone())
                .bind(r.entry_id.clone())
                .fetch_optional(&mut *conn)
                .await?;
            if dismissed.is_some() || open.is_some() {
                return Ok(false);
            }
            sqlx::query(crate::sql::INSERT_REVIEW)
                .bind(r.id)
                .bind(r.customer_id)
                .bind(r.subject)
                .bind(r.list_id)
                .bind(r.entry_id)
                .bind(r.list_version)
                .bind(r.entry_hash)
                .bind(r.subject_hash.to_vec())
                .bind(r.score_bp)
                .bind(r.status)
                .bind(r.details)
                .bind(i64::from(r.key_id))
                .bind(r.created_at)
                .bind(r.decided_at)
                .bind(r.decided_by)
                .bind(r.reason)
                .execute(&mut *conn)
                .await?;
            append_audit(conn, head, audit).await?;
            Ok(true)
        }

        pub(crate) async fn decide_review(
            conn: &mut $conn,
            head: &mut Head,
            d: ReviewDecision,
        ) -> Result<()> {
            let n = sqlx::query(crate::sql::DECIDE_REVIEW)
                .bind(d.status.clone())
                .bind(d.reason)
                .bind(d.decided_by)
                .bind(d.decided_at)
                .bind(d.id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n == 0 {
                let exists = sqlx::query(crate::sql::REVIEW_EXISTS)
                    .bind(d.id)
                    .fetch_optional(&mut *conn)
                    .await?;
                return Err(match exists {
                    None => StoreError::NotFound,
                    Some(_) => StoreError::Duplicate { what: "decision (the review item is not open)" },
                });
            }
            if d.status == "dismissed" {
                sqlx::query(crate::sql::REMEMBER_DISMISSAL)
                    .bind(d.id)
                    .execute(&mut *conn)
                    .await?;
            }
            append_audit(conn, head, d.audit).await?;
            record_actions(conn, head, d.actions).await?;
            Ok(())
        }

        pub(crate) async fn close_reviews(
            conn: &mut $conn,
            head: &mut Head,
            list_id: &str,
            entry_ids: &[String],
            at: i64,
            audit: AuditDraft,
        ) -> Result<u64> {
            let mut n = 0u64;
            for id in entry_ids {
                n += sqlx::query(crate::sql::CLOSE_REVIEWS)
                    .bind(at)
                    .bind(list_id.to_string())
                    .bind(id.clone())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
            if n > 0 {
                append_audit(conn, head, audit).await?;
            }
            Ok(n)
        }

        fn review_from_row<R: Row>(r: &R) -> Result<ReviewRow>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            Ok(ReviewRow {
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                subject: r.try_get("subject")?,
                list_id: r.try_get("list_id")?,
                entry_id: r.try_get("entry_id")?,
                list_version: r.try_get("list_version")?,
                entry_hash: r.try_get("entry_hash")?,
                subject_hash: hash32(r.try_get("subject_hash")?)?,
                score_bp: r.try_get("score_bp")?,
                status: r.try_get("status")?,
                details: r.try_get("details")?,
                key_id: u32::try_from(r.try_get::<i64, _>("key_id")?)
                    .map_err(|_| StoreError::Backend("key id out of range".into()))?,
                created_at: r.try_get("created_at")?,
                decided_at: r.try_get("decided_at")?,
                decided_by: r.try_get("decided_by")?,
                reason: r.try_get("reason")?,
            })
        }

        pub(crate) async fn get_review(conn: &mut $conn, id: Uuid) -> Result<Option<ReviewRow>> {
            let row = sqlx::query(crate::sql::GET_REVIEW)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            row.as_ref().map(review_from_row).transpose()
        }

        pub(crate) async fn list_reviews(
            conn: &mut $conn,
            filter: &ReviewFilter,
            page: &PageRequest,
        ) -> Result<Vec<ReviewRow>> {
            let rows = sqlx::query(if filter.status.is_some() { crate::sql::LIST_REVIEWS_IN_STATUS } else { crate::sql::LIST_REVIEWS })
                .bind(page.cursor())
                .bind(filter.status.clone())
                .bind(filter.customer_id)
                .bind(i64::from(page.limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(review_from_row).collect()
        }

        // ---- special measures ----

        pub(crate) async fn insert_measure(
            conn: &mut $conn,
            head: &mut Head,
            m: MeasureRow,
            audit: AuditDraft,
        ) -> Result<()> {
            let res = sqlx::query(crate::sql::INSERT_MEASURE)
                .bind(m.id)
                .bind(m.version)
                .bind(m.target_kind)
                .bind(m.country)
                .bind(m.list_id)
                .bind(m.effective_at)
                .bind(m.expires_at)
                .bind(m.revoked_at)
                .bind(m.created_at)
                .bind(m.updated_at)
                .bind(m.swept_at)
                .bind(m.document)
                .execute(&mut *conn)
                .await;
            match res {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate { what: "special measure id" }),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            append_audit(conn, head, audit).await
        }

        pub(crate) async fn update_measure(
            conn: &mut $conn,
            head: &mut Head,
            m: MeasureRow,
            expected_version: i64,
            audit: AuditDraft,
        ) -> Result<()> {
            let n = sqlx::query(crate::sql::UPDATE_MEASURE)
                .bind(m.version)
                .bind(m.effective_at)
                .bind(m.expires_at)
                .bind(m.revoked_at)
                .bind(m.updated_at)
                .bind(m.document)
                .bind(m.id)
                .bind(expected_version)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n == 0 {
                let row = sqlx::query(crate::sql::MEASURE_VERSION)
                    .bind(m.id)
                    .fetch_optional(&mut *conn)
                    .await?;
                return Err(match row {
                    None => StoreError::NotFound,
                    Some(r) => StoreError::VersionConflict { current: r.try_get("version")? },
                });
            }
            append_audit(conn, head, audit).await
        }

        /// Inserts each action not recorded yet; its event and audit entry go only with a
        /// new row.
        pub(crate) async fn record_actions(
            conn: &mut $conn,
            head: &mut Head,
            actions: Vec<MeasureActionWrite>,
        ) -> Result<u64> {
            let mut n = 0u64;
            for w in actions {
                let r = w.row;
                let added = sqlx::query(crate::sql::INSERT_MEASURE_ACTION)
                    .bind(r.id)
                    .bind(r.measure_id)
                    .bind(r.review_id)
                    .bind(r.account_id)
                    .bind(r.customer_id)
                    .bind(r.action)
                    .bind(r.deadline)
                    .bind(r.evidence)
                    .bind(r.cause)
                    .bind(r.actor)
                    .bind(r.at)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                if added == 0 {
                    continue;
                }
                n += 1;
                write_lifecycle(conn, None, w.event.into_iter().collect()).await?;
                append_audit(conn, head, w.audit).await?;
            }
            Ok(n)
        }

        fn measure_from_row<R: Row>(r: &R) -> Result<MeasureRow>
        where
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            Ok(MeasureRow {
                id: r.try_get("id")?,
                version: r.try_get("version")?,
                target_kind: r.try_get("target_kind")?,
                country: r.try_get("country")?,
                list_id: r.try_get("list_id")?,
                effective_at: r.try_get("effective_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                swept_at: r.try_get("swept_at")?,
                document: r.try_get("document")?,
            })
        }

        pub(crate) async fn claim_measure_sweeps(
            conn: &mut $conn,
            now: i64,
            lease_until: i64,
            limit: u32,
        ) -> Result<Vec<MeasureRow>> {
            let rows = sqlx::query(sqlx::AssertSqlSafe(crate::sql::claim_measure_sweeps(
                "FOR UPDATE SKIP LOCKED",
            )))
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(measure_from_row).collect()
        }

        pub(crate) async fn get_measure(conn: &mut $conn, id: Uuid) -> Result<Option<MeasureRow>> {
            let row = sqlx::query(crate::sql::GET_MEASURE)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            row.as_ref().map(measure_from_row).transpose()
        }

        pub(crate) async fn list_measures(conn: &mut $conn, page: &PageRequest) -> Result<Vec<MeasureRow>> {
            let rows = sqlx::query(crate::sql::LIST_MEASURES)
                .bind(page.cursor())
                .bind(i64::from(page.limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(measure_from_row).collect()
        }

        pub(crate) async fn measures_in_force(conn: &mut $conn, now: i64) -> Result<Vec<MeasureRow>> {
            let rows = sqlx::query(crate::sql::MEASURES_IN_FORCE)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(measure_from_row).collect()
        }

        pub(crate) async fn list_measure_actions(
            conn: &mut $conn,
            f: &MeasureActionFilter,
        ) -> Result<Vec<MeasureActionRow>> {
            let rows = sqlx::query(crate::sql::LIST_MEASURE_ACTIONS)
                .bind(f.measure_id)
                .bind(f.account_id)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(MeasureActionRow {
                        id: r.try_get("id")?,
                        measure_id: r.try_get("measure_id")?,
                        review_id: r.try_get("review_id")?,
                        account_id: r.try_get("account_id")?,
                        customer_id: r.try_get("customer_id")?,
                        action: r.try_get("action")?,
                        deadline: r.try_get("deadline")?,
                        evidence: r.try_get("evidence")?,
                        cause: r.try_get("cause")?,
                        actor: r.try_get("actor")?,
                        at: r.try_get("at")?,
                        untied_at: r.try_get("untied_at")?,
                    })
                })
                .collect()
        }

        pub(crate) async fn list_refusals(
            conn: &mut $conn,
            measure_id: Uuid,
        ) -> Result<Vec<RefusalRow>> {
            let rows = sqlx::query(crate::sql::LIST_REFUSALS)
                .bind(measure_id)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(RefusalRow {
                        id: r.try_get("id")?,
                        measure_id: r.try_get("measure_id")?,
                        customer_id: r.try_get("customer_id")?,
                        account_type: r.try_get("account_type")?,
                        product: r.try_get("product")?,
                        reason: r.try_get("reason")?,
                        evidence: r.try_get("evidence")?,
                        actor: r.try_get("actor")?,
                        at: r.try_get("at")?,
                    })
                })
                .collect()
        }

        pub(crate) async fn apply(conn: &mut $conn, head: &mut Head, op: crate::writer::Op) -> Result<crate::writer::Out> {
                use crate::writer::{Op, Out};
            Ok(match op {
                Op::InitMeta(name, value) => Out::Bytes(init_meta(conn, &name, &value).await?),
                Op::SetMeta(name, value, audit) => {
                    set_meta(conn, head, &name, &value, audit).await?;
                    Out::Unit
                }
                Op::ClaimJob {
                    name,
                    holder,
                    now,
                    until,
                } => Out::Bool(
                    sqlx::query(crate::sql::CLAIM_JOB)
                        .bind(name)
                        .bind(holder)
                        .bind(until)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected()
                        == 1,
                ),
                Op::ReleaseJob { name, holder } => {
                    sqlx::query(crate::sql::RELEASE_JOB)
                        .bind(name)
                        .bind(holder)
                        .execute(&mut *conn)
                        .await?;
                    Out::Unit
                }
                Op::InsertApiKey(key, audit) => {
                    insert_api_key(conn, head, &key, audit).await?;
                    Out::Unit
                }
                Op::RevokeApiKey(id, at, audit) => {
                    Out::Bool(revoke_api_key(conn, head, &id, at, audit).await?)
                }
                Op::InsertCustomer(w) => {
                    insert_customer(conn, head, w).await?;
                    Out::Unit
                }
                Op::UpdateCustomer(w, v) => {
                    update_customer(conn, head, w, v).await?;
                    Out::Unit
                }
                Op::Reseal(id, version, resealed, audit) => Out::Bool(
                    reseal_customer(conn, head, id, version, resealed, audit).await?,
                ),
                Op::InsertAccount(w) => {
                    insert_account(conn, head, w).await?;
                    Out::Unit
                }
                Op::UpdateAccount(w, v) => {
                    update_account(conn, head, w, v).await?;
                    Out::Unit
                }
                Op::TouchLastAccessed(times) => {
                    touch_last_accessed(conn, &times).await?;
                    Out::Unit
                }
                Op::AppendAudit(drafts) => {
                    for d in drafts {
                        append_audit(conn, head, d).await?;
                    }
                    Out::Unit
                }
                Op::InsertCheckpoint(cp) => {
                    insert_checkpoint(conn, cp).await?;
                    Out::Unit
                }
                Op::InsertEndpoint(w, audit) => {
                    insert_endpoint(conn, head, w, audit).await?;
                    Out::Unit
                }
                Op::DisableEndpoint(id, at, audit) => {
                    Out::Bool(disable_endpoint(conn, head, id, at, audit).await?)
                }
                Op::ClaimDeliveries { now, lease_until, limit } => {
                    Out::Claimed(claim_deliveries(conn, now, lease_until, limit).await?)
                }
                Op::FinishDelivery(event_id, endpoint_id, outcome) => {
                    finish_delivery(conn, event_id, endpoint_id, outcome).await?;
                    Out::Unit
                }
                Op::InsertListVersion(w) => {
                    insert_list_version(conn, head, *w).await?;
                    Out::Unit
                }
                Op::OpenReview(r, audit) => Out::Bool(open_review(conn, head, *r, audit).await?),
                Op::DecideReview(d) => {
                    decide_review(conn, head, *d).await?;
                    Out::Unit
                }
                Op::CloseReviews(list, ids, at, audit) => {
                    Out::Count(close_reviews(conn, head, &list, &ids, at, audit).await?)
                }
                Op::InsertMeasure(m, audit) => {
                    insert_measure(conn, head, *m, audit).await?;
                    Out::Unit
                }
                Op::UpdateMeasure(m, v, audit) => {
                    update_measure(conn, head, *m, v, audit).await?;
                    Out::Unit
                }
                Op::ClaimMeasureSweeps { now, lease_until, limit } => {
                    Out::Measures(claim_measure_sweeps(conn, now, lease_until, limit).await?)
                }
                Op::FinishMeasureSweep(id, at) => {
                    sqlx::query(crate::sql::FINISH_MEASURE_SWEEP)
                        .bind(at)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Out::Unit
                }
                Op::RecordMeasureActions(actions) => {
                    Out::Count(record_actions(conn, head, actions).await?)
                }
                Op::InsertAccountWithActions(w, actions) => {
                    insert_account(conn, head, w).await?;
                    record_actions(conn, head, actions).await?;
                    Out::Unit
                }
                Op::RecordRefusals(rows, audit) => {
                    for r in rows {
                        sqlx::query(crate::sql::INSERT_REFUSAL)
                            .bind(r.id)
                            .bind(r.measure_id)
                            .bind(r.customer_id)
                            .bind(r.account_type)
                            .bind(r.product)
                            .bind(r.reason)
                            .bind(r.evidence)
                            .bind(r.actor)
                            .bind(r.at)
                            .execute(&mut *conn)
                            .await?;
                    }
                    append_audit(conn, head, audit).await?;
                    Out::Unit
                }
                Op::UpdateCustomerWithActions(w, v, actions, ties) => {
                    update_customer(conn, head, *w, v).await?;
                    record_actions(conn, head, actions).await?;
                    for t in ties {
                        sqlx::query(crate::sql::SET_ACTION_UNTIED)
                            .bind(t.untied_at)
                            .bind(t.action_id)
                            .execute(&mut *conn)
                            .await?;
                        append_audit(conn, head, t.audit).await?;
                    }
                    Out::Unit
                }
                op @ (Op::InsertEvidence(_)
        | Op::InsertOtp(..)
        | Op::UpdateOtp(_)
        | Op::InsertVerificationRequest(..)
        | Op::OpenCases(_)
        | Op::ResolveCase(_)
        | Op::InsertOtpThrottled(..)) => super::verification_ops::apply(conn, head, op).await?,
                op @ (Op::InsertNotices(..) | Op::RecordDetermination(..)) => {
                    super::history_ops::apply(conn, head, op).await?
                }
                op @ Op::RecordReminders(_) => super::due_ops::apply(conn, head, op).await?,
                op @ Op::PutScreenKeys(..) => super::screen_keys_ops::apply(conn, head, op).await?,
            })
        }
    };
}

pub(crate) use define_ops;
