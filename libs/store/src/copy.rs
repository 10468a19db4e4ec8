//! Binary `COPY … FROM STDIN` data built in memory and sent in large
//! chunks.
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

/// What the binary format starts with: its signature, no flags, no header
/// extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Why a value could not be encoded (its `ToSql` refused it).
pub(crate) type EncodeError = Box<dyn std::error::Error + Sync + Send>;

/// Rows in PostgreSQL's binary COPY format, cut into chunks.
pub(crate) struct BinaryRows {
    buf: BytesMut,
    chunks: Vec<Bytes>,
}

impl BinaryRows {
    pub(crate) fn new() -> Self {
        let mut buf = BytesMut::with_capacity(CHUNK + 8 * 1024);
        buf.put_slice(HEADER);
        Self { buf, chunks: Vec::new() }
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
        if self.buf.len() >= CHUNK {
            self.chunks.push(self.buf.split().freeze());
        }
    }

    /// The chunks, the last one ending with the format's trailer.
    pub(crate) fn finish(mut self) -> Vec<Bytes> {
        self.buf.put_i16(-1);
        self.chunks.push(self.buf.freeze());
        self.chunks
    }
}

/// Runs `statement` (a `COPY … FROM STDIN (FORMAT binary)`) with `chunks`;
/// the rows copied.
pub(crate) async fn send(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &str,
    chunks: Vec<Bytes>,
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(statement).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.as_mut().feed(chunk).await?;
    }
    sink.finish().await
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
        let chunks = rows.finish();
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
        let n = 200;
        for _ in 0..n {
            rows.row(1);
            rows.value(&Type::TEXT, &text).unwrap();
            rows.end_row();
        }
        let chunks = rows.finish();
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
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
}
