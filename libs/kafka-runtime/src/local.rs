//! The in-process transport: the services' [`Processor`]s connected by
//! bounded in-memory queues instead of a broker, for batch runs (`analyze`,
//! `demo`).
//!
//! - A [`Bus`] holds the topics: per topic its partition count, the next
//!   offset of each partition and its subscribers. Publishing a record
//!   picks its partition as the Kafka producer does (explicit, else
//!   librdkafka's default `consistent_random`: CRC-32 of the key modulo the
//!   partition count), gives it the partition's next offset and puts it in
//!   the inbox of every subscriber, waiting while an inbox is full: the
//!   slowest consumer sets the pace (backpressure), nothing is ever dropped,
//!   and memory stays bounded by the inbox capacities whatever the input.
//! - Each service reads one [`Inbox`]: its stream and table topics' messages
//!   in the order they were published. There are no offsets to commit and
//!   no group to join.
//! - End of stream is explicit: a topic ends when every one of its
//!   publishers has finished; a service whose inputs have all ended calls
//!   [`Processor::end_of_input`] (correlate closes its last windows),
//!   publishes that, and finishes its own outputs, so the end travels down
//!   the pipeline. [`run_local`] returns then.
//!
//! The same Processor code, partitioning, keys and headers as over Kafka;
//! what differs is only that everything sent is received, in order, once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use crate::dead_letter;
use crate::message::{InMessage, InputKind, OutRecord, Output};
use crate::runner::{ProcessError, Processor};
use crate::{Error, Result};

/// About the most payload bytes one event carries: with the inbox
/// capacity, what bounds the memory between two stages.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// What an inbox receives.
#[derive(Debug)]
pub enum Event {
    /// Consecutive messages of one topic, published together.
    Batch(Vec<InMessage>),
    /// Every publisher of this topic has finished.
    End(Arc<str>),
}

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    partitions: i32,
    /// Next offset per partition, and the publishers not finished yet; the
    /// lock also keeps a partition's messages in offset order in every inbox.
    state: Mutex<(Vec<i64>, usize)>,
    subscribers: Vec<(mpsc::Sender<Event>, InputKind)>,
}

/// The topics and who reads them.
#[derive(Debug, Clone)]
pub struct Bus {
    topics: Arc<BTreeMap<String, Arc<Topic>>>,
}

/// Declares topics, subscribers and publishers, then builds the [`Bus`].
#[derive(Debug)]
pub struct BusBuilder {
    partitions: i32,
    capacity: usize,
    topics: BTreeMap<String, (i32, usize)>,
    inboxes: Vec<(String, Vec<String>, Vec<String>)>,
}

/// A subscriber's place among the inboxes [`BusBuilder::build`] returns.
pub type InboxId = usize;

impl BusBuilder {
    /// Topics of `partitions` partitions by default; inboxes holding at most
    /// `capacity` messages.
    pub fn new(partitions: i32, capacity: usize) -> Self {
        Self { partitions: partitions.max(1), capacity: capacity.max(1), topics: BTreeMap::new(), inboxes: Vec::new() }
    }

    /// A topic with its own partition count.
    pub fn topic(&mut self, name: &str, partitions: i32) -> &mut Self {
        self.topics.entry(name.to_owned()).or_insert((partitions.max(1), 0)).0 = partitions.max(1);
        self
    }

    fn ensure(&mut self, name: &str) -> &mut (i32, usize) {
        let partitions = self.partitions;
        self.topics.entry(name.to_owned()).or_insert((partitions, 0))
    }

    /// A reader of `streams` and `tables` (a service, or whoever collects
    /// the results).
    pub fn subscriber(&mut self, name: &str, streams: &[String], tables: &[String]) -> InboxId {
        for t in streams.iter().chain(tables) {
            self.ensure(t);
        }
        self.inboxes.push((name.to_owned(), streams.to_vec(), tables.to_vec()));
        self.inboxes.len() - 1
    }

    /// One more publisher of `topics`: each ends when all its publishers
    /// have finished ([`Publisher::finish`]).
    pub fn publisher(&mut self, topics: &[String]) -> &mut Self {
        for t in topics {
            self.ensure(t).1 += 1;
        }
        self
    }

    /// The bus, and the inboxes in the order of [`BusBuilder::subscriber`].
    pub fn build(self) -> (Bus, Vec<Inbox>) {
        let mut senders: Vec<mpsc::Sender<Event>> = Vec::new();
        let mut inboxes = Vec::new();
        for (name, streams, tables) in &self.inboxes {
            let (tx, rx) = mpsc::channel(self.capacity);
            senders.push(tx);
            // A topic nobody publishes to has ended already.
            let published = |t: &String| self.topics.get(t).is_some_and(|(_, publishers)| *publishers > 0);
            let open: HashSet<Arc<str>> =
                streams.iter().chain(tables).filter(|t| published(t)).map(|t| Arc::from(t.as_str())).collect();
            inboxes.push(Inbox { name: name.clone(), rx, open, buffered: Default::default() });
        }
        let mut topics = BTreeMap::new();
        for (name, (partitions, publishers)) in &self.topics {
            let mut subscribers = Vec::new();
            for (i, (_, streams, tables)) in self.inboxes.iter().enumerate() {
                if streams.contains(name) {
                    subscribers.push((senders[i].clone(), InputKind::Stream));
                } else if tables.contains(name) {
                    subscribers.push((senders[i].clone(), InputKind::Table));
                }
            }
            let topic = Topic {
                name: Arc::from(name.as_str()),
                partitions: *partitions,
                state: Mutex::new((vec![0; *partitions as usize], *publishers)),
                subscribers,
            };
            topics.insert(name.clone(), Arc::new(topic));
        }
        (Bus { topics: Arc::new(topics) }, inboxes)
    }
}

/// The partition librdkafka's default partitioner (`consistent_random`)
/// gives a record: CRC-32 of a non-empty key modulo the partition count;
/// without a key, partition 0 (librdkafka picks one at random).
pub fn partition_for(key: Option<&[u8]>, partitions: i32) -> i32 {
    match key {
        Some(k) if !k.is_empty() => (crc32fast::hash(k) % partitions.max(1) as u32) as i32,
        _ => 0,
    }
}

impl Bus {
    fn topic(&self, name: &str) -> Result<&Arc<Topic>> {
        self.topics.get(name).ok_or_else(|| Error::Fatal {
            service: "bus".into(),
            reason: format!("no topic {name} on the in-process bus"),
        })
    }

    /// Publishes one record (to every subscriber of its topic, waiting while
    /// an inbox is full); returns its partition and offset.
    pub async fn publish(&self, r: OutRecord) -> Result<(i32, i64)> {
        let placed = self.publish_run(vec![r]).await?;
        placed
            .first()
            .copied()
            .ok_or_else(|| Error::Fatal { service: "bus".into(), reason: "the bus placed no record".into() })
    }

    /// Publishes `records` of one topic together: one event per subscriber
    /// (far fewer hand-overs than a message each; the last subscriber takes
    /// the records themselves, the others a copy). Returns where each went.
    async fn publish_run(&self, records: Vec<OutRecord>) -> Result<Vec<(i32, i64)>> {
        let Some(first) = records.first() else { return Ok(Vec::new()) };
        let topic = self.topic(&first.topic)?;
        let mut state = topic.state.lock().await;
        let placed = records.iter().map(|r| place(topic, &mut state.0, r)).collect::<Result<Vec<_>>>()?;
        let mut last = Some(records);
        for (i, (tx, kind)) in topic.subscribers.iter().enumerate() {
            let records = if i + 1 == topic.subscribers.len() { last.take() } else { last.clone() };
            let Some(records) = records else { break };
            let messages = records.into_iter().zip(&placed).map(|(r, at)| delivered(topic, *kind, r, *at)).collect();
            tx.send(Event::Batch(messages)).await.map_err(|_| closed(&topic.name))?;
        }
        Ok(placed)
    }

    /// Publishes a service's outputs: its records (each run of one topic
    /// together, in order), then its dead letters to `dead_letter_topic`
    /// (headers as over Kafka).
    pub async fn publish_output(&self, service: &str, dead_letter_topic: &str, out: Output) -> Result<()> {
        let Output { records, dead_letters, .. } = out;
        let mut run: Vec<OutRecord> = Vec::new();
        let mut bytes = 0;
        for r in records {
            if run.last().is_some_and(|l| l.topic != r.topic) || bytes >= MAX_EVENT_BYTES {
                self.publish_run(std::mem::take(&mut run)).await?;
                bytes = 0;
            }
            bytes += r.payload.len();
            run.push(r);
        }
        self.publish_run(run).await?;
        let letters: Vec<OutRecord> = dead_letters
            .iter()
            .map(|dl| OutRecord {
                topic: dead_letter_topic.to_owned(),
                partition: None,
                key: dl.key.clone(),
                payload: dead_letter::payload(dl).0.to_vec(),
                headers: dead_letter::headers(service, dl)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into_bytes()))
                    .collect(),
            })
            .collect();
        self.publish_run(letters).await?;
        for dl in &dead_letters {
            metrics::counter!("psg_dead_letters_total", "service" => service.to_owned(), "kind" => dl.kind)
                .increment(1);
        }
        Ok(())
    }

    /// A publisher of `topics` (declared with [`BusBuilder::publisher`]).
    pub fn publisher(&self, topics: &[String]) -> Publisher {
        Publisher { bus: self.clone(), topics: topics.to_vec(), finished: false }
    }
}

/// Picks `r`'s partition (its own, else by key) and its offset there.
fn place(topic: &Topic, next: &mut [i64], r: &OutRecord) -> Result<(i32, i64)> {
    let partition = match r.partition {
        Some(p) if (0..topic.partitions).contains(&p) => p,
        Some(p) => {
            return Err(Error::Fatal {
                service: "bus".into(),
                reason: format!("{} has no partition {p} (it has {})", r.topic, topic.partitions),
            });
        }
        None => partition_for(r.key.as_deref(), topic.partitions),
    };
    let offset = next[partition as usize];
    next[partition as usize] += 1;
    Ok((partition, offset))
}

/// `r` as a subscriber of `topic` receives it.
fn delivered(topic: &Topic, kind: InputKind, r: OutRecord, (partition, offset): (i32, i64)) -> InMessage {
    InMessage {
        kind,
        topic: Arc::clone(&topic.name),
        partition,
        offset,
        key: r.key,
        payload: Some(r.payload),
        headers: r.headers,
        timestamp_ms: None,
    }
}

fn closed(topic: &str) -> Error {
    Error::Fatal { service: "bus".into(), reason: format!("a reader of {topic} stopped before the end of its input") }
}

/// One publisher's hold on its topics: [`Publisher::finish`] ends them once
/// every publisher of each has finished.
#[derive(Debug)]
pub struct Publisher {
    bus: Bus,
    topics: Vec<String>,
    finished: bool,
}

impl Publisher {
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// This publisher is done: a topic whose publishers are all done ends
    /// (every subscriber gets [`Event::End`]).
    pub async fn finish(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        for name in &self.topics {
            let topic = self.bus.topic(name)?;
            let mut state = topic.state.lock().await;
            state.1 = state.1.saturating_sub(1);
            if state.1 == 0 {
                for (tx, _) in &topic.subscribers {
                    tx.send(Event::End(Arc::clone(&topic.name))).await.map_err(|_| closed(&topic.name))?;
                }
            }
        }
        Ok(())
    }
}

/// A subscriber's messages, in publication order, until all its topics end.
#[derive(Debug)]
pub struct Inbox {
    name: String,
    rx: mpsc::Receiver<Event>,
    open: HashSet<Arc<str>>,
    /// The rest of a batch received.
    buffered: std::collections::VecDeque<InMessage>,
}

impl Inbox {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next message; `None` once every topic of the inbox has ended.
    pub async fn recv(&mut self) -> Option<InMessage> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                return Some(m);
            }
            if self.open.is_empty() {
                return None;
            }
            let event = self.rx.recv().await?;
            self.take(event);
        }
    }

    /// A message already waiting, without waiting (`None`: none, or ended).
    pub fn try_recv(&mut self) -> Option<InMessage> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                return Some(m);
            }
            if self.open.is_empty() {
                return None;
            }
            let event = self.rx.try_recv().ok()?;
            self.take(event);
        }
    }

    fn take(&mut self, event: Event) {
        match event {
            Event::Batch(ms) => self.buffered.extend(ms),
            Event::End(t) => {
                self.open.remove(&t);
            }
        }
    }
}

/// What [`run_local`] needs to know about a service.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub service: String,
    pub dead_letter_topic: String,
    pub batch_size: usize,
}

/// What a service did over its whole input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalStats {
    pub consumed: u64,
    pub produced: u64,
    pub dead_letters: u64,
    pub batches: u64,
    /// Time spent processing (not waiting for input or for readers).
    pub busy: std::time::Duration,
    /// Time spent waiting for full inboxes downstream.
    pub publishing: std::time::Duration,
}

/// Runs `processor` over its inbox to the end of its input: batches of what
/// is waiting (up to the batch size or [`MAX_EVENT_BYTES`]), processed,
/// published, persisted; at
/// the end [`Processor::end_of_input`]; then its topics end. Any error
/// stops it (nothing is retried: there is no broker, and a batch run has
/// no database).
pub async fn run_local<P: Processor>(
    opts: LocalOptions,
    mut processor: P,
    mut inbox: Inbox,
    mut publisher: Publisher,
) -> Result<LocalStats> {
    let service = opts.service.clone();
    let fail = |e: ProcessError| Error::Fatal { service: service.clone(), reason: e.to_string() };
    let mut stats = LocalStats::default();
    let mut batch = Vec::with_capacity(opts.batch_size);
    while let Some(first) = inbox.recv().await {
        let mut bytes = first.payload().len();
        batch.push(first);
        while batch.len() < opts.batch_size && bytes < MAX_EVENT_BYTES {
            match inbox.try_recv() {
                Some(m) => {
                    bytes += m.payload().len();
                    batch.push(m);
                }
                None => break,
            }
        }
        let started = std::time::Instant::now();
        let out = processor.process(&batch).await.map_err(fail)?;
        stats.busy += started.elapsed();
        stats.consumed += batch.len() as u64;
        stats.batches += 1;
        batch.clear();
        let started = std::time::Instant::now();
        emit(&opts, &publisher, out, &mut stats).await?;
        stats.publishing += started.elapsed();
        processor.acknowledged();
        processor.persist().await.map_err(fail)?;
    }
    let out = processor.end_of_input().await.map_err(fail)?;
    emit(&opts, &publisher, out, &mut stats).await?;
    processor.acknowledged();
    processor.persist().await.map_err(fail)?;
    publisher.finish().await?;
    tracing::info!(
        service = %service,
        consumed = stats.consumed,
        produced = stats.produced,
        batches = stats.batches,
        busy_ms = stats.busy.as_millis() as u64,
        publishing_ms = stats.publishing.as_millis() as u64,
        "end of input"
    );
    Ok(stats)
}

async fn emit(opts: &LocalOptions, publisher: &Publisher, out: Output, stats: &mut LocalStats) -> Result<()> {
    stats.produced += out.records.len() as u64;
    stats.dead_letters += out.dead_letters.len() as u64;
    publisher.bus().publish_output(&opts.service, &opts.dead_letter_topic, out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_as_librdkafka_picks_them() {
        // consistent_random: CRC-32 (IEEE) of the key modulo the count.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926, "the CRC-32 check value");
        assert_eq!(partition_for(Some(b"123456789"), 7), (0xcbf4_3926u32 % 7) as i32);
        assert_eq!(partition_for(None, 3), 0);
        assert_eq!(partition_for(Some(b""), 3), 0);
    }

    /// Counts what it sees; at the end emits the count.
    struct Count {
        seen: Vec<(String, i32, i64)>,
    }

    impl Processor for Count {
        async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
            self.seen.extend(batch.iter().map(|m| (m.topic.to_string(), m.partition, m.offset)));
            let mut out = Output::default();
            for m in batch {
                out.records.push(OutRecord::new("out", m.key.clone().unwrap_or_default(), m.payload().to_vec()));
            }
            Ok(out)
        }

        async fn end_of_input(&mut self) -> Result<Output, ProcessError> {
            let mut out = Output::default();
            out.records.push(OutRecord::to_partition("out", 0, "end", self.seen.len().to_string().into_bytes()));
            Ok(out)
        }
    }

    #[tokio::test]
    async fn everything_published_arrives_once_in_order_and_the_end_travels_down() {
        let mut b = BusBuilder::new(2, 4); // small inboxes: publishers wait
        let topics = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let service = b.subscriber("count", &topics(&["in"]), &topics(&["table"]));
        let reader = b.subscriber("reader", &topics(&["out", "dlq"]), &[]);
        b.publisher(&topics(&["in", "table"])).publisher(&topics(&["out", "dlq"]));
        let (bus, mut inboxes) = b.build();
        let mut reader_inbox = inboxes.remove(reader);
        let service_inbox = inboxes.remove(service);
        let opts = LocalOptions { service: "count".into(), dead_letter_topic: "dlq".into(), batch_size: 3 };
        let run = tokio::spawn(run_local(
            opts,
            Count { seen: Vec::new() },
            service_inbox,
            bus.publisher(&topics(&["out", "dlq"])),
        ));
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = reader_inbox.recv().await {
                got.push((m.partition, m.offset, String::from_utf8_lossy(m.payload()).into_owned()));
            }
            got
        });
        let mut feeder = bus.publisher(&topics(&["in", "table"]));
        feeder.bus().publish(OutRecord::new("table", "t", b"t0".to_vec())).await.unwrap();
        for i in 0..100 {
            feeder
                .bus()
                .publish(OutRecord::new("in", format!("k{}", i % 5), format!("m{i}").into_bytes()))
                .await
                .unwrap();
        }
        feeder.finish().await.unwrap();
        let stats = run.await.unwrap().unwrap();
        assert_eq!((stats.consumed, stats.produced), (101, 102));
        let got = read.await.unwrap();
        assert_eq!(got.len(), 102, "every record and the end-of-input one");
        assert_eq!(got.last().map(|g| g.2.as_str()), Some("101"), "end of input after everything");
        // Per partition, offsets 0, 1, 2, ... in order; same key, same partition.
        let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (p, o, _) in &got {
            by_partition.entry(*p).or_default().push(*o);
        }
        for offsets in by_partition.values() {
            assert!(offsets.iter().enumerate().all(|(i, o)| *o == i as i64), "{offsets:?}");
        }
    }
}
