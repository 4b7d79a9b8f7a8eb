//! Screening lists and screening through the real server: versioned imports with diffs, the
//! replace guard, the real OFAC files and the invalid ones, absurd queries, roles, the audit
//! trail (without the query's values), and the CLI on the same data.

use std::path::PathBuf;
use std::process::Command;

use cip_core::model::Role;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    versions_diffs_and_the_replace_guard,
    real_ofac_lists_and_invalid_files
);

/// The shared data folder (`CIP_SHARED_DATA`, else `/work/shared/data` or an ancestor's
/// `shared/data`); missing data is a skip outside CI and a failure in CI.
fn shared_data() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CIP_SHARED_DATA") {
        return Some(PathBuf::from(p));
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for anc in manifest.ancestors() {
        let p = anc.join("shared/data");
        if p.is_dir() {
            return Some(p);
        }
    }
    let p = PathBuf::from("/work/shared/data");
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "shared test data not found (set CIP_SHARED_DATA); CI must not skip"
    );
    eprintln!("SKIPPED: shared test data not found");
    None
}

fn entry(id: &str, kind: &str, name: &str, extra: Value) -> Value {
    let mut e = json!({"id": id, "kind": kind, "name": name});
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

fn own_list_v1() -> Value {
    json!([
        entry(
            "B-1",
            "person",
            "Ivan Petrovich Sidorov",
            json!({"birth_date": ["1961-04-12"], "countries": ["RU"], "identifiers": ["passport:7100123456"]})
        ),
        entry(
            "B-2",
            "entity",
            "Northern Lights Trading LLC",
            json!({"countries": ["AE"]})
        ),
        entry(
            "B-3",
            "person",
            "Mohammed Al-Rashidi",
            json!({"aliases": ["Muhammad Rashidi"], "countries": ["SY"]})
        ),
        entry(
            "B-4",
            "vessel",
            "Ocean Zephyr",
            json!({"identifiers": ["imo:9123456"]})
        ),
        entry(
            "B-5",
            "entity",
            "Kestrel Logistics Ltd",
            json!({"countries": ["CY"]})
        )
    ])
}

/// v1 with B-2 changed (new alias), B-5 removed and B-6 added.
fn own_list_v2() -> Value {
    json!([
        entry(
            "B-1",
            "person",
            "Ivan Petrovich Sidorov",
            json!({"birth_date": ["1961-04-12"], "countries": ["RU"], "identifiers": ["passport:7100123456"]})
        ),
        entry(
            "B-2",
            "entity",
            "Northern Lights Trading LLC",
            json!({"aliases": ["NLT General Trading"], "countries": ["AE"]})
        ),
        entry(
            "B-3",
            "person",
            "Mohammed Al-Rashidi",
            json!({"aliases": ["Muhammad Rashidi"], "countries": ["SY"]})
        ),
        entry(
            "B-4",
            "vessel",
            "Ocean Zephyr",
            json!({"identifiers": ["imo:9123456"]})
        ),
        entry(
            "B-6",
            "person",
            "Jovana Markovic",
            json!({"birth_date": ["1979"]})
        )
    ])
}

async fn upload(app: &TestApp, token: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A `multipart/form-data` body built by hand: (part name, file name, bytes).
fn multipart(parts: &[(&str, &str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "cip-test-boundary-7d1f0a";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_multipart(
    app: &TestApp,
    path: &str,
    parts: &[(&str, &str, Vec<u8>)],
) -> (u16, Value) {
    let (ct, body) = multipart(parts);
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.admin)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

async fn versions_diffs_and_the_replace_guard(b: Backend) {
    let app = spawn_app(b).await;
    let analyst = app.key(Role::Analyst).await;
    let integration = app.key(Role::Integration).await;
    let auditor = app.key(Role::Auditor).await;
    let path = "/v1/lists/own-block/versions?format=own_json";

    // Screening before any list is loaded is refused, not an empty "all clear".
    let resp = app.get("/v1/screen?name=Ivan%20Sidorov", &analyst).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "CIP-SCREEN-NO-LISTS"
    );

    // Only admins load lists.
    let (status, _) = upload(&app, &analyst, path, json_bytes(&own_list_v1())).await;
    assert_eq!(status, 403);

    let (status, v) = upload(&app, &app.admin, path, json_bytes(&own_list_v1())).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["entry_count"], 5);
    assert_eq!(v["diff"], json!({"added": 5, "changed": 0, "removed": 0}));
    assert_eq!(v["previous_version"], Value::Null);

    let (status, v) = upload(&app, &app.admin, path, json_bytes(&own_list_v2())).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["previous_version"], 1);
    assert_eq!(v["diff"], json!({"added": 1, "changed": 1, "removed": 1}));

    // The same content again stores nothing.
    settle(&app).await;
    let head = app.audit_head().await;
    let (status, v) = upload(&app, &app.admin, path, json_bytes(&own_list_v2())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["created"], false);
    assert_eq!(v["version"], 2);
    assert_eq!(app.audit_head().await, head);

    let diff: Value = app
        .get("/v1/lists/own-block/versions/2/diff", &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(diff["previous_version"], 1);
    assert_eq!(diff["added"][0]["entry_id"], "B-6");
    assert_eq!(diff["added"][0]["name"], "Jovana Markovic");
    assert_eq!(diff["changed"][0]["entry_id"], "B-2");
    assert_eq!(diff["removed"], json!(["B-5"]));
    assert_eq!(
        app.get("/v1/lists/own-block/versions/9/diff", &auditor)
            .await
            .status(),
        404
    );
    let versions: Value = app
        .get("/v1/lists/own-block/versions", &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);

    // Screening: ranked candidates with an explanation; integration and analyst may screen,
    // auditors may not.
    let resp = app
        .post(
            "/v1/screen",
            &integration,
            &json!({"names": ["SIDOROV, Ivan"], "dob": "1961-04-12", "countries": ["Russia"], "kind": "person"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let hits: Value = resp.json().await.unwrap();
    let top = &hits["candidates"][0];
    assert_eq!(top["entry_id"], "B-1", "{hits}");
    assert_eq!(top["potential_match"], true);
    assert!(top["score"].as_f64().unwrap() >= 0.8);
    assert_eq!(top["explanation"]["birth_date"], "agree", "{top}");
    let aligned = top["explanation"]["name"]["aligned"].as_array().unwrap();
    assert!(!aligned.is_empty());
    // The typed explanation of the OpenAPI document: enums by their snake_case names.
    assert!(
        aligned.iter().all(|a| [
            "exact",
            "phonetic",
            "transliteration",
            "abbreviation",
            "initial",
            "edit",
            "compound"
        ]
        .contains(&a["how"].as_str().unwrap_or(""))),
        "{top}"
    );
    assert_eq!(top["explanation"]["entry_name_kind"], "primary", "{top}");
    assert_eq!(top["explanation"]["kind_mismatch"], false, "{top}");
    assert_eq!(hits["lists"]["own-block"], 2);

    let hits: Value = app
        .get("/v1/screen?name=Muhammad%20al%20Rashidi", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hits["candidates"][0]["entry_id"], "B-3", "{hits}");
    // An identifier lifts a weak name match.
    let hits: Value = app
        .post(
            "/v1/screen",
            &analyst,
            &json!({"names": ["I. Sidorenko"], "identifiers": [{"kind": "passport", "value": "71 0012 3456"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hits["candidates"][0]["entry_id"], "B-1", "{hits}");
    assert_eq!(
        app.get("/v1/screen?name=Ivan%20Sidorov", &auditor)
            .await
            .status(),
        403
    );

    // Every screening is audited, without the name.
    let audit: Value = app
        .get("/v1/audit?limit=500", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["items"].as_array().unwrap();
    let screens: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "screening.query")
        .collect();
    assert_eq!(screens.len(), 3, "{audit}");
    assert!(
        screens
            .iter()
            .all(|s| s["fields"].to_string().contains("candidates=")),
        "{screens:?}"
    );
    let text = audit.to_string();
    assert!(
        !text.contains("Sidorov") && !text.contains("SIDOROV") && !text.contains("Rashidi"),
        "the audit trail must not carry the query's values"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "list.import")
            .count(),
        2
    );

    // An empty or drastically shrunk replacement is refused and changes nothing …
    settle(&app).await;
    let head = app.audit_head().await;
    let (status, v) = upload(&app, &app.admin, path, b"[]".to_vec()).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["code"], "CIP-SCREEN-EMPTY-REPLACEMENT");
    let one = json!([own_list_v2()[0].clone()]);
    let (status, v) = upload(&app, &app.admin, path, json_bytes(&one)).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["code"], "CIP-SCREEN-DRASTIC-SHRINK");
    assert_eq!(app.audit_head().await, head);
    let lists: Value = app.get("/v1/lists", &auditor).await.json().await.unwrap();
    assert_eq!(lists["items"][0]["version"], 2);
    // … unless forced; the index follows at once.
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/own-block/versions?format=own_json&force=true",
        b"[]".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["entry_count"], 0);
    assert_eq!(v["diff"]["removed"], 5);
    let hits: Value = app
        .get("/v1/screen?name=Ivan%20Sidorov", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hits["candidates"], json!([]), "{hits}");

    // Bad requests name the problem.
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/own-block/versions?format=excel",
        b"x".to_vec(),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("CIP-LIST-0001")));
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/Bad%20Id/versions?format=own_json",
        b"[]".to_vec(),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("CIP-LIST-0001")));
    let (status, v) = upload(&app, &app.admin, "/v1/lists/x/versions", b"[]".to_vec()).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/dup/versions?format=own_json",
        json_bytes(&json!([
            entry("1", "person", "A B", json!({})),
            entry("1", "person", "C D", json!({}))
        ])),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["code"], "CIP-SCREEN-PARSE-DUPLICATE-ID");
    app.cleanup().await;
}

async fn real_ofac_lists_and_invalid_files(b: Backend) {
    let Some(data) = shared_data() else { return };
    let app = spawn_app(b).await;
    let sdn = data.join("watchlists/ofac_sdn_2021");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let good = [
        ("sdn", "sdn.csv", read(sdn.join("sdn.csv"))),
        ("alt", "alt.csv", read(sdn.join("alt.csv"))),
        ("add", "add.csv", read(sdn.join("add.csv"))),
        (
            "comments",
            "sdn_comments.csv",
            read(sdn.join("sdn_comments.csv")),
        ),
    ];
    let path = "/v1/lists/ofac-sdn/versions?format=ofac_legacy";
    let (status, v) = upload_multipart(&app, path, &good).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["entry_count"], 8976);
    let analyst = app.key(Role::Analyst).await;
    let hits: Value = app
        .get("/v1/screen?name=Xiaobing%20Yan&kind=person", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hits["candidates"][0]["entry_id"], "25308", "{hits}");

    // Each malformed file of the set is refused with its name, line and problem, and the
    // active version stays.
    for (i, file) in ["sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv"]
        .into_iter()
        .enumerate()
    {
        let mut parts: Vec<(&str, &str, Vec<u8>)> = good.to_vec();
        parts[i].2 = read(data.join("invalid").join(file));
        let (status, v) = upload_multipart(&app, path, &parts).await;
        assert_eq!(status, 422, "{file}: {v}");
        assert_eq!(v["code"], "CIP-SCREEN-PARSE-FIELD-COUNT", "{file}: {v}");
        assert!(
            v["details"][0]["field"].as_str().unwrap().starts_with(file),
            "{file}: {v}"
        );
    }
    // A file of another format, and a truncated XML file.
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/csl/versions?format=own_csv",
        read(data.join("invalid/csl.csv")),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["code"].as_str().unwrap().starts_with("CIP-SCREEN-PARSE-"),
        "{v}"
    );
    let un = read(data.join("watchlists/un_consolidated/UN_consolidated.xml"));
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/un-sc/versions?format=un_xml",
        un[..un.len() / 3].to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["code"], "CIP-SCREEN-PARSE-TRUNCATED");
    // A multipart set without its primary file, and a part that is not of the set.
    let (status, v) = upload_multipart(&app, path, &good[1..]).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("CIP-LIST-0001")),
        "{v}"
    );
    let (status, v) =
        upload_multipart(&app, path, &[("notes", "notes.txt", b"hello".to_vec())]).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("CIP-LIST-0001")),
        "{v}"
    );

    let lists: Value = app.get("/v1/lists", &analyst).await.json().await.unwrap();
    assert_eq!(lists["items"].as_array().unwrap().len(), 1, "{lists}");
    assert_eq!(lists["items"][0]["version"], 1);

    // The whole UN list loads beside it; both are screened.
    let (status, v) = upload(
        &app,
        &app.admin,
        "/v1/lists/un-sc/versions?format=un_xml",
        un,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["entry_count"], 1003);
    let hits: Value = app
        .get("/v1/screen?name=Xiaobing%20Yan", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hits["lists"], json!({"ofac-sdn": 1, "un-sc": 1}));
    app.cleanup().await;
}

/// Absurd queries get a clear 4xx naming the field, never a 5xx, and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_queries_are_clear_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, _) = upload(
        &app,
        &app.admin,
        "/v1/lists/own/versions?format=own_json",
        json_bytes(&own_list_v1()),
    )
    .await;
    assert_eq!(status, 201);
    settle(&app).await;
    let head = app.audit_head().await;
    let long = "A".repeat(10_000);
    for (body, field, code) in [
        (json!({"names": [""]}), "/names/0", "empty_name"),
        (json!({"names": ["   "]}), "/names/0", "empty_name"),
        (json!({"names": [long]}), "/names/0", "name_too_long"),
        (
            json!({"names": ["Ivan\u{0000}Sidorov"]}),
            "/names/0",
            "control_characters",
        ),
        (
            json!({"names": ["Ivan\u{001b}[31m"]}),
            "/names/0",
            "control_characters",
        ),
        (json!({"names": ["!!! ... ---"]}), "/names", "empty_name"),
        (json!({"names": []}), "/names", "required"),
        (
            json!({"names": ["Ivan"], "dob": "yesterday"}),
            "/birth_date",
            "invalid_date",
        ),
        (
            json!({"names": ["Ivan"], "countries": ["Atlantis"]}),
            "/countries/0",
            "unknown_country",
        ),
        (
            json!({"names": ["Ivan"], "kind": "dragon"}),
            "/kind",
            "invalid_value",
        ),
        (
            json!({"names": ["Ivan"], "limit": 0}),
            "/limit",
            "invalid_value",
        ),
        (
            json!({"names": ["Ivan"], "min_score": 7}),
            "/min_score",
            "invalid_value",
        ),
        (
            json!({"names": ["Ivan"], "colour": "red"}),
            "/colour",
            "unknown_field",
        ),
        (json!({"names": "Ivan"}), "/names", "invalid_type"),
    ] {
        let resp = app.post("/v1/screen", &app.admin, &body).await;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{field}: {v}");
        assert_eq!(v["code"], "CIP-VALIDATION-0001", "{v}");
        assert!(
            v["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["field"] == field && d["code"] == code),
            "{field} {code}: {v}"
        );
    }
    let resp = app
        .client
        .post(app.url("/v1/screen"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"names\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let long_get = format!("/v1/screen?name={}", "B".repeat(10_000));
    let resp = app.get(&long_get, &app.admin).await;
    assert_eq!(resp.status(), 422);
    let resp = app.get("/v1/screen?name=%07%08", &app.admin).await;
    assert_eq!(resp.status(), 422);
    let resp = app.get("/v1/screen", &app.admin).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "CIP-REQUEST-0002"
    );
    let resp = app.get("/v1/screen?name=Ivan&limit=-3", &app.admin).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        app.audit_head().await,
        head,
        "rejected queries write nothing"
    );
    // Still serving, and unicode from other scripts is a query, not an error.
    let resp = app
        .get(
            "/v1/screen?name=%D0%98%D0%B2%D0%B0%D0%BD%20%D0%A1%D0%B8%D0%B4%D0%BE%D1%80%D0%BE%D0%B2",
            &app.admin,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let hits: Value = resp.json().await.unwrap();
    assert_eq!(hits["candidates"][0]["entry_id"], "B-1", "Cyrillic: {hits}");
    app.cleanup().await;
}

/// A version stored by another process (here: the import function on the same database, as
/// the CLI does) reaches a running server through its refresh job's `refresh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_imported_elsewhere_is_picked_up() {
    let app = spawn_app(Backend::Sqlite).await;
    let analyst = app.key(Role::Analyst).await;
    let outcome = cip_server::screening::import(
        app.state.store.as_ref(),
        cip_server::screening::ImportRequest {
            list: cip_screen::ListId::new("own"),
            format: cip_server::screening::ListFormat::OwnJson,
            files: vec![cip_server::screening::ListFile {
                name: "own.json".into(),
                part: None,
                bytes: json_bytes(&own_list_v1()),
            }],
            force: false,
            actor: "test".into(),
            role: "admin".into(),
            request_id: None,
        },
        &|_| {},
    )
    .await
    .unwrap();
    assert!(outcome.created);
    assert_eq!(
        app.get("/v1/screen?name=Ivan%20Sidorov", &analyst)
            .await
            .status(),
        409,
        "not loaded by this server yet"
    );
    assert!(
        app.state
            .screening
            .refresh(app.state.store.as_ref())
            .await
            .unwrap()
    );
    assert!(
        !app.state
            .screening
            .refresh(app.state.store.as_ref())
            .await
            .unwrap(),
        "nothing new the second time"
    );
    let hits: Value = app
        .get("/v1/screen?name=Ivan%20Sidorov", &analyst)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hits["candidates"][0]["entry_id"], "B-1");
    app.cleanup().await;
}

fn cip(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("CIP_DATABASE_URL")
        .env_remove("CIP_CONFIG")
        .output()
        .unwrap()
}

/// `cip lists import|show` and `cip screen` on the data dir, with `--json` and exit codes.
#[test]
fn cli_imports_shows_and_screens() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cons = data.join("watchlists/ofac_consolidated_nonsdn");
    let files: Vec<String> = [
        "cons_prim.csv",
        "cons_alt.csv",
        "cons_add.csv",
        "cons_comments.csv",
    ]
    .iter()
    .map(|f| cons.join(f).display().to_string())
    .collect();
    let mut args = vec![
        "lists",
        "import",
        "--list",
        "ofac-cons",
        "--format",
        "ofac_legacy",
        "--json",
    ];
    args.extend(files.iter().map(String::as_str));
    let out = cip(&args, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["entry_count"], 442);
    assert_eq!(v["created"], true);

    // The same files again: unchanged, exit 0.
    let out = cip(&args, dir.path());
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["created"], false);

    // An invalid file: exit 6, the message names the file.
    let bad = data.join("invalid/alt.csv").display().to_string();
    let out = cip(
        &[
            "lists",
            "import",
            "--list",
            "ofac-cons",
            "--format",
            "ofac_legacy",
            &files[0],
            &bad,
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("alt.csv") && err.contains("CIP-SCREEN-PARSE-FIELD-COUNT"),
        "{err}"
    );

    // An empty own list replacing a real one: refused without --force.
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let empty = empty.display().to_string();
    let out = cip(
        &[
            "lists",
            "import",
            "--list",
            "ofac-cons",
            "--format",
            "own_json",
            &empty,
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CIP-SCREEN-EMPTY-REPLACEMENT"));

    let out = cip(&["lists", "show", "--json"], dir.path());
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["list"], "ofac-cons");
    assert_eq!(v[0]["version"], 1);
    let out = cip(&["lists", "show"], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ofac-cons"));

    // Screen the first entry's primary name: it ranks first.
    let prim = std::fs::read(cons.join("cons_prim.csv")).unwrap();
    let first_line = String::from_utf8_lossy(&prim)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let (id, rest) = first_line.split_once(',').unwrap();
    let name = rest.split('"').nth(1).unwrap().to_string();
    let out = cip(&["screen", &name, "--json"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["candidates"][0]["entry_id"], id, "{name}: {v}");
    let out = cip(&["screen", &name], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains(id));
    let out = cip(&["screen", ""], dir.path());
    assert_eq!(out.status.code(), Some(6));
}

/// Lets the re-screen a list import queued finish (it records its completion with an audit
/// entry), so an audit-head snapshot taken next sees only what the test does after it. No
/// sleeping: `Idle` means every change taken before has been applied.
async fn settle(app: &TestApp) {
    while let cip_server::jobs::Ran::Did(_) = cip_server::reviews::rescreen_run_once(&app.state)
        .await
        .unwrap()
    {}
}
