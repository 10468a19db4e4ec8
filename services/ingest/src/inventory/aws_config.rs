//! AWS Config configuration items → Resources.
//!
//! Accepted objects:
//! - change notifications `{"configurationItem": {...}, "messageType":
//!   "ConfigurationItemChangeNotification", ...}`, also inside an EventBridge
//!   event (`{"source": "aws.config", "detail": {...}}`);
//! - snapshot (and history) files `{"configSnapshotId": ..., "configurationItems": [...]}`:
//!   every item is read on its own, a refused item refuses only itself;
//! - bare configuration items (they have `configurationItemCaptureTime`).
//!
//! Refused: `OversizedConfigurationItemChangeNotification` (the item is in
//! S3: publish the item itself), snapshot/history delivery notices (publish
//! the file), other message types, items with status `ResourceNotRecorded`
//! (no configuration), and resource types not listed below (kind
//! `unsupported`, naming the type).
//!
//! Every resource: `resource_id` = `resourceId`, `resource_arn` = `arn`/`ARN`,
//! `account_id` = `awsAccountId` (a string, leading zeros kept; a number is
//! padded to 12 digits), `region` = `awsRegion`, `availability_zone` =
//! `availabilityZone` (Config's placeholders such as `Not Applicable` and
//! `Multiple Availability Zones` are dropped), `observed_at` =
//! `configurationItemCaptureTime`, tags from the item's `tags` map, then from
//! the configuration's `tags`/`tagSet`/`tagList` (map or `[{key, value}]`;
//! the item's map wins), `resource_name` = `resourceName` unless said
//! otherwise, `metadata_json` = the `configuration` (an object, or a JSON
//! string in older snapshots: both are read). Status `ResourceDeleted` or
//! `ResourceDeletedNotRecorded` gives `deleted: true` (configuration may be
//! null then). IPv6 addresses of an interface go to `private_ips` (AWS gives
//! them to the interface itself; `public_ips` holds the public IPv4 addresses
//! associated with it). A multi-subnet resource (load balancer, function,
//! cluster) has a `subnet_id` only if it has exactly one subnet; all of them
//! stay in the metadata.
//!
//! Resource types:
//! - `AWS::EC2::Instance` → `ec2_instance`: `privateIpAddress`,
//!   `publicIpAddress`, `vpcId`, `subnetId`, `securityGroups[].groupId`, and
//!   of every `networkInterfaces[]`: its id, `privateIpAddress`,
//!   `privateIpAddresses[]` (`privateIpAddress`, `association.publicIp`),
//!   `association.publicIp`, `ipv6Addresses[].ipv6Address`,
//!   `groups[].groupId`. Name: the `Name` tag.
//! - `AWS::EC2::NetworkInterface`: the resource id is always the ENI id,
//!   so that every ENI is its own record (a later record for a
//!   `resource_id` replaces the earlier one: several ENIs under one id would
//!   release each other's addresses) and a deletion item, whose
//!   configuration is null, ends the same record. Addresses:
//!   `privateIpAddress`, `privateIpAddresses[]` (`privateIpAddress`,
//!   `association.publicIp`), `association.publicIp`,
//!   `ipv6Addresses[].ipv6Address`; security groups `groups[].groupId`;
//!   `vpcId`, `subnetId`. Name: the managed resource, else the `Name` tag.
//!   The type says what the interface is for:
//!   - `interfaceType` `nat_gateway` or description `Interface for NAT
//!     Gateway nat-…` → `nat_gateway`, `resource_name` = the `nat-…` id;
//!   - `interfaceType` `network_load_balancer`/`gateway_load_balancer` or
//!     description `ELB <name>` (`ELB app/<name>/<id>`, `ELB net/…`, classic
//!     `ELB <name>`) → `elastic_load_balancer`, `resource_name` = `<name>`
//!     (`app/<name>/<id>`);
//!   - `interfaceType` `lambda` or description `AWS Lambda VPC
//!     ENI-<function>-<uuid>` → `lambda_function`, `resource_name` = the
//!     function (one function has many ENIs; a shared Hyperplane ENI names
//!     the function that created it);
//!   - description `Amazon EKS <cluster>` (control-plane ENIs) →
//!     `eks_cluster`, `resource_name` = the cluster;
//!   - description `arn:aws:ecs:…:attachment/…` (awsvpc task ENIs) → `ecs_task`;
//!   - these claim their addresses and their ENI id;
//!   - otherwise an ENI attached to an instance (`attachment.instanceId`) is
//!     a `network_interface` that claims no address and no interface: the
//!     instance's own item lists the same interface and addresses, and two
//!     claims of one address are settled by whichever was seen last, so an
//!     ENI claiming them would take an instance's flows (and its tags) away
//!     from it depending on notification order. When the ENI is detached its
//!     next item claims them again. The attachment stays in the metadata;
//!   - otherwise `network_interface`, claiming its addresses and id.
//! - `AWS::EC2::SecurityGroup` → `security_group` (network policy, not a
//!   system): `vpcId`, name `groupName`; every rule of `ipPermissions` and
//!   `ipPermissionsEgress` is read (protocol, ports, CIDRs, group pairs,
//!   prefix lists) and an item with a rule that cannot be is refused naming
//!   it. The rules stay in the metadata, which classify reads.
//! - `AWS::EC2::NetworkAcl` → `network_acl` (network policy): its entries
//!   and subnet associations, checked here; `vpc_id` = `vpcId`.
//! - `AWS::EC2::FlowLog` → `flow_log` (configuration, not a system): its
//!   `resourceId` (the VPC, subnet or interface logged; a VPC or subnet also
//!   as `vpc_id`/`subnet_id`) and `trafficType` (`ACCEPT`, `REJECT`, `ALL`)
//!   are checked here; classify compares it with the records that arrive.
//! - `AWS::EC2::PrefixList` → `prefix_list`: name `PrefixListName`, its
//!   `Entries[].Cidr` checked.
//! - `AWS::RDS::DBInstance` → `rds_instance`: name `dBInstanceIdentifier`,
//!   `dBSubnetGroup.vpcId` (and `.subnets[].subnetIdentifier`),
//!   `vpcSecurityGroups[].vpcSecurityGroupId`. `endpoint.address` is a DNS
//!   name, not an address: it stays in the metadata. (The instance's address
//!   is on its requester-managed ENI, described `RDSNetworkInterface`, which
//!   does not name the instance: it maps as a plain `network_interface`.)
//! - `AWS::ElasticLoadBalancingV2::LoadBalancer` → `elastic_load_balancer`:
//!   `vpcId`, `securityGroups[]`, `availabilityZones[].subnetId`,
//!   `availabilityZones[].loadBalancerAddresses[]`: `ipAddress` (private or
//!   public by its range: an internal NLB's is private, an internet-facing
//!   one's is its Elastic IP), `privateIPv4Address`, `iPv6Address`.
//! - `AWS::Lambda::Function` → `lambda_function`: name `functionName`,
//!   `vpcConfig` `vpcId`, `subnetIds`, `securityGroupIds`.
//! - `AWS::ECS::Task` → `ecs_task`: `attachments[].details[]`
//!   (`{name, value}`): `networkInterfaceId`, `privateIPv4Address`,
//!   `privateIPv6Address`, `subnetId`.
//! - `AWS::EKS::Cluster` → `eks_cluster`: name `name`, `resourcesVpcConfig`
//!   `vpcId`, `subnetIds`, `securityGroupIds`, `clusterSecurityGroupId`.

use psg_domain::{CloudProvider, Resource, ResourceType};
use serde_json::Value;

use super::fields::{At, Refusal, Result, is_private, push_unique, single, tags_into, time_at};
use crate::parsed::{MessageCtx, Parsed};

static NULL: Value = Value::Null;

/// Parses one AWS Config object (item `line` of its message).
pub fn parse(item: Value, line: u32, ctx: MessageCtx<'_>) -> Parsed<Resource> {
    let mut out = Parsed::default();
    let root = At::root(&item, "");
    // An EventBridge event carries the notification in `detail`.
    let body = match (root.get(&["source"]).map(|s| s.value.as_str()), root.get(&["detail"])) {
        (Some(Some("aws.config")), Some(detail)) => At::root(detail.value, ""),
        _ => root,
    };
    if let Some(items) = body.get(&["configurationItems"]) {
        match items.elements() {
            Ok(items) => {
                for (i, ci) in items.iter().enumerate() {
                    out.push(
                        resource(ci.value, line, ctx)
                            .map_err(|r| r.within(&format!("configurationItems[{i}]")).rejected(line, ci.value)),
                    );
                }
            }
            Err(e) => out.rejected.push(e.rejected(line, &item)),
        }
    } else if let Some(ci) = body.get(&["configurationItem"]) {
        out.push(resource(ci.value, line, ctx).map_err(|r| r.rejected(line, ci.value)));
    } else if body.get(&["configurationItemCaptureTime"]).is_some() {
        out.push(resource(body.value, line, ctx).map_err(|r| r.rejected(line, body.value)));
    } else {
        out.rejected.push(notice(&body).rejected(line, &item));
    }
    out
}

/// The refusal of a Config message that carries no configuration item.
fn notice(body: &At<'_>) -> Refusal {
    let text = |chain: &[&[&str]]| body.dig(chain).and_then(|v| v.value.as_str().map(str::to_owned));
    match text(&[&["messageType"]]) {
        Some(t) if t == "OversizedConfigurationItemChangeNotification" => {
            let location = text(&[&["s3DeliverySummary"], &["s3BucketLocation"]]).unwrap_or_else(|| "(unknown)".into());
            let what = [
                text(&[&["configurationItemSummary"], &["resourceType"]]),
                text(&[&["configurationItemSummary"], &["resourceId"]]),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            Refusal::unsupported(format!(
                "oversized: the item{} is in S3 at {location}; publish the item itself",
                if what.is_empty() { String::new() } else { format!(" ({what})") }
            ))
        }
        Some(t) if t.ends_with("DeliveryCompleted") || t.ends_with("DeliveryStarted") => {
            let bucket = text(&[&["s3Bucket"]]).unwrap_or_default();
            let key = text(&[&["s3ObjectKey"]]).unwrap_or_default();
            Refusal::unsupported(format!(
                "{t} is a delivery notice (the file is in S3 at {bucket}/{key}); publish the file itself"
            ))
        }
        Some(t) => Refusal::unsupported(format!("AWS Config message type {t} carries no configuration item")),
        None => Refusal::parse(
            "not an AWS Config object: configurationItem, configurationItems or configurationItemCaptureTime expected",
        ),
    }
}

/// Which mapping a resource type gets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reader {
    Instance,
    Interface(EniRole),
    Database,
    LoadBalancer,
    Function,
    Task,
    Cluster,
    SecurityGroup,
    PrefixList,
    NetworkAcl,
    FlowLog,
}

/// What an ENI is for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EniRole {
    resource_type: ResourceType,
    /// The managed resource (NAT gateway id, load balancer, function).
    managed: Option<String>,
    /// Whether the record claims the ENI's addresses and id.
    claims: bool,
}

/// One configuration item → its resource.
fn resource(ci: &Value, line: u32, ctx: MessageCtx<'_>) -> Result<Resource> {
    if !ci.is_object() {
        return Err(Refusal::parse(format!("a configuration item must be a JSON object, found {ci}")));
    }
    let item = At::root(ci, "");
    let resource_type = item.req_str(&["resourceType"])?;
    let resource_id = item.req_str(&["resourceId"])?;
    let status = item.opt_str(&["configurationItemStatus"])?;
    if status == Some("ResourceNotRecorded") {
        return Err(Refusal::unsupported(format!(
            "{resource_type} {resource_id}: configurationItemStatus ResourceNotRecorded: AWS Config recorded no configuration"
        )));
    }
    let deleted = matches!(status, Some("ResourceDeleted" | "ResourceDeletedNotRecorded"));
    let observed_at = time_at(
        &item
            .get(&["configurationItemCaptureTime"])
            .ok_or_else(|| Refusal::parse("configurationItemCaptureTime: missing"))?,
    )?;
    let configuration = configuration(&item)?;
    if configuration.is_none() && !deleted {
        return Err(Refusal::parse("configuration: missing (only a deleted resource may have none)"));
    }
    let cfg = At::root(configuration.as_ref().unwrap_or(&NULL), "configuration");

    let reader = match resource_type {
        "AWS::EC2::Instance" => Reader::Instance,
        "AWS::EC2::NetworkInterface" => Reader::Interface(eni_role(&cfg)?),
        "AWS::RDS::DBInstance" => Reader::Database,
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => Reader::LoadBalancer,
        "AWS::Lambda::Function" => Reader::Function,
        "AWS::ECS::Task" => Reader::Task,
        "AWS::EKS::Cluster" => Reader::Cluster,
        "AWS::EC2::SecurityGroup" => Reader::SecurityGroup,
        "AWS::EC2::PrefixList" => Reader::PrefixList,
        "AWS::EC2::NetworkAcl" => Reader::NetworkAcl,
        "AWS::EC2::FlowLog" => Reader::FlowLog,
        other => {
            return Err(Refusal::unsupported(format!(
                "unsupported AWS Config resource type {other} ({resource_id}): this version maps EC2 instances and \
                 network interfaces, RDS DB instances, ELBv2 load balancers, Lambda functions, ECS tasks, EKS \
                 clusters, security groups, managed prefix lists, network ACLs and flow logs"
            )));
        }
    };
    let ty = match &reader {
        Reader::Instance => ResourceType::Ec2Instance,
        Reader::Interface(role) => role.resource_type,
        Reader::Database => ResourceType::RdsInstance,
        Reader::LoadBalancer => ResourceType::Elb,
        Reader::Function => ResourceType::LambdaFunction,
        Reader::Task => ResourceType::EcsTask,
        Reader::Cluster => ResourceType::EksCluster,
        Reader::SecurityGroup => ResourceType::SecurityGroup,
        Reader::PrefixList => ResourceType::PrefixList,
        Reader::NetworkAcl => ResourceType::NetworkAcl,
        Reader::FlowLog => ResourceType::FlowLog,
    };

    let mut r = Resource::new(resource_id, CloudProvider::Aws, ty, observed_at, ctx.source(line));
    r.deleted = deleted;
    r.resource_arn = item.opt_string(&["arn", "ARN"])?;
    r.resource_name = item.opt_string(&["resourceName"])?;
    r.account_id = account_id(&item)?;
    r.region = item.opt_string(&["awsRegion"])?;
    r.availability_zone = zone(item.opt_str(&["availabilityZone"])?);
    if let Some(tags) = item.get(&["tags"]) {
        tags_into(&tags, &mut r.tags)?;
    }
    if let Some(tags) = cfg.get(&["tags", "tagSet", "tagList"]) {
        tags_into(&tags, &mut r.tags)?;
    }
    match reader {
        Reader::Instance => ec2_instance(&mut r, &cfg)?,
        Reader::Interface(role) => network_interface(&mut r, &cfg, role)?,
        Reader::Database => rds_instance(&mut r, &cfg)?,
        Reader::LoadBalancer => load_balancer(&mut r, &cfg)?,
        Reader::Function => lambda_function(&mut r, &cfg)?,
        Reader::Task => ecs_task(&mut r, &cfg)?,
        Reader::Cluster => eks_cluster(&mut r, &cfg)?,
        Reader::SecurityGroup if !deleted => security_group(&mut r, &cfg)?,
        Reader::PrefixList if !deleted => prefix_list(&mut r, &cfg)?,
        Reader::NetworkAcl if !deleted => network_acl(&mut r, &cfg)?,
        Reader::FlowLog if !deleted => flow_log(&mut r, &cfg)?,
        Reader::SecurityGroup | Reader::PrefixList | Reader::NetworkAcl | Reader::FlowLog => {}
    }
    r.metadata_json = configuration.map(|c| c.to_string());
    Ok(r)
}

/// The item's configuration: an object, or a JSON string holding one.
fn configuration(item: &At<'_>) -> Result<Option<Value>> {
    let Some(cfg) = item.get(&["configuration"]) else { return Ok(None) };
    match cfg.value {
        Value::Object(_) => Ok(Some(cfg.value.clone())),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(Value::Null) => Ok(None),
            Ok(other) => Err(Refusal::parse(format!("configuration: expected an object, found {other}"))),
            Err(e) => Err(Refusal::parse(format!("configuration: a string that is not valid JSON: {e}"))),
        },
        other => Err(Refusal::parse(format!("configuration: expected an object, found {other}"))),
    }
}

/// `awsAccountId` as a string; a number (leading zeros lost) is padded to 12 digits.
fn account_id(item: &At<'_>) -> Result<Option<String>> {
    match item.get(&["awsAccountId"]) {
        Some(At { value: Value::Number(n), .. }) => match n.as_u64() {
            Some(n) => Ok(Some(format!("{n:012}"))),
            None => Err(Refusal::parse(format!("awsAccountId: '{n}' is not an account id"))),
        },
        _ => item.opt_string(&["awsAccountId"]),
    }
}

/// An availability zone; Config's placeholders (`Not Applicable`,
/// `Multiple Availability Zones`, `Regional`) are none.
fn zone(az: Option<&str>) -> Option<String> {
    az.filter(|z| !z.contains(' ') && !z.eq_ignore_ascii_case("regional")).map(str::to_owned)
}

fn ec2_instance(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    r.vpc_id = cfg.opt_string(&["vpcId"])?;
    r.subnet_id = cfg.opt_string(&["subnetId"])?;
    if r.availability_zone.is_none() {
        r.availability_zone = zone(cfg.dig(&[&["placement"], &["availabilityZone"]]).and_then(|z| z.value.as_str()));
    }
    cfg.ip_into(&["privateIpAddress"], &mut r.private_ips)?;
    cfg.ip_into(&["ipv6Address"], &mut r.private_ips)?;
    cfg.ip_into(&["publicIpAddress"], &mut r.public_ips)?;
    for sg in cfg.items(&["securityGroups"])? {
        if let Some(id) = sg.opt_str(&["groupId"])? {
            push_unique(&mut r.security_groups, id);
        }
    }
    for ni in cfg.items(&["networkInterfaces"])? {
        if let Some(id) = ni.opt_str(&["networkInterfaceId"])? {
            push_unique(&mut r.interface_ids, id);
        }
        interface_addresses(r, &ni)?;
    }
    if let Some(name) = r.tags.get("Name").filter(|n| !n.is_empty()) {
        r.resource_name = Some(name.clone());
    }
    Ok(())
}

/// The addresses and security groups of one interface (an ENI's
/// configuration, or an instance's `networkInterfaces[i]`).
fn interface_addresses(r: &mut Resource, ni: &At<'_>) -> Result<()> {
    ni.ip_into(&["privateIpAddress"], &mut r.private_ips)?;
    for pa in ni.items(&["privateIpAddresses"])? {
        pa.ip_into(&["privateIpAddress"], &mut r.private_ips)?;
        if let Some(assoc) = pa.get(&["association"]) {
            assoc.ip_into(&["publicIp"], &mut r.public_ips)?;
        }
    }
    if let Some(assoc) = ni.get(&["association"]) {
        assoc.ip_into(&["publicIp"], &mut r.public_ips)?;
    }
    for v6 in ni.items(&["ipv6Addresses"])? {
        v6.ip_into(&["ipv6Address"], &mut r.private_ips)?;
    }
    for g in ni.items(&["groups"])? {
        if let Some(id) = g.opt_str(&["groupId"])? {
            push_unique(&mut r.security_groups, id);
        }
    }
    Ok(())
}

impl EniRole {
    fn plain(claims: bool) -> Self {
        Self { resource_type: ResourceType::NetworkInterface, managed: None, claims }
    }

    fn managed(resource_type: ResourceType, managed: Option<String>) -> Self {
        Self { resource_type, managed, claims: true }
    }
}

/// What an ENI is for, from its configuration (null for a deleted one: a
/// plain interface).
fn eni_role(cfg: &At<'_>) -> Result<EniRole> {
    let kind = cfg.opt_str(&["interfaceType"])?.unwrap_or("");
    let description = cfg.opt_str(&["description"])?.unwrap_or("");
    if kind == "nat_gateway" || description.starts_with("Interface for NAT Gateway") {
        let nat = description.split_whitespace().find(|w| w.starts_with("nat-")).map(str::to_owned);
        return Ok(EniRole::managed(ResourceType::NatGateway, nat));
    }
    if matches!(kind, "network_load_balancer" | "gateway_load_balancer") || description.starts_with("ELB ") {
        let name = description.strip_prefix("ELB ").map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        return Ok(EniRole::managed(ResourceType::Elb, name));
    }
    if kind == "lambda" || description.starts_with("AWS Lambda VPC ENI") {
        return Ok(EniRole::managed(ResourceType::LambdaFunction, lambda_name(description)));
    }
    if let Some(cluster) = description.strip_prefix("Amazon EKS ") {
        return Ok(EniRole::managed(
            ResourceType::EksCluster,
            Some(cluster.trim().to_owned()).filter(|c| !c.is_empty()),
        ));
    }
    if description.starts_with("arn:aws") && description.contains(":ecs:") && description.contains(":attachment/") {
        return Ok(EniRole::managed(ResourceType::EcsTask, None));
    }
    let attached =
        cfg.dig(&[&["attachment"], &["instanceId"]]).and_then(|i| i.value.as_str()).is_some_and(|i| !i.is_empty());
    Ok(EniRole::plain(!attached))
}

/// The function in a Lambda ENI description (`AWS Lambda VPC ENI-<function>-<uuid>`).
fn lambda_name(description: &str) -> Option<String> {
    let rest = description.strip_prefix("AWS Lambda VPC ENI")?.trim_start_matches(['-', ':', ' ']);
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.char_indices()
                .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
    };
    let name = match rest.len().checked_sub(37).and_then(|cut| rest.get(cut..).map(|tail| (cut, tail))) {
        Some((cut, tail)) if tail.starts_with('-') && is_uuid(&tail[1..]) => &rest[..cut],
        _ if is_uuid(rest) => "",
        _ => rest,
    };
    Some(name.to_owned()).filter(|n| !n.is_empty())
}

fn network_interface(r: &mut Resource, cfg: &At<'_>, role: EniRole) -> Result<()> {
    r.vpc_id = cfg.opt_string(&["vpcId"])?;
    r.subnet_id = cfg.opt_string(&["subnetId"])?;
    if r.availability_zone.is_none() {
        r.availability_zone = zone(cfg.opt_str(&["availabilityZone"])?);
    }
    // Read (and check) the addresses even when the record does not claim them.
    interface_addresses(r, cfg)?;
    let eni = cfg.opt_str(&["networkInterfaceId"])?.unwrap_or(&r.resource_id).to_owned();
    if role.claims {
        push_unique(&mut r.interface_ids, &eni);
    } else {
        r.private_ips.clear();
        r.public_ips.clear();
    }
    r.resource_name =
        role.managed.or_else(|| r.tags.get("Name").filter(|n| !n.is_empty()).cloned()).or(r.resource_name.take());
    Ok(())
}

fn rds_instance(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    if r.resource_name.is_none() {
        r.resource_name = cfg.opt_string(&["dBInstanceIdentifier", "dbInstanceIdentifier", "DBInstanceIdentifier"])?;
    }
    if r.availability_zone.is_none() {
        r.availability_zone = zone(cfg.opt_str(&["availabilityZone"])?);
    }
    let subnet_group = &["dBSubnetGroup", "dbSubnetGroup", "DBSubnetGroup"][..];
    if let Some(group) = cfg.get(subnet_group) {
        r.vpc_id = group.opt_string(&["vpcId"])?;
        let mut subnets = Vec::new();
        for s in group.items(&["subnets"])? {
            if let Some(id) = s.opt_str(&["subnetIdentifier"])? {
                push_unique(&mut subnets, id);
            }
        }
        r.subnet_id = single(&subnets);
    }
    for sg in cfg.items(&["vpcSecurityGroups"])? {
        if let Some(id) = sg.opt_str(&["vpcSecurityGroupId"])? {
            push_unique(&mut r.security_groups, id);
        }
    }
    Ok(())
}

fn load_balancer(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    if r.resource_name.is_none() {
        r.resource_name = cfg.opt_string(&["loadBalancerName"])?;
    }
    r.vpc_id = cfg.opt_string(&["vpcId"])?;
    for sg in cfg.strs(&["securityGroups"])? {
        push_unique(&mut r.security_groups, sg);
    }
    let mut subnets = Vec::new();
    for az in cfg.items(&["availabilityZones"])? {
        if let Some(id) = az.opt_str(&["subnetId"])? {
            push_unique(&mut subnets, id);
        }
        for addr in az.items(&["loadBalancerAddresses"])? {
            let mut ip = Vec::new();
            addr.ip_into(&["ipAddress"], &mut ip)?;
            for a in ip {
                push_unique(if is_private(&a) { &mut r.private_ips } else { &mut r.public_ips }, &a);
            }
            addr.ip_into(&["privateIPv4Address", "privateIpv4Address"], &mut r.private_ips)?;
            addr.ip_into(&["iPv6Address", "ipv6Address", "IPv6Address"], &mut r.private_ips)?;
        }
    }
    r.subnet_id = single(&subnets);
    Ok(())
}

fn lambda_function(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    if let Some(name) = cfg.opt_string(&["functionName"])? {
        r.resource_name = Some(name);
    }
    if let Some(vpc) = cfg.get(&["vpcConfig"]) {
        r.vpc_id = vpc.opt_string(&["vpcId"])?;
        r.subnet_id = single_subnet(vpc.strs(&["subnetIds"])?);
        for sg in vpc.strs(&["securityGroupIds"])? {
            push_unique(&mut r.security_groups, sg);
        }
    }
    Ok(())
}

fn ecs_task(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    let mut subnets = Vec::new();
    for attachment in cfg.items(&["attachments", "Attachments"])? {
        for detail in attachment.items(&["details", "Details"])? {
            let Some(name) = detail.opt_str(&["name", "Name"])? else { continue };
            let value = detail.get(&["value", "Value"]);
            match (name, value) {
                ("networkInterfaceId", Some(v)) => push_unique(&mut r.interface_ids, v.as_str()?.trim()),
                ("privateIPv4Address" | "privateIPv6Address", Some(v)) => v.ip_value_into(&mut r.private_ips)?,
                ("subnetId", Some(v)) => push_unique(&mut subnets, v.as_str()?.trim()),
                _ => {}
            }
        }
    }
    r.subnet_id = single(&subnets);
    Ok(())
}

fn eks_cluster(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    if let Some(name) = cfg.opt_string(&["name"])? {
        r.resource_name = Some(name);
    }
    if let Some(vpc) = cfg.get(&["resourcesVpcConfig"]) {
        r.vpc_id = vpc.opt_string(&["vpcId"])?;
        r.subnet_id = single_subnet(vpc.strs(&["subnetIds"])?);
        for sg in vpc.strs(&["securityGroupIds"])? {
            push_unique(&mut r.security_groups, sg);
        }
        if let Some(sg) = vpc.opt_str(&["clusterSecurityGroupId"])? {
            push_unique(&mut r.security_groups, sg);
        }
    }
    Ok(())
}

/// A security group: its rules are read (and refused with the rule that
/// cannot be) here, and kept in the metadata for classify.
fn security_group(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    let g = psg_reach::aws_security_group(&r.resource_id, cfg.value)
        .map_err(|e| Refusal::parse(format!("configuration.{e}")))?;
    r.vpc_id = g.vpc_id;
    if let Some(name) = g.name {
        r.resource_name = Some(name);
    }
    Ok(())
}

/// A managed prefix list: its CIDRs are checked here.
fn prefix_list(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    psg_reach::aws_prefix_list(cfg.value).map_err(|e| Refusal::parse(format!("configuration.{e}")))?;
    if let Some(name) = cfg.opt_string(&["PrefixListName", "prefixListName"])? {
        r.resource_name = Some(name);
    }
    Ok(())
}

/// A network ACL: its entries are checked here.
fn network_acl(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    psg_reach::nacl::aws_network_acl(&r.resource_id, cfg.value)
        .map_err(|e| Refusal::parse(format!("configuration.{e}")))?;
    r.vpc_id = cfg.opt_string(&["vpcId", "VpcId"])?;
    Ok(())
}

/// A flow-log configuration: what it logs (`trafficType`) of which VPC,
/// subnet or interface (`resourceId`), checked here.
fn flow_log(r: &mut Resource, cfg: &At<'_>) -> Result<()> {
    let target = cfg.req_str(&["resourceId", "ResourceId"])?;
    let traffic = cfg.req_str(&["trafficType", "TrafficType"])?;
    if !matches!(traffic, "ACCEPT" | "REJECT" | "ALL") {
        return Err(Refusal::parse(format!("configuration.trafficType: '{traffic}' is not ACCEPT, REJECT or ALL")));
    }
    if target.starts_with("vpc-") {
        r.vpc_id = Some(target.to_owned());
    } else if target.starts_with("subnet-") {
        r.subnet_id = Some(target.to_owned());
    }
    Ok(())
}

/// The subnet of a resource listed in exactly one.
fn single_subnet(ids: Vec<&str>) -> Option<String> {
    let mut subnets = Vec::new();
    for id in ids {
        push_unique(&mut subnets, id);
    }
    single(&subnets)
}

#[cfg(test)]
mod tests {
    use psg_domain::time;

    use super::*;

    fn ctx() -> MessageCtx<'static> {
        MessageCtx { topic: "inventory.raw", partition: 2, offset: 41, time: None }
    }

    fn run(json: &str) -> Parsed<Resource> {
        parse(serde_json::from_str(json).unwrap(), 3, ctx())
    }

    fn one(json: &str) -> Resource {
        let p = run(json);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), 1);
        p.records.into_iter().next().unwrap()
    }

    fn at(t: &str) -> i64 {
        time::to_micros(t.parse().unwrap())
    }

    /// A bare item of `resource_type` with `configuration` (JSON text).
    fn item(resource_type: &str, resource_id: &str, configuration: &str) -> String {
        format!(
            r#"{{"configurationItemVersion": "1.3", "configurationItemCaptureTime": "2026-02-01T00:00:00.000Z",
                "configurationStateId": 1, "awsAccountId": "123456789012", "configurationItemStatus": "OK",
                "resourceType": "{resource_type}", "resourceId": "{resource_id}", "resourceName": null,
                "ARN": "arn:aws:test:us-east-1:123456789012:{resource_id}", "awsRegion": "us-east-1",
                "availabilityZone": "Not Applicable", "tags": {{}}, "relationships": [],
                "configuration": {configuration}}}"#
        )
    }

    const EC2_NOTIFICATION: &str = r#"{
      "configurationItemDiff": {"changedProperties": {}, "changeType": "UPDATE"},
      "configurationItem": {
        "relatedEvents": [],
        "relationships": [
          {"resourceId": "eni-0a1b2c3d4e5f60001", "resourceType": "AWS::EC2::NetworkInterface", "name": "Contains NetworkInterface"},
          {"resourceId": "sg-0web", "resourceType": "AWS::EC2::SecurityGroup", "name": "Is associated with SecurityGroup"}
        ],
        "configuration": {
          "amiLaunchIndex": 0, "imageId": "ami-0abcdef1234567890", "instanceId": "i-0123456789abcdef0",
          "instanceType": "t3.medium", "launchTime": "2026-01-10T08:00:00.000Z",
          "placement": {"availabilityZone": "us-east-1a", "groupName": "", "tenancy": "default"},
          "privateDnsName": "ip-10-0-1-20.ec2.internal", "privateIpAddress": "10.0.1.20",
          "publicDnsName": "ec2-54-210-10-20.compute-1.amazonaws.com", "publicIpAddress": "54.210.10.20",
          "state": {"code": 16, "name": "running"},
          "subnetId": "subnet-0aaa1111bbbb2222c", "vpcId": "vpc-0fff1111eeee2222d",
          "securityGroups": [{"groupName": "web", "groupId": "sg-0web"}],
          "networkInterfaces": [
            {"networkInterfaceId": "eni-0a1b2c3d4e5f60001", "privateIpAddress": "10.0.1.20",
             "association": {"publicIp": "54.210.10.20", "ipOwnerId": "amazon"},
             "attachment": {"attachmentId": "eni-attach-01", "deviceIndex": 0, "status": "attached"},
             "groups": [{"groupName": "web", "groupId": "sg-0web"}],
             "macAddress": "0e:12:34:56:78:9a", "subnetId": "subnet-0aaa1111bbbb2222c",
             "privateIpAddresses": [
               {"primary": true, "privateIpAddress": "10.0.1.20", "association": {"publicIp": "54.210.10.20"}},
               {"primary": false, "privateIpAddress": "10.0.1.21"}
             ],
             "ipv6Addresses": [{"ipv6Address": "2600:1f18:0:0:0:0:0:5"}]},
            {"networkInterfaceId": "eni-0a1b2c3d4e5f60002", "privateIpAddress": "10.0.2.30",
             "attachment": {"attachmentId": "eni-attach-02", "deviceIndex": 1, "status": "attached"},
             "groups": [{"groupName": "mgmt", "groupId": "sg-0mgmt"}], "subnetId": "subnet-0bbb",
             "privateIpAddresses": [
               {"primary": true, "privateIpAddress": "10.0.2.30", "association": {"publicIp": "3.80.1.2"}}
             ],
             "ipv6Addresses": []}
          ],
          "tags": [{"key": "Name", "value": "web-1"}, {"key": "pci-scope", "value": "ignored: the item's map wins"}]
        },
        "supplementaryConfiguration": {},
        "tags": {"Name": "web-1", "pci-scope": "cde"},
        "configurationItemVersion": "1.3",
        "configurationItemCaptureTime": "2026-01-15T10:20:30.123Z",
        "configurationStateId": 1768472430123,
        "awsAccountId": "012345678901",
        "configurationItemStatus": "OK",
        "resourceType": "AWS::EC2::Instance",
        "resourceId": "i-0123456789abcdef0",
        "resourceName": null,
        "ARN": "arn:aws:ec2:us-east-1:012345678901:instance/i-0123456789abcdef0",
        "awsRegion": "us-east-1",
        "availabilityZone": "us-east-1a",
        "configurationStateMd5Hash": "",
        "resourceCreationTime": "2026-01-10T08:00:00.000Z"
      },
      "notificationCreationTime": "2026-01-15T10:21:00.456Z",
      "messageType": "ConfigurationItemChangeNotification",
      "recordVersion": "1.3"
    }"#;

    #[test]
    fn an_instance_change_notification_gives_every_address_interface_and_group() {
        let r = one(EC2_NOTIFICATION);
        assert_eq!(r.resource_id, "i-0123456789abcdef0");
        assert_eq!(r.provider, CloudProvider::Aws);
        assert_eq!(r.resource_type, ResourceType::Ec2Instance);
        assert_eq!(r.resource_name.as_deref(), Some("web-1"));
        assert_eq!(r.resource_arn.as_deref(), Some("arn:aws:ec2:us-east-1:012345678901:instance/i-0123456789abcdef0"));
        assert_eq!(r.account_id.as_deref(), Some("012345678901"), "leading zero kept");
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        assert_eq!(r.availability_zone.as_deref(), Some("us-east-1a"));
        assert_eq!(r.vpc_id.as_deref(), Some("vpc-0fff1111eeee2222d"));
        assert_eq!(r.subnet_id.as_deref(), Some("subnet-0aaa1111bbbb2222c"));
        assert_eq!(r.private_ips, vec!["10.0.1.20", "10.0.1.21", "2600:1f18::5", "10.0.2.30"]);
        assert_eq!(r.public_ips, vec!["54.210.10.20", "3.80.1.2"]);
        assert_eq!(r.interface_ids, vec!["eni-0a1b2c3d4e5f60001", "eni-0a1b2c3d4e5f60002"]);
        assert_eq!(r.security_groups, vec!["sg-0web", "sg-0mgmt"]);
        assert_eq!(r.tags.len(), 2);
        assert_eq!(r.tags["pci-scope"], "cde");
        assert_eq!(r.tags["Name"], "web-1");
        assert_eq!(r.observed_at, at("2026-01-15T10:20:30.123Z"));
        assert!(!r.deleted);
        assert_eq!(r.source, ctx().source(3));
        let meta: Value = serde_json::from_str(r.metadata_json.as_deref().unwrap()).unwrap();
        assert_eq!(meta["instanceType"], "t3.medium");
    }

    #[test]
    fn the_configuration_tag_list_is_read_when_the_item_has_no_tag_map() {
        let text = EC2_NOTIFICATION.replace(r#""tags": {"Name": "web-1", "pci-scope": "cde"},"#, "");
        let r = one(&text);
        assert_eq!(r.tags["pci-scope"], "ignored: the item's map wins");
        assert_eq!(r.resource_name.as_deref(), Some("web-1"));
    }

    #[test]
    fn an_eventbridge_event_carries_the_notification() {
        let event = format!(
            r#"{{"version": "0", "id": "e-1", "detail-type": "Config Configuration Item Change", "source": "aws.config",
                "account": "012345678901", "time": "2026-01-15T10:21:00Z", "region": "us-east-1", "resources": [],
                "detail": {EC2_NOTIFICATION}}}"#
        );
        assert_eq!(one(&event).resource_id, "i-0123456789abcdef0");
    }

    #[test]
    fn a_snapshot_refuses_only_its_unsupported_item() {
        let instance = item(
            "AWS::EC2::Instance",
            "i-0aaa",
            r#"{"instanceId": "i-0aaa", "privateIpAddress": "10.1.0.5", "vpcId": "vpc-1", "subnetId": "subnet-1",
                "securityGroups": [{"groupId": "sg-1", "groupName": "app"}],
                "networkInterfaces": [{"networkInterfaceId": "eni-0aaa", "privateIpAddress": "10.1.0.5",
                                       "privateIpAddresses": [{"privateIpAddress": "10.1.0.5"}]}]}"#,
        );
        let db = item(
            "AWS::RDS::DBInstance",
            "db-ABCDEFGHIJKLMNOP",
            r#"{"dBInstanceIdentifier": "payments", "dBSubnetGroup": {"vpcId": "vpc-1", "subnets": []},
                "vpcSecurityGroups": [{"vpcSecurityGroupId": "sg-db", "status": "active"}]}"#,
        );
        let bucket = item("AWS::S3::Bucket", "card-exports", r#"{"name": "card-exports"}"#);
        let snapshot = format!(
            r#"{{"fileVersion": "1.0", "configSnapshotId": "f1a2b3c4-0000-1111-2222-333344445555",
                "configurationItems": [{instance}, {db}, {bucket}]}}"#
        );
        let p = run(&snapshot);
        assert_eq!(
            p.records.iter().map(|r| r.resource_id.as_str()).collect::<Vec<_>>(),
            ["i-0aaa", "db-ABCDEFGHIJKLMNOP"]
        );
        assert_eq!(p.records[0].private_ips, vec!["10.1.0.5"]);
        assert!(p.records.iter().all(|r| r.source == ctx().source(3)));
        assert_eq!(p.rejected.len(), 1);
        let rej = &p.rejected[0];
        assert_eq!((rej.line, rej.kind), (3, "unsupported"));
        assert!(rej.reason.starts_with("configurationItems[2]: "), "{}", rej.reason);
        assert!(rej.reason.contains("AWS::S3::Bucket"), "{}", rej.reason);
        let raw: Value = serde_json::from_slice(&rej.raw).unwrap();
        assert_eq!(raw["resourceId"], "card-exports", "the raw text is the item's own");
    }

    fn eni(configuration: &str) -> Resource {
        one(&item("AWS::EC2::NetworkInterface", "eni-0123", configuration))
    }

    #[test]
    fn a_nat_gateway_interface_is_the_nat_gateway() {
        let r = eni(r#"{"networkInterfaceId": "eni-0123", "interfaceType": "nat_gateway", "requesterManaged": true,
                "description": "Interface for NAT Gateway nat-0a1b2c3d4e5f67890", "availabilityZone": "us-east-1b",
                "privateIpAddress": "10.0.0.50", "association": {"publicIp": "52.1.2.3", "ipOwnerId": "amazon"},
                "privateIpAddresses": [{"primary": true, "privateIpAddress": "10.0.0.50",
                                        "association": {"publicIp": "52.1.2.3"}}],
                "attachment": {"attachmentId": "ela-attach-1", "instanceOwnerId": "amazon-aws", "status": "attached"},
                "vpcId": "vpc-1", "subnetId": "subnet-pub", "groups": []}"#);
        assert_eq!(r.resource_type, ResourceType::NatGateway);
        assert_eq!(r.resource_id, "eni-0123");
        assert_eq!(r.resource_name.as_deref(), Some("nat-0a1b2c3d4e5f67890"));
        assert_eq!(r.private_ips, vec!["10.0.0.50"]);
        assert_eq!(r.public_ips, vec!["52.1.2.3"]);
        assert_eq!(r.interface_ids, vec!["eni-0123"]);
        assert_eq!(r.availability_zone.as_deref(), Some("us-east-1b"), "Config's 'Not Applicable' is dropped");
        assert_eq!((r.vpc_id.as_deref(), r.subnet_id.as_deref()), (Some("vpc-1"), Some("subnet-pub")));
    }

    #[test]
    fn a_load_balancer_interface_is_the_load_balancer() {
        let r = eni(r#"{"networkInterfaceId": "eni-0123", "interfaceType": "interface", "requesterManaged": true,
                "description": "ELB app/payments-alb/50dc6c495c0c9188", "privateIpAddress": "10.0.3.7",
                "privateIpAddresses": [{"primary": true, "privateIpAddress": "10.0.3.7"}],
                "attachment": {"instanceOwnerId": "amazon-elb", "status": "attached"},
                "groups": [{"groupId": "sg-alb", "groupName": "alb"}], "vpcId": "vpc-1", "subnetId": "subnet-a"}"#);
        assert_eq!(r.resource_type, ResourceType::Elb);
        assert_eq!(r.resource_name.as_deref(), Some("app/payments-alb/50dc6c495c0c9188"));
        assert_eq!(r.private_ips, vec!["10.0.3.7"]);
        assert_eq!(r.security_groups, vec!["sg-alb"]);
        let nlb = eni(r#"{"networkInterfaceId": "eni-0123", "interfaceType": "network_load_balancer",
                          "description": "ELB net/ledger-nlb/7d6c5b4a3f2e1d0c", "privateIpAddress": "10.0.4.8"}"#);
        assert_eq!(nlb.resource_type, ResourceType::Elb);
        assert_eq!(nlb.resource_name.as_deref(), Some("net/ledger-nlb/7d6c5b4a3f2e1d0c"));
    }

    #[test]
    fn a_lambda_interface_is_the_function() {
        let r = eni(r#"{"networkInterfaceId": "eni-0123", "interfaceType": "lambda", "requesterManaged": true,
                "description": "AWS Lambda VPC ENI-charge-card-3a4b5c6d-1234-4abc-8def-0123456789ab",
                "privateIpAddress": "10.0.5.9", "vpcId": "vpc-1", "subnetId": "subnet-fn",
                "groups": [{"groupId": "sg-fn"}]}"#);
        assert_eq!(r.resource_type, ResourceType::LambdaFunction);
        assert_eq!(r.resource_name.as_deref(), Some("charge-card"));
        assert_eq!(r.private_ips, vec!["10.0.5.9"]);
        assert_eq!(r.interface_ids, vec!["eni-0123"]);
        assert_eq!(lambda_name("AWS Lambda VPC ENI-fn"), Some("fn".into()));
        let eks = eni(r#"{"networkInterfaceId": "eni-0123", "requesterManaged": true,
                          "description": "Amazon EKS payments", "privateIpAddress": "10.0.7.7"}"#);
        assert_eq!((eks.resource_type, eks.resource_name.as_deref()), (ResourceType::EksCluster, Some("payments")));
        let ecs = eni(r#"{"networkInterfaceId": "eni-0123", "requesterManaged": true, "privateIpAddress": "10.0.6.6",
                          "description": "arn:aws:ecs:us-east-1:123456789012:attachment/1b2c3d4e-0000-1111-2222-333344445555",
                          "attachment": {"instanceId": "i-0container", "status": "attached"}}"#);
        assert_eq!((ecs.resource_type, ecs.private_ips.len()), (ResourceType::EcsTask, 1));
        assert_eq!(lambda_name("AWS Lambda VPC ENI: 3a4b5c6d-1234-4abc-8def-0123456789ab"), None);
    }

    #[test]
    fn an_interface_attached_to_an_instance_leaves_the_addresses_to_the_instance() {
        let r = eni(r#"{"networkInterfaceId": "eni-0123", "interfaceType": "interface", "requesterManaged": false,
                "privateIpAddress": "10.0.1.20", "association": {"publicIp": "54.210.10.20"},
                "attachment": {"instanceId": "i-0123456789abcdef0", "deviceIndex": 0, "status": "attached"},
                "vpcId": "vpc-1", "subnetId": "subnet-1", "groups": [{"groupId": "sg-0web"}]}"#);
        assert_eq!(r.resource_type, ResourceType::NetworkInterface);
        assert!(r.private_ips.is_empty() && r.public_ips.is_empty() && r.interface_ids.is_empty());
        assert_eq!(r.security_groups, vec!["sg-0web"]);
        assert!(r.metadata_json.unwrap().contains("i-0123456789abcdef0"));
        // Detached: it claims its own.
        let free = eni(r#"{"networkInterfaceId": "eni-0123", "privateIpAddress": "10.0.1.20", "status": "available"}"#);
        assert_eq!(free.resource_type, ResourceType::NetworkInterface);
        assert_eq!(free.private_ips, vec!["10.0.1.20"]);
        assert_eq!(free.interface_ids, vec!["eni-0123"]);
    }

    #[test]
    fn an_rds_instance_keeps_its_endpoint_name_out_of_the_addresses() {
        let r = one(&item(
            "AWS::RDS::DBInstance",
            "db-ABCDEFGHIJKLMNOP",
            r#"{"dBInstanceIdentifier": "payments-db", "dbiResourceId": "db-ABCDEFGHIJKLMNOP",
                "dBInstanceClass": "db.r6g.large", "engine": "postgres", "availabilityZone": "us-east-1c",
                "endpoint": {"address": "payments-db.c9akciq32.us-east-1.rds.amazonaws.com", "port": 5432},
                "dBSubnetGroup": {"dBSubnetGroupName": "db", "vpcId": "vpc-1",
                                  "subnets": [{"subnetIdentifier": "subnet-db-a"}, {"subnetIdentifier": "subnet-db-b"}]},
                "vpcSecurityGroups": [{"vpcSecurityGroupId": "sg-db", "status": "active"}]}"#,
        ));
        assert_eq!(r.resource_type, ResourceType::RdsInstance);
        assert_eq!(r.resource_id, "db-ABCDEFGHIJKLMNOP");
        assert_eq!(r.resource_name.as_deref(), Some("payments-db"));
        assert_eq!(r.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(r.subnet_id, None, "two subnets: none chosen");
        assert_eq!(r.security_groups, vec!["sg-db"]);
        assert_eq!(r.availability_zone.as_deref(), Some("us-east-1c"));
        assert!(r.private_ips.is_empty() && r.public_ips.is_empty());
        assert!(r.metadata_json.unwrap().contains("payments-db.c9akciq32.us-east-1.rds.amazonaws.com"));
    }

    #[test]
    fn a_load_balancer_gives_its_addresses_by_range() {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/ledger-nlb/7d6c5b4a3f2e1d0c";
        let r = one(&item(
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            arn,
            r#"{"loadBalancerName": "ledger-nlb", "type": "network", "scheme": "internet-facing", "vpcId": "vpc-1",
                "dNSName": "ledger-nlb-7d6c5b4a.elb.us-east-1.amazonaws.com", "securityGroups": ["sg-nlb"],
                "availabilityZones": [
                  {"zoneName": "us-east-1a", "subnetId": "subnet-a",
                   "loadBalancerAddresses": [{"ipAddress": "34.200.1.1", "allocationId": "eipalloc-1",
                                              "privateIPv4Address": "10.0.0.11"}]},
                  {"zoneName": "us-east-1b", "subnetId": "subnet-b",
                   "loadBalancerAddresses": [{"ipAddress": "10.0.16.12"}]}]}"#,
        ));
        assert_eq!(r.resource_type, ResourceType::Elb);
        assert_eq!(r.resource_id, arn);
        assert_eq!(r.resource_name.as_deref(), Some("ledger-nlb"));
        assert_eq!(r.public_ips, vec!["34.200.1.1"]);
        assert_eq!(r.private_ips, vec!["10.0.0.11", "10.0.16.12"]);
        assert_eq!(r.security_groups, vec!["sg-nlb"]);
        assert_eq!(r.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(r.availability_zone, None);
    }

    #[test]
    fn a_lambda_function_gives_its_vpc_configuration() {
        let r = one(&item(
            "AWS::Lambda::Function",
            "charge-card",
            r#"{"functionName": "charge-card", "runtime": "python3.12",
                "vpcConfig": {"subnetIds": ["subnet-fn"], "securityGroupIds": ["sg-fn", "sg-egress"]}}"#,
        ));
        assert_eq!(r.resource_type, ResourceType::LambdaFunction);
        assert_eq!(r.resource_name.as_deref(), Some("charge-card"));
        assert_eq!(r.subnet_id.as_deref(), Some("subnet-fn"));
        assert_eq!(r.security_groups, vec!["sg-fn", "sg-egress"]);
        assert!(r.private_ips.is_empty());
    }

    #[test]
    fn an_eks_cluster_gives_its_vpc_configuration() {
        let r = one(&item(
            "AWS::EKS::Cluster",
            "payments",
            r#"{"name": "payments", "version": "1.31",
                "resourcesVpcConfig": {"vpcId": "vpc-1", "subnetIds": ["subnet-a", "subnet-b"],
                                       "securityGroupIds": ["sg-ctl"], "clusterSecurityGroupId": "sg-cluster",
                                       "endpointPublicAccess": false}}"#,
        ));
        assert_eq!(r.resource_type, ResourceType::EksCluster);
        assert_eq!(r.resource_name.as_deref(), Some("payments"));
        assert_eq!(r.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(r.subnet_id, None);
        assert_eq!(r.security_groups, vec!["sg-ctl", "sg-cluster"]);
    }

    #[test]
    fn an_ecs_task_gives_its_attachment() {
        let r = one(&item(
            "AWS::ECS::Task",
            "arn:aws:ecs:us-east-1:123456789012:task/pay/0abc",
            r#"{"attachments": [{"type": "ElasticNetworkInterface", "status": "ATTACHED", "details": [
                  {"name": "subnetId", "value": "subnet-t"}, {"name": "networkInterfaceId", "value": "eni-task"},
                  {"name": "macAddress", "value": "0a:1b:2c:3d:4e:5f"}, {"name": "privateIPv4Address", "value": "10.0.6.6"}]}]}"#,
        ));
        assert_eq!(r.resource_type, ResourceType::EcsTask);
        assert_eq!(r.interface_ids, vec!["eni-task"]);
        assert_eq!(r.private_ips, vec!["10.0.6.6"]);
        assert_eq!(r.subnet_id.as_deref(), Some("subnet-t"));
    }

    #[test]
    fn a_deleted_item_ends_the_resource() {
        let text = item("AWS::EC2::NetworkInterface", "eni-0123", "null")
            .replace(r#""configurationItemStatus": "OK""#, r#""configurationItemStatus": "ResourceDeleted""#);
        let r = one(&text);
        assert!(r.deleted);
        assert_eq!(r.resource_id, "eni-0123");
        assert_eq!(r.metadata_json, None);
        let not_recorded = text.replace("ResourceDeleted", "ResourceDeletedNotRecorded");
        assert!(one(&not_recorded).deleted);
        // Not deleted: a configuration is required.
        let p = run(&item("AWS::EC2::NetworkInterface", "eni-0123", "null"));
        assert!(p.rejected[0].reason.starts_with("configuration: missing"), "{:?}", p.rejected);
    }

    #[test]
    fn a_configuration_as_a_json_string_is_read() {
        let cfg = serde_json::to_string(r#"{"instanceId": "i-9", "privateIpAddress": "10.9.9.9", "vpcId": "vpc-9"}"#)
            .unwrap();
        let r = one(&item("AWS::EC2::Instance", "i-9", &cfg));
        assert_eq!(r.private_ips, vec!["10.9.9.9"]);
        assert_eq!(r.vpc_id.as_deref(), Some("vpc-9"));
        assert_eq!(
            r.metadata_json.as_deref(),
            Some(r#"{"instanceId":"i-9","privateIpAddress":"10.9.9.9","vpcId":"vpc-9"}"#)
        );
        let p = run(&item("AWS::EC2::Instance", "i-9", r#""{not json""#));
        assert!(p.rejected[0].reason.contains("configuration: a string that is not valid JSON"), "{:?}", p.rejected);
    }

    #[test]
    fn account_ids_keep_their_leading_zeros() {
        let text = item("AWS::Lambda::Function", "f", r#"{"functionName": "f"}"#);
        let zero = text.replace(r#""awsAccountId": "123456789012""#, r#""awsAccountId": "000123456789""#);
        assert_eq!(one(&zero).account_id.as_deref(), Some("000123456789"));
        let number = text.replace(r#""awsAccountId": "123456789012""#, r#""awsAccountId": 123456789"#);
        assert_eq!(one(&number).account_id.as_deref(), Some("000123456789"));
    }

    #[test]
    fn a_bad_address_is_refused_naming_its_field() {
        let text =
            EC2_NOTIFICATION.replace(r#""privateIpAddress": "10.0.1.21""#, r#""privateIpAddress": "10.0.1.256""#);
        let p = run(&text);
        assert!(p.records.is_empty());
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].kind, "parse");
        assert_eq!(
            p.rejected[0].reason,
            "configuration.networkInterfaces[0].privateIpAddresses[1].privateIpAddress: '10.0.1.256' is not an IP address"
        );
        let raw: Value = serde_json::from_slice(&p.rejected[0].raw).unwrap();
        assert_eq!(raw["resourceId"], "i-0123456789abcdef0");
    }

    #[test]
    fn notices_without_an_item_are_refused_with_the_reason() {
        let oversized = r#"{"configurationItemSummary": {"changeType": "UPDATE", "configurationItemVersion": "1.3",
            "configurationItemCaptureTime": "2026-01-15T10:20:30.123Z", "configurationStateId": 1,
            "awsAccountId": "123456789012", "configurationItemStatus": "OK", "resourceType": "AWS::EC2::Instance",
            "resourceId": "i-big", "awsRegion": "us-east-1"},
            "s3DeliverySummary": {"s3BucketLocation": "my-config-bucket/AWSLogs/123456789012/Config/us-east-1/2026/1/15/OversizedChangeNotification/i-big.json.gz",
                                  "errorCode": null, "errorMessage": null},
            "notificationCreationTime": "2026-01-15T10:21:00.456Z",
            "messageType": "OversizedConfigurationItemChangeNotification", "recordVersion": "1.0"}"#;
        let p = run(oversized);
        assert!(p.records.is_empty());
        assert_eq!(p.rejected[0].kind, "unsupported");
        assert_eq!(
            p.rejected[0].reason,
            "oversized: the item (AWS::EC2::Instance i-big) is in S3 at my-config-bucket/AWSLogs/123456789012/Config/\
             us-east-1/2026/1/15/OversizedChangeNotification/i-big.json.gz; publish the item itself"
        );
        let delivered = r#"{"configSnapshotId": "abc", "s3ObjectKey": "AWSLogs/1/Config/snap.json.gz",
            "s3Bucket": "cfg", "notificationCreationTime": "2026-01-15T10:21:00Z",
            "messageType": "ConfigurationSnapshotDeliveryCompleted", "recordVersion": "1.1"}"#;
        let p = run(delivered);
        assert!(p.rejected[0].reason.contains("publish the file itself"), "{:?}", p.rejected);
        let not_recorded = item("AWS::EC2::Instance", "i-1", "null").replace(r#""OK""#, r#""ResourceNotRecorded""#);
        assert_eq!(run(&not_recorded).rejected[0].kind, "unsupported");
    }

    /// Issue 17: security groups and prefix lists are read as network
    /// policy (rules checked, kept in the metadata); a rule that cannot be
    /// read refuses the item, naming it.
    #[test]
    fn security_groups_and_prefix_lists_are_policy() {
        let sg = r#"{"groupId": "sg-0cde", "groupName": "cde-db", "vpcId": "vpc-1", "description": "db",
            "ipPermissions": [{"fromPort": 5432, "toPort": 5432, "ipProtocol": "tcp",
                "userIdGroupPairs": [{"groupId": "sg-0app", "userId": "123456789012"}], "ipv4Ranges": [], "ipRanges": []}],
            "ipPermissionsEgress": [{"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"]}]}"#;
        let r = one(&item("AWS::EC2::SecurityGroup", "sg-0cde", sg));
        assert_eq!(r.resource_type, ResourceType::SecurityGroup);
        assert_eq!((r.vpc_id.as_deref(), r.resource_name.as_deref()), (Some("vpc-1"), Some("cde-db")));
        assert!(r.metadata_json.as_deref().is_some_and(|m| m.contains("sg-0app")));
        let pl = r#"{"PrefixListId": "pl-0corp", "PrefixListName": "corp", "Entries": [{"Cidr": "10.50.0.0/16"}]}"#;
        let r = one(&item("AWS::EC2::PrefixList", "pl-0corp", pl));
        assert_eq!((r.resource_type, r.resource_name.as_deref()), (ResourceType::PrefixList, Some("corp")));
        let bad = r#"{"groupId": "sg-x", "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 80, "toPort": 80,
            "ipv4Ranges": [{"cidrIp": "10.0.0/8"}]}]}"#;
        let p = run(&item("AWS::EC2::SecurityGroup", "sg-x", bad));
        assert_eq!(p.rejected.len(), 1);
        assert!(
            p.rejected[0].reason.contains("configuration.ipPermissions[0].ipv4Ranges: '10.0.0/8' is not a CIDR block"),
            "{}",
            p.rejected[0].reason
        );
    }

    #[test]
    fn network_acls_are_policy() {
        let acl = r#"{"associations": [{"networkAclAssociationId": "aclassoc-1", "networkAclId": "acl-0db", "subnetId": "subnet-db"}],
            "entries": [{"cidrBlock": "10.0.1.0/24", "egress": false, "portRange": {"from": 5432, "to": 5432},
                         "protocol": "6", "ruleAction": "deny", "ruleNumber": 100},
                        {"cidrBlock": "0.0.0.0/0", "egress": false, "protocol": "-1", "ruleAction": "deny", "ruleNumber": 32767}],
            "isDefault": false, "networkAclId": "acl-0db", "tags": [], "vpcId": "vpc-1", "ownerId": "123456789012"}"#;
        let r = one(&item("AWS::EC2::NetworkAcl", "acl-0db", acl));
        assert_eq!((r.resource_type, r.vpc_id.as_deref()), (ResourceType::NetworkAcl, Some("vpc-1")));
        assert!(r.resource_type.is_policy());
        let p = run(&item("AWS::EC2::NetworkAcl", "acl-0db", &acl.replace(r#""to": 5432"#, r#""to": 99999"#)));
        assert_eq!(p.rejected[0].kind, "parse");
        assert_eq!(p.rejected[0].reason, "configuration.entries[0].portRange: 5432-99999 is not a port range");
    }

    #[test]
    fn flow_logs_are_configuration() {
        // As EC2's DescribeFlowLogs and AWS Config describe a flow log.
        let fl = r#"{"creationTime": "2026-01-10T08:00:00.000Z", "deliverLogsStatus": "SUCCESS",
            "flowLogId": "fl-0a1b2c3d4e5f60718", "flowLogStatus": "ACTIVE", "resourceId": "vpc-1",
            "trafficType": "ALL", "logDestinationType": "s3", "logDestination": "arn:aws:s3:::acme-flow-logs",
            "logFormat": "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}",
            "maxAggregationInterval": 600, "tags": []}"#;
        let r = one(&item("AWS::EC2::FlowLog", "fl-0a1b2c3d4e5f60718", fl));
        assert_eq!((r.resource_type, r.vpc_id.as_deref()), (ResourceType::FlowLog, Some("vpc-1")));
        assert!(r.resource_type.is_policy(), "not a system");
        let p = run(&item("AWS::EC2::FlowLog", "fl-0a1b2c3d4e5f60718", &fl.replace(r#""ALL""#, r#""SOME""#)));
        assert_eq!(p.rejected[0].reason, "configuration.trafficType: 'SOME' is not ACCEPT, REJECT or ALL");
    }
}
