//! `cip`: the one binary. `cip serve` runs the API; the other subcommands administer an
//! installation (keys, audit, configuration) and measure it (`cip bench`).
//!
//! Exit codes (documented in the README):
//! 0 success · 1 runtime error · 2 usage error · 3 invalid configuration ·
//! 4 security refusal (wrong master key) · 5 check failed (e.g. the audit trail is broken) ·
//! 6 input refused (a list file that does not parse, a refused list replacement, an invalid
//! screening query) or partly refused (`cip access import`: bad lines reported, good lines
//! stored)

mod access;
mod bench;
mod bench_access;
mod bench_policy;
mod bench_rescreen;
mod lists;
mod measures;
mod policy;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cip_core::model::Role;
use cip_server::config::{self, Config, ConfigLayer, LogFormat};
use cip_server::install::{self, InstallError};
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: the access import allocates and frees millions
/// of small values a second on two threads (parsed events, the writer's in-memory tail), and
/// glibc's malloc/free took a third of the parsing thread and a tenth of the storing one
/// (docs/design/0007, "Third pass").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cip",
    version,
    about = "Customer Identification Program engine for IaaS providers (EO 13984)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the installation is; shared by every subcommand that opens it.
#[derive(Args, Clone, Default)]
struct Target {
    /// Folder for the embedded database and the generated master key [env: CIP_DATA_DIR] [default: cip-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…) instead of the embedded SQLite [env: CIP_DATABASE_URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// TOML config file [env: CIP_CONFIG] [default: <data-dir>/cip.toml when present]
    #[arg(long, global = true, env = "CIP_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve {
        #[command(flatten)]
        target: Target,
        /// Address to listen on [env: CIP_LISTEN] [default: 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<String>,
        /// Load sample customers (a few dozen, U.S. and foreign, with beneficial owners) into an empty database.
        #[arg(long)]
        demo: bool,
    },
    /// Show configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// API keys and encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Screening lists: import new versions, show the active ones.
    Lists {
        #[command(subcommand)]
        command: ListsCommand,
    },
    /// Special measures (EO 13984 §2): list them, report what one did.
    Measures {
        #[command(subcommand)]
        command: MeasuresCommand,
    },
    /// Screen a name against every loaded list (ranked candidates with explanations).
    Screen {
        #[command(flatten)]
        target: Target,
        /// The name of the person or entity.
        name: String,
        /// Date of birth: 1960-01-31, 1960-01 or 1960.
        #[arg(long)]
        dob: Option<String>,
        /// Country (ISO code or name); repeat for several.
        #[arg(long = "country")]
        countries: Vec<String>,
        /// person, entity, vessel or aircraft.
        #[arg(long)]
        kind: Option<String>,
        /// Candidates at most (1-100).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Lowest score shown (0-1).
        #[arg(long, default_value_t = 0.5)]
        min_score: f32,
        #[arg(long)]
        json: bool,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        target: Target,
    },
    /// The verification policy file: start one, or check what one would change.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The access record: IP addresses and times of every access to every account.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Benchmarks that print their figure beside a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (defaults < file < CIP_* env < flags), secrets redacted.
    Print {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; prints only the token on stdout (shown once, stored hashed).
    Create {
        #[command(flatten)]
        target: Target,
        /// admin, analyst, auditor or integration
        #[arg(long)]
        role: String,
        #[arg(long)]
        label: Option<String>,
        /// Print {id, role, token} as JSON instead of the bare token.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by id (the part after `cip_` in the token, or as listed).
    Revoke {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List API keys (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Make a new data-encryption key active and re-encrypt every record under it.
    /// Running servers pick the new key up within seconds and keep serving throughout.
    RotateDataKey {
        #[command(flatten)]
        target: Target,
        /// Only create and activate the key; leave re-encryption to the running servers.
        #[arg(long)]
        no_reencrypt: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print a new random master key (for CIP_MASTER_KEY in production).
    GenerateMasterKey,
}

#[derive(Subcommand)]
enum MeasuresCommand {
    /// Every special measure with its status (scheduled, in_force, expired, revoked).
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Every account a measure touched: evidence, action, deadline, when (audited).
    Report {
        #[command(flatten)]
        target: Target,
        /// The measure's id.
        id: uuid::Uuid,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the built-in policy as a file to start from.
    Init,
    /// Validate a policy file (every problem with its line; exit 6 if refused), then show
    /// what it would change for each open account compared with the policy in force.
    Check {
        #[command(flatten)]
        target: Target,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ListsCommand {
    /// Load a new version of a list from its files; prints the diff against the active one.
    /// An empty list, or one more than 20 % smaller, is refused (exit 6) unless --force.
    Import {
        #[command(flatten)]
        target: Target,
        /// List id, e.g. ofac-sdn, un-sc, own-blocklist.
        #[arg(long)]
        list: String,
        /// ofac_legacy (sdn.csv [alt.csv add.csv sdn_comments.csv]), un_xml, ftm_jsonl, own_csv, own_json.
        #[arg(long)]
        format: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show every list's active version.
    Show {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// The keyed index of screening keys: how many customers are keyed under the current key
    /// derivation (a list change reads only the customers sharing a key with it once all
    /// are). After an upgrade that changed the derivation, `serve` re-keys every customer in
    /// the background; --backfill does it now, with a progress bar.
    Keys {
        #[command(flatten)]
        target: Target,
        /// Key every customer that has no keys of the current derivation.
        #[arg(long)]
        backfill: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Import access events from NDJSON or CSV files (`.csv` by extension; gzip of either is
    /// recognised). Bad lines are reported with their number and reason, good lines stored.
    /// Resumable: run it again after an interruption and it continues where the last stored
    /// batch ended, storing no event twice. Exit 6 when some lines were refused.
    Import {
        #[command(flatten)]
        target: Target,
        /// Files to import, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Events per transaction.
        #[arg(long, default_value_t = 200_000)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run retention once now: drop the segments whose every account is two years past the
    /// later of closure and last access and not under legal hold.
    Retention {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Recount the summaries (account → addresses, address → accounts) from the events and
    /// report every disagreement; exit 5 if there is any. Reads the whole record.
    Verify {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain and every signed checkpoint; exit 5 if anything was changed,
    /// deleted or reordered.
    Verify {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint over the current chain head now.
    Checkpoint {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        let code = if error
            .downcast_ref::<InstallError>()
            .is_some_and(|e| matches!(e, InstallError::WrongMasterKey(_)))
        {
            4
        } else if error.downcast_ref::<config::ConfigError>().is_some() {
            3
        } else {
            1
        };
        Failure { code, error }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(async {
        survive_file_size_limit();
        run(cli).await
    }) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// A write past the process's file-size limit (`ulimit -f`, systemd `LimitFSIZE=`) raises
/// SIGXFSZ, whose default action kills the process mid-transaction. Handled, the write fails
/// with EFBIG instead, and the stores report it like a full disk (HTTP 507, the importer's
/// error naming the last stored line): the same loud, lossless failure.
fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    let kind = SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw());
    if let Ok(mut s) = signal(kind) {
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                tracing::warn!("file size limit reached (SIGXFSZ): the write fails with EFBIG");
            }
        });
    }
}

fn load_config(target: &Target, listen: Option<String>) -> Result<Config, Failure> {
    let env = ConfigLayer::from_env(std::env::vars()).map_err(anyhow::Error::from)?;
    let flags = ConfigLayer {
        listen,
        data_dir: target.data_dir.clone(),
        database_url: target.database_url.clone(),
        ..Default::default()
    };
    Ok(config::load(target.config.as_deref(), env, flags).map_err(anyhow::Error::from)?)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn open(config: &Config) -> Result<install::Installation, Failure> {
    Ok(install::open(config).await.map_err(anyhow::Error::from)?)
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Serve {
            target,
            listen,
            demo,
        } => serve(target, listen, demo).await,
        Command::Config {
            command: ConfigCommand::Print { target, json },
        } => {
            let config = load_config(&target, None)?;
            if json {
                print_json(&serde_json::json!({
                    "sources": config.sources,
                    "listen": config.listen.to_string(),
                    "data_dir": config.data_dir,
                    "database_url": match &config.database_url {
                        None => format!("sqlite:{}", config.data_dir.join("cip.sqlite").display()),
                        Some(u) => config::redact_url(u.expose_secret()),
                    },
                    "master_key": "***",
                    "max_body_bytes": config.max_body_bytes,
                    "request_timeout_secs": config.request_timeout_secs,
                    "postgres_max_connections": config.postgres_max_connections,
                    "audit_checkpoint_secs": config.audit_checkpoint_secs,
                    "screening_threshold": config.screening_threshold,
                    "list_refresh_secs": config.list_refresh_secs,
                    "geoip_db": config.geoip_db,
                    "access_nats": config.access_nats.as_ref().map(|n| serde_json::json!({
                        "url": config::redact_url(&n.url),
                        "stream": n.stream,
                        "subject": n.subject,
                        "consumer": n.consumer,
                        "batch": n.batch,
                    })),
                    "log_level": config.log_level,
                }));
            } else {
                print!("{}", config.to_redacted_toml());
            }
            Ok(0)
        }
        Command::Keys { command } => keys(command).await,
        Command::Audit { command } => audit(command).await,
        Command::Lists { command } => match command {
            ListsCommand::Import {
                target,
                list,
                format,
                files,
                force,
                json,
            } => {
                let config = load_config(&target, None)?;
                let inst = open(&config).await?;
                Ok(lists::import(
                    &inst,
                    lists::ImportArgs {
                        list,
                        format,
                        files,
                        force,
                        json,
                    },
                )
                .await?)
            }
            ListsCommand::Show { target, json } => {
                let config = load_config(&target, None)?;
                let inst = open(&config).await?;
                Ok(lists::show(&inst, json).await?)
            }
            ListsCommand::Keys {
                target,
                backfill,
                json,
            } => {
                let config = load_config(&target, None)?;
                let inst = open(&config).await?;
                let state = cip_server::app::state_from(&inst, &config);
                Ok(lists::keys(&state, backfill, json).await?)
            }
        },
        Command::Measures { command } => match command {
            MeasuresCommand::List { target, json } => {
                let config = load_config(&target, None)?;
                let inst = open(&config).await?;
                Ok(measures::list(&inst, json).await?)
            }
            MeasuresCommand::Report { target, id, json } => {
                let config = load_config(&target, None)?;
                let inst = open(&config).await?;
                Ok(measures::report(&inst, id, json).await?)
            }
        },
        Command::Screen {
            target,
            name,
            dob,
            countries,
            kind,
            limit,
            min_score,
            json,
        } => {
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            Ok(lists::screen(
                &inst,
                lists::ScreenArgs {
                    name,
                    dob,
                    countries,
                    kind,
                    limit,
                    min_score,
                    json,
                },
            )
            .await?)
        }
        Command::Migrate { target } => {
            let config = load_config(&target, None)?;
            init_logging(&config);
            open(&config).await?;
            eprintln!("migrations applied");
            Ok(0)
        }
        Command::Policy { command } => match command {
            PolicyCommand::Init => Ok(policy::init()),
            PolicyCommand::Check { target, file, json } => {
                // A refused file is refused before any database is opened.
                let Some(proposed) = policy::read(&file, json)? else {
                    return Ok(lists::EXIT_REFUSED);
                };
                let config = load_config(&target, None)?;
                let inst = open(&config).await?;
                Ok(policy::check(&inst, proposed, json).await?)
            }
        },
        Command::Access { command } => access_command(command).await,
        Command::Bench { command } => Ok(bench::run(command).await?),
    }
}

async fn access_command(command: AccessCommand) -> Result<u8, Failure> {
    match command {
        AccessCommand::Import {
            target,
            files,
            batch,
            json,
        } => {
            let config = load_config(&target, None)?;
            init_logging(&config);
            let inst = open(&config).await?;
            Ok(access::import(
                &inst,
                access::ImportOptions {
                    files,
                    json,
                    batch,
                    future_skew_secs: config.access_future_skew_secs,
                },
            )
            .await?)
        }
        AccessCommand::Retention { target, json } => {
            let config = load_config(&target, None)?;
            init_logging(&config);
            let inst = open(&config).await?;
            let dropped = cip_server::access::retention_run_once(
                inst.store.as_ref(),
                inst.access.as_ref(),
                cip_server::time::now_micros(),
            )
            .await
            .map_err(anyhow::Error::from)?;
            if json {
                print_json(&serde_json::json!({ "segments_dropped": dropped }));
            } else {
                println!("{dropped} segment(s) dropped");
            }
            Ok(0)
        }
        AccessCommand::Verify { target, json } => {
            let config = load_config(&target, None)?;
            init_logging(&config);
            let inst = open(&config).await?;
            let c = inst.access.verify().await.map_err(anyhow::Error::from)?;
            if json {
                print_json(&serde_json::json!({
                    "ok": c.ok(),
                    "segments": c.segments,
                    "events": c.events,
                    "pairs": c.pairs,
                    "problems": c.problems,
                }));
            } else {
                println!(
                    "{} events in {} segment(s), {} (account, address) pairs: {}",
                    c.events,
                    c.segments,
                    c.pairs,
                    if c.ok() { "consistent" } else { "INCONSISTENT" }
                );
                for p in &c.problems {
                    println!("  {p}");
                }
            }
            Ok(if c.ok() { 0 } else { 5 })
        }
    }
}

async fn serve(target: Target, listen: Option<String>, demo: bool) -> Result<u8, Failure> {
    let config = load_config(&target, listen)?;
    init_logging(&config);
    let inst = open(&config).await?;
    if inst.generated_master_key {
        eprintln!(
            "\n!!! WARNING: generated a new master key at {} !!!\n!!! Anyone with this file can decrypt every record. In production supply your own\n!!! (CIP_MASTER_KEY from a secret manager; `cip keys generate-master-key`) and keep it off this disk.\n",
            install::master_key_path(&config.data_dir).display()
        );
    }
    let state = cip_server::app::state_from(&inst, &config);
    if inst
        .store
        .list_api_keys()
        .await
        .map_err(anyhow::Error::from)?
        .is_empty()
    {
        let (row, token) = cip_server::auth::create_api_key(
            inst.store.as_ref(),
            Role::Admin,
            Some("bootstrap".into()),
            "system:bootstrap",
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the bootstrap key: {e:?}"))?;
        println!(
            "Bootstrap admin API key (shown once; create more with `cip keys create --role …`):\n\n    {}\n",
            token.expose_secret()
        );
        tracing::info!(key_id = %row.id, "bootstrap admin key created");
    }
    if demo {
        let n = cip_server::demo::load(&state)
            .await
            .map_err(|e| anyhow::anyhow!("loading demo data: {e:?}"))?;
        if n > 0 {
            eprintln!("demo: loaded {n} sample customers with accounts");
        } else {
            eprintln!("demo: database already has customers; no sample data added");
        }
    }
    // Lists loaded and the access-event stream connected before anything says "listening":
    // a configured NATS that cannot be reached is a failed start, not a late error.
    let prepared = cip_server::app::prepare(&state, &config)
        .await
        .map_err(anyhow::Error::from)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another cip running? choose another with --listen)",
                config.listen
            )
        })?;
    let addr = listener.local_addr().map_err(anyhow::Error::from)?;
    eprintln!(
        "cip listening on http://{addr} ({} database) — API docs at http://{addr}/docs",
        inst.store.backend().as_str()
    );
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    cip_server::app::serve_prepared(listener, state, &config, prepared, cancel)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn keys(command: KeysCommand) -> Result<u8, Failure> {
    match command {
        KeysCommand::GenerateMasterKey => {
            let key = cip_vault::MasterKey::generate().map_err(anyhow::Error::from)?;
            println!("{}", key.encode().expose_secret());
            Ok(0)
        }
        KeysCommand::Create {
            target,
            role,
            label,
            json,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("unknown role '{role}': use admin, analyst, auditor or integration")
            })?;
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            let (row, token) = cip_server::auth::create_api_key(
                inst.store.as_ref(),
                role,
                label,
                "cli:keys-create",
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if json {
                print_json(
                    &serde_json::json!({"id": row.id, "role": row.role, "token": token.expose_secret()}),
                );
            } else {
                println!("{}", token.expose_secret());
            }
            Ok(0)
        }
        KeysCommand::Revoke { target, id, json } => {
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            let id = id
                .trim()
                .trim_start_matches("cip_")
                .split('_')
                .next()
                .unwrap_or("")
                .to_string();
            let audit = cip_store::AuditDraft {
                at: cip_server::time::now_micros(),
                actor: "cli:keys-revoke".into(),
                role: "admin".into(),
                action: "api_key.revoke".into(),
                record_type: "api_key".into(),
                record_id: Some(id.clone()),
                fields: vec![],
                request_id: None,
                purpose: None,
            };
            let done = inst
                .store
                .revoke_api_key(&id, cip_server::time::now_micros(), audit)
                .await
                .map_err(anyhow::Error::from)?;
            if json {
                print_json(&serde_json::json!({"id": id, "revoked": done}));
            } else if done {
                println!("revoked {id}");
            }
            if !done {
                eprintln!("no active key with id {id} (see `cip keys list`)");
                return Ok(1);
            }
            Ok(0)
        }
        KeysCommand::List { target, json } => {
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            let keys = inst
                .store
                .list_api_keys()
                .await
                .map_err(anyhow::Error::from)?;
            if json {
                print_json(&serde_json::Value::Array(
                    keys.iter()
                        .map(|k| {
                            serde_json::json!({
                                "id": k.id, "role": k.role, "label": k.label,
                                "created_at": cip_server::time::to_rfc3339(k.created_at),
                                "revoked_at": k.revoked_at.map(cip_server::time::to_rfc3339),
                            })
                        })
                        .collect(),
                ));
            } else {
                println!(
                    "{:<18} {:<12} {:<28} {:<28} LABEL",
                    "ID", "ROLE", "CREATED", "REVOKED"
                );
                for k in keys {
                    println!(
                        "{:<18} {:<12} {:<28} {:<28} {}",
                        k.id,
                        k.role,
                        cip_server::time::to_rfc3339(k.created_at),
                        k.revoked_at
                            .map(cip_server::time::to_rfc3339)
                            .unwrap_or_else(|| "-".into()),
                        k.label.unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        KeysCommand::RotateDataKey {
            target,
            no_reencrypt,
            json,
        } => {
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            let new_id =
                install::rotate_data_key(inst.store.as_ref(), &inst.master, "cli:rotate-data-key")
                    .await
                    .map_err(anyhow::Error::from)?;
            let mut resealed = 0u64;
            if !no_reencrypt {
                let state = cip_server::app::state_from(&inst, &config);
                let total = inst
                    .store
                    .count_customers()
                    .await
                    .map_err(anyhow::Error::from)?;
                let bar = bench::progress_bar(total, "re-encrypting");
                loop {
                    match cip_server::jobs::rotation_run_once(&state, 500)
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?
                    {
                        cip_server::jobs::Ran::Idle => break,
                        cip_server::jobs::Ran::Did(n) => {
                            resealed += n;
                            bar.inc(n);
                        }
                    }
                }
                bar.finish_and_clear();
            }
            if json {
                print_json(
                    &serde_json::json!({"active_data_key": new_id, "reencrypted": resealed}),
                );
            } else {
                println!("data key {new_id} is active; {resealed} customer record(s) re-encrypted");
            }
            Ok(0)
        }
    }
}

async fn audit(command: AuditCommand) -> Result<u8, Failure> {
    match command {
        AuditCommand::Verify { target, json } => {
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            let (total, _) = inst.store.audit_head().await.map_err(anyhow::Error::from)?;
            let bar = bench::progress_bar(total.max(0) as u64, "verifying");
            let report = cip_server::audit::verify(inst.store.as_ref(), |n| bar.set_position(n))
                .await
                .map_err(anyhow::Error::from)?;
            bar.finish_and_clear();
            if json {
                print_json(&serde_json::to_value(&report).unwrap_or_default());
            } else if report.ok {
                println!(
                    "audit trail intact: {} entries, {} signed checkpoint(s), head {} = {}",
                    report.entries, report.checkpoints, report.head_seq, report.head_hash
                );
            } else {
                println!("AUDIT TRAIL BROKEN ({} entries checked):", report.entries);
                for p in &report.problems {
                    println!("  - {p}");
                }
            }
            Ok(if report.ok { 0 } else { 5 })
        }
        AuditCommand::Checkpoint { target, json } => {
            let config = load_config(&target, None)?;
            let inst = open(&config).await?;
            let sealed = cip_server::audit::checkpoint(inst.store.as_ref(), &inst.checkpoint_key)
                .await
                .map_err(anyhow::Error::from)?;
            if json {
                print_json(&serde_json::json!({"sealed_seq": sealed}));
            } else {
                match sealed {
                    Some(seq) => println!("checkpoint signed at entry {seq}"),
                    None => println!("nothing new to seal"),
                }
            }
            Ok(0)
        }
    }
}
