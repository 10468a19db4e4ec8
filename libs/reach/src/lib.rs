//! Reachability by configuration: the firewall rules of the inventory
//! (AWS security groups and managed prefix lists, as AWS Config records
//! them; GCP VPC firewall rules, see [`gcp`]), and whether they let one
//! system open a connection to another. Pure: JSON in, answers out; no
//! Kafka, no database.
//!
//! Security groups are stateful: a connection from `a` to `b` on a service
//! is allowed when one of `b`'s groups admits it inbound (a rule whose
//! protocol and port range cover the service and whose peer is a CIDR
//! holding `a`'s address, a group `a` is a member of, or a prefix list
//! holding `a`'s address) and one of `a`'s groups lets it out (the same
//! test outbound, with `b` as the peer). A system whose groups are unknown
//! (another cloud, or groups not in the inventory) is not restricted on its
//! side: scope errs towards inclusion.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

pub mod azure;
pub mod gcp;
pub mod nacl;
pub mod ordered;

pub use ordered::{Direction, Firewall, FirewallRule};

/// Where a rule's traffic may come from (inbound) or go to (outbound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Cidr(IpNet),
    /// The members of a security group.
    Group(String),
    /// The CIDRs of a managed prefix list.
    PrefixList(String),
    /// An Azure service tag: `VirtualNetwork` (the addresses of the
    /// network), `Internet` (public addresses), `AzureLoadBalancer` (its
    /// probe address); other tags name Azure services, not systems.
    ServiceTag(String),
}

/// The service tag of the network's own addresses.
pub const VIRTUAL_NETWORK: &str = "VirtualNetwork";

impl Peer {
    /// The address ranges the peer stands for, to find candidates by
    /// address (a group: none; `VirtualNetwork`: the private ranges).
    pub fn nets(&self, lookup: &impl Lookup) -> Vec<IpNet> {
        match self {
            Self::Cidr(n) => vec![*n],
            Self::Group(_) => Vec::new(),
            Self::PrefixList(p) => lookup.prefix_list(p).map(<[IpNet]>::to_vec).unwrap_or_default(),
            Self::ServiceTag(t) => match t.to_ascii_lowercase().as_str() {
                "virtualnetwork" => PRIVATE.iter().filter_map(|n| n.parse().ok()).collect(),
                "internet" => ["0.0.0.0/0", "::/0"].iter().filter_map(|n| n.parse().ok()).collect(),
                "azureloadbalancer" => vec![IpNet::from(IpAddr::from([168, 63, 129, 16]))],
                _ => Vec::new(),
            },
        }
    }
}

/// Private and shared address ranges (RFC 1918, RFC 6598, RFC 4193).
const PRIVATE: [&str; 5] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

fn is_private(a: &IpAddr) -> bool {
    PRIVATE.iter().filter_map(|n| n.parse::<IpNet>().ok()).any(|n| n.contains(a))
}

/// Whether `end` is what `peer` stands for, on its own (no prefix lists):
/// how a rule's targets select the members it applies to.
pub fn holds(peer: &Peer, end: End<'_>) -> bool {
    match peer {
        Peer::Cidr(n) => end.addresses.iter().any(|a| n.contains(a)),
        Peer::Group(g) => end.groups.iter().any(|x| x == g),
        Peer::PrefixList(_) => false,
        Peer::ServiceTag(t) => match t.to_ascii_lowercase().as_str() {
            "virtualnetwork" => end.addresses.iter().any(is_private) || end.groups.iter().any(|g| is_vnet(g)),
            "internet" => end.addresses.iter().any(|a| !is_private(a)),
            "azureloadbalancer" => end.addresses.contains(&IpAddr::from([168, 63, 129, 16])),
            _ => false,
        },
    }
}

/// An Azure virtual network id (a NIC's selector).
fn is_vnet(id: &str) -> bool {
    id.contains("/virtualnetworks/") && !id.contains("/subnets/")
}

/// One permission of a security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// IANA protocol number; `-1`: every protocol.
    pub protocol: i32,
    /// Port range (inclusive); every port when the protocol has none or
    /// the rule covers all traffic.
    pub from_port: i32,
    pub to_port: i32,
    pub peers: Vec<Peer>,
}

impl Rule {
    /// Whether the rule covers `protocol`/`port`.
    pub fn covers(&self, protocol: i32, port: i32) -> bool {
        if self.protocol == -1 {
            return true;
        }
        if self.protocol != protocol {
            return false;
        }
        // ICMP's "ports" are type and code: the service port is 0.
        !has_ports(protocol) || (self.from_port <= port && port <= self.to_port)
    }

    /// `TCP/5432`, `TCP/8000-8080`, `UDP/all ports`, `all traffic`.
    pub fn service(&self) -> String {
        if self.protocol == -1 {
            return "all traffic".to_owned();
        }
        let name = protocol_name(self.protocol);
        if !has_ports(self.protocol) || (self.from_port <= 0 && self.to_port >= 65_535) {
            return format!("{name}/all ports");
        }
        if self.from_port == self.to_port {
            format!("{name}/{}", self.from_port)
        } else {
            format!("{name}/{}-{}", self.from_port, self.to_port)
        }
    }
}

/// A security group: its id, VPC and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: Option<String>,
    pub vpc_id: Option<String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

/// A rule that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> RuleError {
    RuleError { field: field.into(), reason: reason.into() }
}

/// A field by any of its spellings (AWS Config writes camelCase for EC2
/// security groups and PascalCase for newer types).
fn get<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| v.get(*n)).filter(|v| !v.is_null())
}

fn text<'a>(v: &'a Value, names: &[&str]) -> Option<&'a str> {
    get(v, names).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn items<'a>(v: &'a Value, names: &[&str], field: &str) -> Result<&'a [Value], RuleError> {
    match get(v, names) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(bad(field, format!("expected an array, found {other}"))),
    }
}

/// The protocol of `ipProtocol`: `-1`/`all` (every protocol), a name
/// (`tcp`, `udp`, `icmp`, `icmpv6`) or a number.
fn protocol(v: &Value, field: &str) -> Result<i32, RuleError> {
    let p = match v {
        Value::String(s) => s.to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        other => return Err(bad(field, format!("expected a protocol, found {other}"))),
    };
    match p.as_str() {
        "-1" | "all" => Ok(-1),
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" | "58" => Ok(58),
        n => n
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=255).contains(n))
            .ok_or_else(|| bad(field, format!("'{p}' is not a protocol"))),
    }
}

fn port(v: Option<&Value>, field: &str, default: i32) -> Result<i32, RuleError> {
    match v {
        None => Ok(default),
        Some(Value::Number(n)) => {
            n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| bad(field, format!("'{n}' is not a port")))
        }
        Some(Value::String(s)) => s.parse().map_err(|_| bad(field, format!("'{s}' is not a port"))),
        Some(other) => Err(bad(field, format!("expected a port, found {other}"))),
    }
}

fn cidr(s: &str, field: &str) -> Result<IpNet, RuleError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| bad(field, format!("'{s}' is not a CIDR block")))
}

/// The permissions of `ipPermissions` / `ipPermissionsEgress`.
fn permissions(cfg: &Value, names: &[&str], field: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (i, p) in items(cfg, names, field)?.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let proto = protocol(
            get(p, &["ipProtocol", "IpProtocol"]).ok_or_else(|| bad(at("ipProtocol"), "missing"))?,
            &at("ipProtocol"),
        )?;
        let all_ports = proto == -1 || !has_ports(proto);
        let mut from = port(get(p, &["fromPort", "FromPort"]), &at("fromPort"), 0)?;
        let mut to = port(get(p, &["toPort", "ToPort"]), &at("toPort"), 65_535)?;
        if all_ports || (from == -1 && to == -1) {
            (from, to) = (0, 65_535);
        }
        if from > to || !(0..=65_535).contains(&from) || !(0..=65_535).contains(&to) {
            return Err(bad(at("fromPort"), format!("{from}-{to} is not a port range")));
        }
        let mut peers = Vec::new();
        for r in items(p, &["ipv4Ranges", "ipRanges", "IpRanges"], &at("ipv4Ranges"))? {
            let s = match r {
                Value::String(s) => Some(s.as_str()),
                v => text(v, &["cidrIp", "CidrIp"]),
            };
            if let Some(s) = s {
                let n = cidr(s, &at("ipv4Ranges"))?;
                if !peers.contains(&Peer::Cidr(n)) {
                    peers.push(Peer::Cidr(n));
                }
            }
        }
        for r in items(p, &["ipv6Ranges", "Ipv6Ranges"], &at("ipv6Ranges"))? {
            if let Some(s) = text(r, &["cidrIpv6", "CidrIpv6"]) {
                peers.push(Peer::Cidr(cidr(s, &at("ipv6Ranges"))?));
            }
        }
        for g in items(p, &["userIdGroupPairs", "UserIdGroupPairs"], &at("userIdGroupPairs"))? {
            if let Some(id) = text(g, &["groupId", "GroupId"]) {
                peers.push(Peer::Group(id.to_owned()));
            }
        }
        for l in items(p, &["prefixListIds", "PrefixListIds"], &at("prefixListIds"))? {
            if let Some(id) = text(l, &["prefixListId", "PrefixListId"]) {
                peers.push(Peer::PrefixList(id.to_owned()));
            }
        }
        rules.push(Rule { protocol: proto, from_port: from, to_port: to, peers });
    }
    Ok(rules)
}

/// An AWS Config `AWS::EC2::SecurityGroup` configuration.
pub fn aws_security_group(id: &str, cfg: &Value) -> Result<SecurityGroup, RuleError> {
    if !cfg.is_object() {
        return Err(bad("configuration", format!("expected an object, found {cfg}")));
    }
    Ok(SecurityGroup {
        id: text(cfg, &["groupId", "GroupId"]).unwrap_or(id).to_owned(),
        name: text(cfg, &["groupName", "GroupName"]).map(str::to_owned),
        vpc_id: text(cfg, &["vpcId", "VpcId"]).map(str::to_owned),
        ingress: permissions(cfg, &["ipPermissions", "IpPermissions"], "ipPermissions")?,
        egress: permissions(cfg, &["ipPermissionsEgress", "IpPermissionsEgress"], "ipPermissionsEgress")?,
    })
}

/// The CIDRs of an AWS Config `AWS::EC2::PrefixList` configuration
/// (`Entries[].Cidr`).
pub fn aws_prefix_list(cfg: &Value) -> Result<Vec<IpNet>, RuleError> {
    let mut out = Vec::new();
    for (i, e) in items(cfg, &["Entries", "entries"], "Entries")?.iter().enumerate() {
        let field = format!("Entries[{i}].Cidr");
        let s = text(e, &["Cidr", "cidr"]).ok_or_else(|| bad(&field, "missing"))?;
        out.push(cidr(s, &field)?);
    }
    Ok(out)
}

/// What the reachability test knows of one end.
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    pub addresses: &'a [IpAddr],
    /// Its security groups (AWS), network security group (Azure), GCP
    /// network, and the selectors rules refer to (GCP network tags and
    /// service accounts, Azure application security groups).
    pub groups: &'a [String],
}

/// What an entry of [`End::groups`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// An AWS security group: rules of its own, any of which admits.
    Group,
    /// An ordered rule set: a GCP VPC network (its firewall rules), an
    /// Azure network security group.
    RuleSet,
    /// An AWS network ACL: a filter under the security groups.
    Filter,
    /// Something rules select by (a GCP tag or service account, an Azure
    /// application security group or virtual network, a subnet): no rules of
    /// its own.
    Selector,
}

impl Membership {
    pub fn of(id: &str) -> Self {
        if id.starts_with(gcp::TAG)
            || id.starts_with(gcp::SERVICE_ACCOUNT)
            || id.contains("/applicationsecuritygroups/")
            || id.starts_with(nacl::SUBNET)
            || is_vnet(id)
        {
            Self::Selector
        } else if id.starts_with("acl-") {
            Self::Filter
        } else if (id.starts_with("projects/") && id.contains("/global/networks/"))
            || id.contains("/networksecuritygroups/")
        {
            Self::RuleSet
        } else {
            Self::Group
        }
    }
}

/// The groups, prefix lists and rule sets known.
pub trait Lookup {
    fn group(&self, id: &str) -> Option<&SecurityGroup>;
    fn prefix_list(&self, id: &str) -> Option<&[IpNet]>;
    /// An ordered rule set: a GCP network's firewall rules (by
    /// `projects/P/global/networks/N`), an Azure NSG's rules (by its id).
    fn firewall(&self, _set: &str) -> Option<&Firewall> {
        None
    }
    /// An AWS network ACL's rules.
    fn nacl(&self, _id: &str) -> Option<&Firewall> {
        None
    }
}

/// Security groups, prefix lists and ordered rule sets by id.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub groups: HashMap<String, SecurityGroup>,
    pub prefix_lists: HashMap<String, Vec<IpNet>>,
    /// Per GCP network or Azure NSG, its rules.
    pub firewalls: HashMap<String, Firewall>,
    /// Per GCP firewall rule resource, its network and name.
    firewall_rules: HashMap<String, (String, String)>,
    /// AWS network ACLs, and the ACL of each subnet associated with one.
    pub nacls: HashMap<String, Firewall>,
    nacl_subnets: HashMap<String, String>,
}

/// The kinds of inventory resource that hold rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `AWS::EC2::SecurityGroup` (AWS Config's configuration).
    SecurityGroup,
    /// `AWS::EC2::PrefixList`.
    PrefixList,
    /// `compute.googleapis.com/Firewall` (the asset's `resource.data`).
    FirewallRule,
    /// `Microsoft.Network/networkSecurityGroups` (the ARM `properties`).
    NetworkSecurityGroup,
    /// `AWS::EC2::NetworkAcl`.
    NetworkAcl,
}

/// What an inventory change to a policy resource changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The members of these groups or networks: their rules changed.
    Members(Vec<String>),
    /// A prefix list: any rule may refer to it.
    Everything,
}

impl Rules {
    /// Takes in a policy resource of inventory: `cfg` its configuration,
    /// `deleted` when it is gone. `None` when a live resource's
    /// configuration cannot be read (the previous rules stay).
    pub fn apply(&mut self, kind: PolicyKind, id: &str, cfg: Option<&Value>, deleted: bool) -> Option<Changed> {
        match kind {
            PolicyKind::SecurityGroup => {
                if deleted {
                    self.groups.remove(id);
                } else {
                    let g = aws_security_group(id, cfg?).ok()?;
                    self.groups.insert(id.to_owned(), g);
                }
                Some(Changed::Members(vec![id.to_owned()]))
            }
            PolicyKind::PrefixList => {
                if deleted {
                    self.prefix_lists.remove(id);
                } else {
                    self.prefix_lists.insert(id.to_owned(), aws_prefix_list(cfg?).ok()?);
                }
                Some(Changed::Everything)
            }
            PolicyKind::FirewallRule => {
                let networks = if deleted {
                    self.remove_firewall_rule(id).into_iter().collect()
                } else {
                    self.upsert_firewall_rule(id, gcp::gcp_firewall(cfg?).ok()?)
                };
                Some(Changed::Members(networks))
            }
            PolicyKind::NetworkAcl => {
                let acl = if deleted { None } else { Some(nacl::aws_network_acl(id, cfg?).ok()?) };
                self.nacls.remove(id);
                self.nacl_subnets.retain(|_, a| a != id);
                if let Some(acl) = acl {
                    for s in acl.subnets {
                        self.nacl_subnets.insert(s, acl.id.clone());
                    }
                    self.nacls.insert(acl.id, Firewall::of(acl.rules));
                }
                Some(Changed::Everything)
            }
            PolicyKind::NetworkSecurityGroup => {
                if deleted {
                    self.firewalls.remove(id);
                } else {
                    let rules = azure::azure_nsg(id, cfg?).ok()?;
                    self.firewalls.insert(id.to_owned(), Firewall::of(rules));
                }
                Some(Changed::Members(vec![id.to_owned()]))
            }
        }
    }

    /// Adds what a system in `subnet` is a member of by way of its
    /// subnet: the subnet's network ACL and the subnet itself (for the
    /// same-subnet test), when an ACL is known for it.
    pub fn subnet_layers(&self, subnet: Option<&str>, groups: &mut Vec<String>) {
        if let Some(s) = subnet
            && let Some(acl) = self.nacl_subnets.get(s)
        {
            groups.push(acl.clone());
            groups.push(format!("{}{s}", nacl::SUBNET));
        }
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.firewalls.is_empty()
    }

    /// Adds or replaces the firewall rule of resource `id`; the networks
    /// whose rules changed (its network, and its former one if it moved).
    pub fn upsert_firewall_rule(&mut self, id: &str, rule: FirewallRule) -> Vec<String> {
        let mut changed = self.remove_firewall_rule(id).into_iter().collect::<Vec<_>>();
        self.firewall_rules.insert(id.to_owned(), (rule.set.clone(), rule.name.clone()));
        if !changed.contains(&rule.set) {
            changed.push(rule.set.clone());
        }
        self.firewalls.entry(rule.set.clone()).or_default().upsert(rule);
        changed
    }

    /// Removes the firewall rule of resource `id`; its network, if known.
    pub fn remove_firewall_rule(&mut self, id: &str) -> Option<String> {
        let (network, name) = self.firewall_rules.remove(id)?;
        if let Some(fw) = self.firewalls.get_mut(&network) {
            fw.remove(&name);
            if fw.is_empty() {
                self.firewalls.remove(&network);
            }
        }
        Some(network)
    }
}

impl Lookup for Rules {
    fn group(&self, id: &str) -> Option<&SecurityGroup> {
        self.groups.get(id)
    }
    fn prefix_list(&self, id: &str) -> Option<&[IpNet]> {
        self.prefix_lists.get(id).map(Vec::as_slice)
    }
    fn firewall(&self, network: &str) -> Option<&Firewall> {
        self.firewalls.get(network)
    }
    fn nacl(&self, id: &str) -> Option<&Firewall> {
        self.nacls.get(id)
    }
}

/// The peers of every rule that could admit a connection to `dst` (its
/// groups' inbound rules, its rule sets' allow rules that apply to it): the
/// only sources worth testing.
pub fn ingress_peers<'a>(dst: End<'_>, lookup: &'a impl Lookup) -> Vec<&'a Peer> {
    let mut out: Vec<&Peer> =
        dst.groups.iter().filter_map(|g| lookup.group(g)).flat_map(|g| &g.ingress).flat_map(|r| &r.peers).collect();
    for fw in rule_sets(dst, lookup) {
        out.extend(
            fw.applying(Direction::Ingress, dst).filter(|r| !r.deny).flat_map(|r| &r.services).flat_map(|s| &s.peers),
        );
    }
    out
}

/// The known rule sets `end` is a member of.
fn rule_sets<'a>(end: End<'_>, lookup: &'a impl Lookup) -> Vec<&'a Firewall> {
    end.groups.iter().filter(|g| Membership::of(g) == Membership::RuleSet).filter_map(|n| lookup.firewall(n)).collect()
}

/// Whether `peer` matches `end` (a CIDR or prefix list holding one of its
/// addresses, or a group it is a member of).
pub fn matches(peer: &Peer, end: End<'_>, lookup: &impl Lookup) -> bool {
    match peer {
        Peer::Cidr(n) => end.addresses.iter().any(|a| n.contains(a)),
        Peer::Group(g) => end.groups.iter().any(|x| x == g),
        Peer::PrefixList(p) => {
            lookup.prefix_list(p).is_some_and(|nets| nets.iter().any(|n| end.addresses.iter().any(|a| n.contains(a))))
        }
        Peer::ServiceTag(_) => holds(peer, end),
    }
}

/// One reason a connection is allowed: the inbound rule that admits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The group of the destination whose rule admits it.
    pub group: String,
    pub rule: Rule,
    /// The peer of the rule that matched the source.
    pub peer: Peer,
}

impl Allowed {
    /// `sg-0cde admits TCP/5432 from sg-0app`.
    pub fn describe(&self) -> String {
        let from = match &self.peer {
            Peer::Cidr(n) => n.to_string(),
            Peer::Group(g) => g.clone(),
            Peer::PrefixList(p) => format!("prefix list {p}"),
            Peer::ServiceTag(t) => format!("service tag {t}"),
        };
        format!("{} admits {} from {from}", self.group, self.rule.service())
    }
}

/// The inbound rules of `dst`'s groups that admit a connection from `src`
/// (any service), provided `src`'s groups let it out. Empty when `dst` has
/// no known group: nothing is known to admit anything.
pub fn allowed(src: End<'_>, dst: End<'_>, lookup: &impl Lookup) -> Vec<Allowed> {
    let mut out = Vec::new();
    let filters: Vec<&Firewall> = [src, dst].iter().flat_map(|e| filters(*e, lookup)).collect();
    for g in dst.groups.iter().filter_map(|g| lookup.group(g)) {
        for rule in &g.ingress {
            let Some(peer) = rule.peers.iter().find(|p| matches(p, src, lookup)) else { continue };
            let ok = if filters.is_empty() {
                egress_allows(src, dst, rule, lookup)
            } else {
                // Some service of the rule that the source's groups let out
                // and the ACLs let through.
                let aws_egress = src.groups.iter().filter_map(|g| lookup.group(g)).flat_map(|g| &g.egress);
                let acl = filters.iter().flat_map(|f| f.rules()).flat_map(|r| &r.services);
                ordered::points(std::iter::once(rule).chain(aws_egress).chain(acl)).into_iter().any(|(p, port)| {
                    rule.covers(p, port)
                        && src_covers(src, dst, p, port, lookup)
                        && nacl_allows(src, dst, p, port, lookup)
                })
            };
            if ok {
                out.push(Allowed { group: g.id.clone(), rule: rule.clone(), peer: peer.clone() });
            }
        }
    }
    for set in dst.groups.iter().filter(|g| Membership::of(g) == Membership::RuleSet) {
        let Some(fw) = lookup.firewall(set) else { continue };
        let ingress = set_ingress(src, dst, fw, lookup);
        if ingress.iter().all(|r| r.deny) {
            continue;
        }
        let egress = set_egress(src, lookup);
        let aws_egress = src.groups.iter().filter_map(|g| lookup.group(g)).flat_map(|g| &g.egress);
        let services = ingress.iter().chain(&egress).flat_map(|r| &r.services).chain(aws_egress);
        for (protocol, port) in ordered::points(services) {
            if let Some((rule, service, peer)) =
                ordered::decide(&ingress, protocol, port, |r, p| matches_in(p, src, dst, &r.set, lookup))
                && !rule.deny
                && egress_decides(src, dst, &egress, protocol, port, lookup)
            {
                let a = Allowed { group: rule.label(), rule: service.clone(), peer: peer.clone() };
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// The ingress rules of `fw` that apply to `dst` and could match `src`, in
/// evaluation order.
fn set_ingress<'a>(src: End<'_>, dst: End<'_>, fw: &'a Firewall, lookup: &impl Lookup) -> Vec<&'a FirewallRule> {
    fw.applying(Direction::Ingress, dst)
        .filter(|r| r.services.iter().flat_map(|s| &s.peers).any(|p| matches_in(p, src, dst, &r.set, lookup)))
        .collect()
}

/// The egress rules of `src`'s rule sets that apply to it, in evaluation
/// order (sets one after another).
fn set_egress<'a>(src: End<'_>, lookup: &'a impl Lookup) -> Vec<&'a FirewallRule> {
    rule_sets(src, lookup).into_iter().flat_map(|fw| fw.applying(Direction::Egress, src)).collect()
}

/// Whether `src` may send `protocol`/`port` to `dst`: its security groups
/// let it out (if it has known ones) and no egress rule of its rule sets
/// denies it first (GCP's implied egress rule allows; an Azure NSG's
/// default rules decide everything).
fn egress_decides(
    src: End<'_>,
    dst: End<'_>,
    egress: &[&FirewallRule],
    protocol: i32,
    port: i32,
    lookup: &impl Lookup,
) -> bool {
    src_covers(src, dst, protocol, port, lookup)
        && ordered::decide(egress, protocol, port, |r, p| matches_in(p, dst, src, &r.set, lookup))
            .is_none_or(|(r, _, _)| !r.deny)
        && nacl_allows(src, dst, protocol, port, lookup)
}

/// The known network ACLs of `end`'s subnets.
fn filters<'a>(end: End<'_>, lookup: &'a impl Lookup) -> Vec<&'a Firewall> {
    end.groups.iter().filter(|g| Membership::of(g) == Membership::Filter).filter_map(|g| lookup.nacl(g)).collect()
}

/// Whether the network ACLs let a request of `protocol`/`port` from `src`
/// to `dst` through: none between ends in one subnet; otherwise the
/// destination subnet's ACL lets it in and the source subnet's lets it out
/// (first match by rule number; the `*` rule denies the rest).
pub fn nacl_allows(src: End<'_>, dst: End<'_>, protocol: i32, port: i32, lookup: &impl Lookup) -> bool {
    if src.groups.iter().any(|g| g.starts_with(nacl::SUBNET) && dst.groups.contains(g)) {
        return true;
    }
    let passes = |holder: End<'_>, other: End<'_>, direction: Direction| {
        filters(holder, lookup).into_iter().all(|fw| {
            let rules: Vec<&FirewallRule> = fw.rules().iter().filter(|r| r.direction == direction).collect();
            ordered::decide(&rules, protocol, port, |_, p| matches(p, other, lookup)).is_some_and(|(r, _, _)| !r.deny)
        })
    };
    passes(dst, src, Direction::Ingress) && passes(src, dst, Direction::Egress)
}

/// Whether `peer`, in a rule of set `set` that `holder` is a member of,
/// matches the other end `end`: GCP tags and service accounts select
/// instances of the rule's network only; Azure's `VirtualNetwork` is the
/// holder's virtual network when known (else any private address).
fn matches_in(peer: &Peer, end: End<'_>, holder: End<'_>, set: &str, lookup: &impl Lookup) -> bool {
    match peer {
        Peer::Group(g) if g.starts_with(gcp::TAG) || g.starts_with(gcp::SERVICE_ACCOUNT) => {
            matches(peer, end, lookup) && end.groups.iter().any(|x| x == set)
        }
        Peer::ServiceTag(t) if t.eq_ignore_ascii_case(VIRTUAL_NETWORK) => {
            let mut vnets = holder.groups.iter().filter(|g| is_vnet(g)).peekable();
            if vnets.peek().is_some() { vnets.any(|v| end.groups.contains(v)) } else { holds(peer, end) }
        }
        _ => matches(peer, end, lookup),
    }
}

/// Whether `src`'s groups let out some traffic of `rule` to `dst` (a
/// source with no known group is not restricted).
pub fn egress_allows(src: End<'_>, dst: End<'_>, rule: &Rule, lookup: &impl Lookup) -> bool {
    let known: Vec<&SecurityGroup> = src.groups.iter().filter_map(|g| lookup.group(g)).collect();
    if known.is_empty() {
        return true;
    }
    known.iter().flat_map(|g| &g.egress).any(|e| overlaps(e, rule) && e.peers.iter().any(|p| matches(p, dst, lookup)))
}

/// Whether two rules share some protocol and port.
fn overlaps(a: &Rule, b: &Rule) -> bool {
    (a.protocol == -1 || b.protocol == -1 || a.protocol == b.protocol)
        && a.from_port <= b.to_port
        && b.from_port <= a.to_port
}

/// Whether `dst`'s known rules admit `src` on `protocol`/`port`: `None`
/// when `dst` has no rules, or a group or network whose rules are not in
/// the inventory (nothing can be said).
pub fn admits(src: End<'_>, dst: End<'_>, protocol: i32, port: i32, lookup: &impl Lookup) -> Option<bool> {
    let mut any = false;
    for g in dst.groups {
        match Membership::of(g) {
            Membership::Group if lookup.group(g).is_none() => return None,
            Membership::RuleSet if lookup.firewall(g).is_none() => return None,
            Membership::Group | Membership::RuleSet => any = true,
            Membership::Filter | Membership::Selector => {}
        }
    }
    if !any {
        return None;
    }
    let by_group = dst.groups.iter().filter_map(|g| lookup.group(g)).flat_map(|g| &g.ingress).any(|rule| {
        rule.covers(protocol, port)
            && rule.peers.iter().any(|p| matches(p, src, lookup))
            && src_covers(src, dst, protocol, port, lookup)
            && nacl_allows(src, dst, protocol, port, lookup)
    });
    let by_set = || {
        let egress = set_egress(src, lookup);
        rule_sets(dst, lookup).into_iter().any(|fw| {
            let ingress = set_ingress(src, dst, fw, lookup);
            ordered::decide(&ingress, protocol, port, |r, p| matches_in(p, src, dst, &r.set, lookup))
                .is_some_and(|(r, _, _)| !r.deny)
                && egress_decides(src, dst, &egress, protocol, port, lookup)
        })
    };
    Some(by_group || by_set())
}

fn src_covers(src: End<'_>, dst: End<'_>, protocol: i32, port: i32, lookup: &impl Lookup) -> bool {
    let known: Vec<&SecurityGroup> = src.groups.iter().filter_map(|g| lookup.group(g)).collect();
    known.is_empty()
        || known
            .iter()
            .flat_map(|g| &g.egress)
            .any(|e| e.covers(protocol, port) && e.peers.iter().any(|p| matches(p, dst, lookup)))
}

fn has_ports(protocol: i32) -> bool {
    matches!(protocol, 6 | 17 | 132)
}

fn protocol_name(p: i32) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests;
