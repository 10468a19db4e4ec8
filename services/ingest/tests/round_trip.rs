//! Property tests: every record a parser accepts round-trips through Avro
//! unchanged, and no input makes a parser panic.

use proptest::prelude::*;
use psg_domain::{FlowRecord, Resource};
use psg_ingest::aws::{Layout, parse_line};
use psg_ingest::flowlogs::{AwsLayouts, parse};
use psg_ingest::parsed::MessageCtx;

const CTX: MessageCtx<'static> = MessageCtx { topic: "flowlogs.raw", partition: 3, offset: 99, time: None };

fn round_trips<T>(r: &T)
where
    T: psg_avro_codec::AvroMessage + PartialEq + std::fmt::Debug,
{
    let bytes = psg_avro_codec::encode(r).expect("an accepted record encodes");
    let back: T = psg_avro_codec::decode(&bytes).expect("and decodes");
    assert_eq!(&back, r);
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        Just("-".to_owned()),
    ]
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        "[a-z0-9-]{1,20}",
        Just("-".to_owned()),
        Just("ACCEPT".to_owned()),
        Just("REJECT".to_owned()),
        Just("OK".to_owned()),
        Just("NODATA".to_owned()),
    ]
}

prop_compose! {
    /// Default-format lines, mostly valid.
    fn aws_line()(
        version in 2u8..9,
        account in "[0-9]{12}",
        eni in "eni-[0-9a-f]{17}",
        src in ip(), dst in ip(),
        sport in 0u32..70000, dport in 0u32..70000,
        proto in 0u16..300,
        packets in any::<u32>(), bytes in any::<u64>(),
        start in 0i64..2_000_000_000_000, len in -5i64..600,
        action in prop_oneof![Just("ACCEPT"), Just("REJECT"), Just("-")],
        status in prop_oneof![Just("OK"), Just("NODATA"), Just("SKIPDATA")],
        junk in proptest::option::of(field()),
    ) -> String {
        let mut l = format!("{version} {account} {eni} {src} {dst} {sport} {dport} {proto} {packets} {bytes} {start} {} {action} {status}", start + len);
        if let Some(j) = junk { l.push(' '); l.push_str(&j); }
        l
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_aws_lines_round_trip(line in aws_line()) {
        if let Ok(r) = parse_line(&Layout::default_v2(), &line, CTX.source(1)) {
            prop_assert!(r.end_time >= r.start_time);
            round_trips(&r);
        }
    }

    #[test]
    fn custom_layouts_of_any_order_round_trip(
        order in Just(vec!["version", "srcaddr", "dstaddr", "srcport", "dstport", "protocol", "packets", "bytes", "start", "end", "action", "log-status", "vpc-id", "flow-direction", "pkt-srcaddr", "ecs-task-id", "reject-reason"]).prop_shuffle(),
        values in proptest::collection::vec(field(), 17),
    ) {
        let layout = Layout::parse(&order.join(" ")).expect("valid layout");
        let line = values.join(" ");
        if let Ok(r) = parse_line(&layout, &line, CTX.source(1)) {
            round_trips(&r);
        }
    }

    #[test]
    fn no_payload_panics_and_accepted_records_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let parsed = parse(&bytes, None, &AwsLayouts::default(), CTX);
        for r in &parsed.records {
            round_trips::<FlowRecord>(r);
        }
        let inventory = psg_ingest::inventory::parse(&bytes, CTX);
        for r in &inventory.records {
            round_trips::<Resource>(r);
        }
    }

    #[test]
    fn native_inventory_round_trips(
        id in "[a-z][a-z0-9-]{0,30}",
        ips in proptest::collection::vec(any::<[u8; 4]>(), 0..4),
        tags in proptest::collection::btree_map("[a-z-]{1,10}", "\\PC{0,12}", 0..4),
        deleted in any::<bool>(),
    ) {
        let doc = serde_json::json!({
            "provider": "aws", "resource_type": "ec2_instance", "resource_id": id,
            "private_ips": ips.iter().map(|o| std::net::Ipv4Addr::from(*o).to_string()).collect::<Vec<_>>(),
            "tags": tags, "observed_at": "2026-01-01T00:00:00Z", "deleted": deleted,
        });
        let parsed = psg_ingest::inventory::parse(doc.to_string().as_bytes(), CTX);
        prop_assert_eq!(parsed.records.len(), 1, "{:?}", parsed.rejected);
        round_trips::<Resource>(&parsed.records[0]);
    }
}

fn tuple_field() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u16>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "(1[0-9]{9}|1[0-9]{12})",
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        prop_oneof![
            Just("T"),
            Just("U"),
            Just("I"),
            Just("O"),
            Just("A"),
            Just("D"),
            Just("B"),
            Just("C"),
            Just("E"),
            Just("NX"),
            Just("X"),
            Just("")
        ]
        .prop_map(str::to_owned),
        Just("-1".to_owned()),
    ]
}

prop_compose! {
    fn nsg_tuple()(time in "1[0-9]{9}", src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), rest in proptest::collection::vec(tuple_field(), 2..11)) -> String {
        format!("{time},{},{},{}", std::net::Ipv4Addr::from(src), std::net::Ipv4Addr::from(dst), rest.join(","))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn accepted_azure_tuples_round_trip(tuples in proptest::collection::vec(nsg_tuple(), 1..20), version in 1u8..3, vnet in any::<bool>()) {
        let blob = if vnet {
            serde_json::json!({"records": [{"time": "2022-09-14T09:00:52Z", "category": "FlowLogFlowEvent", "macAddress": "00224871C205",
                "flowLogResourceID": "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG", "targetResourceID": "/subscriptions/s/x",
                "flowRecords": {"flows": [{"aclID": "a", "flowGroups": [{"rule": "r", "flowTuples": tuples}]}]}}]})
        } else {
            serde_json::json!({"records": [{"time": "2018-11-13T12:00:35Z", "category": "NetworkSecurityGroupFlowEvent",
                "resourceId": "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG", "properties": {"Version": version,
                "flows": [{"rule": "r", "flows": [{"mac": "000D3AF87856", "flowTuples": tuples}]}]}}]})
        };
        let parsed = parse(blob.to_string().as_bytes(), None, &AwsLayouts::default(), CTX);
        prop_assert_eq!(parsed.records.len() + parsed.rejected.len(), tuples.len());
        for r in &parsed.records {
            prop_assert!(r.end_time >= r.start_time);
            round_trips::<FlowRecord>(r);
        }
    }

    #[test]
    fn accepted_gcp_entries_round_trip(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sport in any::<u32>(), dport in any::<u32>(), proto in any::<u16>(),
        bytes in any::<i64>(), secs in 0i64..4_000_000_000, len in -3i64..100, reporter in prop_oneof![Just("SRC"), Just("DEST"), Just("X")],
        as_numbers in any::<bool>(),
    ) {
        let t = |s: i64| chrono::DateTime::from_timestamp(s, 123_456_789).map(|d| d.to_rfc3339()).unwrap_or_default();
        let n = |v: i64| if as_numbers { serde_json::json!(v) } else { serde_json::json!(v.to_string()) };
        let entry = serde_json::json!({"logName": "projects/p/logs/compute.googleapis.com%2Fvpc_flows", "jsonPayload": {
            "connection": {"src_ip": std::net::Ipv4Addr::from(src).to_string(), "dest_ip": std::net::Ipv4Addr::from(dst).to_string(),
                "src_port": sport, "dest_port": dport, "protocol": proto},
            "bytes_sent": n(bytes), "packets_sent": n(bytes / 100), "start_time": t(secs), "end_time": t(secs + len),
            "reporter": reporter, "src_instance": {"project_id": "p", "region": "r", "vm_name": "v"}}});
        let parsed = parse(entry.to_string().as_bytes(), None, &AwsLayouts::default(), CTX);
        prop_assert_eq!(parsed.records.len() + parsed.rejected.len(), 1);
        for r in &parsed.records {
            round_trips::<FlowRecord>(r);
        }
    }
}
