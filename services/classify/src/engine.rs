//! The scope engine: scope rules (v2) and alert rules over a graph of
//! resources and flows. Pure: no Kafka, no database, no wall clock.
//!
//! Rules, in order, first match wins:
//! 1. a current manual decision → its scope;
//! 2. declared `cde`, or any data classification → `cde`;
//! 3. an ACCEPTed flow in either direction with a `cde` resource inside the
//!    lookback window → `connected-cde` (the justification names the CDE
//!    peers, protocols, ports, first and last seen);
//! 4. security groups let it connect to a `cde` system → `connected-cde`
//!    (rule `reachable`, naming the rules; see [`reach`]);
//! 5. declared `connected-cde` → `connected-cde`;
//! 6. declared `out-of-scope`, with flow-log coverage over the lookback →
//!    `out-of-scope` (without: `pending-review`; see [`coverage`]);
//! 7. otherwise → `pending-review`.
//!
//! REJECTed flows never connect anything. Whether a resource is `cde`
//! depends only on itself (rules 1–2), so a change to a resource can change
//! the decision of that resource and of its neighbours only, plus the
//! systems whose reachability or coverage it changes (those modules mark
//! them): those are the ones recomputed. "Now" for the lookback window is
//! the watermark, the latest `last_seen` of any edge or coverage record;
//! edges older than the lookback expire.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::policy::{Policy, Subject};
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use psg_domain::time::{Micros, rfc3339};
use psg_domain::{
    AlertType, DataClassification, EndpointKind, FlowAction, FlowEdge, PciScope, Resource, ResourceType, ScopeRule,
};
use smallvec::SmallVec;

/// Tag keys, the lookback window and the segmentation policy.
#[derive(Debug, Clone)]
pub struct Settings {
    pub scope_tag_key: String,
    pub data_tag_key: String,
    pub lookback: Micros,
    /// With a policy, every ACCEPTed flow touching the CDE that no allow rule
    /// matches is a segmentation violation.
    pub policy: Option<std::sync::Arc<Policy>>,
    /// Event time after the first flow-log record before missing coverage
    /// is judged (see [`coverage`]).
    pub coverage_grace: Micros,
}

/// A computed scope, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub scope: PciScope,
    pub classification: Option<DataClassification>,
    pub rule: ScopeRule,
    pub justification: String,
    /// CDE peers behind a rule-3 decision, sorted.
    pub dependencies: Vec<String>,
}

impl Outcome {
    /// Whether `other` is a different decision (scope or classification).
    pub fn differs(&self, other: &Outcome) -> bool {
        self.scope != other.scope || self.classification != other.classification
    }
}

/// A changed decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub resource_id: String,
    pub outcome: Outcome,
    pub previous: Option<Outcome>,
}

/// What happened to an alert's condition in one recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertEvent {
    /// The condition began (or came back after it had ended).
    Raised,
    /// The condition still holds, but what the alert says changed (a
    /// drifted resource drifted further, say): the same alert, reworded.
    Updated,
    /// The condition no longer holds (lookback expiry, tag fixed, manual
    /// decision, policy change, resource deleted).
    Resolved,
}

impl AlertEvent {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Updated => "updated",
            Self::Resolved => "resolved",
        }
    }
}

/// An alert the current state calls for, or one it no longer calls for.
/// One alert per resource and cause: the downstream id is type + resource +
/// `cause`, so an update or a resolution names the alert it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCandidate {
    pub event: AlertEvent,
    pub alert_type: AlertType,
    pub resource_id: String,
    /// What distinguishes this alert from others of its type and resource.
    pub cause: String,
    pub title: String,
    pub description: String,
    pub pci_requirement: &'static str,
    pub context: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Node {
    resource_id: String,
    /// The inventory's name, when it has one other than the id.
    name: Option<String>,
    kind: EndpointKind,
    /// Inventory resource known (or an unknown host): it gets decisions.
    classifiable: bool,
    resource_type: Option<ResourceType>,
    tags: HashMap<String, String>,
    manual: Option<(PciScope, String)>,
    /// Cached from the tags: the declared scope and data classification.
    declared: Option<PciScope>,
    data: Option<DataClassification>,
    /// Cached: rules 1–2 make it CDE.
    cde: bool,
    /// The scope and classification last decided.
    decided: Option<Remembered>,
    address: Option<String>,
    vpc_id: Option<String>,
    subnet_id: Option<String>,
    /// Its security groups (inventory `security_groups`).
    groups: Vec<String>,
    /// Every address the node holds (for CIDR segments).
    addresses: Vec<IpAddr>,
    /// The system this interface belongs to (a resource whose
    /// `interface_ids` name it): classified with it, never alone.
    owner: Option<NodeIndex>,
    /// The interfaces this resource's inventory lists (`interface_ids`).
    listed: Vec<String>,
    /// Added to the justification: why an interface is a system of its own.
    note: Option<String>,
}

/// (protocol, destination port, action).
type Service = (i32, i32, FlowAction);

/// What a node was last decided: scope, classification and the rule.
type Decided = (PciScope, Option<DataClassification>, ScopeRule);

/// What a node is known to have been decided: the rule is unknown for a
/// decision restored from the database (it keeps none).
type Remembered = (PciScope, Option<DataClassification>, Option<ScopeRule>);

/// The services seen on one directed edge; almost always one, kept inline.
type Services = SmallVec<[(Service, Seen); 1]>;

/// The services seen between a node and one peer, with the direction
/// (`to` / `from` the node).
type PeerServices = Vec<(Service, Seen, &'static str)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    first: Micros,
    last: Micros,
    /// Flow records (saturating: only a size, and kept small with the
    /// flag beside it, so a service stays 40 bytes).
    flows: u32,
    /// Whether any report logged the action; `false`: every one came from
    /// a format without `action` and was counted as accepted.
    action_logged: bool,
}

impl Seen {
    /// What a justification adds about how the action was known.
    fn action_note(&self) -> &'static str {
        if self.action_logged { "" } else { " (action not logged: counted as accepted)" }
    }
}

/// The scope graph and the last decision of each resource.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    graph: StableDiGraph<Node, Services>,
    nodes: HashMap<String, NodeIndex>,
    watermark: Micros,
    /// The lookback cutoff of the last expiry sweep.
    swept: Micros,
    dirty: HashSet<NodeIndex, foldhash::fast::RandomState>,
    /// Per node index: whether it is CDE (a compact copy of `Node::cde`, so
    /// walking edges does not touch every peer's node).
    cde_bits: Vec<bool>,
    /// The alert conditions each node is in, as last reported: a condition
    /// that appears is raised, one that changes its wording is updated, one
    /// that disappears is resolved.
    active: HashMap<NodeIndex, SmallVec<[AlertKey; 1]>, foldhash::fast::RandomState>,
    /// Nodes whose computed scope drifted (and no declared scope covers
    /// it): the scope before the drift began, and the scope now.
    drift: HashMap<NodeIndex, (PciScope, PciScope), foldhash::fast::RandomState>,
    last: HashMap<String, Outcome>,
    /// Interface resource id → the resource whose inventory lists it.
    owner_of: HashMap<String, String>,
    /// Systems by what they serve, and what each serves.
    serving: HashMap<Served, std::collections::BTreeSet<NodeIndex>>,
    serves: HashMap<NodeIndex, Served>,
    /// Requester-managed ENIs by the system they serve, and each one's.
    managed: HashMap<Served, std::collections::BTreeSet<NodeIndex>>,
    served_by: HashMap<NodeIndex, Served>,
    /// Subnets: of an RDS instance's subnet group, and of an RDS ENI.
    subnets: HashMap<NodeIndex, Vec<String>>,
    /// Flow-log coverage, and the `coverage_gap` alerts open.
    coverage: coverage::State,
    /// Security groups, and what they let reach the CDE.
    reach: reach::State,
}

/// What a requester-managed ENI says of the system it serves, and what a
/// system offers to be matched by. AWS Config's ENI items name a load
/// balancer (`ELB app/<name>/<id>`), a Lambda function and an EKS cluster
/// (ingest types the ENI by it and names it so); an RDS instance's ENI
/// (`RDSNetworkInterface`) names nothing: it matches the instance of its
/// VPC with the same security groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Served {
    /// Type, account, name (`app/<name>/<id>` for a load balancer).
    Named(ResourceType, Option<String>, String),
    /// VPC and security groups (sorted) of an RDS instance.
    Rds(String, Vec<String>),
}

impl Served {
    /// (what `r` serves as a system, whom `r` is served by as an ENI).
    fn of(r: &Resource) -> (Option<Self>, Option<Self>) {
        let eni = r.provider == psg_domain::CloudProvider::Aws && r.resource_id.starts_with("eni-");
        let account = r.account_id.clone();
        let named = |t: ResourceType, name: Option<&str>| {
            name.filter(|n| !n.is_empty()).map(|n| Self::Named(t, account.clone(), n.to_owned()))
        };
        let rds = || {
            let vpc = r.vpc_id.clone().filter(|v| !v.is_empty())?;
            let mut groups = r.security_groups.clone();
            groups.sort();
            groups.dedup();
            (!groups.is_empty()).then_some(Self::Rds(vpc, groups))
        };
        match (r.resource_type, eni) {
            (t @ (ResourceType::Elb | ResourceType::LambdaFunction | ResourceType::EksCluster), true) => {
                (None, named(t, r.resource_name.as_deref()))
            }
            (ResourceType::NetworkInterface, true)
                if r.metadata_json.as_deref().is_some_and(|m| m.contains("RDSNetworkInterface")) =>
            {
                (None, rds())
            }
            (ResourceType::Elb, false) => {
                let arn = r.resource_arn.as_deref().or(Some(r.resource_id.as_str()));
                (named(ResourceType::Elb, arn.and_then(|a| a.split_once(":loadbalancer/")).map(|(_, n)| n)), None)
            }
            (t @ (ResourceType::LambdaFunction | ResourceType::EksCluster), false) => {
                (named(t, r.resource_name.as_deref()), None)
            }
            (ResourceType::RdsInstance, _) => (rds(), None),
            _ => (None, None),
        }
    }

    /// Why an ENI serving this matched `n` systems, not one.
    fn unmatched(&self, n: usize) -> String {
        match self {
            Self::Rds(vpc, groups) if n == 0 => format!(
                "An RDS network interface: no RDS instance in the inventory of {vpc} has its security groups ({}), so it stays a system of its own.",
                groups.join(", ")
            ),
            Self::Rds(vpc, groups) => format!(
                "An RDS network interface: {n} RDS instances of {vpc} share its security groups ({}) and a subnet group holding its subnet, so it cannot be told whose it is and stays a system of its own.",
                groups.join(", ")
            ),
            Self::Named(t, _, name) if n == 0 => {
                format!("A network interface of {t} {name}, which is not in the inventory: a system of its own.")
            }
            Self::Named(t, _, name) => {
                format!("A network interface of {t} {name}, a name {n} resources share: a system of its own.")
            }
        }
    }
}

impl Engine {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            graph: StableDiGraph::new(),
            nodes: HashMap::new(),
            watermark: Micros::MIN,
            swept: Micros::MIN,
            dirty: HashSet::default(),
            active: HashMap::default(),
            drift: HashMap::default(),
            cde_bits: Vec::new(),
            last: HashMap::new(),
            owner_of: HashMap::new(),
            serving: HashMap::new(),
            serves: HashMap::new(),
            managed: HashMap::new(),
            served_by: HashMap::new(),
            subnets: HashMap::new(),
            coverage: coverage::State::default(),
            reach: reach::State::default(),
        }
    }

    pub fn watermark(&self) -> Micros {
        self.watermark
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_weights().map(SmallVec::len).sum()
    }

    /// The last decision of each resource.
    pub fn decisions(&self) -> &HashMap<String, Outcome> {
        &self.last
    }

    /// Whether `resource_id` gets decisions (a live inventory resource or an
    /// unknown host).
    pub fn is_classifiable(&self, resource_id: &str) -> bool {
        self.nodes.get(resource_id).is_some_and(|ix| self.graph[*ix].classifiable)
    }

    /// Recomputes every node from scratch (not only the changed ones).
    pub fn recompute_all(&mut self) -> (Vec<Change>, Vec<AlertCandidate>) {
        self.dirty.extend(self.graph.node_indices());
        self.recompute()
    }

    /// Records that `resource_id`'s current decision is `outcome` (restoring
    /// state at start), so that the same outcome is not decided again.
    pub fn remember(&mut self, resource_id: &str, outcome: Outcome) {
        if let Some(ix) = self.nodes.get(resource_id) {
            self.graph[*ix].decided = Some((outcome.scope, outcome.classification, None));
        }
        self.last.insert(resource_id.to_owned(), outcome);
    }

    fn node(&mut self, resource_id: &str, kind: EndpointKind) -> NodeIndex {
        if let Some(ix) = self.nodes.get(resource_id) {
            return *ix;
        }
        let ix = self.graph.add_node(Node {
            resource_id: resource_id.to_owned(),
            name: None,
            kind,
            classifiable: kind == EndpointKind::UnknownHost,
            resource_type: None,
            tags: HashMap::new(),
            manual: None,
            declared: None,
            data: None,
            cde: false,
            decided: self.last.get(resource_id).map(|o| (o.scope, o.classification, None)),
            address: None,
            vpc_id: None,
            subnet_id: None,
            groups: Vec::new(),
            addresses: Vec::new(),
            owner: None,
            listed: Vec::new(),
            note: None,
        });
        self.nodes.insert(resource_id.to_owned(), ix);
        ix
    }

    fn mark_with_neighbours(&mut self, ix: NodeIndex) {
        self.dirty.insert(ix);
        let neighbours: Vec<NodeIndex> = self.graph.neighbors_undirected(ix).collect();
        self.dirty.extend(neighbours);
    }

    /// Applies an inventory observation (tags, type, deletion).
    pub fn upsert_resource(&mut self, r: &Resource) {
        if r.resource_type == ResourceType::FlowLog {
            // What flow logs are configured, not a system.
            self.upsert_flow_log(r);
            return;
        }
        if r.resource_type.is_policy() {
            // Firewall rules, not a system.
            self.upsert_policy(r);
            return;
        }
        let ix = self.node(&r.resource_id, EndpointKind::Resource);
        let node = &mut self.graph[ix];
        node.kind = EndpointKind::Resource;
        node.classifiable = !r.deleted;
        node.resource_type = Some(r.resource_type);
        node.name = r.resource_name.clone().filter(|n| !n.is_empty() && *n != r.resource_id);
        node.tags = r.tags.clone();
        let addresses: Vec<IpAddr> = r.private_ips.iter().chain(&r.public_ips).filter_map(|a| a.parse().ok()).collect();
        self.place_in_groups(ix, &r.security_groups, &addresses, !r.deleted);
        self.graph[ix].addresses = addresses;
        self.place_system(ix, r.vpc_id.clone(), r.subnet_id.clone(), !r.deleted);
        self.refresh(ix);
        self.mark_with_neighbours(ix);
        self.update_ownership(ix, r);
    }

    /// Systems, not interfaces: a resource listing another resource among
    /// its `interface_ids` (an instance its ENI, an Azure VM its NIC, an ECS
    /// task its ENI) owns it; a requester-managed ENI belongs to the one
    /// system it serves ([`Served`]). Both in either order of their
    /// inventory records.
    fn update_ownership(&mut self, ix: NodeIndex, r: &Resource) {
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
    fn resolve_owner(&mut self, ix: NodeIndex) {
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
    fn in_subnets(&self, eni: NodeIndex, s: NodeIndex) -> bool {
        match (self.subnets.get(&eni).and_then(|v| v.first()), self.subnets.get(&s)) {
            (Some(subnet), Some(group)) => group.contains(subnet),
            _ => true,
        }
    }

    /// What the justification of a node adds about its place (an interface
    /// kept a system of its own, and why).
    fn set_note(&mut self, ix: NodeIndex, note: Option<String>) {
        if self.graph[ix].note != note {
            self.graph[ix].note = note;
            self.graph[ix].decided = None;
            self.dirty.insert(ix);
        }
    }

    /// Makes `ix` an interface of `owner` (or a system of its own again):
    /// the flows seen on the interface become the owner's.
    fn set_owner(&mut self, ix: NodeIndex, owner: Option<NodeIndex>) {
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

    /// Sets (or with `None` clears) the manual decision of a resource.
    pub fn set_manual(&mut self, resource_id: &str, manual: Option<(PciScope, String)>) {
        let ix = self.node(resource_id, EndpointKind::Resource);
        self.graph[ix].manual = manual;
        self.refresh(ix);
        self.mark_with_neighbours(ix);
    }

    /// Adds what an edge message says: the service is seen between its two
    /// ends from `first_seen` to `last_seen`.
    pub fn add_edge(&mut self, e: &FlowEdge) {
        if e.kind == psg_domain::EdgeKind::Withdrawn {
            self.withdraw(&e.src.resource_id, &e.dst.resource_id, (e.protocol, e.dst_port, e.action));
            return;
        }
        let flows = if e.kind == psg_domain::EdgeKind::Window { e.flows } else { 0 };
        let logged = e.action != FlowAction::Accept || e.action_logged;
        self.observe(
            &e.src.resource_id,
            e.src.kind,
            e.src.address.as_deref(),
            &e.dst.resource_id,
            e.dst.kind,
            e.dst.address.as_deref(),
            (e.protocol, e.dst_port, e.action),
            e.first_seen,
            e.last_seen,
            flows,
            logged,
        );
    }

    /// Adds an observation of `service` between two ends.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        src: &str,
        src_kind: EndpointKind,
        src_addr: Option<&str>,
        dst: &str,
        dst_kind: EndpointKind,
        dst_addr: Option<&str>,
        service: Service,
        first_seen: Micros,
        last_seen: Micros,
        flows: i64,
        action_logged: bool,
    ) {
        if last_seen < self.cutoff() {
            return; // already outside the lookback window
        }
        let s = self.node(src, src_kind);
        let d = self.node(dst, dst_kind);
        // A flow of an interface is its system's.
        let (s, d) = (self.graph[s].owner.unwrap_or(s), self.graph[d].owner.unwrap_or(d));
        for (ix, addr) in [(s, src_addr), (d, dst_addr)] {
            let node = &mut self.graph[ix];
            if node.address.is_none() {
                node.address = addr.map(str::to_owned);
                if node.kind != EndpointKind::Resource
                    && let Some(ip) = addr.and_then(|a| a.parse::<IpAddr>().ok())
                {
                    node.addresses = vec![ip];
                }
            }
        }
        let eix = match self.graph.find_edge(s, d) {
            Some(e) => e,
            None => self.graph.add_edge(s, d, SmallVec::new()),
        };
        let flows = u32::try_from(flows.max(0)).unwrap_or(u32::MAX);
        merge_service(&mut self.graph[eix], service, Seen { first: first_seen, last: last_seen, flows, action_logged });
        self.watermark = self.watermark.max(last_seen);
        self.dirty.insert(s);
        self.dirty.insert(d);
    }

    /// Correlate found every accepted report of `service` from `src` to
    /// `dst` blocked by the other end: the service was never established.
    /// (Between two systems, another interface's accepted connection of
    /// the same service is announced again by its window edge.)
    pub fn withdraw(&mut self, src: &str, dst: &str, service: Service) {
        let (Some(&s), Some(&d)) = (self.nodes.get(src), self.nodes.get(dst)) else { return };
        let (s, d) = (self.graph[s].owner.unwrap_or(s), self.graph[d].owner.unwrap_or(d));
        let Some(eix) = self.graph.find_edge(s, d) else { return };
        let services = &mut self.graph[eix];
        let before = services.len();
        services.retain(|(sv, _)| *sv != service);
        if services.len() == before {
            return;
        }
        if services.is_empty() {
            self.graph.remove_edge(eix);
        }
        self.dirty.insert(s);
        self.dirty.insert(d);
    }

    /// The lookback cutoff: edges last seen before it no longer connect.
    /// "Now" is the watermark, taken to the hour, so expiry sweeps the graph
    /// at most once per hour of event time.
    fn cutoff(&self) -> Micros {
        const HOUR: Micros = 3_600 * psg_domain::time::SECOND;
        if self.watermark == Micros::MIN {
            return Micros::MIN;
        }
        (self.watermark.div_euclid(HOUR) * HOUR).saturating_sub(self.settings.lookback)
    }

    /// Drops the services (and edges) last seen before the cutoff; whether
    /// the cutoff moved.
    fn expire(&mut self) -> bool {
        let cutoff = self.cutoff();
        if cutoff <= self.swept {
            return false;
        }
        self.swept = cutoff;
        let edges: Vec<EdgeIndex> = self.graph.edge_indices().collect();
        for eix in edges {
            let Some(services) = self.graph.edge_weight_mut(eix) else { continue };
            let before = services.len();
            services.retain(|(_, seen)| seen.last >= cutoff);
            if services.len() == before {
                continue;
            }
            let empty = services.is_empty();
            if let Some((a, b)) = self.graph.edge_endpoints(eix) {
                self.dirty.insert(a);
                self.dirty.insert(b);
            }
            if empty {
                self.graph.remove_edge(eix);
            }
        }
        true
    }

    fn declared(&self, ix: NodeIndex) -> Option<PciScope> {
        self.graph[ix].declared
    }

    fn data_class(&self, ix: NodeIndex) -> Option<DataClassification> {
        self.graph[ix].data
    }

    /// Recomputes a node's cached facts after its tags or manual decision changed.
    fn refresh(&mut self, ix: NodeIndex) {
        let was = self.is_cde(ix);
        let n = &mut self.graph[ix];
        n.declared = n.tags.get(&self.settings.scope_tag_key).and_then(|v| v.parse().ok());
        n.data = n.tags.get(&self.settings.data_tag_key).and_then(|v| v.parse().ok());
        n.cde = match &n.manual {
            Some((scope, _)) => *scope == PciScope::Cde,
            None => n.kind != EndpointKind::External && (n.declared == Some(PciScope::Cde) || n.data.is_some()),
        };
        let cde = n.cde;
        let i = ix.index();
        if self.cde_bits.len() <= i {
            self.cde_bits.resize(i + 1, false);
        }
        self.cde_bits[i] = cde;
        if was != cde {
            self.reach_changed(ix);
        }
    }

    /// Rules 1–2 only: whether this node is in the CDE.
    fn is_cde(&self, ix: NodeIndex) -> bool {
        self.cde_bits.get(ix.index()).copied().unwrap_or(false)
    }

    /// ACCEPTed services between `ix` and each peer, either direction.
    fn accepted_peers(&self, ix: NodeIndex) -> BTreeMap<String, PeerServices> {
        let mut peers: BTreeMap<String, PeerServices> = BTreeMap::new();
        for (dir, label) in [(Direction::Outgoing, "to"), (Direction::Incoming, "from")] {
            for e in self.graph.edges_directed(ix, dir) {
                let peer = if dir == Direction::Outgoing { e.target() } else { e.source() };
                if peer == ix {
                    continue;
                }
                for (svc, seen) in e.weight().iter().filter(|(s, _)| s.2 == FlowAction::Accept) {
                    peers.entry(self.graph[peer].resource_id.clone()).or_default().push((*svc, *seen, label));
                }
            }
        }
        peers
    }

    /// The decision rules for one node.
    fn outcome(&self, ix: NodeIndex) -> Outcome {
        let mut o = self.outcome_by_rules(ix);
        if let Some(note) = &self.graph[ix].note {
            o.justification.push(' ');
            o.justification.push_str(note);
        }
        o
    }

    fn outcome_by_rules(&self, ix: NodeIndex) -> Outcome {
        let n = &self.graph[ix];
        let key = &self.settings.scope_tag_key;
        let plain = |scope, rule, justification: String| Outcome {
            scope,
            classification: None,
            rule,
            justification,
            dependencies: Vec::new(),
        };
        if let Some((scope, why)) = &n.manual {
            return plain(*scope, ScopeRule::ManualDecision, format!("Manual decision: {why}"));
        }
        let declared = self.declared(ix);
        if let Some(class) = self.data_class(ix) {
            return Outcome {
                classification: Some(class),
                ..plain(
                    PciScope::Cde,
                    ScopeRule::DeclaredCde,
                    format!("Handles cardholder data: tag {}={}.", self.settings.data_tag_key, class),
                )
            };
        }
        if declared == Some(PciScope::Cde) {
            return plain(PciScope::Cde, ScopeRule::DeclaredCde, format!("Declared CDE: tag {key}=cde."));
        }
        let cde_peers: Vec<(String, PeerServices)> = self
            .accepted_peers(ix)
            .into_iter()
            .filter(|(peer, _)| self.nodes.get(peer).is_some_and(|p| self.is_cde(*p)))
            .collect();
        if !cde_peers.is_empty() {
            let parts: Vec<String> = cde_peers
                .iter()
                .map(|(peer, services)| {
                    let mut s: Vec<String> = services
                        .iter()
                        .map(|((proto, port, _), seen, dir)| {
                            format!(
                                "{} {}/{} first seen {} last seen {}{}",
                                dir,
                                psg_domain::protocol_name(*proto),
                                port,
                                rfc3339(seen.first),
                                rfc3339(seen.last),
                                seen.action_note()
                            )
                        })
                        .collect();
                    s.sort();
                    format!("{peer} ({})", s.join("; "))
                })
                .collect();
            return Outcome {
                dependencies: cde_peers.iter().map(|(p, _)| p.clone()).collect(),
                ..plain(
                    PciScope::ConnectedCde,
                    ScopeRule::CdeConnection,
                    format!("ACCEPTed flows with CDE systems within the lookback window: {}.", parts.join(", ")),
                )
            };
        }
        if let Some(peers) = self.reachable(ix) {
            let mut dependencies: Vec<String> = peers.keys().map(|c| self.graph[*c].resource_id.clone()).collect();
            dependencies.sort();
            return Outcome {
                dependencies,
                ..plain(
                    PciScope::ConnectedCde,
                    ScopeRule::Reachable,
                    format!(
                        "No ACCEPTed flow with the CDE within the lookback window, but its configuration lets it connect to CDE systems: {}.",
                        self.reach_text(peers)
                    ),
                )
            };
        }
        match declared {
            Some(PciScope::ConnectedCde) => plain(
                PciScope::ConnectedCde,
                ScopeRule::DeclaredConnected,
                format!("Declared connected-to-CDE: tag {key}=connected-cde."),
            ),
            Some(PciScope::OutOfScope) => match self.coverage_verdict(ix) {
                coverage::Verdict::Unjudged => plain(
                    PciScope::OutOfScope,
                    ScopeRule::DeclaredOutOfScope,
                    format!(
                        "Declared out of scope (tag {key}=out-of-scope) and no ACCEPTed flow with the CDE within the lookback window."
                    ),
                ),
                coverage::Verdict::Covered { what, span } => plain(
                    PciScope::OutOfScope,
                    ScopeRule::DeclaredOutOfScope,
                    format!(
                        "Declared out of scope (tag {key}=out-of-scope) and no ACCEPTed flow with the CDE within the lookback window; flow logs of {what} cover it (records from {} to {}).",
                        rfc3339(span.first),
                        rfc3339(span.last)
                    ),
                ),
                coverage::Verdict::RejectOnly { what } => plain(
                    PciScope::PendingReview,
                    ScopeRule::NoFlowLogCoverage,
                    format!(
                        "Declared out of scope (tag {key}=out-of-scope), but its flow logs record REJECTed traffic only ({what}): the accepted connections that decide scope are not logged, so their absence proves nothing. Needs review."
                    ),
                ),
                coverage::Verdict::Missing { place, last } => plain(
                    PciScope::PendingReview,
                    ScopeRule::NoFlowLogCoverage,
                    format!(
                        "Declared out of scope (tag {key}=out-of-scope), but no flow logs from {place} since {}{}: without flow-log coverage the absence of flows with the CDE proves nothing. Needs review.",
                        rfc3339(self.cutoff().max(0)),
                        last.map(|t| format!(" (last record {})", rfc3339(t))).unwrap_or_default()
                    ),
                ),
            },
            _ => plain(
                PciScope::PendingReview,
                ScopeRule::NoScopeTag,
                format!("No {key} tag and no ACCEPTed flow with the CDE within the lookback window: needs review."),
            ),
        }
    }

    /// Recomputes every node a change since the last call can affect;
    /// returns the changed decisions and the alerts the state newly calls
    /// for (both sorted, so the output is deterministic). Only changed
    /// decisions and new alerts are put into words.
    pub fn recompute(&mut self) -> (Vec<Change>, Vec<AlertCandidate>) {
        let moved = self.expire();
        self.coverage_before_recompute(moved);
        self.reach_refresh();
        let mut dirty: Vec<NodeIndex> =
            std::mem::take(&mut self.dirty).into_iter().filter(|ix| self.graph.contains_node(*ix)).collect();
        // Interfaces follow their systems, which are decided first.
        let interfaces: Vec<NodeIndex> = dirty
            .iter()
            .flat_map(|ix| self.graph[*ix].listed.iter().filter_map(|id| self.nodes.get(id).copied()))
            .collect();
        dirty.extend(interfaces);
        dirty.sort_unstable();
        dirty.dedup();
        dirty.sort_by_key(|ix| self.graph[*ix].owner.is_some());
        let mut changes = Vec::new();
        let mut alerts = Vec::new();
        // Many nodes to look at: find the CDE's accepted neighbours once, from
        // the CDE side, instead of searching every node's edges for a CDE peer.
        let near = (dirty.len() > 64 && dirty.len() * 8 > self.graph.node_count()).then(|| self.near_cde());
        for ix in dirty {
            if !self.graph[ix].classifiable {
                // Deleted: whatever it was alerted for has no cause left.
                self.drift.remove(&ix);
                self.reconcile(ix, SmallVec::new(), &mut alerts);
                continue;
            }
            if let Some(owned) = self.graph[ix].owner.and_then(|o| self.interface_outcome(o)) {
                // An interface: its system's decision, no alert of its own.
                let rid = self.graph[ix].resource_id.clone();
                let previous = self.last.get(&rid).cloned();
                if previous
                    .as_ref()
                    .is_none_or(|p| p.differs(&owned) || p.rule != owned.rule || p.dependencies != owned.dependencies)
                {
                    self.graph[ix].decided = Some((owned.scope, owned.classification, Some(owned.rule)));
                    self.last.insert(rid.clone(), owned.clone());
                    changes.push(Change { resource_id: rid, outcome: owned, previous });
                }
                self.drift.remove(&ix);
                self.reconcile(ix, SmallVec::new(), &mut alerts);
                continue;
            }
            let near_cde = match &near {
                Some(set) => set.contains(&ix),
                None => self.has_accepted_cde_peer(ix),
            };
            let (scope, class, rule) = self.quick_scope(ix, near_cde);
            // A declared scope is the baseline drift is measured against:
            // the declared-vs-computed alert covers it, one alert per cause.
            let declared_covers = self.graph[ix].declared.is_some() && self.graph[ix].manual.is_none();
            // A new decision when the scope, classification or rule changes
            // (a reachable system whose flow is then seen is decided again:
            // the result does not depend on the order of events).
            let same =
                self.graph[ix].decided.is_some_and(|(s, c, r)| s == scope && c == class && r.is_none_or(|r| r == rule));
            if same {
                // A restored decision learns its rule without a new one.
                self.graph[ix].decided = Some((scope, class, Some(rule)));
            } else {
                let outcome = self.outcome(ix);
                let rid = self.graph[ix].resource_id.clone();
                let previous = self.last.get(&rid).cloned();
                // pending-review is "not determined yet": leaving it is the
                // first determination, not drift (the declared-tag check
                // still catches a declared scope that flows contradict).
                if let Some(p) = &previous
                    && p.scope != outcome.scope
                {
                    match self.drift.get(&ix).map(|d| d.0) {
                        Some(baseline) if baseline == outcome.scope => {
                            self.drift.remove(&ix);
                        }
                        Some(baseline) => {
                            self.drift.insert(ix, (baseline, outcome.scope));
                        }
                        None if p.scope != PciScope::PendingReview => {
                            self.drift.insert(ix, (p.scope, outcome.scope));
                        }
                        None => {}
                    }
                }
                self.graph[ix].decided = Some((scope, class, Some(rule)));
                self.last.insert(rid.clone(), outcome.clone());
                changes.push(Change { resource_id: rid, outcome, previous });
            }
            if declared_covers {
                self.drift.remove(&ix);
            }
            let mut keys: SmallVec<[AlertKey; 1]> = SmallVec::new();
            if let Some((from, to)) = self.drift.get(&ix) {
                keys.push(AlertKey::Changed(ix, *from, *to));
            }
            for key in self.alert_keys(ix, scope, near_cde) {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            self.reconcile(ix, keys, &mut alerts);
        }
        self.coverage_gaps(&mut alerts);
        changes.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        alerts.sort_by(|a, b| {
            (&a.resource_id, a.alert_type, &a.cause, a.event).cmp(&(&b.resource_id, b.alert_type, &b.cause, b.event))
        });
        (changes, alerts)
    }

    /// The decision of an interface of system `owner`: the system's, once
    /// the system has one.
    fn interface_outcome(&self, owner: NodeIndex) -> Option<Outcome> {
        let o = &self.graph[owner];
        // A system is not itself an interface: no chains, no cycles.
        if !o.classifiable || o.owner.is_some() {
            return None;
        }
        let decided = self.last.get(&o.resource_id)?;
        Some(Outcome {
            justification: format!(
                "{}{}, classified with it. {}",
                psg_domain::INTERFACE_OF,
                self.full(owner),
                decided.justification
            ),
            dependencies: vec![o.resource_id.clone()],
            ..decided.clone()
        })
    }

    /// Compares the alert conditions `ix` is in now with those last
    /// reported: raises the new ones, rewords the changed ones, resolves
    /// the ones gone. Only those are put into words.
    fn reconcile(&mut self, ix: NodeIndex, keys: SmallVec<[AlertKey; 1]>, alerts: &mut Vec<AlertCandidate>) {
        let old = self.active.remove(&ix).unwrap_or_default();
        for key in &keys {
            match old.iter().find(|o| o.same_cause(key)) {
                Some(o) if o == key => {}
                Some(_) => alerts.push(self.format_alert(*key, AlertEvent::Updated)),
                None => alerts.push(self.format_alert(*key, AlertEvent::Raised)),
            }
        }
        for o in old.iter().filter(|o| !keys.iter().any(|k| k.same_cause(o))) {
            alerts.push(self.resolution(*o));
        }
        if !keys.is_empty() {
            self.active.insert(ix, keys);
        }
    }

    /// The alert of a condition that ended, saying what holds now.
    fn resolution(&self, key: AlertKey) -> AlertCandidate {
        let mut a = self.format_alert(key, AlertEvent::Resolved);
        let Some(&ix) = self.nodes.get(&a.resource_id) else { return a };
        let now = match (self.graph[ix].classifiable, self.last.get(&a.resource_id)) {
            (false, _) => format!("{} is no longer in the inventory.", self.full(ix)),
            (true, Some(o)) => format!("{} now computes as {}: {}", self.full(ix), o.scope, o.justification),
            (true, None) => format!("{} has no decision.", self.full(ix)),
        };
        a.description = format!("Resolved by the classifier: the condition no longer holds. {now}");
        a.context.insert("resolution".into(), "condition no longer holds".into());
        a
    }

    /// The scope and classification of a node, without putting anything
    /// into words (the same rules as [`Engine::outcome`]).
    fn quick_scope(&self, ix: NodeIndex, near_cde: bool) -> Decided {
        let n = &self.graph[ix];
        if let Some((scope, _)) = &n.manual {
            return (*scope, None, ScopeRule::ManualDecision);
        }
        if let Some(class) = n.data {
            return (PciScope::Cde, Some(class), ScopeRule::DeclaredCde);
        }
        if n.declared == Some(PciScope::Cde) {
            return (PciScope::Cde, None, ScopeRule::DeclaredCde);
        }
        if near_cde {
            return (PciScope::ConnectedCde, None, ScopeRule::CdeConnection);
        }
        if self.reachable(ix).is_some() {
            return (PciScope::ConnectedCde, None, ScopeRule::Reachable);
        }
        match n.declared {
            Some(PciScope::ConnectedCde) => (PciScope::ConnectedCde, None, ScopeRule::DeclaredConnected),
            Some(PciScope::OutOfScope) => match self.coverage_verdict(ix) {
                coverage::Verdict::Missing { .. } | coverage::Verdict::RejectOnly { .. } => {
                    (PciScope::PendingReview, None, ScopeRule::NoFlowLogCoverage)
                }
                _ => (PciScope::OutOfScope, None, ScopeRule::DeclaredOutOfScope),
            },
            _ => (PciScope::PendingReview, None, ScopeRule::NoScopeTag),
        }
    }

    /// Every node with an ACCEPTed flow with a CDE node (other than itself).
    fn near_cde(&self) -> HashSet<NodeIndex, foldhash::fast::RandomState> {
        let mut near = HashSet::default();
        for cde in self.graph.node_indices().filter(|ix| self.is_cde(*ix)) {
            for dir in [Direction::Outgoing, Direction::Incoming] {
                for e in self.graph.edges_directed(cde, dir) {
                    let peer = if dir == Direction::Outgoing { e.target() } else { e.source() };
                    if peer != cde && e.weight().iter().any(|(s, _)| s.2 == FlowAction::Accept) {
                        near.insert(peer);
                    }
                }
            }
        }
        near
    }

    fn has_accepted_cde_peer(&self, ix: NodeIndex) -> bool {
        [Direction::Outgoing, Direction::Incoming].into_iter().any(|dir| {
            self.graph.edges_directed(ix, dir).any(|e| {
                let peer = if dir == Direction::Outgoing { e.target() } else { e.source() };
                peer != ix && self.is_cde(peer) && e.weight().iter().any(|(s, _)| s.2 == FlowAction::Accept)
            })
        })
    }

    /// The alert conditions a node is in.
    fn alert_keys(&self, ix: NodeIndex, scope: PciScope, near_cde: bool) -> Vec<AlertKey> {
        let n = &self.graph[ix];
        let mut keys = Vec::new();
        if n.kind == EndpointKind::Resource && !n.tags.contains_key(&self.settings.scope_tag_key) && n.manual.is_none()
        {
            keys.push(AlertKey::Untagged(ix));
        }
        // Pending review against a declared scope: only for want of flow-log
        // coverage, which `coverage_gap` names.
        // Declared out-of-scope but reachable by configuration, no flow
        // seen: a latent violation per CDE system, not a drift.
        let latent = n.declared == Some(PciScope::OutOfScope) && n.manual.is_none() && !near_cde;
        if latent && let Some(peers) = self.reachable(ix) {
            keys.extend(peers.keys().map(|c| AlertKey::Latent(ix, *c)));
        }
        if let Some(d) = n.declared
            && d != scope
            && scope != PciScope::PendingReview
            && !(latent && self.reachable(ix).is_some())
        {
            keys.push(AlertKey::Declared(ix, d, scope));
        }
        // A CDE system whose known security groups do not admit flows it
        // accepted: the inventory is stale, or a flow was attributed wrongly.
        if n.cde {
            for e in self.graph.edges_directed(ix, Direction::Incoming) {
                if e.source() == ix {
                    continue;
                }
                for (svc, _) in e.weight().iter().filter(|(s, _)| s.2 == FlowAction::Accept) {
                    if self.graph[e.source()].kind == EndpointKind::Resource
                        && self.admitted(e.source(), ix, svc.0, svc.1) == Some(false)
                    {
                        keys.push(AlertKey::NotAllowed(ix, e.source(), *svc));
                    }
                }
            }
        }
        // Configuration that lets a system reach a CDE system on a service
        // the segmentation policy forbids: the firewall does not enforce it.
        if let Some(policy) = &self.settings.policy
            && let Some(peers) = self.reachable(ix)
        {
            for (c, allowed) in peers {
                let forbidden = allowed.iter().any(|a| {
                    let r = &a.rule;
                    policy
                        .first_forbidden(&self.subject(ix), &self.subject(*c), r.protocol, r.from_port, r.to_port)
                        .is_some()
                });
                if forbidden {
                    keys.push(AlertKey::Unenforced(ix, *c));
                }
            }
        }
        // The remaining conditions need a CDE end, and a node that can be in
        // one: a CDE system, an unknown host, a declared out-of-scope one, or
        // any node under a policy.
        let can = n.cde
            || n.kind == EndpointKind::UnknownHost
            || (n.declared == Some(PciScope::OutOfScope) && n.manual.is_none())
            || self.settings.policy.is_some();
        if !(n.cde || near_cde) || !can {
            return keys;
        }
        for dir in [Direction::Outgoing, Direction::Incoming] {
            for e in self.graph.edges_directed(ix, dir) {
                let peer = if dir == Direction::Outgoing { e.target() } else { e.source() };
                if peer == ix || !e.weight().iter().any(|(s, _)| s.2 == FlowAction::Accept) {
                    continue;
                }
                let peer_cde = self.is_cde(peer);
                if peer_cde && n.declared == Some(PciScope::OutOfScope) && n.manual.is_none() {
                    keys.push(AlertKey::OutOfScopePeer(ix, peer));
                }
                if n.kind == EndpointKind::UnknownHost && peer_cde {
                    keys.push(AlertKey::Unknown(ix, peer));
                }
                if n.cde && self.graph[peer].kind == EndpointKind::External {
                    keys.push(AlertKey::Internet(ix, peer));
                }
            }
        }
        if let Some(policy) = &self.settings.policy {
            for dir in [Direction::Outgoing, Direction::Incoming] {
                for e in self.graph.edges_directed(ix, dir) {
                    let (src, dst) = (e.source(), e.target());
                    // The alert is the CDE end's (the source's when both are).
                    let owner = if self.graph[src].cde { src } else { dst };
                    if src == dst || owner != ix || !(self.is_cde(src) || self.is_cde(dst)) {
                        continue;
                    }
                    for (service, _) in e.weight() {
                        if service.2 == FlowAction::Accept
                            && policy.allows(&self.subject(src), &self.subject(dst), service.0, service.1).is_none()
                        {
                            keys.push(AlertKey::Policy(src, dst, *service));
                        }
                    }
                }
            }
        }
        keys
    }

    /// The services between two nodes (`to` / `from` the first).
    fn services_between(&self, ix: NodeIndex, peer: NodeIndex) -> PeerServices {
        let mut out = PeerServices::new();
        for (a, b, label) in [(ix, peer, "to"), (peer, ix, "from")] {
            if let Some(e) = self.graph.find_edge(a, b) {
                for (svc, seen) in &self.graph[e] {
                    if svc.2 == FlowAction::Accept {
                        out.push((*svc, *seen, label));
                    }
                }
            }
        }
        out
    }

    /// How a title names a node: its inventory name, else its id.
    fn short(&self, ix: NodeIndex) -> &str {
        let n = &self.graph[ix];
        n.name.as_deref().unwrap_or(&n.resource_id)
    }

    /// How a description names a node: `name (id)`, or the id.
    fn full(&self, ix: NodeIndex) -> String {
        let n = &self.graph[ix];
        match &n.name {
            Some(name) => format!("{name} ({})", n.resource_id),
            None => n.resource_id.clone(),
        }
    }

    /// An alert condition put into words.
    fn format_alert(&self, key: AlertKey, event: AlertEvent) -> AlertCandidate {
        let tag = &self.settings.scope_tag_key;
        let ctx = |services: &PeerServices, rid: &str, peer: &str| {
            let mut c =
                BTreeMap::from([("resource_id".to_owned(), rid.to_owned()), ("peer".to_owned(), peer.to_owned())]);
            if let Some((svc, seen, dir)) = services.first() {
                c.insert("protocol".into(), psg_domain::protocol_name(svc.0));
                c.insert("port".into(), svc.1.to_string());
                c.insert("direction".into(), (*dir).to_owned());
                c.insert("first_seen".into(), rfc3339(seen.first));
                c.insert("last_seen".into(), rfc3339(seen.last));
                if !seen.action_logged {
                    c.insert("action_logged".into(), "false".into());
                }
            }
            c
        };
        match key {
            AlertKey::Untagged(ix) => {
                let rid = &self.graph[ix].resource_id;
                AlertCandidate {
                    event,
                    alert_type: AlertType::UntaggedResource,
                    resource_id: rid.clone(),
                    cause: "untagged".into(),
                    title: format!("{} has no {tag} tag", self.short(ix)),
                    description: format!(
                        "Resource {} has no {tag} tag. Tag it cde, connected-cde or out-of-scope so its scope is declared, not inferred.",
                        self.full(ix)
                    ),
                    pci_requirement: "12.5.2",
                    context: BTreeMap::from([("resource_id".to_owned(), rid.clone())]),
                }
            }
            AlertKey::Declared(ix, d, scope) => {
                let rid = &self.graph[ix].resource_id;
                AlertCandidate {
                    event,
                    alert_type: AlertType::ScopeDrift,
                    resource_id: rid.clone(),
                    // One alert per resource: a further drift rewords it.
                    cause: "declared".to_owned(),
                    title: format!("{} is declared {d} but computes as {scope}", self.short(ix)),
                    description: format!(
                        "{} is tagged {tag}={d}, but its computed scope is {scope}: {}",
                        self.full(ix),
                        self.outcome(ix).justification
                    ),
                    pci_requirement: "12.5.2",
                    context: BTreeMap::from([
                        ("declared".to_owned(), d.to_string()),
                        ("computed".to_owned(), scope.to_string()),
                    ]),
                }
            }
            AlertKey::Changed(ix, from, to) => {
                let rid = &self.graph[ix].resource_id;
                let why = self.last.get(rid).map(|o| format!(": {}", o.justification)).unwrap_or_default();
                AlertCandidate {
                    event,
                    alert_type: AlertType::ScopeDrift,
                    resource_id: rid.clone(),
                    // One alert per resource: a further change rewords it,
                    // a return to `from` resolves it.
                    cause: "changed".to_owned(),
                    title: format!("{} moved from {from} to {to}", self.short(ix)),
                    description: format!("The computed scope of {} changed from {from} to {to}{why}", self.full(ix)),
                    pci_requirement: "12.5.2",
                    context: BTreeMap::from([("from".to_owned(), from.to_string()), ("to".to_owned(), to.to_string())]),
                }
            }
            AlertKey::OutOfScopePeer(ix, peer) => {
                let (rid, p) = (&self.graph[ix].resource_id, &self.graph[peer].resource_id);
                let services = self.services_between(ix, peer);
                AlertCandidate {
                    event,
                    alert_type: AlertType::SegmentationViolation,
                    resource_id: rid.clone(),
                    cause: format!("out-of-scope:{p}"),
                    title: format!("Out-of-scope {} talks to CDE system {}", self.short(ix), self.short(peer)),
                    description: format!(
                        "{} is declared out-of-scope but has ACCEPTed flows with CDE system {}: {}. Segmentation between the CDE and out-of-scope systems is broken.",
                        self.full(ix),
                        self.full(peer),
                        describe(&services)
                    ),
                    pci_requirement: "1.3.1",
                    context: ctx(&services, rid, p),
                }
            }
            AlertKey::Unknown(ix, peer) => {
                let (n, p) = (&self.graph[ix], &self.graph[peer].resource_id);
                let services = self.services_between(ix, peer);
                let addr = n.address.as_deref().unwrap_or(&n.resource_id);
                AlertCandidate {
                    event,
                    alert_type: AlertType::UnknownSystem,
                    resource_id: n.resource_id.clone(),
                    cause: format!("cde-peer:{p}"),
                    title: format!("Unknown host {addr} talks to CDE system {}", self.short(peer)),
                    description: format!(
                        "Address {addr} is in an internal range but maps to no inventory resource, and has ACCEPTed flows with CDE system {}: {}.",
                        self.full(peer),
                        describe(&services)
                    ),
                    pci_requirement: "12.5.2",
                    context: ctx(&services, &n.resource_id, p),
                }
            }
            AlertKey::Internet(ix, peer) => {
                let (rid, pn) = (&self.graph[ix].resource_id, &self.graph[peer]);
                let services = self.services_between(ix, peer);
                let addr = pn.address.clone().unwrap_or_else(|| pn.resource_id.clone());
                let mut context = ctx(&services, rid, &pn.resource_id);
                context.insert("address".into(), addr.clone());
                AlertCandidate {
                    event,
                    alert_type: AlertType::CdeInternet,
                    resource_id: rid.clone(),
                    cause: format!("external:{addr}"),
                    title: format!("CDE system {} talks to public address {addr}", self.short(ix)),
                    description: format!(
                        "CDE system {} has ACCEPTed flows with public address {addr}: {}.",
                        self.full(ix),
                        describe(&services)
                    ),
                    pci_requirement: "1.3.2",
                    context,
                }
            }
            AlertKey::Latent(ix, cde) => {
                let (rid, c) = (&self.graph[ix].resource_id, &self.graph[cde].resource_id);
                let rules = self.reachable(ix).and_then(|p| p.get(&cde)).map(|a| {
                    let mut why: Vec<String> = a.iter().map(psg_reach::Allowed::describe).collect();
                    why.sort();
                    why.dedup();
                    why.join("; ")
                });
                let rules = rules.unwrap_or_default();
                AlertCandidate {
                    event,
                    alert_type: AlertType::LatentViolation,
                    resource_id: rid.clone(),
                    cause: format!("reachable:{c}"),
                    title: format!("Out-of-scope {} can reach CDE system {}", self.short(ix), self.short(cde)),
                    description: format!(
                        "{} is declared out-of-scope, and no flow with CDE system {} was seen, but the configuration lets it connect: {rules}. PCI DSS counts systems that can connect to the CDE as in scope: restrict the rule or take the system into scope.",
                        self.full(ix),
                        self.full(cde)
                    ),
                    pci_requirement: "1.3.1",
                    context: BTreeMap::from([
                        ("resource_id".to_owned(), rid.clone()),
                        ("peer".to_owned(), c.clone()),
                        ("allowed_by".to_owned(), rules),
                    ]),
                }
            }
            AlertKey::Unenforced(ix, cde) => {
                let (rid, c) = (&self.graph[ix].resource_id, &self.graph[cde].resource_id);
                let policy = self.settings.policy.as_deref();
                // The rules that let through what the policy forbids, and one
                // such service each.
                let mut why: Vec<String> = self
                    .reachable(ix)
                    .and_then(|p| p.get(&cde))
                    .into_iter()
                    .flatten()
                    .filter_map(|a| {
                        let r = &a.rule;
                        let (proto, port) = policy?.first_forbidden(
                            &self.subject(ix),
                            &self.subject(cde),
                            r.protocol,
                            r.from_port,
                            r.to_port,
                        )?;
                        let service = if matches!(proto, 6 | 17 | 132) {
                            format!("{}/{port}", psg_domain::protocol_name(proto))
                        } else {
                            psg_domain::protocol_name(proto)
                        };
                        Some(format!("{} (e.g. {service})", a.describe()))
                    })
                    .collect();
                why.sort();
                why.dedup();
                let why = why.join("; ");
                AlertCandidate {
                    event,
                    alert_type: AlertType::PolicyNotEnforced,
                    resource_id: c.clone(),
                    cause: format!("unenforced:{rid}"),
                    title: format!(
                        "Configuration lets {} reach CDE system {} against the policy",
                        self.short(ix),
                        self.short(cde)
                    ),
                    description: format!(
                        "{} (segments: {}) can connect to CDE system {} (segments: {}) on services no allow rule of the segmentation policy permits: {why}. The firewall rules do not enforce the policy: restrict them to what the policy allows.",
                        self.full(ix),
                        self.policy_segments(ix),
                        self.full(cde),
                        self.policy_segments(cde)
                    ),
                    pci_requirement: "1.2.1",
                    context: BTreeMap::from([
                        ("resource_id".to_owned(), c.clone()),
                        ("peer".to_owned(), rid.clone()),
                        ("allowed_by".to_owned(), why),
                    ]),
                }
            }
            AlertKey::NotAllowed(cde, src, (proto, port, _)) => {
                let (c, s) = (&self.graph[cde].resource_id, &self.graph[src].resource_id);
                let service = format!("{}/{port}", psg_domain::protocol_name(proto));
                AlertCandidate {
                    event,
                    alert_type: AlertType::ObservedNotAllowed,
                    resource_id: c.clone(),
                    cause: format!("not-allowed:{s}:{service}"),
                    title: format!(
                        "{} accepted {service} from {} that its security groups do not admit",
                        self.short(cde),
                        self.short(src)
                    ),
                    description: format!(
                        "CDE system {} accepted flows on {service} from {}, but none of its security groups ({}) admits that source on that service: the inventory is out of date, or the flow was attributed to the wrong system.",
                        self.full(cde),
                        self.full(src),
                        self.graph[cde].groups.join(", ")
                    ),
                    pci_requirement: "1.2.7",
                    context: BTreeMap::from([
                        ("resource_id".to_owned(), c.clone()),
                        ("peer".to_owned(), s.clone()),
                        ("protocol".to_owned(), psg_domain::protocol_name(proto)),
                        ("port".to_owned(), port.to_string()),
                    ]),
                }
            }
            AlertKey::Policy(src, dst, (proto, port, _)) => {
                let (s, d) = (&self.graph[src].resource_id, &self.graph[dst].resource_id);
                let owner = if self.graph[src].cde { s } else { d };
                let service = format!("{}/{port}", psg_domain::protocol_name(proto));
                let seen = self.graph.find_edge(src, dst).and_then(|e| {
                    self.graph[e].iter().find(|(svc, _)| svc.0 == proto && svc.1 == port).map(|(_, seen)| *seen)
                });
                let (first, last) = seen.map_or((0, 0), |s| (s.first, s.last));
                let segments = |ix| self.policy_segments(ix);
                AlertCandidate {
                    event,
                    alert_type: AlertType::SegmentationViolation,
                    resource_id: owner.clone(),
                    cause: format!("policy:{s}->{d}:{service}"),
                    title: format!("Flow not allowed by policy: {} → {} {service}", self.short(src), self.short(dst)),
                    description: format!(
                        "{} (segments: {}) → {} (segments: {}) on {service} was ACCEPTed from {} to {}, and no allow rule of the segmentation policy matches it. All traffic to and from the CDE that no rule allows must be denied.",
                        self.full(src),
                        segments(src),
                        self.full(dst),
                        segments(dst),
                        rfc3339(first),
                        rfc3339(last)
                    ),
                    pci_requirement: "1.3.1",
                    context: BTreeMap::from([
                        ("source".to_owned(), s.clone()),
                        ("destination".to_owned(), d.clone()),
                        ("protocol".to_owned(), psg_domain::protocol_name(proto)),
                        ("port".to_owned(), port.to_string()),
                        ("first_seen".to_owned(), rfc3339(first)),
                        ("last_seen".to_owned(), rfc3339(last)),
                    ]),
                }
            }
        }
    }

    fn subject(&self, ix: NodeIndex) -> Subject<'_> {
        let n = &self.graph[ix];
        Subject {
            resource_id: &n.resource_id,
            tags: &n.tags,
            vpc_id: n.vpc_id.as_deref(),
            addresses: &n.addresses,
            external: n.kind == EndpointKind::External,
        }
    }

    fn policy_segments(&self, ix: NodeIndex) -> String {
        let Some(policy) = &self.settings.policy else { return "none".to_owned() };
        let segs = policy.segments_of(&self.subject(ix));
        if segs.is_empty() { "none".to_owned() } else { segs.join(", ") }
    }
}

/// An alert condition, compact: what makes two alerts the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AlertKey {
    Untagged(NodeIndex),
    Declared(NodeIndex, PciScope, PciScope),
    Changed(NodeIndex, PciScope, PciScope),
    OutOfScopePeer(NodeIndex, NodeIndex),
    Unknown(NodeIndex, NodeIndex),
    Internet(NodeIndex, NodeIndex),
    Policy(NodeIndex, NodeIndex, Service),
    /// (declared out-of-scope system, CDE system it can reach).
    Latent(NodeIndex, NodeIndex),
    /// (CDE system, source, service) accepted but not admitted.
    NotAllowed(NodeIndex, NodeIndex, Service),
    /// (system, CDE system) the configuration lets connect on a service the
    /// segmentation policy forbids.
    Unenforced(NodeIndex, NodeIndex),
}

impl AlertKey {
    /// Whether two conditions are one alert (the drift alerts keep their
    /// identity while their scopes change).
    fn same_cause(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Declared(a, ..), Self::Declared(b, ..)) | (Self::Changed(a, ..), Self::Changed(b, ..)) => a == b,
            _ => self == other,
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

/// Adds what `seen` says of `service` to the services of one edge.
fn merge_service(services: &mut Services, service: Service, seen: Seen) {
    match services.iter_mut().find(|(s, _)| *s == service) {
        Some((_, t)) => {
            t.first = t.first.min(seen.first);
            t.last = t.last.max(seen.last);
            t.flows = t.flows.saturating_add(seen.flows);
            t.action_logged |= seen.action_logged;
        }
        None => services.push((service, seen)),
    }
}

fn describe(services: &[(Service, Seen, &'static str)]) -> String {
    let mut s: Vec<String> = services
        .iter()
        .map(|((proto, port, _), seen, dir)| {
            format!(
                "{dir} {}/{port} from {} to {}{}",
                psg_domain::protocol_name(*proto),
                rfc3339(seen.first),
                rfc3339(seen.last),
                seen.action_note()
            )
        })
        .collect();
    s.sort();
    s.join("; ")
}

mod coverage;
mod reach;
pub use coverage::FlowLogConfig;
pub use reach::policy_kind;

#[cfg(test)]
mod tests;
