use cip_core::model::Role;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    create_read_update_round_trip,
    entity_with_owners,
    list_and_paginate,
    lookups_find_by_blind_index,
    idempotent_creation,
    concurrent_updates_one_wins,
    accounts_lifecycle_basics,
    key_rotation_reencrypts_everything,
    determinations_carry_their_evidence,
    mrz_check_compares_with_the_record,
);

async fn create_read_update_round_trip(b: Backend) {
    let app = spawn_app(b).await;
    let (id, created) = app.create_customer(&individual("a1")).await;
    assert_eq!(created["version"], 1);
    let resp = app.get(&format!("/v1/customers/{id}"), &app.admin).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let c: Value = resp.json().await.unwrap();
    assert_eq!(c["identity"]["names"][0]["full"], "Zelda Quixotea1");
    assert_eq!(
        c["identity"]["emails"][0], "Zelda.a1@example.com",
        "domain lowercased, local part kept"
    );
    assert_eq!(
        c["identity"]["phones"][0], "+4930901820",
        "phone stored as E.164"
    );
    assert_eq!(c["identity"]["birth_date"], "1987-02-03");
    let card = &c["payment_methods"][0]["card"];
    assert_eq!(card["brand"], "visa");
    assert_eq!(card["bin"], "41111111");
    assert_eq!(card["last4"], "1111");
    assert_eq!(card["fingerprint"].as_str().unwrap().len(), 64);
    assert!(
        !c.to_string().contains("4111111111111111"),
        "the full card number is never returned"
    );
    assert_eq!(
        c["payment_methods"][1]["bank_account"]["iban"],
        "DE89370400440532013000"
    );
    assert_eq!(c["payment_methods"][1]["bank_account"]["country"], "DE");

    // Update with the right version.
    let mut body = individual("a1");
    body["identity"]["emails"] = json!(["new@example.org"]);
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{id}")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let c: Value = app
        .get(&format!("/v1/customers/{id}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["version"], 2);
    assert_eq!(c["identity"]["emails"][0], "new@example.org");

    // Stale version: 409, and nothing changes.
    body["identity"]["emails"] = json!(["stale@example.org"]);
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{id}")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "CIP-CONFLICT-0001");
    // No If-Match: 428.
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{id}")))
        .bearer_auth(&app.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 428);
    let c: Value = app
        .get(&format!("/v1/customers/{id}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["identity"]["emails"][0], "new@example.org");

    // Projection: only the asked sections are returned.
    let c: Value = app
        .get(
            &format!("/v1/customers/{id}?fields=payment_methods"),
            &app.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        c.get("identity").is_none() && c.get("payment_methods").is_some(),
        "{c}"
    );
    let resp = app
        .get(&format!("/v1/customers/{id}?fields=shoe"), &app.admin)
        .await;
    assert_eq!(resp.status(), 400);
    let resp = app
        .get(
            &format!("/v1/customers/{}", uuid::Uuid::now_v7()),
            &app.admin,
        )
        .await;
    assert_eq!(resp.status(), 404);
    app.cleanup().await;
}

async fn entity_with_owners(b: Backend) {
    let app = spawn_app(b).await;
    let (id, _) = app.create_customer(&entity("e1")).await;
    let c: Value = app
        .get(&format!("/v1/customers/{id}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let owners = c["beneficial_owners"].as_array().unwrap();
    assert_eq!(owners.len(), 2);
    assert_eq!(owners[0]["ownership_percent"], 60.0);
    assert_eq!(owners[1]["identity"]["citizenships"][0], "JP");
    assert_eq!(c["entity"]["place_of_organization"], "US");
    // Owner ids are kept when sent back on update.
    let mut body = entity("e1");
    body["beneficial_owners"][0]["id"] = owners[0]["id"].clone();
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{id}")))
        .bearer_auth(&app.admin)
        .header("if-match", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let c2: Value = app
        .get(&format!("/v1/customers/{id}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c2["beneficial_owners"][0]["id"], owners[0]["id"]);
    app.cleanup().await;
}

async fn list_and_paginate(b: Backend) {
    let app = spawn_app(b).await;
    for i in 0..5 {
        app.create_customer(&individual(&format!("l{i}"))).await;
    }
    for i in 0..3 {
        app.create_customer(&entity(&format!("l{i}"))).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/customers?limit=3".to_string(),
            Some(c) => format!("/v1/customers?limit=3&after={c}"),
        };
        let page: Value = app.get(&path, &app.admin).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            assert!(
                item.get("identity").is_none(),
                "lists carry no personal data"
            );
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first");
    let page: Value = app
        .get("/v1/customers?kind=entity&country=us", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let resp = app.get("/v1/customers?limit=0", &app.admin).await;
    assert_eq!(resp.status(), 400);
    let resp = app.get("/v1/customers?country=XX", &app.admin).await;
    assert_eq!(resp.status(), 400);
    app.cleanup().await;
}

async fn lookups_find_by_blind_index(b: Backend) {
    let app = spawn_app(b).await;
    let (a, _) = app.create_customer(&individual("k1")).await;
    let (e, _) = app.create_customer(&entity("k2")).await;
    let look = |body: Value| {
        let app = &app;
        async move {
            let resp = app.post("/v1/customers/lookup", &app.admin, &body).await;
            assert_eq!(resp.status(), 200, "{body}");
            let v: Value = resp.json().await.unwrap();
            v["customer_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        look(json!({"email": "zelda.k1@EXAMPLE.com"})).await,
        vec![a.clone()],
        "email lookup ignores case"
    );
    assert_eq!(
        look(json!({"phone": "+49 (30) 901-820"})).await,
        vec![a.clone()]
    );
    assert_eq!(look(json!({"national_id": {"type": "passport", "number": "c01x-k1-t47", "issuing_country": "de"}})).await, vec![a.clone()]);
    assert_eq!(
        look(json!({"card_number": "4111-1111-1111-1111"})).await,
        vec![a.clone()]
    );
    assert_eq!(
        look(json!({"iban": "de89370400440532013000"})).await,
        vec![a.clone()]
    );
    assert_eq!(look(json!({"wallet": {"chain": "eth", "address": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}})).await, vec![a.clone()]);
    assert_eq!(
        look(json!({"external_id": "ext-k1"})).await,
        vec![a.clone()]
    );
    // A beneficial owner's phone finds the entity.
    assert_eq!(
        look(json!({"phone": "+12025550143"})).await,
        vec![e.clone()]
    );
    let c: Value = app
        .get(&format!("/v1/customers/{a}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let fp = c["payment_methods"][0]["card"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(look(json!({"card_fingerprint": fp})).await, vec![a.clone()]);
    assert!(
        look(json!({"email": "nobody@example.com"}))
            .await
            .is_empty()
    );
    let resp = app
        .post(
            "/v1/customers/lookup",
            &app.admin,
            &json!({"email": "a@b.example", "phone": "+4930901820"}),
        )
        .await;
    assert_eq!(resp.status(), 422, "exactly one criterion");
    app.cleanup().await;
}

async fn idempotent_creation(b: Backend) {
    let app = spawn_app(b).await;
    let body = individual("i1");
    let send = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/customers"))
                .bearer_auth(&app.admin)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r1 = send("key-1", body.clone()).await;
    assert_eq!(r1.status(), 201);
    let v1: Value = r1.json().await.unwrap();
    let r2 = send("key-1", body.clone()).await;
    assert_eq!(r2.status(), 201);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    let v2: Value = r2.json().await.unwrap();
    assert_eq!(v1["id"], v2["id"], "a retry returns the first response");
    assert_eq!(app.customer_count().await, 1);
    let r3 = send("key-1", individual("other")).await;
    assert_eq!(r3.status(), 422);
    assert_eq!(
        r3.json::<Value>().await.unwrap()["code"],
        "CIP-IDEMPOTENCY-0001"
    );
    assert_eq!(app.customer_count().await, 1);
    // Concurrent retries of one request create one customer.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, admin, body) = (
            app.client.clone(),
            app.url("/v1/customers"),
            app.admin.clone(),
            individual("i2"),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(admin)
                .header("idempotency-key", "key-2")
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap()["id"].clone(),
            )
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(status, 201);
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 1, "all retries answer with the same id");
    assert_eq!(app.customer_count().await, 2);
    app.cleanup().await;
}

async fn concurrent_updates_one_wins(b: Backend) {
    let app = spawn_app(b).await;
    let (id, _) = app.create_customer(&individual("c1")).await;
    let mut tasks = Vec::new();
    for n in 0..6 {
        let (client, url, admin) = (
            app.client.clone(),
            app.url(&format!("/v1/customers/{id}")),
            app.admin.clone(),
        );
        let mut body = individual("c1");
        body["identity"]["emails"] = json!([format!("writer{n}@example.com")]);
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(admin)
                .header("if-match", "\"1\"")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 409, 409, 409, 409, 409],
        "exactly one update wins; none is lost silently"
    );
    app.cleanup().await;
}

async fn accounts_lifecycle_basics(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = app.create_customer(&entity("acc")).await;
    let resp = app.post("/v1/accounts", &app.admin, &json!({"customer_id": cid, "external_id": "acct-1", "product": "compute", "account_type": "reseller_account"})).await;
    assert_eq!(resp.status(), 201);
    let a: Value = resp.json().await.unwrap();
    assert_eq!(a["status"], "applied");
    let aid = a["id"].as_str().unwrap().to_string();
    let resp = app.post("/v1/accounts", &app.admin, &json!({"customer_id": cid, "external_id": "acct-1", "product": "compute", "account_type": "standard"})).await;
    assert_eq!(resp.status(), 409, "external ids are unique");
    let resp = app.post("/v1/accounts", &app.admin, &json!({"customer_id": uuid::Uuid::now_v7(), "product": "compute", "account_type": "standard"})).await;
    assert_eq!(resp.status(), 404, "unknown customer");
    let resp = app.post("/v1/accounts", &app.admin, &json!({"customer_id": cid, "product": "compute", "account_type": "gold", "opened_at": "yesterday"})).await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"/account_type") && fields.contains(&"/opened_at"),
        "{v}"
    );
    let resp = app.client.patch(app.url(&format!("/v1/accounts/{aid}"))).bearer_auth(&app.admin).header("if-match", "\"1\"")
        .json(&json!({"status": "active", "opened_at": "2026-01-02T03:04:05Z", "last_accessed_at": "2026-01-03T00:00:00+01:00"})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let a: Value = resp.json().await.unwrap();
    assert_eq!(a["version"], 2);
    assert_eq!(a["opened_at"], "2026-01-02T03:04:05Z");
    assert_eq!(a["last_accessed_at"], "2026-01-02T23:00:00Z");
    let resp = app
        .client
        .patch(app.url(&format!("/v1/accounts/{aid}")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"2\"")
        .json(&json!({"status": "closed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "closing stamps closed_at");
    let a: Value = resp.json().await.unwrap();
    assert!(a["closed_at"].is_string(), "{a}");
    let page: Value = app
        .get(
            &format!("/v1/accounts?customer_id={cid}&status=closed"),
            &app.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let integration = app.key(Role::Integration).await;
    let resp = app.get(&format!("/v1/accounts/{aid}"), &integration).await;
    assert_eq!(resp.status(), 200);
    app.cleanup().await;
}

async fn key_rotation_reencrypts_everything(b: Backend) {
    let app = spawn_app(b).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(app.create_customer(&individual(&format!("r{i}"))).await.0);
    }
    let before: Value = app
        .get(&format!("/v1/customers/{}", ids[0]), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let new_id =
        cip_server::install::rotate_data_key(app.state.store.as_ref(), &app.state.master, "test")
            .await
            .unwrap();
    assert_eq!(new_id, 2);
    let mut passes = 0;
    loop {
        match cip_server::jobs::rotation_run_once(&app.state, 5)
            .await
            .unwrap()
        {
            cip_server::jobs::Ran::Idle => break,
            cip_server::jobs::Ran::Did(n) => assert!(n > 0),
        }
        passes += 1;
        assert!(passes < 10, "rotation must finish");
    }
    assert!(
        app.state
            .store
            .customers_with_stale_key(2, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Reads still work, and new writes use the new key.
    let after: Value = app
        .get(&format!("/v1/customers/{}", ids[0]), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["identity"], after["identity"]);
    assert_eq!(
        before["version"], after["version"],
        "re-encryption is not a change of the record"
    );
    let (newer, _) = app.create_customer(&individual("post")).await;
    let row = app
        .state
        .store
        .get_customer(newer.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.key_id, 2);
    app.cleanup().await;
}

async fn determinations_carry_their_evidence(b: Backend) {
    let app = spawn_app(b).await;
    // A German citizen living in Germany: foreign.
    let (id, _) = app.create_customer(&individual("dt")).await;
    let d: Value = app
        .get(&format!("/v1/customers/{id}/determination"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["customer"]["status"], "foreign_person", "{d}");
    assert_eq!(d["requires_verification"], true);
    assert!(
        d["customer"]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "address_country" && e["country"] == "DE")
    );
    assert!(
        !d.to_string().contains("Quixote"),
        "determinations carry country codes, not personal data"
    );

    // A U.S. LLC with one U.S. and one Japanese owner: the entity is a U.S. person, the
    // account still needs verification because of the foreign owner.
    let (eid, _) = app.create_customer(&entity("dt")).await;
    let d: Value = app
        .get(&format!("/v1/customers/{eid}/determination"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["customer"]["status"], "us_person", "{d}");
    let owners = d["beneficial_owners"].as_array().unwrap();
    assert_eq!(owners[0]["status"], "us_person");
    assert_eq!(owners[1]["status"], "foreign_person");
    assert_eq!(d["requires_verification"], true);

    // Declared U.S. citizen whose address and phone are abroad: U.S. person, conflict surfaced.
    let mut body = individual("dt2");
    body["identity"]["citizenships"] = json!(["US"]);
    body["identity"]["national_ids"] = json!([]);
    let (cid, _) = app.create_customer(&body).await;
    let d: Value = app
        .get(&format!("/v1/customers/{cid}/determination"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["customer"]["status"], "us_person");
    assert!(
        !d["customer"]["conflicts"].as_array().unwrap().is_empty(),
        "{d}"
    );
    let audit: Value = app
        .get(&format!("/v1/audit?record_id={cid}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "customer.determination")
    );
    app.cleanup().await;
}

async fn mrz_check_compares_with_the_record(b: Backend) {
    let app = spawn_app(b).await;
    let zone = "P<SWEERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36SWE7408122F3204153ZE184226B<<<<<16";
    let mut body = individual("mz");
    body["identity"]["names"] = json!([{"full": "Anna María Eriksson"}]);
    body["identity"]["birth_date"] = json!("1974-08-12");
    body["identity"]["citizenships"] = json!(["SE"]);
    let (id, _) = app.create_customer(&body).await;
    let resp = app
        .post(
            "/v1/documents/mrz-check",
            &app.admin,
            &json!({"mrz": zone, "customer_id": id}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["valid"], true);
    assert_eq!(r["expired"], false);
    assert_eq!(r["fields"]["nationality_country"], "SE");
    assert_eq!(
        r["comparison"]["name"], "match",
        "transliteration-aware: María ~ MARIA, word order free: {r}"
    );
    assert_eq!(r["comparison"]["birth_date"], "match");
    assert_eq!(r["comparison"]["nationality"], "match");
    // Another person's record: the name does not match.
    let (other, _) = app.create_customer(&individual("other")).await;
    let r: Value = app
        .post(
            "/v1/documents/mrz-check",
            &app.admin,
            &json!({"mrz": zone, "customer_id": other}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["comparison"]["name"], "mismatch");
    assert_eq!(r["comparison"]["birth_date"], "mismatch");
    // A wrong check digit: 422 naming the field.
    let bad = zone.replace("7408122", "7408123");
    let resp = app
        .post("/v1/documents/mrz-check", &app.admin, &json!({"mrz": bad}))
        .await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["details"][0]["field"], "/mrz");
    assert_eq!(v["details"][0]["code"], "checksum_mismatch");
    assert!(
        v["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("birth date"),
        "{v}"
    );
    let resp = app
        .post(
            "/v1/documents/mrz-check",
            &app.admin,
            &json!({"mrz": zone.to_lowercase()}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    app.cleanup().await;
}
