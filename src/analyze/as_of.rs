//! `analyze --as-of T`: scope as it stood at `T`. Every input is read,
//! parsed and counted as without it (so the count of records read still
//! adds up), but between ingest and the services after it a gate passes on
//! only what had happened by `T`: flow records that ended by then (a record
//! is delivered after its capture interval ends) and inventory observed by
//! then. Correlate, classify and evidence read the gated topics; the
//! collector counts records on the ungated ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use psg_config::Config;
use psg_domain::time::Micros;
use psg_domain::{FlowBatch, Resource};
use psg_kafka_runtime::{InMessage, OutRecord, Output, ProcessError, Processor};

/// Where the gate puts what passes: the topics the later services read.
pub(crate) const FLOWS: &str = "flows.normalized.as-of";
pub(crate) const RESOURCES: &str = "resources.as-of";

/// The configuration of the services after the gate: `cfg` reading the
/// gated topics.
pub(crate) fn downstream(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    c.topics.flows_normalized = FLOWS.to_owned();
    c.topics.resources = RESOURCES.to_owned();
    c
}

/// Passes on what had happened by `until` (see the module docs).
pub(crate) struct Gate {
    until: Micros,
    flows: String,
    resources: String,
    /// Counted here: flow records that ended after `until`, and resources
    /// observed after it.
    later_records: Arc<AtomicU64>,
    later_resources: Arc<AtomicU64>,
}

impl Gate {
    /// A gate reading `cfg`'s (ungated) topics, counting what it holds back
    /// into `later` (flow records, resources).
    pub(crate) fn new(cfg: &Config, until: Micros, later: (Arc<AtomicU64>, Arc<AtomicU64>)) -> Self {
        let (later_records, later_resources) = later;
        Self {
            until,
            flows: cfg.topics.flows_normalized.clone(),
            resources: cfg.topics.resources.clone(),
            later_records,
            later_resources,
        }
    }

    /// The topics it reads: (stream, table), as correlate reads them.
    pub(crate) fn inputs(&self) -> (Vec<String>, Vec<String>) {
        (vec![self.flows.clone()], vec![self.resources.clone()])
    }

    fn pass(&self, m: &InMessage, out: &mut Output) -> Result<(), String> {
        let key = m.key.clone().unwrap_or_default();
        if *m.topic == *self.flows {
            let batch: FlowBatch = psg_avro_codec::decode(m.payload()).map_err(|e| e.to_string())?;
            let read = batch.records.len();
            let records: Vec<_> = batch.records.into_iter().filter(|r| r.end_time <= self.until).collect();
            self.later_records.fetch_add((read - records.len()) as u64, Ordering::Relaxed);
            if !records.is_empty() {
                let bytes = psg_avro_codec::encode(&FlowBatch { records }).map_err(|e| e.to_string())?;
                out.records.push(OutRecord::to_partition(FLOWS, m.partition, key, bytes));
            }
        } else if *m.topic == *self.resources {
            let Some(payload) = &m.payload else { return Ok(()) };
            let r: Resource = psg_avro_codec::decode(payload).map_err(|e| e.to_string())?;
            if r.observed_at <= self.until {
                out.records.push(OutRecord::to_partition(RESOURCES, m.partition, key, payload.clone()));
            } else {
                self.later_resources.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl Processor for Gate {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        for m in batch {
            // Ingest's own output: a message it cannot read is a defect.
            self.pass(m, &mut out).map_err(|e| ProcessError::Fatal(format!("--as-of gate, {}: {e}", m.topic)))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use psg_domain::time::SECOND;
    use psg_domain::{CloudProvider, FlowFormat, FlowRecord, ResourceType, SourceRef};
    use psg_kafka_runtime::InputKind;

    use super::*;

    fn message(topic: &str, payload: Vec<u8>) -> InMessage {
        InMessage {
            kind: InputKind::Stream,
            topic: topic.into(),
            partition: 2,
            offset: 0,
            key: Some(b"k".to_vec()),
            payload: Some(payload),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    #[tokio::test]
    async fn only_what_happened_by_then_passes() {
        let cfg = Config::default();
        let later: (Arc<AtomicU64>, Arc<AtomicU64>) = Default::default();
        let mut gate = Gate::new(&cfg, 100 * SECOND, (Arc::clone(&later.0), Arc::clone(&later.1)));
        let src = SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 0, line: 1 };
        let flow = |end: i64| FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, src.clone(), 0, end * SECOND);
        let batch = FlowBatch { records: vec![flow(40), flow(100), flow(101)] };
        let resource = |at: i64| {
            let r = Resource::new(
                "i-1".to_owned(),
                CloudProvider::Aws,
                ResourceType::Ec2Instance,
                at * SECOND,
                src.clone(),
            );
            psg_avro_codec::encode(&r).unwrap()
        };
        let out = gate
            .process(&[
                message(&cfg.topics.flows_normalized, psg_avro_codec::encode(&batch).unwrap()),
                message(&cfg.topics.resources, resource(100)),
                message(&cfg.topics.resources, resource(150)),
            ])
            .await
            .unwrap();
        assert_eq!(out.records.len(), 2);
        let flows: FlowBatch = psg_avro_codec::decode(&out.records[0].payload).unwrap();
        assert_eq!(flows.records.iter().map(|r| r.end_time / SECOND).collect::<Vec<_>>(), vec![40, 100]);
        assert_eq!((out.records[0].topic.as_str(), out.records[0].partition), (FLOWS, Some(2)));
        assert_eq!(out.records[1].topic, RESOURCES);
        assert_eq!(later.0.load(Ordering::Relaxed), 1);
        assert_eq!(later.1.load(Ordering::Relaxed), 1);
        // A malformed message is a defect, not input: the run stops.
        assert!(matches!(
            gate.process(&[message(&cfg.topics.flows_normalized, b"junk".to_vec())]).await,
            Err(ProcessError::Fatal(_))
        ));
    }
}
