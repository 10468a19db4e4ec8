use std::io::Write;
use std::sync::Arc;

use psg_domain::{FlowBatch, FlowRecord, Resource};
use psg_kafka_runtime::InputKind;

use super::*;

fn msg(topic: &str, offset: i64, payload: &[u8], headers: &[(&str, &str)]) -> InMessage {
    InMessage {
        kind: InputKind::Stream,
        topic: Arc::from(topic),
        partition: 1,
        offset,
        key: Some(b"k".to_vec()),
        payload: Some(payload.to_vec()),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
        timestamp_ms: None,
    }
}

fn ingest() -> Ingest {
    Ingest::new(&Config::default(), None).unwrap()
}

fn flows(out: &Output) -> Vec<FlowRecord> {
    let mut recs: Vec<FlowRecord> = out
        .records
        .iter()
        .filter(|r| r.topic == "flows.normalized")
        .flat_map(|r| psg_avro_codec::decode::<FlowBatch>(&r.payload).unwrap().records)
        .collect();
    recs.sort_by_key(|r| r.source.line);
    recs
}

const GOOD: &str = "2 123456789010 eni-1 10.0.0.5 10.0.0.9 40000 5432 6 10 840 1418530010 1418530070 ACCEPT OK";

#[test]
fn one_bad_line_dead_letters_only_itself() {
    let payload = format!("{GOOD}\n2 1 eni-1 10.0.0.5 10.0.0.9 1 99999 6 1 1 1 2 ACCEPT OK\n{GOOD}\n");
    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 42, payload.as_bytes(), &[]), &mut out);
    assert_eq!(flows(&out).len(), 2);
    assert_eq!(out.dead_letters.len(), 1);
    let dl = &out.dead_letters[0];
    assert_eq!(dl.line, Some(2));
    assert_eq!(dl.source_offset, 42);
    assert_eq!(dl.source_topic, "flowlogs.raw");
    assert_eq!(dl.kind, "parse");
    assert!(dl.reason.contains("dstport"), "{}", dl.reason);
    assert_eq!(dl.payload, b"2 1 eni-1 10.0.0.5 10.0.0.9 1 99999 6 1 1 1 2 ACCEPT OK");
    let recs = flows(&out);
    assert_eq!(recs[0].source.line, 1);
    assert_eq!(recs[1].source.line, 3);
    assert_eq!(recs[0].source.offset, 42);
}

#[test]
fn layouts_come_from_the_header_then_a_header_line() {
    let custom = "version srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let line = "5 10.0.0.1 10.0.0.2 1 443 6 3 300 1418530010 1418530070 REJECT OK";
    // header line in the payload (S3 files)
    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 1, format!("{custom}\n{line}\n").as_bytes(), &[]), &mut out);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(flows(&out)[0].dst_port, Some(443));
    // message header
    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 1, line.as_bytes(), &[(AWS_FORMAT_HEADER, custom)]), &mut out);
    assert_eq!(flows(&out)[0].action, Some(psg_domain::FlowAction::Reject));
    // a header whose records cannot be attributed says why
    let mut out = Output::default();
    ingest()
        .handle(&msg("flowlogs.raw", 1, line.as_bytes(), &[(AWS_FORMAT_HEADER, "version vpcid start end")]), &mut out);
    assert!(out.dead_letters[0].reason.contains("cannot be attributed"), "{:?}", out.dead_letters);
    // a field nobody knows yet is kept, under its name
    let mut out = Output::default();
    let header = format!("{custom} vpcid");
    ingest()
        .handle(&msg("flowlogs.raw", 1, format!("{line} vpc-7").as_bytes(), &[(AWS_FORMAT_HEADER, &header)]), &mut out);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(flows(&out)[0].extra.get("vpcid").map(String::as_str), Some("vpc-7"));
}

/// A layout without start/end: records take the message's time, the
/// object time header first, else the Kafka timestamp.
#[test]
fn records_without_time_take_the_message_time() {
    let header = "version interface-id srcaddr dstaddr";
    let line = "3 eni-1 10.0.0.1 10.0.0.2";
    let mut m = msg("flowlogs.raw", 1, line.as_bytes(), &[(AWS_FORMAT_HEADER, header)]);
    let mut out = Output::default();
    ingest().handle(&m, &mut out);
    assert!(out.dead_letters[0].reason.contains("cannot be placed in time"), "{:?}", out.dead_letters);
    m.timestamp_ms = Some(1_700_000_000_123);
    let mut out = Output::default();
    ingest().handle(&m, &mut out);
    let f = &flows(&out)[0];
    assert_eq!(
        (f.end_time, f.extra.get("time_source").map(String::as_str)),
        (1_700_000_000_123_000, Some("kafka-timestamp"))
    );
    m.headers.push((OBJECT_TIME_HEADER.to_owned(), b"2026-01-01T00:00:00Z".to_vec()));
    let mut out = Output::default();
    ingest().handle(&m, &mut out);
    let f = &flows(&out)[0];
    assert_eq!(
        (f.end_time, f.extra.get("time_source").map(String::as_str)),
        (1_767_225_600_000_000, Some("object-time"))
    );
}

#[test]
fn gzip_payloads_are_read_and_bombs_refused() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(format!("{GOOD}\n{GOOD}\n").as_bytes()).unwrap();
    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 1, &e.finish().unwrap(), &[]), &mut out);
    assert_eq!(flows(&out).len(), 2);

    let mut cfg = Config::default();
    cfg.ingest.max_message_bytes = 1000;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![b' '; 1_000_000]).unwrap();
    let mut out = Output::default();
    Ingest::new(&cfg, None).unwrap().handle(&msg("flowlogs.raw", 1, &e.finish().unwrap(), &[]), &mut out);
    assert!(out.records.is_empty());
    assert_eq!(out.dead_letters[0].kind, "too-large");
}

/// CloudWatch Logs subscription data arrives gzipped (Firehose, Kinesis):
/// decompressed, then read event by event.
#[test]
fn gzipped_cloudwatch_subscription_data_is_read() {
    let data = format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"flows","logStream":"eni-1-all","subscriptionFilters":["f"],"logEvents":[{{"id":"1","timestamp":1418530070000,"message":"{GOOD}"}},{{"id":"2","timestamp":1418530070000,"message":"{GOOD}"}}]}}"#
    );
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data.as_bytes()).unwrap();
    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 1, &e.finish().unwrap(), &[]), &mut out);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    let recs = flows(&out);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].source.line, 2);
    assert_eq!(recs[0].extra.get("log_group").map(String::as_str), Some("flows"));
}

#[test]
fn json_flow_logs_come_out_and_bad_tuples_are_dead_lettered_alone() {
    let blob = r#"{"records":[{"category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/RG","properties":{"Version":2,"flows":[{"rule":"r","flows":[{"mac":"000D3AF87856","flowTuples":["1542110406,10.5.16.4,198.51.100.225,59929,443,T,O,A,E,15,8489,12,7054","1542110406,10.5.16.4,198.51.100.225,59929,443,T,O,A,Q,15,8489,12,7054"]}]}]}}]}"#;
    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 7, blob.as_bytes(), &[]), &mut out);
    let recs = flows(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].format, psg_domain::FlowFormat::AzureNsgV2);
    assert_eq!(recs[0].account_id.as_deref(), Some("sub-1"));
    assert_eq!(
        out.records[0].key.as_deref(),
        Some(&b"flowlogs.raw/1/7"[..]),
        "batches are keyed by their source message"
    );
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].line, Some(2));
    assert_eq!(out.dead_letters[0].payload, b"1542110406,10.5.16.4,198.51.100.225,59929,443,T,O,A,Q,15,8489,12,7054");

    let mut out = Output::default();
    ingest().handle(&msg("flowlogs.raw", 1, br#"{"Records": []}"#, &[]), &mut out);
    assert_eq!(out.dead_letters[0].kind, "unsupported");
    assert!(out.dead_letters[0].reason.contains("Azure flow-log blob"), "{}", out.dead_letters[0].reason);
}

#[test]
fn inventory_lines_and_arrays() {
    let a = r#"{"provider":"aws","resource_type":"rds_instance","resource_id":"db-1","private_ips":["10.0.0.9"],"tags":{"pci-scope":"cde"},"observed_at":"2026-01-01T00:00:00Z"}"#;
    let b = r#"{"provider":"aws","resource_type":"ec2_instance","resource_id":"i-1","private_ips":["10.0.0.5"],"observed_at":"2026-01-01T00:00:00Z"}"#;
    let bad = r#"{"provider":"aws","resource_type":"ec2_instance","observed_at":"2026-01-01T00:00:00Z"}"#;
    let mut out = Output::default();
    ingest().handle(&msg("inventory.raw", 3, format!("{a}\n{bad}\n{b}\n").as_bytes(), &[]), &mut out);
    let res: Vec<Resource> = out.records.iter().map(|r| psg_avro_codec::decode(&r.payload).unwrap()).collect();
    assert_eq!(res.iter().map(|r| r.resource_id.as_str()).collect::<Vec<_>>(), ["db-1", "i-1"]);
    assert_eq!(out.records[0].key.as_deref(), Some(&b"db-1"[..]));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].line, Some(2));
    assert!(out.dead_letters[0].reason.contains("resource_id"), "{}", out.dead_letters[0].reason);

    let mut out = Output::default();
    ingest().handle(&msg("inventory.raw", 4, format!("[{a},\n {b}]").as_bytes(), &[]), &mut out);
    assert_eq!(out.records.len(), 2);
}

#[test]
fn both_reports_of_a_flow_meet_in_one_partition() {
    // The same flow seen at both interfaces, in two messages.
    let a = "2 1 eni-a 10.0.0.5 10.0.0.9 40000 5432 6 10 840 1418530010 1418530070 ACCEPT OK";
    let b = "2 1 eni-b 10.0.0.5 10.0.0.9 40000 5432 6 10 840 1418530010 1418530070 ACCEPT OK";
    let reverse = "2 1 eni-b 10.0.0.9 10.0.0.5 5432 40000 6 10 840 1418530010 1418530070 ACCEPT OK";
    let mut out = Output::default();
    let mut ingest = ingest();
    ingest.set_output_partitions(7);
    ingest.handle(&msg("flowlogs.raw", 1, a.as_bytes(), &[]), &mut out);
    ingest.handle(&msg("flowlogs.raw", 2, b.as_bytes(), &[]), &mut out);
    ingest.handle(&msg("flowlogs.raw", 3, reverse.as_bytes(), &[]), &mut out);
    let partitions: Vec<Option<i32>> = out.records.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 3);
    assert!(partitions.iter().all(|p| *p == partitions[0] && p.is_some()), "{partitions:?}");
}

#[test]
fn a_message_becomes_one_batch_per_partition() {
    let payload: String = (0..200)
        .map(|i| {
            format!("2 1 eni-a 10.0.{}.{} 10.1.0.9 40000 443 6 1 1 1418530010 1418530070 ACCEPT OK\n", i / 256, i % 256)
        })
        .collect();
    let mut ingest = ingest();
    ingest.set_output_partitions(3);
    let mut out = Output::default();
    ingest.handle(&msg("flowlogs.raw", 1, payload.as_bytes(), &[]), &mut out);
    assert!(out.records.len() <= 3, "{} messages", out.records.len());
    assert_eq!(flows(&out).len(), 200);
}
