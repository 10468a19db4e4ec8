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
/// Size of the original bytes when the dead letter carries only their start.
pub const ORIGINAL_BYTES: &str = "psg.dlq.original.bytes";
/// How many input records the dead letter stands for (absent: a whole
/// message, however many records it held).
pub const RECORDS: &str = "psg.dlq.records";

/// The most bytes of the original a dead letter carries. A larger original
/// (a 64 MiB message refused as too large, a decompression bomb) would
/// exceed the brokers' default `message.max.bytes` (1 MB) and block the
/// service retrying it; its start is enough to see what it was, and the
/// whole is still in the source topic at the offset the headers name.
pub const MAX_PAYLOAD_BYTES: usize = 768 * 1024;

/// The bytes a dead letter carries: the original, or its first
/// [`MAX_PAYLOAD_BYTES`] with the original size.
pub fn payload(dl: &DeadLetter) -> (&[u8], Option<usize>) {
    if dl.payload.len() > MAX_PAYLOAD_BYTES {
        (&dl.payload[..MAX_PAYLOAD_BYTES], Some(dl.payload.len()))
    } else {
        (&dl.payload, None)
    }
}

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
    if let Some(n) = dl.records {
        h.push((RECORDS, n.to_string()));
    }
    if let (_, Some(original)) = payload(dl) {
        h.push((ORIGINAL_BYTES, original.to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(bytes: usize) -> DeadLetter {
        DeadLetter {
            source_topic: "flowlogs.raw".into(),
            source_partition: 1,
            source_offset: 7,
            line: None,
            key: None,
            payload: vec![b'x'; bytes],
            kind: "too-large",
            reason: "message is too large".into(),
            records: None,
        }
    }

    #[test]
    fn a_huge_original_travels_as_its_start_with_its_size() {
        let big = dl(64 * 1024 * 1024);
        let (bytes, original) = payload(&big);
        assert_eq!((bytes.len(), original), (MAX_PAYLOAD_BYTES, Some(64 * 1024 * 1024)));
        let h = headers("ingest", &big);
        assert!(h.contains(&(ORIGINAL_BYTES, "67108864".to_owned())), "{h:?}");
        let small = dl(100);
        assert_eq!(payload(&small), (&small.payload[..], None));
        assert!(!headers("ingest", &small).iter().any(|(k, _)| *k == ORIGINAL_BYTES));
    }
}
