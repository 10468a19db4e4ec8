//! RFC 6962 inclusion proofs of a run of the evidence log's leaves, from what
//! a row of `evidence_log_batches` keeps (migration 0022): the run's leaves
//! and the hashes of the complete subtrees left of it. Pure. The store reads
//! proofs back with it, and the evidence service proves each batch with it
//! (in one pass over the tree, instead of a path per record).
//!
//! A run `[first, n)` that the checkpoint of size `n` first covers (a batch
//! of the service's) needs nothing else: every node of the tree of size `n`
//! either lies inside the run, straddles its start, or is a complete subtree
//! left of it, and those are exactly the subtrees that the binary digits of
//! `first` name (`first` = 13 = 8 + 4 + 1: leaves `[0, 8)`, `[8, 12)`,
//! `[12, 13)`), at most 64 hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a record's (a leaf) or a subtree's.
pub type Hash = [u8; 32];

/// Hashes kept as their bytes, 32 each, one after the other (a trailing
/// part shorter than 32 bytes is left out).
pub fn hashes_of(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks_exact(32).filter_map(|c| c.try_into().ok()).collect()
}

fn leaf_hash(record: &Hash) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(record).finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

/// The size of the left subtree of a tree of `n` ≥ 2 leaves: the largest
/// power of two below `n` (RFC 6962, 2.1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees that cover leaves `[0, first)`, largest first, as
/// `(start, end)`.
pub fn subtrees_before(first: u64) -> Vec<(u64, u64)> {
    let mut start = 0;
    (0..64u32)
        .rev()
        .filter(|b| first >> b & 1 == 1)
        .map(|b| {
            let range = (start, start + (1 << b));
            start = range.1;
            range
        })
        .collect()
}

/// The hashes of the complete subtrees left of leaf `first` (largest
/// first), read off that leaf's inclusion proof in the tree of size `n`:
/// they are its left siblings. `None` when the proof is not as long as the
/// tree is deep at that leaf.
pub fn subtrees_left_of(first: u64, n: u64, proof: &[Hash]) -> Option<Vec<Hash>> {
    if first >= n {
        return None;
    }
    // From the root down: is the sibling at this level on the left?
    let mut left_sibling = Vec::new();
    let (mut s, mut e) = (0, n);
    while e - s > 1 {
        let k = split(e - s);
        left_sibling.push(first >= s + k);
        if first < s + k {
            e = s + k;
        } else {
            s += k;
        }
    }
    if left_sibling.len() != proof.len() {
        return None;
    }
    // A proof lists siblings from the leaf up.
    Some(left_sibling.iter().zip(proof.iter().rev()).filter(|(left, _)| **left).map(|(_, h)| *h).collect())
}

/// A run's tree: leaves `[first, first + leaves.len())` of the tree of
/// that size, with the subtrees left of it.
struct RunTree<'a> {
    first: u64,
    /// The run's leaf hashes (`SHA-256(0x00 ‖ record)`).
    leaves: &'a [Hash],
    left: Vec<((u64, u64), Hash)>,
    /// Each leaf's proof so far, from the leaf up; none kept when only
    /// the root is asked for.
    proofs: Vec<Vec<Hash>>,
}

impl RunTree<'_> {
    /// The hash of leaves `[s, e)`, a node of the tree; on the way, every
    /// run leaf below it gets its sibling at each level.
    fn node(&mut self, s: u64, e: u64) -> Result<Hash, String> {
        if e <= self.first {
            return self
                .left
                .iter()
                .find(|(range, _)| *range == (s, e))
                .map(|(_, h)| *h)
                .ok_or_else(|| format!("leaves {s}..{e} are not a complete subtree left of leaf {}", self.first));
        }
        if e - s == 1 {
            return Ok(self.leaves[(s - self.first) as usize]);
        }
        let k = split(e - s);
        let left = self.node(s, s + k)?;
        let right = self.node(s + k, e)?;
        if self.proofs.is_empty() {
            return Ok(node_hash(&left, &right));
        }
        for m in s.max(self.first)..s + k {
            self.proofs[(m - self.first) as usize].push(right);
        }
        for m in (s + k).max(self.first)..e {
            self.proofs[(m - self.first) as usize].push(left);
        }
        Ok(node_hash(&left, &right))
    }
}

/// The root of the tree of `first + records.len()` leaves and each run
/// leaf's inclusion proof in it (RFC 6962's audit path, from the leaf up),
/// from the run's records (their SHA-256, the leaves) and the hashes of the
/// complete subtrees left of it, largest first.
pub fn run_proofs(first: u64, records: &[Hash], left: &[Hash]) -> Result<(Hash, Vec<Vec<Hash>>), String> {
    let leaves: Vec<Hash> = records.iter().map(leaf_hash).collect();
    run_proofs_of_leaves(first, &leaves, left)
}

/// As [`run_proofs`], from the run's leaf hashes (`SHA-256(0x00 ‖
/// record)`, what a log keeps) instead of its records.
pub fn run_proofs_of_leaves(first: u64, leaves: &[Hash], left: &[Hash]) -> Result<(Hash, Vec<Vec<Hash>>), String> {
    run_tree(first, leaves, left, true)
}

/// The root alone of the tree of `first + records.len()` leaves (as
/// [`run_proofs`], without making every leaf's proof).
pub fn run_root(first: u64, records: &[Hash], left: &[Hash]) -> Result<Hash, String> {
    let leaves: Vec<Hash> = records.iter().map(leaf_hash).collect();
    run_tree(first, &leaves, left, false).map(|(root, _)| root)
}

fn run_tree(first: u64, leaves: &[Hash], left: &[Hash], prove: bool) -> Result<(Hash, Vec<Vec<Hash>>), String> {
    let ranges = subtrees_before(first);
    if ranges.len() != left.len() {
        return Err(format!(
            "a run from leaf {first} needs {} subtree hashes left of it, not {}",
            ranges.len(),
            left.len()
        ));
    }
    if leaves.is_empty() {
        return Err(format!("the run from leaf {first} is empty"));
    }
    let n = first + leaves.len() as u64;
    let depth = 64 - n.leading_zeros() as usize;
    let mut tree = RunTree {
        first,
        leaves,
        left: ranges.into_iter().zip(left.iter().copied()).collect(),
        proofs: if prove { vec![Vec::with_capacity(depth); leaves.len()] } else { Vec::new() },
    };
    let root = tree.node(0, n)?;
    Ok((root, tree.proofs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's definitions, over every leaf, to check against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = split(leaves.len() as u64) as usize;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn records(n: usize) -> Vec<Hash> {
        (0..n).map(|i| Sha256::digest(i.to_le_bytes()).into()).collect()
    }

    #[test]
    fn a_run_proves_its_leaves_as_the_whole_tree_does() {
        let all = records(70);
        let mut checked = 0;
        for n in 1..=all.len() {
            for first in 0..n {
                let leaves = &all[..n];
                let left = subtrees_left_of(first as u64, n as u64, &path(first, leaves)).expect("a proof's shape");
                assert_eq!(left.len(), first.count_ones() as usize, "first {first}, size {n}");
                let (root, proofs) = run_proofs(first as u64, &leaves[first..], &left).unwrap();
                assert_eq!(root, mth(leaves), "first {first}, size {n}");
                assert_eq!(run_root(first as u64, &leaves[first..], &left), Ok(root), "first {first}, size {n}");
                for (at, proof) in proofs.iter().enumerate() {
                    assert_eq!(*proof, path(first + at, leaves), "leaf {}, first {first}, size {n}", first + at);
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 70 * 71 / 2);
    }

    #[test]
    fn the_subtrees_left_of_a_run_are_its_start_in_binary() {
        assert_eq!(subtrees_before(13), [(0, 8), (8, 12), (12, 13)]);
        assert!(subtrees_before(0).is_empty());
        assert_eq!(subtrees_before(1 << 40), [(0, 1 << 40)]);
    }

    #[test]
    fn a_proof_of_the_wrong_length_or_wrong_subtrees_is_refused() {
        let all = records(9);
        let proof = path(5, &all);
        assert!(subtrees_left_of(5, 9, &proof[1..]).is_none());
        assert!(subtrees_left_of(9, 9, &proof).is_none());
        let err = run_proofs(5, &all[5..], &[[0; 32]]).unwrap_err();
        assert!(err.contains("needs 2 subtree hashes"), "{err}");
        // Wrong hashes make another tree, not an error: the caller compares.
        let (root, _) = run_proofs(5, &all[5..], &[[0; 32], [1; 32]]).unwrap();
        assert_ne!(root, mth(&all));
        assert_eq!(run_root(5, &all[5..], &[[0; 32], [1; 32]]), Ok(root));
        assert!(run_root(5, &all[5..], &[[0; 32]]).unwrap_err().contains("needs 2 subtree hashes"));
    }
}
