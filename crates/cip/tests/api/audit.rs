use cip_core::model::Role;
use serde_json::Value;
use sqlx::Connection;

use crate::both_backends;
use crate::helpers::*;

both_backends!(reads_and_changes_are_audited, tampering_is_detected);

/// Runs SQL straight against the database, behind cip's back (what an attacker with database
/// access could do).
async fn raw_exec(app: &TestApp, sql: &'static str) {
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&format!(
                "sqlite:{}",
                app.data_dir.join("cip.sqlite").display()
            ))
            .await
            .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.database_url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn reads_and_changes_are_audited(b: Backend) {
    let app = spawn_app(b).await;
    let (id, _) = app.create_customer(&individual("ad")).await;
    let auditor = app.key(Role::Auditor).await;
    let resp = app
        .client
        .get(app.url(&format!("/v1/customers/{id}?fields=identity")))
        .bearer_auth(&app.admin)
        .header("x-purpose", "law enforcement request 2026-117")
        .header("x-request-id", "req-audit-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page: Value = app
        .get(&format!("/v1/audit?record_id={id}"), &auditor)
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["customer.create", "customer.read"]);
    let read = &items[1];
    assert_eq!(read["purpose"], "law enforcement request 2026-117");
    assert_eq!(read["request_id"], "req-audit-1");
    assert_eq!(read["role"], "admin");
    let fields: Vec<&str> = read["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(fields.contains(&"/identity/emails/*"), "{fields:?}");
    assert!(
        !fields.iter().any(|f| f.starts_with("/payment_methods")),
        "only what was read is recorded: {fields:?}"
    );
    assert!(
        !page.to_string().contains("Quixote"),
        "the audit trail holds no personal data"
    );
    let verify: Value = app
        .get("/v1/audit/verify", &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    app.cleanup().await;
}

async fn tampering_is_detected(b: Backend) {
    let app = spawn_app(b).await;
    for i in 0..4 {
        app.create_customer(&individual(&format!("t{i}"))).await;
    }
    let sealed = cip_server::audit::checkpoint(app.state.store.as_ref(), &app.state.checkpoint_key)
        .await
        .unwrap();
    assert!(sealed.is_some());
    let ok = cip_server::audit::verify(app.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(ok.ok && ok.checkpoints >= 1, "{ok:?}");

    // Edit an entry's content.
    raw_exec(
        &app,
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3",
    )
    .await;
    let r = cip_server::audit::verify(app.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(!r.ok);
    assert!(r.problems[0].contains('3'), "{:?}", r.problems);
    app.cleanup().await;

    // Delete an entry.
    let app = spawn_app(b).await;
    for i in 0..4 {
        app.create_customer(&individual(&format!("d{i}"))).await;
    }
    raw_exec(&app, "DELETE FROM audit_log WHERE seq = 2").await;
    let r = cip_server::audit::verify(app.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(!r.ok, "a deleted entry must be detected");
    app.cleanup().await;

    // Reorder two entries (swap their contents).
    let app = spawn_app(b).await;
    for i in 0..4 {
        app.create_customer(&individual(&format!("o{i}"))).await;
    }
    raw_exec(&app, "UPDATE audit_log SET seq = -1 WHERE seq = 2").await;
    raw_exec(&app, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    raw_exec(&app, "UPDATE audit_log SET seq = 3 WHERE seq = -1").await;
    let r = cip_server::audit::verify(app.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(!r.ok, "reordered entries must be detected");
    app.cleanup().await;

    // Cutting off the tail is caught by the signed checkpoint.
    let app = spawn_app(b).await;
    for i in 0..4 {
        app.create_customer(&individual(&format!("c{i}"))).await;
    }
    cip_server::audit::checkpoint(app.state.store.as_ref(), &app.state.checkpoint_key)
        .await
        .unwrap();
    raw_exec(&app, "DELETE FROM audit_log WHERE seq >= 4").await;
    let r = cip_server::audit::verify(app.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(
        !r.ok,
        "a truncated tail must be detected through the checkpoint: {r:?}"
    );
    // A forged checkpoint signature is detected.
    raw_exec(&app, "UPDATE audit_checkpoints SET at = at + 1").await;
    let r = cip_server::audit::verify(app.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("invalid signature")),
        "{:?}",
        r.problems
    );
    app.cleanup().await;
}

/// Several `cip serve` instances over one PostgreSQL: concurrent writes through both keep
/// one unbroken audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_chain_on_postgres() {
    if !postgres_available().await {
        return;
    }
    let a = spawn_app(Backend::Postgres).await;
    let dir_b = tempfile::tempdir().unwrap();
    // The second instance must use the same master key: copy the generated key file.
    std::fs::copy(
        a.data_dir.join("master.key"),
        dir_b.path().join("master.key"),
    )
    .unwrap();
    let b = spawn_app_in(
        Backend::Postgres,
        dir_b.path().to_path_buf(),
        Some((a.database_url.clone().unwrap(), String::new())),
    )
    .await;
    let mut tasks = Vec::new();
    for n in 0..40 {
        let (client, base, token) = if n % 2 == 0 {
            (a.client.clone(), a.base.clone(), a.admin.clone())
        } else {
            (b.client.clone(), b.base.clone(), b.admin.clone())
        };
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/customers"))
                .bearer_auth(token)
                .json(&individual(&format!("mi{n}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let id = r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            // Read it back through the other instance: same keys, same data.
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    for id in ids.iter().take(5) {
        assert_eq!(
            b.get(&format!("/v1/customers/{id}"), &b.admin)
                .await
                .status(),
            200
        );
        assert_eq!(
            a.get(&format!("/v1/customers/{id}"), &a.admin)
                .await
                .status(),
            200
        );
    }
    let report = cip_server::audit::verify(a.state.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.entries >= 40 + 10 + 2);
    let mut b = b;
    b.stop().await;
    a.cleanup().await;
}
