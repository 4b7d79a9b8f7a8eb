//! IP geolocation end to end: `geoip_db` at start-up, countries of an account's addresses,
//! the countries an account was accessed from, and the access record's countries as
//! U.S./foreign evidence of the determination (a U.S. access against foreign documents is a
//! surfaced conflict). Databases are written by the test over documentation ranges.

use cip_server::config::{self, ConfigLayer};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    countries_of_addresses_feed_the_determination,
    without_a_database_countries_are_unknown
);

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

async fn account(app: &TestApp, cid: &str, external: &str) -> String {
    let v: Value = app
        .post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": cid, "external_id": external, "product": "compute", "account_type": "standard"}),
        )
        .await
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, path: &str) -> Value {
    let resp = app.get(path, &app.admin).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn countries_of_addresses_feed_the_determination(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = write_geoip_db(dir.path());
    let app = spawn_app_with(
        b,
        ConfigLayer {
            geoip_db: Some(db),
            ..Default::default()
        },
    )
    .await;
    // A German citizen with a German passport, address, phone and card.
    let (cid, _) = app.create_customer(&individual("geo")).await;
    let d = get(&app, &format!("/v1/customers/{cid}/determination")).await;
    assert_eq!(d["customer"]["status"], "foreign_person", "{d}");
    assert_eq!(d["geolocation"]["available"], true, "{d}");

    // Signs up from Germany, later works from the U.S., France, Puerto Rico and an address
    // no database knows.
    let a = account(&app, &cid, "geo-a").await;
    ingest(
        &app,
        &[
            ev(&a, "198.51.100.7", "2026-01-05T10:00:00Z", "g1"),
            ev(&a, "198.51.100.8", "2026-01-06T10:00:00Z", "g2"),
            ev(&a, "192.0.2.10", "2026-02-01T10:00:00Z", "g3"),
            ev(&a, "192.0.2.10", "2026-02-02T10:00:00Z", "g4"),
            ev(&a, "2001:db8::1", "2026-03-01T10:00:00Z", "g5"),
            ev(&a, "203.0.113.5", "2026-03-02T10:00:00Z", "g6"),
            ev(&a, "203.0.113.200", "2026-03-03T10:00:00Z", "g7"),
        ],
    )
    .await;

    let ips = get(
        &app,
        &format!("/v1/accounts/{a}/ips?from=2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(ips["geolocation"]["available"], true);
    assert!(
        ips["geolocation"]["database"]
            .as_str()
            .unwrap()
            .starts_with("GeoLite2-Country "),
        "{ips}"
    );
    let country_of = |ip: &str| -> Value {
        ips["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ip"] == ip)
            .unwrap_or_else(|| panic!("{ip} missing: {ips}"))["country"]
            .clone()
    };
    assert_eq!(country_of("198.51.100.7"), "DE");
    assert_eq!(country_of("192.0.2.10"), "US");
    assert_eq!(country_of("2001:db8::1"), "FR");
    assert_eq!(country_of("203.0.113.5"), "PR");
    assert_eq!(country_of("203.0.113.200"), Value::Null);

    let c = get(&app, &format!("/v1/accounts/{a}/countries")).await;
    let items = c["items"].as_array().unwrap();
    let summary: Vec<(Value, u64, u64, String, bool)> = items
        .iter()
        .map(|i| {
            (
                i["country"].clone(),
                i["count"].as_u64().unwrap(),
                i["ips"].as_u64().unwrap(),
                i["first_ip"].as_str().unwrap().to_string(),
                i["united_states"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("DE"), 2, 2, "198.51.100.7".into(), false),
            (json!("US"), 2, 1, "192.0.2.10".into(), true),
            (json!("FR"), 1, 1, "2001:db8::1".into(), false),
            (json!("PR"), 1, 1, "203.0.113.5".into(), true),
            (Value::Null, 1, 1, "203.0.113.200".into(), false),
        ],
        "{c}"
    );
    assert_eq!(items[0]["first_seen"], "2026-01-05T10:00:00Z");
    assert_eq!(items[0]["last_seen"], "2026-01-06T10:00:00Z");
    // A range narrows it: only February.
    let feb = get(
        &app,
        &format!("/v1/accounts/{a}/countries?from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z"),
    )
    .await;
    assert_eq!(feb["items"].as_array().unwrap().len(), 1, "{feb}");
    assert_eq!(feb["items"][0]["country"], "US");

    // Located in the United States: a U.S. person, and every foreign fact is surfaced.
    let d = get(&app, &format!("/v1/customers/{cid}/determination")).await;
    assert_eq!(d["customer"]["status"], "us_person", "{d}");
    let evidence = d["customer"]["evidence"].as_array().unwrap();
    let located: Vec<(String, String, String)> = evidence
        .iter()
        .filter(|e| e["kind"] == "ip_geolocation")
        .map(|e| {
            (
                e["country"].as_str().unwrap().to_string(),
                e["ip"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        located,
        vec![
            (
                "DE".into(),
                "198.51.100.7".into(),
                format!("/accounts/{a}/countries/DE")
            ),
            (
                "US".into(),
                "192.0.2.10".into(),
                format!("/accounts/{a}/countries/US")
            ),
            (
                "FR".into(),
                "2001:db8::1".into(),
                format!("/accounts/{a}/countries/FR")
            ),
            (
                "PR".into(),
                "203.0.113.5".into(),
                format!("/accounts/{a}/countries/PR")
            ),
        ],
        "{d}"
    );
    let reasons = d["customer"]["reasons"].to_string();
    assert!(
        reasons.contains("ip geolocation") && reasons.contains("192.0.2.10"),
        "{reasons}"
    );
    let conflicts: Vec<String> = d["customer"]["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(
        conflicts
            .iter()
            .any(|c| c.contains("declared citizenship") && c.contains("DE")),
        "{conflicts:?}"
    );
    assert!(
        conflicts
            .iter()
            .any(|c| c.contains("ip geolocation") && c.contains("2001:db8::1")),
        "{conflicts:?}"
    );
    // The account's decision rests on the same evidence: an established U.S. person.
    let decision = get(&app, &format!("/v1/accounts/{a}/decision")).await;
    assert_eq!(
        decision["customer_requires_verification"], false,
        "{decision}"
    );
    // The account's addresses read for the determination are in the audit trail.
    let audit = get(&app, &format!("/v1/audit?record_id={a}")).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions
            .iter()
            .filter(|x| **x == "access_countries.read")
            .count()
            >= 4,
        "countries, February, determination, decision: {actions:?}"
    );
    app.cleanup().await;
}

async fn without_a_database_countries_are_unknown(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = app.create_customer(&individual("nogeo")).await;
    let a = account(&app, &cid, "nogeo-a").await;
    ingest(
        &app,
        &[
            ev(&a, "192.0.2.10", "2026-02-01T10:00:00Z", "n1"),
            ev(&a, "198.51.100.7", "2026-02-02T10:00:00Z", "n2"),
        ],
    )
    .await;
    let ips = get(
        &app,
        &format!("/v1/accounts/{a}/ips?from=2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(ips["geolocation"], json!({"available": false}), "{ips}");
    assert!(
        ips["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["country"].is_null())
    );
    let c = get(&app, &format!("/v1/accounts/{a}/countries")).await;
    assert_eq!(c["geolocation"]["available"], false);
    assert_eq!(c["items"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["items"][0]["country"], Value::Null);
    assert_eq!(c["items"][0]["ips"], 2);
    // No location is known: the German documents decide.
    let d = get(&app, &format!("/v1/customers/{cid}/determination")).await;
    assert_eq!(d["customer"]["status"], "foreign_person", "{d}");
    assert_eq!(d["geolocation"]["available"], false);
    assert!(
        !d["customer"]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ip_geolocation")
    );
    app.cleanup().await;
}

/// A configured database that is missing, truncated or of the wrong kind stops the start with
/// an error naming `geoip_db`, before anything is created.
#[tokio::test]
async fn a_bad_geoip_db_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let load = |path: std::path::PathBuf| {
        config::load(
            None,
            ConfigLayer::default(),
            ConfigLayer {
                data_dir: Some(dir.path().join("data")),
                geoip_db: Some(path),
                ..Default::default()
            },
        )
    };
    let e = load(dir.path().join("missing.mmdb")).unwrap_err();
    assert!(e.to_string().starts_with("geoip_db: "), "{e}");

    let good = std::fs::read(write_geoip_db(dir.path())).unwrap();
    let truncated = dir.path().join("truncated.mmdb");
    std::fs::write(&truncated, &good[..good.len() / 3]).unwrap();
    let config = load(truncated).unwrap();
    let e = cip_server::install::open(&config).await.err().unwrap();
    assert!(e.to_string().starts_with("geoip_db: "), "{e}");
    assert!(
        !dir.path().join("data").join("cip.sqlite").exists(),
        "nothing is created before the database is checked"
    );

    // The env variable reaches the same check.
    let env = ConfigLayer::from_env([(
        "CIP_GEOIP_DB".to_string(),
        dir.path().join("nope.mmdb").display().to_string(),
    )])
    .unwrap();
    let e = config::load(None, env, ConfigLayer::default()).unwrap_err();
    assert!(e.to_string().starts_with("geoip_db: "), "{e}");
}
