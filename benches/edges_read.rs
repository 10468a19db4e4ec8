//! Reading a long period of flows: `cargo bench --bench edges_read` writes
//! `EDGES_READ_DAYS` (default 30) days of one-minute flow windows of
//! `EDGES_READ_EDGES` (default 40) edges into `data_flows` on a server that
//! preloads TimescaleDB (`TEST_TIMESCALE_ADMIN_URL`, else
//! `TEST_DATABASE_ADMIN_URL`), materializes the hourly continuous aggregate
//! (migration 0017), and times what `report` and `diagram` read — the edges
//! of a lookback of the whole period, as of now and as of half-way — from
//! `data_flows` alone and with the aggregate (best of 3 each); both must
//! give the same edges. A throwaway database is created and dropped.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::{DataFlowRow, ResourceRow};
use psg_domain::{CloudProvider, EdgeDirection, FlowAction, Resource, ResourceType, SourceRef};
use psg_store::operator::{EdgeSource, edges_read};
use psg_testkit::TestDb;

fn setting(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("edges_read: bench");
        return;
    }
    let days = setting("EDGES_READ_DAYS", 30).max(2);
    let edges = setting("EDGES_READ_EDGES", 40).max(1);
    let admin = std::env::var("TEST_TIMESCALE_ADMIN_URL").unwrap_or_else(|_| psg_testkit::admin_url());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let db = TestDb::create_on(&admin).await;
        let opts = psg_store::MigrateOptions { timescale: psg_store::Timescale::Required, ..Default::default() };
        psg_store::migrate_with(&psg_store::pool(&db.url, 1).expect("pool"), &opts)
            .await
            .expect("migrate (the server must preload TimescaleDB)");
        let store = psg_store::Store::connect(&db.url, 2).await.expect("store");
        // Refreshed by hand below: no scheduled runs racing it.
        store
            .client()
            .await
            .expect("client")
            .batch_execute("SELECT remove_continuous_aggregate_policy('data_flows_hourly')")
            .await
            .expect("no policy");
        let src = SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 };
        let resources: Vec<ResourceRow> = (0..=edges)
            .map(|i| {
                ResourceRow::from_message(&Resource::new(
                    format!("r-{i}"),
                    CloudProvider::Aws,
                    ResourceType::Ec2Instance,
                    0,
                    src.clone(),
                ))
            })
            .collect();
        psg_store::resources::ensure_resources(&store, &resources).await.expect("resources");

        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("time");
        let minutes = days * 24 * 60;
        let started = Instant::now();
        for chunk in (0..minutes).collect::<Vec<_>>().chunks(1_440) {
            let rows: Vec<DataFlowRow> = chunk
                .iter()
                .flat_map(|m| (0..edges).map(move |e| (*m, e)))
                .map(|(m, e)| {
                    let ws = t0 + Duration::minutes(m);
                    DataFlowRow {
                        id: stable_id("edges-read", &[&m.to_string(), &e.to_string()]),
                        source_resource_id: resource_uuid(&format!("r-{e}")),
                        dest_resource_id: resource_uuid(&format!("r-{}", e + 1)),
                        protocol: "TCP".into(),
                        src_port: None,
                        dst_port: 443,
                        packet_count: 10,
                        byte_count: 1_000,
                        flow_direction: EdgeDirection::IntraVpc,
                        action: FlowAction::Accept,
                        observed_at: ws,
                        window_start: ws,
                        window_end: ws + Duration::seconds(60),
                        flow_count: 1 + m % 3,
                        first_seen: ws + Duration::seconds(5),
                        last_seen: ws + Duration::seconds(50),
                        encrypted_flow_count: 1,
                        unencrypted_flow_count: 0,
                        action_logged: true,
                    }
                })
                .collect();
            psg_store::flows::write_data_flows(&store, &rows, &[], &[]).await.expect("write");
        }
        let rows = minutes * edges;
        println!("edges_read: {rows} data_flows rows ({days} days x {edges} edges) written in {:.1} s", started.elapsed().as_secs_f64());
        let client = store.client().await.expect("client");
        let started = Instant::now();
        // A policy run under way when the policy was removed finishes first.
        while let Err(e) = client.batch_execute("CALL refresh_continuous_aggregate('data_flows_hourly', NULL, NULL)").await {
            assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE), "refresh: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        println!("edges_read: data_flows_hourly materialized in {:.1} s", started.elapsed().as_secs_f64());

        let halfway = t0 + Duration::days(days / 2);
        for (what, at) in [("now", None), ("as of half-way", Some(halfway))] {
            let mut best = [f64::MAX; 2];
            let mut results = Vec::new();
            for _ in 0..3 {
                for (k, source) in [EdgeSource::Raw, EdgeSource::Best].into_iter().enumerate() {
                    let t = Instant::now();
                    let read = edges_read(&store, i32::try_from(days).expect("days"), at, source).await.expect("read");
                    best[k] = best[k].min(t.elapsed().as_secs_f64());
                    results.push((source, read));
                }
            }
            let (raw, agg) = (&results[0].1, &results[1].1);
            assert_eq!(raw.edges, agg.edges, "the aggregate and data_flows disagree");
            println!(
                "edges_read: {what}: {} edges over {} days: data_flows {:.1} ms, with the hourly aggregate {:.1} ms ({} aggregate rows): {:.1}x",
                agg.edges.len(),
                days,
                best[0] * 1e3,
                best[1] * 1e3,
                agg.hourly_rows,
                best[0] / best[1]
            );
        }
    });
}
