//! `analyze` and `demo` over the in-process transport
//! ([`psg_kafka_runtime::local`]): the four services — the same processors
//! as over Kafka — connected by bounded queues, fed by a reader that streams
//! the inputs, read by a collector that keeps what a SIEM would read.
//!
//! ```text
//! reader thread ─► feeder ─► inventory.raw, scope.manual (first), flowlogs.raw ─► ingest ─► correlate
//!                                                                                            │
//!     collector ◄── resources, flows.normalized, flows.edges, decisions, alerts,   classify ◄┘
//!                   evidence.records, every dead-letter topic               evidence ◄┘
//! ```
//!
//! The end of the input travels down as the end of each topic; when the
//! collector has seen every topic end, everything published was counted.
//! Any failure (a service's, the reader's) stops the run with its message.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use psg_config::Config;
use psg_kafka_runtime::OutRecord;
use psg_kafka_runtime::local::{BusBuilder, LocalOptions, run_local};
use psg_service::Service;

use super::collect::{Collector, Origin, Origins};
use super::input::{self, CHUNK_BYTES, Chunker, Source};
use crate::error::CliError;
use crate::services::build;

/// Events (runs of messages of one topic, of at most `MAX_EVENT_BYTES`) an
/// inbox holds before its publishers wait.
const INBOX: usize = 8;

/// The most messages a stage processes at once.
const LOCAL_BATCH: usize = 64;

/// What to read.
pub(crate) struct Inputs {
    pub inventory: Vec<Source>,
    pub flows: Vec<Source>,
    pub manual: Vec<psg_domain::ManualDecision>,
    /// `--flow-format`: `auto`, `aws`, `azure`, `gcp` or `aws:<fields>`.
    pub flow_format: String,
    /// `--as-of`: only what had happened by then reaches the services after
    /// ingest ([`super::as_of`]).
    pub as_of: Option<psg_domain::time::Micros>,
}

/// Progress of the reader, for the meter.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub bytes: Arc<AtomicU64>,
    pub records: AtomicU64,
    pub total_bytes: Option<u64>,
    /// With `--as-of`: flow records that ended after it, resources observed
    /// after it (read and counted, not passed on).
    pub later_records: Arc<AtomicU64>,
    pub later_resources: Arc<AtomicU64>,
}

/// One item from the reader thread.
enum Item {
    Inventory { file: String, bytes: Vec<u8> },
    Flow { file: String, time: i64, chunk: input::Chunk },
    Failed(CliError),
}

/// Reads every input in a thread of its own (file reads block), in order:
/// inventory whole, flow logs in chunks.
fn spawn_reader(
    inventory: Vec<Source>,
    flows: Vec<Source>,
    max_message: usize,
    progress: Arc<Progress>,
) -> tokio::sync::mpsc::Receiver<Item> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        for s in &inventory {
            let item = match input::read_whole(s, max_message) {
                Ok(bytes) => Item::Inventory { file: s.name(), bytes },
                Err(e) => Item::Failed(e),
            };
            let failed = matches!(item, Item::Failed(_));
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
        for s in &flows {
            let reader = match input::open(s, Arc::clone(&progress.bytes)) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Item::Failed(CliError::Config(format!("{}: {e}", s.name()))));
                    return;
                }
            };
            let time = s.time();
            let mut chunker = Chunker::new(reader, CHUNK_BYTES, max_message);
            loop {
                match chunker.next_chunk() {
                    Ok(Some(chunk)) => {
                        if let Some(n) = chunk.records {
                            progress.records.fetch_add(n, Ordering::Relaxed);
                        }
                        if tx.blocking_send(Item::Flow { file: s.name(), time, chunk }).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let failed = CliError::Runtime(format!("reading {}: {e}", s.name()));
                        let _ = tx.blocking_send(Item::Failed(failed));
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Checks `--flow-format` against what a flow input turned out to be.
fn check_format(format: &str, file: &str, chunk: &input::Chunk) -> Result<(), CliError> {
    let json = chunk.records.is_none();
    let expected = match format {
        "aws" if json => Some("AWS VPC flow log lines"),
        f if f.starts_with("aws:") && json => Some("AWS VPC flow log lines"),
        "azure" | "gcp" if !json => Some("JSON"),
        _ => None,
    };
    match expected {
        Some(e) => Err(CliError::Config(format!(
            "{file}: --flow-format {format} expects {e}, but the file does not look like it"
        ))),
        None => Ok(()),
    }
}

/// Runs the four services over `inputs`; returns what they published.
/// `dead_letters`: a file for every dead letter as a JSON line.
pub(crate) async fn run(
    cfg: &Config,
    inputs: Inputs,
    dead_letters: Option<PathBuf>,
    progress: Arc<Progress>,
) -> Result<Collector, CliError> {
    let t = cfg.topics.clone();
    let gate = inputs.as_of.map(|until| {
        let later = (Arc::clone(&progress.later_records), Arc::clone(&progress.later_resources));
        super::as_of::Gate::new(cfg, until, later)
    });
    // The services after ingest read the gated topics, if any.
    let after = if gate.is_some() { super::as_of::downstream(cfg) } else { cfg.clone() };
    let ingest: psg_ingest::Ingest = build(cfg, None).await?;
    let correlate = build::<psg_correlate::Correlate>(&after, None).await?.remembering_the_whole_input();
    let classify: psg_classify::Classify = build(&after, None).await?;
    let evidence: psg_evidence::Evidence = build(&after, None).await?;
    let topics = [ingest.topics(), correlate.topics(), classify.topics(), evidence.topics()];
    // The collector counts records on ingest's own output, and lists the
    // resources the services saw.
    let mut collected_topics = t.clone();
    collected_topics.resources.clone_from(&after.topics.resources);

    let mut b = BusBuilder::new(cfg.kafka.partitions, INBOX);
    let feeder_topics = vec![t.inventory_raw.clone(), t.scope_manual.clone(), t.flowlogs_raw.clone()];
    let [ingest_out, correlate_out, classify_out, evidence_out] = topics.clone().map(|t| t.written());
    let names = [
        psg_ingest::Ingest::NAME,
        psg_correlate::Correlate::NAME,
        psg_classify::Classify::NAME,
        psg_evidence::Evidence::NAME,
    ];
    let [ingest_in, correlate_in, classify_in, evidence_in] =
        [0, 1, 2, 3].map(|i| b.subscriber(names[i], &topics[i].streams, &topics[i].tables));
    let collector_in = b.subscriber("collector", &Collector::inputs(&collected_topics), &[]);
    let gate_in = gate.as_ref().map(|g| {
        let (stream, table) = g.inputs();
        b.subscriber("as-of", &stream, &table)
    });
    let gate_out = vec![super::as_of::FLOWS.to_owned(), super::as_of::RESOURCES.to_owned()];
    for topics in [&feeder_topics, &ingest_out, &correlate_out, &classify_out, &evidence_out] {
        b.publisher(topics);
    }
    if gate.is_some() {
        b.publisher(&gate_out);
    }
    let (bus, inboxes) = b.build();
    let mut boxes: Vec<Option<_>> = inboxes.into_iter().map(Some).collect();
    let mut inbox = |i: usize| boxes[i].take().ok_or_else(|| CliError::Runtime("inbox taken twice".into()));

    // Small batches keep the stages working side by side (a batch of a
    // thousand flow batches would be over a hundred thousand records).
    let opts = |service: &str, dlq: &str| LocalOptions {
        service: service.to_owned(),
        dead_letter_topic: dlq.to_owned(),
        batch_size: cfg.kafka.batch_size.min(LOCAL_BATCH),
    };
    let mut tasks: tokio::task::JoinSet<Result<(), CliError>> = tokio::task::JoinSet::new();
    let run_err = |e: psg_kafka_runtime::Error| CliError::Runtime(e.to_string());
    {
        let (o, i, p) = (opts(names[0], &topics[0].dead_letter), inbox(ingest_in)?, bus.publisher(&ingest_out));
        tasks.spawn(async move { run_local(o, ingest, i, p).await.map(drop).map_err(run_err) });
        let (o, i, p) = (opts(names[1], &topics[1].dead_letter), inbox(correlate_in)?, bus.publisher(&correlate_out));
        tasks.spawn(async move { run_local(o, correlate, i, p).await.map(drop).map_err(run_err) });
        let (o, i, p) = (opts(names[2], &topics[2].dead_letter), inbox(classify_in)?, bus.publisher(&classify_out));
        tasks.spawn(async move { run_local(o, classify, i, p).await.map(drop).map_err(run_err) });
        let (o, i, p) = (opts(names[3], &topics[3].dead_letter), inbox(evidence_in)?, bus.publisher(&evidence_out));
        tasks.spawn(async move { run_local(o, evidence, i, p).await.map(drop).map_err(run_err) });
        if let (Some(gate), Some(gate_in)) = (gate, gate_in) {
            let (o, i, p) = (opts("as-of", &t.ingest_dlq), inbox(gate_in)?, bus.publisher(&gate_out));
            tasks.spawn(async move { run_local(o, gate, i, p).await.map(drop).map_err(run_err) });
        }
    }

    let origins: Origins = Origins::default();
    let collector = Collector::new(collected_topics, Arc::clone(&origins), dead_letters.as_deref(), cfg!(test))?;
    let mut collector_inbox = inbox(collector_in)?;
    let collected = tokio::spawn(async move {
        let mut c = collector;
        while let Some(m) = collector_inbox.recv().await {
            c.take(&m)?;
        }
        Ok::<_, CliError>(c)
    });

    // The feeder: manual decisions and inventory first, then the flows.
    let max_message = cfg.ingest.max_message_bytes;
    let mut reader = spawn_reader(inputs.inventory, inputs.flows, max_message, Arc::clone(&progress));
    let mut feeder = bus.publisher(&feeder_topics);
    let fixed_header =
        inputs.flow_format.strip_prefix("aws:").map(|f| f.split_whitespace().collect::<Vec<_>>().join(" "));
    let feed = async {
        for m in &inputs.manual {
            let bytes = psg_avro_codec::encode(m).map_err(|e| CliError::Runtime(e.to_string()))?;
            feeder
                .bus()
                .publish(OutRecord::new(&t.scope_manual, m.resource_id.as_bytes(), bytes))
                .await
                .map_err(run_err)?;
        }
        let mut checked = std::collections::HashSet::new();
        while let Some(item) = reader.recv().await {
            let (record, origin) = match item {
                Item::Failed(e) => return Err(e),
                Item::Inventory { file, bytes } => {
                    let origin = Origin { file: file.clone(), first_line: 1, records: None };
                    (OutRecord::new(&t.inventory_raw, file, bytes), origin)
                }
                Item::Flow { file, time, chunk } => {
                    if checked.insert(file.clone()) {
                        check_format(&inputs.flow_format, &file, &chunk)?;
                    }
                    let origin = Origin { file: file.clone(), first_line: chunk.first_line, records: chunk.records };
                    let mut r = OutRecord::new(&t.flowlogs_raw, file, chunk.bytes);
                    let header = fixed_header.clone().or(chunk.aws_header);
                    if let Some(h) = header {
                        r.headers.push((psg_ingest::flowlogs::AWS_FORMAT_HEADER.to_owned(), h.into_bytes()));
                    }
                    // The file's time, for records that carry none.
                    r.headers.push((psg_ingest::service::OBJECT_TIME_HEADER.to_owned(), time.to_string().into_bytes()));
                    (r, origin)
                }
            };
            let topic = record.topic.clone();
            let (partition, offset) = feeder.bus().publish(record).await.map_err(run_err)?;
            if let Ok(mut o) = origins.lock() {
                o.insert((topic, partition, offset), origin);
            }
        }
        feeder.finish().await.map_err(run_err)
    };
    let fed = feed.await;
    drop(reader);
    // On a failure upstream, the services and the collector see their
    // inputs end early; their own errors only follow from it.
    if let Err(e) = fed {
        drop(feeder);
        tasks.abort_all();
        collected.abort();
        return Err(e);
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| CliError::Runtime(format!("a service panicked: {e}"))).and_then(|r| r);
        if let Err(e) = result {
            failure.get_or_insert(e);
            tasks.abort_all();
        }
    }
    if let Some(e) = failure {
        collected.abort();
        return Err(e);
    }
    collected.await.map_err(|e| CliError::Runtime(format!("the collector panicked: {e}")))?
}

/// Prints progress on standard error (a terminal only) until `done`.
pub(crate) fn spawn_meter(progress: Arc<Progress>, done: tokio_util::sync::CancellationToken) {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return;
    }
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let bytes = progress.bytes.load(Ordering::Relaxed);
            let records = progress.records.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let share = progress
                .total_bytes
                .filter(|t| *t > 0)
                .map(|t| format!("{:>3}% ", bytes * 100 / t))
                .unwrap_or_default();
            eprint!(
                "\ranalyze: {share}{:.1} MiB read, {records} records ({:.0}/s)  {secs:.1}s   ",
                bytes as f64 / (1 << 20) as f64,
                records as f64 / secs
            );
        }
        eprintln!();
    });
}
