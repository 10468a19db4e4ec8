//! Checks the evidence log as the service stored it (`evidence verify`
//! against the database): every stored checkpoint's signature, its root
//! against the stored leaves, the consistency proof stored with it, and
//! each record's leaf and stored inclusion proof.

use std::collections::BTreeMap;

use psg_domain::rows::{EvidenceCheckpointRow, EvidenceLogRow};

use super::{
    Log, LogError, TreeHead, check_consistency, check_inclusion, decode_proof, encode_hash, leaf, verify_checkpoint,
};
use crate::verify::Keyring;

/// What checking the stored log found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audit {
    /// Leaves stored.
    pub size: u64,
    /// Checkpoints whose signature, root and consistency verified.
    pub checkpoints_verified: usize,
    /// The newest verified checkpoint's tree size.
    pub newest: Option<u64>,
    /// Records whose leaf and inclusion proof verified.
    pub records_verified: usize,
    /// Records whose log entry did not verify.
    pub failed_records: Vec<uuid::Uuid>,
    /// Every problem, one sentence each.
    pub failures: Vec<String>,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Leaves after the newest checkpoint: appended, not yet signed.
    pub fn unsigned(&self) -> u64 {
        self.size - self.newest.unwrap_or(0).min(self.size)
    }
}

/// Checks log `origin`: `leaves` (every stored leaf, hex record hashes in
/// log order), `checkpoints` (every stored checkpoint of it) and `records`
/// (log entries with the hash of the evidence row each belongs to).
pub fn audit(
    origin: &str,
    leaves: &[String],
    checkpoints: &[EvidenceCheckpointRow],
    records: &[(EvidenceLogRow, String)],
    keys: &Keyring,
) -> Audit {
    let mut out = Audit { size: leaves.len() as u64, ..Audit::default() };
    let mut tree = Log::default();
    for (i, l) in leaves.iter().enumerate() {
        if let Err(e) = tree.append(l) {
            out.failures.push(format!("leaf {i}: {e}"));
            return out;
        }
    }
    let mut heads: BTreeMap<u64, TreeHead> = BTreeMap::new();
    let mut sorted: Vec<&EvidenceCheckpointRow> = checkpoints.iter().filter(|c| c.origin == origin).collect();
    sorted.sort_by_key(|c| c.tree_size);
    for c in sorted {
        let size = c.tree_size.unsigned_abs();
        match checkpoint(c, origin, &tree, &heads, keys) {
            Ok(head) => {
                heads.insert(size, head);
                out.checkpoints_verified += 1;
                out.newest = Some(size);
            }
            Err(e) => out.failures.push(format!("checkpoint of {size} records: {e}")),
        }
    }
    for (entry, row_hash) in records {
        match record(entry, row_hash, leaves, &heads) {
            Ok(()) => out.records_verified += 1,
            Err(e) => {
                out.failures.push(format!("record {} (log index {}): {e}", entry.evidence_id, entry.log_index));
                out.failed_records.push(entry.evidence_id);
            }
        }
    }
    out
}

/// Why a stored checkpoint or record does not verify.
#[derive(Debug, thiserror::Error)]
enum Finding {
    #[error("its key {0} is not in the keyring")]
    UnknownKey(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the signed note says {size} records and root {root}")]
    NoteDiffers { size: u64, root: String },
    #[error("it covers {covers} records, {stored} leaves are stored: leaves were removed")]
    LeavesRemoved { covers: u64, stored: u64 },
    #[error("the stored leaves do not give its signed root: the stored log was changed")]
    RootDiffers,
    #[error("it extends the checkpoint of {0} records, which did not verify or is missing")]
    PreviousMissing(u64),
    #[error("its consistency proof from {previous} records: {source}")]
    Consistency {
        previous: u64,
        #[source]
        source: LogError,
    },
    #[error("the evidence row's hash {row} is not its log leaf {leaf}")]
    RowHash { row: String, leaf: String },
    #[error("the log's leaf at its index is another hash")]
    LeafDiffers,
    #[error("its checkpoint ({0} records) did not verify or is missing")]
    CheckpointMissing(u64),
    #[error("inclusion proof: {0}")]
    Inclusion(#[source] LogError),
}

/// One stored checkpoint: signed by a known key, the tree size and root it
/// states, that root from the stored leaves, and its consistency proof from
/// the checkpoint before it (verified earlier, in `heads`).
fn checkpoint(
    c: &EvidenceCheckpointRow,
    origin: &str,
    tree: &Log,
    heads: &BTreeMap<u64, TreeHead>,
    keys: &Keyring,
) -> Result<TreeHead, Finding> {
    let key = keys.get(&c.key_id).ok_or_else(|| Finding::UnknownKey(c.key_id.clone()))?;
    let head = verify_checkpoint(&c.checkpoint, origin, key)?;
    let size = c.tree_size.unsigned_abs();
    if head.size != size || encode_hash(&head.root) != c.root {
        return Err(Finding::NoteDiffers { size: head.size, root: encode_hash(&head.root) });
    }
    if size > tree.size() {
        return Err(Finding::LeavesRemoved { covers: size, stored: tree.size() });
    }
    if tree.root(size)? != head.root {
        return Err(Finding::RootDiffers);
    }
    if let Some(previous) = c.previous_size.map(i64::unsigned_abs) {
        let before = heads.get(&previous).ok_or(Finding::PreviousMissing(previous))?;
        let proof = decode_proof(&c.consistency)?;
        check_consistency(&proof, size, head.root, previous, before.root)
            .map_err(|source| Finding::Consistency { previous, source })?;
    }
    Ok(head)
}

/// One record: its evidence row's hash is its leaf, and its stored
/// inclusion proof puts that leaf at its index in the checkpoint named.
fn record(
    e: &EvidenceLogRow,
    row_hash: &str,
    leaves: &[String],
    heads: &BTreeMap<u64, TreeHead>,
) -> Result<(), Finding> {
    if e.record_hash != row_hash {
        return Err(Finding::RowHash { row: row_hash.to_owned(), leaf: e.record_hash.clone() });
    }
    let index = e.log_index.unsigned_abs();
    let stored = usize::try_from(index).ok().and_then(|i| leaves.get(i));
    if stored != Some(&e.record_hash) {
        return Err(Finding::LeafDiffers);
    }
    let size = e.checkpoint_size.unsigned_abs();
    let head = heads.get(&size).ok_or(Finding::CheckpointMissing(size))?;
    let proof = decode_proof(&e.inclusion)?;
    let leaf = leaf(&e.record_hash)?;
    check_inclusion(&proof, size, head.root, index, leaf).map_err(Finding::Inclusion)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ed25519_dalek::SigningKey;
    use uuid::Uuid;

    use super::super::{CheckpointSigner, encode_proof};
    use super::*;

    const ORIGIN: &str = "example.com/evidence";

    /// A stored log of 10 records as the service keeps it: checkpoints
    /// after 4, 7 and 10 records, each record proven in the first that
    /// covers it.
    struct Stored {
        leaves: Vec<String>,
        checkpoints: Vec<EvidenceCheckpointRow>,
        records: Vec<(EvidenceLogRow, String)>,
        keys: Keyring,
    }

    fn stored() -> Stored {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut keys = Keyring::new();
        let key_id = keys.add(key.verifying_key());
        let signer = CheckpointSigner::new(ORIGIN, &key).unwrap();
        let leaves: Vec<String> = (0..10u8).map(|i| hex::encode([i; 32])).collect();
        let mut tree = Log::default();
        let (mut checkpoints, mut records) = (Vec::new(), Vec::new());
        let mut previous: Option<u64> = None;
        for batch in [0..4usize, 4..7, 7..10] {
            for l in &leaves[batch.clone()] {
                tree.append(l).unwrap();
            }
            let size = tree.size();
            let root = tree.root(size).unwrap();
            checkpoints.push(EvidenceCheckpointRow {
                origin: ORIGIN.into(),
                tree_size: size as i64,
                root: encode_hash(&root),
                key_id: key_id.clone(),
                checkpoint: signer.sign(size, root).unwrap(),
                previous_size: previous.map(|p| p as i64),
                consistency: previous.map(|p| encode_proof(&tree.consistency(p, size).unwrap())).unwrap_or_default(),
                signed_at: Utc::now(),
            });
            for i in batch {
                let entry = EvidenceLogRow {
                    log_index: i as i64,
                    evidence_id: Uuid::from_u128(i as u128),
                    record_hash: leaves[i].clone(),
                    checkpoint_size: size as i64,
                    inclusion: encode_proof(&tree.inclusion(i as u64, size).unwrap()),
                };
                records.push((entry, leaves[i].clone()));
            }
            previous = Some(size);
        }
        Stored { leaves, checkpoints, records, keys }
    }

    fn run(s: &Stored) -> Audit {
        audit(ORIGIN, &s.leaves, &s.checkpoints, &s.records, &s.keys)
    }

    #[test]
    fn the_service_s_stored_log_verifies() {
        let a = run(&stored());
        assert!(a.ok(), "{:?}", a.failures);
        assert_eq!((a.size, a.checkpoints_verified, a.newest, a.records_verified), (10, 3, Some(10), 10));
        assert_eq!(a.unsigned(), 0);
    }

    #[test]
    fn leaves_after_the_newest_checkpoint_are_unsigned_not_wrong() {
        let mut s = stored();
        s.leaves.push(hex::encode([99; 32]));
        let a = run(&s);
        assert!(a.ok(), "{:?}", a.failures);
        assert_eq!(a.unsigned(), 1);
    }

    #[test]
    fn a_changed_leaf_breaks_the_checkpoints_that_cover_it_and_its_record() {
        let mut s = stored();
        s.leaves[5] = hex::encode([55; 32]);
        let a = run(&s);
        let text = a.failures.join("\n");
        assert!(text.contains("checkpoint of 7 records: the stored leaves do not give its signed root"), "{text}");
        assert!(text.contains("checkpoint of 10 records"), "{text}");
        assert!(text.contains("log index 5"), "{text}");
        assert!(!text.contains("checkpoint of 4 records"), "the earlier checkpoint still verifies: {text}");
    }

    #[test]
    fn a_changed_evidence_row_is_not_its_leaf() {
        let mut s = stored();
        s.records[2].1 = hex::encode([42; 32]);
        let a = run(&s);
        assert_eq!(a.records_verified, 9);
        assert!(a.failures[0].contains("is not its log leaf"), "{:?}", a.failures);
    }

    #[test]
    fn a_forged_or_unknown_signature_and_a_bad_proof_are_failures() {
        let mut s = stored();
        // Signed by another key: not in the keyring.
        let other = SigningKey::from_bytes(&[8; 32]);
        let mut forged = s.checkpoints[1].clone();
        forged.key_id = "ed25519:unknown".into();
        forged.checkpoint =
            CheckpointSigner::new(ORIGIN, &other).unwrap().sign(7, Log::default().root(0).unwrap()).unwrap();
        s.checkpoints[1] = forged;
        // A record's proof with one hash changed.
        let proof = &mut s.records[0].0.inclusion;
        proof[0] = encode_hash(&tlog_tiles::Hash([1; 32]));
        let a = run(&s);
        let text = a.failures.join("\n");
        assert!(text.contains("checkpoint of 7 records: its key ed25519:unknown is not in the keyring"), "{text}");
        // The next one extends a checkpoint that did not verify.
        assert!(text.contains("checkpoint of 10 records: it extends the checkpoint of 7 records"), "{text}");
        assert!(text.contains("log index 0): inclusion proof"), "{text}");
        assert!(!a.ok());
    }

    #[test]
    fn removed_leaves_are_named() {
        let mut s = stored();
        s.leaves.truncate(8);
        let a = run(&s);
        assert!(a.failures.iter().any(|f| f.contains("8 leaves are stored: leaves were removed")), "{:?}", a.failures);
    }
}
