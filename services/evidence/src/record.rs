//! Building and verifying evidence records. Pure: no I/O.
//!
//! A record is a JSON document, canonicalised with RFC 8785 (JCS), hashed
//! with SHA-256. The document names the previous record's hash and its own
//! position, so deleting, inserting or reordering records breaks the
//! chain, and it names the signing key id, so a signature cannot be moved
//! to another key. Two schemas:
//!
//! - **v2** (`pci-scope-guard/evidence/v2`, what the service makes): the
//!   record is sealed by the evidence log ([`crate::log`]). The document
//!   also names the log's origin and its own `log_index`; the record is
//!   not signed on its own. Its `signature` is the Ed25519 signature of the
//!   first checkpoint that covers it (one signature per checkpoint, not per
//!   record), and it travels with its inclusion proof against that
//!   checkpoint: the leaf (its hash) and the proof give the root, origin,
//!   size and root give the checkpoint's signed text, and the signature
//!   must verify over that text. A record with its proof verifies alone.
//! - **v1** (`pci-scope-guard/evidence/v1`, records made before the log):
//!   the signature is Ed25519 over the 32 hash bytes.
//!
//! Documents are deterministic: `generated_at` is the time of the decision
//! they attest, so a redelivered decision at the same chain and log
//! position reproduces its record byte for byte.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use psg_domain::rows::{EvidenceRow, JsonText};
use psg_domain::time::{Micros, from_micros, rfc3339};
use psg_domain::{Evidence, EvidenceType, ScopeDecision, ids};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::keys::key_id;

/// Lowercase hex of a SHA-256, made in one allocation (`hex::encode`
/// collects it a character at a time).
pub(crate) fn hex_hash(digest: &[u8; 32]) -> String {
    let mut text = [0u8; 64];
    hex::encode_to_slice(digest, &mut text).expect("64 hex digits for 32 bytes");
    String::from_utf8(text.to_vec()).expect("hex digits are ASCII")
}

/// Format identifier of the documents made now: sealed by the evidence log.
pub const DOCUMENT_SCHEMA: &str = "pci-scope-guard/evidence/v2";

/// Format identifier of documents signed one by one (before the log).
pub const DOCUMENT_SCHEMA_V1: &str = "pci-scope-guard/evidence/v1";

/// Years evidence is kept (PCI DSS).
pub const RETENTION_YEARS: u32 = 7;

/// The last record of a chain; `sequence` 0 and no hash for an empty chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainHead {
    pub sequence: i64,
    pub hash: Option<String>,
}

/// Where a record goes in the evidence log: the log's origin and the
/// record's `log_index` (both inside its v2 document).
#[derive(Debug, Clone, Copy)]
pub struct LogPlace<'a> {
    pub origin: &'a str,
    pub index: u64,
}

/// A record ready to store and publish (a v2 record once sealed by its
/// checkpoint: [`Sealed::seal`]). The message holds everything the row
/// does but `id` and `data`; [`Sealed::into_row`] moves it over once the
/// message is published, so the strings are made once, not twice.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub message: Evidence,
    /// The record id (`message.evidence_id` as a UUID).
    pub id: uuid::Uuid,
    /// What the index row keeps of the document (`evidence.data`).
    pub data: JsonText,
    /// The document's SHA-256 (`hash`, raw).
    pub digest: [u8; 32],
}

impl Sealed {
    /// The canonical document bytes (kept once, as the message's text).
    pub fn document(&self) -> &[u8] {
        self.message.document.as_bytes()
    }

    /// Whether the record is signed (v1) or sealed by its checkpoint (v2).
    pub fn is_signed(&self) -> bool {
        !self.message.signature.is_empty()
    }

    /// Seals a v2 record with the first checkpoint that covers it: the
    /// checkpoint's signature ([`crate::log::CheckpointSigner::signature`]),
    /// its size and the record's inclusion proof against it (base64).
    pub fn seal(&mut self, signature: &str, checkpoint_size: i64, inclusion: Vec<String>) {
        signature.clone_into(&mut self.message.signature);
        self.message.checkpoint_size = Some(checkpoint_size);
        self.message.inclusion = inclusion;
    }

    /// The record's `evidence` row, its strings moved from the message
    /// (the document and the proof are dropped: the store holds the one,
    /// the log's leaf row the other).
    pub fn into_row(self) -> EvidenceRow {
        let m = self.message;
        EvidenceRow {
            id: self.id,
            scope_decision_id: m.scope_decision_id.as_deref().and_then(|s| s.parse().ok()),
            evidence_type: m.evidence_type,
            data: self.data,
            hash: m.hash,
            signature: m.signature,
            signing_key_id: m.signing_key_id,
            storage_url: m.storage_url,
            pci_requirement: m.pci_requirement,
            generated_at: from_micros(m.generated_at),
            generated_by: m.generated_by,
            expires_at: from_micros(m.expires_at),
            last_verified_at: None,
            verification_count: 0,
            chain: m.chain,
            sequence: m.sequence,
            prev_hash: m.prev_hash,
        }
    }
}

/// Who signs: the key and its id.
#[derive(Debug)]
pub struct Sealer {
    key: SigningKey,
    key_id: String,
    generated_by: String,
}

impl Sealer {
    pub fn new(key: SigningKey, generated_by: impl Into<String>) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id, generated_by: generated_by.into() }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A signer of the evidence log `origin`'s checkpoints with this key.
    pub fn checkpoint_signer(&self, origin: &str) -> Result<crate::log::CheckpointSigner, crate::log::LogError> {
        crate::log::CheckpointSigner::new(origin, &self.key)
    }

    /// The `pci_scope_identification` record (PCI DSS 12.5.2) of a decision,
    /// appended after `head` of `chain` and at `place` of the evidence log:
    /// a v2 record, sealed when its checkpoint is signed ([`Sealed::seal`]).
    pub fn scope_identification(
        &self,
        chain: &str,
        head: &ChainHead,
        d: &ScopeDecision,
        place: LogPlace<'_>,
    ) -> Result<Sealed, SealError> {
        self.scope_identification_record(scope_identification_id(d), chain, head, d, Some(place))
    }

    /// As [`Sealer::scope_identification`], for a record whose id
    /// ([`scope_identification_id`]) is known already.
    pub(crate) fn scope_identification_as(
        &self,
        evidence_id: uuid::Uuid,
        chain: &str,
        head: &ChainHead,
        d: &ScopeDecision,
        place: LogPlace<'_>,
    ) -> Result<Sealed, SealError> {
        debug_assert_eq!(evidence_id, scope_identification_id(d));
        self.scope_identification_record(evidence_id, chain, head, d, Some(place))
    }

    /// A v1 `pci_scope_identification` record, signed on its own (Ed25519
    /// over its hash), as records were made before the evidence log.
    pub fn scope_identification_v1(
        &self,
        chain: &str,
        head: &ChainHead,
        d: &ScopeDecision,
    ) -> Result<Sealed, SealError> {
        let mut sealed = self.scope_identification_record(scope_identification_id(d), chain, head, d, None)?;
        self.sign_v1(&mut sealed);
        Ok(sealed)
    }

    fn scope_identification_record(
        &self,
        evidence_id: uuid::Uuid,
        chain: &str,
        head: &ChainHead,
        d: &ScopeDecision,
        place: Option<LogPlace<'_>>,
    ) -> Result<Sealed, SealError> {
        let evidence_type = EvidenceType::ScopeIdentification;
        let requirement = "12.5.2";
        let sequence = head.sequence + 1;
        let generated_at = d.decided_at;
        // The record is generated at its decision's time: one text for both.
        let decided_at = rfc3339(d.decided_at);
        let document = ScopeDocument {
            chain,
            decision: DecisionPart {
                as_of: rfc3339(d.as_of),
                data_classification: d.data_classification.map(|c| c.as_str()),
                decided_at: &decided_at,
                decided_by: &d.decided_by,
                decision_id: &d.decision_id,
                decision_method: d.decision_method.as_str(),
                dependency_resource_ids: &d.dependency_resource_ids,
                justification: &d.justification,
                previous_scope: d.previous_scope.map(|s| s.as_str()),
                resource_id: &d.resource_id,
                resource_uuid: &d.resource_uuid,
                rule: d.rule.as_str(),
                scope: d.scope.as_str(),
                supersedes_id: d.supersedes_id.as_deref(),
            },
            evidence_type: evidence_type.as_str(),
            generated_at: &decided_at,
            generated_by: &self.generated_by,
            log: place.map(|p| LogRef { index: p.index, origin: p.origin }),
            pci_requirement: requirement,
            prev_hash: head.hash.as_deref(),
            schema: if place.is_some() { DOCUMENT_SCHEMA } else { DOCUMENT_SCHEMA_V1 },
            sequence,
            signing_key_id: &self.key_id,
        }
        .canonical()?;
        self.seal(SealInput {
            evidence_id,
            evidence_type,
            chain,
            sequence,
            prev_hash: head.hash.clone(),
            requirement,
            generated_at,
            scope_decision_id: Some(d.decision_id.clone()),
            resource_id: Some(d.resource_id.clone()),
            document,
            // The index row keeps what queries need; the document keeps everything.
            data: JsonText::of(&ScopeData {
                decision_id: &d.decision_id,
                resource_id: &d.resource_id,
                scope: d.scope.as_str(),
                rule: d.rule.as_str(),
                decided_at: &decided_at,
            })
            .map_err(SealError::Canonical)?,
        })
    }

    /// A periodic or on-demand report (`network_segmentation_validation`,
    /// `data_flow_analysis`, `tag_audit_trail`, `configuration_snapshot`)
    /// over `report.period`, appended after `head` of the type's chain and
    /// at `place` of the evidence log (v2: sealed by its checkpoint).
    pub fn report(&self, head: &ChainHead, report: &Report, place: LogPlace<'_>) -> Result<Sealed, SealError> {
        let evidence_type = report.evidence_type;
        let chain = evidence_type.as_str();
        let requirements = requirements(evidence_type);
        let sequence = head.sequence + 1;
        let mut body = json!({
            "schema": DOCUMENT_SCHEMA_V1,
            "evidence_type": evidence_type.as_str(),
            "pci_requirement": requirements[0],
            "pci_requirements": requirements,
            "chain": chain,
            "sequence": sequence,
            "prev_hash": head.hash,
            "generated_at": rfc3339(report.generated_at),
            "generated_by": self.generated_by,
            "signing_key_id": self.key_id,
            "period": {"start": rfc3339(report.period_start), "end": rfc3339(report.period_end)},
            "trigger": report.trigger,
            "summary": report.summary,
            "report": report.content,
        });
        in_log(&mut body, place);
        let evidence_id = report_id(report);
        self.seal(SealInput {
            evidence_id,
            evidence_type,
            chain,
            sequence,
            prev_hash: head.hash.clone(),
            requirement: requirements[0],
            generated_at: report.generated_at,
            scope_decision_id: None,
            resource_id: None,
            document: canonical(&body)?,
            // The index row keeps the summary; the document keeps everything.
            data: json!({
                "period": {"start": rfc3339(report.period_start), "end": rfc3339(report.period_end)},
                "trigger": report.trigger,
                "summary": report.summary,
            })
            .into(),
        })
    }

    /// Signs a v1 record: Ed25519 over its hash.
    fn sign_v1(&self, s: &mut Sealed) {
        s.message.signature = B64.encode(self.key.sign(&s.digest).to_bytes());
    }

    fn seal(&self, i: SealInput<'_>) -> Result<Sealed, SealError> {
        let document = i.document;
        let digest: [u8; 32] = Sha256::digest(document.as_bytes()).into();
        let message = Evidence {
            evidence_id: i.evidence_id.to_string(),
            evidence_type: i.evidence_type,
            chain: i.chain.to_owned(),
            sequence: i.sequence,
            scope_decision_id: i.scope_decision_id,
            resource_id: i.resource_id,
            hash: hex_hash(&digest),
            prev_hash: i.prev_hash,
            // set by `Sealed::seal` (v2) or `sign_v1`
            signature: String::new(),
            signing_key_id: self.key_id.clone(),
            storage_url: None,
            pci_requirement: Some(i.requirement.to_owned()),
            generated_at: i.generated_at,
            generated_by: self.generated_by.clone(),
            expires_at: expiry(i.generated_at),
            document,
            log_index: None,
            checkpoint_size: None,
            inclusion: Vec::new(),
        };
        Ok(Sealed { message, id: i.evidence_id, data: i.data, digest })
    }
}

/// Makes `body` a v2 document at `place` of the evidence log.
fn in_log(body: &mut serde_json::Value, place: LogPlace<'_>) {
    body["schema"] = json!(DOCUMENT_SCHEMA);
    body["log"] = json!({"origin": place.origin, "index": place.index});
}

struct SealInput<'a> {
    evidence_id: uuid::Uuid,
    evidence_type: EvidenceType,
    chain: &'a str,
    sequence: i64,
    prev_hash: Option<String>,
    requirement: &'static str,
    generated_at: Micros,
    scope_decision_id: Option<String>,
    resource_id: Option<String>,
    /// The canonical document.
    document: String,
    /// What the index row keeps of it (`evidence.data`).
    data: JsonText,
}

/// What a scope-identification record's index row keeps of its decision
/// (`evidence.data`), serialised straight from the decision.
#[derive(serde::Serialize)]
struct ScopeData<'a> {
    decision_id: &'a str,
    resource_id: &'a str,
    scope: &'static str,
    rule: &'static str,
    decided_at: &'a str,
}

/// The largest integer RFC 8785 prints exactly (as an IEEE double): up to
/// it, serde_json's number output is canonical.
const EXACT_INTEGER: u64 = 1 << 53;

/// A scope-identification document as it is signed. Its fields (and
/// [`DecisionPart`]'s, [`LogRef`]'s) are declared in RFC 8785's key order,
/// so serde_json writes it canonically without building a
/// `serde_json::Value` first (a test holds it to the general
/// canonicalizer's output); `log` is absent from v1 documents.
#[derive(serde::Serialize)]
struct ScopeDocument<'a> {
    chain: &'a str,
    decision: DecisionPart<'a>,
    evidence_type: &'static str,
    generated_at: &'a str,
    generated_by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<LogRef<'a>>,
    pci_requirement: &'static str,
    prev_hash: Option<&'a str>,
    schema: &'static str,
    sequence: i64,
    signing_key_id: &'a str,
}

#[derive(serde::Serialize)]
struct DecisionPart<'a> {
    as_of: String,
    data_classification: Option<&'static str>,
    decided_at: &'a str,
    decided_by: &'a str,
    decision_id: &'a str,
    decision_method: &'static str,
    dependency_resource_ids: &'a [String],
    justification: &'a str,
    previous_scope: Option<&'static str>,
    resource_id: &'a str,
    resource_uuid: &'a str,
    rule: &'static str,
    scope: &'static str,
    supersedes_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct LogRef<'a> {
    index: u64,
    origin: &'a str,
}

impl ScopeDocument<'_> {
    /// The RFC 8785 bytes: serde_json's own output where that is canonical
    /// (integers up to 2^53, which RFC 8785 prints as IEEE doubles
    /// exactly), the general canonicalizer otherwise.
    fn canonical(&self) -> Result<String, SealError> {
        let exact =
            self.sequence.unsigned_abs() <= EXACT_INTEGER && self.log.as_ref().is_none_or(|l| l.index <= EXACT_INTEGER);
        if exact {
            // Sized for a whole document up front (they are 1-1.5 KB), not
            // grown from empty a doubling at a time.
            let mut bytes = Vec::with_capacity(2048);
            serde_json::to_writer(&mut bytes, self).map_err(SealError::Canonical)?;
            // serde_json writes UTF-8 only.
            Ok(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
        } else {
            canonical(&serde_json::to_value(self).map_err(SealError::Canonical)?)
        }
    }
}

/// A report over a period, ready to seal.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub evidence_type: EvidenceType,
    pub period_start: Micros,
    pub period_end: Micros,
    /// `scheduled`, or `on-demand`.
    pub trigger: String,
    /// The on-demand request's id (part of the record id).
    pub request_id: Option<String>,
    pub generated_at: Micros,
    /// Counts an index row and a reader's first glance need.
    pub summary: serde_json::Value,
    /// The full report.
    pub content: serde_json::Value,
}

/// The id of a decision's `pci_scope_identification` record: the same for
/// the same decision, so that a decision delivered twice is recorded once,
/// and in the order of the decisions' times ([`ids::time_ordered_id`]), so
/// that the evidence table's primary key grows at its right edge.
pub fn scope_identification_id(d: &ScopeDecision) -> uuid::Uuid {
    ids::time_ordered_id(d.decided_at, "evidence", &[EvidenceType::ScopeIdentification.as_str(), &d.decision_id])
}

/// The id the same record had before ids were time-ordered (a UUIDv5 of the
/// same key): a decision recorded under it and delivered again is still a
/// duplicate.
pub fn legacy_scope_identification_id(d: &ScopeDecision) -> uuid::Uuid {
    ids::stable_id("evidence", &[EvidenceType::ScopeIdentification.as_str(), &d.decision_id])
}

/// The id of a report's record: its type, period, trigger and request.
pub fn report_id(r: &Report) -> uuid::Uuid {
    let (start, end) = (r.period_start.to_string(), r.period_end.to_string());
    let mut key = vec![r.evidence_type.as_str(), &start, &end, &r.trigger];
    if let Some(id) = &r.request_id {
        key.push(id);
    }
    ids::stable_id("evidence", &key)
}

/// The PCI DSS requirements an evidence type supports, the primary first.
pub fn requirements(t: EvidenceType) -> &'static [&'static str] {
    match t {
        EvidenceType::ScopeIdentification => &["12.5.2"],
        EvidenceType::NetworkSegmentation => &["1.3.1", "1.3.2", "11.4.5"],
        EvidenceType::DataFlowAnalysis => &["1.2.4"],
        EvidenceType::TagAudit => &["12.5.2"],
        EvidenceType::ConfigurationSnapshot => &["1.2.7", "2.2.1"],
    }
}

/// Why a record could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("canonical JSON: {0}")]
    Canonical(#[source] serde_json::Error),
}

/// RFC 8785 canonical JSON of `v`. Our documents have ASCII keys and
/// integers below 2^53 only; for those, serde_json's output (keys in a
/// `BTreeMap`, so sorted; RFC 8785's string escaping) already is canonical,
/// at a fraction of the cost. Anything else goes through the general
/// canonicalizer. A test holds the two equal.
pub fn canonical(v: &serde_json::Value) -> Result<String, SealError> {
    fn simple(v: &serde_json::Value) -> bool {
        match v {
            // RFC 8785 prints numbers as IEEE doubles: exact for |n| ≤ 2^53.
            serde_json::Value::Number(n) => {
                n.as_i64().is_some_and(|x| x.unsigned_abs() <= EXACT_INTEGER)
                    || n.as_u64().is_some_and(|x| x <= EXACT_INTEGER)
            }
            serde_json::Value::Array(a) => a.iter().all(simple),
            serde_json::Value::Object(m) => m.iter().all(|(k, v)| k.is_ascii() && simple(v)),
            _ => true,
        }
    }
    if simple(v) {
        serde_json::to_string(v).map_err(SealError::Canonical)
    } else {
        serde_json_canonicalizer::to_string(v).map_err(SealError::Canonical)
    }
}

/// Where a record's document lives in the document store:
/// `{chain}/000000/001/000000001234.json` (see [`nested`]). A chain holds
/// every record of its type for the retention period, millions of them: in
/// one directory they would fill it (ext4 without `large_dir` refuses new
/// entries at 10-12 million names of this length).
pub fn store_path(chain: &str, sequence: i64) -> String {
    format!("{chain}/{}.json", nested(sequence.unsigned_abs()))
}

/// Where a batch's documents of `chain` go together, one after another
/// (each followed by a newline): the segment of its records `first` to
/// `last`, `{chain}/segments/000000/001/000000001234-000000002233.jsonl`.
/// A record names its document as a byte range of it (its `storage_url`
/// ends in `#bytes=START-END`, see [`crate::documents::Location`]): a file
/// per batch, not per record, so writing and flushing documents costs what
/// a batch costs, not what a thousand files do.
pub fn segment_path(chain: &str, first: i64, last: i64) -> String {
    format!("{chain}/{SEGMENTS}/{}-{:012}.jsonl", nested(first.unsigned_abs()), last.unsigned_abs())
}

/// The directory of a chain's segments.
pub const SEGMENTS: &str = "segments";

/// The first and last sequence of the records a segment path
/// ([`segment_path`]) holds; `None` for any other path.
pub fn segment_records(path: &str) -> Option<(i64, i64)> {
    let (dir, name) = path.rsplit_once('/')?;
    if !dir.split('/').any(|part| part == SEGMENTS) {
        return None;
    }
    let (first, last) = name.strip_suffix(".jsonl")?.split_once('-')?;
    Some((digits(first)?, digits(last)?))
}

/// `s` as a number when it is digits only (`parse` alone takes a sign).
pub(crate) fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok()).flatten()
}

/// Where records stored before the nested layout (and [`store_path`])
/// keep their documents: `{chain}/000000001234.json`, every record of the
/// chain in one directory.
pub fn flat_store_path(chain: &str, sequence: i64) -> String {
    format!("{chain}/{sequence:012}.json")
}

/// `n` as at least 12 digits under two directories named by its leading
/// digits, `000000/001/000000001234`: a directory holds at most 1,000
/// entries below a million (1,000 subdirectories, or 1,000 files), and
/// the top one a subdirectory per million. Paths of consecutive numbers
/// sort together.
pub fn nested(n: u64) -> String {
    let digits = format!("{n:012}");
    let (top, low) = digits.split_at(digits.len() - 6);
    format!("{top}/{}/{digits}", &low[..3])
}

/// `generated_at` plus the retention period.
pub fn expiry(generated_at: Micros) -> Micros {
    let t = from_micros(generated_at);
    t.checked_add_months(chrono::Months::new(12 * RETENTION_YEARS)).unwrap_or(t).timestamp_micros()
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("document is not canonical JSON (RFC 8785): it was changed after signing")]
    NotCanonical,
    #[error("hash mismatch: the document hashes to {actual}, the record says {recorded}")]
    Hash { recorded: String, actual: String },
    #[error("signature is not valid base64 Ed25519: {0}")]
    SignatureFormat(String),
    #[error("signature does not verify with key {0}")]
    Signature(String),
    #[error("document schema {0} is not one this version verifies")]
    Schema(String),
    #[error("the document has no place in the evidence log (log.origin, log.index) though its schema is v2")]
    NoLogPlace,
    #[error("the record is sealed by the evidence log, and no inclusion proof came with it")]
    Unsealed,
    #[error("its inclusion proof: {0}")]
    Proof(String),
    #[error(
        "the checkpoint signature does not verify with key {key} over the checkpoint of {size} records that its leaf and inclusion proof give: the record, its proof or its signature was changed"
    )]
    CheckpointSignature { key: String, size: u64 },
}

/// The inclusion proof a v2 record is verified with: the size of the
/// checkpoint that first covers it and the audit path (base64 hashes).
#[derive(Debug, Clone, Copy)]
pub struct SealProof<'a> {
    pub checkpoint: u64,
    pub proof: &'a [String],
}

/// Checks one record: the document is canonical and hashes to `hash`, and
/// `signature` verifies with `key` — for a v1 document over the hash, for
/// a v2 document over the checkpoint its leaf and `seal` give.
pub fn verify(
    document: &[u8],
    hash: &str,
    signature: &str,
    key: &VerifyingKey,
    seal: Option<SealProof<'_>>,
) -> Result<(), VerifyError> {
    let parsed: serde_json::Value = serde_json::from_slice(document).map_err(|_| VerifyError::NotCanonical)?;
    let canonical = serde_json_canonicalizer::to_vec(&parsed).map_err(|_| VerifyError::NotCanonical)?;
    if canonical != document {
        return Err(VerifyError::NotCanonical);
    }
    let digest = Sha256::digest(document);
    let actual = hex::encode(digest);
    if actual != hash {
        return Err(VerifyError::Hash { recorded: hash.to_owned(), actual });
    }
    let bytes = B64.decode(signature).map_err(|e| VerifyError::SignatureFormat(e.to_string()))?;
    let sig = Signature::from_slice(&bytes).map_err(|e| VerifyError::SignatureFormat(e.to_string()))?;
    match parsed["schema"].as_str() {
        Some(DOCUMENT_SCHEMA_V1) => key.verify(&digest, &sig).map_err(|_| VerifyError::Signature(key_id(key))),
        Some(DOCUMENT_SCHEMA) => {
            let (Some(origin), Some(index)) = (parsed["log"]["origin"].as_str(), parsed["log"]["index"].as_u64())
            else {
                return Err(VerifyError::NoLogPlace);
            };
            let seal = seal.ok_or(VerifyError::Unsealed)?;
            let proof = crate::log::decode_proof(seal.proof).map_err(|e| VerifyError::Proof(e.to_string()))?;
            let leaf = tlog_tiles::record_hash(&digest);
            let root = crate::log::root_from_inclusion(&proof, seal.checkpoint, index, leaf)
                .map_err(|e| VerifyError::Proof(e.to_string()))?;
            let body = crate::log::checkpoint_body(origin, seal.checkpoint, &root);
            key.verify(body.as_bytes(), &sig)
                .map_err(|_| VerifyError::CheckpointSignature { key: key_id(key), size: seal.checkpoint })
        }
        other => Err(VerifyError::Schema(other.unwrap_or("(none)").to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use psg_domain::{DecisionMethod, PciScope, ScopeRule};

    use super::*;

    fn decision(n: &str) -> ScopeDecision {
        ScopeDecision {
            decision_id: ids::stable_id("decision", &[n]).to_string(),
            resource_id: n.into(),
            resource_uuid: ids::resource_uuid(n).to_string(),
            scope: PciScope::ConnectedCde,
            previous_scope: None,
            data_classification: None,
            segment: None,
            rule: ScopeRule::CdeConnection,
            justification: "ACCEPTed flows with db — ünïcode".into(),
            decided_at: 1_700_000_000_000_000,
            decided_by: "automated-classifier".into(),
            decision_method: DecisionMethod::Automated,
            supersedes_id: None,
            dependency_resource_ids: vec!["db".into()],
            as_of: 1_700_000_000_000_000,
        }
    }

    fn sealer() -> Sealer {
        Sealer::new(SigningKey::from_bytes(&[7u8; 32]), "test")
    }

    #[test]
    fn numbers_are_nested_a_thousand_to_a_directory() {
        assert_eq!(nested(0), "000000/000/000000000000");
        assert_eq!(nested(999), "000000/000/000000000999");
        assert_eq!(nested(1_000), "000000/001/000000001000");
        assert_eq!(nested(1_234_567), "000001/234/000001234567");
        assert_eq!(nested(999_999_999_999), "999999/999/999999999999");
        // Past 12 digits the top directory grows a digit; names stay unique.
        assert_eq!(nested(1_000_000_000_000), "1000000/000/1000000000000");
        assert_eq!(store_path("c", 1_234_567), "c/000001/234/000001234567.json");
        assert_eq!(flat_store_path("c", 1_234_567), "c/000001234567.json");
        let segment = segment_path("c", 1_234_001, 1_235_000);
        assert_eq!(segment, "c/segments/000001/234/000001234001-000001235000.jsonl");
        assert_eq!(segment_records(&segment), Some((1_234_001, 1_235_000)));
        assert_eq!(segment_records("c/000001/234/000001234567.json"), None);
        assert_eq!(segment_records("c/segments/000001/234/x-1.jsonl"), None);
        assert_eq!(segment_records("c/segments/000001/234/+1-2.jsonl"), None);
        // At most 1,000 files per leaf directory, 1,000 leaves per top one.
        let leaves: std::collections::BTreeSet<String> =
            (0..5_000u64).map(|n| nested(n).rsplit_once('/').unwrap().0.to_owned()).collect();
        assert_eq!(leaves.len(), 5);
        let tops: std::collections::BTreeSet<String> =
            (0..2_000_000u64).step_by(1_000).map(|n| nested(n)[..6].to_owned()).collect();
        assert_eq!(tops.len(), 2);
    }

    #[test]
    fn records_chain_verify_and_are_deterministic() {
        let s = sealer();
        let a = s.scope_identification_v1("c", &ChainHead::default(), &decision("a")).unwrap();
        assert_eq!(a.message.sequence, 1);
        assert_eq!(a.message.prev_hash, None);
        let head = ChainHead { sequence: 1, hash: Some(a.message.hash.clone()) };
        let b = s.scope_identification_v1("c", &head, &decision("b")).unwrap();
        assert_eq!(b.message.prev_hash.as_deref(), Some(a.message.hash.as_str()));
        verify(b.document(), &b.message.hash, &b.message.signature, &s.verifying_key(), None).unwrap();
        let again = s.scope_identification_v1("c", &head, &decision("b")).unwrap();
        assert_eq!(again.document(), b.document());
        assert_eq!(again.message, b.message);
        let years = (b.message.expires_at - b.message.generated_at) / (86_400 * 1_000_000);
        assert!((2556..=2557).contains(&years), "{years}");
    }

    /// Five v2 records in an evidence log, sealed by one checkpoint.
    fn sealed_by_a_checkpoint(s: &Sealer) -> (Vec<Sealed>, crate::log::Log, crate::log::CheckpointSigner) {
        let origin = "pci-scope-guard.example/evidence";
        let signer = s.checkpoint_signer(origin).unwrap();
        let mut log = crate::log::Log::default();
        let mut head = ChainHead::default();
        let mut records = Vec::new();
        for n in ["a", "b", "c", "d", "e"] {
            let place = LogPlace { origin, index: log.size() };
            let r = s.scope_identification("c", &head, &decision(n), place).unwrap();
            assert!(!r.is_signed(), "sealed by its checkpoint, not signed on its own");
            assert_eq!(log.append(&r.message.hash).unwrap(), place.index);
            head = ChainHead { sequence: r.message.sequence, hash: Some(r.message.hash.clone()) };
            records.push(r);
        }
        let root = log.root(5).unwrap();
        let signature = signer.signature(5, &root);
        for (i, r) in records.iter_mut().enumerate() {
            r.seal(&signature, 5, crate::log::encode_proof(&log.inclusion(i as u64, 5).unwrap()));
        }
        (records, log, signer)
    }

    #[test]
    fn v2_records_carry_the_checkpoint_signature_and_verify_with_their_proof_alone() {
        let s = sealer();
        let (records, log, signer) = sealed_by_a_checkpoint(&s);
        let key = s.verifying_key();
        let note = signer.sign(5, log.root(5).unwrap()).unwrap();
        let note_sig = note.lines().last().unwrap().rsplit(' ').next().unwrap();
        for (i, r) in records.iter().enumerate() {
            let doc: serde_json::Value = serde_json::from_slice(r.document()).unwrap();
            assert_eq!(doc["schema"], DOCUMENT_SCHEMA);
            assert_eq!(doc["log"], json!({"origin": "pci-scope-guard.example/evidence", "index": i}));
            // One signature for the five: the checkpoint note's.
            assert_eq!(r.message.signature, records[0].message.signature);
            assert_eq!(B64.decode(&r.message.signature).unwrap(), B64.decode(note_sig).unwrap()[4..].to_vec());
            // The row is the message's fields, moved.
            let row = r.clone().into_row();
            assert_eq!(row.id.to_string(), r.message.evidence_id);
            assert_eq!(
                (&row.signature, &row.hash, &row.chain),
                (&r.message.signature, &r.message.hash, &r.message.chain)
            );
            assert_eq!((row.sequence, &row.prev_hash), (r.message.sequence, &r.message.prev_hash));
            assert_eq!(row.scope_decision_id.map(|d| d.to_string()), r.message.scope_decision_id);
            assert_eq!(row.expires_at, from_micros(r.message.expires_at));
            assert_eq!(r.message.hash, hex::encode(r.digest));
            assert_eq!(r.message.checkpoint_size, Some(5));
            let seal = SealProof { checkpoint: 5, proof: &r.message.inclusion };
            verify(r.document(), &r.message.hash, &r.message.signature, &key, Some(seal)).unwrap();
        }
    }

    #[test]
    fn a_v2_record_with_a_wrong_proof_checkpoint_signature_or_key_is_refused() {
        let s = sealer();
        let (records, log, signer) = sealed_by_a_checkpoint(&s);
        let key = s.verifying_key();
        let r = &records[2];
        let check = |doc: &[u8], hash: &str, sig: &str, key: &VerifyingKey, seal: Option<SealProof<'_>>| {
            verify(doc, hash, sig, key, seal)
        };
        let seal = Some(SealProof { checkpoint: 5, proof: &r.message.inclusion });
        // No proof.
        assert_eq!(check(r.document(), &r.message.hash, &r.message.signature, &key, None), Err(VerifyError::Unsealed));
        // Another record's proof: another root, which the signature does not sign.
        let other = Some(SealProof { checkpoint: 5, proof: &records[1].message.inclusion });
        assert!(matches!(
            check(r.document(), &r.message.hash, &r.message.signature, &key, other),
            Err(VerifyError::CheckpointSignature { size: 5, .. })
        ));
        // A proof against a later checkpoint with this checkpoint's signature.
        let mut longer = log.clone();
        longer.append(&"ab".repeat(32)).unwrap();
        let proof6 = crate::log::encode_proof(&longer.inclusion(2, 6).unwrap());
        let later = Some(SealProof { checkpoint: 6, proof: &proof6 });
        assert!(matches!(
            check(r.document(), &r.message.hash, &r.message.signature, &key, later),
            Err(VerifyError::CheckpointSignature { size: 6, .. })
        ));
        // ... which holds with the later checkpoint's own signature.
        let sig6 = signer.signature(6, &longer.root(6).unwrap());
        check(r.document(), &r.message.hash, &sig6, &key, later).unwrap();
        // A wrong size for the proof's length; garbage in the proof.
        let short = Some(SealProof { checkpoint: 2, proof: &r.message.inclusion });
        assert!(matches!(
            check(r.document(), &r.message.hash, &r.message.signature, &key, short),
            Err(VerifyError::Proof(_))
        ));
        let garbage = vec!["not base64!".to_owned()];
        let bad = Some(SealProof { checkpoint: 5, proof: &garbage });
        assert!(matches!(
            check(r.document(), &r.message.hash, &r.message.signature, &key, bad),
            Err(VerifyError::Proof(_))
        ));
        // Another key; a flipped signature bit.
        let other_key = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(matches!(
            check(r.document(), &r.message.hash, &r.message.signature, &other_key, seal),
            Err(VerifyError::CheckpointSignature { .. })
        ));
        let mut sig = B64.decode(&r.message.signature).unwrap();
        sig[3] ^= 1;
        assert!(matches!(
            check(r.document(), &r.message.hash, &B64.encode(sig), &key, seal),
            Err(VerifyError::CheckpointSignature { .. })
        ));
        // The document moved to another log position: its hash changes.
        let moved = r.message.document.clone().replace("\"index\":2", "\"index\":3");
        assert!(matches!(
            check(moved.as_bytes(), &r.message.hash, &r.message.signature, &key, seal),
            Err(VerifyError::Hash { .. })
        ));
        // A v2 document cannot pass as v1 (its schema decides the rule):
        // a signature over its hash, as v1 records carry, does not seal it.
        let v1_style = B64.encode(SigningKey::from_bytes(&[7u8; 32]).sign(&r.digest).to_bytes());
        assert_eq!(check(r.document(), &r.message.hash, &v1_style, &key, None), Err(VerifyError::Unsealed));
        assert!(matches!(
            check(r.document(), &r.message.hash, &v1_style, &key, seal),
            Err(VerifyError::CheckpointSignature { .. })
        ));
        // ... and an unknown schema is refused.
        let v9 = serde_json::to_vec(&json!({"schema": "pci-scope-guard/evidence/v9"})).unwrap();
        let h9 = hex::encode(Sha256::digest(&v9));
        assert!(matches!(check(&v9, &h9, &r.message.signature, &key, seal), Err(VerifyError::Schema(_))));
    }

    #[test]
    fn the_fast_canonical_form_is_rfc_8785() {
        let tricky =
            "ünïcode \u{1F600} \"quoted\" back\\slash \u{0}\u{1}\u{8}\t\n\u{c}\r\u{1f}\u{7f} \u{2028} </script>";
        let docs = [
            serde_json::json!({"z": 1, "a": [3, -2, {"é": 1.5}], "m": null, "b": true, "s": tricky}),
            serde_json::json!({"zz": {"b": [], "a": {}}, "a": u64::MAX, "n": i64::MIN, "s": tricky}),
        ];
        for d in docs {
            assert_eq!(canonical(&d).unwrap(), serde_json_canonicalizer::to_string(&d).unwrap(), "{d}");
        }
        let s = sealer();
        let mut d = decision("a");
        d.justification = tricky.into();
        let r = s.scope_identification_v1("c", &ChainHead::default(), &d).unwrap();
        let v: serde_json::Value = serde_json::from_slice(r.document()).unwrap();
        assert_eq!(r.document(), serde_json_canonicalizer::to_vec(&v).unwrap());

        // Scope documents are written straight from a struct: canonical
        // with every optional field present or absent, v1 and v2, and past
        // 2^53 (the general canonicalizer then).
        d.previous_scope = Some(PciScope::PendingReview);
        d.data_classification = Some(psg_domain::DataClassification::ProcessesCardholder);
        d.supersedes_id = Some(tricky.into());
        d.dependency_resource_ids = vec!["db-1".into(), tricky.into(), String::new()];
        let head = ChainHead { sequence: 41, hash: Some("ab".repeat(32)) };
        let place = LogPlace { origin: "example.com/evidence \u{e9}", index: 7 };
        let far = ChainHead { sequence: 1 << 60, hash: None };
        let made = [
            s.scope_identification("c", &head, &d, place).unwrap(),
            s.scope_identification("c", &far, &d, LogPlace { index: u64::MAX, ..place }).unwrap(),
            s.scope_identification_v1("c", &head, &d).unwrap(),
            s.scope_identification_v1("c", &ChainHead::default(), &decision("b")).unwrap(),
        ];
        for r in made {
            let v: serde_json::Value = serde_json::from_slice(r.document()).unwrap();
            assert_eq!(r.document(), serde_json_canonicalizer::to_vec(&v).unwrap(), "{v}");
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            let mut want = vec![
                "chain",
                "decision",
                "evidence_type",
                "generated_at",
                "generated_by",
                "pci_requirement",
                "prev_hash",
                "schema",
                "sequence",
                "signing_key_id",
            ];
            if v["schema"] == DOCUMENT_SCHEMA {
                want.insert(5, "log");
            }
            assert_eq!(keys, want);
            let decision_keys: Vec<&str> = v["decision"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(decision_keys.len(), 14, "{decision_keys:?}");
        }
    }

    #[test]
    fn tampering_is_detected() {
        let s = sealer();
        let r = s.scope_identification_v1("c", &ChainHead::default(), &decision("a")).unwrap();
        let key = s.verifying_key();
        let mut doc = r.document().to_vec();
        let i = doc.iter().position(|b| *b == b'C').unwrap(); // inside "ACCEPTed"
        doc[i] = b'K';
        assert!(matches!(
            verify(&doc, &r.message.hash, &r.message.signature, &key, None),
            Err(VerifyError::Hash { .. })
        ));
        let mut hash = r.message.hash.clone();
        hash.replace_range(0..1, if hash.starts_with('0') { "1" } else { "0" });
        assert!(matches!(verify(r.document(), &hash, &r.message.signature, &key, None), Err(VerifyError::Hash { .. })));
        let mut sig = B64.decode(&r.message.signature).unwrap();
        sig[0] ^= 1;
        assert!(matches!(
            verify(r.document(), &r.message.hash, &B64.encode(sig), &key, None),
            Err(VerifyError::Signature(_))
        ));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(matches!(
            verify(r.document(), &r.message.hash, &r.message.signature, &other, None),
            Err(VerifyError::Signature(_))
        ));
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(r.document()).unwrap()).unwrap();
        assert_eq!(verify(&pretty, &r.message.hash, &r.message.signature, &key, None), Err(VerifyError::NotCanonical));
    }
}
