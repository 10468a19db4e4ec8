//! `resources` and `tags`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use psg_domain::ids::stable_id;
use psg_domain::rows::ResourceRow;

use crate::{Error, Result, Store};

/// One observation of a resource from the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceObservation {
    pub row: ResourceRow,
    /// Tags as observed (complete set).
    pub tags: BTreeMap<String, String>,
    /// `tags.applied_by` of changed tags: the source of the observation.
    pub applied_by: String,
}

const UPSERT: &str = "
INSERT INTO resources (id, provider, resource_type, resource_id, resource_arn, resource_name,
                       vpc_id, subnet_id, availability_zone, region, metadata, private_ip, public_ip,
                       security_groups, discovered_at, last_seen_at, is_active,
                       private_ips, public_ips, interface_ids)
VALUES ($1, $2::text::cloud_provider, $3::text::resource_type, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
        $14, $15, $15, $16, $17, $18, $19)
ON CONFLICT (resource_id) DO UPDATE SET
    provider = EXCLUDED.provider,
    resource_type = EXCLUDED.resource_type,
    resource_arn = EXCLUDED.resource_arn,
    resource_name = EXCLUDED.resource_name,
    vpc_id = EXCLUDED.vpc_id,
    subnet_id = EXCLUDED.subnet_id,
    availability_zone = EXCLUDED.availability_zone,
    region = EXCLUDED.region,
    metadata = EXCLUDED.metadata,
    private_ip = EXCLUDED.private_ip,
    public_ip = EXCLUDED.public_ip,
    security_groups = EXCLUDED.security_groups,
    discovered_at = LEAST(resources.discovered_at, EXCLUDED.discovered_at),
    last_seen_at = EXCLUDED.last_seen_at,
    is_active = EXCLUDED.is_active,
    private_ips = EXCLUDED.private_ips,
    public_ips = EXCLUDED.public_ips,
    interface_ids = EXCLUDED.interface_ids
WHERE resources.last_seen_at <= EXCLUDED.last_seen_at
RETURNING id";

/// Writes observations: newer ones replace older ones (by observation time;
/// an older observation arriving late changes nothing), and every tag
/// change becomes a new `tags` version row with the previous value. A tag
/// that disappears is recorded as a version with an empty value.
pub async fn upsert_resources(store: &Store, items: &[ResourceObservation]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(Error::pg("starting the resource write"))?;
    let upsert = tx.prepare(UPSERT).await.map_err(Error::pg("preparing the resource upsert"))?;
    let current_tags = tx
        .prepare(
            "SELECT DISTINCT ON (key) key, value, version FROM tags WHERE resource_id = $1 ORDER BY key, version DESC",
        )
        .await
        .map_err(Error::pg("preparing the tag read"))?;
    let insert_tag = tx
        .prepare(
            "INSERT INTO tags (id, resource_id, key, value, source, applied_at, applied_by, version, previous_value)
             VALUES ($1, $2, $3, $4, 'automated', $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .await
        .map_err(Error::pg("preparing the tag write"))?;
    for item in items {
        let r = &item.row;
        let updated = tx
            .query_opt(
                &upsert,
                &[
                    &r.id,
                    &r.provider.as_str(),
                    &r.resource_type.as_str(),
                    &r.resource_id,
                    &r.resource_arn,
                    &r.resource_name,
                    &r.vpc_id,
                    &r.subnet_id,
                    &r.availability_zone,
                    &r.region,
                    &r.metadata,
                    &r.private_ip,
                    &r.public_ip,
                    &r.security_groups,
                    &r.last_seen_at,
                    &r.is_active,
                    &r.private_ips,
                    &r.public_ips,
                    &r.interface_ids,
                ],
            )
            .await
            .map_err(Error::pg("upserting a resource"))?;
        if updated.is_none() {
            continue; // an older observation than the stored one
        }
        let rows = tx.query(&current_tags, &[&r.id]).await.map_err(Error::pg("reading tags"))?;
        let current: HashMap<String, (String, i32)> =
            rows.iter().map(|row| (row.get(0), (row.get(1), row.get(2)))).collect();
        let mut changes: Vec<(&str, &str, Option<&str>, i32)> = Vec::new();
        for (key, value) in &item.tags {
            match current.get(key) {
                Some((old, _)) if old == value => {}
                Some((old, version)) => changes.push((key, value, Some(old), version + 1)),
                None => changes.push((key, value, None, 1)),
            }
        }
        for (key, (old, version)) in &current {
            if !item.tags.contains_key(key) && !old.is_empty() {
                changes.push((key, "", Some(old), version + 1));
            }
        }
        for (key, value, previous, version) in changes {
            let id = stable_id("tag", &[&r.resource_id, key, &version.to_string()]);
            tx.execute(
                &insert_tag,
                &[&id, &r.id, &key, &value, &r.last_seen_at, &item.applied_by, &version, &previous],
            )
            .await
            .map_err(Error::pg("writing a tag version"))?;
        }
    }
    tx.commit().await.map_err(Error::pg("committing the resource write"))
}

/// Makes sure a row exists for each resource (inserting it as given when it
/// does not); never changes an existing row. Services that reference a
/// resource (flows, decisions) call this so that their writes never wait
/// for the inventory writer.
pub async fn ensure_resources(store: &Store, rows: &[ResourceRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(Error::pg("starting the resource insert"))?;
    let stmt = tx
        .prepare(
            "INSERT INTO resources (id, provider, resource_type, resource_id, resource_name, vpc_id, subnet_id,
                                    region, metadata, private_ip, public_ip, discovered_at, last_seen_at,
                                    is_active, private_ips, public_ips, interface_ids)
             VALUES ($1, $2::text::cloud_provider, $3::text::resource_type, $4, $5, $6, $7, $8, $9, $10, $11,
                     $12, $13, $14, $15, $16, $17)
             ON CONFLICT (resource_id) DO NOTHING",
        )
        .await
        .map_err(Error::pg("preparing the resource insert"))?;
    let mut seen = std::collections::HashSet::new();
    for r in rows.iter().filter(|r| seen.insert(r.id)) {
        tx.execute(
            &stmt,
            &[
                &r.id,
                &r.provider.as_str(),
                &r.resource_type.as_str(),
                &r.resource_id,
                &r.resource_name,
                &r.vpc_id,
                &r.subnet_id,
                &r.region,
                &r.metadata,
                &r.private_ip,
                &r.public_ip,
                &r.discovered_at,
                &r.last_seen_at,
                &r.is_active,
                &r.private_ips,
                &r.public_ips,
                &r.interface_ids,
            ],
        )
        .await
        .map_err(Error::pg("inserting a resource"))?;
    }
    tx.commit().await.map_err(Error::pg("committing the resource insert"))
}

/// The current tags of a resource (by natural id): key → (value, version).
pub async fn current_tags(store: &Store, resource_id: &str) -> Result<BTreeMap<String, (String, i32)>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (t.key) t.key, t.value, t.version
               FROM tags t JOIN resources r ON r.id = t.resource_id
              WHERE r.resource_id = $1
              ORDER BY t.key, t.version DESC",
            &[&resource_id],
        )
        .await
        .map_err(Error::pg("reading tags"))?;
    Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
}

/// When a resource was last observed, by natural id.
pub async fn last_seen(store: &Store, resource_id: &str) -> Result<Option<DateTime<Utc>>> {
    let client = store.client().await?;
    let row = client
        .query_opt("SELECT last_seen_at FROM resources WHERE resource_id = $1", &[&resource_id])
        .await
        .map_err(Error::pg("reading a resource"))?;
    Ok(row.map(|r| r.get(0)))
}
