//! Azure resources (ARM JSON, as from the REST API or a Resource Graph
//! query) → Resources.
//!
//! Accepted objects: one ARM resource (`{"id": "/subscriptions/…", "type",
//! "name", "location", "tags", "properties"}`), or a result wrapper holding
//! a list of them: a Resource Graph result `{"data": [...]}` or an ARM list
//! `{"value": [...]}` (each element is read on its own; a refused element
//! refuses only itself). A Resource Graph result in the old table format
//! (`{"data": {"columns", "rows"}}`) is refused: query with the
//! `objectArray` result format.
//!
//! Time: ARM JSON carries no observation time. The shipper must add a
//! top-level `observed_at` (or `observedAt`), RFC 3339, to each resource or
//! to the wrapper (its elements inherit it); a resource without one is
//! refused with a reason that says so. (`properties.timeCreated` is the
//! creation time, not when the description was true: it is not used.)
//!
//! Every resource: `resource_id` = the ARM `id` in lower case (ARM ids are
//! case-insensitive and sources disagree on their case: the REST API, Resource
//! Graph and the VM's references to its NICs must give one key), `account_id`
//! = the subscription id from the id, `resource_name` = `name`, `region` =
//! `location`, `tags`, `metadata_json` = `properties`. The type is compared
//! case-insensitively (Resource Graph lowercases it).
//!
//! - `Microsoft.Compute/virtualMachines` → `virtual_machine`: `interface_ids`
//!   = `properties.networkProfile.networkInterfaces[].id` (lower case);
//!   `availability_zone` = the zone if `zones` has exactly one (`"1"`). ARM
//!   gives a VM no address: its addresses are on its NICs.
//! - `Microsoft.Network/networkInterfaces` → `network_interface`:
//!   `private_ips` = `ipConfigurations[].properties.privateIPAddress`;
//!   `public_ips` = `…publicIPAddress.properties.ipAddress` when the public
//!   address is expanded inline (otherwise it is only a reference);
//!   `subnet_id` = the first configuration's `subnet.id` (lower case) and
//!   `vpc_id` = its VNet name (the segment after `virtualNetworks/`, as
//!   written); `interface_ids` = the `macAddress` without separators, upper
//!   case (`00-0D-3A-F8-78-56` → `000D3AF87856`: NSG flow logs identify the
//!   interface so); `security_groups` = `networkSecurityGroup.id`, the
//!   virtual network of the first configuration's subnet, and the
//!   configurations' `applicationSecurityGroups[].id` (lower case): what NSG
//!   rules select by. The VM
//!   (`properties.virtualMachine.id`) stays in the metadata. Flows map to the
//!   NIC (it holds the addresses and the MAC); the VM lists the NIC's id.
//!
//! - `Microsoft.Network/networkSecurityGroups` → `security_group` (network
//!   policy, not a system): its rules (`securityRules`,
//!   `defaultSecurityRules`) are checked here, so a rule classify cannot read
//!   is refused at the door; `metadata_json` = `properties`.
//!
//! - `Microsoft.Network/networkWatchers/flowLogs` → `flow_log`
//!   (configuration, not a system): `targetResourceId` (an NSG, whose NICs
//!   it covers, or a virtual network, then also `vpc_id`) and `enabled`;
//!   `metadata_json` = `properties`.
//!
//! Other types are refused (kind `unsupported`, naming the type).

use psg_domain::time::Micros;
use psg_domain::{CloudProvider, Resource, ResourceType};
use serde_json::Value;

use super::fields::{At, Refusal, Result, push_unique, tags_into, time_at};
use crate::parsed::{MessageCtx, Parsed};

/// Parses one Azure object (item `line` of its message).
pub fn parse(item: Value, line: u32, ctx: MessageCtx<'_>) -> Parsed<Resource> {
    let mut out = Parsed::default();
    let root = At::root(&item, "");
    let Some(list) = root.get(&["data", "value"]) else {
        out.push(resource(&root, None, line, ctx).map_err(|r| r.rejected(line, &item)));
        return out;
    };
    if list.value.get("rows").is_some() && list.value.get("columns").is_some() {
        out.rejected.push(
            Refusal::unsupported(
                "a Resource Graph result in table format: query with resultFormat objectArray (the default)",
            )
            .rejected(line, &item),
        );
        return out;
    }
    let inherited = match observed_at_of(&root) {
        Ok(t) => t,
        Err(e) => {
            out.rejected.push(e.rejected(line, &item));
            return out;
        }
    };
    match list.elements() {
        Ok(elements) => {
            for (i, el) in elements.iter().enumerate() {
                let el = At::root(el.value, "");
                out.push(
                    resource(&el, inherited, line, ctx)
                        .map_err(|r| r.within(&format!("{}[{i}]", list.path)).rejected(line, el.value)),
                );
            }
        }
        Err(e) => out.rejected.push(e.rejected(line, &item)),
    }
    out
}

/// A top-level `observed_at`/`observedAt`, if any.
fn observed_at_of(obj: &At<'_>) -> Result<Option<Micros>> {
    obj.get(&["observed_at", "observedAt"]).map(|t| time_at(&t)).transpose()
}

fn resource(obj: &At<'_>, inherited: Option<Micros>, line: u32, ctx: MessageCtx<'_>) -> Result<Resource> {
    if !obj.value.is_object() {
        return Err(Refusal::parse(format!("an Azure resource must be a JSON object, found {}", obj.value)));
    }
    let id = obj.req_str(&["id"])?;
    let ty = obj.req_str(&["type"])?;
    let mapped = if ty.eq_ignore_ascii_case("Microsoft.Compute/virtualMachines") {
        ResourceType::VirtualMachine
    } else if ty.eq_ignore_ascii_case("Microsoft.Network/networkInterfaces") {
        ResourceType::NetworkInterface
    } else if ty.eq_ignore_ascii_case("Microsoft.Network/networkSecurityGroups") {
        ResourceType::SecurityGroup
    } else if ty.eq_ignore_ascii_case("Microsoft.Network/networkWatchers/flowLogs") {
        ResourceType::FlowLog
    } else {
        return Err(Refusal::unsupported(format!(
            "unsupported Azure resource type {ty} ({id}): this version maps Microsoft.Compute/virtualMachines, \
             Microsoft.Network/networkInterfaces, Microsoft.Network/networkSecurityGroups and \
             Microsoft.Network/networkWatchers/flowLogs"
        )));
    };
    let subscription = segment_after(id, "subscriptions")
        .ok_or_else(|| Refusal::parse(format!("id: '{id}' is not an ARM resource id (/subscriptions/…)")))?;
    let observed_at = observed_at_of(obj)?.or(inherited).ok_or_else(|| {
        Refusal::parse(
            "observed_at: missing: ARM JSON carries no observation time; the shipper must add a top-level \
             observed_at (RFC 3339) to the resource or to the result wrapper",
        )
    })?;
    let mut r = Resource::new(id.to_lowercase(), CloudProvider::Azure, mapped, observed_at, ctx.source(line));
    r.account_id = Some(subscription.to_lowercase());
    r.resource_name = obj.opt_string(&["name"])?;
    r.region = obj.opt_string(&["location"])?;
    if let Some(tags) = obj.get(&["tags"]) {
        tags_into(&tags, &mut r.tags)?;
    }
    let properties = obj.get(&["properties"]);
    if let Some(p) = &properties
        && !p.value.is_object()
    {
        return Err(Refusal::parse(format!("properties: expected an object, found {}", p.value)));
    }
    if let Some(p) = &properties {
        match mapped {
            ResourceType::VirtualMachine => virtual_machine(&mut r, obj, p)?,
            ResourceType::SecurityGroup => {
                psg_reach::azure::azure_nsg(&r.resource_id, p.value)
                    .map_err(|e| Refusal::parse(format!("properties.{e}")))?;
            }
            ResourceType::FlowLog => {
                // What it logs: an NSG (its NICs) or a virtual network.
                let target = p.req_str(&["targetResourceId"])?;
                if let Some(vnet) = segment_after(target, "virtualNetworks") {
                    r.vpc_id = Some(vnet.to_owned());
                }
            }
            _ => network_interface(&mut r, p)?,
        }
        r.metadata_json = Some(p.value.to_string());
    }
    Ok(r)
}

fn virtual_machine(r: &mut Resource, obj: &At<'_>, properties: &At<'_>) -> Result<()> {
    if let Some(profile) = properties.get(&["networkProfile"]) {
        for nic in profile.items(&["networkInterfaces"])? {
            if let Some(id) = nic.opt_str(&["id"])? {
                push_unique(&mut r.interface_ids, &id.to_lowercase());
            }
        }
    }
    if let [zone] = obj.strs(&["zones"])?.as_slice() {
        r.availability_zone = Some((*zone).to_owned());
    }
    Ok(())
}

fn network_interface(r: &mut Resource, properties: &At<'_>) -> Result<()> {
    if let Some(nsg) = properties.dig(&[&["networkSecurityGroup"], &["id"]]) {
        push_unique(&mut r.security_groups, &nsg.as_str()?.to_lowercase());
    }
    for (i, config) in properties.items(&["ipConfigurations"])?.iter().enumerate() {
        let Some(cp) = config.get(&["properties"]) else { continue };
        cp.ip_into(&["privateIPAddress", "privateIpAddress"], &mut r.private_ips)?;
        if let Some(public) = cp.dig(&[&["publicIPAddress", "publicIpAddress"], &["properties"]]) {
            public.ip_into(&["ipAddress"], &mut r.public_ips)?;
        }
        if i == 0
            && let Some(subnet) = cp.dig(&[&["subnet"], &["id"]])
        {
            let subnet = subnet.as_str()?;
            r.subnet_id = Some(subnet.to_lowercase());
            r.vpc_id = segment_after(subnet, "virtualNetworks").map(str::to_owned);
            // The virtual network, which NSG rules name as `VirtualNetwork`.
            if let Some((vnet, _)) = subnet.to_lowercase().split_once("/subnets/") {
                push_unique(&mut r.security_groups, vnet);
            }
        }
        for asg in cp.items(&["applicationSecurityGroups"])? {
            if let Some(id) = asg.opt_str(&["id"])? {
                push_unique(&mut r.security_groups, &id.to_lowercase());
            }
        }
    }
    if let Some(mac) = properties.get(&["macAddress"]) {
        let raw = mac.as_str()?.trim();
        if !raw.is_empty() {
            push_unique(&mut r.interface_ids, &normalise_mac(&mac.path, raw)?);
        }
    }
    Ok(())
}

/// A MAC address without separators, upper case (`00-0d-3a-f8-78-56` → `000D3AF87856`).
fn normalise_mac(field: &str, mac: &str) -> Result<String> {
    let hex: String = mac.chars().filter(|c| !matches!(c, '-' | ':' | '.')).collect::<String>().to_ascii_uppercase();
    if hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(Refusal::parse(format!("{field}: '{mac}' is not a MAC address")))
    }
}

/// The path segment after `key` in an ARM id (case-insensitive key).
fn segment_after<'a>(id: &'a str, key: &str) -> Option<&'a str> {
    let mut parts = id.split('/');
    parts.by_ref().find(|p| p.eq_ignore_ascii_case(key))?;
    parts.next().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use psg_domain::time;

    use super::*;

    fn ctx() -> MessageCtx<'static> {
        MessageCtx { topic: "inventory.raw", partition: 1, offset: 5, time: None }
    }

    fn run(json: &str) -> Parsed<Resource> {
        parse(serde_json::from_str(json).unwrap(), 4, ctx())
    }

    fn one(json: &str) -> Resource {
        let p = run(json);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), 1);
        p.records.into_iter().next().unwrap()
    }

    const SUB: &str = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b";

    const VM: &str = r#"{
      "id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/Payments-RG/providers/Microsoft.Compute/virtualMachines/pay-web-1",
      "name": "pay-web-1",
      "type": "Microsoft.Compute/virtualMachines",
      "location": "westeurope",
      "zones": ["2"],
      "tags": {"pci-scope": "cde", "env": "prod"},
      "properties": {
        "vmId": "0f4b3c2a-1111-2222-3333-444455556666",
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"osDisk": {"osType": "Linux", "name": "pay-web-1-os"}},
        "osProfile": {"computerName": "pay-web-1", "adminUsername": "azureuser"},
        "networkProfile": {"networkInterfaces": [
          {"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/PAYMENTS-RG/providers/Microsoft.Network/networkInterfaces/pay-web-1-nic", "properties": {"primary": true}}
        ]},
        "provisioningState": "Succeeded",
        "timeCreated": "2025-11-02T09:15:00.1234567+00:00"
      },
      "observed_at": "2026-01-21T06:00:00Z"
    }"#;

    const NIC: &str = r#"{
      "id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/networkInterfaces/pay-web-1-nic",
      "name": "pay-web-1-nic",
      "type": "Microsoft.Network/networkInterfaces",
      "location": "westeurope",
      "tags": {},
      "properties": {
        "provisioningState": "Succeeded",
        "ipConfigurations": [
          {"name": "ipconfig1",
           "id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/networkInterfaces/pay-web-1-nic/ipConfigurations/ipconfig1",
           "properties": {"privateIPAddress": "10.1.0.4", "privateIPAllocationMethod": "Dynamic", "primary": true,
             "privateIPAddressVersion": "IPv4",
             "subnet": {"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/virtualNetworks/Pay-VNet/subnets/web"},
             "publicIPAddress": {"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/publicIPAddresses/pay-web-1-pip",
                                 "properties": {"ipAddress": "20.61.10.5"}},
             "applicationSecurityGroups": [{"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/applicationSecurityGroups/web-asg"}]}},
          {"name": "ipconfig2",
           "properties": {"privateIPAddress": "10.1.0.5", "privateIPAddressVersion": "IPv4", "primary": false,
             "subnet": {"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/virtualNetworks/Pay-VNet/subnets/web"}}}
        ],
        "dnsSettings": {"dnsServers": []},
        "macAddress": "00-0D-3A-F8-78-56",
        "enableAcceleratedNetworking": true,
        "networkSecurityGroup": {"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg"},
        "primary": true,
        "virtualMachine": {"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Compute/virtualMachines/pay-web-1"}
      },
      "observedAt": "2026-01-21T06:00:00Z"
    }"#;

    #[test]
    fn a_virtual_machine() {
        let r = one(VM);
        assert_eq!(
            r.resource_id,
            format!(
                "/subscriptions/{SUB}/resourcegroups/payments-rg/providers/microsoft.compute/virtualmachines/pay-web-1"
            )
        );
        assert_eq!(r.provider, CloudProvider::Azure);
        assert_eq!(r.resource_type, ResourceType::VirtualMachine);
        assert_eq!(r.resource_name.as_deref(), Some("pay-web-1"));
        assert_eq!(r.account_id.as_deref(), Some(SUB));
        assert_eq!(r.region.as_deref(), Some("westeurope"));
        assert_eq!(r.availability_zone.as_deref(), Some("2"));
        assert_eq!(r.tags["pci-scope"], "cde");
        assert_eq!(
            r.interface_ids,
            vec![format!(
                "/subscriptions/{SUB}/resourcegroups/payments-rg/providers/microsoft.network/networkinterfaces/pay-web-1-nic"
            )]
        );
        assert!(r.private_ips.is_empty());
        assert_eq!(r.observed_at, time::to_micros("2026-01-21T06:00:00Z".parse().unwrap()));
        assert_eq!(r.source, ctx().source(4));
        assert!(r.metadata_json.unwrap().contains("Standard_D2s_v5"));
    }

    #[test]
    fn a_network_interface() {
        let r = one(NIC);
        assert_eq!(r.resource_type, ResourceType::NetworkInterface);
        assert_eq!(r.resource_id, one(VM).interface_ids[0], "the VM's reference and the NIC's id agree");
        assert_eq!(r.private_ips, vec!["10.1.0.4", "10.1.0.5"]);
        assert_eq!(r.public_ips, vec!["20.61.10.5"]);
        assert_eq!(r.vpc_id.as_deref(), Some("Pay-VNet"));
        assert_eq!(
            r.subnet_id.as_deref(),
            Some(format!("/subscriptions/{SUB}/resourcegroups/payments-rg/providers/microsoft.network/virtualnetworks/pay-vnet/subnets/web").as_str())
        );
        assert_eq!(r.interface_ids, vec!["000D3AF87856"]);
        assert_eq!(r.security_groups.len(), 3);
        assert!(r.security_groups[0].ends_with("/networksecuritygroups/web-nsg"));
        assert!(r.security_groups[1].ends_with("/virtualnetworks/pay-vnet"));
        assert!(r.security_groups[2].ends_with("/applicationsecuritygroups/web-asg"));
        assert!(r.metadata_json.unwrap().contains("virtualMachines/pay-web-1"));
        assert_eq!(normalise_mac("m", "00:0d:3a:f8:78:56").unwrap(), "000D3AF87856");
        assert!(normalise_mac("m", "00-0D-3A").is_err());
    }

    #[test]
    fn a_resource_graph_result_refuses_only_its_unsupported_element() {
        let strip = |s: &str| {
            let mut v: Value = serde_json::from_str(s).unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.remove("observed_at");
            obj.remove("observedAt");
            v
        };
        // Resource Graph lowercases the type.
        let mut nic = strip(NIC);
        nic["type"] = "microsoft.network/networkinterfaces".into();
        let storage = serde_json::json!({
            "id": format!("/subscriptions/{SUB}/resourceGroups/payments-rg/providers/Microsoft.Storage/storageAccounts/cardexports"),
            "name": "cardexports", "type": "microsoft.storage/storageaccounts", "location": "westeurope", "properties": {}});
        let result = serde_json::json!({
            "totalRecords": 3, "count": 3, "resultTruncated": "false", "facets": [],
            "observed_at": "2026-01-22T00:00:00Z",
            "data": [strip(VM), nic, storage]});
        let p = run(&result.to_string());
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[1].interface_ids, vec!["000D3AF87856"]);
        assert!(p.records.iter().all(|r| r.observed_at == time::to_micros("2026-01-22T00:00:00Z".parse().unwrap())));
        assert_eq!(p.rejected.len(), 1);
        assert_eq!((p.rejected[0].kind, p.rejected[0].line), ("unsupported", 4));
        assert!(p.rejected[0].reason.starts_with("data[2]: "), "{}", p.rejected[0].reason);
        assert!(p.rejected[0].reason.contains("microsoft.storage/storageaccounts"));
        assert!(String::from_utf8_lossy(&p.rejected[0].raw).contains("cardexports"));

        // Without an observation time anywhere: refused, saying what to add.
        let bare = serde_json::json!({"value": [strip(VM)]});
        let p = run(&bare.to_string());
        assert!(p.records.is_empty());
        assert!(p.rejected[0].reason.contains("add a top-level observed_at"), "{}", p.rejected[0].reason);

        let table = r#"{"totalRecords": 1, "count": 1, "data": {"columns": [{"name": "id", "type": "string"}], "rows": [["/subscriptions/x"]]}}"#;
        assert!(run(table).rejected[0].reason.contains("objectArray"));
    }

    #[test]
    fn a_bad_address_or_mac_is_refused_naming_its_field() {
        let p = run(&NIC.replace("10.1.0.5", "10.1.0.five"));
        assert_eq!(p.rejected[0].kind, "parse");
        assert_eq!(
            p.rejected[0].reason,
            "properties.ipConfigurations[1].properties.privateIPAddress: '10.1.0.five' is not an IP address"
        );
        let p = run(&NIC.replace("00-0D-3A-F8-78-56", "00-0D-3A-F8-78"));
        assert_eq!(p.rejected[0].reason, "properties.macAddress: '00-0D-3A-F8-78' is not a MAC address");
        let p = run(&VM.replace("2026-01-21T06:00:00Z", "21/01/2026"));
        assert_eq!(p.rejected[0].reason, "observed_at: '21/01/2026' is not an RFC 3339 time");
    }

    /// A network security group as the REST API returns it (Azure's
    /// `Network Security Groups - Get` example, trimmed).
    const NSG: &str = r#"{
      "name": "web-nsg",
      "id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg",
      "etag": "W/\"00000000-0000-0000-0000-000000000000\"",
      "type": "Microsoft.Network/networkSecurityGroups",
      "location": "westeurope",
      "observed_at": "2026-01-21T06:00:00Z",
      "properties": {
        "provisioningState": "Succeeded",
        "resourceGuid": "00000000-0000-0000-0000-000000000000",
        "securityRules": [
          {"name": "allow-https",
           "id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg/securityRules/allow-https",
           "type": "Microsoft.Network/networkSecurityGroups/securityRules",
           "properties": {"provisioningState": "Succeeded", "protocol": "Tcp", "sourcePortRange": "*",
             "destinationPortRange": "443", "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*",
             "access": "Allow", "priority": 130, "direction": "Inbound", "sourcePortRanges": [],
             "destinationPortRanges": [], "sourceAddressPrefixes": [], "destinationAddressPrefixes": []}}
        ],
        "defaultSecurityRules": [
          {"name": "DenyAllInBound", "properties": {"description": "Deny all inbound traffic", "protocol": "*",
           "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*",
           "destinationAddressPrefix": "*", "access": "Deny", "priority": 65500, "direction": "Inbound"}}
        ],
        "networkInterfaces": [{"id": "/subscriptions/6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b/resourceGroups/payments-rg/providers/Microsoft.Network/networkInterfaces/pay-web-1-nic"}]
      }
    }"#;

    #[test]
    fn a_network_security_group_is_policy() {
        let r = one(NSG);
        assert_eq!((r.resource_type, r.provider), (ResourceType::SecurityGroup, CloudProvider::Azure));
        assert!(r.resource_id.ends_with("/networksecuritygroups/web-nsg"), "lower case, as NICs refer to it");
        assert_eq!(r.resource_id, one(NIC).security_groups[0]);
        assert!(r.metadata_json.as_deref().is_some_and(|m| m.contains("allow-https")));
        let p = run(&NSG.replace(r#""priority": 130"#, r#""priority": "first""#));
        assert_eq!(p.rejected[0].kind, "parse");
        assert_eq!(p.rejected[0].reason, "properties.securityRules[0].properties.priority: missing or not a number");
    }

    #[test]
    fn a_network_watcher_flow_log_is_configuration() {
        // As the REST API returns a flow log (Flow Logs - Get, trimmed).
        let fl = format!(
            r#"{{"name": "fl-web-nsg",
          "id": "/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westeurope/flowLogs/fl-web-nsg",
          "type": "Microsoft.Network/networkWatchers/flowLogs", "location": "westeurope",
          "observed_at": "2026-01-21T06:00:00Z",
          "properties": {{"targetResourceId": "/subscriptions/{SUB}/resourceGroups/payments-rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg",
            "targetResourceGuid": "00000000-0000-0000-0000-000000000000",
            "storageId": "/subscriptions/{SUB}/resourceGroups/logs-rg/providers/Microsoft.Storage/storageAccounts/flowlogs",
            "enabled": true, "retentionPolicy": {{"days": 90, "enabled": true}},
            "format": {{"type": "JSON", "version": 2}}, "provisioningState": "Succeeded"}}}}"#
        );
        let r = one(&fl);
        assert_eq!((r.resource_type, r.provider), (ResourceType::FlowLog, CloudProvider::Azure));
        assert_eq!(r.vpc_id, None, "an NSG's flow log names no network");
        let vnet = fl.replace("networkSecurityGroups/web-nsg", "virtualNetworks/Pay-VNet");
        assert_eq!(one(&vnet).vpc_id.as_deref(), Some("Pay-VNet"));
        let p = run(&fl.replace("targetResourceId", "target"));
        assert_eq!(p.rejected[0].reason, "properties.targetResourceId: missing");
    }
}
