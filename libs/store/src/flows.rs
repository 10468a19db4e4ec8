//! `data_flows`: resource-to-resource edges per event-time window.
//!
//! A window's row is written once, when the window closes, so a batch is
//! almost always all new rows: they go straight into `data_flows` by binary
//! COPY. A batch that names a row already there (redelivered after a
//! restart, or a window written twice) fails that COPY with a unique
//! violation; it is then copied into a staging table and merged with
//! `ON CONFLICT`, so the table keeps one row per window with the latest
//! absolute counts. Either way the batch is one transaction.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures::pin_mut;
use psg_domain::rows::DataFlowRow;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{Error, Result, Store};

const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS data_flows_stage
    (LIKE data_flows INCLUDING DEFAULTS) ON COMMIT DELETE ROWS";

const COLUMNS: &str = "(id, source_resource_id, dest_resource_id, protocol, src_port,
    dst_port, packet_count, byte_count, flow_direction, action, observed_at, window_start, window_end,
    flow_count, first_seen, last_seen, encrypted_flow_count, unencrypted_flow_count, action_logged)";

/// The foreign keys of `data_flows`, checked once per batch (migrations
/// 0014, 0015): every resource the rows name must exist, or the write fails
/// with SQLSTATE 23503 (foreign_key_violation), as a row-by-row key would.
const REQUIRE_RESOURCES: &str = "SELECT psg_require_resources($1::uuid[])";

const MERGE: &str = "INSERT INTO data_flows SELECT * FROM data_flows_stage
    ON CONFLICT (id, observed_at) DO UPDATE SET
        packet_count = EXCLUDED.packet_count,
        byte_count = EXCLUDED.byte_count,
        flow_count = EXCLUDED.flow_count,
        first_seen = EXCLUDED.first_seen,
        last_seen = EXCLUDED.last_seen,
        window_end = EXCLUDED.window_end,
        encrypted_flow_count = EXCLUDED.encrypted_flow_count,
        unencrypted_flow_count = EXCLUDED.unencrypted_flow_count,
        action_logged = EXCLUDED.action_logged";

const TYPES: &[Type] = &[
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::VARCHAR,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
];

/// Upserts `rows` (the last of several rows with the same id wins).
/// Referenced resources must exist (see [`crate::resources::ensure_resources`]).
pub async fn upsert_data_flows(store: &Store, rows: &[DataFlowRow]) -> Result<u64> {
    upsert_data_flows_with_checkpoints(store, rows, &[]).await
}

/// Upserts `rows` and writes `checkpoints` in one transaction: the
/// checkpoints describe the state in which the rows were computed, so either
/// both are durable or neither.
pub async fn upsert_data_flows_with_checkpoints(
    store: &Store,
    rows: &[DataFlowRow],
    checkpoints: &[Checkpoint],
) -> Result<u64> {
    write_data_flows(store, rows, &[], checkpoints).await
}

/// An accepted edge whose every accepted connection turned out blocked
/// (the other end rejected it): its `ACCEPT` rows from `since` on are
/// zeroed (readers skip `flow_count = 0`), so nothing rebuilt from the
/// table counts them as connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub source_resource_id: Uuid,
    pub dest_resource_id: Uuid,
    /// As in `data_flows.protocol` (`TCP`, ...).
    pub protocol: String,
    pub dst_port: i32,
    pub since: DateTime<Utc>,
}

const WITHDRAW: &str = "UPDATE data_flows SET flow_count = 0, packet_count = 0, byte_count = 0,
        encrypted_flow_count = 0, unencrypted_flow_count = 0
    WHERE source_resource_id = $1 AND dest_resource_id = $2 AND protocol = $3 AND dst_port = $4
      AND action = 'ACCEPT' AND observed_at >= $5 AND flow_count > 0";

/// In one transaction: upserts `rows`, then applies `withdrawals`, then
/// writes `checkpoints` (the state in which both were computed).
pub async fn write_data_flows(
    store: &Store,
    rows: &[DataFlowRow],
    withdrawals: &[Withdrawal],
    checkpoints: &[Checkpoint],
) -> Result<u64> {
    if rows.is_empty() && checkpoints.is_empty() && withdrawals.is_empty() {
        return Ok(0);
    }
    let mut latest: HashMap<(Uuid, DateTime<Utc>), &DataFlowRow> = HashMap::with_capacity(rows.len());
    for r in rows {
        latest.insert((r.id, r.observed_at), r);
    }
    // In time, then edge order: the merge then walks the time and edge
    // indexes (and a hypertable's chunks) in order instead of at random.
    let mut latest: Vec<&DataFlowRow> = latest.into_values().collect();
    latest.sort_unstable_by_key(|r| (r.observed_at, r.source_resource_id, r.dest_resource_id, r.id));
    let days: BTreeSet<_> = latest.iter().map(|r| r.observed_at.date_naive()).collect();
    store.ensure_partitions("data_flows", &days.into_iter().collect::<Vec<_>>()).await?;

    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(Error::pg("starting the data_flows write"))?;
    let mut written = 0;
    if !latest.is_empty() {
        let named: BTreeSet<Uuid> = latest.iter().flat_map(|r| [r.source_resource_id, r.dest_resource_id]).collect();
        let named: Vec<Uuid> = named.into_iter().collect();
        tx.execute(REQUIRE_RESOURCES, &[&named])
            .await
            .map_err(Error::pg("checking the resources of data_flows rows"))?;
        // Some row is there already: merge the batch instead.
        let merge = async {
            tx.batch_execute(STAGE).await.map_err(Error::pg("creating the data_flows staging table"))?;
            copy_rows(&tx, "data_flows_stage", &latest).await.map_err(Error::pg("staging data_flows rows"))?;
            tx.execute(MERGE, &[]).await.map_err(Error::pg("merging data_flows"))
        };
        written =
            crate::unless_stored(&tx, "writing data_flows rows", copy_rows(&tx, "data_flows", &latest), merge).await?;
    }
    if !withdrawals.is_empty() {
        let withdraw = tx.prepare(WITHDRAW).await.map_err(Error::pg("preparing a data_flows withdrawal"))?;
        for w in withdrawals {
            tx.execute(&withdraw, &[&w.source_resource_id, &w.dest_resource_id, &w.protocol, &w.dst_port, &w.since])
                .await
                .map_err(Error::pg("withdrawing blocked data_flows rows"))?;
        }
    }
    if !checkpoints.is_empty() {
        let upsert = tx.prepare(CHECKPOINT).await.map_err(Error::pg("preparing the checkpoint write"))?;
        for c in checkpoints {
            tx.execute(
                &upsert,
                &[&c.consumer_group, &c.topic, &c.partition, &c.resume_offset, &c.processed_offset, &c.state],
            )
            .await
            .map_err(Error::pg("writing a correlate checkpoint"))?;
        }
    }
    tx.commit().await.map_err(Error::pg("committing data_flows"))?;
    Ok(written)
}

/// Binary COPY of `rows` into `table` (`data_flows`, its staging table,
/// or — for the write bench's baseline — a table of the same columns).
pub async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[&DataFlowRow],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(&format!("COPY {table} {COLUMNS} FROM STDIN (FORMAT binary)")).await?;
    let writer = BinaryCopyInWriter::new(sink, TYPES);
    pin_mut!(writer);
    for r in rows {
        let direction = r.flow_direction.as_str();
        let action = r.action.as_str();
        writer
            .as_mut()
            .write(&[
                &r.id,
                &r.source_resource_id,
                &r.dest_resource_id,
                &r.protocol,
                &r.src_port,
                &r.dst_port,
                &r.packet_count,
                &r.byte_count,
                &direction,
                &action,
                &r.observed_at,
                &r.window_start,
                &r.window_end,
                &r.flow_count,
                &r.first_seen,
                &r.last_seen,
                &r.encrypted_flow_count,
                &r.unencrypted_flow_count,
                &r.action_logged,
            ])
            .await?;
    }
    writer.finish().await
}

const CHECKPOINT: &str = "INSERT INTO correlate_checkpoints
        (consumer_group, topic, partition, resume_offset, processed_offset, state, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, now())
    ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET
        resume_offset = EXCLUDED.resume_offset,
        processed_offset = EXCLUDED.processed_offset,
        state = EXCLUDED.state,
        updated_at = EXCLUDED.updated_at";

/// Where correlate stood on one input partition (see migration 0005):
/// records before `resume_offset` are done; those up to `processed_offset`
/// were processed, and `state` says how (the correlate crate owns its shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub consumer_group: String,
    pub topic: String,
    pub partition: i32,
    pub resume_offset: i64,
    pub processed_offset: i64,
    pub state: serde_json::Value,
}

/// The checkpoints of `partitions` of `topic` for `consumer_group`.
pub async fn checkpoints(
    store: &Store,
    consumer_group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<Checkpoint>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT partition, resume_offset, processed_offset, state FROM correlate_checkpoints
              WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3)",
            &[&consumer_group, &topic, &partitions],
        )
        .await
        .map_err(Error::pg("reading correlate checkpoints"))?;
    Ok(rows
        .iter()
        .map(|r| Checkpoint {
            consumer_group: consumer_group.to_owned(),
            topic: topic.to_owned(),
            partition: r.get(0),
            resume_offset: r.get(1),
            processed_offset: r.get(2),
            state: r.get(3),
        })
        .collect())
}

/// One edge as stored, aggregated over its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEdge {
    pub source_resource_id: String,
    pub dest_resource_id: String,
    pub source_type: String,
    pub dest_type: String,
    pub protocol: String,
    pub dst_port: i32,
    pub action: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub packets: i64,
    pub bytes: i64,
    pub flows: i64,
    /// Whether any row logged its action (see [`DataFlowRow::action_logged`]).
    pub action_logged: bool,
}

/// Every edge seen since `since`, aggregated over windows (for rebuilding
/// the scope graph at start).
pub async fn edges_since(store: &Store, since: DateTime<Utc>) -> Result<Vec<StoredEdge>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT s.resource_id, d.resource_id, s.resource_type::text, d.resource_type::text,
                    f.protocol, f.dst_port, f.action,
                    min(f.first_seen), max(f.last_seen), sum(f.packet_count)::bigint,
                    sum(f.byte_count)::bigint, sum(f.flow_count)::bigint, bool_or(f.action_logged)
               FROM data_flows f
               JOIN resources s ON s.id = f.source_resource_id
               JOIN resources d ON d.id = f.dest_resource_id
              WHERE f.observed_at >= $1 AND f.flow_count > 0 -- zero: withdrawn (blocked)
              GROUP BY 1, 2, 3, 4, 5, 6, 7",
            &[&since],
        )
        .await
        .map_err(Error::pg("reading edges"))?;
    Ok(rows
        .iter()
        .map(|r| StoredEdge {
            source_resource_id: r.get(0),
            dest_resource_id: r.get(1),
            source_type: r.get(2),
            dest_type: r.get(3),
            protocol: r.get(4),
            dst_port: r.get(5),
            action: r.get(6),
            first_seen: r.get(7),
            last_seen: r.get(8),
            packets: r.get(9),
            bytes: r.get(10),
            flows: r.get(11),
            action_logged: r.get(12),
        })
        .collect())
}
