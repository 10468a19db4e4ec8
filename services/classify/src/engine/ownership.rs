//! Systems and their interfaces: which resource owns an interface (an
//! instance its ENI, an Azure VM its NIC, a requester-managed ENI the system
//! it serves), so interfaces are classified with their system instead of
//! being counted as systems.

use super::*;

impl Engine {
    /// Systems, not interfaces: a resource listing another resource among
    /// its `interface_ids` (an instance its ENI, an Azure VM its NIC, an ECS
    /// task its ENI) owns it; a requester-managed ENI belongs to the one
    /// system it serves ([`Served`]). Both in either order of their
    /// inventory records.
    pub(super) fn update_ownership(&mut self, ix: NodeIndex, r: &Resource) {
        let mut touched: Vec<NodeIndex> = vec![ix];
        let listed: Vec<String> = match r.deleted {
            true => Vec::new(),
            false => r.interface_ids.iter().filter(|i| **i != r.resource_id).cloned().collect(),
        };
        let before = std::mem::take(&mut self.graph[ix].listed);
        for id in before.iter().filter(|i| !listed.contains(i)) {
            if self.owner_of.get(id).is_some_and(|o| *o == r.resource_id) {
                self.owner_of.remove(id);
                touched.extend(self.nodes.get(id));
            }
        }
        for id in &listed {
            self.owner_of.insert(id.clone(), r.resource_id.clone());
            touched.extend(self.nodes.get(id));
        }
        self.graph[ix].listed = listed;

        // What it serves (a system), or whom it is served by (an ENI).
        let (serves, served_by) = match r.deleted {
            true => (None, None),
            false => Served::of(r),
        };
        self.subnets.remove(&ix);
        let subnets = match (&serves, &served_by) {
            (Some(Served::Rds(..)), _) => rds_subnets(r),
            (_, Some(Served::Rds(..))) => r.subnet_id.iter().cloned().collect(),
            _ => Vec::new(),
        };
        if !subnets.is_empty() {
            self.subnets.insert(ix, subnets);
        }
        let mut keys: Vec<Served> = Vec::new();
        if let Some(old) = self.serves.remove(&ix) {
            if let Some(set) = self.serving.get_mut(&old) {
                set.remove(&ix);
            }
            keys.push(old);
        }
        if let Some(old) = self.served_by.remove(&ix) {
            if let Some(set) = self.managed.get_mut(&old) {
                set.remove(&ix);
            }
        }
        if let Some(k) = serves {
            self.serving.entry(k.clone()).or_default().insert(ix);
            self.serves.insert(ix, k.clone());
            keys.push(k);
        }
        if let Some(k) = served_by {
            self.managed.entry(k.clone()).or_default().insert(ix);
            self.served_by.insert(ix, k);
        }
        for k in &keys {
            touched.extend(self.managed.get(k).into_iter().flatten().copied());
        }
        touched.sort_unstable();
        touched.dedup();
        for n in touched {
            self.resolve_owner(n);
        }
    }

    /// Settles who owns interface `ix`: the system listing it, else the one
    /// system a requester-managed ENI serves; says why when there is none.
    pub(super) fn resolve_owner(&mut self, ix: NodeIndex) {
        let n = &self.graph[ix];
        if n.kind != EndpointKind::Resource || !n.classifiable {
            self.set_note(ix, None);
            self.set_owner(ix, None);
            return;
        }
        let listed = self.owner_of.get(&n.resource_id).and_then(|o| self.nodes.get(o)).copied().filter(|o| *o != ix);
        let (owner, note) = match (listed, self.served_by.get(&ix)) {
            (Some(o), _) => (Some(o), None),
            (None, Some(key)) => {
                let systems: Vec<NodeIndex> = self
                    .serving
                    .get(key)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|s| *s != ix && self.graph[*s].classifiable)
                    .filter(|s| self.in_subnets(ix, *s))
                    .collect();
                match systems.as_slice() {
                    [one] => (Some(*one), None),
                    _ => (None, Some(key.unmatched(systems.len()))),
                }
            }
            (None, None) if n.resource_type == Some(ResourceType::NetworkInterface) => (
                None,
                Some("A network interface that no system in the inventory lists: a system of its own.".to_owned()),
            ),
            (None, None) => (None, None),
        };
        self.set_note(ix, note);
        self.set_owner(ix, owner);
    }

    /// Whether interface `eni`'s subnet is in system `s`'s subnet group
    /// (true where either is unknown).
    pub(super) fn in_subnets(&self, eni: NodeIndex, s: NodeIndex) -> bool {
        match (self.subnets.get(&eni).and_then(|v| v.first()), self.subnets.get(&s)) {
            (Some(subnet), Some(group)) => group.contains(subnet),
            _ => true,
        }
    }

    /// What the justification of a node adds about its place (an interface
    /// kept a system of its own, and why).
    pub(super) fn set_note(&mut self, ix: NodeIndex, note: Option<String>) {
        if self.graph[ix].note != note {
            self.graph[ix].note = note;
            self.graph[ix].decided = None;
            self.dirty.insert(ix);
        }
    }

    /// Makes `ix` an interface of `owner` (or a system of its own again):
    /// the flows seen on the interface become the owner's.
    pub(super) fn set_owner(&mut self, ix: NodeIndex, owner: Option<NodeIndex>) {
        if self.graph[ix].owner == owner {
            return;
        }
        let before = self.graph[ix].owner;
        self.graph[ix].owner = owner;
        self.dirty.insert(ix);
        // Decided afresh: as part of its system, or on its own again.
        self.graph[ix].decided = None;
        for n in [Some(ix), before, owner].into_iter().flatten() {
            self.reach_changed(n);
        }
        let Some(o) = owner else { return };
        self.dirty.insert(o);
        let mut moved = Vec::new();
        for dir in [Direction::Outgoing, Direction::Incoming] {
            moved.extend(self.graph.edges_directed(ix, dir).map(|e| (e.id(), e.source(), e.target())));
        }
        moved.sort();
        moved.dedup();
        for (eix, a, b) in moved {
            let Some(services) = self.graph.remove_edge(eix) else { continue };
            let (a, b) = (if a == ix { o } else { a }, if b == ix { o } else { b });
            self.dirty.insert(a);
            self.dirty.insert(b);
            let target = match self.graph.find_edge(a, b) {
                Some(e) => e,
                None => self.graph.add_edge(a, b, SmallVec::new()),
            };
            for (svc, seen) in services {
                merge_service(&mut self.graph[target], svc, seen);
            }
        }
    }
}

/// The subnets of an RDS instance's subnet group (AWS Config's
/// `dBSubnetGroup.subnets[].subnetIdentifier`, in the configuration ingest
/// keeps as metadata), else its subnet.
fn rds_subnets(r: &Resource) -> Vec<String> {
    let from_config =
        r.metadata_json.as_deref().and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok()).map(|c| {
            ["dBSubnetGroup", "dbSubnetGroup", "DBSubnetGroup"]
                .iter()
                .filter_map(|k| c.get(k))
                .flat_map(|g| g.get("subnets").and_then(|s| s.as_array()).into_iter().flatten())
                .filter_map(|s| s.get("subnetIdentifier").and_then(|i| i.as_str()).map(str::to_owned))
                .collect::<Vec<_>>()
        });
    match from_config {
        Some(v) if !v.is_empty() => v,
        _ => r.subnet_id.iter().cloned().collect(),
    }
}
