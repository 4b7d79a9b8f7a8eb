//! Continuous screening: customers and beneficial owners screened at creation, on change and
//! after a list change (against the changed entries only); review items, decisions, and
//! dismissals that hold until the data or the entry changes.

use cip_core::model::Role;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    review_items_follow_customers_and_lists,
    unfinished_rescreen_runs_at_next_start,
    instances_rescreen_each_change_once,
    failed_rescreen_is_retried_after_a_back_off,
);

fn list_v1() -> Value {
    json!([
        {"id": "B-1", "kind": "person", "name": "Ivan Petrovich Sidorov", "birth_date": ["1961-04-12"], "countries": ["RU"]},
        {"id": "B-3", "kind": "person", "name": "Mohammed Al-Rashidi", "countries": ["SY"]},
        {"id": "B-5", "kind": "entity", "name": "Kestrel Logistics Ltd", "countries": ["CY"]}
    ])
}

/// B-5 removed, B-7 added.
fn list_v2() -> Value {
    json!([
        {"id": "B-1", "kind": "person", "name": "Ivan Petrovich Sidorov", "birth_date": ["1961-04-12"], "countries": ["RU"]},
        {"id": "B-3", "kind": "person", "name": "Mohammed Al-Rashidi", "countries": ["SY"]},
        {"id": "B-7", "kind": "person", "name": "Zelda Quixoteplain"}
    ])
}

async fn import(app: &TestApp, list: &Value, force: bool) {
    let resp = app
        .client
        .post(app.url(&format!(
            "/v1/lists/own/versions?format=own_json&force={force}"
        )))
        .bearer_auth(&app.admin)
        .body(serde_json::to_vec(list).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// Runs the re-screen job until nothing is queued (no sleeping: a change the server's own
/// job took is finished before this returns Idle).
async fn rescreen(app: &TestApp) {
    while let cip_server::jobs::Ran::Did(_) = cip_server::reviews::rescreen_run_once(&app.state)
        .await
        .unwrap()
    {}
}

async fn reviews(app: &TestApp, query: &str) -> Vec<Value> {
    let v: Value = app
        .get(&format!("/v1/reviews?{query}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

fn person(name: &str, dob: &str, phone: &str) -> Value {
    json!({
        "kind": "individual",
        "identity": {"names": [{"full": name}], "birth_date": dob, "citizenships": ["RU"], "phones": [phone]}
    })
}

async fn review_items_follow_customers_and_lists(b: Backend) {
    let app = spawn_app(b).await;
    let analyst = app.key(Role::Analyst).await;
    let integration = app.key(Role::Integration).await;

    // Customers stored before any list exists.
    let (ivan, _) = app
        .create_customer(&person("Ivan P. Sidorov", "1961-04-12", "+49 30 901820"))
        .await;
    let (plain, _) = app.create_customer(&individual("plain")).await;
    let (entity, _) = app
        .create_customer(&json!({
            "kind": "entity",
            "identity": {"names": [{"full": "Harbour Supply GmbH"}], "addresses": [{"kind": "registered", "lines": ["1 Kai"], "country": "DE"}]},
            "beneficial_owners": [{"identity": {"names": [{"full": "Muhammad Al Rashidi"}], "citizenships": ["SY"]}, "ownership_percent": 60}]
        }))
        .await;
    assert!(reviews(&app, "").await.is_empty());

    // Loading a list re-screens them: Ivan and the entity's owner are hits, the other not.
    import(&app, &list_v1(), false).await;
    rescreen(&app).await;
    let open = reviews(&app, "status=open").await;
    let mut got: Vec<(String, String, String)> = open
        .iter()
        .map(|r| {
            (
                r["customer_id"].as_str().unwrap().to_string(),
                r["subject"].as_str().unwrap().to_string(),
                r["entry_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (ivan.clone(), "customer".to_string(), "B-1".to_string()),
        (entity.clone(), "owner/0".to_string(), "B-3".to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "{open:?}");
    assert!(open.iter().all(|r| r["customer_id"] != plain.as_str()));
    assert!(open.iter().all(|r| r["score"].as_f64().unwrap() >= 0.8));
    assert!(
        open[0].get("details").is_none(),
        "the list has no personal data"
    );

    // A customer created while the list is loaded is screened at once.
    let (kestrel, _) = app
        .create_customer(&json!({
            "kind": "entity",
            "identity": {"names": [{"full": "Kestrel Logistics Limited"}], "addresses": [{"kind": "registered", "lines": ["2 Quay"], "country": "CY"}]}
        }))
        .await;
    let items = reviews(&app, &format!("customer_id={kestrel}")).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["entry_id"], "B-5");

    // Reading one item shows its explanation and is audited.
    let ivan_item = open
        .iter()
        .find(|r| r["customer_id"] == ivan.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let head = app.audit_head().await;
    let one: Value = app
        .get(&format!("/v1/reviews/{ivan_item}"), &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        one["details"]["entry_name"], "Ivan Petrovich Sidorov",
        "{one}"
    );
    assert!(one["details"]["explanation"]["name"]["aligned"].is_array());
    assert_eq!(app.audit_head().await, head + 1);

    // Decisions: analysts decide, integrations may not; a bad decision is a 422.
    let path = format!("/v1/reviews/{ivan_item}/decision");
    let resp = app
        .post(
            &path,
            &integration,
            &json!({"decision": "dismiss", "reason": "x"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let resp = app
        .post(&path, &analyst, &json!({"decision": "maybe", "reason": ""}))
        .await;
    assert_eq!(resp.status(), 422);
    let resp = app
        .post(
            &path,
            &analyst,
            &json!({"decision": "dismiss", "reason": "different person: other birth place"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "dismissed");
    let resp = app
        .post(
            &path,
            &analyst,
            &json!({"decision": "confirm", "reason": "again"}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "CIP-REVIEW-DECIDED"
    );
    let one: Value = app
        .get(&format!("/v1/reviews/{ivan_item}"), &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["reason"], "different person: other birth place");

    // A change of unscreened data does not reopen the dismissed hit …
    let put = |body: Value, version: i64| {
        let app = &app;
        let ivan = ivan.clone();
        async move {
            let resp = app
                .client
                .put(app.url(&format!("/v1/customers/{ivan}")))
                .bearer_auth(&app.admin)
                .header("if-match", format!("\"{version}\""))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        }
    };
    put(person("Ivan P. Sidorov", "1961-04-12", "+49 30 901821"), 1).await;
    let ivan_open = |items: Vec<Value>| items.into_iter().filter(|r| r["status"] == "open").count();
    assert_eq!(
        ivan_open(reviews(&app, &format!("customer_id={ivan}")).await),
        0
    );
    // … a change of screened data does.
    put(
        person("Ivan Petrovich Sidorov", "1961-04-12", "+49 30 901821"),
        2,
    )
    .await;
    assert_eq!(
        ivan_open(reviews(&app, &format!("customer_id={ivan}")).await),
        1
    );

    // A new list version: the removed entry's open item closes; the added entry is screened
    // against every stored customer (individual("plain") is "Zelda Quixoteplain").
    import(&app, &list_v2(), true).await;
    rescreen(&app).await;
    let k = reviews(&app, &format!("customer_id={kestrel}")).await;
    assert_eq!(k[0]["status"], "entry_removed", "{k:?}");
    let p = reviews(&app, &format!("customer_id={plain}")).await;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["entry_id"], "B-7");

    // The audit trail names subjects and entries, never the people's names.
    let audit: Value = app
        .get("/v1/audit?limit=500", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let text = audit.to_string();
    assert!(text.contains("review.open") && text.contains("review.decide"));
    assert!(text.contains("customer.rescreen"));
    assert!(!text.contains("Sidorov") && !text.contains("Rashidi") && !text.contains("Quixote"));
    assert!(!text.contains("other birth place"));
    app.cleanup().await;
}

/// A list version whose re-screen never ran (imported while no server was running, as
/// `cip lists import` may be, or the server stopped first) is re-screened at the next start.
async fn unfinished_rescreen_runs_at_next_start(b: Backend) {
    use cip_server::screening::{ImportRequest, ListFile, ListFormat, import};
    let mut app = spawn_app(b).await;
    let (ivan, _) = app
        .create_customer(&person("Ivan P. Sidorov", "1961-04-12", "+49 30 901820"))
        .await;
    app.stop().await;
    import(
        app.state.store.as_ref(),
        ImportRequest {
            list: cip_screen::ListId::new("own"),
            format: ListFormat::OwnJson,
            files: vec![ListFile {
                name: "own.json".into(),
                part: None,
                bytes: serde_json::to_vec(&list_v1()).unwrap(),
            }],
            force: false,
            actor: "cli".into(),
            role: "admin".into(),
            request_id: None,
        },
        &|_| {},
    )
    .await
    .unwrap();
    assert!(
        app.state
            .store
            .get_meta(&cip_server::reviews::rescreened_key("own"))
            .await
            .unwrap()
            .is_none(),
        "nothing has re-screened this version yet"
    );

    let pg = app.database_url.clone().map(|u| (u, String::new()));
    let app2 = spawn_app_in(b, app.data_dir.clone(), pg).await;
    // The server loads its lists at start on its own task; make sure that first load (which
    // queues the unfinished re-screen) has happened before running the queue dry.
    app2.state
        .screening
        .refresh(app2.state.store.as_ref())
        .await
        .unwrap();
    rescreen(&app2).await;
    let items = reviews(&app2, &format!("customer_id={ivan}")).await;
    assert!(
        items.iter().any(|i| i["entry_id"] == "B-1"),
        "the customer stored before the list was screened against it: {items:?}"
    );
    let done = app2
        .state
        .store
        .get_meta(&cip_server::reviews::rescreened_key("own"))
        .await
        .unwrap();
    assert_eq!(
        done.as_deref(),
        Some(&b"1"[..]),
        "the re-screen is remembered"
    );
    app2.cleanup().await;
    app.cleanup().await;
}

/// Several instances on one database: each queues the re-screen of a list version it loads,
/// and the version is re-screened once. An instance that finds the change leased by another
/// keeps it queued and screens nothing; once the lease is gone one instance runs it, and the
/// other finds it done.
async fn instances_rescreen_each_change_once(b: Backend) {
    use cip_server::jobs::Ran;
    use cip_server::reviews::rescreen_run_once;
    use cip_server::screening::{ImportRequest, ListFile, ListFormat, import};
    let app = spawn_app(b).await;
    let (ivan, _) = app
        .create_customer(&person("Ivan P. Sidorov", "1961-04-12", "+49 30 901820"))
        .await;
    let pg = app.database_url.clone().map(|u| (u, String::new()));
    let app2 = spawn_app_in(b, app.data_dir.clone(), pg).await;
    for a in [&app, &app2] {
        a.state
            .screening
            .refresh(a.state.store.as_ref())
            .await
            .unwrap();
    }
    import(
        app.state.store.as_ref(),
        ImportRequest {
            list: cip_screen::ListId::new("own"),
            format: ListFormat::OwnJson,
            files: vec![ListFile {
                name: "own.json".into(),
                part: None,
                bytes: serde_json::to_vec(&list_v1()).unwrap(),
            }],
            force: false,
            actor: "cli".into(),
            role: "admin".into(),
            request_id: None,
        },
        &|_| {},
    )
    .await
    .unwrap();
    // Another instance is in the middle of it (its lease taken before these two look, so
    // that neither their background jobs nor the calls below can run it).
    let now = cip_server::time::now_micros();
    assert!(
        app.state
            .store
            .claim_job(
                "rescreen:own:1",
                "instance:elsewhere",
                now,
                now + 3_600_000_000
            )
            .await
            .unwrap()
    );
    // Both instances load the new version and queue its re-screen.
    for a in [&app, &app2] {
        a.state
            .screening
            .refresh(a.state.store.as_ref())
            .await
            .unwrap();
    }
    assert_eq!(rescreen_run_once(&app.state).await.unwrap(), Ran::Idle);
    assert_eq!(rescreen_run_once(&app2.state).await.unwrap(), Ran::Idle);
    assert!(
        reviews(&app, &format!("customer_id={ivan}"))
            .await
            .is_empty(),
        "nothing is screened while another instance holds the change"
    );
    // That instance died without finishing: once its lease is gone, one of the two runs the
    // change (whichever takes it first) and the other finds it done and drops it.
    app.state
        .store
        .release_job("rescreen:own:1", "instance:elsewhere")
        .await
        .unwrap();
    rescreen(&app).await;
    rescreen(&app2).await;
    let items = reviews(&app, &format!("customer_id={ivan}")).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["entry_id"], "B-1");
    let runs = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.draft.action == "customer.rescreen")
        .count();
    assert_eq!(
        runs, 1,
        "one re-screen of the version across both instances"
    );
    app2.cleanup().await;
    app.cleanup().await;
}

/// Every stored customer's screening digest (what the re-screen reads), by id.
type Documents = Vec<(uuid::Uuid, Vec<u8>)>;

/// Writes digests straight into the database (a fault only a test can make): `None`
/// replaces every customer's digest with bytes nothing can open and returns the
/// originals; `Some(originals)` puts them back.
async fn swap_digests(app: &TestApp, restore: Option<Documents>) -> Documents {
    use sqlx::{Connection, Row};
    match app.backend {
        Backend::Sqlite => {
            let path = app.data_dir.join("cip.sqlite");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            let rows =
                sqlx::query("SELECT customer_id, sealed FROM customer_digests WHERE part = 2")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            let originals: Documents = rows
                .iter()
                .map(|r| (r.get::<uuid::Uuid, _>(0), r.get::<Vec<u8>, _>(1)))
                .collect();
            let writes = match &restore {
                Some(docs) => docs.clone(),
                None => originals
                    .iter()
                    .map(|(id, _)| (*id, b"not a digest".to_vec()))
                    .collect(),
            };
            for (id, doc) in writes {
                sqlx::query(
                    "UPDATE customer_digests SET sealed = ?1 WHERE part = 2 AND customer_id = ?2",
                )
                .bind(doc)
                .bind(id)
                .execute(&mut c)
                .await
                .unwrap();
            }
            originals
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.database_url.as_deref().unwrap())
                .await
                .unwrap();
            let rows =
                sqlx::query("SELECT customer_id, sealed FROM customer_digests WHERE part = 2")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            let originals: Documents = rows
                .iter()
                .map(|r| (r.get::<uuid::Uuid, _>(0), r.get::<Vec<u8>, _>(1)))
                .collect();
            let writes = match &restore {
                Some(docs) => docs.clone(),
                None => originals
                    .iter()
                    .map(|(id, _)| (*id, b"not a digest".to_vec()))
                    .collect(),
            };
            for (id, doc) in writes {
                sqlx::query(
                    "UPDATE customer_digests SET sealed = $1 WHERE part = 2 AND customer_id = $2",
                )
                .bind(doc)
                .bind(id)
                .execute(&mut c)
                .await
                .unwrap();
            }
            originals
        }
    }
}

/// A re-screen after a list change that fails is not dropped until the next start: it stays
/// queued, a pass before its back-off ends leaves it alone, and a later pass runs it.
async fn failed_rescreen_is_retried_after_a_back_off(b: Backend) {
    use cip_server::jobs::Ran;
    use cip_server::reviews::{rescreen_run_once, rescreen_run_once_at, rescreened_key};
    let app = spawn_app(b).await;
    import(&app, &list_v1(), false).await;
    rescreen(&app).await;
    // individual("plain") is "Zelda Quixoteplain": B-7 of version 2.
    let (zelda, _) = app.create_customer(&individual("plain")).await;
    assert!(
        reviews(&app, &format!("customer_id={zelda}"))
            .await
            .is_empty()
    );

    let originals = swap_digests(&app, None).await;
    import(&app, &list_v2(), false).await;
    // The run fails: here (an error), or on the server's own job (then this finds the change
    // waiting for its back-off).
    let outcome = loop {
        match rescreen_run_once(&app.state).await {
            Ok(Ran::Did(_)) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(outcome, Err(_) | Ok(Ran::Idle)),
        "the run fails: {outcome:?}"
    );
    let marker = || async {
        app.state
            .store
            .get_meta(&rescreened_key("own"))
            .await
            .unwrap()
    };
    assert_eq!(
        marker().await.as_deref(),
        Some(&b"1"[..]),
        "version 2 is not done"
    );
    let failed = app.state.screening.failed_rescreens();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].0.as_str(), failed[0].1), ("own", 2));
    assert!(
        failed[0].3 > cip_server::time::now_micros(),
        "it waits for a back-off"
    );
    assert_eq!(
        rescreen_run_once_at(&app.state, cip_server::time::now_micros())
            .await
            .unwrap(),
        Ran::Idle,
        "a pass before the back-off ends leaves it queued"
    );

    // The fault is gone; a pass after the back-off (two hours on: longer than any back-off)
    // re-screens the change.
    swap_digests(&app, Some(originals)).await;
    let later = cip_server::time::now_micros() + 2 * 3_600 * 1_000_000;
    assert!(matches!(
        rescreen_run_once_at(&app.state, later).await.unwrap(),
        Ran::Did(_)
    ));
    assert_eq!(marker().await.as_deref(), Some(&b"2"[..]));
    assert!(app.state.screening.failed_rescreens().is_empty());
    let items = reviews(&app, &format!("customer_id={zelda}")).await;
    assert!(
        items.iter().any(|i| i["entry_id"] == "B-7"),
        "the retried re-screen found the new entry: {items:?}"
    );
    app.cleanup().await;
}
