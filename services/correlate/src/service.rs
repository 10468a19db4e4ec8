//! The correlate [`Processor`]: inventory from the `resources` table topic
//! into the attribution index; flow records from `flows.normalized` through
//! attribution into windows; edges out to `flows.edges` and `data_flows`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use psg_config::Config;
use psg_domain::rows::{DataFlowRow, ResourceRow};
use psg_domain::time::{SECOND, from_micros};
use psg_domain::{
    EdgeDirection, EndpointKind, FlowBatch, FlowDirection, FlowEdge, FlowRecord, LogStatus, Resource, ids,
};
use psg_kafka_runtime::{DeadLetter, InMessage, InputKind, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;

use crate::attribution::{Attributed, Index, ResourceInfo};
use crate::windows::{Added, EdgeKey, Observation, Windows};

/// The correlate service.
#[derive(Debug)]
pub struct Correlate {
    flows_topic: String,
    resources_topic: String,
    edges_out: String,
    index: Index,
    windows: Windows,
    store: Option<Store>,
    /// Rows of endpoints that are not inventory resources (unknown hosts,
    /// external endpoints), by resource id.
    synthesized: HashMap<String, ResourceRow>,
    /// Endpoint resource ids whose rows are known to be in the database.
    ensured: HashSet<String>,
    pending_flows: Vec<DataFlowRow>,
    pending_resources: Vec<ResourceRow>,
}

impl Correlate {
    pub fn new(cfg: &Config, store: Option<Store>) -> Self {
        Self {
            flows_topic: cfg.topics.flows_normalized.clone(),
            resources_topic: cfg.topics.resources.clone(),
            edges_out: cfg.topics.flows_edges.clone(),
            index: Index::new(),
            windows: Windows::new(
                cfg.correlate.window_secs as i64 * SECOND,
                cfg.correlate.allowed_lateness_secs as i64 * SECOND,
            ),
            store,
            synthesized: HashMap::new(),
            ensured: HashSet::new(),
            pending_flows: Vec::new(),
            pending_resources: Vec::new(),
        }
    }

    /// Topics shared by the consumer group.
    pub fn stream_topics(&self) -> Vec<String> {
        vec![self.flows_topic.clone()]
    }

    /// Topics read whole by every instance.
    pub fn table_topics(&self) -> Vec<String> {
        vec![self.resources_topic.clone()]
    }

    /// The attribution index (for tests and metrics).
    pub fn index(&self) -> &Index {
        &self.index
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

    fn flows(&mut self, msg: &InMessage, out: &mut Output) {
        match psg_avro_codec::decode::<FlowBatch>(msg.payload()) {
            Ok(batch) => {
                for rec in &batch.records {
                    self.flow(rec, msg, out);
                }
            }
            Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
        }
    }

    fn flow(&mut self, rec: &FlowRecord, msg: &InMessage, out: &mut Output) {
        if rec.log_status != LogStatus::Ok {
            metrics::counter!("psg_correlate_records_total", "outcome" => "no-traffic").increment(1);
            return;
        }
        let obs = match self.observe(rec, msg) {
            Ok(o) => o,
            Err(reason) => {
                let line = u32::try_from(rec.source.line).unwrap_or(0);
                let reason = format!(
                    "{reason} (record from {} partition {} offset {} line {line})",
                    rec.source.topic, rec.source.partition, rec.source.offset
                );
                out.dead_letters.push(DeadLetter::whole(msg, "attribution", reason));
                return;
            }
        };
        match self.windows.add(obs) {
            Added::FirstSeen(edge) => self.emit(edge, out),
            Added::Aggregated => {}
            Added::Late(first) => {
                metrics::counter!("psg_correlate_late_records_total").increment(1);
                if let Some(edge) = first {
                    self.emit(edge, out);
                }
            }
        }
        metrics::counter!("psg_correlate_records_total", "outcome" => "attributed").increment(1);
    }

    /// Attributes both ends of a flow record at its event time.
    fn observe(&mut self, rec: &FlowRecord, msg: &InMessage) -> Result<Observation, String> {
        let t = rec.end_time;
        let parse = |a: &Option<String>| a.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
        let (Some(src_if), Some(dst_if)) = (parse(&rec.src_addr), parse(&rec.dst_addr)) else {
            return Err("flow record with log-status OK has no source or destination address".into());
        };
        // Prefer the original packet addresses (NAT gateways log their own).
        let src = parse(&rec.pkt_src_addr).unwrap_or(src_if);
        let dst = parse(&rec.pkt_dst_addr).unwrap_or(dst_if);
        let mut src_end = self.index.attribute(src, t);
        let mut dst_end = self.index.attribute(dst, t);
        // The capturing interface identifies its own side directly, where
        // the packet address is the interface's (no translation).
        if let Some(owner) = rec.interface_id.as_deref().and_then(|i| self.index.by_interface(i, t)) {
            let holds = |ip: &IpAddr| owns(owner, ip);
            let side = match rec.flow_direction {
                Some(FlowDirection::Egress) => Some(true),
                Some(FlowDirection::Ingress) => Some(false),
                None if holds(&src_if) => Some(true),
                None if holds(&dst_if) => Some(false),
                None => None,
            };
            let owned = Attributed {
                resource_id: owner.resource_id.clone(),
                kind: EndpointKind::Resource,
                vpc_id: owner.vpc_id.clone(),
            };
            match side {
                Some(true) if src == src_if => src_end = owned,
                Some(false) if dst == dst_if => dst_end = owned,
                _ => {}
            }
        }
        for (end, addr) in [(&src_end, src), (&dst_end, dst)] {
            if end.kind != EndpointKind::Resource && !self.synthesized.contains_key(&end.resource_id) {
                let internal = end.kind == EndpointKind::UnknownHost;
                let row = ResourceRow::for_address(&addr.to_string(), internal, rec.provider, from_micros(t));
                self.synthesized.insert(end.resource_id.clone(), row);
            }
        }
        let direction = match (&src_end.vpc_id, &dst_end.vpc_id) {
            (Some(a), Some(b)) if a == b => EdgeDirection::IntraVpc,
            _ => match rec.flow_direction {
                Some(FlowDirection::Ingress) => EdgeDirection::Ingress,
                Some(FlowDirection::Egress) => EdgeDirection::Egress,
                None if src_end.kind == EndpointKind::External => EdgeDirection::Ingress,
                None => EdgeDirection::Egress,
            },
        };
        let Some(action) = rec.action else {
            return Err("flow record with log-status OK has no action".into());
        };
        Ok(Observation {
            key: EdgeKey {
                src: src_end,
                dst: dst_end,
                protocol: rec.protocol.unwrap_or(0),
                dst_port: rec.dst_port.unwrap_or(0),
                action,
            },
            src_addr: src.to_string(),
            dst_addr: dst.to_string(),
            direction,
            event_time: t,
            packets: rec.packets.unwrap_or(0),
            bytes: rec.bytes.unwrap_or(0),
            topic: Arc::clone(&msg.topic),
            partition: msg.partition,
            offset: msg.offset,
        })
    }

    fn emit(&self, edge: FlowEdge, out: &mut Output) {
        metrics::counter!("psg_correlate_edges_total", "kind" => edge.kind.as_str()).increment(1);
        match psg_avro_codec::encode(&edge) {
            Ok(bytes) => out.records.push(OutRecord::new(&self.edges_out, edge.src.resource_id.as_bytes(), bytes)),
            Err(e) => tracing::error!(error = %e, "cannot encode an edge"),
        }
    }

    /// Queues `data_flows` rows for `edges`, and rows for their endpoints.
    fn queue_rows(&mut self, edges: &[FlowEdge]) {
        if self.store.is_none() {
            return;
        }
        for e in edges {
            for end in [&e.src, &e.dst] {
                if self.ensured.contains(&end.resource_id) {
                    continue;
                }
                let row = match end.kind {
                    EndpointKind::Resource => self.index.resource(&end.resource_id).map(|r| r.row.clone()),
                    _ => self.synthesized.get(&end.resource_id).cloned(),
                };
                if let Some(row) = row {
                    self.pending_resources.push(row);
                }
            }
            self.pending_flows.push(data_flow_row(e));
        }
    }
}

fn owns(owner: &ResourceInfo, ip: &IpAddr) -> bool {
    let s = ip.to_string();
    owner.row.private_ips.contains(&s) || owner.row.public_ips.contains(&s)
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
    }
}

impl Processor for Correlate {
    /// Every redelivered batch is re-emitted in full (nothing is rebuilt from
    /// the database), so the next batch may be processed while this one's
    /// outputs are acknowledged.
    const PIPELINED: bool = true;

    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        // Inventory first, so flows in the same batch see it.
        for msg in batch.iter().filter(|m| m.kind == InputKind::Table) {
            self.resource(msg, &mut out);
        }
        for msg in batch.iter().filter(|m| m.kind == InputKind::Stream) {
            self.flows(msg, &mut out);
        }
        let closed = self.windows.close_ready();
        for edge in &closed {
            self.emit(edge.clone(), &mut out);
        }
        let rows = self.windows.drain_touched(&closed);
        self.queue_rows(&rows);
        metrics::gauge!("psg_correlate_index_resources").set(self.index.resources() as f64);
        metrics::gauge!("psg_correlate_index_addresses").set(self.index.addresses() as f64);
        metrics::gauge!("psg_correlate_open_windows").set(self.windows.open_windows() as f64);
        if let Some(w) = self.windows.watermark() {
            metrics::gauge!("psg_correlate_watermark_seconds").set(w as f64 / SECOND as f64);
        }
        Ok(out)
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        let Some(store) = &self.store else { return Ok(()) };
        let classify = |e: psg_store::Error| ProcessError::classify(e.is_transient(), e);
        if !self.pending_resources.is_empty() {
            psg_store::resources::ensure_resources(store, &self.pending_resources).await.map_err(classify)?;
            self.ensured.extend(self.pending_resources.drain(..).map(|r| r.resource_id));
        }
        if !self.pending_flows.is_empty() {
            psg_store::flows::upsert_data_flows(store, &self.pending_flows).await.map_err(classify)?;
            self.pending_flows.clear();
        }
        Ok(())
    }

    fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        self.windows.held_offsets()
    }
}
