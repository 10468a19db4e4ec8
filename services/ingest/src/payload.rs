//! Turning a message payload into text records: gzip (bounded), UTF-8,
//! newline splitting, one JSON value or one per line.
//!
//! Limits on hostile input:
//! - a message (after decompression) is at most `ingest.max-message-bytes`
//!   (default 64 MiB); gzip is expanded as a stream and refused as soon as
//!   it passes the limit, so a decompression bomb costs at most the limit;
//! - where a message is read line by line (AWS lines, newline-delimited GCP
//!   entries and inventory objects), a line is at most [`MAX_LINE_BYTES`]
//!   (1 MiB; the longest real records, AWS Config items, stay under
//!   AWS's own 256 KB notification limit): a longer line is refused alone
//!   and its dead letter carries its first [`LONG_LINE_KEPT`] bytes, never
//!   the whole line. A message that is one JSON document (an Azure blob, an
//!   inventory snapshot) is not split into lines and only the message limit
//!   applies.

use std::io::Read;

use serde::Deserialize;

use crate::parsed::Rejected;

/// The longest line read as one record (1 MiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How much of an over-long line its dead letter keeps.
pub const LONG_LINE_KEPT: usize = 4096;

/// Why a payload cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("empty message")]
    Empty,
    #[error("message is {size} bytes, more than the limit of {limit} (ingest.max-message-bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "decompressed size exceeds {limit} bytes (ingest.max-message-bytes): gzip payload refused as a possible decompression bomb, expansion stopped at the limit"
    )]
    Bomb { limit: usize },
    #[error("gzip payload is corrupt: {0}")]
    Gzip(String),
}

impl PayloadError {
    /// Short class for metrics and the dead-letter `kind` header.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } | Self::Bomb { .. } => "too-large",
            Self::Gzip(_) => "gzip",
        }
    }
}

/// The payload's bytes, decompressed if it is gzip, never more than `limit`.
pub fn decode(raw: &[u8], limit: usize) -> Result<std::borrow::Cow<'_, [u8]>, PayloadError> {
    if raw.is_empty() {
        return Err(PayloadError::Empty);
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        // The message itself is held to the limit too: real gzip data
        // expands to at least about its own size, so it is not expanded.
        if raw.len() > limit {
            return Err(PayloadError::TooLarge { size: raw.len(), limit });
        }
        let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
        let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
        decoder.read_to_end(&mut out).map_err(|e| PayloadError::Gzip(e.to_string()))?;
        if out.len() > limit {
            return Err(PayloadError::Bomb { limit });
        }
        return Ok(std::borrow::Cow::Owned(out));
    }
    if raw.len() > limit {
        return Err(PayloadError::TooLarge { size: raw.len(), limit });
    }
    Ok(std::borrow::Cow::Borrowed(raw))
}

/// Non-empty lines with their 1-based line numbers (a trailing `\r` is dropped).
pub fn lines(text: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    // As `split` on b'\n' (a final newline gives a last, empty line), with
    // memchr's vectorised search instead of a byte-at-a-time predicate.
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        match memchr::memchr(b'\n', t) {
            Some(i) => {
                rest = Some(&t[i + 1..]);
                Some(&t[..i])
            }
            None => {
                rest = None;
                Some(t)
            }
        }
    })
    .enumerate()
    .map(|(i, l)| (i as u32 + 1, l.strip_suffix(b"\r").unwrap_or(l)))
    .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()))
}

/// Refuses line `line_no` if it is longer than [`MAX_LINE_BYTES`]; its
/// dead letter keeps only its first [`LONG_LINE_KEPT`] bytes.
pub fn check_line(line_no: u32, line: &[u8]) -> Result<(), Rejected> {
    if line.len() <= MAX_LINE_BYTES {
        return Ok(());
    }
    Err(Rejected::new(
        line_no,
        &line[..LONG_LINE_KEPT],
        "too-large",
        format!(
            "line is {} bytes, longer than the limit of {MAX_LINE_BYTES} bytes per line (the dead letter holds its first {LONG_LINE_KEPT} bytes)",
            line.len()
        ),
    ))
}

/// Why `bytes` are not UTF-8, for a refusal: where the first bad byte is.
pub fn utf8_problem(bytes: &[u8]) -> Option<String> {
    let e = std::str::from_utf8(bytes).err()?;
    let at = e.valid_up_to();
    Some(match bytes.get(at) {
        Some(b) => format!("is not valid UTF-8 (byte 0x{b:02x} at offset {at})"),
        None => format!("is not valid UTF-8 (truncated character at offset {at})"),
    })
}

/// Whether the (decoded) payload is JSON rather than text lines.
pub fn is_json(text: &[u8]) -> bool {
    matches!(text.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{') | Some(b'['))
}

/// Whether a JSON payload holds one value per line (newline-delimited JSON)
/// rather than one value, possibly spread over lines (pretty-printed).
pub fn is_ndjson(text: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(text);
    match serde::de::IgnoredAny::deserialize(&mut de) {
        // Something follows the first value.
        Ok(_) => de.end().is_err(),
        // The first value is broken: one per line if its line is a whole
        // object of its own and more lines follow.
        Err(_) => {
            let mut lines = lines(text);
            match (lines.next(), lines.next()) {
                (Some((_, first)), Some(_)) => {
                    let first = first.trim_ascii();
                    first.starts_with(b"{") && first.ends_with(b"}")
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_is_expanded_within_the_limit() {
        let z = gzip(b"a\nb\n");
        assert_eq!(&*decode(&z, 100).unwrap(), b"a\nb\n");
    }

    #[test]
    fn a_gzip_bomb_is_refused_not_expanded() {
        let z = gzip(&vec![b'0'; 10_000_000]);
        assert!(z.len() < 20_000);
        assert_eq!(decode(&z, 1_000_000), Err(PayloadError::Bomb { limit: 1_000_000 }));
    }

    #[test]
    fn oversized_and_empty_and_corrupt_are_refused() {
        assert_eq!(decode(b"", 10), Err(PayloadError::Empty));
        assert!(matches!(decode(&[b'x'; 11], 10), Err(PayloadError::TooLarge { .. })));
        assert!(matches!(decode(&[0x1f, 0x8b, 0, 1, 2], 10), Err(PayloadError::Gzip(_))));
    }

    #[test]
    fn one_json_value_or_one_per_line() {
        assert!(!is_ndjson(b"{\"a\": 1}\n"));
        assert!(!is_ndjson(b"{\n  \"a\": 1,\n  \"b\": [1, 2]\n}\n"));
        assert!(is_ndjson(b"{\"a\": 1}\n{\"a\": 2}\n"));
        // a broken first line of newline-delimited JSON, and a broken pretty-printed value
        assert!(is_ndjson(b"{\"a\": }\n{\"a\": 2}\n"));
        assert!(!is_ndjson(b"{\n  \"a\": \n}\n"));
    }

    #[test]
    fn lines_are_numbered_and_blank_ones_skipped() {
        let l: Vec<_> = lines(b"a\r\n\n  \nb").collect();
        assert_eq!(l, vec![(1, &b"a"[..]), (4, &b"b"[..])]);
    }
}
