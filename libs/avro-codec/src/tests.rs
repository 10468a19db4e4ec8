use std::collections::HashMap;

use apache_avro::Schema;
use psg_domain::*;

use super::*;

fn source() -> SourceRef {
    SourceRef { topic: "flowlogs.raw".into(), partition: 2, offset: 41, line: 3 }
}

fn flow_record(full: bool) -> FlowRecord {
    let some = |s: &str| full.then(|| Text::new(s));
    FlowRecord {
        provider: CloudProvider::Aws,
        format: FlowFormat::AwsVpc,
        format_version: full.then_some(5),
        account_id: some("012345678901"),
        interface_id: some("eni-1235b8ca123456789"),
        vpc_id: some("vpc-1"),
        subnet_id: some("subnet-1"),
        instance_id: some("i-1"),
        region: some("eu-west-1"),
        src_addr: some("10.0.0.1"),
        dst_addr: some("2001:db8::1"),
        pkt_src_addr: some("10.0.0.9"),
        pkt_dst_addr: some("10.0.0.8"),
        src_port: full.then_some(443),
        dst_port: full.then_some(0),
        protocol: full.then_some(6),
        packets: full.then_some(i64::MAX),
        bytes: full.then_some(0),
        reverse_packets: full.then_some(1),
        reverse_bytes: full.then_some(2),
        start_time: 1_418_530_010_000_000,
        end_time: 1_418_530_070_000_000,
        action: full.then_some(FlowAction::Reject),
        log_status: if full { LogStatus::Ok } else { LogStatus::NoData },
        flow_direction: full.then_some(FlowDirection::Egress),
        tcp_flags: full.then_some(19),
        traffic_path: full.then_some(8),
        reporter: some("SRC"),
        extra: if full { HashMap::from([("ecs-task-id".into(), "abc".into())]) } else { HashMap::new() },
        source: source(),
    }
}

fn resource() -> Resource {
    Resource {
        id: ids::resource_uuid("i-0abc").to_string(),
        resource_id: "i-0abc".into(),
        provider: CloudProvider::Aws,
        resource_type: ResourceType::Ec2Instance,
        resource_arn: Some("arn:aws:ec2:us-east-1:1:instance/i-0abc".into()),
        resource_name: Some("web-1".into()),
        account_id: None,
        region: Some("us-east-1".into()),
        availability_zone: None,
        vpc_id: Some("vpc-1".into()),
        subnet_id: Some("subnet-1".into()),
        private_ips: vec!["10.0.1.5".into()],
        public_ips: vec![],
        interface_ids: vec!["eni-1".into()],
        security_groups: vec!["sg-1".into()],
        tags: HashMap::from([("pci-scope".into(), "cde".into())]),
        observed_at: 1_767_225_600_000_000,
        deleted: false,
        metadata_json: Some("{}".into()),
        source: source(),
    }
}

fn endpoint(id: &str, kind: EndpointKind) -> Endpoint {
    Endpoint { resource_id: id.into(), kind, address: Some("10.0.0.1".into()), vpc_id: None }
}

fn flow_edge() -> FlowEdge {
    FlowEdge {
        edge_id: ids::stable_id("edge", &["a"]).to_string(),
        kind: EdgeKind::FirstSeen,
        src: endpoint("i-1", EndpointKind::Resource),
        dst: endpoint("ip:203.0.113.9", EndpointKind::External),
        protocol: 6,
        dst_port: 443,
        action: FlowAction::Accept,
        direction: EdgeDirection::Egress,
        window_start: 60_000_000,
        window_end: 120_000_000,
        first_seen: 61_000_000,
        last_seen: 62_000_000,
        packets: 3,
        bytes: 300,
        flows: 1,
        encrypted_flows: 0,
        unencrypted_flows: 0,
        action_logged: true,
    }
}

fn decision() -> ScopeDecision {
    ScopeDecision {
        decision_id: ids::stable_id("decision", &["x"]).to_string(),
        resource_id: "i-1".into(),
        resource_uuid: ids::resource_uuid("i-1").to_string(),
        scope: PciScope::ConnectedCde,
        previous_scope: Some(PciScope::PendingReview),
        data_classification: Some(DataClassification::TransmitsCardholder),
        segment: None,
        rule: ScopeRule::CdeConnection,
        justification: "talks to the CDE".into(),
        decided_at: 1,
        decided_by: "automated-classifier".into(),
        decision_method: DecisionMethod::Automated,
        supersedes_id: Some(ids::stable_id("decision", &["w"]).to_string()),
        dependency_resource_ids: vec!["db-1".into()],
        as_of: 2,
    }
}

fn alert() -> Alert {
    Alert {
        alert_id: ids::stable_id("alert", &["x"]).to_string(),
        alert_type: AlertType::SegmentationViolation,
        severity: Severity::Critical,
        title: "t".into(),
        description: "d".into(),
        resource_id: Some("i-1".into()),
        triggered_at: 5,
        pci_requirement: Some("1.3.1".into()),
        status: AlertStatus::Open,
        context: HashMap::from([("dst_port".into(), "5432".into())]),
    }
}

fn evidence() -> Evidence {
    Evidence {
        evidence_id: ids::stable_id("evidence", &["x"]).to_string(),
        evidence_type: EvidenceType::ScopeIdentification,
        chain: "pci_scope_identification".into(),
        sequence: 1,
        scope_decision_id: Some(ids::stable_id("decision", &["x"]).to_string()),
        resource_id: Some("i-1".into()),
        hash: "00".repeat(32),
        prev_hash: None,
        signature: "sig".into(),
        signing_key_id: "ed25519:abcd".into(),
        storage_url: Some("file:///tmp/x.json".into()),
        pci_requirement: Some("12.5.2".into()),
        generated_at: 7,
        generated_by: "evidence".into(),
        expires_at: 8,
        document: "{}".into(),
        log_index: Some(41),
        checkpoint_size: Some(42),
        inclusion: vec!["AAAA".into(), "BBBB".into()],
    }
}

fn checkpoint() -> EvidenceCheckpoint {
    EvidenceCheckpoint {
        origin: "pci-scope-guard/evidence/0123456789abcdef".into(),
        tree_size: 42,
        root: "AAAA".into(),
        key_id: "ed25519:abcd".into(),
        checkpoint: "pci-scope-guard/evidence/0123456789abcdef\n42\nAAAA\n\n— sig\n".into(),
        previous_size: Some(40),
        consistency: vec!["BBBB".into(), "CCCC".into()],
        signed_at: 9,
    }
}

/// The Rust type and the `.avsc` must describe the same wire format.
fn assert_no_drift<T: AvroMessage>() {
    let from_file = Schema::parse_str(T::AVSC).expect("schema file parses");
    let from_rust = T::get_schema();
    assert_eq!(
        from_rust.canonical_form(),
        from_file.canonical_form(),
        "{} drifted from schemas/{}: change both together",
        T::NAME,
        T::FILE
    );
}

#[test]
fn rust_types_match_schema_files() {
    assert_no_drift::<FlowRecord>();
    assert_no_drift::<FlowBatch>();
    assert_no_drift::<Resource>();
    assert_no_drift::<FlowEdge>();
    assert_no_drift::<ScopeDecision>();
    assert_no_drift::<Alert>();
    assert_no_drift::<ManualDecision>();
    assert_no_drift::<Evidence>();
    assert_no_drift::<EvidenceRequest>();
    assert_no_drift::<EvidenceCheckpoint>();
    assert_no_drift::<FlowCoverage>();
}

#[test]
fn schema_files_use_the_versioned_namespace() {
    for avsc in [FlowRecord::AVSC, Resource::AVSC, FlowEdge::AVSC, ScopeDecision::AVSC, Alert::AVSC, Evidence::AVSC] {
        assert!(avsc.contains(&format!("\"namespace\": \"{}\"", psg_domain::AVRO_NAMESPACE)));
        // apache-avro 0.21 keeps `{"type":"long"}` in the canonical form of a
        // primitive with a logicalType, which the specification reduces to
        // `"long"`: its fingerprints would differ from every other Avro
        // implementation. Units are in the docs instead.
        assert!(!avsc.contains("logicalType"), "logical types break fingerprint interoperability");
    }
}

fn round_trip<T: AvroMessage + PartialEq + std::fmt::Debug>(value: T) {
    let bytes = encode(&value).expect("encodes");
    assert_eq!(bytes[..2], MAGIC);
    assert_eq!(bytes[2..10], T::compiled().fingerprint);
    let back: T = decode(&bytes).expect("decodes");
    assert_eq!(back, value);
}

#[test]
fn a_flow_batch_framed_from_encoded_records_is_the_encoded_batch() {
    for records in [vec![], vec![flow_record(true)], vec![flow_record(true), flow_record(false)]] {
        let mut items = Vec::new();
        for r in &records {
            binary::encode_into(r, &mut items).unwrap();
        }
        let framed = flow_batch_from_encoded(records.len(), &items);
        assert_eq!(framed, encode(&FlowBatch { records: records.clone() }).unwrap());
        assert_eq!(decode::<FlowBatch>(&framed).unwrap().records, records);
    }
}

#[test]
fn every_message_round_trips() {
    round_trip(flow_record(true));
    round_trip(flow_record(false));
    round_trip(FlowBatch { records: vec![flow_record(true), flow_record(false)] });
    round_trip(FlowBatch { records: vec![] });
    round_trip(resource());
    round_trip(flow_edge());
    round_trip(decision());
    round_trip(alert());
    for scope in [Some(PciScope::OutOfScope), None] {
        round_trip(ManualDecision {
            resource_id: "i-1".into(),
            scope,
            justification: "decommissioned".into(),
            decided_by: "alice@example.com".into(),
            decided_at: 9,
        });
    }
    round_trip(evidence());
    round_trip(Evidence { log_index: None, ..evidence() });
    round_trip(checkpoint());
    round_trip(EvidenceCheckpoint { previous_size: None, consistency: vec![], ..checkpoint() });
    round_trip(coverage());
}

fn coverage() -> FlowCoverage {
    FlowCoverage {
        unit: "eni-1".into(),
        unit_kind: CoverageUnit::Interface,
        provider: CloudProvider::Aws,
        account_id: Some("123456789012".into()),
        vpc_id: Some("vpc-1".into()),
        subnet_id: None,
        partition: 3,
        first_seen: 1,
        last_seen: 9,
        records: 4,
        accepted: 2,
        rejected: 1,
        no_data: 1,
        skipped: 0,
        gaps: vec![CoverageGap { from: 2, to: 8 }],
    }
}

#[test]
fn fingerprint_matches_the_spec_test_vector() {
    // Avro specification: the CRC-64-AVRO fingerprint of "null" is
    // 7195948357588979594 (as a signed 64-bit integer), written little-endian.
    let fp = fingerprint(&Schema::Null);
    assert_eq!(fp, 7_195_948_357_588_979_594_i64.to_le_bytes());
}

#[test]
fn a_message_of_another_schema_is_rejected_by_name() {
    let bytes = encode(&flow_edge()).unwrap();
    let err = decode::<FlowRecord>(&bytes).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::UnknownSchema { .. }), "{msg}");
    assert!(msg.contains("FlowRecord"), "{msg}");
    assert!(msg.contains(&hex::encode(FlowEdge::compiled().fingerprint)), "{msg}");
}

#[test]
fn garbage_is_rejected_with_a_reason() {
    assert!(matches!(decode::<FlowRecord>(b"2 123 eni"), Err(Error::TooShort { .. })));
    assert!(matches!(decode::<FlowRecord>(b"{\"records\": []} padding"), Err(Error::BadMagic { .. })));
    let mut bytes = encode(&flow_edge()).unwrap();
    bytes.truncate(bytes.len() - 3);
    assert!(matches!(decode::<FlowEdge>(&bytes), Err(Error::Decode { .. })));
    let mut bytes = encode(&flow_edge()).unwrap();
    bytes.push(0);
    assert!(matches!(decode::<FlowEdge>(&bytes), Err(Error::Decode { .. })));
}

/// Our encoder writes apache-avro's bytes (up to the order of map entries,
/// which neither fixes), and each reads the other's output back unchanged.
fn agrees_with_apache_avro<T: AvroMessage + PartialEq + std::fmt::Debug>(value: &T, maps_ordered: bool) {
    let ours = encode(value).unwrap();
    let reference = reference_datum(value).unwrap();
    if maps_ordered {
        assert_eq!(&ours[HEADER_LEN..], &reference[..], "{} bytes differ from apache-avro's", T::NAME);
    } else {
        assert_eq!(ours.len() - HEADER_LEN, reference.len(), "{} sizes differ from apache-avro's", T::NAME);
    }
    let back: T = reference_decode(&ours[HEADER_LEN..]).unwrap();
    assert_eq!(&back, value, "apache-avro reads ours");
    let mut framed = T::compiled().header.to_vec();
    framed.extend_from_slice(&reference);
    let back: T = decode(&framed).unwrap();
    assert_eq!(&back, value, "we read apache-avro's");
}

#[test]
fn the_fast_codec_is_byte_identical_to_apache_avro() {
    agrees_with_apache_avro(&flow_record(true), true);
    agrees_with_apache_avro(&flow_record(false), true);
    agrees_with_apache_avro(&FlowBatch { records: vec![flow_record(true), flow_record(false)] }, true);
    agrees_with_apache_avro(&resource(), true);
    agrees_with_apache_avro(&flow_edge(), true);
    agrees_with_apache_avro(&coverage(), true);
    agrees_with_apache_avro(&decision(), true);
    agrees_with_apache_avro(&alert(), true);
    agrees_with_apache_avro(&evidence(), true);
    agrees_with_apache_avro(&checkpoint(), true);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        "\\PC{0,24}"
    }

    prop_compose! {
        fn arb_source()(topic in text(), partition in any::<i32>(), offset in any::<i64>(), line in any::<i32>()) -> SourceRef {
            SourceRef { topic: topic.into(), partition, offset, line }
        }
    }

    prop_compose! {
        fn arb_flow()(
            strings in proptest::collection::vec(proptest::option::of(text()), 11),
            ints in proptest::collection::vec(proptest::option::of(any::<i32>()), 6),
            longs in proptest::collection::vec(proptest::option::of(any::<i64>()), 4),
            times in (any::<i64>(), any::<i64>()),
            enums in (0usize..4, 0usize..6, proptest::option::of(0usize..2), 0usize..3, proptest::option::of(0usize..2)),
            extra in proptest::collection::hash_map(text(), text(), 0..4),
            source in arb_source(),
        ) -> FlowRecord {
            FlowRecord {
                provider: CloudProvider::ALL[enums.0],
                format: FlowFormat::ALL[enums.1],
                format_version: ints[0],
                account_id: strings[0].clone().map(Text::from),
                interface_id: strings[1].clone().map(Text::from),
                vpc_id: strings[2].clone().map(Text::from),
                subnet_id: strings[3].clone().map(Text::from),
                instance_id: strings[4].clone().map(Text::from),
                region: strings[5].clone().map(Text::from),
                src_addr: strings[6].clone().map(Text::from),
                dst_addr: strings[7].clone().map(Text::from),
                pkt_src_addr: strings[8].clone().map(Text::from),
                pkt_dst_addr: strings[9].clone().map(Text::from),
                src_port: ints[1],
                dst_port: ints[2],
                protocol: ints[3],
                packets: longs[0],
                bytes: longs[1],
                reverse_packets: longs[2],
                reverse_bytes: longs[3],
                start_time: times.0,
                end_time: times.1,
                action: enums.2.map(|i| FlowAction::ALL[i]),
                log_status: LogStatus::ALL[enums.3],
                flow_direction: enums.4.map(|i| FlowDirection::ALL[i]),
                tcp_flags: ints[4],
                traffic_path: ints[5],
                reporter: strings[10].clone().map(Text::from),
                extra,
                source,
            }
        }
    }

    prop_compose! {
        fn arb_resource()(
            ids in proptest::collection::vec(text(), 2),
            opts in proptest::collection::vec(proptest::option::of(text()), 9),
            lists in proptest::collection::vec(proptest::collection::vec(text(), 0..3), 4),
            tags in proptest::collection::hash_map(text(), text(), 0..4),
            kinds in (0usize..4, 0usize..21),
            observed_at in any::<i64>(),
            deleted in any::<bool>(),
            source in arb_source(),
        ) -> Resource {
            Resource {
                id: ids[0].clone(),
                resource_id: ids[1].clone(),
                provider: CloudProvider::ALL[kinds.0],
                resource_type: ResourceType::ALL[kinds.1],
                resource_arn: opts[0].clone(),
                resource_name: opts[1].clone(),
                account_id: opts[2].clone(),
                region: opts[3].clone(),
                availability_zone: opts[4].clone(),
                vpc_id: opts[5].clone(),
                subnet_id: opts[6].clone(),
                private_ips: lists[0].clone(),
                public_ips: lists[1].clone(),
                interface_ids: lists[2].clone(),
                security_groups: lists[3].clone(),
                tags,
                observed_at,
                deleted,
                metadata_json: opts[7].clone(),
                source,
            }
        }
    }

    proptest! {
        #[test]
        fn flow_records_agree(r in arb_flow()) {
            let ordered = r.extra.len() <= 1;
            agrees_with_apache_avro(&r, ordered);
        }

        #[test]
        fn resources_agree(r in arb_resource()) {
            let ordered = r.tags.len() <= 1;
            agrees_with_apache_avro(&r, ordered);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut framed = FlowRecord::compiled().header.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode::<FlowRecord>(&framed);
            let mut framed = Resource::compiled().header.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode::<Resource>(&framed);
        }
    }
}

/// A rolling upgrade: data written with an earlier schema version listed as
/// readable decodes with this one (apache-avro, resolving the old writer
/// schema to the current reader schema, agrees), and the earlier
/// fingerprint is accepted on the wire.
#[test]
fn earlier_schema_versions_stay_readable() {
    fn check<T: AvroMessage + PartialEq + std::fmt::Debug>(value: &T) {
        for text in T::EARLIER {
            let old = apache_avro::Schema::parse_str(text).expect("earlier schema parses");
            // The value as the old version wrote it: without the fields it lacked.
            let mut v = apache_avro::to_value(value).expect("value");
            if let (apache_avro::types::Value::Record(fields), apache_avro::Schema::Record(r)) = (&mut v, &old) {
                fields.retain(|(name, _)| r.fields.iter().any(|f| &f.name == name));
            }
            let datum = apache_avro::to_avro_datum(&old, v).expect("old write");
            let resolved = apache_avro::from_avro_datum(&old, &mut datum.as_slice(), Some(&T::compiled().schema))
                .expect("the current schema resolves the old one");
            assert_eq!(&apache_avro::from_value::<T>(&resolved).expect("value"), value);
            let mut bytes = vec![0xC3, 0x01];
            bytes.extend_from_slice(&crate::fingerprint(&old));
            bytes.extend_from_slice(&datum);
            assert_eq!(&crate::decode::<T>(&bytes).expect("accepted on the wire"), value, "{}", T::NAME);
        }
    }
    assert!(!FlowEdge::EARLIER.is_empty());
    check(&flow_edge());
    check(&decision());
    check(&alert());
    check(&resource());
    // Records from before the evidence log carry no log index, records
    // signed one by one no checkpoint or proof.
    check(&Evidence { log_index: None, checkpoint_size: None, inclusion: vec![], ..evidence() });
}
