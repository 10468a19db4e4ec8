//! `grc run` as deployed: the real binary as a process, following
//! `scope.decisions` and `evidence.records` on librdkafka's mock cluster,
//! reading PostgreSQL, pushing to a local server that implements Vanta's
//! documented endpoints (OAuth token, custom resources:
//! `psg_testkit::http`, as the provider tests use).
//!
//! A full sync at start (none ever completed); a decision published → one
//! incremental sync, its `grc_syncs` row, its offset committed; nothing
//! published → no sync on the next ticks; a full sync when `--full-every`
//! is due; SIGTERM → exit 0; started again with a full sync that is recent
//! → none at start. `kill -9` before a sync covered a change → the next
//! instance syncs it. An evidence record → uploaded by the next sync.

use std::time::Duration;

use chrono::Utc;
use psg_domain::rows::{ResourceRow, ScopeDecisionRow};
use psg_domain::{CloudProvider, DecisionMethod, PciScope, ScopeDecision, ScopeRule};
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::topics::TopicSpec;
use psg_store::Store;
use psg_testkit::http::{Server, VantaState, serve, vanta_handle};
use psg_testkit::kafka::{committed_offsets, produce};
use psg_testkit::procs::Procs;
use psg_testkit::{TestDb, http_get, wait_for};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

/// A resource and its current decision in the database, as classify writes
/// them; returns the decision's id.
async fn decide(store: &Store, address: &str, scope: PciScope) -> (ResourceRow, uuid::Uuid) {
    let now = Utc::now();
    let row = ResourceRow::for_address(address, true, CloudProvider::Aws, now);
    psg_store::resources::ensure_resources(store, std::slice::from_ref(&row)).await.expect("resource");
    let id = uuid::Uuid::new_v4();
    let decision = ScopeDecisionRow {
        id,
        resource_id: row.id,
        scope,
        data_classification: None,
        segment: Some("vpc-1".into()),
        justification: format!("{address} decided"),
        confidence_score: None,
        decided_at: now,
        decided_by: "classify".into(),
        decision_method: DecisionMethod::Automated,
        is_current: true,
        superseded_by_id: None,
        dependency_resource_ids: json!([]),
    };
    psg_store::decisions::write_decisions(store, &[decision]).await.expect("decision");
    (row, id)
}

/// Publishes the decision `id` about `row` on `scope.decisions`, as classify does.
async fn publish(brokers: &str, row: &ResourceRow, id: uuid::Uuid) {
    let message = ScopeDecision {
        decision_id: id.to_string(),
        resource_id: row.resource_id.clone(),
        resource_uuid: row.id.to_string(),
        scope: PciScope::ConnectedCde,
        previous_scope: None,
        data_classification: None,
        segment: Some("vpc-1".into()),
        rule: ScopeRule::CdeConnection,
        justification: "talks to the CDE".into(),
        decided_at: Utc::now().timestamp_micros(),
        decided_by: "classify".into(),
        decision_method: DecisionMethod::Automated,
        supersedes_id: None,
        dependency_resource_ids: vec![],
        as_of: 0,
    };
    let payload = psg_avro_codec::encode(&message).expect("encode");
    produce(brokers, "scope.decisions", &row.resource_id, &payload, &[]).await;
}

/// The database, the broker with the two topics, the Vanta server, the evidence store.
struct Setup {
    db: TestDb,
    store: Store,
    _broker: EmbeddedBroker,
    brokers: String,
    vanta: Server<VantaState>,
    work: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let db = TestDb::create().await;
        psg_store::migrate(&psg_store::pool(&db.url, 1).expect("pool")).await.expect("migrate");
        let store = Store::connect(&db.url, 2).await.expect("store");
        let broker = EmbeddedBroker::start(1).expect("mock cluster");
        let brokers = broker.bootstrap_servers();
        let specs: Vec<TopicSpec> =
            ["scope.decisions", "evidence.records"].into_iter().map(TopicSpec::stream).collect();
        broker.create_topics(&specs, 1).expect("topics");
        let vanta = serve(VantaState::default(), vanta_handle).await;
        let work = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(work.path().join("evidence-store")).expect("evidence store");
        decide(&store, "10.0.0.5", PciScope::Cde).await;
        Self { db, store, _broker: broker, brokers, vanta, work }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PSG_GRC_VANTA_CLIENT_ID", "cid".into()),
            ("PSG_GRC_VANTA_CLIENT_SECRET", "csecret".into()),
            ("PSG_GRC_VANTA_RESOURCE_ID", "res-1".into()),
            ("PSG_GRC_VANTA_DOCUMENT_ID", "doc-1".into()),
            ("PSG_KAFKA__CREATE_TOPICS", "false".into()),
            ("PSG_EVIDENCE__STORE_URL", self.work.path().join("evidence-store").display().to_string()),
            ("RUST_LOG", "info,pci_scope_guard=debug,librdkafka=warn".into()),
        ]
    }

    /// `grc run` for Vanta with `schedule` (`--interval`, `--full-every`, ...).
    fn spawn(&self, procs: &mut Procs, name: &str, schedule: &[&str]) {
        let common = [
            "grc",
            "run",
            "--provider",
            "vanta",
            "--brokers",
            &self.brokers,
            "--database-url",
            &self.db.url,
            "--metrics-addr",
            "127.0.0.1:0",
            "--base-url",
            &self.vanta.url,
        ];
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        procs.spawn(name, &[&common[..], schedule].concat(), &env);
    }
}

/// The `grc_syncs` rows of Vanta, oldest first: (type, status, resources synced).
async fn syncs(store: &Store) -> Vec<(String, String, i32)> {
    let mut rows = psg_store::grc::grc_syncs(store, Some("vanta"), 100).await.expect("grc_syncs");
    rows.reverse();
    rows.into_iter().map(|r| (r.sync_type, r.status, r.resources_synced)).collect()
}

fn count(rows: &[(String, String, i32)], sync_type: &str) -> usize {
    rows.iter().filter(|r| r.0 == sync_type && r.1 == "completed").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grc_run_syncs_after_changes_on_its_interval_and_fully_when_due() {
    let setup = Setup::new().await;
    let (store, brokers, vanta) = (&setup.store, setup.brokers.as_str(), &setup.vanta);
    let mut procs = Procs::new(BIN, setup.work.path());
    setup.spawn(&mut procs, "grc", &["--interval", "2s", "--full-every", "20s"]);
    {
        // Nothing ever synced: a full sync at start.
        let first = wait_for("the full sync at start", Duration::from_secs(60), async || {
            let rows = syncs(store).await;
            (count(&rows, "full") == 1).then_some(rows)
        })
        .await;
        assert_eq!(first, [("full".to_owned(), "completed".to_owned(), 1)]);
        procs.wait_ready("grc").await;

        // A decision: its row (classify writes it), then its message.
        let (row, id) = decide(store, "10.0.0.6", PciScope::ConnectedCde).await;
        publish(brokers, &row, id).await;

        let rows = wait_for("one incremental sync", Duration::from_secs(30), async || {
            let rows = syncs(store).await;
            (count(&rows, "incremental") == 1).then_some(rows)
        })
        .await;
        assert_eq!(rows[1], ("incremental".to_owned(), "completed".to_owned(), 2), "{rows:?}");
        assert!(
            vanta.state.lock().expect("state").resources.contains_key(&row.resource_id),
            "the new system was pushed"
        );
        assert_eq!(
            vanta.state.lock().expect("state").resources[&row.resource_id]["customProperties"]["pci_scope"],
            "connected-cde"
        );
        // Its offset is committed once the sync covered it.
        wait_for("the decision's offset committed", Duration::from_secs(30), async || {
            let c = committed_offsets(brokers, "pci-scope-guard-grc-vanta", "scope.decisions", 1).await;
            (c == [(0, 1)]).then_some(())
        })
        .await;

        // Nothing published: the next two ticks sync nothing.
        let marker = procs.log("grc").matches("nothing changed since the last sync").count();
        wait_for("two ticks without changes", Duration::from_secs(30), async || {
            (procs.log("grc").matches("nothing changed since the last sync").count() >= marker + 2).then_some(())
        })
        .await;
        let rows = syncs(store).await;
        assert_eq!(count(&rows, "incremental"), 1, "no sync without a change: {rows:?}");
        assert_eq!(rows.len(), 2, "{rows:?}");

        // The full sync is due 20 s after the first one.
        let rows = wait_for("the next full sync", Duration::from_secs(60), async || {
            let rows = syncs(store).await;
            (count(&rows, "full") == 2).then_some(rows)
        })
        .await;
        assert_eq!(rows.last(), Some(&("full".to_owned(), "completed".to_owned(), 2)), "{rows:?}");
        let full = psg_store::grc::grc_syncs(store, Some("vanta"), 100).await.expect("rows");
        let fulls: Vec<_> = full.iter().filter(|r| r.sync_type == "full").collect();
        assert!(fulls[0].started_at - fulls[1].started_at >= chrono::Duration::seconds(20), "{fulls:?}");

        // Metrics in the services' style.
        let addr = procs.metrics_addr("grc");
        let (_, metrics) = http_get(&addr, "/metrics").await.expect("metrics");
        assert!(
            metrics.lines().any(|l| l.starts_with("psg_grc_syncs_total")
                && l.contains("provider=\"vanta\"")
                && l.contains("sync_type=\"incremental\"")
                && l.contains("status=\"completed\"")
                && l.ends_with(" 1")),
            "{metrics}"
        );
        assert!(metrics.contains("psg_grc_resources_synced_total{provider=\"vanta\"}"), "{metrics}");

        // Every run has its audit row.
        let (client, conn) = tokio_postgres::connect(&setup.db.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let audits: i64 = client
            .query_one("SELECT count(*) FROM audit_logs WHERE action = 'grc.sync' AND success", &[])
            .await
            .expect("audit_logs")
            .get(0);
        assert_eq!(audits as usize, rows.len());

        // SIGTERM: exit 0.
        let status = procs.terminate("grc", Duration::from_secs(20)).expect("stopped within 20 s");
        assert!(status.success(), "{status:?}\n{}", procs.log("grc"));

        // Started again with a full sync done recently: none at start, and nothing changed.
        let puts = vanta.count("PUT", "/v1/resources/custom_resource");
        setup.spawn(&mut procs, "grc-again", &["--interval", "2s", "--full-every", "1h"]);
        procs.wait_log("grc-again", "nothing changed since the last sync", Duration::from_secs(60)).await;
        assert_eq!(syncs(store).await.len(), rows.len(), "no sync at start when the full one is recent");
        assert_eq!(vanta.count("PUT", "/v1/resources/custom_resource"), puts);
        let status = procs.terminate("grc-again", Duration::from_secs(20)).expect("stopped within 20 s");
        assert!(status.success(), "{status:?}");
    }
}

/// `kill -9` after a decision was consumed and before a sync covered it:
/// its offset is not committed, and the next instance syncs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_consumed_but_not_synced_is_synced_after_a_crash() {
    let setup = Setup::new().await;
    let (store, brokers) = (&setup.store, setup.brokers.as_str());
    let mut procs = Procs::new(BIN, setup.work.path());
    // A long interval: after the full sync at start, no tick comes before the crash.
    setup.spawn(&mut procs, "grc", &["--interval", "10m", "--full-every", "1h"]);
    wait_for("the full sync at start", Duration::from_secs(60), async || {
        (count(&syncs(store).await, "full") == 1).then_some(())
    })
    .await;
    let (row, id) = decide(store, "10.0.0.7", PciScope::ConnectedCde).await;
    publish(brokers, &row, id).await;
    procs.wait_log("grc", "changes seen", Duration::from_secs(30)).await;
    procs.kill9("grc");
    let committed = committed_offsets(brokers, "pci-scope-guard-grc-vanta", "scope.decisions", 1).await;
    assert_ne!(committed, [(0, 1)], "committed before a sync covered it");
    assert_eq!(syncs(store).await.len(), 1);

    // The next instance reads the decision again and syncs it on its first tick.
    setup.spawn(&mut procs, "grc-2", &["--interval", "2s", "--full-every", "1h"]);
    let rows = wait_for("the incremental sync after the crash", Duration::from_secs(60), async || {
        let rows = syncs(store).await;
        (count(&rows, "incremental") == 1).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 2, "no full sync at the restart: the last one is recent: {rows:?}");
    assert!(setup.vanta.state.lock().expect("state").resources.contains_key(&row.resource_id));
    wait_for("the offset committed", Duration::from_secs(30), async || {
        let c = committed_offsets(brokers, "pci-scope-guard-grc-vanta", "scope.decisions", 1).await;
        (c == [(0, 1)]).then_some(())
    })
    .await;
    let status = procs.terminate("grc-2", Duration::from_secs(20)).expect("stopped within 20 s");
    assert!(status.success(), "{status:?}");
}

/// An evidence record on `evidence.records` (its row and document written
/// by the evidence service) is uploaded by the next incremental sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_record_is_uploaded_by_the_next_incremental_sync() {
    use psg_domain::rows::EvidenceRow;
    use psg_domain::{Evidence, EvidenceType};

    let setup = Setup::new().await;
    let (store, brokers, vanta) = (&setup.store, setup.brokers.as_str(), &setup.vanta);
    let mut procs = Procs::new(BIN, setup.work.path());
    setup.spawn(&mut procs, "grc", &["--interval", "2s", "--full-every", "1h"]);
    wait_for("the full sync at start", Duration::from_secs(60), async || {
        (count(&syncs(store).await, "full") == 1).then_some(())
    })
    .await;

    // The evidence service seals, publishes, then writes its row and document.
    let now = Utc::now();
    let id = uuid::Uuid::new_v4();
    let document = r#"{"evidence":"scope","signed":true}"#;
    let row = EvidenceRow {
        id,
        scope_decision_id: None,
        evidence_type: EvidenceType::ScopeIdentification,
        data: json!({}).into(),
        hash: "ab".repeat(32),
        signature: "sig".into(),
        signing_key_id: "key".into(),
        storage_url: None,
        pci_requirement: Some("12.5.2".into()),
        generated_at: now,
        generated_by: "test".into(),
        expires_at: now + chrono::Duration::days(365),
        last_verified_at: None,
        verification_count: 0,
        chain: "scope".into(),
        sequence: 1,
        prev_hash: None,
    };
    let message = Evidence {
        evidence_id: id.to_string(),
        evidence_type: EvidenceType::ScopeIdentification,
        chain: "scope".into(),
        sequence: 1,
        scope_decision_id: None,
        resource_id: None,
        hash: row.hash.clone(),
        prev_hash: None,
        signature: "sig".into(),
        signing_key_id: "key".into(),
        storage_url: None,
        pci_requirement: Some("12.5.2".into()),
        generated_at: now.timestamp_micros(),
        generated_by: "test".into(),
        expires_at: (now + chrono::Duration::days(365)).timestamp_micros(),
        document: document.into(),
        log_index: None,
        checkpoint_size: None,
        inclusion: Vec::new(),
    };
    let path = setup.work.path().join("evidence-store").join(psg_evidence::record::store_path("scope", 1));
    std::fs::create_dir_all(path.parent().expect("dir")).expect("chain dir");
    std::fs::write(&path, document).expect("document");
    produce(brokers, "evidence.records", "scope", &psg_avro_codec::encode(&message).expect("encode"), &[]).await;
    // The row may land after the message, as the evidence service writes it
    // after publishing: a sync that reads the database before it does not
    // cover the change, the next one does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    psg_store::evidence::insert_evidence(store, std::slice::from_ref(&row)).await.expect("evidence row");

    let uploaded = wait_for("the evidence uploaded", Duration::from_secs(60), async || {
        let s = vanta.state.lock().expect("state");
        (!s.uploads.is_empty()).then(|| s.uploads.clone())
    })
    .await;
    assert_eq!(uploaded, ["psg-pci_scope_identification-scope-000000000001.json"]);
    wait_for("the offset committed", Duration::from_secs(30), async || {
        let c = committed_offsets(brokers, "pci-scope-guard-grc-vanta", "evidence.records", 1).await;
        (c == [(0, 1)]).then_some(())
    })
    .await;
    let rows = syncs(store).await;
    assert!(rows.iter().skip(1).all(|r| r.0 == "incremental" && r.1 == "completed"), "{rows:?}");
    let status = procs.terminate("grc", Duration::from_secs(20)).expect("stopped within 20 s");
    assert!(status.success(), "{status:?}");
}
