//! The one error every store method returns, whichever backend answers.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("no database at {0}: run `goodhart serve` here first, or pass --database-url")]
    Missing(String),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("migration {version} failed: {reason}")]
    Migration { version: &'static str, reason: String },
    #[error("database worker stopped: {0}")]
    Worker(String),
    #[error("stored {what} is not valid: {value:?}")]
    Corrupt { what: &'static str, value: String },
}
