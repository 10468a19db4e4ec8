//! The ingest [`Processor`]: routes each message by topic to the flow-log or
//! inventory parsers, produces the results, and queues resource rows for
//! the database.

use std::collections::BTreeMap;

use psg_config::Config;
use psg_domain::rows::ResourceRow;
use psg_domain::time::Micros;
use psg_domain::{FlowBatch, FlowRecord, Resource};
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
    /// Partitions of `flows.normalized`.
    output_partitions: i32,
    layouts: AwsLayouts,
    store: Option<Store>,
    pending: Vec<ResourceObservation>,
    /// Per (provider, account, VPC): the newest flow end time seen, seconds.
    vpc_last_seen: std::collections::HashMap<(String, String, String), f64>,
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
            output_partitions: cfg.kafka.partitions,
            layouts: AwsLayouts::new(cfg.ingest.aws_format.as_deref(), &cfg.ingest.aws_formats)?,
            store,
            pending: Vec::new(),
            vpc_last_seen: std::collections::HashMap::new(),
        })
    }

    /// Sets the partition count of `flows.normalized` (read from the broker
    /// at start; the configured `kafka.partitions` until then).
    pub fn set_output_partitions(&mut self, partitions: i32) {
        self.output_partitions = partitions.max(1);
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
            self.count_per_vpc(&parsed.records);
            self.emit_flows(msg, parsed.records, out);
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

    /// Flow records per (provider, account, VPC), and the newest event time
    /// of each: `psg_ingest_vpc_flow_records_total` and
    /// `psg_ingest_vpc_last_flow_timestamp_seconds`, so an alert can name the
    /// one covered VPC whose flow logs stopped. A message's records mostly
    /// share a VPC: a few keys per message, counted locally first.
    fn count_per_vpc(&mut self, records: &[FlowRecord]) {
        let mut keys: Vec<((&str, &str, &str), u64, Micros)> = Vec::new();
        for r in records {
            let key = (r.provider.as_str(), r.account_id.as_deref().unwrap_or(""), r.vpc_id.as_deref().unwrap_or(""));
            match keys.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, n, t)) => {
                    *n += 1;
                    *t = (*t).max(r.end_time);
                }
                None => keys.push((key, 1, r.end_time)),
            }
        }
        for ((provider, account, vpc), n, newest) in keys {
            let labels = [("provider", provider.to_owned()), ("account", account.to_owned()), ("vpc", vpc.to_owned())];
            metrics::counter!("psg_ingest_vpc_flow_records_total", &labels).increment(n);
            let secs = newest as f64 / 1e6;
            let slot =
                self.vpc_last_seen.entry((provider.to_owned(), account.to_owned(), vpc.to_owned())).or_insert(f64::MIN);
            if secs > *slot {
                *slot = secs;
                metrics::gauge!("psg_ingest_vpc_last_flow_timestamp_seconds", &labels).set(secs);
            }
        }
    }

    /// One FlowBatch per output partition that gets records: both reports
    /// of a flow (one per interface, in different messages) land in the same
    /// partition, chosen by the unordered address pair.
    fn emit_flows(&self, msg: &InMessage, records: Vec<FlowRecord>, out: &mut Output) {
        if records.is_empty() {
            return;
        }
        let n = self.output_partitions.max(1) as usize;
        let mut groups: Vec<Vec<FlowRecord>> = (0..n).map(|_| Vec::new()).collect();
        for rec in records {
            groups[flow_partition(&rec, n)].push(rec);
        }
        let key = format!("{}/{}/{}", msg.topic, msg.partition, msg.offset);
        for (partition, records) in groups.into_iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            let count = records.len();
            match psg_avro_codec::encode(&FlowBatch { records }) {
                Ok(bytes) => {
                    out.records.push(OutRecord::to_partition(&self.flows_out, partition as i32, key.as_bytes(), bytes))
                }
                Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "encode", format!("{count} records: {e}"))),
            }
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

/// The output partition of a record: a stable hash (FNV-1a, mixed) of the
/// unordered pair of addresses, so both reports of one flow meet in one
/// partition; the interface for records without addresses (NODATA).
pub fn flow_partition(r: &FlowRecord, partitions: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let a = r.pkt_src_addr.as_deref().or(r.src_addr.as_deref());
    let b = r.pkt_dst_addr.as_deref().or(r.dst_addr.as_deref());
    match (a, b) {
        (Some(a), Some(b)) => {
            let (x, y) = if a <= b { (a, b) } else { (b, a) };
            feed(x.as_bytes());
            feed(b"|");
            feed(y.as_bytes());
        }
        _ => feed(r.interface_id.as_deref().unwrap_or_default().as_bytes()),
    }
    // FNV's low bits are weak (the parity of the input): mix (MurmurHash3's finaliser).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % partitions.max(1) as u64) as usize
}

impl Processor for Ingest {
    /// Every redelivered batch is re-emitted in full (nothing is rebuilt from
    /// the database), so the next batch may be processed while this one's
    /// outputs are acknowledged.
    const PIPELINED: bool = true;

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
