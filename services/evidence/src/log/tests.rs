use ed25519_dalek::SigningKey;

use super::*;

/// RFC 6962's reference leaves (as in Certificate Transparency's and Go's
/// `sumdb/tlog` tests) and the roots of their trees of size 1 to 8.
const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(s: &str) -> Hash {
    Hash(hex::decode(s).unwrap().try_into().unwrap())
}

fn hexes(p: &[Hash]) -> Vec<String> {
    p.iter().map(|h| hex::encode(h.0)).collect()
}

fn reference() -> Log {
    let mut log = Log::default();
    for l in LEAVES {
        log.append_leaf(tlog_tiles::record_hash(&hex::decode(l).unwrap())).unwrap();
    }
    log
}

#[test]
fn roots_are_rfc_6962s() {
    let log = reference();
    assert_eq!(log.root(0).unwrap(), h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    for (n, root) in ROOTS.iter().enumerate() {
        assert_eq!(log.root(n as u64 + 1).unwrap(), h(root), "size {}", n + 1);
    }
    assert!(log.root(9).is_err(), "beyond the log");
}

#[test]
fn a_run_of_records_gets_the_proofs_each_would_get_alone() {
    // Every run `first..size` of logs up to 70 records: the root and each
    // record's proof are the tree's (`Log::root`, `Log::inclusion`).
    let mut log = Log::default();
    for i in 0..70u32 {
        log.append_leaf(tlog_tiles::record_hash(&i.to_le_bytes())).unwrap();
        let size = log.size();
        for first in 0..size {
            let (root, proofs) = log.run_inclusion(first).unwrap();
            assert_eq!(root, log.root(size).unwrap(), "records {first}..{size}");
            assert_eq!(proofs.len() as u64, size - first);
            for (at, proof) in (first..).zip(&proofs) {
                assert_eq!(*proof, log.inclusion(at, size).unwrap(), "record {at} of {first}..{size}");
            }
        }
    }
    assert!(log.run_inclusion(71).is_err(), "beyond the log");
}

#[test]
fn a_runs_proofs_as_text_are_each_proofs_own() {
    // Text shared between neighbours is the text of the hash it stands
    // for: every run of logs up to 40 records, and proofs that share no
    // hash at all (the previous proof's text must not leak into the next).
    let mut log = Log::default();
    for i in 0..40u32 {
        log.append_leaf(tlog_tiles::record_hash(&i.to_le_bytes())).unwrap();
        for first in 0..log.size() {
            let (_, proofs) = log.run_inclusion(first).unwrap();
            let alone: Vec<Vec<String>> = proofs.iter().map(|p| encode_proof(p)).collect();
            assert_eq!(encode_proofs(&proofs), alone, "records {first}..{}", log.size());
        }
    }
    let unrelated = vec![vec![Hash([1; 32]), Hash([2; 32])], vec![Hash([3; 32]), Hash([2; 32])], vec![Hash([2; 32])]];
    let alone: Vec<Vec<String>> = unrelated.iter().map(|p| encode_proof(p)).collect();
    assert_eq!(encode_proofs(&unrelated), alone);
}

#[test]
fn inclusion_proofs_are_rfc_6962s_and_verify() {
    let log = reference();
    // (1-based leaf, tree size, audit path) from RFC 6962's reference tests.
    let vectors: [(u64, u64, &[&str]); 4] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (3, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            2,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (leaf, size, path) in vectors {
        let index = leaf - 1;
        let proof = log.inclusion(index, size).unwrap();
        assert_eq!(hexes(&proof), path, "leaf {leaf} of {size}");
        let l = tlog_tiles::record_hash(&hex::decode(LEAVES[index as usize]).unwrap());
        check_inclusion(&proof, size, log.root(size).unwrap(), index, l).unwrap();
        // Another leaf, another index, another root: refused.
        let other = tlog_tiles::record_hash(b"other");
        assert!(check_inclusion(&proof, size, log.root(size).unwrap(), index, other).is_err());
        if size > 1 {
            assert!(check_inclusion(&proof, size, log.root(size).unwrap(), (index + 1) % size, l).is_err());
        }
        assert!(check_inclusion(&proof, size, h(ROOTS[0]), index, l).is_err() || size == 1);
        // The root computed from the record and its proof alone.
        assert_eq!(root_from_inclusion(&proof, size, index, l).unwrap(), log.root(size).unwrap());
        assert_ne!(root_from_inclusion(&proof, size, index, other).unwrap(), log.root(size).unwrap());
        assert!(root_from_inclusion(&proof, size, size, l).is_err(), "index beyond the tree");
        let mut longer = proof.clone();
        longer.push(other);
        assert!(root_from_inclusion(&longer, size, index, l).is_err(), "too long");
        if !proof.is_empty() {
            assert!(root_from_inclusion(&proof[1..], size, index, l).is_err(), "too short");
        }
    }
    // Every leaf of every tree up to 8: the computed root is the tree's.
    for size in 1..=8u64 {
        for index in 0..size {
            let l = tlog_tiles::record_hash(&hex::decode(LEAVES[index as usize]).unwrap());
            let proof = log.inclusion(index, size).unwrap();
            assert_eq!(
                root_from_inclusion(&proof, size, index, l).unwrap(),
                log.root(size).unwrap(),
                "{index} of {size}"
            );
        }
    }
}

#[test]
fn consistency_proofs_are_rfc_6962s_and_verify() {
    let log = reference();
    let vectors: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, path) in vectors {
        let proof = log.consistency(old, new).unwrap();
        assert_eq!(hexes(&proof), path, "{old} → {new}");
        check_consistency(&proof, new, log.root(new).unwrap(), old, log.root(old).unwrap()).unwrap();
        if old != new {
            // A rewritten history: the old root no longer fits.
            let err = check_consistency(&proof, new, log.root(new).unwrap(), old, h(ROOTS[7])).unwrap_err();
            assert!(matches!(err, LogError::Consistency { .. }), "{err}");
        }
    }
    // Every pair of sizes of a larger log.
    let mut big = Log::default();
    for i in 0..37u32 {
        big.append(&hex::encode(sha256(&i.to_be_bytes()))).unwrap();
    }
    for new in 1..=37 {
        for old in 1..=new {
            let p = big.consistency(old, new).unwrap();
            check_consistency(&p, new, big.root(new).unwrap(), old, big.root(old).unwrap()).unwrap();
        }
        for i in 0..new {
            let p = big.inclusion(i, new).unwrap();
            let l = leaf(&hex::encode(sha256(&(i as u32).to_be_bytes()))).unwrap();
            check_inclusion(&p, new, big.root(new).unwrap(), i, l).unwrap();
        }
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}

/// The signed-note format is Go's `sumdb/note`'s: its reference note,
/// signed by the key it names, verifies through the same crate.
#[test]
fn the_go_reference_note_verifies() {
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let msg = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    let verifier = StandardVerifier::new(vkey).unwrap();
    let note = Note::from_bytes(msg.as_bytes()).unwrap();
    let (ok, _) = note.verify(&VerifierList::new(vec![Box::new(verifier)])).unwrap();
    assert_eq!(ok.len(), 1);
    // Our key encoding agrees with Go's for the same name and key.
    let public = base64_decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
    let key = VerifyingKey::from_bytes(&public[1..].try_into().unwrap()).unwrap();
    assert_eq!(signed_note::new_ed25519_verifier_key("PeterNeumann", &key), vkey);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn checkpoints_are_c2sp_signed_notes_and_tampering_is_caught() {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let origin = "pci-scope-guard.example/evidence";
    let signer = CheckpointSigner::new(origin, &key).unwrap();
    let log = reference();
    let text = signer.sign(8, log.root(8).unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], origin);
    assert_eq!(lines[1], "8");
    assert_eq!(lines[2], base64_std(&h(ROOTS[7]).0));
    assert_eq!(lines[3], "", "a blank line before the signatures");
    assert!(lines[4].starts_with("\u{2014} pci-scope-guard.example/evidence "), "{text}");
    assert!(signer.verifier_key().starts_with("pci-scope-guard.example/evidence+"));
    let head = verify_checkpoint(&text, origin, &key.verifying_key()).unwrap();
    assert_eq!(head, TreeHead { size: 8, root: h(ROOTS[7]) });
    // Deterministic: the same tree head, the same bytes.
    assert_eq!(signer.sign(8, log.root(8).unwrap()).unwrap(), text);

    // Tampered size, root, signature; another key; another origin.
    let bad_size = text.replacen("\n8\n", "\n9\n", 1);
    assert!(verify_checkpoint(&bad_size, origin, &key.verifying_key()).is_err());
    let bad_root = text.replacen(lines[2], &base64_std(&h(ROOTS[6]).0), 1);
    assert!(verify_checkpoint(&bad_root, origin, &key.verifying_key()).is_err());
    let sig = lines[4].rsplit(' ').next().unwrap();
    let mut flipped = base64_decode(sig);
    flipped[10] ^= 1;
    let bad_sig = text.replacen(sig, &base64_std(&flipped), 1);
    assert!(verify_checkpoint(&bad_sig, origin, &key.verifying_key()).is_err());
    let other = SigningKey::from_bytes(&[8u8; 32]);
    assert!(verify_checkpoint(&text, origin, &other.verifying_key()).is_err());
    assert!(verify_checkpoint(&text, "someone.else/log", &key.verifying_key()).is_err());
    // Not a valid origin for a key name.
    assert!(CheckpointSigner::new("with space", &key).is_err());

    // The signature records sealed by the log carry is the note's (after
    // its 4-byte key hash), over the note's text.
    let carried = base64_decode(&signer.signature(8, &log.root(8).unwrap()));
    assert_eq!(carried, base64_decode(sig)[4..].to_vec());
    assert_eq!(checkpoint_body(origin, 8, &log.root(8).unwrap()), text[..text.find("\n\n").unwrap() + 1]);
}

#[test]
fn proofs_travel_as_base64() {
    let log = reference();
    let proof = log.inclusion(5, 8).unwrap();
    let text = encode_proof(&proof);
    assert_eq!(decode_proof(&text).unwrap(), proof);
    assert!(decode_proof(&["not base64!".to_owned()]).is_err());
    assert!(leaf("abcd").is_err(), "a record hash is 32 bytes");
}
