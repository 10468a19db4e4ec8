use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::{DataFlowRow, ResourceRow, ScopeDecisionRow};
use psg_domain::*;
use psg_testkit::TestDb;
use psg_testkit::rows::decision;

use super::*;
use crate::resources::ResourceObservation;

/// Tables, columns, indexes and functions of the public schema, as text.
async fn schema_fingerprint(store: &Store) -> String {
    let client = store.client().await.unwrap();
    let mut out = String::new();
    for q in [
        "SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
           FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE n.nspname = 'public' AND t.typtype = 'e' ORDER BY 1",
        "SELECT version || name FROM psg_schema_migrations ORDER BY 1",
    ] {
        for row in client.query(q, &[]).await.unwrap() {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

async fn migrated() -> (TestDb, Store) {
    let db = TestDb::create().await;
    let report = migrate(&pool(&db.url, 2).unwrap()).await.unwrap();
    assert_eq!(report.version, migrate::latest_version());
    let store = Store::connect(&db.url, 4).await.unwrap();
    (db, store)
}

#[tokio::test]
async fn migrate_twice_changes_nothing() {
    let db = TestDb::create().await;
    let p = pool(&db.url, 2).unwrap();
    assert!(matches!(Store::connect(&db.url, 1).await, Err(Error::NotMigrated)));
    let first = migrate(&p).await.unwrap();
    assert_eq!(first.applied.len(), migrate::latest_version() as usize, "{first:?}");
    let store = Store::connect(&db.url, 2).await.unwrap();
    let before = schema_fingerprint(&store).await;
    let second = migrate(&p).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.version, first.version);
    assert_eq!(schema_fingerprint(&store).await, before);
    for table in ["resources", "tags", "data_flows", "scope_decisions", "evidence", "grc_syncs", "alerts", "audit_logs"]
    {
        assert!(before.contains(&format!("{table}.id:uuid")), "missing table {table}");
    }
    for index in
        ["idx_resource_provider_type", "idx_flow_src_dst", "idx_scope_decision_scope", "idx_audit_action_success"]
    {
        assert!(before.contains(index), "missing index {index}");
    }
    for ty in ["cloud_provider", "resource_type", "pci_scope", "data_classification", "evidence_type"] {
        assert!(before.contains(ty), "missing enum {ty}");
    }
    // TimescaleDB where the server preloads it (scripts/test.sh runs these
    // tests on both kinds of server), native partitioning otherwise.
    let preloads: bool = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT current_setting('shared_preload_libraries') LIKE '%timescaledb%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(first.time_partitioning, if preloads { "timescaledb" } else { "native" });
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let db = TestDb::create().await;
    let p = pool(&db.url, 1).unwrap();
    migrate(&p).await.unwrap();
    p.get()
        .await
        .unwrap()
        .execute("UPDATE psg_schema_migrations SET checksum = 'x' WHERE version = 1", &[])
        .await
        .unwrap();
    let err = migrate(&p).await.unwrap_err();
    assert!(matches!(err, Error::MigrationChanged { version: 1, .. }), "{err}");
}

fn resource(id: &str, tags: &[(&str, &str)], at: i64) -> ResourceObservation {
    let t = Utc.timestamp_opt(at, 0).unwrap();
    ResourceObservation {
        row: ResourceRow {
            id: resource_uuid(id),
            provider: CloudProvider::Aws,
            resource_type: ResourceType::Ec2Instance,
            resource_id: id.into(),
            resource_arn: None,
            resource_name: Some(format!("{id}-name")),
            vpc_id: Some("vpc-1".into()),
            subnet_id: None,
            availability_zone: None,
            region: Some("us-east-1".into()),
            metadata: serde_json::json!({}),
            private_ip: Some("10.0.0.1".into()),
            public_ip: None,
            security_groups: serde_json::json!(["sg-1"]),
            discovered_at: t,
            last_seen_at: t,
            is_active: true,
            private_ips: vec!["10.0.0.1".into()],
            public_ips: vec![],
            interface_ids: vec!["eni-1".into()],
        },
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        applied_by: "test".into(),
    }
}

#[tokio::test]
async fn tag_changes_are_versioned_and_stale_observations_ignored() {
    let (_db, store) = migrated().await;
    resources::upsert_resources(&store, &[resource("i-1", &[("pci-scope", "cde"), ("team", "a")], 100)]).await.unwrap();
    // same again: no new version
    resources::upsert_resources(&store, &[resource("i-1", &[("pci-scope", "cde"), ("team", "a")], 100)]).await.unwrap();
    resources::upsert_resources(&store, &[resource("i-1", &[("pci-scope", "out-of-scope")], 200)]).await.unwrap();
    // an older observation arriving late changes nothing
    resources::upsert_resources(&store, &[resource("i-1", &[("pci-scope", "cde")], 150)]).await.unwrap();
    let tags = resources::current_tags(&store, "i-1").await.unwrap();
    assert_eq!(tags["pci-scope"], ("out-of-scope".to_owned(), 2));
    assert_eq!(tags["team"], (String::new(), 2), "a removed tag is a version with an empty value");
    let client = store.client().await.unwrap();
    let prev: Option<String> = client
        .query_one("SELECT previous_value FROM tags WHERE key = 'pci-scope' AND version = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(prev.as_deref(), Some("cde"));
    assert_eq!(resources::last_seen(&store, "i-1").await.unwrap(), Some(Utc.timestamp_opt(200, 0).unwrap()));
}

fn flow(window: i64, packets: i64) -> DataFlowRow {
    let ws = Utc.timestamp_opt(window, 0).unwrap();
    DataFlowRow {
        id: stable_id("edge", &["a", "b", &window.to_string()]),
        source_resource_id: resource_uuid("i-1"),
        dest_resource_id: resource_uuid("i-2"),
        protocol: "TCP".into(),
        src_port: None,
        dst_port: 5432,
        packet_count: packets,
        byte_count: packets * 100,
        flow_direction: EdgeDirection::IntraVpc,
        action: FlowAction::Accept,
        observed_at: ws,
        window_start: ws,
        window_end: ws + chrono::Duration::seconds(60),
        flow_count: packets,
        first_seen: ws,
        last_seen: ws,
        encrypted_flow_count: 0,
        unencrypted_flow_count: 0,
        action_logged: true,
    }
}

/// Issue 15: an accepted edge whose every connection the other end
/// rejected is withdrawn: its rows from the given window on are zeroed,
/// and nothing read back counts them (a rebuilt graph, the report, the
/// evidence).
#[tokio::test]
async fn a_withdrawal_zeroes_the_accepted_rows_and_readers_skip_them() {
    let (_db, store) = migrated().await;
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row, resource("i-2", &[], 0).row]).await.unwrap();
    let day = 1_418_530_000;
    let mut blocked = flow(day + 120, 3);
    blocked.id = stable_id("edge", &["blocked"]);
    blocked.action = FlowAction::Reject;
    flows::upsert_data_flows(&store, &[flow(day, 2), flow(day + 60, 4), blocked]).await.unwrap();
    let withdrawal = flows::Withdrawal {
        source_resource_id: resource_uuid("i-1"),
        dest_resource_id: resource_uuid("i-2"),
        protocol: "TCP".into(),
        dst_port: 5432,
        since: Utc.timestamp_opt(day + 60, 0).unwrap(),
    };
    flows::write_data_flows(&store, &[], &[withdrawal], &[]).await.unwrap();
    let client = store.client().await.unwrap();
    let rows = client.query("SELECT action, flow_count FROM data_flows ORDER BY observed_at", &[]).await.unwrap();
    let rows: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected = [("ACCEPT", 2), ("ACCEPT", 0), ("REJECT", 3)].map(|(a, n)| (a.to_owned(), n));
    assert_eq!(rows, expected, "only accepted rows from the window on");
    let edges = flows::edges_since(&store, Utc.timestamp_opt(0, 0).unwrap()).await.unwrap();
    let mut read: Vec<(&str, i64)> = edges.iter().map(|e| (e.action.as_str(), e.packets)).collect();
    read.sort();
    assert_eq!(read, vec![("ACCEPT", 2), ("REJECT", 3)]);
}

/// Issue 19 (migration 0014): data_flows has no row-by-row foreign keys;
/// a batch naming a resource that does not exist still fails as one would
/// (SQLSTATE 23503, retried as transient), naming it, and writes nothing.
#[tokio::test]
async fn data_flows_rows_must_name_existing_resources() {
    let (_db, store) = migrated().await;
    let client = store.client().await.unwrap();
    assert_eq!(foreign_keys(&client, "data_flows").await, 0, "no row-by-row foreign keys");
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row]).await.unwrap();
    // i-2, the destination, is missing.
    let text = foreign_key_violation(&flows::upsert_data_flows(&store, &[flow(1_418_530_000, 1)]).await.unwrap_err());
    assert!(text.contains(&resource_uuid("i-2").to_string()), "{text}");
    let rows: i64 = client.query_one("SELECT count(*) FROM data_flows", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "nothing of the batch was written");
    // With both ends known, the same batch goes in.
    resources::ensure_resources(&store, &[resource("i-2", &[], 0).row]).await.unwrap();
    assert_eq!(flows::upsert_data_flows(&store, &[flow(1_418_530_000, 1)]).await.unwrap(), 1);
}

/// How many foreign keys `table` has.
async fn foreign_keys(client: &deadpool_postgres::Object, table: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype = 'f'",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

/// Asserts that `err` is a foreign key violation (SQLSTATE 23503), retried
/// as transient; its text with the server's message.
fn foreign_key_violation(err: &Error) -> String {
    let Error::Postgres { source, .. } = err else { panic!("{err}") };
    assert_eq!(source.code(), Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION), "{err}");
    assert!(err.is_transient(), "{err}");
    format!("{err}: {}", source.as_db_error().map(|e| e.message()).unwrap_or_default())
}

#[tokio::test]
async fn data_flows_upsert_by_copy_creates_partitions_and_keeps_latest_counts() {
    let (_db, store) = migrated().await;
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row, resource("i-2", &[], 0).row]).await.unwrap();
    // Two days far apart (a replay of old files): partitions are created on demand.
    let day1 = 1_418_530_000;
    let day2 = day1 + 86_400 * 30;
    flows::upsert_data_flows(&store, &[flow(day1, 1), flow(day2, 5), flow(day1, 2)]).await.unwrap();
    // A batch of rows already there (redelivered): merged, not refused.
    assert_eq!(flows::upsert_data_flows(&store, &[flow(day1, 7)]).await.unwrap(), 1);
    // A batch of one new row and one already there: both land.
    assert_eq!(flows::upsert_data_flows(&store, &[flow(day1 + 60, 3), flow(day2, 6)]).await.unwrap(), 2);
    let client = store.client().await.unwrap();
    let rows = client.query("SELECT packet_count FROM data_flows ORDER BY observed_at", &[]).await.unwrap();
    let counts: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(counts, vec![7, 3, 6]);
    let parts: i64 = client
        .query_one("SELECT count(*) FROM pg_inherits WHERE inhparent = 'data_flows'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(parts, 2);
    let edges = flows::edges_since(&store, Utc.timestamp_opt(0, 0).unwrap()).await.unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0].packets, 16);
    assert_eq!(edges[0].source_resource_id, "i-1");
}

#[tokio::test]
async fn decisions_supersede_and_redelivery_is_idempotent() {
    let (_db, store) = migrated().await;
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row]).await.unwrap();
    let first = decision("first", "i-1", PciScope::PendingReview);
    let second = decision("second", "i-1", PciScope::ConnectedCde);
    decisions::write_decisions(&store, std::slice::from_ref(&first)).await.unwrap();
    decisions::write_decisions(&store, std::slice::from_ref(&second)).await.unwrap();
    // redelivery of both, in order
    decisions::write_decisions(&store, &[first.clone(), second.clone()]).await.unwrap();
    let current = decisions::current_decisions(&store).await.unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].id, second.id);
    assert_eq!(current[0].scope, "connected-cde");
    let client = store.client().await.unwrap();
    let sup: Option<uuid::Uuid> = client
        .query_one("SELECT superseded_by_id FROM scope_decisions WHERE id = $1", &[&first.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sup, Some(second.id));
    let total: i64 = client.query_one("SELECT count(*) FROM scope_decisions", &[]).await.unwrap().get(0);
    assert_eq!(total, 2);
}

#[tokio::test]
async fn transient_errors_are_recognised() {
    let store_err = Store::connect("postgres://nobody@127.0.0.1:1/none", 1).await.unwrap_err();
    assert!(store_err.is_transient(), "{store_err}");
    assert!(!Error::NotMigrated.is_transient());
}

fn opts(timescale: Timescale) -> MigrateOptions {
    MigrateOptions { timescale, ..MigrateOptions::default() }
}

/// Issue 19: `storage.timescaledb`. On the plain test server (after
/// scripts/test.sh, TimescaleDB is installed in it but not preloaded: the
/// state in which `CREATE EXTENSION` fails) `auto` falls back to native
/// partitions and `required` fails saying how to enable it; on a server
/// that preloads it, `data_flows` and `audit_logs` are compressed
/// hypertables with their policies, and `off` never uses it.
#[tokio::test]
async fn timescaledb_is_used_only_where_it_can_be_loaded() {
    let db = TestDb::create().await;
    let p = pool(&db.url, 1).unwrap();
    let client = p.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
                    current_setting('shared_preload_libraries') LIKE '%timescaledb%'",
            &[],
        )
        .await
        .unwrap();
    let (installed, preloaded): (bool, bool) = (row.get(0), row.get(1));
    drop(client);
    if !preloaded {
        let err = migrate_with(&p, &opts(Timescale::Required)).await.unwrap_err().to_string();
        if installed {
            assert!(err.contains("installed and not preloaded") && err.contains("shared_preload_libraries"), "{err}");
        } else {
            assert!(err.contains("does not have TimescaleDB"), "{err}");
        }
        let client = p.get().await.unwrap();
        let exists: bool = client.query_one("SELECT to_regclass('resources') IS NOT NULL", &[]).await.unwrap().get(0);
        assert!(!exists, "required failed before applying anything");
        drop(client);
        let report = migrate_with(&p, &opts(Timescale::Auto)).await.unwrap();
        assert_eq!(report.time_partitioning, "native");
        let err = migrate_with(&p, &opts(Timescale::Required)).await.unwrap_err().to_string();
        assert!(err.contains("created with native partitions"), "{err}");
    }

    let Some(admin) = psg_testkit::timescale_admin_url("timescaledb_is_used_only_where_it_can_be_loaded") else {
        return;
    };
    let off = TestDb::create_on(&admin).await;
    let report = migrate_with(&pool(&off.url, 1).unwrap(), &opts(Timescale::Off)).await.unwrap();
    assert_eq!(report.time_partitioning, "native");

    let ts = TestDb::create_on(&admin).await;
    let p = pool(&ts.url, 2).unwrap();
    let first = migrate_with(&p, &opts(Timescale::Required)).await.unwrap();
    assert_eq!(first.time_partitioning, "timescaledb");
    let store = Store::connect(&ts.url, 2).await.unwrap();
    let before = schema_fingerprint(&store).await;
    let second = migrate(&p).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(schema_fingerprint(&store).await, before, "migrating twice changes nothing");
    let client = store.client().await.unwrap();
    let hypertables: Vec<(String, bool)> = client
        .query(
            "SELECT hypertable_name::text, compression_enabled FROM timescaledb_information.hypertables
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(hypertables, [("audit_logs".to_owned(), true), ("data_flows".to_owned(), true)]);
    // Flows compressed per edge, in time order (migration 0012).
    let settings = client
        .query_one(
            "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings
              WHERE hypertable = 'data_flows'::regclass",
            &[],
        )
        .await
        .unwrap();
    let (segmentby, orderby): (String, String) = (settings.get(0), settings.get(1));
    assert_eq!(segmentby, "source_resource_id,dest_resource_id,protocol,dst_port");
    assert_eq!(orderby, "observed_at DESC,id");
    let jobs: Vec<(String, String)> = client
        .query(
            "SELECT proc_name::text, hypertable_name::text FROM timescaledb_information.jobs
              WHERE hypertable_name IS NOT NULL AND proc_name <> 'policy_refresh_continuous_aggregate'
              ORDER BY 2, 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        jobs,
        [
            ("policy_compression", "audit_logs"),
            ("policy_retention", "audit_logs"),
            ("policy_compression", "data_flows"),
            ("policy_retention", "data_flows")
        ]
    );
    // The hourly aggregate of flows (migration 0017), refreshed by a policy.
    let refresh: String = client
        .query_one(
            "SELECT config->>'end_offset' FROM timescaledb_information.jobs
              WHERE hypertable_name = 'data_flows_hourly' AND proc_name = 'policy_refresh_continuous_aggregate'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refresh, "01:00:00");
    assert!(second.policies.is_empty(), "{:?}", second.policies);
    let policy = async |table: &str, proc: &str, key: &str| -> String {
        client
            .query_one(
                "SELECT (config->>$3)::interval::text FROM timescaledb_information.jobs
                  WHERE hypertable_name = $1 AND proc_name = $2",
                &[&table, &proc, &key],
            )
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(policy("data_flows", "policy_retention", "drop_after").await, "400 days");
    assert_eq!(policy("audit_logs", "policy_retention", "drop_after").await, "2557 days");

    // Other settings: applied by the next migrate, once.
    let changed = MigrateOptions {
        timescale: Timescale::Auto,
        policies: Policies {
            flows_chunk_days: 2,
            flows_compress_after_days: 3,
            flows_retention_days: 90,
            audit_retention_days: 400,
        },
    };
    let third = migrate_with(&p, &changed).await.unwrap();
    assert_eq!(third.policies.len(), 4, "{:?}", third.policies);
    assert!(third.policies.iter().any(|c| c == "data_flows retention: 400 days → 90 days"), "{:?}", third.policies);
    assert_eq!(policy("data_flows", "policy_compression", "compress_after").await, "3 days");
    assert_eq!(policy("audit_logs", "policy_retention", "drop_after").await, "400 days");
    let chunk: String = client
        .query_one(
            "SELECT time_interval::text FROM timescaledb_information.dimensions WHERE hypertable_name = 'data_flows'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunk, "2 days");
    assert!(migrate_with(&p, &changed).await.unwrap().policies.is_empty(), "applied once");
    drop(client);
}

/// Issue 20: a batch's leaves of the evidence log go in by COPY, a row per
/// run (migration 0021); the same batch again (redelivered after a
/// restart) changes nothing, a batch mixing stored and new leaves adds the
/// new ones, and a different leaf at a stored index is refused: the log
/// would fork. A record stored with its leaf finds its entry.
#[tokio::test]
async fn evidence_log_leaves_are_appended_once_and_never_forked() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use psg_domain::rows::EvidenceLogRow;
    let (_db, store) = migrated().await;
    let leaf = |i: i64, what: &str| EvidenceLogRow {
        log_index: i,
        evidence_id: stable_id("leaf", &[what, &i.to_string()]),
        record_hash: format!("{:064x}", i + 1),
        checkpoint_size: i + 1,
        inclusion: vec![B64.encode([0u8; 32]), B64.encode(format!("{what}{i:031}"))],
    };
    let count = async || -> i64 {
        store.client().await.unwrap().query_one("SELECT count(*) FROM evidence_log", &[]).await.unwrap().get(0)
    };
    let first = [leaf(0, "a"), leaf(1, "a")];
    evidence::append(&store, &[], &first, &[]).await.unwrap();
    assert_eq!(count().await, 2);
    evidence::append(&store, &[], &first, &[]).await.unwrap();
    assert_eq!(count().await, 2, "a redelivered batch changes nothing");
    evidence::append(&store, &[], &[leaf(1, "a"), leaf(2, "a")], &[]).await.unwrap();
    assert_eq!(count().await, 3, "the new leaf of a mixed batch is added");
    let err = evidence::append(&store, &[], &[leaf(2, "b")], &[]).await.unwrap_err().to_string();
    assert!(err.contains("would fork"), "{err}");
    assert_eq!(count().await, 3);
    let runs: Vec<(i64, i64)> = store
        .client()
        .await
        .unwrap()
        .query("SELECT first_index, cardinality(evidence_ids)::int8 FROM evidence_log_batches ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(runs, [(0, 1), (1, 1), (2, 1)], "a row per run of leaves with one checkpoint");
    // Their records, stored with the (stored) leaves: each names its place.
    let logged = |i: i64| psg_domain::rows::EvidenceRow {
        chain: "logged".into(),
        ..segmentation_record(i + 1, leaf(i, "a").evidence_id, leaf(i, "a").record_hash)
    };
    let all = [leaf(0, "a"), leaf(1, "a"), leaf(2, "a")];
    evidence::append(&store, &[logged(0), logged(1), logged(2)], &all, &[]).await.unwrap();
    assert_eq!(count().await, 3);
    let stored = evidence::log_entries(&store, &[leaf(1, "a").evidence_id]).await.unwrap();
    assert_eq!(stored, [leaf(1, "a")], "the proof is read back as given");
    let ids: Vec<uuid::Uuid> = all.iter().map(|l| l.evidence_id).collect();
    assert_eq!(evidence::log_entries(&store, &ids).await.unwrap(), all);
    assert_eq!(evidence::log_leaves(&store).await.unwrap(), all.map(|l| l.record_hash));
    let bytes: Vec<u8> = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT inclusion FROM evidence_log WHERE log_index = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bytes.len(), 64, "kept as the hashes' bytes");
    // A proof that is not base64 SHA-256 hashes is refused, by name.
    let mut bad = leaf(3, "a");
    bad.inclusion.push("AAAA".into());
    let err = evidence::append(&store, &[], &[bad], &[]).await.unwrap_err().to_string();
    assert!(err.contains("leaf 3 holds 'AAAA', not a base64 SHA-256 hash"), "{err}");
    assert_eq!(count().await, 3);

    // Evidence rows: the same, by chain and sequence.
    let record = |seq: i64, what: &str| {
        segmentation_record(seq, stable_id("record", &[what, &seq.to_string()]), format!("{what}{seq:063}"))
    };
    let records = async || -> i64 {
        let sql = "SELECT count(*) FROM evidence WHERE chain = 'network_segmentation_validation'";
        store.client().await.unwrap().query_one(sql, &[]).await.unwrap().get(0)
    };
    evidence::append(&store, &[record(1, "a"), record(2, "a")], &[], &[]).await.unwrap();
    evidence::append(&store, &[record(1, "a"), record(2, "a")], &[], &[]).await.unwrap();
    assert_eq!(records().await, 2, "a redelivered batch changes nothing");
    evidence::append(&store, &[record(2, "a"), record(3, "a")], &[], &[]).await.unwrap();
    assert_eq!(records().await, 3);
    let err = evidence::append(&store, &[record(3, "b")], &[], &[]).await.unwrap_err().to_string();
    assert!(err.contains("inserting evidence"), "a different record at a stored sequence: {err}");
    assert_eq!(records().await, 3);

    // Committed only when what must come first (the documents) succeeded.
    let failed = evidence::append_when(&store, &[record(4, "a")], &[leaf(3, "a")], &[], async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Err("documents not durable")
    })
    .await;
    assert!(matches!(failed, Err(evidence::AppendError::Before("documents not durable"))), "{failed:?}");
    assert_eq!((records().await, count().await), (3, 3), "nothing of the batch is committed");
    evidence::append_when(&store, &[record(4, "a")], &[leaf(3, "a")], &[], async { Ok::<(), &str>(()) }).await.unwrap();
    assert_eq!((records().await, count().await), (4, 4));
    // A failing write is reported as the store's, the other side's success notwithstanding.
    let forked = evidence::append_when(&store, &[record(4, "b")], &[], &[], async { Ok::<(), &str>(()) }).await;
    assert!(matches!(forked, Err(evidence::AppendError::Store(_))), "{forked:?}");
}

/// Issue 20: a batch of more rows than a COPY statement takes
/// (`copy::ROWS_PER_COPY`) goes in by several, in one transaction, and
/// every row reads back once, as written. Redelivered with new rows, a
/// stored row in a later statement than the first takes back the
/// statements before it, and the batch goes in by the INSERT that skips
/// stored rows: each row is then stored once.
#[tokio::test]
async fn evidence_batches_larger_than_a_copy_statement_go_in_whole() {
    let (_db, store) = migrated().await;
    let per = i64::try_from(crate::copy::ROWS_PER_COPY).unwrap();
    let record = |chain: &str, seq: i64| psg_domain::rows::EvidenceRow {
        chain: chain.into(),
        ..segmentation_record(seq, stable_id("many", &[chain, &seq.to_string()]), format!("{chain}{seq:060}"))
    };
    let rows = |chain: &str, seqs: std::ops::RangeInclusive<i64>| seqs.map(|s| record(chain, s)).collect::<Vec<_>>();
    let stored = async |chain: &str| -> Vec<(i64, String, serde_json::Value)> {
        let sql = "SELECT sequence, hash, data FROM evidence WHERE chain = $1 ORDER BY sequence";
        let client = store.client().await.unwrap();
        client.query(sql, &[&chain]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    };
    let want = |chain: &str, last: i64| -> Vec<(i64, String, serde_json::Value)> {
        (1..=last).map(|s| (s, format!("{chain}{s:060}"), serde_json::json!({"n": s}))).collect()
    };

    let first = 2 * per + 37;
    evidence::append(&store, &rows("many", 1..=first), &[], &[]).await.unwrap();
    assert_eq!(stored("many").await, want("many", first), "three statements' rows, each once");

    // Rows are copied in chain order: "else"'s new rows fill the first two
    // statements, and the third starts with five of "many"'s stored rows.
    let mut again = rows("else", 1..=2 * per);
    again.extend(rows("many", first - 4..=first + 20));
    evidence::append(&store, &again, &[], &[]).await.unwrap();
    assert_eq!(stored("else").await, want("else", 2 * per));
    assert_eq!(stored("many").await, want("many", first + 20));
}

/// Issue 20, migration 0022: a batch of leaves that its own checkpoint
/// first covers keeps the hashes of the subtrees left of it instead of its
/// proofs; they read back as given, through the store and through the
/// evidence_log view (computed in SQL). A batch whose proofs are not that
/// tree's keeps them as given.
#[tokio::test]
async fn evidence_log_batches_compute_their_proofs() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use psg_domain::rows::EvidenceLogRow;
    let (_db, store) = migrated().await;
    let records: Vec<[u8; 32]> = (0..26u8).map(|i| [i.wrapping_mul(41).wrapping_add(7); 32]).collect();
    // The proofs of the whole tree of each checkpoint's size.
    let batch = |from: usize, to: usize| -> Vec<EvidenceLogRow> {
        let (_, proofs) = psg_domain::log_tree::run_proofs(0, &records[..to], &[]).unwrap();
        (from..to)
            .map(|i| EvidenceLogRow {
                log_index: i as i64,
                evidence_id: stable_id("computed", &[&i.to_string()]),
                record_hash: hex::encode(records[i]),
                checkpoint_size: to as i64,
                inclusion: proofs[i].iter().map(|h| B64.encode(h)).collect(),
            })
            .collect()
    };
    // With their records, which name their places.
    let records_of = |leaves: &[EvidenceLogRow]| -> Vec<psg_domain::rows::EvidenceRow> {
        let record = |l: &EvidenceLogRow| psg_domain::rows::EvidenceRow {
            chain: "computed".into(),
            ..segmentation_record(l.log_index + 1, l.evidence_id, l.record_hash.clone())
        };
        leaves.iter().map(record).collect()
    };
    let batches = [batch(0, 5), batch(5, 13), batch(13, 14), batch(14, 22)];
    for b in &batches {
        evidence::append(&store, &records_of(b), b, &[]).await.unwrap();
    }
    // A batch with a proof that is not its tree's (its first gives the
    // subtrees left of it, its second disagrees): kept as given.
    let mut odd = batch(22, 24);
    odd[1].inclusion[2] = B64.encode([9u8; 32]);
    evidence::append(&store, &records_of(&odd), &odd, &[]).await.unwrap();
    // The same written with its checkpoint, whose root its leaves and the
    // subtrees left of it give: its proofs are that tree's, whatever was
    // given, so they are not read, and read back as the tree's.
    let right = batch(24, 26);
    let mut given = right.clone();
    given[1].inclusion[0] = B64.encode([9u8; 32]);
    let (root, _) = psg_domain::log_tree::run_proofs(0, &records[..26], &[]).unwrap();
    let checkpoint = psg_domain::rows::EvidenceCheckpointRow {
        origin: "test/log".into(),
        tree_size: 26,
        root: B64.encode(root),
        key_id: "key".into(),
        checkpoint: "test/log\n26\n".into(),
        previous_size: None,
        consistency: Vec::new(),
        signed_at: Utc::now(),
    };
    evidence::append(&store, &records_of(&given), &given, &[checkpoint]).await.unwrap();
    let all: Vec<EvidenceLogRow> = batches.iter().flatten().chain(&odd).chain(&right).cloned().collect();

    let client = store.client().await.unwrap();
    let kept: Vec<(i64, Option<i32>, bool)> = client
        .query(
            "SELECT first_index, length(left_subtrees), inclusion IS NOT NULL FROM evidence_log_batches ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        kept,
        [
            (0, Some(0), false),
            (5, Some(64), false),
            (13, Some(96), false),
            (14, Some(96), false),
            (22, None, true),
            (24, Some(64), false)
        ],
        "a subtree per binary digit of the first index (5 = 4 + 1, 13 = 8 + 4 + 1, 14 = 8 + 4 + 2)"
    );
    let ids: Vec<uuid::Uuid> = all.iter().map(|l| l.evidence_id).collect();
    assert_eq!(evidence::log_entries(&store, &ids).await.unwrap(), all, "every proof reads back as given");
    assert_eq!(evidence::log_entries(&store, &ids[7..8]).await.unwrap(), all[7..8]);
    let view: Vec<(i64, Vec<u8>)> = client
        .query("SELECT log_index, inclusion FROM evidence_log ORDER BY log_index", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(i64, Vec<u8>)> =
        all.iter().map(|l| (l.log_index, l.inclusion.iter().flat_map(|h| B64.decode(h).unwrap()).collect())).collect();
    assert_eq!(view, expected, "the view computes the same proofs");

    // The table refuses a batch whose subtrees do not fit its first index,
    // or that does not end at its checkpoint.
    for (first, subtrees, size) in [(26i64, 32usize, 27i64), (26, 64, 28)] {
        let err = client
            .execute(
                "INSERT INTO evidence_log_batches (first_index, evidence_ids, record_hashes, checkpoint_size,
                                                   left_subtrees)
                 VALUES ($1, ARRAY[gen_random_uuid()], $2, $3, $4)",
                &[&first, &vec![1u8; 32], &size, &vec![2u8; subtrees]],
            )
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("evidence_log_batches_proofs"), "{first}, {subtrees}: {err:?}");
    }
}

/// Migration 0018 turns the proofs of a log stored before it (text[] of
/// base64 hashes) into bytes: each leaf reads back as it was written,
/// the empty proof of a one-leaf tree too.
#[tokio::test]
async fn migration_18_keeps_every_stored_proof() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    let db = TestDb::create().await;
    let p = pool(&db.url, 1).unwrap();
    let opts = migrate::MigrateOptions::default();
    migrate::migrate_until(&p, &opts, 17).await.unwrap();
    let client = p.get().await.unwrap();
    let proofs: Vec<Vec<String>> = vec![
        vec![],
        vec![B64.encode([1u8; 32])],
        (0..17u8).map(|i| B64.encode([i.wrapping_mul(37); 32])).collect(),
        vec![B64.encode([255u8; 32]), B64.encode([0u8; 32]), B64.encode(*b"0123456789abcdef0123456789abcdef")],
    ];
    for (i, proof) in proofs.iter().enumerate() {
        let id = stable_id("leaf", &[&i.to_string()]);
        client
            .execute(
                "INSERT INTO evidence_log (log_index, evidence_id, record_hash, checkpoint_size, inclusion)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&(i as i64), &id, &format!("{:064x}", i + 1), &(i as i64 + 1), proof],
            )
            .await
            .unwrap();
    }
    drop(client);
    let report = migrate::migrate_until(&p, &opts, 18).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let read: Vec<Vec<u8>> = p
        .get()
        .await
        .unwrap()
        .query("SELECT inclusion FROM evidence_log ORDER BY log_index", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<Vec<u8>> =
        proofs.iter().map(|p| p.iter().flat_map(|h| B64.decode(h).unwrap()).collect()).collect();
    assert_eq!(read, expected);
}

/// Migration 0021 regroups a log stored a row per leaf into a row per run
/// of leaves first covered by one checkpoint, and gives each logged record
/// its log_index: the leaves, entries and proofs read back as they were
/// written; evidence_log still shows a leaf per row; both stay as they are.
#[tokio::test]
async fn migration_21_keeps_every_leaf_and_proof() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    let db = TestDb::create().await;
    let p = pool(&db.url, 1).unwrap();
    migrate::migrate_until(&p, &migrate::MigrateOptions::default(), 20).await.unwrap();
    // Five records in two checkpoints (sizes 2 and 5), as version 20 kept them.
    let entries: Vec<psg_domain::rows::EvidenceLogRow> = (0..5i64)
        .map(|i| psg_domain::rows::EvidenceLogRow {
            log_index: i,
            evidence_id: stable_id("record", &[&i.to_string()]),
            record_hash: format!("{:064x}", i + 1),
            checkpoint_size: if i < 2 { 2 } else { 5 },
            inclusion: (0..i).map(|h| B64.encode([(i * 10 + h) as u8; 32])).collect(),
        })
        .collect();
    let client = p.get().await.unwrap();
    for e in &entries {
        let proof: Vec<u8> = e.inclusion.iter().flat_map(|h| B64.decode(h).unwrap()).collect();
        client
            .execute(
                "INSERT INTO evidence (id, evidence_type, data, hash, signature, signing_key_id, generated_by,
                                       expires_at, chain, sequence)
                 VALUES ($1, 'network_segmentation_validation', '{}', $2, 'sig', 'key', 'test',
                         now() + interval '1 year', 'network_segmentation_validation', $3)",
                &[&e.evidence_id, &e.record_hash, &(e.log_index + 1)],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO evidence_log (log_index, evidence_id, record_hash, checkpoint_size, inclusion)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&e.log_index, &e.evidence_id, &e.record_hash, &e.checkpoint_size, &proof],
            )
            .await
            .unwrap();
    }
    drop(client);
    let report = migrate::migrate_until(&p, &migrate::MigrateOptions::default(), 22).await.unwrap();
    assert_eq!(report.applied.len(), 2, "0021 and 0022: {report:?}");
    let store = Store::connect(&db.url, 1).await.unwrap();
    let ids: Vec<uuid::Uuid> = entries.iter().map(|e| e.evidence_id).collect();
    assert_eq!(evidence::log_entries(&store, &ids).await.unwrap(), entries);
    assert_eq!(evidence::log_entries(&store, &ids[3..4]).await.unwrap(), entries[3..4]);
    let leaves: Vec<String> = entries.iter().map(|e| e.record_hash.clone()).collect();
    assert_eq!(evidence::log_leaves(&store).await.unwrap(), leaves);
    let client = store.client().await.unwrap();
    let runs: Vec<(i64, i64)> = client
        .query("SELECT first_index, checkpoint_size FROM evidence_log_batches ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(runs, [(0, 2), (2, 5)]);
    let view: Vec<(i64, uuid::Uuid, String, i64)> = client
        .query("SELECT log_index, evidence_id, record_hash, checkpoint_size FROM evidence_log ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let expected: Vec<(i64, uuid::Uuid, String, i64)> =
        entries.iter().map(|e| (e.log_index, e.evidence_id, e.record_hash.clone(), e.checkpoint_size)).collect();
    assert_eq!(view, expected);
    for sql in [
        "UPDATE evidence SET log_index = 7 WHERE log_index = 1",
        "UPDATE evidence_log_batches SET checkpoint_size = 9",
        "DELETE FROM evidence_log_batches",
    ] {
        let err = client.execute(sql, &[]).await.unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("immutable") || text.contains("append-only"), "{sql}: {text}");
    }
}

/// Migration 0019 has evidence's text keys compared by their bytes
/// (collation "C"): rows stored before it are found by them as before,
/// and their unique keys still refuse a second row.
#[tokio::test]
async fn migration_19_keeps_evidence_keys_unique_and_found() {
    let (db, store) = migrated().await;
    let client = store.client().await.unwrap();
    let collations = async |client: &deadpool_postgres::Object| -> Vec<(String, Option<String>)> {
        client
            .query(
                "SELECT column_name::text, collation_name::text FROM information_schema.columns
                  WHERE table_name = 'evidence' AND column_name IN ('hash', 'chain', 'pci_requirement')
                  ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let c = Some("C".to_owned());
    assert_eq!(
        collations(&client).await,
        [("chain".to_owned(), c.clone()), ("hash".to_owned(), c.clone()), ("pci_requirement".to_owned(), c.clone())]
    );
    // The table as version 18 left it, with rows in it.
    client
        .batch_execute(
            r#"DELETE FROM psg_schema_migrations WHERE version = 19;
               ALTER TABLE evidence
                   ALTER COLUMN hash TYPE varchar(64) COLLATE "default",
                   ALTER COLUMN chain TYPE varchar(64) COLLATE "default",
                   ALTER COLUMN pci_requirement TYPE varchar(16) COLLATE "default";"#,
        )
        .await
        .unwrap();
    assert!(collations(&client).await.iter().all(|(_, c)| c.is_none()));
    let record = |seq: i64| psg_domain::rows::EvidenceRow {
        prev_hash: (seq > 1).then(|| format!("{:064x}", seq - 1)),
        ..segmentation_record(seq, stable_id("record", &[&seq.to_string()]), format!("{seq:064x}"))
    };
    evidence::insert_evidence(&store, &[record(1), record(2), record(3)]).await.unwrap();
    drop(client);

    let report = migrate(&pool(&db.url, 1).unwrap()).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let client = store.client().await.unwrap();
    assert_eq!(collations(&client).await.iter().filter(|(_, col)| *col == c).count(), 3);
    assert_eq!(
        evidence::chain_head(&store, "network_segmentation_validation").await.unwrap(),
        Some((3, format!("{:064x}", 3)))
    );
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM evidence WHERE hash = $1 AND pci_requirement = '1.2.1'",
            &[&format!("{:064x}", 2)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1);
    // Unique still: another record with a stored hash, or at a stored
    // chain position, is refused.
    let mut same_hash = record(4);
    same_hash.hash = format!("{:064x}", 2);
    assert!(evidence::insert_evidence(&store, &[same_hash]).await.is_err());
    let mut same_place = record(5);
    same_place.sequence = 3;
    assert!(evidence::insert_evidence(&store, &[same_place]).await.is_err());
    evidence::insert_evidence(&store, &[record(4)]).await.unwrap();
}

/// The rows of `evidence` a partial index holds, as (chain, sequence).
async fn held_by(client: &deadpool_postgres::Object, index: &str) -> Vec<(String, i64)> {
    let rows = psg_testkit::partial_index_rows(client, index, "evidence", "chain, sequence").await;
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Migration 0025: the two requirement indexes leave out the scope
/// identification records (one per decision, nearly every row, requirement
/// 12.5.2) and still serve every other search by type or requirement.
#[tokio::test]
async fn requirement_indexes_leave_out_scope_records_and_serve_other_searches() {
    let (_db, store) = migrated().await;
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row]).await.unwrap();
    let d = decision("first", "i-1", PciScope::Cde);
    decisions::write_decisions(&store, std::slice::from_ref(&d)).await.unwrap();
    let record = |chain: &str, seq: i64, requirement: Option<&str>| psg_domain::rows::EvidenceRow {
        evidence_type: chain.parse().unwrap(),
        chain: chain.into(),
        pci_requirement: requirement.map(Into::into),
        prev_hash: (seq > 1).then(|| format!("{chain}{}", seq - 1)),
        ..segmentation_record(seq, stable_id("record", &[chain, &seq.to_string()]), format!("{chain}{seq}"))
    };
    let scope = psg_domain::rows::EvidenceRow {
        scope_decision_id: Some(d.id),
        ..record("pci_scope_identification", 1, Some("12.5.2"))
    };
    let rows = [
        scope,
        record("tag_audit_trail", 1, Some("12.5.2")),
        record("network_segmentation_validation", 1, Some("1.3.1")),
        record("network_segmentation_validation", 2, None),
    ];
    evidence::insert_evidence(&store, &rows).await.unwrap();

    let client = store.client().await.unwrap();
    let held = |chains: &[(&str, i64)]| chains.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect::<Vec<_>>();
    assert_eq!(
        held_by(&client, "ix_evidence_pci_requirement").await,
        held(&[("network_segmentation_validation", 1), ("network_segmentation_validation", 2)]),
        "every requirement but 12.5.2, and none"
    );
    assert_eq!(
        held_by(&client, "idx_evidence_type_requirement").await,
        held(&[("network_segmentation_validation", 1), ("network_segmentation_validation", 2), ("tag_audit_trail", 1)]),
        "every type but scope identification"
    );

    // A search for anything else can use them: the planner proves their
    // predicates from the search's condition (with the table scan ruled
    // out, it takes the index whenever it may).
    client.batch_execute("SET enable_seqscan = off; SET jit = off").await.unwrap();
    let plan = async |search: &str| -> Vec<String> {
        let explain = format!("EXPLAIN SELECT id FROM evidence WHERE {search}");
        client.query(&explain, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    };
    for (search, index, found) in [
        ("evidence_type = 'tag_audit_trail'", "idx_evidence_type_requirement", 1),
        (
            "evidence_type = 'network_segmentation_validation' AND pci_requirement = '1.3.1'",
            "idx_evidence_type_requirement",
            1,
        ),
        ("evidence_type IN ('data_flow_analysis', 'configuration_snapshot')", "idx_evidence_type_requirement", 0),
        ("pci_requirement = '1.3.1'", "ix_evidence_pci_requirement", 1),
        ("pci_requirement IN ('1.2.4', '1.3.1')", "ix_evidence_pci_requirement", 1),
        ("pci_requirement IS NULL", "ix_evidence_pci_requirement", 1),
    ] {
        let plan = plan(search).await;
        assert!(plan.iter().any(|line| line.contains(index)), "{search}: {plan:#?}");
        let n: i64 =
            client.query_one(&format!("SELECT count(*) FROM evidence WHERE {search}"), &[]).await.unwrap().get(0);
        assert_eq!(n, found, "{search}");
    }
    // The scope records' own values are no search the indexes could serve.
    for search in ["evidence_type = 'pci_scope_identification'", "pci_requirement = '12.5.2'"] {
        let plan = plan(search).await;
        let indexes = ["ix_evidence_pci_requirement", "idx_evidence_type_requirement"];
        assert!(plan.iter().all(|line| indexes.iter().all(|i| !line.contains(i))), "{search}: {plan:#?}");
    }
}

/// Migration 0020: evidence has no row-by-row foreign key to
/// scope_decisions; a batch naming a decision that does not exist still
/// fails as one would (SQLSTATE 23503, transient), naming it, and writes
/// nothing. Deleting a decision still deletes its evidence, waiting for an
/// evidence write in flight to finish so that its rows go too; changing a
/// referenced decision's id is refused.
#[tokio::test]
async fn evidence_rows_must_name_existing_decisions() {
    let (_db, store) = migrated().await;
    let client = store.client().await.unwrap();
    assert_eq!(foreign_keys(&client, "evidence").await, 0, "no row-by-row foreign key");
    let brin: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'evidence' AND indexdef LIKE '%USING brin%'
                AND (indexdef LIKE '%(generated_at)%' OR indexdef LIKE '%(expires_at)%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(brin, 2, "the time indexes are BRIN indexes");
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row]).await.unwrap();
    let records = async || -> i64 {
        store.client().await.unwrap().query_one("SELECT count(*) FROM evidence", &[]).await.unwrap().get(0)
    };
    let about = |seq: i64, d: &ScopeDecisionRow| psg_domain::rows::EvidenceRow {
        scope_decision_id: Some(d.id),
        ..segmentation_record(seq, stable_id("record", &[&seq.to_string()]), format!("{seq:064x}"))
    };
    let (first, second) = (decision("first", "i-1", PciScope::Cde), decision("second", "i-1", PciScope::Cde));
    decisions::write_decisions(&store, std::slice::from_ref(&first)).await.unwrap();

    // The second decision is missing.
    let err = evidence::insert_evidence(&store, &[about(1, &first), about(2, &second)]).await.unwrap_err();
    let text = foreign_key_violation(&err);
    assert!(text.contains(&second.id.to_string()) && !text.contains(&first.id.to_string()), "{text}");
    assert_eq!(records().await, 0, "nothing of the batch was written");
    // With both decisions there, the same batch goes in (and again, as a redelivery).
    decisions::write_decisions(&store, std::slice::from_ref(&second)).await.unwrap();
    evidence::insert_evidence(&store, &[about(1, &first), about(2, &second)]).await.unwrap();
    evidence::insert_evidence(&store, &[about(1, &first), about(2, &second)]).await.unwrap();
    assert_eq!(records().await, 2);
    // The check itself (migration 0024: a count first, the anti-join when
    // it falls short): repeated and NULL ids are no missing decision, and a
    // missing one is named, also next to repeats.
    let check = async |ids: Vec<Option<uuid::Uuid>>| {
        client.execute("SELECT psg_require_decisions($1::uuid[])", &[&ids]).await.map(drop)
    };
    check(vec![Some(first.id), Some(second.id)]).await.unwrap();
    check(vec![Some(first.id), Some(first.id), None]).await.unwrap();
    check(vec![]).await.unwrap();
    let missing = decision("third", "i-1", PciScope::Cde).id;
    let err = check(vec![Some(first.id), Some(first.id), Some(missing)]).await.unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code(), &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION);
    assert!(db.message().ends_with(&missing.to_string()), "{}", db.message());

    // A referenced id does not change.
    let err = client
        .execute("UPDATE scope_decisions SET id = gen_random_uuid() WHERE id = $1", &[&first.id])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION), "{err}");

    // A delete waits for the evidence write in flight, then takes its rows
    // too: a third decision, as a decision has one record (migration 0023).
    resources::ensure_resources(&store, &[resource("i-2", &[], 0).row]).await.unwrap();
    let third = decision("third", "i-2", PciScope::Cde);
    decisions::write_decisions(&store, std::slice::from_ref(&third)).await.unwrap();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let write = tokio::spawn({
        let store = store.clone();
        let row = about(3, &third);
        async move {
            evidence::append_when(&store, &[row], &[], &[], async move { wait.await.map_err(|_| "dropped") }).await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let delete = tokio::spawn({
        let store = store.clone();
        let ids = [first.id, third.id];
        async move {
            let c = store.client().await.unwrap();
            c.execute("DELETE FROM scope_decisions WHERE id = ANY($1)", &[&&ids[..]]).await.unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!delete.is_finished(), "the delete waits for the evidence write");
    go.send(()).unwrap();
    write.await.unwrap().unwrap();
    assert_eq!(delete.await.unwrap(), 2);
    let left: Vec<i64> = client
        .query("SELECT sequence FROM evidence ORDER BY sequence", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, [2], "the first decision's records, the one written meanwhile too, are gone");
    // A write naming the deleted decision fails.
    let err = evidence::insert_evidence(&store, &[about(4, &third)]).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("scope decisions"), "{err}");
}

/// Migration 0023: `hash` stays unique through a hash index, a decision
/// has at most one record, rows naming no decision are as many as they
/// are, and the duplicate check probes the indexes key by key even in a
/// large table of narrow rows never analyzed (where `id = ANY($1)` was
/// planned as a scan of the table). A database holding two records of one
/// decision is not migrated, and says why.
#[tokio::test]
async fn migration_23_keeps_evidence_unique_and_looked_up_by_index() {
    let opts = migrate::MigrateOptions::default();
    let db = TestDb::create().await;
    let p = pool(&db.url, 1).unwrap();
    migrate::migrate_until(&p, &opts, 22).await.unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row]).await.unwrap();
    let (first, second) = (decision("first", "i-1", PciScope::Cde), decision("second", "i-1", PciScope::Cde));
    decisions::write_decisions(&store, &[first.clone(), second.clone()]).await.unwrap();
    let record = |seq: i64, d: Option<&ScopeDecisionRow>| psg_domain::rows::EvidenceRow {
        scope_decision_id: d.map(|d| d.id),
        ..segmentation_record(seq, stable_id("record", &[&seq.to_string()]), format!("{seq:064x}"))
    };
    evidence::insert_evidence(&store, &[record(1, None), record(2, None), record(3, Some(&first))]).await.unwrap();
    let report = migrate::migrate_until(&p, &opts, 23).await.unwrap();
    assert_eq!(report.applied, ["0023 evidence_uniqueness_at_scale"]);

    let refused = async |row: psg_domain::rows::EvidenceRow, constraint: &str| {
        let err = evidence::insert_evidence(&store, &[row]).await.unwrap_err();
        let Error::Postgres { source, .. } = &err else { panic!("{err}") };
        let db = source.as_db_error().expect("a database error");
        assert_eq!(db.constraint(), Some(constraint), "{err}: {db:?}");
    };
    refused(psg_domain::rows::EvidenceRow { hash: format!("{:064x}", 2), ..record(4, None) }, "evidence_hash_unique")
        .await;
    refused(record(4, Some(&first)), "ix_evidence_scope_decision_id").await;
    evidence::insert_evidence(&store, &[record(4, None), record(5, Some(&second))]).await.unwrap();
    let found = evidence::existing(
        &store,
        &evidence::Lookup {
            records: vec![record(1, None).id, stable_id("record", &["none"])],
            decisions: vec![first.id, stable_id("decision", &["none"])],
        },
    )
    .await
    .unwrap();
    assert_eq!(found.records, [record(1, None).id].into());
    assert!(found.decisions.is_empty(), "record 3 names its decision but is no scope identification record");

    // A large table, never analyzed: the lookup still goes through the indexes.
    let client = store.client().await.unwrap();
    client
        .execute(
            "INSERT INTO evidence (id, scope_decision_id, evidence_type, data, hash, signature, signing_key_id,
                 generated_at, generated_by, expires_at, chain, sequence)
             SELECT gen_random_uuid(), gen_random_uuid(), 'pci_scope_identification', '{}',
                    encode(sha256(s::text::bytea), 'hex'), 'sig', 'key', now(), 'test', now() + interval '1 year',
                    'bulk', s
               FROM generate_series(1, 200000) s",
            &[],
        )
        .await
        .unwrap();
    let analyzed: Option<chrono::DateTime<Utc>> = client
        .query_one(
            "SELECT greatest(last_analyze, last_autoanalyze) FROM pg_stat_user_tables WHERE relname = 'evidence'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    if analyzed.is_none() {
        let ids: Vec<uuid::Uuid> = (0..1_000).map(|i| stable_id("lookup", &[&i.to_string()])).collect();
        let plan: String = client
            .query(&format!("EXPLAIN {}", evidence::EXISTING), &[&ids, &ids])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0) + "\n")
            .collect();
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(plan.contains("evidence_pkey") && plan.contains("ix_evidence_scope_decision_id"), "{plan}");
    }
    drop(client);

    // Two records of one decision: not migrated, and why.
    let db = TestDb::create().await;
    let p = pool(&db.url, 1).unwrap();
    migrate::migrate_until(&p, &opts, 22).await.unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    resources::ensure_resources(&store, &[resource("i-1", &[], 0).row]).await.unwrap();
    decisions::write_decisions(&store, std::slice::from_ref(&first)).await.unwrap();
    evidence::insert_evidence(&store, &[record(1, Some(&first)), record(2, Some(&first))]).await.unwrap();
    let err = migrate(&p).await.unwrap_err().to_string();
    assert!(err.contains("more than one record for scope decisions") && err.contains(&first.id.to_string()), "{err}");
}

/// A network segmentation record at `seq` of its chain, with no previous
/// hash, for the evidence tests.
fn segmentation_record(seq: i64, id: uuid::Uuid, hash: String) -> psg_domain::rows::EvidenceRow {
    psg_domain::rows::EvidenceRow {
        id,
        scope_decision_id: None,
        evidence_type: EvidenceType::NetworkSegmentation,
        data: serde_json::json!({"n": seq}).into(),
        hash,
        signature: "sig".into(),
        signing_key_id: "key".into(),
        storage_url: None,
        pci_requirement: Some("1.2.1".into()),
        generated_at: Utc::now(),
        generated_by: "test".into(),
        expires_at: Utc::now() + chrono::Duration::days(365),
        last_verified_at: None,
        verification_count: 0,
        chain: "network_segmentation_validation".into(),
        sequence: seq,
        prev_hash: None,
    }
}
