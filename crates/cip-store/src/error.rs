use crate::IdempotencyRecord;

/// Errors of the storage layer. Driver errors are turned into these at the adapter boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record not found")]
    NotFound,
    #[error("the record was changed by someone else (current version {current})")]
    VersionConflict { current: i64 },
    #[error("a record with this {what} already exists")]
    Duplicate { what: &'static str },
    /// The idempotency key was used before by the same principal; the stored outcome is returned.
    #[error("idempotency key already used")]
    IdempotencyReplay(Box<IdempotencyRecord>),
    #[error("the disk is full: free space or grow the volume; nothing was stored")]
    DiskFull,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database schema is newer than this cip binary: upgrade cip")]
    SchemaTooNew,
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) => {
                let msg = db.message().to_ascii_lowercase();
                if msg.contains("database or disk is full")
                    || msg.contains("no space left")
                    || db.code().as_deref() == Some("53100")
                {
                    StoreError::DiskFull
                } else {
                    StoreError::Backend(db.message().to_string())
                }
            }
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from_sqlx(e)
    }
}
