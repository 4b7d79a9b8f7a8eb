//! The access record under faults, against the real `cip` binary: a full disk (HTTP and the
//! importer) and repeated `kill -9` of the server in the middle of concurrent HTTP ingestion.
//!
//! How the disk is filled: with the process's file-size limit (RLIMIT_FSIZE), not a real
//! full file system. A size-limited tmpfs or loop device needs root, which `.ci/run` does not
//! guarantee; RLIMIT_FSIZE needs nothing, applies to exactly the process under test (not to
//! this test binary or its neighbours), and can be raised again on the running server
//! (`prlimit` on its pid: a soft limit below an unchanged hard one), which is "space
//! returns". A write past the limit fails with EFBIG (cip handles SIGXFSZ), which SQLite
//! reports as `SQLITE_IOERR_WRITE`, not `SQLITE_FULL`: so these tests also prove that an
//! I/O error caused by exhausted storage is reported as disk full. A genuine `SQLITE_FULL` is mapped to disk
//! full too (unit test in `crates/cip-access/src/lib.rs`). Docs: docs/design/0007-access-record.md.

use std::io::Write;
use std::process::Command;

use cip_core::model::Role;
use serde_json::Value;

use crate::faults::start_binary;
use crate::helpers::*;

/// The file-size limit the server and importer run under: the identity database and its
/// WAL stay far below it (a few hundred KB here); an access segment's WAL reaches it after a
/// few hundred thousand events.
const FSIZE: u64 = 8 << 20;
/// The importer's limit: its 400,000 events take about 6 MB in the segment's log.
const IMPORT_FSIZE: u64 = 3 << 20;

fn cip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cip"))
}

/// Sets (or with `None` lifts) the soft file-size limit of a running process; the hard limit
/// stays as inherited, so lifting it again needs no privilege.
fn set_fsize(pid: u32, soft: Option<u64>) {
    use rustix::process::{Pid, Resource, Rlimit, getrlimit, prlimit};
    let hard = getrlimit(Resource::Fsize).maximum;
    prlimit(
        Pid::from_raw(pid as i32),
        Resource::Fsize,
        Rlimit {
            current: soft,
            maximum: hard,
        },
    )
    .unwrap();
}

/// The first microsecond of the 13-week segment after the one holding 2026-01-05: every test
/// batch below stays inside one segment (each is one transaction) unless it means to cross.
fn segment_start() -> i64 {
    let t0 = cip_access::conformance::T0;
    (t0 / cip_access::SEGMENT_MICROS + 1) * cip_access::SEGMENT_MICROS
}

fn rfc3339(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .unwrap()
        .to_string()
}

/// Event `i` of a test: account `prov-<i % accounts>`, one of 64 addresses, a second apart
/// from `start`.
fn event_line(out: &mut String, i: u64, accounts: u64, start: i64) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        r#"{{"account":"prov-{}","principal":"user-{}","ip":"198.51.100.{}","time":"{}","action":"api","user_agent":"curl/8.5.0"}}"#,
        i % accounts,
        i % 3,
        (i / accounts) % 64,
        rfc3339(start + i as i64 * 1_000_000)
    );
}

fn batch(first: u64, n: u64, accounts: u64, start: i64) -> String {
    let mut s = String::with_capacity(n as usize * 200);
    for i in first..first + n {
        event_line(&mut s, i, accounts, start);
    }
    s
}

/// A data directory with a customer, `accounts` accounts (`prov-0` …) and an integration key.
async fn prepare(accounts: u64) -> (TestApp, String) {
    let mut app = spawn_app(Backend::Sqlite).await;
    let (cid, _) = app.create_customer(&entity("faults")).await;
    for k in 0..accounts {
        let resp = app
            .post(
                "/v1/accounts",
                &app.admin,
                &serde_json::json!({"customer_id": cid, "external_id": format!("prov-{k}"),
                    "product": "compute", "account_type": "standard"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let token = app.key(Role::Integration).await;
    app.stop().await;
    (app, token)
}

/// `cip access verify --json` over a stopped data directory.
fn verify(dir: &std::path::Path) -> Value {
    let out = cip()
        .args(["access", "verify", "--json", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "cip access verify: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "summaries disagree: {v}");
    assert_eq!(v["ok"], true, "{v}");
    v
}

async fn post(client: &reqwest::Client, base: &str, token: &str, body: String) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/v1/access-events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_http_batches_whole_and_recovers_when_space_returns() {
    let accounts = 40;
    let per = 10_000u64;
    let (app, token) = prepare(accounts).await;
    let (mut child, base) = start_binary(&app.data_dir);
    set_fsize(child.id(), Some(FSIZE));
    let client = reqwest::Client::new();
    let start = segment_start();

    // Batches of 10,000 events until the storage refuses three in a row; a refused batch is
    // sent again until accepted. The limit is per file, so a refusal can free room: closing
    // the failed connection checkpoints the WAL into the database file and resets it. Once
    // both are at the limit, nothing more fits. A batch accepted after being refused must
    // be wholly new: nothing of it was stored by the refused attempts.
    let (mut acked, mut refusals, mut in_a_row) = (0u64, 0u64, 0);
    let mut refused = Value::Null;
    while in_a_row < 3 {
        assert!(
            acked + refusals < 300,
            "8 MB never filled: {acked} batches stored, {refusals} refused"
        );
        let (status, v) = post(
            &client,
            &base,
            &token,
            batch(acked * per, per, accounts, start),
        )
        .await;
        match status {
            200 => {
                assert_eq!(
                    (v["accepted"].as_u64(), v["duplicates"].as_u64()),
                    (Some(per), Some(0)),
                    "{v}"
                );
                acked += 1;
                in_a_row = 0;
            }
            507 => {
                refusals += 1;
                in_a_row += 1;
                refused = v;
            }
            other => panic!("HTTP {other} while filling the disk: {v}"),
        }
    }
    assert!(acked >= 2, "some batches fit before the limit: {acked}");
    // A clear error: the code, and what it means for the sender.
    assert_eq!(refused["code"], "CIP-STORAGE-0001", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("disk is full") && message.contains("not acknowledged"),
        "the answer says what happened: {refused}"
    );

    // Nothing acknowledged lost, nothing of the refused batch visible: every account's
    // summary counts exactly its acknowledged events.
    let pairs: Value = client
        .get(format!(
            "{base}/v1/access/ips/198.51.100.0%2F24/accounts?from=2025-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"
        ))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counted: u64 = pairs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, acked * per, "stored = acknowledged, while full");

    // Space returns: the same server stores the refused batch (nothing of it was half
    // stored: no duplicates) and the next one.
    set_fsize(child.id(), None);
    let (status, v) = post(
        &client,
        &base,
        &token,
        batch(acked * per, per, accounts, start),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(per), Some(0)),
        "{v}"
    );
    let (status, v) = post(
        &client,
        &base,
        &token,
        batch((acked + 1) * per, per, accounts, start),
    )
    .await;
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(per)), "{v}");
    child.kill().unwrap();
    child.wait().unwrap();

    let v = verify(&app.data_dir);
    assert_eq!(v["events"].as_u64(), Some((acked + 2) * per), "{v}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_stops_the_importer_naming_the_last_stored_line_and_it_resumes() {
    let accounts = 40;
    let n = 400_000u64;
    let (app, _) = prepare(accounts).await;
    let file = app.data_dir.join("events.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let start = segment_start();
        let mut s = String::new();
        for i in 0..n {
            s.clear();
            event_line(&mut s, i, accounts, start);
            f.write_all(s.as_bytes()).unwrap();
        }
        f.flush().unwrap();
    }
    // The importer under the limit from its first instruction (`prlimit` runs it).
    let out = Command::new("prlimit")
        .arg(format!("--fsize={IMPORT_FSIZE}:"))
        .arg(env!("CARGO_BIN_EXE_cip"))
        .args(["access", "import", "--batch", "10000", "--data-dir"])
        .arg(&app.data_dir)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit 1 when full: {stderr}");
    assert!(
        stderr.contains("storage full") && stderr.contains("file size limit"),
        "{stderr}"
    );
    let line: u64 = stderr
        .split("nothing after line ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("the error names the last stored line: {stderr}"));
    assert!(line > 0 && line < n, "{line}");
    // Exactly the lines up to the one named are stored: no acknowledged line lost, nothing
    // of the refused batch.
    let v = verify(&app.data_dir);
    assert_eq!(v["events"].as_u64(), Some(line), "{v}");

    // Space back (no limit): the import resumes after that line and stores the rest once.
    let out = cip()
        .args([
            "access",
            "import",
            "--batch",
            "10000",
            "--json",
            "--data-dir",
        ])
        .arg(&app.data_dir)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["files"][0]["resumed_at_line"].as_u64(), Some(line), "{r}");
    assert_eq!(r["files"][0]["accepted"].as_u64(), Some(n - line), "{r}");
    let v = verify(&app.data_dir);
    assert_eq!(v["events"].as_u64(), Some(n), "{v}");
    app.cleanup().await;
}

/// Several clients post NDJSON batches to the real server; it is killed with SIGKILL three
/// times mid-stream and restarted; unacknowledged batches are sent again. At the end every
/// event is stored exactly once and the summaries agree with the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_http_ingestion_repeated_loses_and_doubles_nothing() {
    let accounts = 50;
    let per = 2_000u64;
    let batches = 60u64;
    let (app, token) = prepare(accounts).await;
    // One second apart, half before a segment boundary and half after: some batches span
    // two segment files (committed one after the other).
    let start = segment_start() - (batches * per / 2) as i64 * 1_000_000;
    let bodies: Vec<String> = (0..batches)
        .map(|b| batch(b * per, per, accounts, start))
        .collect();
    let pending = std::sync::Arc::new(std::sync::Mutex::new(
        (0..batches as usize).rev().collect::<Vec<_>>(),
    ));
    let client = reqwest::Client::new();
    let mut kills = 0;
    let mut rounds = 0;
    while !pending.lock().unwrap().is_empty() {
        rounds += 1;
        assert!(rounds < 20, "batches left after 20 rounds");
        let (mut child, base) = start_binary(&app.data_dir);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (client, base, token, tx, pending, bodies) = (
                client.clone(),
                base.clone(),
                token.clone(),
                tx.clone(),
                pending.clone(),
                bodies.clone(),
            );
            clients.push(tokio::spawn(async move {
                loop {
                    let Some(b) = pending.lock().unwrap().pop() else {
                        break;
                    };
                    let sent = client
                        .post(format!("{base}/v1/access-events"))
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(bodies[b].clone())
                        .send()
                        .await;
                    let v: Option<Value> = match sent {
                        Ok(r) if r.status() == 200 => r.json().await.ok(),
                        _ => None,
                    };
                    match v {
                        Some(v) => {
                            // Acknowledged: durable. A re-sent batch may have been stored
                            // (partly) before the kill that lost its answer.
                            let (a, d) = (
                                v["accepted"].as_u64().unwrap(),
                                v["duplicates"].as_u64().unwrap(),
                            );
                            assert_eq!(a + d, per, "{v}");
                            let _ = tx.send(());
                        }
                        None => {
                            // No answer: not acknowledged; send it again later.
                            pending.lock().unwrap().push(b);
                            break;
                        }
                    }
                }
            }));
        }
        drop(tx);
        // Kill -9 after the 8th acknowledgement of the round, with other batches in flight;
        // the last round runs to the end.
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
            if got == 8 && kills < 3 {
                child.kill().unwrap();
                kills += 1;
            }
        }
        for c in clients {
            c.await.unwrap();
        }
        let _ = child.kill();
        child.wait().unwrap();
    }
    assert_eq!(kills, 3, "the server was killed three times mid-stream");
    let v = verify(&app.data_dir);
    assert_eq!(v["events"].as_u64(), Some(batches * per), "{v}");
    assert!(v["segments"].as_u64().unwrap() >= 2, "{v}");
    app.cleanup().await;
}
