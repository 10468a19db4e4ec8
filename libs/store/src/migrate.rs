//! Versioned, idempotent migrations.
//!
//! Each file of `migrations/` is applied once, in its own transaction, and
//! recorded in `psg_schema_migrations` with a checksum; running `migrate`
//! again changes nothing, and a migration edited after it was applied is
//! refused. An advisory lock serialises concurrent runs.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "schema", sql: include_str!("../migrations/0001_schema.sql") },
    Migration { version: 2, name: "timescale", sql: include_str!("../migrations/0002_timescale.sql") },
    Migration { version: 3, name: "evidence_keys", sql: include_str!("../migrations/0003_evidence_keys.sql") },
    Migration { version: 4, name: "least_privilege", sql: include_str!("../migrations/0004_least_privilege.sql") },
    Migration {
        version: 5,
        name: "correlate_checkpoints",
        sql: include_str!("../migrations/0005_correlate_checkpoints.sql"),
    },
    Migration { version: 6, name: "alert_lifecycle", sql: include_str!("../migrations/0006_alert_lifecycle.sql") },
    Migration { version: 7, name: "flow_encryption", sql: include_str!("../migrations/0007_flow_encryption.sql") },
    Migration {
        version: 8,
        name: "flow_action_logged",
        sql: include_str!("../migrations/0008_flow_action_logged.sql"),
    },
    Migration {
        version: 9,
        name: "policy_resource_types",
        sql: include_str!("../migrations/0009_policy_resource_types.sql"),
    },
    Migration {
        version: 10,
        name: "policy_and_flow_log_types",
        sql: include_str!("../migrations/0010_policy_and_flow_log_types.sql"),
    },
    Migration { version: 11, name: "evidence_log", sql: include_str!("../migrations/0011_evidence_log.sql") },
];

/// Arbitrary constant identifying our migration lock.
const LOCK_KEY: i64 = 0x5053_475f_4d49_4752; // "PSG_MIGR"

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// What a `migrate` run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this run, as `version name`.
    pub applied: Vec<String>,
    /// Schema version after the run.
    pub version: i32,
    /// `timescaledb` or `native`.
    pub time_partitioning: String,
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// The applied schema version, `None` if the migrations table does not exist.
pub async fn current_version(client: &tokio_postgres::Client) -> Result<Option<i32>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('psg_schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(Error::pg("checking for the migrations table"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let v: Option<i32> = client
        .query_one("SELECT max(version) FROM psg_schema_migrations", &[])
        .await
        .map_err(Error::pg("reading the schema version"))?
        .get(0);
    Ok(Some(v.unwrap_or(0)))
}

/// Applies every migration not applied yet.
pub async fn migrate(pool: &Pool) -> Result<MigrationReport> {
    let mut client = pool.get().await.map_err(|e| crate::connect::pool_error(None, e))?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS psg_schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 checksum   text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(Error::pg("creating the migrations table"))?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(Error::pg("taking the migration lock"))?;
    let result = apply_all(&mut client).await;
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let report = result?;
    unlock.map_err(Error::pg("releasing the migration lock"))?;
    Ok(report)
}

async fn apply_all(client: &mut deadpool_postgres::Object) -> Result<MigrationReport> {
    let rows = client
        .query("SELECT version, name, checksum FROM psg_schema_migrations ORDER BY version", &[])
        .await
        .map_err(Error::pg("reading applied migrations"))?;
    let applied: Vec<(i32, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    if let Some((v, _, _)) = applied.last()
        && *v > latest_version()
    {
        return Err(Error::SchemaTooNew { found: *v, known: latest_version() });
    }
    let mut report = MigrationReport { applied: Vec::new(), version: 0, time_partitioning: String::new() };
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some((_, name, recorded)) = applied.iter().find(|(v, _, _)| *v == m.version) {
            if *recorded != sum {
                return Err(Error::MigrationChanged {
                    version: m.version,
                    name: name.clone(),
                    applied: recorded.clone(),
                    file: sum,
                });
            }
            continue;
        }
        let tx = client.transaction().await.map_err(Error::pg("starting a migration"))?;
        tx.batch_execute(m.sql).await.map_err(Error::pg("applying a migration"))?;
        tx.execute(
            "INSERT INTO psg_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &sum],
        )
        .await
        .map_err(Error::pg("recording a migration"))?;
        tx.commit().await.map_err(Error::pg("committing a migration"))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        report.applied.push(format!("{:04} {}", m.version, m.name));
    }
    report.version = current_version(client).await?.unwrap_or(0);
    report.time_partitioning = client
        .query_opt("SELECT value FROM psg_settings WHERE key = 'time_partitioning'", &[])
        .await
        .map_err(Error::pg("reading settings"))?
        .map(|r| r.get(0))
        .unwrap_or_else(|| "native".to_owned());
    Ok(report)
}
