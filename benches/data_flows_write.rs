//! `data_flows` write speed: `cargo bench --bench data_flows_write` writes
//! the same rows with the store's write (new rows: one check of the
//! resources they name, then binary COPY into `data_flows`) and with a plain
//! binary COPY into an empty
//! copy of the table (the same kind of table: a hypertable on TimescaleDB,
//! native partitions otherwise; the same indexes), in the same run, and
//! prints rows/s of both and their ratio; then the plain COPY into a copy
//! with the two row-by-row foreign keys to `resources` that migration 0014
//! replaced by one check per batch, which is what they would cost; then the
//! store's write of rows that are all there already (a redelivered batch:
//! the COPY fails on the first, and the batch is merged through a staging
//! table with `INSERT … ON CONFLICT`). Needs
//! PostgreSQL (`TEST_DATABASE_ADMIN_URL`, default the local server; point it
//! at a server that preloads TimescaleDB for the hypertable figures); a
//! throwaway database is created and dropped.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use futures::pin_mut;
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::{DataFlowRow, ResourceRow};
use psg_domain::{CloudProvider, EdgeDirection, FlowAction, Resource, ResourceType, SourceRef};
use psg_testkit::TestDb;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const ROWS: usize = 200_000;
const RESOURCES: usize = 2_000;

fn rows(round: u32) -> Vec<DataFlowRow> {
    let base = Utc.timestamp_opt(1_767_225_600, 0).single().expect("time");
    (0..ROWS)
        .map(|i| {
            let ws = base + chrono::Duration::seconds(60 * (i / 5_000) as i64);
            DataFlowRow {
                id: stable_id("edge", &[&round.to_string(), &i.to_string()]),
                source_resource_id: resource_uuid(&format!("r-{}", i % RESOURCES)),
                dest_resource_id: resource_uuid(&format!("r-{}", (i * 7) % RESOURCES)),
                protocol: "TCP".into(),
                src_port: None,
                dst_port: 443,
                packet_count: i as i64,
                byte_count: 100 * i as i64,
                flow_direction: EdgeDirection::IntraVpc,
                action: FlowAction::Accept,
                observed_at: ws,
                window_start: ws,
                window_end: ws + chrono::Duration::seconds(60),
                flow_count: 1,
                first_seen: ws,
                last_seen: ws,
                encrypted_flow_count: 0,
                unencrypted_flow_count: 0,
                action_logged: true,
            }
        })
        .collect()
}

async fn plain_copy(client: &tokio_postgres::Client, table: &str, rows: &[DataFlowRow]) {
    let sink = client
        .copy_in(&format!(
            "COPY {table} (id, source_resource_id, dest_resource_id, protocol, src_port, dst_port, packet_count,
             byte_count, flow_direction, action, observed_at, window_start, window_end, flow_count, first_seen, last_seen)
             FROM STDIN (FORMAT binary)"
        ))
        .await
        .expect("copy");
    let types = [
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
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for r in rows {
        let (d, a) = (r.flow_direction.as_str(), r.action.as_str());
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
                &d,
                &a,
                &r.observed_at,
                &r.window_start,
                &r.window_end,
                &r.flow_count,
                &r.first_seen,
                &r.last_seen,
            ])
            .await
            .expect("row");
    }
    writer.finish().await.expect("finish");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("data_flows_write: bench");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let db = TestDb::create().await;
        let pool = psg_store::pool(&db.url, 2).expect("pool");
        psg_store::migrate(&pool).await.expect("migrate");
        let store = psg_store::Store::connect(&db.url, 2).await.expect("store");
        let resources: Vec<ResourceRow> = (0..RESOURCES)
            .map(|i| {
                let src = SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 };
                ResourceRow::from_message(&Resource::new(format!("r-{i}"), CloudProvider::Aws, ResourceType::Ec2Instance, 0, src))
            })
            .collect();
        psg_store::resources::ensure_resources(&store, &resources).await.expect("resources");
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let hypertable: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                    AND EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'data_flows')",
                &[],
            )
            .await
            // No TimescaleDB information schema: not a hypertable.
            .is_ok_and(|r| r.get(0));
        // The same kind of table, its indexes and (for one) its foreign keys,
        // for the plain COPY.
        for (table, keys) in [("plain_flows", false), ("plain_flows_fk", true)] {
            let partitioning = if hypertable {
                format!(
                    "CREATE TABLE {table} (LIKE data_flows INCLUDING ALL);
                     SELECT create_hypertable('{table}', 'observed_at', chunk_time_interval => interval '1 day');"
                )
            } else {
                format!(
                    "CREATE TABLE {table} (LIKE data_flows INCLUDING ALL) PARTITION BY RANGE (observed_at);
                     CREATE TABLE {table}_all PARTITION OF {table} FOR VALUES FROM ('2025-01-01') TO ('2027-01-01');"
                )
            };
            client.batch_execute(&partitioning).await.expect("plain table");
            if keys {
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {table} ADD FOREIGN KEY (source_resource_id) REFERENCES resources (id);
                         ALTER TABLE {table} ADD FOREIGN KEY (dest_resource_id) REFERENCES resources (id);"
                    ))
                    .await
                    .expect("foreign keys");
            }
        }
        let (mut best_upsert, mut best_plain, mut best_fk) = (f64::MAX, f64::MAX, f64::MAX);
        for round in 0..3u32 {
            let data = rows(round);
            let t = Instant::now();
            psg_store::flows::upsert_data_flows(&store, &data).await.expect("upsert");
            best_upsert = best_upsert.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            plain_copy(&client, "plain_flows", &data).await;
            best_plain = best_plain.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            plain_copy(&client, "plain_flows_fk", &data).await;
            best_fk = best_fk.min(t.elapsed().as_secs_f64());
        }
        let mut best_rewrite = f64::MAX;
        for round in 0..3u32 {
            let mut data = rows(round);
            data.iter_mut().for_each(|r| r.packet_count += 1);
            let t = Instant::now();
            psg_store::flows::upsert_data_flows(&store, &data).await.expect("rewrite");
            best_rewrite = best_rewrite.min(t.elapsed().as_secs_f64());
        }
        let rate = |secs: f64| ROWS as f64 / secs;
        let (up, plain, fk) = (rate(best_upsert), rate(best_plain), rate(best_fk));
        let kind = if hypertable { "TimescaleDB hypertable" } else { "native partitions" };
        println!(
            "data_flows ({kind}): store write of new rows {up:.0} rows/s, plain binary COPY {plain:.0} rows/s, ratio {:.2}; \
             COPY with row-by-row foreign keys {fk:.0} rows/s (they would cost {:.0}%); \
             rewriting rows already there (merge) {:.0} rows/s (best of 3 rounds of {ROWS} rows)",
            up / plain,
            100.0 * (1.0 - fk / plain),
            rate(best_rewrite)
        );
    });
}
