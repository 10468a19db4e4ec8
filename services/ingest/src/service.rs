//! The ingest [`Processor`]: routes each message by topic to the flow-log or
//! inventory parsers, produces the results, and queues resource rows for
//! the database.
//!
//! Bounds on what one message costs, whatever it holds:
//! - each flow record is encoded as the parser hands it over (never a
//!   vector of every record of the message), into a `FlowBatch` per output
//!   partition that is closed at [`MAX_FLOW_BATCH_BYTES`], under Kafka's
//!   default `message.max.bytes` (1,000,000 bytes in the producer): a message
//!   of a million records becomes a few hundred batches, none too large to
//!   produce;
//! - at most [`MAX_DEAD_LETTERS_PER_MESSAGE`] records of one message are
//!   dead-lettered one by one; the records refused after them go into one
//!   more dead letter (kind `too-many-errors`), their texts one per line in
//!   input order, its line header the first of them, its reason their count
//!   and the first one's reason. A message of millions of bad lines costs a
//!   thousand and one dead letters, not millions, every refused record is
//!   still in the dead-letter topic exactly once (replaying the dead letters
//!   never repeats a good record), and the good records go through.

use std::collections::BTreeMap;

use psg_config::Config;
use psg_domain::rows::ResourceRow;
use psg_domain::time::Micros;
use psg_domain::{FlowRecord, Resource};
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{CancellationToken, DeadLetter, InMessage, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;
use psg_store::resources::ResourceObservation;

pub use crate::flowlogs::AWS_FORMAT_HEADER;
use crate::flowlogs::{self, AwsLayouts};
use crate::parsed::{MessageCtx, Rejected, Sink};
use crate::{inventory, payload};

/// The largest `FlowBatch` message ingest produces (Avro bytes). Kafka's
/// defaults refuse messages over about 1 MB (`message.max.bytes`: 1,000,000
/// in librdkafka's producer, 1,048,588 on the broker); half of that leaves
/// room for the key and headers and is still thousands of records.
pub const MAX_FLOW_BATCH_BYTES: usize = 512 * 1024;

/// The most records of one message dead-lettered one by one.
pub const MAX_DEAD_LETTERS_PER_MESSAGE: usize = 1000;

/// The ingest service.
#[derive(Debug)]
pub struct Ingest {
    flowlogs_topic: String,
    inventory_topic: String,
    flows_out: String,
    resources_out: String,
    dead_letter: String,
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
    pub fn new(cfg: &Config, store: Option<Store>) -> Result<Self, crate::flowlogs::LayoutSettingError> {
        Ok(Self {
            flowlogs_topic: cfg.topics.flowlogs_raw.clone(),
            inventory_topic: cfg.topics.inventory_raw.clone(),
            flows_out: cfg.topics.flows_normalized.clone(),
            resources_out: cfg.topics.resources.clone(),
            dead_letter: cfg.topics.ingest_dlq.clone(),
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

    /// Processes one message into `out` (pure but for queuing rows).
    pub fn handle(&mut self, msg: &InMessage, out: &mut Output) {
        let text = match payload::decode(msg.payload(), self.max_message_bytes) {
            Ok(t) => t,
            Err(e) => {
                out.dead_letters.push(DeadLetter::whole(msg, e.kind(), e.to_string()));
                return;
            }
        };
        let ctx =
            MessageCtx { topic: &msg.topic, partition: msg.partition, offset: msg.offset, time: transport_time(msg) };
        if *msg.topic == *self.flowlogs_topic {
            let mut sink = FlowSink::new(msg, &self.flows_out, self.output_partitions, out);
            flowlogs::parse_into(&text, msg.header(AWS_FORMAT_HEADER), &self.layouts, ctx, &mut sink);
            let (records, vpcs) = sink.finish();
            metrics::counter!("psg_ingest_records_total", "kind" => "flow").increment(records);
            self.count_per_vpc(vpcs);
        } else if *msg.topic == *self.inventory_topic {
            let mut sink = ResourceSink { ingest: self, msg, out, records: 0, refused: Refusals::default() };
            inventory::parse_into(&text, ctx, &mut sink);
            let records = sink.records;
            sink.refused.finish(msg, sink.out);
            metrics::counter!("psg_ingest_records_total", "kind" => "resource").increment(records);
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
    fn count_per_vpc(&mut self, keys: Vec<(VpcKey, u64, Micros)>) {
        for ((provider, account, vpc), n, newest) in keys {
            let labels = [("provider", provider.to_owned()), ("account", account.clone()), ("vpc", vpc.clone())];
            metrics::counter!("psg_ingest_vpc_flow_records_total", &labels).increment(n);
            let secs = newest as f64 / 1e6;
            let slot = self.vpc_last_seen.entry((provider.to_owned(), account, vpc)).or_insert(f64::MIN);
            if secs > *slot {
                *slot = secs;
                metrics::gauge!("psg_ingest_vpc_last_flow_timestamp_seconds", &labels).set(secs);
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

/// (provider, account, VPC) of flow records, for the per-VPC metrics.
type VpcKey = (&'static str, String, String);

/// The dead letters of one message: the first
/// [`MAX_DEAD_LETTERS_PER_MESSAGE`] refused records one by one, then the
/// texts of the others gathered, one per line, into one more
/// ([`Refusals::finish`]).
#[derive(Debug, Default)]
struct Refusals {
    alone: usize,
    /// Refused records not dead-lettered alone: how many, the first one's
    /// line and reason, and their texts.
    more: u64,
    first_more: Option<(u32, String)>,
    texts: Vec<u8>,
}

impl Refusals {
    fn push(&mut self, msg: &InMessage, r: Rejected, out: &mut Output) {
        if r.line == 0 {
            out.dead_letters.push(DeadLetter::whole(msg, r.kind, r.reason));
        } else if self.alone < MAX_DEAD_LETTERS_PER_MESSAGE {
            self.alone += 1;
            out.dead_letters.push(DeadLetter::record(msg, r.line, &r.raw, r.kind, r.reason));
        } else {
            if self.more > 0 {
                self.texts.push(b'\n');
            }
            self.texts.extend_from_slice(&r.raw);
            self.more += 1;
            self.first_more.get_or_insert((r.line, r.reason));
        }
    }

    fn finish(self, msg: &InMessage, out: &mut Output) {
        if let Some((line, reason)) = self.first_more {
            let mut dl = DeadLetter::record(
                msg,
                line,
                &self.texts,
                "too-many-errors",
                format!(
                    "{} more records of this message were refused after the first {MAX_DEAD_LETTERS_PER_MESSAGE} \
                     (dead-lettered one by one): they are this dead letter, one per line, from record {line} on; \
                     the first of them: {reason}",
                    self.more
                ),
            );
            dl.records = Some(self.more);
            out.dead_letters.push(dl);
        }
    }
}

/// Where the flow-log parsers put one message's records: each is encoded at
/// once into the open `FlowBatch` of its output partition, and a batch is
/// closed before it passes [`MAX_FLOW_BATCH_BYTES`].
struct FlowSink<'a> {
    msg: &'a InMessage,
    topic: &'a str,
    key: String,
    /// Per output partition: the encoded records of the open batch, and how many.
    open: Vec<(Vec<u8>, i64)>,
    scratch: Vec<u8>,
    out: &'a mut Output,
    records: u64,
    vpcs: Vec<(VpcKey, u64, Micros)>,
    /// The entry of `vpcs` the last record counted in.
    last_vpc: usize,
    refused: Refusals,
}

impl<'a> FlowSink<'a> {
    fn new(msg: &'a InMessage, topic: &'a str, partitions: i32, out: &'a mut Output) -> Self {
        Self {
            msg,
            topic,
            key: format!("{}/{}/{}", msg.topic, msg.partition, msg.offset),
            open: (0..partitions.max(1)).map(|_| (Vec::new(), 0)).collect(),
            scratch: Vec::with_capacity(512),
            out,
            records: 0,
            vpcs: Vec::new(),
            last_vpc: 0,
            refused: Refusals::default(),
        }
    }

    /// Closes the open batch of `partition` (exactly what
    /// `psg_avro_codec::encode(&FlowBatch { records })` writes).
    fn close(&mut self, partition: usize) {
        let (items, count) = &mut self.open[partition];
        if *count == 0 {
            return;
        }
        let bytes = psg_avro_codec::flow_batch_from_encoded(*count as usize, items);
        items.clear();
        *count = 0;
        self.out.records.push(OutRecord::to_partition(self.topic, partition as i32, self.key.as_bytes(), bytes));
    }

    /// Closes every open batch; the record count and per-VPC counts.
    fn finish(mut self) -> (u64, Vec<(VpcKey, u64, Micros)>) {
        for p in 0..self.open.len() {
            self.close(p);
        }
        self.refused.finish(self.msg, self.out);
        (self.records, self.vpcs)
    }

    fn count_vpc(&mut self, r: &FlowRecord) {
        let (provider, account, vpc) =
            (r.provider.as_str(), r.account_id.as_deref().unwrap_or(""), r.vpc_id.as_deref().unwrap_or(""));
        let same = |((p, a, v), _, _): &(VpcKey, u64, Micros)| *p == provider && a == account && v == vpc;
        // A message's records are mostly of one VPC: the last one first.
        let at = match self.vpcs.get(self.last_vpc) {
            Some(last) if same(last) => Some(self.last_vpc),
            _ => self.vpcs.iter().position(same),
        };
        self.last_vpc = match at {
            Some(i) => {
                let (_, n, t) = &mut self.vpcs[i];
                *n += 1;
                *t = (*t).max(r.end_time);
                i
            }
            None => {
                self.vpcs.push(((provider, account.to_owned(), vpc.to_owned()), 1, r.end_time));
                self.vpcs.len() - 1
            }
        };
    }
}

/// Message header with the time of the object a flow-log message was read
/// from (an S3 object's LastModified), RFC 3339 or Unix seconds: the time of
/// records whose layout has none.
pub const OBJECT_TIME_HEADER: &str = "psg.object.time";

/// The time of a message, for records that carry none: header
/// [`OBJECT_TIME_HEADER`], else the Kafka message timestamp.
fn transport_time(msg: &InMessage) -> Option<crate::parsed::TransportTime> {
    let header = msg.header(OBJECT_TIME_HEADER).and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| {
        let v = v.trim();
        crate::fields::unix_time(OBJECT_TIME_HEADER, v).or_else(|_| crate::fields::rfc3339(OBJECT_TIME_HEADER, v)).ok()
    });
    match header {
        Some(at) => Some(crate::parsed::TransportTime { at, source: "object-time" }),
        None => msg
            .timestamp_ms
            .filter(|ms| *ms > 0)
            .map(|ms| crate::parsed::TransportTime { at: ms * 1000, source: "kafka-timestamp" }),
    }
}

impl Sink<FlowRecord> for FlowSink<'_> {
    /// Both reports of a flow (one per interface, in different messages)
    /// land in the same partition, chosen by the unordered address pair.
    fn record(&mut self, rec: FlowRecord) {
        let line = u32::try_from(rec.source.line).unwrap_or(0);
        self.scratch.clear();
        if let Err(e) = psg_avro_codec::binary::encode_into(&rec, &mut self.scratch) {
            self.refused.push(self.msg, Rejected::new(line, Vec::new(), "encode", e.to_string()), self.out);
            return;
        }
        if self.scratch.len() + psg_avro_codec::FLOW_BATCH_OVERHEAD > MAX_FLOW_BATCH_BYTES {
            let reason = format!(
                "the record encodes to {} bytes, more than a {}-byte {} message may hold",
                self.scratch.len(),
                MAX_FLOW_BATCH_BYTES,
                self.topic
            );
            self.refused.push(self.msg, Rejected::new(line, Vec::new(), "too-large", reason), self.out);
            return;
        }
        let p = flow_partition(&rec, self.open.len());
        if self.open[p].0.len() + self.scratch.len() + psg_avro_codec::FLOW_BATCH_OVERHEAD > MAX_FLOW_BATCH_BYTES {
            self.close(p);
        }
        let (items, count) = &mut self.open[p];
        items.extend_from_slice(&self.scratch);
        *count += 1;
        self.records += 1;
        self.count_vpc(&rec);
    }

    fn reject(&mut self, r: Rejected) {
        self.refused.push(self.msg, r, self.out);
    }

    /// Counted per message in `psg_ingest_unknown_fields_total{field}`;
    /// logged once per field name and process.
    fn unknown_fields(&mut self, names: &[String]) {
        static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        for name in names {
            metrics::counter!("psg_ingest_unknown_fields_total", "field" => name.clone()).increment(1);
            let Ok(mut logged) = LOGGED.lock() else { continue };
            if logged.len() < 256 && !logged.contains(name) {
                logged.push(name.clone());
                let hint =
                    crate::aws::did_you_mean(name).map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default();
                tracing::warn!(
                    field = %name,
                    topic = %self.msg.topic,
                    "an AWS flow-log field this version does not know: its values are kept as they are{hint}"
                );
            }
        }
    }
}

/// Where the inventory parser puts one message's resources: produced (and
/// queued for the database) as they come.
struct ResourceSink<'a> {
    ingest: &'a mut Ingest,
    msg: &'a InMessage,
    out: &'a mut Output,
    records: u64,
    refused: Refusals,
}

impl Sink<Resource> for ResourceSink<'_> {
    fn record(&mut self, resource: Resource) {
        self.records += 1;
        self.ingest.emit_resource(self.msg, resource, self.out);
    }

    fn reject(&mut self, r: Rejected) {
        self.refused.push(self.msg, r, self.out);
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

impl psg_service::Service for Ingest {
    const NAME: &'static str = "ingest";
    const CONFIG_SECTION: &'static str = "ingest";
    type Error = crate::flowlogs::LayoutSettingError;

    async fn build(cfg: &Config, store: Option<Store>) -> Result<Self, Self::Error> {
        Self::new(cfg, store)
    }

    fn topics(&self) -> psg_service::Topics {
        psg_service::Topics {
            streams: vec![self.flowlogs_topic.clone(), self.inventory_topic.clone()],
            tables: Vec::new(),
            outputs: vec![TopicSpec::stream(&self.flows_out), TopicSpec::table(&self.resources_out)],
            dead_letter: self.dead_letter.clone(),
        }
    }

    /// Learns the partition count of `flows.normalized` from the brokers
    /// (waiting, bounded, for the topic to appear): records are keyed to a
    /// partition by their flow's unit.
    async fn prepare(&mut self, cfg: &Config, stop: &CancellationToken) -> psg_kafka_runtime::Result<()> {
        let n = psg_kafka_runtime::runner::partition_count(&cfg.kafka, &self.flows_out, stop).await?;
        self.set_output_partitions(n);
        Ok(())
    }
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
