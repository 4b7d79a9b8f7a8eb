//! Runs the access-record conformance suite against both engines. PostgreSQL is found through
//! `CIP_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); each run
//! creates and drops its own database. Outside CI an unreachable server is a skip with a
//! message; with `CI` set it is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cip_access::{AccessStore, ClearText, conformance, postgres, sqlite::SqliteAccess};

fn admin_url() -> String {
    std::env::var("CIP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteAccess::open(&dir.path().join("access"), Arc::new(ClearText)).unwrap();
    let failures = conformance::run_all(Arc::new(store) as Arc<dyn AccessStore>).await;
    assert!(
        failures.is_empty(),
        "SQLite engine failures:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopens_with_its_data() {
    use cip_access::{
        Action,
        conformance::{T0, event},
    };
    let dir = tempfile::tempdir().unwrap();
    let a = uuid::Uuid::now_v7();
    {
        let store = SqliteAccess::open(dir.path(), Arc::new(ClearText)).unwrap();
        store
            .ingest(vec![event(a, "192.0.2.1", T0, Action::Login)], None)
            .await
            .unwrap();
    }
    let store = SqliteAccess::open(dir.path(), Arc::new(ClearText)).unwrap();
    // The dictionaries are reloaded: the same event is a duplicate, a new one reuses ids.
    let o = store
        .ingest(
            vec![
                event(a, "192.0.2.1", T0, Action::Login),
                event(a, "192.0.2.1", T0 + 1, Action::Api),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!((o.accepted, o.duplicates), (1, 1));
    let ips = store.account_ips(a, T0, T0 + 10).await.unwrap();
    assert_eq!(ips.len(), 1);
    assert_eq!(ips[0].count, 2);
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
    let store = postgres::PgAccess::open(&url, 4, Arc::new(ClearText))
        .await
        .unwrap();
    let failures = conformance::run_all(Arc::new(store) as Arc<dyn AccessStore>).await;
    postgres::drop_database(&admin, &name).await.unwrap();
    assert!(
        failures.is_empty(),
        "PostgreSQL engine failures:\n{}",
        failures.join("\n")
    );
}
