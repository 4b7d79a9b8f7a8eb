//! `cip bench …`: measured figures, each printed beside a baseline measured in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Onboarding through the HTTP API: entity customers with two beneficial owners and full
    /// identity fields, encryption and audit on; then p99 latency at half that rate, and
    /// single-customer reads. Baseline: plain inserts of the same rows into the same engine.
    Onboard {
        /// Customers to create in the throughput phase.
        #[arg(long, default_value_t = 20_000)]
        customers: u64,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds of the paced (half-rate) latency phase.
        #[arg(long, default_value_t = 5)]
        paced_secs: u64,
        /// Single-customer reads to time.
        #[arg(long, default_value_t = 5_000)]
        reads: u64,
        /// Run against PostgreSQL (a scratch database is created and dropped on this server).
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The access record: `cip access import` events/s beside the engine's plain bulk insert
    /// of the same rows (no indexes, same durability), HTTP ingestion events/s, p50/p99 of an
    /// account's distinct IPs over 90 days and of the accounts of one IP over a year, and
    /// bytes on disk per event.
    Access {
        /// Events in the imported file (spread over a year).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Accounts the events belong to (default: one per 100 events).
        #[arg(long)]
        accounts: Option<u64>,
        /// Events sent through POST /v1/access-events (0 skips the HTTP figure).
        #[arg(long, default_value_t = 500_000)]
        http_events: u64,
        /// Run against PostgreSQL (a scratch database is created and dropped on this server).
        #[arg(long)]
        postgres: Option<String>,
        /// Events published to a NATS JetStream stream (one per message) and consumed by
        /// the server's consumer, publish to durable ack (0 skips the stream figure).
        #[arg(long, default_value_t = 0)]
        stream_events: u64,
        /// The NATS server of the stream figure (a scratch stream is created and deleted).
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Messages the consumer fetches, stores and acknowledges together.
        #[arg(long, default_value_t = 1000)]
        stream_batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// MRZ parsing and validation on one core (TD3, TD1 and TD2 documents, every check digit
    /// verified). Baseline: one pass over the same lines checking only the character set.
    Mrz {
        /// Documents to parse (each is 2 or 3 lines).
        #[arg(long, default_value_t = 400_000)]
        documents: usize,
        #[arg(long)]
        json: bool,
    },
    /// The verification policy: determination + evaluation of one customer with four
    /// beneficial owners (p50/p99; baseline: opening the record), and re-evaluating every
    /// stored customer under a new policy (baseline: the plain scan of the same rows).
    Policy {
        /// Customers to store and re-evaluate.
        #[arg(long, default_value_t = 50_000)]
        customers: u64,
        /// Keep the installation in this folder (created if missing) instead of a temporary
        /// one; a later run with the same --customers reuses the stored customers, so a large
        /// store is built once and measured many times.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Continuous screening: stored (sealed) customers re-screened against a 1 % change of the
    /// OFAC SDN list. Baseline: the full re-screen of the same customers in the same run.
    Rescreen {
        /// Customers to store and re-screen.
        #[arg(long, default_value_t = 20_000)]
        customers: u64,
        /// Folder with sdn.csv, alt.csv, add.csv, sdn_comments.csv
        /// [default: $CIP_SHARED_DATA/watchlists/ofac_sdn_2021].
        #[arg(long)]
        list_dir: Option<std::path::PathBuf>,
        /// Names of the stored customers: `realistic` (name frequencies of 17 locales) or
        /// `dense` (4,096 names from 32 list-like tokens: the worst case for the keyed index).
        #[arg(long, value_enum, default_value = "realistic")]
        population: crate::bench_rescreen::Population,
        /// Keep the installation in this folder (created if missing); a later run with the
        /// same --customers and --population reuses the stored customers.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Stores one customer through the API's own parse and sealing path, without HTTP, for
/// benchmarks that need many stored customers quickly. Returns its id.
pub async fn store_customer(
    state: &cip_server::state::AppState,
    body: &serde_json::Value,
) -> Result<uuid::Uuid> {
    store_customer_keyed(state, body, true).await
}

/// [`store_customer`], with or without the record's screening keys (the keyed re-screen's
/// index, docs/design/0008), to measure what the index adds to a write.
pub async fn store_customer_keyed(
    state: &cip_server::state::AppState,
    body: &serde_json::Value,
    screen_keys: bool,
) -> Result<uuid::Uuid> {
    let input: cip_server::records::dto::CustomerIn =
        cip_server::extract::parse_json(body.to_string().as_bytes())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let id = uuid::Uuid::now_v7();
    let now = cip_server::time::now_micros();
    let (mut row, terms, fields, _) =
        cip_server::api::customers::prepare_customer(state, &input, id, 1, now)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    if !screen_keys {
        row.screen_keys = None;
    }
    state
        .store
        .insert_customer(cip_store::CustomerWrite {
            row,
            terms,
            audit: cip_store::AuditDraft {
                at: now,
                actor: "bench".into(),
                role: "admin".into(),
                action: "customer.create".into(),
                record_type: "customer".into(),
                record_id: Some(id.to_string()),
                fields,
                request_id: None,
                purpose: None,
            },
            idempotency: None,
            extras: Default::default(),
        })
        .await?;
    Ok(id)
}

pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

pub async fn run(cmd: BenchCommand) -> Result<u8> {
    // Benchmarks print figures, not logs; `RUST_LOG` (e.g. `cip_store::wal=debug`) turns the
    // server's events on, on stderr, to see what a run did.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    match cmd {
        BenchCommand::Onboard {
            customers,
            concurrency,
            paced_secs,
            reads,
            postgres,
            json,
        } => onboard(customers, concurrency, paced_secs, reads, postgres, json).await,
        BenchCommand::Mrz { documents, json } => mrz_bench(documents, json),
        BenchCommand::Access {
            events,
            accounts,
            http_events,
            postgres,
            stream_events,
            nats,
            stream_batch,
            json,
        } => {
            crate::bench_access::run(crate::bench_access::Options {
                events,
                accounts: accounts.unwrap_or((events / 100).max(1)),
                http_events,
                postgres,
                stream: (stream_events > 0).then_some(crate::bench_access::StreamOptions {
                    events: stream_events,
                    nats,
                    batch: stream_batch,
                }),
                json,
            })
            .await
        }
        BenchCommand::Rescreen {
            customers,
            list_dir,
            population,
            data_dir,
            json,
        } => crate::bench_rescreen::run(customers, list_dir, population, data_dir, json).await,
        BenchCommand::Policy {
            customers,
            data_dir,
            json,
        } => crate::bench_policy::run(customers, data_dir, json).await,
    }
}

/// Synthetic, valid zones: TD3, TD1 and TD2 in turn, with varied numbers and dates.
fn synth_mrz(i: usize) -> String {
    use cip_core::mrz::check_digit;
    let cd = |s: &str| char::from(check_digit(s.as_bytes()));
    let num = format!("X{:08}", i % 100_000_000);
    let birth = format!("{:02}{:02}{:02}", 50 + i % 50, 1 + i % 12, 1 + i % 28);
    let expiry = format!(
        "{:02}{:02}{:02}",
        28 + i % 10,
        1 + (i / 7) % 12,
        1 + (i / 3) % 28
    );
    let states = ["UTO", "FRA", "USA", "JPN", "GBR", "NLD"];
    let (st, nat) = (states[i % states.len()], states[(i / 3) % states.len()]);
    match i % 3 {
        0 => {
            let personal = format!("{:<14}", format!("P{i}")).replace(' ', "<");
            let l1 =
                format!("{:<44}", format!("P<{st}SAMPLE<<TEST<PERSON{}", i % 97)).replace(' ', "<");
            let core = format!(
                "{num}{}{nat}{birth}{}F{expiry}{}{personal}{}",
                cd(&num),
                cd(&birth),
                cd(&expiry),
                cd(&personal)
            );
            let composite = format!("{}{}{}", &core[0..10], &core[13..20], &core[21..43]);
            format!("{l1}\n{core}{}", cd(&composite))
        }
        1 => {
            let l1 = format!("I<{st}{num}{}{}", cd(&num), "<".repeat(15));
            let l2a = format!(
                "{birth}{}M{expiry}{}{nat}{}",
                cd(&birth),
                cd(&expiry),
                "<".repeat(11)
            );
            let composite = format!(
                "{}{}{}{}",
                &l1[5..30],
                &l2a[0..7],
                &l2a[8..15],
                &l2a[18..29]
            );
            let l3 = format!("{:<30}", format!("SAMPLE<<TEST{}", i % 89)).replace(' ', "<");
            format!("{l1}\n{l2a}{}\n{l3}", cd(&composite))
        }
        _ => {
            let l1 = format!("{:<36}", format!("I<{st}SAMPLE<<TEST<PERSON")).replace(' ', "<");
            let core = format!(
                "{num}{}{nat}{birth}{}<{expiry}{}{}",
                cd(&num),
                cd(&birth),
                cd(&expiry),
                "<".repeat(7)
            );
            let composite = format!("{}{}{}", &core[0..10], &core[13..20], &core[21..35]);
            format!("{l1}\n{core}{}", cd(&composite))
        }
    }
}

fn mrz_bench(documents: usize, json_out: bool) -> Result<u8> {
    let docs: Vec<String> = (0..documents).map(synth_mrz).collect();
    let lines: usize = docs.iter().map(|d| d.lines().count()).sum();
    // Every synthetic document must be valid, or the figure would time error paths.
    for d in docs.iter().take(1000) {
        cip_core::mrz::parse(d).map_err(|e| anyhow::anyhow!("synthetic MRZ rejected: {e}\n{d}"))?;
    }
    let year = cip_core::mrz::current_year();
    let bar = progress_bar(3, "mrz bench");
    // Baseline: one pass checking the character set of the same lines.
    let t = Instant::now();
    let mut ok_chars = 0usize;
    for d in &docs {
        ok_chars += usize::from(
            std::hint::black_box(d)
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'<' || c == b'\n'),
        );
    }
    let baseline = lines as f64 / t.elapsed().as_secs_f64();
    bar.inc(1);
    let mut best = 0f64;
    let mut valid = 0usize;
    for _ in 0..2 {
        let t = Instant::now();
        valid = 0;
        for d in &docs {
            valid += usize::from(cip_core::mrz::parse_at(std::hint::black_box(d), year).is_ok());
        }
        best = best.max(lines as f64 / t.elapsed().as_secs_f64());
        bar.inc(1);
    }
    bar.finish_and_clear();
    anyhow::ensure!(
        valid == documents && ok_chars == documents,
        "not every synthetic document parsed"
    );
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "documents": documents, "lines": lines,
                "parse_validate_lines_per_sec": best.round(),
                "baseline_charset_scan_lines_per_sec": baseline.round(),
            }))?
        );
    } else {
        println!(
            "cip bench mrz — {documents} documents ({lines} lines: TD3, TD1, TD2), one thread"
        );
        println!(
            "  {:<52} {:>14.0} lines/s",
            "parse + validate every check digit, dates, codes", best
        );
        println!(
            "  {:<52} {:>14.0} lines/s",
            "baseline: character-set scan of the same lines", baseline
        );
    }
    Ok(0)
}

/// The body of the i-th benchmark customer: an entity with two beneficial owners, each with
/// names, birth date, citizenship, national id, address, email and phone; plus a card.
pub fn onboard_body(i: u64) -> serde_json::Value {
    let person = |n: u64, country: &str, phone: &str| {
        json!({
            "names": [{"kind": "legal", "full": format!("Owner {n} Example")}, {"kind": "other", "full": format!("O. {n} Example")}],
            "birth_date": "1980-05-17",
            "citizenships": [country],
            "national_ids": [{"type": "passport", "number": format!("P{n:09}"), "issuing_country": country}],
            "addresses": [{"kind": "residential", "lines": [format!("{n} Main Street"), "Apt 4"], "city": "Springfield", "postal_code": "12345", "country": country}],
            "emails": [format!("owner{n}@example.com")],
            "phones": [phone]
        })
    };
    json!({
        "kind": "entity",
        "external_id": format!("bench-{i}"),
        "identity": {
            "names": [{"kind": "legal", "full": format!("Bench Hosting {i} GmbH")}],
            "national_ids": [{"type": "registration", "number": format!("HRB{i:08}"), "issuing_country": "DE"}],
            "addresses": [{"kind": "registered", "lines": ["1 Commerce Plaza"], "city": "Berlin", "postal_code": "10115", "subdivision": "DE-BE", "country": "DE"}],
            "emails": [format!("compliance{i}@example.de")],
            "phones": ["+4930901820"]
        },
        "entity": {"place_of_organization": "DE", "entity_type": "GmbH"},
        "payment_methods": [{"type": "card", "card": {"number": "4111111111111111", "issuing_country": "DE"}, "external_customer_id": format!("psp_{i}"), "transaction_ids": [format!("txn_{i}")]}],
        "beneficial_owners": [
            {"identity": person(i * 2, "DE", "+4930901821"), "ownership_percent": 60, "control_role": "CEO"},
            {"identity": person(i * 2 + 1, "US", "+12025550143"), "ownership_percent": 30}
        ]
    })
}

struct Server {
    base: String,
    token: String,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

async fn start_server(postgres: Option<&str>) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut pg = None;
    let database_url = match postgres {
        Some(admin) => {
            let (url, name) = cip_store::postgres::create_scratch_database(admin).await?;
            pg = Some((admin.to_string(), name));
            Some(url)
        }
        None => None,
    };
    let flags = cip_server::config::ConfigLayer {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_path_buf()),
        database_url,
        max_body_bytes: Some(1 << 20),
        ..Default::default()
    };
    let config = cip_server::config::load(None, Default::default(), flags)?;
    let inst = cip_server::install::open(&config).await?;
    let (_, token) = cip_server::auth::create_api_key(
        inst.store.as_ref(),
        cip_core::model::Role::Admin,
        None,
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = cip_server::app::state_from(&inst, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let handle = tokio::spawn(async move {
        let _ = cip_server::app::serve(listener, state, &config, c2).await;
    });
    Ok(Server {
        base,
        token: token.expose_secret().to_string(),
        cancel,
        handle,
        _dir: dir,
        pg,
    })
}

impl Server {
    async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        let _ = self.handle.await;
        if let Some((admin, name)) = &self.pg {
            cip_store::postgres::drop_database(admin, name).await?;
        }
        Ok(())
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn onboard(
    customers: u64,
    concurrency: usize,
    paced_secs: u64,
    reads: u64,
    postgres: Option<String>,
    json_out: bool,
) -> Result<u8> {
    let backend = if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..customers + 200_000.min(customers * 2))
            .map(|i| serde_json::to_vec(&onboard_body(i)).unwrap_or_default())
            .collect(),
    );

    // Baseline first, on the same engine, with the same rows (as plain JSON).
    let baseline =
        plain_insert_baseline(&bodies[..customers as usize], postgres.as_deref()).await?;

    let server = start_server(postgres.as_deref()).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(
        customers as usize,
    )));
    let bar = progress_bar(customers, "onboarding");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, bodies, ids, bar) = (
            client.clone(),
            next.clone(),
            bodies.clone(),
            ids.clone(),
            bar.clone(),
        );
        let (base, token) = (server.base.clone(), server.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= customers {
                    break;
                }
                let t = Instant::now();
                let resp = client
                    .post(format!("{base}/v1/customers"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(bodies[i as usize].clone())
                    .send()
                    .await?;
                let status = resp.status();
                let body: serde_json::Value = resp.json().await?;
                anyhow::ensure!(
                    status.as_u16() == 201,
                    "create failed with {status}: {body}"
                );
                hist.record(t.elapsed().as_micros() as u64)?;
                if let Some(id) = body.get("id").and_then(|v| v.as_str()) {
                    ids.lock().await.push(id.to_string());
                }
                bar.inc(1);
            }
            Ok::<_, anyhow::Error>(hist)
        }));
    }
    let mut burst = Histogram::<u64>::new(3)?;
    for t in tasks {
        burst.add(t.await??)?;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let rate = customers as f64 / elapsed.as_secs_f64();

    // Paced phase: half the measured rate, fixed schedule, latency of each request.
    let target = (rate / 2.0).max(1.0);
    let paced_total = (target * paced_secs as f64) as u64;
    let interval = Duration::from_secs_f64(1.0 / target);
    let paced_hist = Arc::new(tokio::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let start = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for k in 0..paced_total {
        tokio::time::sleep_until(start + interval.mul_f64(k as f64)).await;
        let (client, bodies, hist) = (client.clone(), bodies.clone(), paced_hist.clone());
        let (base, token) = (server.base.clone(), server.token.clone());
        let idx = (customers + k) as usize % bodies.len();
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = client
                .post(format!("{base}/v1/customers"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(bodies[idx].clone())
                .send()
                .await?;
            anyhow::ensure!(
                resp.status().as_u16() == 201,
                "paced create failed: {}",
                resp.status()
            );
            hist.lock().await.record(t.elapsed().as_micros() as u64)?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let paced = paced_hist.lock().await.clone();

    // Reads: one client, one customer at a time (each read is decrypted and audited).
    let ids = ids.lock().await.clone();
    let mut read_hist = Histogram::<u64>::new(3)?;
    let bar = progress_bar(reads, "reading");
    for k in 0..reads {
        let id = &ids[(k as usize * 7919) % ids.len().max(1)];
        let t = Instant::now();
        let resp = client
            .get(format!("{}/v1/customers/{id}", server.base))
            .bearer_auth(&server.token)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "read failed: {}", resp.status());
        let _ = resp.bytes().await?;
        read_hist.record(t.elapsed().as_micros() as u64)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    server.stop().await?;

    let result = json!({
        "backend": backend,
        "customers": customers,
        "concurrency": concurrency,
        "onboard_customers_per_sec": rate.round(),
        "onboard_p50_ms": pct(&burst, 0.50), "onboard_p99_ms": pct(&burst, 0.99),
        "paced_rate_per_sec": target.round(), "paced_requests": paced_total,
        "paced_p50_ms": pct(&paced, 0.50), "paced_p99_ms": pct(&paced, 0.99),
        "read_p50_ms": pct(&read_hist, 0.50), "read_p99_ms": pct(&read_hist, 0.99),
        "baseline_plain_insert_row_commit_per_sec": baseline.per_row_commit.round(),
        "baseline_plain_insert_batched_per_sec": baseline.batched.round(),
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "cip bench onboard — {backend}, {customers} entity customers with 2 beneficial owners each, {concurrency} clients"
        );
        println!("  {:<58} {:>12}", "figure", "value");
        println!(
            "  {:<58} {:>10.0}/s",
            "onboard via HTTP (encryption + blind indexes + audit)", rate
        );
        println!(
            "  {:<58} {:>9.2} ms",
            "  latency p99 at full load",
            pct(&burst, 0.99)
        );
        println!(
            "  {:<58} {:>9.2} ms",
            format!(
                "  latency p99 at half rate ({:.0}/s, {} requests)",
                target, paced_total
            ),
            pct(&paced, 0.99)
        );
        println!(
            "  {:<58} {:>9.2} ms",
            "read one customer p99 (decrypt + audited)",
            pct(&read_hist, 0.99)
        );
        println!(
            "  {:<58} {:>10.0}/s",
            "baseline: plain insert of the same rows, commit per row", baseline.per_row_commit
        );
        println!(
            "  {:<58} {:>10.0}/s",
            "baseline: plain insert of the same rows, 100 per commit", baseline.batched
        );
        println!(
            "  cost of security vs the batched plain insert: {:.1}x",
            baseline.batched / rate
        );
    }
    Ok(0)
}

struct Baseline {
    per_row_commit: f64,
    batched: f64,
}

/// The same rows as plain JSON into a table with no index, no encryption and no audit, on
/// the same engine with the same durability (SQLite WAL + synchronous=FULL / PostgreSQL
/// defaults): once with a commit per row, once 100 rows per commit (the engine's limit).
async fn plain_insert_baseline(bodies: &[Vec<u8>], postgres: Option<&str>) -> Result<Baseline> {
    let n = bodies.len().min(20_000);
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    match postgres {
        None => {
            // Same driver as the store (rusqlite, prepared statements), same durability.
            let dir = tempfile::tempdir()?;
            let mut conn = rusqlite::Connection::open(dir.path().join("baseline.sqlite"))?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 CREATE TABLE plain (id BLOB PRIMARY KEY, document BLOB NOT NULL);",
            )?;
            let insert = "INSERT INTO plain (id, document) VALUES ($1, $2)";
            let t = Instant::now();
            let per_row = n.min(5_000);
            for i in 0..per_row {
                conn.prepare_cached(insert)?
                    .execute(rusqlite::params![ids[i], bodies[i]])?;
            }
            let per_row_commit = per_row as f64 / t.elapsed().as_secs_f64();
            conn.execute_batch("DELETE FROM plain")?;
            let t = Instant::now();
            for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
                let tx = conn.transaction()?;
                for &i in chunk {
                    tx.prepare_cached(insert)?
                        .execute(rusqlite::params![ids[i], bodies[i]])?;
                }
                tx.commit()?;
            }
            Ok(Baseline {
                per_row_commit,
                batched: n as f64 / t.elapsed().as_secs_f64(),
            })
        }
        Some(admin) => {
            let (url, name) = cip_store::postgres::create_scratch_database(admin).await?;
            let result = async {
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .context("baseline connect")?;
                sqlx::query("CREATE TABLE plain (id UUID PRIMARY KEY, document BYTEA NOT NULL)")
                    .execute(&mut conn)
                    .await?;
                let t = Instant::now();
                let per_row = n.min(5_000);
                for i in 0..per_row {
                    sqlx::query("INSERT INTO plain (id, document) VALUES ($1, $2)")
                        .bind(ids[i])
                        .bind(bodies[i].clone())
                        .execute(&mut conn)
                        .await?;
                }
                let per_row_commit = per_row as f64 / t.elapsed().as_secs_f64();
                sqlx::query("DELETE FROM plain").execute(&mut conn).await?;
                let t = Instant::now();
                for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
                    let mut tx = conn.begin().await?;
                    for &i in chunk {
                        sqlx::query("INSERT INTO plain (id, document) VALUES ($1, $2)")
                            .bind(ids[i])
                            .bind(bodies[i].clone())
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                }
                Ok::<_, anyhow::Error>(Baseline {
                    per_row_commit,
                    batched: n as f64 / t.elapsed().as_secs_f64(),
                })
            }
            .await;
            cip_store::postgres::drop_database(admin, &name).await?;
            result
        }
    }
}
