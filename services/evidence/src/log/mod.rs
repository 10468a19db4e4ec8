//! The evidence log: one append-only Merkle tree over every evidence record,
//! in log order (`log_index` 0, 1, 2, …), as Certificate Transparency keeps
//! certificates (RFC 6962/9162). Pure: no I/O.
//!
//! - Leaf *i* is the 32 raw bytes of record *i*'s SHA-256 (the record's
//!   `hash`), hashed as an RFC 6962 leaf (`SHA-256(0x00 ‖ leaf)`); interior
//!   nodes are `SHA-256(0x01 ‖ left ‖ right)`.
//! - The tree is kept as the hashes Go's `sumdb/tlog` stores (every complete
//!   subtree once, about two per record), through `tlog_tiles`: any root,
//!   inclusion proof (a record is in the tree of size *n*) and consistency
//!   proof (the tree of size *m* is a prefix of the tree of size *n*) is
//!   computed from them.
//! - A checkpoint is the tree head in the C2SP `tlog-checkpoint` format
//!   (origin, size, base64 root), signed as a C2SP signed note with the
//!   evidence key (Ed25519, key name = origin): one signature per checkpoint,
//!   not per record.

use ed25519_dalek::{SigningKey, VerifyingKey};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash, HashReader};

/// Why a log operation or a verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("record hash '{0}' is not 32 bytes of hex")]
    RecordHash(String),
    #[error("{0}")]
    Tree(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("record {index} is not in the tree of size {size} that the checkpoint signs: {reason}")]
    Inclusion { index: u64, size: u64, reason: String },
    #[error("the tree of size {old} is not a prefix of the tree of size {new}: {reason}")]
    Consistency { old: u64, new: u64, reason: String },
}

fn tree_err(e: tlog_tiles::Error) -> LogError {
    LogError::Tree(e.to_string())
}

/// The leaf of a record: its SHA-256, hex as records carry it.
pub fn leaf(record_hash_hex: &str) -> Result<Hash, LogError> {
    let bytes = hex::decode(record_hash_hex).map_err(|_| LogError::RecordHash(record_hash_hex.to_owned()))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| LogError::RecordHash(record_hash_hex.to_owned()))?;
    Ok(tlog_tiles::record_hash(&bytes))
}

/// The log's stored hashes, in memory (the service keeps them in its
/// database; a bundle rebuilds them from its records).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// Records in the log.
    size: u64,
    /// Stored hashes by stored-hash index.
    stored: Vec<Hash>,
}

impl HashReader for Log {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                usize::try_from(*i)
                    .ok()
                    .and_then(|i| self.stored.get(i).copied())
                    .ok_or_else(|| tlog_tiles::Error::InvalidInput(format!("no stored hash {i}")))
            })
            .collect()
    }
}

impl Log {
    /// The number of records in the log.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a record by its leaf hash; its `log_index`.
    pub fn append_leaf(&mut self, leaf: Hash) -> Result<u64, LogError> {
        let index = self.size;
        let hashes = tlog_tiles::stored_hashes_for_record_hash(index, leaf, self).map_err(tree_err)?;
        self.stored.extend(hashes);
        self.size += 1;
        Ok(index)
    }

    /// Takes the log back to its first `size` records: those appended
    /// since are forgotten (a batch sealed ahead of its duplicate check).
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let keep = usize::try_from(tlog_tiles::stored_hash_count(size)).unwrap_or(usize::MAX);
            self.stored.truncate(keep);
            self.size = size;
        }
    }

    /// Appends a record by its SHA-256 (hex); its `log_index`.
    pub fn append(&mut self, record_hash_hex: &str) -> Result<u64, LogError> {
        self.append_leaf(leaf(record_hash_hex)?)
    }

    /// The leaf hashes of records `from..to` (what [`Log::append_leaf`]
    /// takes back).
    pub fn leaf_hashes(&self, from: u64, to: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(to)?;
        let indexes: Vec<u64> = (from..to).map(|i| tlog_tiles::stored_hash_index(0, i)).collect();
        self.read_hashes(&indexes).map_err(tree_err)
    }

    /// The root of the tree of the first `size` records.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        tlog_tiles::tree_hash(size, self).map_err(tree_err)
    }

    /// The proof that record `index` is in the tree of the first `size`
    /// records (RFC 6962's audit path).
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        tlog_tiles::prove_record(size, index, self).map_err(tree_err)
    }

    /// The root of the tree of the whole log and the proof of each record
    /// from `first` on in it: a batch's records against the checkpoint that
    /// first covers them, in one pass over the tree (about one hash per
    /// record; [`Log::inclusion`] per record hashes its path's partial
    /// subtrees anew each time). The leaves and the complete subtrees left
    /// of `first` are stored already.
    pub fn run_inclusion(&self, first: u64) -> Result<(Hash, Vec<Vec<Hash>>), LogError> {
        let leaves: Vec<[u8; 32]> = self.leaf_hashes(first, self.size)?.iter().map(|h| h.0).collect();
        // A complete subtree of 2^level leaves from `start` is stored at
        // that level.
        let indexes: Vec<u64> = psg_domain::log_tree::subtrees_before(first)
            .into_iter()
            .map(|(start, end)| {
                let level = (end - start).trailing_zeros() as u8;
                tlog_tiles::stored_hash_index(level, start >> level)
            })
            .collect();
        let left: Vec<[u8; 32]> = self.read_hashes(&indexes).map_err(tree_err)?.iter().map(|h| h.0).collect();
        let (root, proofs) =
            psg_domain::log_tree::run_proofs_of_leaves(first, &leaves, &left).map_err(LogError::Tree)?;
        Ok((Hash(root), proofs.into_iter().map(|p| p.into_iter().map(Hash).collect()).collect()))
    }

    /// The proof that the tree of size `old` is a prefix of the tree of
    /// size `new`.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(new)?;
        tlog_tiles::prove_tree(new, old, self).map_err(tree_err)
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        if size > self.size {
            return Err(LogError::Tree(format!("the log holds {} records, not {size}", self.size)));
        }
        Ok(())
    }
}

/// Checks that `proof` puts the record with leaf hash `leaf` at `index` of
/// the tree of `size` records whose root is `root`.
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf: Hash) -> Result<(), LogError> {
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).map_err(|e| LogError::Inclusion {
        index,
        size,
        reason: e.to_string(),
    })
}

/// The root of the tree of `size` records in which `proof` puts the record
/// with leaf hash `leaf` at `index` (RFC 9162 §2.1.3.2): a record with its
/// proof gives the root a checkpoint must sign, without the checkpoint.
pub fn root_from_inclusion(proof: &[Hash], size: u64, index: u64, leaf: Hash) -> Result<Hash, LogError> {
    let fail = |reason: &str| LogError::Inclusion { index, size, reason: reason.to_owned() };
    if index >= size {
        return Err(fail("the index is beyond the tree"));
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in proof {
        if s == 0 {
            return Err(fail("the proof is too long"));
        }
        if f & 1 == 1 || f == s {
            r = tlog_tiles::node_hash(*p, r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = tlog_tiles::node_hash(r, *p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(fail("the proof is too short"));
    }
    Ok(r)
}

/// The signed text of a checkpoint (the C2SP `tlog-checkpoint` body, no
/// extension lines): `<origin>\n<size>\n<base64 root>\n`.
pub fn checkpoint_body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", encode_hash(root))
}

/// Checks that `proof` shows the tree of `old` records with root
/// `old_root` to be a prefix of the tree of `new` records with root `new_root`.
pub fn check_consistency(proof: &[Hash], new: u64, new_root: Hash, old: u64, old_root: Hash) -> Result<(), LogError> {
    tlog_tiles::check_tree(&proof.to_vec(), new, new_root, old, old_root).map_err(|e| LogError::Consistency {
        old,
        new,
        reason: e.to_string(),
    })
}

/// A hash as text (base64), as checkpoints carry roots.
pub fn encode_hash(hash: &Hash) -> String {
    base64_std(&hash.0)
}

/// Proof hashes as text (base64, one per element), as bundles carry them.
pub fn encode_proof(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(encode_hash).collect()
}

/// The proofs of consecutive records ([`Log::run_inclusion`]) as text,
/// each as [`encode_proof`] gives it. Neighbours share the upper part of
/// their paths: a hash that the previous proof holds at the same height
/// (counted from the top) is that proof's text again, not encoded anew. In
/// a batch of 1,000 records about 2 of a proof's 17 or so hashes are new.
pub fn encode_proofs(proofs: &[Vec<Hash>]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::with_capacity(proofs.len());
    let mut previous: &[Hash] = &[];
    for proof in proofs {
        let before = out.last().map(Vec::as_slice).unwrap_or_default();
        let text = proof
            .iter()
            .enumerate()
            .map(|(k, hash)| {
                let from_top = proof.len() - k;
                match previous.len().checked_sub(from_top) {
                    Some(at) if previous[at] == *hash => before[at].clone(),
                    _ => encode_hash(hash),
                }
            })
            .collect();
        out.push(text);
        previous = proof;
    }
    out
}

/// [`encode_proof`] read back.
pub fn decode_proof(proof: &[String]) -> Result<Vec<Hash>, LogError> {
    use base64::Engine as _;
    proof
        .iter()
        .map(|s| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| LogError::Tree(format!("proof hash '{s}' is not base64")))?;
            let bytes: [u8; 32] =
                bytes.try_into().map_err(|_| LogError::Tree(format!("proof hash '{s}' is not 32 bytes")))?;
            Ok(Hash(bytes))
        })
        .collect()
}

/// The origin of the evidence log signed by `key`:
/// `pci-scope-guard/evidence/<first 16 hex digits of the key id>`.
pub fn default_origin(key: &VerifyingKey) -> String {
    let id = crate::keys::key_id(key);
    let hex = id.trim_start_matches("ed25519:");
    format!("pci-scope-guard/evidence/{}", &hex[..16.min(hex.len())])
}

/// Signs checkpoints with the evidence key: the key name is the log's origin.
pub struct CheckpointSigner {
    origin: String,
    signer: StandardSigner,
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// `origin`: the log's identity (a schema-less URL such as
    /// `pci-scope-guard.example/evidence`; no spaces or `+`).
    pub fn new(origin: &str, key: &SigningKey) -> Result<Self, LogError> {
        let public = [&[1u8][..], key.verifying_key().as_bytes()].concat();
        let private = [&[1u8][..], key.as_bytes()].concat();
        let skey =
            format!("PRIVATE+KEY+{origin}+{:08x}+{}", signed_note::key_id(origin, &public), base64_std(&private));
        let signer = StandardSigner::new(&skey).map_err(|e| LogError::Checkpoint(format!("origin '{origin}': {e}")))?;
        Ok(Self { origin: origin.to_owned(), signer, key: key.clone() })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The signed checkpoint of the tree of `size` records with root `root`.
    pub fn sign(&self, size: u64, root: Hash) -> Result<String, LogError> {
        let body =
            Checkpoint::new(&self.origin, size, root, "").map_err(|e| LogError::Checkpoint(e.to_string()))?.to_bytes();
        let mut note = Note::new(&body, &[]).map_err(|e| LogError::Checkpoint(e.to_string()))?;
        note.add_sigs(&[&self.signer]).map_err(|e| LogError::Checkpoint(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| LogError::Checkpoint(e.to_string()))
    }

    /// The Ed25519 signature of the checkpoint of `size` records with root
    /// `root` (over [`checkpoint_body`]): the signature the signed note
    /// carries, base64. Records sealed by the log carry it.
    pub fn signature(&self, size: u64, root: &Hash) -> String {
        use ed25519_dalek::Signer as _;
        base64_std(&self.key.sign(checkpoint_body(&self.origin, size, root).as_bytes()).to_bytes())
    }

    /// The verifier key of the checkpoints (`<origin>+<key id>+<base64>`),
    /// as tlog tools configure it.
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.origin, &self.key.verifying_key())
    }
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A verified checkpoint: the tree it signs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// Verifies a signed checkpoint of log `origin` against the evidence key
/// `key`: the signature of the key named `origin` must verify, and the text
/// must be a checkpoint of that origin.
pub fn verify_checkpoint(text: &str, origin: &str, key: &VerifyingKey) -> Result<TreeHead, LogError> {
    let vkey = signed_note::new_ed25519_verifier_key(origin, key);
    let verifier = StandardVerifier::new(&vkey).map_err(|e| LogError::Checkpoint(e.to_string()))?;
    let note = Note::from_bytes(text.as_bytes()).map_err(|e| LogError::Checkpoint(e.to_string()))?;
    let (verified, _) = note
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| LogError::Checkpoint(format!("signature: {e}")))?;
    if verified.is_empty() {
        return Err(LogError::Checkpoint(format!("no signature of {origin} verifies")));
    }
    let cp = Checkpoint::from_bytes(note.text()).map_err(|e| LogError::Checkpoint(e.to_string()))?;
    if cp.origin() != origin {
        return Err(LogError::Checkpoint(format!("origin '{}', expected '{origin}'", cp.origin())));
    }
    Ok(TreeHead { size: cp.size(), root: *cp.hash() })
}

pub mod audit;
#[cfg(test)]
mod tests;
