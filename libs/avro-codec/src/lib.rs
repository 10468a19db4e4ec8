//! Avro single-object encoding of every message PCI Scope Guard puts on a topic.
//!
//! Wire format (Avro specification, "Single object encoding"):
//!
//! ```text
//! C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the schema | Avro binary datum
//! ```
//!
//! The schemas are the `.avsc` files in `schemas/`, compiled into the binary.
//! A consumer reading bytes whose fingerprint is not the schema it expects
//! gets [`Error::UnknownSchema`], naming both fingerprints, instead of a
//! garbled record. The tests in this crate fail if a Rust message type and its
//! `.avsc` drift apart (their Parsing Canonical Forms must be equal).

use std::sync::OnceLock;

pub mod binary;

use apache_avro::rabin::Rabin;
use apache_avro::{AvroSchema, Schema};
use psg_domain::{
    Alert, Evidence, EvidenceCheckpoint, EvidenceRequest, FlowBatch, FlowCoverage, FlowEdge, FlowRecord,
    ManualDecision, Resource, ScopeDecision,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The two marker bytes that open every single-object encoded message.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Marker plus fingerprint.
pub const HEADER_LEN: usize = 10;

/// Errors of encoding and decoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("message of {len} bytes is too short for Avro single-object encoding (needs at least {HEADER_LEN})")]
    TooShort { len: usize },
    #[error("not Avro single-object encoding: first bytes are {found}, expected c301")]
    BadMagic { found: String },
    #[error(
        "unknown schema: message has fingerprint {found}, but {message} is {expected} (schema {namespace}.{message}); the producer uses a schema this consumer does not know"
    )]
    UnknownSchema { message: &'static str, namespace: &'static str, found: String, expected: String },
    #[error("cannot encode {message}: {reason}")]
    Encode { message: &'static str, reason: String },
    #[error("cannot decode {message}: {reason}")]
    Decode { message: &'static str, reason: String },
    #[error("schema file {file} is invalid: {reason}")]
    Schema { file: &'static str, reason: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A schema compiled once: the parsed `.avsc` and its fingerprint.
#[derive(Debug)]
pub struct CompiledSchema {
    pub schema: Schema,
    pub fingerprint: [u8; 8],
    pub header: [u8; HEADER_LEN],
    /// Earlier versions (`schemas/history/`) this one reads, by
    /// fingerprint: a rolling upgrade reads what the old producers wrote.
    /// Their data is resolved to this schema (Avro schema resolution: new
    /// fields take their defaults), or read as is where it is unchanged.
    pub readable: Vec<([u8; 8], Earlier)>,
}

impl CompiledSchema {
    fn compile(file: &'static str, avsc: &str, earlier: &[&str]) -> Result<Self> {
        let schema = Schema::parse_str(avsc).map_err(|e| Error::Schema { file, reason: e.to_string() })?;
        let fingerprint = fingerprint(&schema);
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&MAGIC);
        header[2..].copy_from_slice(&fingerprint);
        let mut readable = Vec::new();
        for text in earlier {
            let old = Schema::parse_str(text).map_err(|e| Error::Schema { file, reason: e.to_string() })?;
            // Same fields in the same order (an enum that only gained
            // symbols at its end): the datum reads as is.
            let same_layout = field_names(&old) == field_names(&schema);
            readable.push((self::fingerprint(&old), if same_layout { Earlier::AsIs } else { Earlier::Resolve(old) }));
        }
        Ok(Self { schema, fingerprint, header, readable })
    }
}

/// How an earlier schema version's data is read.
#[derive(Debug)]
pub enum Earlier {
    /// Byte for byte as the current version's.
    AsIs,
    /// Through Avro schema resolution from this writer schema (slow: only
    /// for messages written before an upgrade).
    Resolve(Schema),
}

/// The top-level field names of a record schema, in order.
fn field_names(schema: &Schema) -> Vec<String> {
    match schema {
        Schema::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
        _ => Vec::new(),
    }
}

/// CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form,
/// little-endian, as single-object encoding puts it on the wire.
pub fn fingerprint(schema: &Schema) -> [u8; 8] {
    let fp = schema.fingerprint::<Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes[..8]);
    out
}

/// A message type with its `.avsc`.
pub trait AvroMessage: Serialize + DeserializeOwned + AvroSchema + Sized + 'static {
    /// Short name, e.g. `FlowRecord`.
    const NAME: &'static str;
    /// Schema file name in `schemas/`.
    const FILE: &'static str;
    /// The `.avsc` text.
    const AVSC: &'static str;
    /// Earlier versions' `.avsc` texts whose data this version reads as is
    /// (tested: `earlier_schema_versions_stay_readable`).
    const EARLIER: &'static [&'static str] = &[];
    /// The compiled schema (parsed on first use).
    fn compiled() -> &'static CompiledSchema;
}

macro_rules! message {
    ($ty:ty, $name:literal, $file:literal $(, earlier: [$($old:literal),*])?) => {
        impl AvroMessage for $ty {
            const NAME: &'static str = $name;
            const FILE: &'static str = $file;
            const AVSC: &'static str = include_str!(concat!("../../../schemas/", $file));
            $(const EARLIER: &'static [&'static str] =
                &[$(include_str!(concat!("../../../schemas/history/", $old))),*];)?

            fn compiled() -> &'static CompiledSchema {
                static SCHEMA: OnceLock<CompiledSchema> = OnceLock::new();
                SCHEMA.get_or_init(|| match CompiledSchema::compile($file, Self::AVSC, Self::EARLIER) {
                    Ok(schema) => schema,
                    // The schema text is compiled into the binary and checked by this
                    // crate's tests; a failure here is a build defect, not input.
                    Err(e) => panic!("{e}"),
                })
            }
        }
    };
}

message!(FlowRecord, "FlowRecord", "flow_record.avsc");
message!(FlowBatch, "FlowBatch", "flow_batch.avsc");
// v1: before the resource types SECURITY_GROUP and PREFIX_LIST; v2: before
// FIREWALL_RULE, NETWORK_ACL and FLOW_LOG.
message!(Resource, "Resource", "resource.avsc", earlier: ["resource.1.avsc", "resource.2.avsc"]);
// v1: before EdgeKind WITHDRAWN; v2: before the encryption counts; v3:
// before action_logged.
message!(
    FlowEdge,
    "FlowEdge",
    "flow_edge.avsc",
    earlier: ["flow_edge.1.avsc", "flow_edge.2.avsc", "flow_edge.3.avsc"]
);
message!(FlowCoverage, "FlowCoverage", "flow_coverage.avsc");
// v1: before the scope rule NO_FLOW_LOG_COVERAGE / the alert type COVERAGE_GAP.
message!(ScopeDecision, "ScopeDecision", "scope_decision.avsc", earlier: ["scope_decision.1.avsc"]);
// v2: before the alert type POLICY_NOT_ENFORCED.
message!(Alert, "Alert", "alert.avsc", earlier: ["alert.1.avsc", "alert.2.avsc"]);
message!(ManualDecision, "ManualDecision", "manual_decision.avsc");
// v1: before log_index; v2: before checkpoint_size and inclusion.
message!(Evidence, "Evidence", "evidence.avsc", earlier: ["evidence.1.avsc", "evidence.2.avsc"]);
message!(EvidenceCheckpoint, "EvidenceCheckpoint", "evidence_checkpoint.avsc");
message!(EvidenceRequest, "EvidenceRequest", "evidence_request.avsc");

/// Encodes `value` as an Avro single object.
pub fn encode<T: AvroMessage>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the single-object encoding of `value` to `out`.
pub fn encode_into<T: AvroMessage>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&T::compiled().header);
    binary::encode_into(value, out).map_err(|e| {
        out.truncate(start);
        Error::Encode { message: T::NAME, reason: e.to_string() }
    })
}

/// The bytes a [`FlowBatch`] message needs besides its records' own: the
/// single-object header, the block count (a varint) and the end-of-array
/// zero.
pub const FLOW_BATCH_OVERHEAD: usize = HEADER_LEN + 10 + 1;

/// A [`FlowBatch`] from records already encoded one after another with
/// [`binary::encode_into`]: the single-object header, then the array as one
/// block (count, records, end marker) — exactly what `encode(&FlowBatch {
/// records })` writes, without keeping the records themselves (ingest
/// builds its batches record by record).
pub fn flow_batch_from_encoded(count: usize, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FLOW_BATCH_OVERHEAD + records.len());
    out.extend_from_slice(&FlowBatch::compiled().header);
    if count > 0 {
        binary::write_long(&mut out, i64::try_from(count).unwrap_or(i64::MAX));
        out.extend_from_slice(records);
    }
    out.push(0);
    out
}

/// The Avro datum of `value` as apache-avro writes it (through its generic
/// `Value`): the reference [`binary`] is tested against. Slow; not for the
/// hot path.
pub fn reference_datum<T: AvroMessage>(value: &T) -> Result<Vec<u8>> {
    let err = |e: apache_avro::Error| Error::Encode { message: T::NAME, reason: e.to_string() };
    let v = apache_avro::to_value(value).map_err(err)?;
    apache_avro::to_avro_datum(&T::compiled().schema, v).map_err(err)
}

/// Decodes a datum with apache-avro (the reference reader).
pub fn reference_decode<T: AvroMessage>(datum: &[u8]) -> Result<T> {
    let err = |e: apache_avro::Error| Error::Decode { message: T::NAME, reason: e.to_string() };
    let mut input = datum;
    let v = apache_avro::from_avro_datum(&T::compiled().schema, &mut input, None).map_err(err)?;
    apache_avro::from_value(&v).map_err(err)
}

/// Reads the fingerprint of a single-object encoded message.
pub fn peek_fingerprint(bytes: &[u8]) -> Result<[u8; 8]> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::TooShort { len: bytes.len() });
    }
    if bytes[..2] != MAGIC {
        return Err(Error::BadMagic { found: hex::encode(&bytes[..2]) });
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..HEADER_LEN]);
    Ok(fp)
}

/// Decodes a single-object encoded `T`, rejecting any other schema.
pub fn decode<T: AvroMessage>(bytes: &[u8]) -> Result<T> {
    let compiled = T::compiled();
    let found = peek_fingerprint(bytes)?;
    if found != compiled.fingerprint {
        match compiled.readable.iter().find(|(fp, _)| *fp == found) {
            Some((_, Earlier::AsIs)) => {}
            Some((_, Earlier::Resolve(writer))) => {
                let err = |e: apache_avro::Error| Error::Decode { message: T::NAME, reason: e.to_string() };
                let mut datum = &bytes[HEADER_LEN..];
                let v = apache_avro::from_avro_datum(writer, &mut datum, Some(&compiled.schema)).map_err(err)?;
                return apache_avro::from_value(&v).map_err(err);
            }
            None => {
                return Err(Error::UnknownSchema {
                    message: T::NAME,
                    namespace: psg_domain::AVRO_NAMESPACE,
                    found: hex::encode(found),
                    expected: hex::encode(compiled.fingerprint),
                });
            }
        }
    }
    binary::decode(&bytes[HEADER_LEN..]).map_err(|e| Error::Decode { message: T::NAME, reason: e.to_string() })
}

#[cfg(test)]
mod tests;
