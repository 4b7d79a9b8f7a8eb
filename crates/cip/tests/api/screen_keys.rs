//! The keyed re-screen (docs/design/0008, "Keyed re-screen"): after a list change, only the
//! customers that share a screening key with a changed entry are read; records without keys
//! (written before migration 0012) are never skipped — the re-screen reads every customer
//! until the backfill has keyed them all.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_list_change_reads_only_customers_sharing_a_key,
    unkeyed_records_are_rescreened_in_full_until_backfilled,
    the_cli_reports_and_backfills_the_keys,
);

fn list(entries: &[(&str, &str, &str)]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(id, kind, name)| json!({"id": id, "kind": kind, "name": name}))
            .collect(),
    )
}

const V1: &[(&str, &str, &str)] = &[
    ("S-1", "person", "Ivan Petrovich Sidorov"),
    ("S-2", "person", "Mohammed Al-Rashidi"),
    ("S-3", "entity", "Kestrel Logistics Ltd"),
    ("S-4", "person", "Hiroshi Okonkwo Lindqvist"),
];

/// V1 plus one person: a change of one entry in five.
const V2: &[(&str, &str, &str)] = &[
    ("S-1", "person", "Ivan Petrovich Sidorov"),
    ("S-2", "person", "Mohammed Al-Rashidi"),
    ("S-3", "entity", "Kestrel Logistics Ltd"),
    ("S-4", "person", "Hiroshi Okonkwo Lindqvist"),
    ("S-9", "person", "Grazyna Wolfenbuttel"),
];

/// V2 plus another person.
const V3: &[(&str, &str, &str)] = &[
    ("S-1", "person", "Ivan Petrovich Sidorov"),
    ("S-2", "person", "Mohammed Al-Rashidi"),
    ("S-3", "entity", "Kestrel Logistics Ltd"),
    ("S-4", "person", "Hiroshi Okonkwo Lindqvist"),
    ("S-9", "person", "Grazyna Wolfenbuttel"),
    ("S-11", "person", "Thaddeus Quarrington"),
];

async fn import(app: &TestApp, entries: &[(&str, &str, &str)]) {
    let resp = app
        .client
        .post(app.url("/v1/lists/own/versions?format=own_json"))
        .bearer_auth(&app.admin)
        .body(serde_json::to_vec(&list(entries)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn rescreen(app: &TestApp) {
    while let cip_server::jobs::Ran::Did(_) = cip_server::reviews::rescreen_run_once(&app.state)
        .await
        .unwrap()
    {}
}

fn person(name: &str) -> Value {
    json!({
        "kind": "individual",
        "identity": {"names": [{"full": name}], "citizenships": ["DE"]}
    })
}

/// The fields of the `customer.rescreen` entry of `version`.
async fn rescreen_entry(app: &TestApp, version: i64) -> Vec<String> {
    app.state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.draft.action == "customer.rescreen")
        .map(|e| e.draft.fields)
        .find(|f| f.contains(&format!("version={version}")))
        .unwrap_or_else(|| panic!("no customer.rescreen entry for version {version}"))
}

async fn open_entries(app: &TestApp, customer: &str) -> Vec<String> {
    let v: Value = app
        .get(
            &format!("/v1/reviews?status=open&customer_id={customer}"),
            &app.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["entry_id"].as_str().unwrap().to_string())
        .collect()
}

/// Customers whose names share nothing with the change, and one who is the new entry.
async fn customers(app: &TestApp) -> (String, String, usize) {
    let mut stored = 0;
    for name in [
        "Anna Abernathy Brandvold",
        "Boris Castellanos Dobrev",
        "Elena Eriksen Fontaine",
        "Priya Jankowski Kowalczyk",
    ] {
        app.create_customer(&person(name)).await;
        stored += 1;
    }
    let (listed, _) = app.create_customer(&person("Grazyna Wolfenbuttel")).await;
    let (later, _) = app.create_customer(&person("Thaddeus Quarrington")).await;
    (listed, later, stored + 2)
}

async fn a_list_change_reads_only_customers_sharing_a_key(b: Backend) {
    let app = spawn_app(b).await;
    import(&app, V1).await;
    rescreen(&app).await;
    let (listed, later, total) = customers(&app).await;
    assert!(open_entries(&app, &listed).await.is_empty());

    // One entry added: the re-screen reads the customers sharing a key with it (the listed
    // person), not the others, and opens the same item a full pass would.
    import(&app, V2).await;
    rescreen(&app).await;
    let fields = rescreen_entry(&app, 2).await;
    assert!(fields.contains(&"pass=keyed".to_string()), "{fields:?}");
    let read: usize = fields
        .iter()
        .find_map(|f| f.strip_prefix("customers="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        read >= 1 && read < total,
        "{read} of {total} customers read: {fields:?}"
    );
    assert_eq!(open_entries(&app, &listed).await, vec!["S-9"]);

    // An update rewrites the customer's keys: renamed to the next entry's name, it is found
    // by that change through its new keys.
    let (renamed, _) = app
        .create_customer(&person("Hugo Ostrowski Nakamura"))
        .await;
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{renamed}")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .json(&person("Thaddeus Quarington"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    import(&app, V3).await;
    rescreen(&app).await;
    assert!(
        rescreen_entry(&app, 3)
            .await
            .contains(&"pass=keyed".to_string())
    );
    assert_eq!(open_entries(&app, &later).await, vec!["S-11"]);
    assert_eq!(
        open_entries(&app, &renamed).await,
        vec!["S-11"],
        "found through the keys of its new version"
    );
    app.cleanup().await;
}

/// Deletes every stored screening key, as for records written before migration 0012.
async fn forget_keys(app: &TestApp) {
    use sqlx::Connection;
    let statements = [
        "DELETE FROM customer_screen_keys",
        "DELETE FROM customer_screen_keysets",
    ];
    match app.backend {
        Backend::Sqlite => {
            let path = app.data_dir.join("cip.sqlite");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            for s in statements {
                sqlx::query(s).execute(&mut c).await.unwrap();
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.database_url.as_deref().unwrap())
                .await
                .unwrap();
            for s in statements {
                sqlx::query(s).execute(&mut c).await.unwrap();
            }
        }
    }
}

async fn unkeyed_records_are_rescreened_in_full_until_backfilled(b: Backend) {
    use cip_server::jobs::Ran;
    let app = spawn_app(b).await;
    import(&app, V1).await;
    rescreen(&app).await;
    let (listed, later, total) = customers(&app).await;
    forget_keys(&app).await;

    // Not keyed: the change reads every customer, and finds the listed one.
    import(&app, V2).await;
    rescreen(&app).await;
    let fields = rescreen_entry(&app, 2).await;
    assert!(fields.contains(&"pass=all".to_string()), "{fields:?}");
    assert!(fields.contains(&format!("customers={total}")), "{fields:?}");
    assert_eq!(open_entries(&app, &listed).await, vec!["S-9"]);

    // The backfill keys every customer once, with its audit entry; then it has nothing to do.
    let mut keyed = 0;
    while let Ran::Did(n) = cip_server::screen_keys::backfill_run_once(&app.state, 2)
        .await
        .unwrap()
    {
        keyed += n;
    }
    assert_eq!(keyed, total as u64);
    assert_eq!(
        cip_server::screen_keys::backfill_run_once(&app.state, 2)
            .await
            .unwrap(),
        Ran::Idle
    );
    let audited = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.draft.action == "customer.screen_keys")
        .count();
    assert!(audited >= 3, "one entry per page of keys: {audited}");

    // Keyed again: the next change reads only the customers sharing its keys.
    import(&app, V3).await;
    rescreen(&app).await;
    let fields = rescreen_entry(&app, 3).await;
    assert!(fields.contains(&"pass=keyed".to_string()), "{fields:?}");
    assert!(
        !fields.contains(&format!("customers={total}")),
        "{fields:?}"
    );
    assert_eq!(open_entries(&app, &later).await, vec!["S-11"]);
    app.cleanup().await;
}

/// `cip lists keys [--backfill] --json` against the installation's database.
fn keys_cli(app: &TestApp, backfill: bool) -> (i32, Value) {
    let mut args = vec!["lists", "keys", "--json"];
    if backfill {
        args.push("--backfill");
    }
    let out = app.cli(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// An operator sees how far the keyed index is and keys every customer on demand; the next
/// list change then reads only the customers sharing its keys.
async fn the_cli_reports_and_backfills_the_keys(b: Backend) {
    let app = spawn_app(b).await;
    import(&app, V1).await;
    rescreen(&app).await;
    let (_, later, total) = customers(&app).await;
    let (code, v) = keys_cli(&app, false);
    assert_eq!(code, 0);
    assert_eq!(v["customers"], total);
    assert_eq!(v["keyed"], total, "written with their records: {v}");
    assert_eq!(v["complete"], true);

    forget_keys(&app).await;
    let (code, v) = keys_cli(&app, false);
    assert_eq!(
        (code, &v["keyed"], &v["complete"]),
        (0, &json!(0), &json!(false)),
        "{v}"
    );

    let (code, v) = keys_cli(&app, true);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["keyed_now"], total, "{v}");
    assert_eq!(v["keyed"], total, "{v}");
    assert_eq!(v["complete"], true, "{v}");

    import(&app, V3).await;
    rescreen(&app).await;
    let fields = rescreen_entry(&app, 2).await;
    assert!(fields.contains(&"pass=keyed".to_string()), "{fields:?}");
    assert_eq!(open_entries(&app, &later).await, vec!["S-11"]);
    app.cleanup().await;
}
