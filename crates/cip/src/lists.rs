//! `cip lists import|show` and `cip screen`: screening lists and ad-hoc screening against the
//! installation's database (like `cip keys` and `cip audit`). A running server picks up a
//! version imported here within seconds (its refresh job).

use std::path::PathBuf;

use anyhow::Context;
use cip_server::screening::{self, ImportError, ImportRequest, ImportStage, ListFile, ListFormat};
use cip_store::AuditDraft;
use indicatif::{ProgressBar, ProgressStyle};

/// Exit code of a refused import or query (invalid file, refused replacement, invalid query).
pub const EXIT_REFUSED: u8 = 6;

pub struct ImportArgs {
    pub list: String,
    pub format: String,
    pub files: Vec<PathBuf>,
    pub force: bool,
    pub json: bool,
}

fn spinner() -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Reads the files (a byte bar), then parses, compares and stores (a spinner naming the
/// stage). Returns the exit code.
pub async fn import(
    inst: &cip_server::install::Installation,
    args: ImportArgs,
) -> anyhow::Result<u8> {
    let list = match screening::parse_list_id(&args.list) {
        Ok(l) => l,
        Err(m) => {
            eprintln!("error: {m}");
            return Ok(2);
        }
    };
    let Some(format) = ListFormat::parse(&args.format) else {
        eprintln!(
            "error: --format must be one of ofac_legacy, un_xml, ftm_jsonl, own_csv, own_json"
        );
        return Ok(2);
    };
    let mut total = 0u64;
    for f in &args.files {
        total += std::fs::metadata(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .len();
    }
    let bar = crate::bench::progress_bar(total, "reading");
    let mut files = Vec::with_capacity(args.files.len());
    for f in &args.files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        bar.inc(bytes.len() as u64);
        files.push(ListFile {
            name: f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.display().to_string()),
            part: None,
            bytes,
        });
    }
    bar.finish_and_clear();
    let spin = spinner();
    let progress = {
        let spin = spin.clone();
        move |stage: ImportStage| {
            spin.set_message(match stage {
                ImportStage::Parsing => "parsing",
                ImportStage::Comparing => "comparing with the active version",
                ImportStage::Storing => "storing the new version",
            })
        }
    };
    let result = screening::import(
        inst.store.as_ref(),
        ImportRequest {
            list,
            format,
            files,
            force: args.force,
            actor: "cli:lists-import".into(),
            role: "admin".into(),
            request_id: None,
        },
        &progress,
    )
    .await;
    spin.finish_and_clear();
    match result {
        Ok(o) => {
            if args.json {
                crate::print_json(&serde_json::json!({
                    "list": o.meta.list_id,
                    "version": o.meta.version,
                    "created": o.created,
                    "previous_version": o.previous_version,
                    "entry_count": o.meta.entry_count,
                    "content_hash": o.meta.content_hash,
                    "source_format": o.meta.source_format,
                    "imported_at": cip_server::time::to_rfc3339(o.meta.imported_at),
                    "diff": {"added": o.meta.added, "changed": o.meta.changed, "removed": o.meta.removed},
                }));
            } else if o.created {
                println!(
                    "{} version {} is active: {} entries ({} added, {} changed, {} removed)",
                    o.meta.list_id,
                    o.meta.version,
                    o.meta.entry_count,
                    o.meta.added,
                    o.meta.changed,
                    o.meta.removed
                );
            } else {
                println!(
                    "{} unchanged: version {} already has this content ({} entries)",
                    o.meta.list_id, o.meta.version, o.meta.entry_count
                );
            }
            Ok(0)
        }
        Err(e @ (ImportError::Store(_) | ImportError::Internal(_))) => Err(anyhow::anyhow!("{e}")),
        Err(e) => {
            if args.json {
                crate::print_json(
                    &serde_json::json!({"error": e.code(), "message": e.to_string()}),
                );
            }
            eprintln!("error [{}]: {e}", e.code());
            Ok(EXIT_REFUSED)
        }
    }
}

pub async fn show(inst: &cip_server::install::Installation, json: bool) -> anyhow::Result<u8> {
    let lists = inst.store.list_lists().await?;
    if json {
        crate::print_json(&serde_json::Value::Array(
            lists
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "list": m.list_id, "version": m.version, "entry_count": m.entry_count,
                        "content_hash": m.content_hash, "source_format": m.source_format,
                        "imported_at": cip_server::time::to_rfc3339(m.imported_at),
                        "diff": {"added": m.added, "changed": m.changed, "removed": m.removed},
                    })
                })
                .collect(),
        ));
    } else if lists.is_empty() {
        println!("no screening list is loaded (cip lists import --list ID --format F FILE…)");
    } else {
        println!(
            "{:<20} {:>7} {:>8} {:<12} {:<28} {:>7} {:>7} {:>7}",
            "LIST", "VERSION", "ENTRIES", "FORMAT", "IMPORTED", "ADDED", "CHANGED", "REMOVED"
        );
        for m in lists {
            println!(
                "{:<20} {:>7} {:>8} {:<12} {:<28} {:>7} {:>7} {:>7}",
                m.list_id,
                m.version,
                m.entry_count,
                m.source_format,
                cip_server::time::to_rfc3339(m.imported_at),
                m.added,
                m.changed,
                m.removed
            );
        }
    }
    Ok(0)
}

pub struct ScreenArgs {
    pub name: String,
    pub dob: Option<String>,
    pub countries: Vec<String>,
    pub kind: Option<String>,
    pub limit: u32,
    pub min_score: f32,
    pub json: bool,
}

/// Screens one name against the active versions in the database; audited like the API
/// (fields given and the number of candidates, never the values).
pub async fn screen(
    inst: &cip_server::install::Installation,
    args: ScreenArgs,
) -> anyhow::Result<u8> {
    let input = cip_server::api::screening::ScreenIn {
        names: vec![args.name],
        birth_date: args.dob,
        countries: args.countries,
        identifiers: Vec::new(),
        kind: args.kind,
        limit: Some(args.limit),
        min_score: Some(args.min_score),
    };
    let (query, limit, min_score, mut fields) = match cip_server::api::screening::parse_query(input)
    {
        Ok(q) => q,
        Err(cip_server::error::ApiError::Validation(problems)) => {
            for p in &problems {
                eprintln!("error: {} {}: {}", p.field, p.code, p.message);
            }
            if args.json {
                crate::print_json(
                    &serde_json::json!({"error": "CIP-VALIDATION-0001", "details": problems.iter().map(|p| serde_json::json!({"field": p.field, "code": p.code, "message": p.message})).collect::<Vec<_>>()}),
                );
            }
            return Ok(EXIT_REFUSED);
        }
        Err(e) => return Err(anyhow::anyhow!("{e:?}")),
    };
    let screening = screening::Screening::default();
    screening
        .refresh(inst.store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let loaded = screening.current();
    if loaded.versions.is_empty() {
        eprintln!(
            "error: no screening list is loaded (cip lists import --list ID --format F FILE…)"
        );
        return Ok(EXIT_REFUSED);
    }
    let candidates = loaded.index.screen(&query, limit, min_score);
    let threshold = cip_screen::DEFAULT_THRESHOLD;
    fields.push(format!("candidates={}", candidates.len()));
    fields.push(format!(
        "potential_matches={}",
        candidates.iter().filter(|c| c.score >= threshold).count()
    ));
    inst.store
        .append_audit(vec![AuditDraft {
            at: cip_server::time::now_micros(),
            actor: "cli:screen".into(),
            role: "admin".into(),
            action: "screening.query".into(),
            record_type: "screening".into(),
            record_id: None,
            fields,
            request_id: None,
            purpose: None,
        }])
        .await?;
    if args.json {
        crate::print_json(&serde_json::json!({
            "threshold": threshold,
            "lists": loaded.versions,
            "candidates": candidates.iter().map(|c| serde_json::json!({
                "list": c.list.as_str(), "entry_id": c.entry_id, "entry_name": c.entry_name,
                "kind": c.kind, "score": c.score, "potential_match": c.score >= threshold,
                "explanation": c.explanation,
            })).collect::<Vec<_>>(),
        }));
        return Ok(0);
    }
    if candidates.is_empty() {
        println!("no candidate at or above {min_score}");
        return Ok(0);
    }
    println!(
        "{:>5}  {:<5} {:<14} {:<10} {:<40} WHY",
        "SCORE", "MATCH", "LIST", "ENTRY", "NAME"
    );
    for c in &candidates {
        let why: Vec<String> = c
            .explanation
            .name
            .aligned
            .iter()
            .map(|a| format!("{}~{} ({:?})", a.query, a.entry, a.how))
            .collect();
        println!(
            "{:>5.3}  {:<5} {:<14} {:<10} {:<40} {}",
            c.score,
            if c.score >= threshold { "yes" } else { "no" },
            c.list.as_str(),
            c.entry_id,
            c.entry_name.chars().take(40).collect::<String>(),
            why.join(", ")
        );
    }
    Ok(0)
}

/// `cip lists keys [--backfill]`: the keyed index's coverage, and the backfill on demand.
pub async fn keys(
    state: &cip_server::state::AppState,
    backfill: bool,
    json: bool,
) -> anyhow::Result<u8> {
    use cip_server::screen_keys;
    let (before, customers) = screen_keys::status(state)
        .await
        .map_err(|e| anyhow::anyhow!("reading the keyed index: {e}"))?;
    let mut keyed_now = 0u64;
    if backfill && before < customers {
        let bar = crate::bench::progress_bar(customers - before, "keying customers");
        let progress = {
            let bar = bar.clone();
            move |n: u64| bar.inc(n)
        };
        keyed_now = screen_keys::backfill(state, 500, &progress)
            .await
            .map_err(|e| anyhow::anyhow!("keying customers: {e}"))?;
        bar.finish_and_clear();
    }
    let (keyed, customers) = screen_keys::status(state)
        .await
        .map_err(|e| anyhow::anyhow!("reading the keyed index: {e}"))?;
    let complete = keyed >= customers;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "generation": screen_keys::GENERATION,
                "customers": customers,
                "keyed": keyed,
                "keyed_now": keyed_now,
                "complete": complete,
            }))?
        );
    } else {
        println!(
            "screening keys (derivation {}): {keyed} of {customers} customers keyed",
            screen_keys::GENERATION
        );
        if backfill {
            println!("keyed by this run: {keyed_now}");
        }
        if complete {
            println!("list changes read only the customers that share a key with them");
        } else {
            println!(
                "list changes read every customer until all are keyed: run `cip lists keys --backfill`, or let `cip serve` do it in the background"
            );
        }
    }
    // Some records could not be opened to derive their keys (logged by id): exit 1.
    Ok(if backfill && !complete { 1 } else { 0 })
}
