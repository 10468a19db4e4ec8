//! Read models for periodic evidence reports: flows across the CDE
//! boundary, segmentation violations, tag changes, resource configuration.
//! CDE membership is a resource's current scope decision.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use psg_domain::rows::report::{BoundaryFlow, ResourceConfig, TagChange, Violation};

use crate::{Error, Result, Store};

/// Flows observed in `[from, to)` with at least one side in the CDE.
pub async fn cde_flows(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<BoundaryFlow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "WITH cde AS (SELECT resource_id AS id FROM scope_decisions WHERE is_current AND scope = 'cde')
             SELECT s.resource_id, d.resource_id, f.protocol, f.dst_port, f.action,
                    sum(f.flow_count)::int8, sum(f.packet_count)::int8, sum(f.byte_count)::int8,
                    min(f.first_seen), max(f.last_seen),
                    f.source_resource_id IN (SELECT id FROM cde), f.dest_resource_id IN (SELECT id FROM cde)
               FROM data_flows f
               JOIN resources s ON s.id = f.source_resource_id
               JOIN resources d ON d.id = f.dest_resource_id
              WHERE f.observed_at >= $1 AND f.observed_at < $2 AND f.flow_count > 0
                AND (f.source_resource_id IN (SELECT id FROM cde) OR f.dest_resource_id IN (SELECT id FROM cde))
              GROUP BY 1, 2, 3, 4, 5, 11, 12
              ORDER BY 1, 2, 3, 4, 5",
            &[&from, &to],
        )
        .await
        .map_err(Error::pg("reading CDE flows"))?;
    Ok(rows
        .iter()
        .map(|r| BoundaryFlow {
            source: r.get(0),
            destination: r.get(1),
            protocol: r.get(2),
            dst_port: r.get(3),
            action: r.get(4),
            flow_count: r.get(5),
            packet_count: r.get(6),
            byte_count: r.get(7),
            first_seen: r.get(8),
            last_seen: r.get(9),
            source_in_cde: r.get(10),
            destination_in_cde: r.get(11),
        })
        .collect())
}

/// `segmentation_violation` alerts whose first violating flow (event time,
/// `context.first_seen`; the trigger time when absent) is in `[from, to)`.
pub async fn violations(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Violation>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT a.id::text, r.resource_id, a.title, a.status, a.triggered_at, a.event_at
               FROM (SELECT *, COALESCE((context->>'first_seen')::timestamptz, triggered_at) AS event_at
                       FROM alerts WHERE alert_type = 'segmentation_violation') a
               LEFT JOIN resources r ON r.id = a.resource_id
              WHERE a.event_at >= $1 AND a.event_at < $2
              ORDER BY a.event_at, a.id",
            &[&from, &to],
        )
        .await
        .map_err(Error::pg("reading segmentation violations"))?;
    Ok(rows
        .iter()
        .map(|r| Violation {
            alert_id: r.get(0),
            resource: r.get(1),
            title: r.get(2),
            status: r.get(3),
            triggered_at: r.get(4),
            first_seen: r.get(5),
        })
        .collect())
}

/// Tag versions applied in `[from, to)`.
pub async fn tag_changes(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<TagChange>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT r.resource_id, t.key, t.value, t.previous_value, t.version, t.source, t.applied_by, t.applied_at
               FROM tags t JOIN resources r ON r.id = t.resource_id
              WHERE t.applied_at >= $1 AND t.applied_at < $2
              ORDER BY t.applied_at, r.resource_id, t.key, t.version",
            &[&from, &to],
        )
        .await
        .map_err(Error::pg("reading tag changes"))?;
    Ok(rows
        .iter()
        .map(|r| TagChange {
            resource: r.get(0),
            key: r.get(1),
            value: r.get(2),
            previous_value: r.get(3),
            version: r.get(4),
            source: r.get(5),
            applied_by: r.get(6),
            applied_at: r.get(7),
        })
        .collect())
}

/// Every resource seen before `at`, with its tags as of `at` and its
/// current scope.
pub async fn configuration(store: &Store, at: DateTime<Utc>) -> Result<Vec<ResourceConfig>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT r.resource_id, r.provider::text, r.resource_type::text, r.resource_name, r.region, r.vpc_id,
                    r.subnet_id, r.private_ips, r.public_ips, COALESCE(r.security_groups, '[]'::jsonb),
                    COALESCE((SELECT jsonb_object_agg(t.key, t.value) FROM (
                        SELECT DISTINCT ON (key) key, value FROM tags
                         WHERE resource_id = r.id AND applied_at < $1 ORDER BY key, version DESC) t), '{}'::jsonb),
                    (SELECT scope::text FROM scope_decisions WHERE resource_id = r.id AND is_current),
                    COALESCE(r.is_active, true), r.last_seen_at
               FROM resources r
              WHERE r.discovered_at < $1 AND r.resource_type::text NOT IN ('unknown_host', 'external_endpoint')
              ORDER BY r.resource_id",
            &[&at],
        )
        .await
        .map_err(Error::pg("reading resource configuration"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let tags: serde_json::Value = r.get(10);
            let tags: BTreeMap<String, String> = tags
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
                .unwrap_or_default();
            ResourceConfig {
                resource: r.get(0),
                provider: r.get(1),
                resource_type: r.get(2),
                name: r.get(3),
                region: r.get(4),
                vpc_id: r.get(5),
                subnet_id: r.get(6),
                private_ips: r.get(7),
                public_ips: r.get(8),
                security_groups: r.get(9),
                tags,
                scope: r.get(11),
                is_active: r.get(12),
                last_seen_at: r.get(13),
            }
        })
        .collect())
}
