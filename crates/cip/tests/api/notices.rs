//! Notices shown to customers, the history of determinations, and consistency checks
//! (docs/design/0015-notices-history-consistency.md), through the API on both backends.

use cip_core::model::Role;
use cip_server::config::ConfigLayer;
use cip_server::jobs::Ran;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    notices_are_fetched_by_version_and_recorded_per_customer,
    determination_history_follows_the_record_and_new_access_countries,
    consistency_check_compares_the_collected_data,
);

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{v}");
    v
}

fn codes(v: &Value) -> Vec<(String, String)> {
    v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_string(),
                d["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn put_policy(app: &TestApp, text: &str) -> u16 {
    app.client
        .put(app.url("/v1/policy"))
        .bearer_auth(&app.admin)
        .body(text.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn notices_are_fetched_by_version_and_recorded_per_customer(b: Backend) {
    let app = spawn_app(b).await;
    let integration = app.key(Role::Integration).await;
    let auditor = app.key(Role::Auditor).await;

    // The signup page asks for the notice in force: the built-in policy's until one is applied.
    let n = json_of(app.get("/v1/policy/notice", &integration).await, 200).await;
    assert_eq!(n["version"], "builtin");
    assert_eq!(n["in_force"], true);
    assert!(
        n["notice"]
            .as_str()
            .unwrap()
            .contains("Executive Order 13984"),
        "{n}"
    );

    // Recorded with the customer, in the same write.
    let mut body = individual("n1");
    body["notice"] = json!({"version": "builtin", "shown_at": "2026-01-02T03:04:05Z"});
    let (cid, _) = app.create_customer(&body).await;

    // An unknown version is refused with the record's own problems, and writes nothing.
    let (customers, head) = (app.customer_count().await, app.audit_head().await);
    let mut bad = individual("n2");
    bad["notice"] = json!({"version": "2031-never", "shown_at": "yesterday"});
    bad["identity"]["citizenships"] = json!(["XX"]);
    let v = json_of(app.post("/v1/customers", &app.admin, &bad).await, 422).await;
    let c = codes(&v);
    assert!(
        c.contains(&("/notice/version".into(), "unknown_version".into())),
        "{v}"
    );
    assert!(c.iter().any(|(f, _)| f == "/notice/shown_at"), "{v}");
    assert!(
        c.iter().any(|(f, _)| f == "/identity/citizenships/0"),
        "{v}"
    );
    assert_eq!(app.customer_count().await, customers);
    assert_eq!(app.audit_head().await, head);

    // A new policy version brings a new notice; the old one stays readable.
    let text = cip_server::policy_file::EXAMPLE
        .replace("version = \"builtin\"", "version = \"2026-12\"")
        .replace(
            "We collect your name",
            "We, Example Cloud, collect your name",
        );
    assert_eq!(put_policy(&app, &text).await, 201);
    let n = json_of(app.get("/v1/policy/notice", &integration).await, 200).await;
    assert_eq!(n["version"], "2026-12");
    assert!(
        n["notice"]
            .as_str()
            .unwrap()
            .starts_with("We, Example Cloud"),
        "{n}"
    );
    let old = json_of(
        app.get("/v1/policy/notice/builtin", &integration).await,
        200,
    )
    .await;
    assert_eq!(old["in_force"], false);
    assert!(
        old["notice"].as_str().unwrap().starts_with("We collect"),
        "{old}"
    );
    json_of(
        app.get("/v1/policy/notice/2031-never", &integration).await,
        404,
    )
    .await;

    // The customer is shown the new version later.
    let path = format!("/v1/customers/{cid}/notices");
    let r = json_of(
        app.post(&path, &integration, &json!({"version": "2026-12"}))
            .await,
        201,
    )
    .await;
    assert_eq!(r["version"], "2026-12");
    let head = app.audit_head().await;
    let v = json_of(
        app.post(&path, &integration, &json!({"version": "nope"}))
            .await,
        422,
    )
    .await;
    assert_eq!(
        codes(&v),
        vec![("/version".into(), "unknown_version".into())]
    );
    json_of(
        app.post(
            &path,
            &integration,
            &json!({"version": "builtin", "extra": 1}),
        )
        .await,
        422,
    )
    .await;
    json_of(
        app.post(&path, &auditor, &json!({"version": "builtin"}))
            .await,
        403,
    )
    .await;
    assert_eq!(
        app.audit_head().await,
        head,
        "refused requests write nothing"
    );
    json_of(
        app.post(
            &format!("/v1/customers/{}/notices", uuid::Uuid::now_v7()),
            &integration,
            &json!({"version": "builtin"}),
        )
        .await,
        404,
    )
    .await;

    // Read back, in order, by roles that read records; the read is audited.
    let list = json_of(app.get(&path, &auditor).await, 200).await;
    let versions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["builtin", "2026-12"], "{list}");
    assert_eq!(list[0]["shown_at"], "2026-01-02T03:04:05Z");
    assert_eq!(app.audit_head().await, head + 1);
    let entries = app
        .state
        .store
        .list_audit(
            &cip_store::AuditFilter {
                after_seq: Some(head),
                ..Default::default()
            },
            5,
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].draft.action, "notice.read");
    json_of(app.get(&path, &integration).await, 200).await;
    app.cleanup().await;
}

fn ev(account: &str, ip: &str, time: &str, id: &str) -> String {
    format!(
        r#"{{"account":"{account}","principal":"p-1","ip":"{ip}","time":"{time}","action":"login","event_id":"{id}"}}"#
    )
}

async fn ingest(app: &TestApp, lines: &[String]) {
    let resp = app
        .client
        .post(app.url("/v1/access-events"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["accepted"].as_u64(), Some(lines.len() as u64), "{v}");
}

async fn history(app: &TestApp, cid: &str) -> Vec<Value> {
    let v = json_of(
        app.get(
            &format!("/v1/customers/{cid}/determination/history"),
            &app.admin,
        )
        .await,
        200,
    )
    .await;
    v["items"].as_array().unwrap().clone()
}

async fn put_customer(app: &TestApp, cid: &str, version: i64, body: &Value) {
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{cid}")))
        .bearer_auth(&app.admin)
        .header("if-match", version.to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    json_of(resp, 200).await;
}

async fn determination_history_follows_the_record_and_new_access_countries(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(
        b,
        ConfigLayer {
            geoip_db: Some(write_geoip_db(dir.path())),
            ..Default::default()
        },
    )
    .await;
    // A German individual: foreign.
    let mut body = individual("h");
    let (cid, _) = app.create_customer(&body).await;
    let h = history(&app, &cid).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["cause"], "customer_created");
    assert_eq!(h[0]["status"], "foreign_person");
    assert_eq!(h[0]["previous_status"], Value::Null);
    assert!(
        h[0]["determination"]["customer"]["evidence"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "address_country", "country": "DE"})),
        "{h:?}"
    );

    // The same record again changes nothing; a new address does.
    put_customer(&app, &cid, 1, &body).await;
    assert_eq!(history(&app, &cid).await.len(), 1);
    body["identity"]["addresses"][0]["country"] = json!("FR");
    body["identity"]["addresses"][0]["subdivision"] = Value::Null;
    put_customer(&app, &cid, 2, &body).await;
    let h = history(&app, &cid).await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[1]["cause"], "customer_updated");
    assert_eq!(h[1]["record_version"], 3);
    assert_eq!(h[1]["seq"], 2);

    // An account accessed from Germany, then from the U.S. ("located in the United States").
    let a: Value = app
        .post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": cid, "external_id": "h-a", "product": "compute", "account_type": "standard"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let a = a["id"].as_str().unwrap().to_string();
    ingest(
        &app,
        &[ev(&a, "198.51.100.7", "2026-01-05T10:00:00Z", "h1")],
    )
    .await;
    let ran = cip_server::history::access_run_once(&app.state, "test", 500)
        .await
        .unwrap();
    assert_eq!(
        ran,
        Ran::Did(1),
        "a new access country is a new determination"
    );
    let h = history(&app, &cid).await;
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[2]["cause"], "access_country");
    assert_eq!(h[2]["account_id"], a.as_str());
    assert_eq!(h[2]["status"], "foreign_person");
    // Nothing new: idle, nothing appended.
    let ran = cip_server::history::access_run_once(&app.state, "test", 500)
        .await
        .unwrap();
    assert_eq!(ran, Ran::Idle);

    ingest(&app, &[ev(&a, "192.0.2.10", "2026-02-01T10:00:00Z", "h2")]).await;
    // Another instance holds the pass: this one does nothing.
    let now = cip_server::time::now_micros();
    assert!(
        app.state
            .store
            .claim_job("determination.access", "other", now, now + 60_000_000)
            .await
            .unwrap()
    );
    let ran = cip_server::history::access_run_once(&app.state, "test", 500)
        .await
        .unwrap();
    assert_eq!(ran, Ran::Idle);
    assert_eq!(history(&app, &cid).await.len(), 3);
    app.state
        .store
        .release_job("determination.access", "other")
        .await
        .unwrap();
    let ran = cip_server::history::access_run_once(&app.state, "test", 500)
        .await
        .unwrap();
    assert_eq!(ran, Ran::Did(1));
    let h = history(&app, &cid).await;
    assert_eq!(h.len(), 4, "{h:?}");
    assert_eq!(h[3]["previous_status"], "foreign_person");
    assert_eq!(
        h[3]["status"], "us_person",
        "an access from the U.S.: {h:?}"
    );
    assert!(
        h[3]["determination"]["customer"]["evidence"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "ip_geolocation", "country": "US"})),
        "{h:?}"
    );

    // The same country again: the account is looked at, nothing is appended.
    ingest(&app, &[ev(&a, "192.0.2.11", "2026-02-03T10:00:00Z", "h3")]).await;
    let ran = cip_server::history::access_run_once(&app.state, "test", 500)
        .await
        .unwrap();
    assert_eq!(ran, Ran::Did(0));
    assert_eq!(history(&app, &cid).await.len(), 4);

    // Pages, and the read is audited.
    let path = format!("/v1/customers/{cid}/determination/history?limit=3");
    let p1 = json_of(app.get(&path, &app.admin).await, 200).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    assert_eq!(p1["next_cursor"], 3);
    let head = app.audit_head().await;
    let p2 = json_of(app.get(&format!("{path}&after=3"), &app.admin).await, 200).await;
    assert_eq!(p2["items"][0]["seq"], 4);
    assert_eq!(p2["next_cursor"], Value::Null);
    assert_eq!(app.audit_head().await, head + 1);
    json_of(
        app.get(
            &format!("/v1/customers/{cid}/determination/history?limit=0"),
            &app.admin,
        )
        .await,
        400,
    )
    .await;
    app.cleanup().await;
}

const PASSPORT: &str =
    "P<SWEERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36SWE7408122F3204153ZE184226B<<<<<16";

async fn consistency(app: &TestApp, cid: &str, body: Value, status: u16) -> Value {
    json_of(
        app.post(
            &format!("/v1/customers/{cid}/verification/consistency"),
            &app.admin,
            &body,
        )
        .await,
        status,
    )
    .await
}

async fn consistency_check_compares_the_collected_data(b: Backend) {
    let app = spawn_app(b).await;
    // German address, phone, card and IBAN: consistent.
    let (cid, _) = app.create_customer(&individual("c1")).await;
    let v = consistency(&app, &cid, json!({}), 201).await;
    assert_eq!(v["method"], "consistency_check");
    assert_eq!(v["result"], "pass", "{v}");
    let evidence = json_of(
        app.get(&format!("/v1/customers/{cid}/evidence"), &app.admin)
            .await,
        200,
    )
    .await;
    let e = &evidence[0];
    assert_eq!(e["method"], "consistency_check");
    assert_eq!(e["details"]["compared"]["address"], json!(["DE"]), "{e}");
    assert_eq!(e["details"]["compared"]["payment"], json!(["DE"]), "{e}");

    // A French phone against a German address: a failure with its reason.
    let mut body = individual("c2");
    body["identity"]["phones"] = json!(["+33 1 42 68 53 00"]);
    let (cid2, _) = app.create_customer(&body).await;
    let v = consistency(&app, &cid2, json!({}), 201).await;
    assert_eq!(v["result"], "fail", "{v}");
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{v}");
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .starts_with("phone countries (FR)"),
        "{v}"
    );

    // A passing passport is compared with the declared nationalities.
    let mut swede = individual("c3");
    swede["identity"]["names"] = json!([{"kind": "legal", "full": "Anna María Eriksson"}]);
    swede["identity"]["birth_date"] = json!("1974-08-12");
    swede["identity"]["citizenships"] = json!(["SE"]);
    let (cid3, _) = app.create_customer(&swede).await;
    let d = json_of(
        app.post(
            &format!("/v1/customers/{cid3}/documents"),
            &app.admin,
            &json!({"mrz": PASSPORT}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(d["result"], "pass", "{d}");
    let v = consistency(&app, &cid3, json!({}), 201).await;
    assert_eq!(v["result"], "pass", "SE passport, SE citizenship: {v}");
    // The record no longer declares Swedish nationality: the passport stands out.
    swede["identity"]["citizenships"] = json!(["DE"]);
    put_customer(&app, &cid3, 1, &swede).await;
    let v = consistency(&app, &cid3, json!({}), 201).await;
    assert_eq!(v["result"], "fail", "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("identity document countries (SE)"),
        "{v}"
    );

    // Nothing to compare (an owner with a passport and no address or document): 422, no
    // evidence; an unknown owner: 422.
    let (eid, _) = app.create_customer(&entity("c4")).await;
    let owners = json_of(
        app.get(&format!("/v1/customers/{eid}"), &app.admin).await,
        200,
    )
    .await;
    let kenji = owners["beneficial_owners"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = consistency(&app, &eid, json!({"beneficial_owner_id": kenji}), 422).await;
    assert_eq!(v["code"], "CIP-VERIFY-0010");
    let v = consistency(
        &app,
        &eid,
        json!({"beneficial_owner_id": uuid::Uuid::now_v7()}),
        422,
    )
    .await;
    assert_eq!(codes(&v)[0].0, "/beneficial_owner_id");
    let ev = json_of(
        app.get(&format!("/v1/customers/{eid}/evidence"), &app.admin)
            .await,
        200,
    )
    .await;
    assert_eq!(ev.as_array().unwrap().len(), 0);
    let auditor = app.key(Role::Auditor).await;
    json_of(
        app.post(
            &format!("/v1/customers/{cid}/verification/consistency"),
            &auditor,
            &json!({}),
        )
        .await,
        403,
    )
    .await;
    app.cleanup().await;
}
