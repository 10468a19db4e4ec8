//! Ordered rule sets: rules with priorities that allow or deny, the first
//! match deciding: the VPC firewall rules of a GCP network, the rules of an
//! Azure network security group. A set's members carry its id in their
//! `groups`.

use crate::{End, Peer, Rule, has_ports, holds};

/// A rule's direction: traffic to the members it applies to (ingress) or
/// from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

/// One rule of an ordered set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    pub name: String,
    /// The set it belongs to: a GCP network (`projects/P/global/networks/N`)
    /// or an Azure network security group id.
    pub set: String,
    /// How a justification names its kind: `firewall rule`, `NSG web-nsg rule`.
    pub kind: String,
    /// Lower first: GCP 0–65535, Azure 100–4096 (its defaults 65000–65500).
    pub priority: u32,
    pub direction: Direction,
    pub deny: bool,
    pub disabled: bool,
    /// One entry per protocol and port range; each carries the rule's peers
    /// (sources for ingress, destinations for egress).
    pub services: Vec<Rule>,
    /// The members it applies to (destinations for ingress, sources for
    /// egress): tags, service accounts, application security groups,
    /// address ranges; empty: every member of the set.
    pub targets: Vec<Peer>,
}

impl FirewallRule {
    /// Whether the rule applies to `end` (a member of its set, selected by
    /// its targets).
    pub fn applies_to(&self, end: End<'_>) -> bool {
        end.groups.contains(&self.set) && (self.targets.is_empty() || self.targets.iter().any(|t| holds(t, end)))
    }

    /// How a justification names it: `firewall rule allow-db (priority 1000)`.
    pub fn label(&self) -> String {
        format!("{} {} (priority {})", self.kind, self.name, self.priority)
    }

    /// Evaluation order: priority, then deny before allow.
    fn order(&self) -> (u32, bool) {
        (self.priority, !self.deny)
    }
}

/// The rules of one set, in evaluation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    rules: Vec<FirewallRule>,
}

impl Firewall {
    /// A set of these rules.
    pub fn of(rules: Vec<FirewallRule>) -> Self {
        let mut fw = Self::default();
        for r in rules {
            fw.upsert(r);
        }
        fw
    }

    /// Adds or replaces the rule of that name.
    pub fn upsert(&mut self, rule: FirewallRule) {
        self.rules.retain(|r| r.name != rule.name);
        let at = self.rules.partition_point(|r| r.order() <= rule.order());
        self.rules.insert(at, rule);
    }

    /// Removes the rule of that name.
    pub fn remove(&mut self, name: &str) {
        self.rules.retain(|r| r.name != name);
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[FirewallRule] {
        &self.rules
    }

    /// The enabled rules of `direction` that apply to `end`, in evaluation
    /// order.
    pub fn applying<'a, 's>(
        &'a self,
        direction: Direction,
        end: End<'s>,
    ) -> impl Iterator<Item = &'a FirewallRule> + use<'a, 's> {
        self.rules.iter().filter(move |r| !r.disabled && r.direction == direction && r.applies_to(end))
    }
}

/// The rule deciding `protocol`/`port` among `rules` (in evaluation order)
/// for a peer `matches` accepts (given the rule), with the service entry and
/// peer that matched; `None`: no rule decides.
pub fn decide<'a>(
    rules: &[&'a FirewallRule],
    protocol: i32,
    port: i32,
    matches: impl Fn(&FirewallRule, &Peer) -> bool,
) -> Option<(&'a FirewallRule, &'a Rule, &'a Peer)> {
    rules.iter().find_map(|r| {
        r.services
            .iter()
            .filter(|s| s.covers(protocol, port))
            .find_map(|s| s.peers.iter().find(|p| matches(r, p)).map(|p| (*r, s, p)))
    })
}

/// The (protocol, port) points at which a decision among `services` can
/// change: every boundary of every port range, for every protocol named,
/// and one protocol none names (for rules of every protocol).
pub fn points<'a>(services: impl Iterator<Item = &'a Rule>) -> Vec<(i32, i32)> {
    let services: Vec<&Rule> = services.collect();
    let mut protocols: Vec<i32> = services.iter().map(|s| s.protocol).filter(|p| *p != -1).collect();
    protocols.sort_unstable();
    protocols.dedup();
    if let Some(other) = (0..=255).find(|p| !protocols.contains(p)) {
        protocols.push(other);
    }
    let mut out = Vec::new();
    for p in protocols {
        if !has_ports(p) {
            out.push((p, 0));
            continue;
        }
        let mut ports: Vec<i32> = vec![0];
        for s in services.iter().filter(|s| s.protocol == p || s.protocol == -1) {
            ports.push(s.from_port);
            if s.to_port < 65_535 {
                ports.push(s.to_port + 1);
            }
        }
        ports.sort_unstable();
        ports.dedup();
        out.extend(ports.into_iter().map(|port| (p, port)));
    }
    out
}
