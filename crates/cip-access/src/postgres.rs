//! The scale-out engine: PostgreSQL, `access_events` partitioned by range of time (one
//! partition per 13-week segment, like the SQLite segment files), batches loaded with `COPY` into a temporary
//! staging table and moved with one `INSERT … ON CONFLICT DO NOTHING RETURNING`, whose new
//! rows feed the summary upsert in the same statement. Retention drops partitions.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use uuid::Uuid;

use crate::*;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS access_events (
        account    UUID NOT NULL,
        t          BIGINT NOT NULL,
        ip         BYTEA NOT NULL,
        principal_h BYTEA NOT NULL,
        action     SMALLINT NOT NULL,
        event_id   TEXT NOT NULL,
        principal  BYTEA NOT NULL,
        user_agent BYTEA,
        session    BYTEA,
        resource   BYTEA,
        PRIMARY KEY (account, t, ip, principal_h, action, event_id)
    ) PARTITION BY RANGE (t)",
    // Per (account, segment, ip): what the two queries read. Not partitioned: it is small next
    // to the events, and a segment's rows go with one DELETE when its partition is dropped.
    "CREATE TABLE IF NOT EXISTS access_account_ip (
        account UUID NOT NULL,
        seg     BIGINT NOT NULL,
        ip      BYTEA NOT NULL,
        first   BIGINT NOT NULL,
        last    BIGINT NOT NULL,
        n       BIGINT NOT NULL,
        PRIMARY KEY (account, seg, ip)
    )",
    "CREATE INDEX IF NOT EXISTS access_account_ip_by_ip ON access_account_ip (ip, seg, account)",
    "CREATE TABLE IF NOT EXISTS access_import_marks (
        file_key   BYTEA PRIMARY KEY,
        \"offset\" BIGINT NOT NULL,
        line       BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS access_legal_holds (
        account UUID PRIMARY KEY,
        set_at  BIGINT NOT NULL
    )",
];

/// Serialises schema and partition creation across instances ("cip-acce" as an integer).
const DDL_LOCK: i64 = 0x6369_702d_6163_6365;

/// Free text is sealed per event here (PostgreSQL has no per-segment dictionary); the
/// principal's keyed hash stands in for it in the primary key.
pub struct PgAccess {
    pool: PgPool,
    vault: Arc<dyn TextVault>,
}

impl PgAccess {
    pub async fn open(url: &str, max_connections: u32, vault: Arc<dyn TextVault>) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK)
            .execute(&mut *tx)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(AssertSqlSafe(*stmt)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(PgAccess { pool, vault })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn ensure_partitions(&self, segs: &[i64]) -> Result<()> {
        let existing = self.segment_ids().await?;
        let missing: Vec<i64> = segs
            .iter()
            .copied()
            .filter(|s| !existing.contains(s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK)
            .execute(&mut *tx)
            .await?;
        for s in missing {
            // Integers only: no injection is possible in these names and bounds.
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS access_events_w{name} PARTITION OF access_events \
                 FOR VALUES FROM ({from}) TO ({to})",
                name = partition_suffix(s),
                from = s * SEGMENT_MICROS,
                to = (s + 1) * SEGMENT_MICROS
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn segment_ids(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'access_events'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get(0)?;
            if let Some(s) = name.strip_prefix("access_events_w").and_then(parse_suffix) {
                out.push(s);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// Partition names cannot hold '-': negative weeks (before 1970) are not accepted by the
/// parser, but the name stays total.
fn partition_suffix(seg: i64) -> String {
    if seg < 0 {
        format!("m{}", -seg)
    } else {
        seg.to_string()
    }
}

fn parse_suffix(s: &str) -> Option<i64> {
    match s.strip_prefix('m') {
        Some(n) => n.parse::<i64>().ok().map(|n| -n),
        None => s.parse().ok(),
    }
}

fn segment_of(at: i64) -> i64 {
    at.div_euclid(SEGMENT_MICROS)
}

/// COPY text format: backslash, tab, newline and carriage return escaped; `\N` is NULL.
fn copy_text(out: &mut Vec<u8>, s: Option<&str>) {
    let Some(s) = s else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn copy_bytea(out: &mut Vec<u8>, b: Option<&[u8]>) {
    use std::io::Write;
    let Some(b) = b else {
        out.extend_from_slice(b"\\N");
        return;
    };
    out.extend_from_slice(b"\\\\x");
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

fn copy_rows(events: &[AccessEvent], vault: &dyn TextVault) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(events.len() * 200);
    let seal = |s: Option<&str>| s.map(|s| vault.seal(s)).transpose();
    for e in events {
        let _ = write!(out, "{}\t{}\t", e.account, e.at);
        copy_bytea(&mut out, Some(&e.ip));
        out.push(b'\t');
        copy_bytea(&mut out, Some(&vault.blind(&e.principal)));
        let _ = write!(out, "\t{}\t", e.action.code());
        copy_text(&mut out, Some(e.event_id.as_deref().unwrap_or("")));
        for v in [
            Some(e.principal.as_str()),
            e.user_agent.as_deref(),
            e.session.as_deref(),
            e.resource.as_deref(),
        ] {
            out.push(b'\t');
            copy_bytea(&mut out, seal(v)?.as_deref());
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// `t.ip.principal_h.action.event_id`, binary parts in hex.
fn encode_cursor(t: i64, ip: &[u8], principal_h: &[u8], action: i16, event_id: &str) -> String {
    format!(
        "{t}.{}.{}.{action}.{}",
        hex(ip),
        hex(principal_h),
        hex(event_id.as_bytes())
    )
}

type PgCursor = (i64, Vec<u8>, Vec<u8>, i16, String);

fn decode_cursor(s: &str) -> Result<PgCursor> {
    let parts: Vec<&str> = s.split('.').collect();
    let [t, ip, p, a, e] = parts.as_slice() else {
        return Err(AccessError::BadCursor);
    };
    let text = |x: &str| {
        unhex(x)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(AccessError::BadCursor)
    };
    Ok((
        t.parse().map_err(|_| AccessError::BadCursor)?,
        unhex(ip).ok_or(AccessError::BadCursor)?,
        unhex(p).ok_or(AccessError::BadCursor)?,
        a.parse().map_err(|_| AccessError::BadCursor)?,
        text(e)?,
    ))
}

/// The parts of `[from, to)` covered by whole weeks (read from the summary) and the edges
/// (read from the events).
/// `[from, to)` time ranges and inclusive segment ranges.
type Span = (i64, i64);

fn split_range(from: i64, to: i64) -> (Option<Span>, Vec<Span>) {
    let first_whole =
        from.div_euclid(SEGMENT_MICROS) + i64::from(from.rem_euclid(SEGMENT_MICROS) != 0);
    let end_whole = to.div_euclid(SEGMENT_MICROS); // exclusive
    if first_whole >= end_whole {
        return (None, vec![(from, to)]);
    }
    let mut edges = Vec::new();
    if from < first_whole * SEGMENT_MICROS {
        edges.push((from, first_whole * SEGMENT_MICROS));
    }
    if end_whole * SEGMENT_MICROS < to {
        edges.push((end_whole * SEGMENT_MICROS, to));
    }
    (Some((first_whole, end_whole - 1)), edges)
}

#[async_trait]
impl AccessStore for PgAccess {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ingest(
        &self,
        mut events: Vec<AccessEvent>,
        mark: Option<ImportMark>,
    ) -> Result<IngestOutcome> {
        events.sort_unstable_by_key(|e| (e.account, e.at));
        let mut segs: Vec<i64> = events.iter().map(|e| segment_of(e.at)).collect();
        segs.sort_unstable();
        segs.dedup();
        self.ensure_partitions(&segs).await?;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS access_stage (
                account UUID, t BIGINT, ip BYTEA, principal_h BYTEA, action SMALLINT,
                event_id TEXT, principal BYTEA, user_agent BYTEA, session BYTEA, resource BYTEA
            ) ON COMMIT DELETE ROWS",
        )
        .execute(&mut *tx)
        .await?;
        let mut outcome = IngestOutcome::default();
        if !events.is_empty() {
            let mut copy = tx.copy_in_raw("COPY access_stage FROM STDIN").await?;
            copy.send(copy_rows(&events, self.vault.as_ref())?).await?;
            copy.finish().await?;
            // The only interpolation is a constant integer.
            let row = sqlx::query(AssertSqlSafe(format!(
                "WITH ins AS (
                    INSERT INTO access_events
                    SELECT * FROM access_stage ORDER BY account, t
                    ON CONFLICT DO NOTHING
                    RETURNING account, t, ip
                 ), up AS (
                    INSERT INTO access_account_ip (account, seg, ip, first, last, n)
                    SELECT account, t / {w}, ip, min(t), max(t), count(*) FROM ins
                    GROUP BY account, t / {w}, ip
                    ON CONFLICT (account, seg, ip) DO UPDATE SET
                        first = LEAST(access_account_ip.first, excluded.first),
                        last = GREATEST(access_account_ip.last, excluded.last),
                        n = access_account_ip.n + excluded.n
                    RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up)",
                w = SEGMENT_MICROS
            )))
            .fetch_one(&mut *tx)
            .await?;
            let accepted: i64 = row.try_get(0)?;
            outcome.accepted = accepted as u64;
            outcome.duplicates = events.len() as u64 - outcome.accepted;
        }
        if let Some(m) = mark {
            sqlx::query(
                "INSERT INTO access_import_marks (file_key, \"offset\", line, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (file_key) DO UPDATE SET \
                 \"offset\" = excluded.\"offset\", line = excluded.line, updated_at = excluded.updated_at",
            )
            .bind(&m.file_key[..])
            .bind(m.offset as i64)
            .bind(m.line as i64)
            .bind(jiff::Timestamp::now().as_microsecond())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn import_mark(&self, file_key: [u8; 32]) -> Result<Option<ImportMark>> {
        let row =
            sqlx::query("SELECT \"offset\", line FROM access_import_marks WHERE file_key = $1")
                .bind(&file_key[..])
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            None => None,
            Some(r) => Some(ImportMark {
                file_key,
                offset: r.try_get::<i64, _>(0)? as u64,
                line: r.try_get::<i64, _>(1)? as u64,
            }),
        })
    }

    async fn account_events(
        &self,
        account: Uuid,
        from: i64,
        to: i64,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let after = match cursor {
            Some(c) => decode_cursor(c)?,
            None => (from - 1, Vec::new(), Vec::new(), 0, String::new()),
        };
        let rows = sqlx::query(
            "SELECT t, ip, principal_h, action, event_id, principal, user_agent, session, \
                    resource \
             FROM access_events WHERE account = $1 AND t >= $2 AND t < $3 \
               AND (t, ip, principal_h, action, event_id) > ($4, $5, $6, $7, $8) \
             ORDER BY t, ip, principal_h, action, event_id LIMIT $9",
        )
        .bind(account)
        .bind(from)
        .bind(to)
        .bind(after.0)
        .bind(after.1)
        .bind(after.2)
        .bind(after.3)
        .bind(after.4)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let t: i64 = r.try_get(0)?;
            let ip: Vec<u8> = r.try_get(1)?;
            let principal_h: Vec<u8> = r.try_get(2)?;
            let action: i16 = r.try_get(3)?;
            let event_id: String = r.try_get(4)?;
            let cursor = encode_cursor(t, &ip, &principal_h, action, &event_id);
            let open = |i: usize| -> Result<Option<String>> {
                let sealed: Option<Vec<u8>> = r.try_get(i)?;
                sealed.map(|s| self.vault.open(&s)).transpose()
            };
            let principal = open(5)?.unwrap_or_default();
            out.push(StoredEvent {
                event: AccessEvent {
                    account,
                    principal,
                    ip: stored_ip(ip)?,
                    at: t,
                    action: Action::from_code(i64::from(action)).ok_or_else(|| {
                        AccessError::Storage(format!("unknown action code {action}"))
                    })?,
                    user_agent: open(6)?,
                    session: open(7)?,
                    resource: open(8)?,
                    event_id: (!event_id.is_empty()).then_some(event_id),
                },
                cursor,
            });
        }
        Ok(out)
    }

    async fn account_ips(&self, account: Uuid, from: i64, to: i64) -> Result<Vec<IpUse>> {
        let (whole, edges) = split_range(from, to);
        let mut merged: BTreeMap<IpKey, IpUse> = BTreeMap::new();
        let mut add = |u: IpUse| merge_use(&mut merged, u);
        if let Some((a, b)) = whole {
            let rows = sqlx::query(
                "SELECT ip, min(first), max(last), sum(n)::BIGINT FROM access_account_ip \
                 WHERE account = $1 AND seg BETWEEN $2 AND $3 GROUP BY ip",
            )
            .bind(account)
            .bind(a)
            .bind(b)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                add(IpUse {
                    ip: stored_ip(r.try_get(0)?)?,
                    first_seen: r.try_get(1)?,
                    last_seen: r.try_get(2)?,
                    count: r.try_get::<i64, _>(3)? as u64,
                });
            }
        }
        for (lo, hi) in edges {
            let rows = sqlx::query(
                "SELECT ip, min(t), max(t), count(*) FROM access_events \
                 WHERE account = $1 AND t >= $2 AND t < $3 GROUP BY ip",
            )
            .bind(account)
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                add(IpUse {
                    ip: stored_ip(r.try_get(0)?)?,
                    first_seen: r.try_get(1)?,
                    last_seen: r.try_get(2)?,
                    count: r.try_get::<i64, _>(3)? as u64,
                });
            }
        }
        Ok(merged.into_values().collect())
    }

    async fn ip_accounts(&self, range: IpRange, from: i64, to: i64) -> Result<Vec<AccountUse>> {
        let rows = sqlx::query(
            "SELECT account, ip, seg, first, last, n FROM access_account_ip \
             WHERE ip BETWEEN $1 AND $2 AND seg BETWEEN $3 AND $4 AND last >= $5 AND first < $6",
        )
        .bind(&range.first[..])
        .bind(&range.last[..])
        .bind(segment_of(from))
        .bind(segment_of(to - 1))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut merged: BTreeMap<(Uuid, IpKey), AccountUse> = BTreeMap::new();
        for r in rows {
            let account: Uuid = r.try_get(0)?;
            let ip_bytes: Vec<u8> = r.try_get(1)?;
            let (first, last): (i64, i64) = (r.try_get(3)?, r.try_get(4)?);
            let mut u = AccountUse {
                account,
                ip: stored_ip(ip_bytes.clone())?,
                first_seen: first,
                last_seen: last,
                count: r.try_get::<i64, _>(5)? as u64,
            };
            if !(from <= first && last < to) {
                // The segment's span crosses the range's edge: count the events inside.
                let seg: i64 = r.try_get(2)?;
                let lo = from.max(seg * SEGMENT_MICROS);
                let hi = to.min((seg + 1) * SEGMENT_MICROS);
                let c = sqlx::query(
                    "SELECT min(t), max(t), count(*) FROM access_events \
                     WHERE account = $1 AND t >= $2 AND t < $3 AND ip = $4",
                )
                .bind(account)
                .bind(lo)
                .bind(hi)
                .bind(ip_bytes)
                .fetch_one(&self.pool)
                .await?;
                let (Some(f), Some(l)) = (
                    c.try_get::<Option<i64>, _>(0)?,
                    c.try_get::<Option<i64>, _>(1)?,
                ) else {
                    continue;
                };
                u.first_seen = f;
                u.last_seen = l;
                u.count = c.try_get::<i64, _>(2)? as u64;
            }
            merge_use(&mut merged, u);
        }
        Ok(merged.into_values().collect())
    }

    async fn set_legal_hold(&self, account: Uuid, held: bool, at: i64) -> Result<()> {
        if held {
            sqlx::query(
                "INSERT INTO access_legal_holds (account, set_at) VALUES ($1, $2) \
                 ON CONFLICT (account) DO NOTHING",
            )
            .bind(account)
            .bind(at)
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query("DELETE FROM access_legal_holds WHERE account = $1")
                .bind(account)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn legal_holds(&self) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT account FROM access_legal_holds")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<Uuid, _>(0).map_err(Into::into))
            .collect()
    }

    async fn segments(&self) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        for s in self.segment_ids().await? {
            let bytes: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT pg_total_relation_size('access_events_w{}')",
                partition_suffix(s)
            )))
            .fetch_one(&self.pool)
            .await?;
            out.push(Segment {
                id: s,
                from: s * SEGMENT_MICROS,
                to: (s + 1) * SEGMENT_MICROS,
                bytes: bytes as u64,
            });
        }
        Ok(out)
    }

    async fn segment_accounts(&self, segment: i64) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT account FROM access_account_ip WHERE seg = $1 ORDER BY account",
        )
        .bind(segment)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<Uuid, _>(0).map_err(Into::into))
            .collect()
    }

    async fn drop_segment(&self, segment: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS access_events_w{}",
            partition_suffix(segment)
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM access_account_ip WHERE seg = $1")
            .bind(segment)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn disk_bytes(&self) -> Result<u64> {
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT sum(pg_total_relation_size(c.oid))::BIGINT FROM pg_class c \
             WHERE c.relkind = 'r' AND (c.relname LIKE 'access\\_events\\_w%' \
                OR c.relname = 'access_account_ip')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(bytes.unwrap_or(0) as u64)
    }

    async fn verify(&self) -> Result<Consistency> {
        let mut out = Consistency::default();
        // One snapshot for every count.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        out.segments = self.segment_ids().await?.len() as u64;
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM access_events")
            .fetch_one(&mut *tx)
            .await?;
        let pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM access_account_ip")
            .fetch_one(&mut *tx)
            .await?;
        out.events = events as u64;
        out.pairs = pairs as u64;
        // The only interpolation is a constant integer.
        let w = SEGMENT_MICROS;
        for (sql, what) in [
            (
                format!(
                    "SELECT count(*) FROM (SELECT account, t / {w}, ip, min(t), max(t), count(*)                      FROM access_events GROUP BY account, t / {w}, ip EXCEPT                      SELECT account, seg, ip, first, last, n FROM access_account_ip) x"
                ),
                "(account, segment, address) groups of the events missing from access_account_ip or counted differently there",
            ),
            (
                format!(
                    "SELECT count(*) FROM (SELECT account, seg, ip, first, last, n                      FROM access_account_ip EXCEPT SELECT account, t / {w}, ip, min(t), max(t),                      count(*) FROM access_events GROUP BY account, t / {w}, ip) x"
                ),
                "access_account_ip rows that the events do not support",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(&mut *tx)
                .await?;
            if n != 0 {
                out.problems.push(format!("{n} {what}"));
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// A scratch database for tests and benchmarks, dropped with [`drop_database`].
pub async fn create_scratch_database(admin_url: &str) -> Result<(String, String)> {
    let name = format!("cip_access_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
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
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}
