//! The inputs of a batch run: files, directories (searched recursively, in
//! name order), gzip (recognised by its magic bytes, whatever the name) and
//! standard input (`-`). Flow logs are streamed: cut into messages of whole
//! lines (about [`CHUNK_BYTES`] each), never read whole, so memory does not
//! grow with the input.
//!
//! Each chunk knows where it came from (file, first line) and, for lines,
//! how many records it holds — lines with content, AWS header lines
//! excepted, exactly what ingest counts — so the run can check that every
//! record read comes out processed or dead-lettered.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use psg_ingest::aws::Layout;
use psg_ingest::payload::MAX_LINE_BYTES;

use crate::error::CliError;

/// About how many bytes of lines one message holds.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Where input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Stdin,
}

impl Source {
    /// The time of the input, Unix seconds: a file's modification time,
    /// now for standard input (when it was read). The time of flow records
    /// whose layout has no `start`/`end`.
    pub(crate) fn time(&self) -> i64 {
        let now = std::time::SystemTime::now();
        let t = match self {
            Self::File(p) => std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(now),
            Self::Stdin => now,
        };
        t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }

    /// For messages and reports: the path, or `-`.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Stdin => "-".to_owned(),
        }
    }

    /// Its size in bytes, when known (progress).
    pub(crate) fn size(&self) -> Option<u64> {
        match self {
            Self::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Self::Stdin => None,
        }
    }
}

/// The sources `paths` name: files as given, directories' files
/// (recursively, hidden ones skipped, sorted), `-` for standard input.
pub(crate) fn list(paths: &[PathBuf], what: &str) -> Result<Vec<Source>, CliError> {
    let mut sources = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            if sources.contains(&Source::Stdin) {
                return Err(CliError::Config(format!("{what} -: standard input can be read only once")));
            }
            sources.push(Source::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| CliError::Config(format!("{what} {}: {e}", p.display())))?;
        if !meta.is_dir() {
            sources.push(Source::File(p.clone()));
            continue;
        }
        let mut stack = vec![p.clone()];
        let mut found = Vec::new();
        while let Some(d) = stack.pop() {
            let entries =
                std::fs::read_dir(&d).map_err(|e| CliError::Config(format!("{what} {}: {e}", d.display())))?;
            for e in entries.flatten() {
                let path = e.path();
                let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if hidden {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if path.is_file() {
                    found.push(path);
                }
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(CliError::Config(format!("{what} {}: the directory holds no files", p.display())));
        }
        sources.extend(found.into_iter().map(Source::File));
    }
    Ok(sources)
}

/// Counts the bytes read from the underlying file (progress).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `source` for reading, decompressing gzip; bytes read from the
/// source itself are added to `read`.
pub(crate) fn open(source: &Source, read: Arc<AtomicU64>) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = match source {
        Source::File(p) => Box::new(std::fs::File::open(p)?),
        Source::Stdin => Box::new(io::stdin()),
    };
    let mut reader = BufReader::with_capacity(256 * 1024, Counting { inner: raw, read });
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(256 * 1024, flate2::bufread::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// Reads a whole (inventory) input, at most `limit` bytes once decompressed.
pub(crate) fn read_whole(source: &Source, limit: usize) -> Result<Vec<u8>, CliError> {
    let err = |e: io::Error| CliError::Config(format!("{}: {e}", source.name()));
    let mut bytes = Vec::new();
    open(source, Arc::new(AtomicU64::new(0)))
        .map_err(err)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() > limit {
        return Err(CliError::Config(format!(
            "{}: more than {} MiB once decompressed (ingest.max-message-bytes): split it",
            source.name(),
            limit >> 20
        )));
    }
    Ok(bytes)
}

/// One message of a flow-log input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub bytes: Vec<u8>,
    /// The AWS layout of its lines, when the chunk does not begin with the
    /// header line that gives it (later chunks of a file with a header).
    pub aws_header: Option<String>,
    /// 1-based line of the input where the chunk begins.
    pub first_line: u64,
    /// Records it holds (lines with content, header lines excepted), for
    /// lines; `None` for a JSON document or JSON lines (ingest counts those).
    pub records: Option<u64>,
}

/// Cuts a flow-log input into [`Chunk`]s: AWS lines (chunks of whole lines,
/// the header carried on), newline-delimited JSON (chunks of whole lines) or
/// one JSON document (one chunk, at most `max_document` bytes).
pub(crate) struct Chunker<R> {
    reader: R,
    target: usize,
    max_document: usize,
    /// Next line number.
    line: u64,
    kind: Option<Kind>,
    header: Option<String>,
    /// A header line read but not yet placed (it opens the next chunk).
    pending_header: Option<Vec<u8>>,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AwsLines,
    JsonLines,
}

impl<R: BufRead> Chunker<R> {
    pub(crate) fn new(reader: R, target: usize, max_document: usize) -> Self {
        Self {
            reader,
            target: target.max(1),
            max_document,
            line: 1,
            kind: None,
            header: None,
            pending_header: None,
            done: false,
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> io::Error {
        io::Error::other(e.to_string())
    }

    /// Reads one line (with its `\n`) into `buf`; a line longer than the
    /// per-line limit is kept only up to one byte past it (ingest refuses
    /// it by that) and the rest is skipped. `false` at the end.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        let start = buf.len();
        let limit = (MAX_LINE_BYTES + 2) as u64;
        let n = self.reader.by_ref().take(limit).read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(false);
        }
        if !buf.ends_with(b"\n") && buf.len() - start >= limit as usize {
            // Too long: skip to the end of the line.
            loop {
                let (skip, found) = {
                    let avail = self.reader.fill_buf()?;
                    if avail.is_empty() {
                        break;
                    }
                    match avail.iter().position(|b| *b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (avail.len(), false),
                    }
                };
                self.reader.consume(skip);
                if found {
                    break;
                }
            }
            buf.push(b'\n');
        }
        Ok(true)
    }

    /// Decides what the input is from its first bytes; a JSON document is
    /// read here whole (its only chunk).
    fn detect(&mut self) -> io::Result<Option<Chunk>> {
        let json = loop {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                self.done = true;
                return Ok(None);
            }
            match avail.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => break matches!(avail[i], b'{' | b'['),
                None => {
                    // Leading blank space: count its lines and go on.
                    self.line += avail.iter().filter(|b| **b == b'\n').count() as u64;
                    let n = avail.len();
                    self.reader.consume(n);
                }
            }
        };
        if !json {
            self.kind = Some(Kind::AwsLines);
            return Ok(None);
        }
        // JSON: one document, unless it is newline-delimited and large.
        let mut head = Vec::new();
        self.reader.by_ref().take(self.target as u64 * 8).read_to_end(&mut head)?;
        if !head.ends_with(b"\n") && !self.reader.fill_buf()?.is_empty() {
            self.reader.read_until(b'\n', &mut head)?;
        }
        let at_end = self.reader.fill_buf()?.is_empty();
        let first_line = self.line;
        if at_end || !psg_ingest::payload::is_ndjson(&head) {
            let room = self.max_document.saturating_sub(head.len()) as u64 + 1;
            self.reader.by_ref().take(room).read_to_end(&mut head)?;
            if head.len() > self.max_document {
                return Err(self.error(format!(
                    "a JSON document of more than {} MiB (ingest.max-message-bytes) cannot be one message: \
                     split it (newline-delimited JSON is read in parts)",
                    self.max_document >> 20
                )));
            }
            self.done = true;
            return Ok(Some(Chunk { bytes: head, aws_header: None, first_line, records: None }));
        }
        self.kind = Some(Kind::JsonLines);
        self.line += head.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(Some(Chunk { bytes: head, aws_header: None, first_line, records: None }))
    }

    /// The next chunk, `None` at the end of the input.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.kind.is_none() {
                match self.detect()? {
                    Some(chunk) => return Ok(Some(chunk)),
                    None => continue,
                }
            }
            let aws = self.kind == Some(Kind::AwsLines);
            let mut bytes = Vec::with_capacity(self.target + 1024);
            let first_line = self.line;
            let mut records = 0u64;
            let mut aws_header = None;
            match self.pending_header.take() {
                Some(h) => {
                    bytes.extend_from_slice(&h);
                    self.line += 1;
                }
                None if aws => aws_header.clone_from(&self.header),
                None => {}
            }
            while bytes.len() < self.target {
                let start = bytes.len();
                if !self.read_line(&mut bytes)? {
                    self.done = true;
                    break;
                }
                let line = trim_eol(&bytes[start..]);
                if aws && let Some(header) = header_line(line) {
                    if start > 0 {
                        // A (new) header opens the next chunk.
                        self.pending_header = Some(bytes[start..].to_vec());
                        bytes.truncate(start);
                        self.header = Some(header);
                        break;
                    }
                    self.header = Some(header);
                    aws_header = None;
                    self.line += 1;
                    continue;
                }
                self.line += 1;
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    records += 1;
                }
            }
            let blank = bytes.iter().all(u8::is_ascii_whitespace);
            if blank {
                continue;
            }
            let records = aws.then_some(records);
            return Ok(Some(Chunk { bytes, aws_header, first_line, records }));
        }
    }
}

/// A line without its `\n` / `\r\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The layout an AWS header line gives, if `line` is one (as ingest reads
/// it: UTF-8, within the line limit).
fn header_line(line: &[u8]) -> Option<String> {
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    Layout::is_header_line(text).then(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Whether `path` exists and is readable as a file (for early errors).
pub(crate) fn check_readable(source: &Source) -> Result<(), CliError> {
    match source {
        Source::Stdin => Ok(()),
        Source::File(p) => {
            std::fs::File::open(p).map(drop).map_err(|e| CliError::Config(format!("{}: {e}", Path::new(p).display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &[u8], target: usize) -> Vec<Chunk> {
        let mut c = Chunker::new(text, target, 1 << 20);
        std::iter::from_fn(|| c.next_chunk().expect("chunk")).collect()
    }

    #[test]
    fn aws_lines_are_cut_at_whole_lines_and_the_header_travels() {
        let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
        let mut text = format!("{header}\n");
        for i in 0..10 {
            text.push_str(&format!("2 1 eni-1 10.0.0.1 10.0.0.2 {i} 80 6 1 40 100 160 ACCEPT OK\n"));
        }
        text.push_str("\n   \n");
        let c = chunks(text.as_bytes(), 200);
        assert!(c.len() > 2, "{} chunks", c.len());
        assert_eq!(c[0].aws_header, None, "the first chunk begins with its header line");
        assert!(c[1..].iter().all(|k| k.aws_header.as_deref() == Some(header)));
        assert_eq!(c.iter().map(|k| k.records.unwrap()).sum::<u64>(), 10, "header and blank lines are no records");
        assert_eq!(c[0].first_line, 1);
        let lines_before: u64 = c[0].bytes.iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(c[1].first_line, 1 + lines_before);
        let joined: Vec<u8> = c.iter().flat_map(|k| k.bytes.clone()).collect();
        assert!(text.as_bytes().starts_with(&joined), "the chunks are the input, in order");
    }

    #[test]
    fn a_new_header_mid_file_opens_a_chunk() {
        let text = b"version srcaddr dstaddr\n2 10.0.0.1 10.0.0.2\nversion dstaddr srcaddr\n2 10.0.0.3 10.0.0.4\n";
        let c = chunks(text, 1 << 20);
        assert_eq!(c.len(), 2);
        assert!(c[1].bytes.starts_with(b"version dstaddr srcaddr"));
        assert_eq!((c[1].first_line, c[1].aws_header.clone(), c[1].records), (3, None, Some(1)));
    }

    #[test]
    fn json_documents_are_whole_and_json_lines_are_cut() {
        let doc = br#"{"records": [{"a": 1}]}"#;
        let c = chunks(doc, 4);
        assert_eq!((c.len(), c[0].records), (1, None));
        let mut lines = Vec::new();
        for i in 0..200 {
            lines.extend_from_slice(format!("{{\"jsonPayload\": {{\"n\": {i}}}}}\n").as_bytes());
        }
        let c = chunks(&lines, 64);
        assert!(c.len() > 1, "newline-delimited JSON larger than 8 chunks is cut");
        assert!(c.iter().all(|k| k.bytes.ends_with(b"\n")));
        assert_eq!(c.iter().map(|k| k.bytes.len()).sum::<usize>(), lines.len());
    }

    #[test]
    fn an_overlong_line_is_kept_only_up_to_the_limit() {
        let mut text = vec![b'x'; MAX_LINE_BYTES + 5000];
        text.extend_from_slice(b"\n2 10.0.0.1 10.0.0.2\n");
        let c = chunks(&text, 1 << 20);
        assert_eq!(c.iter().map(|k| k.records.unwrap()).sum::<u64>(), 2);
        assert!(c[0].bytes.len() < MAX_LINE_BYTES + 100, "the rest of the long line was skipped");
    }
}
