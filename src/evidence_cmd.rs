//! `pci-scope-guard evidence export | verify | attest | expire`.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use psg_config::Config;
use psg_domain::time::{now_micros, to_micros};
use psg_domain::{EvidenceRequest, EvidenceType};
use psg_evidence::bundle::{self, KeySource};
use psg_evidence::documents::Documents;
use psg_evidence::verify::{Entry, Keyring, Outcome, verify_entries};
use psg_store::Store;

use crate::db::open as store;
use crate::error::{CliError, runtime};

/// What to do with evidence (without one: run the evidence service).
#[derive(Debug, Subcommand)]
pub(crate) enum EvidenceAction {
    /// Export records generated in [--from, --to) into a bundle an assessor can verify offline.
    ///
    /// Writes DIR/manifest.json (the records), DIR/documents/ (the signed
    /// documents), DIR/keys/ (the public keys that signed them) and
    /// DIR/checkpoints/ (signed checkpoints of the evidence log). Records the
    /// evidence service logged come with their log index, their inclusion
    /// proof and the service's checkpoints; older ones get a log of the
    /// bundle's own when a signing key is configured. Needs the database and
    /// the evidence store.
    #[command(
        after_help = "Example:\n  pci-scope-guard evidence export --database-url postgres://... --from 2026-01-01 --to 2026-04-01 ./q1-bundle"
    )]
    Export {
        #[command(flatten)]
        range: Range,
        /// New (or empty) directory to write the bundle into.
        dir: PathBuf,
    },
    /// Verify every hash, signature and chain link; exit 1 on any failure.
    ///
    /// With DIR: a bundle from `evidence export`, offline (no database).
    /// Without DIR: the records in the database and the evidence store, and
    /// the evidence log the service stored (checkpoint signatures, roots from
    /// the stored leaves, consistency proofs, each record's inclusion proof);
    /// each record that verifies gets last_verified_at and verification_count
    /// updated.
    #[command(after_help = "Examples:\n  pci-scope-guard evidence verify ./q1-bundle --keyring ./trusted-keys\n  \
                            pci-scope-guard evidence verify --database-url postgres://...")]
    Verify {
        /// A bundle directory; omit to verify the database.
        dir: Option<PathBuf>,
        /// Trusted public key (file, or directory of *.pub; repeatable). For a
        /// bundle, only these are accepted instead of the bundle's own keys/.
        #[arg(long, value_name = "FILE|DIR")]
        keyring: Vec<PathBuf>,
        #[command(flatten)]
        range: Range,
    },
    /// Ask the running evidence service for reports over a period now.
    ///
    /// Publishes an EvidenceRequest on evidence.requests; the service makes
    /// the reports from the database and appends them to their chains.
    #[command(
        after_help = "Example:\n  pci-scope-guard evidence attest --brokers 127.0.0.1:9092 --from 2026-03-01 --to 2026-03-02 --type network_segmentation_validation"
    )]
    Attest {
        #[command(flatten)]
        range: Range,
        /// Report type (repeatable): network_segmentation_validation,
        /// data_flow_analysis, tag_audit_trail, configuration_snapshot. Default: all four.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<EvidenceType>,
        /// Who asks (recorded in the request).
        #[arg(long, env = "USER", default_value = "operator")]
        requested_by: String,
    },
    /// Remove records past their expires_at (7 years): index rows, then documents. Also lists orphan segments.
    #[command(after_help = "Orphan segments: a batch's documents are written (one segment file per chain) before its \
                            rows commit. After a crash between the two, the records are processed again; if they are \
                            split into batches another way, the first segment is left behind, named by no record. \
                            expire lists such segments once they are older than --orphan-age-hours, and removes \
                            them with --orphans.\n\nExamples:\n  pci-scope-guard evidence expire --database-url \
                            postgres://... --dry-run\n  pci-scope-guard evidence expire --database-url postgres://... \
                            --orphans")]
    Expire {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also remove orphan segments (segment files no stored record names), not only list them.
        #[arg(long)]
        orphans: bool,
        /// How long ago a segment no record names must have been written to count as an orphan. Keep it longer
        /// than a batch can wait for its commit: a service stalled on its database for longer would lose the
        /// segment of the batch it is about to commit.
        #[arg(long, default_value_t = 24, value_name = "HOURS")]
        orphan_age_hours: u32,
    },
}

/// A time range, [from, to).
#[derive(Debug, Args, Clone)]
pub(crate) struct Range {
    /// Start, inclusive: RFC 3339 (2026-03-01T00:00:00Z) or a date (UTC midnight). Default: the beginning.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    from: Option<DateTime<Utc>>,
    /// End, exclusive: RFC 3339 or a date. Default: now.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    to: Option<DateTime<Utc>>,
}

impl Range {
    fn bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), CliError> {
        let from = self.from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = self.to.unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(1));
        if to <= from {
            return Err(CliError::Config(format!("--to {to} is not after --from {from}")));
        }
        Ok((from, to))
    }
}

/// An RFC 3339 time or a date (UTC midnight), for clap.
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("'{s}' is neither RFC 3339 (2026-03-01T00:00:00Z) nor a date (2026-03-01)"))
}

/// The keys of the database plus `evidence.keyring` plus `extra`.
async fn keyring(cfg: &Config, store: Option<&Store>, extra: &[PathBuf]) -> Result<Keyring, CliError> {
    let mut keys = Keyring::new();
    if let Some(store) = store {
        for (id, pem) in psg_store::evidence::public_keys(store).await.map_err(runtime)? {
            let got = keys.add_pem(&pem).map_err(|e| CliError::Runtime(format!("evidence_keys {id}: {e}")))?;
            if got != id {
                return Err(CliError::Runtime(format!("evidence_keys: key {id} holds the public key of {got}")));
            }
        }
    }
    for path in cfg.evidence.keyring.iter().chain(extra) {
        keys.load(path).map_err(|e| CliError::Config(e.to_string()))?;
    }
    Ok(keys)
}

fn report(outcome: &Outcome) {
    for (chain, (first, last, anchor)) in &outcome.chains {
        let anchor = match (first, anchor) {
            (1, _) => "starts at the chain's beginning".to_owned(),
            (_, Some(h)) => format!("continues from hash {h}"),
            (_, None) => "no previous hash".to_owned(),
        };
        println!("  {chain}: records {first}..={last}, {anchor}");
    }
    for f in &outcome.failures {
        println!("FAIL {f}");
    }
}

/// Runs an evidence action.
pub(crate) async fn execute(cfg: &Config, action: EvidenceAction) -> Result<(), CliError> {
    match action {
        EvidenceAction::Export { range, dir } => export(cfg, range, dir).await,
        EvidenceAction::Verify { dir: Some(dir), keyring: extra, .. } => verify_bundle(cfg, dir, extra).await,
        EvidenceAction::Verify { dir: None, keyring: extra, range } => verify_stored(cfg, extra, range).await,
        EvidenceAction::Attest { range, types, requested_by } => attest(cfg, range, types, requested_by).await,
        EvidenceAction::Expire { dry_run, orphans, orphan_age_hours } => {
            expire(cfg, dry_run, orphans, orphan_age_hours).await
        }
    }
}

/// `evidence export`: the records generated in the range, into a bundle.
async fn export(cfg: &Config, range: Range, dir: PathBuf) -> Result<(), CliError> {
    let (from, to) = range.bounds()?;
    let store = store(cfg, "evidence export").await?;
    let documents = Documents::configured(&cfg.evidence).map_err(|e| CliError::Config(e.to_string()))?;
    let mut keys = keyring(cfg, Some(&store), &[]).await?;
    let rows = psg_store::evidence::records_between(&store, from, to).await.map_err(runtime)?;
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let logged = psg_store::evidence::log_entries(&store, &ids).await.map_err(runtime)?;
    let mut records = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    let mut reader = documents.reader();
    for (i, row) in rows.iter().enumerate() {
        let entry = Entry::from_row(row);
        match reader.get_record(row).await.map_err(runtime)? {
            Some(doc) => records.push((entry, doc)),
            None => {
                let at = documents.record_location(row).map_err(runtime)?;
                missing.push(format!("{} #{} ({at})", entry.chain, entry.sequence));
            }
        }
        if (i + 1) % 10_000 == 0 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("read {} of {} records", i + 1, rows.len());
        }
    }
    if !missing.is_empty() {
        return Err(CliError::Runtime(format!(
            "{} documents are missing from {}: {}",
            missing.len(),
            documents.url(""),
            missing.join(", ")
        )));
    }
    // Every record in the service's evidence log: the bundle is an
    // excerpt of it, with the stored checkpoints and proofs.
    let stored = if !rows.is_empty() && logged.len() == rows.len() {
        Some(stored_log(&store, &logged, &mut records).await?)
    } else {
        // Records sealed by the service's log keep their proof in it.
        attach_log_entries(&logged, records.iter_mut().map(|(e, _)| e), false);
        if !logged.is_empty() {
            println!(
                "{} of the {} records were sealed before the evidence service kept its log: the bundle gets a log of its own",
                rows.len() - logged.len(),
                rows.len()
            );
        }
        None
    };
    // Otherwise the bundle's own evidence log, signed with the
    // evidence key when this configuration has it.
    let signing = match cfg.evidence.signing_key.as_ref().filter(|_| stored.is_none()) {
        Some(path) => {
            let key = psg_evidence::keys::load_signing_key(path).map_err(|e| CliError::Config(e.to_string()))?;
            let origin = psg_evidence::log::default_origin(&key.verifying_key());
            let signer = psg_evidence::log::CheckpointSigner::new(&origin, &key)
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let id = keys.add(key.verifying_key());
            Some((signer, id))
        }
        None => None,
    };
    let manifest = bundle::write(
        &dir,
        &from.to_rfc3339(),
        &to.to_rfc3339(),
        records,
        &keys,
        &Utc::now().to_rfc3339(),
        match (stored, &signing) {
            (Some(s), _) => bundle::BundleLog::Stored(s),
            (None, Some((signer, key_id))) => {
                bundle::BundleLog::Sign(bundle::LogOptions { signer, key_id, every: bundle::CHECKPOINT_EVERY })
            }
            (None, None) => bundle::BundleLog::None,
        },
    )
    .map_err(runtime)?;
    match &manifest.log {
        Some(l) if l.excerpt => println!(
            "evidence log: {} records of the service's log {} with their inclusion proofs, {} of its signed checkpoints",
            manifest.records.len(),
            l.origin,
            l.checkpoints.len()
        ),
        Some(l) => println!(
            "evidence log: {} records, {} signed checkpoints (origin {})",
            manifest.records.len(),
            l.checkpoints.len(),
            l.origin
        ),
        None => println!(
            "no evidence log in the bundle: evidence.signing_key is not configured here, and checkpoints need it"
        ),
    }
    println!(
        "exported {} records and {} public keys to {}",
        manifest.records.len(),
        manifest.keys.len(),
        dir.display()
    );
    println!("verify with: pci-scope-guard evidence verify {}", dir.display());
    Ok(())
}

/// `evidence verify DIR`: a bundle, offline.
async fn verify_bundle(cfg: &Config, dir: PathBuf, extra: Vec<PathBuf>) -> Result<(), CliError> {
    let trusted = if extra.is_empty() { None } else { Some(keyring(cfg, None, &extra).await?) };
    let (manifest, outcome, source) = bundle::verify_dir(&dir, trusted.as_ref()).map_err(runtime)?;
    println!("bundle {} ({} records, exported {})", dir.display(), manifest.records.len(), manifest.exported_at);
    if source == KeySource::Bundle {
        println!(
            "  keys: the bundle's own keys/ (this proves the records are intact and chained, not who signed \
             them: pass --keyring with keys you trust)"
        );
    }
    match &manifest.log {
        Some(l) if l.excerpt => println!(
            "  evidence log {}: an excerpt ({} records of a log of {}); {} checkpoints, every record's inclusion \
             proof and the consistency between checkpoints checked",
            l.origin,
            manifest.records.len(),
            l.checkpoints.last().map_or(0, |c| c.size),
            l.checkpoints.len()
        ),
        Some(l) => println!(
            "  evidence log {}: {} checkpoints, every record's inclusion proof and the consistency between \
             checkpoints checked",
            l.origin,
            l.checkpoints.len()
        ),
        None => println!("  no evidence log in this bundle (exported without a signing key)"),
    }
    report(&outcome);
    finish(&outcome)
}

/// `evidence verify` without a directory: the stored records of the range.
async fn verify_stored(cfg: &Config, extra: Vec<PathBuf>, range: Range) -> Result<(), CliError> {
    let (from, to) = range.bounds()?;
    let store = store(cfg, "evidence verify without a bundle directory").await?;
    let documents = Documents::configured(&cfg.evidence).map_err(|e| CliError::Config(e.to_string()))?;
    let keys = keyring(cfg, Some(&store), &extra).await?;
    let rows = psg_store::evidence::records_between(&store, from, to).await.map_err(runtime)?;
    let mut entries: Vec<Entry> = rows.iter().map(Entry::from_row).collect();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let logged = psg_store::evidence::log_entries(&store, &ids).await.map_err(runtime)?;
    attach_log_entries(&logged, entries.iter_mut(), true);
    let mut docs = std::collections::HashMap::with_capacity(entries.len());
    let mut reader = documents.reader();
    for (e, row) in entries.iter_mut().zip(&rows) {
        // Where the document is, as failures name it.
        e.file = documents.record_location(row).map_err(runtime)?.to_string();
        let doc = reader.get_record(row).await.map_err(|e| e.to_string());
        docs.insert(e.file.clone(), doc);
    }
    let outcome = verify_entries(&entries, |e| docs.remove(&e.file).unwrap_or(Ok(None)).map_err(Into::into), &keys);
    let audit = audit_stored_log(&store, &rows, logged, &keys).await?;
    // Records count as verified only when their log entry verified too.
    let failed_in_log: std::collections::HashSet<String> =
        audit.as_ref().map(|a| a.audit.failed_records.iter().map(ToString::to_string).collect()).unwrap_or_default();
    let ids: Vec<uuid::Uuid> = outcome
        .verified
        .iter()
        .filter(|e| !failed_in_log.contains(&e.evidence_id))
        .filter_map(|e| e.evidence_id.parse().ok())
        .collect();
    let marked = psg_store::evidence::mark_verified(&store, &ids).await.map_err(runtime)?;
    println!("database: {} records, {} verified (last_verified_at updated)", entries.len(), marked);
    report(&outcome);
    let log_ok = match &audit {
        Some(a) => {
            println!(
                "evidence log {}: {} leaves; {} signed checkpoints verified (signature, root from the stored leaves, consistency with the one before), the newest of {} records; {} of the {} records here verified in it (leaf and stored inclusion proof){}",
                a.origin,
                a.audit.size,
                a.audit.checkpoints_verified,
                a.audit.newest.unwrap_or(0),
                a.audit.records_verified,
                rows.len(),
                match a.audit.unsigned() {
                    0 => String::new(),
                    n => format!("; {n} appended since the newest checkpoint, not yet signed"),
                }
            );
            if a.unlogged > 0 {
                println!("  {} records were sealed before the evidence service kept its log", a.unlogged);
            }
            for f in &a.audit.failures {
                println!("FAIL evidence log: {f}");
            }
            a.audit.ok()
        }
        None => {
            println!("no evidence log is stored (records sealed before the evidence service kept one)");
            true
        }
    };
    let locks_ok = report_locks(&documents, &rows).await?;
    finish(&outcome)?;
    if !log_ok {
        return Err(CliError::Runtime(format!(
            "verification failed: {} problems in the stored evidence log",
            audit.map_or(0, |a| a.audit.failures.len())
        )));
    }
    if !locks_ok {
        return Err(CliError::Runtime(
            "verification failed: documents are not locked until their records expire (S3 Object Lock)".into(),
        ));
    }
    Ok(())
}

/// On S3: whether each record's document is locked (Object Lock,
/// compliance mode) until the record expires; prints what it found.
async fn report_locks(documents: &Documents, rows: &[psg_domain::rows::EvidenceRow]) -> Result<bool, CliError> {
    let docs = rows
        .iter()
        .map(|r| Ok((documents.record_location(r)?.path, r.expires_at.timestamp_micros())))
        .collect::<Result<_, psg_evidence::Error>>()
        .map_err(runtime)?;
    match documents.check_locks(docs).await.map_err(runtime)? {
        Some(check) => {
            println!(
                "S3 Object Lock: {} of {} document files (segments) locked in compliance mode until their records expire{}",
                check.checked - check.findings.len(),
                check.checked,
                match check.expired {
                    0 => String::new(),
                    n => format!(" ({n} records expired already, not checked)"),
                }
            );
            for (path, problem) in &check.findings {
                println!("FAIL retention: {path}: {problem}");
            }
            Ok(check.findings.is_empty())
        }
        None => {
            if documents.bucket().is_some() {
                println!(
                    "S3 Object Lock: the bucket has none (or evidence.object-lock is off): documents are not retention-locked"
                );
            }
            Ok(true)
        }
    }
}

/// `evidence attest`: asks the evidence service for reports of the range.
async fn attest(cfg: &Config, range: Range, types: Vec<EvidenceType>, requested_by: String) -> Result<(), CliError> {
    let (from, to) = range.bounds()?;
    if types.contains(&EvidenceType::ScopeIdentification) {
        return Err(CliError::Config(
            "pci_scope_identification records are made per scope decision, not on request".into(),
        ));
    }
    let request = EvidenceRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        evidence_types: types,
        period_start: to_micros(from),
        period_end: to_micros(to),
        requested_by,
        requested_at: now_micros(),
    };
    let bytes = psg_avro_codec::encode(&request).map_err(runtime)?;
    crate::services::publish(cfg, &cfg.topics.evidence_requests, request.request_id.as_bytes(), bytes).await?;
    println!(
        "requested reports for [{from}, {to}) on {} (request {}); the evidence service appends them to their chains",
        cfg.topics.evidence_requests, request.request_id
    );
    Ok(())
}

/// Expired records `evidence expire` reads, deletes and removes the
/// documents of at a time (a chunk ends with a segment, so it may be up to
/// a batch larger).
const EXPIRE_CHUNK: usize = 10_000;

/// `evidence expire`: removes the records past `expires_at`, and their documents.
async fn expire(cfg: &Config, dry_run: bool, remove_orphans: bool, orphan_age_hours: u32) -> Result<(), CliError> {
    let store = store(cfg, "evidence expire").await?;
    let documents = Documents::configured(&cfg.evidence).map_err(|e| CliError::Config(e.to_string()))?;
    let now = Utc::now();
    // A chunk at a time, its rows then its documents: memory holds a chunk
    // however many records expired, and a run that stops half-way has
    // removed whole chunks (a chunk's documents it did not reach are
    // orphan segments for the next run). The reader keeps one of the
    // operator pool's two connections (`db::open`); the deletes use the other.
    let mut expired = psg_store::evidence::expired_in_chunks(&store, now).await.map_err(runtime)?;
    let (mut found, mut removed, mut kept) = (0usize, 0u64, 0usize);
    loop {
        let rows = expired.next_chunk(EXPIRE_CHUNK).await.map_err(runtime)?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            println!(
                "{} {} #{} ({}), generated {}, expired {}",
                if dry_run { "would remove" } else { "removing" },
                r.chain,
                r.sequence,
                r.id,
                r.generated_at.to_rfc3339(),
                r.expires_at.to_rfc3339()
            );
        }
        found += rows.len();
        if !dry_run {
            let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
            removed += psg_store::evidence::delete_expired(&store, &ids, now).await.map_err(runtime)?;
            // Chunks never split a segment, so a segment kept here holds
            // records not expired, not records of the next chunk.
            kept += documents.delete_records(&store, &rows).await.map_err(runtime)?;
        }
    }
    drop(expired);
    if dry_run || found == 0 {
        println!("{found} records past expires_at{}", if dry_run { " (dry run: nothing removed)" } else { "" });
    } else {
        println!(
            "removed {removed} expired records and their documents{}",
            match kept {
                0 => String::new(),
                n => format!(" ({n} segments kept: they hold records not expired yet)"),
            }
        );
    }
    // Orphan segments, after the expired records' own have gone.
    let before = now - chrono::Duration::hours(i64::from(orphan_age_hours));
    let orphans = documents.orphan_segments(&store, before).await.map_err(runtime)?;
    let remove = remove_orphans && !dry_run;
    for o in &orphans {
        println!(
            "{} orphan segment {} ({} #{}..#{}, written {}): no stored record names it",
            if remove { "removing" } else { "found" },
            documents.url(&o.path),
            o.chain,
            o.first,
            o.last,
            o.written.to_rfc3339()
        );
        if remove {
            documents.delete(&o.path).await.map_err(runtime)?;
        }
    }
    match (orphans.len(), remove) {
        (0, _) => {}
        (n, true) => println!("removed {n} orphan segments"),
        (n, false) => println!(
            "{n} orphan segments written before {} kept ({})",
            before.to_rfc3339(),
            if dry_run { "dry run" } else { "pass --orphans to remove them" }
        ),
    }
    Ok(())
}

/// What `evidence verify` found of the stored evidence log.
struct LogCheck {
    origin: String,
    audit: psg_evidence::log::audit::Audit,
    /// Records of the period with no log entry (sealed before the log).
    unlogged: usize,
}

/// Checks the evidence log the service stored (every leaf, every
/// checkpoint of its origin) and the entries of `rows`; `None` when no log
/// is stored.
async fn audit_stored_log(
    store: &Store,
    rows: &[psg_domain::rows::EvidenceRow],
    logged: Vec<psg_domain::rows::EvidenceLogRow>,
    keys: &Keyring,
) -> Result<Option<LogCheck>, CliError> {
    let Some(newest) = psg_store::evidence::last_checkpoint(store).await.map_err(runtime)? else {
        return Ok(None);
    };
    let leaves = psg_store::evidence::log_leaves(store).await.map_err(runtime)?;
    let checkpoints = psg_store::evidence::checkpoints(store, &newest.origin).await.map_err(runtime)?;
    let hashes: std::collections::HashMap<uuid::Uuid, &str> = rows.iter().map(|r| (r.id, r.hash.as_str())).collect();
    let entries: Vec<(psg_domain::rows::EvidenceLogRow, String)> = logged
        .into_iter()
        .map(|e| {
            let hash = hashes.get(&e.evidence_id).copied().unwrap_or_default().to_owned();
            (e, hash)
        })
        .collect();
    let audit = psg_evidence::log::audit::audit(&newest.origin, &leaves, &checkpoints, &entries, keys);
    Ok(Some(LogCheck { unlogged: rows.len() - entries.len(), audit, origin: newest.origin }))
}

/// Gives each of `entries` found in `logged` its log index and stored
/// inclusion proof: as `inclusion` (`in_log`: the entries are verified
/// against the service's log) or as `seal` only (the bundle gets a log of
/// its own; a v2 record's signature seals its place in the service's).
fn attach_log_entries<'a>(
    logged: &[psg_domain::rows::EvidenceLogRow],
    entries: impl Iterator<Item = &'a mut Entry>,
    in_log: bool,
) {
    let by_id: std::collections::HashMap<String, &psg_domain::rows::EvidenceLogRow> =
        logged.iter().map(|l| (l.evidence_id.to_string(), l)).collect();
    for entry in entries {
        if let Some(l) = by_id.get(&entry.evidence_id) {
            let proof = psg_evidence::verify::Inclusion {
                checkpoint: l.checkpoint_size.unsigned_abs(),
                proof: l.inclusion.clone(),
            };
            if in_log {
                entry.log_index = Some(l.log_index.unsigned_abs());
                entry.inclusion = Some(proof);
            } else {
                entry.seal = Some(proof);
            }
        }
    }
}

/// Puts `records` in log order with their log index and stored inclusion
/// proof; the checkpoints their proofs name and the newest, with the
/// consistency proofs between them (from the stored leaves).
async fn stored_log(
    store: &Store,
    logged: &[psg_domain::rows::EvidenceLogRow],
    records: &mut [(Entry, Vec<u8>)],
) -> Result<bundle::StoredLog, CliError> {
    attach_log_entries(logged, records.iter_mut().map(|(e, _)| e), true);
    records.sort_by_key(|(e, _)| e.log_index);
    let newest = psg_store::evidence::last_checkpoint(store)
        .await
        .map_err(runtime)?
        .ok_or_else(|| CliError::Runtime("the records are in the evidence log, but no checkpoint is stored".into()))?;
    let mut wanted: std::collections::BTreeSet<i64> = logged.iter().map(|l| l.checkpoint_size).collect();
    wanted.insert(newest.tree_size);
    let checkpoints: Vec<(u64, String, String, String)> = psg_store::evidence::checkpoints(store, &newest.origin)
        .await
        .map_err(runtime)?
        .into_iter()
        .filter(|c| wanted.contains(&c.tree_size))
        .map(|c| (c.tree_size.unsigned_abs(), c.key_id, c.checkpoint, c.root))
        .collect();
    if checkpoints.len() != wanted.len() {
        return Err(CliError::Runtime(format!(
            "the evidence log's proofs name {} checkpoints of {}, {} are stored",
            wanted.len(),
            newest.origin,
            checkpoints.len()
        )));
    }
    let leaves = psg_store::evidence::log_leaves(store).await.map_err(runtime)?;
    bundle::StoredLog::from_leaves(&newest.origin, &leaves, checkpoints).map_err(runtime)
}

fn finish(outcome: &Outcome) -> Result<(), CliError> {
    if outcome.ok() {
        println!("OK: {} records verified", outcome.verified.len());
        Ok(())
    } else {
        Err(CliError::Runtime(format!(
            "verification failed: {} problems, {} records verified",
            outcome.failures.len(),
            outcome.verified.len()
        )))
    }
}
