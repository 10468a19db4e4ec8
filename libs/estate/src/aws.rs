//! AWS: an AWS Config snapshot file (EC2 instances, RDS DB instances and
//! their requester-managed ENIs, a NAT gateway's ENI) and VPC Flow Logs as
//! delivered to S3 (custom version-5 format, header line, gzip).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{AWS_ACCOUNT, AWS_REGION, Cloud, Conn, End, Host, Kind, Plan};
use crate::rng::Rng;
use crate::time::{INVENTORY_START, SLOTS, rfc3339, slot_start};
use crate::{EstateFile, FileKind, Sink};

/// The flow-log format (`${version} ${account-id} ...` in the flow log's
/// LogFormat): the S3 files start with these names as a header line.
pub(crate) const FORMAT: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes \
start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id \
flow-direction traffic-path";

fn capture_time(rng: &mut Rng) -> String {
    rfc3339(INVENTORY_START + rng.range(0, 3_000), rng.below(1_000) as u32 * 1_000_000, 3)
}

fn tag_map(h: &Host) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Name".into(), Value::String(h.name.clone()));
    for (k, v) in &h.tags {
        m.insert((*k).into(), Value::String(v.clone()));
    }
    Value::Object(m)
}

fn tag_list(tags: &Value) -> Value {
    let list = tags
        .as_object()
        .map(|m| m.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>())
        .unwrap_or_default();
    Value::Array(list)
}

fn mac(rng: &mut Rng) -> String {
    format!("0e:{}:{}:{}:{}:{}", rng.hex(2), rng.hex(2), rng.hex(2), rng.hex(2), rng.hex(2))
}

fn dns(ip: &str) -> String {
    format!("ip-{}.ec2.internal", ip.replace('.', "-"))
}

/// The Config snapshot; returns the file and the number of resources in it.
pub(crate) fn config_snapshot(plan: &Plan, rng: &mut Rng, sink: &mut Sink) {
    let mut items = Vec::new();
    for h in plan.hosts.iter().filter(|h| plan.net_of(h).cloud == Cloud::Aws) {
        let net = plan.net_of(h);
        let captured = capture_time(rng);
        let base =
            |resource_type: &str, id: &str, name: Option<&str>, arn: String, tags: Value, cfg: Value, rel: Value| {
                json!({
                    "configurationItemVersion": "1.3",
                    "configurationItemCaptureTime": captured,
                    "configurationItemStatus": "OK",
                    "configurationStateId": "1793487000000",
                    "configurationStateMd5Hash": "",
                    "arn": arn,
                    "resourceType": resource_type,
                    "resourceId": id,
                    "resourceName": name,
                    "awsRegion": AWS_REGION,
                    "availabilityZone": net.zone,
                    "resourceCreationTime": "2026-06-14T09:21:37.000Z",
                    "tags": tags,
                    "relatedEvents": [],
                    "relationships": rel,
                    "configuration": cfg,
                    "supplementaryConfiguration": {},
                    "awsAccountId": AWS_ACCOUNT,
                })
            };
        let rel = |kind: &str, id: &str, name: &str| json!({"resourceId": id, "resourceType": kind, "name": name});
        let vpc_rels = vec![
            rel("AWS::EC2::Subnet", &net.subnet_id, "Is contained in Subnet"),
            json!({"resourceId": net.vpc_id, "resourceName": net.vpc_name, "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"}),
            rel("AWS::EC2::SecurityGroup", &net.nsg, "Is associated with SecurityGroup"),
        ];
        let groups = json!([{"groupId": net.nsg, "groupName": format!("{}-sg", net.subnet_name)}]);
        match &h.kind {
            Kind::Ec2 { instance_type } => {
                let tags = tag_map(h);
                let mut association = None;
                let mut private = json!({"primary": true, "privateIpAddress": h.ip, "privateDnsName": dns(&h.ip)});
                if let Some(p) = &h.public_ip {
                    let a = json!({"publicIp": p, "publicDnsName": format!("ec2-{}.compute-1.amazonaws.com", p.replace('.', "-")), "ipOwnerId": "amazon"});
                    private["association"] = a.clone();
                    association = Some(a);
                }
                let mut eni = json!({
                    "networkInterfaceId": h.iface,
                    "description": "Primary network interface",
                    "macAddress": mac(rng),
                    "ownerId": AWS_ACCOUNT,
                    "privateDnsName": dns(&h.ip),
                    "privateIpAddress": h.ip,
                    "privateIpAddresses": [private],
                    "sourceDestCheck": true,
                    "status": "in-use",
                    "subnetId": net.subnet_id,
                    "vpcId": net.vpc_id,
                    "interfaceType": "interface",
                    "groups": groups,
                    "attachment": {"attachTime": "2026-06-14T09:21:37.000Z", "attachmentId": format!("eni-attach-0{}", rng.hex(16)), "deleteOnTermination": true, "deviceIndex": 0, "networkCardIndex": 0, "status": "attached"},
                    "ipv6Addresses": [],
                });
                if let Some(a) = association.clone() {
                    eni["association"] = a;
                }
                let cfg = json!({
                    "amiLaunchIndex": 0,
                    "imageId": format!("ami-0{}", rng.hex(16)),
                    "instanceId": h.id,
                    "instanceType": instance_type,
                    "launchTime": "2026-06-14T09:21:37.000Z",
                    "placement": {"availabilityZone": net.zone, "groupName": "", "tenancy": "default"},
                    "privateDnsName": dns(&h.ip),
                    "privateIpAddress": h.ip,
                    "publicIpAddress": h.public_ip,
                    "publicDnsName": h.public_ip.as_ref().map(|p| format!("ec2-{}.compute-1.amazonaws.com", p.replace('.', "-"))).unwrap_or_default(),
                    "state": {"code": 16, "name": "running"},
                    "subnetId": net.subnet_id,
                    "vpcId": net.vpc_id,
                    "architecture": "x86_64",
                    "ebsOptimized": true,
                    "hypervisor": "xen",
                    "iamInstanceProfile": {"arn": format!("arn:aws:iam::{AWS_ACCOUNT}:instance-profile/{}-role", h.tags.iter().find(|(k, _)| *k == "app").map_or("default", |(_, v)| v.as_str()))},
                    "networkInterfaces": [eni],
                    "securityGroups": groups,
                    "sourceDestCheck": true,
                    "tags": tag_list(&tags),
                    "virtualizationType": "hvm",
                    "metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled"},
                });
                let mut rels = vec![rel("AWS::EC2::NetworkInterface", &h.iface, "Contains NetworkInterface")];
                rels.extend(vpc_rels.iter().cloned());
                let arn = format!("arn:aws:ec2:{AWS_REGION}:{AWS_ACCOUNT}:instance/{}", h.id);
                items.push(base("AWS::EC2::Instance", &h.id, None, arn, tags, cfg, Value::Array(rels)));
                sink.resources += 1;
            }
            Kind::RdsEni { db_id, engine, engine_version, port } => {
                let mut tags = tag_map(h);
                let subnets: Vec<Value> = plan
                    .nets
                    .iter()
                    .filter(|n| n.vpc_id == net.vpc_id && n.subnet_name.starts_with("cde-data"))
                    .map(|n| json!({"subnetIdentifier": n.subnet_id, "subnetAvailabilityZone": {"name": n.zone}, "subnetStatus": "Active"}))
                    .collect();
                let arn = format!("arn:aws:rds:{AWS_REGION}:{AWS_ACCOUNT}:db:{}", h.name);
                let cfg = json!({
                    "dBInstanceIdentifier": h.name,
                    "dBInstanceClass": "db.r6g.2xlarge",
                    "engine": engine,
                    "engineVersion": engine_version,
                    "dBInstanceStatus": "available",
                    "masterUsername": "payments_admin",
                    "endpoint": {"address": format!("{}.c7xk2mq9vd1e.{AWS_REGION}.rds.amazonaws.com", h.name), "port": port, "hostedZoneId": "Z2R2ITUGPM61AM"},
                    "allocatedStorage": 1000,
                    "availabilityZone": net.zone,
                    "multiAZ": false,
                    "publiclyAccessible": false,
                    "storageEncrypted": true,
                    "storageType": "gp3",
                    "kmsKeyId": format!("arn:aws:kms:{AWS_REGION}:{AWS_ACCOUNT}:key/{}", rng.uuid()),
                    "dbiResourceId": db_id,
                    "dBInstanceArn": arn,
                    "dBSubnetGroup": {"dBSubnetGroupName": "cde-data", "dBSubnetGroupDescription": "CDE data subnets", "vpcId": net.vpc_id, "subnetGroupStatus": "Complete", "subnets": subnets},
                    "vpcSecurityGroups": [{"vpcSecurityGroupId": net.nsg, "status": "active"}],
                    "backupRetentionPeriod": 35,
                    "deletionProtection": true,
                    "iAMDatabaseAuthenticationEnabled": true,
                });
                let db_tags = {
                    let mut t = tags.clone();
                    if let Some(m) = t.as_object_mut() {
                        m.remove("Name");
                    }
                    t
                };
                let rels = json!([
                    {"resourceId": net.nsg, "resourceType": "AWS::EC2::SecurityGroup", "name": "Is associated with SecurityGroup"},
                    {"resourceId": "cde-data", "resourceType": "AWS::RDS::DBSubnetGroup", "name": "Is associated with DBSubnetGroup"},
                ]);
                items.push(base("AWS::RDS::DBInstance", db_id, Some(&h.name), arn, db_tags, cfg, rels));
                // The DB's requester-managed ENI holds its address. The team's
                // tagging automation copies the DB's tags onto it.
                tags["Name"] = Value::String(format!("{}-eni", h.name));
                let eni_cfg = json!({
                    "networkInterfaceId": h.iface,
                    "description": "RDSNetworkInterface",
                    "interfaceType": "interface",
                    "requesterId": "amazon-rds",
                    "requesterManaged": true,
                    "macAddress": mac(rng),
                    "ownerId": AWS_ACCOUNT,
                    "availabilityZone": net.zone,
                    "privateDnsName": dns(&h.ip),
                    "privateIpAddress": h.ip,
                    "privateIpAddresses": [{"primary": true, "privateIpAddress": h.ip, "privateDnsName": dns(&h.ip)}],
                    "sourceDestCheck": true,
                    "status": "in-use",
                    "subnetId": net.subnet_id,
                    "vpcId": net.vpc_id,
                    "groups": groups,
                    "attachment": {"attachmentId": format!("eni-attach-0{}", rng.hex(16)), "deleteOnTermination": false, "deviceIndex": 1, "instanceOwnerId": "amazon-rds", "status": "attached"},
                    "ipv6Addresses": [],
                    "tagSet": tag_list(&tags),
                });
                let arn = format!("arn:aws:ec2:{AWS_REGION}:{AWS_ACCOUNT}:network-interface/{}", h.iface);
                items.push(base(
                    "AWS::EC2::NetworkInterface",
                    &h.iface,
                    None,
                    arn,
                    tags,
                    eni_cfg,
                    Value::Array(vpc_rels),
                ));
                sink.resources += 2;
            }
            Kind::NatEni { nat_id } => {
                let public = h.public_ip.clone().unwrap_or_default();
                let association = json!({"allocationId": format!("eipalloc-0{}", rng.hex(16)), "ipOwnerId": AWS_ACCOUNT, "publicIp": public, "publicDnsName": ""});
                let eni_cfg = json!({
                    "networkInterfaceId": h.iface,
                    "description": format!("Interface for NAT Gateway {nat_id}"),
                    "interfaceType": "nat_gateway",
                    "requesterId": "441309812740",
                    "requesterManaged": true,
                    "macAddress": mac(rng),
                    "ownerId": AWS_ACCOUNT,
                    "availabilityZone": net.zone,
                    "privateIpAddress": h.ip,
                    "privateIpAddresses": [{"primary": true, "privateIpAddress": h.ip, "association": association}],
                    "association": association,
                    "sourceDestCheck": false,
                    "status": "in-use",
                    "subnetId": net.subnet_id,
                    "vpcId": net.vpc_id,
                    "groups": [],
                    "attachment": {"attachmentId": format!("ela-attach-0{}", rng.hex(16)), "deviceIndex": 1, "instanceOwnerId": "amazon-aws", "status": "attached"},
                    "ipv6Addresses": [],
                    "tagSet": [],
                });
                let arn = format!("arn:aws:ec2:{AWS_REGION}:{AWS_ACCOUNT}:network-interface/{}", h.iface);
                items.push(base(
                    "AWS::EC2::NetworkInterface",
                    &h.iface,
                    None,
                    arn,
                    json!({}),
                    eni_cfg,
                    Value::Array(vpc_rels),
                ));
                sink.resources += 1;
            }
            _ => {}
        }
    }
    let groups = security_groups(plan, AWS_ACCOUNT);
    sink.resources += groups.len();
    items.extend(groups);
    let logs = flow_log_configs(plan, AWS_ACCOUNT);
    sink.resources += logs.len();
    items.extend(logs);
    let snapshot = json!({
        "fileVersion": "1.0",
        "configSnapshotId": rng.uuid(),
        "configurationItems": items,
    });
    sink.files.push(EstateFile {
        path: "aws/config-snapshot.json".into(),
        kind: FileKind::Inventory,
        bytes: snapshot.to_string().into_bytes(),
    });
}

/// The security group of every AWS subnet, as AWS Config records it, with
/// the inbound rules the estate's accepted connections need: from the
/// source's group inside AWS, from its address elsewhere, from anywhere on
/// the internet; refused attempts get none. Plus one rule nobody removed: the
/// payments database admits TCP/5432 from the artifact server (a latent path:
/// allowed, never used). Outbound: everything, as AWS creates groups.
fn security_groups(plan: &Plan, account: &str) -> Vec<Value> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut ingress: BTreeMap<&str, BTreeSet<(u8, u16, String)>> = BTreeMap::new();
    let mut names: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for n in plan.nets.iter().filter(|n| n.cloud == Cloud::Aws) {
        ingress.entry(&n.nsg).or_default();
        names.entry(&n.nsg).or_insert((&n.subnet_name, &n.vpc_id));
    }
    for c in plan.conns.iter().filter(|c| c.accept) {
        let Some(dst) = plan.host(&c.dst) else { continue };
        let dst_net = plan.net_of(dst);
        if dst_net.cloud != Cloud::Aws {
            continue;
        }
        let peer = match plan.host(&c.src) {
            // The misconfigured path is one host's rule, not its subnet's.
            Some(s) if std::ptr::eq(s, &plan.hosts[plan.violator]) => format!("cidr:{}/32", s.ip),
            Some(s) if plan.net_of(s).cloud == Cloud::Aws => format!("sg:{}", plan.net_of(s).nsg),
            Some(s) => format!("cidr:{}/32", s.ip),
            None => {
                let ip = plan.ip(&c.src);
                if is_private(&ip) {
                    let mut o = ip.split('.');
                    format!("cidr:{}.{}.0.0/16", o.next().unwrap_or("10"), o.next().unwrap_or("0"))
                } else {
                    "cidr:0.0.0.0/0".to_owned()
                }
            }
        };
        if let Some(set) = ingress.get_mut(dst_net.nsg.as_str()) {
            set.insert((c.protocol, c.dst_port, peer));
        }
    }
    if let Some(artifactory) = plan.hosts.iter().find(|h| h.name == "artifactory") {
        let db = plan.net_of(&plan.hosts[plan.violated]);
        if let Some(set) = ingress.get_mut(db.nsg.as_str()) {
            set.insert((6, 5432, format!("cidr:{}/32", artifactory.ip)));
        }
    }
    ingress
        .into_iter()
        .map(|(id, rules)| {
            let (subnet, vpc) = names[id];
            let permissions: Vec<Value> = rules
                .into_iter()
                .map(|(proto, port, peer)| {
                    let protocol = if proto == 17 { "udp" } else { "tcp" };
                    let (pairs, ranges) = match peer.split_once(':') {
                        Some(("sg", g)) => (json!([{"groupId": g, "userId": account}]), json!([])),
                        Some((_, c)) => (json!([]), json!([{"cidrIp": c}])),
                        None => (json!([]), json!([])),
                    };
                    json!({"fromPort": port, "toPort": port, "ipProtocol": protocol, "ipv6Ranges": [],
                           "prefixListIds": [], "userIdGroupPairs": pairs, "ipv4Ranges": ranges})
                })
                .collect();
            json!({
                "configurationItemVersion": "1.3",
                "configurationItemCaptureTime": "2026-10-31T23:00:00.000Z",
                "configurationItemStatus": "OK",
                "configurationStateId": "1793487000000",
                "arn": format!("arn:aws:ec2:{AWS_REGION}:{account}:security-group/{id}"),
                "resourceType": "AWS::EC2::SecurityGroup",
                "resourceId": id,
                "resourceName": format!("{subnet}-sg"),
                "awsRegion": AWS_REGION,
                "availabilityZone": "Not Applicable",
                "tags": {},
                "relationships": [{"resourceId": vpc, "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"}],
                "configuration": {
                    "description": format!("{subnet} subnet"),
                    "groupName": format!("{subnet}-sg"),
                    "ownerId": account,
                    "groupId": id,
                    "vpcId": vpc,
                    "ipPermissions": permissions,
                    "ipPermissionsEgress": [{"ipProtocol": "-1", "ipv6Ranges": [], "prefixListIds": [],
                        "userIdGroupPairs": [], "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}],
                    "tags": []
                },
                "awsAccountId": account,
            })
        })
        .collect()
}

/// The flow log of every AWS VPC that logs (all traffic, to S3), as AWS
/// Config records `AWS::EC2::FlowLog`: the VPCs holding a host that is in a
/// connection or reports NODATA. The archive VPC never had one.
fn flow_log_configs(plan: &Plan, account: &str) -> Vec<Value> {
    use std::collections::BTreeSet;
    let mut vpcs: BTreeSet<&str> = BTreeSet::new();
    for (i, h) in plan.hosts.iter().enumerate() {
        let net = plan.net_of(h);
        let in_conn = plan
            .conns
            .iter()
            .any(|c| [&c.src, &c.dst].iter().any(|e| plan.host(e).is_some_and(|x| std::ptr::eq(x, &plan.hosts[i]))));
        let idle_reporter =
            h.role == crate::model::Role::Untagged && matches!(h.kind, Kind::Ec2 { .. } | Kind::NatEni { .. });
        if net.cloud == Cloud::Aws && h.logged() && (in_conn || idle_reporter) {
            vpcs.insert(&net.vpc_id);
        }
    }
    vpcs.into_iter()
        .map(|vpc| {
            // The id its S3 objects are named by.
            let id = flow_log_id(vpc);
            json!({
                "configurationItemVersion": "1.3",
                "configurationItemCaptureTime": "2026-10-31T23:00:00.000Z",
                "configurationItemStatus": "OK",
                "configurationStateId": "1793487000001",
                "arn": format!("arn:aws:ec2:{AWS_REGION}:{account}:vpc-flow-log/{id}"),
                "resourceType": "AWS::EC2::FlowLog",
                "resourceId": id,
                "awsRegion": AWS_REGION,
                "availabilityZone": "Not Applicable",
                "tags": {},
                "relationships": [],
                "configuration": {
                    "creationTime": "2026-03-02T09:12:44.000Z",
                    "deliverLogsStatus": "SUCCESS",
                    "flowLogId": id,
                    "flowLogStatus": "ACTIVE",
                    "resourceId": vpc,
                    "trafficType": "ALL",
                    "logDestinationType": "s3",
                    "logDestination": format!("arn:aws:s3:::acme-vpc-flow-logs-{account}"),
                    "maxAggregationInterval": 600,
                    "tags": []
                },
                "awsAccountId": account,
            })
        })
        .collect()
}

/// The id of a VPC's flow log.
fn flow_log_id(vpc: &str) -> String {
    format!("fl-0{}", vpc.get(5..).unwrap_or(vpc).chars().rev().collect::<String>())
}

/// Where the egress of `h` towards `peer` goes (AWS `traffic-path`).
fn traffic_path(plan: &Plan, h: &Host, peer: &End) -> u8 {
    match plan.host(peer) {
        Some(p) if plan.net_of(p).cloud == Cloud::Aws => {
            if plan.net_of(p).vpc_id == plan.net_of(h).vpc_id {
                1
            } else {
                4
            }
        }
        Some(_) => 3,
        None if is_private(&plan.ip(peer)) => 1,
        None => 8,
    }
}

pub(crate) fn is_private(ip: &str) -> bool {
    ip.starts_with("10.") || ip.starts_with("192.168.") || {
        let mut p = ip.split('.');
        p.next() == Some("172") && p.next().and_then(|o| o.parse::<u8>().ok()).is_some_and(|o| (16..32).contains(&o))
    }
}

/// One flow-log line per direction seen at `h`'s interface.
#[allow(clippy::too_many_arguments)]
fn line(
    h: &Host,
    plan: &Plan,
    (src, dst, sport, dport): (&str, &str, u16, u16),
    c: &Conn,
    (packets, bytes, flags): (u64, u64, u8),
    (egress, accepted): (bool, bool),
    path: Option<u8>,
) -> (u64, String) {
    let net = plan.net_of(h);
    let start = slot_start(c.slot) + c.offset;
    let end = start + c.duration;
    let action = if accepted { "ACCEPT" } else { "REJECT" };
    let dir = if egress { "egress" } else { "ingress" };
    let path = path.map_or_else(|| "-".to_owned(), |p| p.to_string());
    let text = format!(
        "5 {AWS_ACCOUNT} {} {src} {dst} {sport} {dport} {} {packets} {bytes} {start} {end} {action} OK {} {} {} {flags} IPv4 {src} {dst} {AWS_REGION} {} {dir} {path}",
        h.iface, c.protocol, net.vpc_id, net.subnet_id, h.instance_id, net.zone_id
    );
    (start, text)
}

/// The VPC flow logs, one gzip file (or several, to stay under the size
/// limit) per VPC.
pub(crate) fn flow_logs(plan: &Plan, sink: &mut Sink) {
    let mut by_vpc: BTreeMap<String, Vec<(u64, usize, String)>> = BTreeMap::new();
    let mut seq = 0usize;
    let mut push = |vpc: &str, (t, text): (u64, String)| {
        by_vpc.entry(vpc.to_owned()).or_default().push((t, seq, text));
        seq += 1;
    };
    let mut busy: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    let aws_logged = |e: &End| plan.host(e).is_some_and(|h| h.logged() && plan.net_of(h).cloud == Cloud::Aws);
    for c in &plan.conns {
        let (src_ip, dst_ip) = (plan.ip(&c.src), plan.ip(&c.dst));
        // A refused attempt between two logged interfaces: the source's
        // security group (stateful, all egress allowed) accepts it, the
        // destination's rejects it, and both log it.
        let split = !c.accept && aws_logged(&c.src) && aws_logged(&c.dst);
        let sides = if split { vec![(&c.src, true), (&c.dst, false)] } else { crate::logged_sides(plan, c) };
        for (end, is_src) in sides {
            let End::Host(hi) = end else { continue };
            let h = &plan.hosts[*hi];
            if plan.net_of(h).cloud != Cloud::Aws {
                continue;
            }
            busy.entry(*hi).or_default().push(c.slot);
            let vpc = &plan.net_of(h).vpc_id;
            let (peer, back) = if is_src { (&c.dst, &c.src) } else { (&c.src, &c.dst) };
            let request_flags = if c.accept { 3 } else { 2 };
            let req_path = is_src.then(|| traffic_path(plan, h, peer));
            push(
                vpc,
                line(
                    h,
                    plan,
                    (&src_ip, &dst_ip, c.src_port, c.dst_port),
                    c,
                    (c.packets, c.bytes, request_flags),
                    (is_src, c.accept || (split && is_src)),
                    req_path,
                ),
            );
            if c.accept {
                let reply_path = (!is_src).then(|| traffic_path(plan, h, back));
                push(
                    vpc,
                    line(
                        h,
                        plan,
                        (&dst_ip, &src_ip, c.dst_port, c.src_port),
                        c,
                        (c.reply_packets, c.reply_bytes, 19),
                        (!is_src, true),
                        reply_path,
                    ),
                );
            }
        }
    }
    // Idle instances (and the NAT gateway's interface) report NODATA for
    // the intervals they saw nothing in.
    for (hi, h) in plan.hosts.iter().enumerate() {
        if plan.net_of(h).cloud != Cloud::Aws
            || h.role != crate::model::Role::Untagged
            || !matches!(h.kind, Kind::Ec2 { .. } | Kind::NatEni { .. })
        {
            continue;
        }
        let net = plan.net_of(h);
        for slot in 0..SLOTS {
            if busy.get(&hi).is_some_and(|s| s.contains(&slot)) {
                continue;
            }
            let start = slot_start(slot);
            let text = format!(
                "5 {AWS_ACCOUNT} {} - - - - - - - {start} {} - NODATA {} {} {} - - - - {AWS_REGION} {} - -",
                h.iface,
                start + 599,
                net.vpc_id,
                net.subnet_id,
                h.instance_id,
                net.zone_id
            );
            push(&net.vpc_id, (start, text));
        }
    }
    for (vpc, mut lines) in by_vpc {
        lines.sort();
        let flow_log_id = flow_log_id(&vpc);
        let chunks = crate::chunk(lines.into_iter().map(|(_, _, l)| l), Some(FORMAT));
        for (i, (text, records)) in chunks.into_iter().enumerate() {
            sink.flow_records += records;
            sink.files.push(EstateFile {
                path: format!(
                    "aws/AWSLogs/{AWS_ACCOUNT}/vpcflowlogs/{AWS_REGION}/2026/11/01/{AWS_ACCOUNT}_vpcflowlogs_{AWS_REGION}_{flow_log_id}_20261101T0000Z_{i:02}.log.gz"
                ),
                kind: FileKind::FlowLogs,
                bytes: crate::gzip(text.as_bytes()),
            });
        }
    }
}
