//! PostgreSQL / TimescaleDB store of PCI Scope Guard.
//!
//! - [`migrate`]: versioned, idempotent migrations (`migrations/*.sql`,
//!   compiled in), applied under an advisory lock so several processes may
//!   start at once.
//! - [`Store`]: a deadpool-postgres pool plus the time-partitioning mode
//!   (TimescaleDB hypertables, or native daily partitions that the writers
//!   create ahead and on demand).
//! - Writers and readers, one module per table family: [`resources`],
//!   [`flows`], [`decisions`], [`evidence`], [`grc`] (`grc_syncs`). Bulk writes go through binary
//!   COPY; every write is idempotent (deterministic ids, `ON CONFLICT`).
//!
//! - [`connect`]: the one way to the server: the URL with libpq's TLS
//!   parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) becomes a
//!   tokio-postgres configuration plus an OpenSSL connector; [`pool`],
//!   [`Store::connect`] and [`migrate`] all go through it.
//!
//! SQL only through parameters: values are always bind parameters (`$1`,
//! ...); the few statements assembled with `format!` splice in only
//! constant column lists of this crate, never a value.

pub mod connect;
mod copy;
pub mod decisions;
pub mod evidence;
pub mod flows;
pub mod grc;
pub mod migrate;
pub mod operator;
pub mod reports;
pub mod resources;

use dashmap::DashSet;
use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

pub use connect::Connector;
pub use migrate::{MigrateOptions, MigrationReport, Policies, Timescale, migrate, migrate_with};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database url is invalid: {0}")]
    Url(String),
    #[error("database: {context}: {}", pg_message(source))]
    Postgres {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database: cannot connect{}: {}", endpoint.as_deref().map(|e| format!(" to {e}")).unwrap_or_default(), pg_message(source))]
    Connect {
        /// `host:port`, when known.
        endpoint: Option<String>,
        #[source]
        source: tokio_postgres::Error,
    },
    /// TLS set-up or handshake failure (`TLS handshake with HOST:PORT failed: ...`).
    #[error("database: {message}")]
    Tls { message: String, transient: bool },
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the database, {file} in this build); restore it and add a new migration instead"
    )]
    MigrationChanged { version: i32, name: String, applied: String, file: String },
    #[error(
        "the database schema is at version {found}, newer than this build knows ({known}); upgrade pci-scope-guard"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error("the database has no PCI Scope Guard schema: run `pci-scope-guard migrate` first")]
    NotMigrated,
    #[error("TimescaleDB: {0}")]
    Timescale(String),
    #[error("database holds a value this build cannot read: {0}")]
    Data(String),
}

/// A PostgreSQL error with the server's message (tokio-postgres shows only
/// "db error"), or tokio-postgres's with its causes ("error connecting to
/// server: Connection refused (os error 111)"). Neither ever holds the
/// password: tokio-postgres's messages name options, never their values.
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl Error {
    pub(crate) fn pg(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| Self::Postgres { context, source }
    }

    /// Whether retrying later may succeed (connection lost, server starting
    /// or shutting down, serialization failure, deadlock, a referenced row
    /// not written yet by another service).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Connect { .. } => true,
            Self::Tls { transient, .. } => *transient,
            Self::Postgres { source, .. } => match source.code() {
                None => true, // I/O or closed connection
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57P")
                        || *code == SqlState::T_R_SERIALIZATION_FAILURE
                        || *code == SqlState::T_R_DEADLOCK_DETECTED
                        || *code == SqlState::FOREIGN_KEY_VIOLATION
                }
            },
            _ => false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How `data_flows` and `audit_logs` are partitioned by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePartitioning {
    /// TimescaleDB hypertables: chunks are created by TimescaleDB.
    Timescale,
    /// Native range partitions, one per day, created by us.
    Native,
}

/// A pool of connections and what the store knows about the schema.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// `host:port` of the server, for error messages.
    endpoint: std::sync::Arc<str>,
    partitioning: TimePartitioning,
    /// Daily partitions known to exist: (table, day).
    partitions: std::sync::Arc<DashSet<(&'static str, chrono::NaiveDate)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("partitioning", &self.partitioning).finish_non_exhaustive()
    }
}

/// A connection pool for `url`, without checking the schema (for `migrate`).
/// TLS as the URL's `sslmode`/`sslrootcert`/`sslcert`/`sslkey` say (see [`connect`]).
pub fn pool(url: &str, size: usize) -> Result<Pool> {
    Connector::new(url)?.pool(size)
}

impl Store {
    /// Connects and checks that the schema is migrated and not newer than this build.
    pub async fn connect(url: &str, size: usize) -> Result<Self> {
        let connector = Connector::new(url)?;
        let pool = connector.pool(size)?;
        let endpoint: std::sync::Arc<str> = connector.endpoint().into();
        let client = pool.get().await.map_err(|e| connect::pool_error(Some(&endpoint), e))?;
        let version = migrate::current_version(&client).await?;
        match version {
            None | Some(0) => return Err(Error::NotMigrated),
            Some(v) if v > migrate::latest_version() => {
                return Err(Error::SchemaTooNew { found: v, known: migrate::latest_version() });
            }
            Some(_) => {}
        }
        let row = client
            .query_opt("SELECT value FROM psg_settings WHERE key = 'time_partitioning'", &[])
            .await
            .map_err(Error::pg("reading settings"))?;
        let partitioning = match row.map(|r| r.get::<_, String>(0)).as_deref() {
            Some("timescaledb") => TimePartitioning::Timescale,
            _ => TimePartitioning::Native,
        };
        Ok(Self { pool, endpoint, partitioning, partitions: Default::default() })
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| connect::pool_error(Some(&self.endpoint), e))
    }

    pub fn partitioning(&self) -> TimePartitioning {
        self.partitioning
    }

    /// The most connections the pool holds at once.
    pub fn pool_size(&self) -> usize {
        self.pool.status().max_size
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.client().await?.simple_query("SELECT 1").await.map_err(Error::pg("ping"))?;
        Ok(())
    }

    /// Makes sure the daily partitions of `table` for `days` exist (native
    /// partitioning only; a no-op under TimescaleDB).
    pub async fn ensure_partitions(&self, table: &'static str, days: &[chrono::NaiveDate]) -> Result<()> {
        if self.partitioning == TimePartitioning::Timescale {
            return Ok(());
        }
        let missing: Vec<_> = days.iter().filter(|d| !self.partitions.contains(&(table, **d))).copied().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        for day in missing {
            client
                .execute("SELECT psg_ensure_daily_partition($1::text::regclass, $2)", &[&table, &day])
                .await
                .map_err(Error::pg("creating a daily partition"))?;
            self.partitions.insert((table, day));
        }
        Ok(())
    }

    /// Creates the daily partitions of `data_flows` and `audit_logs` from
    /// today to `days_ahead` days ahead.
    pub async fn ensure_partitions_ahead(&self, days_ahead: u32) -> Result<()> {
        let today = chrono::Utc::now().date_naive();
        let days: Vec<_> = (0..=i64::from(days_ahead)).map(|d| today + chrono::Duration::days(d)).collect();
        self.ensure_partitions("data_flows", &days).await?;
        self.ensure_partitions("audit_logs", &days).await
    }
}

/// Runs `first` inside a savepoint of `tx`; when it fails on a unique key
/// or on an exclusion constraint (something it writes is stored already: a
/// redelivered batch), rolls back
/// to the savepoint and runs `fallback`, which merges or skips what is
/// there. The fast path for new rows (COPY, a plain INSERT), the careful
/// one only for batches that need it. `what` names the write in errors.
pub(crate) async fn unless_stored<T>(
    tx: &tokio_postgres::Transaction<'_>,
    what: &'static str,
    first: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    fallback: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tx.batch_execute("SAVEPOINT psg_unless_stored").await.map_err(Error::pg(what))?;
    match first.await {
        Ok(v) => Ok(v),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) || e.code() == Some(&SqlState::EXCLUSION_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT psg_unless_stored").await.map_err(Error::pg(what))?;
            fallback.await
        }
        Err(e) => Err(Error::pg(what)(e)),
    }
}

#[cfg(test)]
mod hourly_tests;
#[cfg(test)]
mod tests;
