//! Azure network security groups (`Microsoft.Network/networkSecurityGroups`,
//! ARM JSON as the REST API or Resource Graph gives it; this reads its
//! `properties`) and how they decide a connection.
//!
//! An NSG's rules, its own (`securityRules`) and Azure's defaults
//! (`defaultSecurityRules`, added as Azure documents them when the JSON
//! leaves them out), are evaluated in priority order, the first match
//! deciding; stateful. A rule's destination side (inbound) or source side
//! (outbound) selects the members it applies to; its other side is the peer:
//! address prefixes, application security groups (by id, lower case, as
//! network interfaces list them) and the service tags `VirtualNetwork` (the
//! member's virtual network), `Internet` (public addresses),
//! `AzureLoadBalancer`; `*` is anything. Other service tags name Azure
//! services, which are not systems here. Source port ranges are not compared
//! (a client's port is ephemeral): an allow limited to some source ports
//! counts as an allow, a deny limited to some is left out, so that scope
//! errs towards inclusion.

use serde_json::Value;

use crate::gcp::{port_range, strings};
use crate::ordered::{Direction, FirewallRule};
use crate::{Peer, Rule, RuleError, bad, cidr, get, has_ports, items, text};

/// The rules of an NSG's `properties` (`id`: the NSG's id, lower case).
pub fn azure_nsg(id: &str, properties: &Value) -> Result<Vec<FirewallRule>, RuleError> {
    if !properties.is_object() {
        return Err(bad("properties", format!("expected an object, found {properties}")));
    }
    let nsg = id.rsplit('/').next().unwrap_or(id).to_owned();
    let mut out = Vec::new();
    for (i, r) in items(properties, &["securityRules"], "securityRules")?.iter().enumerate() {
        out.extend(rule(id, &nsg, r, &format!("securityRules[{i}]"))?);
    }
    let defaults = items(properties, &["defaultSecurityRules"], "defaultSecurityRules")?;
    if defaults.is_empty() {
        for r in default_rules() {
            out.extend(rule(id, &nsg, &r, "defaultSecurityRules")?);
        }
    } else {
        for (i, r) in defaults.iter().enumerate() {
            out.extend(rule(id, &nsg, r, &format!("defaultSecurityRules[{i}]"))?);
        }
    }
    Ok(out)
}

/// One security rule (`{"name", "properties": {...}}`, or the properties
/// flattened as some exports write them); `None` for a deny limited to some
/// source ports.
fn rule(id: &str, nsg: &str, r: &Value, at: &str) -> Result<Option<FirewallRule>, RuleError> {
    let field = |f: &str| format!("{at}.properties.{f}");
    let name = text(r, &["name"]).ok_or_else(|| bad(format!("{at}.name"), "missing"))?.to_owned();
    let p = get(r, &["properties"]).unwrap_or(r);
    let direction = match text(p, &["direction"]) {
        Some(d) if d.eq_ignore_ascii_case("Inbound") => Direction::Ingress,
        Some(d) if d.eq_ignore_ascii_case("Outbound") => Direction::Egress,
        other => return Err(bad(field("direction"), format!("{other:?} is not Inbound or Outbound"))),
    };
    let deny = match text(p, &["access"]) {
        Some(a) if a.eq_ignore_ascii_case("Allow") => false,
        Some(a) if a.eq_ignore_ascii_case("Deny") => true,
        other => return Err(bad(field("access"), format!("{other:?} is not Allow or Deny"))),
    };
    let priority = get(p, &["priority"])
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| bad(field("priority"), "missing or not a number"))?;
    let protocol = match text(p, &["protocol"]).unwrap_or("*").to_ascii_lowercase().as_str() {
        "*" | "any" => -1,
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "esp" => 50,
        "ah" => 51,
        other => return Err(bad(field("protocol"), format!("'{other}' is not a protocol"))),
    };
    let source_ports = prefixes(p, "sourcePortRange", "sourcePortRanges")?;
    if deny && !source_ports.iter().all(|s| *s == "*") {
        return Ok(None);
    }
    let (source, destination) = (
        side(p, "sourceAddressPrefix", "sourceAddressPrefixes", "sourceApplicationSecurityGroups", &field)?,
        side(
            p,
            "destinationAddressPrefix",
            "destinationAddressPrefixes",
            "destinationApplicationSecurityGroups",
            &field,
        )?,
    );
    let (targets, peers) = match direction {
        Direction::Ingress => (destination, source),
        Direction::Egress => (source, destination),
    };
    // Targets: `*` is every member; peers: `*` is every address.
    let targets: Vec<Peer> = targets.into_iter().flatten().collect();
    let peers: Vec<Peer> = match peers {
        None => vec![Peer::Cidr(any_v4()?), Peer::Cidr(any_v6()?)],
        Some(p) => p,
    };
    let mut services = Vec::new();
    for range in prefixes(p, "destinationPortRange", "destinationPortRanges")? {
        let (from, to) = if range == "*" || protocol == -1 || !has_ports(protocol) {
            (0, 65_535)
        } else {
            port_range(range)
                .ok_or_else(|| bad(field("destinationPortRange"), format!("'{range}' is not a port or range")))?
        };
        services.push(Rule { protocol, from_port: from, to_port: to, peers: peers.clone() });
    }
    Ok(Some(FirewallRule {
        name,
        set: id.to_owned(),
        kind: format!("NSG {nsg} rule"),
        priority,
        direction,
        deny,
        disabled: false,
        services,
        targets,
    }))
}

/// A value given singly or as a list (`destinationPortRange` or
/// `destinationPortRanges`); `*` when neither is given.
fn prefixes<'a>(p: &'a Value, one: &str, many: &str) -> Result<Vec<&'a str>, RuleError> {
    let mut out = strings(p, &[many], many)?;
    if let Some(s) = text(p, &[one]) {
        out.push(s);
    }
    if out.is_empty() {
        out.push("*");
    }
    Ok(out)
}

/// One side of a rule: `None` for anything (`*`), else its address prefixes,
/// service tags and application security groups.
fn side(
    p: &Value,
    one: &str,
    many: &str,
    asgs: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<Option<Vec<Peer>>, RuleError> {
    let mut out = Vec::new();
    for g in items(p, &[asgs], asgs)? {
        let id = text(g, &["id"]).ok_or_else(|| bad(field(asgs), "an application security group without an id"))?;
        out.push(Peer::Group(id.to_lowercase()));
    }
    let given = strings(p, &[many], many)?.into_iter().chain(text(p, &[one]));
    for prefix in given {
        match prefix {
            "*" | "Any" | "0.0.0.0/0" => return Ok(None),
            s if s.starts_with(|c: char| c.is_ascii_digit()) || s.contains(':') => {
                out.push(Peer::Cidr(cidr(s, &field(one))?));
            }
            tag => out.push(Peer::ServiceTag(tag.to_owned())),
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

fn any_v4() -> Result<ipnet::IpNet, RuleError> {
    "0.0.0.0/0".parse().map_err(|_| bad("address", "0.0.0.0/0"))
}

fn any_v6() -> Result<ipnet::IpNet, RuleError> {
    "::/0".parse().map_err(|_| bad("address", "::/0"))
}

/// Azure's default rules, as its documentation lists them.
fn default_rules() -> Vec<Value> {
    let r = |name: &str, priority: u32, direction: &str, access: &str, source: &str, destination: &str| {
        serde_json::json!({"name": name, "properties": {
            "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
            "sourceAddressPrefix": source, "destinationAddressPrefix": destination,
            "access": access, "priority": priority, "direction": direction}})
    };
    vec![
        r("AllowVnetInBound", 65_000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
        r("AllowAzureLoadBalancerInBound", 65_001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
        r("DenyAllInBound", 65_500, "Inbound", "Deny", "*", "*"),
        r("AllowVnetOutBound", 65_000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
        r("AllowInternetOutBound", 65_001, "Outbound", "Allow", "*", "Internet"),
        r("DenyAllOutBound", 65_500, "Outbound", "Deny", "*", "*"),
    ]
}
