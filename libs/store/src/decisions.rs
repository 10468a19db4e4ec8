//! `scope_decisions` and `alerts`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use psg_domain::rows::{AlertRow, ScopeDecisionRow};
use uuid::Uuid;

use crate::{Error, Result, Store};

/// Writes new current decisions. For each: if it is already stored
/// (redelivery), nothing happens; otherwise the resource's current decision
/// stops being current, the new one is inserted, and the old one points to
/// it with `superseded_by_id`.
pub async fn write_decisions(store: &Store, rows: &[ScopeDecisionRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(Error::pg("starting the decision write"))?;
    let exists = tx
        .prepare("SELECT 1 FROM scope_decisions WHERE id = $1")
        .await
        .map_err(Error::pg("preparing the decision check"))?;
    let retire = tx
        .prepare("UPDATE scope_decisions SET is_current = false WHERE resource_id = $1 AND is_current RETURNING id")
        .await
        .map_err(Error::pg("preparing the decision retire"))?;
    let insert = tx
        .prepare(
            "INSERT INTO scope_decisions (id, resource_id, scope, data_classification, segment, justification,
                                          confidence_score, decided_at, decided_by, decision_method, is_current,
                                          superseded_by_id, dependency_resource_ids)
             VALUES ($1, $2, $3::text::pci_scope, $4::text::data_classification, $5, $6, $7, $8, $9, $10, true,
                     NULL, $11)",
        )
        .await
        .map_err(Error::pg("preparing the decision insert"))?;
    let link = tx
        .prepare("UPDATE scope_decisions SET superseded_by_id = $2 WHERE id = ANY($1)")
        .await
        .map_err(Error::pg("preparing the decision link"))?;
    for d in rows {
        if tx.query_opt(&exists, &[&d.id]).await.map_err(Error::pg("checking a decision"))?.is_some() {
            continue;
        }
        let retired: Vec<Uuid> = tx
            .query(&retire, &[&d.resource_id])
            .await
            .map_err(Error::pg("retiring a decision"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            &insert,
            &[
                &d.id,
                &d.resource_id,
                &d.scope.as_str(),
                &d.data_classification.map(|c| c.as_str()),
                &d.segment,
                &d.justification,
                &d.confidence_score,
                &d.decided_at,
                &d.decided_by,
                &d.decision_method.as_str(),
                &d.dependency_resource_ids,
            ],
        )
        .await
        .map_err(Error::pg("inserting a decision"))?;
        if !retired.is_empty() {
            tx.execute(&link, &[&retired, &d.id]).await.map_err(Error::pg("linking a decision"))?;
        }
    }
    tx.commit().await.map_err(Error::pg("committing decisions"))
}

/// A resource's current decision, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentDecision {
    pub id: Uuid,
    /// Natural id of the resource.
    pub resource_id: String,
    pub scope: String,
    pub data_classification: Option<String>,
    pub justification: String,
    pub decision_method: String,
    pub decided_at: DateTime<Utc>,
    pub dependency_resource_ids: serde_json::Value,
}

/// Every current decision.
pub async fn current_decisions(store: &Store) -> Result<Vec<CurrentDecision>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT d.id, r.resource_id, d.scope::text, d.data_classification::text, d.justification,
                    d.decision_method, d.decided_at, coalesce(d.dependency_resource_ids, '[]'::jsonb)
               FROM scope_decisions d JOIN resources r ON r.id = d.resource_id
              WHERE d.is_current
              ORDER BY r.resource_id",
            &[],
        )
        .await
        .map_err(Error::pg("reading current decisions"))?;
    Ok(rows
        .iter()
        .map(|r| CurrentDecision {
            id: r.get(0),
            resource_id: r.get(1),
            scope: r.get(2),
            data_classification: r.get(3),
            justification: r.get(4),
            decision_method: r.get(5),
            decided_at: r.get(6),
            dependency_resource_ids: r.get(7),
        })
        .collect())
}

/// Writes alert events in order: an `open` row is inserted, or rewords the
/// stored alert (reopening it if it was resolved); a `resolved` row resolves
/// an open or acknowledged alert. An operator's part of the lifecycle is
/// never changed (a false positive stays one). Through `psg_alert_event`
/// (migration 0006). Returns the rows changed.
pub async fn insert_alerts(store: &Store, rows: &[AlertRow]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(Error::pg("starting the alert write"))?;
    let stmt = tx
        .prepare("SELECT psg_alert_event($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .await
        .map_err(Error::pg("preparing the alert write"))?;
    let mut changed = 0;
    for a in rows {
        let at = a.resolved_at.unwrap_or(a.triggered_at);
        let row = tx
            .query_one(
                &stmt,
                &[
                    &a.id,
                    &a.severity.as_str(),
                    &a.alert_type.as_str(),
                    &a.title,
                    &a.description,
                    &a.resource_id,
                    &at,
                    &a.status.as_str(),
                    &a.context,
                ],
            )
            .await
            .map_err(Error::pg("writing an alert"))?;
        changed += row.get::<_, i32>(0) as u64;
    }
    tx.commit().await.map_err(Error::pg("committing alerts"))?;
    Ok(changed)
}

/// Which of `ids` are stored alerts.
pub async fn existing_alerts(store: &Store, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let client = store.client().await?;
    let rows =
        client.query("SELECT id FROM alerts WHERE id = ANY($1)", &[&ids]).await.map_err(Error::pg("reading alerts"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The ids of every stored alert not resolved (to never raise one twice
/// across restarts; a resolved one is raised again when its condition
/// comes back).
pub async fn alert_ids(store: &Store) -> Result<HashSet<Uuid>> {
    let client = store.client().await?;
    let rows = client
        .query("SELECT id FROM alerts WHERE status <> 'resolved'", &[])
        .await
        .map_err(Error::pg("reading alert ids"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
