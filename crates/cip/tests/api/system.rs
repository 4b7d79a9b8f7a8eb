use std::process::Command;

use cip_core::model::Role;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_docs_health_and_metrics() {
    let app = spawn_app(Backend::Sqlite).await;
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&String> = spec["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/customers/lookup",
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/lists",
        "/v1/lists/{list}/versions",
        "/v1/lists/{list}/versions/{version}/diff",
        "/v1/screen",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.iter().any(|x| x.as_str() == p),
            "spec lacks {p}: {paths:?}"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI is served"
    );
    let auditor = app.key(Role::Auditor).await;
    app.create_customer(&individual("m")).await;
    let metrics = app.get("/metrics", &auditor).await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("cip_customers"), "{text}");
    let integration = app.key(Role::Integration).await;
    assert_eq!(app.get("/metrics", &integration).await.status(), 403);
    let resp = app.get("/v1/nothing-here", &auditor).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "CIP-NOT-FOUND-0001"
    );
    app.cleanup().await;
}

/// The OpenAPI document is part of the contract: a change to it shows up in review.
#[test]
fn openapi_snapshot() {
    let spec = serde_json::to_string_pretty(&cip_server::app::openapi()).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &spec).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == spec,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p cip openapi_snapshot` and commit it"
    );
}

#[test]
fn config_print_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(["config", "print", "--data-dir"])
        .arg(dir.path())
        .env(
            "CIP_DATABASE_URL",
            "postgres://cip:hunter2@db.internal:5432/cip",
        )
        .env(
            "CIP_MASTER_KEY",
            "base64:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .env("CIP_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("127.0.0.1:9999"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("AAAAAAAAAA"),
        "{text}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(["config", "print"])
        .env("CIP_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3), "invalid configuration exits 3");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("listen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_loads_through_the_real_parsers() {
    let app = spawn_app(Backend::Sqlite).await;
    let made = cip_server::demo::load(&app.state).await.unwrap();
    assert!(made >= 30, "a few dozen customers, got {made}");
    assert_eq!(
        cip_server::demo::load(&app.state).await.unwrap(),
        0,
        "loading twice adds nothing"
    );
    let page: Value = app
        .get("/v1/customers?kind=entity&limit=100", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let entities = page["items"].as_array().unwrap();
    assert!(entities.len() >= 10);
    let mut us = 0;
    let mut foreign = 0;
    for e in entities {
        let id = e["id"].as_str().unwrap();
        let c: Value = app
            .get(&format!("/v1/customers/{id}"), &app.admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(c["beneficial_owners"].as_array().unwrap().len(), 2, "{c}");
        if e["country"] == "US" {
            us += 1
        } else {
            foreign += 1
        }
    }
    assert!(
        us >= 2 && foreign >= 2,
        "both U.S. and foreign entities: {us}/{foreign}"
    );
    let accounts: Value = app
        .get("/v1/accounts?limit=100", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(accounts["items"].as_array().unwrap().len(), made);
    app.cleanup().await;
}
