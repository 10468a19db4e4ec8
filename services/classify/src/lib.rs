//! The classify service: the live scope graph, scope decisions and alerts.
//!
//! - [`engine`]: the scope engine, pure: a petgraph of resources, unknown
//!   hosts and external endpoints, with edges per (protocol, port, action);
//!   the scope rules (v1) and alert rules of the design, recomputed
//!   incrementally for the resources a change can affect;
//! - [`policy`]: the segmentation policy (YAML): segments and allow rules;
//! - [`ocsf`]: alerts as OCSF Detection Findings for SIEMs;
//! - [`service`]: the [`Processor`](psg_kafka_runtime::Processor): reads
//!   `resources` (whole, as a table) and `flows.edges`, writes
//!   `scope.decisions`, `scope.alerts` and their tables; rebuilds its state
//!   from the database at start.

pub mod engine;
pub mod ocsf;
pub mod policy;
pub mod service;

pub use service::Classify;
