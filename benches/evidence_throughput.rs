//! Evidence throughput: `cargo bench --bench evidence_throughput` seals
//! (canonical JSON, SHA-256, chain link, log leaf; one Ed25519 checkpoint
//! signature per batch, which every record of the batch carries),
//! stores (a local directory segment of the batch's documents + `evidence`
//! rows in PostgreSQL, written side by side) and encodes for the topic
//! `EVIDENCE_RECORDS` (default 50,000) scope-identification records through
//! the evidence service's processor, in batches of 1,000 as the Kafka loop
//! hands them over (`kafka.batch-size`; `EVIDENCE_BATCH` for another size),
//! and prints records/s; then the same with the documents
//! in memory (no disk flush), sealing alone, the evidence log alone, and
//! the database step alone (rows with their leaves); `EVIDENCE_STEPS` picks
//! some of them (`local`, `memory`, `parts`: the steps alone).
//! `EVIDENCE_PREFILL` rows already in the table (default 0) give the
//! figure at a size its indexes no longer fit in memory. The local
//! directory is a temporary one: `TMPDIR` picks the filesystem measured
//! (an ext4 without a journal, for one, checks every inode it allocates
//! for a recent deletion, which costs more the more files were deleted
//! lately). Needs PostgreSQL (`TEST_DATABASE_ADMIN_URL`, default the
//! local server).
//!
//! The service steps also print who used the CPU, per record: this
//! process's processing thread and tokio workers, and the PostgreSQL
//! server's processes (the service's connections, WAL writer,
//! checkpointer, …), read from Linux's `/proc`. With PostgreSQL on the
//! same machine, that is the budget a target shares: 50,000 records/s on
//! 2 cores leaves 40 µs of CPU per record for all of them. And they print
//! the machine's speed just before and just after the timed run: Ed25519
//! signatures per second of fixed work on one thread. The work does not
//! change with this project's code, so the figure moves only with the
//! machine (a shared host's speed has been seen to drift by half from one
//! minute to the next): it says which phase a records/s figure was taken in.

use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use psg_config::Config;
use psg_domain::rows::{ResourceRow, ScopeDecisionRow};
use psg_domain::time::from_micros;
use psg_domain::{
    CloudProvider, DecisionMethod, PciScope, Resource, ResourceType, ScopeDecision, ScopeRule, SourceRef, ids,
};
use psg_evidence::Evidence;
use psg_evidence::documents::Documents;
use psg_evidence::record::{ChainHead, LogPlace, Sealer};
use psg_kafka_runtime::{InMessage, InputKind, Processor};
use psg_testkit::TestDb;

/// The allocator the binary runs with (`src/main.rs`), so that the figures
/// are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per batch: `EVIDENCE_BATCH`, else `kafka.batch-size`'s default.
fn batch_size() -> usize {
    std::env::var("EVIDENCE_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}

fn decision(i: usize) -> ScopeDecision {
    let rid = format!("i-{i:07}");
    ScopeDecision {
        decision_id: ids::stable_id("decision", &[&rid, "1"]).to_string(),
        resource_id: rid.clone(),
        resource_uuid: ids::resource_uuid(&rid).to_string(),
        scope: PciScope::ConnectedCde,
        previous_scope: Some(PciScope::PendingReview),
        data_classification: None,
        segment: None,
        rule: ScopeRule::CdeConnection,
        justification: format!(
            "ACCEPTed flows with CDE resource db-{} (to TCP/5432, first seen 2026-01-01T00:10:00Z, last seen 2026-01-01T00:11:00Z)",
            i % 50
        ),
        decided_at: 1_767_226_200_000_000 + i as i64,
        decided_by: "automated-classifier".into(),
        decision_method: DecisionMethod::Automated,
        supersedes_id: None,
        dependency_resource_ids: vec![format!("db-{}", i % 50)],
        as_of: 1_767_226_200_000_000 + i as i64,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("evidence_throughput: bench");
        return;
    }
    let n: usize = std::env::var("EVIDENCE_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let batch = batch_size();
    let metrics = psg_telemetry::metrics_handle().expect("metrics recorder");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let decisions: Vec<ScopeDecision> = (0..n).map(decision).collect();
        let messages = messages(&decisions);
        let key = SigningKey::from_bytes(&[42u8; 32]);
        if wants("local") {
        let (db, store) = database_with(&decisions).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let documents = Documents::open(dir.path().to_str().expect("utf-8")).expect("documents");
        let run = service(&store, &db.name, documents, &key, &messages, &metrics).await;
        println!("evidence_throughput: process (dedup check, seal, log, encode) {:.2} s, persist (waiting for a batch's documents and rows, written while the next batch is processed) {:.2} s", run.process, run.persist);
        println!("evidence_throughput: {}", run.inside);
        println!("evidence_throughput: {}", run.cpu);
        println!("evidence_throughput: {}", run.machine);
        println!(
            "evidence_throughput: {n} records signed, chained, stored (local directory + PostgreSQL) in {:.2} s: {:.0} records/s",
            run.secs,
            n as f64 / run.secs
        );
        }
        // The same with the documents in memory: what the processor and
        // the database sustain when the document store is not the limit
        // (S3 takes a batch's segments 32 at a time; a local disk flushes
        // a segment per batch and chain).
        if wants("memory") {
        let (db2, store2) = database_with(&decisions).await;
        let run =
            service(&store2, &db2.name, Documents::open("memory:").expect("memory"), &key, &messages, &metrics).await;
        println!(
            "evidence_throughput: documents in memory (no disk flush): {n} records in {:.2} s (process {:.2} s, persist {:.2} s): {:.0} records/s",
            run.secs,
            run.process,
            run.persist,
            n as f64 / run.secs
        );
        println!("evidence_throughput: {}", run.inside);
        println!("evidence_throughput: {}", run.cpu);
        println!("evidence_throughput: {}", run.machine);
        }
        if !wants("parts") {
            return;
        }
        let sealer = Sealer::new(key.clone(), "bench");
        // v1, as before the log: every record signed on its own.
        let started = Instant::now();
        let mut head = ChainHead::default();
        for d in &decisions {
            let s = sealer.scope_identification_v1("bench", &head, d).expect("seal");
            head = ChainHead { sequence: s.message.sequence, hash: Some(s.message.hash) };
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "evidence_throughput: sealing v1 records (JCS + SHA-256 + an Ed25519 signature each): {:.0} records/s",
            n as f64 / secs
        );
        // v2, as the service seals: chained, appended to the log, and
        // sealed by one checkpoint per batch (its signature and each
        // record's inclusion proof).
        let signer = sealer.checkpoint_signer("bench.example/evidence").expect("signer");
        let started = Instant::now();
        let mut head = ChainHead::default();
        let mut log = psg_evidence::log::Log::default();
        let mut hashes = Vec::with_capacity(decisions.len());
        let mut rows = Vec::with_capacity(decisions.len());
        for chunk in decisions.chunks(batch) {
            let mut batch = Vec::with_capacity(chunk.len());
            for d in chunk {
                let place = LogPlace { origin: signer.origin(), index: log.size() };
                let s = sealer.scope_identification("bench", &head, d, place).expect("seal");
                log.append(&s.message.hash).expect("append");
                head = ChainHead { sequence: s.message.sequence, hash: Some(s.message.hash.clone()) };
                batch.push(s);
            }
            let size = log.size();
            let root = log.root(size).expect("root");
            let signature = signer.signature(size, &root);
            let tree_size = i64::try_from(size).expect("size");
            // The batch's proofs together, as text shared between
            // neighbours (`Evidence::checkpoint`'s two calls).
            let first = size - batch.len() as u64;
            let (_, proofs) = log.run_inclusion(first).expect("proofs");
            for (s, proof) in batch.iter_mut().zip(psg_evidence::log::encode_proofs(&proofs)) {
                s.seal(&signature, tree_size, proof);
            }
            for s in batch {
                hashes.push(s.message.hash.clone());
                rows.push(s.into_row());
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "evidence_throughput: sealing v2 records in batches of {} (JCS + SHA-256 + log leaf and inclusion proof; one checkpoint signature per batch): {:.0} records/s",
            batch,
            n as f64 / secs
        );

        // The evidence log over them: appended, one signed checkpoint, and
        // every record's inclusion proof against it (what a bundle holds).
        let started = Instant::now();
        let mut log = psg_evidence::log::Log::default();
        for h in &hashes {
            log.append(h).expect("append");
        }
        let appended = started.elapsed().as_secs_f64();
        let signer = psg_evidence::log::CheckpointSigner::new("bench.example/evidence", &key).expect("signer");
        let size = log.size();
        let checkpoint = signer.sign(size, log.root(size).expect("root")).expect("checkpoint");
        for i in 0..size {
            log.inclusion(i, size).expect("proof");
        }
        let total = started.elapsed().as_secs_f64();
        println!(
            "evidence_throughput: evidence log: append {:.0} records/s; with one checkpoint ({} bytes) and every record's inclusion proof {:.0} records/s",
            n as f64 / appended,
            checkpoint.len(),
            n as f64 / total
        );

        // The database step alone: the same records' rows and leaves (with
        // their proofs against that checkpoint) appended to an empty
        // database in batches of 1,000, as the service writes them.
        let fresh = TestDb::create().await;
        psg_store::migrate(&psg_store::pool(&fresh.url, 1).expect("pool")).await.expect("migrate");
        let fresh_store = psg_store::Store::connect(&fresh.url, 2).await.expect("store");
        let size_i64 = i64::try_from(size).expect("size");
        let leaves: Vec<psg_domain::rows::EvidenceLogRow> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| psg_domain::rows::EvidenceLogRow {
                log_index: i as i64,
                evidence_id: r.id,
                record_hash: r.hash.clone(),
                checkpoint_size: size_i64,
                inclusion: psg_evidence::log::encode_proof(&log.inclusion(i as u64, size).expect("proof")),
            })
            .collect();
        for r in &mut rows {
            r.scope_decision_id = None;
        }
        let started = Instant::now();
        for (r, l) in rows.chunks(batch).zip(leaves.chunks(batch)) {
            psg_store::evidence::append(&fresh_store, r, l, &[]).await.expect("append rows and leaves");
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "evidence_throughput: database alone, batches of {}: evidence rows with their evidence log leaves and proofs, {secs:.2} s: {:.0} records/s",
            batch,
            n as f64 / secs
        );
    });
}

/// Whether `step` is to run: `EVIDENCE_STEPS` (comma-separated: `local`,
/// `memory`, `parts`), else every step.
fn wants(step: &str) -> bool {
    std::env::var("EVIDENCE_STEPS").map_or(true, |v| v.split(',').any(|s| s.trim() == step))
}

/// A migrated database holding the resources and decisions the records
/// point at.
async fn database_with(decisions: &[ScopeDecision]) -> (TestDb, psg_store::Store) {
    let db = TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 1).expect("pool")).await.expect("migrate");
    let store = psg_store::Store::connect(&db.url, 4).await.expect("store");

    // The decisions the records point at (untimed).
    let src = SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 };
    for chunk in decisions.chunks(5_000) {
        let resources: Vec<ResourceRow> = chunk
            .iter()
            .map(|d| {
                ResourceRow::from_message(&Resource::new(
                    d.resource_id.clone(),
                    CloudProvider::Aws,
                    ResourceType::Ec2Instance,
                    0,
                    src.clone(),
                ))
            })
            .collect();
        psg_store::resources::ensure_resources(&store, &resources).await.expect("resources");
        let rows: Vec<ScopeDecisionRow> = chunk
            .iter()
            .map(|d| ScopeDecisionRow {
                id: d.decision_id.parse().expect("uuid"),
                resource_id: ids::resource_uuid(&d.resource_id),
                scope: d.scope,
                data_classification: None,
                segment: None,
                justification: d.justification.clone(),
                confidence_score: None,
                decided_at: from_micros(d.decided_at),
                decided_by: d.decided_by.clone(),
                decision_method: d.decision_method,
                is_current: true,
                superseded_by_id: None,
                dependency_resource_ids: serde_json::json!(d.dependency_resource_ids),
            })
            .collect();
        insert_decisions(&store, &rows).await;
    }
    prefill(&store, prefill_rows()).await;
    (db, store)
}

/// Stores `rows` as new current decisions, one statement for them all:
/// `write_decisions` checks, retires and links one decision at a time (three
/// round trips each), which made the setup take minutes.
async fn insert_decisions(store: &psg_store::Store, rows: &[ScopeDecisionRow]) {
    let client = store.client().await.expect("client");
    let text = |f: fn(&ScopeDecisionRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|d| d.id).collect();
    let resources: Vec<uuid::Uuid> = rows.iter().map(|d| d.resource_id).collect();
    let decided_at: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|d| d.decided_at).collect();
    let dependencies: Vec<&serde_json::Value> = rows.iter().map(|d| &d.dependency_resource_ids).collect();
    client
        .execute(
            "INSERT INTO scope_decisions (id, resource_id, scope, justification, decided_at, decided_by,
                                          decision_method, is_current, dependency_resource_ids)
             SELECT id, rid, scope::pci_scope, j, at, who, how, true, deps
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                           $7::text[], $8::jsonb[]) AS t(id, rid, scope, j, at, who, how, deps)",
            &[
                &ids,
                &resources,
                &text(|d| d.scope.as_str()),
                &text(|d| d.justification.as_str()),
                &decided_at,
                &text(|d| d.decided_by.as_str()),
                &text(|d| d.decision_method.as_str()),
                &dependencies,
            ],
        )
        .await
        .expect("decisions");
}

/// Evidence rows already stored before the timed run: `EVIDENCE_PREFILL`
/// (default 0). A table of millions of rows is what a service meets after
/// months: its random-key indexes (`hash`, `scope_decision_id`) outgrow the
/// buffer cache.
fn prefill_rows() -> u64 {
    std::env::var("EVIDENCE_PREFILL").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Stores `rows` evidence rows of a chain of their own, made in SQL (fast),
/// the size of the service's and keyed as the service keys them: ids in time
/// order ([`ids::time_ordered_id`]'s layout) from 2025 on, before the
/// bench's decisions; hashes and decision ids random. Then a checkpoint, so
/// that the run starts as one does after each: every page it changes first
/// goes to the WAL whole.
async fn prefill(store: &psg_store::Store, rows: u64) {
    if rows == 0 {
        return;
    }
    let started = Instant::now();
    let client = store.client().await.expect("client");
    let rows = i64::try_from(rows).expect("rows");
    for first in (0..rows).step_by(500_000) {
        let last = (first + 500_000).min(rows) - 1;
        client
            .execute(
                "INSERT INTO evidence (id, scope_decision_id, evidence_type, data, hash, signature,
                     signing_key_id, storage_url, pci_requirement, generated_at, generated_by, expires_at,
                     chain, sequence, prev_hash)
                 SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0')
                         || '8' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                        gen_random_uuid(), 'pci_scope_identification',
                        jsonb_build_object('decision_id', gen_random_uuid(), 'resource_id', 'i-' || s,
                            'resource_uuid', gen_random_uuid(), 'rule', 'cde_connection', 'scope', 'connected_cde'),
                        h, repeat('A', 88), 'ed25519:prefill', 'memory:scope/' || s || '.json', '12.5.2', t,
                        'bench', t + interval '7 years', 'prefill', s, h
                   FROM generate_series($1::bigint, $2::bigint) s,
                        LATERAL (SELECT timestamptz '2025-01-01' + s * interval '10 ms' AS t,
                                        encode(sha256(('prefill' || s)::bytea), 'hex') AS h) x",
                &[&first, &last],
            )
            .await
            .expect("prefill");
    }
    for sql in ["VACUUM ANALYZE evidence", "CHECKPOINT"] {
        client.batch_execute(sql).await.expect(sql);
    }
    println!(
        "evidence_throughput: {rows} evidence rows stored before the run ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

/// The decisions as the evidence service reads them.
fn messages(decisions: &[ScopeDecision]) -> Vec<InMessage> {
    decisions
        .iter()
        .enumerate()
        .map(|(i, d)| InMessage {
            kind: InputKind::Stream,
            topic: Arc::from("scope.decisions"),
            partition: 0,
            offset: i as i64,
            key: Some(d.resource_id.clone().into_bytes()),
            payload: Some(psg_avro_codec::encode(d).expect("encode")),
            headers: vec![],
            timestamp_ms: None,
        })
        .collect()
}

/// One run of the evidence service over `messages`, batch by batch.
struct Run {
    secs: f64,
    process: f64,
    persist: f64,
    /// Where the service's time went, from its own histograms.
    inside: String,
    /// Who used the CPU, per record.
    cpu: String,
    /// The machine's speed before and after ([`machine_speed`]).
    machine: String,
}

/// The machine's speed now: Ed25519 signatures per second on one thread,
/// the best of three rounds of 2,000 over a fixed message. Fixed work, so
/// that the figure moves only with the machine, not with this project's
/// code.
fn machine_speed(key: &SigningKey) -> f64 {
    const SIGNATURES: u32 = 2_000;
    let message = [7u8; 64];
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..SIGNATURES {
                std::hint::black_box(key.sign(std::hint::black_box(&message)));
            }
            f64::from(SIGNATURES) / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// The sum of the histogram `name` (with the labels `label`) in `rendered`,
/// the metrics recorder's text.
fn histogram_sum(rendered: &str, name: &str, label: &str) -> f64 {
    let prefix = format!("{name}_sum{label}");
    rendered
        .lines()
        .filter(|l| l.starts_with(&prefix) && l[prefix.len()..].starts_with(' '))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The service's histograms of interest, summed.
fn inside(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> [f64; 3] {
    let rendered = metrics.render();
    [
        histogram_sum(&rendered, "psg_evidence_dedup_seconds", ""),
        histogram_sum(&rendered, "psg_evidence_persist_seconds", "{step=\"documents\"}"),
        histogram_sum(&rendered, "psg_evidence_persist_seconds", "{step=\"database\"}"),
    ]
}

async fn service(
    store: &psg_store::Store,
    db_name: &str,
    documents: Documents,
    key: &SigningKey,
    messages: &[InMessage],
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
) -> Run {
    let before = inside(metrics);
    let size = batch_size();
    let sealer = Sealer::new(key.clone(), "bench");
    let mut evidence = Evidence::new(&Config::default(), Some(store.clone()), sealer, documents);
    evidence.restore().await.expect("restore");
    let speed_before = machine_speed(key);
    let cpu_before = cpu_by_role(db_name);
    let started = Instant::now();
    let mut made = 0;
    let (mut process, mut persist) = (0.0, 0.0);
    // As the runner drives a pipelined processor: batches N+1 ..= N+lag are
    // processed before batch N is persisted (N's write runs meanwhile).
    // The batch before the one just processed is acknowledged then (its
    // outputs were delivered meanwhile), and its commit starts.
    let lag = <Evidence as Processor>::PERSIST_LAG;
    let mut behind = 0;
    for batch in messages.chunks(size) {
        let t = Instant::now();
        let out = evidence.process(batch).await.expect("process");
        process += t.elapsed().as_secs_f64();
        // Records, not the batch's checkpoint of the evidence log.
        made += out.records.iter().filter(|r| r.topic == "evidence.records").count();
        if behind > 0 {
            evidence.acknowledged();
        }
        behind += 1;
        if behind > lag {
            let t = Instant::now();
            evidence.persist().await.expect("persist");
            persist += t.elapsed().as_secs_f64();
            behind -= 1;
        }
    }
    let t = Instant::now();
    evidence.acknowledged();
    for _ in 0..behind {
        evidence.persist().await.expect("persist");
    }
    persist += t.elapsed().as_secs_f64();
    assert_eq!(made, messages.len(), "a record per decision");
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_per_record(&cpu_before, &cpu_by_role(db_name), messages.len(), secs);
    let machine = format!(
        "machine speed (Ed25519 signatures/s of fixed work on one thread, best of 3 × 2,000): {speed_before:.0} just before the run, {:.0} just after",
        machine_speed(key)
    );
    let after = inside(metrics);
    let [dedup, documents, database] = [0, 1, 2].map(|i| after[i] - before[i]);
    let batches = messages.len().div_ceil(size) as f64;
    let inside = format!(
        "inside: waiting for the duplicate check (a database round trip, run while the batch is sealed) \
         {dedup:.2} s of the processing; per batch, its \
         documents written {:.1} ms and its database write {:.1} ms (started when the batch is processed, \
         committed once acknowledged, before its persist; batches overlap)",
        documents / batches * 1e3,
        database / batches * 1e3
    );
    Run { secs, process, persist, inside, cpu, machine }
}

/// CPU time used so far, in clock ticks, by role: this process's threads
/// (the processing thread, which runs the loop above, and tokio's
/// workers, which write the batches) and the processes of the PostgreSQL
/// server holding `db` (its connections to `db`, its other connections,
/// and its own processes by name: WAL writer, checkpointer, …). Read from
/// Linux's `/proc`; empty elsewhere.
fn cpu_by_role(db: &str) -> std::collections::BTreeMap<String, u64> {
    use psg_testkit::procstat::{processes_named, thread_cpu_ticks};
    let mut roles = std::collections::BTreeMap::new();
    for (name, ticks) in thread_cpu_ticks(std::process::id()) {
        let role = if name.starts_with("tokio") { "bench: tokio workers" } else { "bench: processing thread" };
        *roles.entry(role.to_owned()).or_default() += ticks;
    }
    let postgres = processes_named("postgres");
    // A backend's title: "postgres: [cluster: ]user database host(port) command".
    let connection = |p: &psg_testkit::procstat::Process| p.cmdline.contains('(') || p.cmdline.contains("[local]");
    let ours = |p: &psg_testkit::procstat::Process| connection(p) && p.cmdline.split(' ').any(|w| w == db);
    let Some(server) = postgres.iter().find(|p| ours(p)).map(|p| p.ppid) else { return roles };
    for p in postgres.iter().filter(|p| p.ppid == server || p.pid == server) {
        let role = if ours(p) {
            "PostgreSQL: the service's connections".to_owned()
        } else if connection(p) {
            "PostgreSQL: other connections".to_owned()
        } else if p.pid == server {
            "PostgreSQL: postmaster".to_owned()
        } else {
            format!("PostgreSQL: {}", p.cmdline.rsplit(": ").next().unwrap_or(&p.cmdline).trim())
        };
        *roles.entry(role).or_default() += p.ticks;
    }
    roles
}

/// What each role of [`cpu_by_role`] used between `before` and `after`,
/// per record (µs), against what the machine's cores gave in `secs`.
fn cpu_per_record(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    records: usize,
    secs: f64,
) -> String {
    if after.is_empty() {
        return "CPU by role: not available (no /proc)".to_owned();
    }
    let per_tick = 1e6 / psg_testkit::procstat::clock_ticks_per_sec() / records as f64;
    let mut used = 0.0;
    let mut parts = Vec::new();
    for (role, ticks) in after {
        let us = ticks.saturating_sub(before.get(role).copied().unwrap_or(0)) as f64 * per_tick;
        if us >= 0.05 {
            parts.push(format!("{role} {us:.1}"));
            used += us;
        }
    }
    // Issue 20's target.
    const TARGET: f64 = 50_000.0;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let available = secs * 1e6 * cores as f64 / records as f64;
    format!(
        "CPU per record (µs): {}; in all {used:.1} of the {available:.1} that {cores} cores gave ({:.0} % busy); \
         {TARGET:.0} records/s would need at most {:.1}",
        parts.join(", "),
        used / available * 100.0,
        1e6 * cores as f64 / TARGET
    )
}
