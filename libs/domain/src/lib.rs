//! The PCI Scope Guard domain model.
//!
//! - [`enums`]: every enum of the customer's data model (seed), plus the
//!   vocabulary our messages add (flow actions, alert types, ...). Each enum
//!   has one spelling for PostgreSQL/JSON/reports (`as_str`, the seed's
//!   values such as `connected-cde`) and one for Avro (the symbol, such as
//!   `CONNECTED_CDE`, because Avro symbols cannot contain `-`).
//! - [`messages`]: the records carried by every topic. Their Avro schemas are
//!   the `.avsc` files in `schemas/`; a test in `psg-avro-codec` fails if the
//!   two drift apart.
//! - [`rows`]: one struct per table of the seed model.
//! - [`ids`]: deterministic ids (UUIDv5 of natural keys), so a redelivered
//!   batch overwrites instead of duplicating.
//! - [`text`]: short strings kept inline (ids and addresses of flow records).
//! - [`time`]: event time as microseconds since the Unix epoch.
//!
//! Nothing here does I/O.

pub mod enums;
pub mod ids;
pub mod log_tree;
pub mod messages;
pub mod rows;
pub mod text;
pub mod time;

pub use enums::*;
pub use messages::*;
pub use text::Text;

/// Avro namespace of every message; the version is part of the name so that
/// an incompatible change gets a new namespace instead of silently breaking
/// consumers.
pub const AVRO_NAMESPACE: &str = "io.pciscopeguard.v1";

/// How the justification of an interface's decision begins: the interface
/// is part of a system (its only dependency) and classified with it. Reports
/// list such an interface under its system instead of counting it.
pub const INTERFACE_OF: &str = "Interface of ";

/// A value that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{value}': expected one of {expected}")]
pub struct UnknownValue {
    /// The enum that was being parsed, e.g. `pci scope`.
    pub kind: &'static str,
    /// What was given.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: String,
}

/// `TCP`, `UDP`, `ICMP`, `ICMPv6`, or the IANA protocol number.
pub fn protocol_name(protocol: i32) -> String {
    match protocol {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        n => n.to_string(),
    }
}
