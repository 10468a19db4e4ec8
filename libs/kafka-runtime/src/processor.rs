//! What a service is to the runner: a [`Processor`] of batches, and how
//! its failures are told apart ([`ProcessError`]).

use std::future::Future;
use std::time::Duration;

use crate::message::{InMessage, Output};

/// Why processing a batch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProcessError {
    /// A dependency is unavailable (database down, ...): the step is retried
    /// with backoff; offsets do not move meanwhile.
    #[error("{0}")]
    Transient(String),
    /// A broken invariant: the service stops with an error.
    #[error("{0}")]
    Fatal(String),
}

impl ProcessError {
    /// `Transient` when retrying may help, `Fatal` otherwise.
    pub fn classify(transient: bool, error: impl std::fmt::Display) -> Self {
        if transient { Self::Transient(error.to_string()) } else { Self::Fatal(error.to_string()) }
    }
}

/// A service's logic, driven by [`run`].
pub trait Processor: Send + 'static {
    /// Processes one batch: update state, return outputs and dead letters.
    /// On `Err`, state must be unchanged (the batch is processed again).
    fn process(&mut self, batch: &[InMessage]) -> impl Future<Output = Result<Output, ProcessError>> + Send;

    /// Makes the database writes queued by `process` durable. Retried on
    /// [`ProcessError::Transient`]; must be idempotent. Called once for every
    /// `process` or `tick` that returned `Ok`, in the same order, after that
    /// step's outputs were acknowledged (a pipelined processor may have
    /// processed the next batch meanwhile).
    fn persist(&mut self) -> impl Future<Output = Result<(), ProcessError>> + Send {
        async { Ok(()) }
    }

    /// The outputs of the oldest `process`, `tick` or `end_of_input` not
    /// yet reported here were acknowledged. Called once for each of them
    /// that returned `Ok`, in the same order, as soon as its outputs are
    /// acknowledged: before its `persist`, which a pipelined processor gets
    /// only after `PERSIST_LAG` more batches. Slow work that had to wait
    /// for the acknowledgement may start here in the background (the
    /// evidence service's commit), so that `persist` finds it done; `persist`
    /// still returns only once the batch is durable. Default: nothing.
    fn acknowledged(&mut self) {}

    /// How often to call [`Processor::tick`] while no input is waiting;
    /// `None` (the default): never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Every input has ended (batch runs over the in-process transport,
    /// [`crate::local`]): emit what is still held back, e.g. close the last
    /// windows. Its outputs are published and persisted like a batch's.
    fn end_of_input(&mut self) -> impl Future<Output = Result<Output, ProcessError>> + Send {
        async { Ok(Output::default()) }
    }

    /// Processing time passed (no input in hand): act on it, e.g. close the
    /// windows of idle partitions. The outputs are delivered, persisted and
    /// offsets stored as for a batch. On `Err`, state must be unchanged.
    fn tick(&mut self) -> impl Future<Output = Result<Output, ProcessError>> + Send {
        async { Ok(Output::default()) }
    }

    /// Whether the next batch may be processed while the previous one's
    /// outputs are still being acknowledged. Then `persist` runs after a
    /// later batch was processed: a processor whose `persist` writes
    /// everything queued so far writes that later batch's rows before its
    /// outputs are acknowledged, which only processors that re-emit
    /// everything of a redelivered batch regardless of the database may do
    /// (they rebuild no state from it); the others must make durable only
    /// the batch being finished (the evidence service keeps a queue of
    /// batch writes for this).
    const PIPELINED: bool = false;

    /// For a pipelined processor: how many processed batches may wait,
    /// acknowledged, for their `persist` while the next is processed. With
    /// 1 (the default) a batch is persisted once the batch after it is
    /// processed; with 2, once the two after it are, so that its write has
    /// two batches' processing time to run (the evidence service). Each
    /// batch is still persisted in order, after its outputs were
    /// acknowledged, and its offsets stored only then; when no batch
    /// follows (idle, shutdown) every waiting batch is persisted.
    const PERSIST_LAG: usize = 1;

    /// For each stream partition, the lowest offset whose effect exists only
    /// in memory (e.g. a record in a window that has not closed): offsets are
    /// never stored past it. Read right after each `process` and `tick`.
    fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        Vec::new()
    }

    /// The consumer group took these stream partitions away (rebalance).
    /// Their uncommitted messages will be processed again by whichever
    /// instance gets them, from the last committed offset: a stateful
    /// processor drops what it holds of them, so that nothing is counted
    /// twice. Messages of these partitions still in the batch in hand are
    /// dropped by the runner before the next `process`.
    fn partitions_revoked(&mut self, _partitions: &[(String, i32)]) {}
}
