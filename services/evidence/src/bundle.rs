//! Evidence bundles: what `evidence export` writes and `evidence verify DIR`
//! checks, with nothing but the files.
//!
//! ```text
//! DIR/manifest.json                       the records in chain order
//! DIR/documents/<chain>/000001/234/000001234567.json
//!                                         the signed canonical documents, a
//!                                         file each, nested by sequence
//! DIR/keys/<key-id>.pub                   the public keys that signed them
//! DIR/checkpoints/<size>.txt              signed checkpoints of the evidence log
//! ```
//!
//! With a signing key at export, the bundle carries an evidence log
//! ([`crate::log`]) over its records in manifest order: each record's
//! `log_index` and inclusion proof against the first checkpoint covering it,
//! a checkpoint every [`CHECKPOINT_EVERY`] records and one of the whole
//! bundle, and the consistency proof of each checkpoint from the one before.
//! Verification then also checks every signature, inclusion and consistency
//! proof, and that the last checkpoint's root is the root of all the
//! records: a record removed, added or reordered changes it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use serde::{Deserialize, Serialize};

use crate::log::{self, CheckpointSigner, Log};
use crate::verify::{Entry, Failure, Inclusion, Keyring, Outcome, Problem, verify_entries};
use crate::{Error, Result};

/// Records between two checkpoints of a bundle's log.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// How a bundle's evidence log is signed.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions<'a> {
    pub signer: &'a CheckpointSigner,
    /// The id of the signer's key (in the bundle's keys).
    pub key_id: &'a str,
    /// Records between checkpoints ([`CHECKPOINT_EVERY`]).
    pub every: u64,
}

/// The evidence service's log as it stored it, for a bundle that is an
/// excerpt of it: the records carry their `log_index` and stored inclusion
/// proof; these are the checkpoints those proofs name and the newest.
#[derive(Debug, Clone)]
pub struct StoredLog {
    pub origin: String,
    /// Oldest first; each with the consistency proof from the one before
    /// it in this list (empty for the first).
    pub checkpoints: Vec<StoredCheckpoint>,
}

/// A checkpoint of [`StoredLog`].
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// The key that signed it.
    pub key_id: String,
    /// The signed note.
    pub text: String,
    /// Base64 consistency proof from the previous checkpoint of the list.
    pub consistency: Vec<String>,
}

impl StoredLog {
    /// The excerpt of the log with leaves `leaves` (record hashes in log
    /// order, as stored) that carries `checkpoints` (size, key id, signed
    /// note, base64 root; any order): each root is checked against the
    /// leaves, and the consistency proofs between them are computed.
    pub fn from_leaves(
        origin: &str,
        leaves: &[String],
        checkpoints: Vec<(u64, String, String, String)>,
    ) -> Result<Self> {
        let mut tree = Log::default();
        for l in leaves {
            tree.append(l).map_err(log_err)?;
        }
        let mut checkpoints = checkpoints;
        checkpoints.sort_by_key(|c| c.0);
        checkpoints.dedup_by_key(|c| c.0);
        let mut out = Vec::with_capacity(checkpoints.len());
        let mut previous: Option<u64> = None;
        for (size, key_id, text, root) in checkpoints {
            let ours = tree.root(size).map_err(log_err)?;
            if log::encode_hash(&ours) != root {
                return Err(Error::Other(format!(
                    "evidence log: the stored leaves do not give the root of the stored checkpoint of {size} records: the stored log was changed"
                )));
            }
            let consistency = match previous {
                Some(p) => log::encode_proof(&tree.consistency(p, size).map_err(log_err)?),
                None => Vec::new(),
            };
            out.push(StoredCheckpoint { size, key_id, text, consistency });
            previous = Some(size);
        }
        Ok(Self { origin: origin.to_owned(), checkpoints: out })
    }
}

/// What evidence log a bundle carries.
#[derive(Debug, Clone)]
pub enum BundleLog<'a> {
    /// None (no signing key at export, records from before the log).
    None,
    /// A log over the bundle's records, signed at export.
    Sign(LogOptions<'a>),
    /// An excerpt of the service's log, with its stored checkpoints.
    Stored(StoredLog),
}

/// The evidence log of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSection {
    /// The log's origin (the checkpoints' first line and key name).
    pub origin: String,
    /// The key that signed the checkpoints.
    pub key_id: String,
    pub checkpoints: Vec<CheckpointRef>,
    /// The records are an excerpt of a larger log (the evidence
    /// service's): `log_index` is their place in it and the checkpoints may
    /// cover records outside the bundle. Otherwise the log is exactly the
    /// bundle's records, in manifest order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excerpt: bool,
}

/// One checkpoint of a bundle's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub file: String,
    pub size: u64,
    /// The consistency proof from the previous checkpoint (base64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<String>,
    /// The key that signed it, when not the section's (a key rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Format identifier of `manifest.json` written now: its records may be
/// sealed by the evidence log (document schema v2, an entry's `seal`),
/// which a verifier of v1 bundles would not know to check.
pub const BUNDLE_FORMAT: &str = "pci-scope-guard/evidence-bundle/v2";

/// Bundle formats `evidence verify` reads: v1 (records signed one by one)
/// and v2.
pub const READABLE_BUNDLE_FORMATS: [&str; 2] = ["pci-scope-guard/evidence-bundle/v1", BUNDLE_FORMAT];

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub exported_at: String,
    /// The period exported: records generated in `[from, to)`.
    pub from: String,
    pub to: String,
    pub generator: String,
    /// Public key files, relative to the bundle.
    pub keys: Vec<String>,
    pub records: Vec<Entry>,
    /// The evidence log over the records (absent: exported without a
    /// signing key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSection>,
}

/// The document path of a record inside a bundle: nested as the store's
/// paths are ([`crate::record::nested`]), since a bundle of a chain's
/// millions of records in one directory would fill it. Bundles written
/// before (`documents/<chain>/<sequence>.json`) verify as they are: the
/// manifest names each record's file.
pub fn document_file(chain: &str, sequence: i64) -> String {
    format!("documents/{chain}/{}.json", crate::record::nested(sequence.unsigned_abs()))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("{}: {e}", path.display()))
}

/// Writes a bundle into `dir` (created; it must be empty or absent).
/// `records` are (entry, document bytes) in chain or log order;
/// `entry.file` is replaced by the bundle's path. `log`: the evidence log
/// the bundle carries.
pub fn write(
    dir: &Path,
    from: &str,
    to: &str,
    records: Vec<(Entry, Vec<u8>)>,
    keys: &Keyring,
    exported_at: &str,
    log: BundleLog<'_>,
) -> Result<Manifest> {
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?.next().is_some() {
        return Err(Error::Other(format!("{} is not empty: export into a new directory", dir.display())));
    }
    std::fs::create_dir_all(dir.join("keys")).map_err(|e| io_err(dir, e))?;
    let mut entries = Vec::with_capacity(records.len());
    let mut used_keys = BTreeSet::new();
    for (mut entry, document) in records {
        entry.file = document_file(&entry.chain, entry.sequence);
        let path = dir.join(&entry.file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        std::fs::write(&path, document).map_err(|e| io_err(&path, e))?;
        used_keys.insert(entry.signing_key_id.clone());
        entries.push(entry);
    }
    let mut key_files = Vec::new();
    for (id, key) in keys.iter() {
        let file = format!("keys/{}.pub", id.trim_start_matches("ed25519:"));
        let pem = key.to_public_key_pem(LineEnding::LF).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(dir.join(&file), pem).map_err(|e| io_err(&dir.join(&file), e))?;
        key_files.push(file);
        used_keys.remove(id);
    }
    if let Some(missing) = used_keys.first() {
        return Err(Error::Other(format!(
            "records are signed by key {missing}, whose public key is unknown: add it to evidence.keyring"
        )));
    }
    let log = match log {
        BundleLog::Sign(o) => Some(write_log(dir, &mut entries, o)?),
        BundleLog::Stored(stored) => Some(write_stored_log(dir, &entries, stored)?),
        BundleLog::None => None,
    };
    let manifest = Manifest {
        format: BUNDLE_FORMAT.to_owned(),
        exported_at: exported_at.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        generator: concat!("pci-scope-guard ", env!("CARGO_PKG_VERSION")).to_owned(),
        keys: key_files,
        records: entries,
        log,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(dir.join("manifest.json"), text).map_err(|e| io_err(&dir.join("manifest.json"), e))?;
    Ok(manifest)
}

fn log_err(e: log::LogError) -> Error {
    Error::Other(format!("evidence log: {e}"))
}

/// The evidence log of `entries` (in their order): indexes, checkpoints,
/// proofs.
fn write_log(dir: &Path, entries: &mut [Entry], o: LogOptions<'_>) -> Result<LogSection> {
    let (signer, key_id, every) = (o.signer, o.key_id, o.every.max(1));
    let mut tree = Log::default();
    for e in entries.iter_mut() {
        // A record's proof in the service's log stays: it is what a v2
        // record's signature seals.
        if e.seal.is_none() {
            e.seal = e.inclusion.take();
        }
        e.log_index = Some(tree.append(&e.hash).map_err(log_err)?);
    }
    let n = tree.size();
    let mut sizes: Vec<u64> = (1..=n / every).map(|k| k * every).collect();
    if sizes.last() != Some(&n) {
        sizes.push(n);
    }
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| io_err(dir, e))?;
    let mut checkpoints = Vec::with_capacity(sizes.len());
    let mut previous: Option<u64> = None;
    for size in &sizes {
        let text = signer.sign(*size, tree.root(*size).map_err(log_err)?).map_err(log_err)?;
        let file = format!("checkpoints/{size:012}.txt");
        std::fs::write(dir.join(&file), text).map_err(|e| io_err(&dir.join(&file), e))?;
        let consistency = match previous {
            Some(p) if p > 0 => log::encode_proof(&tree.consistency(p, *size).map_err(log_err)?),
            _ => Vec::new(),
        };
        checkpoints.push(CheckpointRef { file, size: *size, consistency, key_id: None });
        previous = Some(*size);
    }
    for e in entries.iter_mut() {
        let index = e.log_index.unwrap_or_default();
        // The first checkpoint that covers it.
        let cp = sizes.iter().copied().find(|s| *s > index).unwrap_or(n);
        let proof = log::encode_proof(&tree.inclusion(index, cp).map_err(log_err)?);
        e.inclusion = Some(Inclusion { checkpoint: cp, proof });
    }
    Ok(LogSection { origin: signer.origin().to_owned(), key_id: key_id.to_owned(), checkpoints, excerpt: false })
}

/// Writes the service's stored checkpoints; the entries carry their proofs.
fn write_stored_log(dir: &Path, entries: &[Entry], stored: StoredLog) -> Result<LogSection> {
    let Some(newest) = stored.checkpoints.last() else {
        return Err(Error::Other("an excerpt of the evidence log needs at least one checkpoint".into()));
    };
    if let Some(e) = entries.iter().find(|e| e.log_index.is_none() || e.inclusion.is_none()) {
        return Err(Error::Other(format!(
            "{} #{} has no place in the evidence log: an excerpt holds only logged records",
            e.chain, e.sequence
        )));
    }
    let key_id = newest.key_id.clone();
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| io_err(dir, e))?;
    let mut checkpoints = Vec::with_capacity(stored.checkpoints.len());
    for c in stored.checkpoints {
        let file = format!("checkpoints/{:012}.txt", c.size);
        std::fs::write(dir.join(&file), &c.text).map_err(|e| io_err(&dir.join(&file), e))?;
        let key_id = (c.key_id != key_id).then_some(c.key_id);
        checkpoints.push(CheckpointRef { file, size: c.size, consistency: c.consistency, key_id });
    }
    Ok(LogSection { origin: stored.origin, key_id, checkpoints, excerpt: true })
}

/// Checks a bundle's evidence log; its problems.
fn verify_log(dir: &Path, m: &Manifest, log_section: &LogSection, keys: &Keyring) -> Vec<Failure> {
    let mut out = Vec::new();
    let fail = |entry: Option<&Entry>, problem: String| Failure {
        chain: entry.map_or_else(|| "evidence log".to_owned(), |e| e.chain.clone()),
        sequence: entry.map(|e| e.sequence),
        evidence_id: entry.map(|e| e.evidence_id.clone()),
        problem: Problem::Log(problem),
    };
    // The checkpoints: signatures, sizes, consistency from one to the next.
    let mut heads: std::collections::BTreeMap<u64, log::TreeHead> = std::collections::BTreeMap::new();
    let mut previous: Option<log::TreeHead> = None;
    for cp in &log_section.checkpoints {
        let key_id = cp.key_id.as_deref().unwrap_or(&log_section.key_id);
        let Some(key) = keys.get(key_id) else {
            out.push(fail(None, format!("checkpoint {}: its key {key_id} is not in the keyring", cp.file)));
            continue;
        };
        let text = inside(dir, &cp.file).and_then(|p| std::fs::read_to_string(p).ok());
        let Some(text) = text else {
            out.push(fail(None, format!("checkpoint {} is missing", cp.file)));
            continue;
        };
        let head = match log::verify_checkpoint(&text, &log_section.origin, key) {
            Ok(h) if h.size == cp.size => h,
            Ok(h) => {
                out.push(fail(
                    None,
                    format!("checkpoint {} signs {} records, the manifest says {}", cp.file, h.size, cp.size),
                ));
                continue;
            }
            Err(e) => {
                out.push(fail(None, format!("checkpoint {}: {e}", cp.file)));
                continue;
            }
        };
        if let Some(p) = previous {
            let checked = log::decode_proof(&cp.consistency)
                .and_then(|proof| log::check_consistency(&proof, head.size, head.root, p.size, p.root));
            if let Err(e) = checked {
                out.push(fail(None, format!("checkpoint {}: {e}", cp.file)));
            }
        }
        heads.insert(head.size, head);
        previous = Some(head);
    }
    if log_section.excerpt {
        out.extend(verify_excerpt(m, &heads, previous, fail));
        return out;
    }
    // The records: indexes 0..n in order, each proven in its checkpoint.
    let mut tree = Log::default();
    for (i, e) in m.records.iter().enumerate() {
        if e.log_index != Some(i as u64) {
            out.push(fail(
                Some(e),
                format!("log index {:?}, expected {i} (records removed, added or reordered)", e.log_index),
            ));
        }
        let leaf = match log::leaf(&e.hash) {
            Ok(l) => l,
            Err(err) => {
                out.push(fail(Some(e), err.to_string()));
                continue;
            }
        };
        let _ = tree.append_leaf(leaf);
        if let Err(problem) = check_proof(e, e.log_index.unwrap_or(i as u64), leaf, &heads) {
            out.push(fail(Some(e), problem.to_string()));
        }
    }
    // The last checkpoint covers exactly these records.
    match previous {
        Some(last) => {
            let n = tree.size();
            let root = tree.root(n).ok();
            if last.size != n || root != Some(last.root) {
                out.push(fail(
                    None,
                    format!(
                        "the last checkpoint signs {} records with another root than the bundle's {n} records: records were removed, added or changed",
                        last.size
                    ),
                ));
            }
        }
        None if !m.records.is_empty() => out.push(fail(None, "no verified checkpoint".to_owned())),
        None => {}
    }
    out
}

/// The records of an excerpt of the service's log: each has a log index
/// (distinct, increasing in manifest order) and is proven in the checkpoint
/// its proof names; the newest checkpoint covers them all. Which records of
/// the log are outside the bundle (other periods) is not known here.
fn verify_excerpt(
    m: &Manifest,
    heads: &std::collections::BTreeMap<u64, log::TreeHead>,
    newest: Option<log::TreeHead>,
    fail: impl Fn(Option<&Entry>, String) -> Failure,
) -> Vec<Failure> {
    let mut out = Vec::new();
    let Some(newest) = newest else {
        if !m.records.is_empty() {
            out.push(fail(None, "no verified checkpoint".to_owned()));
        }
        return out;
    };
    let mut last: Option<u64> = None;
    for e in &m.records {
        let Some(index) = e.log_index else {
            out.push(fail(Some(e), "no log index in an excerpt of the evidence log".to_owned()));
            continue;
        };
        if last.is_some_and(|l| index <= l) {
            out.push(fail(
                Some(e),
                format!("log index {index} after {}: records repeated or reordered", last.unwrap_or_default()),
            ));
        }
        last = Some(index);
        if index >= newest.size {
            out.push(fail(Some(e), format!("log index {index} is beyond the newest checkpoint ({})", newest.size)));
        }
        let checked = log::leaf(&e.hash).map_err(ProofError::from).and_then(|leaf| check_proof(e, index, leaf, heads));
        if let Err(problem) = checked {
            out.push(fail(Some(e), problem.to_string()));
        }
    }
    out
}

/// Why a record's inclusion proof does not hold.
#[derive(Debug, thiserror::Error)]
enum ProofError {
    #[error("no inclusion proof")]
    Missing,
    #[error("its proof names checkpoint {0}, which the bundle does not hold verified")]
    UnknownCheckpoint(u64),
    #[error(transparent)]
    Log(#[from] log::LogError),
}

/// Checks that `e`'s inclusion proof puts `leaf` at `index` of the verified
/// checkpoint it names.
fn check_proof(
    e: &Entry,
    index: u64,
    leaf: tlog_tiles::Hash,
    heads: &std::collections::BTreeMap<u64, log::TreeHead>,
) -> Result<(), ProofError> {
    let inc = e.inclusion.as_ref().ok_or(ProofError::Missing)?;
    let head = heads.get(&inc.checkpoint).ok_or(ProofError::UnknownCheckpoint(inc.checkpoint))?;
    let proof = log::decode_proof(&inc.proof)?;
    Ok(log::check_inclusion(&proof, head.size, head.root, index, leaf)?)
}

/// A path from a manifest, confined to the bundle.
fn inside(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    p.components().all(|c| matches!(c, Component::Normal(_))).then(|| dir.join(p))
}

/// Where the keys verifying a bundle came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The bundle's own `keys/`: proves integrity, not who signed.
    Bundle,
    /// Keys the verifier supplied.
    Trusted,
}

/// Verifies the bundle in `dir`. With `trusted` keys, only those are
/// accepted; otherwise the bundle's own `keys/`.
pub fn verify_dir(dir: &Path, trusted: Option<&Keyring>) -> Result<(Manifest, Outcome, KeySource)> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read(&manifest_path).map_err(|e| io_err(&manifest_path, e))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::Other(format!("{}: not a bundle manifest: {e}", manifest_path.display())))?;
    if !READABLE_BUNDLE_FORMATS.contains(&manifest.format.as_str()) {
        return Err(Error::Other(format!(
            "{}: format {} is not one this version reads ({})",
            manifest_path.display(),
            manifest.format,
            READABLE_BUNDLE_FORMATS.join(", ")
        )));
    }
    let (keys, source) = match trusted {
        Some(k) => (k.clone(), KeySource::Trusted),
        None => {
            let mut k = Keyring::new();
            for f in &manifest.keys {
                let path =
                    inside(dir, f).ok_or_else(|| Error::Other(format!("manifest: key path {f} leaves the bundle")))?;
                k.load(&path)?;
            }
            (k, KeySource::Bundle)
        }
    };
    let mut outcome = verify_entries(
        &manifest.records,
        |e| {
            let Some(path) = inside(dir, &e.file) else {
                return Err(format!("path {} leaves the bundle", e.file).into());
            };
            match std::fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(err.into()),
            }
        },
        &keys,
    );
    if let Some(section) = &manifest.log {
        outcome.failures.extend(verify_log(dir, &manifest, section, &keys));
    }
    // Documents nobody lists were put there.
    let listed: BTreeSet<PathBuf> = manifest.records.iter().filter_map(|e| inside(dir, &e.file)).collect();
    let docs = dir.join("documents");
    let mut stack = vec![docs.clone()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else { continue };
        for item in read.flatten() {
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
            } else if !listed.contains(&path) {
                let rel = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
                // documents/<chain>/…
                let chain = path
                    .strip_prefix(&docs)
                    .ok()
                    .and_then(|p| p.components().next())
                    .filter(|_| path.parent() != Some(docs.as_path()))
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .unwrap_or_default();
                outcome.failures.push(Failure {
                    chain,
                    sequence: None,
                    evidence_id: None,
                    problem: Problem::Unlisted(rel),
                });
            }
        }
    }
    Ok((manifest, outcome, source))
}
