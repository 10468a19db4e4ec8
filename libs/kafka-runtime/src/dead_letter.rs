//! Dead-letter headers: how a dead letter says where it came from and why.

use crate::message::DeadLetter;

/// Why the record was dead-lettered, for a human.
pub const REASON: &str = "psg.dlq.reason";
/// Short class of the failure (`parse`, `schema`, `too-large`, ...).
pub const KIND: &str = "psg.dlq.kind";
/// The service that dead-lettered it.
pub const SERVICE: &str = "psg.dlq.service";
/// Where the original bytes were read.
pub const SOURCE_TOPIC: &str = "psg.dlq.source.topic";
pub const SOURCE_PARTITION: &str = "psg.dlq.source.partition";
pub const SOURCE_OFFSET: &str = "psg.dlq.source.offset";
/// 1-based record number inside the message, when one record of many was bad.
pub const LINE: &str = "psg.dlq.line";

/// The headers of a dead letter produced by `service`.
pub fn headers(service: &str, dl: &DeadLetter) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (REASON, dl.reason.clone()),
        (KIND, dl.kind.to_owned()),
        (SERVICE, service.to_owned()),
        (SOURCE_TOPIC, dl.source_topic.clone()),
        (SOURCE_PARTITION, dl.source_partition.to_string()),
        (SOURCE_OFFSET, dl.source_offset.to_string()),
    ];
    if let Some(line) = dl.line {
        h.push((LINE, line.to_string()));
    }
    h
}
