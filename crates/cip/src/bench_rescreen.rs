//! `cip bench rescreen`: the continuous-screening job on a real installation (SQLite in a temp
//! dir): stored, sealed customers re-screened against the real OFAC SDN list. Figure: customers
//! per second for a 1 % list change (a subset index of 1 % of the entries), through the keyed
//! index of screening keys (only the customers sharing a key with a changed entry are read).
//! Baseline, in the same run on the same customers: the full re-screen against every entry
//! (every customer read). Also: what the keyed index adds to storing a customer (two fresh
//! installations storing the same sample with and without keys; the keys' derivation).
//!
//! Two populations (`--population`): `realistic` draws names from the frequencies of 17
//! locales (`bench_names.tsv`, from Faker's census-derived and Zipf-weighted lists; see
//! `scripts/bench-names.py`), the way a provider's customers share names; `dense` builds every
//! name from 32 tokens chosen to look like listed names (4,096 distinct names, each token on
//! 6–12 % of customers), the worst case for a keyed re-screen. Both carry a listed person's
//! name on 1 customer in 1,000.

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

/// An installation (SQLite, sealed records, audit on) in `dir`, or in a fresh temp dir.
async fn installation(
    dir: Option<&std::path::Path>,
) -> Result<(
    tempfile::TempDir,
    cip_server::install::Installation,
    cip_server::state::AppState,
)> {
    let temp = tempfile::tempdir()?;
    let path = match dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating the bench folder {}", d.display()))?;
            d.to_path_buf()
        }
        None => temp.path().to_path_buf(),
    };
    let flags = cip_server::config::ConfigLayer {
        data_dir: Some(path),
        ..Default::default()
    };
    let config = cip_server::config::load(None, Default::default(), flags)?;
    let inst = cip_server::install::open(&config).await?;
    let state = cip_server::app::state_from(&inst, &config);
    Ok((temp, inst, state))
}

/// Which names the stored customers carry (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Population {
    Realistic,
    Dense,
}

impl Population {
    fn label(self) -> &'static str {
        match self {
            Population::Realistic => "realistic",
            Population::Dense => "dense",
        }
    }
}

/// One locale of the realistic population: its share of customers, their citizenship, how
/// its names are written, and its first and last names as cumulative weights.
struct Locale {
    share: u32,
    country: String,
    order: String,
    first: Vec<(f64, String)>,
    last: Vec<(f64, String)>,
}

/// The realistic population's name frequencies (`bench_names.tsv`).
struct Names {
    locales: Vec<Locale>,
    total_share: u32,
}

impl Names {
    fn load() -> Result<Names> {
        let mut locales: Vec<(String, Locale)> = Vec::new();
        for (n, line) in include_str!("bench_names.tsv").lines().enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["L", loc, share, country, order] => locales.push((
                    loc.to_string(),
                    Locale {
                        share: share.parse()?,
                        country: country.to_string(),
                        order: order.to_string(),
                        first: Vec::new(),
                        last: Vec::new(),
                    },
                )),
                ["N", loc, kind, name, weight] => {
                    let l = &mut locales
                        .iter_mut()
                        .find(|(l, _)| l == loc)
                        .with_context(|| format!("bench_names.tsv:{}: unknown locale", n + 1))?
                        .1;
                    let list = if *kind == "first" {
                        &mut l.first
                    } else {
                        &mut l.last
                    };
                    let w: f64 = weight.parse()?;
                    let acc = list.last().map_or(0.0, |(a, _)| *a) + w;
                    list.push((acc, name.to_string()));
                }
                _ if line.starts_with('#') => {}
                _ => anyhow::bail!("bench_names.tsv:{}: unrecognised line", n + 1),
            }
        }
        let locales: Vec<Locale> = locales.into_iter().map(|(_, l)| l).collect();
        anyhow::ensure!(
            locales
                .iter()
                .all(|l| !l.first.is_empty() && !l.last.is_empty()),
            "bench_names.tsv: a locale without names"
        );
        let total_share = locales.iter().map(|l| l.share).sum();
        Ok(Names {
            locales,
            total_share,
        })
    }

    /// The name and citizenship of customer `i`: a deterministic draw (a hash of `i`), so a
    /// run that reuses a --data-dir describes the same customers.
    fn draw(&self, i: usize) -> (String, String) {
        let mut rng = SplitMix(i as u64 ^ 0x9e37_79b9_7f4a_7c15);
        let mut pick = (rng.next() % u64::from(self.total_share.max(1))) as u32;
        let locale = self
            .locales
            .iter()
            .find(|l| {
                if pick < l.share {
                    true
                } else {
                    pick -= l.share;
                    false
                }
            })
            .unwrap_or(&self.locales[0]);
        let choose = |list: &[(f64, String)], rng: &mut SplitMix| -> String {
            let total = list.last().map_or(1.0, |(a, _)| *a);
            let x = rng.unit() * total;
            let at = list.partition_point(|(a, _)| *a < x).min(list.len() - 1);
            list[at].1.clone()
        };
        let first = choose(&locale.first, &mut rng);
        let last = choose(&locale.last, &mut rng);
        let name = match locale.order.as_str() {
            // Family name first, written together (中文, 日本語, 한국어).
            "eastern" => format!("{last}{first}"),
            // Two family names.
            "spanish" => format!("{first} {last} {}", choose(&locale.last, &mut rng)),
            // One in four with a middle name.
            _ if rng.next().is_multiple_of(4) => {
                format!("{first} {} {last}", choose(&locale.first, &mut rng))
            }
            _ => format!("{first} {last}"),
        };
        (name, locale.country.clone())
    }
}

/// A small deterministic generator (SplitMix64): the population must be the same in every
/// run, and a bench needs no cryptographic randomness.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The individual number `i` of a population (1 in 1,000 carries a listed person's name).
fn customer(
    i: usize,
    listed: &[String],
    population: Population,
    names: &Names,
) -> serde_json::Value {
    let hit = i % 1000 == 7 && !listed.is_empty();
    let (name, citizenship) = if hit {
        (listed[(i / 1000) % listed.len()].clone(), "DE".to_string())
    } else {
        match population {
            Population::Dense => (
                format!(
                    "{} {} {}",
                    FIRST[i % 16],
                    LAST[(i / 16) % 16],
                    LAST[(i / 256) % 16]
                ),
                ["DE", "FR", "JP", "BR", "NG"][i % 5].to_string(),
            ),
            Population::Realistic => names.draw(i),
        }
    };
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
    body: &(dyn Fn(usize) -> serde_json::Value + Sync),
    keyed: bool,
    what: &str,
) -> Result<f64> {
    let bar = crate::bench::progress_bar(n, what);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let state = state.clone();
        let body = body(i as usize);
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

pub async fn run(
    customers: u64,
    list_dir: Option<PathBuf>,
    population: Population,
    data_dir: Option<PathBuf>,
    json_out: bool,
) -> Result<u8> {
    let names = Names::load()?;
    // A reused folder must hold the same population: its name is kept beside the database.
    if let Some(d) = &data_dir {
        let marker = d.join("bench-population");
        if let Ok(kept) = std::fs::read_to_string(&marker) {
            anyhow::ensure!(
                kept.trim() == population.label(),
                "{} holds the {} population, not {}: use an empty folder or --population {}",
                d.display(),
                kept.trim(),
                population.label(),
                kept.trim()
            );
        }
    }
    let (_dir, inst, state) = installation(data_dir.as_deref()).await?;

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
    let body = |i: usize| customer(i, &listed, population, &names);
    let (plain_dir, _plain_inst, plain_state) = installation(None).await?;
    let plain_secs = store_all(&plain_state, sample, &body, false, "without keys").await?;
    let plain_bytes = database_bytes(plain_dir.path()).await?;
    let (keyed_dir, _keyed_inst, keyed_state) = installation(None).await?;
    let keyed_secs = store_all(&keyed_state, sample, &body, true, "with keys").await?;
    let keyed_bytes = database_bytes(keyed_dir.path()).await?;
    let (derive_us, keys_per_customer) = {
        let keyring = state.keyring();
        let queries: Vec<Vec<cip_screen::Query>> = (0..sample as usize)
            .map(|i| {
                let input: cip_server::records::dto::CustomerIn = serde_json::from_value(body(i))?;
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

    // The population: stored now, or by an earlier run into the same --data-dir.
    let stored = inst.store.count_customers().await?;
    anyhow::ensure!(
        stored == 0 || stored == customers,
        "the bench folder holds {stored} customers, not {customers}: use an empty folder or --customers {stored}"
    );
    let store_secs = if stored == 0 {
        if let Some(d) = &data_dir {
            std::fs::write(d.join("bench-population"), population.label())?;
        }
        Some(store_all(&state, customers, &body, true, "storing").await?)
    } else {
        eprintln!("reusing the {stored} stored customers");
        None
    };

    // Where the keyed pass's time goes: deriving the change's keys and looking up the
    // customers that share one (the job does the same before its pass; timed apart here).
    let one_percent: Vec<String> = all_ids.iter().step_by(100).cloned().collect();
    let (lookup_keys, lookup_secs, lookup_customers, lookup_sharing) = {
        let loaded = state.screening.current();
        let started = Instant::now();
        let ids: Vec<&str> = one_percent.iter().map(String::as_str).collect();
        let subset = cip_screen::Index::build_subset(loaded.index.entries(), &ids)
            .with_frequencies_of(&loaded.index);
        let bound = subset.change_bound(state.screening_threshold);
        let keys = bound.keys().len();
        let (found, sharing) =
            cip_server::screen_keys::customers_to_read(&state, std::sync::Arc::new(bound))
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        (keys, started.elapsed().as_secs_f64(), found.len(), sharing)
    };

    // Each timed run is queued as its own list version: the job re-screens a version once and
    // drops a change whose version is already done (in a reused folder, after the last run's).
    let done: i64 = inst
        .store
        .get_meta(&cip_server::reviews::rescreened_key("ofac-sdn"))
        .await?
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
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
    let (full_secs, full_read) = timed(all_ids.clone(), done + 1).await?;
    anyhow::ensure!(
        full_read == customers,
        "the full re-screen read {full_read} of {customers} customers"
    );
    // The change-only pass takes a fraction of a second: timed three times (each a new list
    // version), the median reported, so one descheduling on a shared machine does not decide
    // the figure.
    let mut parts = Vec::new();
    for r in 0..3 {
        parts.push(timed(one_percent.clone(), done + 2 + r).await?);
    }
    parts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (part_secs, part_read) = parts[1];
    let part_runs: Vec<f64> = parts
        .iter()
        .map(|(s, _)| (s * 1000.0).round() / 1000.0)
        .collect();
    // Every open item, a page at a time (a million customers open thousands).
    let mut open = 0;
    let mut after = None;
    loop {
        let page = inst
            .store
            .list_reviews(
                &cip_store::ReviewFilter {
                    status: Some("open".into()),
                    customer_id: None,
                },
                &cip_store::PageRequest { after, limit: 500 },
            )
            .await?;
        open += page.len();
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.id),
            _ => break,
        }
    }
    let full_rate = customers as f64 / full_secs;
    let part_rate = customers as f64 / part_secs;
    let per = |secs: f64, n: u64| secs * 1e6 / n.max(1) as f64;
    let result = json!({
        "population": population.label(),
        "customers": customers,
        "list_entries": all_ids.len(),
        "changed_entries": one_percent.len(),
        "rescreen_1pct_customers_per_sec": part_rate.round(),
        "rescreen_1pct_customers_read": part_read,
        "rescreen_1pct_runs_secs": part_runs,
        "rescreen_1pct_lookup_keys": lookup_keys,
        "rescreen_1pct_lookup_secs": (lookup_secs * 1000.0).round() / 1000.0,
        "rescreen_1pct_lookup_customers": lookup_customers,
        "rescreen_1pct_lookup_sharing": lookup_sharing,
        "baseline_full_rescreen_customers_per_sec": full_rate.round(),
        "speedup": (part_rate / full_rate * 10.0).round() / 10.0,
        "open_review_items": open,
        "store_us_per_customer": store_secs.map(|s| per(s, customers).round()),
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
            "cip bench rescreen — SQLite, {customers} stored individuals (sealed, {} population), OFAC SDN 2021 ({} entries)",
            population.label(),
            all_ids.len()
        );
        println!("  {:<62} {:>12}", "figure", "value");
        println!(
            "  {:<62} {:>10.0}/s",
            format!(
                "re-screen against a 1 % change ({} entries), keyed, median of 3",
                one_percent.len()
            ),
            part_rate
        );
        println!(
            "  {:<62} {:>12}",
            "  the three runs (s)",
            part_runs
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
        println!(
            "  {:<62} {:>12}",
            "  customers sharing a key with a changed entry", lookup_sharing
        );
        println!(
            "  {:<62} {:>12}",
            "  customers read (the threshold bound keeps them)", part_read
        );
        println!(
            "  {:<62} {:>10.3} s",
            format!("  of which finding them ({lookup_keys} keys looked up, timed apart)"),
            lookup_secs
        );
        println!(
            "  {:<62} {:>10.0}/s",
            "baseline: full re-screen against every entry (all read)", full_rate
        );
        println!(
            "  speed-up of the change-only re-screen: {:.1}x (target: 10x)",
            part_rate / full_rate
        );
        println!("  open review items after both runs: {open}");
        if let Some(secs) = store_secs {
            println!(
                "  storing {customers} customers (64 concurrent, with keys): {:.0} µs/customer",
                per(secs, customers)
            );
        }
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
