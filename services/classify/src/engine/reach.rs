//! Reachability by configuration in the scope engine (rule 4 and the
//! three-way view): which systems the inventory's security groups let open
//! connections to CDE systems, kept current as groups, prefix lists and
//! systems change.
//!
//! Per CDE system, the sources its groups admit (and whose own groups let
//! the connection out) are computed when something the answer depends on
//! changes: the CDE system's groups or addresses (all its sources again),
//! a source's groups or addresses (that source against every CDE system).
//! A system's addresses and groups are its own and its interfaces'.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use petgraph::stable_graph::NodeIndex;
use psg_domain::{CloudProvider, EndpointKind, Resource, ResourceType};
use psg_reach::{Allowed, Changed, End, Peer, PolicyKind, Rules};

use super::Engine;

/// The rules a resource holds, if it is of a policy type.
pub fn policy_kind(r: &Resource) -> Option<PolicyKind> {
    match r.resource_type {
        ResourceType::SecurityGroup if r.provider == CloudProvider::Azure => Some(PolicyKind::NetworkSecurityGroup),
        ResourceType::SecurityGroup => Some(PolicyKind::SecurityGroup),
        ResourceType::PrefixList => Some(PolicyKind::PrefixList),
        ResourceType::FirewallRule => Some(PolicyKind::FirewallRule),
        ResourceType::NetworkAcl => Some(PolicyKind::NetworkAcl),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    rules: Rules,
    /// Nodes (systems and interfaces) per security group.
    members: HashMap<String, BTreeSet<NodeIndex>>,
    /// Nodes by address, for CIDR rules.
    by_addr: BTreeMap<IpAddr, BTreeSet<NodeIndex>>,
    /// Per source system: the CDE systems it can reach, and the rules that
    /// let it.
    allowed: HashMap<NodeIndex, BTreeMap<NodeIndex, Vec<Allowed>>>,
    /// Per CDE system: the systems that can reach it.
    sources: HashMap<NodeIndex, BTreeSet<NodeIndex>>,
    /// CDE systems whose sources, and sources whose CDE systems, are to be
    /// computed again.
    stale_cde: BTreeSet<NodeIndex>,
    stale_src: BTreeSet<NodeIndex>,
    stale_all: bool,
}

impl Engine {
    /// Takes in a security group, prefix list or firewall rule (a resource
    /// of a policy type). A configuration that cannot be read is dropped
    /// (ingest checked it; the previous rules stay).
    pub(super) fn upsert_policy(&mut self, r: &Resource) {
        let Some(kind) = policy_kind(r) else { return };
        let cfg = r.metadata_json.as_deref().and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok());
        match self.reach.rules.apply(kind, &r.resource_id, cfg.as_ref(), r.deleted) {
            None => {}
            Some(Changed::Everything) => self.reach.stale_all = true,
            Some(Changed::Members(ids)) => {
                // Their members' ingress (if CDE) and egress changed.
                let members: Vec<NodeIndex> =
                    ids.iter().flat_map(|id| self.reach.members.get(id).into_iter().flatten()).copied().collect();
                for m in members {
                    let system = self.system_of(m);
                    self.reach.stale_src.insert(system);
                    if self.is_cde(system) {
                        self.reach.stale_cde.insert(system);
                    }
                }
            }
        }
    }

    /// Keeps a node's groups and addresses in the indexes (called when its
    /// inventory changes, before the node's own fields are updated).
    pub(super) fn place_in_groups(&mut self, ix: NodeIndex, groups: &[String], addresses: &[IpAddr], live: bool) {
        let s = &mut self.reach;
        let n = &self.graph[ix];
        for g in &n.groups {
            if let Some(set) = s.members.get_mut(g) {
                set.remove(&ix);
            }
        }
        for a in &n.addresses {
            if let Some(set) = s.by_addr.get_mut(a) {
                set.remove(&ix);
            }
        }
        if live {
            for g in groups {
                s.members.entry(g.clone()).or_default().insert(ix);
            }
            for a in addresses {
                s.by_addr.entry(*a).or_default().insert(ix);
            }
        }
        self.graph[ix].groups = groups.to_vec();
        self.reach_changed(ix);
    }

    /// Something reachability depends on changed at `ix` (its inventory,
    /// CDE status or owner).
    pub(super) fn reach_changed(&mut self, ix: NodeIndex) {
        let system = self.system_of(ix);
        for n in [ix, system] {
            self.reach.stale_src.insert(n);
            if self.is_cde(n) || self.reach.sources.contains_key(&n) {
                self.reach.stale_cde.insert(n);
            }
        }
    }

    /// The nodes that are members of group or rule set `id`.
    pub(super) fn members_of(&self, id: &str) -> Vec<NodeIndex> {
        self.reach.members.get(id).into_iter().flatten().copied().collect()
    }

    /// The system a node is part of (itself, or its interface's owner).
    fn system_of(&self, ix: NodeIndex) -> NodeIndex {
        self.graph[ix].owner.unwrap_or(ix)
    }

    /// A system's addresses and groups: its own and its interfaces' (with
    /// their subnets' network ACLs).
    fn end_of(&self, ix: NodeIndex) -> (Vec<IpAddr>, Vec<String>) {
        let n = &self.graph[ix];
        let mut addresses = n.addresses.clone();
        let mut groups = n.groups.clone();
        self.reach.rules.subnet_layers(n.subnet_id.as_deref(), &mut groups);
        let interfaces = n
            .listed
            .iter()
            .filter_map(|i| self.nodes.get(i).copied())
            .chain(self.served_by_system(ix))
            .filter(|i| self.graph[*i].owner == Some(ix));
        for i in interfaces {
            addresses.extend(self.graph[i].addresses.iter().copied());
            groups.extend(self.graph[i].groups.iter().cloned());
            self.reach.rules.subnet_layers(self.graph[i].subnet_id.as_deref(), &mut groups);
        }
        addresses.sort_unstable();
        addresses.dedup();
        groups.sort_unstable();
        groups.dedup();
        (addresses, groups)
    }

    /// The requester-managed interfaces matched to system `ix`.
    fn served_by_system(&self, ix: NodeIndex) -> Vec<NodeIndex> {
        self.serves.get(&ix).and_then(|k| self.managed.get(k)).into_iter().flatten().copied().collect()
    }

    /// Whether a node can be a source of reachability: a live inventory
    /// system outside the CDE.
    fn can_reach(&self, ix: NodeIndex) -> bool {
        let n = &self.graph[ix];
        n.classifiable && n.kind == EndpointKind::Resource && n.owner.is_none() && !self.is_cde(ix)
    }

    /// Brings reachability up to date (before decisions are recomputed).
    pub(super) fn reach_refresh(&mut self) {
        if std::mem::take(&mut self.reach.stale_all) {
            let cde: Vec<NodeIndex> = self.graph.node_indices().filter(|ix| self.is_cde(*ix)).collect();
            self.reach.stale_cde.extend(cde);
        }
        if self.reach.rules.is_empty() && self.reach.allowed.is_empty() {
            self.reach.stale_cde.clear();
            self.reach.stale_src.clear();
            return;
        }
        let stale_cde = std::mem::take(&mut self.reach.stale_cde);
        let stale_src: Vec<NodeIndex> =
            std::mem::take(&mut self.reach.stale_src).into_iter().filter(|s| self.graph.contains_node(*s)).collect();
        // Sources first: what they reached is forgotten, then found again
        // below (against the CDE systems computed in full, by those).
        for s in &stale_src {
            self.forget_src(*s);
        }
        let mut done: BTreeSet<NodeIndex> = BTreeSet::new();
        for c in stale_cde {
            self.forget_cde(c);
            // A CDE system, not an interface: an interface is its system
            // (flows are counted the same way).
            if self.graph.contains_node(c)
                && self.is_cde(c)
                && self.graph[c].classifiable
                && self.graph[c].owner.is_none()
            {
                self.sources_of(c);
                done.insert(c);
            }
        }
        let sources: Vec<NodeIndex> = stale_src.into_iter().filter(|s| self.can_reach(*s)).collect();
        if sources.is_empty() {
            return;
        }
        // The other CDE systems, indexed by what their rules admit: groups,
        // and CIDRs (prefix lists resolved).
        let mut by_group: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
        let mut by_net: Vec<(ipnet::IpNet, NodeIndex)> = Vec::new();
        let mut ends: HashMap<NodeIndex, (Vec<IpAddr>, Vec<String>)> = HashMap::new();
        let others: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|ix| self.is_cde(*ix) && self.graph[*ix].classifiable && self.graph[*ix].owner.is_none())
            .filter(|ix| !done.contains(ix))
            .collect();
        for c in others {
            let end = self.end_of(c);
            for peer in psg_reach::ingress_peers(End { addresses: &end.0, groups: &end.1 }, &self.reach.rules) {
                match peer {
                    Peer::Group(id) => by_group.entry(id.as_str()).or_default().push(c),
                    other => by_net.extend(other.nets(&self.reach.rules).into_iter().map(|n| (n, c))),
                }
            }
            ends.insert(c, end);
        }
        let mut found: Vec<(NodeIndex, NodeIndex, Vec<Allowed>)> = Vec::new();
        for s in sources {
            let (sa, sg) = self.end_of(s);
            let mut candidates: BTreeSet<NodeIndex> =
                sg.iter().flat_map(|g| by_group.get(g.as_str()).into_iter().flatten()).copied().collect();
            candidates.extend(by_net.iter().filter(|(n, _)| sa.iter().any(|a| n.contains(a))).map(|(_, c)| *c));
            for c in candidates {
                let (ca, cg) = &ends[&c];
                let a = psg_reach::allowed(
                    End { addresses: &sa, groups: &sg },
                    End { addresses: ca, groups: cg },
                    &self.reach.rules,
                );
                if !a.is_empty() {
                    found.push((s, c, a));
                }
            }
            self.dirty.insert(s);
        }
        drop((by_group, by_net, ends));
        for (s, c, a) in found {
            self.record(s, c, a);
        }
    }

    /// Every source `c`'s groups admit.
    fn sources_of(&mut self, c: NodeIndex) {
        let (ca, cg) = self.end_of(c);
        let mut candidates: BTreeSet<NodeIndex> = BTreeSet::new();
        for peer in psg_reach::ingress_peers(End { addresses: &ca, groups: &cg }, &self.reach.rules) {
            match peer {
                Peer::Group(id) => candidates.extend(self.reach.members.get(id).into_iter().flatten()),
                other => {
                    for n in other.nets(&self.reach.rules) {
                        candidates.extend(self.reach.by_addr.range(n.network()..=n.broadcast()).flat_map(|(_, s)| s));
                    }
                }
            }
        }
        let systems: BTreeSet<NodeIndex> =
            candidates.into_iter().map(|i| self.system_of(i)).filter(|s| *s != c).collect();
        for s in systems {
            if !self.can_reach(s) {
                continue;
            }
            let (sa, sg) = self.end_of(s);
            let a = psg_reach::allowed(
                End { addresses: &sa, groups: &sg },
                End { addresses: &ca, groups: &cg },
                &self.reach.rules,
            );
            if !a.is_empty() {
                self.record(s, c, a);
            }
        }
        self.dirty.insert(c);
    }

    fn record(&mut self, s: NodeIndex, c: NodeIndex, a: Vec<Allowed>) {
        self.reach.allowed.entry(s).or_default().insert(c, a);
        self.reach.sources.entry(c).or_default().insert(s);
        self.dirty.insert(s);
    }

    fn forget_cde(&mut self, c: NodeIndex) {
        for s in self.reach.sources.remove(&c).unwrap_or_default() {
            if let Some(m) = self.reach.allowed.get_mut(&s) {
                m.remove(&c);
                if m.is_empty() {
                    self.reach.allowed.remove(&s);
                }
            }
            self.dirty.insert(s);
        }
        self.dirty.insert(c);
    }

    fn forget_src(&mut self, s: NodeIndex) {
        for c in self.reach.allowed.remove(&s).map(|m| m.into_keys().collect::<Vec<_>>()).unwrap_or_default() {
            if let Some(set) = self.reach.sources.get_mut(&c) {
                set.remove(&s);
            }
        }
        self.dirty.insert(s);
    }

    /// The CDE systems `ix` can reach by configuration, with the rules.
    pub(super) fn reachable(&self, ix: NodeIndex) -> Option<&BTreeMap<NodeIndex, Vec<Allowed>>> {
        self.reach.allowed.get(&ix).filter(|m| !m.is_empty())
    }

    /// Whether `cde`'s known groups admit `src` on `protocol`/`port`
    /// (`None`: not known, a group of `cde` is not in the inventory).
    pub(super) fn admitted(&self, src: NodeIndex, cde: NodeIndex, protocol: i32, port: i32) -> Option<bool> {
        if self.reach.rules.is_empty() {
            return None;
        }
        let (sa, sg) = self.end_of(self.system_of(src));
        let (ca, cg) = self.end_of(cde);
        psg_reach::admits(
            End { addresses: &sa, groups: &sg },
            End { addresses: &ca, groups: &cg },
            protocol,
            port,
            &self.reach.rules,
        )
    }

    /// How a justification names the rules that let `ix` reach the CDE.
    pub(super) fn reach_text(&self, peers: &BTreeMap<NodeIndex, Vec<Allowed>>) -> String {
        let mut parts: Vec<String> = peers
            .iter()
            .map(|(c, a)| {
                let mut why: Vec<String> = a.iter().map(Allowed::describe).collect();
                why.sort();
                why.dedup();
                format!("{} ({})", self.graph[*c].resource_id, why.join("; "))
            })
            .collect();
        parts.sort();
        parts.join(", ")
    }

    /// The number of groups and prefix lists known.
    pub fn policies(&self) -> (usize, usize) {
        (self.reach.rules.groups.len(), self.reach.rules.prefix_lists.len())
    }
}
