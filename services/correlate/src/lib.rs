//! The correlate service: which resource sent this flow and which received
//! it, at that moment; and the condensation of flow records into
//! resource-to-resource edges.
//!
//! - [`attribution`]: the index from address / interface to resource, each
//!   mapping valid for a time interval (addresses are reused);
//! - [`windows`]: event-time tumbling windows closed by a watermark,
//!   emitting an edge at once the first time it is seen and its aggregate
//!   when its window closes;
//! - [`coverage`]: flow-log coverage per interface (or instance, subnet,
//!   network) and input partition, from every record whatever its status;
//! - [`checkpoint`]: per input partition, what a restarted instance needs
//!   to repeat exactly what the first run did;
//! - [`service`]: the [`Processor`](psg_kafka_runtime::Processor): reads
//!   `resources` (whole, as a table) and `flows.normalized`, writes
//!   `flows.edges`, `flows.coverage` and `data_flows`.
//!
//! `attribution`, `windows`, `coverage` and `checkpoint` are pure.

pub mod attribution;
pub mod checkpoint;
pub mod coverage;
pub mod service;
pub mod windows;

pub use service::Correlate;
