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

/// Two instances over one PostgreSQL database (the scale-out setup) claim webhook
/// deliveries at the same time: every delivery goes to exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_claim_each_delivery_once() {
    use cip_store::{EventDraft, WebhookEndpointRow, conformance::draft};
    use uuid::Uuid;
    let admin = admin_url();
    let (url, name) = match postgres::create_scratch_database(&admin).await {
        Ok(x) => x,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: PostgreSQL unavailable ({e}); set CI=1 to make this fail");
            return;
        }
        Err(e) => panic!("PostgreSQL at {admin} is required in CI: {e}"),
    };
    let a: Arc<dyn Store> = Arc::new(postgres::PgStore::open(&url, 4).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(postgres::PgStore::open(&url, 4).await.unwrap());
    for _ in 0..3 {
        let id = Uuid::now_v7();
        a.insert_webhook_endpoint(
            WebhookEndpointRow {
                id,
                url: "http://127.0.0.1:9/".into(),
                events: "*".into(),
                secret: vec![1; 40],
                created_at: 1,
                disabled_at: None,
            },
            draft("webhook.create", Some(id.to_string())),
        )
        .await
        .unwrap();
    }
    // 40 accounts × 1 event × 3 endpoints = 120 deliveries.
    let cid = Uuid::now_v7();
    a.insert_customer(cip_store::CustomerWrite {
        row: cip_store::CustomerRow {
            id: cid,
            kind: "entity".into(),
            version: 1,
            created_at: 1,
            updated_at: 1,
            country: None,
            document: b"{}".to_vec(),
            key_id: 1,
            digest: None,
            screen_keys: None,
        },
        terms: vec![],
        audit: draft("customer.create", None),
        idempotency: None,
        extras: Default::default(),
    })
    .await
    .unwrap();
    for _ in 0..40 {
        let id = Uuid::now_v7();
        a.insert_account(cip_store::AccountWrite {
            row: cip_store::AccountRow {
                id,
                customer_id: cid,
                external_id: None,
                product: "compute".into(),
                account_type: "standard".into(),
                status: "applied".into(),
                opened_at: None,
                closed_at: None,
                last_accessed_at: None,
                version: 1,
                created_at: 1,
                updated_at: 1,
            },
            audit: draft("account.create", None),
            idempotency: None,
            transition: None,
            events: vec![EventDraft {
                id: Uuid::now_v7(),
                event_type: "account.created".into(),
                payload: b"{}".to_vec(),
                created_at: 1,
            }],
        })
        .await
        .unwrap();
    }
    let claim = |s: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim_deliveries(10, 1_000_000, 7).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                got.extend(batch.into_iter().map(|c| (c.event_id, c.endpoint_id)));
            }
            got
        })
    };
    let (x, y) = (claim(a.clone()), claim(b.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let mut all: Vec<_> = x.iter().chain(y.iter()).copied().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    postgres::drop_database(&admin, &name).await.unwrap();
    assert_eq!(
        total,
        120,
        "every delivery claimed (a: {}, b: {})",
        x.len(),
        y.len()
    );
    assert_eq!(all.len(), 120, "no delivery claimed twice");
}

/// Two instances over one PostgreSQL database apply special measures at the same time:
/// each measure is claimed by exactly one of them, and even when both record the actions of
/// the same measure (a lease that ran out while the first was still working), each account
/// gets its action — and its webhook event — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_claim_each_measure_once() {
    use cip_store::{
        AccountRow, AccountWrite, CustomerRow, CustomerWrite, EventDraft, MeasureActionFilter,
        MeasureActionRow, MeasureActionWrite, MeasureRow, conformance::draft,
    };
    use uuid::Uuid;
    let admin = admin_url();
    let (url, name) = match postgres::create_scratch_database(&admin).await {
        Ok(x) => x,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: PostgreSQL unavailable ({e}); set CI=1 to make this fail");
            return;
        }
        Err(e) => panic!("PostgreSQL at {admin} is required in CI: {e}"),
    };
    let a: Arc<dyn Store> = Arc::new(postgres::PgStore::open(&url, 4).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(postgres::PgStore::open(&url, 4).await.unwrap());
    let mut measures = Vec::new();
    for _ in 0..30 {
        let id = Uuid::now_v7();
        measures.push(id);
        a.insert_measure(
            MeasureRow {
                id,
                version: 1,
                target_kind: "jurisdiction".into(),
                country: Some("KP".into()),
                list_id: None,
                effective_at: 1,
                expires_at: 1_000_000,
                revoked_at: None,
                created_at: 1,
                updated_at: 1,
                swept_at: None,
                document: b"{}".to_vec(),
            },
            draft("special_measure.create", Some(id.to_string())),
        )
        .await
        .unwrap();
    }
    let claim = |s: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim_measure_sweeps(10, 100, 4).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                got.extend(batch.into_iter().map(|m| m.id));
            }
            got
        })
    };
    let (x, y) = (claim(a.clone()), claim(b.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let mut all: Vec<Uuid> = x.iter().chain(y.iter()).copied().collect();
    let total = all.len();
    all.sort();
    all.dedup();

    // Both instances record the same measure's actions for the same 20 accounts.
    let cid = Uuid::now_v7();
    a.insert_customer(CustomerWrite {
        row: CustomerRow {
            id: cid,
            kind: "individual".into(),
            version: 1,
            created_at: 1,
            updated_at: 1,
            country: Some("KP".into()),
            document: b"{}".to_vec(),
            key_id: 1,
            digest: None,
            screen_keys: None,
        },
        terms: vec![],
        audit: draft("customer.create", None),
        idempotency: None,
        extras: Default::default(),
    })
    .await
    .unwrap();
    let mut accounts = Vec::new();
    for _ in 0..20 {
        let id = Uuid::now_v7();
        accounts.push(id);
        a.insert_account(AccountWrite {
            row: AccountRow {
                id,
                customer_id: cid,
                external_id: None,
                product: "compute".into(),
                account_type: "standard".into(),
                status: "active".into(),
                opened_at: None,
                closed_at: None,
                last_accessed_at: None,
                version: 1,
                created_at: 1,
                updated_at: 1,
            },
            audit: draft("account.create", None),
            idempotency: None,
            transition: None,
            events: vec![],
        })
        .await
        .unwrap();
    }
    let measure = measures[0];
    let writes = |accounts: Vec<Uuid>| -> Vec<MeasureActionWrite> {
        accounts
            .into_iter()
            .map(|account_id| MeasureActionWrite {
                row: MeasureActionRow {
                    id: Uuid::now_v7(),
                    measure_id: Some(measure),
                    review_id: None,
                    account_id,
                    customer_id: cid,
                    action: "close".into(),
                    deadline: Some(50),
                    evidence: b"[]".to_vec(),
                    cause: "measure_in_effect".into(),
                    actor: "system:special-measures".into(),
                    at: 20,
                    untied_at: None,
                },
                event: Some(EventDraft {
                    id: Uuid::now_v7(),
                    event_type: "account.special_measure".into(),
                    payload: b"{}".to_vec(),
                    created_at: 20,
                }),
                audit: draft("special_measure.apply", Some(account_id.to_string())),
            })
            .collect()
    };
    let (wa, wb) = (writes(accounts.clone()), writes(accounts.clone()));
    let (sa, sb) = (a.clone(), b.clone());
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { sa.record_measure_actions(wa).await.unwrap() }),
        tokio::spawn(async move { sb.record_measure_actions(wb).await.unwrap() })
    );
    let recorded = ra.unwrap() + rb.unwrap();
    let rows = a
        .list_measure_actions(&MeasureActionFilter {
            measure_id: Some(measure),
            account_id: None,
        })
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_events WHERE event_type = 'account.special_measure'",
    )
    .fetch_one(&sqlx::PgPool::connect(&url).await.unwrap())
    .await
    .unwrap();
    postgres::drop_database(&admin, &name).await.unwrap();
    assert_eq!(
        total,
        30,
        "every measure claimed (a: {}, b: {})",
        x.len(),
        y.len()
    );
    assert_eq!(all.len(), 30, "no measure claimed twice");
    assert_eq!(recorded, 20, "each account's action recorded once");
    assert_eq!(rows.len(), 20);
    assert_eq!(events, 20, "one webhook event per recorded action");
}
