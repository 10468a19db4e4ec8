//! The evidence service against PostgreSQL: a record per decision, the
//! periodic reports when event time passes a period's end, a restart that
//! repeats nothing, and a database whose chains verify.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use psg_config::Config;
use psg_domain::time::{DAY, SECOND, from_micros};
use psg_domain::{
    CloudProvider, EdgeDirection, EdgeKind, Endpoint, EndpointKind, FlowAction, FlowEdge, Resource, ResourceType,
    SourceRef, ids,
};
use psg_evidence::Evidence;
use psg_evidence::documents::Documents;
use psg_evidence::record::Sealer;
use psg_evidence::verify::{Entry, Keyring, verify_entries};
use psg_kafka_runtime::{InMessage, InputKind, Output, Processor};
use psg_store::Store;

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
    let end = |id: &str| Endpoint { resource_id: id.into(), kind: EndpointKind::Resource, address: None, vpc_id: None };
    let e = FlowEdge {
        edge_id: format!("{src}-{dst}-{at}"),
        kind: EdgeKind::FirstSeen,
        src: end(src),
        dst: end(dst),
        protocol: 6,
        dst_port: 5432,
        action: FlowAction::Accept,
        direction: EdgeDirection::IntraVpc,
        window_start: at,
        window_end: at + 60 * SECOND,
        first_seen: at,
        last_seen: at,
        packets: 1,
        bytes: 100,
        flows: 1,
        encrypted_flows: 0,
        unencrypted_flows: 0,
        action_logged: true,
    };
    msg(InputKind::Stream, "flows.edges", offset, psg_avro_codec::encode(&e).expect("encode"))
}

fn records(out: &Output) -> Vec<psg_domain::Evidence> {
    out.records.iter().map(|r| psg_avro_codec::decode(&r.payload).expect("decode")).collect()
}

#[tokio::test]
async fn decisions_and_periodic_reports_are_chained_stored_and_not_repeated() {
    let db = psg_testkit::TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 1).unwrap()).await.unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    let cfg = Config::default();

    // Classify puts resources, decisions and a segmentation violation in the database.
    let at = 1000 * SECOND;
    let mut classify = psg_classify::Classify::new(&cfg, Some(store.clone()));
    let out = classify
        .process(&[
            resource("db", &[("pci-scope", "cde")]),
            resource("app", &[("pci-scope", "out-of-scope")]),
            edge("app", "db", at, 0),
        ])
        .await
        .unwrap();
    classify.persist().await.unwrap();
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
    let decisions: Vec<InMessage> = out
        .records
        .iter()
        .filter(|r| r.topic == "scope.decisions")
        .enumerate()
        .map(|(i, r)| msg(InputKind::Stream, "scope.decisions", i as i64, r.payload.clone()))
        .collect();
    assert!(decisions.len() >= 2);

    let dir = tempfile::tempdir().unwrap();
    let sealer = || Sealer::new(SigningKey::from_bytes(&[5u8; 32]), "test");
    let documents = Documents::open(dir.path().to_str().unwrap()).unwrap();
    let mut evidence = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    evidence.restore().await.unwrap();
    let first = records(&evidence.process(&decisions).await.unwrap());
    assert_eq!(first.len(), decisions.len(), "one record per decision; no period has closed yet");
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
    let out = records(&evidence.process(&[coverage, late.clone()]).await.unwrap());
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

    // A restart: same decisions and edges again make nothing new.
    let mut restarted = Evidence::new(&cfg, Some(store.clone()), sealer(), documents.clone());
    restarted.restore().await.unwrap();
    assert_eq!(restarted.next_period_end(), Some(3 * DAY));
    let mut again = decisions.clone();
    again.push(late);
    let out = restarted.process(&again).await.unwrap();
    assert!(out.records.is_empty(), "nothing repeated: {:?}", records(&out));

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
    let entries: Vec<Entry> = rows.iter().map(Entry::from_row).collect();
    let mut docs = std::collections::HashMap::new();
    for e in &entries {
        docs.insert(e.file.clone(), documents.get(&e.file).await.unwrap());
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
    let far = from_micros(100 * 366 * DAY);
    assert_eq!(psg_store::evidence::expired(&store, far).await.unwrap().len(), rows.len());
    let ids: Vec<uuid::Uuid> = expired.iter().map(|r| r.id).collect();
    assert_eq!(psg_store::evidence::delete_expired(&store, &ids, now).await.unwrap(), 8);
    let left = psg_store::evidence::records_between(&store, from_micros(0), far).await.unwrap();
    assert_eq!(left.len(), decisions.len());
}
