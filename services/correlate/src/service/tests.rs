use std::collections::HashMap;

use psg_domain::time::SECOND;
use psg_domain::{CloudProvider, EdgeKind, FlowAction, FlowCoverage, FlowFormat, ResourceType, SourceRef};
use psg_kafka_runtime::InputKind;

use super::*;

fn cfg() -> Config {
    let mut c = Config::default();
    c.correlate.window_secs = 60;
    c.correlate.allowed_lateness_secs = 60;
    c.correlate.hold_back_secs = 30;
    // Windows close at the watermark (the tolerance is tested on its own).
    c.correlate.match_tolerance_secs = 0;
    c
}

fn src(line: i32) -> SourceRef {
    SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 0, line }
}

fn resource(id: &str, ips: &[&str], interfaces: &[&str], vpc: &str) -> Resource {
    let mut r = Resource::new(id, CloudProvider::Aws, ResourceType::Ec2Instance, 0, src(0));
    r.private_ips = ips.iter().map(|s| s.to_string()).collect();
    r.interface_ids = interfaces.iter().map(|s| s.to_string()).collect();
    r.vpc_id = Some(vpc.into());
    r
}

fn flow(eni: &str, s: &str, d: &str, dport: i32, t: i64, packets: i64) -> FlowRecord {
    let mut r = FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, src(1), (t - 60) * SECOND, t * SECOND);
    r.interface_id = Some(eni.into());
    r.src_addr = Some(s.into());
    r.dst_addr = Some(d.into());
    r.src_port = Some(40000);
    r.dst_port = Some(dport);
    r.protocol = Some(6);
    r.packets = Some(packets);
    r.bytes = Some(packets * 100);
    r.action = Some(FlowAction::Accept);
    r
}

fn table(r: &Resource, offset: i64) -> InMessage {
    InMessage {
        kind: InputKind::Table,
        topic: Arc::from("resources"),
        partition: 0,
        offset,
        key: Some(r.resource_id.clone().into_bytes()),
        payload: Some(psg_avro_codec::encode(r).unwrap()),
        headers: vec![],
        timestamp_ms: None,
    }
}

/// A flow batch at `offset`, as ingest writes it: the records of the source
/// message at the same offset of `flowlogs.raw`.
fn stream(mut records: Vec<FlowRecord>, offset: i64) -> InMessage {
    for r in &mut records {
        r.source.offset = offset;
    }
    InMessage {
        kind: InputKind::Stream,
        topic: Arc::from("flows.normalized"),
        partition: 0,
        offset,
        key: None,
        payload: Some(psg_avro_codec::encode(&FlowBatch { records }).unwrap()),
        headers: vec![],
        timestamp_ms: None,
    }
}

fn edges(out: &Output) -> Vec<FlowEdge> {
    out.records
        .iter()
        .filter(|r| r.topic == "flows.edges")
        .map(|r| psg_avro_codec::decode::<FlowEdge>(&r.payload).unwrap())
        .collect()
}

async fn run(c: &mut Correlate, batch: Vec<InMessage>) -> Vec<FlowEdge> {
    let out = c.process(&batch).await.unwrap();
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    edges(&out)
}

#[tokio::test]
async fn double_reporting_counts_once_and_windows_close_exactly() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
        ],
    )
    .await;
    // The same connection logged at both interfaces, and again 30 s later at the source.
    let first = run(
        &mut c,
        vec![stream(
            vec![
                flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, 10),
                flow("eni-db", "10.0.1.5", "10.0.2.9", 5432, 1000, 10),
            ],
            0,
        )],
    )
    .await;
    assert_eq!(first.len(), 1, "first sighting emitted at once");
    assert_eq!(
        (first[0].kind, first[0].src.resource_id.as_str(), first[0].dst.resource_id.as_str()),
        (EdgeKind::FirstSeen, "web", "db")
    );
    assert_eq!(first[0].direction, EdgeDirection::IntraVpc);
    run(&mut c, vec![stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1010, 5)], 1)]).await;
    assert!(c.held_offsets().iter().any(|(_, _, o)| *o == 0), "open window holds offset 0");
    // Event time moves on: the window [960, 1020) closes at watermark 1020.
    let closed = run(&mut c, vec![stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 1100, 1)], 2)]).await;
    let w: Vec<&FlowEdge> = closed.iter().filter(|e| e.kind == EdgeKind::Window).collect();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].packets, w[0].bytes, w[0].flows), (15, 1500, 1), "10 (max of both reports) + 5");
    assert_eq!((w[0].window_start, w[0].window_end), (960 * SECOND, 1020 * SECOND));
}

/// Issue 15: the source's egress accepted, the destination's ingress
/// rejected, five minutes apart and in two batches: the accepted edge
/// announced first is withdrawn, and the window closes with the blocked one.
#[tokio::test]
async fn a_connection_the_other_end_rejected_is_withdrawn_and_counted_blocked() {
    let mut cfg = cfg();
    cfg.correlate.match_tolerance_secs = 600;
    let mut c = Correlate::new(&cfg, None);
    run(
        &mut c,
        vec![
            table(&resource("corp", &["10.0.1.5"], &["eni-corp"], "vpc-1"), 0),
            table(&resource("vault", &["10.0.2.9"], &["eni-vault"], "vpc-1"), 1),
        ],
    )
    .await;
    let first = run(&mut c, vec![stream(vec![flow("eni-corp", "10.0.1.5", "10.0.2.9", 5432, 1000, 3)], 0)]).await;
    assert_eq!((first.len(), first[0].kind, first[0].action), (1, EdgeKind::FirstSeen, FlowAction::Accept));
    let mut rejected = flow("eni-vault", "10.0.1.5", "10.0.2.9", 5432, 1300, 3);
    rejected.action = Some(FlowAction::Reject);
    let second = run(&mut c, vec![stream(vec![rejected], 1)]).await;
    let kinds: Vec<(EdgeKind, FlowAction)> = second.iter().map(|e| (e.kind, e.action)).collect();
    assert!(kinds.contains(&(EdgeKind::Withdrawn, FlowAction::Accept)), "{kinds:?}");
    assert!(kinds.contains(&(EdgeKind::FirstSeen, FlowAction::Reject)), "{kinds:?}");
    let withdrawn = second.iter().find(|e| e.kind == EdgeKind::Withdrawn).unwrap();
    assert_eq!(withdrawn.edge_id, first[0].edge_id, "it names the window edge it withdraws");
    // Event time moves past both windows.
    let closed = run(&mut c, vec![stream(vec![flow("eni-corp", "10.0.1.5", "10.0.2.9", 443, 3000, 1)], 2)]).await;
    let w: Vec<(FlowAction, i64, i64)> = second
        .iter()
        .chain(&closed)
        .filter(|e| e.kind == EdgeKind::Window && e.dst_port == 5432)
        .map(|e| (e.action, e.flows, e.packets))
        .collect();
    assert_eq!(w, vec![(FlowAction::Reject, 1, 3), (FlowAction::Reject, 1, 3)], "one blocked connection per window");
}

/// Issue 16: encryption in transit, as AWS (`encryption-status`) and Azure
/// (the VNet flow-log column) report it, reaches the window edge.
#[tokio::test]
async fn encryption_in_transit_is_counted_per_edge() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
        ],
    )
    .await;
    let mut records = Vec::new();
    for (i, (key, value)) in [
        ("encryption-status", "2"),
        ("encryption-status", "0"),
        ("encryption", "X"),
        ("encryption", "NX_LOCAL_DST"),
        ("", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, 1);
        r.src_port = Some(40_000 + i as i32);
        if !key.is_empty() {
            r.extra.insert(key.into(), value.into());
        }
        records.push(r);
    }
    run(&mut c, vec![stream(records, 2)]).await;
    let closed = run(&mut c, vec![stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 3000, 1)], 3)]).await;
    let e = closed.iter().find(|e| e.kind == EdgeKind::Window && e.dst_port == 5432).expect("the window edge");
    assert_eq!((e.flows, e.encrypted_flows, e.unencrypted_flows), (5, 2, 2), "one unknown");
    assert_eq!((data_flow_row(e).encrypted_flow_count, data_flow_row(e).unencrypted_flow_count), (2, 2));
}

/// Issue 16: records of a format without `action` (counted as accepted by
/// ingest) make edges that say the action was not logged, until a record
/// of the same edge logs it.
#[tokio::test]
async fn edges_of_records_without_action_say_so() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
        ],
    )
    .await;
    let unlogged = |port: i32, src_port: i32| {
        let mut r = flow("eni-web", "10.0.1.5", "10.0.2.9", port, 1000, 1);
        r.src_port = Some(src_port);
        r.extra.insert(psg_domain::extra::ACTION_LOGGED.into(), "false".into());
        r
    };
    let mut logged = flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 1000, 1);
    logged.src_port = Some(40_100);
    let first = run(&mut c, vec![stream(vec![unlogged(5432, 40_000), unlogged(443, 40_001), logged], 2)]).await;
    let first_seen = |port| first.iter().find(|e| e.kind == EdgeKind::FirstSeen && e.dst_port == port).unwrap();
    assert!(!first_seen(5432).action_logged, "the first-seen edge of an unlogged record says so");
    assert!(!first_seen(443).action_logged, "its first record was unlogged");
    let closed = run(&mut c, vec![stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 22, 3000, 1)], 3)]).await;
    let window = |port| closed.iter().find(|e| e.kind == EdgeKind::Window && e.dst_port == port).unwrap();
    assert!(!window(5432).action_logged);
    assert!(!data_flow_row(window(5432)).action_logged, "and so does its data_flows row");
    assert!(window(443).action_logged, "one logged record of the edge is enough");
    assert_eq!(window(443).flows, 2);
}

/// Issue 17: every record counts for flow-log coverage, a NODATA one too
/// (logging works, there was no traffic); the unit is placed in its VPC by
/// the inventory when the record does not say; coverage is published on
/// `flows.coverage`, keyed by unit and input partition.
#[tokio::test]
async fn flow_log_coverage_is_published_per_unit() {
    let mut c = Correlate::new(&cfg(), None);
    run(&mut c, vec![table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0)]).await;
    let mut idle = FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, src(2), 0, 100 * SECOND);
    idle.interface_id = Some("eni-idle".into());
    idle.vpc_id = Some("vpc-2".into());
    idle.log_status = psg_domain::LogStatus::NoData;
    let mut rejected = flow("eni-web", "10.0.1.5", "10.0.2.9", 22, 100, 1);
    rejected.action = Some(FlowAction::Reject);
    let batch = stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 100, 1), rejected, idle], 1);
    let out = c.process(&[batch]).await.unwrap();
    let mut coverage: Vec<(String, FlowCoverage)> = out
        .records
        .iter()
        .filter(|r| r.topic == "flows.coverage")
        .map(|r| {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            (key, psg_avro_codec::decode::<FlowCoverage>(&r.payload).unwrap())
        })
        .collect();
    coverage.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<&str> = coverage.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["eni-idle|0", "eni-web|0"]);
    let (idle, web) = (&coverage[0].1, &coverage[1].1);
    assert_eq!((idle.records, idle.no_data, idle.vpc_id.as_deref()), (1, 1, Some("vpc-2")));
    assert_eq!((web.records, web.accepted, web.rejected), (2, 1, 1));
    assert_eq!(web.vpc_id.as_deref(), Some("vpc-1"), "placed by the inventory");
    assert_eq!(web.last_seen, 100 * SECOND);
    // Nothing new within the report interval: nothing published.
    let again = c.process(&[stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 160, 1)], 2)]).await.unwrap();
    assert!(!again.records.iter().any(|r| r.topic == "flows.coverage"));
}

/// Issue 16: a Transit Gateway record's ends are resolved inside the VPCs
/// it names (address ranges overlap across VPCs and accounts).
#[tokio::test]
async fn transit_gateway_ends_are_found_in_their_vpcs() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("app-a", &["10.0.1.5"], &[], "vpc-a"), 0),
            table(&resource("app-b", &["10.0.1.5"], &[], "vpc-b"), 1),
            table(&resource("db-b", &["10.0.2.9"], &[], "vpc-b"), 2),
            table(&resource("db-c", &["10.0.2.9"], &[], "vpc-c"), 3),
        ],
    )
    .await;
    let pairs = [("vpc-a", "vpc-c", ("app-a", "db-c")), ("vpc-b", "vpc-b", ("app-b", "db-b"))];
    for (offset, (src_vpc, dst_vpc, want)) in (10..).zip(pairs) {
        let mut r = flow("-", "10.0.1.5", "10.0.2.9", 5432, 1000, 3);
        r.interface_id = None;
        r.reporter = Some("tgw-attach-1".into());
        r.extra.insert("tgw-src-vpc-id".into(), src_vpc.into());
        r.extra.insert("tgw-dst-vpc-id".into(), dst_vpc.into());
        let e = run(&mut c, vec![stream(vec![r], offset)]).await;
        assert_eq!((e[0].src.resource_id.as_str(), e[0].dst.resource_id.as_str()), want);
    }
}

#[tokio::test]
async fn packet_addresses_win_over_the_nat_gateway_view() {
    let mut c = Correlate::new(&cfg(), None);
    let mut nat = resource("nat-eni", &["10.0.0.100"], &["eni-nat"], "vpc-1");
    nat.resource_type = ResourceType::NatGateway;
    run(&mut c, vec![table(&nat, 0), table(&resource("app", &["10.0.3.3"], &[], "vpc-1"), 1)]).await;
    let mut r = flow("eni-nat", "10.0.0.100", "52.95.128.179", 443, 1000, 3);
    r.pkt_src_addr = Some("10.0.3.3".into());
    r.pkt_dst_addr = Some("52.95.128.179".into());
    let e = run(&mut c, vec![stream(vec![r], 0)]).await;
    assert_eq!(e[0].src.resource_id, "app", "the instance behind the NAT, not the NAT");
    assert_eq!(e[0].dst.resource_id, "ip:52.95.128.179");
    assert_eq!(e[0].dst.kind, EndpointKind::External);
}

#[tokio::test]
async fn a_flow_before_its_inventory_waits_then_is_attributed() {
    let mut c = Correlate::new(&cfg(), None);
    // the flow arrives first: nobody holds 10.0.9.9 yet
    let e = run(&mut c, vec![stream(vec![flow("eni-x", "10.0.9.9", "10.0.2.9", 22, 1000, 1)], 0)]).await;
    assert!(e.is_empty());
    assert_eq!(c.held(), 1);
    assert_eq!(c.held_offsets(), vec![("flows.normalized".to_owned(), 0, 0)]);
    // its inventory arrives
    let e = run(
        &mut c,
        vec![
            table(&resource("new-vm", &["10.0.9.9"], &[], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &[], "vpc-1"), 1),
        ],
    )
    .await;
    assert_eq!(c.held(), 0);
    assert_eq!((e[0].src.resource_id.as_str(), e[0].dst.resource_id.as_str()), ("new-vm", "db"));
}

#[tokio::test]
async fn an_unknown_internal_host_after_the_hold_back() {
    let mut c = Correlate::new(&cfg(), None);
    run(&mut c, vec![table(&resource("db", &["10.0.2.9"], &[], "vpc-1"), 0)]).await;
    assert!(run(&mut c, vec![stream(vec![flow("eni-db", "10.7.7.7", "10.0.2.9", 22, 1000, 1)], 0)]).await.is_empty());
    // 40 s later (beyond the 30 s hold-back) another flow moves event time on
    let e = run(&mut c, vec![stream(vec![flow("eni-db", "10.0.2.9", "8.8.8.8", 53, 1040, 1)], 1)]).await;
    let unknown = e.iter().find(|e| e.src.resource_id == "ip:10.7.7.7").expect("released as unknown host");
    assert_eq!(unknown.src.kind, EndpointKind::UnknownHost);
    assert_eq!(c.held(), 0);
}

#[tokio::test]
async fn ipv6_and_reused_addresses() {
    let mut c = Correlate::new(&cfg(), None);
    let mut a = resource("a", &["fd00::10"], &[], "vpc-1");
    a.observed_at = 0;
    let mut a_gone = a.clone();
    a_gone.observed_at = 500 * SECOND;
    a_gone.deleted = true;
    let mut b = resource("b", &["fd00::10"], &[], "vpc-1");
    b.observed_at = 600 * SECOND;
    run(
        &mut c,
        vec![table(&a, 0), table(&a_gone, 1), table(&b, 2), table(&resource("db", &["fd00::99"], &[], "vpc-1"), 3)],
    )
    .await;
    let early = run(&mut c, vec![stream(vec![flow("x", "fd00::10", "fd00::99", 5432, 400, 1)], 0)]).await;
    let late = run(&mut c, vec![stream(vec![flow("x", "fd00::10", "fd00::99", 5432, 700, 1)], 1)]).await;
    assert_eq!(early[0].src.resource_id, "a", "held by a at 400");
    let b_edge = late.iter().find(|e| e.kind == EdgeKind::FirstSeen).expect("new edge for b");
    assert_eq!(b_edge.src.resource_id, "b", "held by b at 700");
}

#[tokio::test]
async fn late_records_are_edges_of_their_own() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &[], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &[], "vpc-1"), 1),
        ],
    )
    .await;
    run(&mut c, vec![stream(vec![flow("w", "10.0.1.5", "10.0.2.9", 5432, 1000, 1)], 0)]).await;
    run(&mut c, vec![stream(vec![flow("w", "10.0.1.5", "10.0.2.9", 5432, 2000, 1)], 1)]).await;
    let late = run(&mut c, vec![stream(vec![flow("w", "10.0.1.5", "10.0.2.9", 5432, 1001, 7)], 2)]).await;
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].kind, late[0].packets, late[0].window_start), (EdgeKind::Window, 7, 960 * SECOND));
    let mut ids: HashMap<String, usize> = HashMap::new();
    *ids.entry(late[0].edge_id.clone()).or_default() += 1;
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn a_second_copy_of_a_flow_batch_is_not_counted_again() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
        ],
    )
    .await;
    let batch = |packets| stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, packets)], 7);
    run(&mut c, vec![batch(10)]).await;
    // ingest processed source offset 7 again (crash before its commit) and
    // wrote the same batch a second time, at a later offset of flows.normalized
    let mut again = batch(10);
    again.offset = 8;
    run(&mut c, vec![again]).await;
    assert_eq!(c.duplicates(), 1);
    // the same source offset from another source partition is not a copy
    let mut other = batch(1);
    other.offset = 9;
    let mut rec: FlowBatch = psg_avro_codec::decode(other.payload()).unwrap();
    rec.records[0].source.partition = 1;
    other.payload = Some(psg_avro_codec::encode(&rec).unwrap());
    run(&mut c, vec![other]).await;
    let closed = run(&mut c, vec![stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 1100, 1)], 10)]).await;
    let w: Vec<&FlowEdge> = closed.iter().filter(|e| e.kind == EdgeKind::Window && e.dst_port == 5432).collect();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].packets, 11, "10 once, plus 1 from the other source partition");
}

#[tokio::test]
async fn after_a_revocation_the_partitions_are_counted_again_from_their_committed_offsets() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
            table(&resource("app", &["10.0.3.3"], &["eni-app"], "vpc-1"), 2),
        ],
    )
    .await;
    let on = |mut m: InMessage, partition| {
        m.partition = partition;
        m
    };
    run(&mut c, vec![on(stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, 10)], 3), 0)]).await;
    run(&mut c, vec![on(stream(vec![flow("eni-app", "10.0.3.3", "10.0.2.9", 5432, 1000, 4)], 5), 1)]).await;
    assert_eq!(c.held_offsets().len(), 2);
    c.partitions_revoked(&[("flows.normalized".to_owned(), 0), ("flows.normalized".to_owned(), 1)]);
    assert!(c.held_offsets().is_empty(), "nothing held: everything is read again");
    // both partitions come back (eager rebalance), read from their committed offsets
    run(&mut c, vec![on(stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, 10)], 3), 0)]).await;
    run(&mut c, vec![on(stream(vec![flow("eni-app", "10.0.3.3", "10.0.2.9", 5432, 1000, 4)], 5), 1)]).await;
    // event time moves on in both partitions (each closes its own windows)
    let closed = run(
        &mut c,
        vec![
            on(stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 1100, 1)], 4), 0),
            on(stream(vec![flow("eni-app", "10.0.3.3", "10.0.2.9", 443, 1100, 1)], 6), 1),
        ],
    )
    .await;
    let mut counts: Vec<(String, i64)> = closed
        .iter()
        .filter(|e| e.kind == EdgeKind::Window && e.dst_port == 5432)
        .map(|e| (e.src.resource_id.clone(), e.packets))
        .collect();
    counts.sort();
    assert_eq!(counts, vec![("app".to_owned(), 4), ("web".to_owned(), 10)], "counted once each");
    assert_eq!(c.duplicates(), 0, "a re-read after a revocation is not a copy");
}

#[tokio::test]
async fn one_edge_from_two_partitions_gets_two_partial_ids() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5", "10.0.1.6"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
        ],
    )
    .await;
    let mut a = stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, 3)], 3);
    a.partition = 0;
    let mut b = stream(vec![flow("eni-web", "10.0.1.6", "10.0.2.9", 5432, 1000, 4)], 4);
    b.partition = 1;
    run(&mut c, vec![a, b]).await;
    let mut close0 = stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 1100, 1)], 5);
    close0.partition = 0;
    let mut close1 = stream(vec![flow("eni-web", "10.0.1.6", "10.0.2.9", 443, 1100, 1)], 6);
    close1.partition = 1;
    let closed = run(&mut c, vec![close0, close1]).await;
    let w: Vec<&FlowEdge> = closed.iter().filter(|e| e.kind == EdgeKind::Window && e.dst_port == 5432).collect();
    assert_eq!(w.len(), 2, "one partial edge per input partition");
    assert_ne!(w[0].edge_id, w[1].edge_id);
    assert_eq!(w.iter().map(|e| e.packets).sum::<i64>(), 7);
}

#[tokio::test]
async fn two_batches_of_one_source_message_both_count_and_their_copies_do_not() {
    let mut c = Correlate::new(&cfg(), None);
    run(
        &mut c,
        vec![
            table(&resource("web", &["10.0.1.5"], &["eni-web"], "vpc-1"), 0),
            table(&resource("db", &["10.0.2.9"], &["eni-db"], "vpc-1"), 1),
        ],
    )
    .await;
    // a big source message at offset 7, split by ingest into batches by line
    let part = |line: i32, offset: i64| {
        let mut r = flow("eni-web", "10.0.1.5", "10.0.2.9", 5432, 1000, 2);
        r.source.line = line;
        let mut m = stream(vec![r], 7);
        m.offset = offset;
        m
    };
    run(&mut c, vec![part(1, 0), part(2, 1)]).await;
    run(&mut c, vec![part(1, 2), part(2, 3)]).await; // ingest wrote the message again
    assert_eq!(c.duplicates(), 2);
    let closed = run(&mut c, vec![stream(vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 443, 1100, 1)], 8)]).await;
    let w: Vec<&FlowEdge> = closed.iter().filter(|e| e.kind == EdgeKind::Window && e.dst_port == 5432).collect();
    assert_eq!(w.iter().map(|e| e.packets).sum::<i64>(), 4, "both batches once");
}
