//! Exactly once across a correlate restart, against a real PostgreSQL.
//!
//! Each test drives the processor the way the runner does — process a batch,
//! persist, store the offset (never past what the processor holds in
//! memory) — then "crashes" it (drops it without a goodbye) and starts a new
//! one that reads the partition again from the stored offset, as a
//! restarted process or the partition's next owner would. The counts in
//! `data_flows` and the window edges on the output topic must be exactly
//! what one uninterrupted run gives.
//!
//! The cases are the ones where the committed offset alone does not say
//! where the first run stood:
//! - a second copy of a flow batch after the committed offset whose
//!   original was counted before it (ingest restarted);
//! - records out of order across the committed offset: a window that closed
//!   after the offset was stored holds records from both sides of it;
//! - a record late the first time (its window had closed) that would land
//!   in a window on replay, because the records that had moved event time on
//!   lie before the committed offset;
//! - an idle partition whose windows closed by processing time (and a flow
//!   for one of them after the restart).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use psg_config::Config;
use psg_correlate::Correlate;
use psg_domain::time::SECOND;
use psg_domain::{
    CloudProvider, EdgeKind, FlowAction, FlowBatch, FlowEdge, FlowFormat, FlowRecord, Resource, ResourceType, SourceRef,
};
use psg_kafka_runtime::{InMessage, InputKind, Processor};
use psg_testkit::{Rng, TestDb};

const FLOWS: &str = "flows.normalized";

fn cfg() -> Config {
    let mut c = Config::default();
    c.correlate.window_secs = 60;
    c.correlate.allowed_lateness_secs = 60;
    c.correlate.match_tolerance_secs = 0; // windows close at the watermark
    c.correlate.hold_back_secs = 60;
    c
}

fn resource(id: &str, ip: &str, eni: &str) -> Resource {
    let source = SourceRef { topic: "inventory.raw".into(), partition: 0, offset: 0, line: 1 };
    let mut r = Resource::new(id, CloudProvider::Aws, ResourceType::Ec2Instance, 0, source);
    r.private_ips = vec![ip.into()];
    r.interface_ids = vec![eni.into()];
    r.vpc_id = Some("vpc-1".into());
    r
}

fn table(r: &Resource, offset: i64) -> InMessage {
    InMessage {
        kind: InputKind::Table,
        topic: Arc::from("resources"),
        partition: 0,
        offset,
        key: Some(r.resource_id.clone().into_bytes()),
        payload: Some(psg_avro_codec::encode(r).expect("encode resource")),
        headers: vec![],
        timestamp_ms: None,
    }
}

/// One flow web → db on TCP/5432 with one packet, ending at `t` seconds,
/// from source message (`source_partition`, `source_offset`) of `flowlogs.raw`.
fn flow(src_ip: &str, t: i64, port: i32, source_partition: i32, source_offset: i64) -> FlowRecord {
    let source =
        SourceRef { topic: "flowlogs.raw".into(), partition: source_partition, offset: source_offset, line: 1 };
    let mut r = FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, source, (t - 30) * SECOND, t * SECOND);
    r.interface_id = Some("eni-web".into());
    r.src_addr = Some(src_ip.into());
    r.dst_addr = Some("10.0.2.10".into());
    r.src_port = Some(port);
    r.dst_port = Some(5432);
    r.protocol = Some(6);
    r.packets = Some(1);
    r.bytes = Some(100);
    r.action = Some(FlowAction::Accept);
    r
}

/// The flow batch at `offset` of `flows.normalized` partition 0.
fn batch(offset: i64, record: FlowRecord) -> InMessage {
    InMessage {
        kind: InputKind::Stream,
        topic: Arc::from(FLOWS),
        partition: 0,
        offset,
        key: None,
        payload: Some(psg_avro_codec::encode(&FlowBatch { records: vec![record] }).expect("encode batch")),
        headers: vec![],
        timestamp_ms: None,
    }
}

/// The partition's messages, and what the runner would have stored.
struct Harness {
    config: Config,
    db: TestDb,
    store: psg_store::Store,
    messages: Vec<InMessage>,
    /// Window edges seen on the output topic, by id (copies must agree).
    edges: HashMap<String, i64>,
}

impl Harness {
    async fn new(flows: Vec<FlowRecord>) -> Self {
        let db = TestDb::create().await;
        let pool = psg_store::pool(&db.url, 1).expect("pool");
        psg_store::migrate(&pool).await.expect("migrate");
        let store = psg_store::Store::connect(&db.url, 2).await.expect("store");
        let messages = flows.into_iter().enumerate().map(|(i, f)| batch(i as i64, f)).collect();
        Self { config: cfg(), db, store, messages, edges: HashMap::new() }
    }

    /// A correlate instance that knows the estate (its table topic read whole).
    async fn start(&self) -> Correlate {
        let mut c = Correlate::new(&self.config, Some(self.store.clone()));
        let inventory = vec![
            table(&resource("web", "10.0.1.5", "eni-web"), 0),
            table(&resource("web-2", "10.0.1.6", "eni-web-2"), 1),
            table(&resource("db", "10.0.2.10", "eni-db"), 2),
        ];
        c.process(&inventory).await.expect("inventory");
        c.persist().await.expect("persist inventory");
        c
    }

    /// Runs messages `from..to` one batch each, as the runner does; returns
    /// the offset it would have stored (and committed) after the last one.
    async fn run(&mut self, c: &mut Correlate, from: i64, to: i64, mut committed: i64) -> i64 {
        for m in &self.messages[from as usize..to as usize] {
            let out = c.process(std::slice::from_ref(m)).await.expect("process");
            for r in out.records.iter().filter(|r| r.topic == "flows.edges") {
                let e: FlowEdge = psg_avro_codec::decode(&r.payload).expect("edge");
                if e.kind == EdgeKind::Window
                    && e.dst.resource_id == "db"
                    && let Some(before) = self.edges.insert(e.edge_id.clone(), e.packets)
                {
                    assert_eq!(before, e.packets, "two copies of window edge {} with different counts", e.edge_id);
                }
            }
            c.persist().await.expect("persist");
            let mut next = m.offset + 1;
            for (t, p, o) in c.held_offsets() {
                if t == FLOWS && p == 0 {
                    next = next.min(o);
                }
            }
            committed = committed.max(next);
        }
        committed
    }

    /// Packets web → db in `data_flows`.
    async fn packets(&self) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.db.url, tokio_postgres::NoTls).await.expect("db");
        tokio::spawn(conn);
        client
            .query_one(
                "SELECT coalesce(sum(f.packet_count), 0)::bigint FROM data_flows f
                   JOIN resources d ON d.id = f.dest_resource_id
                  WHERE d.resource_id = 'db' AND f.dst_port = 5432",
                &[],
            )
            .await
            .expect("packets")
            .get(0)
    }

    /// Runs the first `crash_after` messages, drops the instance (kill -9:
    /// nothing more is written or committed), starts a new one from the
    /// stored offset and runs to the end, plus a flow far ahead in event time
    /// that closes every window; then every one of the `expected` packets to
    /// the database must be counted once, in `data_flows` and in the window
    /// edges on the topic.
    async fn crash_and_resume(self, crash_after: i64, expected: i64) {
        self.crash_and_resume_at(&[crash_after], expected).await;
    }

    /// [`Harness::crash_and_resume`] with a crash after each of `crashes`
    /// (ascending message counts).
    async fn crash_and_resume_at(mut self, crashes: &[i64], expected: i64) {
        let last = self.messages.last().map_or(0, |m| m.offset);
        let mut closer = flow("10.0.1.6", 100_000, 50_000, 9, 1);
        closer.interface_id = Some("eni-web-2".into());
        closer.dst_addr = Some("10.0.1.5".into());
        closer.dst_port = Some(80);
        self.messages.push(batch(last + 1, closer));
        let end = self.messages.len() as i64;

        let mut committed = 0;
        let mut restarts = Vec::new();
        for &crash_after in crashes {
            let mut instance = self.start().await;
            committed = self.run(&mut instance, committed, crash_after.max(committed), committed).await;
            drop(instance); // kill -9: nothing more is written or committed
            restarts.push(committed);
        }
        let mut last = self.start().await;
        self.run(&mut last, committed, end, committed).await;

        let in_edges: i64 = self.edges.values().sum();
        let in_rows = self.packets().await;
        assert_eq!(in_rows, expected, "packets in data_flows (restarts from offsets {restarts:?})");
        assert_eq!(in_edges, expected, "packets in window edges on the topic (restarts from offsets {restarts:?})");
    }
}

#[tokio::test]
async fn a_second_copy_after_the_committed_offset_is_not_counted_again() {
    // Ingest counted source message (0, 10) at offset 0, then restarted and
    // wrote it again at offset 2, after a batch of another source partition.
    // Offset 1 closes offset 0's window, so 1 is stored: the copy lies after
    // the committed offset, its original before it.
    let h = Harness::new(vec![
        flow("10.0.1.5", 1000, 40_000, 0, 10),
        flow("10.0.1.5", 1200, 40_001, 1, 5),
        flow("10.0.1.5", 1000, 40_000, 0, 10), // the copy
        flow("10.0.1.5", 1210, 40_002, 1, 6),
    ])
    .await;
    // 3 lines: the copy is one of them again.
    h.crash_and_resume(4, 3).await;
}

#[tokio::test]
async fn a_window_closed_after_the_committed_offset_keeps_the_records_before_it() {
    // Window [960, 1020) holds offsets 0 and 2; offset 3 closes it while
    // window [1020, 1080) (offset 1) is open: offset 1 is stored. Read again
    // from 1, the window would be rebuilt from offset 2 alone.
    let h = Harness::new(vec![
        flow("10.0.1.5", 1000, 40_000, 0, 0),
        flow("10.0.1.5", 1070, 40_001, 0, 1),
        flow("10.0.1.5", 1010, 40_002, 0, 2),
        flow("10.0.1.5", 1090, 40_003, 0, 3),
    ])
    .await;
    h.crash_and_resume(4, 4).await;
}

#[tokio::test]
async fn a_record_late_before_the_restart_stays_late() {
    // Offset 0 moves event time to 1100. Offset 1 is a flow of an address
    // nobody holds yet: held back, and its offset with it. Offset 2 is late
    // (its window [960, 1020) ended before the watermark 1040): counted as a
    // late edge. Offset 3 closes offset 0's window; offset 1 is still held,
    // so 1 is stored. Read again from 1, event time starts from nothing and
    // offset 2 would fall into a window: counted twice.
    let h = Harness::new(vec![
        flow("10.0.1.5", 1100, 40_000, 0, 0),
        flow("10.0.1.99", 1150, 40_001, 0, 1),
        flow("10.0.1.5", 1000, 40_002, 0, 2),
        flow("10.0.1.5", 1205, 40_003, 0, 3),
    ])
    .await;
    // 10.0.1.99 is an unknown host, released when its hold-back expires:
    // its flow to the database counts too.
    h.crash_and_resume(4, 4).await;
}

#[tokio::test]
async fn an_idle_partition_advances_with_processing_time_and_its_checkpoint_holds_it() {
    let mut config = cfg();
    config.correlate.idle_timeout_secs = 60;
    let mut h = Harness::new(vec![flow("10.0.1.5", 1000, 40_000, 0, 0), flow("10.0.1.5", 1010, 40_001, 0, 1)]).await;
    h.config = config;
    let mut first = h.start().await;
    let committed = h.run(&mut first, 0, 2, 0).await;
    assert_eq!(committed, 0, "the window [960, 1020) is open");
    // Not idle yet: nothing changes.
    let out = first.tick_at(Instant::now() + Duration::from_secs(30));
    assert!(out.records.is_empty());
    first.persist().await.expect("persist the tick"); // as the runner does after every tick
    // Quiet for 200 s: event time 1010 + 200 passes the window's end plus the lateness.
    let out = first.tick_at(Instant::now() + Duration::from_secs(200));
    let edges: Vec<FlowEdge> = out
        .records
        .iter()
        .filter(|r| r.topic == "flows.edges")
        .map(|r| psg_avro_codec::decode(&r.payload).expect("edge"))
        .collect();
    assert_eq!(edges.iter().map(|e| (e.kind, e.packets)).collect::<Vec<_>>(), [(EdgeKind::Window, 2)]);
    assert!(first.held_offsets().is_empty(), "nothing held: the offsets can be committed");
    first.persist().await.expect("persist the tick");
    assert_eq!(h.packets().await, 2);

    // A flow for the closed window after the restart (from offset 2): late,
    // as it would have been without the restart.
    h.messages.push(batch(2, flow("10.0.1.5", 1015, 40_002, 0, 2)));
    drop(first);
    let mut second = h.start().await;
    let out = second.process(&h.messages[2..3]).await.expect("process");
    let edges: Vec<FlowEdge> = out
        .records
        .iter()
        .filter(|r| r.topic == "flows.edges")
        .map(|r| psg_avro_codec::decode(&r.payload).expect("edge"))
        .collect();
    assert!(edges.iter().any(|e| e.kind == EdgeKind::Window && e.packets == 1), "a late edge: {edges:?}");
    second.persist().await.expect("persist");
    assert_eq!(h.packets().await, 3);
}

/// Random streams of one input partition — records out of order within and
/// beyond the lateness, second copies of earlier batches, flows of a host
/// nobody holds (held back, then attributed to an unknown host) — and one
/// or two crashes at random points: every line is counted exactly once.
/// `SCOPE_GUARD_RESTART_CASES` sets how many streams (default 16).
#[tokio::test]
async fn random_streams_with_crashes_count_every_line_once() {
    let cases: u64 = std::env::var("SCOPE_GUARD_RESTART_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    for case in 0..cases {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x1234_5678_9abc_def1));
        let mut flows: Vec<FlowRecord> = Vec::new();
        let mut lines = 0;
        let mut source_offsets = [0i64; 3];
        let mut t = 1000;
        let n = 20 + rng.below(20);
        let mut port = 40_000;
        for _ in 0..n {
            if !flows.is_empty() && rng.chance(15) {
                // ingest sent an earlier batch again
                let copy = flows[rng.below(flows.len() as u64) as usize].clone();
                flows.push(copy);
                continue;
            }
            t += rng.below(40) as i64;
            let at = if rng.chance(20) { t - rng.below(200) as i64 } else { t };
            let host = if rng.chance(10) { "10.0.1.99" } else { "10.0.1.5" };
            let sp = rng.below(3) as usize;
            source_offsets[sp] += 1;
            port += 1;
            flows.push(flow(host, at, port, sp as i32, source_offsets[sp]));
            lines += 1;
        }
        let count = flows.len() as u64;
        let mut crashes = vec![1 + rng.below(count)];
        if rng.chance(50) {
            let second = crashes[0] + rng.below(count - crashes[0] + 1);
            crashes.push(second);
        }
        eprintln!("case {case}: {count} batches, {lines} lines, crashes after {crashes:?}");
        let crashes: Vec<i64> = crashes.into_iter().map(|c| c as i64).collect();
        Harness::new(flows).await.crash_and_resume_at(&crashes, lines).await;
    }
}
