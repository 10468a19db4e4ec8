//! Tamper tests: a bundle of chained records verifies; every single change
//! an attacker could make is detected and named. The bundle holds records
//! of both document schemas, as after an upgrade: v1 scope records signed
//! one by one, v2 reports sealed by the evidence service's log.

use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use psg_domain::time::DAY;
use psg_domain::{DecisionMethod, EvidenceType, PciScope, ScopeDecision, ScopeRule, ids};
use psg_evidence::bundle::{self, KeySource, Manifest};
use psg_evidence::log::CheckpointSigner;
use psg_evidence::record::{ChainHead, LogPlace, Report, Sealed, Sealer, VerifyError};
use psg_evidence::verify::{Entry, Keyring, Problem};
use serde_json::json;

fn decision(n: usize) -> ScopeDecision {
    let id = format!("i-{n:04}");
    ScopeDecision {
        decision_id: ids::stable_id("decision", &[&id]).to_string(),
        resource_id: id.clone(),
        resource_uuid: ids::resource_uuid(&id).to_string(),
        scope: PciScope::ConnectedCde,
        previous_scope: None,
        data_classification: None,
        segment: None,
        rule: ScopeRule::CdeConnection,
        justification: format!("ACCEPTed tcp/5432 flows with db-{n}"),
        decided_at: 1_767_225_600_000_000 + n as i64,
        decided_by: "automated-classifier".into(),
        decision_method: DecisionMethod::Automated,
        supersedes_id: None,
        dependency_resource_ids: vec![format!("db-{n}")],
        as_of: 1_767_225_600_000_000 + n as i64,
    }
}

fn entry(s: &Sealed) -> (Entry, Vec<u8>) {
    (Entry::from_message(&s.message), s.document().to_vec())
}

/// Five scope records (v1, signed one by one) and three segmentation
/// reports (v2, sealed by one checkpoint of a service log of their own),
/// the key rotated after the third scope record; returns the sealers (old,
/// new) too.
fn records() -> (Vec<(Entry, Vec<u8>)>, Sealer, Sealer) {
    let old = Sealer::new(SigningKey::from_bytes(&[1u8; 32]), "test");
    let new = Sealer::new(SigningKey::from_bytes(&[2u8; 32]), "test");
    let mut out = Vec::new();
    let mut head = ChainHead::default();
    for n in 1..=5 {
        let sealer = if n <= 3 { &old } else { &new };
        let s = sealer.scope_identification_v1("pci_scope_identification", &head, &decision(n)).expect("test setup");
        head = ChainHead { sequence: s.message.sequence, hash: Some(s.message.hash.clone()) };
        out.push(entry(&s));
    }
    let mut head = ChainHead::default();
    let origin = "service.example/evidence";
    let mut service_log = psg_evidence::log::Log::default();
    let mut reports = Vec::new();
    for day in 0..3 {
        let report = Report {
            evidence_type: EvidenceType::NetworkSegmentation,
            period_start: day * DAY,
            period_end: (day + 1) * DAY,
            trigger: "scheduled".into(),
            request_id: None,
            generated_at: (day + 1) * DAY,
            summary: json!({"violations": day}),
            content: json!({"accepted": [], "rejected": [], "violations": []}),
        };
        let s = new.report(&head, &report, LogPlace { origin, index: service_log.size() }).expect("test setup");
        service_log.append(&s.message.hash).expect("test setup");
        head = ChainHead { sequence: s.message.sequence, hash: Some(s.message.hash.clone()) };
        reports.push(s);
    }
    let signer = new.checkpoint_signer(origin).expect("test setup");
    let root = service_log.root(3).expect("test setup");
    for (i, s) in reports.iter_mut().enumerate() {
        let proof = psg_evidence::log::encode_proof(&service_log.inclusion(i as u64, 3).expect("test setup"));
        s.seal(&signer.signature(3, &root), 3, proof);
        out.push(entry(s));
    }
    (out, old, new)
}

fn keyring(sealers: &[&Sealer]) -> Keyring {
    let mut k = Keyring::new();
    for s in sealers {
        k.add(s.verifying_key());
    }
    k
}

fn fresh_bundle(dir: &Path) -> Manifest {
    let (records, old, new) = records();
    bundle::write(dir, "from", "to", records, &keyring(&[&old, &new]), "now", bundle::BundleLog::None)
        .expect("test setup")
}

fn problems(dir: &Path) -> Vec<Problem> {
    let (_, outcome, _) = bundle::verify_dir(dir, None).expect("test setup");
    outcome.failures.into_iter().map(|f| f.problem).collect()
}

fn rewrite_manifest(dir: &Path, edit: impl FnOnce(&mut Manifest)) {
    let path = dir.join("manifest.json");
    let mut m: Manifest = serde_json::from_slice(&std::fs::read(&path).expect("test setup")).expect("test setup");
    edit(&mut m);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).expect("test setup")).expect("test setup");
}

#[test]
fn an_untouched_bundle_verifies_across_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_bundle(dir.path());
    assert_eq!(m.records.len(), 8);
    assert_eq!(m.keys.len(), 2);
    let (_, outcome, source) = bundle::verify_dir(dir.path(), None).unwrap();
    assert!(outcome.ok(), "{:?}", outcome.failures);
    assert_eq!(outcome.verified.len(), 8);
    assert_eq!(source, KeySource::Bundle);
    assert_eq!(outcome.chains["pci_scope_identification"], (1, 5, None));
    assert_eq!(outcome.chains["network_segmentation_validation"], (1, 3, None));

    // Bundles written before the log sealed records (format v1) are read;
    // a format this version does not know is refused, not guessed at.
    assert_eq!(m.format, bundle::BUNDLE_FORMAT);
    rewrite_manifest(dir.path(), |m| m.format = "pci-scope-guard/evidence-bundle/v1".into());
    assert!(bundle::verify_dir(dir.path(), None).unwrap().1.ok());
    rewrite_manifest(dir.path(), |m| m.format = "pci-scope-guard/evidence-bundle/v9".into());
    let err = bundle::verify_dir(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("format pci-scope-guard/evidence-bundle/v9 is not one this version reads"), "{err}");
}

#[test]
fn flipping_any_byte_of_a_document_is_detected() {
    let (records, old, new) = records();
    let keys = keyring(&[&old, &new]);
    // Every byte of every document, one at a time, each record on its own
    // (in memory: the bundle round trip is covered below).
    for (entry, original) in &records {
        let one = std::slice::from_ref(entry);
        let clean = psg_evidence::verify::verify_entries(one, |_| Ok(Some(original.clone())), &keys);
        assert!(clean.ok(), "{:?}", clean.failures);
        for i in 0..original.len() {
            let mut doc = original.clone();
            doc[i] ^= 0x01;
            let outcome = psg_evidence::verify::verify_entries(one, |_| Ok(Some(doc.clone())), &keys);
            let p: Vec<&Problem> = outcome.failures.iter().map(|f| &f.problem).collect();
            assert_eq!(p.len(), 1, "{} byte {i}: {p:?}", entry.chain);
            assert!(
                matches!(p[0], Problem::Record(VerifyError::Hash { .. } | VerifyError::NotCanonical)),
                "byte {i}: {p:?}"
            );
        }
    }
    // Through a bundle on disk.
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_bundle(dir.path());
    let path = dir.path().join(&m.records[2].file);
    let mut doc = std::fs::read(&path).unwrap();
    doc[40] ^= 0x01;
    std::fs::write(&path, &doc).unwrap();
    let p = problems(dir.path());
    assert!(matches!(&p[..], [Problem::Record(VerifyError::Hash { .. } | VerifyError::NotCanonical)]), "{p:?}");
}

fn flip_signature_bit(e: &mut Entry) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut sig = b64.decode(&e.signature).expect("test setup");
    sig[10] ^= 0x80;
    e.signature = b64.encode(sig);
}

#[test]
fn a_changed_hash_or_signature_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| {
        let h = &mut m.records[1].hash;
        let c = if h.starts_with('0') { "1" } else { "0" };
        h.replace_range(0..1, c);
    });
    let p = problems(dir.path());
    assert!(matches!(p[0], Problem::Record(VerifyError::Hash { .. })), "{p:?}");
    // The next record names the true hash: the link breaks too.
    assert!(p.iter().any(|x| matches!(x, Problem::BrokenLink { .. })), "{p:?}");

    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| flip_signature_bit(&mut m.records[4]));
    let p = problems(dir.path());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(matches!(p[0], Problem::Record(VerifyError::Signature(_))), "{p:?}");

    // A v2 record: its checkpoint signature, or its proof, changed.
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| flip_signature_bit(&mut m.records[6]));
    let p = problems(dir.path());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(matches!(p[0], Problem::Record(VerifyError::CheckpointSignature { size: 3, .. })), "{p:?}");
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| {
        let seal = m.records[5].seal.as_mut().unwrap();
        seal.proof[0] = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    });
    let p = problems(dir.path());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(matches!(p[0], Problem::Record(VerifyError::CheckpointSignature { .. })), "{p:?}");
    // Its proof removed: a v2 record does not verify without it.
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| m.records[7].seal = None);
    let p = problems(dir.path());
    assert_eq!(p, [Problem::Record(VerifyError::Unsealed)], "{p:?}");
}

#[test]
fn deleting_inserting_or_reordering_records_is_detected() {
    // Deleted: record 3 of the scope chain, manifest entry and file.
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_bundle(dir.path());
    std::fs::remove_file(dir.path().join(&m.records[2].file)).unwrap();
    rewrite_manifest(dir.path(), |m| {
        m.records.remove(2);
    });
    let p = problems(dir.path());
    assert!(p.contains(&Problem::Gap { from: 3, to: 3 }), "{p:?}");
    assert!(p.iter().any(|x| matches!(x, Problem::BrokenLink { .. })), "{p:?}");

    // Deleted document only.
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_bundle(dir.path());
    std::fs::remove_file(dir.path().join(&m.records[6].file)).unwrap();
    let p = problems(dir.path());
    assert!(matches!(&p[..], [Problem::MissingDocument(_)]), "{p:?}");

    // Inserted: a record signed by an attacker's key, spliced into the chain.
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    let attacker = Sealer::new(SigningKey::from_bytes(&[9u8; 32]), "attacker");
    rewrite_manifest(dir.path(), |m| {
        let prev = &m.records[1];
        let head = ChainHead { sequence: prev.sequence, hash: Some(prev.hash.clone()) };
        let forged = attacker.scope_identification_v1("pci_scope_identification", &head, &decision(99)).unwrap();
        let (mut e, doc) = entry(&forged);
        e.file = "documents/pci_scope_identification/forged.json".into();
        std::fs::write(dir.path().join(&e.file), doc).unwrap();
        m.records.insert(2, e);
    });
    let p = problems(dir.path());
    assert!(p.iter().any(|x| matches!(x, Problem::UnknownKey(_))), "{p:?}");
    assert!(p.iter().any(|x| matches!(x, Problem::OutOfOrder { .. })), "{p:?}");

    // Inserted: a document nobody lists.
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    std::fs::write(dir.path().join("documents/pci_scope_identification/000000000099.json"), b"{}").unwrap();
    let p = problems(dir.path());
    assert!(matches!(&p[..], [Problem::Unlisted(_)]), "{p:?}");
    // Nested as the bundle's own documents are, too, and named by its chain.
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    let extra = bundle::document_file("pci_scope_identification", 1_234_567);
    assert_eq!(extra, "documents/pci_scope_identification/000001/234/000001234567.json");
    std::fs::create_dir_all(dir.path().join(&extra).parent().unwrap()).unwrap();
    std::fs::write(dir.path().join(&extra), b"{}").unwrap();
    let (_, outcome, _) = bundle::verify_dir(dir.path(), None).unwrap();
    assert!(
        outcome
            .failures
            .iter()
            .any(|f| f.chain == "pci_scope_identification" && f.problem == Problem::Unlisted(extra.clone())),
        "{:?}",
        outcome.failures
    );

    // Reordered: two records swap places in the manifest.
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| m.records.swap(1, 2));
    let p = problems(dir.path());
    assert!(p.iter().any(|x| matches!(x, Problem::OutOfOrder { after: 3, found: 2 })), "{p:?}");

    // Reordered: two documents swap files (the manifest untouched).
    let dir = tempfile::tempdir().unwrap();
    let m = fresh_bundle(dir.path());
    let (a, b) = (dir.path().join(&m.records[5].file), dir.path().join(&m.records[6].file));
    let (da, db) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, db).unwrap();
    std::fs::write(&b, da).unwrap();
    let p = problems(dir.path());
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|x| matches!(x, Problem::Record(VerifyError::Hash { .. }))), "{p:?}");
}

#[test]
fn verifying_with_the_wrong_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    fresh_bundle(dir.path());
    let (_, _, new) = records();
    // Trusting only the new key: the three records signed before the rotation fail.
    let (_, outcome, source) = bundle::verify_dir(dir.path(), Some(&keyring(&[&new]))).unwrap();
    assert_eq!(source, KeySource::Trusted);
    assert_eq!(outcome.failures.len(), 3, "{:?}", outcome.failures);
    assert!(outcome.failures.iter().all(|f| matches!(f.problem, Problem::UnknownKey(_))));
    assert_eq!(outcome.failures[0].sequence, Some(1));
    let shown = outcome.failures[0].to_string();
    assert!(shown.starts_with("pci_scope_identification #1 ("), "{shown}");
    assert!(shown.contains("not in the keyring"), "{shown}");

    // The bundle's key file replaced by another key: every signature fails.
    let m: Manifest = serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let other = keyring(&[&Sealer::new(SigningKey::from_bytes(&[3u8; 32]), "x")]);
    let other_dir = tempfile::tempdir().unwrap();
    bundle::write(&other_dir.path().join("b"), "f", "t", Vec::new(), &other, "now", bundle::BundleLog::None).unwrap();
    let other_pub = std::fs::read_dir(other_dir.path().join("b/keys")).unwrap().next().unwrap().unwrap().path();
    for k in &m.keys {
        std::fs::copy(&other_pub, dir.path().join(k)).unwrap();
    }
    let p = problems(dir.path());
    assert_eq!(p.len(), 8, "{p:?}");
    assert!(p.iter().all(|x| matches!(x, Problem::UnknownKey(_))), "{p:?}");
}

/// A bundle with its evidence log: a checkpoint every 3 records (sizes 3,
/// 6 and 8), signed by the newer key.
fn logged_bundle(dir: &Path) -> Manifest {
    let (records, old, new) = records();
    let key = SigningKey::from_bytes(&[2u8; 32]);
    let signer = CheckpointSigner::new("test.example/evidence", &key).expect("test setup");
    let key_id = psg_evidence::keys::key_id(&new.verifying_key());
    let log = bundle::LogOptions { signer: &signer, key_id: &key_id, every: 3 };
    bundle::write(dir, "from", "to", records, &keyring(&[&old, &new]), "now", bundle::BundleLog::Sign(log))
        .expect("test setup")
}

fn log_problems(dir: &Path) -> Vec<String> {
    problems(dir)
        .into_iter()
        .filter_map(|p| match p {
            Problem::Log(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Issue 20: the bundle's evidence log verifies: checkpoints in the C2SP
/// format, every record's inclusion proof, the consistency proofs.
#[test]
fn a_bundle_with_its_evidence_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let m = logged_bundle(dir.path());
    let log = m.log.as_ref().expect("a log");
    let sizes: Vec<u64> = log.checkpoints.iter().map(|c| c.size).collect();
    assert_eq!(sizes, vec![3, 6, 8]);
    assert!(log.checkpoints[0].consistency.is_empty() && !log.checkpoints[1].consistency.is_empty());
    let indexes: Vec<Option<u64>> = m.records.iter().map(|e| e.log_index).collect();
    assert_eq!(indexes, (0..8).map(Some).collect::<Vec<_>>());
    assert_eq!(m.records[4].inclusion.as_ref().unwrap().checkpoint, 6, "the first checkpoint covering it");
    // A v2 record keeps its proof in the service's log beside the bundle's.
    assert_eq!(m.records[4].seal, None, "v1: signed on its own");
    assert_eq!(m.records[6].inclusion.as_ref().unwrap().checkpoint, 8);
    assert_eq!(m.records[6].seal.as_ref().unwrap().checkpoint, 3, "sealed by the service's checkpoint of 3");
    let text = std::fs::read_to_string(dir.path().join(&log.checkpoints[2].file)).unwrap();
    assert!(text.starts_with("test.example/evidence\n8\n"), "{text}");
    let (_, outcome, _) = bundle::verify_dir(dir.path(), None).unwrap();
    assert!(outcome.ok(), "{:?}", outcome.failures);
}

#[test]
fn a_record_removed_from_a_logged_bundle_breaks_the_log() {
    let dir = tempfile::tempdir().unwrap();
    logged_bundle(dir.path());
    // Removed from the manifest (its document too): the chain shows a gap
    // only if it was not the last of its chain; the log always shows it.
    let removed = std::cell::RefCell::new(String::new());
    rewrite_manifest(dir.path(), |m| {
        let e = m.records.remove(7);
        *removed.borrow_mut() = e.file;
    });
    std::fs::remove_file(dir.path().join(removed.borrow().as_str())).unwrap();
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("the last checkpoint signs 8 records")), "{p:?}");
}

#[test]
fn reordered_log_indexes_and_a_forged_proof_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    logged_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| {
        m.records.swap(1, 2);
    });
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("log index Some(2), expected 1")), "{p:?}");
    assert!(p.iter().any(|s| s.contains("another root than the bundle's 8 records")), "{p:?}");

    let dir = tempfile::tempdir().unwrap();
    logged_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| {
        let inc = m.records[0].inclusion.as_mut().unwrap();
        inc.proof[0] = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    });
    let p = log_problems(dir.path());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("record 0 is not in the tree of size 3"), "{p:?}");
}

#[test]
fn a_changed_checkpoint_or_consistency_proof_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let m = logged_bundle(dir.path());
    // The middle checkpoint's size edited: its signature fails.
    let file = dir.path().join(&m.log.as_ref().unwrap().checkpoints[1].file);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\n6\n", "\n7\n", 1)).unwrap();
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("checkpoints/000000000006.txt") && s.contains("signature")), "{p:?}");

    let dir = tempfile::tempdir().unwrap();
    logged_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| {
        let cp = &mut m.log.as_mut().unwrap().checkpoints[2];
        cp.consistency.reverse();
    });
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("the tree of size 6 is not a prefix of the tree of size 8")), "{p:?}");

    // Verified with keys that do not include the checkpoints' key.
    let dir = tempfile::tempdir().unwrap();
    logged_bundle(dir.path());
    let (_, old, _) = records();
    let (_, outcome, _) = bundle::verify_dir(dir.path(), Some(&keyring(&[&old]))).unwrap();
    assert!(outcome.failures.iter().any(|f| matches!(&f.problem, Problem::Log(s) if s.contains("not in the keyring"))));
}

/// The service's log over all eight records, checkpointed after records 3,
/// 6 and 8 (its batches); the bundle is an excerpt: records 3..6 (log
/// indexes 3, 4, 5) with their stored proofs, the checkpoint that covers
/// them (6) and the newest (8).
fn excerpt_bundle(dir: &Path) -> Manifest {
    let (records, old, new) = records();
    let key = SigningKey::from_bytes(&[2u8; 32]);
    let signer = CheckpointSigner::new("test.example/evidence", &key).expect("test setup");
    let key_id = psg_evidence::keys::key_id(&new.verifying_key());
    let mut tree = psg_evidence::log::Log::default();
    for (e, _) in &records {
        tree.append(&e.hash).expect("test setup");
    }
    let checkpoint = |size: u64| {
        let root = tree.root(size).expect("test setup");
        let b64 = psg_evidence::log::encode_proof(&[root]).remove(0);
        (size, key_id.clone(), signer.sign(size, root).expect("test setup"), b64)
    };
    let leaves: Vec<String> = records.iter().map(|(e, _)| e.hash.clone()).collect();
    let stored = bundle::StoredLog::from_leaves("test.example/evidence", &leaves, vec![checkpoint(8), checkpoint(6)])
        .expect("test setup");
    let excerpt: Vec<(Entry, Vec<u8>)> = records
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (3..6).contains(i))
        .map(|(i, (mut e, doc))| {
            let proof = tree.inclusion(i as u64, 6).expect("test setup");
            e.log_index = Some(i as u64);
            e.inclusion =
                Some(psg_evidence::verify::Inclusion { checkpoint: 6, proof: psg_evidence::log::encode_proof(&proof) });
            (e, doc)
        })
        .collect();
    bundle::write(dir, "from", "to", excerpt, &keyring(&[&old, &new]), "now", bundle::BundleLog::Stored(stored))
        .expect("test setup")
}

/// Issue 20: an export of the service's log: its records keep their log
/// indexes and stored proofs, the bundle its stored checkpoints.
#[test]
fn an_excerpt_of_the_service_log_verifies_and_its_changes_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let m = excerpt_bundle(dir.path());
    let log = m.log.as_ref().unwrap();
    assert!(log.excerpt);
    assert_eq!(log.checkpoints.iter().map(|c| c.size).collect::<Vec<_>>(), [6, 8]);
    assert!(!log.checkpoints[1].consistency.is_empty(), "consistency from 6 to 8");
    let (_, outcome, _) = bundle::verify_dir(dir.path(), None).unwrap();
    assert!(outcome.ok(), "{:?}", outcome.failures);

    // A record's index changed: its proof no longer puts it there.
    let dir = tempfile::tempdir().unwrap();
    excerpt_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| m.records[1].log_index = Some(2));
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("log index 2 after 3")), "{p:?}");
    assert!(p.iter().any(|s| s.contains("record 2 is not in the tree of size 6")), "{p:?}");

    // The covering checkpoint replaced by another size: its signature fails.
    let dir = tempfile::tempdir().unwrap();
    let m = excerpt_bundle(dir.path());
    let file = dir.path().join(&m.log.as_ref().unwrap().checkpoints[0].file);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\n6\n", "\n5\n", 1)).unwrap();
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("signature")), "{p:?}");
    assert!(p.iter().any(|s| s.contains("names checkpoint 6")), "{p:?}");

    // A record outside the log pretending to be in the excerpt.
    let dir = tempfile::tempdir().unwrap();
    excerpt_bundle(dir.path());
    rewrite_manifest(dir.path(), |m| m.records[2].log_index = Some(9));
    let p = log_problems(dir.path());
    assert!(p.iter().any(|s| s.contains("beyond the newest checkpoint (8)")), "{p:?}");

    // Stored leaves that do not give a stored checkpoint's root: no export.
    let (records, _, new) = records();
    let key = SigningKey::from_bytes(&[2u8; 32]);
    let signer = CheckpointSigner::new("test.example/evidence", &key).unwrap();
    let mut leaves: Vec<String> = records.iter().map(|(e, _)| e.hash.clone()).collect();
    let mut tree = psg_evidence::log::Log::default();
    for l in &leaves {
        tree.append(l).unwrap();
    }
    let root = tree.root(8).unwrap();
    let cp = (
        8,
        psg_evidence::keys::key_id(&new.verifying_key()),
        signer.sign(8, root).unwrap(),
        psg_evidence::log::encode_proof(&[root]).remove(0),
    );
    leaves.swap(0, 1);
    let err = bundle::StoredLog::from_leaves("test.example/evidence", &leaves, vec![cp]).unwrap_err();
    assert!(err.to_string().contains("the stored log was changed"), "{err}");
}
