//! Making a batch of evidence durable: its documents in the document
//! store, then its rows, log leaves and checkpoint in one database
//! transaction, committed only once the documents are durable.
//!
//! With a database, a batch's write may start as soon as the batch is
//! processed ([`Write::start`]): its documents are written and flushed and
//! its rows written in an open transaction while the next batches are
//! processed. Once the batch's outputs are acknowledged
//! ([`Write::acknowledge`], the runner's `acknowledged`) and the batch
//! before it is committed, the write task writes the files that grow with
//! the log and commits, in the background; [`Write::finish`] — the
//! runner's `persist`, a batch or two later — waits for that. Nothing is
//! committed before the batch's messages are acknowledged: the service's
//! deduplication reads the database, and a committed record whose message
//! was lost would never be published. Batches commit in the order they were
//! processed, so the stored log never has a gap. A write that fails is
//! done again from the kept batch ([`Write::finish`] once more), in the
//! same order.

use std::sync::Arc;
use std::time::Instant;

use psg_domain::rows::{EvidenceCheckpointRow, EvidenceLogRow, EvidenceRow};
use psg_kafka_runtime::ProcessError;
use psg_store::Store;
use tokio::sync::oneshot;

use crate::documents::{Doc, Documents};

/// What one batch makes durable.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) rows: Vec<EvidenceRow>,
    pub(crate) log: Vec<EvidenceLogRow>,
    pub(crate) checkpoints: Vec<EvidenceCheckpointRow>,
    /// Written once: the records' documents and the checkpoints (and,
    /// without a database, the records' markers).
    pub(crate) documents: Vec<Doc>,
    /// Rewritten as the log grows, in this order and after `documents`:
    /// leaf tiles, the log head, the chain heads.
    pub(crate) growing: Vec<(String, Vec<u8>)>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.checkpoints.is_empty() && self.documents.is_empty() && self.growing.is_empty()
    }
}

/// Told once a batch is durable; the next batch's commit waits for it.
pub(crate) type Durable = oneshot::Receiver<()>;

/// One batch's write, in the order batches were processed.
#[derive(Debug)]
pub(crate) struct Write {
    batch: Arc<Batch>,
    started: Option<Started>,
    /// A write made by [`Write::finish`]: whom to tell once it is durable.
    durable: Option<oneshot::Sender<()>>,
}

/// A write under way: documents being written, rows in an open
/// transaction, committed once acknowledged.
#[derive(Debug)]
struct Started {
    /// Sent by [`Write::acknowledge`] (or by [`Write::finish`] when that
    /// did not come).
    acknowledged: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ProcessError>>,
}

fn transient(e: crate::Error) -> ProcessError {
    ProcessError::Transient(e.to_string())
}

fn append_error(e: psg_store::evidence::AppendError<crate::Error>) -> ProcessError {
    match e {
        psg_store::evidence::AppendError::Store(e) => ProcessError::classify(e.is_transient(), e),
        psg_store::evidence::AppendError::Before(e) => transient(e),
    }
}

impl Write {
    /// The ids of the batch's records.
    pub(crate) fn record_ids(&self) -> impl Iterator<Item = uuid::Uuid> + '_ {
        self.batch.rows.iter().map(|r| r.id)
    }

    /// A batch to write when [`Write::finish`] is called, which then tells
    /// `durable`.
    pub(crate) fn later(batch: Batch, durable: Option<oneshot::Sender<()>>) -> Self {
        Self { batch: Arc::new(batch), started: None, durable }
    }

    /// A batch whose documents and rows are written from now on, in the
    /// background; committed once it is acknowledged and `after` (the
    /// batch before it) is durable, and then `durable` is told.
    pub(crate) fn start(
        batch: Batch,
        documents: &Documents,
        store: &Store,
        after: Option<Durable>,
        durable: oneshot::Sender<()>,
    ) -> Self {
        let batch = Arc::new(batch);
        let (acknowledged, acknowledged_rx) = oneshot::channel::<()>();
        let (b, documents, store) = (Arc::clone(&batch), documents.clone(), store.clone());
        let task = tokio::spawn(async move {
            let before = async {
                write_documents(&documents, &b, false).await?;
                acknowledged_rx
                    .await
                    .map_err(|_| crate::Error::Other("the evidence batch was given up before its commit".into()))?;
                if let Some(after) = after {
                    after.await.map_err(|_| {
                        crate::Error::Other("the evidence batch before this one was not made durable".into())
                    })?;
                }
                write_growing(&documents, &b).await?;
                documents.sync().await
            };
            append(&store, &b, before).await?;
            let _ = durable.send(());
            Ok(())
        });
        Self { batch, started: Some(Started { acknowledged: Some(acknowledged), task }), durable: None }
    }

    /// The batch's outputs were acknowledged: a started write commits as
    /// soon as the batch before it has.
    pub(crate) fn acknowledge(&mut self) {
        if let Some(tx) = self.started.as_mut().and_then(|s| s.acknowledged.take()) {
            let _ = tx.send(());
        }
    }

    /// Makes the batch durable: the documents, then the files that grow with
    /// the log, then (with a database) the rows committed. On error nothing
    /// is committed and the next call writes the batch again.
    pub(crate) async fn finish(&mut self, documents: &Documents, store: Option<&Store>) -> Result<(), ProcessError> {
        // Acknowledged by now, whether or not `acknowledge` was called.
        self.acknowledge();
        match self.started.take() {
            Some(s) => s
                .task
                .await
                .unwrap_or_else(|e| Err(ProcessError::Transient(format!("the evidence write stopped: {e}")))),
            None => {
                self.write_now(documents, store).await?;
                if let Some(durable) = self.durable.take() {
                    let _ = durable.send(());
                }
                Ok(())
            }
        }
    }

    async fn write_now(&self, documents: &Documents, store: Option<&Store>) -> Result<(), ProcessError> {
        let durable = write_documents(documents, &self.batch, true);
        match store {
            Some(store) => append(store, &self.batch, durable).await,
            None => durable.await.map_err(transient),
        }
    }
}

/// The batch's documents written and flushed (with `growing`, the files
/// that grow with the log too, after them).
async fn write_documents(documents: &Documents, b: &Batch, growing: bool) -> crate::Result<()> {
    let started = Instant::now();
    documents.put_many(b.documents.clone()).await?;
    if growing {
        write_growing(documents, b).await?;
    }
    documents.sync().await?;
    metrics::histogram!("psg_evidence_persist_seconds", "step" => "documents").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// The batch's rows, leaves and checkpoint, written while `before` runs and
/// committed once it has succeeded.
async fn append(store: &Store, b: &Batch, before: impl Future<Output = crate::Result<()>>) -> Result<(), ProcessError> {
    let started = Instant::now();
    psg_store::evidence::append_when(store, &b.rows, &b.log, &b.checkpoints, before).await.map_err(append_error)?;
    metrics::histogram!("psg_evidence_persist_seconds", "step" => "database").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// The files that grow with the log, in order (the log head after the
/// tiles and checkpoints it names).
async fn write_growing(documents: &Documents, b: &Batch) -> crate::Result<()> {
    for (path, bytes) in &b.growing {
        documents.put(path, bytes.clone()).await?;
    }
    Ok(())
}
