use sqlx::{Connection, Row};

use crate::both_backends;
use crate::helpers::*;

both_backends!(no_plaintext_at_rest);

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
                // Every column of every row, bytea as raw bytes (the row alias must not be a
                // column name: access_events has a column `t`) (encode(...,'escape') keeps
                // printable bytes printable, so plaintext inside bytea would show).
                let sql = format!(
                    "SELECT string_agg(x, '') AS all_text FROM (SELECT regexp_replace(row_to_json(whole_row)::text, '\\\\x([0-9a-f]+)', '', 'g') AS x FROM {t} whole_row) s"
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
