//! `pci-scope-guard evidence expire` on a backlog larger than the chunk it
//! works in (10,000 records): every expired record goes with its documents,
//! a segment that still holds a live record stays, and no segment is judged
//! half-read at a chunk's end.

use std::path::Path;
use std::process::{Command, Output};

use psg_evidence::record::segment_path;
use psg_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

/// Records in the table, sequences 1..=RECORDS of one chain.
const RECORDS: i64 = 25_000;
/// Records of one segment: 10,000 and 20,000 fall inside segments, so a
/// chunk that ended at 10,000 would split one.
const PER_SEGMENT: i64 = 1_500;
/// Records 1..=EXPIRED are past `expires_at`; the segment of 24,001-25,500
/// holds both kinds.
const EXPIRED: i64 = 24_500;
const CHAIN: &str = "pci_scope_identification";

/// Every segment: (first, last) sequence.
fn segments() -> Vec<(i64, i64)> {
    (0..(RECORDS + PER_SEGMENT - 1) / PER_SEGMENT).map(|k| (k * PER_SEGMENT + 1, (k + 1) * PER_SEGMENT)).collect()
}

fn expire(db: &TestDb, store: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["evidence", "expire"]).args(args).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("PSG_") || k == "KAFKA_BROKERS" || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", &db.url).env("PSG_EVIDENCE__STORE_URL", store);
    let out = cmd.output().expect("run pci-scope-guard");
    assert!(
        out.status.success(),
        "evidence expire {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn jsonl_files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry")) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p.strip_prefix(root).expect("under the store").to_str().expect("utf-8").to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn a_backlog_of_several_chunks_goes_whole_and_a_segment_with_a_live_record_stays() {
    let db = TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 1).unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().canonicalize().unwrap();
    for (first, last) in segments() {
        let path = store.join(segment_path(CHAIN, first, last));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{}\n").unwrap();
    }
    // The rows as the service stores them: each names its segment and a
    // byte range in it (the documents' bytes do not matter to expire).
    let client = psg_store::pool(&db.url, 1).unwrap().get().await.unwrap();
    let base = format!("file://{}/", store.display());
    client
        .execute(
            "INSERT INTO evidence (id, scope_decision_id, evidence_type, data, hash, signature, signing_key_id,
                 storage_url, pci_requirement, generated_at, generated_by, expires_at, chain, sequence, prev_hash)
             SELECT gen_random_uuid(), gen_random_uuid(), 'pci_scope_identification', '{}'::jsonb,
                    encode(sha256(s::text::bytea), 'hex'), 'sig', 'ed25519:test',
                    $1::text || $2::text || '/segments/' || substr(f, 1, 6) || '/' || substr(f, 7, 3) || '/'
                       || f || '-' || lpad(((s - 1) / $3::bigint * $3 + $3)::text, 12, '0') || '.jsonl#bytes=0-1',
                    '12.5.2', now() - interval '8 years', 'test',
                    CASE WHEN s <= $4::bigint THEN now() - interval '1 year' ELSE now() + interval '1 year' END,
                    $2::text, s, NULL
               FROM generate_series(1::bigint, $5::bigint) s,
                    LATERAL (SELECT lpad(((s - 1) / $3::bigint * $3 + 1)::text, 12, '0') AS f) x",
            &[&base, &CHAIN, &PER_SEGMENT, &EXPIRED, &RECORDS],
        )
        .await
        .unwrap();
    let all = jsonl_files(&store);
    assert_eq!(all.len(), segments().len());

    // A dry run lists every expired record and removes nothing.
    let out = String::from_utf8(expire(&db, &store, &["--dry-run"]).stdout).unwrap();
    assert_eq!(out.lines().filter(|l| l.starts_with(&format!("would remove {CHAIN} #"))).count() as i64, EXPIRED);
    assert!(out.contains(&format!("{EXPIRED} records past expires_at (dry run: nothing removed)")), "{out}");
    assert_eq!(jsonl_files(&store), all);

    let out = String::from_utf8(expire(&db, &store, &[]).stdout).unwrap();
    let removed: Vec<i64> = out
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("removing {CHAIN} #")))
        .map(|l| l.split_once(' ').unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(removed, (1..=EXPIRED).collect::<Vec<_>>(), "each expired record once, in sequence order");
    // One segment kept, the one with live records: a chunk that split a
    // segment would count that one as kept too.
    assert!(
        out.contains(&format!(
            "removed {EXPIRED} expired records and their documents (1 segments kept: they hold records not expired yet)"
        )),
        "{}",
        out.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
    let left: i64 = client.query_one("SELECT count(*) FROM evidence", &[]).await.unwrap().get(0);
    assert_eq!(left, RECORDS - EXPIRED);
    let last = *segments().last().unwrap();
    assert_eq!(
        jsonl_files(&store),
        vec![segment_path(CHAIN, last.0, last.1)],
        "only the segment with live records stays"
    );
}
