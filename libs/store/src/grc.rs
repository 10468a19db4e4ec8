//! `grc_syncs`: one row per synchronisation run with a GRC platform
//! (Vanta, Drata, Secureframe), written `in_progress` when the run starts
//! and finished with its status, counts and per-item errors.

use chrono::{DateTime, Utc};
use psg_domain::rows::GrcSyncRow;
use uuid::Uuid;

use crate::{Error, Result, Store};

/// The columns of a `grc_syncs` row. Spliced into SQL with `format!`: a
/// constant, never a value (values are `$n` parameters).
const COLUMNS: &str = "id, provider, sync_type, status, started_at, completed_at, resources_synced, errors_count, \
     COALESCE(error_details, '[]'::jsonb), COALESCE(sync_metadata, '{}'::jsonb)";

fn row_of(r: &tokio_postgres::Row) -> GrcSyncRow {
    GrcSyncRow {
        id: r.get(0),
        provider: r.get(1),
        sync_type: r.get(2),
        status: r.get(3),
        started_at: r.get(4),
        completed_at: r.get(5),
        resources_synced: r.get(6),
        errors_count: r.get(7),
        error_details: r.get(8),
        sync_metadata: r.get(9),
    }
}

/// Records the start of a run (idempotent: a row with the same id is kept).
pub async fn insert_grc_sync(store: &Store, row: &GrcSyncRow) -> Result<()> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO grc_syncs (id, provider, sync_type, status, started_at, completed_at, resources_synced,
                                    errors_count, error_details, sync_metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO NOTHING",
            &[
                &row.id,
                &row.provider,
                &row.sync_type,
                &row.status,
                &row.started_at,
                &row.completed_at,
                &row.resources_synced,
                &row.errors_count,
                &row.error_details,
                &row.sync_metadata,
            ],
        )
        .await
        .map_err(Error::pg("recording a GRC sync"))?;
    Ok(())
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct GrcSyncResult {
    pub status: String,
    pub completed_at: DateTime<Utc>,
    pub resources_synced: i32,
    pub errors_count: i32,
    pub error_details: serde_json::Value,
    pub sync_metadata: serde_json::Value,
}

/// Finishes run `id`; returns whether the row exists.
pub async fn finish_grc_sync(store: &Store, id: Uuid, result: &GrcSyncResult) -> Result<bool> {
    let client = store.client().await?;
    let n = client
        .execute(
            "UPDATE grc_syncs SET status = $2, completed_at = $3, resources_synced = $4, errors_count = $5,
                    error_details = $6, sync_metadata = $7
              WHERE id = $1",
            &[
                &id,
                &result.status,
                &result.completed_at,
                &result.resources_synced,
                &result.errors_count,
                &result.error_details,
                &result.sync_metadata,
            ],
        )
        .await
        .map_err(Error::pg("finishing a GRC sync"))?;
    Ok(n == 1)
}

/// One run by id.
pub async fn grc_sync(store: &Store, id: Uuid) -> Result<Option<GrcSyncRow>> {
    let client = store.client().await?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM grc_syncs WHERE id = $1"), &[&id])
        .await
        .map_err(Error::pg("reading a GRC sync"))?;
    Ok(row.as_ref().map(row_of))
}

/// Runs of `provider` (every provider when `None`), newest first.
pub async fn grc_syncs(store: &Store, provider: Option<&str>, limit: i64) -> Result<Vec<GrcSyncRow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM grc_syncs WHERE ($1::text IS NULL OR provider = $1)
                  ORDER BY started_at DESC, id LIMIT $2"
            ),
            &[&provider, &limit],
        )
        .await
        .map_err(Error::pg("reading GRC syncs"))?;
    Ok(rows.iter().map(row_of).collect())
}

/// When the newest run of `provider` that pushed something started (status
/// `completed`): an incremental sync sends the evidence generated since.
pub async fn last_completed_grc_sync(store: &Store, provider: &str) -> Result<Option<DateTime<Utc>>> {
    let client = store.client().await?;
    let row = client
        .query_one("SELECT max(started_at) FROM grc_syncs WHERE provider = $1 AND status = 'completed'", &[&provider])
        .await
        .map_err(Error::pg("reading the last GRC sync"))?;
    Ok(row.get(0))
}

/// When the newest completed run of `provider` of `sync_type` (`full`,
/// `incremental`) started: `grc run` does a full sync at start when the
/// last one is older than its `full-every`.
pub async fn last_completed_grc_sync_of_type(
    store: &Store,
    provider: &str,
    sync_type: &str,
) -> Result<Option<DateTime<Utc>>> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT max(started_at) FROM grc_syncs WHERE provider = $1 AND sync_type = $2 AND status = 'completed'",
            &[&provider, &sync_type],
        )
        .await
        .map_err(Error::pg("reading the last GRC sync"))?;
    Ok(row.get(0))
}

/// Which of `ids` are in `scope_decisions` (a decision's row is written
/// right after its message is published: `grc run` syncs what is there).
pub async fn existing_decisions(store: &Store, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let client = store.client().await?;
    let rows = client
        .query("SELECT id FROM scope_decisions WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(Error::pg("reading scope decision ids"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
