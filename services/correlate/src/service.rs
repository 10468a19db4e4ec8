//! The correlate [`Processor`]: inventory from the `resources` table topic
//! into the attribution index; flow records from `flows.normalized` through
//! attribution into windows; edges out to `flows.edges` and `data_flows`.
//!
//! Flows that arrive before their inventory: a record with an internal
//! address that no resource holds yet is held back (not windowed) until
//! either an inventory update makes the address known or event time has
//! moved `hold-back-secs` past the record; then it is attributed with what
//! is known (an unknown host if still nobody holds the address). Held
//! records keep their input offsets uncommitted.
//!
//! Event time advances with new flow records, per input partition; a
//! partition that has received nothing for `idle-timeout-secs` (wall clock)
//! is idle, and its event time then advances with processing time
//! ([`Correlate::tick_at`]), so its windows close and its offsets commit.
//!
//! Restarts: with a database, each batch's `data_flows` rows are written in
//! one transaction with a checkpoint per input partition ([`crate::checkpoint`]),
//! and the next instance that reads the partition resumes from it, so a
//! replay counts every record exactly as the first run did.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use psg_config::Config;
use psg_domain::rows::{DataFlowRow, ResourceRow};
use psg_domain::time::{Micros, SECOND, from_micros};
use psg_domain::{
    EdgeDirection, EndpointKind, FlowBatch, FlowDirection, FlowEdge, FlowRecord, LogStatus, Resource, Text, ids,
};
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{DeadLetter, InMessage, InputKind, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;

use crate::attribution::{EndpointId, Index};
use crate::checkpoint::{Admit, Checkpoint, Partition};
use crate::coverage::{Coverage, Place};
use crate::windows::{Added, Connection, EdgeKey, Encryption, Observation, WindowEdge, Windows};

/// A flow record waiting for its inventory.
#[derive(Debug)]
struct Held {
    record: FlowRecord,
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    /// Index of the record in its flow batch.
    index: u32,
    /// Held by the first run until the replay after a restart reaches the
    /// point where that run stopped: not released before.
    pinned: bool,
}

/// How a flow record is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As usual.
    Live,
    /// Processed before a restart: counted again only into a window that is
    /// still open (the rest was written, or was late then too).
    Replay,
    /// Processed before a restart and held back then: held again.
    Pinned,
    /// Released from the hold-back: not held again.
    Released,
}

/// The correlate service.
#[derive(Debug)]
pub struct Correlate {
    flows_topic: String,
    resources_topic: String,
    edges_out: String,
    coverage_out: String,
    dead_letter: String,
    index: Index,
    /// Flow-log coverage per unit and input partition. Kept across a
    /// rebalance (a unit's first record stays its first); after a restart a
    /// unit's `first_seen` restarts with its next record.
    coverage: Coverage,
    windows: Windows,
    hold_back: Micros,
    held: Vec<Held>,
    store: Option<Store>,
    /// Endpoints whose rows are known to be in the database.
    ensured: HashSet<EndpointId>,
    pending_flows: Vec<DataFlowRow>,
    /// Accepted edges withdrawn: their rows are zeroed after `pending_flows`.
    pending_withdrawals: Vec<psg_store::flows::Withdrawal>,
    pending_resources: Vec<ResourceRow>,
    /// The checkpoints of each processed step, oldest first, until persisted
    /// (one entry per `process`/`tick`, as the runner calls `persist`).
    pending_checkpoints: VecDeque<Vec<psg_store::flows::Checkpoint>>,
    /// Consumer group (checkpoints belong to it).
    group: String,
    /// Per input partition of the flow topic: position, the newest source
    /// position counted per source partition (ingest writes the records of
    /// one source message to one partition in source order, so a batch that
    /// starts at or below it is a second copy — ingest redelivered after a
    /// crash, a retry or a rebalance — and is skipped), and the replay state
    /// after a restart.
    parts: BTreeMap<i32, Partition>,
    idle_timeout: Option<Duration>,
    duplicates: u64,
}

impl Correlate {
    pub fn new(cfg: &Config, store: Option<Store>) -> Self {
        Self {
            flows_topic: cfg.topics.flows_normalized.clone(),
            resources_topic: cfg.topics.resources.clone(),
            edges_out: cfg.topics.flows_edges.clone(),
            coverage_out: cfg.topics.flows_coverage.clone(),
            dead_letter: cfg.topics.correlate_dlq.clone(),
            index: Index::new(),
            coverage: Coverage::new(
                cfg.correlate.coverage_gap_secs as i64 * SECOND,
                cfg.correlate.coverage_report_secs as i64 * SECOND,
            ),
            windows: {
                let w = Windows::new(
                    cfg.correlate.window_secs as i64 * SECOND,
                    cfg.correlate.allowed_lateness_secs as i64 * SECOND,
                )
                .with_tolerance(cfg.correlate.match_tolerance_secs as i64 * SECOND)
                // A report within the tolerance of another arrives at most
                // the lateness behind its partition.
                .with_retention(
                    (cfg.correlate.allowed_lateness_secs + cfg.correlate.match_tolerance_secs) as i64 * SECOND,
                );
                if store.is_some() { w } else { w.without_touched() }
            },
            hold_back: cfg.correlate.hold_back_secs as i64 * SECOND,
            held: Vec::new(),
            store,
            ensured: HashSet::new(),
            pending_flows: Vec::new(),
            pending_withdrawals: Vec::new(),
            pending_resources: Vec::new(),
            pending_checkpoints: VecDeque::new(),
            group: format!("{}-correlate", cfg.kafka.group_prefix),
            parts: BTreeMap::new(),
            idle_timeout: (cfg.correlate.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(cfg.correlate.idle_timeout_secs)),
            duplicates: 0,
        }
    }

    /// Flow batches skipped as second copies so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Topics shared by the consumer group.
    /// For a bounded input read in any order (`analyze`: files one after
    /// another, each spanning the whole period): accepted connections and
    /// rejections are remembered for the whole run, so the two ends'
    /// reports of a connection decide it together even when one file is
    /// read long after the other (memory: one hash per connection).
    pub fn remembering_the_whole_input(mut self) -> Self {
        self.windows.set_retention(Micros::MAX);
        self
    }

    /// The attribution index (for tests and metrics).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Flow records waiting for their inventory.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn resource(&mut self, msg: &InMessage, out: &mut Output) {
        if msg.payload.is_none() {
            return; // compaction tombstone
        }
        match psg_avro_codec::decode::<Resource>(msg.payload()) {
            Ok(r) => self.index.apply(&r),
            Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
        }
    }

    /// Reads the checkpoints of the flow partitions in `batch` not seen
    /// since the start or the last revocation, and resumes them. Nothing
    /// changes on error (the batch is processed again).
    async fn resume_partitions(&mut self, batch: &[InMessage]) -> Result<(), ProcessError> {
        let mut new: Vec<i32> = batch
            .iter()
            .filter(|m| m.kind == InputKind::Stream && *m.topic == *self.flows_topic)
            .map(|m| m.partition)
            .filter(|p| !self.parts.contains_key(p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        new.sort_unstable();
        new.dedup();
        let Some(store) = &self.store else {
            for p in new {
                self.parts.insert(p, Partition::new(false));
            }
            return Ok(());
        };
        let rows = psg_store::flows::checkpoints(store, &self.group, &self.flows_topic, &new)
            .await
            .map_err(|e| ProcessError::classify(e.is_transient(), e))?;
        let mut resumed = Vec::new();
        for row in &rows {
            let cp = Checkpoint::from_row(row.resume_offset, row.processed_offset, &row.state).map_err(|e| {
                ProcessError::Fatal(format!(
                    "correlate checkpoint of {} partition {} (group {}): {e}",
                    row.topic, row.partition, row.consumer_group
                ))
            })?;
            resumed.push((row.partition, cp));
        }
        for p in new {
            self.parts.insert(p, Partition::new(true));
        }
        for (p, cp) in resumed {
            tracing::info!(
                partition = p,
                resume_offset = cp.resume,
                processed_offset = cp.processed,
                held = cp.held.len(),
                "resuming from the checkpoint"
            );
            if let Some(t) = cp.max_event {
                self.windows.advance(p, t);
            }
            self.parts.insert(p, Partition::resumed(&cp));
        }
        Ok(())
    }

    fn flows(&mut self, msg: &InMessage, out: &mut Output) {
        let store = self.store.is_some();
        let part = self.parts.entry(msg.partition).or_insert_with(|| Partition::new(store));
        let batch = match psg_avro_codec::decode::<FlowBatch>(msg.payload()) {
            Ok(b) => b,
            Err(e) => {
                if part.admit(msg.offset, None) == Admit::Count && !part.replaying(msg.offset) {
                    out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string()));
                }
                return;
            }
        };
        let source = batch
            .records
            .first()
            .map(|r| ((Arc::from(r.source.topic.as_str()), r.source.partition), (r.source.offset, r.source.line)));
        match part.admit(msg.offset, source) {
            Admit::Done => {
                metrics::counter!("psg_correlate_replayed_records_total", "outcome" => "done-before")
                    .increment(batch.records.len() as u64);
                return;
            }
            Admit::Copy => {
                self.duplicates += 1;
                metrics::counter!("psg_correlate_duplicate_batches_total").increment(1);
                if let Some(first) = batch.records.first() {
                    tracing::debug!(
                        source_topic = %first.source.topic,
                        source_partition = first.source.partition,
                        source_offset = first.source.offset,
                        "skipped a second copy of a flow batch"
                    );
                }
                return;
            }
            Admit::Count => {}
        }
        let modes: Vec<Mode> = (0..batch.records.len() as u32)
            .map(|i| match &part.replay {
                Some(r) if msg.offset < r.processed && r.held.contains(&(msg.offset, i)) => Mode::Pinned,
                Some(r) if msg.offset < r.processed => Mode::Replay,
                _ => Mode::Live,
            })
            .collect();
        let replay_over = part.finish_replay();
        for (i, (rec, mode)) in batch.records.into_iter().zip(modes).enumerate() {
            self.flow(rec, &msg.topic, msg.partition, msg.offset, i as u32, mode, out);
        }
        if replay_over {
            for h in self.held.iter_mut().filter(|h| h.partition == msg.partition) {
                h.pinned = false;
            }
            tracing::info!(partition = msg.partition, offset = msg.offset, "replay after the restart done");
        }
        let base = self
            .windows
            .partition_max_event(msg.partition)
            .or_else(|| self.held.iter().filter(|h| h.partition == msg.partition).map(|h| h.record.end_time).max());
        if let (Some(part), Some(base)) = (self.parts.get_mut(&msg.partition), base) {
            part.last_input = Some((Instant::now(), base));
        }
    }

    /// One record, the `index`-th of the flow batch at `offset`.
    #[allow(clippy::too_many_arguments)]
    fn flow(
        &mut self,
        rec: FlowRecord,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        index: u32,
        mode: Mode,
        out: &mut Output,
    ) {
        // Every record counts for coverage once (a held record when first
        // read, a replayed one again: after a restart the count restarts).
        if matches!(mode, Mode::Live | Mode::Replay) {
            let index = &self.index;
            self.coverage.observe(partition, &rec, || Place {
                vpc_id: rec
                    .interface_id
                    .as_deref()
                    .and_then(|i| index.by_interface(i, rec.end_time))
                    .and_then(|id| index.info(id).vpc_id.as_deref().map(str::to_owned)),
                subnet_id: None,
            });
        }
        if rec.log_status != LogStatus::Ok {
            metrics::counter!("psg_correlate_records_total", "outcome" => "no-traffic").increment(1);
            return;
        }
        match mode {
            Mode::Replay if self.windows.is_closed(partition, rec.end_time) => {
                metrics::counter!("psg_correlate_replayed_records_total", "outcome" => "written-before").increment(1);
                return;
            }
            Mode::Replay => {
                metrics::counter!("psg_correlate_replayed_records_total", "outcome" => "window-open").increment(1);
            }
            Mode::Pinned => {
                metrics::counter!("psg_correlate_replayed_records_total", "outcome" => "held").increment(1);
                let held = Held { record: rec, topic: Arc::clone(topic), partition, offset, index, pinned: true };
                self.held.push(held);
                return;
            }
            Mode::Live | Mode::Released => {}
        }
        let quiet = mode == Mode::Replay; // its dead letters were written the first time
        let (Some(src_if), Some(dst_if)) = (packet_addr(&None, &rec.src_addr), packet_addr(&None, &rec.dst_addr))
        else {
            if !quiet {
                self.reject(
                    &rec,
                    topic,
                    partition,
                    offset,
                    "flow record with log-status OK has no source or destination address",
                    out,
                );
            }
            return;
        };
        let Some(action) = rec.action else {
            if !quiet {
                self.reject(&rec, topic, partition, offset, "flow record with log-status OK has no action", out);
            }
            return;
        };
        let t = rec.end_time;
        // Prefer the original packet addresses (NAT gateways log their own).
        let src = packet_addr(&rec.pkt_src_addr, &None).unwrap_or(src_if);
        let dst = packet_addr(&rec.pkt_dst_addr, &None).unwrap_or(dst_if);
        // Transit Gateway records name the VPC of each end.
        let (src_vpc, dst_vpc) =
            (rec.extra.get(TGW_SRC_VPC).map(String::as_str), rec.extra.get(TGW_DST_VPC).map(String::as_str));
        let (mut src_id, mut dst_id) =
            (self.index.by_address_in(&src, src_vpc, t), self.index.by_address_in(&dst, dst_vpc, t));
        // The capturing interface identifies its own side directly, where the
        // packet address is the interface's (no translation).
        if let Some(owner) = rec.interface_id.as_deref().and_then(|i| self.index.by_interface(i, t)) {
            let side = match rec.flow_direction {
                Some(FlowDirection::Egress) => Some(true),
                Some(FlowDirection::Ingress) => Some(false),
                None if self.index.holds(owner, &src_if, t) => Some(true),
                None if self.index.holds(owner, &dst_if, t) => Some(false),
                None => None,
            };
            match side {
                Some(true) if src == src_if => src_id = Some(owner),
                Some(false) if dst == dst_if => dst_id = Some(owner),
                _ => {}
            }
        }
        let unknown_internal = |id: Option<EndpointId>, a: &IpAddr| id.is_none() && crate::attribution::is_internal(a);
        if mode != Mode::Released
            && self.hold_back > 0
            && (unknown_internal(src_id, &src) || unknown_internal(dst_id, &dst))
            && self.windows.max_event_time().is_none_or(|m| t + self.hold_back > m)
        {
            self.held.push(Held { record: rec, topic: Arc::clone(topic), partition, offset, index, pinned: false });
            return;
        }
        let mut src_id = src_id.unwrap_or_else(|| self.index.address_endpoint(src, t, rec.provider));
        let mut dst_id = dst_id.unwrap_or_else(|| self.index.address_endpoint(dst, t, rec.provider));
        let (mut src, mut dst) = (src, dst);
        let protocol = rec.protocol.unwrap_or(0);
        let (mut src_port, mut dst_port) = (rec.src_port.unwrap_or(0), rec.dst_port.unwrap_or(0));
        let mut flow_direction = rec.flow_direction;
        // A response (server port → client's ephemeral port) belongs to the
        // connection it answers: client → server, service port.
        if crate::windows::is_response(protocol, src_port, dst_port) {
            std::mem::swap(&mut src_id, &mut dst_id);
            std::mem::swap(&mut src, &mut dst);
            std::mem::swap(&mut src_port, &mut dst_port);
            flow_direction = flow_direction.map(|d| match d {
                FlowDirection::Ingress => FlowDirection::Egress,
                FlowDirection::Egress => FlowDirection::Ingress,
            });
            metrics::counter!("psg_correlate_responses_oriented_total").increment(1);
        }
        let (s, d) = (self.index.info(src_id), self.index.info(dst_id));
        let direction = match (&s.vpc_id, &d.vpc_id) {
            (Some(a), Some(b)) if a == b => EdgeDirection::IntraVpc,
            _ => match flow_direction {
                Some(FlowDirection::Ingress) => EdgeDirection::Ingress,
                Some(FlowDirection::Egress) => EdgeDirection::Egress,
                None if s.kind == EndpointKind::External => EdgeDirection::Ingress,
                None => EdgeDirection::Egress,
            },
        };
        let obs = Observation {
            key: EdgeKey { src: src_id, dst: dst_id, protocol, dst_port, action },
            connection: Connection { src, dst, src_port, dst_port },
            reporter: reporter(&rec),
            direction,
            event_time: t,
            packets: rec.packets.unwrap_or(0),
            bytes: rec.bytes.unwrap_or(0),
            encryption: encryption(&rec),
            action_logged: rec.extra.get(psg_domain::extra::ACTION_LOGGED).is_none_or(|v| v != "false"),
            topic: Arc::clone(topic),
            partition,
            offset,
            line: rec.source.line,
        };
        let blocked_before = self.windows.blocked_reports();
        match self.windows.add(obs) {
            Added::FirstSeen(edge) => self.emit(&edge, out),
            Added::Aggregated => {}
            Added::Late(edge) => {
                metrics::counter!("psg_correlate_late_records_total").increment(1);
                self.emit(&edge, out);
                self.queue_rows(std::slice::from_ref(&edge));
            }
        }
        let blocked = self.windows.blocked_reports() - blocked_before;
        if blocked > 0 {
            // The other end rejected connections reported accepted: they
            // count as blocked attempts. An edge with no accepted connection
            // left is withdrawn; a window row emptied is written with zero
            // counts (a row already written says nothing accepted then).
            metrics::counter!("psg_correlate_blocked_reports_total").increment(blocked);
            for edge in self.windows.take_withdrawn() {
                self.emit(&edge, out);
                if self.store.is_some() {
                    let row = data_flow_row(&self.to_flow_edge(&edge));
                    let since = self.windows.window_start(edge.first_seen);
                    self.pending_withdrawals.push(psg_store::flows::Withdrawal {
                        source_resource_id: row.source_resource_id,
                        dest_resource_id: row.dest_resource_id,
                        protocol: row.protocol,
                        dst_port: row.dst_port,
                        since: from_micros(since),
                    });
                }
            }
            let vacated = self.windows.take_vacated();
            self.queue_rows(&vacated);
        }
        metrics::counter!("psg_correlate_records_total", "outcome" => "attributed").increment(1);
    }

    fn reject(&self, rec: &FlowRecord, topic: &str, partition: i32, offset: i64, reason: &str, out: &mut Output) {
        let s = &rec.source;
        out.dead_letters.push(DeadLetter {
            source_topic: topic.to_owned(),
            source_partition: partition,
            source_offset: offset,
            line: None,
            key: None,
            payload: psg_avro_codec::encode(rec).unwrap_or_default(),
            kind: "attribution",
            reason: format!(
                "{reason} (record from {} partition {} offset {} line {})",
                s.topic, s.partition, s.offset, s.line
            ),
            records: Some(1),
        });
    }

    /// Releases held records whose address is now known or whose time is up.
    fn release_held(&mut self, out: &mut Output) {
        if self.held.is_empty() {
            return;
        }
        let max = self.windows.max_event_time();
        let held = std::mem::take(&mut self.held);
        for h in held {
            if h.pinned {
                self.held.push(h);
                continue;
            }
            let t = h.record.end_time;
            let r = &h.record;
            let known = |a: Option<IpAddr>| {
                a.is_none_or(|ip| !crate::attribution::is_internal(&ip) || self.index.by_address(&ip, t).is_some())
            };
            let src_known = known(packet_addr(&r.pkt_src_addr, &r.src_addr));
            let dst_known = known(packet_addr(&r.pkt_dst_addr, &r.dst_addr));
            let expired = max.is_some_and(|m| t + self.hold_back <= m);
            if (src_known && dst_known) || expired {
                if expired && !(src_known && dst_known) {
                    metrics::counter!("psg_correlate_hold_back_expired_total").increment(1);
                }
                self.flow(h.record, &h.topic, h.partition, h.offset, h.index, Mode::Released, out);
            } else {
                self.held.push(h);
            }
        }
    }

    fn to_flow_edge(&self, e: &WindowEdge) -> FlowEdge {
        let (s, d) = (self.index.info(e.key.src), self.index.info(e.key.dst));
        let mut id_parts = vec![
            s.resource_id.to_string(),
            d.resource_id.to_string(),
            e.key.protocol.to_string(),
            e.key.dst_port.to_string(),
            e.key.action.as_str().to_owned(),
            e.window_start.to_string(),
            format!("p{}", e.partition),
        ];
        if let Some((topic, partition, offset, line)) = &e.late_source {
            id_parts.extend([
                "late".to_owned(),
                topic.to_string(),
                partition.to_string(),
                offset.to_string(),
                line.to_string(),
            ]);
        }
        let parts: Vec<&str> = id_parts.iter().map(String::as_str).collect();
        FlowEdge {
            edge_id: ids::stable_id("edge", &parts).to_string(),
            kind: e.kind,
            src: s.endpoint(e.src_addr),
            dst: d.endpoint(e.dst_addr),
            protocol: e.key.protocol,
            dst_port: e.key.dst_port,
            action: e.key.action,
            direction: e.direction,
            window_start: e.window_start,
            window_end: e.window_end,
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            packets: e.packets,
            bytes: e.bytes,
            flows: e.flows,
            encrypted_flows: e.encrypted,
            unencrypted_flows: e.unencrypted,
            action_logged: e.action_logged,
        }
    }

    fn emit(&self, edge: &WindowEdge, out: &mut Output) {
        let edge = self.to_flow_edge(edge);
        metrics::counter!("psg_correlate_edges_total", "kind" => edge.kind.as_str()).increment(1);
        match psg_avro_codec::encode(&edge) {
            Ok(bytes) => out.records.push(OutRecord::new(&self.edges_out, edge.src.resource_id.as_bytes(), bytes)),
            Err(e) => tracing::error!(error = %e, "cannot encode an edge"),
        }
    }

    /// Queues `data_flows` rows for `edges`, and rows for their endpoints.
    fn queue_rows(&mut self, edges: &[WindowEdge]) {
        if self.store.is_none() {
            return;
        }
        for e in edges {
            for id in [e.key.src, e.key.dst] {
                if self.ensured.insert(id) {
                    self.pending_resources.push(self.index.info(id).row());
                }
            }
            let f = self.to_flow_edge(e);
            self.pending_flows.push(data_flow_row(&f));
        }
    }
}

/// `extra` keys of a Transit Gateway record: the VPC of each end.
const TGW_SRC_VPC: &str = "tgw-src-vpc-id";
const TGW_DST_VPC: &str = "tgw-dst-vpc-id";

/// The original packet address, else the interface's view of it.
fn packet_addr(packet: &Option<Text>, interface: &Option<Text>) -> Option<IpAddr> {
    packet.as_deref().or(interface.as_deref()).and_then(|s| s.parse().ok())
}

/// Whether a record's traffic was seen encrypted: AWS `encryption-status`
/// (0 not encrypted; 1 Nitro, 2 application (TLS), 3 both), Azure VNet
/// flow logs' encryption column (`X`, or `NX` and a reason).
fn encryption(r: &FlowRecord) -> Encryption {
    if let Some(v) = r.extra.get("encryption-status") {
        return match v.as_str() {
            "0" => Encryption::Unencrypted,
            "1" | "2" | "3" => Encryption::Encrypted,
            _ => Encryption::Unknown,
        };
    }
    match r.extra.get("encryption").map(String::as_str) {
        Some("X") => Encryption::Encrypted,
        Some(v) if v.starts_with("NX") => Encryption::Unencrypted,
        _ => Encryption::Unknown,
    }
}

/// Who reported a record: the interface, else the reporting VM, else nobody.
fn reporter(r: &FlowRecord) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.interface_id.hash(&mut h);
    r.reporter.hash(&mut h);
    r.instance_id.hash(&mut h);
    h.finish()
}

/// The `data_flows` row of an edge in its window.
pub fn data_flow_row(e: &FlowEdge) -> DataFlowRow {
    DataFlowRow {
        id: e.edge_id.parse().unwrap_or_else(|_| ids::stable_id("edge", &[&e.edge_id])),
        source_resource_id: ids::resource_uuid(&e.src.resource_id),
        dest_resource_id: ids::resource_uuid(&e.dst.resource_id),
        protocol: psg_domain::protocol_name(e.protocol),
        src_port: None,
        dst_port: e.dst_port,
        packet_count: e.packets,
        byte_count: e.bytes,
        flow_direction: e.direction,
        action: e.action,
        observed_at: from_micros(e.window_start),
        window_start: from_micros(e.window_start),
        window_end: from_micros(e.window_end),
        flow_count: e.flows,
        first_seen: from_micros(e.first_seen),
        last_seen: from_micros(e.last_seen),
        encrypted_flow_count: e.encrypted_flows,
        unencrypted_flow_count: e.unencrypted_flows,
        action_logged: e.action_logged,
    }
}

impl Correlate {
    /// Processing time `now`: a partition that has received nothing for the
    /// idle timeout advances its event time by the time it has been quiet,
    /// so its windows close (and held records expire) as if flows had kept
    /// arriving. Returns the outputs (closed windows' edges).
    pub fn tick_at(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        let Some(timeout) = self.idle_timeout else {
            self.queue_checkpoints(false);
            return out;
        };
        let mut advanced = false;
        for (p, part) in &mut self.parts {
            if part.replay.is_some() || part.next < part.resume {
                continue;
            }
            let Some((at, base)) = part.last_input else { continue };
            let quiet = now.saturating_duration_since(at);
            if quiet < timeout {
                continue;
            }
            if !self.windows.has_open(*p) && !self.held.iter().any(|h| h.partition == *p) {
                continue;
            }
            let t = base.saturating_add(i64::try_from(quiet.as_micros()).unwrap_or(i64::MAX));
            if self.windows.partition_max_event(*p).is_some_and(|m| m >= t) {
                continue;
            }
            self.windows.advance(*p, t);
            part.dirty = true;
            advanced = true;
            metrics::counter!("psg_correlate_idle_advances_total").increment(1);
            tracing::debug!(partition = p, quiet_secs = quiet.as_secs(), "idle partition: event time advanced");
        }
        if advanced {
            self.release_held(&mut out);
            self.close_windows(&mut out);
        }
        self.queue_checkpoints(advanced);
        out
    }

    /// The end of the input: nothing more will come, so every held record is
    /// attributed with what is known (an unknown host if still nobody holds
    /// its address), every partition's event time goes to the end and every
    /// window closes. Packets in window edges then equal packets in records.
    pub fn close_all(&mut self) -> Output {
        let mut out = Output::default();
        for h in std::mem::take(&mut self.held) {
            self.flow(h.record, &h.topic, h.partition, h.offset, h.index, Mode::Released, &mut out);
        }
        let partitions: Vec<i32> = self.parts.keys().copied().collect();
        for p in partitions {
            self.windows.advance(p, Micros::MAX);
        }
        self.close_windows(&mut out);
        self.publish_coverage(&mut out);
        self.queue_checkpoints(true);
        out
    }

    /// Publishes the coverage of the units that changed enough.
    fn publish_coverage(&mut self, out: &mut Output) {
        for c in self.coverage.take_reports() {
            match psg_avro_codec::encode(&c) {
                Ok(bytes) => out.records.push(OutRecord::new(&self.coverage_out, c.key().as_bytes(), bytes)),
                Err(e) => tracing::error!(error = %e, unit = %c.unit, "cannot encode flow-log coverage"),
            }
        }
        metrics::gauge!("psg_correlate_coverage_units").set(self.coverage.units() as f64);
    }

    /// Closes the windows the watermarks have passed, emits their edges and
    /// queues the rows of every window changed.
    fn close_windows(&mut self, out: &mut Output) {
        let closed = self.windows.close_ready();
        for edge in &closed {
            self.emit(edge, out);
        }
        // Without a database nothing tracks the windows still open
        // (`Windows::without_touched`), and no row is queued.
        let mut rows = self.windows.drain_touched();
        rows.extend(closed);
        self.queue_rows(&rows);
    }

    /// Queues this step's checkpoints (for `persist`): every partition
    /// processed, or only the changed ones (`all` false).
    fn queue_checkpoints(&mut self, all: bool) {
        if self.store.is_none() {
            return;
        }
        let held_offsets = self.held_offsets();
        let mut rows = Vec::new();
        for (p, part) in &mut self.parts {
            if !all && !part.dirty {
                continue;
            }
            let lowest = held_offsets
                .iter()
                .filter(|(t, hp, _)| *t == self.flows_topic && hp == p)
                .map(|(_, _, o)| *o)
                .min()
                .unwrap_or(part.next);
            let resume = part.next.min(lowest);
            let held = self.held.iter().filter(|h| h.partition == *p).map(|h| (h.offset, h.index)).collect();
            if let Some(cp) = part.checkpoint(resume, self.windows.partition_max_event(*p), held) {
                rows.push(psg_store::flows::Checkpoint {
                    consumer_group: self.group.clone(),
                    topic: self.flows_topic.clone(),
                    partition: *p,
                    resume_offset: cp.resume,
                    processed_offset: cp.processed,
                    state: cp.to_json(),
                });
            }
        }
        self.pending_checkpoints.push_back(rows);
    }
}

impl psg_service::Service for Correlate {
    const NAME: &'static str = "correlate";
    const CONFIG_SECTION: &'static str = "correlate";
    type Error = std::convert::Infallible;

    async fn build(cfg: &Config, store: Option<Store>) -> Result<Self, Self::Error> {
        Ok(Self::new(cfg, store))
    }

    fn topics(&self) -> psg_service::Topics {
        psg_service::Topics {
            streams: vec![self.flows_topic.clone()],
            tables: vec![self.resources_topic.clone()],
            outputs: vec![TopicSpec::stream(&self.edges_out), TopicSpec::table(&self.coverage_out)],
            dead_letter: self.dead_letter.clone(),
        }
    }
}

impl Processor for Correlate {
    /// Every redelivered batch is re-emitted in full (nothing is rebuilt from
    /// the database but the checkpoint, which only ever describes outputs
    /// already acknowledged and persisted), so the next batch may be
    /// processed while this one's outputs are acknowledged.
    const PIPELINED: bool = true;

    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        self.resume_partitions(batch).await?;
        let mut out = Output::default();
        // Inventory first, so flows in the same batch see it.
        let mut inventory = false;
        for msg in batch.iter().filter(|m| m.kind == InputKind::Table) {
            self.resource(msg, &mut out);
            inventory = true;
        }
        for msg in batch.iter().filter(|m| m.kind == InputKind::Stream) {
            self.flows(msg, &mut out);
        }
        if inventory || !self.held.is_empty() {
            self.release_held(&mut out);
        }
        self.close_windows(&mut out);
        self.publish_coverage(&mut out);
        self.queue_checkpoints(true);
        tracing::debug!(
            open_windows = self.windows.open_windows(),
            held_records = self.held.len(),
            held_offsets = ?self.held_offsets(),
            watermark = ?self.windows.watermark(),
            "batch processed"
        );
        metrics::gauge!("psg_correlate_index_resources").set(self.index.resources() as f64);
        metrics::gauge!("psg_correlate_index_addresses").set(self.index.addresses() as f64);
        metrics::gauge!("psg_correlate_open_windows").set(self.windows.open_windows() as f64);
        metrics::gauge!("psg_correlate_held_records").set(self.held.len() as f64);
        if let Some(w) = self.windows.watermark() {
            metrics::gauge!("psg_correlate_watermark_seconds").set(w as f64 / SECOND as f64);
        }
        Ok(out)
    }

    async fn end_of_input(&mut self) -> Result<Output, ProcessError> {
        Ok(self.close_all())
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.idle_timeout.map(|t| t.min(Duration::from_secs(1)))
    }

    async fn tick(&mut self) -> Result<Output, ProcessError> {
        Ok(self.tick_at(Instant::now()))
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        let Some(store) = &self.store else { return Ok(()) };
        let classify = |e: psg_store::Error| ProcessError::classify(e.is_transient(), e);
        if !self.pending_resources.is_empty() {
            psg_store::resources::ensure_resources(store, &self.pending_resources).await.map_err(classify)?;
            self.pending_resources.clear();
        }
        let checkpoints = self.pending_checkpoints.front().map(Vec::as_slice).unwrap_or_default();
        if !self.pending_flows.is_empty() || !self.pending_withdrawals.is_empty() || !checkpoints.is_empty() {
            psg_store::flows::write_data_flows(store, &self.pending_flows, &self.pending_withdrawals, checkpoints)
                .await
                .map_err(classify)?;
            self.pending_flows.clear();
            self.pending_withdrawals.clear();
        }
        self.pending_checkpoints.pop_front();
        Ok(())
    }

    /// A rebalance revoked partitions. The consumer uses eager assignment
    /// (every rebalance revokes every partition of the instance; see
    /// `psg_kafka_runtime::client`), so everything counted but not emitted
    /// is dropped, as after a restart, and the partitions assigned next are
    /// read from their committed offsets and resumed from their
    /// checkpoints. Keeping the watermark or another partition's windows
    /// would count the records between the committed offset and the
    /// revocation twice (once in a closed window, once late).
    fn partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        if !partitions.iter().any(|(t, _)| *t == self.flows_topic) {
            return;
        }
        let dropped = self.windows.reset();
        let held = self.held.len();
        self.held.clear();
        self.parts.clear();
        // Checkpoints of a batch still in flight describe state just dropped:
        // the partition's next owner writes its own.
        for step in &mut self.pending_checkpoints {
            step.retain(|c| !partitions.iter().any(|(t, p)| *t == c.topic && *p == c.partition));
        }
        tracing::info!(
            partial_edges = dropped,
            held_records = held,
            "partitions revoked: open windows dropped; they are counted again from the committed offsets"
        );
    }

    fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        let mut held = self.windows.held_offsets();
        for h in &self.held {
            match held.iter_mut().find(|(t, p, _)| **t == *h.topic && *p == h.partition) {
                Some(e) => e.2 = e.2.min(h.offset),
                None => held.push((h.topic.to_string(), h.partition, h.offset)),
            }
        }
        held
    }
}

#[cfg(test)]
mod tests;
