//! What a parser returns: the records it read and the ones it refused, each
//! refusal with its position, its text and the reason.
//!
//! Parsers write into a [`Sink`] one record or refusal at a time, so a
//! message of a million records is never held as a million records: the
//! service encodes each as it comes ([`crate::service`]); [`Parsed`] is the
//! sink that collects them (tests, benchmarks, fuzzing, the estate checks).

use psg_domain::{SourceRef, Text};

/// Where a message came from; every record gets a [`SourceRef`] from it.
#[derive(Debug, Clone, Copy)]
pub struct MessageCtx<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The message's own time, for records that carry none.
    pub time: Option<TransportTime>,
}

/// Where a record's time comes from when its format has none (an AWS
/// layout without `start`/`end`): the message that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportTime {
    pub at: psg_domain::time::Micros,
    /// `cloudwatch-event` (the log event's timestamp), `object-time` (an S3
    /// object's time, header `psg.object.time`) or `kafka-timestamp`.
    pub source: &'static str,
}

impl MessageCtx<'_> {
    /// The source of record `line` (1-based; 0 = the whole message).
    pub fn source(&self, line: u32) -> SourceRef {
        SourceRef {
            topic: Text::new(self.topic),
            partition: self.partition,
            offset: self.offset,
            line: i32::try_from(line).unwrap_or(i32::MAX),
        }
    }
}

/// A record a parser refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line, tuple or item number in the message; 0 = the whole message.
    pub line: u32,
    /// The record's own text (a line, a tuple, an item as JSON); empty when
    /// the whole message is refused (the dead letter keeps the message).
    pub raw: Vec<u8>,
    /// Short class: `parse`, `unsupported`, `format`, ...
    pub kind: &'static str,
    /// What was wrong, for a human.
    pub reason: String,
}

impl Rejected {
    pub fn new(line: u32, raw: impl Into<Vec<u8>>, kind: &'static str, reason: impl Into<String>) -> Self {
        Self { line, raw: raw.into(), kind, reason: reason.into() }
    }

    /// The whole message is refused.
    pub fn message(kind: &'static str, reason: impl Into<String>) -> Self {
        Self { line: 0, raw: Vec::new(), kind, reason: reason.into() }
    }
}

/// The outcome of parsing one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T> {
    pub records: Vec<T>,
    pub rejected: Vec<Rejected>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self { records: Vec::new(), rejected: Vec::new() }
    }
}

/// Where a parser puts what it reads, in input order.
pub trait Sink<T> {
    /// A record read.
    fn record(&mut self, record: T);
    /// A record (or, with line 0, the whole message) refused.
    fn reject(&mut self, rejected: Rejected);
    /// The layout of the records that follow has fields this version does
    /// not know (their values are kept as they are, under their names).
    fn unknown_fields(&mut self, _names: &[String]) {}
    /// Either.
    fn push(&mut self, r: Result<T, Rejected>) {
        match r {
            Ok(v) => self.record(v),
            Err(e) => self.reject(e),
        }
    }
}

impl<T> Sink<T> for Parsed<T> {
    fn record(&mut self, record: T) {
        self.records.push(record);
    }
    fn reject(&mut self, rejected: Rejected) {
        self.rejected.push(rejected);
    }
}

impl<T> Parsed<T> {
    /// Collects what `parse` writes into a sink.
    pub fn collect(parse: impl FnOnce(&mut dyn Sink<T>)) -> Self {
        let mut out = Self::default();
        parse(&mut out);
        out
    }

    /// Nothing but one refusal of the whole message.
    pub fn refused(kind: &'static str, reason: impl Into<String>) -> Self {
        Self { records: Vec::new(), rejected: vec![Rejected::message(kind, reason)] }
    }

    pub fn push(&mut self, r: Result<T, Rejected>) {
        match r {
            Ok(v) => self.records.push(v),
            Err(e) => self.rejected.push(e),
        }
    }

    pub fn extend(&mut self, other: Parsed<T>) {
        self.records.extend(other.records);
        self.rejected.extend(other.rejected);
    }
}
