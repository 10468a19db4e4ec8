//! AWS network ACLs (`AWS::EC2::NetworkAcl`, as AWS Config records them): a
//! second layer under security groups, per subnet, stateless, rules in
//! rule-number order, the first match deciding, `*` (32767) denying the
//! rest. They filter traffic that crosses a subnet boundary only: a
//! connection is allowed when the destination subnet's ACL lets the request
//! in and the source subnet's ACL lets it out, and the security groups
//! allow it too. Replies (to ephemeral ports) are not checked: scope errs
//! towards inclusion.

use serde_json::Value;

use crate::ordered::{Direction, FirewallRule};
use crate::{Peer, Rule, RuleError, bad, cidr, get, has_ports, items, port, protocol, text};

/// The selector prefix of a system's subnet (set where ACLs are known).
pub const SUBNET: &str = "subnet:";

/// A network ACL: its rules and the subnets it is associated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAcl {
    pub id: String,
    pub rules: Vec<FirewallRule>,
    pub subnets: Vec<String>,
}

/// An AWS Config `AWS::EC2::NetworkAcl` configuration.
pub fn aws_network_acl(id: &str, cfg: &Value) -> Result<NetworkAcl, RuleError> {
    if !cfg.is_object() {
        return Err(bad("configuration", format!("expected an object, found {cfg}")));
    }
    let id = text(cfg, &["networkAclId", "NetworkAclId"]).unwrap_or(id).to_owned();
    let mut rules = Vec::new();
    let mut has_default = [false, false];
    for (i, e) in items(cfg, &["entries", "Entries"], "entries")?.iter().enumerate() {
        let at = |f: &str| format!("entries[{i}].{f}");
        let number = get(e, &["ruleNumber", "RuleNumber"])
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(at("ruleNumber"), "missing or not a number"))?;
        let egress = get(e, &["egress", "Egress"]).and_then(Value::as_bool).unwrap_or(false);
        let deny = match text(e, &["ruleAction", "RuleAction"]) {
            Some(a) if a.eq_ignore_ascii_case("allow") => false,
            Some(a) if a.eq_ignore_ascii_case("deny") => true,
            other => return Err(bad(at("ruleAction"), format!("{other:?} is not allow or deny"))),
        };
        let proto = protocol(
            get(e, &["protocol", "Protocol"]).ok_or_else(|| bad(at("protocol"), "missing"))?,
            &at("protocol"),
        )?;
        let (mut from, mut to) = (0, 65_535);
        if proto != -1
            && has_ports(proto)
            && let Some(range) = get(e, &["portRange", "PortRange"])
        {
            from = port(get(range, &["from", "From"]), &at("portRange.from"), 0)?;
            to = port(get(range, &["to", "To"]), &at("portRange.to"), 65_535)?;
            if from > to || from < 0 || to > 65_535 {
                return Err(bad(at("portRange"), format!("{from}-{to} is not a port range")));
            }
        }
        let block = text(e, &["cidrBlock", "CidrBlock"]).or_else(|| text(e, &["ipv6CidrBlock", "Ipv6CidrBlock"]));
        let block = block.ok_or_else(|| bad(at("cidrBlock"), "missing"))?;
        let net = cidr(block, &at("cidrBlock"))?;
        if number == 32_767 {
            has_default[usize::from(egress)] = true;
        }
        let service = Rule { protocol: proto, from_port: from, to_port: to, peers: vec![Peer::Cidr(net)] };
        rules.push(rule(&id, number, egress, deny, net.addr().is_ipv6(), service));
    }
    // The `*` rules, when the item leaves them out.
    for (egress, present) in [(false, has_default[0]), (true, has_default[1])] {
        if !present {
            for any in ["0.0.0.0/0", "::/0"] {
                let net = cidr(any, "entries")?;
                let all = Rule { protocol: -1, from_port: 0, to_port: 65_535, peers: vec![Peer::Cidr(net)] };
                rules.push(rule(&id, 32_767, egress, true, net.addr().is_ipv6(), all));
            }
        }
    }
    let mut subnets = Vec::new();
    for a in items(cfg, &["associations", "Associations"], "associations")? {
        if let Some(s) = text(a, &["subnetId", "SubnetId"]) {
            subnets.push(s.to_owned());
        }
    }
    Ok(NetworkAcl { id, rules, subnets })
}

/// A rule named `in 100`, `out *`, `in 100 (IPv6)` (entries of one number
/// per direction and address family).
fn rule(id: &str, number: u32, egress: bool, deny: bool, v6: bool, service: Rule) -> FirewallRule {
    let direction = if egress { Direction::Egress } else { Direction::Ingress };
    let number_text = if number == 32_767 { "*".to_owned() } else { number.to_string() };
    FirewallRule {
        name: format!("{} {number_text}{}", if egress { "out" } else { "in" }, if v6 { " (IPv6)" } else { "" }),
        set: id.to_owned(),
        kind: format!("network ACL {id} rule"),
        priority: number,
        direction,
        deny,
        disabled: false,
        services: vec![service],
        targets: Vec::new(),
    }
}
