//! Inventory events → [`Resource`]s.
//!
//! [`parse`] reads a message: a whole JSON document (one object, or an array
//! of objects) or one JSON object per line, and hands each object to the
//! reader of its dialect:
//! - the native form (below);
//! - AWS Config configuration items ([`aws_config`]): change notifications
//!   (also in an EventBridge event), snapshot files, bare items, and the
//!   notices that carry no item (refused with the reason);
//! - GCP Cloud Asset Inventory assets ([`gcp_asset`]): exports (camelCase or
//!   snake_case) and feed notifications;
//! - Azure resources ([`azure`]): ARM / Resource Graph JSON of virtual
//!   machines and network interfaces, alone or in a result wrapper
//!   (`{"data": [...]}`, `{"value": [...]}`).
//!
//! One object may give several resources (a snapshot, a wrapper): they all
//! have the object's line as their source line, and a refused item is
//! dead-lettered alone, with its own JSON text.
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

use crate::parsed::{MessageCtx, Parsed, Rejected, Sink};

pub mod aws_config;
pub mod azure;
mod fields;
pub mod gcp_asset;

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

/// The dialect of one inventory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Native,
    AwsConfig,
    GcpAsset,
    Azure,
}

/// Which reader an object is for.
pub fn dialect(obj: &serde_json::Map<String, serde_json::Value>) -> Dialect {
    let has = |k: &str| obj.contains_key(k);
    let text = |k: &str| obj.get(k).and_then(serde_json::Value::as_str);
    if has("configurationItem")
        || has("configurationItems")
        || has("configurationItemCaptureTime")
        || has("configSnapshotId")
        || has("configurationItemSummary")
        || (has("messageType") && has("notificationCreationTime"))
        || (text("source") == Some("aws.config") && has("detail"))
    {
        Dialect::AwsConfig
    } else if has("assetType") || has("asset_type") || (has("asset") && has("window")) {
        Dialect::GcpAsset
    } else if text("id").is_some_and(is_arm_id) || is_azure_wrapper(obj) {
        Dialect::Azure
    } else {
        Dialect::Native
    }
}

/// An ARM resource id: `/subscriptions/…` (ARM ids are case-insensitive).
fn is_arm_id(id: &str) -> bool {
    id.get(..15).is_some_and(|p| p.eq_ignore_ascii_case("/subscriptions/"))
}

/// A Resource Graph result (`{"data": [...]}`, or the old table format
/// `{"data": {"columns", "rows"}}`) or an ARM list (`{"value": [...]}`) of
/// ARM resources (or empty).
fn is_azure_wrapper(obj: &serde_json::Map<String, serde_json::Value>) -> bool {
    use serde_json::Value;
    let arm = |v: &Value| v.get("id").and_then(Value::as_str).is_some_and(is_arm_id);
    ["data", "value"].into_iter().any(|k| match obj.get(k) {
        Some(Value::Array(items)) => items.first().is_none_or(arm),
        Some(Value::Object(table)) => k == "data" && table.contains_key("columns") && table.contains_key("rows"),
        _ => false,
    })
}

/// The most JSON values (objects, arrays, strings, numbers, ...) one
/// inventory object may hold: a top-level object, or one item of a
/// top-level array. A document is built in memory as a tree of values
/// (about 32 bytes each, more for keys and strings), so this bounds what one
/// object costs (a few hundred MB at worst, for junk such as a 50 MB array
/// of zeros). Real inventory JSON has about one value per 20 bytes: a
/// 64 MiB document (the default `ingest.max-message-bytes`) holds about
/// 3 million.
pub const MAX_JSON_VALUES: usize = 4_000_000;

/// Parses a decoded inventory payload.
pub fn parse(text: &[u8], ctx: MessageCtx<'_>) -> Parsed<Resource> {
    Parsed::collect(|out| parse_into(text, ctx, out))
}

/// [`parse`], into a sink. A top-level array is read one item at a time (a
/// million items are never a million values in memory at once); an item
/// or object of more than [`MAX_JSON_VALUES`] values is refused while it
/// is being read.
pub fn parse_into(text: &[u8], ctx: MessageCtx<'_>, out: &mut dyn Sink<Resource>) {
    // A whole JSON document (one object, or an array of them), or one object per line.
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return parse_array(text, ctx, out);
    }
    let e = match value(text) {
        Ok(item) => return emit(parse_item(item, 1, Some(text), ctx), out),
        Err(e) => e,
    };
    if is_budget_error(&e) {
        return out.reject(Rejected::message("too-large", format!("inventory document: {e}")));
    }
    // One object per line; a payload of one line is the message itself
    // (already within ingest.max-message-bytes), so only lines of a
    // multi-line payload are held to the line limit.
    let several = crate::payload::lines(text).nth(1).is_some();
    for (line, raw) in crate::payload::lines(text) {
        if several && let Err(r) = crate::payload::check_line(line, raw) {
            out.reject(r);
            continue;
        }
        match value(raw) {
            Ok(item) => emit(parse_item(item, line, Some(raw), ctx), out),
            Err(e) => {
                let kind = if is_budget_error(&e) { "too-large" } else { "parse" };
                out.reject(Rejected::new(line, raw, kind, crate::fields::json_error(&e)));
            }
        }
    }
}

fn emit(parsed: Parsed<Resource>, out: &mut dyn Sink<Resource>) {
    parsed.records.into_iter().for_each(|r| out.record(r));
    parsed.rejected.into_iter().for_each(|r| out.reject(r));
}

/// A top-level array: each item is read, handed to its dialect and dropped
/// before the next. Items before a syntax error have gone through; the
/// error refuses the message (its later items cannot be told apart).
fn parse_array(text: &[u8], ctx: MessageCtx<'_>, out: &mut dyn Sink<Resource>) {
    use serde::de::Deserializer as _;
    let mut de = serde_json::Deserializer::from_slice(text);
    let mut items = 0u32;
    let result = (&mut de).deserialize_seq(Items { out: &mut *out, ctx, items: &mut items }).and_then(|()| de.end());
    if let Err(e) = result {
        let kind = if is_budget_error(&e) { "too-large" } else { "parse" };
        let at = if items == 0 { String::new() } else { format!(" after item {items}") };
        out.reject(Rejected::message(kind, format!("inventory array{at}: {}", crate::fields::json_error(&e))));
    }
}

struct Items<'s, 'c> {
    out: &'s mut dyn Sink<Resource>,
    ctx: MessageCtx<'c>,
    items: &'s mut u32,
}

impl<'de> serde::de::Visitor<'de> for Items<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of inventory objects")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let mut left = MAX_JSON_VALUES;
            let Some(item) = seq.next_element_seed(Budgeted { left: &mut left })? else { return Ok(()) };
            *self.items += 1;
            emit(parse_item(item, *self.items, None, self.ctx), self.out);
        }
    }
}

/// A whole JSON value of at most [`MAX_JSON_VALUES`] values, and nothing after it.
fn value(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut left = MAX_JSON_VALUES;
    let v = Budgeted { left: &mut left }.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

const BUDGET_ERROR: &str = "more than 4000000 JSON values in one inventory object";

fn is_budget_error(e: &serde_json::Error) -> bool {
    e.to_string().starts_with(BUDGET_ERROR)
}

/// Builds a [`serde_json::Value`] as serde_json does, counting values and
/// failing as soon as there are more than `left`.
struct Budgeted<'b> {
    left: &'b mut usize,
}

impl Budgeted<'_> {
    fn take<E: serde::de::Error>(&mut self) -> Result<(), E> {
        match self.left.checked_sub(1) {
            Some(n) => {
                *self.left = n;
                Ok(())
            }
            None => Err(E::custom(BUDGET_ERROR)),
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Budgeted<'_> {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budgeted<'_> {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: serde::de::Error>(mut self, v: bool) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_i64<E: serde::de::Error>(mut self, v: i64) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(mut self, v: u64) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(mut self, v: f64) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_string<E: serde::de::Error>(mut self, v: String) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<serde_json::Value, E> {
        self.visit_unit()
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Budgeted { left: &mut *self.left })? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<serde_json::Value, A::Error> {
        self.take()?;
        let mut m = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Budgeted { left: &mut *self.left })?;
            m.insert(k, v);
        }
        Ok(serde_json::Value::Object(m))
    }
}

/// Parses one object (which may describe several resources: a snapshot).
fn parse_item(item: serde_json::Value, line: u32, raw: Option<&[u8]>, ctx: MessageCtx<'_>) -> Parsed<Resource> {
    let raw_text = || raw.map(<[u8]>::to_vec).unwrap_or_else(|| item.to_string().into_bytes());
    let Some(obj) = item.as_object() else {
        return Parsed {
            records: vec![],
            rejected: vec![Rejected::new(line, raw_text(), "parse", "an inventory record must be a JSON object")],
        };
    };
    match dialect(obj) {
        Dialect::Native => {
            let raw = raw_text();
            let mut out = Parsed::default();
            out.push(
                parse_value(item, ctx.source(line)).map_err(|e| Rejected::new(line, raw, e.kind(), e.to_string())),
            );
            out
        }
        Dialect::AwsConfig => aws_config::parse(item, line, ctx),
        Dialect::GcpAsset => gcp_asset::parse(item, line, ctx),
        Dialect::Azure => azure::parse(item, line, ctx),
    }
}

/// Parses one native-form object.
pub fn parse_value(value: serde_json::Value, source: SourceRef) -> Result<Resource, InventoryError> {
    let n: Native = serde_json::from_value(value).map_err(|e| InventoryError::Json(e.to_string()))?;
    native(n, source)
}

impl InventoryError {
    /// Short class for metrics and the dead-letter `kind` header.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unsupported(_) => "unsupported",
            _ => "parse",
        }
    }
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
        assert_eq!(dialect(serde_json::json!({"configurationItem": {}}).as_object().unwrap()), Dialect::AwsConfig);
    }

    fn ctx() -> MessageCtx<'static> {
        MessageCtx { topic: "inventory.raw", partition: 0, offset: 1, time: None }
    }

    #[test]
    fn aws_config_through_parse() {
        let snapshot = br#"{"fileVersion": "1.0", "configSnapshotId": "s-1", "configurationItems": [
            {"configurationItemCaptureTime": "2026-02-01T00:00:00Z", "configurationItemStatus": "OK",
             "resourceType": "AWS::EC2::Instance", "resourceId": "i-1", "awsAccountId": "000000000001",
             "awsRegion": "eu-west-1", "tags": {"pci-scope": "cde"},
             "configuration": {"privateIpAddress": "10.0.0.1", "vpcId": "vpc-1",
                               "networkInterfaces": [{"networkInterfaceId": "eni-1", "privateIpAddress": "10.0.0.1"}]}},
            {"configurationItemCaptureTime": "2026-02-01T00:00:00Z", "configurationItemStatus": "OK",
             "resourceType": "AWS::IAM::Role", "resourceId": "AROA1", "configuration": {}}]}"#;
        let p = parse(snapshot, ctx());
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].interface_ids, vec!["eni-1"]);
        assert_eq!(p.records[0].account_id.as_deref(), Some("000000000001"));
        assert_eq!(p.rejected.len(), 1);
        assert_eq!((p.rejected[0].line, p.rejected[0].kind), (1, "unsupported"));
        // Bare items, one per line.
        let lines = br#"{"configurationItemCaptureTime": "2026-02-01T00:00:00Z", "resourceType": "AWS::Lambda::Function", "resourceId": "f1", "configuration": {"functionName": "f1"}}
{"configurationItemCaptureTime": "2026-02-01T00:00:00Z", "resourceType": "AWS::EC2::Instance", "resourceId": "i-2", "configuration": {"privateIpAddress": "10.0.0.300"}}"#;
        let p = parse(lines, ctx());
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.rejected[0].line, 2);
        assert_eq!(p.rejected[0].reason, "configuration.privateIpAddress: '10.0.0.300' is not an IP address");
    }

    #[test]
    fn gcp_assets_through_parse() {
        let export = br#"{"name": "//compute.googleapis.com/projects/p1/zones/europe-west1-c/instances/vm-a", "asset_type": "compute.googleapis.com/Instance", "resource": {"data": {"networkInterfaces": [{"networkIP": "10.2.0.2"}]}}, "update_time": "2026-02-01T00:00:00Z"}
{"name": "//compute.googleapis.com/projects/p1/zones/europe-west1-c/instances/vm-b", "assetType": "compute.googleapis.com/Instance", "resource": {"data": {"networkInterfaces": [{"networkIP": "10.2.0.3"}]}}, "updateTime": "2026-02-01T00:00:00Z"}
{"name": "//compute.googleapis.com/projects/p1/global/networks/default", "assetType": "compute.googleapis.com/Network", "resource": {"data": {}}, "updateTime": "2026-02-01T00:00:00Z"}"#;
        let p = parse(export, ctx());
        assert_eq!(p.records.iter().map(|r| r.private_ips[0].as_str()).collect::<Vec<_>>(), ["10.2.0.2", "10.2.0.3"]);
        assert_eq!(p.records[0].region.as_deref(), Some("europe-west1"));
        assert_eq!((p.rejected[0].line, p.rejected[0].kind), (3, "unsupported"));
        let feed = br#"{"asset": {"name": "//compute.googleapis.com/projects/p1/zones/europe-west1-c/instances/vm-a", "assetType": "compute.googleapis.com/Instance"}, "deleted": true, "window": {"startTime": "2026-02-02T00:00:00Z"}}"#;
        let p = parse(feed, ctx());
        assert!(p.records[0].deleted);
    }

    #[test]
    fn azure_resources_through_parse() {
        let sub = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg";
        let nic = format!(
            r#"{{"id": "{sub}/providers/Microsoft.Network/networkInterfaces/nic-1", "name": "nic-1",
                 "type": "Microsoft.Network/networkInterfaces", "location": "eastus",
                 "properties": {{"macAddress": "00-0D-3A-00-00-01", "ipConfigurations": [{{"properties":
                   {{"privateIPAddress": "10.3.0.4", "subnet": {{"id": "{sub}/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/s1"}}}}}}]}}}}"#
        );
        let wrapped = format!(r#"{{"observed_at": "2026-02-01T00:00:00Z", "value": [{nic}]}}"#);
        let p = parse(wrapped.as_bytes(), ctx());
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records[0].interface_ids, vec!["000D3A000001"]);
        assert_eq!(p.records[0].vpc_id.as_deref(), Some("vnet-1"));
        assert_eq!(p.records[0].account_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
        // A bare array of resources, each with its own time.
        let array = format!(r#"[{}]"#, nic.replacen('{', r#"{"observedAt": "2026-02-01T00:00:00Z", "#, 1));
        let p = parse(array.as_bytes(), ctx());
        assert_eq!(p.records.len(), 1, "{:?}", p.rejected);
        // Without a time: refused, the message says what to add.
        let p = parse(nic.as_bytes(), ctx());
        assert!(p.records.is_empty());
        assert!(p.rejected[0].reason.contains("observed_at"));
    }

    #[test]
    fn the_budget_error_names_the_limit() {
        assert!(BUDGET_ERROR.contains(&format!(" {MAX_JSON_VALUES} ")), "{BUDGET_ERROR}");
    }

    #[test]
    fn dialects() {
        let d = |j: serde_json::Value| dialect(j.as_object().unwrap());
        assert_eq!(d(serde_json::json!({"source": "aws.config", "detail": {}})), Dialect::AwsConfig);
        assert_eq!(
            d(serde_json::json!({"messageType": "OversizedConfigurationItemChangeNotification",
                                 "notificationCreationTime": "x"})),
            Dialect::AwsConfig
        );
        assert_eq!(d(serde_json::json!({"asset": {}, "window": {}})), Dialect::GcpAsset);
        assert_eq!(d(serde_json::json!({"id": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/Y"})), Dialect::Azure);
        assert_eq!(d(serde_json::json!({"data": [{"id": "/subscriptions/x"}]})), Dialect::Azure);
        assert_eq!(d(serde_json::json!({"value": []})), Dialect::Azure);
        assert_eq!(d(serde_json::json!({"data": {"columns": [], "rows": []}})), Dialect::Azure);
        assert_eq!(d(serde_json::json!({"data": [{"provider": "aws"}]})), Dialect::Native);
    }
}
