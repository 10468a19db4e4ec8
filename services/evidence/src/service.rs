//! The evidence [`Processor`]: one `pci_scope_identification` record per
//! scope decision, appended to the chain, published on `evidence.records`,
//! stored as a document and indexed in the `evidence` table.
//!
//! The chain head comes from the database when there is one, otherwise from
//! `<chain>/HEAD.json` in the document store. A decision that already has
//! its record (redelivery) gets no second one.

use std::collections::HashSet;

use psg_config::Config;
use psg_domain::{EvidenceType, ScopeDecision, ids};
use psg_kafka_runtime::{DeadLetter, InMessage, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;
use uuid::Uuid;

use crate::documents::Documents;
use crate::record::{ChainHead, Sealed, Sealer};

/// The chain of scope-identification records.
pub const SCOPE_CHAIN: &str = "pci_scope_identification";

/// The evidence service.
#[derive(Debug)]
pub struct Evidence {
    decisions_topic: String,
    evidence_out: String,
    sealer: Sealer,
    documents: Documents,
    store: Option<Store>,
    head: ChainHead,
    /// Records sealed by this process (a duplicate decision in a later batch
    /// must not get a second record before the first is stored).
    sealed: HashSet<Uuid>,
    pending: Vec<Sealed>,
}

impl Evidence {
    pub fn new(cfg: &Config, store: Option<Store>, sealer: Sealer, documents: Documents) -> Self {
        Self {
            decisions_topic: cfg.topics.scope_decisions.clone(),
            evidence_out: cfg.topics.evidence_records.clone(),
            sealer,
            documents,
            store,
            head: ChainHead::default(),
            sealed: HashSet::new(),
            pending: Vec::new(),
        }
    }

    pub fn stream_topics(&self) -> Vec<String> {
        vec![self.decisions_topic.clone()]
    }

    /// The chain head as this service sees it.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }

    fn head_path() -> String {
        format!("{SCOPE_CHAIN}/HEAD.json")
    }

    fn marker_path(id: &Uuid) -> String {
        format!("{SCOPE_CHAIN}/by-id/{id}")
    }

    /// Loads the chain head.
    pub async fn restore(&mut self) -> Result<(), String> {
        self.head = match &self.store {
            Some(store) => {
                match psg_store::evidence::chain_head(store, SCOPE_CHAIN).await.map_err(|e| e.to_string())? {
                    Some((sequence, hash)) => ChainHead { sequence, hash: Some(hash) },
                    None => ChainHead::default(),
                }
            }
            None => match self.documents.get(&Self::head_path()).await.map_err(|e| e.to_string())? {
                Some(bytes) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", Self::head_path()))?;
                    ChainHead {
                        sequence: v["sequence"].as_i64().unwrap_or(0),
                        hash: v["hash"].as_str().map(str::to_owned),
                    }
                }
                None => ChainHead::default(),
            },
        };
        tracing::info!(chain = SCOPE_CHAIN, sequence = self.head.sequence, key_id = %self.sealer.key_id(), "evidence chain head");
        Ok(())
    }

    /// Which of `ids` already have their record stored.
    async fn stored(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, ProcessError> {
        match &self.store {
            Some(store) => {
                psg_store::evidence::existing(store, ids).await.map_err(|e| ProcessError::classify(e.is_transient(), e))
            }
            None => {
                let mut found = HashSet::new();
                for id in ids {
                    let present = self
                        .documents
                        .get(&Self::marker_path(id))
                        .await
                        .map_err(|e| ProcessError::Transient(e.to_string()))?;
                    if present.is_some() {
                        found.insert(*id);
                    }
                }
                Ok(found)
            }
        }
    }
}

impl Processor for Evidence {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        let mut decisions = Vec::with_capacity(batch.len());
        for msg in batch {
            match psg_avro_codec::decode::<ScopeDecision>(msg.payload()) {
                Ok(d) => decisions.push(d),
                Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
            }
        }
        let id_of = |d: &ScopeDecision| {
            ids::stable_id("evidence", &[EvidenceType::ScopeIdentification.as_str(), &d.decision_id])
        };
        let ids: Vec<Uuid> = decisions.iter().map(id_of).collect();
        // Fallible I/O before any state changes: a failure retries the batch.
        let stored = self.stored(&ids).await?;
        for d in &decisions {
            let id = id_of(d);
            if stored.contains(&id) || self.sealed.contains(&id) {
                metrics::counter!("psg_evidence_duplicates_total").increment(1);
                continue;
            }
            let mut sealed = self
                .sealer
                .scope_identification(SCOPE_CHAIN, &self.head, d)
                .map_err(|e| ProcessError::Fatal(format!("sealing evidence for {}: {e}", d.decision_id)))?;
            let url = self.documents.url(&sealed.path);
            sealed.message.storage_url = Some(url.clone());
            sealed.row.storage_url = Some(url);
            let bytes = psg_avro_codec::encode(&sealed.message).map_err(|e| ProcessError::Fatal(e.to_string()))?;
            out.records.push(OutRecord::new(&self.evidence_out, SCOPE_CHAIN, bytes));
            self.head = ChainHead { sequence: sealed.message.sequence, hash: Some(sealed.message.hash.clone()) };
            self.sealed.insert(id);
            self.pending.push(sealed);
            metrics::counter!("psg_evidence_records_total", "type" => EvidenceType::ScopeIdentification.as_str())
                .increment(1);
        }
        Ok(out)
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let transient = |e: crate::Error| ProcessError::Transient(e.to_string());
        for s in &self.pending {
            self.documents.put(&s.path, s.document.clone()).await.map_err(transient)?;
            if self.store.is_none() {
                self.documents
                    .put(&Self::marker_path(&s.row.id), s.path.clone().into_bytes())
                    .await
                    .map_err(transient)?;
            }
        }
        let head = serde_json::json!({"chain": SCOPE_CHAIN, "sequence": self.head.sequence, "hash": self.head.hash});
        self.documents.put(&Self::head_path(), head.to_string().into_bytes()).await.map_err(transient)?;
        if let Some(store) = &self.store {
            let rows: Vec<_> = self.pending.iter().map(|s| s.row.clone()).collect();
            psg_store::evidence::insert_evidence(store, &rows)
                .await
                .map_err(|e| ProcessError::classify(e.is_transient(), e))?;
        }
        self.pending.clear();
        Ok(())
    }
}
