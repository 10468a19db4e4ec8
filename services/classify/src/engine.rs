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

mod alerts;
mod coverage;
mod ownership;
mod reach;
pub use coverage::FlowLogConfig;
pub use reach::policy_kind;

#[cfg(test)]
mod tests;
