//! The Kafka runtime every PCI Scope Guard service runs.
//!
//! A service is a [`Processor`]: a pure-ish transformation from a batch of
//! input messages to output records and dead letters (plus whatever database
//! writes it does itself). [`run`] wraps it in the one loop all services
//! share:
//!
//! ```text
//! consume a batch (size or linger) ─► Processor::process ─► produce outputs and dead letters
//!        ▲                                                        │ await every delivery report
//!        └──────────── store offsets (only now) ◄─────────────────┘
//! ```
//!
//! - `enable.auto.offset.store=false`: an offset is stored only after every
//!   output of its batch is acknowledged (and the processor's database commit
//!   returned), and never past what the processor still holds only in memory
//!   ([`Processor::held_offsets`]). librdkafka commits stored offsets
//!   periodically; shutdown commits synchronously.
//! - Table topics (e.g. `resources`) are read by every instance from the
//!   beginning, outside the consumer group; stream topics are shared by the group.
//! - Dead letters keep the original bytes and key; the reason, source topic,
//!   partition, offset (and line) go in headers ([`dead_letter`]).
//! - Shutdown ([`CancellationToken`]) finishes the batch in hand, delivers,
//!   stores, commits synchronously and returns, within the grace period.
//!
//! Modules: [`client`] (librdkafka configuration), [`topics`] (creating
//! topics), [`producer`] (delivering a batch of outputs), [`runner`] (the
//! loop), [`embedded`] (librdkafka's mock cluster, for `run` without brokers
//! and tests), [`local`] (the in-process transport of batch runs: the same
//! processors over bounded queues, with an explicit end of stream).

pub mod client;
pub mod dead_letter;
pub mod embedded;
pub mod local;
pub mod message;
pub mod processor;
pub mod producer;
pub mod runner;
pub mod topics;

pub use message::{DeadLetter, InMessage, InputKind, OutRecord, Output};
pub use producer::Deliverer;
pub use runner::{ProcessError, Processor, Progress, RunnerOptions, run};
pub use tokio_util::sync::CancellationToken;

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("{service}: delivery failed: {reason}")]
    Delivery { service: String, reason: String },
    #[error("{service}: {reason}")]
    Fatal { service: String, reason: String },
    #[error(
        "no brokers configured: pass --brokers or set KAFKA_BROKERS (or use `run` without brokers for the embedded one)"
    )]
    NoBrokers,
}

impl Error {
    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Self::Kafka { context: context.into(), source }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
