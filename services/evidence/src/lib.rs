//! The evidence service: every scope decision becomes a signed, chained
//! evidence record an assessor can verify offline.
//!
//! - [`keys`]: Ed25519 key pairs (`keygen`), loading a private key (refused
//!   when others can read it), key ids (fingerprints of public keys);
//! - [`record`]: the pure core: canonical JSON (RFC 8785) → SHA-256 →
//!   Ed25519 signature of the hash → link to the previous record's hash;
//!   and verification of a record;
//! - [`log`]: the evidence log (pure): an RFC 6962 Merkle tree over every
//!   record, inclusion and consistency proofs, signed C2SP checkpoints;
//! - [`reports`]: the periodic reports' content (pure);
//! - [`verify`]: checking chains of records (pure), [`bundle`]: export
//!   bundles and verifying them offline;
//! - [`documents`]: where documents go (a local directory by default);
//! - [`service`]: the [`Processor`](psg_kafka_runtime::Processor): reads
//!   `scope.decisions`, writes `evidence.records`, the documents and the
//!   `evidence` table.

pub mod bundle;
pub mod documents;
pub mod keys;
pub mod log;
pub mod record;
pub mod reports;
pub mod service;
pub mod verify;
mod writes;

pub use service::Evidence;

/// Errors of the evidence service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("signing key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("evidence store {url}: {reason}")]
    Documents { url: String, reason: String },
    #[error("evidence: {0}")]
    Other(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
