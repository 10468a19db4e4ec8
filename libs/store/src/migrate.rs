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
    /// Checksums of earlier texts of this migration that did the same to
    /// every database they were applied to (a database migrated with one of
    /// them is not "changed").
    earlier: &'static [&'static str],
}

/// Whether `migrate` makes `data_flows` and `audit_logs` TimescaleDB
/// hypertables (`storage.timescaledb`). Decided when the schema is created
/// (migration 2); a database keeps its partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timescale {
    /// TimescaleDB when the server can load it (preloaded), otherwise
    /// native partitions with a warning that says how to enable it.
    #[default]
    Auto,
    /// TimescaleDB or an error that says how to enable it.
    Required,
    /// Native partitions, whatever the server has.
    Off,
}

/// The fix for a server that has TimescaleDB installed but not loaded.
const PRELOAD_FIX: &str = "add timescaledb to shared_preload_libraries in postgresql.conf \
     (shared_preload_libraries = 'timescaledb'), restart PostgreSQL, and migrate a new database";

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "schema", sql: include_str!("../migrations/0001_schema.sql"), earlier: &[] },
    Migration {
        version: 2,
        name: "timescale",
        sql: include_str!("../migrations/0002_timescale.sql"),
        // Before storage.timescaledb it took "the extension is available"
        // for "usable"; where it ran, it did what the current text does.
        earlier: &["35f78f2272099991406594410c4e35ad3b08a6db800936a854a5741695e6528f"],
    },
    Migration {
        version: 3,
        name: "evidence_keys",
        sql: include_str!("../migrations/0003_evidence_keys.sql"),
        earlier: &[],
    },
    Migration {
        version: 4,
        name: "least_privilege",
        sql: include_str!("../migrations/0004_least_privilege.sql"),
        earlier: &[],
    },
    Migration {
        version: 5,
        name: "correlate_checkpoints",
        sql: include_str!("../migrations/0005_correlate_checkpoints.sql"),
        earlier: &[],
    },
    Migration {
        version: 6,
        name: "alert_lifecycle",
        sql: include_str!("../migrations/0006_alert_lifecycle.sql"),
        earlier: &[],
    },
    Migration {
        version: 7,
        name: "flow_encryption",
        sql: include_str!("../migrations/0007_flow_encryption.sql"),
        earlier: &[],
    },
    Migration {
        version: 8,
        name: "flow_action_logged",
        sql: include_str!("../migrations/0008_flow_action_logged.sql"),
        earlier: &[],
    },
    Migration {
        version: 9,
        name: "policy_resource_types",
        sql: include_str!("../migrations/0009_policy_resource_types.sql"),
        earlier: &[],
    },
    Migration {
        version: 10,
        name: "policy_and_flow_log_types",
        sql: include_str!("../migrations/0010_policy_and_flow_log_types.sql"),
        earlier: &[],
    },
    Migration {
        version: 11,
        name: "evidence_log",
        sql: include_str!("../migrations/0011_evidence_log.sql"),
        earlier: &[],
    },
    Migration {
        version: 12,
        name: "flows_compressed_by_edge",
        sql: include_str!("../migrations/0012_flows_compressed_by_edge.sql"),
        earlier: &[],
    },
    Migration {
        version: 13,
        name: "drop_redundant_flow_index",
        sql: include_str!("../migrations/0013_drop_redundant_flow_index.sql"),
        earlier: &[],
    },
    Migration {
        version: 14,
        name: "data_flows_without_row_foreign_keys",
        sql: include_str!("../migrations/0014_data_flows_without_row_foreign_keys.sql"),
        earlier: &[],
    },
    Migration {
        version: 15,
        name: "require_resources",
        sql: include_str!("../migrations/0015_require_resources.sql"),
        earlier: &[],
    },
    Migration {
        version: 16,
        name: "drop_redundant_evidence_indexes",
        sql: include_str!("../migrations/0016_drop_redundant_evidence_indexes.sql"),
        earlier: &[],
    },
    Migration {
        version: 17,
        name: "flows_hourly",
        sql: include_str!("../migrations/0017_flows_hourly.sql"),
        earlier: &[],
    },
    Migration {
        version: 18,
        name: "evidence_proofs_as_bytes",
        sql: include_str!("../migrations/0018_evidence_proofs_as_bytes.sql"),
        earlier: &[],
    },
    Migration {
        version: 19,
        name: "evidence_keys_in_byte_order",
        sql: include_str!("../migrations/0019_evidence_keys_in_byte_order.sql"),
        earlier: &[],
    },
    Migration {
        version: 20,
        name: "evidence_decisions_checked_per_batch",
        sql: include_str!("../migrations/0020_evidence_decisions_checked_per_batch.sql"),
        earlier: &[],
    },
    Migration {
        version: 21,
        name: "evidence_log_in_batches",
        sql: include_str!("../migrations/0021_evidence_log_in_batches.sql"),
        earlier: &[],
    },
    Migration {
        version: 22,
        name: "evidence_proofs_computed",
        sql: include_str!("../migrations/0022_evidence_proofs_computed.sql"),
        earlier: &[],
    },
    Migration {
        version: 23,
        name: "evidence_uniqueness_at_scale",
        sql: include_str!("../migrations/0023_evidence_uniqueness_at_scale.sql"),
        earlier: &[],
    },
    Migration {
        version: 24,
        name: "evidence_decisions_checked_by_count",
        sql: include_str!("../migrations/0024_evidence_decisions_checked_by_count.sql"),
        earlier: &[],
    },
    Migration {
        version: 25,
        name: "evidence_requirement_indexes_partial",
        sql: include_str!("../migrations/0025_evidence_requirement_indexes_partial.sql"),
        earlier: &[],
    },
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
    /// TimescaleDB policies this run changed to match the configuration
    /// (`data_flows retention: 400 days → 200 days`).
    pub policies: Vec<String>,
}

/// What `migrate` does about storage: TimescaleDB or not, and its policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateOptions {
    pub timescale: Timescale,
    pub policies: Policies,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self { timescale: Timescale::Auto, policies: Policies::default() }
    }
}

/// TimescaleDB chunk and policy settings (`[storage]`), in days; applied by
/// every `migrate` of a TimescaleDB database, only where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub flows_chunk_days: u32,
    pub flows_compress_after_days: u32,
    pub flows_retention_days: u32,
    pub audit_retention_days: u32,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            flows_chunk_days: 1,
            flows_compress_after_days: 7,
            flows_retention_days: 400,
            audit_retention_days: 2557,
        }
    }
}

/// Sets `table`'s policy `proc` (`policy_compression` / `policy_retention`,
/// whose config key is `key`) to `days`, if it is not already; what changed.
async fn set_policy(
    client: &tokio_postgres::Client,
    table: &'static str,
    proc: &'static str,
    key: &'static str,
    days: u32,
) -> Result<Option<String>> {
    let want = format!("{days} days");
    let current: Option<(String, bool)> = client
        .query_opt(
            "SELECT (config->>$3)::interval::text, (config->>$3)::interval = $4::text::interval
               FROM timescaledb_information.jobs
              WHERE proc_name = $1 AND hypertable_name = $2",
            &[&proc, &table, &key, &want],
        )
        .await
        .map_err(Error::pg("reading TimescaleDB policies"))?
        .map(|r| (r.get(0), r.get(1)));
    if current.as_ref().is_some_and(|(_, same)| *same) {
        return Ok(None);
    }
    let current = current.map(|(c, _)| c);
    let (remove, add) = match proc {
        "policy_compression" => ("remove_compression_policy", "add_compression_policy"),
        _ => ("remove_retention_policy", "add_retention_policy"),
    };
    // Function and table names are constants of this module, never values.
    client
        .execute(&format!("SELECT {remove}('{table}', if_exists => true)"), &[])
        .await
        .map_err(Error::pg("changing a TimescaleDB policy"))?;
    client
        .execute(&format!("SELECT {add}('{table}', $1::text::interval)"), &[&want])
        .await
        .map_err(Error::pg("changing a TimescaleDB policy"))?;
    let what = if proc == "policy_compression" { "compression after" } else { "retention" };
    Ok(Some(format!("{table} {what}: {} → {want}", current.as_deref().unwrap_or("none"))))
}

/// Brings the chunk interval and the policies of a TimescaleDB database to
/// `p`; what changed.
async fn apply_policies(client: &tokio_postgres::Client, p: &Policies) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    let want = format!("{} days", p.flows_chunk_days);
    let row = client
        .query_one(
            "SELECT d.time_interval::text, d.time_interval = $1::text::interval
               FROM timescaledb_information.dimensions d
              WHERE d.hypertable_name = 'data_flows' AND d.column_name = 'observed_at'",
            &[&want],
        )
        .await
        .map_err(Error::pg("reading the data_flows chunk interval"))?;
    let (current, same): (String, bool) = (row.get(0), row.get(1));
    if !same {
        client
            .execute("SELECT set_chunk_time_interval('data_flows', $1::text::interval)", &[&want])
            .await
            .map_err(Error::pg("setting the data_flows chunk interval"))?;
        changed.push(format!("data_flows chunk interval: {current} → {want} (new chunks)"));
    }
    for (table, proc, key, days) in [
        ("data_flows", "policy_compression", "compress_after", p.flows_compress_after_days),
        ("data_flows", "policy_retention", "drop_after", p.flows_retention_days),
        ("audit_logs", "policy_retention", "drop_after", p.audit_retention_days),
    ] {
        changed.extend(set_policy(client, table, proc, key, days).await?);
    }
    for c in &changed {
        tracing::info!(change = %c, "TimescaleDB policy");
    }
    Ok(changed)
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

/// Applies every migration not applied yet, with TimescaleDB when the
/// server can load it ([`Timescale::Auto`]) and the default policies.
pub async fn migrate(pool: &Pool) -> Result<MigrationReport> {
    migrate_with(pool, &MigrateOptions::default()).await
}

/// What the server offers of TimescaleDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Not installed in the server.
    Missing,
    /// Installed, but not in `shared_preload_libraries` (`CREATE EXTENSION`
    /// would fail: "must be preloaded").
    NotPreloaded,
    Usable,
}

async fn timescale_offer(client: &tokio_postgres::Client) -> Result<Offer> {
    // shared_preload_libraries is hidden from roles without
    // pg_read_all_settings (psg_migrate); the loader's postmaster-level
    // settings (timescaledb.max_background_workers, ...) exist only when it
    // was preloaded, and every role sees them.
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
                    EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%' AND context = 'postmaster'),
                    coalesce((SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'), '')",
            &[],
        )
        .await
        .map_err(Error::pg("checking for TimescaleDB"))?;
    let (available, created, loader, preload): (bool, bool, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let preloaded = loader || preload.split(',').any(|l| l.trim().trim_matches('"').ends_with("timescaledb"));
    Ok(if created || (available && preloaded) {
        Offer::Usable
    } else if available {
        Offer::NotPreloaded
    } else {
        Offer::Missing
    })
}

/// Whether migration 2 makes hypertables.
async fn use_timescale(client: &tokio_postgres::Client, mode: Timescale) -> Result<bool> {
    if mode == Timescale::Off {
        return Ok(false);
    }
    match (timescale_offer(client).await?, mode) {
        (Offer::Usable, _) => Ok(true),
        (Offer::NotPreloaded, Timescale::Required) => Err(Error::Timescale(format!(
            "storage.timescaledb is required, but the server has TimescaleDB installed and not preloaded: {PRELOAD_FIX}"
        ))),
        (Offer::Missing, Timescale::Required) => Err(Error::Timescale(
            "storage.timescaledb is required, but the server does not have TimescaleDB: install it (https://docs.timescale.com), then preload it: add timescaledb to shared_preload_libraries and restart PostgreSQL".into(),
        )),
        (Offer::NotPreloaded, _) => {
            tracing::warn!(
                "TimescaleDB is installed in the server but not preloaded: data_flows and audit_logs use native partitions; to use TimescaleDB, {PRELOAD_FIX}"
            );
            Ok(false)
        }
        (Offer::Missing, _) => {
            tracing::info!("TimescaleDB is not installed in the server: data_flows and audit_logs use native partitions");
            Ok(false)
        }
    }
}

/// Applies every migration not applied yet (a new schema with TimescaleDB
/// or not, as `opts.timescale` says), then brings TimescaleDB's chunk
/// interval and policies to `opts.policies`.
pub async fn migrate_with(pool: &Pool, opts: &MigrateOptions) -> Result<MigrationReport> {
    migrate_until(pool, opts, latest_version()).await
}

/// As [`migrate_with`], applying migrations up to version `until` only (the
/// tests of a migration start from the schema before it).
pub(crate) async fn migrate_until(pool: &Pool, opts: &MigrateOptions, until: i32) -> Result<MigrationReport> {
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
    let result = apply_all(&mut client, opts, until).await;
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let report = result?;
    unlock.map_err(Error::pg("releasing the migration lock"))?;
    Ok(report)
}

async fn apply_all(
    client: &mut deadpool_postgres::Object,
    opts: &MigrateOptions,
    until: i32,
) -> Result<MigrationReport> {
    let timescale = opts.timescale;
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
    // Decided before anything is applied: `required` on a server without
    // TimescaleDB changes nothing.
    let hypertables = !applied.iter().any(|(v, _, _)| *v == 2) && use_timescale(client, timescale).await?;
    let mut report =
        MigrationReport { applied: Vec::new(), version: 0, time_partitioning: String::new(), policies: Vec::new() };
    for m in MIGRATIONS.iter().take_while(|m| m.version <= until) {
        let sum = checksum(m.sql);
        if let Some((_, name, recorded)) = applied.iter().find(|(v, _, _)| *v == m.version) {
            if *recorded != sum && !m.earlier.contains(&recorded.as_str()) {
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
        let on = if hypertables && m.version == 2 { "on" } else { "off" };
        tx.execute("SELECT set_config('psg.timescaledb', $1, true)", &[&on])
            .await
            .map_err(Error::pg("applying a migration"))?;
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
    if timescale == Timescale::Required && report.time_partitioning != "timescaledb" {
        return Err(Error::Timescale(format!(
            "storage.timescaledb is required, but this database was created with native partitions (a database keeps its partitioning): {PRELOAD_FIX}"
        )));
    }
    if report.time_partitioning == "timescaledb" {
        report.policies = apply_policies(client, &opts.policies).await?;
    }
    Ok(report)
}
