//! Hostile input through the real ingest processor (`Processor::process` on
//! a batch of `InMessage`s, as the service runs it, without a database):
//! oversized messages and lines, invalid UTF-8, a gzip bomb, deeply nested
//! and huge JSON, an Azure blob of a million tuples, floods of bad lines and
//! absurd numbers. Each is dead-lettered with a reason that names the
//! problem, never takes the good records of its message with it, and never
//! crashes. Peak memory is measured by `cargo bench --bench hostile_input`.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use psg_config::Config;
use psg_domain::{FlowBatch, FlowRecord, Resource};
use psg_ingest::Ingest;
use psg_ingest::service::{MAX_DEAD_LETTERS_PER_MESSAGE, MAX_FLOW_BATCH_BYTES};
use psg_kafka_runtime::{DeadLetter, InMessage, InputKind, Output, Processor};

const MIB: usize = 1 << 20;
/// The default `ingest.max-message-bytes`.
const DEFAULT_LIMIT: usize = 64 * MIB;
const RANGE: &str = "outside the accepted range of flow times (1970-01-01 to 2099-12-31)";
const MILLIS: &str = "outside the accepted range of flow times (2000-01-01 to 2099-12-31 for Unix milliseconds)";

/// A good AWS line (default format).
const GOOD: &str = "2 123456789010 eni-1 10.0.0.5 10.0.0.9 40000 5432 6 10 840 1418530010 1418530070 ACCEPT OK";

/// Runs `Processor::process` to completion (ingest's never awaits anything
/// that can be pending, so no runtime is needed).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn msg(topic: &str, offset: i64, payload: Vec<u8>) -> InMessage {
    InMessage {
        kind: InputKind::Stream,
        topic: Arc::from(topic),
        partition: 0,
        offset,
        key: Some(b"k".to_vec()),
        payload: Some(payload),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

fn ingest_with(limit: usize) -> Ingest {
    let mut cfg = Config::default();
    cfg.ingest.max_message_bytes = limit;
    let mut ingest = Ingest::new(&cfg, None).expect("ingest");
    ingest.set_output_partitions(6);
    ingest
}

/// One message through the processor, as one batch.
fn process(ingest: &mut Ingest, m: InMessage) -> Output {
    block_on(ingest.process(std::slice::from_ref(&m))).expect("ingest never fails a batch on input")
}

fn flows(payload: impl Into<Vec<u8>>) -> Output {
    process(&mut ingest_with(DEFAULT_LIMIT), msg("flowlogs.raw", 7, payload.into()))
}

fn inventory(payload: impl Into<Vec<u8>>) -> Output {
    process(&mut ingest_with(DEFAULT_LIMIT), msg("inventory.raw", 7, payload.into()))
}

/// The flow records of an output, in input order; every batch is checked
/// to be within the size bound.
fn records(out: &Output) -> Vec<FlowRecord> {
    let mut recs = Vec::new();
    for r in out.records.iter().filter(|r| r.topic == "flows.normalized") {
        assert!(r.payload.len() <= MAX_FLOW_BATCH_BYTES, "a batch of {} bytes", r.payload.len());
        let batch: FlowBatch = psg_avro_codec::decode(&r.payload).expect("a FlowBatch");
        recs.extend(batch.records);
    }
    recs.sort_by_key(|r| r.source.line);
    recs
}

fn lines_of(out: &Output) -> Vec<i32> {
    records(out).iter().map(|r| r.source.line).collect()
}

/// The one dead letter of `out`.
fn only(out: &Output) -> &DeadLetter {
    assert_eq!(
        out.dead_letters.len(),
        1,
        "{:#?}",
        out.dead_letters.iter().map(|d| (&d.line, &d.reason)).collect::<Vec<_>>()
    );
    &out.dead_letters[0]
}

/// (line, kind, reason) of every dead letter.
fn reasons(out: &Output) -> Vec<(Option<u32>, &'static str, String)> {
    out.dead_letters.iter().map(|d| (d.line, d.kind, d.reason.clone())).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

// --- message size -----------------------------------------------------------

#[test]
fn a_message_over_the_configured_limit_is_refused_whole() {
    let payload = format!("{GOOD}\n").repeat(20);
    let limit = payload.len() - 1;
    let out = process(&mut ingest_with(limit), msg("flowlogs.raw", 1, payload.clone().into_bytes()));
    assert!(out.records.is_empty());
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (None, "too-large"));
    assert_eq!(
        dl.reason,
        format!("message is {} bytes, more than the limit of {limit} (ingest.max-message-bytes)", payload.len())
    );
    assert_eq!(dl.payload, payload.as_bytes(), "the dead letter keeps the original bytes");
    // The same on the inventory topic.
    let out = process(&mut ingest_with(10), msg("inventory.raw", 1, b"[{}, {}, {}]".to_vec()));
    assert_eq!(only(&out).reason, "message is 12 bytes, more than the limit of 10 (ingest.max-message-bytes)");
}

#[test]
fn a_message_over_the_default_limit_is_refused_whole() {
    let mut payload = format!("{GOOD}\n").repeat(DEFAULT_LIMIT / (GOOD.len() + 1) + 1).into_bytes();
    payload.truncate(DEFAULT_LIMIT + 1);
    let out = flows(payload);
    assert!(out.records.is_empty());
    assert_eq!(
        only(&out).reason,
        "message is 67108865 bytes, more than the limit of 67108864 (ingest.max-message-bytes)"
    );
}

// --- long lines ---------------------------------------------------------------

#[test]
fn a_line_over_one_mib_is_refused_alone_and_its_dead_letter_is_short() {
    let long = "x".repeat(2 * MIB);
    let out = flows(format!("{GOOD}\n{long}\n{GOOD}\n"));
    assert_eq!(lines_of(&out), [1, 3]);
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (Some(2), "too-large"));
    assert_eq!(
        dl.reason,
        "line is 2097152 bytes, longer than the limit of 1048576 bytes per line (the dead letter holds its first 4096 bytes)"
    );
    assert_eq!(dl.payload.len(), 4096);
    // A line of exactly the limit is read (and refused for what it is).
    let at_limit = format!("2 {}", "9".repeat(MIB - 2));
    let out = flows(format!("{at_limit}\n{GOOD}"));
    assert_eq!(lines_of(&out), [2]);
    assert_eq!(only(&out).reason, "line has 2 fields, the format has 14");
}

#[test]
fn a_60_mib_line_in_a_message_within_the_default_limit_is_refused_not_buffered() {
    let mut payload = format!("{GOOD}\n").into_bytes();
    payload.resize(payload.len() + 60 * MIB, b'7');
    payload.extend_from_slice(format!("\n{GOOD}\n").as_bytes());
    let out = flows(payload);
    assert_eq!(lines_of(&out), [1, 3]);
    let dl = only(&out);
    assert_eq!(dl.line, Some(2));
    assert!(
        dl.reason.starts_with("line is 62914560 bytes, longer than the limit of 1048576 bytes per line"),
        "{}",
        dl.reason
    );
    assert_eq!(dl.payload.len(), 4096);
}

#[test]
fn long_lines_of_gcp_entries_and_inventory_objects_are_refused_alone() {
    let entry = gcp_entry(r#""dest_port":443"#);
    let long = format!(r#"{{"jsonPayload":{{"pad":"{}"}}}}"#, "a".repeat(MIB + 1));
    let out = flows(format!("{entry}\n{long}\n{entry}\n"));
    assert_eq!(lines_of(&out), [1, 3]);
    assert_eq!(
        only(&out).reason,
        format!(
            "line is {} bytes, longer than the limit of 1048576 bytes per line (the dead letter holds its first 4096 bytes)",
            long.len()
        )
    );

    let good = native("i-1");
    let long = native(&"i".repeat(MIB));
    let out = inventory(format!("{good}\n{long}\n{}\n", native("i-2")));
    assert_eq!(resources(&out), ["i-1", "i-2"]);
    assert_eq!((only(&out).line, only(&out).kind), (Some(2), "too-large"));
    // One big object alone (a snapshot on one line) is the message, not a line.
    let big = format!(
        r#"{{"provider":"aws","resource_type":"ec2_instance","resource_id":"i-big","observed_at":"2026-01-01T00:00:00Z","metadata":{{"pad":"{}"}}}}"#,
        "p".repeat(2 * MIB)
    );
    let out = inventory(big);
    assert!(out.dead_letters.is_empty(), "{:?}", reasons(&out));
    assert_eq!(resources(&out), ["i-big"]);
}

// --- invalid UTF-8 ------------------------------------------------------------

#[test]
fn invalid_utf8_in_an_aws_line_is_refused_alone() {
    let mut payload = format!("{GOOD}\n").into_bytes();
    payload.extend_from_slice(
        b"2 123456789010 eni-\xff\xfe 10.0.0.5 10.0.0.9 1 2 6 1 1 1418530010 1418530070 ACCEPT OK\n",
    );
    payload.extend_from_slice(format!("{GOOD}\n").as_bytes());
    let out = flows(payload);
    assert_eq!(lines_of(&out), [1, 3]);
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (Some(2), "encoding"));
    assert_eq!(dl.reason, "line is not valid UTF-8 (byte 0xff at offset 19)");
}

#[test]
fn invalid_utf8_in_json_is_refused_with_the_json_error() {
    // A GCP entry per line: the bad one alone.
    let good = gcp_entry(r#""dest_port":443"#);
    let mut bad = gcp_entry(r#""dest_port":443"#).replace(r#""vm_name":"v""#, r#""vm_name":"cafX""#).into_bytes();
    let at = find(&bad, b"X");
    bad[at] = 0xe9; // Latin-1, not UTF-8
    let mut payload = format!("{good}\n").into_bytes();
    payload.extend_from_slice(&bad);
    payload.extend_from_slice(format!("\n{good}\n").as_bytes());
    let out = flows(payload);
    assert_eq!(lines_of(&out), [1, 3]);
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (Some(2), "parse"));
    assert!(
        dl.reason.starts_with(
            "GCP log entry: invalid JSON: a string is not valid UTF-8 (invalid unicode code point at line 1 column"
        ),
        "{}",
        dl.reason
    );
    // Bytes in a field ingest does not read are skipped, not checked: the
    // record itself is valid.
    let mut skipped = gcp_entry(r#""dest_port":443,"note":"cafX""#).into_bytes();
    let at = find(&skipped, b"X");
    skipped[at] = 0xe9;
    assert_eq!(lines_of(&flows(skipped)), [1]);

    // An Azure blob is one document: refused whole.
    let mut blob = nsg_blob(&["1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4"]).into_bytes();
    let at = find(&blob, b"AllowVnet");
    blob.insert(at, 0xc3); // a UTF-8 lead byte without its continuation
    let out = flows(blob);
    assert!(out.records.is_empty());
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (None, "parse"));
    assert!(
        dl.reason.starts_with("Azure flow-log blob: invalid JSON: a string is not valid UTF-8 (invalid unicode code point at line 1 column"),
        "{}",
        dl.reason
    );

    // An inventory line alone.
    let mut bad = native("i-X").into_bytes();
    let at = find(&bad, b"X");
    bad[at] = 0xff;
    let mut payload = format!("{}\n", native("i-1")).into_bytes();
    payload.extend_from_slice(&bad);
    payload.extend_from_slice(format!("\n{}\n", native("i-2")).as_bytes());
    let out = inventory(payload);
    assert_eq!(resources(&out), ["i-1", "i-2"]);
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (Some(2), "parse"));
    assert!(
        dl.reason.starts_with("invalid JSON: a string is not valid UTF-8 (invalid unicode code point at line 1 column"),
        "{}",
        dl.reason
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("needle")
}

// --- gzip ---------------------------------------------------------------------

/// A valid gzip file of `mib` MiB of zeros, built from one compressed MiB
/// repeated: after a sync flush the deflate blocks end byte-aligned, and a
/// run of zeros refers only to earlier zeros, so the same blocks can follow
/// themselves. The test never compresses a GiB.
fn gzip_zeros(mib: u32) -> Vec<u8> {
    const GZIP_HEADER: usize = 10;
    let zeros = vec![0u8; MIB];
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&zeros).expect("gzip");
    e.flush().expect("gzip");
    let mut gz = e.get_ref().clone();
    let blocks = gz[GZIP_HEADER..].to_vec();
    let mut one = flate2::Crc::new();
    one.update(&zeros);
    let mut total = flate2::Crc::new();
    total.update(&zeros);
    for _ in 1..mib {
        gz.extend_from_slice(&blocks);
        total.combine(&one);
    }
    // A final empty stored block, then CRC-32 and ISIZE (the size mod 2^32).
    gz.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    gz.extend_from_slice(&total.sum().to_le_bytes());
    gz.extend_from_slice(&((u64::from(mib) * MIB as u64) as u32).to_le_bytes());
    gz
}

#[test]
fn a_gzip_bomb_is_refused_while_decompressing() {
    // The bomb is a real gzip file: a small one expands to its zeros.
    let small = gzip_zeros(3);
    let mut expanded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&small[..]), &mut expanded).expect("valid gzip");
    assert_eq!(expanded.len(), 3 * MIB);
    assert!(expanded.iter().all(|b| *b == 0));

    let bomb = gzip_zeros(1024); // 1 GiB of zeros
    assert!(bomb.len() < 2 * MIB, "{} bytes", bomb.len());
    let started = std::time::Instant::now();
    let out = flows(bomb.clone());
    assert!(out.records.is_empty());
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (None, "too-large"));
    assert_eq!(
        dl.reason,
        "decompressed size exceeds 67108864 bytes (ingest.max-message-bytes): gzip payload refused as a possible decompression bomb, expansion stopped at the limit"
    );
    assert_eq!(dl.payload, bomb, "the dead letter is the compressed original");
    eprintln!("1 GiB gzip bomb refused in {:?}", started.elapsed());

    // A small limit stops it as early.
    let out = process(&mut ingest_with(MIB), msg("inventory.raw", 1, gzip_zeros(16)));
    assert!(only(&out).reason.starts_with("decompressed size exceeds 1048576 bytes"), "{}", only(&out).reason);
    // Good gzip still works, and a compressed payload over the limit is not even expanded.
    let out = flows(gzip(format!("{GOOD}\n{GOOD}\n").as_bytes()));
    assert_eq!(lines_of(&out), [1, 2]);
    let mut noise = Vec::with_capacity(10_000);
    let mut x: u32 = 1;
    for _ in 0..10_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        noise.push((x >> 16) as u8);
    }
    let z = gzip(&noise);
    assert!(z.len() > 5000);
    let out = process(&mut ingest_with(5000), msg("flowlogs.raw", 1, z.clone()));
    assert_eq!(
        only(&out).reason,
        format!("message is {} bytes, more than the limit of 5000 (ingest.max-message-bytes)", z.len())
    );
}

// --- nesting and size of JSON -------------------------------------------------

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let open = "[".repeat(100_000);
    let closed = format!("{open}{}", "]".repeat(100_000));
    let first = |out: &Output| only(out).reason.clone();

    // Flow logs: the parsers want objects and strings where the nesting is,
    // and skip what they do not read without recursing.
    assert!(first(&flows(open.clone())).starts_with("a JSON value that is not an object (invalid type: sequence"));
    assert_eq!(
        first(&flows(format!(r#"{{"records":{open}"#))),
        "invalid JSON: EOF while parsing a list at line 1 column 100011"
    );
    assert_eq!(
        first(&flows(format!(r#"{{"records":{closed}}}"#))),
        "Azure flow-log blob: invalid type: sequence, expected a string at line 1 column 13"
    );
    assert_eq!(
        first(&flows(format!(r#"{{"jsonPayload":{{"connection":{{"src_ip":{closed}}}}}}}"#))),
        "GCP log entry: invalid type: sequence, expected a string at line 1 column 39"
    );
    // Deep nesting in a field nobody reads costs nothing.
    let blob = nsg_blob(&["1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4"]).replacen(
        r#""category""#,
        &format!(r#""deep":{closed},"category""#),
        1,
    );
    let out = flows(blob);
    assert!(out.dead_letters.is_empty(), "{:?}", reasons(&out));
    assert_eq!(lines_of(&out), [1]);

    // Inventory builds JSON values: nesting stops at serde_json's limit.
    let nested = "invalid JSON: nested more than 128 levels deep (recursion limit exceeded at line 1 column";
    let out = inventory(open.clone());
    assert!(first(&out).starts_with(&format!("inventory array: {nested}")), "{}", first(&out));
    let out = inventory(format!(r#"{{"metadata":{closed}}}"#));
    assert_eq!(only(&out).kind, "parse");
    assert!(first(&out).starts_with(nested), "{}", first(&out));
    let out = inventory(format!("{}\n{{\"a\":{closed}}}\n{}", native("i-1"), native("i-2")));
    assert_eq!(resources(&out), ["i-1", "i-2"]);
    assert_eq!(only(&out).line, Some(2));
    assert!(first(&out).starts_with(nested), "{}", first(&out));
}

#[test]
fn fifty_megabytes_of_json_junk_are_refused_cheaply() {
    let junk = |open: &str, close: &str| {
        let mut s = String::with_capacity(50 * 1_000_000 + 32);
        s.push_str(open);
        while s.len() < 50_000_000 {
            s.push_str("123456789,");
        }
        s.push('0');
        s.push_str(close);
        s
    };
    let out = flows(junk("[", "]"));
    assert!(
        only(&out).reason.starts_with("a JSON value that is not an object (invalid type: sequence"),
        "{}",
        only(&out).reason
    );
    let out = flows(junk(r#"{"records":["#, "]}"));
    assert_eq!(
        only(&out).reason,
        "Azure flow-log blob: invalid type: integer `123456789`, expected struct Record at line 1 column 21"
    );
    let out = flows(junk(r#"{"jsonPayload":{"connection":{"src_port":["#, "]}}}"));
    assert!(only(&out).reason.starts_with("GCP log entry: invalid type: sequence"), "{}", only(&out).reason);
}

#[test]
fn an_inventory_array_of_junk_costs_a_thousand_dead_letters_not_millions() {
    // 5 MB of non-objects: every item refused, the first thousand alone.
    let mut s = String::from("[");
    s.push_str(&native("i-first"));
    while s.len() < 5_000_000 {
        s.push_str(",1");
    }
    s.push(',');
    s.push_str(&native("i-last"));
    s.push(']');
    let items = s.matches(",1").count();
    let out = inventory(s);
    assert_eq!(resources(&out), ["i-first", "i-last"], "good items of the array still go through");
    assert_eq!(out.dead_letters.len(), MAX_DEAD_LETTERS_PER_MESSAGE + 1);
    assert_eq!(out.dead_letters[0].reason, "an inventory record must be a JSON object");
    assert_eq!(out.dead_letters[0].line, Some(2));
    let last = out.dead_letters.last().expect("the rest");
    assert_eq!((last.line, last.kind), (Some(1002), "too-many-errors"));
    assert_eq!(
        last.reason,
        format!(
            "{} more records of this message were refused after the first 1000 (dead-lettered one by one): they are this dead letter, one per line, from record 1002 on; the first of them: an inventory record must be a JSON object",
            items - 1000
        )
    );
    // The other refused items, one per line: newline-delimited JSON again.
    assert_eq!(last.payload, vec!["1"; items - 1000].join("\n").as_bytes());
}

#[test]
fn an_inventory_object_of_too_many_values_is_refused_while_it_is_read() {
    let mut s = String::from(r#"{"data":["#);
    for _ in 0..4_000_000 {
        s.push_str("0,");
    }
    s.push_str("0]}");
    let out = inventory(s);
    let dl = only(&out);
    assert_eq!((dl.line, dl.kind), (None, "too-large"));
    assert!(
        dl.reason
            .starts_with("inventory document: more than 4000000 JSON values in one inventory object at line 1 column"),
        "{}",
        dl.reason
    );
}

// --- Azure: a million tuples ----------------------------------------------------

fn nsg_blob(tuples: &[&str]) -> String {
    format!(
        r#"{{"records":[{{"time":"2018-11-13T12:00:35.3899262Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG","properties":{{"Version":2,"flows":[{{"rule":"DefaultRule_AllowVnetInBound","flows":[{{"mac":"000D3AF87856","flowTuples":{}}}]}}]}}}}]}}"#,
        serde_json::json!(tuples)
    )
}

/// An NSG v2 blob of `n` valid, distinct tuples, written straight into a string.
fn big_nsg_blob(n: usize) -> String {
    let head = nsg_blob(&[]);
    let (open, close) = head.split_at(head.find("[]").expect("empty tuples") + 1);
    let mut s = String::with_capacity(n * 60 + head.len());
    s.push_str(open);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let t = 1_542_110_000 + (i % 3600);
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        write!(s, r#""{t},10.1.{a}.{b},10.2.0.4,{},443,T,I,A,E,3,300,2,200""#, 1024 + i % 60_000).expect("write");
    }
    s.push_str(close);
    s
}

#[test]
fn an_azure_blob_of_a_million_tuples_is_processed_in_bounded_batches() {
    let n = 1_000_000;
    let blob = big_nsg_blob(n);
    assert!(blob.len() < DEFAULT_LIMIT, "{} bytes", blob.len());
    let out = flows(blob);
    assert!(out.dead_letters.is_empty(), "{:?}", reasons(&out).first());
    let max = out.records.iter().map(|r| r.payload.len()).max().unwrap_or(0);
    assert!(max <= MAX_FLOW_BATCH_BYTES, "{max}");
    assert!(out.records.len() > 100, "{} batches", out.records.len());
    // Every tuple once: the sum of the tuple ordinals is 1 + 2 + ... + n.
    let (mut count, mut sum) = (0usize, 0u64);
    for r in &out.records {
        for rec in psg_avro_codec::decode::<FlowBatch>(&r.payload).expect("a FlowBatch").records {
            assert_eq!((rec.dst_port, rec.protocol), (Some(443), Some(6)));
            count += 1;
            sum += rec.source.line as u64;
        }
    }
    assert_eq!(count, n);
    assert_eq!(sum, (n as u64) * (n as u64 + 1) / 2);
    // Batches of one message and partition share the message's key.
    assert!(out.records.iter().all(|r| r.key.as_deref() == Some(&b"flowlogs.raw/0/7"[..])));
}

#[test]
fn an_azure_blob_over_the_message_limit_or_the_blob_limits_is_refused_with_the_limit() {
    let blob = big_nsg_blob(1_200_000);
    let size = blob.len();
    assert!(size > DEFAULT_LIMIT);
    let out = flows(blob);
    assert_eq!(
        only(&out).reason,
        format!("message is {size} bytes, more than the limit of 67108864 (ingest.max-message-bytes)")
    );

    // Millions of empty tuples: refused while reading, at the tuple limit.
    let empty = nsg_blob(&[]).replace("[]", &format!("[{}\"\"]", "\"\",".repeat(4_000_000)));
    let out = flows(empty);
    assert_eq!((only(&out).line, only(&out).kind), (None, "too-large"));
    assert!(
        only(&out)
            .reason
            .starts_with("Azure flow-log blob: more than 4000000 flow tuples in one blob at line 1 column"),
        "{}",
        only(&out).reason
    );
    // Millions of empty records: refused at the record limit.
    let records = format!(r#"{{"records":[{}{{}}]}}"#, "{},".repeat(100_000));
    let out = flows(records);
    assert!(
        only(&out).reason.starts_with(
            "Azure flow-log blob: more than 100000 records in one blob (Azure writes about one a minute per interface) at line 1 column"
        ),
        "{}",
        only(&out).reason
    );
}

// --- floods of bad records --------------------------------------------------------

#[test]
fn a_million_bad_lines_cost_a_thousand_dead_letters_and_good_lines_still_come_out() {
    let mut payload = format!("{GOOD}\n");
    for _ in 0..1_000_000 {
        payload.push_str("x\n");
    }
    payload.push_str(GOOD);
    let out = flows(payload);
    assert_eq!(lines_of(&out), [1, 1_000_002]);
    assert_eq!(out.dead_letters.len(), MAX_DEAD_LETTERS_PER_MESSAGE + 1);
    assert!(
        out.dead_letters[..1000].iter().all(|d| d.reason == "line has 1 fields, the format has 14"),
        "the wrong length is named before any value: {:?}",
        out.dead_letters[0].reason
    );
    assert_eq!(out.dead_letters[999].line, Some(1001));
    let last = out.dead_letters.last().expect("the rest");
    assert_eq!((last.line, last.kind), (Some(1002), "too-many-errors"));
    assert_eq!(
        last.reason,
        "999000 more records of this message were refused after the first 1000 (dead-lettered one by one): they are this dead letter, one per line, from record 1002 on; the first of them: line has 1 fields, the format has 14"
    );
    // Every refused line is in the dead-letter topic once, no good one.
    assert_eq!(last.payload, vec!["x"; 999_000].join("\n").as_bytes());
}

#[test]
fn a_large_good_message_becomes_batches_under_the_kafka_limit() {
    let payload: String = (0..120_000)
        .map(|i| {
            format!(
                "2 123456789010 eni-{i:017x} 10.{}.{}.{} 10.9.0.1 {} 443 6 1 1 1418530010 1418530070 ACCEPT OK\n",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff,
                1024 + i % 60_000
            )
        })
        .collect();
    assert!(payload.len() > 10_000_000);
    let out = flows(payload);
    assert!(out.dead_letters.is_empty());
    let recs = records(&out);
    assert_eq!(recs.len(), 120_000);
    // The streamed batches are byte for byte what the codec writes.
    for r in &out.records {
        let batch: FlowBatch = psg_avro_codec::decode(&r.payload).expect("batch");
        assert_eq!(psg_avro_codec::encode(&batch).expect("encode"), r.payload);
    }
}

// --- absurd numbers -------------------------------------------------------------

/// AWS lines with one absurd field each (field index, value) and the reason.
fn absurd_aws() -> Vec<(String, String)> {
    let line = |changes: &[(usize, &str)]| {
        let mut v: Vec<&str> = GOOD.split(' ').collect();
        for (i, value) in changes {
            v[*i] = value;
        }
        v.join(" ")
    };
    let cases: [(&[(usize, &str)], String); 12] = [
        (&[(5, "-1")], "field 'srcport': '-1' is not a port (0-65535)".into()),
        (&[(6, "65536")], "field 'dstport': '65536' is not a port (0-65535)".into()),
        (&[(7, "256")], "field 'protocol': '256' is not an IANA protocol number (0-255)".into()),
        (&[(8, "-10")], "field 'packets': '-10' is not a non-negative count".into()),
        (
            &[(8, "99999999999999999999999")],
            "field 'packets': '99999999999999999999999' is larger than the largest count (2^63-1)".into(),
        ),
        (
            &[(9, "9223372036854775808")],
            "field 'bytes': '9223372036854775808' is larger than the largest count (2^63-1)".into(),
        ),
        (
            &[(10, "1418530070"), (11, "1418530010")],
            "field 'end' (2014-12-14T04:06:50Z) is before field 'start' (2014-12-14T04:07:50Z)".into(),
        ),
        (
            &[(11, "253402300799000")],
            format!("field 'end': '253402300799000' is 9999-12-31T23:59:59Z in Unix milliseconds, {MILLIS}"),
        ),
        (
            &[(11, "253402300799")],
            format!("field 'end': '253402300799' is 1978-01-11T21:31:40.799Z in Unix milliseconds, {MILLIS}"),
        ),
        (&[(10, "-62167219200")], format!("field 'start': '-62167219200' is before 1970, {RANGE}")),
        (&[(10, "-1")], format!("field 'start': '-1' is before 1970, {RANGE}")),
        (&[(0, "-2")], "field 'version': '-2' is not a version number (0-255)".into()),
    ];
    cases.into_iter().map(|(changes, reason)| (line(changes), reason)).collect()
}

#[test]
fn absurd_numbers_in_aws_lines_are_refused_naming_the_field() {
    let cases = absurd_aws();
    let mut payload = format!("{GOOD}\n");
    for (line, _) in &cases {
        payload.push_str(line);
        payload.push('\n');
    }
    payload.push_str(GOOD);
    let out = flows(payload);
    assert_eq!(lines_of(&out), [1, cases.len() as i32 + 2]);
    let expected: Vec<_> =
        cases.iter().enumerate().map(|(i, (_, reason))| (Some(i as u32 + 2), "parse", reason.clone())).collect();
    assert_eq!(reasons(&out), expected);
}

#[test]
fn absurd_numbers_in_azure_tuples_are_refused_naming_the_field() {
    let good = "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4";
    let cases = [
        (
            "1542110437,10.0.0.1,10.0.0.2,-1,2,T,I,A,C,1,2,3,4",
            "field 'srcPort': '-1' is not a port (0-65535)".to_owned(),
        ),
        (
            "1542110437,10.0.0.1,10.0.0.2,1,70000,T,I,A,C,1,2,3,4",
            "field 'dstPort': '70000' is not a port (0-65535)".to_owned(),
        ),
        (
            "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,-1,2,3,4",
            "field 'packetsSrcToDst': '-1' is not a non-negative count".to_owned(),
        ),
        (
            "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,99999999999999999999,3,4",
            "field 'bytesSrcToDst': '99999999999999999999' is larger than the largest count (2^63-1)".to_owned(),
        ),
        (
            "253402300799,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4",
            format!("field 'time': '253402300799' is 1978-01-11T21:31:40.799Z in Unix milliseconds, {MILLIS}"),
        ),
        (
            "253402300799000,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4",
            format!("field 'time': '253402300799000' is 9999-12-31T23:59:59Z in Unix milliseconds, {MILLIS}"),
        ),
        (
            "4102444800,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4",
            format!("field 'time': '4102444800' is 2100-01-01T00:00:00Z in Unix seconds, {RANGE}"),
        ),
        ("-1,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4", format!("field 'time': '-1' is before 1970, {RANGE}")),
    ];
    let mut tuples = vec![good];
    tuples.extend(cases.iter().map(|(t, _)| *t));
    tuples.push(good);
    let out = flows(nsg_blob(&tuples));
    assert_eq!(lines_of(&out), [1, cases.len() as i32 + 2]);
    let expected: Vec<_> =
        cases.iter().enumerate().map(|(i, (_, reason))| (Some(i as u32 + 2), "parse", reason.clone())).collect();
    assert_eq!(reasons(&out), expected);

    // VNet tuples carry IANA protocol numbers.
    let vnet = r#"{"records":[{"category":"FlowLogFlowEvent","macAddress":"00224871C205","targetResourceID":"/subscriptions/s/x","flowRecords":{"flows":[{"aclID":"a","flowGroups":[{"rule":"r","flowTuples":["1663146003606,10.0.0.6,10.0.0.7,1,2,300,O,E,X,1,2,3,4","1663146003606,10.0.0.6,10.0.0.7,1,2,6,O,E,X,1,2,3,4"]}]}]}}]}"#;
    let out = flows(vnet);
    assert_eq!(lines_of(&out), [2]);
    assert_eq!(only(&out).reason, "field 'protocol': '300' is not an IANA protocol number (0-255)");
}

fn gcp_entry(connection_extra: &str) -> String {
    format!(
        r#"{{"logName":"projects/p/logs/compute.googleapis.com%2Fvpc_flows","jsonPayload":{{"connection":{{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":40000,"protocol":6,{connection_extra}}},"bytes_sent":"10","packets_sent":"1","reporter":"SRC","start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:05Z","src_instance":{{"project_id":"p","region":"r","vm_name":"v"}}}}}}"#
    )
}

#[test]
fn absurd_numbers_in_gcp_entries_are_refused_naming_the_field() {
    let good = gcp_entry(r#""dest_port":443"#);
    let with = |from: &str, to: &str| {
        let e = good.replace(from, to);
        assert_ne!(e, good, "{from}");
        e
    };
    let cases = [
        (
            with(r#""src_port":40000"#, r#""src_port":-1"#),
            "field 'connection.src_port': '-1' is not a port (0-65535)".to_owned(),
        ),
        (
            with(r#""dest_port":443"#, r#""dest_port":"65536""#),
            "field 'connection.dest_port': '65536' is not a port (0-65535)".to_owned(),
        ),
        (
            with(r#""protocol":6"#, r#""protocol":256"#),
            "field 'connection.protocol': '256' is not an IANA protocol number (0-255)".to_owned(),
        ),
        (
            with(r#""bytes_sent":"10""#, r#""bytes_sent":"-10""#),
            "field 'bytes_sent': '-10' is not a non-negative count".to_owned(),
        ),
        (
            with(r#""bytes_sent":"10""#, r#""bytes_sent":18446744073709551615"#),
            "field 'bytes_sent': '18446744073709551615' is larger than the largest count (2^63-1)".to_owned(),
        ),
        (
            with(r#""packets_sent":"1""#, r#""packets_sent":"99999999999999999999""#),
            "field 'packets_sent': '99999999999999999999' is larger than the largest count (2^63-1)".to_owned(),
        ),
        (
            with(r#""end_time":"2024-01-01T00:00:05Z""#, r#""end_time":"2023-12-31T23:59:00Z""#),
            "field 'end_time' (2023-12-31T23:59:00Z) is before field 'start_time' (2024-01-01T00:00:00Z)".to_owned(),
        ),
        (
            with(r#""end_time":"2024-01-01T00:00:05Z""#, r#""end_time":"9999-12-31T23:59:59Z""#),
            format!("field 'end_time': '9999-12-31T23:59:59Z' is in year 9999, {RANGE}"),
        ),
        (
            with(r#""start_time":"2024-01-01T00:00:00Z""#, r#""start_time":"0000-01-01T00:00:00Z""#),
            format!("field 'start_time': '0000-01-01T00:00:00Z' is in year 0, {RANGE}"),
        ),
        (
            with(r#""start_time":"2024-01-01T00:00:00Z""#, r#""start_time":"1969-12-31T23:59:59Z""#),
            format!("field 'start_time': '1969-12-31T23:59:59Z' is in year 1969, {RANGE}"),
        ),
    ];
    let mut payload = format!("{good}\n");
    for (entry, _) in &cases {
        payload.push_str(entry);
        payload.push('\n');
    }
    payload.push_str(&good);
    let out = flows(payload);
    assert_eq!(lines_of(&out), [1, cases.len() as i32 + 2]);
    let expected: Vec<_> =
        cases.iter().enumerate().map(|(i, (_, reason))| (Some(i as u32 + 2), "parse", reason.clone())).collect();
    assert_eq!(reasons(&out), expected);
}

// --- inventory helpers ------------------------------------------------------------

fn native(id: &str) -> String {
    format!(
        r#"{{"provider":"aws","resource_type":"ec2_instance","resource_id":"{id}","private_ips":["10.0.0.5"],"observed_at":"2026-01-01T00:00:00Z"}}"#
    )
}

fn resources(out: &Output) -> Vec<String> {
    out.records
        .iter()
        .filter(|r| r.topic == "resources")
        .map(|r| psg_avro_codec::decode::<Resource>(&r.payload).expect("a Resource").resource_id)
        .collect()
}
