//! The loop every service runs: consume a batch, process it, produce its
//! outputs, persist, and only then store its offsets.
//!
//! Order inside one batch, and why:
//! 1. [`Processor::process`]: updates in-memory state and returns the
//!    outputs. It may read from the database; on error it must leave its
//!    state as it was (do fallible I/O before mutating), because the batch is
//!    processed again.
//! 2. produce every output and dead letter, await every delivery report;
//! 3. [`Processor::persist`]: make the queued database writes durable
//!    (retried with backoff; must be idempotent);
//! 4. store the offsets of every partition processed so far: the offset
//!    after its last message, but never past what the processor still held
//!    only in memory when it finished the batch ([`Processor::held_offsets`]).
//!
//! A crash anywhere before 4 redelivers the batch; every output carries a
//! deterministic id, so the second copy overwrites the first. Topics come
//! before the database so that a restart that rebuilds state from the
//! database re-emits what the topic may not have received.
//!
//! At start, the table topics are read up to the end they had then (their
//! high watermarks) before the service joins its consumer group: a stream
//! message is never processed against a table that is still loading, so the
//! first run and a replay after a restart see the same tables.
//!
//! Processors that keep time-driven state ([`Processor::tick_interval`]) are
//! also called without input ([`Processor::tick`]); a tick's outputs go the
//! same way as a batch's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use psg_config::KafkaConfig;
use psg_telemetry::Health;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::message::{InMessage, InputKind, Output};
use crate::producer::{Deliverer, Pending};
use crate::{Error, Result, client};

pub use crate::processor::{ProcessError, Processor};

/// What [`run`] needs to know about a service.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Service name: logs, metrics, dead-letter headers.
    pub service: String,
    /// Consumer group of the stream topics.
    pub group: String,
    /// Topics shared by the consumer group; offsets committed.
    pub stream_topics: Vec<String>,
    /// Topics every instance reads whole, from the beginning.
    pub table_topics: Vec<String>,
    /// Where dead letters go.
    pub dead_letter_topic: String,
    pub batch_size: usize,
    pub batch_linger: Duration,
    /// How long shutdown may take to finish the batch in hand and commit.
    pub shutdown_grace: Duration,
    pub health: Health,
    /// Where to report how far the service has processed each input
    /// partition (batch runs: `analyze` waits until everything is processed).
    pub progress: Option<Progress>,
}

/// How far each service has processed each input partition: the offset
/// after the last message whose outputs are delivered and persisted.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<std::sync::Mutex<ProgressState>>,
}

#[derive(Debug, Default)]
struct ProgressState {
    /// (service, topic) pairs that runners read.
    inputs: std::collections::BTreeSet<(String, String)>,
    /// (service, topic, partition) → next offset processed.
    positions: BTreeMap<(String, String, i32), i64>,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    fn register(&self, service: &str, topics: &[String]) {
        if let Ok(mut s) = self.inner.lock() {
            for t in topics {
                s.inputs.insert((service.to_owned(), t.clone()));
            }
        }
    }

    fn advance(&self, service: &str, next: &BTreeMap<(Arc<str>, i32), i64>) {
        if let Ok(mut s) = self.inner.lock() {
            for ((topic, partition), offset) in next {
                let e = s.positions.entry((service.to_owned(), topic.to_string(), *partition)).or_insert(0);
                *e = (*e).max(*offset);
            }
        }
    }

    /// Every (service, topic) a runner reads.
    pub fn inputs(&self) -> Vec<(String, String)> {
        self.inner.lock().map(|s| s.inputs.iter().cloned().collect()).unwrap_or_default()
    }

    /// The next offset `service` has processed of `topic`/`partition` (0: none).
    pub fn position(&self, service: &str, topic: &str, partition: i32) -> i64 {
        self.inner
            .lock()
            .ok()
            .and_then(|s| s.positions.get(&(service.to_owned(), topic.to_owned(), partition)).copied())
            .unwrap_or(0)
    }
}

impl RunnerOptions {
    /// Options from the shared Kafka configuration.
    pub fn new(cfg: &KafkaConfig, service: &str, dead_letter_topic: &str, health: Health) -> Self {
        Self {
            service: service.to_owned(),
            group: format!("{}-{service}", cfg.group_prefix),
            stream_topics: Vec::new(),
            table_topics: Vec::new(),
            dead_letter_topic: dead_letter_topic.to_owned(),
            batch_size: cfg.batch_size,
            batch_linger: Duration::from_millis(cfg.batch_linger_ms),
            shutdown_grace: Duration::from_millis(cfg.shutdown_grace_ms),
            health,
            progress: None,
        }
    }
}

/// Logs partition assignments and revocations, and remembers revocations
/// and offset resets for the loop.
struct LoopContext {
    service: String,
    revoked: Arc<std::sync::Mutex<Vec<(String, i32)>>>,
    resets: Resets,
}

/// Partitions whose fetch offset librdkafka reset because the broker no
/// longer had it (deleted by retention, or by the embedded broker's size
/// limit): (topic, partition) → the offset it wanted.
type Resets = Arc<std::sync::Mutex<BTreeMap<(String, i32), i64>>>;

/// `topic`, partition and the offset wanted, from librdkafka's log line
/// "[thrd:main]: TOPIC [P]: offset reset (at offset N ...) to ...: ...:
/// Broker: Offset out of range" (topic names hold no `]`).
fn offset_reset(line: &str) -> Option<(String, i32, i64)> {
    let (head, rest) = line.split_once("]: offset reset (at offset ")?;
    let head = head.rsplit_once("]: ").map_or(head, |(_, h)| h);
    let (topic, partition) = head.rsplit_once(" [")?;
    let at: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((topic.to_owned(), partition.parse().ok()?, at.parse().ok()?))
}

impl ClientContext for LoopContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, line: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        if let Some((topic, partition, at)) = offset_reset(line)
            && let Ok(mut r) = self.resets.lock()
        {
            tracing::debug!(service = %self.service, topic, partition, at, "offset reset");
            r.entry((topic, partition)).or_insert(at);
        }
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", service = %self.service, "librdkafka: {fac} {line}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", service = %self.service, "librdkafka: {fac} {line}"),
            L::Notice | L::Info => {
                tracing::info!(target: "librdkafka", service = %self.service, "librdkafka: {fac} {line}")
            }
            L::Debug => tracing::debug!(target: "librdkafka", service = %self.service, "librdkafka: {fac} {line}"),
        }
    }
}

impl ConsumerContext for LoopContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(service = %self.service, partitions = %describe(tpl), "partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(service = %self.service, partitions = %describe(tpl), "partitions revoked");
                metrics::counter!("psg_partitions_revoked_total", "service" => self.service.clone())
                    .increment(tpl.count() as u64);
                if let Ok(mut r) = self.revoked.lock() {
                    r.extend(tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())));
                }
            }
            Rebalance::Error(e) => tracing::warn!(service = %self.service, error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(service = %self.service, offsets = %describe(offsets), "offsets committed"),
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(service = %self.service, error = %e, "offset commit failed"),
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}[{}]@{o}", e.topic(), e.partition()),
            _ => format!("{}[{}]", e.topic(), e.partition()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `processor` until `shutdown` fires (returns `Ok`) or a fatal error.
pub async fn run<P: Processor>(
    cfg: &KafkaConfig,
    opts: RunnerOptions,
    mut processor: P,
    shutdown: CancellationToken,
) -> Result<()> {
    let service = opts.service.clone();
    opts.health.register(&service);
    if let Some(progress) = &opts.progress {
        progress.register(&service, &opts.stream_topics);
        progress.register(&service, &opts.table_topics);
    }
    let revoked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let resets = Resets::default();
    let context = LoopContext { service: service.clone(), revoked: Arc::clone(&revoked), resets: Arc::clone(&resets) };
    let consumer: StreamConsumer<LoopContext> = client::consumer(cfg, &opts.group)?
        .create_with_context(context)
        .map_err(|e| Error::kafka(format!("{service}: creating consumer"), e))?;
    let (table, mut loading) = match opts.table_topics.is_empty() {
        true => (None, TableLoad::default()),
        false => {
            let (c, load) = table_consumer(cfg, &opts, &shutdown, Arc::clone(&resets)).await?;
            (Some(c), load)
        }
    };
    let deliverer = Deliverer::new(cfg, &service, &opts.dead_letter_topic)?;
    tracing::info!(
        service = %service,
        group = %opts.group,
        streams = ?opts.stream_topics,
        tables = ?opts.table_topics,
        batch_size = opts.batch_size,
        linger_ms = opts.batch_linger.as_millis() as u64,
        "service started"
    );
    if !loading.is_done() {
        tracing::info!(service = %service, partitions = loading.pending.len(), "loading the table topics");
    }

    let mut state = LoopState {
        opts: &opts,
        consumer: &consumer,
        deliverer: &deliverer,
        batch: Vec::new(),
        in_flight: None,
        acked: std::collections::VecDeque::new(),
        consumed: BTreeMap::new(),
        resets,
        received: BTreeMap::new(),
        gaps: BTreeMap::new(),
    };
    let mut subscribed = false;
    let mut ticker = processor.tick_interval().map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut load_check = tokio::time::interval(Duration::from_millis(250));
    let mut loss_check = tokio::time::interval(Duration::from_secs(1));
    let mut deadline: Option<Instant> = None;
    let result = loop {
        // The stream topics are joined once the tables are loaded and
        // processed (flushed), so no stream message sees a partial table.
        if !subscribed && loading.is_done() && state.batch.is_empty() {
            if let Err(e) = state.subscribe() {
                break Err(e);
            }
            subscribed = true;
            opts.health.set_ready(&service);
        }
        let linger = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut tick = false;
        let flush = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            _ = linger => true,
            _ = next_tick(ticker.as_mut(), subscribed && state.batch.is_empty()) => {
                tick = true;
                true
            }
            m = recv_if(&consumer, subscribed) => {
                // A rebalance happens inside recv(): its revocation is
                // applied before the message (already of the new
                // assignment) joins the batch.
                state.apply_revocations(&revoked, &mut processor);
                state.accept(m, InputKind::Stream)
            }
            m = recv_or_pending(table.as_ref()) => {
                let was_loading = !loading.is_done();
                let flush = state.accept_table(m, &mut loading);
                if was_loading && loading.is_done() {
                    tracing::info!(service = %service, "table topics loaded");
                }
                flush || (was_loading && loading.is_done())
            }
            _ = loss_check.tick(), if !state.gaps.is_empty() => {
                state.reconcile_losses();
                false
            }
            _ = load_check.tick(), if !loading.is_done() => {
                if let Some(t) = table.as_ref() {
                    loading.check(t, &service);
                }
                if loading.is_done() {
                    tracing::info!(service = %service, "table topics loaded");
                }
                loading.is_done()
            }
        };
        if deadline.is_none() && !state.batch.is_empty() {
            deadline = Some(Instant::now() + opts.batch_linger);
        }
        if flush || state.batch.len() >= opts.batch_size {
            deadline = None;
            match state.flush(&mut processor, &shutdown, tick).await {
                Ok(Flushed::Done) => {}
                Ok(Flushed::Abandoned) => break Ok(()),
                Err(e) => break Err(e),
            }
            // A batch still in flight (or waiting for its persist) is
            // finished when the next one is, or after one linger period
            // without input.
            if state.in_flight.is_some() || !state.acked.is_empty() {
                deadline = Some(Instant::now() + opts.batch_linger);
            }
        }
    };

    // Shutdown: finish the batch in hand (bounded), then commit synchronously.
    if result.is_ok() && (!state.batch.is_empty() || state.in_flight.is_some() || !state.acked.is_empty()) {
        let grace = CancellationToken::new();
        let timer = {
            let grace = grace.clone();
            let limit = opts.shutdown_grace;
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                grace.cancel();
            })
        };
        let mut finished = state.flush(&mut processor, &grace, false).await;
        if matches!(finished, Ok(Flushed::Done)) && (state.in_flight.is_some() || !state.acked.is_empty()) {
            finished = state.flush(&mut processor, &grace, false).await;
        }
        match finished {
            Ok(Flushed::Done) => tracing::info!(service = %service, "finished the batch in hand"),
            Ok(Flushed::Abandoned) => tracing::warn!(
                service = %service,
                "the batch in hand did not finish within the grace period; it will be processed again after restart"
            ),
            Err(e) => tracing::error!(service = %service, error = %e, "the batch in hand failed"),
        }
        timer.abort();
    }
    if subscribed {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!(service = %service, "offsets committed"),
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {
                tracing::info!(service = %service, "offsets committed (nothing new since the last periodic commit)")
            }
            Err(e) => tracing::warn!(service = %service, error = %e, "final offset commit failed"),
        }
    }
    if let Err(e) = deliverer.flush(opts.shutdown_grace) {
        tracing::warn!(service = %service, error = %e, "producer flush at shutdown");
    }
    consumer.unsubscribe();
    tracing::info!(service = %service, "service stopped");
    result
}

/// Waits for the next tick when there is a ticker and `armed`.
async fn next_tick(ticker: Option<&mut tokio::time::Interval>, armed: bool) {
    match ticker {
        Some(t) if armed => {
            t.tick().await;
        }
        _ => std::future::pending().await,
    }
}

/// The next stream message once subscribed.
async fn recv_if(c: &StreamConsumer<LoopContext>, subscribed: bool) -> KafkaResult<BorrowedMessage<'_>> {
    match subscribed {
        true => c.recv().await,
        false => std::future::pending().await,
    }
}

/// The table partitions still being loaded at start, and the end (high
/// watermark) each had then.
#[derive(Debug, Default)]
struct TableLoad {
    pending: BTreeMap<(String, i32), i64>,
    /// When a table message last arrived (or loading started).
    progress: Option<Instant>,
}

/// Loading the tables makes no progress for this long: the rest is taken as
/// loaded (the last offsets before the end may hold no message a consumer
/// sees, e.g. transaction markers), with a warning.
const TABLE_STALL: Duration = Duration::from_secs(15);

impl TableLoad {
    fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// A message of a table partition arrived.
    fn seen(&mut self, topic: &str, partition: i32, offset: i64) {
        self.progress = Some(Instant::now());
        let key = (topic.to_owned(), partition);
        if self.pending.get(&key).is_some_and(|end| offset + 1 >= *end) {
            self.pending.remove(&key);
        }
    }

    /// Checks the consumer's positions against the ends (a partition whose
    /// end offsets hold no message); gives up waiting after [`TABLE_STALL`]
    /// without progress.
    fn check(&mut self, consumer: &StreamConsumer<LoopContext>, service: &str) {
        if let Ok(positions) = consumer.position() {
            for e in positions.elements() {
                let key = (e.topic().to_owned(), e.partition());
                if let (Offset::Offset(at), Some(end)) = (e.offset(), self.pending.get(&key))
                    && at >= *end
                {
                    self.pending.remove(&key);
                }
            }
        }
        let since = *self.progress.get_or_insert_with(Instant::now);
        if !self.pending.is_empty() && since.elapsed() > TABLE_STALL {
            tracing::warn!(
                service,
                partitions = ?self.pending,
                "loading the table topics made no progress for 15 s; going on with what is loaded"
            );
            self.pending.clear();
        }
    }
}

enum Flushed {
    Done,
    /// Shutdown came while a step was being retried: nothing stored.
    Abandoned,
}

struct LoopState<'a> {
    opts: &'a RunnerOptions,
    consumer: &'a StreamConsumer<LoopContext>,
    deliverer: &'a Deliverer,
    batch: Vec<InMessage>,
    /// A processed batch whose outputs are not acknowledged yet (pipelined processors).
    in_flight: Option<InFlight>,
    /// Acknowledged batches waiting for their persist, oldest first (fewer
    /// than the processor's `PERSIST_LAG`).
    acked: std::collections::VecDeque<InFlight>,
    /// Per stream partition (of the current assignment), the offset after
    /// the last message processed.
    consumed: BTreeMap<(Arc<str>, i32), i64>,
    /// Offset resets librdkafka logged, not yet matched with a gap.
    resets: Resets,
    /// Per stream partition, the offset after the last message received.
    received: BTreeMap<(String, i32), i64>,
    /// Gaps in a partition's offsets (expected, received, when), until
    /// matched with an offset reset: records deleted before they were read.
    /// A gap no reset explains (a transaction marker) is forgotten.
    gaps: BTreeMap<(String, i32), (i64, i64, Instant)>,
}

/// A processed batch on its way out.
struct InFlight {
    output: Output,
    pending: Option<Pending>,
    /// Per stream partition processed so far, the offset to store once this
    /// batch is done: after the last message processed, but not past what
    /// the processor held in memory right after processing this batch.
    store: BTreeMap<(Arc<str>, i32), i64>,
    /// The offset after the batch's last message for every partition, table
    /// topics too (progress reports).
    positions: BTreeMap<(Arc<str>, i32), i64>,
    consumed: usize,
    started: std::time::Instant,
}

impl LoopState<'_> {
    fn subscribe(&self) -> Result<()> {
        let topics: Vec<&str> = self.opts.stream_topics.iter().map(String::as_str).collect();
        if topics.is_empty() {
            return Ok(());
        }
        self.consumer.subscribe(&topics).map_err(|e| Error::kafka(format!("{}: subscribing", self.opts.service), e))
    }

    /// Drops the batch in hand's messages of revoked partitions (they are
    /// read again from the committed offset, here or by their new owner) and
    /// tells the processor. Called before a message consumed after the
    /// revocation joins the batch.
    fn apply_revocations<P: Processor>(&mut self, revoked: &std::sync::Mutex<Vec<(String, i32)>>, processor: &mut P) {
        let taken = match revoked.lock() {
            Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
            _ => return,
        };
        let is_taken = |t: &str, p: i32| taken.iter().any(|(rt, rp)| rt == t && *rp == p);
        let before = self.batch.len();
        self.batch.retain(|m| m.kind != InputKind::Stream || !is_taken(&m.topic, m.partition));
        if self.batch.len() < before {
            tracing::info!(
                service = %self.opts.service,
                dropped = before - self.batch.len(),
                "dropped unprocessed messages of revoked partitions; their new owner processes them"
            );
        }
        self.consumed.retain(|(t, p), _| !is_taken(t, *p));
        self.received.retain(|(t, p), _| !is_taken(t, *p));
        // A batch still in flight must not store offsets of revoked
        // partitions: the processor has just dropped what it held of them.
        for f in self.in_flight.iter_mut().chain(self.acked.iter_mut()) {
            f.store.retain(|(t, p), _| !is_taken(t, *p));
        }
        processor.partitions_revoked(&taken);
    }

    /// Adds a consumed message to the batch; returns whether to flush now.
    fn accept(&mut self, m: KafkaResult<BorrowedMessage<'_>>, kind: InputKind) -> bool {
        match m {
            Ok(m) => {
                if kind == InputKind::Stream {
                    self.note_gap(m.topic(), m.partition(), m.offset());
                    self.reconcile_losses();
                }
                self.batch.push(owned(&m, kind));
                false
            }
            Err(e) => {
                tracing::warn!(service = %self.opts.service, error = %e, "consumer error");
                metrics::counter!("psg_consumer_errors_total", "service" => self.opts.service.clone()).increment(1);
                false
            }
        }
    }

    /// Notes a gap in a stream partition's offsets: the first message after
    /// an assignment is compared with the committed offset, later ones with
    /// the previous one.
    fn note_gap(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_owned(), partition);
        let expected = match self.received.get(&key) {
            Some(next) => Some(*next),
            None => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, partition);
                match self.consumer.committed_offsets(tpl, Duration::from_secs(5)) {
                    Ok(c) => c.elements().first().and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    }),
                    Err(_) => None,
                }
            }
        };
        if let Some(expected) = expected.filter(|e| offset > *e) {
            tracing::debug!(service = %self.opts.service, topic, partition, expected, offset, "gap in the offsets");
            self.gaps.insert(key.clone(), (expected, offset, Instant::now()));
        }
        self.received.insert(key, offset + 1);
    }

    /// Matches gaps with the offset resets librdkafka logged (in either
    /// order): each match is records deleted before they were read, said
    /// loudly — an error naming the offsets, `psg_records_lost_total{topic}`,
    /// and `/readyz` answering 503 from then on. Unmatched gaps are
    /// forgotten after a minute; a reset without a gap is kept until one comes.
    fn reconcile_losses(&mut self) {
        if self.gaps.is_empty() {
            return;
        }
        let mut resets = match self.resets.lock() {
            Ok(r) => r,
            Err(_) => return,
        };
        let service = &self.opts.service;
        let health = &self.opts.health;
        self.gaps.retain(|(topic, partition), (expected, got, when)| {
            let Some(wanted) = resets.get(&(topic.clone(), *partition)).copied() else {
                return when.elapsed() < Duration::from_secs(60);
            };
            resets.remove(&(topic.clone(), *partition));
            let first = wanted.min(*expected);
            let lost = *got - first;
            tracing::error!(
                service = %service,
                topic = %topic,
                partition,
                first_lost = first,
                last_lost = *got - 1,
                lost,
                "records were deleted before they were read (offset out of range): they are lost"
            );
            metrics::counter!("psg_records_lost_total", "topic" => topic.clone()).increment(lost.max(0) as u64);
            health.set_degraded(
                &format!("{service}-input"),
                format!(
                    "{lost} records of {topic} partition {partition} (offsets {first} to {}) were deleted before \
                     they were read: lost",
                    *got - 1
                ),
            );
            false
        });
    }

    /// A table message arrived.
    fn accept_table(&mut self, m: KafkaResult<BorrowedMessage<'_>>, loading: &mut TableLoad) -> bool {
        if let Ok(msg) = &m
            && !loading.is_done()
        {
            loading.seen(msg.topic(), msg.partition(), msg.offset());
        }
        self.accept(m, InputKind::Table)
    }

    /// Processes the batch in hand (or, for a `tick` with no batch in hand,
    /// lets the processor act on processing time) and sends its outputs. A
    /// pipelined processor's batch stays in flight until the next flush;
    /// otherwise (and for the batch in flight) it is finished here:
    /// acknowledged, persisted, offsets stored.
    async fn flush<P: Processor>(
        &mut self,
        processor: &mut P,
        stop: &CancellationToken,
        tick: bool,
    ) -> Result<Flushed> {
        let mut current = None;
        if !self.batch.is_empty() || tick {
            let started = std::time::Instant::now();
            let service = &self.opts.service;
            let step = if self.batch.is_empty() { "tick" } else { "process" };
            let mut backoff = Backoff::new(service, step, &self.opts.health);
            let output = loop {
                let attempt = match self.batch.is_empty() {
                    true => processor.tick().await,
                    false => processor.process(&self.batch).await,
                };
                match attempt {
                    Ok(o) => break o,
                    Err(e) => {
                        if !backoff.wait(e, stop).await? {
                            return Ok(Flushed::Abandoned);
                        }
                    }
                }
            };
            backoff.done();
            for m in self.batch.iter().filter(|m| m.kind == InputKind::Stream) {
                let e = self.consumed.entry((Arc::clone(&m.topic), m.partition)).or_insert(0);
                *e = (*e).max(m.offset + 1);
            }
            let held = processor.held_offsets();
            let store = self
                .consumed
                .iter()
                .map(|((topic, partition), next)| {
                    let lowest = held
                        .iter()
                        .filter(|(t, p, _)| **t == **topic && p == partition)
                        .fold(*next, |acc, (_, _, o)| acc.min(*o));
                    ((Arc::clone(topic), *partition), lowest)
                })
                .collect();
            let mut positions: BTreeMap<(Arc<str>, i32), i64> = BTreeMap::new();
            if self.opts.progress.is_some() {
                for m in &self.batch {
                    let e = positions.entry((Arc::clone(&m.topic), m.partition)).or_insert(0);
                    *e = (*e).max(m.offset + 1);
                }
            }
            current = Some(InFlight { output, pending: None, store, positions, consumed: self.batch.len(), started });
            self.batch.clear();
        }
        // The previous batch is acknowledged (and sent again where it failed)
        // before this one is enqueued: outputs stay in input order on every
        // partition, so a consumer may take an older copy for a duplicate
        // (correlate does). Processing this batch overlapped its acks.
        if let Some(mut previous) = self.in_flight.take() {
            if let Flushed::Abandoned = self.acknowledge(&mut previous, stop).await? {
                return Ok(Flushed::Abandoned);
            }
            processor.acknowledged();
            self.acked.push_back(previous);
        }
        // Persisted in order: all of them when no batch follows.
        let keep = if current.is_some() { P::PERSIST_LAG.max(1) - 1 } else { 0 };
        while self.acked.len() > keep {
            let Some(oldest) = self.acked.pop_front() else { break };
            if let Some(given_up) = self.complete(oldest, processor, stop).await? {
                // Still the oldest: a shutdown tries it again first.
                self.acked.push_front(given_up);
                return Ok(Flushed::Abandoned);
            }
        }
        if let Some(mut c) = current {
            c.pending = self.deliverer.start(&c.output).await.ok();
            if !P::PIPELINED {
                return self.finish(c, processor, stop).await;
            }
            self.in_flight = Some(c);
        }
        Ok(Flushed::Done)
    }

    /// Waits for a batch's acknowledgements (sending it again while they
    /// fail), persists, and stores its offsets.
    async fn finish<P: Processor>(
        &mut self,
        mut b: InFlight,
        processor: &mut P,
        stop: &CancellationToken,
    ) -> Result<Flushed> {
        if let Flushed::Abandoned = self.acknowledge(&mut b, stop).await? {
            return Ok(Flushed::Abandoned);
        }
        processor.acknowledged();
        Ok(match self.complete(b, processor, stop).await? {
            None => Flushed::Done,
            Some(_) => Flushed::Abandoned,
        })
    }

    /// Waits for a batch's acknowledgements, sending it again while they fail.
    async fn acknowledge(&self, b: &mut InFlight, stop: &CancellationToken) -> Result<Flushed> {
        let mut backoff = Backoff::new(&self.opts.service, "deliver", &self.opts.health);
        loop {
            let attempt = match b.pending.take() {
                Some(p) => p.wait().await,
                None => self.deliverer.deliver(&b.output).await,
            };
            match attempt {
                Ok(_) => break,
                Err(e) => {
                    if !backoff.wait(ProcessError::Transient(e.to_string()), stop).await? {
                        return Ok(Flushed::Abandoned);
                    }
                }
            }
        }
        backoff.done();
        Ok(Flushed::Done)
    }

    /// Persists an acknowledged batch and stores its offsets; gives the
    /// batch back when its persist was given up (stopping).
    async fn complete<P: Processor>(
        &mut self,
        b: InFlight,
        processor: &mut P,
        stop: &CancellationToken,
    ) -> Result<Option<InFlight>> {
        let service = &self.opts.service;
        let mut backoff = Backoff::new(service, "persist", &self.opts.health);
        loop {
            match processor.persist().await {
                Ok(()) => break,
                Err(e) => {
                    if !backoff.wait(e, stop).await? {
                        return Ok(Some(b));
                    }
                }
            }
        }
        backoff.done();
        self.store_offsets(&b.store);
        if let Some(progress) = &self.opts.progress {
            progress.advance(service, &b.positions);
        }
        if b.consumed > 0 {
            metrics::counter!("psg_messages_consumed_total", "service" => service.clone()).increment(b.consumed as u64);
            metrics::counter!("psg_batches_total", "service" => service.clone()).increment(1);
            metrics::histogram!("psg_batch_duration_seconds", "service" => service.clone())
                .record(b.started.elapsed().as_secs_f64());
        }
        tracing::debug!(
            service = %service,
            consumed = b.consumed,
            produced = b.output.records.len(),
            dead_lettered = b.output.dead_letters.len(),
            elapsed_ms = b.started.elapsed().as_millis() as u64,
            "batch done"
        );
        Ok(None)
    }

    /// Stores the offsets a finished batch allows.
    fn store_offsets(&self, store: &BTreeMap<(Arc<str>, i32), i64>) {
        if store.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in store {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                tracing::warn!(service = %self.opts.service, error = %e, "bad offset");
            }
        }
        match self.consumer.store_offsets(&tpl) {
            Ok(()) => tracing::trace!(service = %self.opts.service, offsets = %describe(&tpl), "offsets stored"),
            // The partition moved to another instance meanwhile: it will process
            // the batch again (idempotent outputs), nothing is lost.
            Err(e) => tracing::warn!(service = %self.opts.service, error = %e, "storing offsets failed"),
        }
    }
}

/// Exponential backoff of one step of a batch, with health reporting.
struct Backoff<'a> {
    service: &'a str,
    step: &'static str,
    health: &'a Health,
    delay: Duration,
    failing: bool,
}

impl<'a> Backoff<'a> {
    fn new(service: &'a str, step: &'static str, health: &'a Health) -> Self {
        Self { service, step, health, delay: Duration::from_millis(100), failing: false }
    }

    /// After a failure: `Err` for a fatal error, `Ok(false)` if `stop` fired
    /// while waiting, `Ok(true)` when it is time to try again.
    async fn wait(&mut self, err: ProcessError, stop: &CancellationToken) -> Result<bool> {
        let (service, step) = (self.service, self.step);
        match err {
            ProcessError::Fatal(reason) => {
                self.health.set_failed(service, reason.clone());
                Err(Error::Fatal { service: service.to_owned(), reason })
            }
            ProcessError::Transient(reason) => {
                self.failing = true;
                self.health.set_degraded(service, format!("{step}: {reason}"));
                metrics::counter!("psg_retries_total", "service" => service.to_owned(), "step" => step).increment(1);
                tracing::warn!(service, step, retry_in_ms = self.delay.as_millis() as u64, error = %reason, "retrying");
                let go_on = tokio::select! {
                    _ = stop.cancelled() => false,
                    _ = tokio::time::sleep(self.delay) => true,
                };
                self.delay = (self.delay * 2).min(Duration::from_secs(30));
                Ok(go_on)
            }
        }
    }

    /// The step succeeded.
    fn done(self) {
        if self.failing {
            tracing::info!(service = self.service, step = self.step, "recovered");
            self.health.set_ready(self.service);
        }
    }
}

async fn recv_or_pending(c: Option<&StreamConsumer<LoopContext>>) -> KafkaResult<BorrowedMessage<'_>> {
    match c {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

fn owned(m: &BorrowedMessage<'_>, kind: InputKind) -> InMessage {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
        .unwrap_or_default();
    InMessage {
        kind,
        topic: Arc::from(m.topic()),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        headers,
        timestamp_ms: m.timestamp().to_millis(),
    }
}

/// A consumer assigned every partition of the table topics, from the
/// beginning, and the end each partition has now (what is loaded before the
/// stream topics are joined).
async fn table_consumer(
    cfg: &KafkaConfig,
    opts: &RunnerOptions,
    shutdown: &CancellationToken,
    resets: Resets,
) -> Result<(StreamConsumer<LoopContext>, TableLoad)> {
    let context = LoopContext { service: opts.service.clone(), revoked: Arc::default(), resets };
    let consumer: StreamConsumer<LoopContext> = client::table_consumer(cfg, &opts.group)?
        .create_with_context(context)
        .map_err(|e| Error::kafka(format!("{}: creating table consumer", opts.service), e))?;
    let mut tpl = TopicPartitionList::new();
    let mut load = TableLoad::default();
    for topic in &opts.table_topics {
        let partitions = partition_count(cfg, topic, shutdown).await?;
        for (p, (low, high)) in watermarks(cfg, topic, partitions).await?.into_iter().enumerate() {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
                .map_err(|e| Error::kafka(format!("{}: assigning {topic}", opts.service), e))?;
            if high > low {
                load.pending.insert((topic.clone(), p as i32), high);
            }
        }
    }
    consumer.assign(&tpl).map_err(|e| Error::kafka(format!("{}: assigning tables", opts.service), e))?;
    Ok((consumer, load))
}

/// The (low, high) watermarks of partitions `0..partitions` of `topic`.
async fn watermarks(cfg: &KafkaConfig, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>> {
    let probe: BaseConsumer = client::base(cfg)?.create().map_err(|e| Error::kafka("watermark client", e))?;
    let t = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        (0..partitions)
            .map(|p| {
                probe
                    .fetch_watermarks(&t, p, Duration::from_secs(30))
                    .map_err(|e| Error::kafka(format!("watermarks of {t}[{p}]"), e))
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Fatal { service: "metadata".into(), reason: e.to_string() })?
}

/// Number of partitions of `topic`, waiting (bounded) for it to appear.
pub async fn partition_count(cfg: &KafkaConfig, topic: &str, shutdown: &CancellationToken) -> Result<i32> {
    let probe: BaseConsumer = client::base(cfg)?.create().map_err(|e| Error::kafka("metadata client", e))?;
    let probe = Arc::new(probe);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = Arc::clone(&probe);
        let t = topic.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            let found = p
                .fetch_metadata(Some(&t), Duration::from_secs(5))
                .map(|md| md.topics().iter().find(|mt| mt.name() == t).map_or(0, |mt| mt.partitions().len()));
            // Before trying again, serve the client's queue: librdkafka's
            // logs (its warnings about unreachable brokers, a debug
            // configuration dump) wait there. A poll handles queued events
            // until its timeout.
            if !matches!(found, Ok(n) if n > 0) {
                let _ = p.poll(Duration::from_millis(50));
            }
            found
        })
        .await
        .map_err(|e| Error::Fatal { service: "metadata".into(), reason: e.to_string() })?;
        match found {
            Ok(n) if n > 0 => return Ok(n as i32),
            Ok(_) | Err(_) if Instant::now() < deadline && !shutdown.is_cancelled() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => {
                return Err(Error::Fatal {
                    service: "metadata".into(),
                    reason: format!("topic {topic} has no partitions after 60 s"),
                });
            }
            Err(e) => return Err(Error::kafka(format!("metadata of {topic}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::offset_reset;

    #[test]
    fn offset_resets_are_read_from_librdkafkas_log_line() {
        let line = "[thrd:main]: flows.normalized [2]: offset reset (at offset 10 (leader epoch 0), broker 1) to \
                    cached BEGINNING offset offset 2966 (leader epoch -1): fetch failed due to requested offset not \
                    available on the broker: Broker: Offset out of range";
        assert_eq!(offset_reset(line), Some(("flows.normalized".to_owned(), 2, 10)));
        assert_eq!(offset_reset("in [0]: offset reset (at offset INVALID, broker 1) to ..."), None);
        assert_eq!(offset_reset("something else"), None);
    }
}
