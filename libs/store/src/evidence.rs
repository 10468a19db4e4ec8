//! `evidence`: the index rows of signed, chained evidence documents.

use std::collections::HashSet;

use psg_domain::rows::EvidenceRow;
use uuid::Uuid;

use crate::{Error, Result, Store};

/// The last record of a chain: its sequence number and hash.
pub async fn chain_head(store: &Store, chain: &str) -> Result<Option<(i64, String)>> {
    let client = store.client().await?;
    let row = client
        .query_opt("SELECT sequence, hash FROM evidence WHERE chain = $1 ORDER BY sequence DESC LIMIT 1", &[&chain])
        .await
        .map_err(Error::pg("reading the chain head"))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Which of `ids` are stored.
pub async fn existing(store: &Store, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let client = store.client().await?;
    let rows = client
        .query("SELECT id FROM evidence WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(Error::pg("reading evidence ids"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Inserts evidence rows in one transaction. A row whose id is stored
/// already is skipped (redelivery); a different row at a stored
/// (chain, sequence) is an error: the chain would fork.
pub async fn insert_evidence(store: &Store, rows: &[EvidenceRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(Error::pg("starting the evidence write"))?;
    let stmt = tx
        .prepare(
            "INSERT INTO evidence (id, scope_decision_id, evidence_type, data, hash, signature, signing_key_id,
                                   storage_url, pci_requirement, generated_at, generated_by, expires_at,
                                   verification_count, chain, sequence, prev_hash)
             VALUES ($1, $2, $3::text::evidence_type, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $15)
             ON CONFLICT (id) DO NOTHING",
        )
        .await
        .map_err(Error::pg("preparing the evidence insert"))?;
    for e in rows {
        tx.execute(
            &stmt,
            &[
                &e.id,
                &e.scope_decision_id,
                &e.evidence_type.as_str(),
                &e.data,
                &e.hash,
                &e.signature,
                &e.signing_key_id,
                &e.storage_url,
                &e.pci_requirement,
                &e.generated_at,
                &e.generated_by,
                &e.expires_at,
                &e.chain,
                &e.sequence,
                &e.prev_hash,
            ],
        )
        .await
        .map_err(Error::pg("inserting evidence"))?;
    }
    tx.commit().await.map_err(Error::pg("committing evidence"))
}
