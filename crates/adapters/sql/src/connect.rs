//! Opening a pool for a database URL and bringing its schema up to date.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_ASSET: Migrator = sqlx::migrate!("migrations/sqlite/asset");
static SQLITE_ALERT: Migrator = sqlx::migrate!("migrations/sqlite/alert");
static POSTGRES_ASSET: Migrator = sqlx::migrate!("migrations/postgres/asset");
static POSTGRES_ALERT: Migrator = sqlx::migrate!("migrations/postgres/alert");

/// Which service's tables a database holds: each service owns its own database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Asset,
    Alert,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL `{0}` (expected sqlite: or postgres:)")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] MigrateError),
    #[error("cannot make the database file readable by its owner only")]
    Permissions(#[source] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, ConnectError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(ConnectError::UnsupportedUrl(redact(url)))
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// How long a caller waits for a connection before the call fails as unavailable. sqlx waits 30
/// seconds by default, retrying a refused connection all along; a database that is down would
/// hold every request that long. The alert consumer and the trigger pipeline retry on their own.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Every SQLite connection: the write-ahead log, a writer waits up to 5 s for another, and
/// commits are not synced to disk one by one. With the write-ahead log, `synchronous = NORMAL`
/// keeps every committed transaction through a crash of the process (the log is in the operating
/// system's page cache, which outlives it) and never corrupts the file; only a crash of the
/// operating system or a power cut may undo the transactions committed since the last
/// checkpoint's sync. `FULL`, SQLite's default, syncs the log on every commit, which on a shared
/// disk costs milliseconds to tens of milliseconds on the path of every alert.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;";

/// Connects to `url` and applies the migrations of `schema`.
pub async fn connect(url: &str, schema: Schema) -> Result<AnyPool, ConnectError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    if backend == Backend::Sqlite {
        crate::owner_only::restrict_sqlite_files(url).map_err(ConnectError::Permissions)?;
    }
    let options = AnyConnectOptions::from_str(url).map_err(ConnectError::Connect)?;
    let pool = AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(match backend {
            // SQLite serialises writers anyway; a few readers are plenty.
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        })
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(SQLITE_PRAGMAS).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(ConnectError::Connect)?;
    let migrator = match (backend, schema) {
        (Backend::Sqlite, Schema::Asset) => &SQLITE_ASSET,
        (Backend::Sqlite, Schema::Alert) => &SQLITE_ALERT,
        (Backend::Postgres, Schema::Asset) => &POSTGRES_ASSET,
        (Backend::Postgres, Schema::Alert) => &POSTGRES_ALERT,
    };
    migrator.run(&pool).await.map_err(ConnectError::Migrate)?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x"),
            "postgres://***@db:5432/x"
        );
        assert_eq!(redact("sqlite://data/a.db"), "sqlite://data/a.db");
    }
}
