//! `cip access …`: importing access-event files into the access record, and its retention.
//!
//! An import reads each file on its own thread (parsing overlaps storing), stores batches
//! durably, and records after each batch the file's identity (BLAKE3 of its bytes) and the
//! position reached. Run again after an interruption, it resumes there; a batch that was
//! stored but whose position was not yet recorded is stored again as duplicates, which the
//! access record keeps once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use cip_access::ImportMark;
use cip_access::parse::{EventReader, ParseConfig, ParsedEvent, Rejected, Start};
use cip_server::install::Installation;
use serde_json::json;

/// Exit code when every file was read but some lines were refused (the good ones are stored).
pub const EXIT_REJECTED_LINES: u8 = 6;
/// Rejected lines listed per file in `--json` output (all are counted).
const MAX_LISTED: usize = 1000;

pub struct ImportOptions {
    pub files: Vec<PathBuf>,
    pub json: bool,
    pub batch: usize,
    pub future_skew_secs: u64,
}

struct Batch {
    good: Vec<(u64, ParsedEvent)>,
    bad: Vec<Rejected>,
    end: Start,
}

/// BLAKE3 of the file's bytes: the same file under another name resumes; a changed file
/// starts over (its events already stored become duplicates).
pub fn file_identity(path: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(*h.finalize().as_bytes())
}

#[derive(Default)]
pub struct FileReport {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    listed: Vec<Rejected>,
    resumed_at_line: u64,
    lines: u64,
    /// Time the storing side waited for the parser, and time it spent storing (resolve,
    /// write, `last_accessed_at`).
    pub waited: std::time::Duration,
    pub storing: std::time::Duration,
}

pub async fn import(inst: &Installation, opts: ImportOptions) -> Result<u8> {
    let mut reports = Vec::new();
    let mut any_rejected = false;
    for path in &opts.files {
        let report = import_file(inst, path, &opts).await?;
        any_rejected |= report.rejected > 0;
        if !opts.json {
            println!(
                "{}: {} stored, {} already stored, {} rejected{}",
                path.display(),
                report.accepted,
                report.duplicates,
                report.rejected,
                if report.resumed_at_line > 0 {
                    format!(" (resumed after line {})", report.resumed_at_line)
                } else {
                    String::new()
                }
            );
        }
        reports.push((path.clone(), report));
    }
    if opts.json {
        let files: Vec<_> = reports
            .iter()
            .map(|(p, r)| {
                json!({
                    "file": p.display().to_string(),
                    "accepted": r.accepted,
                    "duplicates": r.duplicates,
                    "rejected": r.rejected,
                    "lines": r.lines,
                    "resumed_at_line": r.resumed_at_line,
                    "rejected_lines": r.listed.iter().map(|x| json!({"line": x.line, "reason": x.reason})).collect::<Vec<_>>(),
                    "rejected_lines_truncated": (r.listed.len() as u64) < r.rejected,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "files": files })).unwrap_or_default()
        );
    }
    Ok(if any_rejected { EXIT_REJECTED_LINES } else { 0 })
}

/// A write of queued `last_accessed_at` advances, running beside the next batches.
/// The importer writes them at most every 30 s (and at the end): each write rewrites an
/// identity-store row per account, so at 500,000 accounts one every 2 s (the server's pace)
/// took a third of a core from the import. A kill loses at most 30 s of advances, which
/// retention does not depend on (it reads the access record too; docs/design/0016).
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

type Touching = tokio::task::JoinHandle<Result<(), cip_store::StoreError>>;

/// What storing a batch answers: its outcome and the `last_accessed_at` advances to queue.
type Stored =
    Result<(cip_access::IngestOutcome, Vec<(uuid::Uuid, i64)>), cip_server::access::IngestError>;

/// A batch handed to the store, with what its report needs once it is acknowledged.
struct InFlight {
    task: tokio::task::JoinHandle<Stored>,
    bad: Vec<Rejected>,
    end: Start,
}

async fn finish_touch(t: Option<Touching>) -> Result<()> {
    if let Some(t) = t {
        t.await
            .context("advancing last_accessed_at")?
            .context("advancing last_accessed_at")?;
    }
    Ok(())
}

/// One file, no output (the benchmark's import path: the same code as `cip access import`).
pub async fn import_quiet(
    inst: &Installation,
    path: &Path,
    future_skew_secs: u64,
) -> Result<FileReport> {
    import_file(
        inst,
        path,
        &ImportOptions {
            files: vec![],
            json: true,
            batch: 200_000,
            future_skew_secs,
        },
    )
    .await
}

async fn import_file(inst: &Installation, path: &Path, opts: &ImportOptions) -> Result<FileReport> {
    let file_key = file_identity(path)?;
    let start = match inst.access.import_mark(file_key).await? {
        Some(m) => Start {
            offset: m.offset,
            line: m.line,
        },
        None => Start::default(),
    };
    let mut report = FileReport {
        resumed_at_line: start.line,
        lines: start.line,
        ..Default::default()
    };
    let mut cfg = ParseConfig::new(cip_server::time::now_micros());
    cfg.future_skew_micros = opts.future_skew_secs as i64 * 1_000_000;
    let size = std::fs::metadata(path)?.len();
    let gz = {
        use std::io::Read;
        let mut magic = [0u8; 2];
        let n = std::fs::File::open(path)?.read(&mut magic)?;
        n == 2 && magic == [0x1f, 0x8b]
    };
    let bar = crate::bench::progress_bar(if gz { 0 } else { size }, "importing");
    if !gz {
        bar.set_position(start.offset);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Batch, String>>(2);
    let batch_size = opts.batch.max(1);
    let reader_path = path.to_path_buf();
    let reader = std::thread::spawn(move || {
        let mut r = match EventReader::open_file(&reader_path, cfg, start) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.to_string()));
                return;
            }
        };
        loop {
            let mut b = Batch {
                good: Vec::with_capacity(batch_size),
                bad: Vec::new(),
                end: r.position(),
            };
            let mut eof = false;
            while b.good.len() + b.bad.len() < batch_size {
                match r.next_item() {
                    Ok(Some(item)) => match item.result {
                        Ok(ev) => b.good.push((item.line, ev)),
                        Err(rej) => b.bad.push(rej),
                    },
                    Ok(None) => {
                        eof = true;
                        break;
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.to_string()));
                        return;
                    }
                }
            }
            b.end = r.position();
            let empty = b.good.is_empty() && b.bad.is_empty();
            if !empty && tx.blocking_send(Ok(b)).is_err() {
                return;
            }
            if eof {
                return;
            }
        }
    });
    let mut resolver = cip_server::access::Resolver::default();
    // last_accessed_at: advances queued batch by batch, written at most every TOUCH_EVERY,
    // one write at a time, beside the storing.
    let last_access = Arc::new(cip_server::access::LastAccess::default());
    let mut touching: Option<Touching> = None;
    let mut touched_at = std::time::Instant::now();
    // Where the time goes (debug log): waiting for the parser vs the rest.
    let (mut waited, mut storing) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    // The batch being stored while the next one is resolved (one at a time, in order: a
    // batch is handed to the store only after the previous one is acknowledged, so the
    // import marks advance in file order).
    let mut in_flight: Option<InFlight> = None;
    let stored = async {
        loop {
            let t = std::time::Instant::now();
            let next = rx.recv().await;
            waited += t.elapsed();
            let t = std::time::Instant::now();
            let resolved = match next {
                None => None,
                Some(batch) => Some(
                    async {
                        let Batch { good, mut bad, end } =
                            batch.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                        let events = cip_server::access::resolve_events(
                            inst.store.as_ref(),
                            &mut resolver,
                            good,
                            &mut bad,
                        )
                        .await
                        .with_context(|| format!("resolving the accounts of {}", path.display()))?;
                        anyhow::Ok((events, bad, end))
                    }
                    .await,
                ),
            };
            // The previous batch settled before anything else happens, also when resolving
            // this one failed: its events are acknowledged, so its report and its
            // last_accessed_at advances must not be lost.
            if let Some(InFlight { task, mut bad, end }) = in_flight.take() {
                let (outcome, last) = task
                    .await
                    .context("the storing task stopped")?
                    .with_context(|| {
                        format!(
                            "storing events of {} (nothing after line {} is acknowledged)",
                            path.display(),
                            report.lines
                        )
                    })?;
                last_access.add(last);
                if touching.as_ref().is_none_or(|t| t.is_finished())
                    && touched_at.elapsed() >= TOUCH_EVERY
                {
                    finish_touch(touching.take()).await?;
                    let (store, queued) = (inst.store.clone(), last_access.clone());
                    touching = Some(tokio::spawn(
                        async move { queued.flush(store.as_ref()).await },
                    ));
                    touched_at = std::time::Instant::now();
                }
                tracing::info!(
                    line = end.line,
                    accepted = outcome.accepted,
                    duplicates = outcome.duplicates,
                    "access import batch stored"
                );
                report.accepted += outcome.accepted;
                report.duplicates += outcome.duplicates;
                report.rejected += bad.len() as u64;
                report.lines = end.line;
                bad.sort_by_key(|r| r.line);
                for r in bad {
                    if !opts.json {
                        bar.suspend(|| eprintln!("{}:{}: {}", path.display(), r.line, r.reason));
                    }
                    if report.listed.len() < MAX_LISTED {
                        report.listed.push(r);
                    }
                }
                if gz {
                    bar.set_message(format!("line {}", end.line));
                    bar.tick();
                } else {
                    bar.set_position(end.offset);
                }
            }
            let Some(resolved) = resolved else { break };
            let (events, bad, end) = resolved?;
            let access = inst.access.clone();
            let mark = ImportMark {
                file_key,
                offset: end.offset,
                line: end.line,
            };
            in_flight = Some(InFlight {
                task: tokio::spawn(async move {
                    cip_server::access::store_events(access.as_ref(), events, Some(mark)).await
                }),
                bad,
                end,
            });
            storing += t.elapsed();
            tracing::debug!(
                waited_ms = waited.as_millis() as u64,
                storing_ms = storing.as_millis() as u64,
                "access import timing"
            );
        }
        anyhow::Ok(())
    }
    .await;
    // Whatever ended the loop, every stored batch's last_accessed_at is written before
    // returning: its events are acknowledged, so a resume will not replay it.
    let mut touched = finish_touch(touching.take()).await;
    if touched.is_ok() {
        touched = last_access
            .flush(inst.store.as_ref())
            .await
            .context("advancing last_accessed_at");
    }
    stored?;
    touched?;
    bar.finish_and_clear();
    let _ = reader.join();
    report.waited = waited;
    report.storing = storing;
    Ok(report)
}
