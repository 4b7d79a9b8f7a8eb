//! `cip bench rescreen`: the continuous-screening job on a real installation (SQLite in a temp
//! dir): stored, sealed customers re-screened against the real OFAC SDN list. Figure: customers
//! per second for a 1 % list change (a subset index of 1 % of the entries), through the keyed
//! index of screening keys (only the customers sharing a key with a changed entry are read).
//! Baseline, in the same run on the same customers: the full re-screen against every entry
//! (every customer read). Also: what the keyed index adds to storing a customer (two fresh
//! installations storing the same sample with and without keys; the keys' derivation).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use cip_server::reviews::{ListChange, rescreen_run_once};
use cip_server::screening::{self, ImportRequest, ListFile, ListFormat};
use serde_json::json;

const FIRST: [&str; 16] = [
    "Anna", "Boris", "Chen", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ines", "Jamal",
    "Katarina", "Luis", "Mei", "Nadia", "Omar", "Priya",
];
const LAST: [&str; 16] = [
    "Abernathy",
    "Brandvold",
    "Castellanos",
    "Dobrev",
    "Eriksen",
    "Fontaine",
    "Gulbrandsen",
    "Hakimi",
    "Ivanova",
    "Jankowski",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okonkwo",
    "Petrenko",
];

fn shared_list_dir() -> PathBuf {
    let base = std::env::var("CIP_SHARED_DATA").unwrap_or_else(|_| "/work/shared/data".into());
    PathBuf::from(base).join("watchlists/ofac_sdn_2021")
}

/// A fresh installation in a temp dir (SQLite, sealed records, audit on).
async fn installation() -> Result<(
    tempfile::TempDir,
    cip_server::install::Installation,
    cip_server::state::AppState,
)> {
    let dir = tempfile::tempdir()?;
    let flags = cip_server::config::ConfigLayer {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let config = cip_server::config::load(None, Default::default(), flags)?;
    let inst = cip_server::install::open(&config).await?;
    let state = cip_server::app::state_from(&inst, &config);
    Ok((dir, inst, state))
}

/// The synthetic individual number `i` (1 in 1,000 carries a listed person's name).
fn customer(i: usize, listed: &[String]) -> serde_json::Value {
    let hit = i % 1000 == 7 && !listed.is_empty();
    let name = if hit {
        listed[(i / 1000) % listed.len()].clone()
    } else {
        format!(
            "{} {} {}",
            FIRST[i % 16],
            LAST[(i / 16) % 16],
            LAST[(i / 256) % 16]
        )
    };
    let citizenship = ["DE", "FR", "JP", "BR", "NG"][i % 5];
    json!({
        "kind": "individual",
        "identity": {
            "names": [{"full": name}],
            "birth_date": (!hit).then(|| format!("{}-{:02}-{:02}", 1950 + i % 50, 1 + i % 12, 1 + i % 28)),
            "citizenships": [citizenship],
            "emails": [format!("c{i}@example.com")]
        }
    })
}

/// Stores customers `0..n` (64 at a time, as concurrent requests would), returning the
/// seconds it took.
async fn store_all(
    state: &cip_server::state::AppState,
    n: u64,
    listed: &[String],
    keyed: bool,
    what: &str,
) -> Result<f64> {
    let bar = crate::bench::progress_bar(n, what);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let state = state.clone();
        let body = customer(i as usize, listed);
        tasks.spawn(async move {
            crate::bench::store_customer_keyed(&state, &body, keyed).await?;
            anyhow::Ok(())
        });
        if tasks.len() >= 64
            && let Some(r) = tasks.join_next().await
        {
            r??;
            bar.inc(1);
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

/// Bytes of an installation's SQLite database, its write-ahead log checkpointed first.
async fn database_bytes(dir: &std::path::Path) -> Result<u64> {
    use sqlx::Connection;
    let path = dir.join("cip.sqlite");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display())).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(std::fs::metadata(&path)?.len())
}

/// Customers stored in each installation of the write-cost comparison.
const WRITE_SAMPLE: u64 = 5_000;

pub async fn run(customers: u64, list_dir: Option<PathBuf>, json_out: bool) -> Result<u8> {
    let (_dir, inst, state) = installation().await?;

    let list_dir = list_dir.unwrap_or_else(shared_list_dir);
    let mut files = Vec::new();
    for f in ["sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv"] {
        let p = list_dir.join(f);
        files.push(ListFile {
            name: f.into(),
            part: None,
            bytes: std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
        });
    }
    let outcome = screening::import(
        inst.store.as_ref(),
        ImportRequest {
            list: cip_screen::ListId::new("ofac-sdn"),
            format: ListFormat::OfacLegacy,
            files,
            force: false,
            actor: "bench".into(),
            role: "admin".into(),
            request_id: None,
        },
        &|_| {},
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let all_ids: Vec<String> = outcome.entries.iter().map(|e| e.entry_id.clone()).collect();
    // Some customers carry a listed person's name so the job also opens review items.
    let listed: Vec<String> = outcome
        .entries
        .iter()
        .filter(|e| e.kind == cip_screen::EntryKind::Person)
        .map(|e| e.primary_name().to_string())
        .collect();
    state
        .screening
        .replace_list("ofac-sdn", outcome.meta.version, outcome.entries)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;

    // What the keyed index adds to a write: the same sample stored into two fresh
    // installations, without and with the keys; and the keys' derivation alone.
    let sample = customers.min(WRITE_SAMPLE);
    let (plain_dir, _plain_inst, plain_state) = installation().await?;
    let plain_secs = store_all(&plain_state, sample, &listed, false, "without keys").await?;
    let plain_bytes = database_bytes(plain_dir.path()).await?;
    let (keyed_dir, _keyed_inst, keyed_state) = installation().await?;
    let keyed_secs = store_all(&keyed_state, sample, &listed, true, "with keys").await?;
    let keyed_bytes = database_bytes(keyed_dir.path()).await?;
    let (derive_us, keys_per_customer) = {
        let keyring = state.keyring();
        let queries: Vec<Vec<cip_screen::Query>> = (0..sample as usize)
            .map(|i| {
                let input: cip_server::records::dto::CustomerIn =
                    serde_json::from_value(customer(i, &listed))?;
                let ctx = cip_server::records::parse::ParseContext {
                    today: jiff::civil::date(2026, 12, 1),
                    ownership_threshold_bp: 2500,
                    card_fingerprint: &|p: &str| p.to_string(),
                };
                let record = cip_server::records::parse::customer(&input, &ctx)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let doc = cip_server::records::seal::to_doc(&record);
                anyhow::Ok(
                    cip_server::records::digest::Digest::of(&doc)
                        .screening
                        .queries,
                )
            })
            .collect::<Result<_>>()?;
        let started = Instant::now();
        let keys: usize = queries
            .iter()
            .map(|q| cip_server::screen_keys::of_queries(&keyring, q).keys.len())
            .sum();
        (
            started.elapsed().as_secs_f64() * 1e6 / sample.max(1) as f64,
            keys as f64 / sample.max(1) as f64,
        )
    };
    drop((plain_state, keyed_state));

    let store_secs = store_all(&state, customers, &listed, true, "storing").await?;

    // Each timed run is queued as its own list version: the job re-screens a version once and
    // drops a change whose version is already done.
    let timed = |ids: Vec<String>, version: i64| {
        let state = state.clone();
        async move {
            state.screening.queue_change(ListChange {
                list_id: "ofac-sdn".into(),
                version,
                added_or_changed: ids,
                removed: Vec::new(),
            });
            let started = Instant::now();
            let ran = rescreen_run_once(&state)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let secs = started.elapsed().as_secs_f64();
            let cip_server::jobs::Ran::Did(read) = ran else {
                anyhow::bail!("re-screen did {ran:?}");
            };
            anyhow::Ok((secs, read))
        }
    };
    let (full_secs, full_read) = timed(all_ids.clone(), 1).await?;
    anyhow::ensure!(
        full_read == customers,
        "the full re-screen read {full_read} of {customers} customers"
    );
    let one_percent: Vec<String> = all_ids.iter().step_by(100).cloned().collect();
    let (part_secs, part_read) = timed(one_percent.clone(), 2).await?;
    let open = inst
        .store
        .list_reviews(
            &cip_store::ReviewFilter {
                status: Some("open".into()),
                customer_id: None,
            },
            &cip_store::PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await?
        .len();
    let full_rate = customers as f64 / full_secs;
    let part_rate = customers as f64 / part_secs;
    let per = |secs: f64, n: u64| secs * 1e6 / n.max(1) as f64;
    let result = json!({
        "customers": customers,
        "list_entries": all_ids.len(),
        "changed_entries": one_percent.len(),
        "rescreen_1pct_customers_per_sec": part_rate.round(),
        "rescreen_1pct_customers_read": part_read,
        "baseline_full_rescreen_customers_per_sec": full_rate.round(),
        "speedup": (part_rate / full_rate * 10.0).round() / 10.0,
        "open_review_items": open,
        "store_us_per_customer": per(store_secs, customers).round(),
        "write_sample": sample,
        "sample_store_us_per_customer_with_keys": per(keyed_secs, sample).round(),
        "sample_store_us_per_customer_without_keys": per(plain_secs, sample).round(),
        "sample_db_bytes_per_customer_with_keys": (keyed_bytes / sample.max(1)),
        "sample_db_bytes_per_customer_without_keys": (plain_bytes / sample.max(1)),
        "screen_keys_per_customer": (keys_per_customer * 10.0).round() / 10.0,
        "screen_keys_derivation_us_per_customer": (derive_us * 10.0).round() / 10.0,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "cip bench rescreen — SQLite, {customers} stored individuals (sealed), OFAC SDN 2021 ({} entries)",
            all_ids.len()
        );
        println!("  {:<62} {:>12}", "figure", "value");
        println!(
            "  {:<62} {:>10.0}/s",
            format!(
                "re-screen against a 1 % change ({} entries), keyed index",
                one_percent.len()
            ),
            part_rate
        );
        println!(
            "  {:<62} {:>12}",
            "  customers read (sharing a key with a changed entry)", part_read
        );
        println!(
            "  {:<62} {:>10.0}/s",
            "baseline: full re-screen against every entry (all read)", full_rate
        );
        println!(
            "  speed-up of the change-only re-screen: {:.1}x",
            part_rate / full_rate
        );
        println!("  open review items after both runs: {open}");
        println!(
            "  storing {customers} customers (64 concurrent, with keys): {:.0} µs/customer",
            per(store_secs, customers)
        );
        println!(
            "  write cost of the index, {sample} customers into fresh installations: {:.0} µs/customer with keys, {:.0} without; {} vs {} bytes/customer on disk",
            per(keyed_secs, sample),
            per(plain_secs, sample),
            keyed_bytes / sample.max(1),
            plain_bytes / sample.max(1)
        );
        println!(
            "  screening keys per customer: {keys_per_customer:.1}; deriving them (one core): {derive_us:.1} µs/customer"
        );
    }
    Ok(0)
}
