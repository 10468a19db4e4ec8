//! Evidence bundles: what `evidence export` writes and `evidence verify DIR`
//! checks, with nothing but the files.
//!
//! ```text
//! DIR/manifest.json                       the records in chain order
//! DIR/documents/<chain>/<sequence>.json   the signed canonical documents
//! DIR/keys/<key-id>.pub                   the public keys that signed them
//! ```

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use serde::{Deserialize, Serialize};

use crate::verify::{Entry, Failure, Keyring, Outcome, Problem, verify_entries};
use crate::{Error, Result};

/// Format identifier of `manifest.json`.
pub const BUNDLE_FORMAT: &str = "pci-scope-guard/evidence-bundle/v1";

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
}

/// The document path of a record inside a bundle.
pub fn document_file(chain: &str, sequence: i64) -> String {
    format!("documents/{chain}/{sequence:012}.json")
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("{}: {e}", path.display()))
}

/// Writes a bundle into `dir` (created; it must be empty or absent).
/// `records` are (entry, document bytes) in chain order; `entry.file` is
/// replaced by the bundle's path.
pub fn write(
    dir: &Path,
    from: &str,
    to: &str,
    records: Vec<(Entry, Vec<u8>)>,
    keys: &Keyring,
    exported_at: &str,
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
    let manifest = Manifest {
        format: BUNDLE_FORMAT.to_owned(),
        exported_at: exported_at.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        generator: concat!("pci-scope-guard ", env!("CARGO_PKG_VERSION")).to_owned(),
        keys: key_files,
        records: entries,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(dir.join("manifest.json"), text).map_err(|e| io_err(&dir.join("manifest.json"), e))?;
    Ok(manifest)
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
    if manifest.format != BUNDLE_FORMAT {
        return Err(Error::Other(format!(
            "{}: format {} is not {BUNDLE_FORMAT}",
            manifest_path.display(),
            manifest.format
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
                return Err(format!("path {} leaves the bundle", e.file));
            };
            match std::fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(err.to_string()),
            }
        },
        &keys,
    );
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
                let chain = path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
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
