//! `cip bench rescreen`: the continuous-screening job on a real installation (SQLite in a temp
//! dir): stored, sealed customers re-screened against the real OFAC SDN list. Figure: customers
//! per second for a 1 % list change (a subset index of 1 % of the entries). Baseline, in the
//! same run on the same customers: the full re-screen against every entry.

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

pub async fn run(customers: u64, list_dir: Option<PathBuf>, json_out: bool) -> Result<u8> {
    let dir = tempfile::tempdir()?;
    let flags = cip_server::config::ConfigLayer {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let config = cip_server::config::load(None, Default::default(), flags)?;
    let inst = cip_server::install::open(&config).await?;
    let state = cip_server::app::state_from(&inst, &config);

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

    let bar = crate::bench::progress_bar(customers, "storing");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..customers {
        let state = state.clone();
        let i = i as usize;
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
        let body = json!({
            "kind": "individual",
            "identity": {
                "names": [{"full": name}],
                "birth_date": (!hit).then(|| format!("{}-{:02}-{:02}", 1950 + i % 50, 1 + i % 12, 1 + i % 28)),
                "citizenships": [citizenship],
                "emails": [format!("c{i}@example.com")]
            }
        });
        tasks.spawn(async move {
            crate::bench::store_customer(&state, &body).await?;
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
            anyhow::ensure!(
                ran == cip_server::jobs::Ran::Did(customers),
                "re-screen did {ran:?}"
            );
            anyhow::Ok(secs)
        }
    };
    let full_secs = timed(all_ids.clone(), 1).await?;
    let one_percent: Vec<String> = all_ids.iter().step_by(100).cloned().collect();
    let part_secs = timed(one_percent.clone(), 2).await?;
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
    let result = json!({
        "customers": customers,
        "list_entries": all_ids.len(),
        "changed_entries": one_percent.len(),
        "rescreen_1pct_customers_per_sec": part_rate.round(),
        "baseline_full_rescreen_customers_per_sec": full_rate.round(),
        "speedup": (part_rate / full_rate * 10.0).round() / 10.0,
        "open_review_items": open,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "cip bench rescreen — SQLite, {customers} stored individuals (sealed), OFAC SDN 2021 ({} entries)",
            all_ids.len()
        );
        println!("  {:<58} {:>12}", "figure", "value");
        println!(
            "  {:<58} {:>10.0}/s",
            format!(
                "re-screen against a 1 % change ({} entries)",
                one_percent.len()
            ),
            part_rate
        );
        println!(
            "  {:<58} {:>10.0}/s",
            "baseline: full re-screen against every entry", full_rate
        );
        println!(
            "  speed-up of the change-only re-screen: {:.1}x",
            part_rate / full_rate
        );
        println!("  open review items after both runs: {open}");
    }
    Ok(0)
}
