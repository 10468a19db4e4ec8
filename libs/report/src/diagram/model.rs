//! The model all three renderings draw: one node per system, collapsed
//! group or public address (see the module documentation for when systems
//! collapse and addresses group), and the flows aggregated between them.
//!
//! [`build`] makes it in steps: the raw edges (flows and external
//! connections, interfaces folded into their systems), the endpoints a
//! violation names, the systems, the collapsed groups, the nodes, then the
//! aggregated and the latent (reachable, never observed) edges.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::text::truncate;
use super::{COLLAPSE_ABOVE, EXTERNAL_GROUP_ABOVE};
use crate::{Analysis, scope_rank};

/// Label lengths, in characters, and list lengths.
pub(super) const NAME_MAX: usize = 30;
pub(super) const GROUP_NAME_MAX: usize = 48;
pub(super) const DETAIL_MAX: usize = 34;
const SEGMENT_MAX: usize = 20;
const SERVICES_MAX: usize = 3;
const TOOLTIP_MEMBERS_MAX: usize = 25;

/// Where a node sits: the ring of the SVG, the section of Mermaid / DOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Zone {
    Cde,
    Connected,
    Outer,
    External,
}

fn zone_of(scope: &str) -> Zone {
    match scope {
        "cde" => Zone::Cde,
        "connected-cde" => Zone::Connected,
        "external" => Zone::External,
        _ => Zone::Outer,
    }
}

/// A scope of [`crate::SCOPES`]; anything else is treated as pending review.
fn norm_scope(s: &str) -> &'static str {
    match s {
        "cde" => "cde",
        "connected-cde" => "connected-cde",
        "out-of-scope" => "out-of-scope",
        _ => "pending-review",
    }
}

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A resource.
    System,
    /// An unknown host (`unknown_host`, or an `ip:` endpoint).
    Unknown,
    /// Collapsed out-of-scope / pending-review systems of one segment.
    Group,
    /// One public address.
    External,
    /// Several public addresses.
    Internet,
}

/// One node of the diagram.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// Stable, unique: the resource id, `ext:<address>`, `group:<scope>:<segment>`, `internet`.
    pub(super) key: String,
    /// First label line (not truncated).
    pub(super) name: String,
    /// Second label line (type · provider).
    pub(super) detail: String,
    /// Longer description (SVG tooltip).
    pub(super) tooltip: String,
    /// One of the scopes, or `external`.
    pub(super) scope: &'static str,
    pub(super) segment: String,
    pub(super) kind: Kind,
    /// Systems or addresses this node stands for.
    pub(super) members: usize,
    /// Named by a segmentation violation.
    pub(super) violation: bool,
}

impl Node {
    pub(super) fn zone(&self) -> Zone {
        zone_of(self.scope)
    }
}

/// The flows from one node to another, accepted or rejected, aggregated;
/// or a latent path.
#[derive(Debug, Clone)]
pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    /// `TCP/443`, sorted, distinct.
    pub(super) services: Vec<String>,
    /// Every flow of this edge was rejected.
    pub(super) reject: bool,
    pub(super) violation: bool,
    pub(super) flows: i64,
    /// No flow: the configuration lets the source reach a CDE system
    /// (drawn dotted).
    pub(super) latent: bool,
}

impl Edge {
    /// The services, at most [`SERVICES_MAX`] of them.
    pub(super) fn label(&self) -> String {
        let mut s = self.services.iter().take(SERVICES_MAX).cloned().collect::<Vec<_>>().join(", ");
        if self.services.len() > SERVICES_MAX {
            w!(s, " +{} more", self.services.len() - SERVICES_MAX);
        }
        s
    }
}

/// What the three renderings draw.
#[derive(Debug)]
pub(super) struct Model {
    /// Sorted by zone, scope, segment, key.
    pub(super) nodes: Vec<Node>,
    /// Sorted by (from, to, reject).
    pub(super) edges: Vec<Edge>,
}

impl Model {
    /// The nodes of `scope`, in model order.
    pub(super) fn in_scope(&self, scope: &str) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].scope == scope).collect()
    }

    /// `members` per segment (`""`: none), segments in order.
    pub(super) fn per_segment(&self, members: &[usize]) -> BTreeMap<&str, Vec<usize>> {
        let mut segments: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in members {
            segments.entry(&self.nodes[i].segment).or_default().push(i);
        }
        segments
    }
}

/// One flow or external connection, by endpoint id.
struct RawEdge {
    source: String,
    destination: String,
    protocol: String,
    port: i32,
    reject: bool,
    flows: i64,
    violation: bool,
}

/// A resource, or an endpoint neither a resource nor public.
struct System {
    id: String,
    name: String,
    detail: String,
    rtype: String,
    scope: &'static str,
    segment: String,
    unknown: bool,
}

fn join_detail(rtype: &str, provider: &str) -> String {
    match (rtype.is_empty(), provider.is_empty()) {
        (false, false) => format!("{rtype} · {provider}"),
        (false, true) => rtype.to_string(),
        (true, false) => provider.to_string(),
        (true, true) => String::new(),
    }
}

fn service(protocol: &str, port: i32) -> String {
    let protocol = if protocol.trim().is_empty() { "any" } else { protocol.trim() };
    if port > 0 { format!("{protocol}/{port}") } else { protocol.to_string() }
}

fn segment_display(segment: &str) -> String {
    if segment.is_empty() { "(no segment)".to_string() } else { truncate(segment, SEGMENT_MAX) }
}

/// `key`, made distinct from every key in `taken`.
fn unique_key(key: String, taken: &BTreeSet<String>) -> String {
    let mut key = key;
    while taken.contains(&key) {
        key.push('\'');
    }
    key
}

/// Interface id → the system whose inventory lists it: an interface's flows
/// are its system's.
struct Owners<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Owners<'a> {
    fn of(a: &'a Analysis) -> Self {
        Owners(
            a.resources
                .iter()
                .flat_map(|r| r.interfaces.iter().map(move |i| (i.as_str(), r.resource_id.as_str())))
                .collect(),
        )
    }

    /// The system `id` stands for: the one listing it as an interface, or
    /// `id` itself.
    fn system(&self, id: &str) -> String {
        self.0.get(id).map_or_else(|| id.to_owned(), |s| (*s).to_owned())
    }
}

/// Out-of-scope / pending-review systems collapsed per (scope rank, scope,
/// segment): indices into the systems.
type Groups<'a> = BTreeMap<(usize, &'static str, &'a str), Vec<usize>>;

/// A node with the endpoints (resource ids, `ext:` addresses) it stands for.
type Pending = (Node, Vec<String>);

/// The model of `a`: its systems and public addresses as nodes (collapsed
/// and grouped when many), its flows aggregated between them, and the
/// reachable but unobserved paths into the CDE.
pub(super) fn build(a: &Analysis) -> Model {
    let owners = Owners::of(a);
    let raw = raw_edges(a, &owners);
    let violating = violating(a, &raw);
    let (systems, externals) = systems(a, &raw);
    let groups = collapsed_groups(&systems, &violating);

    let mut taken: BTreeSet<String> = systems.iter().map(|s| s.id.clone()).collect();
    taken.extend(externals.iter().map(|e| e.to_string()));
    let mut pending = system_nodes(&systems, &groups, &violating);
    pending.extend(group_nodes(&systems, &groups, &mut taken));
    pending.extend(external_nodes(&externals, &violating, &taken));
    let (nodes, node_of) = index_nodes(pending);

    let mut edges = aggregate_edges(&raw, &node_of);
    let latent = latent_edges(a, &owners, &node_of, &edges);
    edges.extend(latent);
    edges.sort_by_key(|e| (e.from, e.to, e.reject, e.latent));
    Model { nodes, edges }
}

/// Flows, plus the external connections the edges do not already show.
fn raw_edges(a: &Analysis, owners: &Owners<'_>) -> Vec<RawEdge> {
    let mut raw: Vec<RawEdge> = a
        .edges
        .iter()
        .map(|e| RawEdge {
            source: owners.system(&e.source),
            destination: owners.system(&e.destination),
            protocol: e.protocol.clone(),
            port: e.port,
            reject: !e.action.eq_ignore_ascii_case("ACCEPT"),
            flows: e.flows,
            violation: e.violation,
        })
        .collect();
    let seen: BTreeSet<(&str, &str, &str, i32)> = a
        .edges
        .iter()
        .flat_map(|e| {
            [
                (e.source.as_str(), e.destination.as_str(), e.protocol.as_str(), e.port),
                (e.destination.as_str(), e.source.as_str(), e.protocol.as_str(), e.port),
            ]
        })
        .collect();
    let mut extra_external = Vec::new();
    for c in &a.external_connections {
        let ext = format!("ext:{}", c.address);
        if !seen.contains(&(c.resource_id.as_str(), ext.as_str(), c.protocol.as_str(), c.port)) {
            extra_external.push(RawEdge {
                source: c.resource_id.clone(),
                destination: ext,
                protocol: c.protocol.clone(),
                port: c.port,
                reject: false,
                flows: c.flows,
                violation: false,
            });
        }
    }
    raw.extend(extra_external);
    raw
}

/// The endpoints named by a segmentation violation (a violating flow or
/// alert).
fn violating<'a>(a: &'a Analysis, raw: &'a [RawEdge]) -> BTreeSet<&'a str> {
    let mut violating: BTreeSet<&str> = BTreeSet::new();
    for e in raw.iter().filter(|e| e.violation) {
        violating.insert(&e.source);
        violating.insert(&e.destination);
    }
    for al in a.alerts.iter().filter(|al| al.alert_type == "segmentation_violation") {
        violating.insert(&al.resource_id);
        if let Some(peer) = &al.peer {
            violating.insert(peer);
        }
    }
    violating
}

/// Systems: the resources, then endpoints that are neither resources nor
/// public; and the public addresses (`ext:…`) the flows name.
fn systems<'a>(a: &'a Analysis, raw: &'a [RawEdge]) -> (Vec<System>, BTreeSet<&'a str>) {
    let mut systems: Vec<System> = Vec::new();
    let mut known: BTreeSet<&str> = BTreeSet::new();
    for r in &a.resources {
        if !known.insert(&r.resource_id) {
            continue;
        }
        let unknown = r.resource_type == "unknown_host";
        let name = if r.resource_name.trim().is_empty() { r.resource_id.clone() } else { r.resource_name.clone() };
        let rtype = if unknown { "unknown host" } else { r.resource_type.as_str() };
        let mut detail = join_detail(rtype, &r.provider);
        if let Some(first) = r.interfaces.first() {
            // An ARM id by its last segment (the NIC's name).
            w!(detail, ", interfaces: {}", first.rsplit('/').next().unwrap_or(first));
            if r.interfaces.len() > 1 {
                w!(detail, " +{}", r.interfaces.len() - 1);
            }
        }
        systems.push(System {
            id: r.resource_id.clone(),
            name,
            detail,
            rtype: rtype.to_string(),
            scope: norm_scope(&r.scope),
            segment: r.segment.clone(),
            unknown,
        });
    }
    let mut externals: BTreeSet<&str> = BTreeSet::new();
    let mut extras: BTreeSet<&str> = BTreeSet::new();
    for e in raw {
        for end in [e.source.as_str(), e.destination.as_str()] {
            if known.contains(end) {
            } else if end.starts_with("ext:") {
                externals.insert(end);
            } else {
                extras.insert(end);
            }
        }
    }
    for id in extras {
        let unknown = id.starts_with("ip:");
        let rtype = if unknown { "unknown host" } else { "unclassified" };
        systems.push(System {
            id: id.to_string(),
            name: id.to_string(),
            detail: rtype.to_string(),
            rtype: rtype.to_string(),
            scope: "pending-review",
            segment: String::new(),
            unknown,
        });
    }
    (systems, externals)
}

/// Collapsing of out-of-scope / pending-review systems per segment: when
/// there are more than [`COLLAPSE_ABOVE`], those no violation names, in
/// groups of two or more.
fn collapsed_groups<'a>(systems: &'a [System], violating: &BTreeSet<&str>) -> Groups<'a> {
    let outer_total = systems.iter().filter(|s| zone_of(s.scope) == Zone::Outer).count();
    let mut groups: Groups<'a> = BTreeMap::new();
    if outer_total > COLLAPSE_ABOVE {
        for (i, s) in systems.iter().enumerate() {
            if zone_of(s.scope) == Zone::Outer && !violating.contains(s.id.as_str()) {
                groups.entry((scope_rank(s.scope), s.scope, s.segment.as_str())).or_default().push(i);
            }
        }
    }
    groups.retain(|_, members| members.len() >= 2);
    groups
}

/// One node per system not collapsed into a group.
fn system_nodes(systems: &[System], groups: &Groups<'_>, violating: &BTreeSet<&str>) -> Vec<Pending> {
    let grouped: BTreeSet<usize> = groups.values().flatten().copied().collect();
    let mut pending: Vec<Pending> = Vec::new();
    for (i, s) in systems.iter().enumerate() {
        if grouped.contains(&i) {
            continue;
        }
        let mut tooltip = format!("{} ({})\nscope: {}", s.name, s.id, s.scope);
        if !s.segment.is_empty() {
            w!(tooltip, "\nsegment: {}", s.segment);
        }
        if !s.detail.is_empty() {
            w!(tooltip, "\n{}", s.detail);
        }
        pending.push((
            Node {
                key: s.id.clone(),
                name: s.name.clone(),
                detail: s.detail.clone(),
                tooltip,
                scope: s.scope,
                segment: s.segment.clone(),
                kind: if s.unknown { Kind::Unknown } else { Kind::System },
                members: 1,
                violation: violating.contains(s.id.as_str()),
            },
            vec![s.id.clone()],
        ));
    }
    pending
}

/// One node per collapsed group; its key is added to `taken`.
fn group_nodes(systems: &[System], groups: &Groups<'_>, taken: &mut BTreeSet<String>) -> Vec<Pending> {
    let mut pending: Vec<Pending> = Vec::new();
    for ((_, scope, segment), members) in groups {
        let n = members.len();
        let mut types: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in members {
            if let Some(s) = systems.get(i) {
                *types.entry(if s.rtype.is_empty() { "other" } else { s.rtype.as_str() }).or_default() += 1;
            }
        }
        let mut types: Vec<(&str, usize)> = types.into_iter().collect();
        types.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
        let detail = types.iter().map(|(t, c)| format!("{c} {t}")).collect::<Vec<_>>().join(", ");
        let ids: Vec<String> = members.iter().filter_map(|&i| systems.get(i)).map(|s| s.id.clone()).collect();
        let mut tooltip =
            format!("segment {}: {n} {scope} systems (collapsed)", if segment.is_empty() { "(none)" } else { segment });
        for id in ids.iter().take(TOOLTIP_MEMBERS_MAX) {
            w!(tooltip, "\n{id}");
        }
        if n > TOOLTIP_MEMBERS_MAX {
            w!(tooltip, "\n… and {} more", n - TOOLTIP_MEMBERS_MAX);
        }
        let key = unique_key(format!("group:{scope}:{segment}"), taken);
        taken.insert(key.clone());
        pending.push((
            Node {
                key,
                name: format!("{} — {n} {scope} systems", segment_display(segment)),
                detail,
                tooltip,
                scope,
                segment: segment.to_string(),
                kind: Kind::Group,
                members: n,
                violation: false,
            },
            ids,
        ));
    }
    pending
}

/// Public addresses: one node each, or, when there are more than
/// [`EXTERNAL_GROUP_ABOVE`], one Internet node for those no violation names.
fn external_nodes(externals: &BTreeSet<&str>, violating: &BTreeSet<&str>, taken: &BTreeSet<String>) -> Vec<Pending> {
    let mut pending: Vec<Pending> = Vec::new();
    let (mut loose, mut internet): (Vec<&str>, Vec<&str>) = if externals.len() > EXTERNAL_GROUP_ABOVE {
        externals.iter().partition(|e| violating.contains(*e))
    } else {
        (externals.iter().copied().collect(), Vec::new())
    };
    if internet.len() < 2 {
        loose.append(&mut internet);
        loose.sort_unstable();
    }
    for e in loose {
        let address = e.strip_prefix("ext:").unwrap_or(e);
        pending.push((
            Node {
                key: e.to_string(),
                name: address.to_string(),
                detail: "public address".to_string(),
                tooltip: format!("public address {address}"),
                scope: "external",
                segment: String::new(),
                kind: Kind::External,
                members: 1,
                violation: violating.contains(e),
            },
            vec![e.to_string()],
        ));
    }
    if !internet.is_empty() {
        let n = internet.len();
        let mut tooltip = format!("Internet: {n} public addresses");
        for e in internet.iter().take(TOOLTIP_MEMBERS_MAX) {
            w!(tooltip, "\n{}", e.strip_prefix("ext:").unwrap_or(e));
        }
        if n > TOOLTIP_MEMBERS_MAX {
            w!(tooltip, "\n… and {} more", n - TOOLTIP_MEMBERS_MAX);
        }
        pending.push((
            Node {
                key: unique_key("internet".to_string(), taken),
                name: format!("Internet: {n} addresses"),
                detail: "public addresses (grouped)".to_string(),
                tooltip,
                scope: "external",
                segment: String::new(),
                kind: Kind::Internet,
                members: n,
                violation: false,
            },
            internet.iter().map(|e| e.to_string()).collect(),
        ));
    }
    pending
}

/// The nodes in model order (zone, scope, segment, key), and the node of
/// each endpoint they stand for.
fn index_nodes(mut pending: Vec<Pending>) -> (Vec<Node>, BTreeMap<String, usize>) {
    pending.sort_by(|(x, _), (y, _)| {
        (x.zone(), scope_rank(x.scope), &x.segment, &x.key).cmp(&(y.zone(), scope_rank(y.scope), &y.segment, &y.key))
    });
    let mut node_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes = Vec::with_capacity(pending.len());
    for (i, (node, members)) in pending.into_iter().enumerate() {
        for m in members {
            node_of.insert(m, i);
        }
        nodes.push(node);
    }
    (nodes, node_of)
}

/// The flows aggregated per (source node, destination node, rejected);
/// flows inside one node are dropped.
fn aggregate_edges(raw: &[RawEdge], node_of: &BTreeMap<String, usize>) -> Vec<Edge> {
    #[derive(Default)]
    struct Agg {
        services: BTreeSet<(String, i32)>,
        violation: bool,
        flows: i64,
    }
    let mut agg: BTreeMap<(usize, usize, bool), Agg> = BTreeMap::new();
    for e in raw {
        let (Some(&from), Some(&to)) = (node_of.get(&e.source), node_of.get(&e.destination)) else {
            continue;
        };
        if from == to {
            continue;
        }
        let entry = agg.entry((from, to, e.reject)).or_default();
        entry.services.insert((e.protocol.trim().to_string(), e.port));
        entry.violation |= e.violation;
        entry.flows = entry.flows.saturating_add(e.flows);
    }
    agg.into_iter()
        .map(|((from, to, reject), g)| {
            let mut services: Vec<String> = Vec::new();
            for (p, port) in &g.services {
                let s = service(p, *port);
                if !services.contains(&s) {
                    services.push(s);
                }
            }
            Edge { from, to, services, reject, violation: g.violation, flows: g.flows, latent: false }
        })
        .collect()
}

/// Paths the configuration opens into the CDE that no flow used, of the
/// systems in scope by configuration alone (rule `reachable`): the paths
/// that put them there. (Every such pair is in the report's boundary table;
/// drawn all, they would bury the flows.) None where `edges` has an
/// accepted edge already.
fn latent_edges(a: &Analysis, owners: &Owners<'_>, node_of: &BTreeMap<String, usize>, edges: &[Edge]) -> Vec<Edge> {
    let mut latent: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let by_configuration: BTreeSet<&str> =
        a.resources.iter().filter(|r| r.rule == "reachable").map(|r| r.resource_id.as_str()).collect();
    for b in a
        .boundary
        .iter()
        .filter(|b| b.observed.is_empty() && !b.reachable_by.is_empty() && by_configuration.contains(b.system.as_str()))
    {
        let (Some(&from), Some(&to)) =
            (node_of.get(&owners.system(&b.system)), node_of.get(&owners.system(&b.cde_system)))
        else {
            continue;
        };
        if from == to || edges.iter().any(|e| e.from == from && e.to == to && !e.reject) {
            continue;
        }
        let services = latent.entry((from, to)).or_default();
        for rule in &b.reachable_by {
            // `sg-0cde admits TCP/5432 from sg-0app`: the service.
            let s = rule.split_once(" admits ").and_then(|(_, r)| r.split_once(" from ")).map(|(s, _)| s);
            if let Some(s) = s.filter(|s| !services.iter().any(|x| x == s)) {
                services.push(s.to_owned());
            }
        }
    }
    latent
        .into_iter()
        .map(|((from, to), mut services)| {
            services.sort();
            Edge { from, to, services, reject: false, violation: false, flows: 0, latent: true }
        })
        .collect()
}
