//! Binary `COPY … FROM STDIN` data built in memory and sent in large
//! chunks, a statement per [`ROWS_PER_COPY`] rows.
//!
//! tokio-postgres's `BinaryCopyInWriter` awaits a send per row and hands
//! the connection a message every 4 KiB: for the evidence write (about 700
//! bytes a row, a thousand rows a batch) that was a CopyData message per
//! five or six rows, each waking the connection task (and written on its
//! own unless others were queued), and an `async` call with a type check
//! per value. Here a batch's rows are encoded in one pass (each value by
//! its own `ToSql`, as there) and sent [`CHUNK`] bytes at a time.

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt as _;
use tokio_postgres::types::{IsNull, ToSql, Type};

/// Bytes per CopyData message: PostgreSQL reads COPY data 64 KiB at a time,
/// and a batch of rows still arrives in several messages, so the server
/// starts on the first while the rest are on the way.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Rows per `COPY` statement. PostgreSQL (15) holds up to 1,000 rows of a
/// binary COPY before it inserts them (its 64 KB limit counts text lines,
/// not binary rows), each in a slot of its own, made on first use and kept
/// to the end of the statement; every slot pins the table's row type in
/// the statement's resource owner. Those pins are all of the same row
/// type, and each new one (a slot, and one per row for the check of an
/// exclusion constraint such as `evidence_hash_unique`) costs more the
/// more are held. Measured with callgrind (issue 20):
/// - a single-user backend copying 20,000 evidence rows, 1,000 rows a
///   statement: 2,323 million instructions; 250: 2,082; 100: 2,055; 50:
///   2,049;
/// - the bench's database connections (10,000 records, two runs each):
///   12,934-12,940 million with 1,000 rows a statement, 12,662-12,691 with
///   250; the bench process itself (20,000 records) 5,901 million with
///   1,000 and 5,903 with 250.
///
/// Each statement also costs two round trips and its own start (the table
/// and its indexes opened), so not fewer rows.
pub(crate) const ROWS_PER_COPY: usize = 250;

/// What the binary format starts with: its signature, no flags, no header
/// extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Why a value could not be encoded (its `ToSql` refused it).
pub(crate) type EncodeError = Box<dyn std::error::Error + Sync + Send>;

/// Rows in PostgreSQL's binary COPY format: a statement's data per
/// [`ROWS_PER_COPY`] rows, each cut into chunks.
pub(crate) struct BinaryRows {
    buf: BytesMut,
    /// The chunks of the statement being filled, but `buf`.
    chunks: Vec<Bytes>,
    /// Its rows so far.
    rows: usize,
    /// The statements filled.
    statements: Vec<Vec<Bytes>>,
}

impl BinaryRows {
    pub(crate) fn new() -> Self {
        let mut buf = BytesMut::with_capacity(CHUNK + 8 * 1024);
        buf.put_slice(HEADER);
        Self { buf, chunks: Vec::new(), rows: 0, statements: Vec::new() }
    }

    /// Starts a row of `fields` values; [`Self::value`] each, then
    /// [`Self::end_row`].
    pub(crate) fn row(&mut self, fields: i16) {
        self.buf.put_i16(fields);
    }

    /// One value as the column of type `ty` receives it: its length (-1
    /// for NULL), then its bytes.
    pub(crate) fn value<T: ToSql>(&mut self, ty: &Type, v: &T) -> Result<(), EncodeError> {
        let at = self.buf.len();
        self.buf.put_i32(0);
        let len = match v.to_sql(ty, &mut self.buf)? {
            IsNull::Yes => -1,
            IsNull::No => i32::try_from(self.buf.len() - at - 4)?,
        };
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    pub(crate) fn end_row(&mut self) {
        self.rows += 1;
        if self.rows == ROWS_PER_COPY {
            self.end_statement();
            self.buf.put_slice(HEADER);
        } else if self.buf.len() >= CHUNK {
            self.chunks.push(self.buf.split().freeze());
        }
    }

    /// Ends the statement being filled with the format's trailer.
    fn end_statement(&mut self) {
        self.buf.put_i16(-1);
        self.chunks.push(self.buf.split().freeze());
        self.statements.push(std::mem::take(&mut self.chunks));
        self.rows = 0;
    }

    /// Each statement's chunks, its last one ending with the format's
    /// trailer; one statement (of no rows) when there were none.
    pub(crate) fn finish(mut self) -> Vec<Vec<Bytes>> {
        if self.rows > 0 || self.statements.is_empty() {
            self.end_statement();
        }
        self.statements
    }
}

/// Runs `statement` (a prepared `COPY … FROM STDIN (FORMAT binary)`) once
/// per statement's chunks of `data` ([`BinaryRows::finish`]); the rows
/// copied.
pub(crate) async fn send(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    data: Vec<Vec<Bytes>>,
) -> Result<u64, tokio_postgres::Error> {
    let mut copied = 0;
    for chunks in data {
        let sink = tx.copy_in(statement).await?;
        futures::pin_mut!(sink);
        for chunk in chunks {
            sink.as_mut().feed(chunk).await?;
        }
        copied += sink.finish().await?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_framed_as_the_binary_format_says() {
        let mut rows = BinaryRows::new();
        rows.row(3);
        rows.value(&Type::INT4, &7i32).unwrap();
        rows.value(&Type::TEXT, &None::<&str>).unwrap();
        rows.value(&Type::TEXT, &"ab").unwrap();
        rows.end_row();
        let statements = rows.finish();
        assert_eq!(statements.len(), 1);
        let chunks = &statements[0];
        assert_eq!(chunks.len(), 1);
        let mut want = HEADER.to_vec();
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(b"ab");
        want.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(&chunks[0][..], &want[..]);
    }

    #[test]
    fn chunks_are_cut_between_rows_once_full() {
        let mut rows = BinaryRows::new();
        let text = "x".repeat(1000);
        let n = ROWS_PER_COPY;
        for _ in 0..n {
            rows.row(1);
            rows.value(&Type::TEXT, &text).unwrap();
            rows.end_row();
        }
        let statements = rows.finish();
        assert_eq!(statements.len(), 1, "{n} rows: one statement");
        let chunks = &statements[0];
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        // Every chunk but the last ends on a row's end and is at least CHUNK.
        let row = 2 + 4 + 1000;
        let mut total = 0;
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.len() >= CHUNK);
            total += c.len();
            assert_eq!((total - HEADER.len()) % row, 0, "a chunk ends inside a row");
        }
        total += chunks[chunks.len() - 1].len();
        assert_eq!(total, HEADER.len() + n * row + 2);
    }

    /// Each statement is whole binary COPY data (header, rows, trailer) of
    /// at most ROWS_PER_COPY rows, and together they hold every row, in
    /// order; no rows still make one statement, of no rows.
    #[test]
    fn rows_are_split_into_statements_of_at_most_rows_per_copy() {
        for n in [0, 1, ROWS_PER_COPY - 1, ROWS_PER_COPY, ROWS_PER_COPY + 1, 2 * ROWS_PER_COPY + 37] {
            let mut rows = BinaryRows::new();
            for i in 0..n {
                rows.row(1);
                rows.value(&Type::INT4, &i32::try_from(i).unwrap()).unwrap();
                rows.end_row();
            }
            let statements = rows.finish();
            assert_eq!(statements.len(), n.div_ceil(ROWS_PER_COPY).max(1), "{n} rows");
            let mut next = 0i32;
            for s in &statements {
                let bytes: Vec<u8> = s.iter().flat_map(|c| c.iter().copied()).collect();
                assert_eq!(&bytes[..HEADER.len()], HEADER, "{n} rows: each statement starts with the header");
                assert_eq!(&bytes[bytes.len() - 2..], &(-1i16).to_be_bytes(), "{n} rows: and ends with the trailer");
                let body = &bytes[HEADER.len()..bytes.len() - 2];
                // A row: its field count (1), its value's length (4), its value.
                assert_eq!(body.len() % 10, 0, "{n} rows: whole rows");
                assert!(body.len() / 10 <= ROWS_PER_COPY, "{n} rows: {} in a statement", body.len() / 10);
                for row in body.chunks(10) {
                    assert_eq!(&row[..6], &[0, 1, 0, 0, 0, 4]);
                    assert_eq!(i32::from_be_bytes(row[6..].try_into().unwrap()), next, "{n} rows: in order");
                    next += 1;
                }
            }
            assert_eq!(next, i32::try_from(n).unwrap(), "{n} rows: every row");
        }
    }
}
