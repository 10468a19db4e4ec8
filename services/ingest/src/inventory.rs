//! Inventory events → [`Resource`]s.
//!
//! The native JSON form (for on-premise systems and tests), one object per
//! line or a JSON array of objects:
//!
//! ```json
//! {"provider": "aws", "resource_type": "ec2_instance", "resource_id": "i-0abc",
//!  "resource_name": "web-1", "region": "us-east-1", "vpc_id": "vpc-1",
//!  "subnet_id": "subnet-1", "private_ips": ["10.0.1.5"], "public_ips": [],
//!  "interface_ids": ["eni-1"], "security_groups": ["sg-1"],
//!  "tags": {"pci-scope": "cde"}, "observed_at": "2026-01-01T00:00:00Z",
//!  "deleted": false}
//! ```
//!
//! Optional keys: `resource_arn`, `account_id`, `availability_zone`,
//! `metadata` (any JSON object). Unknown keys are rejected, so a typo is an
//! error rather than a silently missing address. A later record for the same
//! `resource_id` replaces the earlier one from its `observed_at` on;
//! `deleted: true` ends it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use psg_domain::{CloudProvider, Resource, ResourceType, SourceRef, ids, time};
use serde::Deserialize;

/// Why an inventory record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} inventory events are not supported by this version: publish the native JSON form (see README)")]
    Unsupported(&'static str),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Native {
    provider: String,
    resource_type: String,
    resource_id: String,
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    resource_arn: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    availability_zone: Option<String>,
    #[serde(default)]
    vpc_id: Option<String>,
    #[serde(default)]
    subnet_id: Option<String>,
    #[serde(default)]
    private_ips: Vec<String>,
    #[serde(default)]
    public_ips: Vec<String>,
    #[serde(default)]
    interface_ids: Vec<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    observed_at: DateTime<Utc>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses one JSON value (an object) of an inventory message.
pub fn parse_value(value: serde_json::Value, source: SourceRef) -> Result<Resource, InventoryError> {
    if let Some(obj) = value.as_object() {
        if obj.contains_key("configurationItem") || obj.contains_key("configurationItems") {
            return Err(InventoryError::Unsupported("AWS Config"));
        }
        if obj.contains_key("assetType") || obj.contains_key("asset_type") {
            return Err(InventoryError::Unsupported("GCP Cloud Asset Inventory"));
        }
    } else {
        return Err(InventoryError::Invalid("an inventory record must be a JSON object".into()));
    }
    let n: Native = serde_json::from_value(value).map_err(|e| InventoryError::Json(e.to_string()))?;
    native(n, source)
}

fn native(n: Native, source: SourceRef) -> Result<Resource, InventoryError> {
    let provider: CloudProvider =
        n.provider.parse().map_err(|e: psg_domain::UnknownValue| InventoryError::Invalid(e.to_string()))?;
    let resource_type: ResourceType =
        n.resource_type.parse().map_err(|e: psg_domain::UnknownValue| InventoryError::Invalid(e.to_string()))?;
    let resource_id = n.resource_id.trim().to_owned();
    if resource_id.is_empty() || resource_id.len() > 255 {
        return Err(InventoryError::Invalid("resource_id must be 1 to 255 characters".into()));
    }
    if resource_id.starts_with("ip:") {
        return Err(InventoryError::Invalid(
            "resource_id must not start with 'ip:' (reserved for addresses without a resource)".into(),
        ));
    }
    let canon = |field: &str, ips: Vec<String>| -> Result<Vec<String>, InventoryError> {
        ips.iter()
            .map(|ip| {
                ip.parse::<IpAddr>()
                    .map(|a| a.to_string())
                    .map_err(|_| InventoryError::Invalid(format!("{field}: '{ip}' is not an IP address")))
            })
            .collect()
    };
    Ok(Resource {
        id: ids::resource_uuid(&resource_id).to_string(),
        resource_id,
        provider,
        resource_type,
        resource_arn: n.resource_arn,
        resource_name: n.resource_name,
        account_id: n.account_id,
        region: n.region,
        availability_zone: n.availability_zone,
        vpc_id: n.vpc_id,
        subnet_id: n.subnet_id,
        private_ips: canon("private_ips", n.private_ips)?,
        public_ips: canon("public_ips", n.public_ips)?,
        interface_ids: n.interface_ids,
        security_groups: n.security_groups,
        tags: n.tags.into_iter().collect::<HashMap<_, _>>(),
        observed_at: time::to_micros(n.observed_at),
        deleted: n.deleted,
        metadata_json: n.metadata.map(|m| serde_json::Value::Object(m).to_string()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SourceRef {
        SourceRef { topic: "inventory.raw".into(), partition: 0, offset: 1, line: 1 }
    }

    const EXAMPLE: &str = r#"{"provider": "aws", "resource_type": "ec2_instance", "resource_id": "i-0abc",
        "resource_name": "web-1", "region": "us-east-1", "vpc_id": "vpc-1",
        "subnet_id": "subnet-1", "private_ips": ["10.0.1.5"], "public_ips": [],
        "interface_ids": ["eni-1"], "security_groups": ["sg-1"],
        "tags": {"pci-scope": "cde"}, "observed_at": "2026-01-01T00:00:00Z",
        "deleted": false}"#;

    #[test]
    fn the_documented_example_parses() {
        let r = parse_value(serde_json::from_str(EXAMPLE).unwrap(), src()).unwrap();
        assert_eq!(r.resource_id, "i-0abc");
        assert_eq!(r.provider, CloudProvider::Aws);
        assert_eq!(r.resource_type, ResourceType::Ec2Instance);
        assert_eq!(r.private_ips, vec!["10.0.1.5"]);
        assert_eq!(r.tags["pci-scope"], "cde");
        assert_eq!(r.observed_at, 1_767_225_600 * time::SECOND);
        assert_eq!(r.id, ids::resource_uuid("i-0abc").to_string());
        assert!(!r.deleted);
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let typo = EXAMPLE.replace("private_ips", "privat_ips");
        let e = parse_value(serde_json::from_str(&typo).unwrap(), src()).unwrap_err();
        assert!(e.to_string().contains("privat_ips"), "{e}");
        let bad_ip = EXAMPLE.replace("10.0.1.5", "10.0.1.500");
        let e = parse_value(serde_json::from_str(&bad_ip).unwrap(), src()).unwrap_err();
        assert_eq!(e.to_string(), "private_ips: '10.0.1.500' is not an IP address");
        let bad_type = EXAMPLE.replace("ec2_instance", "ec2");
        let e = parse_value(serde_json::from_str(&bad_type).unwrap(), src()).unwrap_err();
        assert!(e.to_string().contains("unknown resource type 'ec2'"), "{e}");
        let e = parse_value(serde_json::json!({"configurationItem": {}}), src()).unwrap_err();
        assert!(matches!(e, InventoryError::Unsupported("AWS Config")));
    }
}
