//! What operator commands read and change: the scope report's rows, alert
//! status, and the audit log.

use chrono::{DateTime, Utc};
use psg_domain::rows::report::{AlertRow, EdgeRow, ScopeRow};
use uuid::Uuid;

use crate::{Error, Result, Store};

/// Every resource with a current decision.
pub async fn current_scope(store: &Store) -> Result<Vec<ScopeRow>> {
    scope_at(store, None).await
}

/// Every resource with a decision at `at` (`None`: now): the newest decision
/// made (`decided_at`) at or before `at`, with the tags applied by then.
/// Names, types and networks are the resources' current ones: the
/// inventory keeps no history of them.
pub async fn scope_at(store: &Store, at: Option<DateTime<Utc>>) -> Result<Vec<ScopeRow>> {
    let client = store.client().await?;
    // Now: the current decision; as of a time: the newest one made by then.
    let decisions = if at.is_some() {
        "(SELECT DISTINCT ON (resource_id) * FROM scope_decisions WHERE decided_at <= $1
           ORDER BY resource_id, decided_at DESC, is_current DESC, id) d"
    } else {
        "(SELECT * FROM scope_decisions WHERE is_current AND $1::timestamptz IS NULL) d"
    };
    let rows = client
        .query(
            &format!(
                "SELECT r.resource_id, r.provider::text, r.resource_type::text, COALESCE(r.resource_name, r.resource_id),
                        d.scope::text, d.data_classification::text, d.justification,
                        COALESCE(d.dependency_resource_ids, '[]'::jsonb), COALESCE(r.vpc_id, ''), d.decision_method,
                        COALESCE((SELECT jsonb_object_agg(t.key, t.value) FROM (
                            SELECT DISTINCT ON (key) key, value FROM tags
                             WHERE resource_id = r.id AND ($1::timestamptz IS NULL OR applied_at <= $1)
                             ORDER BY key, version DESC) t), '{{}}'::jsonb)
                   FROM {decisions} JOIN resources r ON r.id = d.resource_id
                  ORDER BY r.resource_id"
            ),
            &[&at],
        )
        .await
        .map_err(Error::pg(if at.is_some() { "reading the scope as of a time" } else { "reading current scope" }))?;
    Ok(rows
        .iter()
        .map(|r| {
            let deps: serde_json::Value = r.get(7);
            let tags: serde_json::Value = r.get(10);
            ScopeRow {
                resource: r.get(0),
                provider: r.get(1),
                resource_type: r.get(2),
                name: r.get(3),
                scope: r.get(4),
                data_classification: r.get(5),
                justification: r.get(6),
                dependencies: deps
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                network: r.get(8),
                rule: r.get(9),
                tags: tags
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// Every active resource that lists interfaces (`interface_ids`), with
/// them: (resource id, interface ids).
pub async fn interface_listings(store: &Store) -> Result<Vec<(String, Vec<String>)>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT resource_id, interface_ids FROM resources WHERE is_active AND cardinality(interface_ids) > 0",
            &[],
        )
        .await
        .map_err(Error::pg("reading interface owners"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A filter for [`alerts`].
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub alert_type: Option<String>,
    pub limit: Option<i64>,
    /// The alerts raised by this time, with the status each had then.
    pub as_of: Option<DateTime<Utc>>,
}

/// The columns of an alert. Spliced into SQL with `format!`: a constant,
/// never a value (values are `$n` parameters).
const ALERT_COLUMNS: &str = "a.id::text, a.alert_type, a.severity, COALESCE(r.resource_id, ''), a.title, a.description, \
     a.status, COALESCE(a.context, '{}'::jsonb), a.triggered_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at, \
     a.resolved_by";

fn alert_of(r: &tokio_postgres::Row) -> AlertRow {
    let ack: (Option<DateTime<Utc>>, Option<String>) = (r.get(9), r.get(10));
    let res: (Option<DateTime<Utc>>, Option<String>) = (r.get(11), r.get(12));
    AlertRow {
        alert_id: r.get(0),
        alert_type: r.get(1),
        severity: r.get(2),
        resource: r.get(3),
        title: r.get(4),
        description: r.get(5),
        status: r.get(6),
        context: r.get(7),
        triggered_at: r.get(8),
        acknowledged: ack.0.map(|t| (t, ack.1.unwrap_or_default())),
        resolved: res.0.map(|t| (t, res.1.unwrap_or_default())),
    }
}

/// Alerts, newest first. With [`AlertFilter::as_of`], those triggered by
/// then, each with the status its lifecycle times give at that moment
/// (resolved or closed by then, else acknowledged by then, else open).
pub async fn alerts(store: &Store, f: &AlertFilter) -> Result<Vec<AlertRow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "WITH a AS (
                   SELECT id, alert_type, severity, resource_id, title, description, context, triggered_at,
                          CASE WHEN $5::timestamptz IS NULL THEN status
                               WHEN resolved_at <= $5 AND status IN ('resolved', 'false_positive') THEN status
                               WHEN resolved_at <= $5 THEN 'resolved'
                               WHEN acknowledged_at <= $5 THEN 'acknowledged'
                               ELSE 'open' END AS status,
                          CASE WHEN $5 IS NULL OR acknowledged_at <= $5 THEN acknowledged_at END AS acknowledged_at,
                          CASE WHEN $5 IS NULL OR acknowledged_at <= $5 THEN acknowledged_by END AS acknowledged_by,
                          CASE WHEN $5 IS NULL OR resolved_at <= $5 THEN resolved_at END AS resolved_at,
                          CASE WHEN $5 IS NULL OR resolved_at <= $5 THEN resolved_by END AS resolved_by
                     FROM alerts WHERE $5 IS NULL OR triggered_at <= $5)
                 SELECT {ALERT_COLUMNS} FROM a LEFT JOIN resources r ON r.id = a.resource_id
                  WHERE ($1::text IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.severity = $2)
                    AND ($3::text IS NULL OR a.alert_type = $3)
                  ORDER BY a.triggered_at DESC, a.id LIMIT $4"
            ),
            &[&f.status, &f.severity, &f.alert_type, &f.limit.unwrap_or(i64::MAX), &f.as_of],
        )
        .await
        .map_err(Error::pg("reading alerts"))?;
    Ok(rows.iter().map(alert_of).collect())
}

/// One alert by id (or unique id prefix). A prefix, not a LIKE pattern:
/// `%` or `_` typed by the operator match only themselves.
pub async fn alert(store: &Store, id: &str) -> Result<Vec<AlertRow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts a LEFT JOIN resources r ON r.id = a.resource_id
                  WHERE starts_with(a.id::text, $1) ORDER BY a.id LIMIT 2"
            ),
            &[&id.to_ascii_lowercase()],
        )
        .await
        .map_err(Error::pg("reading an alert"))?;
    Ok(rows.iter().map(alert_of).collect())
}

/// Moves alert `id` to `status` if its current status is one of `from`;
/// returns the previous status, `None` if the alert is not in one of them.
pub async fn set_alert_status(
    store: &Store,
    id: Uuid,
    status: &str,
    from: &[&str],
    by: &str,
) -> Result<Option<String>> {
    let client = store.client().await?;
    let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
    let row = client
        .query_opt(
            "WITH old AS (SELECT status FROM alerts WHERE id = $1 FOR UPDATE)
             UPDATE alerts a SET status = $2::text,
                    acknowledged_at = CASE WHEN $2::text = 'acknowledged' THEN now() ELSE a.acknowledged_at END,
                    acknowledged_by = CASE WHEN $2::text = 'acknowledged' THEN $4::text ELSE a.acknowledged_by END,
                    resolved_at = CASE WHEN $2::text IN ('resolved', 'false_positive') THEN now() ELSE a.resolved_at END,
                    resolved_by = CASE WHEN $2::text IN ('resolved', 'false_positive') THEN $4::text ELSE a.resolved_by END
               FROM old
              WHERE a.id = $1 AND old.status = ANY($3::text[])
             RETURNING old.status",
            &[&id, &status, &from, &by],
        )
        .await
        .map_err(Error::pg("changing an alert's status"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Flows between endpoints last seen within `lookback` of the newest flow,
/// aggregated; external endpoints are named `ext:<address>`. Also returns
/// the newest `last_seen`.
pub async fn edges(store: &Store, lookback_days: i32) -> Result<(Vec<EdgeRow>, Option<DateTime<Utc>>)> {
    edges_at(store, lookback_days, None).await
}

/// [`edges`] as the flow history stood at `at` (flow time): the flow
/// windows begun by then, last seen within `lookback` of the newest flow
/// seen by then; last-seen times are capped at `at`. A window still
/// filling at `at` counts with the flows it holds now.
///
/// On TimescaleDB the hours that the continuous aggregate
/// `data_flows_hourly` (migration 0017) holds up to date are read from it,
/// where every row of the hour lies in the period; the rest from
/// `data_flows`. The result is the same either way ([`edges_read`]).
pub async fn edges_at(
    store: &Store,
    lookback_days: i32,
    at: Option<DateTime<Utc>>,
) -> Result<(Vec<EdgeRow>, Option<DateTime<Utc>>)> {
    let read = edges_read(store, lookback_days, at, EdgeSource::Best).await?;
    Ok((read.edges, read.newest))
}

/// Where [`edges_read`] reads flows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeSource {
    /// `data_flows` only.
    Raw,
    /// The hourly aggregate where it can answer, when there is one.
    Best,
}

/// What [`edges_read`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgesRead {
    pub edges: Vec<EdgeRow>,
    /// The newest flow's `last_seen` (capped at the time asked for).
    pub newest: Option<DateTime<Utc>>,
    /// Rows of the hourly aggregate used (each one edge's hour).
    pub hourly_rows: i64,
}

/// An edge's name: the resource id, or `ext:<address>` for an external
/// endpoint. SQL text of this crate (`{t}`: the table alias), no value.
const ENDPOINT_NAME: &str = "CASE WHEN {t}.resource_type::text = 'external_endpoint' THEN 'ext:' || substr({t}.resource_id, 4) ELSE {t}.resource_id END";

/// [`edges_at`], reading from `source`.
pub async fn edges_read(
    store: &Store,
    lookback_days: i32,
    at: Option<DateTime<Utc>>,
    source: EdgeSource,
) -> Result<EdgesRead> {
    let mut client = store.client().await?;
    // A row's flows lie within MAX_WINDOW_REACH_SECS (a reach) of its
    // window's start (observed_at): the newest flow is among the rows
    // observed at most two reaches before the newest row, and no row
    // observed more than a reach after `at` was seen by `at`. The bounds let
    // the time index and the hypertable's chunks narrow the scan.
    let reach = chrono::Duration::seconds(psg_config::MAX_WINDOW_REACH_SECS as i64);
    let reach_sql = format!("{} seconds", reach.num_seconds());
    let newest = match &at {
        None => {
            client
                .query_one(
                    "SELECT max(last_seen) FROM data_flows
                      WHERE observed_at >= (SELECT max(observed_at) FROM data_flows) - 2 * $1::text::interval",
                    &[&reach_sql],
                )
                .await
        }
        // The rows observed from three reaches before `at` give it when it
        // is within two reaches of `at` (older rows were all last seen
        // before that); otherwise every row observed by then is read.
        Some(at) => {
            client
                .query_one(
                    "WITH near AS (
                       SELECT max(least(last_seen, $1)) AS t FROM data_flows
                        WHERE first_seen <= $1 AND observed_at <= $1 + $2::text::interval
                          AND observed_at >= $1 - 3 * $2::text::interval)
                     SELECT CASE WHEN t >= $1 - 2 * $2::text::interval THEN t
                                 ELSE (SELECT max(least(last_seen, $1)) FROM data_flows
                                        WHERE first_seen <= $1 AND observed_at <= $1 + $2::text::interval) END
                       FROM near",
                    &[at, &reach_sql],
                )
                .await
        }
    }
    .map_err(Error::pg("reading the newest flow"))?;
    let newest: Option<DateTime<Utc>> = newest.get(0);
    let Some(newest) = newest else {
        return Ok(EdgesRead { edges: Vec::new(), newest: None, hourly_rows: 0 });
    };
    let since = newest - chrono::Duration::days(i64::from(lookback_days));
    let hourly = match (source, store.partitioning()) {
        (EdgeSource::Best, crate::TimePartitioning::Timescale) => hourly_state(&client).await?,
        _ => None,
    };
    // With the aggregate: the first hour a row of the period can be in,
    // the hours changed since materialized, the watermark.
    let (flows, hourly_params) = match hourly {
        None => (RAW_FLOWS, None),
        Some(state) => {
            let floor = bucket_floor(since - reach);
            (HOURLY_FLOWS, Some((floor, state.stale_spans(floor), state.watermark)))
        }
    };
    let names = (ENDPOINT_NAME.replace("{t}", "s"), ENDPOINT_NAME.replace("{t}", "d"));
    let sql = format!(
        "WITH {flows}
         SELECT {}, {}, f.protocol, f.dst_port, f.action, sum(f.flow_count)::int8,
                min(f.first_seen), least(max(f.last_seen), $2),
                sum(f.encrypted_flow_count)::int8, sum(f.unencrypted_flow_count)::int8,
                (SELECT count(*) FROM whole)::int8
           FROM flows f JOIN resources s ON s.id = f.source_resource_id
           JOIN resources d ON d.id = f.dest_resource_id
          GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        names.0, names.1
    );
    let rows = match &hourly_params {
        None => client.query(&sql, &[&since, &newest]).await.map_err(Error::pg("reading flows"))?,
        Some((floor, (starts, ends), watermark)) => {
            // The planner's estimates of the branches that read data_flows
            // (mostly empty) are far above what they do, and JIT-compiling
            // the query then takes several times as long as running it
            // (measured: 280 ms vs 50 ms for a month of 40 edges).
            let tx = client.transaction().await.map_err(Error::pg("starting to read flows"))?;
            tx.batch_execute("SET LOCAL jit = off").await.map_err(Error::pg("reading flows"))?;
            let rows = tx
                .query(&sql, &[&since, &newest, floor, watermark, starts, ends])
                .await
                .map_err(Error::pg("reading flows"))?;
            tx.commit().await.map_err(Error::pg("reading flows"))?;
            rows
        }
    };
    Ok(EdgesRead {
        hourly_rows: rows.first().map_or(0, |r| r.get(10)),
        edges: rows
            .iter()
            .map(|r| EdgeRow {
                source: r.get(0),
                destination: r.get(1),
                protocol: r.get(2),
                dst_port: r.get(3),
                action: r.get(4),
                flow_count: r.get(5),
                first_seen: r.get(6),
                last_seen: r.get(7),
                encrypted_flow_count: r.get(8),
                unencrypted_flow_count: r.get(9),
            })
            .collect(),
        newest: Some(newest),
    })
}

/// The rows of the period from `data_flows` ($1: since, $2: newest).
const RAW_FLOWS: &str = "whole AS (SELECT 1 WHERE false),
    flows AS (
      SELECT source_resource_id, dest_resource_id, protocol, dst_port, action, flow_count, first_seen, last_seen,
             encrypted_flow_count, unencrypted_flow_count
        FROM data_flows WHERE last_seen >= $1 AND first_seen <= $2 AND flow_count > 0)";

/// The rows of the period from `data_flows_hourly` and `data_flows` ($1:
/// since, $2: newest, $3: the first hour a row of the period can be in,
/// $4: the aggregate's watermark, $5/$6: the hours [start, end) it holds
/// but which changed since, merged and disjoint):
/// - `whole`: hours of an edge materialized and unchanged since, every row
///   of which lies in the period (and carried flows);
/// - `part`: such hours of an edge with some rows in the period and some
///   not: their rows are read, and filtered one by one;
/// - from `data_flows`, the hours not materialized yet (from the watermark
///   on) and those changed since they were.
const HOURLY_FLOWS: &str = "stale AS (SELECT * FROM unnest($5::timestamptz[], $6::timestamptz[]) AS t(lo, hi)),
    agg AS (
      SELECT h.* FROM data_flows_hourly h
       WHERE h.bucket >= $3 AND h.bucket < $4 AND h.last_seen >= $1 AND h.first_seen <= $2
         AND NOT EXISTS (SELECT 1 FROM stale WHERE h.bucket >= stale.lo AND h.bucket < stale.hi)),
    whole AS (SELECT * FROM agg WHERE earliest_last_seen >= $1 AND latest_first_seen <= $2),
    part AS (SELECT * FROM agg WHERE NOT (earliest_last_seen >= $1 AND latest_first_seen <= $2)),
    flows AS (
      SELECT source_resource_id, dest_resource_id, protocol, dst_port, action, flow_count, first_seen, last_seen,
             encrypted_flow_count, unencrypted_flow_count
        FROM whole
      UNION ALL
      SELECT f.source_resource_id, f.dest_resource_id, f.protocol, f.dst_port, f.action, f.flow_count,
             f.first_seen, f.last_seen, f.encrypted_flow_count, f.unencrypted_flow_count
        FROM part p JOIN data_flows f
          ON f.observed_at >= p.bucket AND f.observed_at < p.bucket + INTERVAL '1 hour'
         AND f.source_resource_id = p.source_resource_id AND f.dest_resource_id = p.dest_resource_id
         AND f.protocol = p.protocol AND f.dst_port = p.dst_port AND f.action = p.action
       WHERE f.last_seen >= $1 AND f.first_seen <= $2 AND f.flow_count > 0
      UNION ALL
      SELECT f.source_resource_id, f.dest_resource_id, f.protocol, f.dst_port, f.action, f.flow_count,
             f.first_seen, f.last_seen, f.encrypted_flow_count, f.unencrypted_flow_count
        FROM data_flows f
       WHERE f.observed_at >= greatest($3, $4) AND f.last_seen >= $1 AND f.first_seen <= $2 AND f.flow_count > 0
      UNION ALL
      SELECT f.source_resource_id, f.dest_resource_id, f.protocol, f.dst_port, f.action, f.flow_count,
             f.first_seen, f.last_seen, f.encrypted_flow_count, f.unencrypted_flow_count
        FROM stale s CROSS JOIN LATERAL (
             SELECT * FROM data_flows f
              WHERE f.observed_at >= s.lo AND f.observed_at < s.hi
                AND f.last_seen >= $1 AND f.first_seen <= $2 AND f.flow_count > 0) f)";

/// What the hourly aggregate holds: materialized up to `watermark`, except
/// the hours in `changed` (inclusive ranges of `observed_at` changed since
/// they were materialized, or never materialized).
#[derive(Debug, Clone, PartialEq)]
struct HourlyState {
    watermark: DateTime<Utc>,
    changed: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl HourlyState {
    /// The hours [start, end) below the watermark and from `floor` on that
    /// `changed` touches, merged: disjoint and in order, as two arrays.
    fn stale_spans(&self, floor: DateTime<Utc>) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
        let hour = chrono::Duration::hours(1);
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = self
            .changed
            .iter()
            .filter(|(lo, hi)| lo <= hi)
            .map(|(lo, hi)| {
                let end = bucket_floor(*hi).checked_add_signed(hour).unwrap_or(DateTime::<Utc>::MAX_UTC);
                (bucket_floor(*lo).max(floor), end.min(self.watermark))
            })
            .filter(|(lo, hi)| lo < hi)
            .collect();
        spans.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(spans.len());
        for (lo, hi) in spans {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        merged.into_iter().unzip()
    }
}

/// The start of the hour `t` is in.
fn bucket_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let hour = 3_600_000_000;
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros - micros.rem_euclid(hour)).unwrap_or(t)
}

/// TimescaleDB's internal time for -infinity (4714-11-24 BC in Unix
/// microseconds); lower values stand for "before anything".
const TS_NEG_INFINITY: i64 = -210_866_803_200_000_000;

/// The hourly aggregate's watermark and invalidated ranges (TimescaleDB's
/// catalog, readable by every role); `None` without the aggregate.
async fn hourly_state(client: &tokio_postgres::Client) -> Result<Option<HourlyState>> {
    let row = client
        .query_opt(
            "SELECT _timescaledb_functions.cagg_watermark(mat_hypertable_id)
               FROM _timescaledb_catalog.continuous_agg
              WHERE user_view_schema = current_schema() AND user_view_name = 'data_flows_hourly'",
            &[],
        )
        .await
        .map_err(Error::pg("reading the watermark of data_flows_hourly"))?;
    let Some(row) = row else { return Ok(None) };
    // TimescaleDB's internal times: microseconds since the Unix epoch,
    // with sentinels beyond PostgreSQL's range for the infinities.
    let time = |micros: i64| {
        DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    };
    let watermark: i64 = row.get(0);
    if watermark <= TS_NEG_INFINITY {
        // Nothing materialized yet.
        return Ok(None);
    }
    let watermark = time(watermark);
    let changed = client
        .query(
            "SELECT l.lowest_modified_value, l.greatest_modified_value
               FROM _timescaledb_catalog.continuous_agg c
               JOIN _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log l
                 ON l.hypertable_id = c.raw_hypertable_id
              WHERE c.user_view_schema = current_schema() AND c.user_view_name = 'data_flows_hourly'
             UNION ALL
             SELECT l.lowest_modified_value, l.greatest_modified_value
               FROM _timescaledb_catalog.continuous_agg c
               JOIN _timescaledb_catalog.continuous_aggs_materialization_invalidation_log l
                 ON l.materialization_id = c.mat_hypertable_id
              WHERE c.user_view_schema = current_schema() AND c.user_view_name = 'data_flows_hourly'",
            &[],
        )
        .await
        .map_err(Error::pg("reading the changes of data_flows_hourly"))?
        .into_iter()
        .map(|r| (time(r.get(0)), time(r.get(1))))
        .collect();
    Ok(Some(HourlyState { watermark, changed }))
}

/// One audit log entry: who did what, on which resource, and how it went.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub user: String,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request: serde_json::Value,
    pub response: Option<serde_json::Value>,
    pub success: bool,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub request_id: String,
}

/// Appends to `audit_logs`.
pub async fn audit(store: &Store, e: &AuditEntry) -> Result<()> {
    let now = Utc::now();
    store.ensure_partitions("audit_logs", &[now.date_naive()]).await?;
    let client = store.client().await?;
    let email = if e.user.contains('@') { e.user.clone() } else { format!("{}@localhost", e.user) };
    client
        .execute(
            "INSERT INTO audit_logs (id, user_id, user_email, action, resource_type, resource_id, request_data,
                                     response_data, success, error_message, timestamp, duration_ms, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &Uuid::new_v4(),
                &e.user,
                &email,
                &e.action,
                &e.resource_type,
                &e.resource_id,
                &e.request,
                &e.response,
                &e.success,
                &e.error,
                &now,
                &e.duration_ms,
                &e.request_id,
            ],
        )
        .await
        .map_err(Error::pg("writing the audit log"))?;
    Ok(())
}
