//! The evidence service against PostgreSQL: a record per decision, the
//! periodic reports when event time passes a period's end, a restart that
//! repeats nothing, and a database whose chains verify. Without a database:
//! the log restored from the document store, a local directory or S3 (a
//! local moto server) with Object Lock.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use psg_config::Config;
use psg_config::ObjectLock;
use psg_domain::rows::EvidenceRow;
use psg_domain::time::{DAY, SECOND, from_micros};
use psg_domain::{
    CloudProvider, EdgeDirection, EdgeKind, EvidenceCheckpoint, FlowAction, FlowEdge, Resource, ResourceType,
    SourceRef, ids,
};
use psg_evidence::Evidence;
use psg_evidence::documents::{Doc, Documents, Keeping};
use psg_evidence::log;
use psg_evidence::record::Sealer;
use psg_evidence::verify::{Entry, Keyring, verify_entries};
use psg_kafka_runtime::{InMessage, InputKind, Output, Processor};
use psg_store::Store;
use psg_testkit::edges::one_flow;

fn msg(kind: InputKind, topic: &str, offset: i64, payload: Vec<u8>) -> InMessage {
    InMessage {
        kind,
        topic: Arc::from(topic),
        partition: 0,
        offset,
        key: None,
        payload: Some(payload),
        headers: vec![],
        timestamp_ms: None,
    }
}

fn resource(id: &str, tags: &[(&str, &str)]) -> InMessage {
    let mut r = Resource::new(
        id,
        CloudProvider::Aws,
        ResourceType::Ec2Instance,
        0,
        SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 },
    );
    r.tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    msg(InputKind::Table, "resources", 0, psg_avro_codec::encode(&r).expect("encode"))
}

fn edge(src: &str, dst: &str, at: i64, offset: i64) -> InMessage {
    let e = FlowEdge {
        edge_id: format!("{src}-{dst}-{at}"),
        kind: EdgeKind::FirstSeen,
        bytes: 100,
        ..one_flow(psg_testkit::edges::resource(src), psg_testkit::edges::resource(dst), 5432, FlowAction::Accept, at)
    };
    msg(InputKind::Stream, "flows.edges", offset, psg_avro_codec::encode(&e).expect("encode"))
}

fn records(out: &Output) -> Vec<psg_domain::Evidence> {
    out.records
        .iter()
        .filter(|r| r.topic == "evidence.records")
        .map(|r| psg_avro_codec::decode(&r.payload).expect("decode"))
        .collect()
}

fn checkpoints(out: &Output) -> Vec<EvidenceCheckpoint> {
    out.records
        .iter()
        .filter(|r| r.topic == "evidence.checkpoints")
        .map(|r| psg_avro_codec::decode(&r.payload).expect("decode"))
        .collect()
}

/// Checks a published checkpoint: its signature, root, consistency with
/// the previous one; and each record's place in the log.
fn check_checkpoint(c: &EvidenceCheckpoint, key: &ed25519_dalek::VerifyingKey, previous: Option<&EvidenceCheckpoint>) {
    let head = log::verify_checkpoint(&c.checkpoint, &c.origin, key).expect("the checkpoint's signature verifies");
    assert_eq!(head.size as i64, c.tree_size);
    assert_eq!(log::encode_proof(&[head.root])[0], c.root);
    match previous {
        Some(p) => {
            assert_eq!(c.previous_size, Some(p.tree_size));
            let old = log::verify_checkpoint(&p.checkpoint, &p.origin, key).expect("the previous checkpoint verifies");
            let proof = log::decode_proof(&c.consistency).expect("base64 proof");
            log::check_consistency(&proof, head.size, head.root, old.size, old.root).expect("consistent");
        }
        None => assert_eq!((c.previous_size, c.consistency.len()), (None, 0)),
    }
}

/// Scope decisions as classify publishes them (with a database, it also
/// stores resources and decisions there).
async fn decisions(cfg: &Config, store: Option<Store>, at: i64) -> Vec<InMessage> {
    let mut classify = psg_classify::Classify::new(cfg, store);
    let out = classify
        .process(&[
            resource("db", &[("pci-scope", "cde")]),
            resource("app", &[("pci-scope", "out-of-scope")]),
            edge("app", "db", at, 0),
        ])
        .await
        .expect("classify");
    classify.persist().await.expect("classify persists");
    out.records
        .iter()
        .filter(|r| r.topic == "scope.decisions")
        .enumerate()
        .map(|(i, r)| msg(InputKind::Stream, "scope.decisions", i as i64, r.payload.clone()))
        .collect()
}

/// A migrated test database and a store with a pool of `connections`.
async fn database(connections: usize) -> (psg_testkit::TestDb, Store) {
    let db = psg_testkit::TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 1).expect("pool")).await.expect("migrate");
    let store = Store::connect(&db.url, connections).await.expect("store");
    (db, store)
}

#[tokio::test]
async fn decisions_and_periodic_reports_are_chained_stored_and_not_repeated() {
    let (_db, store) = database(2).await;
    let cfg = Config::default();

    // Classify puts resources, decisions and a segmentation violation in the database.
    let at = 1000 * SECOND;
    let decisions = decisions(&cfg, Some(store.clone()), at).await;
    psg_store::flows::upsert_data_flows(
        &store,
        &[psg_domain::rows::DataFlowRow {
            id: ids::stable_id("edge", &["app-db"]),
            source_resource_id: ids::resource_uuid("app"),
            dest_resource_id: ids::resource_uuid("db"),
            protocol: "TCP".into(),
            src_port: None,
            dst_port: 5432,
            packet_count: 4,
            byte_count: 400,
            flow_direction: EdgeDirection::IntraVpc,
            action: FlowAction::Accept,
            observed_at: from_micros(960 * SECOND),
            window_start: from_micros(960 * SECOND),
            window_end: from_micros(1020 * SECOND),
            flow_count: 2,
            first_seen: from_micros(at),
            last_seen: from_micros(at),
            encrypted_flow_count: 0,
            unencrypted_flow_count: 0,
            action_logged: true,
        }],
    )
    .await
    .unwrap();
    assert!(decisions.len() >= 2);

    let dir = tempfile::tempdir().unwrap();
    let sealer = || Sealer::new(SigningKey::from_bytes(&[5u8; 32]), "test");
    let documents = Documents::open(dir.path().to_str().unwrap()).unwrap();
    let mut evidence = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    evidence.restore().await.unwrap();
    let out = evidence.process(&decisions).await.unwrap();
    let first = records(&out);
    assert_eq!(first.len(), decisions.len(), "one record per decision; no period has closed yet");
    // The evidence log: indexes from 0, one checkpoint for the batch.
    let indexes: Vec<Option<i64>> = first.iter().map(|r| r.log_index).collect();
    assert_eq!(indexes, (0..first.len() as i64).map(Some).collect::<Vec<_>>());
    let key = sealer().verifying_key();
    let cp1 = checkpoints(&out);
    assert_eq!(cp1.len(), 1, "one checkpoint per batch");
    assert_eq!(cp1[0].tree_size, first.len() as i64);
    check_checkpoint(&cp1[0], &key, None);
    // Not signed one by one: every record carries the batch checkpoint's
    // signature and its inclusion proof against it, and verifies with them.
    let note_sig = cp1[0].checkpoint.lines().last().unwrap().rsplit(' ').next().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    for r in &first {
        use base64::Engine as _;
        assert_eq!(b64.decode(&r.signature).unwrap(), b64.decode(note_sig).unwrap()[4..].to_vec());
        assert_eq!(r.checkpoint_size, Some(cp1[0].tree_size));
        let seal = psg_evidence::record::SealProof { checkpoint: cp1[0].tree_size as u64, proof: &r.inclusion };
        psg_evidence::record::verify(r.document.as_bytes(), &r.hash, &r.signature, &key, Some(seal)).unwrap();
        assert_eq!(
            psg_evidence::record::verify(r.document.as_bytes(), &r.hash, &r.signature, &key, None),
            Err(psg_evidence::record::VerifyError::Unsealed)
        );
    }
    evidence.persist().await.unwrap();

    // Event time passes the end of day 1 plus the grace hour: days 0 and 1 are reported.
    let late = edge("app", "db", 2 * DAY + 2 * 3600 * SECOND, 1);
    // Flow-log coverage of app's interface (read whole from flows.coverage).
    let coverage = psg_domain::FlowCoverage {
        unit: "eni-app".into(),
        unit_kind: psg_domain::CoverageUnit::Interface,
        provider: psg_domain::CloudProvider::Aws,
        account_id: None,
        vpc_id: Some("vpc-app".into()),
        subnet_id: None,
        partition: 0,
        first_seen: at,
        last_seen: 2 * DAY,
        records: 3,
        accepted: 3,
        rejected: 0,
        no_data: 0,
        skipped: 0,
        gaps: vec![],
    };
    let coverage = msg(InputKind::Table, "flows.coverage", 0, psg_avro_codec::encode(&coverage).unwrap());
    let batch = evidence.process(&[coverage, late.clone()]).await.unwrap();
    let out = records(&batch);
    let out_reports = out.clone();
    let cp2 = checkpoints(&batch);
    assert_eq!(cp2.len(), 1);
    assert_eq!(cp2[0].tree_size, (first.len() + out.len()) as i64);
    check_checkpoint(&cp2[0], &key, Some(&cp1[0]));
    assert_eq!(out[0].log_index, Some(first.len() as i64), "the log goes on across chains");
    evidence.persist().await.unwrap();
    let kinds: Vec<(&str, i64)> = out.iter().map(|r| (r.chain.as_str(), r.sequence)).collect();
    assert_eq!(
        kinds,
        [
            ("network_segmentation_validation", 1),
            ("data_flow_analysis", 1),
            ("tag_audit_trail", 1),
            ("configuration_snapshot", 1),
            ("network_segmentation_validation", 2),
            ("data_flow_analysis", 2),
            ("tag_audit_trail", 2),
            ("configuration_snapshot", 2),
        ]
    );
    let seg: serde_json::Value = serde_json::from_str(&out[0].document).unwrap();
    assert_eq!(seg["summary"]["accepted_crossings"], 1, "{seg}");
    assert_eq!(seg["summary"]["accepted_flows"], 2, "{seg}");
    assert_eq!(seg["summary"]["violations"], 1, "{seg}");
    let coverage = &seg["summary"]["flow_log_coverage"];
    assert_eq!(
        (coverage["networks_logging"].as_u64(), coverage["units_logging"].as_u64()),
        (Some(1), Some(1)),
        "{seg}"
    );
    assert_eq!(seg["report"]["flow_log_coverage"][0]["network"], "vpc-app", "{seg}");
    assert_eq!(seg["pci_requirements"], serde_json::json!(["1.3.1", "1.3.2", "11.4.5"]));
    assert_eq!(seg["period"]["end"], "1970-01-02T00:00:00.000000Z");
    let day1: serde_json::Value = serde_json::from_str(&out[4].document).unwrap();
    assert_eq!(day1["summary"]["accepted_crossings"], 0, "{day1}");
    assert_eq!(out[4].prev_hash.as_deref(), Some(out[0].hash.as_str()), "chained per type");
    let config: serde_json::Value = serde_json::from_str(&out[3].document).unwrap();
    assert_eq!(config["summary"]["resources"], 2, "{config}");
    // The requirement indexes (migration 0025) hold the reports, and none
    // of the scope identification records: the tag audits' requirement is
    // the scope records' 12.5.2, the other reports' are not.
    let client = store.client().await.unwrap();
    for (index, reports) in [("ix_evidence_pci_requirement", 6), ("idx_evidence_type_requirement", 8)] {
        let held: Vec<String> = psg_testkit::partial_index_rows(&client, index, "evidence", "chain")
            .await
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(held.len(), reports, "{index}: {held:?}");
        assert!(!held.iter().any(|c| c == "pci_scope_identification"), "{index}: {held:?}");
    }
    drop(client);

    // A restart: same decisions and edges again make nothing new.
    let mut restarted = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    restarted.restore().await.unwrap();
    assert_eq!(restarted.next_period_end(), Some(3 * DAY));
    assert_eq!(restarted.log().size() as i64, cp2[0].tree_size, "the log restored from the database");
    assert_eq!(restarted.log_origin(), cp2[0].origin);
    let mut again = decisions.clone();
    again.push(late);
    let out = restarted.process(&again).await.unwrap();
    assert!(out.records.is_empty(), "nothing repeated, no checkpoint: {:?}", records(&out));

    // The database holds both checkpoints and every record's inclusion
    // proof against the first checkpoint covering it.
    let stored = psg_store::evidence::checkpoints(&store, &cp1[0].origin).await.unwrap();
    assert_eq!(
        stored.iter().map(|c| c.checkpoint.as_str()).collect::<Vec<_>>(),
        [&cp1[0].checkpoint, &cp2[0].checkpoint]
    );
    let all: Vec<uuid::Uuid> = first.iter().chain(&out_reports).map(|r| r.evidence_id.parse().unwrap()).collect();
    let entries = psg_store::evidence::log_entries(&store, &all).await.unwrap();
    assert_eq!(entries.len(), all.len());
    for e in &entries {
        let cp = stored.iter().find(|c| c.tree_size == e.checkpoint_size).expect("its checkpoint is stored");
        let head = log::verify_checkpoint(&cp.checkpoint, &cp.origin, &key).unwrap();
        let expected = if (e.log_index as usize) < first.len() { cp1[0].tree_size } else { cp2[0].tree_size };
        assert_eq!(e.checkpoint_size, expected, "proven in the first checkpoint that covers it");
        let proof = log::decode_proof(&e.inclusion).unwrap();
        log::check_inclusion(&proof, head.size, head.root, e.log_index as u64, log::leaf(&e.record_hash).unwrap())
            .expect("inclusion proof verifies");
    }
    // The log's tables are append-only.
    let client = store.client().await.unwrap();
    // Each batch ends at its checkpoint: its proofs are not stored but
    // computed from its leaves and the subtrees left of it (migration
    // 0022), by the store and by the evidence_log view alike.
    let stored_proofs: i64 = client
        .query_one("SELECT count(*) FROM evidence_log_batches WHERE inclusion IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored_proofs, 0);
    for e in &entries {
        let view: Vec<u8> = client
            .query_one("SELECT inclusion FROM evidence_log WHERE log_index = $1", &[&e.log_index])
            .await
            .unwrap()
            .get(0);
        let proof: Vec<u8> = log::decode_proof(&e.inclusion).unwrap().iter().flat_map(|h| h.0).collect();
        assert_eq!(view, proof, "leaf {}", e.log_index);
    }
    for sql in ["UPDATE evidence_log_batches SET checkpoint_size = 0", "DELETE FROM evidence_checkpoints"] {
        let err = client.execute(sql, &[]).await.unwrap_err();
        assert!(format!("{err:?}").contains("append-only"), "{sql}: {err:?}");
    }
    drop(client);

    // Every chain in the database verifies; the key is registered.
    let keys = psg_store::evidence::public_keys(&store).await.unwrap();
    let mut ring = Keyring::new();
    for (_, pem) in &keys {
        ring.add_pem(pem).unwrap();
    }
    assert_eq!(ring.len(), 1);
    let rows =
        psg_store::evidence::records_between(&store, from_micros(0), chrono::Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap();
    assert_eq!(rows.len(), decisions.len() + 8);
    let logged =
        psg_store::evidence::log_entries(&store, &rows.iter().map(|r| r.id).collect::<Vec<_>>()).await.unwrap();
    let entries: Vec<Entry> = rows
        .iter()
        .map(|r| {
            let mut e = Entry::from_row(r);
            let l = logged.iter().find(|l| l.evidence_id == r.id).expect("every record is in the log");
            e.inclusion = Some(psg_evidence::verify::Inclusion {
                checkpoint: l.checkpoint_size as u64,
                proof: l.inclusion.clone(),
            });
            e
        })
        .collect();
    let mut docs = std::collections::HashMap::new();
    for (e, r) in entries.iter().zip(&rows) {
        docs.insert(e.file.clone(), documents.get_record(r).await.unwrap());
    }
    let outcome = verify_entries(&entries, |e| Ok(docs.get(&e.file).cloned().flatten()), &ring);
    assert!(outcome.ok(), "{:?}", outcome.failures);
    assert_eq!(outcome.verified.len(), rows.len());

    // Records are immutable in the database; only verification bookkeeping changes.
    let client = store.client().await.unwrap();
    let err = client.execute("UPDATE evidence SET signature = 'x' WHERE sequence = 1", &[]).await.unwrap_err();
    assert!(format!("{err:?}").contains("immutable"), "{err:?}");
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    assert_eq!(psg_store::evidence::mark_verified(&store, &ids).await.unwrap(), rows.len() as u64);

    // Retention: the reports of 1970 (event time) are 7 years past; the
    // decisions' records, generated now, are not.
    let now = chrono::Utc::now();
    let expired = psg_store::evidence::expired(&store, now).await.unwrap();
    assert_eq!(expired.len(), 8, "{expired:?}");
    assert!(expired.iter().all(|r| r.scope_decision_id.is_none()));
    // Read a chunk at a time (`evidence expire`): the same records in the
    // same order; a chunk of one record at most still holds all of its
    // segment's, and the next chunk starts in another file.
    let chunks = expired_chunks(&store, now, 1).await;
    let ids_of = |rows: &[EvidenceRow]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids_of(&chunks.concat()), ids_of(&expired));
    assert!(chunks.len() > 1, "four report chains, four segments at least: {chunks:?}");
    for c in &chunks {
        assert!(c.len() == 1 || c.iter().all(|r| segment_file(r).is_some() && segment_file(r) == segment_file(&c[0])));
    }
    for pair in chunks.windows(2) {
        let (end, start) = (pair[0].last().map(segment_file), segment_file(&pair[1][0]));
        assert!(start.is_none() || end != Some(start), "a segment split between chunks: {pair:?}");
    }
    let far = from_micros(100 * 366 * DAY);
    assert_eq!(psg_store::evidence::expired(&store, far).await.unwrap().len(), rows.len());
    let ids: Vec<uuid::Uuid> = expired.iter().map(|r| r.id).collect();
    assert_eq!(psg_store::evidence::delete_expired(&store, &ids, now).await.unwrap(), 8);
    let left = psg_store::evidence::records_between(&store, from_micros(0), far).await.unwrap();
    assert_eq!(left.len(), decisions.len());

    drop(client);
    // Expired records leave their leaves: the log restores whole and goes on.
    let mut after = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    after.restore().await.unwrap();
    assert_eq!(after.log().size() as i64, cp2[0].tree_size);

    // A stored log that no longer gives its checkpoint's root is refused
    // at start (the trigger is lifted here as only the table owner could).
    let client = store.client().await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE evidence_log_batches DISABLE TRIGGER evidence_log_batches_append_only;
             UPDATE evidence_log_batches
                SET record_hashes = overlay(record_hashes PLACING decode(repeat('0', 64), 'hex')
                                            FROM (1 - first_index)::int * 32 + 1 FOR 32)
              WHERE first_index <= 1 AND first_index + cardinality(evidence_ids) > 1;",
        )
        .await
        .unwrap();
    drop(client);
    let mut tampered = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    let err = tampered.restore().await.unwrap_err();
    assert!(err.to_string().contains("the stored log was changed"), "{err}");
}

/// As the runner drives it (pipelined): a batch's write starts when it is
/// processed and runs while the next batch is processed, but nothing is
/// committed before that batch's messages are acknowledged (`acknowledged`,
/// or its `persist` when that did not come): then the oldest batch only,
/// in the background, and its `persist` waits for that. A batch given up
/// before (a crash) leaves nothing committed, and the restarted service
/// makes the same records again.
#[tokio::test]
async fn a_batch_is_written_while_the_next_is_processed_and_committed_once_acknowledged() {
    // Enough connections for a write to start early (3).
    let (_db, store) = database(4).await;
    let cfg = Config::default();
    let decisions = decisions(&cfg, Some(store.clone()), 1000 * SECOND).await;
    assert!(decisions.len() >= 2);
    let dir = tempfile::tempdir().unwrap();
    let documents = Documents::open(dir.path().to_str().unwrap()).unwrap();
    let sealer = || Sealer::new(SigningKey::from_bytes(&[7u8; 32]), "test");
    let client = store.client().await.unwrap();
    let count = async |table: &str| -> i64 {
        client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
    };

    // Given up before its persist: nothing committed.
    let mut crashed = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    crashed.restore().await.unwrap();
    let lost = records(&crashed.process(&decisions).await.unwrap());
    assert_eq!(lost.len(), decisions.len());
    drop(crashed);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!((count("evidence").await, count("evidence_log").await, count("evidence_checkpoints").await), (0, 0, 0));

    let mut evidence = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    evidence.restore().await.unwrap();
    let (a, b) = decisions.split_at(1);
    let first = records(&evidence.process(a).await.unwrap());
    let second = records(&evidence.process(b).await.unwrap());
    // The same records as the lost run's, in the same log positions.
    let hashes = |r: &[psg_domain::Evidence]| r.iter().map(|e| e.hash.clone()).collect::<Vec<_>>();
    assert_eq!([hashes(&first), hashes(&second)].concat(), hashes(&lost));
    assert_eq!(evidence.awaiting_persist(), decisions.len());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count("evidence").await, 0, "written, not committed, before persist");
    let doc = stored_document(&documents, &first[0]).await;
    assert_eq!(doc.as_deref(), Some(first[0].document.as_bytes()), "the first batch's document is written meanwhile");

    // Acknowledged: the oldest batch commits without waiting for its
    // persist; the next one waits for its own acknowledgement.
    evidence.acknowledged();
    let mut committed = 0;
    for _ in 0..200 {
        committed = count("evidence").await;
        if committed > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(committed, first.len() as i64, "the oldest batch, once acknowledged");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count("evidence").await, first.len() as i64, "the next batch waits for its acknowledgement");
    evidence.persist().await.unwrap();
    assert_eq!(count("evidence").await, first.len() as i64, "the oldest batch only");
    assert_eq!(count("evidence_log").await, first.len() as i64);
    assert_eq!(count("evidence_checkpoints").await, 1);
    evidence.persist().await.unwrap();
    assert_eq!(count("evidence").await, (first.len() + second.len()) as i64);
    assert_eq!(count("evidence_checkpoints").await, 2);
    evidence.persist().await.unwrap();
    let head = std::fs::read_to_string(dir.path().join("log/HEAD.json")).unwrap();
    assert!(head.contains(&format!("\"size\":{}", decisions.len())), "{head}");
    // Durable records are found in the database, not remembered: the
    // duplicate check's memory stays bounded, and a redelivered batch
    // still makes nothing.
    assert_eq!(evidence.awaiting_persist(), 0);
    assert!(records(&evidence.process(&decisions).await.unwrap()).is_empty());
    evidence.persist().await.unwrap();

    // A restart continues from what was committed: nothing is made twice.
    let mut restarted = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    restarted.restore().await.unwrap();
    assert_eq!(restarted.log().size(), decisions.len() as u64);
    assert!(records(&restarted.process(&decisions).await.unwrap()).is_empty());
    restarted.persist().await.unwrap();
}

/// The duplicate check reads the database when there is one, and the
/// document store's markers otherwise; both must make the same records: a
/// decision twice in a batch sealed once, a stored one skipped, each
/// record chained after the one before it at the next place of the log,
/// byte for byte the same documents.
#[tokio::test]
async fn with_or_without_a_database_the_same_decisions_make_the_same_records() {
    let (_db, store) = database(4).await;
    let cfg = Config::default();
    let decisions = decisions(&cfg, Some(store.clone()), 1000 * SECOND).await;
    assert!(decisions.len() >= 2);
    let (d0, d1) = (decisions[0].clone(), decisions[1].clone());
    // A new decision twice; then another new one twice around a stored one
    // (with the database, the batch is sealed ahead of its duplicate check,
    // then taken back and sealed again without the stored one); then
    // stored ones only.
    let batches =
        [vec![d0.clone(), d0.clone()], vec![d1.clone(), d0.clone(), d1.clone()], vec![d1.clone(), d0.clone()]];
    let sealer = || Sealer::new(SigningKey::from_bytes(&[8u8; 32]), "test");
    let (with_db, without_db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut made = Vec::new();
    for store in [Some(store.clone()), None] {
        let dir = if store.is_some() { &with_db } else { &without_db };
        let documents = Documents::open(dir.path().to_str().unwrap()).unwrap();
        let mut evidence = Evidence::new(&cfg, store, sealer(), documents);
        evidence.restore().await.unwrap();
        let mut records_made = Vec::new();
        for batch in &batches {
            records_made.push(records(&evidence.process(batch).await.unwrap()));
            evidence.persist().await.unwrap();
        }
        made.push(records_made);
    }
    let [with, without] = [&made[0], &made[1]];
    let shape = |batches: &Vec<Vec<psg_domain::Evidence>>| -> Vec<Vec<(String, i64, Option<i64>)>> {
        batches
            .iter()
            .map(|b| b.iter().map(|r| (r.scope_decision_id.clone().unwrap(), r.sequence, r.log_index)).collect())
            .collect()
    };
    let id = |m: &InMessage| psg_avro_codec::decode::<psg_domain::ScopeDecision>(m.payload()).unwrap().decision_id;
    assert_eq!(
        shape(with),
        vec![vec![(id(&d0), 1, Some(0))], vec![(id(&d1), 2, Some(1))], vec![]],
        "once each, in order, stored ones skipped"
    );
    assert_eq!(with[1][0].prev_hash.as_deref(), Some(with[0][0].hash.as_str()), "chained");
    for (a, b) in with.iter().flatten().zip(without.iter().flatten()) {
        assert_eq!((&a.document, &a.hash, a.log_index), (&b.document, &b.hash, b.log_index));
    }
    assert_eq!(shape(with), shape(without));
}

/// Records of decisions are keyed in time order (UUIDv8, the decision's
/// milliseconds first). A decision recorded by an earlier version, under the
/// UUIDv5 its record had then, is still found by the duplicate check when
/// delivered again (after a crash and an upgrade): with a database by its
/// decision, without one by its former marker. Decisions not recorded are.
#[tokio::test]
async fn a_decision_recorded_under_its_former_id_is_not_recorded_again() {
    use psg_evidence::record::{legacy_scope_identification_id, scope_identification_id};
    let (_db, store) = database(4).await;
    let cfg = Config::default();
    let decisions = decisions(&cfg, Some(store.clone()), 1000 * SECOND).await;
    let (d0, d1) = (decisions[0].clone(), decisions[1].clone());
    let decision = |m: &InMessage| psg_avro_codec::decode::<psg_domain::ScopeDecision>(m.payload()).unwrap();
    let (s0, s1) = (decision(&d0), decision(&d1));
    let (new, former) = (scope_identification_id(&s0), legacy_scope_identification_id(&s0));
    assert_eq!(new.get_version_num(), 8);
    assert_eq!(new.as_u128() >> 80, u128::try_from(s0.decided_at / 1_000).unwrap(), "the decision's milliseconds");
    assert_eq!(former.get_version_num(), 5);
    let sealer = || Sealer::new(SigningKey::from_bytes(&[9u8; 32]), "test");
    for with_db in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let documents = Documents::open(dir.path().to_str().unwrap()).unwrap();
        let store = with_db.then(|| store.clone());
        let mut evidence = Evidence::new(&cfg, store.clone(), sealer(), documents.clone());
        evidence.restore().await.unwrap();
        let made = records(&evidence.process(std::slice::from_ref(&d0)).await.unwrap());
        evidence.persist().await.unwrap();
        assert_eq!(made.iter().map(|r| r.evidence_id.clone()).collect::<Vec<_>>(), [new.to_string()]);
        // As an earlier version stored it.
        match &store {
            Some(store) => {
                let client = store.client().await.unwrap();
                client.execute("ALTER TABLE evidence DISABLE TRIGGER evidence_immutable", &[]).await.unwrap();
                let moved =
                    client.execute("UPDATE evidence SET id = $1 WHERE id = $2", &[&former, &new]).await.unwrap();
                assert_eq!(moved, 1);
                client.execute("ALTER TABLE evidence ENABLE TRIGGER evidence_immutable", &[]).await.unwrap();
            }
            None => {
                // Flat, as versions before nested markers put them.
                let chain = psg_evidence::service::SCOPE_CHAIN;
                let marker = dir.path().join(Evidence::marker_path(chain, &new));
                assert!(marker.is_file(), "{}", marker.display());
                let flat = dir.path().join(chain).join("by-id").join(former.to_string());
                std::fs::rename(marker, flat).unwrap();
            }
        }
        let mut restarted = Evidence::new(&cfg, store.clone(), sealer(), documents.clone());
        restarted.restore().await.unwrap();
        let again = records(&restarted.process(&[d0.clone(), d1.clone()]).await.unwrap());
        restarted.persist().await.unwrap();
        let decided: Vec<Option<String>> = again.iter().map(|r| r.scope_decision_id.clone()).collect();
        assert_eq!(decided, [Some(s1.decision_id.clone())], "with a database: {with_db}");
        // And once it is stored under its new id, too.
        let mut third = Evidence::new(&cfg, store, sealer(), documents);
        third.restore().await.unwrap();
        assert!(
            records(&third.process(&[d1.clone(), d0.clone()]).await.unwrap()).is_empty(),
            "with a database: {with_db}"
        );
    }
}

/// Without a database the log lives in the document store: leaf tiles,
/// checkpoints and log/HEAD.json; a restart restores it and goes on.
#[tokio::test]
async fn without_a_database_the_log_is_restored_from_the_document_store() {
    let mut cfg = Config::default();
    cfg.evidence.log_origin = Some("payments.example/evidence".into());
    let decisions = decisions(&cfg, None, 1000 * SECOND).await;
    let dir = tempfile::tempdir().unwrap();
    let documents = Documents::open(dir.path().to_str().unwrap()).unwrap();
    let sealer = || Sealer::new(SigningKey::from_bytes(&[6u8; 32]), "test");
    let key = sealer().verifying_key();

    let mut evidence = Evidence::new(&cfg, None, sealer(), documents.clone());
    evidence.restore().await.unwrap();
    let out = evidence.process(&decisions[..1]).await.unwrap();
    let cp1 = checkpoints(&out);
    assert_eq!((cp1.len(), cp1[0].tree_size, cp1[0].origin.as_str()), (1, 1, "payments.example/evidence"));
    check_checkpoint(&cp1[0], &key, None);
    evidence.persist().await.unwrap();
    let stored = std::fs::read_to_string(dir.path().join("log/checkpoints/000000/000/000000000001.txt")).unwrap();
    assert_eq!(stored, cp1[0].checkpoint);

    // Restarted: the rest of the decisions (and the first again) continue the log.
    let mut restarted = Evidence::new(&cfg, None, sealer(), documents.clone());
    restarted.restore().await.unwrap();
    assert_eq!(restarted.log().size(), 1);
    let out = restarted.process(&decisions).await.unwrap();
    let new = records(&out);
    assert_eq!(new.len(), decisions.len() - 1, "the first decision's record is not made twice");
    assert_eq!(new[0].log_index, Some(1));
    let cp2 = checkpoints(&out);
    check_checkpoint(&cp2[0], &key, Some(&cp1[0]));
    restarted.persist().await.unwrap();
    // Durable: the markers answer the duplicate check, not memory.
    assert_eq!(restarted.awaiting_persist(), 0);
    assert!(records(&restarted.process(&decisions).await.unwrap()).is_empty());
    restarted.persist().await.unwrap();

    // Another origin configured for the same log is refused.
    let mut other = cfg.clone();
    other.evidence.log_origin = Some("elsewhere.example/evidence".into());
    let err = Evidence::new(&other, None, sealer(), documents.clone()).restore().await.unwrap_err();
    assert!(err.to_string().contains("payments.example/evidence"), "{err}");

    // A changed leaf tile no longer gives the checkpoint's root.
    let tile = dir.path().join("log/leaves/0000000000.bin");
    let mut bytes = std::fs::read(&tile).unwrap();
    assert_eq!(bytes.len(), decisions.len() * 32);
    bytes[0] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let err = Evidence::new(&cfg, None, sealer(), documents).restore().await.unwrap_err();
    assert!(err.to_string().contains("the stored log was changed"), "{err}");
}

/// The document `record`'s `storage_url` names in `documents`.
async fn stored_document(documents: &Documents, record: &psg_domain::Evidence) -> Option<Vec<u8>> {
    let url = record.storage_url.as_deref().expect("a stored record names its document");
    let at = documents.location_of(url).expect("a document URL").unwrap_or_else(|| panic!("{url} is in {documents:?}"));
    documents.read(&at).await.expect("read the document")
}

/// `decisions`' records, made and stored by the service with `store` and
/// a temporary directory: the directory, its store and the records.
async fn stored_in_a_directory(
    cfg: &Config,
    store: &Store,
    decisions: &[InMessage],
) -> (tempfile::TempDir, Documents, Vec<psg_domain::Evidence>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let documents = Documents::open(dir.path().to_str().expect("utf-8")).expect("documents");
    let mut evidence = Evidence::new(
        cfg,
        Some(store.clone()),
        Sealer::new(SigningKey::from_bytes(&[8u8; 32]), "test"),
        documents.clone(),
    );
    evidence.restore().await.expect("restore");
    let made = records(&evidence.process(decisions).await.expect("process"));
    evidence.persist().await.expect("persist");
    (dir, documents, made)
}

/// The records expired at `now`, read `max` at a time.
async fn expired_chunks(
    store: &psg_store::Store,
    now: chrono::DateTime<chrono::Utc>,
    max: usize,
) -> Vec<Vec<EvidenceRow>> {
    let mut reader = psg_store::evidence::expired_in_chunks(store, now).await.expect("expired records");
    let mut chunks = Vec::new();
    loop {
        let chunk = reader.next_chunk(max).await.expect("a chunk of expired records");
        if chunk.is_empty() {
            return chunks;
        }
        chunks.push(chunk);
    }
}

/// The segment file a record's `storage_url` names (with a byte range).
fn segment_file(r: &EvidenceRow) -> Option<&str> {
    r.storage_url.as_deref().and_then(|u| u.split_once('#')).map(|(file, _)| file)
}

/// `evidence expire` deletes a segment only once none of the records it
/// holds is left: a batch's records expire when their decisions' time
/// says, not together.
#[tokio::test]
async fn an_expired_records_segment_goes_once_none_of_its_records_is_left() {
    let (_db, store) = database(2).await;
    let cfg = Config::default();
    // Decided in 1970: expired already.
    let decisions: Vec<InMessage> = decisions(&cfg, Some(store.clone()), 1000 * SECOND)
        .await
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut d: psg_domain::ScopeDecision = psg_avro_codec::decode(m.payload()).unwrap();
            d.decided_at = 1000 * SECOND + i as i64;
            msg(InputKind::Stream, "scope.decisions", i as i64, psg_avro_codec::encode(&d).unwrap())
        })
        .collect();
    assert!(decisions.len() >= 2);
    let (dir, documents, made) = stored_in_a_directory(&cfg, &store, &decisions).await;
    let segment =
        |r: &psg_domain::Evidence| documents.location_of(r.storage_url.as_deref().unwrap()).unwrap().unwrap().path;
    assert!(made.iter().all(|r| segment(r) == segment(&made[0])), "one batch, one chain: one segment");
    let file = dir.path().join(segment(&made[0]));
    let expired = psg_store::evidence::expired(&store, chrono::Utc::now()).await.unwrap();
    assert_eq!(expired.len(), made.len(), "records of 1970 expired in 1977");
    // Read a chunk at a time, no chunk splits the segment.
    let chunks = expired_chunks(&store, chrono::Utc::now(), 1).await;
    assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [made.len()], "one chunk: the segment's records");

    // All but the last go: the segment stays, and the last one reads.
    let (first, last) = expired.split_at(expired.len() - 1);
    let ids: Vec<uuid::Uuid> = first.iter().map(|r| r.id).collect();
    let now = chrono::Utc::now();
    assert_eq!(psg_store::evidence::delete_expired(&store, &ids, now).await.unwrap(), first.len() as u64);
    assert_eq!(documents.delete_records(&store, first).await.unwrap(), 1, "the segment is kept");
    assert!(file.exists());
    let doc = documents.get_record(&last[0]).await.unwrap().expect("the last record's document");
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&doc)), last[0].hash);
    // The last one goes: so does the segment.
    assert_eq!(psg_store::evidence::delete_expired(&store, &[last[0].id], now).await.unwrap(), 1);
    assert_eq!(documents.delete_records(&store, last).await.unwrap(), 0);
    assert!(!file.exists(), "{} is deleted with its last record", file.display());
    let segments = dir.path().join(&made[0].chain).join("segments");
    assert!(!segments.exists(), "the directories it emptied go with it");
    assert!(dir.path().join(&made[0].chain).join("HEAD.json").is_file());
}

#[tokio::test]
async fn a_segment_no_stored_record_names_is_an_orphan_once_old_enough() {
    let (_db, store) = database(2).await;
    let cfg = Config::default();
    let decisions = decisions(&cfg, Some(store.clone()), 1000 * SECOND).await;
    let (dir, documents, made) = stored_in_a_directory(&cfg, &store, &decisions).await;
    assert!(made.len() >= 2);
    let named = documents.location_of(made[0].storage_url.as_deref().unwrap()).unwrap().unwrap().path;
    // What a crash leaves: the first record's document in a segment of its
    // own, as a batch split another way wrote it and never committed.
    let (chain, first) = (made[0].chain.as_str(), made[0].sequence);
    let orphan = psg_evidence::record::segment_path(chain, first, first);
    documents.put(&orphan, format!("{}\n", made[0].document).into_bytes()).await.unwrap();

    let listed: Vec<String> = documents.segments().await.unwrap().into_iter().map(|s| s.path).collect();
    assert_eq!(listed, [orphan.clone(), named.clone()], "both segments, in sequence order");
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let orphans = documents.orphan_segments(&store, later).await.unwrap();
    assert_eq!(orphans.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), [orphan.as_str()]);
    assert_eq!((orphans[0].chain.as_str(), orphans[0].first, orphans[0].last), (chain, first, first));
    // Written after the time given: not judged (its batch may not have committed yet).
    let earlier = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(documents.orphan_segments(&store, earlier).await.unwrap().is_empty());

    // A store that moved: the records' URLs name the old directory, and
    // still name their segment by its path.
    let moved = tempfile::tempdir().unwrap();
    let to = moved.path().join(&named);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(dir.path().join(&named), &to).unwrap();
    let elsewhere = Documents::open(moved.path().to_str().unwrap()).unwrap();
    assert_eq!(elsewhere.segments().await.unwrap().len(), 1);
    assert!(elsewhere.orphan_segments(&store, later).await.unwrap().is_empty(), "the moved segment is named");
    // An empty store has none.
    let empty = tempfile::tempdir().unwrap();
    let nothing = Documents::open(empty.path().to_str().unwrap()).unwrap();
    assert!(nothing.segments().await.unwrap().is_empty());
}

/// A bucket on `server`, with Object Lock or without.
async fn bucket(server: &psg_testkit::s3::S3Server, name: &str, object_lock: bool) -> Documents {
    let documents = Documents::open_with(&format!("s3://{name}/pci"), ObjectLock::Auto, &server.options())
        .expect("open the bucket");
    let mut headers = http::HeaderMap::new();
    if object_lock {
        headers.insert("x-amz-bucket-object-lock-enabled", http::HeaderValue::from_static("true"));
    }
    let bucket = documents.bucket().expect("an S3 store");
    let made =
        bucket.request(http::Method::PUT, None, None, headers, bytes::Bytes::new()).await.expect("create the bucket");
    assert!(made.status.is_success(), "creating {name}: {} {:?}", made.status, made.body);
    documents
}

#[tokio::test]
async fn on_s3_records_and_checkpoints_are_locked_until_they_expire() {
    let server = psg_testkit::s3::S3Server::start();
    let mut cfg = Config::default();
    cfg.evidence.log_origin = Some("payments.example/evidence".into());
    let decisions = decisions(&cfg, None, 1000 * SECOND).await;
    let sealer = || Sealer::new(SigningKey::from_bytes(&[6u8; 32]), "test");
    let documents = bucket(&server, "evidence-locked", true).await;
    assert_eq!(documents.prepare().await.unwrap(), Keeping::S3 { locked: true });

    let mut evidence = Evidence::new(&cfg, None, sealer(), documents.clone());
    evidence.restore().await.unwrap();
    let out = evidence.process(&decisions).await.unwrap();
    evidence.persist().await.unwrap();
    let made = records(&out);
    assert_eq!(made.len(), decisions.len());
    let bucket = documents.bucket().unwrap();
    let ms = |t: i64| from_micros(t - t.rem_euclid(1000));
    // The batch's documents of a chain share a segment, kept until the
    // last of its records expires.
    let mut segments: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for r in &made {
        let url = r.storage_url.as_deref().unwrap();
        let at = documents.location_of(url).unwrap().expect("in the bucket");
        assert!(url.starts_with(&format!("s3://evidence-locked/pci/{}/segments/", r.chain)), "{url}");
        assert!(at.range.is_some(), "{url}");
        assert_eq!(stored_document(&documents, r).await.as_deref(), Some(r.document.as_bytes()));
        let latest = segments.entry(at.path).or_insert(r.expires_at);
        *latest = (*latest).max(r.expires_at);
    }
    let chains: std::collections::BTreeSet<&str> = made.iter().map(|r| r.chain.as_str()).collect();
    assert_eq!(segments.len(), chains.len(), "a segment per chain: {segments:?}");
    for (path, latest) in &segments {
        let retention = bucket.retention(path).await.unwrap().expect("the segment is locked");
        assert_eq!(retention.mode, "COMPLIANCE");
        assert_eq!(retention.retain_until, ms(*latest), "{path} is kept until its last record expires");
    }
    // Listed from the bucket as they are named (what `evidence expire`
    // judges orphans from).
    let listed: Vec<String> = documents.segments().await.unwrap().into_iter().map(|s| s.path).collect();
    assert_eq!(listed, segments.keys().cloned().collect::<Vec<_>>());
    let cp = &checkpoints(&out)[0];
    let cp_path = Evidence::checkpoint_path(cp.tree_size as u64);
    assert_eq!(documents.get(&cp_path).await.unwrap().as_deref(), Some(cp.checkpoint.as_bytes()));
    let retention = bucket.retention(&cp_path).await.unwrap().expect("the checkpoint is locked");
    assert_eq!(retention.mode, "COMPLIANCE");
    let newest = made.iter().map(|r| r.expires_at).max().unwrap();
    assert!(retention.retain_until >= ms(newest), "the checkpoint outlives the records it covers");
    // Files that grow with the log are not locked.
    for path in ["log/HEAD.json", "log/leaves/0000000000.bin"] {
        assert_eq!(bucket.retention(path).await.unwrap(), None, "{path}");
    }

    // Restarted from the bucket alone: the log and the chains continue.
    let mut restarted = Evidence::new(&cfg, None, sealer(), documents.clone());
    restarted.restore().await.unwrap();
    assert_eq!(restarted.log().size(), made.len() as u64);
    let again = restarted.process(&decisions).await.unwrap();
    assert!(records(&again).is_empty(), "nothing is sealed twice");

    // Every record's document is locked long enough (a segment is asked
    // once, for its latest record). A record that expires later than its
    // segment is locked is found; so is a segment written over, unlocked (a
    // new version; the locked one stays).
    let docs: Vec<(String, i64)> = made
        .iter()
        .map(|r| (documents.location_of(r.storage_url.as_deref().unwrap()).unwrap().unwrap().path, r.expires_at))
        .collect();
    let check = documents.check_locks(docs.clone()).await.unwrap().expect("S3 with Object Lock");
    assert_eq!((check.checked, check.expired, check.findings.len()), (segments.len(), 0, 0), "{check:?}");
    let mut longer = docs.clone();
    longer[1].1 += 86_400 * SECOND;
    longer.push(("gone/1.json".into(), 1000 * SECOND));
    let check = documents.check_locks(longer).await.unwrap().unwrap();
    assert_eq!((check.checked, check.expired), (segments.len(), 1));
    assert_eq!(check.findings.len(), 1, "{check:?}");
    assert!(
        check.findings.iter().any(|(p, why)| *p == docs[1].0 && why.contains("but the record expires")),
        "{check:?}"
    );
    let (first, _) = &docs[0];
    documents.put(first, b"{}".to_vec()).await.unwrap();
    let check = documents.check_locks(docs.clone()).await.unwrap().unwrap();
    assert_eq!(check.findings, [(first.clone(), "not locked".to_owned())], "{check:?}");
    assert_eq!(
        Documents::open_with("s3://evidence-locked/pci", ObjectLock::Off, &server.options())
            .unwrap()
            .check_locks(docs)
            .await
            .unwrap(),
        None
    );

    // A document whose retention ended already (events older than seven
    // years) cannot be locked: S3 refuses a past date. It is written unlocked.
    let old = Doc { path: "old/1.json".into(), bytes: b"{}".to_vec().into(), retain_until: Some(1000 * SECOND) };
    documents.put_many(vec![old]).await.unwrap();
    assert_eq!(documents.get("old/1.json").await.unwrap().as_deref(), Some(&b"{}"[..]));
    assert_eq!(bucket.retention("old/1.json").await.unwrap(), None);

    // `off` writes the same bucket unlocked.
    let off = Documents::open_with("s3://evidence-locked/other", ObjectLock::Off, &server.options()).unwrap();
    assert_eq!(off.prepare().await.unwrap(), Keeping::S3 { locked: false });
}

#[tokio::test]
async fn a_bucket_without_object_lock_is_written_unlocked_or_refused_when_required() {
    let server = psg_testkit::s3::S3Server::start();
    let cfg = Config::default();
    let decisions = decisions(&cfg, None, 1000 * SECOND).await;
    let documents = bucket(&server, "evidence-plain", false).await;
    assert_eq!(documents.prepare().await.unwrap(), Keeping::S3 { locked: false });
    let mut evidence =
        Evidence::new(&cfg, None, Sealer::new(SigningKey::from_bytes(&[6u8; 32]), "test"), documents.clone());
    evidence.restore().await.unwrap();
    let out = evidence.process(&decisions).await.unwrap();
    evidence.persist().await.unwrap();
    let r = &records(&out)[0];
    assert_eq!(stored_document(&documents, r).await.as_deref(), Some(r.document.as_bytes()));
    let path = documents.location_of(r.storage_url.as_deref().unwrap()).unwrap().unwrap().path;
    assert_eq!(documents.bucket().unwrap().retention(&path).await.unwrap(), None);

    let required = Documents::open_with("s3://evidence-plain/pci", ObjectLock::Required, &server.options()).unwrap();
    let err = required.prepare().await.unwrap_err().to_string();
    assert!(err.contains("'required'") && err.contains("s3://evidence-plain/pci"), "{err}");
    // A bucket that does not exist is an error, not "no lock".
    let missing = Documents::open_with("s3://no-such-bucket", ObjectLock::Auto, &server.options()).unwrap();
    let err = missing.prepare().await.unwrap_err().to_string();
    assert!(err.contains("NoSuchBucket"), "{err}");
    // The server checks signatures (so every request above was signed
    // right): a wrong secret is refused.
    let mut wrong = server.options();
    wrong.retain(|(k, _)| *k != "aws_secret_access_key");
    wrong.push(("aws_secret_access_key", "not-the-secret"));
    let forged = Documents::open_with("s3://evidence-plain/pci", ObjectLock::Auto, &wrong).unwrap();
    let err = forged.prepare().await.unwrap_err().to_string();
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(forged.get(&path).await.is_err(), "object_store's own requests are checked too");
}
