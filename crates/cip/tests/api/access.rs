//! The access record end to end: ingestion over HTTP (NDJSON, JSON arrays, gzip), the reads
//! and their audit entries, roles, `last_accessed_at`, and `cip access import` (resume, bad
//! lines, kill -9).

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use cip_core::model::Role;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(ingest_query_export_and_roles);

fn cip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cip"))
}

async fn account(app: &TestApp, cid: &str, external: &str) -> String {
    let resp = app
        .post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": cid, "external_id": external, "product": "compute", "account_type": "standard"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn line(account: &str, ip: &str, time: &str, action: &str) -> String {
    format!(
        r#"{{"account":"{account}","principal":"alice@example.com","ip":"{ip}","time":"{time}","action":"{action}","user_agent":"Mozilla/5.0"}}"#
    )
}

async fn post_events(app: &TestApp, token: &str, body: Vec<u8>, gzip: bool) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url("/v1/access-events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson");
    let body = if gzip {
        req = req.header("content-encoding", "gzip");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&body).unwrap();
        enc.finish().unwrap()
    } else {
        body
    };
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn ingest_query_export_and_roles(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = app.create_customer(&entity("acc")).await;
    let a = account(&app, &cid, "prov-a").await;
    let other = account(&app, &cid, "prov-b").await;
    let integration = app.key(Role::Integration).await;
    let auditor = app.key(Role::Auditor).await;

    // Good lines by cip id and by external id; then every kind of bad line.
    let mut body = [
        line(&a, "192.0.2.10", "2026-01-05T10:00:00Z", "login"),
        line(&a, "192.0.2.10", "2026-01-06T10:00:00+02:00", "api"),
        line("prov-a", "2001:db8::7", "2026-01-07T10:00:00Z", "ssh"),
        line("prov-b", "192.0.2.10", "2026-01-08T10:00:00Z", "console"),
        line(&a, "192.0.2.300", "2026-01-05T10:00:00Z", "login"),
        line(&a, "192.0.2.10", "2026-01-05T10:00:00", "login"),
        line(&a, "192.0.2.10", "2999-01-05T10:00:00Z", "login"),
        line(
            "no-such-account",
            "192.0.2.10",
            "2026-01-05T10:00:00Z",
            "login",
        ),
        line(&a, "192.0.2.10", "2026-01-05T10:00:00Z", "dance"),
    ]
    .join("\n")
    .into_bytes();
    body.extend_from_slice(b"\n{\"account\":\"\xff\"}\n");
    let head = app.audit_head().await;
    let (status, v) = post_events(&app, &integration, body.clone(), false).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["accepted"].as_u64(),
            v["duplicates"].as_u64(),
            v["rejected"].as_u64()
        ),
        (Some(4), Some(0), Some(6)),
        "{v}"
    );
    let lines: Vec<(u64, String)> = v["rejected_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines.iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9, 10]
    );
    assert!(lines[0].1.starts_with("ip:"), "{lines:?}");
    assert!(lines[1].1.starts_with("time:"), "{lines:?}");
    assert!(lines[2].1.contains("future"), "{lines:?}");
    assert!(lines[3].1.starts_with("account:"), "{lines:?}");
    assert!(lines[4].1.starts_with("action:"), "{lines:?}");
    assert!(lines[5].1.contains("UTF-8"), "{lines:?}");
    assert_eq!(
        app.audit_head().await,
        head + 1,
        "the ingestion is in the audit trail"
    );

    // The same batch again, gzipped: everything is a duplicate.
    let (status, v) = post_events(&app, &integration, body, true).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(4)),
        "{v}"
    );

    // A JSON array works too.
    let arr = json!([{"account": a, "principal": "bob", "ip": "192.0.2.11", "time": "2026-01-09T00:00:00Z", "action": "admin"}]);
    let (status, v) =
        post_events(&app, &integration, serde_json::to_vec(&arr).unwrap(), false).await;
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(1)), "{v}");

    // last_accessed_at follows the newest event.
    let acc: Value = app
        .get(&format!("/v1/accounts/{a}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acc["last_accessed_at"], "2026-01-09T00:00:00Z");
    // That advance may still be queued (read through above); written, it is the store's own,
    // the later time of the two batches that named the account, and no longer queued.
    let id: uuid::Uuid = a.parse().unwrap();
    app.state
        .last_access
        .flush(app.state.store.as_ref())
        .await
        .unwrap();
    assert_eq!(app.state.last_access.pending(id), None);
    let row = app.state.store.get_account(id).await.unwrap().unwrap();
    assert_eq!(
        row.last_accessed_at.map(cip_server::time::to_rfc3339),
        Some("2026-01-09T00:00:00Z".to_string())
    );

    // Reads, each audited.
    let head = app.audit_head().await;
    let q = "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z";
    let page: Value = app
        .get(
            &format!("/v1/accounts/{a}/access-events?{q}&limit=2"),
            &auditor,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(page["items"][0]["time"], "2026-01-05T10:00:00Z");
    assert_eq!(page["items"][0]["principal"], "alice@example.com");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("/v1/accounts/{a}/access-events?{q}&limit=10&cursor={cursor}"),
            &auditor,
        )
        .await
        .json()
        .await
        .unwrap();
    let times: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        vec!["2026-01-07T10:00:00Z", "2026-01-09T00:00:00Z"],
        "{rest}"
    );
    assert!(rest["next_cursor"].is_null());
    let ips: Value = app
        .get(&format!("/v1/accounts/{a}/ips?{q}"), &auditor)
        .await
        .json()
        .await
        .unwrap();
    let ips: Vec<(String, u64)> = ips["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["ip"].as_str().unwrap().to_string(),
                u["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ips,
        vec![
            ("192.0.2.10".to_string(), 2),
            ("192.0.2.11".to_string(), 1),
            ("2001:db8::7".to_string(), 1)
        ]
    );
    let who: Value = app
        .get(
            &format!("/v1/access/ips/192.0.2.0%2F24/accounts?{q}"),
            &auditor,
        )
        .await
        .json()
        .await
        .unwrap();
    let mut accounts: Vec<&str> = who["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["account_id"].as_str().unwrap())
        .collect();
    accounts.dedup();
    let mut want = vec![a.as_str(), other.as_str()];
    want.sort();
    let mut got = accounts.clone();
    got.sort();
    got.dedup();
    assert_eq!(got, want, "{who}");
    assert_eq!(app.audit_head().await, head + 4, "every read is audited");

    // Export, both formats.
    let csv = app
        .get(
            &format!("/v1/accounts/{a}/access-events/export?format=csv"),
            &auditor,
        )
        .await
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[0].starts_with("time,ip,principal"));
    assert!(rows[1].starts_with("2026-01-05T10:00:00Z,192.0.2.10,alice@example.com,login"));
    let nd = app
        .get(&format!("/v1/accounts/{a}/access-events/export"), &auditor)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(nd.lines().count(), 4);
    let first: Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(first["ip"], "192.0.2.10");

    // Roles: integration writes and reads one account, but searches and exports nothing;
    // an auditor does not write.
    assert_eq!(
        app.get("/v1/access/ips/192.0.2.10/accounts", &integration)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get(
            &format!("/v1/accounts/{a}/access-events/export"),
            &integration
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.get(&format!("/v1/accounts/{a}/ips"), &integration)
            .await
            .status(),
        200
    );
    let (status, _) = post_events(&app, &auditor, b"{}".to_vec(), false).await;
    assert_eq!(status, 403);
    // No key, bad query, unknown account.
    assert_eq!(
        app.client
            .get(app.url(&format!("/v1/accounts/{a}/ips")))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.get(&format!("/v1/accounts/{a}/ips?from=yesterday"), &auditor)
            .await
            .status(),
        400
    );
    assert_eq!(
        app.get("/v1/access/ips/192.0.2.1%2F24/accounts", &auditor)
            .await
            .status(),
        400
    );
    assert_eq!(
        app.get(
            &format!("/v1/accounts/{}/ips", uuid::Uuid::now_v7()),
            &auditor
        )
        .await
        .status(),
        404
    );
    app.cleanup().await;
}

/// Writes `n` good events for `account` (one a minute from 2026-01-01) and two bad lines.
fn write_file(path: &std::path::Path, account: &str, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let start = jiff::Timestamp::from_second(1_767_225_600).unwrap();
    for i in 0..n {
        let t = start + jiff::SignedDuration::from_secs(60 * i as i64);
        writeln!(
            f,
            "{}",
            line(
                account,
                &format!("198.51.100.{}", i % 200),
                &t.to_string(),
                "api"
            )
        )
        .unwrap();
        if i == 3 {
            writeln!(f, "{}", line(account, "not-an-ip", &t.to_string(), "api")).unwrap();
            writeln!(f, "not json at all").unwrap();
        }
    }
    f.flush().unwrap();
}

/// Sum of the per-address counts of an account's summary, and the events read back one by
/// one: both must equal the events written, each once.
async fn count_both_ways(app: &TestApp, account: &str) -> (u64, u64) {
    let ips: Value = app
        .get(
            &format!("/v1/accounts/{account}/ips?from=2025-01-01T00:00:00Z"),
            &app.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    let summary: u64 = ips["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["count"].as_u64().unwrap())
        .sum();
    let export = app
        .get(
            &format!("/v1/accounts/{account}/access-events/export"),
            &app.admin,
        )
        .await
        .text()
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for l in export.lines() {
        assert!(seen.insert(l.to_string()), "an event is stored twice: {l}");
    }
    (summary, seen.len() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_reports_bad_lines_and_resumes() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let (cid, _) = app.create_customer(&entity("imp")).await;
    let a = account(&app, &cid, "prov-imp").await;
    let file = app.data_dir.join("events.ndjson");
    write_file(&file, "prov-imp", 100);
    app.stop().await;
    let run = || {
        cip()
            .args(["access", "import", "--json", "--data-dir"])
            .arg(&app.data_dir)
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(6),
        "exit 6: some lines refused; {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &v["files"][0];
    assert_eq!(
        (f["accepted"].as_u64(), f["rejected"].as_u64()),
        (Some(100), Some(2)),
        "{v}"
    );
    let bad: Vec<u64> = f["rejected_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, vec![5, 6]);
    // Again: the whole file is behind the recorded position; nothing is read twice.
    let out = run();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["files"][0]["accepted"].as_u64(),
            v["files"][0]["duplicates"].as_u64()
        ),
        (Some(0), Some(0)),
        "{v}"
    );
    let app2 = spawn_app_in(Backend::Sqlite, app.data_dir.clone(), None).await;
    assert_eq!(count_both_ways(&app2, &a).await, (100, 100));
    app2.cleanup().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_import_then_rerun_stores_every_event_once() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let (cid, _) = app.create_customer(&entity("kill")).await;
    let a = account(&app, &cid, "prov-kill").await;
    let file = app.data_dir.join("big.ndjson");
    let n = 60_000;
    write_file(&file, &a, n);
    app.stop().await;
    // Kill it after its third stored batch (it says so on stderr: no sleeping, no polling).
    let mut child = cip()
        .args([
            "access",
            "import",
            "--batch",
            "2000",
            "--json",
            "--data-dir",
        ])
        .arg(&app.data_dir)
        .arg(&file)
        .env("CIP_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut stored = 0;
    for l in std::io::BufReader::new(stderr).lines() {
        if l.unwrap().contains("access import batch stored") {
            stored += 1;
            if stored == 3 {
                break;
            }
        }
    }
    assert_eq!(stored, 3, "the importer reports its stored batches");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = cip()
        .args([
            "access",
            "import",
            "--batch",
            "2000",
            "--json",
            "--data-dir",
        ])
        .arg(&app.data_dir)
        .arg(&file)
        .output()
        .unwrap();
    // The bad lines were in the first batch, stored before the kill: not read again.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["files"][0]["resumed_at_line"].as_u64().unwrap() > 0,
        "it resumed: {v}"
    );
    let app2 = spawn_app_in(Backend::Sqlite, app.data_dir.clone(), None).await;
    assert_eq!(count_both_ways(&app2, &a).await, (n, n));
    app2.cleanup().await;
    app.cleanup().await;
}
