//! The runtime loop against librdkafka's in-process mock cluster: real
//! Kafka protocol, no broker to install.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use psg_config::KafkaConfig;
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::runner::RunnerOptions;
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{CancellationToken, DeadLetter, InMessage, OutRecord, Output, ProcessError, Processor};
use psg_telemetry::Health;
use psg_testkit::kafka::{committed_offsets, consume_until, produce};

/// Upper-cases each message to `out`; dead-letters messages containing "bad";
/// fails `persist` transiently `persist_failures` times.
struct Upper {
    persist_failures: Arc<AtomicUsize>,
    persisted: Arc<AtomicUsize>,
    hold_from: Option<i64>,
}

impl Processor for Upper {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        for m in batch {
            let text = String::from_utf8_lossy(m.payload()).to_string();
            if text.contains("bad") {
                out.dead_letters.push(DeadLetter::whole(m, "test", format!("bad input at {}", m.offset)));
            } else {
                out.records.push(OutRecord::new(
                    "out",
                    m.key.clone().unwrap_or_default(),
                    text.to_uppercase().into_bytes(),
                ));
            }
        }
        Ok(out)
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        if self.persist_failures.load(Ordering::SeqCst) > 0 {
            self.persist_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ProcessError::Transient("database is restarting".into()));
        }
        self.persisted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        self.hold_from.map(|o| vec![("in".to_owned(), 0, o)]).unwrap_or_default()
    }
}

/// `Upper`, but the next batch is processed while the previous one is acknowledged.
struct Pipelined(Upper);

impl Processor for Pipelined {
    const PIPELINED: bool = true;

    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        self.0.process(batch).await
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        self.0.persist().await
    }
}

/// `Pipelined`, persisting each batch only once the two after it are
/// processed; notes how many processed batches were not persisted yet at
/// each persist (at most `PERSIST_LAG` + 1: the one persisted and the two
/// after it), and that each batch is acknowledged before its persist and
/// after its processing.
struct Lagging {
    inner: Upper,
    processed: Arc<AtomicUsize>,
    persisted: usize,
    most_behind: Arc<AtomicUsize>,
    acknowledged: Arc<AtomicUsize>,
}

impl Processor for Lagging {
    const PIPELINED: bool = true;
    const PERSIST_LAG: usize = 2;

    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let out = self.inner.process(batch).await?;
        self.processed.fetch_add(1, Ordering::SeqCst);
        Ok(out)
    }

    fn acknowledged(&mut self) {
        let acknowledged = self.acknowledged.fetch_add(1, Ordering::SeqCst);
        assert!(acknowledged < self.processed.load(Ordering::SeqCst), "acknowledged before it was processed");
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        assert!(self.persisted < self.acknowledged.load(Ordering::SeqCst), "persisted before it was acknowledged");
        self.inner.persist().await?;
        let behind = self.processed.load(Ordering::SeqCst) - self.persisted;
        self.most_behind.fetch_max(behind, Ordering::SeqCst);
        self.persisted += 1;
        Ok(())
    }
}

fn config(bootstrap: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: Some(bootstrap.to_owned()),
        partitions: 1,
        batch_size: 100,
        batch_linger_ms: 20,
        ..KafkaConfig::default()
    }
}

async fn start<P: Processor>(
    broker: &EmbeddedBroker,
    cfg: &KafkaConfig,
    processor: P,
) -> (CancellationToken, tokio::task::JoinHandle<psg_kafka_runtime::Result<()>>) {
    broker
        .create_topics(&[TopicSpec::stream("in"), TopicSpec::stream("out"), TopicSpec::stream("dlq")], 1)
        .expect("create topics");
    let opts =
        RunnerOptions { stream_topics: vec!["in".into()], ..RunnerOptions::new(cfg, "upper", "dlq", Health::new()) };
    let stop = CancellationToken::new();
    let (cfg, token) = (cfg.clone(), stop.clone());
    let handle = tokio::spawn(async move { psg_kafka_runtime::run(&cfg, opts, processor, token).await });
    (stop, handle)
}

fn upper(persist_failures: usize, hold_from: Option<i64>) -> (Upper, Arc<AtomicUsize>) {
    let persisted = Arc::new(AtomicUsize::new(0));
    let p = Upper {
        persist_failures: Arc::new(AtomicUsize::new(persist_failures)),
        persisted: persisted.clone(),
        hold_from,
    };
    (p, persisted)
}

async fn committed(bootstrap: &str) -> i64 {
    committed_offsets(bootstrap, "pci-scope-guard-upper", "in", 1).await.first().map_or(-1, |(_, o)| *o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_dead_letters_and_commits() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = config(&bootstrap);
    let (p, persisted) = upper(0, None);
    let (stop, handle) = start(&broker, &cfg, p).await;
    for (i, text) in ["one", "bad two", "three"].iter().enumerate() {
        produce(&bootstrap, "in", &format!("k{i}"), text.as_bytes(), &[]).await;
    }
    let out = consume_until(&bootstrap, "out", Duration::from_secs(30), |r| r.len() >= 2).await;
    let texts: Vec<String> = out.iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect();
    assert_eq!(texts, ["ONE", "THREE"]);
    let dlq = consume_until(&bootstrap, "dlq", Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(dlq[0].payload, b"bad two", "the original bytes");
    assert_eq!(dlq[0].key.as_deref(), Some(&b"k1"[..]), "the original key");
    assert_eq!(dlq[0].header("psg.dlq.reason").as_deref(), Some("bad input at 1"));
    assert_eq!(dlq[0].header("psg.dlq.source.topic").as_deref(), Some("in"));
    assert_eq!(dlq[0].header("psg.dlq.source.partition").as_deref(), Some("0"));
    assert_eq!(dlq[0].header("psg.dlq.source.offset").as_deref(), Some("1"));
    assert_eq!(dlq[0].header("psg.dlq.service").as_deref(), Some("upper"));
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(persisted.load(Ordering::SeqCst) >= 1);
    assert_eq!(committed(&bootstrap).await, 3, "every finished message is committed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_wait_for_a_failing_database_and_never_pass_held_records() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = config(&bootstrap);
    // persist fails 3 times (backoff 100 + 200 + 400 ms), then succeeds
    let (p, persisted) = upper(3, None);
    let (stop, handle) = start(&broker, &cfg, p).await;
    produce(&bootstrap, "in", "k", b"a", &[]).await;
    consume_until(&bootstrap, "out", Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(persisted.load(Ordering::SeqCst), 0, "outputs are produced before the database write");
    // While persist fails, nothing may be committed.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(committed(&bootstrap).await, -1, "nothing committed while the database write fails");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while persisted.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "persist never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(committed(&bootstrap).await, 1);

    // A processor holding offset 1 in memory: the commit stays at 1 although 3 messages are done.
    let (p, _) = upper(0, Some(1));
    let (stop, handle) = start(&broker, &cfg, p).await;
    produce(&bootstrap, "in", "k", b"b", &[]).await;
    produce(&bootstrap, "in", "k", b"c", &[]).await;
    consume_until(&bootstrap, "out", Duration::from_secs(45), |r| r.len() >= 3).await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(committed(&bootstrap).await, 1, "never past what the processor holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_database_is_down_commits_nothing_of_that_batch() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = KafkaConfig { shutdown_grace_ms: 500, ..config(&bootstrap) };
    let (p, persisted) = upper(usize::MAX, None);
    let (stop, handle) = start(&broker, &cfg, p).await;
    produce(&bootstrap, "in", "k", b"a", &[]).await;
    consume_until(&bootstrap, "out", Duration::from_secs(30), |r| !r.is_empty()).await;
    let started = std::time::Instant::now();
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown is bounded: {:?}", started.elapsed());
    assert_eq!(persisted.load(Ordering::SeqCst), 0);
    assert_eq!(committed(&bootstrap).await, -1, "the unfinished batch will be processed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_processor_loses_nothing_and_commits_everything() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = KafkaConfig { batch_size: 3, ..config(&bootstrap) };
    let (p, persisted) = upper(0, None);
    let (stop, handle) = start(&broker, &cfg, Pipelined(p)).await;
    // The last batch is finished after one linger period without input.
    upper_cased_and_committed(&bootstrap, 20, "the batch in flight was never finished").await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(persisted.load(Ordering::SeqCst) >= 1);
    assert_eq!(committed(&bootstrap).await, 20);
}

/// Produces `n` messages `m0`, `m1`, ... to `in`; asserts that each comes
/// out upper-cased, and waits (20 s at most, else `stalled`) until all `n`
/// offsets are committed.
async fn upper_cased_and_committed(bootstrap: &str, n: usize, stalled: &str) {
    for i in 0..n {
        produce(bootstrap, "in", &format!("k{i}"), format!("m{i}").as_bytes(), &[]).await;
    }
    let out = consume_until(bootstrap, "out", Duration::from_secs(30), |r| r.len() >= n).await;
    let mut texts: Vec<String> = out.iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect();
    texts.sort();
    let mut expected: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
    expected.sort();
    assert_eq!(texts, expected);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while committed(bootstrap).await < n as i64 {
        assert!(std::time::Instant::now() < deadline, "{stalled}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A processor persisting two batches behind (the evidence service): each
/// batch is persisted once the two after it are processed, never later,
/// and when input stops every waiting batch is persisted and its offsets
/// committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_persisting_two_batches_behind_loses_nothing_and_commits_everything() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    // Batches fill long before a linger period passes: no idle flush
    // until the input stops.
    let cfg = KafkaConfig { batch_size: 3, batch_linger_ms: 2_000, ..config(&bootstrap) };
    let (inner, persisted) = upper(0, None);
    let (processed, most_behind) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let p = Lagging {
        inner,
        processed: processed.clone(),
        persisted: 0,
        most_behind: most_behind.clone(),
        acknowledged: acknowledged.clone(),
    };
    let (stop, handle) = start(&broker, &cfg, p).await;
    upper_cased_and_committed(&bootstrap, 30, "the batches waiting for their persist were never finished").await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(persisted.load(Ordering::SeqCst), processed.load(Ordering::SeqCst), "every batch persisted once");
    assert_eq!(acknowledged.load(Ordering::SeqCst), processed.load(Ordering::SeqCst), "every batch acknowledged once");
    assert_eq!(most_behind.load(Ordering::SeqCst), 3, "persisted two batches behind, never further");
    assert_eq!(committed(&bootstrap).await, 30);
}

/// Counts table messages; records how many it had seen when the first
/// stream message arrived.
#[derive(Default)]
struct TableFirst {
    table_seen: usize,
    at_first_stream: Arc<std::sync::Mutex<Option<usize>>>,
    streams: Arc<AtomicUsize>,
}

impl Processor for TableFirst {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        for m in batch {
            match m.kind {
                psg_kafka_runtime::InputKind::Table => self.table_seen += 1,
                psg_kafka_runtime::InputKind::Stream => {
                    if let Ok(mut first) = self.at_first_stream.lock() {
                        first.get_or_insert(self.table_seen);
                    }
                    self.streams.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        Ok(Output::default())
    }
}

/// A stream message is never processed before the table topics are read
/// to the end they had at start; the service is ready only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_topics_are_loaded_before_any_stream_message() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = KafkaConfig { batch_size: 50, ..config(&bootstrap) };
    broker
        .create_topics(&[TopicSpec::stream("in"), TopicSpec::stream("table"), TopicSpec::stream("dlq")], 3)
        .expect("create topics");
    const TABLE: usize = 3000;
    let producer = psg_kafka_runtime::Deliverer::new(&cfg, "test", "dlq").unwrap();
    let records: Vec<OutRecord> =
        (0..TABLE).map(|i| OutRecord::new("table", format!("r{i}"), vec![b'x'; 200])).collect();
    producer.deliver(&Output { records, dead_letters: vec![] }).await.unwrap();
    for i in 0..5 {
        produce(&bootstrap, "in", &format!("k{i}"), b"flow", &[]).await;
    }

    let p = TableFirst::default();
    let (first, streams) = (p.at_first_stream.clone(), p.streams.clone());
    let health = Health::new();
    let opts = RunnerOptions {
        stream_topics: vec!["in".into()],
        table_topics: vec!["table".into()],
        ..RunnerOptions::new(&cfg, "tables", "dlq", health.clone())
    };
    let stop = CancellationToken::new();
    let (kafka, token) = (cfg.clone(), stop.clone());
    let handle = tokio::spawn(async move { psg_kafka_runtime::run(&kafka, opts, p, token).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while streams.load(Ordering::SeqCst) < 5 {
        assert!(std::time::Instant::now() < deadline, "the stream messages were never processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(health.is_ready(), "ready once the tables are loaded");
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(*first.lock().unwrap(), Some(TABLE), "every table message before the first stream message");
}

/// Holds every offset until a tick, which releases them and says so.
#[derive(Default)]
struct HoldUntilTick {
    holding: Option<i64>,
    ticks: Arc<AtomicUsize>,
}

impl Processor for HoldUntilTick {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        if let Some(m) = batch.iter().find(|m| m.kind == psg_kafka_runtime::InputKind::Stream) {
            self.holding = Some(self.holding.unwrap_or(m.offset).min(m.offset));
        }
        Ok(Output::default())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    async fn tick(&mut self) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        if self.holding.take().is_some() {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            out.records.push(OutRecord::new("out", "tick", b"released".to_vec()));
        }
        Ok(out)
    }

    fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        self.holding.map(|o| vec![("in".to_owned(), 0, o)]).unwrap_or_default()
    }
}

/// Without input, a processor with a tick interval is called on time; what
/// the tick emits is delivered, and the offsets it stops holding are
/// committed although no new message arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_deliver_their_outputs_and_release_held_offsets() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = config(&bootstrap);
    let p = HoldUntilTick::default();
    let ticks = p.ticks.clone();
    let (stop, handle) = start(&broker, &cfg, p).await;
    for i in 0..3 {
        produce(&bootstrap, "in", &format!("k{i}"), b"m", &[]).await;
    }
    let out = consume_until(&bootstrap, "out", Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(out[0].payload, b"released");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while committed(&bootstrap).await < 3 {
        assert!(std::time::Instant::now() < deadline, "offsets released by a tick were never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(ticks.load(Ordering::SeqCst) >= 1);
}

/// Records deleted before they were read (the embedded broker keeps at most
/// about 5 MB per partition): the service names the offsets lost and stops
/// reporting ready, and goes on with what is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_before_they_are_read_are_reported_lost() {
    if let Ok(level) = std::env::var("RUST_LOG") {
        let _ = psg_telemetry::init_logging(psg_config::LogFormat::Text, &level);
    }
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let cfg = config(&bootstrap);
    let (p, _) = upper(0, None);
    let (stop, handle) = start(&broker, &cfg, p).await;
    for i in 0..10 {
        produce(&bootstrap, "in", &format!("k{i}"), b"m", &[]).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while committed(&bootstrap).await < 10 {
        assert!(std::time::Instant::now() < deadline, "the first 10 were never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    handle.await.unwrap().unwrap();

    // While nobody reads, 8 MB more: the oldest are deleted, 10.. among them.
    let producer = psg_kafka_runtime::Deliverer::new(&cfg, "test", "dlq").unwrap();
    let records: Vec<OutRecord> = (0..8000).map(|i| OutRecord::new("in", format!("b{i}"), vec![b'x'; 1000])).collect();
    producer.deliver(&Output { records, dead_letters: vec![] }).await.unwrap();

    let (p, _) = upper(0, None);
    let health = Health::new();
    let opts =
        RunnerOptions { stream_topics: vec!["in".into()], ..RunnerOptions::new(&cfg, "upper", "dlq", health.clone()) };
    let stop = CancellationToken::new();
    let (kafka, token) = (cfg.clone(), stop.clone());
    let handle = tokio::spawn(async move { psg_kafka_runtime::run(&kafka, opts, p, token).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let reason = loop {
        if let Some(psg_telemetry::ComponentState::Degraded(r)) = health.snapshot().get("upper-input") {
            break r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no loss reported: {:?}", health.snapshot());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.contains("of in partition 0 (offsets 10 to"), "{reason}");
    assert!(!health.is_ready(), "/readyz answers 503 once records are lost");
    // It goes on with the records that are there.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while committed(&bootstrap).await < 8010 {
        assert!(std::time::Instant::now() < deadline, "the rest was not processed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    handle.await.unwrap().unwrap();
}
