//! The evidence [`Processor`].
//!
//! - every scope decision on `scope.decisions` gets a
//!   `pci_scope_identification` record;
//! - when event time (the newest flow edge or decision seen) passes the end
//!   of a period plus `evidence.grace-secs`, the period's four reports
//!   (`network_segmentation_validation`, `data_flow_analysis`,
//!   `tag_audit_trail`, `configuration_snapshot`) are made from the database;
//! - an `EvidenceRequest` on `evidence.requests` makes reports on demand.
//!
//! Each evidence type is its own chain. Records go to `evidence.records`,
//! the document store and the `evidence` table. Chain heads come from the
//! database when there is one, otherwise from `<chain>/HEAD.json` in the
//! document store. A record that is already stored (redelivery) is not made
//! twice: record ids are deterministic.
//!
//! Every record is also appended to the evidence log ([`crate::log`]): it
//! gets the next `log_index` (named in its document), and each batch that
//! added records ends with one signed checkpoint of the whole log, the
//! consistency proof from the previous one and every new record's
//! inclusion proof. The records are not signed one by one: each carries the
//! signature of its batch's checkpoint and its inclusion proof against it
//! (document schema v2, [`crate::record`]), so signing costs one Ed25519
//! signature per batch. Checkpoints go to
//! `evidence.checkpoints` (compacted by origin), the `evidence_checkpoints`
//! table and `log/checkpoints/` in the document store; the leaves to the
//! `evidence_log_batches` table (a row per batch) and `log/leaves/` (tiles
//! of [`LEAF_TILE`] leaf hashes). The log is restored from the database when there is one,
//! otherwise from the document store, and checked against its newest
//! checkpoint before anything is appended.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use psg_config::Config;
use psg_domain::rows::{EvidenceCheckpointRow, EvidenceLogRow};
use psg_domain::time::{Micros, SECOND, from_micros};
use psg_domain::{EvidenceCheckpoint, EvidenceRequest, EvidenceType, FlowEdge, ScopeDecision};
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{DeadLetter, InMessage, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;
use psg_store::evidence::{Found, Lookup};
use uuid::Uuid;

use crate::documents::{Doc, Documents, Keeping};
use crate::log::{self, CheckpointSigner, Log};
use crate::record::{
    ChainHead, LogPlace, Report, Sealed, Sealer, legacy_scope_identification_id, report_id, scope_identification_id,
};
use crate::reports::{self, Period, PeriodData};
use crate::writes::{Batch, Durable, Write};

/// Why the evidence service cannot start from what is stored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] psg_store::Error),
    #[error(transparent)]
    Documents(#[from] crate::Error),
    #[error("{file}: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: origin, size and root expected", Evidence::LOG_HEAD)]
    LogHead,
    #[error("{path} is missing: the evidence log holds {size} records")]
    TileMissing { path: String, size: u64 },
    #[error("{path}: {bytes} bytes, {want} leaves of 32 bytes expected")]
    TileShort { path: String, bytes: usize, want: usize },
    #[error(transparent)]
    Log(#[from] log::LogError),
    #[error(
        "evidence.log-origin is '{configured}', but the evidence log's checkpoints name it '{stored}': a log keeps its origin (unset evidence.log-origin, or start a new log with a new database and document store)"
    )]
    OriginChanged { configured: String, stored: String },
    #[error("the evidence log's newest checkpoint signs {size} records, but {stored} are stored: {source}")]
    LeavesMissing {
        size: u64,
        stored: u64,
        #[source]
        source: log::LogError,
    },
    #[error(
        "the evidence log's {size} stored leaves do not give the root its newest checkpoint signs ({root}): the stored log was changed"
    )]
    LogChanged { size: u64, root: String },
    #[error("the signing key's public half: {0}")]
    Pem(#[source] ed25519_dalek::pkcs8::spki::Error),
}

/// The chain of scope-identification records.
pub const SCOPE_CHAIN: &str = "pci_scope_identification";

/// The periodic report types, in the order they are made.
pub const PERIODIC: [EvidenceType; 4] = [
    EvidenceType::NetworkSegmentation,
    EvidenceType::DataFlowAnalysis,
    EvidenceType::TagAudit,
    EvidenceType::ConfigurationSnapshot,
];

/// Leaf hashes per file of `log/leaves/` in the document store.
pub const LEAF_TILE: u64 = 1024;

/// At most this many periods are caught up per batch (a replay of months
/// of flow logs makes its reports over several batches).
const MAX_PERIODS_PER_BATCH: usize = 31;

/// The evidence service.
#[derive(Debug)]
pub struct Evidence {
    decisions_topic: String,
    edges_topic: String,
    coverage_topic: String,
    /// Flow-log coverage per unit and input partition, as last published
    /// (`flows.coverage`, read whole: it is compacted).
    coverage: HashMap<String, std::collections::BTreeMap<i32, psg_domain::FlowCoverage>>,
    requests_topic: String,
    evidence_out: String,
    dead_letter: String,
    sealer: Sealer,
    documents: Documents,
    store: Option<Store>,
    heads: HashMap<String, ChainHead>,
    /// Records sealed by this process and not yet durable (a duplicate in
    /// a later batch must not get a second record before the first is
    /// stored); `persist` forgets a batch's records once they are.
    sealed: HashSet<Uuid>,
    pending: Vec<Sealed>,
    period: Micros,
    grace: Micros,
    /// Newest event time seen.
    clock: Micros,
    /// End of the next period to report; `None` until the first event.
    next_period_end: Option<Micros>,
    /// The evidence log over every record (restored at start).
    log: Log,
    /// `evidence.log-origin`, if configured.
    configured_origin: Option<String>,
    /// Signs the log's checkpoints (its origin set by `restore`).
    checkpoints: CheckpointSigner,
    checkpoints_topic: String,
    /// Size of the newest checkpoint (0: none yet).
    checkpointed: u64,
    /// Log entries and checkpoints of the batch being processed.
    pending_log: Vec<EvidenceLogRow>,
    pending_checkpoints: Vec<EvidenceCheckpointRow>,
    /// The batch's documents, a segment per chain ([`Self::place`]).
    pending_segments: Vec<Doc>,
    /// The writes of processed batches, oldest first (`persist` finishes
    /// the oldest).
    writes: std::collections::VecDeque<Write>,
    /// How many of `writes`, from the oldest, were acknowledged.
    acknowledged: usize,
    /// Told once the newest write that stores anything is durable: the
    /// next one commits after it.
    last_durable: Option<Durable>,
}

/// The head of a chain without records.
const NO_HEAD: ChainHead = ChainHead { sequence: 0, hash: None };

/// Where a batch's sealing started ([`Evidence::mark`]).
struct Mark {
    log_size: u64,
    scope_head: Option<ChainHead>,
}

/// What one batch asks for, decided before any state changes.
enum Job {
    /// A decision, and the id of its record.
    Decision(ScopeDecision, Uuid),
    Reports(Period, Vec<EvidenceType>),
}

/// The records a batch would make, as the duplicate check looks for them.
#[derive(Default)]
struct Asked<'a> {
    /// Reports' records: their ids and chains.
    reports: Vec<(Uuid, &'a str)>,
    /// Decisions' records: their ids and decisions.
    decisions: Vec<(Uuid, &'a ScopeDecision)>,
}

impl Asked<'_> {
    /// The database's question: a decision's record by its decision (under
    /// whichever id it was stored: see [`legacy_scope_identification_id`]),
    /// or by both its ids when its decision id is no UUID (it is then stored
    /// without one); a report's by its id.
    fn lookup(&self) -> Lookup {
        let mut lookup = Lookup { records: self.reports.iter().map(|(id, _)| *id).collect(), decisions: Vec::new() };
        lookup.decisions.reserve(self.decisions.len());
        for (id, d) in &self.decisions {
            match d.decision_id.parse() {
                Ok(decision) => lookup.decisions.push(decision),
                Err(_) => lookup.records.extend([*id, legacy_scope_identification_id(d)]),
            }
        }
        lookup
    }

    /// The ids, as this version makes them, of the records `found` stored.
    fn stored(&self, found: &Found) -> HashSet<Uuid> {
        let reports = self.reports.iter().map(|(id, _)| *id).filter(|id| found.records.contains(id));
        let decisions = self.decisions.iter().filter_map(|(id, d)| {
            let stored = match d.decision_id.parse::<Uuid>() {
                Ok(decision) => found.decisions.contains(&decision),
                Err(_) => found.records.contains(id) || found.records.contains(&legacy_scope_identification_id(d)),
            };
            stored.then_some(*id)
        });
        reports.chain(decisions).collect()
    }
}

impl Evidence {
    pub fn new(cfg: &Config, store: Option<Store>, sealer: Sealer, documents: Documents) -> Self {
        // The key's own origin until `restore` knows the log's.
        let checkpoints = match sealer.checkpoint_signer(&log::default_origin(&sealer.verifying_key())) {
            Ok(s) => s,
            // The default origin is letters, digits and slashes: always a
            // valid key name.
            Err(e) => unreachable!("default evidence log origin: {e}"),
        };
        Self {
            decisions_topic: cfg.topics.scope_decisions.clone(),
            edges_topic: cfg.topics.flows_edges.clone(),
            coverage_topic: cfg.topics.flows_coverage.clone(),
            coverage: HashMap::new(),
            requests_topic: cfg.topics.evidence_requests.clone(),
            evidence_out: cfg.topics.evidence_records.clone(),
            dead_letter: cfg.topics.evidence_dlq.clone(),
            sealer,
            documents,
            store,
            heads: HashMap::new(),
            sealed: HashSet::new(),
            pending: Vec::new(),
            period: i64::try_from(cfg.evidence.period_secs).unwrap_or(86_400) * SECOND,
            grace: i64::try_from(cfg.evidence.grace_secs).unwrap_or(0) * SECOND,
            clock: i64::MIN,
            next_period_end: None,
            log: Log::default(),
            configured_origin: cfg.evidence.log_origin.clone(),
            checkpoints,
            checkpoints_topic: cfg.topics.evidence_checkpoints.clone(),
            checkpointed: 0,
            pending_log: Vec::new(),
            pending_checkpoints: Vec::new(),
            pending_segments: Vec::new(),
            writes: std::collections::VecDeque::new(),
            acknowledged: 0,
            last_durable: None,
        }
    }

    /// The evidence log as this service holds it.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// How many records this service has sealed that are not durable yet:
    /// what its duplicate check keeps in memory (the database, or the
    /// document store's markers, answer for the rest).
    pub fn awaiting_persist(&self) -> usize {
        self.sealed.len()
    }

    /// The log's origin.
    pub fn log_origin(&self) -> &str {
        self.checkpoints.origin()
    }

    /// The coverage of every unit, its partitions merged, sorted by unit.
    fn unit_coverage(&self) -> Vec<reports::UnitCoverage> {
        let mut out: Vec<reports::UnitCoverage> = self
            .coverage
            .iter()
            .filter_map(|(unit, parts)| {
                let mut views = parts.values();
                let first = views.next()?;
                let mut u = reports::UnitCoverage {
                    unit: unit.clone(),
                    kind: first.unit_kind.as_str().to_owned(),
                    vpc_id: first.vpc_id.clone(),
                    first_seen: first.first_seen,
                    last_seen: first.last_seen,
                    records: first.records,
                    gaps: first.gaps.iter().map(|g| (g.from, g.to)).collect(),
                };
                for v in views {
                    u.first_seen = u.first_seen.min(v.first_seen);
                    u.last_seen = u.last_seen.max(v.last_seen);
                    u.records += v.records;
                    u.vpc_id = u.vpc_id.or_else(|| v.vpc_id.clone());
                    u.gaps.extend(v.gaps.iter().map(|g| (g.from, g.to)));
                }
                // A gap one partition saw is no gap where another logged.
                if parts.len() > 1 {
                    u.gaps.retain(|(a, b)| {
                        parts.values().all(|v| {
                            v.last_seen <= *a || v.first_seen >= *b || v.gaps.iter().any(|g| g.from <= *a && g.to >= *b)
                        })
                    });
                }
                u.gaps.sort_unstable();
                u.gaps.dedup();
                Some(u)
            })
            .collect();
        out.sort_by(|a, b| a.unit.cmp(&b.unit));
        out
    }

    /// The head of `chain` as this service sees it.
    pub fn head(&self, chain: &str) -> &ChainHead {
        self.heads.get(chain).unwrap_or(&NO_HEAD)
    }

    /// End of the next period to report.
    pub fn next_period_end(&self) -> Option<Micros> {
        self.next_period_end
    }

    fn head_path(chain: &str) -> String {
        format!("{chain}/HEAD.json")
    }

    /// Where the marker of record `id` of `chain` goes (without a
    /// database): `{chain}/by-id/{its last two hex digits}/{id}`, 256
    /// directories, since a chain's markers in one directory would fill it
    /// (ext4 without `large_dir` takes 10-12 million names). The last
    /// digits, because a decision's id begins with its time.
    pub fn marker_path(chain: &str, id: &Uuid) -> String {
        format!("{chain}/by-id/{:02x}/{id}", id.as_bytes()[15])
    }

    /// Where a marker may be, in the order to look: [`Self::marker_path`],
    /// then `{chain}/by-id/{id}`, where versions before it put them.
    fn marker_paths(chain: &str, id: &Uuid) -> [String; 2] {
        [Self::marker_path(chain, id), format!("{chain}/by-id/{id}")]
    }

    const LOG_HEAD: &'static str = "log/HEAD.json";

    fn leaf_tile_path(tile: u64) -> String {
        format!("log/leaves/{tile:010}.bin")
    }

    /// Where a checkpoint of `size` records goes in the document store.
    /// (Nested as records' documents are: a checkpoint per batch adds up
    /// to millions over the retention period.)
    pub fn checkpoint_path(size: u64) -> String {
        format!("log/checkpoints/{}.txt", crate::record::nested(size))
    }

    /// The evidence log's leaves and newest checkpoint (origin, size, base64
    /// root) as stored: in the database, else in the document store.
    async fn stored_log(&self) -> Result<(Vec<tlog_tiles::Hash>, Option<(String, u64, String)>), RestoreError> {
        if let Some(store) = &self.store {
            let hashes = psg_store::evidence::log_leaves(store).await?;
            let leaves = hashes.iter().map(|h| log::leaf(h)).collect::<Result<Vec<_>, _>>()?;
            let last = psg_store::evidence::last_checkpoint(store)
                .await?
                .map(|c| (c.origin, u64::try_from(c.tree_size).unwrap_or(0), c.root));
            return Ok((leaves, last));
        }
        let Some(bytes) = self.documents.get(Self::LOG_HEAD).await? else {
            return Ok((Vec::new(), None));
        };
        let head: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|source| RestoreError::Json { file: Self::LOG_HEAD.to_owned(), source })?;
        let (Some(origin), Some(size), Some(root)) =
            (head["origin"].as_str(), head["size"].as_u64(), head["root"].as_str())
        else {
            return Err(RestoreError::LogHead);
        };
        let mut leaves = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for tile in 0..size.div_ceil(LEAF_TILE) {
            let path = Self::leaf_tile_path(tile);
            let bytes = self
                .documents
                .get(&path)
                .await?
                .ok_or_else(|| RestoreError::TileMissing { path: path.clone(), size })?;
            let want = usize::try_from((size - tile * LEAF_TILE).min(LEAF_TILE)).unwrap_or(0);
            if bytes.len() < want * 32 {
                return Err(RestoreError::TileShort { path, bytes: bytes.len(), want });
            }
            leaves.extend(bytes.chunks_exact(32).take(want).map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                tlog_tiles::Hash(h)
            }));
        }
        Ok((leaves, Some((origin.to_owned(), size, root.to_owned()))))
    }

    /// Rebuilds the evidence log and checks it against its newest
    /// checkpoint; settles the origin.
    async fn restore_log(&mut self) -> Result<(), RestoreError> {
        let (leaves, last) = self.stored_log().await?;
        let mut tree = Log::default();
        for l in leaves {
            tree.append_leaf(l)?;
        }
        let origin = match (&self.configured_origin, &last) {
            (Some(c), Some((s, _, _))) if c != s => {
                return Err(RestoreError::OriginChanged { configured: c.clone(), stored: s.clone() });
            }
            (Some(c), _) => c.clone(),
            (None, Some((s, _, _))) => s.clone(),
            (None, None) => log::default_origin(&self.sealer.verifying_key()),
        };
        self.checkpoints = self.sealer.checkpoint_signer(&origin)?;
        if let Some((_, size, root)) = &last {
            let ours = tree.root(*size).map_err(|source| RestoreError::LeavesMissing {
                size: *size,
                stored: tree.size(),
                source,
            })?;
            if log::encode_hash(&ours) != *root {
                return Err(RestoreError::LogChanged { size: *size, root: root.clone() });
            }
            self.checkpointed = *size;
        }
        tracing::info!(origin = %origin, size = tree.size(), checkpointed = self.checkpointed, "evidence log restored");
        metrics::gauge!("psg_evidence_log_size").set(tree.size() as f64);
        self.log = tree;
        Ok(())
    }

    /// Loads the chain heads and where periodic reports stopped; registers
    /// the signing key's public half.
    pub async fn restore(&mut self) -> Result<(), RestoreError> {
        let chains = std::iter::once(EvidenceType::ScopeIdentification).chain(PERIODIC);
        for t in chains {
            let chain = t.as_str();
            let head = match &self.store {
                Some(store) => match psg_store::evidence::chain_head(store, chain).await? {
                    Some((sequence, hash)) => ChainHead { sequence, hash: Some(hash) },
                    None => ChainHead::default(),
                },
                None => match self.documents.get(&Self::head_path(chain)).await? {
                    Some(bytes) => {
                        let v: serde_json::Value = serde_json::from_slice(&bytes)
                            .map_err(|source| RestoreError::Json { file: Self::head_path(chain), source })?;
                        ChainHead {
                            sequence: v["sequence"].as_i64().unwrap_or(0),
                            hash: v["hash"].as_str().map(str::to_owned),
                        }
                    }
                    None => ChainHead::default(),
                },
            };
            tracing::info!(chain, sequence = head.sequence, "evidence chain head");
            self.heads.insert(chain.to_owned(), head);
        }
        if let Some(store) = &self.store {
            let pem = self.sealer.verifying_key().to_public_key_pem(LineEnding::LF).map_err(RestoreError::Pem)?;
            psg_store::evidence::register_key(store, self.sealer.key_id(), &pem).await?;
            let last =
                psg_store::evidence::last_scheduled_period_end(store, EvidenceType::NetworkSegmentation.as_str())
                    .await?;
            self.next_period_end = last.map(|t| t.timestamp_micros() + self.period);
        } else {
            tracing::info!("no database: periodic and on-demand reports are off (they are made from the database)");
        }
        self.restore_log().await?;
        tracing::info!(key_id = %self.sealer.key_id(), next_period_end = ?self.next_period_end.map(from_micros), "evidence restored");
        Ok(())
    }

    /// Which of `asked`'s records are stored already (the ids this version
    /// gives them). Without a database a decision's record is looked for
    /// under both its ids' markers, where this version puts them and where
    /// earlier ones did: four reads per new decision.
    async fn stored(&self, asked: &Asked<'_>) -> Result<HashSet<Uuid>, ProcessError> {
        match &self.store {
            Some(store) => psg_store::evidence::existing(store, &asked.lookup())
                .await
                .map(|found| asked.stored(&found))
                .map_err(|e| ProcessError::classify(e.is_transient(), e)),
            None => {
                let mut found = HashSet::new();
                let reports = asked.reports.iter().map(|(id, chain)| (*id, *chain, None));
                let decisions =
                    asked.decisions.iter().map(|(id, d)| (*id, SCOPE_CHAIN, Some(legacy_scope_identification_id(d))));
                for (id, chain, legacy) in reports.chain(decisions) {
                    'look: for marker in std::iter::once(id).chain(legacy) {
                        for path in Self::marker_paths(chain, &marker) {
                            let present =
                                self.documents.get(&path).await.map_err(|e| ProcessError::Transient(e.to_string()))?;
                            if present.is_some() {
                                found.insert(id);
                                break 'look;
                            }
                        }
                    }
                }
                Ok(found)
            }
        }
    }

    async fn period_data(&self, p: &Period) -> Result<PeriodData, ProcessError> {
        let Some(store) = &self.store else {
            return Err(ProcessError::Fatal("reports need the database".into()));
        };
        let err = |e: psg_store::Error| ProcessError::classify(e.is_transient(), e);
        let (from, to) = (from_micros(p.start), from_micros(p.end));
        Ok(PeriodData {
            flows: psg_store::reports::cde_flows(store, from, to).await.map_err(err)?,
            violations: psg_store::reports::violations(store, from, to).await.map_err(err)?,
            tag_changes: psg_store::reports::tag_changes(store, from, to).await.map_err(err)?,
            configuration: psg_store::reports::configuration(store, to).await.map_err(err)?,
            coverage: self.unit_coverage(),
        })
    }

    /// Seals the batch's jobs (its reports made already) but those `stored`
    /// or sealed by this process already; how many were left so.
    fn seal_jobs(
        &mut self,
        jobs: &[Job],
        reports: Vec<Option<Vec<Report>>>,
        stored: &HashSet<Uuid>,
    ) -> Result<u64, ProcessError> {
        let mut duplicates = 0;
        for (job, made) in jobs.iter().zip(reports) {
            match (job, made) {
                (Job::Decision(d, id), _) => {
                    if stored.contains(id) || self.sealed.contains(id) {
                        duplicates += 1;
                        continue;
                    }
                    let sealed = self
                        .sealer
                        .scope_identification_as(*id, SCOPE_CHAIN, self.head(SCOPE_CHAIN), d, self.next_place())
                        .map_err(|e| ProcessError::Fatal(format!("sealing evidence for {}: {e}", d.decision_id)))?;
                    self.push(sealed)?;
                }
                (Job::Reports(p, _), Some(made)) => {
                    for r in made {
                        let id = report_id(&r);
                        if stored.contains(&id) || self.sealed.contains(&id) {
                            duplicates += 1;
                            continue;
                        }
                        let sealed =
                            self.sealer.report(self.head(r.evidence_type.as_str()), &r, self.next_place()).map_err(
                                |e| ProcessError::Fatal(format!("sealing {} for {}: {e}", r.evidence_type, p.trigger)),
                            )?;
                        self.push(sealed)?;
                    }
                    tracing::info!(
                        trigger = %p.trigger,
                        start = %from_micros(p.start),
                        end = %from_micros(p.end),
                        "evidence reports made"
                    );
                }
                (Job::Reports(..), None) => {}
            }
        }
        Ok(duplicates)
    }

    /// Where the batch's sealing starts from, to take it back
    /// ([`Self::take_back`]): the log's size and the decisions' chain head.
    fn mark(&self) -> Mark {
        debug_assert!(self.pending.is_empty() && self.pending_log.is_empty(), "a batch at a time");
        Mark { log_size: self.log.size(), scope_head: self.heads.get(SCOPE_CHAIN).cloned() }
    }

    /// Forgets what the batch sealed since `mark` (decisions only).
    fn take_back(&mut self, mark: Mark) {
        for s in self.pending.drain(..) {
            self.sealed.remove(&s.id);
        }
        self.pending_log.clear();
        self.pending_segments.clear();
        self.log.truncate(mark.log_size);
        match mark.scope_head {
            Some(head) => self.heads.insert(SCOPE_CHAIN.to_owned(), head),
            None => self.heads.remove(SCOPE_CHAIN),
        };
    }

    /// Where the next record goes in the evidence log.
    fn next_place(&self) -> LogPlace<'_> {
        LogPlace { origin: self.checkpoints.origin(), index: self.log.size() }
    }

    /// Takes a record made at [`Self::next_place`] into the log, its chain
    /// and the pending batch; [`Self::checkpoint`] seals it and
    /// [`Self::place`] says where its document goes.
    fn push(&mut self, mut sealed: Sealed) -> Result<(), ProcessError> {
        let index =
            self.log.append(&sealed.message.hash).map_err(|e| ProcessError::Fatal(format!("evidence log: {e}")))?;
        let log_index = i64::try_from(index).map_err(|e| ProcessError::Fatal(format!("evidence log: {e}")))?;
        sealed.message.log_index = Some(log_index);
        self.pending_log.push(EvidenceLogRow {
            log_index,
            evidence_id: sealed.id,
            record_hash: sealed.message.hash.clone(),
            // set by the batch's checkpoint
            checkpoint_size: 0,
            // the record's, once it is published (`take_batch`)
            inclusion: Vec::new(),
        });
        // In place: a chain's head changes with every record.
        match self.heads.get_mut(&sealed.message.chain) {
            Some(head) => {
                head.sequence = sealed.message.sequence;
                head.hash.get_or_insert_default().clone_from(&sealed.message.hash);
            }
            None => {
                let head = ChainHead { sequence: sealed.message.sequence, hash: Some(sealed.message.hash.clone()) };
                self.heads.insert(sealed.message.chain.clone(), head);
            }
        }
        self.sealed.insert(sealed.id);
        self.pending.push(sealed);
        Ok(())
    }

    /// Encodes the batch's records (sealed by [`Self::checkpoint`]) for
    /// `evidence.records`, in the order they were made.
    fn publish(&self, out: &mut Output) -> Result<(), ProcessError> {
        // Counted per type once a batch, not looked up per record.
        let mut counted: Vec<(EvidenceType, u64)> = Vec::new();
        for s in &self.pending {
            let t = s.message.evidence_type;
            match counted.iter_mut().find(|(seen, _)| *seen == t) {
                Some((_, n)) => *n += 1,
                None => counted.push((t, 1)),
            }
            // Sized for the message up front (its document, its proof's
            // base64 hashes, the rest): encoding then copies it once.
            let m = &s.message;
            let mut bytes = Vec::with_capacity(m.document.len() + m.inclusion.len() * 48 + 1024);
            psg_avro_codec::encode_into(m, &mut bytes).map_err(|e| ProcessError::Fatal(e.to_string()))?;
            out.records.push(OutRecord::new(&self.evidence_out, s.message.chain.as_bytes(), bytes));
        }
        for (t, n) in counted {
            metrics::counter!("psg_evidence_records_total", "type" => t.as_str()).increment(n);
        }
        Ok(())
    }

    /// Signs a checkpoint of the whole log when records were added since
    /// the last one: the record for `evidence.checkpoints`, with the
    /// consistency proof from the previous checkpoint. Every record it is
    /// the first to cover gets its inclusion proof and is sealed with its
    /// signature.
    fn checkpoint(&mut self) -> Result<Option<OutRecord>, ProcessError> {
        let size = self.log.size();
        if size == self.checkpointed {
            return Ok(None);
        }
        let fatal = |e: log::LogError| ProcessError::Fatal(format!("evidence log: {e}"));
        let previous = self.checkpointed;
        let root = self.log.root(size).map_err(fatal)?;
        // `pending` and `pending_log` hold the batch's records, filled
        // together, one entry each, the last ones of the log: all of them
        // are first covered here.
        let first = size - self.pending.len() as u64;
        let proofs = match self.pending.is_empty() {
            true => Vec::new(),
            false => {
                let (run_root, proofs) = self.log.run_inclusion(first).map_err(fatal)?;
                if run_root != root {
                    return Err(ProcessError::Fatal(format!(
                        "evidence log: the proofs of records {first}..{size} do not lead to the tree's root"
                    )));
                }
                proofs
            }
        };
        let text = self.checkpoints.sign(size, root).map_err(fatal)?;
        let consistency = if previous > 0 {
            log::encode_proof(&self.log.consistency(previous, size).map_err(fatal)?)
        } else {
            Vec::new()
        };
        let tree_size = i64::try_from(size).map_err(|e| ProcessError::Fatal(e.to_string()))?;
        let signature = self.checkpoints.signature(size, &root);
        for ((entry, record), proof) in
            self.pending_log.iter_mut().zip(self.pending.iter_mut()).zip(log::encode_proofs(&proofs))
        {
            record.seal(&signature, tree_size, proof);
            entry.checkpoint_size = tree_size;
        }
        let signed_at = chrono::Utc::now();
        let message = EvidenceCheckpoint {
            origin: self.checkpoints.origin().to_owned(),
            tree_size,
            root: log::encode_hash(&root),
            key_id: self.sealer.key_id().to_owned(),
            checkpoint: text,
            previous_size: (previous > 0).then_some(previous as i64),
            consistency,
            signed_at: signed_at.timestamp_micros(),
        };
        let bytes = psg_avro_codec::encode(&message).map_err(|e| ProcessError::Fatal(e.to_string()))?;
        let record = OutRecord::new(&self.checkpoints_topic, message.origin.as_bytes(), bytes);
        self.pending_checkpoints.push(EvidenceCheckpointRow {
            origin: message.origin,
            tree_size,
            root: message.root,
            key_id: message.key_id,
            checkpoint: message.checkpoint,
            previous_size: message.previous_size,
            consistency: message.consistency,
            signed_at,
        });
        self.checkpointed = size;
        metrics::counter!("psg_evidence_checkpoints_total").increment(1);
        metrics::gauge!("psg_evidence_log_size").set(size as f64);
        Ok(Some(record))
    }

    /// Puts the batch's documents of each chain into one segment
    /// ([`crate::record::segment_path`]), in sequence order, each followed
    /// by a newline, and names each record's document by its URL and byte
    /// range (its `storage_url`). A segment is kept (locked, on S3 with
    /// Object Lock) until the latest `expires_at` of its records.
    fn place(&mut self) {
        // A batch's records of a chain have consecutive sequences (its head
        // moves with each), so a chain's segment is one run of them.
        let mut chains: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, s) in self.pending.iter().enumerate() {
            let chain = s.message.chain.as_str();
            match chains.iter_mut().find(|(c, _)| *c == chain) {
                Some((_, records)) => records.push(i),
                None => chains.push((chain, vec![i])),
            }
        }
        let mut urls = vec![String::new(); self.pending.len()];
        let mut segments = Vec::with_capacity(chains.len());
        for (chain, records) in &chains {
            debug_assert!(
                records
                    .windows(2)
                    .all(|w| self.pending[w[1]].message.sequence == self.pending[w[0]].message.sequence + 1),
                "a chain's records in a batch are consecutive"
            );
            let (first, last) = (&self.pending[records[0]], &self.pending[records[records.len() - 1]]);
            let path = crate::record::segment_path(chain, first.message.sequence, last.message.sequence);
            let url = self.documents.url(&path);
            let size = records.iter().map(|&i| self.pending[i].message.document.len() + 1).sum();
            let mut bytes = Vec::with_capacity(size);
            let mut keep = i64::MIN;
            for &i in records {
                let record = &self.pending[i].message;
                let start = bytes.len();
                bytes.extend_from_slice(record.document.as_bytes());
                urls[i] = format!("{url}#bytes={start}-{}", bytes.len() - 1);
                bytes.push(b'\n');
                keep = keep.max(record.expires_at);
            }
            segments.push(Doc { path, bytes: bytes.into(), retain_until: Some(keep) });
        }
        for (s, url) in self.pending.iter_mut().zip(urls) {
            s.message.storage_url = Some(url);
        }
        self.pending_segments = segments;
    }

    /// Moves the batch just processed from the pending state to the queue
    /// of writes. With a database whose pool can spare the connections,
    /// its write starts now and overlaps the next batches' processing (it
    /// commits once acknowledged, after the batch before it); otherwise
    /// `persist` writes it.
    fn queue_write(&mut self) -> Result<(), ProcessError> {
        let batch = self.take_batch().map_err(|e| ProcessError::Fatal(e.to_string()))?;
        self.queue(batch);
        Ok(())
    }

    /// Queues `batch`'s write after the others. An empty batch's write
    /// stores nothing, so the next write commits after the one before it.
    fn queue(&mut self, batch: Batch) {
        if batch.is_empty() {
            self.writes.push_back(Write::later(batch, None));
            return;
        }
        let (durable, next) = tokio::sync::oneshot::channel();
        let after = self.last_durable.replace(next);
        let write = match &self.store {
            Some(store) if store.pool_size() >= EARLY_WRITE_CONNECTIONS => {
                Write::start(batch, &self.documents, store, after, durable)
            }
            _ => Write::later(batch, Some(durable)),
        };
        self.writes.push_back(write);
    }

    /// The pending records, log entries and checkpoints as a [`Batch`]:
    /// the documents' segments ([`Self::place`]), checkpoints (kept as
    /// long as the newest record they cover) and, without a database,
    /// markers; then the leaf tiles the batch touched, the log head and the
    /// chain heads.
    fn take_batch(&mut self) -> Result<Batch, crate::Error> {
        let err = |e: log::LogError| crate::Error::Other(format!("evidence log: {e}"));
        let mut documents: Vec<Doc> = std::mem::take(&mut self.pending_segments);
        let mut growing = Vec::new();
        let size = self.log.size();
        if let Some(first) = self.pending_log.first() {
            let first_tile = first.log_index.unsigned_abs() / LEAF_TILE;
            for tile in first_tile..size.div_ceil(LEAF_TILE) {
                let from = tile * LEAF_TILE;
                let to = (from + LEAF_TILE).min(size);
                let bytes: Vec<u8> = self.log.leaf_hashes(from, to).map_err(err)?.iter().flat_map(|h| h.0).collect();
                growing.push((Self::leaf_tile_path(tile), bytes));
            }
        }
        for c in &self.pending_checkpoints {
            documents.push(Doc {
                path: Self::checkpoint_path(c.tree_size.unsigned_abs()),
                bytes: c.checkpoint.clone().into_bytes().into(),
                retain_until: Some(crate::record::expiry(c.signed_at.timestamp_micros())),
            });
        }
        if let Some(c) = self.pending_checkpoints.last() {
            let head = serde_json::json!({"origin": c.origin, "size": c.tree_size, "root": c.root, "checkpoint": Self::checkpoint_path(c.tree_size.unsigned_abs())});
            growing.push((Self::LOG_HEAD.to_owned(), head.to_string().into_bytes()));
        }
        let chains: std::collections::BTreeSet<&str> = self.pending.iter().map(|s| s.message.chain.as_str()).collect();
        for chain in chains {
            let head = self.head(chain);
            let doc = serde_json::json!({"chain": chain, "sequence": head.sequence, "hash": head.hash});
            growing.push((Self::head_path(chain), doc.to_string().into_bytes()));
        }
        let mut rows = Vec::with_capacity(self.pending.len());
        debug_assert_eq!(self.pending.len(), self.pending_log.len(), "filled together by `push`");
        let mut log = std::mem::take(&mut self.pending_log);
        for (mut s, entry) in self.pending.drain(..).zip(log.iter_mut()) {
            // The record is published: its leaf row takes the proof over,
            // its row the rest.
            entry.inclusion = std::mem::take(&mut s.message.inclusion);
            if self.store.is_none() {
                let at = s.message.storage_url.clone().unwrap_or_default();
                documents.push(Doc::mutable(Self::marker_path(&s.message.chain, &s.id), at.into_bytes()));
            }
            rows.push(s.into_row());
        }
        Ok(Batch { rows, log, checkpoints: std::mem::take(&mut self.pending_checkpoints), documents, growing })
    }
}

/// Connections an early write needs the pool to have: the open
/// transactions of the batches waiting for their commit (`PERSIST_LAG`),
/// the next batch's processing (its duplicate check) and that batch's own
/// write.
const EARLY_WRITE_CONNECTIONS: usize = <Evidence as Processor>::PERSIST_LAG + 2;

/// Why the evidence service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "the evidence service needs a signing key: create one with `pci-scope-guard keygen` and pass --signing-key FILE"
    )]
    NoSigningKey,
    /// The signing key or the document store.
    #[error(transparent)]
    Setting(#[from] crate::Error),
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

impl psg_service::BuildFailure for BuildError {
    fn is_setting(&self) -> bool {
        !matches!(self, Self::Restore(_))
    }
}

impl psg_service::Service for Evidence {
    const NAME: &'static str = "evidence";
    const CONFIG_SECTION: &'static str = "evidence";
    type Error = BuildError;

    /// Opens the signing key and the document store, then restores the
    /// chains and the evidence log.
    async fn build(cfg: &Config, store: Option<Store>) -> Result<Self, Self::Error> {
        let key_path = cfg.evidence.signing_key.as_ref().ok_or(BuildError::NoSigningKey)?;
        let key = crate::keys::load_signing_key(key_path)?;
        let sealer = Sealer::new(key, cfg.evidence.generated_by.clone());
        let documents = Documents::configured(&cfg.evidence)?;
        match documents.prepare().await? {
            Keeping::Local => {
                tracing::info!(store = %cfg.evidence.store_url, "evidence documents in a local directory, flushed per batch (no retention lock)")
            }
            Keeping::Memory => tracing::info!("evidence documents in memory: they end with the process"),
            Keeping::S3 { locked: true } => {
                tracing::info!(store = %cfg.evidence.store_url, "evidence documents on S3, records and checkpoints under Object Lock (compliance mode) until they expire")
            }
            Keeping::S3 { locked: false } => {
                tracing::warn!(store = %cfg.evidence.store_url, object_lock = ?cfg.evidence.object_lock, "evidence documents on S3 WITHOUT Object Lock: the bucket has none, or evidence.object-lock is off")
            }
        }
        let mut e = Self::new(cfg, store, sealer, documents);
        e.restore().await?;
        Ok(e)
    }

    /// Scope decisions and on-demand requests; with the database also the
    /// edges and the coverage its periodic reports are made from.
    fn topics(&self) -> psg_service::Topics {
        let mut streams = vec![self.decisions_topic.clone(), self.requests_topic.clone()];
        let mut tables = Vec::new();
        if self.store.is_some() {
            streams.push(self.edges_topic.clone());
            tables.push(self.coverage_topic.clone());
        }
        psg_service::Topics {
            streams,
            tables,
            outputs: vec![TopicSpec::stream(&self.evidence_out), TopicSpec::table(&self.checkpoints_topic)],
            dead_letter: self.dead_letter.clone(),
        }
    }
}

impl Processor for Evidence {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        let mut jobs = Vec::with_capacity(batch.len());
        let mut clock = self.clock;
        let mut earliest = i64::MAX;
        for msg in batch {
            if *msg.topic == *self.coverage_topic {
                if msg.payload.is_some() {
                    match psg_avro_codec::decode::<psg_domain::FlowCoverage>(msg.payload()) {
                        Ok(c) => {
                            self.coverage.entry(c.unit.clone()).or_default().insert(c.partition, c);
                        }
                        Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
                    }
                }
            } else if *msg.topic == *self.edges_topic {
                match psg_avro_codec::decode::<FlowEdge>(msg.payload()) {
                    Ok(e) => {
                        clock = clock.max(e.last_seen);
                        earliest = earliest.min(e.first_seen);
                    }
                    Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
                }
            } else if *msg.topic == *self.requests_topic {
                match psg_avro_codec::decode::<EvidenceRequest>(msg.payload()) {
                    Ok(r) => match check_request(&r, self.store.is_some()) {
                        Ok(types) => jobs.push(Job::Reports(
                            Period {
                                start: r.period_start,
                                end: r.period_end,
                                trigger: "on-demand".into(),
                                request_id: Some(r.request_id.clone()),
                                generated_at: r.requested_at,
                            },
                            types,
                        )),
                        Err(reason) => out.dead_letters.push(DeadLetter::whole(msg, "invalid", reason.to_string())),
                    },
                    Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
                }
            } else {
                match psg_avro_codec::decode::<ScopeDecision>(msg.payload()) {
                    Ok(d) => {
                        // as_of 0: decided before any flow (inventory only),
                        // no event time to move the report clock with
                        if d.as_of > 0 {
                            clock = clock.max(d.as_of);
                            earliest = earliest.min(d.as_of);
                        }
                        let id = scope_identification_id(&d);
                        jobs.push(Job::Decision(d, id));
                    }
                    Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
                }
            }
        }
        // Periods event time has closed.
        let mut next = self.next_period_end;
        if self.store.is_some() && clock > i64::MIN {
            // The first period reported is the one of the first event seen.
            let mut n = next.unwrap_or_else(|| reports::period_end(earliest.min(clock), self.period));
            let mut made = 0;
            while clock >= n.saturating_add(self.grace) && made < MAX_PERIODS_PER_BATCH {
                let period = Period {
                    start: n - self.period,
                    end: n,
                    trigger: "scheduled".into(),
                    request_id: None,
                    generated_at: n,
                };
                jobs.push(Job::Reports(period, PERIODIC.to_vec()));
                n += self.period;
                made += 1;
            }
            next = Some(n);
        }

        // Fallible I/O before any state changes: a failure retries the batch.
        let mut reports_to_seal: Vec<Option<Vec<Report>>> = Vec::with_capacity(jobs.len());
        let mut asked = Asked::default();
        for job in &jobs {
            match job {
                Job::Decision(d, id) => {
                    asked.decisions.push((*id, d));
                    reports_to_seal.push(None);
                }
                Job::Reports(p, types) => {
                    let data = self.period_data(p).await?;
                    let made: Vec<Report> = types.iter().filter_map(|t| reports::by_type(*t, p, &data)).collect();
                    for r in &made {
                        asked.reports.push((report_id(r), r.evidence_type.as_str()));
                    }
                    reports_to_seal.push(Some(made));
                }
            }
        }
        let duplicates = match (&self.store, reports_to_seal.iter().all(Option::is_none)) {
            // Decisions only (the usual batch), with the database: sealed
            // while the duplicate check runs, as if none were stored, and
            // taken back and sealed again in the rare case some were.
            (Some(store), true) if !asked.decisions.is_empty() => {
                let store = store.clone();
                let lookup = asked.lookup();
                let check = tokio::spawn(async move { psg_store::evidence::existing(&store, &lookup).await });
                let mark = self.mark();
                let ahead = self.seal_jobs(&jobs, jobs.iter().map(|_| None).collect(), &HashSet::new());
                let waiting = std::time::Instant::now();
                let stored = match check.await {
                    Ok(Ok(stored)) => Ok(stored),
                    Ok(Err(e)) => Err(ProcessError::classify(e.is_transient(), e)),
                    Err(e) => Err(ProcessError::Transient(format!("the duplicate check: {e}"))),
                };
                metrics::histogram!("psg_evidence_dedup_seconds").record(waiting.elapsed().as_secs_f64());
                match (stored, ahead) {
                    (Ok(found), Ok(duplicates)) if found.is_empty() => duplicates,
                    (Ok(found), Ok(_)) => {
                        self.take_back(mark);
                        self.seal_jobs(&jobs, reports_to_seal, &asked.stored(&found))?
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        self.take_back(mark);
                        return Err(e);
                    }
                }
            }
            _ => {
                let checking = std::time::Instant::now();
                let stored = self.stored(&asked).await?;
                metrics::histogram!("psg_evidence_dedup_seconds").record(checking.elapsed().as_secs_f64());
                self.seal_jobs(&jobs, reports_to_seal, &stored)?
            }
        };
        metrics::counter!("psg_evidence_duplicates_total").increment(duplicates);
        let checkpoint = self.checkpoint()?;
        self.place();
        self.publish(&mut out)?;
        out.records.extend(checkpoint);
        self.queue_write()?;
        self.clock = clock;
        self.next_period_end = next;
        Ok(out)
    }

    /// Makes the oldest processed batch durable (its documents, then its
    /// rows committed): the runner calls this once per `process`, in order,
    /// after that batch's outputs were acknowledged.
    async fn persist(&mut self) -> Result<(), ProcessError> {
        let Some(write) = self.writes.front_mut() else { return Ok(()) };
        write.finish(&self.documents, self.store.as_ref()).await?;
        // Durable now: the duplicate check finds these records where they
        // are stored, so this process need not remember them (memory stays
        // bounded however long it runs).
        for id in write.record_ids() {
            self.sealed.remove(&id);
        }
        self.writes.pop_front();
        self.acknowledged = self.acknowledged.saturating_sub(1);
        Ok(())
    }

    /// The oldest batch not yet acknowledged was: its write commits in the
    /// background from now on (after the batch before it), so that its
    /// `persist`, `PERSIST_LAG` batches later, finds it done.
    fn acknowledged(&mut self) {
        if let Some(write) = self.writes.get_mut(self.acknowledged) {
            write.acknowledge();
            self.acknowledged += 1;
        }
    }

    /// Nothing to write for the end of input; `persist` follows.
    async fn end_of_input(&mut self) -> Result<Output, ProcessError> {
        self.queue(Batch::default());
        Ok(Output::default())
    }

    /// The batch being finished was processed before the next one is: its
    /// write runs meanwhile (see [`crate::writes`]), and `persist` commits
    /// only its own batch.
    const PIPELINED: bool = true;

    /// A batch's write runs while the two batches after it are processed:
    /// the database write takes about twice a batch's processing, and its
    /// commit (from the acknowledgement, after the next batch is processed)
    /// is then done when `persist` comes.
    const PERSIST_LAG: usize = 2;
}

/// Why an evidence request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RequestError {
    #[error("evidence reports are made from the database, and this evidence service has none")]
    NoDatabase,
    #[error("period_end {end} is not after period_start {start}")]
    EmptyPeriod { start: Micros, end: Micros },
    #[error("pci_scope_identification records are made per scope decision, not on request")]
    ScopeIdentification,
}

/// The report types a request asks for, or why it cannot be served.
fn check_request(r: &EvidenceRequest, have_db: bool) -> Result<Vec<EvidenceType>, RequestError> {
    if !have_db {
        return Err(RequestError::NoDatabase);
    }
    if r.period_end <= r.period_start {
        return Err(RequestError::EmptyPeriod { start: r.period_start, end: r.period_end });
    }
    if r.evidence_types.contains(&EvidenceType::ScopeIdentification) {
        return Err(RequestError::ScopeIdentification);
    }
    Ok(if r.evidence_types.is_empty() { PERIODIC.to_vec() } else { r.evidence_types.clone() })
}
