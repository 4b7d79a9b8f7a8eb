//! Runs the access-record conformance suite against both engines. PostgreSQL is found through
//! `CIP_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); each run
//! creates and drops its own database. Outside CI an unreachable server is a skip with a
//! message; with `CI` set it is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cip_access::sqlite::{Options, SqliteAccess};
use cip_access::{AccessStore, ClearText, conformance, postgres};

/// Runs of three events: every commit of the suite writes runs and merges them, and re-sent
/// events meet the dedupe check against the runs.
fn tiny_runs() -> Options {
    Options {
        run_events: 3,
        ..Options::default()
    }
}

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
async fn sqlite_conforms_with_tiny_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteAccess::open_with(&dir.path().join("access"), Arc::new(ClearText), tiny_runs())
            .unwrap();
    let failures = conformance::run_all(Arc::new(store) as Arc<dyn AccessStore>).await;
    assert!(
        failures.is_empty(),
        "SQLite engine (runs of 3) failures:\n{}",
        failures.join("\n")
    );
}

/// Two engines on one directory stand for two processes (`cip serve` and `cip access
/// import`): each sees what the other stored, before and after the other writes runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sees_another_writers_events_and_runs() {
    use cip_access::{
        Action,
        conformance::{T0, event},
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = SqliteAccess::open_with(dir.path(), Arc::new(ClearText), tiny_runs()).unwrap();
    let reader = SqliteAccess::open(dir.path(), Arc::new(ClearText)).unwrap();
    let a = uuid::Uuid::now_v7();
    let ev = |i: i64| event(a, "192.0.2.9", T0 + i, Action::Api);
    for i in 0..10 {
        let seen = reader.account_ips(a, T0, T0 + 100).await.unwrap();
        let count = seen.first().map_or(0, |u| u.count);
        assert_eq!(count, i as u64, "before commit {i}");
        writer.ingest(vec![ev(i)], None).await.unwrap();
    }
    // The reader's engine writes too: its events land in the same log, and a re-send of the
    // other's events is a duplicate across engines.
    let o = reader.ingest(vec![ev(3), ev(10)], None).await.unwrap();
    assert_eq!((o.accepted, o.duplicates), (1, 1));
    let o = writer.ingest(vec![ev(10), ev(11)], None).await.unwrap();
    assert_eq!((o.accepted, o.duplicates), (1, 1));
    for s in [&reader, &writer] {
        let page = s.account_events(a, T0, T0 + 100, None, 100).await.unwrap();
        let times: Vec<i64> = page.iter().map(|e| e.event.at - T0).collect();
        assert_eq!(times, (0..12).collect::<Vec<_>>());
        let v = s.verify().await.unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.events, 12);
    }
}

/// A segment written by the format before runs (account-first `events` table) is converted
/// when the record is opened, and reads back the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_converts_a_format_1_segment() {
    use cip_access::{IpRange, SEGMENT_MICROS, TextVault, conformance::T0, ip_key};
    let dir = tempfile::tempdir().unwrap();
    let seg = T0.div_euclid(SEGMENT_MICROS);
    let base = seg * SEGMENT_MICROS;
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let ip1 = ip_key("192.0.2.1".parse().unwrap());
    let ip2 = ip_key("2001:db8::1".parse().unwrap());
    {
        let c = rusqlite::Connection::open(dir.path().join(format!("seg-{seg}.db"))).unwrap();
        c.execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, uuid BLOB NOT NULL UNIQUE);
             CREATE TABLE ips (id INTEGER PRIMARY KEY, ip BLOB NOT NULL UNIQUE);
             CREATE TABLE strings (id INTEGER PRIMARY KEY, h BLOB NOT NULL UNIQUE, sealed BLOB NOT NULL);
             CREATE TABLE events (account INTEGER NOT NULL, t INTEGER NOT NULL, ip INTEGER NOT NULL,
                 principal INTEGER NOT NULL, action INTEGER NOT NULL, event_id TEXT NOT NULL,
                 user_agent INTEGER, session INTEGER, resource INTEGER,
                 PRIMARY KEY (account, t, ip, principal, action, event_id)) WITHOUT ROWID;
             CREATE TABLE account_ip (account INTEGER NOT NULL, ip INTEGER NOT NULL,
                 first INTEGER NOT NULL, last INTEGER NOT NULL, n INTEGER NOT NULL,
                 PRIMARY KEY (account, ip)) WITHOUT ROWID;
             CREATE TABLE ip_account (ip INTEGER NOT NULL, account INTEGER NOT NULL,
                 PRIMARY KEY (ip, account)) WITHOUT ROWID;",
        )
        .unwrap();
        c.execute(
            "INSERT INTO accounts VALUES (1, ?1), (2, ?2)",
            rusqlite::params![a, b],
        )
        .unwrap();
        c.execute(
            "INSERT INTO ips VALUES (1, ?1), (2, ?2)",
            rusqlite::params![&ip1[..], &ip2[..]],
        )
        .unwrap();
        for (id, text) in [(1, "alice"), (2, "curl")] {
            c.execute(
                "INSERT INTO strings VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    id,
                    &ClearText.blind(text)[..],
                    ClearText.seal(text).unwrap()
                ],
            )
            .unwrap();
        }
        let t = T0 - base;
        c.execute(
            "INSERT INTO events VALUES (1, ?1, 1, 1, 1, '', NULL, NULL, NULL),              (1, ?2, 2, 1, 4, 'e-7', 2, NULL, NULL), (2, ?1, 1, 1, 4, '', NULL, NULL, NULL)",
            rusqlite::params![t, t + 5],
        )
        .unwrap();
    }
    let store = SqliteAccess::open(dir.path(), Arc::new(ClearText)).unwrap();
    let page = store
        .account_events(a, T0, T0 + 10, None, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].event.event_id.as_deref(), Some("e-7"));
    assert_eq!(page[1].event.user_agent.as_deref(), Some("curl"));
    assert_eq!(page[1].event.principal, "alice");
    let users = store
        .ip_accounts(IpRange::single(ip1), T0, T0 + 10)
        .await
        .unwrap();
    assert_eq!(users.len(), 2);
    // Stored again: duplicates of the converted run.
    let again = page.iter().map(|e| e.event.clone()).collect();
    let o = store.ingest(again, None).await.unwrap();
    assert_eq!((o.accepted, o.duplicates), (0, 2));
    let v = store.verify().await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!((v.events, v.pairs), (3, 3));
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
