//! Flow-log coverage in the scope engine: which systems the flow logs
//! covered over the lookback window, so that the absence of flows proves
//! something (rule 6), and which VPCs and subnets holding systems sent none
//! (`coverage_gap`).
//!
//! Coverage arrives per unit (interface, instance, subnet or network) from
//! correlate's `flows.coverage`. A system is covered by its own units (its
//! id, the interfaces its inventory lists), else by its subnet, else by its
//! VPC when nothing finer is known of that VPC. Missing coverage is judged
//! only once `coverage_grace` of event time has passed since the first
//! record: flow logs of different VPCs do not arrive at once.
//!
//! Flow-log configurations from inventory (AWS `AWS::EC2::FlowLog`) are
//! compared with that: a system whose configured flow logs all record
//! REJECTed traffic only is not covered (the accepted connections that
//! decide scope are not logged), and a gap names what is configured for its
//! place, or that nothing is.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::stable_graph::NodeIndex;
use psg_domain::time::{Micros, rfc3339};
use psg_domain::{AlertType, FlowCoverage, PciScope, Resource};

use super::{AlertCandidate, AlertEvent, Engine};

/// What is known of the coverage, and the `coverage_gap` alerts open.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Event time of the first record of any unit.
    from: Option<Micros>,
    /// Whether missing coverage was judged at the last recompute.
    judged: bool,
    units: HashMap<String, Span>,
    vpcs: HashMap<String, Span>,
    subnets: HashMap<String, Span>,
    /// VPCs of which some unit's subnet is known: there a subnet without
    /// records is a gap of its own.
    subnets_known_in: BTreeSet<String>,
    /// Systems per VPC and per subnet, and the VPC of each subnet.
    in_vpc: HashMap<String, BTreeSet<NodeIndex>>,
    in_subnet: HashMap<String, BTreeSet<NodeIndex>>,
    vpc_of_subnet: HashMap<String, String>,
    /// `coverage_gap` alerts open: place → (`vpc_id` or `subnet_id`, its
    /// description).
    open: BTreeMap<String, (&'static str, String)>,
    /// Something a gap depends on changed since the last recompute.
    touched: bool,
    /// Flow-log configurations by resource id, the resource ids configured
    /// per target (VPC, subnet or interface id), and whether inventory holds
    /// any (then a place without one is named so).
    configs: HashMap<String, FlowLogConfig>,
    by_target: HashMap<String, BTreeSet<String>>,
}

/// A flow-log configuration of inventory: an AWS flow log, a GCP
/// subnetwork's `logConfig`, an Azure Network Watcher flow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogConfig {
    /// `fl-…`, `logConfig`, the Azure flow log's name.
    pub id: String,
    /// What it logs, as coverage places name it: a VPC, subnet or interface
    /// id; a GCP subnetwork name; an Azure VNet name or NSG id.
    pub target: String,
    /// `ACCEPT`, `REJECT`, `ALL`, or `DISABLED` (configured but off).
    pub traffic: String,
    /// `FAILED: <message>` when delivery failed.
    pub delivery: Option<String>,
}

impl FlowLogConfig {
    /// Reads a `flow_log` resource's configuration (its `metadata_json`, as
    /// the provider's inventory wrote it).
    pub fn parse(r: &Resource) -> Option<Self> {
        let cfg: serde_json::Value = serde_json::from_str(r.metadata_json.as_deref()?).ok()?;
        let text = |v: &serde_json::Value, k: &str| {
            v.get(k).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let last = |s: &str| s.trim_end_matches('/').rsplit('/').next().unwrap_or(s).to_owned();
        match r.provider {
            psg_domain::CloudProvider::Gcp => {
                // A subnetwork: its logConfig (absent or enable false: off).
                let on = cfg.pointer("/logConfig/enable").and_then(serde_json::Value::as_bool).unwrap_or(false);
                let target = text(&cfg, "name").or_else(|| r.subnet_id.clone())?;
                let traffic = if on { "ALL" } else { "DISABLED" };
                Some(Self { id: "logConfig".to_owned(), target, traffic: traffic.to_owned(), delivery: None })
            }
            psg_domain::CloudProvider::Azure => {
                // A Network Watcher flow log: of an NSG (its NICs), or of a VNet.
                let target = text(&cfg, "targetResourceId")?.to_lowercase();
                let target = if target.contains("/networksecuritygroups/") {
                    target
                } else {
                    r.vpc_id.clone().unwrap_or_else(|| last(&target))
                };
                let on = cfg.get("enabled").and_then(serde_json::Value::as_bool).unwrap_or(true);
                let id = r.resource_name.clone().unwrap_or_else(|| last(&r.resource_id));
                let traffic = if on { "ALL" } else { "DISABLED" };
                Some(Self { id, target, traffic: traffic.to_owned(), delivery: None })
            }
            _ => {
                let delivery = match text(&cfg, "deliverLogsStatus") {
                    Some(s) if !s.eq_ignore_ascii_case("SUCCESS") => {
                        Some(text(&cfg, "deliverLogsErrorMessage").map_or_else(|| s.clone(), |m| format!("{s}: {m}")))
                    }
                    _ => None,
                };
                Some(Self {
                    id: text(&cfg, "flowLogId").unwrap_or_else(|| r.resource_id.clone()),
                    target: text(&cfg, "resourceId")?,
                    traffic: text(&cfg, "trafficType").unwrap_or_else(|| "ALL".to_owned()),
                    delivery,
                })
            }
        }
    }

    /// `fl-1 (ALL) on vpc-1`, with a failed delivery; an NSG by its name.
    pub fn describe(&self) -> String {
        let delivery = self.delivery.as_ref().map(|d| format!(", delivery {d}")).unwrap_or_default();
        let target = match self.target.rsplit_once("/networksecuritygroups/") {
            Some((_, nsg)) => format!("NSG {nsg}"),
            None => self.target.clone(),
        };
        format!("{} ({}{delivery}) on {target}", self.id, self.traffic)
    }
}

/// First and last record of a unit or place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub first: Micros,
    pub last: Micros,
}

impl Span {
    fn merge(slot: &mut Option<Span>, first: Micros, last: Micros) {
        *slot = Some(match *slot {
            Some(s) => Span { first: s.first.min(first), last: s.last.max(last) },
            None => Span { first, last },
        });
    }
}

/// A system's coverage over the lookback window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not judged yet (no record at all, or within the grace period).
    Unjudged,
    /// Covered by flow logs of `what` (e.g. `interface eni-1`).
    Covered { what: String, span: Span },
    /// No flow logs from `place` in the window; `last` is its last record
    /// before it, if any.
    Missing { place: String, last: Option<Micros> },
    /// Its configured flow logs record REJECTed traffic only (`what`: them).
    RejectOnly { what: String },
}

impl Engine {
    /// Takes in a unit's coverage (one input partition's view; the views
    /// of several partitions merge).
    pub fn observe_coverage(&mut self, c: &FlowCoverage) {
        let (first, last) = (c.first_seen, c.last_seen);
        let cutoff = self.cutoff();
        let node = self.nodes.get(&c.unit).copied();
        // The system the unit is part of: the interface's owner, or the
        // resource listing it (an interface that is no node of its own).
        let owner = node
            .and_then(|ix| self.graph[ix].owner)
            .or_else(|| self.owner_of.get(&c.unit).and_then(|o| self.nodes.get(o)).copied());
        let place = |f: fn(&super::Node) -> &Option<String>| {
            node.and_then(|ix| f(&self.graph[ix]).clone()).or_else(|| owner.and_then(|o| f(&self.graph[o]).clone()))
        };
        let vpc = c.vpc_id.clone().or_else(|| place(|n| &n.vpc_id));
        let subnet = c.subnet_id.clone().or_else(|| place(|n| &n.subnet_id));
        let s = &mut self.coverage;
        s.from = Some(s.from.map_or(first, |f| f.min(first)));
        let was_covered = |span: Option<&Span>| span.is_some_and(|s| s.last >= cutoff);
        let mut newly: Vec<NodeIndex> = Vec::new();
        let mut slot = s.units.get(&c.unit).copied();
        let before = was_covered(slot.as_ref());
        Span::merge(&mut slot, first, last);
        s.units.insert(c.unit.clone(), slot.expect("merged"));
        if !before && was_covered(slot.as_ref()) {
            newly.extend(node);
            newly.extend(owner);
        }
        if let Some(v) = &vpc {
            let mut slot = s.vpcs.get(v).copied();
            let before = was_covered(slot.as_ref());
            Span::merge(&mut slot, first, last);
            s.vpcs.insert(v.clone(), slot.expect("merged"));
            if !before && was_covered(slot.as_ref()) {
                newly.extend(s.in_vpc.get(v).into_iter().flatten());
            }
        }
        if let Some(sn) = &subnet {
            let mut slot = s.subnets.get(sn).copied();
            let before = was_covered(slot.as_ref());
            Span::merge(&mut slot, first, last);
            s.subnets.insert(sn.clone(), slot.expect("merged"));
            if let Some(v) = &vpc {
                s.subnets_known_in.insert(v.clone());
                s.vpc_of_subnet.entry(sn.clone()).or_insert_with(|| v.clone());
            }
            if !before && was_covered(slot.as_ref()) {
                newly.extend(s.in_subnet.get(sn).into_iter().flatten());
            }
        }
        if !newly.is_empty() {
            s.touched = true;
        }
        self.watermark = self.watermark.max(last);
        self.redecide_declared(newly);
    }

    /// The declared out-of-scope systems among `nodes` (or owning them)
    /// are decided again: what covers them changed.
    fn redecide_declared(&mut self, nodes: Vec<NodeIndex>) {
        for ix in nodes {
            if !self.graph.contains_node(ix) {
                continue;
            }
            for n in [Some(ix), self.graph[ix].owner].into_iter().flatten() {
                if self.graph[n].declared == Some(PciScope::OutOfScope) {
                    self.dirty.insert(n);
                }
            }
        }
    }

    /// Keeps a system's place (VPC, subnet) in the coverage indexes.
    pub(super) fn place_system(&mut self, ix: NodeIndex, vpc: Option<String>, subnet: Option<String>, live: bool) {
        let s = &mut self.coverage;
        let n = &self.graph[ix];
        for (map, old) in [(&mut s.in_vpc, &n.vpc_id), (&mut s.in_subnet, &n.subnet_id)] {
            if let Some(set) = old.as_ref().and_then(|o| map.get_mut(o)) {
                set.remove(&ix);
            }
        }
        if live {
            if let Some(v) = &vpc {
                s.in_vpc.entry(v.clone()).or_default().insert(ix);
            }
            if let Some(sn) = &subnet {
                s.in_subnet.entry(sn.clone()).or_default().insert(ix);
                if let Some(v) = &vpc {
                    s.vpc_of_subnet.insert(sn.clone(), v.clone());
                }
            }
        }
        s.touched = true;
        let n = &mut self.graph[ix];
        n.vpc_id = vpc;
        n.subnet_id = subnet;
    }

    /// Whether missing coverage is judged now.
    fn coverage_judged(&self) -> bool {
        let grace = self.settings.coverage_grace;
        self.coverage.from.is_some_and(|f| self.watermark >= f.saturating_add(grace))
    }

    /// Takes in a flow-log configuration (or its deletion).
    pub(super) fn upsert_flow_log(&mut self, r: &Resource) {
        let s = &mut self.coverage;
        let mut targets: Vec<String> = Vec::new();
        if let Some(old) = s.configs.remove(&r.resource_id) {
            if let Some(set) = s.by_target.get_mut(&old.target) {
                set.remove(&r.resource_id);
            }
            targets.push(old.target);
        }
        if !r.deleted
            && let Some(c) = FlowLogConfig::parse(r)
        {
            s.by_target.entry(c.target.clone()).or_default().insert(r.resource_id.clone());
            targets.push(c.target.clone());
            s.configs.insert(r.resource_id.clone(), c);
        }
        s.touched = true;
        // The declared out-of-scope systems of those places are decided again.
        let mut systems: Vec<NodeIndex> = Vec::new();
        for t in &targets {
            let s = &self.coverage;
            systems.extend(s.in_vpc.get(t).into_iter().flatten());
            systems.extend(s.in_subnet.get(t).into_iter().flatten());
            systems.extend(self.nodes.get(t));
            systems.extend(self.owner_of.get(t).and_then(|o| self.nodes.get(o)));
            // An NSG's flow log covers its members (Azure).
            systems.extend(self.members_of(t));
        }
        self.redecide_declared(systems);
    }

    /// The flow-log configurations of these places.
    fn configs_of<'a>(&'a self, places: impl Iterator<Item = &'a String>) -> Vec<&'a FlowLogConfig> {
        let s = &self.coverage;
        let mut out: Vec<&FlowLogConfig> =
            places.filter_map(|p| s.by_target.get(p)).flatten().filter_map(|id| s.configs.get(id)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        out
    }

    /// A system's coverage over the lookback window.
    pub(super) fn coverage_verdict(&self, ix: NodeIndex) -> Verdict {
        let n = &self.graph[ix];
        // Its units: itself, its interfaces, and what they list (an Azure
        // VM lists its NIC, the NIC its MAC address, which flow logs name).
        let interfaces: Vec<&super::Node> =
            n.listed.iter().filter_map(|i| self.nodes.get(i)).map(|i| &self.graph[*i]).collect();
        let mine: Vec<&String> =
            std::iter::once(&n.resource_id).chain(&n.listed).chain(interfaces.iter().flat_map(|i| &i.listed)).collect();
        // Its place: its own, else its first interface's.
        let vpc = n.vpc_id.as_ref().or_else(|| interfaces.iter().find_map(|i| i.vpc_id.as_ref()));
        let subnet = n.subnet_id.as_ref().or_else(|| interfaces.iter().find_map(|i| i.subnet_id.as_ref()));
        // What inventory says is logged: REJECT only cannot show a connection.
        // Its places, and its NSGs (an Azure NSG flow log covers its NICs).
        let groups = n.groups.iter().chain(interfaces.iter().flat_map(|i| &i.groups));
        let configured: Vec<&FlowLogConfig> = self
            .configs_of(mine.iter().copied().chain(subnet).chain(vpc).chain(groups))
            .into_iter()
            .filter(|c| c.traffic != "DISABLED")
            .collect();
        if !configured.is_empty() && configured.iter().all(|c| c.traffic == "REJECT") {
            let what: Vec<String> = configured.iter().map(|c| c.describe()).collect();
            return Verdict::RejectOnly { what: what.join(", ") };
        }
        if !self.coverage_judged() {
            return Verdict::Unjudged;
        }
        let s = &self.coverage;
        let cutoff = self.cutoff();
        if let Some((id, span)) = mine
            .iter()
            .filter_map(|u| s.units.get(*u).map(|sp| (u, *sp)))
            .filter(|(_, sp)| sp.last >= cutoff)
            .max_by_key(|(_, sp)| sp.last)
        {
            return Verdict::Covered { what: format!("interface {id}"), span };
        }
        if let Some((sn, span)) =
            subnet.and_then(|sn| s.subnets.get(sn).map(|sp| (sn, *sp))).filter(|(_, sp)| sp.last >= cutoff)
        {
            return Verdict::Covered { what: format!("subnet {sn}"), span };
        }
        let vpc_span = vpc.and_then(|v| s.vpcs.get(v).copied());
        let subnet_matters = subnet.is_some() && vpc.is_some_and(|v| s.subnets_known_in.contains(v));
        match (vpc, vpc_span) {
            (Some(v), Some(span)) if span.last >= cutoff && !subnet_matters => {
                Verdict::Covered { what: network(v), span }
            }
            (Some(_), Some(span)) if span.last >= cutoff => {
                let sn = subnet.expect("subnet_matters");
                Verdict::Missing { place: format!("subnet {sn}"), last: s.subnets.get(sn).map(|sp| sp.last) }
            }
            (Some(v), span) => Verdict::Missing { place: network(v), last: span.map(|sp| sp.last) },
            (None, _) => Verdict::Missing {
                place: "its interfaces".to_owned(),
                last: mine.iter().filter_map(|u| s.units.get(*u).map(|sp| sp.last)).max(),
            },
        }
    }

    /// Before a recompute: when the grace period ends, or the lookback
    /// window moves on, the declared out-of-scope systems are decided again.
    pub(super) fn coverage_before_recompute(&mut self, window_moved: bool) {
        let judged = self.coverage_judged();
        let started = judged && !self.coverage.judged;
        self.coverage.judged = judged;
        if !(started || (judged && window_moved)) {
            return;
        }
        self.coverage.touched = true;
        let declared: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|ix| self.graph[*ix].declared == Some(PciScope::OutOfScope) && self.graph[*ix].classifiable)
            .collect();
        for ix in declared {
            if started {
                // Decided again, with what coverage says.
                self.graph[ix].decided = None;
            }
            self.dirty.insert(ix);
        }
    }

    /// After a recompute: `coverage_gap` alerts raised for VPCs and subnets
    /// holding systems that sent no flow logs in the lookback window, and
    /// resolved when logs arrive (or the systems leave).
    pub(super) fn coverage_gaps(&mut self, alerts: &mut Vec<AlertCandidate>) {
        if !std::mem::take(&mut self.coverage.touched) {
            return;
        }
        let mut now: BTreeMap<String, (&'static str, String, String)> = BTreeMap::new();
        if self.coverage_judged() {
            let cutoff = self.cutoff();
            let s = &self.coverage;
            // Systems: an interface counts as its system.
            let live = |set: &BTreeSet<NodeIndex>| {
                set.iter()
                    .filter(|ix| self.graph.contains_node(**ix) && self.graph[**ix].classifiable)
                    .map(|ix| self.graph[*ix].owner.unwrap_or(*ix))
                    .collect::<BTreeSet<_>>()
                    .len()
            };
            for (vpc, members) in &s.in_vpc {
                let systems = live(members);
                if systems == 0 {
                    continue;
                }
                match s.vpcs.get(vpc) {
                    Some(span) if span.last >= cutoff => {}
                    span => {
                        let last = span.map_or_else(|| "never".to_owned(), |sp| rfc3339(sp.last));
                        now.insert(
                            vpc.clone(),
                            (
                                "vpc_id",
                                format!("No flow logs from {}", network(vpc)),
                                format!(
                                    "{} holds {systems} system(s) but sent no flow-log record (not even NODATA) in the lookback window (last record: {last}). Their absence of flows proves nothing: flow logs may be disabled, limited to another traffic type, or their delivery broken. Declared out-of-scope systems in it are pending review.{}",
                                    upper_first(&network(vpc)),
                                    self.configured_text(vpc)
                                ),
                            ),
                        );
                    }
                }
            }
            for (subnet, members) in &s.in_subnet {
                let systems = live(members);
                let Some(vpc) = s.vpc_of_subnet.get(subnet) else { continue };
                let vpc_covered = s.vpcs.get(vpc).is_some_and(|sp| sp.last >= cutoff);
                if systems == 0 || !vpc_covered || !s.subnets_known_in.contains(vpc) {
                    continue;
                }
                match s.subnets.get(subnet) {
                    Some(span) if span.last >= cutoff => {}
                    span => {
                        let last = span.map_or_else(|| "never".to_owned(), |sp| rfc3339(sp.last));
                        now.insert(
                            subnet.clone(),
                            (
                                "subnet_id",
                                format!("No flow logs from subnet {subnet}"),
                                format!(
                                    "Subnet {subnet} of {} holds {systems} system(s) but sent no flow-log record in the lookback window (last record: {last}), while its other subnets did: subnet-level flow logs missing or broken.{}",
                                    network(vpc),
                                    self.configured_text(subnet)
                                ),
                            ),
                        );
                    }
                }
            }
        }
        // Places whose configured flow logs record REJECTed traffic only.
        for (target, ids) in &self.coverage.by_target {
            let kind = if self.coverage.in_vpc.contains_key(target) {
                "vpc_id"
            } else if self.coverage.in_subnet.contains_key(target) {
                "subnet_id"
            } else {
                continue;
            };
            let members =
                if kind == "vpc_id" { &self.coverage.in_vpc[target] } else { &self.coverage.in_subnet[target] };
            let systems = members
                .iter()
                .filter(|ix| self.graph.contains_node(**ix) && self.graph[**ix].classifiable)
                .map(|ix| self.graph[*ix].owner.unwrap_or(*ix))
                .collect::<BTreeSet<_>>()
                .len();
            let configured: Vec<&FlowLogConfig> = ids.iter().filter_map(|id| self.coverage.configs.get(id)).collect();
            if systems == 0 || now.contains_key(target) || configured.iter().any(|c| c.traffic != "REJECT") {
                continue;
            }
            let what: Vec<String> = configured.iter().map(|c| c.describe()).collect();
            let place = if kind == "vpc_id" { network(target) } else { format!("subnet {target}") };
            now.insert(
                target.clone(),
                (
                    kind,
                    format!("Flow logs of {place} record REJECT only"),
                    format!(
                        "{} holds {systems} system(s), but its flow logs record REJECTed traffic only ({}): accepted connections, which decide PCI scope, are not logged, so their absence proves nothing. Log ALL traffic (trafficType ALL). Declared out-of-scope systems in it are pending review.",
                        upper_first(&place),
                        what.join(", ")
                    ),
                ),
            );
        }
        let open = std::mem::take(&mut self.coverage.open);
        for (place, (kind, description)) in &open {
            if !now.contains_key(place) {
                let title = format!("Flow logs from {place} arrive again");
                alerts.push(gap_alert(place, kind, AlertEvent::Resolved, title, description.clone()));
            }
        }
        for (place, (kind, title, description)) in now {
            let event = match open.get(&place) {
                None => Some(AlertEvent::Raised),
                Some((_, d)) if *d != description => Some(AlertEvent::Updated),
                Some(_) => None,
            };
            if let Some(event) = event {
                alerts.push(gap_alert(&place, kind, event, title, description.clone()));
            }
            self.coverage.open.insert(place, (kind, description));
        }
    }

    /// What inventory configures for a place without records: its flow
    /// logs (their records do not arrive), or none, when inventory holds
    /// flow-log configurations at all.
    fn configured_text(&self, place: &String) -> String {
        let configured = self.configs_of(std::iter::once(place));
        let (off, on): (Vec<&FlowLogConfig>, Vec<&FlowLogConfig>) =
            configured.into_iter().partition(|c| c.traffic == "DISABLED");
        if !on.is_empty() {
            let what: Vec<String> = on.iter().map(|c| c.describe()).collect();
            format!(
                " Inventory configures flow logs for it ({}): their records do not reach PCI Scope Guard (check the delivery and the shipper).",
                what.join(", ")
            )
        } else if !off.is_empty() {
            let what: Vec<String> = off.iter().map(|c| c.describe()).collect();
            format!(" Its flow logs are configured but turned off ({}): enable them.", what.join(", "))
        } else if !self.coverage.configs.is_empty() && (place.starts_with("vpc-") || place.starts_with("subnet-")) {
            " Inventory lists no flow-log configuration for it (AWS::EC2::FlowLog): flow logs were never enabled here."
                .to_owned()
        } else {
            String::new()
        }
    }

    /// Coverage of one place (VPC, subnet or unit id): first and last record.
    pub fn coverage_of(&self, place: &str) -> Option<(Micros, Micros)> {
        let s = &self.coverage;
        s.vpcs.get(place).or_else(|| s.subnets.get(place)).or_else(|| s.units.get(place)).map(|sp| (sp.first, sp.last))
    }
}

/// How a text names a network: `VPC vpc-…` on AWS, else `network …`
/// (a VNet, a VPC network, an on-premise segment).
fn network(id: &str) -> String {
    if id.starts_with("vpc-") { format!("VPC {id}") } else { format!("network {id}") }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn gap_alert(place: &str, kind: &str, event: AlertEvent, title: String, description: String) -> AlertCandidate {
    AlertCandidate {
        event,
        alert_type: AlertType::CoverageGap,
        resource_id: place.to_owned(),
        cause: "no-flow-logs".to_owned(),
        title,
        description,
        // Audit logs enabled and active for every system component.
        pci_requirement: "10.2.1",
        context: BTreeMap::from([(kind.to_owned(), place.to_owned())]),
    }
}
