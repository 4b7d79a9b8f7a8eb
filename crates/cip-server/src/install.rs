//! Opening an installation: the master key, the database, and the key material wrapped under
//! the master key in the database (data keys, blind-index root, checkpoint signing key).
//!
//! A wrong master key is detected before anything is written: the stored check value is
//! compared first, and only a brand-new database gets the key material created.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cip_store::{AuditDraft, Store, StoreError, postgres::PgStore, sqlite::SqliteStore};
use cip_vault::{CheckpointKey, DataKey, IndexRootKey, Keyring, MasterKey, VaultError};
use secrecy::ExposeSecret;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "the master key does not match this database (its check value differs). Nothing was read or written. Supply the master key this installation was created with (CIP_MASTER_KEY or {0})"
    )]
    WrongMasterKey(String),
    #[error(
        "cannot use the data directory {path}: {source}. Create it or choose another with --data-dir"
    )]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the master key file {path} is invalid: {message}")]
    MasterKeyFile { path: PathBuf, message: String },
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the access record: {0}")]
    Access(#[from] cip_access::AccessError),
    #[error(transparent)]
    GeoIp(#[from] crate::geoip::GeoIpError),
    #[error("key material in the database is damaged or was wrapped under another master key: {0}")]
    Vault(#[from] VaultError),
}

/// An open installation: the store and the keys, ready to serve.
pub struct Installation {
    pub store: Arc<dyn Store>,
    /// The access record (its own files or tables; see `crate::access`).
    pub access: Arc<dyn cip_access::AccessStore>,
    /// Countries of IP addresses (`geoip_db`), or none.
    pub geoip: Arc<dyn crate::geoip::Geolocate>,
    pub keyring: Arc<RwLock<Arc<Keyring>>>,
    pub master: Arc<MasterKey>,
    pub checkpoint_key: Arc<CheckpointKey>,
    /// True when this start created the master key file (the caller warns loudly).
    pub generated_master_key: bool,
}

impl Installation {
    pub fn keyring(&self) -> Arc<Keyring> {
        current_keyring(&self.keyring)
    }
}

pub fn current_keyring(k: &RwLock<Arc<Keyring>>) -> Arc<Keyring> {
    match k.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

const META_CHECK: &str = "master_key_check";
const META_INDEX_ROOT: &str = "index_root";
const META_CHECKPOINT_KEY: &str = "checkpoint_key";
const META_ACTIVE_DATA_KEY: &str = "active_data_key";

fn data_key_meta(id: u32) -> String {
    format!("data_key:{id}")
}

pub fn master_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("master.key")
}

fn load_or_create_master_key(config: &Config) -> Result<(MasterKey, bool), InstallError> {
    if let Some(k) = &config.master_key {
        let key = MasterKey::parse(k.expose_secret()).map_err(|e| InstallError::MasterKeyFile {
            path: PathBuf::from("CIP_MASTER_KEY"),
            message: e.to_string(),
        })?;
        return Ok((key, false));
    }
    let path = master_key_path(&config.data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = MasterKey::parse(&text).map_err(|e| InstallError::MasterKeyFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate()?;
            write_secret_file(&path, key.encode().expose_secret())?;
            Ok((key, true))
        }
        Err(source) => Err(InstallError::DataDir { path, source }),
    }
}

/// Writes a file readable by its owner only, created exclusively (never overwrites a key).
fn write_secret_file(path: &Path, contents: &str) -> Result<(), InstallError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|source| InstallError::DataDir {
        path: path.to_path_buf(),
        source,
    })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|source| InstallError::DataDir {
            path: path.to_path_buf(),
            source,
        })
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, InstallError> {
    match &config.database_url {
        Some(url) if url.expose_secret().starts_with("postgres") => Ok(Arc::new(
            PgStore::open(url.expose_secret(), config.postgres_max_connections).await?,
        )),
        Some(url) => Ok(Arc::new(SqliteStore::open_url(url.expose_secret()).await?)),
        None => Ok(Arc::new(
            SqliteStore::open(&config.data_dir.join("cip.sqlite")).await?,
        )),
    }
}

/// Opens (creating on first start) the installation described by `config`.
pub async fn open(config: &Config) -> Result<Installation, InstallError> {
    // A configured geolocation database that cannot be read stops the start before anything
    // is created or written.
    let geoip = crate::geoip::open(config.geoip_db.as_deref())?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| InstallError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let (master, generated) = load_or_create_master_key(config)?;
    let store = open_store(config).await?;

    // 1. The check value: compare before writing anything.
    let check = master.check_value();
    match store.get_meta(META_CHECK).await? {
        Some(stored) if stored != check => {
            return Err(InstallError::WrongMasterKey(
                master_key_path(&config.data_dir).display().to_string(),
            ));
        }
        Some(_) => {}
        None => {
            let stored = store.init_meta(META_CHECK, &check).await?;
            if stored != check {
                return Err(InstallError::WrongMasterKey(
                    master_key_path(&config.data_dir).display().to_string(),
                ));
            }
        }
    }

    // 2. Key material, created once; concurrent first starts agree through init_meta.
    let index_root = {
        let fresh = cip_vault::wrap_index_root(&master, &IndexRootKey::generate()?)?;
        let wrapped = store.init_meta(META_INDEX_ROOT, &fresh).await?;
        cip_vault::unwrap_index_root(&master, &wrapped)?
    };
    let checkpoint_key = {
        let fresh = CheckpointKey::generate()?.wrap(&master)?;
        let wrapped = store.init_meta(META_CHECKPOINT_KEY, &fresh).await?;
        CheckpointKey::unwrap(&master, &wrapped)?
    };
    {
        let fresh = cip_vault::wrap_data_key(&master, &DataKey::generate(1)?)?;
        store.init_meta(&data_key_meta(1), &fresh).await?;
        store.init_meta(META_ACTIVE_DATA_KEY, b"1").await?;
    }
    let keyring = Arc::new(RwLock::new(Arc::new(
        load_keyring(store.as_ref(), &master, index_root).await?,
    )));
    let access = crate::access::open(config, keyring.clone()).await?;
    Ok(Installation {
        store,
        access,
        geoip,
        keyring,
        master: Arc::new(master),
        checkpoint_key: Arc::new(checkpoint_key),
        generated_master_key: generated,
    })
}

async fn active_data_key_id(store: &dyn Store) -> Result<u32, InstallError> {
    let raw = store
        .get_meta(META_ACTIVE_DATA_KEY)
        .await?
        .unwrap_or_else(|| b"1".to_vec());
    std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(InstallError::Vault(VaultError::Malformed(
            "active data key id",
        )))
}

/// Loads every data key up to the active one (ids are consecutive from 1).
pub async fn load_keyring(
    store: &dyn Store,
    master: &MasterKey,
    index_root: IndexRootKey,
) -> Result<Keyring, InstallError> {
    let active_id = active_data_key_id(store).await?;
    let mut active = None;
    let mut others = Vec::new();
    for id in 1..=active_id {
        let Some(wrapped) = store.get_meta(&data_key_meta(id)).await? else {
            continue;
        };
        let key = cip_vault::unwrap_data_key(master, id, &wrapped)?;
        if id == active_id {
            active = Some(key);
        } else {
            others.push(key);
        }
    }
    let active = active.ok_or(InstallError::Vault(VaultError::UnknownKeyId(active_id)))?;
    Ok(Keyring::new(active, others, index_root))
}

/// Re-reads the keyring from the database (another instance or the CLI may have rotated).
pub async fn reload_keyring(
    inst_store: &dyn Store,
    master: &MasterKey,
) -> Result<Keyring, InstallError> {
    let wrapped = inst_store
        .get_meta(META_INDEX_ROOT)
        .await?
        .ok_or(InstallError::Vault(VaultError::Malformed(
            "index root missing",
        )))?;
    let index_root = cip_vault::unwrap_index_root(master, &wrapped)?;
    load_keyring(inst_store, master, index_root).await
}

/// Creates a new data key and makes it active. Existing ciphertexts stay readable; the
/// rotation job re-encrypts them in the background. Returns the new key id.
pub async fn rotate_data_key(
    store: &dyn Store,
    master: &MasterKey,
    actor: &str,
) -> Result<u32, InstallError> {
    let next = active_data_key_id(store).await? + 1;
    let fresh = cip_vault::wrap_data_key(master, &DataKey::generate(next)?)?;
    store.init_meta(&data_key_meta(next), &fresh).await?;
    store
        .set_meta(
            META_ACTIVE_DATA_KEY,
            next.to_string().as_bytes(),
            AuditDraft {
                at: crate::time::now_micros(),
                actor: actor.into(),
                role: "admin".into(),
                action: "data_key.rotate".into(),
                record_type: "data_key".into(),
                record_id: Some(next.to_string()),
                fields: vec![],
                request_id: None,
                purpose: Some("data key rotation".into()),
            },
        )
        .await?;
    Ok(next)
}
