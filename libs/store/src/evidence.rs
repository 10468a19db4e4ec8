//! `evidence`: the index rows of signed, chained evidence documents.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use psg_domain::rows::{EvidenceCheckpointRow, EvidenceLogRow, EvidenceRow};
use tokio_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, Type};
use uuid::Uuid;

use crate::{Error, Result, Store};
use psg_domain::log_tree;

/// The last record of a chain: its sequence number and hash.
pub async fn chain_head(store: &Store, chain: &str) -> Result<Option<(i64, String)>> {
    let client = store.client().await?;
    let row = client
        .query_opt("SELECT sequence, hash FROM evidence WHERE chain = $1 ORDER BY sequence DESC LIMIT 1", &[&chain])
        .await
        .map_err(Error::pg("reading the chain head"))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// What a duplicate check asks: records by id, and decisions by id, whose
/// `pci_scope_identification` record is asked for whatever its own id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    pub records: Vec<Uuid>,
    pub decisions: Vec<Uuid>,
}

/// What it found stored: which of the records, and which of the decisions
/// have a `pci_scope_identification` record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub records: HashSet<Uuid>,
    pub decisions: HashSet<Uuid>,
}

impl Found {
    /// Nothing asked for is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.decisions.is_empty()
    }
}

/// [`existing`]'s query: records by id, and records by decision (at most
/// one each: both keys are unique). One index probe per key, whatever the
/// planner knows of the table: `id = ANY($1)` over a thousand keys,
/// in a table of some 200,000 narrow rows never analyzed, was planned as a
/// scan of the whole table (60 ms, where the probes take 5 to 10); a
/// `LATERAL … LIMIT 1` per key can only be an index probe or a scan per
/// key, and the probe is always the cheaper.
pub(crate) const EXISTING: &str = "SELECT e.id, NULL::uuid, NULL::text
       FROM unnest($1::uuid[]) AS k(id),
            LATERAL (SELECT id FROM evidence WHERE id = k.id LIMIT 1) e
     UNION ALL
     SELECT NULL::uuid, e.scope_decision_id, e.evidence_type::text
       FROM unnest($2::uuid[]) AS k(id),
            LATERAL (SELECT scope_decision_id, evidence_type FROM evidence
                      WHERE scope_decision_id = k.id LIMIT 1) e";

/// Which of `lookup`'s records, and of its decisions' records, are stored.
/// A decision is looked up by `scope_decision_id` (its index), so that its
/// record is found under the id it was stored with, whichever scheme made it.
pub async fn existing(store: &Store, lookup: &Lookup) -> Result<Found> {
    // The type is checked on the rows found, not in the query: given a
    // condition on evidence_type, the planner may add the (evidence_type,
    // pci_requirement) index to the lookup, and every row of the type is in
    // that part of it.
    let client = store.client().await?;
    // Prepared once per connection: the query is planned once, not per batch.
    let statement = client.prepare_cached(EXISTING).await.map_err(Error::pg("preparing the evidence lookup"))?;
    let rows = client
        .query(&statement, &[&lookup.records, &lookup.decisions])
        .await
        .map_err(Error::pg("reading evidence ids"))?;
    let mut found = Found::default();
    for r in &rows {
        if let Some(id) = r.get::<_, Option<Uuid>>(0) {
            found.records.insert(id);
        }
        if let (Some(decision), Some("pci_scope_identification")) =
            (r.get::<_, Option<Uuid>>(1), r.get::<_, Option<&str>>(2))
        {
            found.decisions.insert(decision);
        }
    }
    Ok(found)
}

/// Inserts evidence rows in one statement. A row whose id is stored
/// already is skipped (redelivery); a different row at a stored
/// (chain, sequence) is an error: the chain would fork. The rows are not
/// in the evidence log (no `log_index`).
pub async fn insert_evidence(store: &Store, rows: &[EvidenceRow]) -> Result<()> {
    append(store, rows, &[], &[]).await
}

/// In one transaction: evidence rows, their leaves of the evidence log and
/// the log's checkpoints. A redelivered batch writes the same rows again
/// and changes nothing; a different leaf at a stored log index, or a
/// different root at a stored checkpoint, is an error: the log would fork.
pub async fn append(
    store: &Store,
    rows: &[EvidenceRow],
    log: &[EvidenceLogRow],
    checkpoints: &[EvidenceCheckpointRow],
) -> Result<()> {
    let ready = std::future::ready(Ok::<(), std::convert::Infallible>(()));
    append_when(store, rows, log, checkpoints, ready).await.map_err(|e| match e {
        AppendError::Store(e) => e,
        AppendError::Before(never) => match never {},
    })
}

/// Why [`append_when`] did not commit.
#[derive(Debug, thiserror::Error)]
pub enum AppendError<E> {
    #[error(transparent)]
    Store(Error),
    /// What had to succeed before the commit failed: nothing was committed.
    #[error(transparent)]
    Before(E),
}

/// As [`append`], committing only once `before` has succeeded too (the
/// documents the rows name are durable, say), while the rows are written:
/// the two overlap, and a failure of either commits nothing.
pub async fn append_when<E>(
    store: &Store,
    rows: &[EvidenceRow],
    log: &[EvidenceLogRow],
    checkpoints: &[EvidenceCheckpointRow],
    before: impl Future<Output = std::result::Result<(), E>>,
) -> std::result::Result<(), AppendError<E>> {
    if rows.is_empty() && log.is_empty() && checkpoints.is_empty() {
        return before.await.map_err(AppendError::Before);
    }
    let mut client = store.client().await.map_err(AppendError::Store)?;
    let tx = client.transaction().await.map_err(|e| AppendError::Store(Error::pg("starting the evidence write")(e)))?;
    let statements =
        Statements::prepare(&tx).await.map_err(|e| AppendError::Store(Error::pg("preparing the evidence write")(e)))?;
    let statements = &statements;
    let t: &tokio_postgres::Transaction<'_> = &tx;
    // Each record's place in the log, from the batch's leaves.
    let places: HashMap<Uuid, i64> = log.iter().map(|l| (l.evidence_id, l.log_index)).collect();
    let places = &places;
    let writes = async {
        if !rows.is_empty() {
            // New rows (the usual case) by binary COPY, or by a plain INSERT
            // for a role under `evidence`'s row security (PostgreSQL refuses
            // COPY FROM there; the service's own role of
            // deploy/postgres/roles.sql is); a batch with a stored row
            // (redelivery) by an INSERT skipping those: a different row at a
            // stored chain and sequence still fails (the chain would fork).
            let skip_stored =
                async { insert_rows(t, rows, places, true).await.map_err(Error::pg("inserting evidence")) };
            let row_security: bool = t
                .query_one(&statements.row_security, &[])
                .await
                .map_err(Error::pg("asking about evidence's row security"))?
                .get(0);
            if row_security {
                crate::unless_stored(t, "inserting evidence", insert_rows(t, rows, places, false), skip_stored).await?;
            } else {
                let data = copy_data(rows, places)?;
                // A stored id, hash or chain position fails the COPY on its key.
                let copied = crate::copy::send(t, &statements.copy_rows, data);
                crate::unless_stored(t, "inserting evidence", copied, skip_stored).await?;
            }
            // After the rows: a decision deleted meanwhile is then either
            // seen gone here or cascades to them (migration 0020).
            require_decisions(t, &statements.require_decisions, rows).await?;
        }
        append_leaves(t, &statements.copy_runs, log, checkpoints).await?;
        insert_checkpoints(t, &statements.insert_checkpoint, checkpoints).await
    };
    let (written, ready) = tokio::join!(writes, before);
    // Dropping the transaction uncommitted rolls it back.
    ready.map_err(AppendError::Before)?;
    written.map_err(AppendError::Store)?;
    tx.commit().await.map_err(|e| AppendError::Store(Error::pg("committing the evidence write")(e)))
}

/// The statements of an evidence write, prepared together (one round trip
/// for all) the first time a connection writes, then taken from its cache
/// (deadpool's statement cache): a batch's write parses and plans none of
/// them again.
struct Statements {
    row_security: tokio_postgres::Statement,
    copy_rows: tokio_postgres::Statement,
    require_decisions: tokio_postgres::Statement,
    copy_runs: tokio_postgres::Statement,
    insert_checkpoint: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(tx: &deadpool_postgres::Transaction<'_>) -> std::result::Result<Self, tokio_postgres::Error> {
        let copy_rows = format!("COPY evidence ({COPY_COLUMNS}) FROM STDIN (FORMAT binary)");
        let copy_runs = format!("COPY evidence_log_batches ({RUN_COLUMNS}) FROM STDIN (FORMAT binary)");
        let (row_security, copy_rows, require_decisions, copy_runs, insert_checkpoint) = tokio::try_join!(
            tx.prepare_cached("SELECT row_security_active('evidence')"),
            tx.prepare_cached(&copy_rows),
            tx.prepare_cached("SELECT psg_require_decisions($1::uuid[])"),
            tx.prepare_cached(&copy_runs),
            tx.prepare_cached(INSERT_CHECKPOINT),
        )?;
        Ok(Self { row_security, copy_rows, require_decisions, copy_runs, insert_checkpoint })
    }
}

/// The foreign key of `evidence.scope_decision_id`, checked once per
/// batch (migration 0020): every decision the rows name must exist, or the
/// write fails with SQLSTATE 23503 (foreign_key_violation) naming them, as
/// a row-by-row key would.
async fn require_decisions(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    rows: &[EvidenceRow],
) -> Result<()> {
    let mut ids: Vec<Uuid> = rows.iter().filter_map(|e| e.scope_decision_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(statement, &[&ids]).await.map(drop).map_err(Error::pg("checking the scope decisions evidence names"))
}

/// The columns the `evidence` COPY ([`Statements`]) writes, in its order.
const COPY_COLUMNS: &str = "id, scope_decision_id, evidence_type, data, hash, signature, signing_key_id, storage_url, \
                            pci_requirement, generated_at, generated_by, expires_at, verification_count, chain, \
                            sequence, prev_hash, log_index";

/// `rows` (with their places in the log) as binary COPY data, in chain
/// order. Binary COPY carries no type ids: an enum's value is its label, as
/// text's (`enum_recv`), and varchar's bytes are text's.
fn copy_data(rows: &[EvidenceRow], places: &HashMap<Uuid, i64>) -> Result<Vec<Vec<bytes::Bytes>>> {
    let mut ordered: Vec<&EvidenceRow> = rows.iter().collect();
    ordered.sort_by(|a, b| (&a.chain, a.sequence).cmp(&(&b.chain, b.sequence)));
    let mut out = crate::copy::BinaryRows::new();
    for e in ordered {
        copy_row(&mut out, e, places.get(&e.id))
            .map_err(|err| Error::Data(format!("encoding evidence {} for COPY: {err}", e.id)))?;
        out.end_row();
    }
    Ok(out.finish())
}

/// One row of [`copy_data`], its values in [`COPY_COLUMNS`]' order.
fn copy_row(
    out: &mut crate::copy::BinaryRows,
    e: &EvidenceRow,
    log_index: Option<&i64>,
) -> std::result::Result<(), crate::copy::EncodeError> {
    out.row(17);
    out.value(&Type::UUID, &e.id)?;
    out.value(&Type::UUID, &e.scope_decision_id)?;
    out.value(&Type::TEXT, &e.evidence_type.as_str())?;
    out.value(&Type::JSONB, &Json(e.data.raw()))?;
    out.value(&Type::TEXT, &e.hash)?;
    out.value(&Type::TEXT, &e.signature)?;
    out.value(&Type::TEXT, &e.signing_key_id)?;
    out.value(&Type::TEXT, &e.storage_url)?;
    out.value(&Type::TEXT, &e.pci_requirement)?;
    out.value(&Type::TIMESTAMPTZ, &e.generated_at)?;
    out.value(&Type::TEXT, &e.generated_by)?;
    out.value(&Type::TIMESTAMPTZ, &e.expires_at)?;
    out.value(&Type::INT4, &0i32)?;
    out.value(&Type::TEXT, &e.chain)?;
    out.value(&Type::INT8, &e.sequence)?;
    out.value(&Type::TEXT, &e.prev_hash)?;
    out.value(&Type::INT8, &log_index)
}

/// Inserts `rows` in one statement; with `skip_stored`, a row whose id is
/// stored already is skipped (`ON CONFLICT (id) DO NOTHING`), without, it
/// fails the statement.
async fn insert_rows(
    client: &impl GenericClient,
    rows: &[EvidenceRow],
    places: &HashMap<Uuid, i64>,
    skip_stored: bool,
) -> std::result::Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&EvidenceRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let ids: Vec<Uuid> = rows.iter().map(|e| e.id).collect();
    let decisions: Vec<Option<Uuid>> = rows.iter().map(|e| e.scope_decision_id).collect();
    let types = col(|e| e.evidence_type.as_str().to_owned());
    let data: Vec<Json<&serde_json::value::RawValue>> = rows.iter().map(|e| Json(e.data.raw())).collect();
    let hashes = col(|e| e.hash.clone());
    let signatures = col(|e| e.signature.clone());
    let key_ids = col(|e| e.signing_key_id.clone());
    let urls: Vec<Option<&str>> = rows.iter().map(|e| e.storage_url.as_deref()).collect();
    let requirements: Vec<Option<&str>> = rows.iter().map(|e| e.pci_requirement.as_deref()).collect();
    let generated_at: Vec<DateTime<Utc>> = rows.iter().map(|e| e.generated_at).collect();
    let generated_by = col(|e| e.generated_by.clone());
    let expires_at: Vec<DateTime<Utc>> = rows.iter().map(|e| e.expires_at).collect();
    let chains = col(|e| e.chain.clone());
    let sequences: Vec<i64> = rows.iter().map(|e| e.sequence).collect();
    let prev: Vec<Option<&str>> = rows.iter().map(|e| e.prev_hash.as_deref()).collect();
    let log_indexes: Vec<Option<i64>> = rows.iter().map(|e| places.get(&e.id).copied()).collect();
    let sql = format!(
        "INSERT INTO evidence (id, scope_decision_id, evidence_type, data, hash, signature, signing_key_id,
                                   storage_url, pci_requirement, generated_at, generated_by, expires_at,
                                   verification_count, chain, sequence, prev_hash, log_index)
             SELECT id, dec, typ::evidence_type, data, hash, sig, kid, url, req, gen_at, gen_by, exp, 0, chain, seq,
                    prev, place
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::timestamptz[],
                           $13::text[], $14::int8[], $15::text[], $16::int8[])
                    AS t(id, dec, typ, data, hash, sig, kid, url, req, gen_at, gen_by, exp, chain, seq, prev, place)
             ORDER BY chain, seq {}",
        if skip_stored { "ON CONFLICT (id) DO NOTHING" } else { "" }
    );
    client
        .execute(
            &sql,
            &[
                &ids,
                &decisions,
                &types,
                &data,
                &hashes,
                &signatures,
                &key_ids,
                &urls,
                &requirements,
                &generated_at,
                &generated_by,
                &expires_at,
                &chains,
                &sequences,
                &prev,
                &log_indexes,
            ],
        )
        .await
}

/// Appends `log`'s leaves to `evidence_log_batches`, a row per run of
/// consecutive leaves first covered by the same checkpoint (migration
/// 0021): by binary COPY when none is stored yet (the usual case: each
/// leaf is written once, by the batch that appended it); a batch with a
/// stored leaf (redelivered after a restart) fails the COPY on a key and
/// goes through [`insert_leaves`] instead, which skips leaves stored as
/// they are and refuses a fork.
async fn append_leaves(
    tx: &tokio_postgres::Transaction<'_>,
    copy: &tokio_postgres::Statement,
    log: &[EvidenceLogRow],
    checkpoints: &[EvidenceCheckpointRow],
) -> Result<()> {
    if log.is_empty() {
        return Ok(());
    }
    let mut leaves: Vec<&EvidenceLogRow> = log.iter().collect();
    leaves.sort_by_key(|l| l.log_index);
    // The roots the batch's checkpoints sign, by tree size.
    let roots: HashMap<i64, log_tree::Hash> =
        checkpoints.iter().filter_map(|c| Some((c.tree_size, B64.decode(&c.root).ok()?.try_into().ok()?))).collect();
    let runs = runs(&leaves, &roots)?;
    let copied = async { copy_runs(tx, copy, &runs).await.map(|_| ()) };
    crate::unless_stored(tx, "appending to the evidence log", copied, insert_leaves(tx, &leaves, &roots)).await
}

/// Consecutive leaves first covered by the same checkpoint: one row of
/// `evidence_log_batches`.
#[derive(Debug, PartialEq)]
struct Run {
    first_index: i64,
    evidence_ids: Vec<Uuid>,
    /// The leaves' 32 bytes each, in order.
    record_hashes: Vec<u8>,
    checkpoint_size: i64,
    /// Each leaf's proof as its hashes' bytes, 32 each.
    inclusion: Vec<Vec<u8>>,
    /// The hashes of the complete subtrees left of the run (32 bytes each,
    /// largest first), when they and the leaves give every proof: the run
    /// ends at its checkpoint and its proofs are that tree's. The proofs are
    /// then computed, not stored (migration 0022).
    left_subtrees: Option<Vec<u8>>,
}

impl Run {
    fn end(&self) -> i64 {
        self.first_index + self.evidence_ids.len() as i64
    }

    fn records(&self) -> Vec<log_tree::Hash> {
        log_tree::hashes_of(&self.record_hashes)
    }

    /// The subtrees left of the run as its first proof (`first_proof`,
    /// its hashes' bytes) names them, and the proofs they and the run's
    /// leaves give; `None` when the run does not end at its checkpoint.
    fn computed(&self, first_proof: &[u8]) -> Option<(Vec<log_tree::Hash>, log_tree::Hash, Vec<Vec<log_tree::Hash>>)> {
        let (first, left) = self.left_of(first_proof)?;
        let (root, proofs) = log_tree::run_proofs(first, &self.records(), &left).ok()?;
        Some((left, root, proofs))
    }

    /// The run's first leaf index and the subtrees left of it, read off its
    /// first leaf's proof, when the run ends at its checkpoint's size.
    fn left_of(&self, first_proof: &[u8]) -> Option<(u64, Vec<log_tree::Hash>)> {
        let first = u64::try_from(self.first_index).ok()?;
        if self.checkpoint_size != self.end() {
            return None;
        }
        let size = u64::try_from(self.checkpoint_size).ok()?;
        Some((first, log_tree::subtrees_left_of(first, size, &log_tree::hashes_of(first_proof))?))
    }

    /// The subtrees left of the run (see `left_subtrees`), when with its
    /// leaves they give `root`, the root its checkpoint signs.
    fn subtrees_giving(&self, first_proof: &[u8], root: &log_tree::Hash) -> Option<Vec<u8>> {
        let (first, left) = self.left_of(first_proof)?;
        let ours = log_tree::run_root(first, &self.records(), &left).ok()?;
        (ours == *root).then(|| left.concat())
    }

    /// The subtrees left of the run (see `left_subtrees`), when every proof
    /// they and its leaves give is the one given (`inclusion`).
    fn subtrees_proving(&self) -> Option<Vec<u8>> {
        let (left, _, proofs) = self.computed(self.inclusion.first()?)?;
        let same = proofs.iter().zip(&self.inclusion).all(|(ours, given)| ours.as_flattened() == given.as_slice());
        same.then(|| left.concat())
    }

    /// The row's values, in [`RUN_COLUMNS`]' order; no proofs when they
    /// are computed.
    fn values(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 6] {
        static COMPUTED: Option<Vec<Vec<u8>>> = None;
        let inclusion: &(dyn tokio_postgres::types::ToSql + Sync) =
            if self.left_subtrees.is_none() { &self.inclusion } else { &COMPUTED };
        [
            &self.first_index,
            &self.evidence_ids,
            &self.record_hashes,
            &self.checkpoint_size,
            inclusion,
            &self.left_subtrees,
        ]
    }
}

/// `leaves` (in log order) as runs. A run whose leaves and the subtrees
/// left of it (read off its first proof) give the root that `roots` holds
/// for its checkpoint (signed in the same write) keeps those subtrees: its
/// proofs are that tree's by construction and are not read. Any other run
/// is checked proof by proof ([`Run::subtrees_proving`]).
fn runs(leaves: &[&EvidenceLogRow], roots: &HashMap<i64, log_tree::Hash>) -> Result<Vec<Run>> {
    let mut out: Vec<Run> = Vec::new();
    let mut members: Vec<Vec<&EvidenceLogRow>> = Vec::new();
    for l in leaves {
        let hash = hash_bytes(&l.record_hash).ok_or_else(|| {
            Error::Data(format!("evidence log leaf {} is '{}', not a hex SHA-256 hash", l.log_index, l.record_hash))
        })?;
        match (out.last_mut(), members.last_mut()) {
            (Some(run), Some(these)) if run.end() == l.log_index && run.checkpoint_size == l.checkpoint_size => {
                run.evidence_ids.push(l.evidence_id);
                run.record_hashes.extend_from_slice(&hash);
                these.push(l);
            }
            _ => {
                out.push(Run {
                    first_index: l.log_index,
                    evidence_ids: vec![l.evidence_id],
                    record_hashes: hash.to_vec(),
                    checkpoint_size: l.checkpoint_size,
                    inclusion: Vec::new(),
                    left_subtrees: None,
                });
                members.push(vec![l]);
            }
        }
    }
    for (run, these) in out.iter_mut().zip(members) {
        let first_proof = proof_bytes(these[0])?;
        run.left_subtrees = roots.get(&run.checkpoint_size).and_then(|root| run.subtrees_giving(&first_proof, root));
        if run.left_subtrees.is_none() {
            run.inclusion = these.iter().map(|l| proof_bytes(l)).collect::<Result<_>>()?;
            run.left_subtrees = run.subtrees_proving();
        }
    }
    Ok(out)
}

fn hash_bytes(hex_hash: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut out).ok().map(|()| out)
}

/// A leaf's inclusion proof as `evidence_log_batches.inclusion` keeps it:
/// the hashes' 32 bytes each, in order (records carry them as base64).
fn proof_bytes(l: &EvidenceLogRow) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(l.inclusion.len() * 32);
    for hash in &l.inclusion {
        let before = bytes.len();
        if B64.decode_vec(hash, &mut bytes).is_err() || bytes.len() - before != 32 {
            return Err(Error::Data(format!(
                "the inclusion proof of evidence log leaf {} holds '{hash}', not a base64 SHA-256 hash",
                l.log_index
            )));
        }
    }
    Ok(bytes)
}

/// A stored inclusion proof as records carry it: base64 hashes.
fn proof_text(bytes: &[u8]) -> Vec<String> {
    bytes.chunks(32).map(|h| B64.encode(h)).collect()
}

const RUN_COLUMNS: &str = "first_index, evidence_ids, record_hashes, checkpoint_size, inclusion, left_subtrees";

async fn copy_runs(
    tx: &tokio_postgres::Transaction<'_>,
    copy: &tokio_postgres::Statement,
    runs: &[Run],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(copy).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::UUID_ARRAY, Type::BYTEA, Type::INT8, Type::BYTEA_ARRAY, Type::BYTEA],
    );
    futures::pin_mut!(writer);
    for r in runs {
        writer.as_mut().write(&r.values()).await?;
    }
    writer.finish().await
}

/// The stored runs that hold any of the leaves `from..to`.
async fn stored_runs(client: &impl GenericClient, from: i64, to: i64) -> Result<Vec<Run>> {
    let rows = client
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM evidence_log_batches
                  WHERE int8range(first_index, first_index + cardinality(evidence_ids)) && int8range($1, $2)
                  ORDER BY first_index"
            ),
            &[&from, &to],
        )
        .await
        .map_err(Error::pg("reading the evidence log"))?;
    rows.iter().map(run_of).collect()
}

/// A stored run, checked to have the shape its table's constraints give
/// it (so that reading it can index it), its proofs computed when they
/// are not stored.
fn run_of(r: &tokio_postgres::Row) -> Result<Run> {
    let stored: Option<Vec<Vec<u8>>> = r.get(4);
    let mut run = Run {
        first_index: r.get(0),
        evidence_ids: r.get(1),
        record_hashes: r.get(2),
        checkpoint_size: r.get(3),
        inclusion: stored.unwrap_or_default(),
        left_subtrees: r.get(5),
    };
    if let Some(left) = &run.left_subtrees {
        let malformed = |why: String| {
            Error::Data(format!("the evidence log's batch from leaf {} has no proofs: {why}", run.first_index))
        };
        let first = u64::try_from(run.first_index).map_err(|e| malformed(e.to_string()))?;
        if left.len() % 32 != 0 || run.record_hashes.len() % 32 != 0 {
            return Err(malformed("its hashes are not 32 bytes each".into()));
        }
        let (_, proofs) = log_tree::run_proofs(first, &run.records(), &log_tree::hashes_of(left)).map_err(malformed)?;
        run.inclusion = proofs.iter().map(|p| p.as_flattened().to_vec()).collect();
    }
    let n = run.evidence_ids.len();
    if run.record_hashes.len() != n * 32 || run.inclusion.len() != n || run.inclusion.iter().any(|p| p.len() % 32 != 0)
    {
        return Err(Error::Data(format!(
            "the evidence log's batch from leaf {} is malformed: {n} records, {} bytes of hashes, {} proofs",
            run.first_index,
            run.record_hashes.len(),
            run.inclusion.len()
        )));
    }
    Ok(run)
}

/// Appends those of `leaves` (in log order) not stored yet; a stored leaf
/// must be the same record with the same hash, or the log would fork.
async fn insert_leaves(
    client: &impl GenericClient,
    leaves: &[&EvidenceLogRow],
    roots: &HashMap<i64, log_tree::Hash>,
) -> Result<()> {
    let (Some(first), Some(last)) = (leaves.first(), leaves.last()) else { return Ok(()) };
    let stored = stored_runs(client, first.log_index, last.log_index + 1).await?;
    let mut forks = Vec::new();
    let mut new = Vec::new();
    for l in leaves {
        let held = stored.iter().find(|r| r.first_index <= l.log_index && l.log_index < r.end());
        match held {
            None => new.push(*l),
            Some(r) => {
                let at = (l.log_index - r.first_index) as usize;
                let same = r.evidence_ids[at] == l.evidence_id
                    && hash_bytes(&l.record_hash).is_some_and(|h| r.record_hashes[at * 32..at * 32 + 32] == h);
                if !same {
                    forks.push(l.log_index);
                }
            }
        }
    }
    if let (Some(low), Some(high)) = (forks.first(), forks.last()) {
        return Err(Error::Data(format!(
            "the evidence log would fork: {} of the leaves {low}..={high} are stored with other records",
            forks.len()
        )));
    }
    for r in runs(&new, roots)? {
        client
            .execute(
                &format!("INSERT INTO evidence_log_batches ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                &r.values(),
            )
            .await
            .map_err(Error::pg("appending to the evidence log"))?;
    }
    Ok(())
}

/// Stores a checkpoint unless one of its size is ([`insert_checkpoints`]).
const INSERT_CHECKPOINT: &str = "INSERT INTO evidence_checkpoints (origin, tree_size, root, key_id, checkpoint,
                                                                  previous_size, consistency, signed_at)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                                 ON CONFLICT (origin, tree_size) DO NOTHING";

async fn insert_checkpoints(
    client: &impl GenericClient,
    insert: &tokio_postgres::Statement,
    checkpoints: &[EvidenceCheckpointRow],
) -> Result<()> {
    for c in checkpoints {
        let inserted = client
            .execute(
                insert,
                &[
                    &c.origin,
                    &c.tree_size,
                    &c.root,
                    &c.key_id,
                    &c.checkpoint,
                    &c.previous_size,
                    &c.consistency,
                    &c.signed_at,
                ],
            )
            .await
            .map_err(Error::pg("storing an evidence checkpoint"))?;
        if inserted == 0 {
            let root: String = client
                .query_one(
                    "SELECT root FROM evidence_checkpoints WHERE origin = $1 AND tree_size = $2",
                    &[&c.origin, &c.tree_size],
                )
                .await
                .map_err(Error::pg("reading an evidence checkpoint"))?
                .get(0);
            if root != c.root {
                return Err(Error::Data(format!(
                    "the evidence log would fork: its checkpoint of size {} is stored with root {root}, not {}",
                    c.tree_size, c.root
                )));
            }
        }
    }
    Ok(())
}

/// Every leaf of the evidence log (records' hashes), in log order.
pub async fn log_leaves(store: &Store) -> Result<Vec<String>> {
    let client = store.client().await?;
    let rows = client
        .query("SELECT first_index, record_hashes FROM evidence_log_batches ORDER BY first_index", &[])
        .await
        .map_err(Error::pg("reading the evidence log"))?;
    let mut out = Vec::new();
    for r in &rows {
        let first: i64 = r.get(0);
        if first != out.len() as i64 {
            return Err(Error::Data(format!(
                "the evidence log has no leaf {} (the next stored is {first})",
                out.len()
            )));
        }
        let hashes: &[u8] = r.get(1);
        out.extend(hashes.chunks(32).map(hex::encode));
    }
    Ok(out)
}

/// The log entries of the records `ids` (those in the log).
pub async fn log_entries(store: &Store, ids: &[Uuid]) -> Result<Vec<EvidenceLogRow>> {
    let client = store.client().await?;
    // Each record names its place; the runs holding those places, once each.
    let places: Vec<i64> = client
        .query("SELECT log_index FROM evidence WHERE id = ANY($1) AND log_index IS NOT NULL", &[&ids])
        .await
        .map_err(Error::pg("reading evidence log entries"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if places.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM evidence_log_batches
                  WHERE first_index IN (SELECT (SELECT max(first_index) FROM evidence_log_batches WHERE first_index <= i)
                                          FROM unnest($1::int8[]) AS u(i))
                  ORDER BY first_index"
            ),
            &[&places],
        )
        .await
        .map_err(Error::pg("reading evidence log entries"))?;
    let runs = rows.iter().map(run_of).collect::<Result<Vec<Run>>>()?;
    let wanted: HashSet<&Uuid> = ids.iter().collect();
    let mut out = Vec::new();
    for r in &runs {
        for (at, id) in r.evidence_ids.iter().enumerate() {
            if wanted.contains(id) {
                out.push(EvidenceLogRow {
                    log_index: r.first_index + at as i64,
                    evidence_id: *id,
                    record_hash: hex::encode(&r.record_hashes[at * 32..at * 32 + 32]),
                    checkpoint_size: r.checkpoint_size,
                    inclusion: proof_text(&r.inclusion[at]),
                });
            }
        }
    }
    Ok(out)
}

/// The checkpoints of the log `origin`, oldest first.
pub async fn checkpoints(store: &Store, origin: &str) -> Result<Vec<EvidenceCheckpointRow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT origin, tree_size, root, key_id, checkpoint, previous_size, consistency, signed_at
               FROM evidence_checkpoints WHERE origin = $1 ORDER BY tree_size",
            &[&origin],
        )
        .await
        .map_err(Error::pg("reading evidence checkpoints"))?;
    Ok(rows.iter().map(checkpoint_of).collect())
}

/// The newest checkpoint of any origin (the log's origin survives a key
/// rotation: it is read back from here).
pub async fn last_checkpoint(store: &Store) -> Result<Option<EvidenceCheckpointRow>> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT origin, tree_size, root, key_id, checkpoint, previous_size, consistency, signed_at
               FROM evidence_checkpoints ORDER BY tree_size DESC, signed_at DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(Error::pg("reading the newest evidence checkpoint"))?;
    Ok(row.as_ref().map(checkpoint_of))
}

fn checkpoint_of(r: &tokio_postgres::Row) -> EvidenceCheckpointRow {
    EvidenceCheckpointRow {
        origin: r.get(0),
        tree_size: r.get(1),
        root: r.get(2),
        key_id: r.get(3),
        checkpoint: r.get(4),
        previous_size: r.get(5),
        consistency: r.get(6),
        signed_at: r.get(7),
    }
}

/// The columns of an evidence row. The only text ever spliced into SQL with
/// `format!` here: a constant, never a value (values are `$n` parameters).
const ROW_COLUMNS: &str = "id, scope_decision_id, evidence_type::text, data, hash, signature, signing_key_id, \
     storage_url, pci_requirement, generated_at, generated_by, expires_at, last_verified_at, verification_count, \
     chain, sequence, prev_hash";

fn row_of(r: &tokio_postgres::Row) -> Result<EvidenceRow> {
    let t: String = r.get(2);
    Ok(EvidenceRow {
        id: r.get(0),
        scope_decision_id: r.get(1),
        evidence_type: t.parse().map_err(|e| Error::Data(format!("evidence_type: {e}")))?,
        data: r.get::<_, Json<Box<serde_json::value::RawValue>>>(3).0.into(),
        hash: r.get(4),
        signature: r.get(5),
        signing_key_id: r.get(6),
        storage_url: r.get(7),
        pci_requirement: r.get(8),
        generated_at: r.get(9),
        generated_by: r.get(10),
        expires_at: r.get(11),
        last_verified_at: r.get(12),
        verification_count: r.get(13),
        chain: r.get(14),
        sequence: r.get(15),
        prev_hash: r.get(16),
    })
}

/// Records generated in `[from, to)`, in chain order.
pub async fn records_between(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<EvidenceRow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ROW_COLUMNS} FROM evidence WHERE generated_at >= $1 AND generated_at < $2
                  ORDER BY chain, sequence"
            ),
            &[&from, &to],
        )
        .await
        .map_err(Error::pg("reading evidence"))?;
    rows.iter().map(row_of).collect()
}

/// Records `ids` as verified now.
pub async fn mark_verified(store: &Store, ids: &[Uuid]) -> Result<u64> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE evidence SET last_verified_at = now(), verification_count = verification_count + 1
              WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(Error::pg("recording verification"))
}

/// Records whose `expires_at` is before `now`, in chain order.
pub async fn expired(store: &Store, now: DateTime<Utc>) -> Result<Vec<EvidenceRow>> {
    expired_in_chunks(store, now).await?.next_chunk(usize::MAX).await
}

/// The records past `expires_at` at `now`, in (chain, sequence) order, as
/// [`expired`] gives them, but read a chunk at a time from the one query:
/// the process holds a chunk, not every record expired (a day of records,
/// seven years on, can be millions). The server sorts them once; the
/// connection reads no further ahead than the chunks taken. The reader
/// holds one of the pool's connections until it is dropped: whatever is
/// done with the chunks meanwhile takes another.
pub async fn expired_in_chunks(store: &Store, now: DateTime<Utc>) -> Result<Expired> {
    let client = store.client().await?;
    let sql = format!("SELECT {ROW_COLUMNS} FROM evidence WHERE expires_at < $1 ORDER BY chain, sequence");
    let rows = client.query_raw(&sql, [&now as &(dyn tokio_postgres::types::ToSql + Sync)]).await;
    let rows = Box::pin(rows.map_err(Error::pg("reading expired evidence"))?);
    Ok(Expired { rows, next: None, done: false, _client: client })
}

/// Expired records, a chunk at a time: see [`expired_in_chunks`].
pub struct Expired {
    // Declared before the connection it reads from, so dropped first.
    rows: std::pin::Pin<Box<tokio_postgres::RowStream>>,
    /// A row read ahead, which the last chunk's segment did not hold.
    next: Option<EvidenceRow>,
    /// The query's rows all read (its stream must not be polled again).
    done: bool,
    _client: deadpool_postgres::Object,
}

impl std::fmt::Debug for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expired").field("next", &self.next.as_ref().map(|r| r.id)).field("done", &self.done).finish()
    }
}

impl Expired {
    /// The next `max` records or more, empty once all were read. A chunk
    /// never splits a segment: it goes on past `max` (by less than a batch)
    /// until the next record lies in another document file, so that every
    /// expired record of a segment is handled with the others.
    pub async fn next_chunk(&mut self, max: usize) -> Result<Vec<EvidenceRow>> {
        let mut chunk = Vec::with_capacity(max.min(4096));
        loop {
            let row = match self.next.take() {
                Some(row) => row,
                None if self.done => return Ok(chunk),
                None => match futures::StreamExt::next(&mut self.rows).await {
                    Some(row) => row_of(&row.map_err(Error::pg("reading expired evidence"))?)?,
                    None => {
                        self.done = true;
                        return Ok(chunk);
                    }
                },
            };
            if chunk.len() >= max && !chunk.last().is_some_and(|last| same_segment(last, &row)) {
                self.next = Some(row);
                return Ok(chunk);
            }
            chunk.push(row);
        }
    }
}

/// Whether two records' documents are in one segment: their `storage_url`s
/// name the same file, each with its byte range (`#bytes=`). A record with
/// a file of its own, or without a document, shares none.
fn same_segment(a: &EvidenceRow, b: &EvidenceRow) -> bool {
    segment_file(a).is_some_and(|f| segment_file(b) == Some(f))
}

fn segment_file(r: &EvidenceRow) -> Option<&str> {
    r.storage_url.as_deref().and_then(|u| u.split_once('#')).map(|(file, _)| file)
}

/// Deletes the records `ids`, only those past `expires_at` at `now`.
/// Returns how many went.
pub async fn delete_expired(store: &Store, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
    let client = store.client().await?;
    client
        .execute("DELETE FROM evidence WHERE id = ANY($1) AND expires_at < $2", &[&ids, &now])
        .await
        .map_err(Error::pg("deleting expired evidence"))
}

/// Whether any record of `chain` from `first` to `last` (sequences) is
/// stored: a segment of them is deleted only when none is.
pub async fn any_stored(store: &Store, chain: &str, first: i64, last: i64) -> Result<bool> {
    let client = store.client().await?;
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM evidence WHERE chain = $1 AND sequence BETWEEN $2 AND $3)",
            &[&chain, &first, &last],
        )
        .await
        .map(|r| r.get(0))
        .map_err(Error::pg("looking for the records of a segment"))
}

/// Whether a stored record of `chain` from `first` to `last` (sequences)
/// names the segment at `path` in its `storage_url`, whatever store URL
/// comes before the path (a store that moved keeps its records' URLs).
pub async fn segment_named(store: &Store, chain: &str, first: i64, last: i64, path: &str) -> Result<bool> {
    let client = store.client().await?;
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM evidence WHERE chain = $1 AND sequence BETWEEN $2 AND $3
                AND right(split_part(storage_url, '#', 1), length($4) + 1) = '/' || $4)",
            &[&chain, &first, &last, &path],
        )
        .await
        .map(|r| r.get(0))
        .map_err(Error::pg("looking for the records that name a segment"))
}

/// Registers a signing key's public half (idempotent).
pub async fn register_key(store: &Store, key_id: &str, public_key_pem: &str) -> Result<()> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO evidence_keys (key_id, public_key_pem) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
            &[&key_id, &public_key_pem],
        )
        .await
        .map_err(Error::pg("registering the signing key"))?;
    Ok(())
}

/// Every registered public key: (key id, PEM).
pub async fn public_keys(store: &Store) -> Result<Vec<(String, String)>> {
    let client = store.client().await?;
    let rows = client
        .query("SELECT key_id, public_key_pem FROM evidence_keys ORDER BY first_used_at, key_id", &[])
        .await
        .map_err(Error::pg("reading signing keys"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The end of the newest scheduled report period of `chain`.
pub async fn last_scheduled_period_end(store: &Store, chain: &str) -> Result<Option<DateTime<Utc>>> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT max((data->'period'->>'end')::timestamptz) FROM evidence
              WHERE chain = $1 AND data->>'trigger' = 'scheduled'",
            &[&chain],
        )
        .await
        .map_err(Error::pg("reading the last report period"))?;
    Ok(row.get(0))
}
