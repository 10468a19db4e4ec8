//! The ingest [`Processor`]: routes each message by topic to the flow-log or
//! inventory parsers, produces the results, and queues resource rows for
//! the database.

use std::collections::BTreeMap;

use psg_config::Config;
use psg_domain::rows::ResourceRow;
use psg_domain::{FlowRecord, Resource, SourceRef};
use psg_kafka_runtime::{DeadLetter, InMessage, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;
use psg_store::resources::ResourceObservation;

use crate::aws::Layout;
use crate::inventory;
use crate::payload;

/// Message header that names the AWS field layout of the message's lines
/// (e.g. `version vpc-id srcaddr ...`); it wins over a header line in the
/// payload and over the default format.
pub const AWS_FORMAT_HEADER: &str = "psg.aws.format";

/// The ingest service.
#[derive(Debug)]
pub struct Ingest {
    flowlogs_topic: String,
    inventory_topic: String,
    flows_out: String,
    resources_out: String,
    max_message_bytes: usize,
    store: Option<Store>,
    pending: Vec<ResourceObservation>,
}

impl Ingest {
    pub fn new(cfg: &Config, store: Option<Store>) -> Self {
        Self {
            flowlogs_topic: cfg.topics.flowlogs_raw.clone(),
            inventory_topic: cfg.topics.inventory_raw.clone(),
            flows_out: cfg.topics.flows_normalized.clone(),
            resources_out: cfg.topics.resources.clone(),
            max_message_bytes: cfg.ingest.max_message_bytes,
            store,
            pending: Vec::new(),
        }
    }

    /// The topics ingest consumes.
    pub fn input_topics(&self) -> Vec<String> {
        vec![self.flowlogs_topic.clone(), self.inventory_topic.clone()]
    }

    /// Processes one message into `out` (pure but for queuing rows).
    pub fn handle(&mut self, msg: &InMessage, out: &mut Output) {
        let text = match payload::decode(msg.payload(), self.max_message_bytes) {
            Ok(t) => t,
            Err(e) => {
                out.dead_letters.push(DeadLetter::whole(msg, e.kind(), e.to_string()));
                return;
            }
        };
        if *msg.topic == *self.flowlogs_topic {
            self.flows(msg, &text, out);
        } else if *msg.topic == *self.inventory_topic {
            self.inventory(msg, &text, out);
        } else {
            out.dead_letters.push(DeadLetter::whole(
                msg,
                "routing",
                format!("ingest does not read topic {}", msg.topic),
            ));
        }
    }

    fn flows(&self, msg: &InMessage, text: &[u8], out: &mut Output) {
        if payload::is_json(text) {
            out.dead_letters.push(DeadLetter::whole(
                msg,
                "unsupported",
                "JSON flow logs (Azure NSG/VNet, GCP VPC) are not supported by this version: only AWS VPC flow-log lines are",
            ));
            return;
        }
        let mut layout = match msg.header(AWS_FORMAT_HEADER) {
            None => Layout::default_v2(),
            Some(spec) => match std::str::from_utf8(spec)
                .map_err(|e| e.to_string())
                .and_then(|s| Layout::parse(s).map_err(|e| e.to_string()))
            {
                Ok(l) => l,
                Err(e) => {
                    out.dead_letters.push(DeadLetter::whole(msg, "format", format!("header {AWS_FORMAT_HEADER}: {e}")));
                    return;
                }
            },
        };
        let layout_from_header = msg.header(AWS_FORMAT_HEADER).is_some();
        for (line_no, line) in payload::lines(text) {
            let Ok(line) = std::str::from_utf8(line) else {
                out.dead_letters.push(DeadLetter::record(msg, line_no, line, "encoding", "line is not valid UTF-8"));
                continue;
            };
            if Layout::is_header_line(line) {
                if layout_from_header {
                    continue; // the message header names the layout; a header line is just a header
                }
                match Layout::parse(line) {
                    Ok(l) => layout = l,
                    Err(e) => {
                        out.dead_letters.push(DeadLetter::whole(msg, "format", format!("header line {line_no}: {e}")));
                        return;
                    }
                }
                continue;
            }
            let source = SourceRef {
                topic: msg.topic.to_string(),
                partition: msg.partition,
                offset: msg.offset,
                line: line_no as i32,
            };
            match crate::aws::parse_line(&layout, line, source) {
                Ok(rec) => match psg_avro_codec::encode(&rec) {
                    Ok(bytes) => out.records.push(OutRecord::new(&self.flows_out, flow_key(&rec), bytes)),
                    Err(e) => out.dead_letters.push(DeadLetter::record(
                        msg,
                        line_no,
                        line.as_bytes(),
                        "encode",
                        e.to_string(),
                    )),
                },
                Err(e) => {
                    out.dead_letters.push(DeadLetter::record(msg, line_no, line.as_bytes(), "parse", e.to_string()))
                }
            }
        }
        metrics::counter!("psg_ingest_messages_total", "kind" => "flowlog").increment(1);
    }

    fn inventory(&mut self, msg: &InMessage, text: &[u8], out: &mut Output) {
        // A whole JSON document (one object, or an array of them), or one object per line.
        let values: Vec<(u32, Result<serde_json::Value, String>, &[u8])> =
            match serde_json::from_slice::<serde_json::Value>(text) {
                Ok(serde_json::Value::Array(items)) => {
                    items.into_iter().enumerate().map(|(i, v)| (i as u32 + 1, Ok(v), &b""[..])).collect()
                }
                Ok(v) => vec![(1, Ok(v), text)],
                Err(_) => payload::lines(text)
                    .map(|(n, l)| (n, serde_json::from_slice(l).map_err(|e| format!("invalid JSON: {e}")), l))
                    .collect(),
            };
        for (line_no, value, raw) in values {
            let source = SourceRef {
                topic: msg.topic.to_string(),
                partition: msg.partition,
                offset: msg.offset,
                line: line_no as i32,
            };
            let parsed = value.map_err(inventory::InventoryError::Json).and_then(|v| inventory::parse_value(v, source));
            match parsed {
                Ok(resource) => self.emit_resource(msg, line_no, raw, resource, out),
                Err(e) => {
                    let kind =
                        if matches!(e, inventory::InventoryError::Unsupported(_)) { "unsupported" } else { "parse" };
                    let raw = if raw.is_empty() { msg.payload() } else { raw };
                    out.dead_letters.push(DeadLetter::record(msg, line_no, raw, kind, e.to_string()));
                }
            }
        }
        metrics::counter!("psg_ingest_messages_total", "kind" => "inventory").increment(1);
    }

    fn emit_resource(&mut self, msg: &InMessage, line_no: u32, raw: &[u8], resource: Resource, out: &mut Output) {
        match psg_avro_codec::encode(&resource) {
            Ok(bytes) => {
                out.records.push(OutRecord::new(&self.resources_out, resource.resource_id.as_bytes(), bytes));
                if self.store.is_some() {
                    self.pending.push(ResourceObservation {
                        row: ResourceRow::from_message(&resource),
                        tags: resource.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>(),
                        applied_by: format!("ingest:{}", msg.topic),
                    });
                }
            }
            Err(e) => out.dead_letters.push(DeadLetter::record(msg, line_no, raw, "encode", e.to_string())),
        }
    }
}

/// Both reports of one flow (one per interface) share a key, so they land
/// in the same partition: the unordered pair of addresses, or the interface
/// for records without addresses (NODATA).
fn flow_key(r: &FlowRecord) -> Vec<u8> {
    let a = r.pkt_src_addr.as_deref().or(r.src_addr.as_deref());
    let b = r.pkt_dst_addr.as_deref().or(r.dst_addr.as_deref());
    match (a, b) {
        (Some(a), Some(b)) => {
            let (x, y) = if a <= b { (a, b) } else { (b, a) };
            format!("{x}|{y}").into_bytes()
        }
        _ => r.interface_id.clone().unwrap_or_default().into_bytes(),
    }
}

impl Processor for Ingest {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        for msg in batch {
            self.handle(msg, &mut out);
        }
        Ok(out)
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        if let Some(store) = &self.store
            && !self.pending.is_empty()
        {
            psg_store::resources::upsert_resources(store, &self.pending)
                .await
                .map_err(|e| ProcessError::classify(e.is_transient(), e))?;
        }
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
