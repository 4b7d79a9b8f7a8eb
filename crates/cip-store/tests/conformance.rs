//! Runs the conformance suite against both adapters. PostgreSQL is found through
//! `CIP_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); each run
//! creates and drops its own database. Outside CI an unreachable server is a skip with a
//! message; with `CI` set it is a failure, so the PostgreSQL run can never silently stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cip_store::{Store, conformance, postgres, sqlite::SqliteStore};

fn admin_url() -> String {
    std::env::var("CIP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cip.sqlite"))
        .await
        .unwrap();
    let failures = conformance::run_all(Arc::new(store) as Arc<dyn Store>).await;
    assert!(
        failures.is_empty(),
        "SQLite adapter failures:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let admin = admin_url();
    let (url, name) = match postgres::create_scratch_database(&admin).await {
        Ok(x) => x,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED: PostgreSQL at {admin} unavailable ({e}); set CI=1 to make this fail"
            );
            return;
        }
        Err(e) => panic!("PostgreSQL at {admin} is required in CI: {e}"),
    };
    let store = postgres::PgStore::open(&url, 8).await.unwrap();
    let failures = conformance::run_all(Arc::new(store) as Arc<dyn Store>).await;
    postgres::drop_database(&admin, &name).await.unwrap();
    assert!(
        failures.is_empty(),
        "PostgreSQL adapter failures:\n{}",
        failures.join("\n")
    );
}
