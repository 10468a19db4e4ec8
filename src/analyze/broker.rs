//! The same analysis over librdkafka's mock cluster (the transport `analyze`
//! used before the in-process one): kept to check that both transports give
//! the same answers. The mock cluster keeps only about 5 MB per partition,
//! so only small inputs go this way.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use psg_config::Config;
use psg_domain::{Alert, FlowBatch, FlowEdge, Resource, ScopeDecision};
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::{CancellationToken, OutRecord, Output, Progress};
use psg_report::Summary;
use psg_telemetry::Health;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::Outcome;
use crate::error::CliError;
use crate::services::{self, ServiceKind};

/// One message per input (flow chunks as the in-process run cuts them).
pub(crate) struct Input {
    pub topic: String,
    pub key: String,
    pub bytes: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

fn kafka_client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("group.id", "pci-scope-guard-analyze").set("enable.auto.commit", "false");
    c
}

/// Waits until every service has processed every message of its inputs and
/// nothing moved for a few polls.
async fn wait_idle(
    bootstrap: &str,
    progress: &Progress,
    partitions: i32,
    services: &mut tokio::task::JoinSet<Result<(), CliError>>,
) -> Result<(), CliError> {
    let stage = "broker";
    let consumer: BaseConsumer = kafka_client(bootstrap).create().map_err(|e| CliError::Runtime(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let mut stable = 0;
    let mut last_total = -1;
    loop {
        // A service runs until shutdown: one that ended has failed.
        if let Some(ended) = services.try_join_next() {
            return Err(match ended {
                Ok(Err(e)) => e,
                Ok(Ok(())) => CliError::Runtime("a service stopped before its input was processed".into()),
                Err(e) => CliError::Runtime(format!("a service panicked: {e}")),
            });
        }
        let mut behind = false;
        let (mut done, mut total) = (0i64, 0i64);
        for (service, topic) in progress.inputs() {
            for p in 0..partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(5))
                    .map_err(|e| CliError::Runtime(format!("{topic}: {e}")))?;
                let pos = progress.position(&service, &topic, p);
                total += high;
                done += pos.min(high);
                if pos < high {
                    behind = true;
                }
            }
        }
        tracing::debug!(stage, done, total, behind, "progress");
        if !behind && total == last_total {
            stable += 1;
            if stable >= 3 {
                tracing::info!(stage, messages = total, "processed everything");
                return Ok(());
            }
        } else {
            stable = 0;
        }
        last_total = total;
        if Instant::now() > deadline {
            return Err(CliError::Runtime(format!(
                "{stage}: not finished after 30 minutes ({done} of {total} messages)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Every message of `topic`, in partition and offset order.
fn read_topic(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Result<Vec<Vec<u8>>, CliError> {
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .map_err(|e| CliError::Runtime(format!("{topic}: {e}")))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low)).map_err(|e| CliError::Runtime(e.to_string()))?;
            ends.insert(p, high);
        }
    }
    let mut by_partition: BTreeMap<i32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(|e| CliError::Runtime(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let p = m.partition();
                by_partition.entry(p).or_default().push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                if ends.get(&p).is_some_and(|high| m.offset() + 1 >= *high) {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => return Err(CliError::Runtime(format!("reading {topic}: {e}"))),
            None if Instant::now() > deadline => {
                return Err(CliError::Runtime(format!(
                    "reading {topic}: partitions {:?} did not reach their end",
                    ends.keys()
                )));
            }
            None => {}
        }
    }
    consumer.unassign().map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(by_partition.into_values().flat_map(|v| v.into_iter().map(|(_, payload)| payload)).collect())
}

/// Publishes each of `phases` in turn (inventory, then flows, ...), waiting
/// until the four services on a mock cluster have processed it before the
/// next; builds the outcome from the topics. `cfg` is prepared as for the
/// in-process run.
pub(crate) async fn run(
    mut cfg: Config,
    phases: Vec<Vec<Input>>,
    key: &ed25519_dalek::SigningKey,
) -> Result<Outcome, CliError> {
    let broker = EmbeddedBroker::start(1).map_err(|e| CliError::Runtime(e.to_string()))?;
    let bootstrap = broker.bootstrap_servers();
    cfg.kafka.brokers = Some(bootstrap.clone());
    cfg.kafka.properties.insert("message.max.bytes".into(), psg_config::Secret::new("67108864".to_owned()));
    let shutdown = CancellationToken::new();
    let built = services::build_services(&cfg, &ServiceKind::ALL, None).await?;
    let specs = psg_service::topic_specs(&built.iter().map(|s| s.topics.clone()).collect::<Vec<_>>());
    broker.create_topics(&specs, cfg.kafka.partitions).map_err(|e| CliError::Runtime(e.to_string()))?;
    let progress = Progress::new();
    let health = Health::new();
    let mut tasks = services::spawn_services(&cfg, built, &health, Some(progress.clone()), &shutdown);
    let partitions = cfg.kafka.partitions;
    let deliverer = psg_kafka_runtime::Deliverer::new(&cfg.kafka, "analyze", &cfg.topics.ingest_dlq)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let records = |msgs: Vec<Input>| -> Vec<OutRecord> {
        msgs.into_iter()
            .map(|m| {
                let mut r = OutRecord::new(m.topic, m.key, m.bytes);
                r.headers = m.headers;
                r
            })
            .collect()
    };
    let result = async {
        for phase in phases {
            deliverer
                .deliver(&Output { records: records(phase), ..Output::default() })
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            wait_idle(&bootstrap, &progress, partitions, &mut tasks).await?;
        }
        let t = &cfg.topics;
        let consumer: BaseConsumer = kafka_client(&bootstrap).create().map_err(|e| CliError::Runtime(e.to_string()))?;
        let read = |topic: &str| read_topic(&consumer, topic, partitions);
        let resources: Vec<Resource> = decode_all(&read(&t.resources)?);
        let decisions: Vec<ScopeDecision> = decode_all(&read(&t.scope_decisions)?);
        let alerts: Vec<Alert> = decode_all(&read(&t.scope_alerts)?);
        let edges: Vec<FlowEdge> = decode_all(&read(&t.flows_edges)?);
        let coverage: Vec<psg_domain::FlowCoverage> = decode_all(&read(&t.flows_coverage)?);
        let batches: Vec<FlowBatch> = decode_all(&read(&t.flows_normalized)?);
        let evidence: Vec<psg_domain::Evidence> = decode_all(&read(&t.evidence_records)?);
        let checkpoint = decode_all::<psg_domain::EvidenceCheckpoint>(&read(&t.evidence_checkpoints)?)
            .into_iter()
            .max_by_key(|c| c.tree_size);
        let mut dead_lettered = 0u64;
        for dlq in [&t.ingest_dlq, &t.correlate_dlq, &t.classify_dlq, &t.evidence_dlq] {
            dead_lettered += read(dlq)?.len() as u64;
        }
        let flow_records = batches.iter().map(|b| b.records.len() as u64).sum();
        let counts = Summary { flow_records, records_read: flow_records, dead_lettered, ..Summary::default() };
        let mut totals = super::collect::EdgeTotals::with_open_windows();
        for e in &edges {
            totals.add(e);
        }
        let analysis = super::collect::build_analysis(&resources, &coverage, &decisions, &alerts, &totals, &counts);
        Ok::<_, CliError>(Outcome {
            analysis,
            evidence,
            checkpoint,
            signing_key: key.clone(),
            edges,
            decisions,
            alerts,
        })
    }
    .await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    drop(deliverer);
    drop(broker);
    result
}

fn decode_all<T: psg_avro_codec::AvroMessage>(payloads: &[Vec<u8>]) -> Vec<T> {
    payloads.iter().filter_map(|p| psg_avro_codec::decode::<T>(p).ok()).collect()
}
