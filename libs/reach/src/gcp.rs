//! GCP VPC firewall rules (`compute.googleapis.com/Firewall`, as Cloud
//! Asset Inventory or the Compute API records them) and how they decide a
//! connection.
//!
//! A VPC network's rules are evaluated together: of the rules that apply to
//! an instance (no targets, or a target tag or service account it carries)
//! and match the other end and the service, the one with the lowest priority
//! number decides; at equal priority a deny wins. Ingress that no rule
//! decides is denied (the implied rule at 65535), egress is allowed.
//! Connections are stateful: a reply needs no rule.
//!
//! Instances carry selectors in their `security_groups` (set by ingest):
//! their network (`projects/P/global/networks/N`), their network tags
//! (`tag:T`) and their service accounts (`serviceAccount:EMAIL`). Source
//! tags and service accounts match only instances of the rule's network.

use ipnet::IpNet;
use serde_json::Value;

use crate::ordered::{Direction, FirewallRule};
use crate::{Peer, Rule, RuleError, bad, cidr, get, has_ports, items, protocol, text};

/// The selector prefix of a network tag.
pub const TAG: &str = "tag:";
/// The selector prefix of a service account (IAM's member syntax).
pub const SERVICE_ACCOUNT: &str = "serviceAccount:";

/// `projects/P/global/networks/N` from a network URL or path
/// (`https://www.googleapis.com/compute/v1/projects/P/global/networks/N`).
pub fn network_path(url: &str) -> Option<String> {
    let at = url.find("projects/")?;
    let path = url[at..].trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    matches!(parts.as_slice(), ["projects", p, "global", "networks", n] if !p.is_empty() && !n.is_empty())
        .then(|| path.to_owned())
}

/// A Compute API / Cloud Asset Inventory firewall resource (`resource.data`).
pub fn gcp_firewall(cfg: &Value) -> Result<FirewallRule, RuleError> {
    if !cfg.is_object() {
        return Err(bad("data", format!("expected an object, found {cfg}")));
    }
    let name = text(cfg, &["name"]).ok_or_else(|| bad("name", "missing"))?.to_owned();
    let url = text(cfg, &["network"]).ok_or_else(|| bad("network", "missing"))?;
    let network = network_path(url)
        .ok_or_else(|| bad("network", format!("'{url}' is not a network (projects/P/global/networks/N)")))?;
    let priority = match get(cfg, &["priority"]) {
        None => 1000,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p <= 65_535)
            .ok_or_else(|| bad("priority", format!("'{v}' is not a priority (0-65535)")))?,
    };
    let direction = match text(cfg, &["direction"]).unwrap_or("INGRESS") {
        d if d.eq_ignore_ascii_case("INGRESS") => Direction::Ingress,
        d if d.eq_ignore_ascii_case("EGRESS") => Direction::Egress,
        d => return Err(bad("direction", format!("'{d}' is not INGRESS or EGRESS"))),
    };
    let allowed = items(cfg, &["allowed"], "allowed")?;
    let denied = items(cfg, &["denied"], "denied")?;
    let (deny, field, entries) = match (allowed.is_empty(), denied.is_empty()) {
        (false, true) => (false, "allowed", allowed),
        (true, false) => (true, "denied", denied),
        (true, true) => return Err(bad("allowed", "a rule needs 'allowed' or 'denied'")),
        (false, false) => return Err(bad("denied", "a rule has either 'allowed' or 'denied', not both")),
    };
    let peers = peers(cfg, direction)?;
    let mut services = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let proto = protocol(
            get(e, &["IPProtocol", "ipProtocol", "ip_protocol"]).ok_or_else(|| bad(at("IPProtocol"), "missing"))?,
            &at("IPProtocol"),
        )?;
        let ports = items(e, &["ports"], &at("ports"))?;
        if ports.is_empty() || proto == -1 || !has_ports(proto) {
            services.push(Rule { protocol: proto, from_port: 0, to_port: 65_535, peers: peers.clone() });
            continue;
        }
        for p in ports {
            let s = p.as_str().ok_or_else(|| bad(at("ports"), format!("expected a port or range, found {p}")))?;
            let (from, to) = port_range(s).ok_or_else(|| bad(at("ports"), format!("'{s}' is not a port or range")))?;
            services.push(Rule { protocol: proto, from_port: from, to_port: to, peers: peers.clone() });
        }
    }
    let mut targets: Vec<Peer> = Vec::new();
    for t in strings(cfg, &["targetTags"], "targetTags")? {
        targets.push(Peer::Group(format!("{TAG}{t}")));
    }
    for t in strings(cfg, &["targetServiceAccounts"], "targetServiceAccounts")? {
        targets.push(Peer::Group(format!("{SERVICE_ACCOUNT}{t}")));
    }
    let disabled = get(cfg, &["disabled"]).and_then(Value::as_bool).unwrap_or(false);
    Ok(FirewallRule {
        name,
        set: network,
        kind: "firewall rule".to_owned(),
        priority,
        direction,
        deny,
        disabled,
        services,
        targets,
    })
}

/// The other end of a rule: sources (ingress) or destinations (egress).
fn peers(cfg: &Value, direction: Direction) -> Result<Vec<Peer>, RuleError> {
    let mut out = Vec::new();
    let ranges = match direction {
        Direction::Ingress => "sourceRanges",
        Direction::Egress => "destinationRanges",
    };
    for s in strings(cfg, &[ranges], ranges)? {
        let n = cidr(s, ranges)?;
        if !out.contains(&Peer::Cidr(n)) {
            out.push(Peer::Cidr(n));
        }
    }
    if direction == Direction::Ingress {
        for t in strings(cfg, &["sourceTags"], "sourceTags")? {
            out.push(Peer::Group(format!("{TAG}{t}")));
        }
        for t in strings(cfg, &["sourceServiceAccounts"], "sourceServiceAccounts")? {
            out.push(Peer::Group(format!("{SERVICE_ACCOUNT}{t}")));
        }
    }
    if out.is_empty() {
        // The API's default: an ingress rule without sources applies to
        // every source, an egress rule without destinations to every one.
        let any: IpNet = "0.0.0.0/0".parse().map_err(|_| bad(ranges, "default range"))?;
        out.push(Peer::Cidr(any));
        out.push(Peer::Cidr("::/0".parse().map_err(|_| bad(ranges, "default range"))?));
    }
    Ok(out)
}

pub(crate) fn strings<'a>(v: &'a Value, names: &[&str], field: &str) -> Result<Vec<&'a str>, RuleError> {
    items(v, names, field)?
        .iter()
        .map(|s| s.as_str().ok_or_else(|| bad(field, format!("expected a string, found {s}"))))
        .collect()
}

pub(crate) fn port_range(s: &str) -> Option<(i32, i32)> {
    let (from, to) = s.split_once('-').unwrap_or((s, s));
    let (from, to): (i32, i32) = (from.trim().parse().ok()?, to.trim().parse().ok()?);
    ((0..=65_535).contains(&from) && (0..=65_535).contains(&to) && from <= to).then_some((from, to))
}
