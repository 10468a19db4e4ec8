//! `data_flows` write speed: `cargo bench --bench data_flows_write` writes
//! the same rows with the store's write (new rows: one check of the
//! resources they name, then binary COPY into `data_flows`) and with a plain
//! binary COPY (the store's own row encoder, nothing checked or merged) into
//! an empty copy of the table (the same kind of table: a hypertable on TimescaleDB,
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
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::{DataFlowRow, ResourceRow};
use psg_domain::{CloudProvider, EdgeDirection, FlowAction, Resource, ResourceType, SourceRef};
use psg_testkit::TestDb;

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

/// The plain binary COPY: the store's own row encoder, straight into
/// `table`, nothing checked or merged.
async fn plain_copy(client: &mut tokio_postgres::Client, table: &str, rows: &[DataFlowRow]) {
    let refs: Vec<&DataFlowRow> = rows.iter().collect();
    let tx = client.transaction().await.expect("transaction");
    psg_store::flows::copy_rows(&tx, table, &refs).await.expect("copy");
    tx.commit().await.expect("commit");
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
        let (mut client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("connect");
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
            plain_copy(&mut client, "plain_flows", &data).await;
            best_plain = best_plain.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            plain_copy(&mut client, "plain_flows_fk", &data).await;
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
