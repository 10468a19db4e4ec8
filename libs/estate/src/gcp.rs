//! GCP: Cloud Asset Inventory compute instances (an export, one asset per
//! line), Cloud SQL in the native JSON form (Cloud Asset Inventory is mapped
//! for compute instances only), and VPC flow logs as Cloud Logging entries
//! (one per line).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Cloud, Conn, End, GCP_REGION, Host, Kind, Plan};
use crate::rng::Rng;
use crate::time::{INVENTORY_START, rfc3339, slot_start};
use crate::{EstateFile, FileKind, Sink};

const API: &str = "https://www.googleapis.com/compute/v1";

fn labels(h: &Host) -> Value {
    Value::Object(h.tags.iter().map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))).collect())
}

/// A Cloud Asset Inventory export line: `data` as the Compute API's
/// `discovery` resource of project `number`.
fn asset(name: &str, discovery: &str, number: &str, location: &str, data: Value, rng: &mut Rng) -> Value {
    json!({
        "name": name,
        "assetType": format!("compute.googleapis.com/{discovery}"),
        "resource": {
            "version": "v1",
            "discoveryDocumentUri": "https://www.googleapis.com/discovery/v1/apis/compute/v1/rest",
            "discoveryName": discovery,
            "parent": format!("//cloudresourcemanager.googleapis.com/projects/{number}"),
            "data": data,
            "location": location,
        },
        "ancestors": [format!("projects/{number}"), "folders/417203381954", "organizations/902716553018"],
        "updateTime": rfc3339(INVENTORY_START + rng.range(0, 3_000), rng.below(1_000_000) as u32 * 1_000, 6),
    })
}

pub(crate) fn asset_export(plan: &Plan, rng: &mut Rng, sink: &mut Sink) {
    let mut lines = Vec::new();
    let mut project_numbers = BTreeMap::new();
    for h in plan.hosts.iter() {
        let Kind::Gce { machine_type, network_tags } = &h.kind else { continue };
        let net = plan.net_of(h);
        let p = &net.account;
        let number = project_numbers.entry(p.clone()).or_insert_with(|| rng.digits(12)).clone();
        let data = json!({
            "id": rng.digits(19),
            "name": h.name,
            "kind": "compute#instance",
            "creationTimestamp": "2026-04-02T07:45:12.318-07:00",
            "machineType": format!("{API}/projects/{p}/zones/{}/machineTypes/{machine_type}", net.zone),
            "zone": format!("{API}/projects/{p}/zones/{}", net.zone),
            "status": "RUNNING",
            "canIpForward": false,
            "deletionProtection": false,
            "cpuPlatform": "Intel Ice Lake",
            "selfLink": format!("{API}/projects/{p}/zones/{}/instances/{}", net.zone, h.name),
            "networkInterfaces": [{
                "kind": "compute#networkInterface",
                "name": "nic0",
                "network": format!("{API}/projects/{p}/global/networks/{}", net.vpc_id),
                "subnetwork": format!("{API}/projects/{p}/regions/{GCP_REGION}/subnetworks/{}", net.subnet_id),
                "networkIP": h.ip,
                "stackType": "IPV4_ONLY",
                "fingerprint": rng.hex(11),
            }],
            "disks": [{"boot": true, "autoDelete": true, "deviceName": "persistent-disk-0", "diskSizeGb": "50", "interface": "SCSI", "mode": "READ_WRITE", "type": "PERSISTENT", "source": format!("{API}/projects/{p}/zones/{}/disks/{}", net.zone, h.name)}],
            "labels": labels(h),
            "tags": {"items": network_tags, "fingerprint": rng.hex(11)},
            "serviceAccounts": [{"email": format!("{number}-compute@developer.gserviceaccount.com"), "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
            "scheduling": {"automaticRestart": true, "onHostMaintenance": "MIGRATE", "preemptible": false, "provisioningModel": "STANDARD"},
            "shieldedInstanceConfig": {"enableSecureBoot": true, "enableVtpm": true, "enableIntegrityMonitoring": true},
            "startRestricted": false,
        });
        lines.push(asset(&h.id, "Instance", &number, &net.zone, data, rng).to_string());
        sink.resources += 1;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    sink.files.push(EstateFile {
        path: "gcp/cloud-asset-inventory/compute-instances.ndjson".into(),
        kind: FileKind::Inventory,
        bytes: text.into_bytes(),
    });
    // The subnetworks of its VMs, with VPC flow logs on (`logConfig`).
    let mut subnets = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for h in plan.hosts.iter().filter(|h| matches!(h.kind, Kind::Gce { .. })) {
        let net = plan.net_of(h);
        if !seen.insert(net.subnet_id.clone()) {
            continue;
        }
        let p = &net.account;
        let number = project_numbers.get(p).cloned().unwrap_or_default();
        let data = json!({
            "id": rng.digits(19),
            "kind": "compute#subnetwork",
            "name": net.subnet_id,
            "creationTimestamp": "2026-03-11T05:12:40.118-07:00",
            "network": format!("{API}/projects/{p}/global/networks/{}", net.vpc_id),
            "ipCidrRange": format!("{}.0/24", net.prefix),
            "gatewayAddress": format!("{}.1", net.prefix),
            "region": format!("{API}/projects/{p}/regions/{GCP_REGION}"),
            "selfLink": format!("{API}/projects/{p}/regions/{GCP_REGION}/subnetworks/{}", net.subnet_id),
            "privateIpGoogleAccess": true,
            "stackType": "IPV4_ONLY",
            "purpose": "PRIVATE",
            "logConfig": {"enable": true, "aggregationInterval": "INTERVAL_5_SEC", "flowSampling": 1.0,
                          "metadata": "INCLUDE_ALL_METADATA"},
        });
        let name = format!("//compute.googleapis.com/projects/{p}/regions/{GCP_REGION}/subnetworks/{}", net.subnet_id);
        subnets.push(asset(&name, "Subnetwork", &number, GCP_REGION, data, rng).to_string());
        sink.resources += 1;
    }
    let mut text = subnets.join("\n");
    text.push('\n');
    sink.files.push(EstateFile {
        path: "gcp/cloud-asset-inventory/subnetworks.ndjson".into(),
        kind: FileKind::Inventory,
        bytes: text.into_bytes(),
    });
}

/// Cloud SQL instances and on-premise hosts: the native JSON form.
pub(crate) fn native(plan: &Plan, sink: &mut Sink) {
    let mut sql = Vec::new();
    let mut onprem = Vec::new();
    for h in plan.hosts.iter() {
        let net = plan.net_of(h);
        let observed = rfc3339(INVENTORY_START + 3_000, 0, 0);
        match &h.kind {
            Kind::CloudSql { version, tier } => sql.push(json!({
                "provider": "gcp",
                "resource_type": "cloud_sql",
                "resource_id": h.id,
                "resource_name": h.name,
                "account_id": net.account,
                "region": GCP_REGION,
                "availability_zone": net.zone,
                "vpc_id": net.vpc_id,
                "private_ips": [h.ip],
                "public_ips": [],
                "tags": labels(h),
                "observed_at": observed,
                "deleted": false,
                "metadata": {
                    "databaseVersion": version,
                    "tier": tier,
                    "connectionName": h.id,
                    "availabilityType": "REGIONAL",
                    "ipConfiguration": {"ipv4Enabled": false, "privateNetwork": format!("projects/{}/global/networks/{}", net.account, net.vpc_id), "sslMode": "ENCRYPTED_ONLY"},
                },
            })),
            Kind::OnPrem { model } => onprem.push(json!({
                "provider": "on_premise",
                "resource_type": "host",
                "resource_id": h.id,
                "resource_name": h.name,
                "account_id": net.account,
                "region": "eu-central-fra",
                "vpc_id": net.vpc_id,
                "subnet_id": net.subnet_id,
                "private_ips": [h.ip],
                "public_ips": [],
                "tags": labels(h),
                "observed_at": observed,
                "deleted": false,
                "metadata": {"model": model, "site": net.account, "source": "servicenow-cmdb"},
            })),
            _ => continue,
        }
        sink.resources += 1;
    }
    for (path, items) in [("gcp/cloud-sql-instances.json", sql), ("onprem/cmdb-hosts.json", onprem)] {
        sink.files.push(EstateFile {
            path: path.into(),
            kind: FileKind::Inventory,
            bytes: Value::Array(items).to_string().into_bytes(),
        });
    }
}

fn instance(h: &Host, plan: &Plan) -> Value {
    let net = plan.net_of(h);
    json!({"project_id": net.account, "region": GCP_REGION, "vm_name": h.name, "zone": net.zone})
}

fn vpc(h: &Host, plan: &Plan) -> Value {
    let net = plan.net_of(h);
    json!({"project_id": net.account, "subnetwork_name": net.subnet_id, "vpc_name": net.vpc_id})
}

fn location(ip: &str) -> Value {
    if ip == crate::model::PAYMENT_GATEWAY {
        json!({"asn": 64_500, "continent": "America", "country": "usa", "region": "California", "city": "San Francisco"})
    } else {
        json!({"asn": 64_511, "continent": "Europe", "country": "deu", "region": "Hesse", "city": "Frankfurt am Main"})
    }
}

fn gce<'p>(plan: &'p Plan, end: &End) -> Option<&'p Host> {
    plan.host(end).filter(|h| matches!(h.kind, Kind::Gce { .. }))
}

fn entry(plan: &Plan, rng: &mut Rng, c: &Conn, reporter_is_src: bool, project: &str, subnet: &str) -> Value {
    let (src, dst) = (plan.ip(&c.src), plan.ip(&c.dst));
    let start = slot_start(c.slot) + c.offset;
    let end = start + c.duration.min(30);
    let (sn, en) = (rng.below(1_000_000_000) as u32, rng.below(1_000_000_000) as u32);
    let mut payload = json!({
        "connection": {"src_ip": src, "dest_ip": dst, "src_port": c.src_port, "dest_port": c.dst_port, "protocol": c.protocol},
        "reporter": if reporter_is_src { "SRC" } else { "DEST" },
        "bytes_sent": c.bytes.to_string(),
        "packets_sent": c.packets.to_string(),
        "start_time": rfc3339(start, sn, 9),
        "end_time": rfc3339(end, en, 9),
        "rtt_msec": rng.range(1, 40).to_string(),
    });
    for (side, key_i, key_v, key_l) in
        [(&c.src, "src_instance", "src_vpc", "src_location"), (&c.dst, "dest_instance", "dest_vpc", "dest_location")]
    {
        if let Some(h) = gce(plan, side) {
            payload[key_i] = instance(h, plan);
            payload[key_v] = vpc(h, plan);
        } else if plan.host(side).is_none() && !crate::aws::is_private(&plan.ip(side)) {
            payload[key_l] = location(&plan.ip(side));
        }
    }
    let zone = if reporter_is_src { gce(plan, &c.src) } else { gce(plan, &c.dst) }
        .map(|h| plan.net_of(h).zone.clone())
        .unwrap_or_default();
    json!({
        "insertId": rng.hex(14),
        "jsonPayload": payload,
        "logName": format!("projects/{project}/logs/compute.googleapis.com%2Fvpc_flows"),
        "receiveTimestamp": rfc3339(end + 25, rng.below(1_000_000_000) as u32, 9),
        "resource": {"type": "gce_subnetwork", "labels": {"location": zone, "project_id": project, "subnetwork_id": subnet_number(subnet), "subnetwork_name": subnet}},
        "timestamp": rfc3339(end + 20, en, 9),
    })
}

/// A stable numeric id for a subnetwork name.
fn subnet_number(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (10_u64.pow(18) + h % (8 * 10_u64.pow(18))).to_string()
}

pub(crate) fn flow_logs(plan: &Plan, rng: &mut Rng, sink: &mut Sink) {
    let mut by_project: BTreeMap<String, Vec<(u64, usize, String)>> = BTreeMap::new();
    let mut seq = 0usize;
    for c in &plan.conns {
        if !c.accept {
            continue; // GCP logs allowed traffic only.
        }
        for (end, is_src) in crate::logged_sides(plan, c) {
            let Some(h) = gce(plan, end) else { continue };
            let net = plan.net_of(h);
            debug_assert_eq!(net.cloud, Cloud::Gcp);
            let e = entry(plan, rng, c, is_src, &net.account, &net.subnet_id);
            by_project.entry(net.account.clone()).or_default().push((
                slot_start(c.slot) + c.offset,
                seq,
                e.to_string(),
            ));
            seq += 1;
        }
    }
    for (project, mut lines) in by_project {
        lines.sort();
        for (i, (text, count)) in crate::chunk(lines.into_iter().map(|(_, _, l)| l), None).into_iter().enumerate() {
            sink.flow_records += count;
            sink.files.push(EstateFile {
                path: format!(
                    "gcp/vpc-flow-logs/{project}/compute.googleapis.com_vpc_flows_20261101T0000Z_{i:02}.ndjson"
                ),
                kind: FileKind::FlowLogs,
                bytes: text.into_bytes(),
            });
        }
    }
}
