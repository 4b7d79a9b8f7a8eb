use std::path::PathBuf;

use cip_core::model::Role;
use cip_server::app::state_from;
use cip_server::config::{self, ConfigLayer};
use cip_server::state::AppState;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("CIP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub backend: Backend,
    cancel: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<String>,
}

/// Generates one test per backend from an `async fn(Backend)` scenario.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::helpers::postgres_available().await { return; }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Outside CI an unreachable PostgreSQL skips (with a message); in CI it fails.
pub async fn postgres_available() -> bool {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(&pg_admin_url()).await {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: PostgreSQL unavailable ({e}); set CI=1 to make this fail");
            false
        }
        Err(e) => panic!("PostgreSQL is required in CI: {e}"),
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in(backend, dir.path().to_path_buf(), None).await;
    app._dir = Some(dir);
    app
}

/// Boots a server over `data_dir` (and, for PostgreSQL, a new scratch database unless one
/// is given).
/// A server whose configuration adds `extra` (geoip_db, access_nats_*, …) to the defaults.
pub async fn spawn_app_with(backend: Backend, extra: ConfigLayer) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in_with(backend, dir.path().to_path_buf(), None, extra).await;
    app._dir = Some(dir);
    app
}

pub async fn spawn_app_in(
    backend: Backend,
    data_dir: PathBuf,
    pg: Option<(String, String)>,
) -> TestApp {
    spawn_app_in_with(backend, data_dir, pg, ConfigLayer::default()).await
}

pub async fn spawn_app_in_with(
    backend: Backend,
    data_dir: PathBuf,
    pg: Option<(String, String)>,
    extra: ConfigLayer,
) -> TestApp {
    let (database_url, pg_name) = match (backend, pg) {
        (Backend::Sqlite, _) => (None, None),
        // An empty name: the database belongs to another TestApp, which drops it.
        (Backend::Postgres, Some((url, name))) => (Some(url), Some(name).filter(|n| !n.is_empty())),
        (Backend::Postgres, None) => {
            let (url, name) = cip_store::postgres::create_scratch_database(&pg_admin_url())
                .await
                .unwrap();
            (Some(url), Some(name))
        }
    };
    let flags = ConfigLayer {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.clone()),
        database_url: database_url.clone(),
        max_body_bytes: Some(256 * 1024),
        audit_checkpoint_secs: Some(3600),
        // Tests drive `Screening::refresh` themselves; the job must not race them.
        list_refresh_secs: Some(3600),
        ..Default::default()
    };
    let config = config::load(None, ConfigLayer::default(), flags.merge(extra)).unwrap();
    let inst = cip_server::install::open(&config).await.unwrap();
    let (_, token) = cip_server::auth::create_api_key(
        inst.store.as_ref(),
        Role::Admin,
        Some("test".into()),
        "test",
    )
    .await
    .unwrap();
    let state = state_from(&inst, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let (s2, c2) = (state.clone(), cancel.clone());
    let handle = tokio::spawn(async move {
        cip_server::app::serve(listener, s2, &config, c2)
            .await
            .unwrap();
    });
    TestApp {
        base,
        admin: token.expose_secret().to_string(),
        client: reqwest::Client::new(),
        state,
        data_dir,
        database_url,
        backend,
        cancel,
        handle: Some(handle),
        _dir: None,
        pg: pg_name,
    }
}

impl TestApp {
    /// Runs the `cip` binary with `args` against this app's database (its data dir, and its
    /// PostgreSQL URL on that backend), ignoring the caller's environment.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cip"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("CIP_DATABASE_URL")
            .env_remove("CIP_CONFIG");
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.output().unwrap()
    }

    pub async fn key(&self, role: Role) -> String {
        let (_, token) =
            cip_server::auth::create_api_key(self.state.store.as_ref(), role, None, "test")
                .await
                .unwrap();
        token.expose_secret().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_customer(&self, body: &Value) -> (String, Value) {
        let resp = self.post("/v1/customers", &self.admin, body).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "create failed: {v}");
        (v["id"].as_str().unwrap().to_string(), v)
    }

    pub async fn audit_head(&self) -> i64 {
        self.state.store.audit_head().await.unwrap().0
    }

    pub async fn customer_count(&self) -> u64 {
        self.state.store.count_customers().await.unwrap()
    }

    /// Stops the server; the data stays (for restart tests) until the TestApp is dropped.
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }

    pub async fn cleanup(mut self) {
        self.stop().await;
        if let Some(name) = self.pg.take() {
            cip_store::postgres::drop_database(&pg_admin_url(), &name)
                .await
                .unwrap();
        }
    }
}

/// A foreign individual with every identity field.
pub fn individual(tag: &str) -> Value {
    json!({
        "kind": "individual",
        "external_id": format!("ext-{tag}"),
        "identity": {
            "names": [{"kind": "legal", "full": format!("Zelda Quixote{tag}")}, {"kind": "other", "full": "Zed Q."}],
            "birth_date": "1987-02-03",
            "citizenships": ["DE"],
            "national_ids": [{"type": "passport", "number": format!("C01X{tag}T47"), "issuing_country": "DE"}],
            "addresses": [{"kind": "residential", "lines": [format!("{tag} Xylophonweg")], "city": "Quedlinburg", "postal_code": "06484", "subdivision": "DE-ST", "country": "DE"}],
            "emails": [format!("Zelda.{tag}@Example.COM")],
            "phones": ["+49 30 901820"]
        },
        "payment_methods": [
            {"type": "card", "card": {"number": "4111 1111 1111 1111", "issuing_country": "DE"}, "external_customer_id": format!("psp-{tag}"), "transaction_ids": ["txn-1"]},
            {"type": "bank_account", "bank_account": {"institution": "Quirky Bank", "iban": "DE89 3704 0044 0532 0130 00"}},
            {"type": "crypto_wallet", "crypto_wallet": {"chain": "ethereum", "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}}
        ]
    })
}

/// An entity with one U.S. and one foreign beneficial owner.
pub fn entity(tag: &str) -> Value {
    json!({
        "kind": "entity",
        "identity": {
            "names": [{"full": format!("Vortex Quasar {tag} LLC")}],
            "addresses": [{"kind": "registered", "lines": ["1 Commerce Plaza"], "subdivision": "US-DE", "country": "US"}],
            "emails": [format!("ops-{tag}@vortex.example")]
        },
        "entity": {"place_of_organization": "US", "organization_subdivision": "US-DE", "entity_type": "LLC"},
        "beneficial_owners": [
            {"identity": {"names": [{"full": "Ursula Yarrow"}], "citizenships": ["US"], "birth_date": "1970-01-01", "phones": ["+12025550143"], "emails": [format!("ursula-{tag}@example.com")]}, "ownership_percent": 60, "control_role": "CEO"},
            {"identity": {"names": [{"full": "Kenji Watanabe"}], "citizenships": ["JP"], "national_ids": [{"type": "passport", "number": "TK9988776", "issuing_country": "JP"}]}, "ownership_percent": 30}
        ]
    })
}

/// A GeoLite2-Country-shaped database over the documentation ranges: 192.0.2.0/24 → US,
/// 198.51.100.0/24 → DE, 203.0.113.0/25 → PR (a U.S. territory), 2001:db8::/32 → FR;
/// 203.0.113.128/25 and everything else unknown.
pub fn write_geoip_db(dir: &std::path::Path) -> PathBuf {
    use mmdb_writer::{Value, Writer};
    let mut w = Writer::builder("GeoLite2-Country")
        .description(&[("en", "cip test database (documentation ranges)")])
        .build();
    for (net, cc) in [
        ("192.0.2.0/24", "US"),
        ("198.51.100.0/24", "DE"),
        ("203.0.113.0/25", "PR"),
        ("2001:db8::/32", "FR"),
    ] {
        w.insert_value(
            net.parse::<ipnet::IpNet>().unwrap(),
            Value::map([("country", Value::map([("iso_code", Value::from(cc))]))]),
        )
        .unwrap();
    }
    let path = dir.join("GeoLite2-Country.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// Outside CI an unreachable NATS skips (with a message); in CI it fails, like PostgreSQL.
pub async fn nats_available() -> bool {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(3))
        .connect(NATS_URL);
    match connect.await {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: NATS unavailable at {NATS_URL} ({e}); set CI=1 to make this fail");
            false
        }
        Err(e) => panic!("NATS JetStream at {NATS_URL} is required in CI: {e}"),
    }
}

/// A webhook receiver on port 0 that answers 200 and hands every body to the test.
pub async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}
