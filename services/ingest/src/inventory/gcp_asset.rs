//! GCP Cloud Asset Inventory assets → Resources.
//!
//! Accepted objects:
//! - assets as exported (`exportAssets`, `listAssets`, `batchGetAssetsHistory`):
//!   `{"name", "assetType", "resource": {"data": {...}}, "updateTime"}`, with
//!   camelCase keys or the snake_case keys of some exports (`asset_type`,
//!   `update_time`, `network_interfaces`, `network_ip`, `access_configs`,
//!   `nat_ip`, ...);
//! - feed notifications `{"asset": {...}, "priorAsset": ..., "deleted": bool,
//!   "window": {"startTime": ...}}`: `deleted` as given.
//!
//! `observed_at`: for a feed notification the window's `startTime` (when the
//! state it describes began: for a deletion, the deletion), else the asset's
//! `updateTime`; for an export the asset's `updateTime` (RFC 3339, or
//! BigQuery's `YYYY-MM-DD HH:MM:SS[.f] UTC`).
//!
//! `compute.googleapis.com/Instance` → `compute_instance`:
//! - `resource_id` = the asset `name`
//!   (`//compute.googleapis.com/projects/P/zones/Z/instances/N`),
//!   `resource_name` = N, `account_id` = P (the project id),
//!   `availability_zone` = Z (else the last segment of `data.zone`, else
//!   `resource.location`), `region` = Z without its last `-x` part;
//! - `private_ips`: every interface's `networkIP` and internal `ipv6Address`,
//!   and its alias ranges that are a single address (`/32`, `/128`; wider
//!   ranges stay in the metadata); `public_ips`: every `accessConfigs[].natIP`
//!   and `ipv6AccessConfigs[].externalIpv6` (GCP calls them external);
//! - `vpc_id`/`subnet_id`: the last path segment of the first interface's
//!   `network`/`subnetwork` URL (the names GCP VPC flow logs report);
//! - `interface_ids`: none (GCP interface names, `nic0`, are not unique, and
//!   GCP flow logs name no interface);
//! - `security_groups`: what GCP firewall rules select instances by: every
//!   interface's network (`projects/P/global/networks/N`), the network tags
//!   (`tags.items`, as `tag:T`) and the service accounts
//!   (`serviceAccounts[].email`, as `serviceAccount:EMAIL`);
//! - `tags` = `labels`; `metadata_json` = `resource.data`.
//!
//! `compute.googleapis.com/Firewall` → `firewall_rule` (network policy, not
//! a system): `resource_id` = the asset `name`
//! (`//compute.googleapis.com/projects/P/global/firewalls/N`),
//! `resource_name` = the rule's name, `account_id` = P, `vpc_id` = the
//! network's name, `metadata_json` = `resource.data`; the rule is checked
//! here (priority, direction, `allowed`/`denied`, ports, ranges), so a rule
//! classify cannot read is refused at the door.
//!
//! `compute.googleapis.com/Subnetwork` → `flow_log` (configuration, not a
//! system): its `logConfig` says whether the subnetwork's VPC flow logs are
//! on (`enable`; absent: off); `subnet_id` = S, `vpc_id` = its network's
//! name, `metadata_json` = `resource.data`.
//!
//! A deleted asset needs no `resource.data`. Other asset types are refused
//! (kind `unsupported`, naming the type).

use psg_domain::{CloudProvider, Resource, ResourceType};
use serde_json::Value;

use super::fields::{At, Refusal, Result, canonical_ip, last_segment, push_unique, tags_into, time_at};
use crate::parsed::{MessageCtx, Parsed};

/// The asset types this version maps.
pub const COMPUTE_INSTANCE: &str = "compute.googleapis.com/Instance";
pub const FIREWALL: &str = "compute.googleapis.com/Firewall";
pub const SUBNETWORK: &str = "compute.googleapis.com/Subnetwork";

/// Parses one GCP Cloud Asset Inventory object (item `line` of its message).
pub fn parse(item: Value, line: u32, ctx: MessageCtx<'_>) -> Parsed<Resource> {
    let mut out = Parsed::default();
    out.push(resource(&item, line, ctx).map_err(|r| r.rejected(line, &item)));
    out
}

fn resource(item: &Value, line: u32, ctx: MessageCtx<'_>) -> Result<Resource> {
    let root = At::root(item, "");
    // A feed notification wraps the asset; an export is the asset.
    let (asset, deleted, window_start) = match root.get(&["asset"]) {
        Some(asset) => {
            let deleted = match root.get(&["deleted"]) {
                None => false,
                Some(At { value: Value::Bool(b), .. }) => *b,
                Some(d) => {
                    return Err(Refusal::parse(format!("{}: expected true or false, found {}", d.path, d.value)));
                }
            };
            (asset, deleted, root.dig(&[&["window"], &["startTime", "start_time"]]))
        }
        None => (root, false, None),
    };
    let asset_type = asset.req_str(&["assetType", "asset_type"])?;
    let name = asset.req_str(&["name"])?;
    let resource_type = match asset_type {
        COMPUTE_INSTANCE => ResourceType::ComputeInstance,
        FIREWALL => ResourceType::FirewallRule,
        SUBNETWORK => ResourceType::FlowLog,
        _ => {
            return Err(Refusal::unsupported(format!(
                "unsupported GCP asset type {asset_type} ({name}): this version maps {COMPUTE_INSTANCE}, {FIREWALL} and {SUBNETWORK}"
            )));
        }
    };
    let observed_at = match window_start.or_else(|| asset.get(&["updateTime", "update_time"])) {
        Some(t) => time_at(&t)?,
        None => {
            return Err(Refusal::parse(
                "updateTime: missing (an asset needs updateTime, a feed notification window.startTime)",
            ));
        }
    };
    if resource_type == ResourceType::FirewallRule {
        return firewall(&asset, name, deleted, observed_at, ctx.source(line));
    }
    if resource_type == ResourceType::FlowLog {
        return subnetwork(&asset, name, deleted, observed_at, ctx.source(line));
    }
    let path = InstanceName::parse(name)?;
    let mut r = Resource::new(name, CloudProvider::Gcp, resource_type, observed_at, ctx.source(line));
    r.deleted = deleted;
    r.resource_name = Some(path.instance.to_owned());
    r.account_id = Some(path.project.to_owned());

    let resource = asset.get(&["resource"]);
    let data = resource.as_ref().and_then(|res| res.get(&["data"]));
    let zone = match (path.zone, &data) {
        (Some(z), _) => Some(z.to_owned()),
        (None, Some(data)) => data.opt_str(&["zone"])?.and_then(last_segment).map(str::to_owned),
        (None, None) => None,
    };
    r.availability_zone = match zone {
        Some(z) => Some(z),
        None => resource.as_ref().map(|res| res.opt_string(&["location"])).transpose()?.flatten(),
    };
    r.region = r.availability_zone.as_deref().map(|z| z.rsplit_once('-').map_or(z, |(region, _)| region).to_owned());

    let Some(data) = live_data(data, deleted)? else { return Ok(r) };
    if !data.value.is_object() {
        return Err(Refusal::parse(format!("{}: expected an object, found {}", data.path, data.value)));
    }
    for (i, ni) in data.items(&["networkInterfaces", "network_interfaces"])?.iter().enumerate() {
        let network = ni.opt_str(&["network"])?;
        if i == 0 {
            r.vpc_id = network.and_then(last_segment).map(str::to_owned);
            r.subnet_id = ni.opt_str(&["subnetwork"])?.and_then(last_segment).map(str::to_owned);
        }
        if let Some(path) = network.and_then(psg_reach::gcp::network_path) {
            push_unique(&mut r.security_groups, &path);
        }
        ni.ip_into(&["networkIP", "network_ip", "networkIp"], &mut r.private_ips)?;
        ni.ip_into(&["ipv6Address", "ipv6_address"], &mut r.private_ips)?;
        for alias in ni.items(&["aliasIpRanges", "alias_ip_ranges"])? {
            if let Some(range) = alias.get(&["ipCidrRange", "ip_cidr_range"]) {
                single_address(&range, &mut r.private_ips)?;
            }
        }
        for ac in ni.items(&["accessConfigs", "access_configs"])? {
            ac.ip_into(&["natIP", "nat_ip", "natIp"], &mut r.public_ips)?;
            ac.ip_into(&["externalIpv6", "external_ipv6"], &mut r.public_ips)?;
        }
        for ac in ni.items(&["ipv6AccessConfigs", "ipv6_access_configs"])? {
            ac.ip_into(&["externalIpv6", "external_ipv6"], &mut r.public_ips)?;
        }
    }
    if let Some(network_tags) = data.get(&["tags"]) {
        for t in network_tags.strs(&["items"])? {
            push_unique(&mut r.security_groups, &format!("{}{t}", psg_reach::gcp::TAG));
        }
    }
    for sa in data.items(&["serviceAccounts", "service_accounts"])? {
        if let Some(email) = sa.opt_str(&["email"])? {
            push_unique(&mut r.security_groups, &format!("{}{email}", psg_reach::gcp::SERVICE_ACCOUNT));
        }
    }
    if let Some(labels) = data.get(&["labels"]) {
        tags_into(&labels, &mut r.tags)?;
    }
    r.metadata_json = Some(data.value.to_string());
    Ok(r)
}

/// An asset's `resource.data`: required unless the asset is deleted.
fn live_data(data: Option<At<'_>>, deleted: bool) -> Result<Option<At<'_>>> {
    match data {
        None if !deleted => Err(Refusal::parse("resource.data: missing (only a deleted asset may have none)")),
        data => Ok(data),
    }
}

/// A firewall rule asset: `//compute.googleapis.com/projects/P/global/firewalls/N`.
fn firewall(
    asset: &At<'_>,
    name: &str,
    deleted: bool,
    observed_at: psg_domain::time::Micros,
    source: psg_domain::SourceRef,
) -> Result<Resource> {
    let bad = || {
        Refusal::parse(format!(
            "name: '{name}' is not a firewall rule name (//compute.googleapis.com/projects/P/global/firewalls/N)"
        ))
    };
    let path = name.strip_prefix("//compute.googleapis.com/projects/").ok_or_else(bad)?;
    let (project, rule) = match path.split('/').collect::<Vec<_>>().as_slice() {
        [p, "global", "firewalls", n] if !p.is_empty() && !n.is_empty() => ((*p).to_owned(), (*n).to_owned()),
        _ => return Err(bad()),
    };
    let mut r = Resource::new(name, CloudProvider::Gcp, ResourceType::FirewallRule, observed_at, source);
    r.deleted = deleted;
    r.account_id = Some(project);
    r.resource_name = Some(rule);
    let Some(data) = live_data(asset.dig(&[&["resource"], &["data"]]), deleted)? else { return Ok(r) };
    let parsed = psg_reach::gcp::gcp_firewall(data.value).map_err(|e| Refusal::parse(format!("resource.data.{e}")))?;
    r.vpc_id = last_segment(&parsed.set).map(str::to_owned);
    r.metadata_json = Some(data.value.to_string());
    Ok(r)
}

/// A subnetwork asset, for its flow-log configuration (`logConfig`):
/// `//compute.googleapis.com/projects/P/regions/R/subnetworks/S`.
fn subnetwork(
    asset: &At<'_>,
    name: &str,
    deleted: bool,
    observed_at: psg_domain::time::Micros,
    source: psg_domain::SourceRef,
) -> Result<Resource> {
    let bad = || {
        Refusal::parse(format!(
            "name: '{name}' is not a subnetwork name (//compute.googleapis.com/projects/P/regions/R/subnetworks/S)"
        ))
    };
    let path = name.strip_prefix("//compute.googleapis.com/projects/").ok_or_else(bad)?;
    let (project, region, subnet) = match path.split('/').collect::<Vec<_>>().as_slice() {
        [p, "regions", r, "subnetworks", s] if !p.is_empty() && !s.is_empty() => {
            ((*p).to_owned(), (*r).to_owned(), (*s).to_owned())
        }
        _ => return Err(bad()),
    };
    let mut r = Resource::new(name, CloudProvider::Gcp, ResourceType::FlowLog, observed_at, source);
    r.deleted = deleted;
    r.account_id = Some(project);
    r.region = Some(region);
    r.resource_name = Some(subnet.clone());
    r.subnet_id = Some(subnet);
    let Some(data) = live_data(asset.dig(&[&["resource"], &["data"]]), deleted)? else { return Ok(r) };
    if let Some(network) = data.opt_str(&["network"])? {
        r.vpc_id = last_segment(network).map(str::to_owned);
    }
    if let Some(log) = data.get(&["logConfig", "log_config"])
        && let Some(enable) = log.get(&["enable"])
        && !enable.value.is_boolean()
    {
        return Err(Refusal::parse(format!("{}: expected true or false, found {}", enable.path, enable.value)));
    }
    r.metadata_json = Some(data.value.to_string());
    Ok(r)
}

/// Adds the address of an alias range that is one address (`10.0.0.5/32`,
/// a bare address); wider ranges add nothing.
fn single_address(range: &At<'_>, out: &mut Vec<String>) -> Result<()> {
    let s = range.as_str()?.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, len)) => (a, Some(len)),
        None => (s, None),
    };
    let canonical = canonical_ip(&range.path, addr)?;
    let host = if canonical.contains(':') { "128" } else { "32" };
    if len.is_none_or(|l| l == host) {
        push_unique(out, &canonical);
    }
    Ok(())
}

/// The parts of `//compute.googleapis.com/projects/P/zones/Z/instances/N`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InstanceName<'a> {
    project: &'a str,
    zone: Option<&'a str>,
    instance: &'a str,
}

impl<'a> InstanceName<'a> {
    fn parse(name: &'a str) -> Result<Self> {
        let bad = || {
            Refusal::parse(format!(
                "name: '{name}' is not a compute instance name (//compute.googleapis.com/projects/P/zones/Z/instances/N)"
            ))
        };
        let path = name.strip_prefix("//compute.googleapis.com/").ok_or_else(bad)?;
        let parts: Vec<&str> = path.split('/').collect();
        let after = |key: &str| {
            parts.iter().position(|p| *p == key).and_then(|i| parts.get(i + 1)).copied().filter(|s| !s.is_empty())
        };
        Ok(Self {
            project: after("projects").ok_or_else(bad)?,
            zone: after("zones"),
            instance: after("instances").ok_or_else(bad)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use psg_domain::time;

    use super::*;

    fn ctx() -> MessageCtx<'static> {
        MessageCtx { topic: "inventory.raw", partition: 0, offset: 9, time: None }
    }

    fn run(json: &str) -> Parsed<Resource> {
        parse(serde_json::from_str(json).unwrap(), 1, ctx())
    }

    fn one(json: &str) -> Resource {
        let p = run(json);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), 1);
        p.records.into_iter().next().unwrap()
    }

    const NAME: &str = "//compute.googleapis.com/projects/pay-prod-123/zones/us-east1-b/instances/kibana";

    const CAMEL: &str = r#"{
      "name": "//compute.googleapis.com/projects/pay-prod-123/zones/us-east1-b/instances/kibana",
      "assetType": "compute.googleapis.com/Instance",
      "resource": {
        "version": "v1",
        "discoveryDocumentUri": "https://www.googleapis.com/discovery/v1/apis/compute/v1/rest",
        "discoveryName": "Instance",
        "parent": "//cloudresourcemanager.googleapis.com/projects/123456789012",
        "location": "us-east1-b",
        "data": {
          "id": "4567890123456789012", "name": "kibana", "status": "RUNNING",
          "machineType": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/zones/us-east1-b/machineTypes/e2-medium",
          "zone": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/zones/us-east1-b",
          "labels": {"pci-scope": "cde", "team": "payments"},
          "tags": {"items": ["web", "allow-health-checks"], "fingerprint": "abc="},
          "serviceAccounts": [{"email": "kibana@pay-prod-123.iam.gserviceaccount.com",
                               "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
          "networkInterfaces": [
            {"name": "nic0", "kind": "compute#networkInterface",
             "network": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/global/networks/prod-vpc",
             "subnetwork": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/regions/us-east1/subnetworks/web",
             "networkIP": "10.87.40.76",
             "aliasIpRanges": [{"ipCidrRange": "10.87.41.5/32"}, {"ipCidrRange": "10.90.0.0/24"}],
             "accessConfigs": [{"kind": "compute#accessConfig", "name": "External NAT", "type": "ONE_TO_ONE_NAT",
                                "natIP": "34.74.10.20", "networkTier": "PREMIUM"}]},
            {"name": "nic1",
             "network": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/global/networks/mgmt-vpc",
             "subnetwork": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/regions/us-east1/subnetworks/mgmt",
             "networkIP": "10.10.0.4"}
          ],
          "selfLink": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/zones/us-east1-b/instances/kibana"
        }
      },
      "ancestors": ["projects/123456789012", "organizations/1"],
      "updateTime": "2026-01-20T12:00:00.250Z"
    }"#;

    #[test]
    fn a_camel_case_instance_asset() {
        let r = one(CAMEL);
        assert_eq!(r.resource_id, NAME);
        assert_eq!(r.provider, CloudProvider::Gcp);
        assert_eq!(r.resource_type, ResourceType::ComputeInstance);
        assert_eq!(r.resource_name.as_deref(), Some("kibana"));
        assert_eq!(r.account_id.as_deref(), Some("pay-prod-123"));
        assert_eq!(r.availability_zone.as_deref(), Some("us-east1-b"));
        assert_eq!(r.region.as_deref(), Some("us-east1"));
        assert_eq!(r.vpc_id.as_deref(), Some("prod-vpc"));
        assert_eq!(r.subnet_id.as_deref(), Some("web"));
        assert_eq!(r.private_ips, vec!["10.87.40.76", "10.87.41.5", "10.10.0.4"]);
        assert_eq!(r.public_ips, vec!["34.74.10.20"]);
        assert!(r.interface_ids.is_empty());
        assert_eq!(
            r.security_groups,
            vec![
                "projects/pay-prod-123/global/networks/prod-vpc",
                "projects/pay-prod-123/global/networks/mgmt-vpc",
                "tag:web",
                "tag:allow-health-checks",
                "serviceAccount:kibana@pay-prod-123.iam.gserviceaccount.com"
            ],
            "what firewall rules select by"
        );
        assert_eq!(r.tags["pci-scope"], "cde");
        assert_eq!(r.tags.len(), 2);
        assert_eq!(r.observed_at, time::to_micros("2026-01-20T12:00:00.250Z".parse().unwrap()));
        assert!(!r.deleted);
        assert_eq!(r.source, ctx().source(1));
        assert!(r.metadata_json.unwrap().contains("e2-medium"));
    }

    #[test]
    fn a_snake_case_export() {
        let snake = r#"{"name": "//compute.googleapis.com/projects/pay-prod-123/zones/us-east1-b/instances/kibana",
            "asset_type": "compute.googleapis.com/Instance",
            "resource": {"version": "v1", "discovery_name": "Instance", "location": "us-east1-b",
              "data": {"name": "kibana", "labels": {"pci-scope": "cde"},
                "network_interfaces": [{
                  "network": "projects/pay-prod-123/global/networks/prod-vpc",
                  "subnetwork": "projects/pay-prod-123/regions/us-east1/subnetworks/web",
                  "network_ip": "10.87.40.76",
                  "access_configs": [{"name": "External NAT", "nat_ip": "34.74.10.20"}]}]}},
            "update_time": "2026-01-20 12:00:00.250 UTC"}"#;
        let r = one(snake);
        assert_eq!(r.resource_id, NAME);
        assert_eq!(r.private_ips, vec!["10.87.40.76"]);
        assert_eq!(r.public_ips, vec!["34.74.10.20"]);
        assert_eq!((r.vpc_id.as_deref(), r.subnet_id.as_deref()), (Some("prod-vpc"), Some("web")));
        assert_eq!(r.tags["pci-scope"], "cde");
        assert_eq!(r.observed_at, one(CAMEL).observed_at);
    }

    #[test]
    fn a_feed_notification_of_a_deletion() {
        let feed = r#"{"asset": {"name": "//compute.googleapis.com/projects/pay-prod-123/zones/us-east1-b/instances/kibana",
                                 "assetType": "compute.googleapis.com/Instance",
                                 "updateTime": "2026-01-20T12:00:00.250Z",
                                 "ancestors": ["projects/123456789012"]},
                       "priorAssetState": "PRESENT",
                       "deleted": true,
                       "window": {"startTime": "2026-02-02T08:30:00Z"}}"#;
        let r = one(feed);
        assert!(r.deleted);
        assert_eq!(r.resource_id, NAME);
        assert_eq!(r.observed_at, time::to_micros("2026-02-02T08:30:00Z".parse().unwrap()), "the window's start");
        assert_eq!(r.region.as_deref(), Some("us-east1"));
        // An update notification with the full asset.
        let asset: Value = serde_json::from_str(CAMEL).unwrap();
        let update = serde_json::json!({"asset": asset, "priorAssetState": "PRESENT", "window": {"startTime": "2026-01-20T12:00:00.250Z"}});
        let r = one(&update.to_string());
        assert!(!r.deleted);
        assert_eq!(r.private_ips.len(), 3);
    }

    #[test]
    fn other_asset_types_and_bad_values_are_refused() {
        let bucket = r#"{"name": "//storage.googleapis.com/card-exports", "assetType": "storage.googleapis.com/Bucket",
                         "resource": {"data": {}}, "updateTime": "2026-01-20T12:00:00Z"}"#;
        let p = run(bucket);
        assert_eq!(p.rejected[0].kind, "unsupported");
        assert!(p.rejected[0].reason.contains("storage.googleapis.com/Bucket"), "{}", p.rejected[0].reason);

        let p = run(&CAMEL.replace("34.74.10.20", "34.74.10"));
        assert_eq!(p.rejected[0].kind, "parse");
        assert_eq!(
            p.rejected[0].reason,
            "resource.data.networkInterfaces[0].accessConfigs[0].natIP: '34.74.10' is not an IP address"
        );
        assert_eq!(p.rejected[0].line, 1);
        assert!(!p.rejected[0].raw.is_empty());

        let p = run(&CAMEL.replace(r#""updateTime": "2026-01-20T12:00:00.250Z""#, r#""updateTime": "yesterday""#));
        assert_eq!(p.rejected[0].reason, "updateTime: 'yesterday' is not an RFC 3339 time");
        let p = run(&CAMEL.replace("instances/kibana\"", "kibana\""));
        assert!(p.rejected[0].reason.starts_with("name: "), "{:?}", p.rejected);
    }

    /// A firewall rule as Cloud Asset Inventory exports it (the Compute
    /// API's `Firewall` in `resource.data`).
    const FIREWALL_ASSET: &str = r#"{
      "name": "//compute.googleapis.com/projects/pay-prod-123/global/firewalls/allow-app-to-db",
      "assetType": "compute.googleapis.com/Firewall",
      "resource": {
        "version": "v1",
        "discoveryDocumentUri": "https://www.googleapis.com/discovery/v1/apis/compute/v1/rest",
        "discoveryName": "Firewall",
        "parent": "//cloudresourcemanager.googleapis.com/projects/123456789012",
        "location": "global",
        "data": {
          "allowed": [{"IPProtocol": "tcp", "ports": ["5432"]}],
          "creationTimestamp": "2026-01-10T08:00:00.000-08:00",
          "description": "app servers to the payments database",
          "direction": "INGRESS",
          "disabled": false,
          "id": "1234567890123456789",
          "logConfig": {"enable": true, "metadata": "INCLUDE_ALL_METADATA"},
          "name": "allow-app-to-db",
          "network": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/global/networks/prod-vpc",
          "priority": 1000,
          "selfLink": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/global/firewalls/allow-app-to-db",
          "sourceTags": ["app"],
          "targetServiceAccounts": ["payments-db@pay-prod-123.iam.gserviceaccount.com"]
        }
      },
      "ancestors": ["projects/123456789012", "organizations/1"],
      "updateTime": "2026-01-20T12:00:00Z"
    }"#;

    #[test]
    fn a_firewall_rule_asset_is_policy() {
        let r = one(FIREWALL_ASSET);
        assert_eq!(r.resource_type, ResourceType::FirewallRule);
        assert!(r.resource_type.is_policy());
        assert_eq!(r.resource_name.as_deref(), Some("allow-app-to-db"));
        assert_eq!(r.account_id.as_deref(), Some("pay-prod-123"));
        assert_eq!(r.vpc_id.as_deref(), Some("prod-vpc"));
        let data: Value = serde_json::from_str(r.metadata_json.as_deref().unwrap()).unwrap();
        let rule = psg_reach::gcp::gcp_firewall(&data).unwrap();
        assert_eq!(
            rule.targets,
            vec![psg_reach::Peer::Group("serviceAccount:payments-db@pay-prod-123.iam.gserviceaccount.com".into())]
        );

        // A rule classify could not read is refused here, naming the field.
        let p = run(&FIREWALL_ASSET.replace(r#""ports": ["5432"]"#, r#""ports": ["5432-80"]"#));
        assert_eq!(p.rejected[0].kind, "parse");
        assert_eq!(p.rejected[0].reason, "resource.data.allowed[0].ports: '5432-80' is not a port or range");
        let p = run(&FIREWALL_ASSET.replace("global/firewalls/allow-app-to-db\",", "firewalls\","));
        assert!(p.rejected[0].reason.starts_with("name: "), "{:?}", p.rejected);

        // A deletion from a feed: no data needed.
        let deleted = r#"{"asset": {"name": "//compute.googleapis.com/projects/pay-prod-123/global/firewalls/allow-app-to-db",
            "assetType": "compute.googleapis.com/Firewall"}, "deleted": true,
            "window": {"startTime": "2026-01-21T00:00:00Z"}}"#;
        let r = one(deleted);
        assert!(r.deleted);
        assert_eq!(r.resource_type, ResourceType::FirewallRule);
    }

    #[test]
    fn a_subnetwork_asset_is_its_flow_log_configuration() {
        // As Cloud Asset Inventory exports a subnetwork (the Compute API's
        // `Subnetwork` in `resource.data`).
        let asset = r#"{"name": "//compute.googleapis.com/projects/pay-prod-123/regions/us-east1/subnetworks/web",
          "assetType": "compute.googleapis.com/Subnetwork",
          "resource": {"version": "v1", "discoveryName": "Subnetwork", "location": "us-east1",
            "data": {"name": "web", "region": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/regions/us-east1",
              "network": "https://www.googleapis.com/compute/v1/projects/pay-prod-123/global/networks/prod-vpc",
              "ipCidrRange": "10.87.40.0/22", "gatewayAddress": "10.87.40.1", "privateIpGoogleAccess": true,
              "logConfig": {"enable": true, "aggregationInterval": "INTERVAL_5_SEC", "flowSampling": 0.5,
                            "metadata": "INCLUDE_ALL_METADATA"},
              "stackType": "IPV4_ONLY"}},
          "updateTime": "2026-01-20T12:00:00Z"}"#;
        let r = one(asset);
        assert_eq!(r.resource_type, ResourceType::FlowLog);
        assert_eq!((r.vpc_id.as_deref(), r.subnet_id.as_deref()), (Some("prod-vpc"), Some("web")));
        assert_eq!((r.account_id.as_deref(), r.region.as_deref()), (Some("pay-prod-123"), Some("us-east1")));
        assert!(r.metadata_json.as_deref().is_some_and(|m| m.contains("INTERVAL_5_SEC")));
        let p = run(&asset.replace(r#""enable": true"#, r#""enable": "yes""#));
        assert_eq!(p.rejected[0].reason, "resource.data.logConfig.enable: expected true or false, found \"yes\"");
    }
}
