use serde_json::Value;
use std::process::{Command, Stdio};

use crate::helpers::*;

fn cip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cip"))
}

fn sha256_file(path: &std::path::Path) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_master_key_refuses_to_start_and_touches_nothing() {
    let mut app = spawn_app(Backend::Sqlite).await;
    app.create_customer(&individual("mk")).await;
    app.stop().await;
    let db = app.data_dir.join("cip.sqlite");
    // Let SQLite fold its WAL into the file so the hash below covers everything. The
    // store's checkpointer thread may still be copying frames after the last commit; a
    // TRUNCATE checkpoint that reports busy did not finish, so repeat until it reports done
    // (not busy, empty WAL): from then on there is nothing left for anyone to copy.
    {
        use sqlx::{Connection, Row};
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        let mut done = false;
        for _ in 0..1000 {
            let r = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut c)
                .await
                .unwrap();
            let (busy, log): (i64, i64) = (r.get(0), r.get(1));
            if busy == 0 && log == 0 {
                done = true;
                break;
            }
        }
        assert!(done, "the WAL could not be checkpointed");
    }
    let before = sha256_file(&db);
    let other = cip_vault::MasterKey::generate().unwrap();
    let out = cip()
        .args(["keys", "list", "--data-dir"])
        .arg(&app.data_dir)
        .env(
            "CIP_MASTER_KEY",
            secrecy::ExposeSecret::expose_secret(&other.encode()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "exit code 4 = security refusal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key does not match"), "{stderr}");
    assert!(
        !stderr.contains(secrecy::ExposeSecret::expose_secret(&other.encode())),
        "the key is never printed"
    );
    assert_eq!(before, sha256_file(&db), "no data touched");
    // The right key still works.
    let out = cip()
        .args(["keys", "list", "--json", "--data-dir"])
        .arg(&app.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.cleanup().await;
}

/// Starts `cip serve` on a free port over `dir` and returns once it says it is listening
/// (read from its stderr, so no sleeping or polling).
pub(crate) fn start_binary(dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = cip()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("CIP_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("cip serve exited before listening")
            .unwrap();
        if line.contains("cip listening on") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_writes_loses_no_acknowledged_customer() {
    let dir = tempfile::tempdir().unwrap();
    // Make the admin key through the CLI (prints only the token).
    let out = cip()
        .args(["keys", "create", "--role", "integration", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        token.starts_with("cip_") && !token.contains('\n'),
        "stdout is only the token: {token}"
    );
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..3 {
        let (mut child, base) = start_binary(dir.path());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut writers = Vec::new();
        for w in 0..8 {
            let (client, base, token, tx) =
                (client.clone(), base.clone(), token.clone(), tx.clone());
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = entity(&format!("k{round}w{w}n{i}"));
                    match client
                        .post(format!("{base}/v1/customers"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().as_u16() == 201 => {
                            let v: Value = match r.json().await {
                                Ok(v) => v,
                                Err(_) => break,
                            };
                            let _ = tx.send(v["id"].as_str().unwrap().to_string());
                        }
                        _ => break,
                    }
                }
            }));
        }
        drop(tx);
        // Kill -9 once a number of writes were acknowledged, mid-stream.
        let mut got = 0;
        while let Some(id) = rx.recv().await {
            acknowledged.push(id);
            got += 1;
            if got == 150 {
                child.kill().unwrap();
            }
        }
        let _ = child.wait();
        for w in writers {
            w.await.unwrap();
        }
    }
    assert!(acknowledged.len() >= 450);

    // Restart: every acknowledged customer is there, whole; the audit chain verifies.
    let (mut child, base) = start_binary(dir.path());
    let admin = {
        let out = cip()
            .args(["keys", "create", "--role", "admin", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    for id in &acknowledged {
        let r = client
            .get(format!("{base}/v1/customers/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged customer {id} is missing");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["beneficial_owners"].as_array().unwrap().len(),
            2,
            "no half-written customer"
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
    let out = cip()
        .args(["audit", "verify", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["ok"], true);
    // Every customer in the database has its creation in the audit trail.
    let count = {
        use sqlx::{Connection, Row};
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite:{}",
            dir.path().join("cip.sqlite").display()
        ))
        .await
        .unwrap();
        let customers: i64 = sqlx::query("SELECT COUNT(*) AS n FROM customers")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get("n");
        let creations: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'customer.create'")
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get("n");
        assert_eq!(
            customers, creations,
            "every stored customer has exactly its audit entry"
        );
        customers
    };
    assert!(count as usize >= acknowledged.len());
}

/// With the access-event stream configured and NATS unreachable, `cip serve` fails before
/// it says it is listening, naming the setting to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_nats_fails_the_start_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            cip()
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data-dir",
                ])
                .arg(&dir)
                .env("CIP_LOG_LEVEL", "warn")
                .env("CIP_ACCESS_NATS_URL", format!("nats://127.0.0.1:{closed}"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("listening"),
        "no readiness is announced: {stderr}"
    );
    assert!(
        stderr.contains("access_nats_url") && stderr.contains("CIP_ACCESS_NATS_URL"),
        "the error names the setting: {stderr}"
    );
}
