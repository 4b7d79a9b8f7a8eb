//! `cip bench policy`: the verification policy's two figures (issue 4).
//!
//! 1. Determination + policy evaluation of one customer with four beneficial owners, in
//!    process: p50/p99 over many runs. Baseline in the same run: opening the same sealed
//!    record (decrypt + decode), which every read of a customer pays anyway.
//! 2. Re-evaluating every stored customer under a new policy (`cip policy check`'s path:
//!    scan the accounts, scan the customers, open each record once, evaluate both policies)
//!    on SQLite, in customers per second. Baseline in the same run: the plain scan of the same
//!    customer rows without opening them (the engine's read limit).

use std::time::Instant;

use anyhow::{Context, Result};
use cip_core::model::AccountType;
use cip_core::policy::{self, Methods, Policy};
use cip_server::records::seal;
use cip_store::{AccountRow, AccountWrite, AuditDraft, CustomerFilter, PageRequest};
use hdrhistogram::Histogram;
use serde_json::json;
use uuid::Uuid;

fn body(i: u64) -> serde_json::Value {
    let mut b = crate::bench::onboard_body(i);
    // Two more owners beside the two of the onboarding body (checked when the record opens).
    if let Some(owners) = b["beneficial_owners"].as_array_mut()
        && owners.len() == 2
    {
        let mut third = owners[0].clone();
        third["identity"]["citizenships"] = json!(["FR"]);
        third["identity"]["national_ids"][0]["issuing_country"] = json!("FR");
        third["identity"]["national_ids"][0]["number"] = json!(format!("F{i:09}"));
        third["ownership_percent"] = json!(5);
        third["control_role"] = json!("Director");
        let mut fourth = owners[1].clone();
        fourth["identity"]["national_ids"][0]["number"] = json!(format!("U{i:09}"));
        fourth["ownership_percent"] = json!(5);
        fourth["control_role"] = json!("Secretary");
        owners.push(third);
        owners.push(fourth);
    }
    b
}

fn audit(action: &str, id: Uuid) -> AuditDraft {
    AuditDraft {
        at: cip_server::time::now_micros(),
        actor: "bench".into(),
        role: "admin".into(),
        action: action.into(),
        record_type: "customer".into(),
        record_id: Some(id.to_string()),
        fields: vec!["/*".into()],
        request_id: None,
        purpose: None,
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub async fn run(
    customers: u64,
    data_dir: Option<std::path::PathBuf>,
    json_out: bool,
) -> Result<u8> {
    let temp = tempfile::tempdir()?;
    let dir = match data_dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("creating the bench folder {}", d.display()))?;
            d
        }
        None => temp.path().to_path_buf(),
    };
    let flags = cip_server::config::ConfigLayer {
        data_dir: Some(dir.clone()),
        ..Default::default()
    };
    let config = cip_server::config::load(None, Default::default(), flags)?;
    let inst = cip_server::install::open(&config).await?;
    let state = cip_server::app::state_from(&inst, &config);
    let keyring = inst.keyring();
    let builtin = Policy::builtin();
    let mut proposed = Policy::builtin();
    proposed.version = "bench".into();
    proposed.verify_us_persons = true;

    // 1. One customer, four owners, many times.
    let input: cip_server::records::dto::CustomerIn =
        cip_server::extract::parse_json(body(0).to_string().as_bytes())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let id = Uuid::now_v7();
    let (row, _, _, _) = cip_server::api::customers::prepare_customer(
        &state,
        &input,
        id,
        1,
        cip_server::time::now_micros(),
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let open = || -> Result<cip_server::records::dto::CustomerDoc> {
        let (value, _) =
            seal::open_document(&keyring, row.id, &row.document, &seal::Projection::all())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(serde_json::from_value(value)?)
    };
    let doc = open()?;
    anyhow::ensure!(doc.beneficial_owners.len() == 4, "four owners");
    const RUNS: usize = 20_000;
    let mut eval = Histogram::<u64>::new(3)?;
    let mut opening = Histogram::<u64>::new(3)?;
    let mut pending = 0usize;
    for _ in 0..RUNS {
        let t = Instant::now();
        let facts = cip_server::policy::facts_of(&doc);
        let s = cip_server::policy::subject(
            &facts,
            AccountType::Standard,
            "compute",
            Methods::default(),
            0,
        );
        let o = policy::evaluate(&builtin, &s);
        eval.record(t.elapsed().as_nanos() as u64)?;
        if matches!(o.verdict, policy::Verdict::Pending { .. }) {
            pending += 1;
        }
        let t = Instant::now();
        std::hint::black_box(open()?);
        opening.record(t.elapsed().as_nanos() as u64)?;
    }
    anyhow::ensure!(pending == RUNS, "a foreign-owned entity is pending");

    // 2. Many stored customers, one account each, re-evaluated under a new policy — stored
    // now, or by an earlier run into the same --data-dir.
    let stored = inst.store.count_customers().await?;
    anyhow::ensure!(
        stored == 0 || stored == customers,
        "{} holds {stored} customers, not {customers}: use an empty folder or --customers {stored}",
        dir.display()
    );
    let to_store = if stored == customers { 0 } else { customers };
    if to_store == 0 {
        eprintln!("reusing the {stored} customers stored in {}", dir.display());
    }
    let bar = crate::bench::progress_bar(to_store, "storing");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..to_store {
        let state = state.clone();
        tasks.spawn(async move {
            let id = crate::bench::store_customer(&state, &body(i)).await?;
            let now = cip_server::time::now_micros();
            let aid = Uuid::now_v7();
            state
                .store
                .insert_account(AccountWrite {
                    row: AccountRow {
                        id: aid,
                        customer_id: id,
                        external_id: None,
                        product: "compute".into(),
                        account_type: if i % 5 == 0 { "trial" } else { "standard" }.into(),
                        status: "pending_verification".into(),
                        opened_at: None,
                        closed_at: None,
                        last_accessed_at: None,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                    },
                    audit: audit("account.create", aid),
                    idempotency: None,
                    transition: None,
                    events: vec![],
                })
                .await?;
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

    let started = Instant::now();
    let mut after = None;
    let mut scanned = 0u64;
    loop {
        let rows = inst
            .store
            .list_customers(
                &CustomerFilter::default(),
                &PageRequest { after, limit: 1000 },
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        scanned += rows.len() as u64;
    }
    let scan_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(scanned == customers, "scanned {scanned}");
    let started = Instant::now();
    let mut after = None;
    let mut scanned = 0u64;
    loop {
        let rows = inst
            .store
            .scan_customer_digests(cip_store::DigestPart::Policy, after, 1000)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        scanned += rows.len() as u64;
    }
    let digest_scan_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(scanned == customers, "scanned {scanned} digests");

    let bar = crate::bench::progress_bar(customers, "re-evaluating");
    let started = Instant::now();
    let report =
        cip_server::policy::check(inst.store.as_ref(), &keyring, &builtin, &proposed, &|n| {
            bar.set_position(n)
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let check_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    anyhow::ensure!(
        report.customers == customers && report.accounts == customers,
        "evaluated {} customers, {} accounts",
        report.customers,
        report.accounts
    );

    let rate = customers as f64 / check_secs;
    let scan_rate = customers as f64 / scan_secs;
    let digest_scan_rate = customers as f64 / digest_scan_secs;
    let result = json!({
        "evaluate_one_customer_4_owners_us": {"p50": pct(&eval, 0.5), "p99": pct(&eval, 0.99), "runs": RUNS},
        "baseline_open_the_record_us": {"p50": pct(&opening, 0.5), "p99": pct(&opening, 0.99)},
        "reevaluate": {"customers": customers, "per_second": rate, "tier_changes": report.tier_changes},
        "baseline_plain_scan_per_second": scan_rate,
        "baseline_digest_scan_per_second": digest_scan_rate,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("cip bench policy — SQLite, entity customers with 4 beneficial owners");
        println!("  {:<62} {:>14}", "figure", "value");
        println!(
            "  {:<62} {:>8.1}/{:.1} µs",
            "determination + policy evaluation, one customer, p50/p99",
            pct(&eval, 0.5),
            pct(&eval, 0.99)
        );
        println!(
            "  {:<62} {:>8.1}/{:.1} µs",
            "baseline: open the same sealed record, p50/p99",
            pct(&opening, 0.5),
            pct(&opening, 0.99)
        );
        println!(
            "  {:<62} {:>12.0}/s",
            format!("re-evaluate {customers} stored customers under a new policy"),
            rate
        );
        println!(
            "  {:<62} {:>12.0}/s",
            "baseline: plain scan of the same customer rows", scan_rate
        );
        println!(
            "  {:<62} {:>12.0}/s",
            "baseline: plain scan of their digests (nothing opened)", digest_scan_rate
        );
    }
    Ok(0)
}
