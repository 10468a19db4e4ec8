//! `evidence`: the index rows of signed, chained evidence documents.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
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

/// Inserts evidence rows in one statement. A row whose id is stored
/// already is skipped (redelivery); a different row at a stored
/// (chain, sequence) is an error: the chain would fork.
pub async fn insert_evidence(store: &Store, rows: &[EvidenceRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let client = store.client().await?;
    let col = |f: fn(&EvidenceRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let ids: Vec<Uuid> = rows.iter().map(|e| e.id).collect();
    let decisions: Vec<Option<Uuid>> = rows.iter().map(|e| e.scope_decision_id).collect();
    let types = col(|e| e.evidence_type.as_str().to_owned());
    let data: Vec<&serde_json::Value> = rows.iter().map(|e| &e.data).collect();
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
    client
        .execute(
            "INSERT INTO evidence (id, scope_decision_id, evidence_type, data, hash, signature, signing_key_id,
                                   storage_url, pci_requirement, generated_at, generated_by, expires_at,
                                   verification_count, chain, sequence, prev_hash)
             SELECT id, dec, typ::evidence_type, data, hash, sig, kid, url, req, gen_at, gen_by, exp, 0, chain, seq, prev
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::timestamptz[],
                           $13::text[], $14::int8[], $15::text[])
                    AS t(id, dec, typ, data, hash, sig, kid, url, req, gen_at, gen_by, exp, chain, seq, prev)
             ORDER BY chain, seq
             ON CONFLICT (id) DO NOTHING",
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
            ],
        )
        .await
        .map_err(Error::pg("inserting evidence"))?;
    Ok(())
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
        data: r.get(3),
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
    let client = store.client().await?;
    let rows = client
        .query(&format!("SELECT {ROW_COLUMNS} FROM evidence WHERE expires_at < $1 ORDER BY chain, sequence"), &[&now])
        .await
        .map_err(Error::pg("reading expired evidence"))?;
    rows.iter().map(row_of).collect()
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
