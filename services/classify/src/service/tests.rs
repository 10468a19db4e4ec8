use std::sync::Arc;

use psg_domain::time::SECOND;
use psg_domain::{AlertType, EdgeDirection, EdgeKind, Endpoint, FlowAction, PciScope, ResourceType, SourceRef};

use super::*;

fn resource(id: &str, tags: &[(&str, &str)]) -> Resource {
    let mut r = Resource::new(
        id,
        CloudProvider::Aws,
        ResourceType::Ec2Instance,
        0,
        SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 },
    );
    r.tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    r
}

fn msg(kind: InputKind, topic: &str, offset: i64, key: &str, payload: Option<Vec<u8>>) -> InMessage {
    InMessage {
        kind,
        topic: Arc::from(topic),
        partition: 0,
        offset,
        key: Some(key.as_bytes().to_vec()),
        payload,
        headers: vec![],
        timestamp_ms: None,
    }
}

fn res_msg(r: &Resource, offset: i64) -> InMessage {
    msg(InputKind::Table, "resources", offset, &r.resource_id, Some(psg_avro_codec::encode(r).unwrap()))
}

fn edge_msg(src: &str, dst: &str, offset: i64) -> InMessage {
    let end = |id: &str| Endpoint {
        resource_id: id.into(),
        kind: psg_domain::EndpointKind::Resource,
        address: None,
        vpc_id: None,
    };
    let e = FlowEdge {
        edge_id: format!("{src}-{dst}"),
        kind: EdgeKind::FirstSeen,
        ..psg_testkit::edges::one_flow(end(src), end(dst), 5432, FlowAction::Accept, 1000 * SECOND)
    };
    msg(InputKind::Stream, "flows.edges", offset, src, Some(psg_avro_codec::encode(&e).unwrap()))
}

fn manual_msg(rid: &str, scope: Option<PciScope>, offset: i64) -> InMessage {
    let m = ManualDecision {
        resource_id: rid.into(),
        scope,
        justification: "reviewed with the QSA".into(),
        decided_by: "alice@example.com".into(),
        decided_at: 5,
    };
    msg(InputKind::Table, "scope.manual", offset, rid, Some(psg_avro_codec::encode(&m).unwrap()))
}

fn decisions(out: &Output) -> Vec<ScopeDecision> {
    out.records
        .iter()
        .filter(|r| r.topic == "scope.decisions")
        .map(|r| psg_avro_codec::decode(&r.payload).unwrap())
        .collect()
}

fn alerts(out: &Output) -> Vec<Alert> {
    out.records
        .iter()
        .filter(|r| r.topic == "scope.alerts")
        .map(|r| psg_avro_codec::decode(&r.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn a_manual_decision_overrides_and_its_withdrawal_restores() {
    let mut c = Classify::new(&Config::default(), None);
    let out = c
        .process(&[
            res_msg(&resource("db", &[("pci-scope", "cde")]), 0),
            res_msg(&resource("app", &[("pci-scope", "out-of-scope")]), 1),
            edge_msg("app", "db", 0),
        ])
        .await
        .unwrap();
    let app = decisions(&out).into_iter().find(|d| d.resource_id == "app").unwrap();
    assert_eq!(app.scope, PciScope::ConnectedCde);
    let types: Vec<AlertType> = alerts(&out).iter().map(|a| a.alert_type).collect();
    assert!(types.contains(&AlertType::SegmentationViolation) && types.contains(&AlertType::ScopeDrift), "{types:?}");

    let out = c.process(&[manual_msg("app", Some(PciScope::OutOfScope), 0)]).await.unwrap();
    let d = decisions(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].scope, d[0].decision_method, d[0].rule),
        (PciScope::OutOfScope, DecisionMethod::Manual, ScopeRule::ManualDecision)
    );
    assert_eq!(d[0].decided_by, "alice@example.com");
    assert_eq!(d[0].supersedes_id.as_deref(), Some(app.decision_id.as_str()));
    assert!(d[0].justification.contains("reviewed with the QSA"), "{}", d[0].justification);

    let out = c.process(&[manual_msg("app", None, 1)]).await.unwrap();
    let d = decisions(&out);
    assert_eq!((d[0].scope, d[0].decision_method), (PciScope::ConnectedCde, DecisionMethod::Automated));
}

#[tokio::test]
async fn the_same_input_twice_decides_and_alerts_once() {
    let mut c = Classify::new(&Config::default(), None);
    let batch = [
        res_msg(&resource("db", &[("pci-scope", "cde")]), 0),
        res_msg(&resource("app", &[]), 1),
        edge_msg("app", "db", 0),
    ];
    let first = c.process(&batch).await.unwrap();
    assert!(!decisions(&first).is_empty() && !alerts(&first).is_empty());
    let again = c.process(&batch).await.unwrap();
    assert!(decisions(&again).is_empty(), "{:?}", decisions(&again));
    assert!(alerts(&again).is_empty(), "{:?}", alerts(&again));
}

#[tokio::test]
async fn a_restart_rebuilds_from_the_database_and_repeats_nothing() {
    let db = psg_testkit::TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 1).unwrap()).await.unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    let batch = [
        res_msg(&resource("db", &[("pci-scope", "cde")]), 0),
        res_msg(&resource("app", &[("pci-scope", "out-of-scope")]), 1),
        edge_msg("app", "db", 0),
    ];
    let mut c = Classify::new(&Config::default(), Some(store.clone()));
    let first = c.process(&batch).await.unwrap();
    c.persist().await.unwrap();
    assert!(decisions(&first).len() >= 2);
    assert!(alerts(&first).len() >= 2);
    // correlate's row for the edge, which classify rebuilds its graph from
    psg_store::flows::upsert_data_flows(
        &store,
        &[psg_domain::rows::DataFlowRow {
            id: ids::stable_id("edge", &["app-db"]),
            source_resource_id: ids::resource_uuid("app"),
            dest_resource_id: ids::resource_uuid("db"),
            protocol: "TCP".into(),
            src_port: None,
            dst_port: 5432,
            packet_count: 1,
            byte_count: 1,
            flow_direction: EdgeDirection::IntraVpc,
            action: FlowAction::Accept,
            observed_at: from_micros(960 * SECOND),
            window_start: from_micros(960 * SECOND),
            window_end: from_micros(1020 * SECOND),
            flow_count: 1,
            first_seen: from_micros(1000 * SECOND),
            last_seen: from_micros(1000 * SECOND),
            encrypted_flow_count: 0,
            unencrypted_flow_count: 0,
            action_logged: true,
        }],
    )
    .await
    .unwrap();

    // A new instance: state from the database, then the inventory again (the
    // table topic is read whole at every start).
    let mut restarted = Classify::new(&Config::default(), Some(store.clone()));
    restarted.restore().await.unwrap();
    let out = restarted.process(&batch[..2]).await.unwrap();
    assert!(decisions(&out).is_empty(), "no decision repeated: {:?}", decisions(&out));
    assert!(alerts(&out).is_empty(), "no alert repeated: {:?}", alerts(&out));
    restarted.persist().await.unwrap();
    let current = psg_store::decisions::current_decisions(&store).await.unwrap();
    let app = current.iter().find(|d| d.resource_id == "app").unwrap();
    assert_eq!(app.scope, "connected-cde");
}
