//! `cip bench access`: the access record's figures, each beside its baseline measured in the
//! same run — import events/s (vs. the engine's plain bulk insert of the same rows into an
//! unindexed table, same durability), HTTP ingestion events/s, p50/p99 of the two queries,
//! and bytes on disk per event.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use cip_access::{IpRange, ip_key};
use hdrhistogram::Histogram;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DAY: i64 = 24 * 3600 * 1_000_000;
const ACTIONS: &[&str] = &[
    "login", "console", "api", "api", "api", "ssh", "admin", "billing",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "aws-cli/2.15.0 Python/3.11",
    "terraform/1.9.2",
    "kubectl/v1.31.0",
    "curl/8.5.0",
    "Go-http-client/2.0",
    "python-requests/2.32",
];

/// The synthetic workload: `events` over the last `days` days, in time order (as logs come),
/// across `accounts` accounts with about four addresses each (one in eight IPv6), a few
/// addresses shared between accounts.
struct Workload {
    accounts: Vec<Uuid>,
    events: u64,
    start: i64,
    span: i64,
}

/// splitmix64: a fixed, seedable sequence (no dependency, the same rows every run).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Row {
    account: usize,
    ip: std::net::IpAddr,
    at: i64,
    action: &'static str,
    principal: u64,
    agent: &'static str,
}

impl Workload {
    fn ip_of(&self, account: usize, k: u64) -> std::net::IpAddr {
        // Every 50th account's address slot points into a shared pool (NAT, VPN exits).
        let slot = account as u64 * 4 + k;
        let n = if mix(slot).is_multiple_of(50) {
            mix(slot) % 1000
        } else {
            1000 + slot
        };
        if account.is_multiple_of(8) {
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0x0db8,
                (n >> 16) as u16,
                n as u16,
                0,
                0,
                0,
                1,
            ))
        } else {
            std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000u32 + n as u32))
        }
    }

    fn row(&self, i: u64) -> Row {
        let r = mix(i ^ 0x5EED);
        let account = (r % self.accounts.len() as u64) as usize;
        Row {
            account,
            ip: self.ip_of(account, (r >> 20) % 4),
            at: self.start + (i as i128 * self.span as i128 / self.events as i128) as i64,
            action: ACTIONS[((r >> 24) % ACTIONS.len() as u64) as usize],
            principal: (r >> 32) % 3,
            agent: AGENTS[((r >> 40) % AGENTS.len() as u64) as usize],
        }
    }

    fn line(&self, i: u64, out: &mut String) {
        use std::fmt::Write;
        let r = self.row(i);
        let time = jiff::Timestamp::from_microsecond(r.at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            r#"{{"account":"{}","principal":"user-{}","ip":"{}","time":"{}","action":"{}","user_agent":"{}"}}"#,
            self.accounts[r.account], r.principal, r.ip, time, r.action, r.agent
        );
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub struct Options {
    pub events: u64,
    pub accounts: u64,
    pub http_events: u64,
    pub postgres: Option<String>,
    pub stream: Option<StreamOptions>,
    pub json: bool,
}

/// The NATS JetStream figure: `events` published one per message to a scratch stream.
pub struct StreamOptions {
    pub events: u64,
    pub nats: String,
    pub batch: usize,
}

fn write_ndjson(w: &Workload, path: &Path) -> Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut line = String::with_capacity(256);
    for i in 0..w.events {
        line.clear();
        w.line(i, &mut line);
        f.write_all(line.as_bytes())?;
    }
    f.flush()?;
    Ok(())
}

pub async fn run(o: Options) -> Result<u8> {
    let dir = tempfile::tempdir()?;
    let mut pg = None;
    let database_url = match &o.postgres {
        Some(admin) => {
            let (url, name) = cip_store::postgres::create_scratch_database(admin).await?;
            pg = Some((admin.clone(), name));
            Some(url)
        }
        None => None,
    };
    let result = run_in(&o, dir.path(), database_url).await;
    if let Some((admin, name)) = pg {
        cip_store::postgres::drop_database(&admin, &name).await?;
    }
    result
}

async fn run_in(o: &Options, dir: &Path, database_url: Option<String>) -> Result<u8> {
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let flags = cip_server::config::ConfigLayer {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data")),
        database_url: database_url.clone(),
        ..Default::default()
    };
    let config = cip_server::config::load(None, Default::default(), flags)?;
    let inst = cip_server::install::open(&config).await?;
    let bar = crate::bench::progress_bar(7, "access bench");

    // Accounts (the importer resolves each event's account against the identity store).
    let customer = Uuid::now_v7();
    let now = cip_server::time::now_micros();
    let draft = |action: &str, id: Uuid| cip_store::AuditDraft {
        at: now,
        actor: "bench".into(),
        role: "admin".into(),
        action: action.into(),
        record_type: "account".into(),
        record_id: Some(id.to_string()),
        fields: vec![],
        request_id: None,
        purpose: None,
    };
    inst.store
        .insert_customer(cip_store::CustomerWrite {
            row: cip_store::CustomerRow {
                id: customer,
                kind: "entity".into(),
                version: 1,
                created_at: now,
                updated_at: now,
                country: None,
                document: b"{}".to_vec(),
                key_id: 1,
                digest: None,
                screen_keys: None,
            },
            terms: vec![],
            audit: draft("customer.create", customer),
            idempotency: None,
            extras: Default::default(),
        })
        .await?;
    let accounts: Vec<Uuid> = (0..o.accounts.max(1)).map(|_| Uuid::now_v7()).collect();
    for chunk in accounts.chunks(256) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let store = inst.store.clone();
            let row = cip_store::AccountRow {
                id: *id,
                customer_id: customer,
                external_id: None,
                product: "compute".into(),
                account_type: "standard".into(),
                status: "active".into(),
                opened_at: Some(now - 400 * DAY),
                closed_at: None,
                last_accessed_at: None,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            let audit = draft("account.create", *id);
            set.spawn(async move {
                store
                    .insert_account(cip_store::AccountWrite {
                        row,
                        audit,
                        idempotency: None,
                        transition: None,
                        events: vec![],
                    })
                    .await
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
    }
    bar.inc(1);

    // The file: a year of events, in time order, ending a day ago.
    let w = Arc::new(Workload {
        accounts: accounts.clone(),
        events: o.events,
        start: now - 366 * DAY,
        span: 365 * DAY,
    });
    let file = dir.join("events.ndjson");
    write_ndjson(&w, &file)?;
    let file_bytes = std::fs::metadata(&file)?.len();
    bar.inc(1);

    // Baseline: the same rows, already parsed, bulk-inserted into one unindexed table of the
    // same engine with the same durability.
    let baseline = baseline_insert(&w, dir, database_url.as_deref()).await?;
    bar.inc(1);

    // The import path, end to end: read, parse, resolve accounts, store with dedupe and both
    // summaries, record the resume position, advance last_accessed_at.
    let t = Instant::now();
    let code = crate::access::import_quiet(&inst, &file, config.access_future_skew_secs).await?;
    let import_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        code.accepted == o.events && code.rejected == 0,
        "the import stored {} of {} events ({} rejected)",
        code.accepted,
        o.events,
        code.rejected
    );
    let import_rate = o.events as f64 / import_secs;
    let (import_waited, import_storing) = (code.waited.as_secs_f64(), code.storing.as_secs_f64());
    bar.inc(1);

    // Disk use.
    let (bytes_live, bytes_compact) = match database_url {
        None => {
            let access_dir = dir.join("data").join("access");
            let engine = cip_access::sqlite::SqliteAccess::open(
                &access_dir,
                Arc::new(cip_access::ClearText),
            )?;
            engine.checkpoint()?;
            // Checkpoint through fresh connections too (the importer's closed with it).
            for seg in inst.access.segments().await? {
                let c = rusqlite::Connection::open(access_dir.join(format!("seg-{}.db", seg.id)))?;
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            }
            (dir_bytes(&access_dir), Some((engine, access_dir)))
        }
        Some(_) => (inst.access.disk_bytes().await?, None),
    };
    bar.inc(1);

    // Queries: distinct addresses of one account over 90 days; accounts of one address over
    // a year. Random accounts and addresses from the workload.
    let queries = 1000u64;
    let mut h_ips = Histogram::<u64>::new(3)?;
    let mut h_accts = Histogram::<u64>::new(3)?;
    let mut ips_found = 0usize;
    let mut accts_found = 0usize;
    for q in 0..queries {
        let a = (mix(q ^ 0xACC7) % accounts.len() as u64) as usize;
        let t = Instant::now();
        ips_found += inst
            .access
            .account_ips(accounts[a], now - 90 * DAY, now)
            .await?
            .len();
        h_ips.record(t.elapsed().as_micros() as u64)?;
        let ip = w.ip_of(a, mix(q) % 4);
        let t = Instant::now();
        accts_found += inst
            .access
            .ip_accounts(IpRange::single(ip_key(ip)), now - 365 * DAY, now)
            .await?
            .len();
        h_accts.record(t.elapsed().as_micros() as u64)?;
    }
    // Packed (after the queries, which see the record as ingestion left it): each segment's
    // log and runs merged into one run and the file vacuumed — what a segment that no longer
    // receives events can become.
    let bytes_compact = match bytes_compact {
        Some((engine, access_dir)) => {
            for seg in inst.access.segments().await? {
                engine.compact_segment(seg.id)?;
            }
            drop(engine);
            Some(dir_bytes(&access_dir))
        }
        None => None,
    };
    bar.inc(1);

    // HTTP: NDJSON bodies of 10,000 new events (a day later than the file's), 4 clients.
    let http_rate = if o.http_events > 0 {
        Some(http_ingest(&inst, &config, &w, o.http_events).await?)
    } else {
        None
    };
    let stream = match &o.stream {
        Some(so) => Some(stream_ingest(&inst, &config, &w, dir, so).await?),
        None => None,
    };
    bar.finish_and_clear();

    let per_event = bytes_live as f64 / o.events as f64;
    let per_event_compact = bytes_compact.map(|b| b as f64 / o.events as f64);
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "backend": backend,
                "events": o.events,
                "accounts": o.accounts,
                "file_bytes": file_bytes,
                "import_events_per_sec": import_rate.round(),
                "baseline_plain_insert_events_per_sec": baseline.round(),
                "import_secs": import_secs,
                "import_storing_secs": import_storing,
                "import_waiting_for_parser_secs": import_waited,
                "http_events": o.http_events,
                "http_events_per_sec": http_rate.map(f64::round),
                "account_ips_90d_ms": {"p50": pct(&h_ips, 0.5), "p99": pct(&h_ips, 0.99), "mean_results": ips_found as f64 / queries as f64},
                "ip_accounts_1y_ms": {"p50": pct(&h_accts, 0.5), "p99": pct(&h_accts, 0.99), "mean_results": accts_found as f64 / queries as f64},
                "bytes_per_event": (per_event * 10.0).round() / 10.0,
                "bytes_per_event_compacted": per_event_compact.map(|b| (b * 10.0).round() / 10.0),
                "stream": stream.as_ref().map(|s| json!({
                    "events": s.events,
                    "fetch_batch": s.batch,
                    "events_per_sec": s.rate.round(),
                    "baseline_import_events_per_sec": s.direct_rate.round(),
                    "publish_only_events_per_sec": s.publish_rate.round(),
                })),
            }))?
        );
    } else {
        println!(
            "cip bench access — {backend}, {} events over 365 days, {} accounts ({:.0} MB NDJSON)",
            o.events,
            o.accounts,
            file_bytes as f64 / 1e6
        );
        println!(
            "  {:<58} {:>12.0} events/s",
            "cip access import (parse, resolve, dedupe, summaries)", import_rate
        );
        println!(
            "  {:<58} {:>12.0} events/s",
            "baseline: plain bulk insert, same rows, no indexes", baseline
        );
        println!(
            "  {:<58} {import_secs:>9.1} s: storing {import_storing:.1} s, waiting for the parser {import_waited:.1} s",
            "  import time"
        );
        if let Some(r) = http_rate {
            println!(
                "  {:<58} {:>12.0} events/s",
                format!(
                    "POST /v1/access-events, NDJSON x10,000 ({} events)",
                    o.http_events
                ),
                r
            );
        }
        println!(
            "  {:<58} p50 {:>6.2} ms  p99 {:>6.2} ms",
            "account's distinct IPs over 90 days",
            pct(&h_ips, 0.5),
            pct(&h_ips, 0.99)
        );
        println!(
            "  {:<58} p50 {:>6.2} ms  p99 {:>6.2} ms",
            "accounts of one IP over a year",
            pct(&h_accts, 0.5),
            pct(&h_accts, 0.99)
        );
        if let Some(s) = &stream {
            println!(
                "  {:<58} {:>12.0} events/s",
                format!(
                    "NATS JetStream consumer, publish to ack ({} events, fetch {})",
                    s.events, s.batch
                ),
                s.rate
            );
            println!(
                "  {:<58} {:>12.0} events/s",
                "  baseline: the same number through cip access import", s.direct_rate
            );
            println!(
                "  {:<58} {:>12.0} events/s",
                "  publishing alone (one event a message, JetStream acks)", s.publish_rate
            );
        }
        match per_event_compact {
            Some(c) => println!(
                "  {:<58} {:>9.1} B/event ({c:.1} with every segment packed)",
                "disk", per_event
            ),
            None => println!("  {:<58} {:>9.1} B/event", "disk", per_event),
        }
    }
    Ok(0)
}

async fn baseline_insert(w: &Workload, dir: &Path, pg_url: Option<&str>) -> Result<f64> {
    let batch = 50_000u64;
    match pg_url {
        None => {
            let path = dir.join("baseline.db");
            let conn = rusqlite::Connection::open(&path)?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 CREATE TABLE plain (account BLOB, t INTEGER, ip BLOB, principal TEXT, \
                 action TEXT, user_agent TEXT);",
            )?;
            let mut conn = conn;
            let t = Instant::now();
            let mut i = 0;
            while i < w.events {
                let tx = conn.transaction()?;
                {
                    let mut st =
                        tx.prepare_cached("INSERT INTO plain VALUES (?1,?2,?3,?4,?5,?6)")?;
                    for j in i..(i + batch).min(w.events) {
                        let r = w.row(j);
                        st.execute(rusqlite::params![
                            w.accounts[r.account],
                            r.at,
                            &ip_key(r.ip)[..],
                            format!("user-{}", r.principal),
                            r.action,
                            r.agent
                        ])?;
                    }
                }
                tx.commit()?;
                i += batch;
            }
            Ok(w.events as f64 / t.elapsed().as_secs_f64())
        }
        Some(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query(
                "CREATE TABLE plain (account UUID, t BIGINT, ip BYTEA, principal TEXT, \
                 action TEXT, user_agent TEXT)",
            )
            .execute(&mut conn)
            .await?;
            let t = Instant::now();
            let mut i = 0;
            while i < w.events {
                let mut buf = Vec::with_capacity(batch as usize * 120);
                for j in i..(i + batch).min(w.events) {
                    let r = w.row(j);
                    let _ = write!(buf, "{}\t{}\t\\\\x", w.accounts[r.account], r.at);
                    for b in ip_key(r.ip) {
                        let _ = write!(buf, "{b:02x}");
                    }
                    let _ = writeln!(buf, "\tuser-{}\t{}\t{}", r.principal, r.action, r.agent);
                }
                let mut copy = conn.copy_in_raw("COPY plain FROM STDIN").await?;
                copy.send(buf).await?;
                copy.finish().await?;
                i += batch;
            }
            Ok(w.events as f64 / t.elapsed().as_secs_f64())
        }
    }
}

async fn http_ingest(
    inst: &cip_server::install::Installation,
    config: &cip_server::config::Config,
    w: &Arc<Workload>,
    n: u64,
) -> Result<f64> {
    let (_, token) = cip_server::auth::create_api_key(
        inst.store.as_ref(),
        cip_core::model::Role::Integration,
        None,
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let token = token.expose_secret().to_string();
    let state = cip_server::app::state_from(inst, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let config2 = config.clone();
    let server = tokio::spawn(async move {
        let _ = cip_server::app::serve(listener, state, &config2, c2).await;
    });
    // New events: the same generator shifted by a day, so none is a duplicate.
    let shifted = Arc::new(Workload {
        accounts: w.accounts.clone(),
        events: n,
        start: w.start + DAY,
        span: w.span,
    });
    let per_body = 10_000u64;
    let bodies: Vec<String> = (0..n.div_ceil(per_body))
        .map(|b| {
            let mut s = String::with_capacity(per_body as usize * 200);
            for i in b * per_body..((b + 1) * per_body).min(n) {
                shifted.line(i, &mut s);
            }
            s
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (bodies, next, client, base, token) = (
            bodies.clone(),
            next.clone(),
            client.clone(),
            base.clone(),
            token.clone(),
        );
        set.spawn(async move {
            let mut accepted = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let resp = client
                    .post(format!("{base}/v1/access-events"))
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
                let v: serde_json::Value = resp.json().await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            Ok::<u64, anyhow::Error>(accepted)
        });
    }
    let mut accepted = 0;
    while let Some(r) = set.join_next().await {
        accepted += r.context("client task")??;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    cancel.cancel();
    let _ = server.await;
    anyhow::ensure!(accepted == n, "HTTP stored {accepted} of {n} events");
    Ok(rate)
}

struct StreamFigures {
    events: u64,
    batch: usize,
    rate: f64,
    direct_rate: f64,
    publish_rate: f64,
}

/// The JetStream consumer of `cip serve` (`AccessStream::run_once`, the loop `run` repeats),
/// from the first publish to the last durable ack, while a publisher sends one event per
/// message. Baseline in the same run: as many events (shifted two and three days before the
/// file's, so new and not in the future) imported directly from a file by the code of
/// `cip access import`.
async fn stream_ingest(
    inst: &cip_server::install::Installation,
    config: &cip_server::config::Config,
    w: &Arc<Workload>,
    dir: &Path,
    o: &StreamOptions,
) -> Result<StreamFigures> {
    use cip_server::access_stream::AccessStream;
    let n = o.events;
    let direct = Workload {
        accounts: w.accounts.clone(),
        events: n,
        start: w.start - 2 * DAY,
        span: w.span,
    };
    let file = dir.join("stream-baseline.ndjson");
    write_ndjson(&direct, &file)?;
    let t = Instant::now();
    let r = crate::access::import_quiet(inst, &file, config.access_future_skew_secs).await?;
    let direct_rate = n as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(r.accepted == n, "the baseline stored {} of {n}", r.accepted);

    let tag = Uuid::new_v4().simple().to_string();
    let nc = cip_server::config::NatsConfig {
        url: o.nats.clone(),
        stream: format!("CIPBENCH_{tag}"),
        subject: format!("cip.bench.{tag}.access"),
        consumer: "cip-bench".into(),
        batch: o.batch,
    };
    // Creates the stream (file storage, as in production) and the durable consumer.
    let consumer = AccessStream::connect(&nc)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let js = async_nats::jetstream::new(async_nats::connect(o.nats.as_str()).await?);
    let shifted = Workload {
        accounts: w.accounts.clone(),
        events: n,
        start: w.start - 3 * DAY,
        span: w.span,
    };
    let payloads: Vec<String> = (0..n)
        .map(|i| {
            let mut s = String::with_capacity(200);
            shifted.line(i, &mut s);
            s
        })
        .collect();
    let state = cip_server::app::state_from(inst, config);
    let result = async {
        let t = Instant::now();
        let (js2, subject) = (js.clone(), nc.subject.clone());
        let publisher = tokio::spawn(async move {
            // Up to 4,096 publishes awaiting their JetStream ack at once.
            let mut inflight = std::collections::VecDeque::new();
            for p in payloads {
                inflight.push_back(js2.publish(subject.clone(), p.into()).await?);
                if inflight.len() >= 4096
                    && let Some(f) = inflight.pop_front()
                {
                    f.await?;
                }
            }
            for f in inflight {
                f.await?;
            }
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64())
        });
        // As `AccessStream::run` does: WORKERS loops of `run_once`, batches in flight at once.
        let consumer = Arc::new(consumer);
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..cip_server::access_stream::WORKERS {
            let (consumer, state, acked) = (consumer.clone(), state.clone(), acked.clone());
            workers.spawn(async move {
                let (mut accepted, mut done_at) = (0u64, None);
                while acked.load(std::sync::atomic::Ordering::SeqCst) < n {
                    let b = consumer
                        .run_once(&state, std::time::Duration::from_millis(200))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    anyhow::ensure!(
                        b.retried == 0 && b.terminated == 0,
                        "the consumer refused or handed back messages: {b:?}"
                    );
                    let before = acked.fetch_add(b.acked, std::sync::atomic::Ordering::SeqCst);
                    if before < n && before + b.acked >= n {
                        // The last ack: the other worker may still wait out its fetch.
                        done_at = Some(t.elapsed().as_secs_f64());
                    }
                    accepted += b.accepted;
                }
                Ok::<(u64, Option<f64>), anyhow::Error>((accepted, done_at))
            });
        }
        let (mut accepted, mut secs) = (0, f64::MAX);
        while let Some(r) = workers.join_next().await {
            let (a, d) = r.context("stream worker")??;
            accepted += a;
            secs = secs.min(d.unwrap_or(f64::MAX));
        }
        let rate = n as f64 / secs;
        let publish_secs = publisher.await.context("publisher")??;
        anyhow::ensure!(accepted == n, "the stream stored {accepted} of {n} events");
        Ok(StreamFigures {
            events: n,
            batch: o.batch,
            rate,
            direct_rate,
            publish_rate: n as f64 / publish_secs,
        })
    }
    .await;
    js.delete_stream(&nc.stream).await?;
    result
}
