//! The ingest service: the front door.
//!
//! Reads what shippers publish on `flowlogs.raw` and `inventory.raw`, turns
//! it into Avro [`FlowRecord`](psg_domain::FlowRecord)s on `flows.normalized`
//! and [`Resource`](psg_domain::Resource)s on the compacted `resources`
//! topic (and the `resources`/`tags` tables), or dead-letters it with a
//! reason. One bad record in a message of good ones dead-letters that record
//! only.
//!
//! Layout:
//! - [`payload`]: decompression (bounded) and splitting a message into records;
//! - [`flowlogs`]: which flow-log format a message is in, and its parser:
//!   [`aws`] (VPC flow-log lines), [`azure`] (NSG and VNet flow-log blobs),
//!   [`gcp`] (VPC flow-log entries, also in Pub/Sub push envelopes), with
//!   the JSON field checks they share in `fields`;
//! - [`inventory`]: inventory events → Resources (native JSON, AWS Config,
//!   GCP Cloud Asset Inventory, Azure);
//! - [`parsed`]: what parsers return (records, and refusals with position
//!   and reason);
//! - [`service`]: the [`Processor`](psg_kafka_runtime::Processor) that wires
//!   them to topics and the store.
//!
//! Everything but `service` is pure: no Kafka, no database.

pub mod aws;
pub mod azure;
mod fields;
pub mod flowlogs;
pub mod gcp;
pub mod inventory;
pub mod parsed;
pub mod payload;
#[cfg(feature = "service")]
pub mod service;

#[cfg(feature = "service")]
pub use service::Ingest;
