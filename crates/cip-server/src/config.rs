//! Configuration: defaults < TOML file < `CIP_*` environment variables < command-line flags,
//! validated once at start-up into [`Config`]. Secrets are `SecretString` and print as `***`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None` means the embedded SQLite database in `data_dir`.
    pub database_url: Option<SecretString>,
    /// Base64 (`base64:…`) or hex master key. `None`: read or create `data_dir/master.key`.
    pub master_key: Option<SecretString>,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub postgres_max_connections: u32,
    /// Seal the audit chain with a signed checkpoint this often.
    pub audit_checkpoint_secs: u64,
    /// Screening hits at or above this score open a review item.
    pub screening_threshold: f32,
    /// Look for list versions activated by another process (the CLI, another instance) this
    /// often.
    pub list_refresh_secs: u64,
    /// Body limit of `POST /v1/access-events` (batches of tens of thousands of events),
    /// after decompression.
    pub access_max_body_bytes: usize,
    /// Access events later than now + this are refused (clock skew of the sender).
    pub access_future_skew_secs: u64,
    /// A GeoLite2/GeoIP2 Country or City `.mmdb` file; `None`: countries are unknown.
    pub geoip_db: Option<PathBuf>,
    /// The NATS JetStream stream of access events `cip serve` consumes, if any.
    pub access_nats: Option<NatsConfig>,
    pub log_format: LogFormat,
    pub log_level: String,
    /// One-time codes and the verification outcome (docs/design/0011-verification.md).
    pub verification: VerificationConfig,
    /// Where the config came from, for `cip config print`.
    pub sources: Vec<String>,
}

/// How one-time codes are sent and checked, and when failures fail an account.
#[derive(Debug, Clone)]
pub struct VerificationConfig {
    pub otp_ttl_secs: u64,
    /// Wrong codes allowed per challenge; the challenge is locked after them.
    pub otp_max_attempts: u32,
    /// Minimum time between two codes to the same customer and channel.
    pub otp_resend_interval_secs: u64,
    /// Codes per customer and channel in any hour.
    pub otp_max_per_hour: u32,
    pub otp_sender: OtpSenderConfig,
    /// Failed results in one verification round that fail the account (0: never).
    pub failure_limit: u32,
    /// When set, email codes go through this SMTP server (phone codes still go to
    /// `otp_sender`).
    pub smtp: Option<SmtpConfig>,
}

/// An SMTP server for email one-time codes (`smtp_*` keys).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Username and password, when the server wants them (both or neither).
    pub credentials: Option<(String, SecretString)>,
    /// The sender mailbox, e.g. `Example Cloud <verify@example.com>`.
    pub from: String,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host (credentials are refused).
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }
}

/// Where codes go: a file per code in `data_dir/otp-outbox` (development), or an HTTP relay
/// (SMS gateway / email relay) that receives `{challenge_id, channel, to, code, expires_at}`
/// signed like webhooks.
#[derive(Debug, Clone)]
pub enum OtpSenderConfig {
    File,
    Http { url: String, secret: SecretString },
}

/// Where the access-event stream is and how it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` (or `tls://…`); credentials in the URL are redacted when printed.
    pub url: String,
    pub stream: String,
    pub subject: String,
    /// The durable pull consumer: instances sharing the name share the work.
    pub consumer: String,
    /// Messages fetched, stored and acknowledged together.
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shape of the TOML file and of the environment overrides. Every field is optional so
/// that each layer only says what it changes. Unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub master_key: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub postgres_max_connections: Option<u32>,
    pub audit_checkpoint_secs: Option<u64>,
    pub screening_threshold: Option<f32>,
    pub list_refresh_secs: Option<u64>,
    pub access_max_body_bytes: Option<usize>,
    pub access_future_skew_secs: Option<u64>,
    pub geoip_db: Option<PathBuf>,
    pub access_nats_url: Option<String>,
    pub access_nats_stream: Option<String>,
    pub access_nats_subject: Option<String>,
    pub access_nats_consumer: Option<String>,
    pub access_nats_batch: Option<usize>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub otp_ttl_secs: Option<u64>,
    pub otp_max_attempts: Option<u32>,
    pub otp_resend_interval_secs: Option<u64>,
    pub otp_max_per_hour: Option<u32>,
    /// `file` (default) or `http`.
    pub otp_sender: Option<String>,
    pub otp_http_url: Option<String>,
    pub otp_http_secret: Option<String>,
    pub verification_failure_limit: Option<u32>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_from: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl ConfigLayer {
    /// Reads `CIP_*` variables from an iterator of (name, value) pairs.
    pub fn from_env<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> Result<Self, ConfigError> {
        let mut layer = ConfigLayer::default();
        for (k, v) in vars {
            match k.as_str() {
                "CIP_LISTEN" => layer.listen = Some(v),
                "CIP_DATA_DIR" => layer.data_dir = Some(PathBuf::from(v)),
                "CIP_DATABASE_URL" => layer.database_url = Some(v),
                "CIP_MASTER_KEY" => layer.master_key = Some(v),
                "CIP_MAX_BODY_BYTES" => {
                    layer.max_body_bytes = Some(parse_num("CIP_MAX_BODY_BYTES", &v)?)
                }
                "CIP_REQUEST_TIMEOUT_SECS" => {
                    layer.request_timeout_secs = Some(parse_num("CIP_REQUEST_TIMEOUT_SECS", &v)?)
                }
                "CIP_POSTGRES_MAX_CONNECTIONS" => {
                    layer.postgres_max_connections =
                        Some(parse_num("CIP_POSTGRES_MAX_CONNECTIONS", &v)?)
                }
                "CIP_AUDIT_CHECKPOINT_SECS" => {
                    layer.audit_checkpoint_secs = Some(parse_num("CIP_AUDIT_CHECKPOINT_SECS", &v)?)
                }
                "CIP_SCREENING_THRESHOLD" => {
                    layer.screening_threshold = Some(parse_num("CIP_SCREENING_THRESHOLD", &v)?)
                }
                "CIP_LIST_REFRESH_SECS" => {
                    layer.list_refresh_secs = Some(parse_num("CIP_LIST_REFRESH_SECS", &v)?)
                }
                "CIP_ACCESS_MAX_BODY_BYTES" => {
                    layer.access_max_body_bytes = Some(parse_num("CIP_ACCESS_MAX_BODY_BYTES", &v)?)
                }
                "CIP_ACCESS_FUTURE_SKEW_SECS" => {
                    layer.access_future_skew_secs =
                        Some(parse_num("CIP_ACCESS_FUTURE_SKEW_SECS", &v)?)
                }
                "CIP_GEOIP_DB" => layer.geoip_db = Some(PathBuf::from(v)),
                "CIP_ACCESS_NATS_URL" => layer.access_nats_url = Some(v),
                "CIP_ACCESS_NATS_STREAM" => layer.access_nats_stream = Some(v),
                "CIP_ACCESS_NATS_SUBJECT" => layer.access_nats_subject = Some(v),
                "CIP_ACCESS_NATS_CONSUMER" => layer.access_nats_consumer = Some(v),
                "CIP_ACCESS_NATS_BATCH" => {
                    layer.access_nats_batch = Some(parse_num("CIP_ACCESS_NATS_BATCH", &v)?)
                }
                "CIP_LOG_FORMAT" => layer.log_format = Some(v),
                "CIP_LOG_LEVEL" => layer.log_level = Some(v),
                "CIP_OTP_TTL_SECS" => layer.otp_ttl_secs = Some(parse_num("CIP_OTP_TTL_SECS", &v)?),
                "CIP_OTP_MAX_ATTEMPTS" => {
                    layer.otp_max_attempts = Some(parse_num("CIP_OTP_MAX_ATTEMPTS", &v)?)
                }
                "CIP_OTP_RESEND_INTERVAL_SECS" => {
                    layer.otp_resend_interval_secs =
                        Some(parse_num("CIP_OTP_RESEND_INTERVAL_SECS", &v)?)
                }
                "CIP_OTP_MAX_PER_HOUR" => {
                    layer.otp_max_per_hour = Some(parse_num("CIP_OTP_MAX_PER_HOUR", &v)?)
                }
                "CIP_OTP_SENDER" => layer.otp_sender = Some(v),
                "CIP_OTP_HTTP_URL" => layer.otp_http_url = Some(v),
                "CIP_OTP_HTTP_SECRET" => layer.otp_http_secret = Some(v),
                "CIP_VERIFICATION_FAILURE_LIMIT" => {
                    layer.verification_failure_limit =
                        Some(parse_num("CIP_VERIFICATION_FAILURE_LIMIT", &v)?)
                }
                "CIP_SMTP_HOST" => layer.smtp_host = Some(v),
                "CIP_SMTP_PORT" => layer.smtp_port = Some(parse_num("CIP_SMTP_PORT", &v)?),
                "CIP_SMTP_TLS" => layer.smtp_tls = Some(v),
                "CIP_SMTP_USERNAME" => layer.smtp_username = Some(v),
                "CIP_SMTP_PASSWORD" => layer.smtp_password = Some(v),
                "CIP_SMTP_FROM" => layer.smtp_from = Some(v),
                _ => {}
            }
        }
        Ok(layer)
    }

    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// `self` overridden by every field `over` sets.
    pub fn merge(self, over: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            listen: over.listen.or(self.listen),
            data_dir: over.data_dir.or(self.data_dir),
            database_url: over.database_url.or(self.database_url),
            master_key: over.master_key.or(self.master_key),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            request_timeout_secs: over.request_timeout_secs.or(self.request_timeout_secs),
            postgres_max_connections: over
                .postgres_max_connections
                .or(self.postgres_max_connections),
            audit_checkpoint_secs: over.audit_checkpoint_secs.or(self.audit_checkpoint_secs),
            screening_threshold: over.screening_threshold.or(self.screening_threshold),
            list_refresh_secs: over.list_refresh_secs.or(self.list_refresh_secs),
            access_max_body_bytes: over.access_max_body_bytes.or(self.access_max_body_bytes),
            access_future_skew_secs: over
                .access_future_skew_secs
                .or(self.access_future_skew_secs),
            geoip_db: over.geoip_db.or(self.geoip_db),
            access_nats_url: over.access_nats_url.or(self.access_nats_url),
            access_nats_stream: over.access_nats_stream.or(self.access_nats_stream),
            access_nats_subject: over.access_nats_subject.or(self.access_nats_subject),
            access_nats_consumer: over.access_nats_consumer.or(self.access_nats_consumer),
            access_nats_batch: over.access_nats_batch.or(self.access_nats_batch),
            log_format: over.log_format.or(self.log_format),
            log_level: over.log_level.or(self.log_level),
            otp_ttl_secs: over.otp_ttl_secs.or(self.otp_ttl_secs),
            otp_max_attempts: over.otp_max_attempts.or(self.otp_max_attempts),
            otp_resend_interval_secs: over
                .otp_resend_interval_secs
                .or(self.otp_resend_interval_secs),
            otp_max_per_hour: over.otp_max_per_hour.or(self.otp_max_per_hour),
            otp_sender: over.otp_sender.or(self.otp_sender),
            otp_http_url: over.otp_http_url.or(self.otp_http_url),
            otp_http_secret: over.otp_http_secret.or(self.otp_http_secret),
            verification_failure_limit: over
                .verification_failure_limit
                .or(self.verification_failure_limit),
            smtp_host: over.smtp_host.or(self.smtp_host),
            smtp_port: over.smtp_port.or(self.smtp_port),
            smtp_tls: over.smtp_tls.or(self.smtp_tls),
            smtp_username: over.smtp_username.or(self.smtp_username),
            smtp_password: over.smtp_password.or(self.smtp_password),
            smtp_from: over.smtp_from.or(self.smtp_from),
        }
    }
}

fn parse_num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        key,
        message: format!("'{v}' is not a valid number"),
    })
}

/// Loads the layers in order: defaults, the TOML file (explicit `config_file`, else
/// `data_dir/cip.toml` when it exists), the environment, then `flags`.
pub fn load(
    config_file: Option<&Path>,
    env: ConfigLayer,
    flags: ConfigLayer,
) -> Result<Config, ConfigError> {
    let mut sources = vec!["defaults".to_string()];
    // The data dir decides where the default config file is, so look at env and flags first.
    let data_dir_hint = flags
        .data_dir
        .clone()
        .or_else(|| env.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("cip-data"));
    let file_layer = match config_file {
        Some(path) => {
            sources.push(format!("file {}", path.display()));
            ConfigLayer::from_toml_file(path)?
        }
        None => {
            let default = data_dir_hint.join("cip.toml");
            if default.exists() {
                sources.push(format!("file {}", default.display()));
                ConfigLayer::from_toml_file(&default)?
            } else {
                ConfigLayer::default()
            }
        }
    };
    if env_is_set(&env) {
        sources.push("environment (CIP_*)".into());
    }
    if env_is_set(&flags) {
        sources.push("command-line flags".into());
    }
    let merged = file_layer.merge(env).merge(flags);
    validate(merged, sources)
}

fn env_is_set(l: &ConfigLayer) -> bool {
    l.listen.is_some()
        || l.data_dir.is_some()
        || l.database_url.is_some()
        || l.master_key.is_some()
        || l.max_body_bytes.is_some()
        || l.access_max_body_bytes.is_some()
        || l.access_future_skew_secs.is_some()
        || l.request_timeout_secs.is_some()
        || l.postgres_max_connections.is_some()
        || l.audit_checkpoint_secs.is_some()
        || l.screening_threshold.is_some()
        || l.list_refresh_secs.is_some()
        || l.geoip_db.is_some()
        || l.access_nats_url.is_some()
        || l.access_nats_stream.is_some()
        || l.access_nats_subject.is_some()
        || l.access_nats_consumer.is_some()
        || l.access_nats_batch.is_some()
        || l.log_format.is_some()
        || l.log_level.is_some()
        || l.otp_ttl_secs.is_some()
        || l.otp_max_attempts.is_some()
        || l.otp_resend_interval_secs.is_some()
        || l.otp_max_per_hour.is_some()
        || l.otp_sender.is_some()
        || l.otp_http_url.is_some()
        || l.otp_http_secret.is_some()
        || l.verification_failure_limit.is_some()
        || l.smtp_host.is_some()
        || l.smtp_port.is_some()
        || l.smtp_tls.is_some()
        || l.smtp_username.is_some()
        || l.smtp_password.is_some()
        || l.smtp_from.is_some()
}

fn validate(l: ConfigLayer, sources: Vec<String>) -> Result<Config, ConfigError> {
    let verification = validate_verification(&l)?;
    let listen_raw = l.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_raw.parse().map_err(|_| ConfigError::Invalid {
        key: "listen",
        message: format!("'{listen_raw}' is not an address like 127.0.0.1:8080"),
    })?;
    let database_url = match l.database_url {
        None => None,
        Some(u) if u.trim().is_empty() => None,
        Some(u) => {
            if !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || u.starts_with("sqlite:"))
            {
                return Err(ConfigError::Invalid {
                    key: "database_url",
                    message: "must start with postgres://, postgresql:// or sqlite: (leave it unset for the embedded database in the data dir)".into(),
                });
            }
            Some(SecretString::from(u))
        }
    };
    let max_body_bytes = l.max_body_bytes.unwrap_or(1024 * 1024);
    if !(1024..=512 * 1024 * 1024).contains(&max_body_bytes) {
        return Err(ConfigError::Invalid {
            key: "max_body_bytes",
            message: "must be between 1024 and 536870912".into(),
        });
    }
    let request_timeout_secs = l.request_timeout_secs.unwrap_or(30);
    if request_timeout_secs == 0 {
        return Err(ConfigError::Invalid {
            key: "request_timeout_secs",
            message: "must be at least 1".into(),
        });
    }
    let postgres_max_connections = l.postgres_max_connections.unwrap_or(16);
    if postgres_max_connections == 0 {
        return Err(ConfigError::Invalid {
            key: "postgres_max_connections",
            message: "must be at least 1".into(),
        });
    }
    let audit_checkpoint_secs = l.audit_checkpoint_secs.unwrap_or(300);
    if audit_checkpoint_secs == 0 {
        return Err(ConfigError::Invalid {
            key: "audit_checkpoint_secs",
            message: "must be at least 1".into(),
        });
    }
    let screening_threshold = l
        .screening_threshold
        .unwrap_or(cip_screen::DEFAULT_THRESHOLD);
    if !(0.5..=1.0).contains(&screening_threshold) {
        return Err(ConfigError::Invalid {
            key: "screening_threshold",
            message: "must be between 0.5 and 1.0".into(),
        });
    }
    let list_refresh_secs = l.list_refresh_secs.unwrap_or(10);
    if list_refresh_secs == 0 {
        return Err(ConfigError::Invalid {
            key: "list_refresh_secs",
            message: "must be at least 1".into(),
        });
    }
    let access_max_body_bytes = l.access_max_body_bytes.unwrap_or(64 * 1024 * 1024);
    if !(1024..=1024 * 1024 * 1024).contains(&access_max_body_bytes) {
        return Err(ConfigError::Invalid {
            key: "access_max_body_bytes",
            message: "must be between 1024 and 1073741824".into(),
        });
    }
    let access_future_skew_secs = l.access_future_skew_secs.unwrap_or(300);
    if access_future_skew_secs > 86_400 {
        return Err(ConfigError::Invalid {
            key: "access_future_skew_secs",
            message: "must be at most 86400 (one day)".into(),
        });
    }
    let geoip_db = match l.geoip_db {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => {
            // The file itself is opened and checked by the installation (crate::geoip).
            if !p.is_file() {
                return Err(ConfigError::Invalid {
                    key: "geoip_db",
                    message: format!(
                        "{} is not a file; give the path of a GeoLite2/GeoIP2 Country or City .mmdb",
                        p.display()
                    ),
                });
            }
            Some(p)
        }
        None => None,
    };
    let access_nats = nats_config(
        l.access_nats_url,
        l.access_nats_stream,
        l.access_nats_subject,
        l.access_nats_consumer,
        l.access_nats_batch,
    )?;
    let log_format = match l.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::Invalid {
                key: "log_format",
                message: format!("'{other}' is not one of: text, json"),
            });
        }
    };
    if let Some(k) = &l.master_key
        && let Err(e) = cip_vault::MasterKey::parse(k)
    {
        return Err(ConfigError::Invalid {
            key: "master_key",
            message: format!(
                "{e}; generate one with `cip keys generate-master-key` (the value itself is not shown)"
            ),
        });
    }
    Ok(Config {
        verification,
        listen,
        data_dir: l.data_dir.unwrap_or_else(|| PathBuf::from("cip-data")),
        database_url,
        master_key: l.master_key.map(SecretString::from),
        max_body_bytes,
        request_timeout_secs,
        postgres_max_connections,
        audit_checkpoint_secs,
        screening_threshold,
        list_refresh_secs,
        access_max_body_bytes,
        access_future_skew_secs,
        geoip_db,
        access_nats,
        log_format,
        log_level: l.log_level.unwrap_or_else(|| "info".into()),
        sources,
    })
}

fn validate_verification(l: &ConfigLayer) -> Result<VerificationConfig, ConfigError> {
    let otp_ttl_secs = l.otp_ttl_secs.unwrap_or(600);
    if !(60..=86_400).contains(&otp_ttl_secs) {
        return Err(ConfigError::Invalid {
            key: "otp_ttl_secs",
            message: "must be between 60 and 86400".into(),
        });
    }
    let otp_max_attempts = l.otp_max_attempts.unwrap_or(5);
    if !(1..=20).contains(&otp_max_attempts) {
        return Err(ConfigError::Invalid {
            key: "otp_max_attempts",
            message: "must be between 1 and 20".into(),
        });
    }
    let otp_resend_interval_secs = l.otp_resend_interval_secs.unwrap_or(60);
    if otp_resend_interval_secs > 3600 {
        return Err(ConfigError::Invalid {
            key: "otp_resend_interval_secs",
            message: "must be at most 3600".into(),
        });
    }
    let otp_max_per_hour = l.otp_max_per_hour.unwrap_or(5);
    if !(1..=100).contains(&otp_max_per_hour) {
        return Err(ConfigError::Invalid {
            key: "otp_max_per_hour",
            message: "must be between 1 and 100".into(),
        });
    }
    let otp_sender = match l.otp_sender.as_deref().unwrap_or("file") {
        "file" => OtpSenderConfig::File,
        "http" => {
            let url = l.otp_http_url.clone().unwrap_or_default();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    key: "otp_http_url",
                    message: "otp_sender = \"http\" needs an http(s):// URL of the relay".into(),
                });
            }
            let secret = l.otp_http_secret.clone().unwrap_or_default();
            if secret.len() < 16 {
                return Err(ConfigError::Invalid {
                    key: "otp_http_secret",
                    message: "otp_sender = \"http\" needs a signing secret of at least 16 characters (the value itself is not shown)".into(),
                });
            }
            OtpSenderConfig::Http {
                url,
                secret: SecretString::from(secret),
            }
        }
        other => {
            return Err(ConfigError::Invalid {
                key: "otp_sender",
                message: format!("'{other}' is not one of: file, http"),
            });
        }
    };
    Ok(VerificationConfig {
        otp_ttl_secs,
        otp_max_attempts,
        otp_resend_interval_secs,
        otp_max_per_hour,
        otp_sender,
        failure_limit: l.verification_failure_limit.unwrap_or(3),
        smtp: validate_smtp(l)?,
    })
}

fn smtp_invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

fn validate_smtp(l: &ConfigLayer) -> Result<Option<SmtpConfig>, ConfigError> {
    let Some(host) = l
        .smtp_host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    else {
        if l.smtp_port.is_some()
            || l.smtp_tls.is_some()
            || l.smtp_username.is_some()
            || l.smtp_password.is_some()
            || l.smtp_from.is_some()
        {
            return Err(smtp_invalid(
                "smtp_host",
                "smtp_* keys are set but smtp_host is not; set it or remove the others",
            ));
        }
        return Ok(None);
    };
    if host.contains(['/', ':', ' ']) {
        return Err(smtp_invalid(
            "smtp_host",
            format!("'{host}' must be a host name or IPv4 address (the port goes in smtp_port)"),
        ));
    }
    let tls = match l.smtp_tls.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpTls::Starttls,
        "tls" => SmtpTls::Tls,
        "none" => SmtpTls::None,
        other => {
            return Err(smtp_invalid(
                "smtp_tls",
                format!("'{other}' is not one of: starttls, tls, none"),
            ));
        }
    };
    let port = l.smtp_port.unwrap_or(match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    });
    if port == 0 {
        return Err(smtp_invalid("smtp_port", "must be between 1 and 65535"));
    }
    let credentials = match (&l.smtp_username, &l.smtp_password) {
        (None, None) => None,
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
            Some((u.clone(), SecretString::from(p.clone())))
        }
        _ => {
            return Err(smtp_invalid(
                "smtp_password",
                "give both smtp_username and smtp_password, or neither (the values are not shown)",
            ));
        }
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if tls == SmtpTls::None && credentials.is_some() && !loopback {
        return Err(smtp_invalid(
            "smtp_tls",
            "smtp_tls = \"none\" would send the password in clear; use starttls or tls",
        ));
    }
    let from = l.smtp_from.clone().unwrap_or_default();
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(smtp_invalid(
            "smtp_from",
            format!(
                "'{from}' is not a mailbox like verify@example.com or Name <verify@example.com>"
            ),
        ));
    }
    Ok(Some(SmtpConfig {
        host: host.to_string(),
        port,
        tls,
        credentials,
        from,
    }))
}

/// A stream or consumer name: NATS forbids whitespace, `.`, `*`, `>`, path separators.
fn nats_name(key: &'static str, v: &str) -> Result<String, ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(ConfigError::Invalid {
            key,
            message: format!("'{v}' must be 1 to 255 letters, digits, '-' or '_'"),
        })
    }
}

fn nats_config(
    url: Option<String>,
    stream: Option<String>,
    subject: Option<String>,
    consumer: Option<String>,
    batch: Option<usize>,
) -> Result<Option<NatsConfig>, ConfigError> {
    let url = match url {
        Some(u) if !u.trim().is_empty() => u.trim().to_string(),
        _ => {
            if stream.is_some() || subject.is_some() || consumer.is_some() || batch.is_some() {
                return Err(ConfigError::Invalid {
                    key: "access_nats_url",
                    message: "access_nats_stream/subject/consumer/batch are set but access_nats_url is not; set it (e.g. nats://127.0.0.1:4222) or remove the others".into(),
                });
            }
            return Ok(None);
        }
    };
    let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !scheme_ok {
        return Err(ConfigError::Invalid {
            key: "access_nats_url",
            message: format!(
                "'{}' must start with nats://, tls://, ws:// or wss://",
                redact_url(&url)
            ),
        });
    }
    let stream = nats_name(
        "access_nats_stream",
        stream.as_deref().unwrap_or("CIP_ACCESS"),
    )?;
    let consumer = nats_name(
        "access_nats_consumer",
        consumer.as_deref().unwrap_or("cip-access"),
    )?;
    let subject = subject.unwrap_or_else(|| "cip.access.events".into());
    if subject.is_empty()
        || subject.contains(char::is_whitespace)
        || subject.split('.').any(|t| t.is_empty())
    {
        return Err(ConfigError::Invalid {
            key: "access_nats_subject",
            message: format!("'{subject}' is not a NATS subject (dot-separated tokens, no spaces)"),
        });
    }
    let batch = batch.unwrap_or(1000);
    if !(1..=10_000).contains(&batch) {
        return Err(ConfigError::Invalid {
            key: "access_nats_batch",
            message: "must be between 1 and 10000".into(),
        });
    }
    Ok(Some(NatsConfig {
        url,
        stream,
        subject,
        consumer,
        batch,
    }))
}

impl Config {
    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let db = match &self.database_url {
            None => format!(
                "\"sqlite:{}\"  # embedded default",
                self.data_dir.join("cip.sqlite").display()
            ),
            Some(u) => format!("\"{}\"", redact_url(u.expose_secret())),
        };
        let key = match &self.master_key {
            Some(_) => "\"***\"  # from configuration".to_string(),
            None => format!(
                "\"***\"  # from {}",
                self.data_dir.join("master.key").display()
            ),
        };
        let smtp = match &self.verification.smtp {
            None => "# smtp_host unset: email codes go to otp_sender\n".to_string(),
            Some(s) => format!(
                "smtp_host = \"{}\"\nsmtp_port = {}\nsmtp_tls = \"{}\"\n{}smtp_from = \"{}\"\n",
                s.host,
                s.port,
                s.tls.as_str(),
                match &s.credentials {
                    Some((u, _)) => format!("smtp_username = \"{u}\"\nsmtp_password = \"***\"\n"),
                    None => String::new(),
                },
                s.from.replace('"', "\\\""),
            ),
        };
        let toml = format!(
            "# sources: {}\nlisten = \"{}\"\ndata_dir = \"{}\"\ndatabase_url = {}\nmaster_key = {}\nmax_body_bytes = {}\nrequest_timeout_secs = {}\npostgres_max_connections = {}\naudit_checkpoint_secs = {}\nscreening_threshold = {}\nlist_refresh_secs = {}\naccess_max_body_bytes = {}\naccess_future_skew_secs = {}\n{}{}log_format = \"{}\"\nlog_level = \"{}\"\notp_ttl_secs = {}\notp_max_attempts = {}\notp_resend_interval_secs = {}\notp_max_per_hour = {}\notp_sender = {}\nverification_failure_limit = {}\n",
            self.sources.join(" < "),
            self.listen,
            self.data_dir.display(),
            db,
            key,
            self.max_body_bytes,
            self.request_timeout_secs,
            self.postgres_max_connections,
            self.audit_checkpoint_secs,
            self.screening_threshold,
            self.list_refresh_secs,
            self.access_max_body_bytes,
            self.access_future_skew_secs,
            match &self.geoip_db {
                Some(p) => format!("geoip_db = \"{}\"\n", p.display()),
                None => "# geoip_db unset: countries of IP addresses are unknown\n".into(),
            },
            match &self.access_nats {
                Some(n) => format!(
                    "access_nats_url = \"{}\"\naccess_nats_stream = \"{}\"\naccess_nats_subject = \"{}\"\naccess_nats_consumer = \"{}\"\naccess_nats_batch = {}\n",
                    redact_url(&n.url),
                    n.stream,
                    n.subject,
                    n.consumer,
                    n.batch
                ),
                None => "# access_nats_url unset: no access-event stream is consumed\n".into(),
            },
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            self.log_level,
            self.verification.otp_ttl_secs,
            self.verification.otp_max_attempts,
            self.verification.otp_resend_interval_secs,
            self.verification.otp_max_per_hour,
            match &self.verification.otp_sender {
                OtpSenderConfig::File => "\"file\"".to_string(),
                OtpSenderConfig::Http { url, .. } => {
                    format!("\"http\"\notp_http_url = \"{url}\"\notp_http_secret = \"***\"")
                }
            },
            self.verification.failure_limit,
        );
        toml + &smtp
    }
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ConfigLayer {
        ConfigLayer::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\nlog_level = \"debug\"\n",
        )
        .unwrap();
        let flags = ConfigLayer {
            listen: Some("127.0.0.1:9200".into()),
            ..Default::default()
        };
        let c = load(
            Some(&file),
            env(&[
                ("CIP_LISTEN", "127.0.0.1:9100"),
                ("CIP_MAX_BODY_BYTES", "8192"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9200, "flags beat env");
        assert_eq!(c.max_body_bytes, 8192, "env beats file");
        assert_eq!(c.log_level, "debug", "file beats defaults");
        assert_eq!(c.request_timeout_secs, 30, "defaults fill the rest");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load(
            None,
            env(&[("CIP_LISTEN", "nonsense")]),
            ConfigLayer::default(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("listen:"), "{e}");
        let e = ConfigLayer::from_env([("CIP_MAX_BODY_BYTES".to_string(), "ten".to_string())])
            .unwrap_err();
        assert!(e.to_string().contains("CIP_MAX_BODY_BYTES"), "{e}");
        let e = load(
            None,
            env(&[("CIP_DATABASE_URL", "mysql://x")]),
            ConfigLayer::default(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("database_url:"), "{e}");
        let e = load(
            None,
            env(&[("CIP_MASTER_KEY", "short")]),
            ConfigLayer::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("master_key:") && !e.to_string().contains("short"),
            "{e}"
        );
    }

    #[test]
    fn verification_settings_are_validated() {
        let c = load(None, env(&[]), ConfigLayer::default()).unwrap();
        assert_eq!(c.verification.otp_ttl_secs, 600);
        assert_eq!(c.verification.otp_max_attempts, 5);
        assert_eq!(c.verification.failure_limit, 3);
        assert!(matches!(c.verification.otp_sender, OtpSenderConfig::File));
        let e = load(
            None,
            env(&[("CIP_OTP_SENDER", "http")]),
            ConfigLayer::default(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("otp_http_url:"), "{e}");
        let e = load(
            None,
            env(&[
                ("CIP_OTP_SENDER", "http"),
                ("CIP_OTP_HTTP_URL", "https://relay.example/send"),
                ("CIP_OTP_HTTP_SECRET", "short"),
            ]),
            ConfigLayer::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("otp_http_secret:") && !e.to_string().contains("short"),
            "{e}"
        );
        let c = load(
            None,
            env(&[
                ("CIP_OTP_SENDER", "http"),
                ("CIP_OTP_HTTP_URL", "https://relay.example/send"),
                ("CIP_OTP_HTTP_SECRET", "a-long-relay-secret-value"),
                ("CIP_OTP_MAX_ATTEMPTS", "3"),
            ]),
            ConfigLayer::default(),
        )
        .unwrap();
        assert_eq!(c.verification.otp_max_attempts, 3);
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("a-long-relay-secret-value"), "{printed}");
        let e = load(
            None,
            env(&[("CIP_OTP_MAX_ATTEMPTS", "0")]),
            ConfigLayer::default(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("otp_max_attempts:"), "{e}");
    }

    #[test]
    fn unknown_keys_in_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let e = load(Some(&file), ConfigLayer::default(), ConfigLayer::default()).unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
    }

    #[test]
    fn the_access_stream_and_geoip_settings_are_checked() {
        let none = load(None, env(&[]), ConfigLayer::default()).unwrap();
        assert_eq!(none.access_nats, None);
        assert_eq!(none.geoip_db, None);
        let c = load(
            None,
            env(&[
                ("CIP_ACCESS_NATS_URL", "nats://u:sekrit@127.0.0.1:4222"),
                ("CIP_ACCESS_NATS_BATCH", "50"),
            ]),
            ConfigLayer::default(),
        )
        .unwrap();
        let n = c.access_nats.clone().unwrap();
        assert_eq!(
            (
                n.stream.as_str(),
                n.subject.as_str(),
                n.consumer.as_str(),
                n.batch
            ),
            ("CIP_ACCESS", "cip.access.events", "cip-access", 50)
        );
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("sekrit"), "{printed}");
        assert!(printed.contains("access_nats_batch = 50"), "{printed}");
        for (pairs, key) in [
            (vec![("CIP_ACCESS_NATS_STREAM", "S")], "access_nats_url:"),
            (
                vec![("CIP_ACCESS_NATS_URL", "http://x:4222")],
                "access_nats_url:",
            ),
            (
                vec![
                    ("CIP_ACCESS_NATS_URL", "nats://x:4222"),
                    ("CIP_ACCESS_NATS_STREAM", "a.b"),
                ],
                "access_nats_stream:",
            ),
            (
                vec![
                    ("CIP_ACCESS_NATS_URL", "nats://x:4222"),
                    ("CIP_ACCESS_NATS_SUBJECT", "a..b"),
                ],
                "access_nats_subject:",
            ),
            (
                vec![
                    ("CIP_ACCESS_NATS_URL", "nats://x:4222"),
                    ("CIP_ACCESS_NATS_BATCH", "0"),
                ],
                "access_nats_batch:",
            ),
            (vec![("CIP_GEOIP_DB", "/no/such/file.mmdb")], "geoip_db:"),
        ] {
            let e = load(None, env(&pairs), ConfigLayer::default()).unwrap_err();
            assert!(e.to_string().starts_with(key), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn redaction_hides_secrets() {
        let c = load(
            None,
            env(&[("CIP_DATABASE_URL", "postgres://cip:hunter2@db:5432/cip")]),
            ConfigLayer::default(),
        )
        .unwrap();
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://cip:***@db:5432/cip"),
            "{printed}"
        );
    }
}
