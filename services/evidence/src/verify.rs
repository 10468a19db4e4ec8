//! Verifying chains of evidence records. Pure: the caller supplies the
//! index entries (from a bundle's `manifest.json` or from the database), a
//! way to read each document, and the trusted public keys.
//!
//! Every problem is reported with the record it concerns; verification
//! never stops at the first one. What is checked, per record:
//!
//! - the document exists, is canonical JSON (RFC 8785), hashes to the
//!   recorded SHA-256, and its Ed25519 signature verifies with the key the
//!   record names, which must be in the keyring: for a v2 record (sealed by
//!   the evidence log) the signature of the checkpoint its leaf and
//!   inclusion proof ([`Entry::seal`], else [`Entry::inclusion`]) give, for
//!   a v1 record the signature of its hash;
//! - the document agrees with its index entry (chain, sequence, type,
//!   previous hash, key id): the signed document is authoritative, so an
//!   edited manifest is caught too;
//!
//! and per chain: sequences follow each other without gaps, repeats or
//! reordering, each record names its predecessor's hash, and a chain that
//! starts at sequence 1 starts with no previous hash.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::keys::{key_id, load_verifying_key};
use crate::record::{SealProof, VerifyError, verify};

/// One record as an index (manifest or database) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub chain: String,
    pub sequence: i64,
    pub evidence_id: String,
    pub evidence_type: String,
    pub hash: String,
    pub prev_hash: Option<String>,
    pub signature: String,
    pub signing_key_id: String,
    pub pci_requirement: Option<String>,
    pub generated_at: String,
    pub expires_at: String,
    /// The document's path, relative to the bundle or the store.
    pub file: String,
    /// Its position in the evidence log (a bundle with a log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// Its inclusion proof against the first checkpoint that covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Inclusion>,
    /// A v2 record's inclusion proof in the evidence service's log, against
    /// the checkpoint whose signature `signature` is, where it differs from
    /// `inclusion` (a bundle with a log of its own). Absent: `inclusion` is
    /// the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Inclusion>,
}

/// A record's inclusion proof: the size of the checkpoint's tree and the
/// audit path (base64 hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inclusion {
    pub checkpoint: u64,
    pub proof: Vec<String>,
}

impl Entry {
    /// The entry of a stored record; `file` is the path a file of its own
    /// would have in the store ([`crate::record::store_path`]) until the
    /// caller says where its document is (a bundle's file, or its
    /// [`crate::documents::Location`] in the store).
    pub fn from_row(r: &psg_domain::rows::EvidenceRow) -> Self {
        Self {
            chain: r.chain.clone(),
            sequence: r.sequence,
            evidence_id: r.id.to_string(),
            evidence_type: r.evidence_type.as_str().to_owned(),
            hash: r.hash.clone(),
            prev_hash: r.prev_hash.clone(),
            signature: r.signature.clone(),
            signing_key_id: r.signing_key_id.clone(),
            pci_requirement: r.pci_requirement.clone(),
            generated_at: r.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            expires_at: r.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            file: crate::record::store_path(&r.chain, r.sequence),
            log_index: None,
            inclusion: None,
            seal: None,
        }
    }
}

impl Entry {
    /// The entry of a record as published on `evidence.records`; `file` as
    /// [`Self::from_row`] gives it.
    pub fn from_message(m: &psg_domain::Evidence) -> Self {
        use psg_domain::time::rfc3339;
        Self {
            chain: m.chain.clone(),
            sequence: m.sequence,
            evidence_id: m.evidence_id.clone(),
            evidence_type: m.evidence_type.as_str().to_owned(),
            hash: m.hash.clone(),
            prev_hash: m.prev_hash.clone(),
            signature: m.signature.clone(),
            signing_key_id: m.signing_key_id.clone(),
            pci_requirement: m.pci_requirement.clone(),
            generated_at: rfc3339(m.generated_at),
            expires_at: rfc3339(m.expires_at),
            file: crate::record::store_path(&m.chain, m.sequence),
            log_index: None,
            inclusion: None,
            seal: m
                .checkpoint_size
                .map(|size| Inclusion { checkpoint: size.unsigned_abs(), proof: m.inclusion.clone() }),
        }
    }
}

/// Trusted public keys by key id.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, VerifyingKey>,
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, key: VerifyingKey) -> String {
        let id = key_id(&key);
        self.keys.insert(id.clone(), key);
        id
    }

    /// Adds a public key in SPKI PEM (as stored in `evidence_keys`).
    pub fn add_pem(&mut self, pem: &str) -> crate::Result<String> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| crate::Error::Other(format!("not an Ed25519 public key PEM: {e}")))?;
        Ok(self.add(key))
    }

    pub fn get(&self, id: &str) -> Option<&VerifyingKey> {
        self.keys.get(id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &VerifyingKey)> {
        self.keys.iter()
    }

    /// Loads a public key file (SPKI PEM), or every `*.pub` file of a directory.
    pub fn load(&mut self, path: &Path) -> crate::Result<usize> {
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| crate::Error::Key { path: path.display().to_string(), reason: e.to_string() })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pub"))
                .collect();
            files.sort();
            for f in &files {
                self.add(load_verifying_key(f)?);
            }
            Ok(files.len())
        } else {
            self.add(load_verifying_key(path)?);
            Ok(1)
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("document {0} is missing")]
    MissingDocument(String),
    #[error("document {file} cannot be read: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{0}")]
    Record(VerifyError),
    #[error("signed by key {0}, which is not in the keyring")]
    UnknownKey(String),
    #[error("the document's {field} is {document}, the index says {index}")]
    Mismatch { field: &'static str, document: String, index: String },
    #[error("records {from}..={to} are missing (deleted?)")]
    Gap { from: i64, to: i64 },
    #[error("sequence {found} comes after {after}: records are out of order or repeated")]
    OutOfOrder { after: i64, found: i64 },
    #[error("chain broken: the previous record's hash is {expected}, this record names {found}")]
    BrokenLink { expected: String, found: String },
    #[error("the first record of the chain names a previous hash {0}")]
    FirstHasPrevious(String),
    #[error("document {0} is in the bundle but not in the manifest (inserted?)")]
    Unlisted(String),
    #[error("evidence log: {0}")]
    Log(String),
}

/// A problem and the record it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub chain: String,
    pub sequence: Option<i64>,
    pub evidence_id: Option<String>,
    pub problem: Problem,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sequence, &self.evidence_id) {
            (Some(seq), Some(id)) => write!(f, "{} #{seq} ({id}): {}", self.chain, self.problem),
            (Some(seq), None) => write!(f, "{} #{seq}: {}", self.chain, self.problem),
            _ => write!(f, "{}: {}", self.chain, self.problem),
        }
    }
}

/// The outcome of verifying.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Records whose document, hash, signature and link all check out.
    pub verified: Vec<Entry>,
    pub failures: Vec<Failure>,
    /// Per chain: (first sequence, last sequence, the previous hash the
    /// first record names — the anchor a longer export can confirm).
    pub chains: BTreeMap<String, (i64, i64, Option<String>)>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why a document could not be read (its text goes into the failure).
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Verifies `entries` (any order of chains; within a chain, in the order
/// given, which must be chain order). `read` returns a document's bytes,
/// `Ok(None)` when it does not exist.
pub fn verify_entries(
    entries: &[Entry],
    mut read: impl FnMut(&Entry) -> Result<Option<Vec<u8>>, ReadError>,
    keys: &Keyring,
) -> Outcome {
    let mut out = Outcome::default();
    let mut by_chain: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_chain.entry(e.chain.as_str()).or_default().push(e);
    }
    for (chain, list) in by_chain {
        let fail = |e: &Entry, problem: Problem| Failure {
            chain: chain.to_owned(),
            sequence: Some(e.sequence),
            evidence_id: Some(e.evidence_id.clone()),
            problem,
        };
        let first = list[0];
        out.chains.insert(chain.to_owned(), (first.sequence, list[list.len() - 1].sequence, first.prev_hash.clone()));
        if first.sequence == 1
            && let Some(p) = &first.prev_hash
        {
            out.failures.push(fail(first, Problem::FirstHasPrevious(p.clone())));
        }
        let mut prev: Option<&Entry> = None;
        for e in list {
            let mut good = true;
            if let Some(p) = prev {
                if e.sequence <= p.sequence {
                    out.failures.push(fail(e, Problem::OutOfOrder { after: p.sequence, found: e.sequence }));
                    good = false;
                } else if e.sequence > p.sequence + 1 {
                    out.failures.push(fail(e, Problem::Gap { from: p.sequence + 1, to: e.sequence - 1 }));
                    good = false;
                }
                if e.prev_hash.as_deref() != Some(p.hash.as_str()) {
                    out.failures.push(fail(
                        e,
                        Problem::BrokenLink {
                            expected: p.hash.clone(),
                            found: e.prev_hash.clone().unwrap_or_else(|| "none".into()),
                        },
                    ));
                    good = false;
                }
            }
            prev = Some(e);
            let document = match read(e) {
                Ok(Some(d)) => d,
                Ok(None) => {
                    out.failures.push(fail(e, Problem::MissingDocument(e.file.clone())));
                    continue;
                }
                Err(reason) => {
                    out.failures
                        .push(fail(e, Problem::Unreadable { file: e.file.clone(), reason: reason.to_string() }));
                    continue;
                }
            };
            let Some(key) = keys.get(&e.signing_key_id) else {
                out.failures.push(fail(e, Problem::UnknownKey(e.signing_key_id.clone())));
                continue;
            };
            let seal = e
                .seal
                .as_ref()
                .or(e.inclusion.as_ref())
                .map(|i| SealProof { checkpoint: i.checkpoint, proof: &i.proof });
            if let Err(err) = verify(&document, &e.hash, &e.signature, key, seal) {
                out.failures.push(fail(e, Problem::Record(err)));
                continue;
            }
            // The signed document is authoritative; the index must agree with it.
            let doc: serde_json::Value = serde_json::from_slice(&document).unwrap_or_default();
            let fields: [(&'static str, serde_json::Value, serde_json::Value); 5] = [
                ("chain", doc["chain"].clone(), serde_json::json!(e.chain)),
                ("sequence", doc["sequence"].clone(), serde_json::json!(e.sequence)),
                ("evidence_type", doc["evidence_type"].clone(), serde_json::json!(e.evidence_type)),
                ("prev_hash", doc["prev_hash"].clone(), serde_json::json!(e.prev_hash)),
                ("signing_key_id", doc["signing_key_id"].clone(), serde_json::json!(e.signing_key_id)),
            ];
            for (field, in_doc, in_index) in fields {
                if in_doc != in_index {
                    out.failures.push(fail(
                        e,
                        Problem::Mismatch { field, document: in_doc.to_string(), index: in_index.to_string() },
                    ));
                    good = false;
                }
            }
            if good {
                out.verified.push(e.clone());
            }
        }
    }
    out
}

/// Index entries grouped by chain, each chain sorted by sequence (for
/// entries read from a database, whose order carries no meaning).
pub fn chain_order(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| (&a.chain, a.sequence).cmp(&(&b.chain, b.sequence)));
    entries
}
