use sqlx::{Connection, Row};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    no_plaintext_at_rest,
    the_digest_is_sealed_to_its_record_and_agrees_with_it
);

/// Distinctive values written through the API; none may appear in the database's bytes.
const NEEDLES: &[&str] = &[
    "Quixote",
    "Zelda Quixote",
    "Xylophonweg",
    "Quedlinburg",
    "06484",
    "C01XPTT47",
    "+4930901820",
    "4930901820",
    "1987-02-03",
    "example.com",
    "DE89370400440532013000",
    "370400440532013000",
    "4111111111111111",
    "41111111",
    "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    "Quirky Bank",
    "psp-PT",
    "ext-PT",
    "Ursula",
    "Yarrow",
    "Watanabe",
    "TK9988776",
    "Vortex Quasar",
    "DE-ST",
];

fn find_needles(haystack: &[u8]) -> Vec<&'static str> {
    let lower: Vec<u8> = haystack.to_ascii_lowercase();
    NEEDLES
        .iter()
        .filter(|n| {
            let n_lower = n.to_ascii_lowercase();
            lower
                .windows(n_lower.len())
                .any(|w| w == n_lower.as_bytes())
        })
        .copied()
        .collect()
}

async fn no_plaintext_at_rest(b: Backend) {
    let mut app = spawn_app(b).await;
    let (id, _) = app.create_customer(&individual("PT")).await;
    app.create_customer(&entity("PT")).await;
    // A read, a lookup and an update too, so every write path has run.
    assert_eq!(
        app.get(&format!("/v1/customers/{id}"), &app.admin)
            .await
            .status(),
        200
    );
    let r = app
        .post(
            "/v1/customers/lookup",
            &app.admin,
            &serde_json::json!({"email": "zelda.pt@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.stop().await;

    let mut haystack = Vec::new();
    match b {
        Backend::Sqlite => {
            for entry in std::fs::read_dir(&app.data_dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("cip.sqlite") {
                    haystack.extend(std::fs::read(&path).unwrap());
                }
            }
            assert!(haystack.len() > 10_000, "the database files were read");
            // The sanity check that the scan can fail: the clear columns are there.
            assert!(!find_needles(b"...Quixote...").is_empty());
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.database_url.as_ref().unwrap())
                .await
                .unwrap();
            let tables: Vec<String> =
                sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("tablename"))
                    .collect();
            assert!(tables.iter().any(|t| t == "customers"));
            for t in tables {
                // Every column of every row, bytea as raw bytes (encode(...,'escape') keeps
                // printable bytes printable, so plaintext inside bytea would show). The row
                // alias must not be a column name of any table (the access record has `t`).
                let sql = format!(
                    "SELECT string_agg(x, '') AS all_text FROM (SELECT regexp_replace(row_to_json(scanned_row)::text, '\\\\x([0-9a-f]+)', '', 'g') AS x FROM {t} AS scanned_row) s"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                if let Some(text) = row.get::<Option<String>, _>("all_text") {
                    haystack.extend(text.into_bytes());
                }
                let cols: Vec<String> = sqlx::query("SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND data_type = 'bytea'")
                    .bind(&t)
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("column_name"))
                    .collect();
                for col in cols {
                    let rows =
                        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {col} AS b FROM {t}")))
                            .fetch_all(&mut c)
                            .await
                            .unwrap();
                    for r in rows {
                        haystack.extend(r.get::<Vec<u8>, _>("b"));
                    }
                }
            }
            assert!(haystack.len() > 2_000, "the tables were read");
        }
    }
    let found = find_needles(&haystack);
    assert!(
        found.is_empty(),
        "plaintext personal data found at rest: {found:?}"
    );
    app.cleanup().await;
}

/// The record digest (docs/design/0014) says what the document says — the same determination
/// facts, policy facts and screened subjects — and opens only for its own record and version.
async fn the_digest_is_sealed_to_its_record_and_agrees_with_it(b: Backend) {
    use cip_server::records::{digest, dto::CustomerDoc, seal};
    let app = spawn_app(b).await;
    let keyring = app.state.keyring();
    let (a, _) = app.create_customer(&individual("DG")).await;
    let (e, _) = app.create_customer(&entity("DG")).await;
    let row = |id: &str| {
        let store = app.state.store.clone();
        let id: uuid::Uuid = id.parse().unwrap();
        async move { store.get_customer(id).await.unwrap().unwrap() }
    };
    for id in [&a, &e] {
        let r = row(id).await;
        let (value, _) =
            seal::open_document(&keyring, r.id, &r.document, &seal::Projection::all()).unwrap();
        let doc: CustomerDoc = serde_json::from_value(value).unwrap();
        let sealed = r.digest.clone().expect("every write stores a digest");
        let d = digest::open(&keyring, r.id, r.version, &sealed).unwrap();
        assert_eq!(d, digest::Digest::of(&doc));
        // The same (kind, country) facts per person as the document gives, each once.
        let key = |ev: Vec<cip_core::determination::Evidence>| {
            let mut v: Vec<_> = ev
                .into_iter()
                .map(|e| (e.kind.as_str(), e.country.as_str().to_string()))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let (dc, dow) = d.policy.evidence();
        let (doc_c, doc_ow) = cip_server::api::determination::evidence_of(&doc);
        assert!(!doc_c.is_empty());
        assert_eq!(key(dc), key(doc_c));
        assert_eq!(dow.len(), doc_ow.len());
        for ((di, de), (oi, oe)) in dow.into_iter().zip(doc_ow) {
            assert_eq!((di, key(de)), (oi, key(oe)));
        }
        let subjects = |s: Vec<cip_server::reviews::Subject>| {
            s.into_iter().map(|s| (s.key, s.query)).collect::<Vec<_>>()
        };
        assert_eq!(
            subjects(d.screening.subjects()),
            subjects(cip_server::reviews::subjects(&doc))
        );
        assert!(!d.screening.queries[0].names.is_empty());
        let (f, g) = (
            cip_server::policy::facts_of(&doc),
            cip_server::policy::facts_of_digest(&d.policy),
        );
        assert_eq!(format!("{f:?}"), format!("{g:?}"));
        // No plaintext in the stored digest.
        for part in [&sealed.policy, &sealed.screening] {
            let text = String::from_utf8_lossy(part);
            assert!(!text.contains("Zelda") && !text.contains("Vortex"));
        }
    }
    let (ra, re) = (row(&a).await, row(&e).await);
    let sealed = ra.digest.clone().unwrap();
    assert!(
        digest::open(&keyring, re.id, ra.version, &sealed).is_err(),
        "a digest moved to another record does not open"
    );
    let swapped = cip_store::SealedDigest {
        policy: sealed.screening.clone(),
        screening: sealed.policy.clone(),
    };
    assert!(
        digest::open(&keyring, ra.id, ra.version, &swapped).is_err(),
        "one part put in the other's place does not open"
    );

    // An update rewrites it; the old one does not open as the new version.
    let mut body = individual("DG");
    body["identity"]["citizenships"] = serde_json::json!(["FR"]);
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{a}")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let updated = row(&a).await;
    assert_eq!(updated.version, 2);
    assert!(digest::open(&keyring, updated.id, 2, &sealed).is_err());
    let d = digest::open(&keyring, updated.id, 2, updated.digest.as_ref().unwrap()).unwrap();
    assert!(d.screening.queries[0].countries.contains(&"FR".to_string()));
    app.cleanup().await;
}
