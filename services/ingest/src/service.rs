//! The ingest [`Processor`]: routes each message by topic to the flow-log or
//! inventory parsers, produces the results, and queues resource rows for
//! the database.

use std::collections::BTreeMap;

use psg_config::Config;
use psg_domain::rows::ResourceRow;
use psg_domain::{FlowRecord, Resource};
use psg_kafka_runtime::{DeadLetter, InMessage, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;
use psg_store::resources::ResourceObservation;

pub use crate::flowlogs::AWS_FORMAT_HEADER;
use crate::flowlogs::{self, AwsLayouts};
use crate::parsed::{MessageCtx, Rejected};
use crate::{inventory, payload};

/// The ingest service.
#[derive(Debug)]
pub struct Ingest {
    flowlogs_topic: String,
    inventory_topic: String,
    flows_out: String,
    resources_out: String,
    max_message_bytes: usize,
    layouts: AwsLayouts,
    store: Option<Store>,
    pending: Vec<ResourceObservation>,
}

impl Ingest {
    /// Fails when a configured AWS layout is invalid.
    pub fn new(cfg: &Config, store: Option<Store>) -> Result<Self, String> {
        Ok(Self {
            flowlogs_topic: cfg.topics.flowlogs_raw.clone(),
            inventory_topic: cfg.topics.inventory_raw.clone(),
            flows_out: cfg.topics.flows_normalized.clone(),
            resources_out: cfg.topics.resources.clone(),
            max_message_bytes: cfg.ingest.max_message_bytes,
            layouts: AwsLayouts::new(cfg.ingest.aws_format.as_deref(), &cfg.ingest.aws_formats)?,
            store,
            pending: Vec::new(),
        })
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
        let ctx = MessageCtx { topic: &msg.topic, partition: msg.partition, offset: msg.offset };
        if *msg.topic == *self.flowlogs_topic {
            let parsed = flowlogs::parse(&text, msg.header(AWS_FORMAT_HEADER), &self.layouts, ctx);
            metrics::counter!("psg_ingest_records_total", "kind" => "flow").increment(parsed.records.len() as u64);
            for rec in &parsed.records {
                match psg_avro_codec::encode(rec) {
                    Ok(bytes) => out.records.push(OutRecord::new(&self.flows_out, flow_key(rec), bytes)),
                    Err(e) => out.dead_letters.push(DeadLetter::record(
                        msg,
                        rec.source.line as u32,
                        b"",
                        "encode",
                        e.to_string(),
                    )),
                }
            }
            dead_letters(msg, parsed.rejected, out);
        } else if *msg.topic == *self.inventory_topic {
            let parsed = inventory::parse(&text, ctx);
            metrics::counter!("psg_ingest_records_total", "kind" => "resource").increment(parsed.records.len() as u64);
            for resource in parsed.records {
                self.emit_resource(msg, resource, out);
            }
            dead_letters(msg, parsed.rejected, out);
        } else {
            out.dead_letters.push(DeadLetter::whole(
                msg,
                "routing",
                format!("ingest does not read topic {}", msg.topic),
            ));
        }
    }

    fn emit_resource(&mut self, msg: &InMessage, resource: Resource, out: &mut Output) {
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
            Err(e) => out.dead_letters.push(DeadLetter::record(
                msg,
                resource.source.line as u32,
                b"",
                "encode",
                e.to_string(),
            )),
        }
    }
}

fn dead_letters(msg: &InMessage, rejected: Vec<Rejected>, out: &mut Output) {
    for r in rejected {
        out.dead_letters.push(match r.line {
            0 => DeadLetter::whole(msg, r.kind, r.reason),
            line => DeadLetter::record(msg, line, &r.raw, r.kind, r.reason),
        });
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
