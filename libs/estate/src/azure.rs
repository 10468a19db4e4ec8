//! Azure: a Resource Graph result of the virtual machines and their network
//! interfaces (with the shipper's `observed_at`), and NSG flow logs
//! version 2, one blob per NSG for the hour.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::aws::is_private;
use crate::model::{AZURE_LOCATION, Cloud, End, Kind, Plan};
use crate::rng::Rng;
use crate::time::{INVENTORY_START, rfc3339, slot_start};
use crate::{EstateFile, FileKind, Sink};

fn tags(h: &crate::model::Host) -> Value {
    Value::Object(h.tags.iter().map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))).collect())
}

fn nsg_id(plan: &Plan, nsg: &str) -> String {
    let n = plan.nets.iter().find(|n| n.nsg == nsg && n.cloud == Cloud::Azure);
    let rg = n.map_or("", |n| n.resource_group.as_str());
    format!(
        "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{nsg}",
        crate::model::AZURE_SUBSCRIPTION
    )
}

pub(crate) fn resource_graph(plan: &Plan, rng: &mut Rng, sink: &mut Sink) {
    let mut data = Vec::new();
    let tenant = rng.uuid();
    for h in plan.hosts.iter() {
        let Kind::AzureVm { nic_id, size, os } = &h.kind else { continue };
        let net = plan.net_of(h);
        let vm_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            net.account, net.resource_group, h.name
        );
        let image = if *os == "Windows" {
            json!({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition", "version": "latest"})
        } else {
            json!({"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"})
        };
        data.push(json!({
            "id": vm_id,
            "name": h.name,
            "type": "microsoft.compute/virtualmachines",
            "tenantId": tenant,
            "kind": "",
            "location": AZURE_LOCATION,
            "resourceGroup": net.resource_group,
            "subscriptionId": net.account,
            "managedBy": "",
            "sku": null,
            "plan": null,
            "tags": tags(h),
            "zones": [net.zone],
            "identity": null,
            "properties": {
                "vmId": rng.uuid(),
                "hardwareProfile": {"vmSize": size},
                "storageProfile": {
                    "imageReference": image,
                    "osDisk": {"osType": os, "name": format!("{}_OsDisk_1_{}", h.name, rng.hex(32)), "createOption": "FromImage", "caching": "ReadWrite", "managedDisk": {"storageAccountType": "Premium_LRS"}, "diskSizeGB": 128},
                    "dataDisks": [],
                },
                "osProfile": {"computerName": h.name, "adminUsername": "azureadmin", "secrets": []},
                "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true, "deleteOption": "Delete"}}]},
                "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}},
                "provisioningState": "Succeeded",
                "timeCreated": "2026-05-20T08:14:03.5540318+00:00",
                "extended": {"instanceView": {"powerState": {"code": "PowerState/running", "displayStatus": "VM running", "level": "Info"}}},
            },
        }));
        let mac =
            h.iface.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-");
        let nic_name = nic_id.rsplit('/').next().unwrap_or_default();
        data.push(json!({
            "id": nic_id,
            "name": nic_name,
            "type": "microsoft.network/networkinterfaces",
            "tenantId": tenant,
            "kind": "",
            "location": AZURE_LOCATION,
            "resourceGroup": net.resource_group,
            "subscriptionId": net.account,
            "managedBy": "",
            "sku": null,
            "plan": null,
            // Azure Policy copies the resource group's tags onto every resource.
            "tags": tags(h),
            "zones": null,
            "identity": null,
            "properties": {
                "resourceGuid": rng.uuid(),
                "provisioningState": "Succeeded",
                "macAddress": mac,
                "primary": true,
                "enableAcceleratedNetworking": true,
                "enableIPForwarding": false,
                "nicType": "Standard",
                "vnetEncryptionSupported": false,
                "networkSecurityGroup": {"id": nsg_id(plan, &net.nsg)},
                "virtualMachine": {"id": vm_id},
                "dnsSettings": {"dnsServers": [], "appliedDnsServers": [], "internalDomainNameSuffix": "k2v0c3pdq1ouhi4ya5mzbz3fxc.ax.internal.cloudapp.net"},
                "ipConfigurations": [{
                    "id": format!("{nic_id}/ipConfigurations/ipconfig1"),
                    "name": "ipconfig1",
                    "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                    "properties": {
                        "provisioningState": "Succeeded",
                        "privateIPAddress": h.ip,
                        "privateIPAllocationMethod": "Dynamic",
                        "privateIPAddressVersion": "IPv4",
                        "primary": true,
                        "subnet": {"id": net.subnet_id},
                    },
                }],
            },
        }));
        sink.resources += 2;
    }
    // Network Watcher's flow log of every NSG (the NSG flow logs below).
    let nsgs: std::collections::BTreeSet<&str> =
        plan.nets.iter().filter(|n| n.cloud == Cloud::Azure).map(|n| n.nsg.as_str()).collect();
    for nsg in nsgs {
        let sub = crate::model::AZURE_SUBSCRIPTION;
        let name = format!("{nsg}-flowlog");
        data.push(json!({
            "id": format!("/subscriptions/{sub}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_{AZURE_LOCATION}/flowLogs/{name}"),
            "name": name,
            "type": "microsoft.network/networkwatchers/flowlogs",
            "location": AZURE_LOCATION,
            "properties": {
                "provisioningState": "Succeeded",
                "targetResourceId": nsg_id(plan, nsg),
                "targetResourceGuid": rng.uuid(),
                "storageId": format!("/subscriptions/{sub}/resourceGroups/rg-logging/providers/Microsoft.Storage/storageAccounts/stflowlogsweu"),
                "enabled": true,
                "retentionPolicy": {"days": 365, "enabled": true},
                "format": {"type": "JSON", "version": 2},
            },
        }));
        sink.resources += 1;
    }
    let observed = rfc3339(INVENTORY_START + 3_300, 0, 0);
    let doc = json!({
        "totalRecords": data.len(),
        "count": data.len(),
        "data": data,
        "facets": [],
        "resultTruncated": "false",
        "observed_at": observed,
    });
    sink.files.push(EstateFile {
        path: "azure/resource-graph-vms-nics.json".into(),
        kind: FileKind::Inventory,
        bytes: doc.to_string().into_bytes(),
    });
}

/// Tuples by NSG → slot → rule → MAC.
type Tuples = BTreeMap<String, BTreeMap<u32, BTreeMap<&'static str, BTreeMap<String, Vec<(u64, usize, String)>>>>>;

pub(crate) fn nsg_flow_logs(plan: &Plan, rng: &mut Rng, sink: &mut Sink) {
    let mut tuples: Tuples = BTreeMap::new();
    let mut seq = 0usize;
    for c in &plan.conns {
        let (src, dst) = (plan.ip(&c.src), plan.ip(&c.dst));
        for (end, is_src) in crate::logged_sides(plan, c) {
            let End::Host(hi) = end else { continue };
            let h = &plan.hosts[*hi];
            if plan.net_of(h).cloud != Cloud::Azure {
                continue;
            }
            let peer = if is_src { &dst } else { &src };
            let rule = match (is_src, c.accept) {
                (false, true) if is_private(peer) => "DefaultRule_AllowVnetInBound",
                (false, true) => "UserRule_Allow-HTTPS-Internet-Inbound",
                (true, true) if is_private(peer) => "DefaultRule_AllowVnetOutBound",
                (true, true) => "DefaultRule_AllowInternetOutBound",
                (false, false) => "DefaultRule_DenyAllInBound",
                (true, false) => "UserRule_Deny-Corp-To-CDE-Outbound",
            };
            let dir = if is_src { "O" } else { "I" };
            let start = slot_start(c.slot) + c.offset;
            let tuple = if c.accept {
                format!(
                    "{},{src},{dst},{},{},T,{dir},A,E,{},{},{},{}",
                    start + c.duration,
                    c.src_port,
                    c.dst_port,
                    c.packets,
                    c.bytes,
                    c.reply_packets,
                    c.reply_bytes
                )
            } else {
                format!("{start},{src},{dst},{},{},T,{dir},D,B,,,,", c.src_port, c.dst_port)
            };
            tuples
                .entry(plan.net_of(h).nsg.clone())
                .or_default()
                .entry(c.slot)
                .or_default()
                .entry(rule)
                .or_default()
                .entry(h.iface.clone())
                .or_default()
                .push((start, seq, tuple));
            seq += 1;
        }
    }
    for (nsg, slots) in tuples {
        let resource_id = nsg_id(plan, &nsg).to_uppercase();
        let system_id = rng.uuid();
        let mut records = Vec::new();
        for (slot, rules) in slots {
            let mut count = 0;
            let flows: Vec<Value> = rules
                .into_iter()
                .map(|(rule, macs)| {
                    let flows: Vec<Value> = macs
                        .into_iter()
                        .map(|(mac, mut ts)| {
                            ts.sort();
                            count += ts.len();
                            json!({"mac": mac, "flowTuples": ts.into_iter().map(|(_, _, t)| t).collect::<Vec<_>>()})
                        })
                        .collect();
                    json!({"rule": rule, "flows": flows})
                })
                .collect();
            let record = json!({
                "time": rfc3339(slot_start(slot) + 600 - 1, rng.below(10_000_000) as u32 * 100, 7),
                "systemId": system_id,
                "category": "NetworkSecurityGroupFlowEvent",
                "resourceId": resource_id,
                "operationName": "NetworkSecurityGroupFlowEvents",
                "properties": {"Version": 2, "flows": flows},
            });
            records.push((record.to_string(), count));
        }
        for (i, (text, count)) in crate::chunk_json_records(records).into_iter().enumerate() {
            sink.flow_records += count;
            let part = if i == 0 { String::new() } else { format!("-{i:02}") };
            sink.files.push(EstateFile {
                path: format!(
                    "azure/insights-logs-networksecuritygroupflowevent/{nsg}/y=2026/m=11/d=01/h=00/m=00/PT1H{part}.json"
                ),
                kind: FileKind::FlowLogs,
                bytes: text.into_bytes(),
            });
        }
    }
}
