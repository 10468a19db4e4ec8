//! Issue 19: the hourly continuous aggregate answers as `data_flows` does,
//! whatever changed since it was materialized.

use chrono::{DateTime, Duration, TimeZone, Utc};
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::{DataFlowRow, ResourceRow};
use psg_domain::{CloudProvider, EdgeDirection, FlowAction, Resource, ResourceType, SourceRef};
use psg_testkit::TestDb;

use crate::operator::{EdgeSource, EdgesRead, edges_read};
use crate::{MigrateOptions, Store, Timescale, flows, migrate_with, pool};

/// One window of `src` → `dst` on TCP/`port`, beginning at `start`, its
/// flows seen from `first` to `last` seconds after it.
fn window(src: &str, dst: &str, port: i32, start: DateTime<Utc>, (first, last): (i64, i64), flows: i64) -> DataFlowRow {
    DataFlowRow {
        id: stable_id("hourly-test", &[src, dst, &port.to_string()]),
        source_resource_id: resource_uuid(src),
        dest_resource_id: resource_uuid(dst),
        protocol: "TCP".into(),
        src_port: None,
        dst_port: port,
        packet_count: flows,
        byte_count: flows * 100,
        flow_direction: EdgeDirection::IntraVpc,
        action: FlowAction::Accept,
        observed_at: start,
        window_start: start,
        window_end: start + Duration::seconds(60),
        flow_count: flows,
        first_seen: start + Duration::seconds(first),
        last_seen: start + Duration::seconds(last),
        encrypted_flow_count: flows / 2,
        unencrypted_flow_count: 0,
        action_logged: true,
    }
}

/// Materializes the whole aggregate, waiting out a policy run that was
/// already under way when the policy was removed.
async fn refresh(owner: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match owner.batch_execute("CALL refresh_continuous_aggregate('data_flows_hourly', NULL, NULL)").await {
            Ok(()) => return,
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("refresh: {e}"),
        }
    }
}

async fn read(store: &Store, source: EdgeSource, at: Option<DateTime<Utc>>) -> EdgesRead {
    edges_read(store, 1, at, source).await.expect("edges")
}

/// Reads both ways and checks they agree; how many aggregate rows it used.
async fn agree(store: &Store, at: Option<DateTime<Utc>>, what: &str) -> i64 {
    let raw = read(store, EdgeSource::Raw, at).await;
    let best = read(store, EdgeSource::Best, at).await;
    assert_eq!(raw.hourly_rows, 0);
    assert_eq!(best.edges, raw.edges, "{what}: the aggregate and data_flows disagree");
    assert_eq!(best.newest, raw.newest, "{what}");
    // The newest flow, read without the bounds on observed_at.
    let newest: Option<DateTime<Utc>> = store
        .client()
        .await
        .expect("client")
        .query_one(
            "SELECT max(least(last_seen, COALESCE($1, last_seen))) FROM data_flows
              WHERE $1::timestamptz IS NULL OR first_seen <= $1",
            &[&at],
        )
        .await
        .expect("newest")
        .get(0);
    assert_eq!(raw.newest, newest, "{what}: the newest flow");
    eprintln!("{what}: {} edges, {} rows of the hourly aggregate", best.edges.len(), best.hourly_rows);
    best.hourly_rows
}

#[tokio::test]
async fn the_hourly_aggregate_answers_as_data_flows_whatever_changed_since() {
    let Some(admin) = psg_testkit::timescale_admin_url("the_hourly_aggregate_answers_as_data_flows") else {
        return;
    };
    let db = TestDb::create_on(&admin).await;
    let p = pool(&db.url, 1).expect("pool");
    migrate_with(&p, &MigrateOptions { timescale: Timescale::Required, ..MigrateOptions::default() })
        .await
        .expect("migrate");
    let store = Store::connect(&db.url, 2).await.expect("store");
    // The test refreshes by hand: the policy's scheduled runs (the first
    // starts as the policy is created) would race it.
    let owner = store.client().await.expect("client");
    owner.batch_execute("SELECT remove_continuous_aggregate_policy('data_flows_hourly')").await.expect("no policy");
    // A run already under way finishes first (an empty refresh waits for it).
    refresh(&owner).await;
    let src = SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 };
    let mut resources: Vec<ResourceRow> = ["app", "db", "web"]
        .iter()
        .map(|id| {
            ResourceRow::from_message(&Resource::new(
                *id,
                CloudProvider::Aws,
                ResourceType::Ec2Instance,
                0,
                src.clone(),
            ))
        })
        .collect();
    resources.push(ResourceRow::from_message(&Resource::new(
        "ip:203.0.113.9",
        CloudProvider::Aws,
        ResourceType::ExternalEndpoint,
        0,
        src.clone(),
    )));
    crate::resources::ensure_resources(&store, &resources).await.expect("resources");

    // Three days of windows every 10 minutes; the period (a day back from
    // the newest flow) begins inside an hour, so that hour has rows in it
    // and rows before it; some windows hold flows seen before they began
    // (the match tolerance) and some were withdrawn (no flows).
    let t0 = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
    let mut rows = Vec::new();
    for k in 0..(3 * 24 * 6) {
        let start = t0 + Duration::minutes(10 * k) + Duration::seconds(17 * 60 + 40);
        let mut app_db = window("app", "db", 5432, start, (0, 50), 1 + k % 3);
        app_db.id = stable_id("hourly-test", &["app-db", &k.to_string()]);
        rows.push(app_db);
        let mut web = window("web", "app", 8080, start, if k % 7 == 0 { (-300, 20) } else { (5, 40) }, 2);
        web.id = stable_id("hourly-test", &["web-app", &k.to_string()]);
        if k % 11 == 0 {
            web.flow_count = 0;
        }
        rows.push(web);
        if k % 5 == 0 {
            let mut ext = window("ip:203.0.113.9", "web", 443, start, (1, 59), 4);
            ext.id = stable_id("hourly-test", &["ext-web", &k.to_string()]);
            rows.push(ext);
        }
    }
    flows::write_data_flows(&store, &rows, &[], &[]).await.expect("flows");

    assert_eq!(agree(&store, None, "nothing materialized").await, 0, "nothing materialized: data_flows only");
    refresh(&owner).await;
    let used = agree(&store, None, "materialized").await;
    assert!(used > 40, "a day of hours read from the aggregate: {used}");
    let newest = read(&store, EdgeSource::Raw, None).await.newest.expect("newest");
    let earlier = newest - Duration::hours(30);
    assert!(agree(&store, Some(earlier), "as of a time").await > 0);
    // As of a time before any flow, and inside a window.
    assert_eq!(agree(&store, Some(t0 - Duration::days(3)), "before any flow").await, 0);
    agree(&store, Some(t0 + Duration::minutes(17 * 60 + 40) + Duration::seconds(30)), "inside the first window").await;

    // Changed after materializing: a late window in an old hour, a
    // withdrawal (zeroed) and a merged redelivery. The changed hours come
    // from data_flows until the next refresh.
    let before = read(&store, EdgeSource::Best, None).await;
    let late_at = newest - Duration::hours(5) + Duration::seconds(3);
    let mut late = window("app", "db", 5432, late_at, (0, 1), 100);
    late.id = stable_id("hourly-test", &["late"]);
    flows::write_data_flows(&store, &[late], &[], &[]).await.expect("late window");
    owner
        .execute(
            "UPDATE data_flows SET flow_count = 0, encrypted_flow_count = 0
              WHERE source_resource_id = $1 AND observed_at >= $2 AND observed_at < $3",
            &[&resource_uuid("ip:203.0.113.9"), &(newest - Duration::hours(8)), &(newest - Duration::hours(7))],
        )
        .await
        .expect("withdraw");
    let stale = agree(&store, None, "changed since materialized").await;
    let after = read(&store, EdgeSource::Best, None).await;
    assert_ne!(after.edges, before.edges, "the changes show");
    let flows_of = |r: &EdgesRead, s: &str| r.edges.iter().find(|e| e.source == s).map(|e| e.flow_count);
    assert_eq!(flows_of(&after, "app").unwrap() - flows_of(&before, "app").unwrap(), 100);
    assert!(stale < used, "the changed hours left the aggregate: {stale} of {used}");

    refresh(&owner).await;
    let refreshed = agree(&store, None, "refreshed").await;
    assert!(refreshed > stale, "refreshed hours are read from the aggregate again: {refreshed}");
    assert_eq!(read(&store, EdgeSource::Best, None).await.edges, after.edges);
}
