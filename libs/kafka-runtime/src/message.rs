//! What flows through the loop: input messages, output records, dead letters.

use std::sync::Arc;

/// Whether an input message comes from a stream topic (consumer group,
/// offsets committed) or a table topic (read whole by every instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Stream,
    Table,
}

/// One consumed message, owned.
#[derive(Debug, Clone)]
pub struct InMessage {
    pub kind: InputKind,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Broker or producer timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl InMessage {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    /// The payload, or an empty slice for a tombstone.
    pub fn payload(&self) -> &[u8] {
        self.payload.as_deref().unwrap_or_default()
    }
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    /// An explicit partition; `None`: the producer's partitioner picks one by key.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    pub fn new(topic: impl Into<String>, key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        Self { topic: topic.into(), partition: None, key: Some(key.into()), payload, headers: Vec::new() }
    }

    /// A record for an explicit partition.
    pub fn to_partition(topic: impl Into<String>, partition: i32, key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        Self { partition: Some(partition), ..Self::new(topic, key, payload) }
    }
}

/// Input that cannot be processed: it goes to the service's dead-letter
/// topic with its reason, never crashes the service, never takes good
/// records with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// 1-based line/record number inside the message, when one record of
    /// many was bad.
    pub line: Option<u32>,
    pub key: Option<Vec<u8>>,
    /// The original bytes: the whole message, or the one bad record's text.
    pub payload: Vec<u8>,
    /// Short machine-readable class of the failure (`parse`, `schema`,
    /// `too-large`, ...): a metric label.
    pub kind: &'static str,
    /// What was wrong, for a human.
    pub reason: String,
    /// How many input records it stands for, when known: 1 for one bad
    /// record, n for n records refused together; `None` for a whole message
    /// (however many records it held).
    pub records: Option<u64>,
}

impl DeadLetter {
    /// The whole of `msg` is bad.
    pub fn whole(msg: &InMessage, kind: &'static str, reason: impl Into<String>) -> Self {
        Self { payload: msg.payload().to_vec(), ..Self::about(msg, kind, reason) }
    }

    /// Record `line` of `msg` (whose text is `record`) is bad.
    pub fn record(msg: &InMessage, line: u32, record: &[u8], kind: &'static str, reason: impl Into<String>) -> Self {
        Self { line: Some(line), payload: record.to_vec(), records: Some(1), ..Self::about(msg, kind, reason) }
    }

    /// A dead letter about `msg`, without payload yet.
    fn about(msg: &InMessage, kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            source_topic: msg.topic.to_string(),
            source_partition: msg.partition,
            source_offset: msg.offset,
            line: None,
            key: msg.key.clone(),
            payload: Vec::new(),
            kind,
            reason: reason.into(),
            records: None,
        }
    }
}

/// What processing a batch produced.
#[derive(Debug, Default, Clone)]
pub struct Output {
    pub records: Vec<OutRecord>,
    pub dead_letters: Vec<DeadLetter>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.dead_letters.is_empty()
    }

    pub fn extend(&mut self, other: Output) {
        self.records.extend(other.records);
        self.dead_letters.extend(other.dead_letters);
    }
}
