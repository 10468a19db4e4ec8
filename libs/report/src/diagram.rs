//! The network / data-flow diagram (PCI DSS 1.2.3 / 1.2.4) as SVG (no
//! Graphviz needed), Mermaid and DOT.
//!
//! All three renderings draw the same model, built from an [`Analysis`]:
//!
//! - one node per resource (unknown hosts `ip:…` included) and per public
//!   address `ext:…` seen in the edges or in the external connections;
//! - when there are more than [`COLLAPSE_ABOVE`] out-of-scope and
//!   pending-review systems, those are collapsed into one node per scope and
//!   segment ("vpc-corp — 57 out-of-scope systems"), except systems named by
//!   a segmentation violation, which always stay visible; a group of one is
//!   not collapsed;
//! - when there are more than [`EXTERNAL_GROUP_ABOVE`] public addresses, those
//!   not named by a violation are grouped into one "Internet: N addresses"
//!   node;
//! - flows are aggregated per (source node, destination node, accepted or
//!   rejected) with their services listed ("TCP/443, TCP/5432"); flows inside
//!   one collapsed group are dropped.
//!
//! The SVG is a radial layout: the CDE at the centre, connected-to-CDE
//! systems on the first ring, out-of-scope and pending-review systems on the
//! second, external endpoints on the third. Nodes are ordered around each
//! ring by the mean angle of their neighbours (fewer crossings), labels are
//! placed outside their ring along the radial direction (turned along the
//! radius when a ring is crowded), ring radii and the canvas grow with the
//! node count and label lengths, and edge labels are placed greedily where
//! they overlap nothing (violations always labelled). Output is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::{PI, TAU};
use std::fmt::Write as _;

use crate::{Analysis, scope_rank};

/// Out-of-scope plus pending-review systems above which they are collapsed
/// per segment.
pub const COLLAPSE_ABOVE: usize = 12;

/// Public addresses above which they are grouped into one Internet node.
pub const EXTERNAL_GROUP_ABOVE: usize = 6;

/// `write!` into a `String`, which cannot fail.
macro_rules! w {
    ($($t:tt)*) => {
        let _ = write!($($t)*);
    };
}

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

const NAME_MAX: usize = 30;
const GROUP_NAME_MAX: usize = 48;
const DETAIL_MAX: usize = 34;
const SEGMENT_MAX: usize = 20;
const SERVICES_MAX: usize = 3;
const TOOLTIP_MEMBERS_MAX: usize = 25;

/// Where a node sits: the ring of the SVG, the section of Mermaid / DOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Zone {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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

#[derive(Debug, Clone)]
struct Node {
    /// Stable, unique: the resource id, `ext:<address>`, `group:<scope>:<segment>`, `internet`.
    key: String,
    /// First label line (not truncated).
    name: String,
    /// Second label line (type · provider).
    detail: String,
    /// Longer description (SVG tooltip).
    tooltip: String,
    /// One of the scopes, or `external`.
    scope: &'static str,
    segment: String,
    kind: Kind,
    /// Systems or addresses this node stands for.
    members: usize,
    /// Named by a segmentation violation.
    violation: bool,
}

impl Node {
    fn zone(&self) -> Zone {
        zone_of(self.scope)
    }
}

#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    /// `TCP/443`, sorted, distinct.
    services: Vec<String>,
    /// Every flow of this edge was rejected.
    reject: bool,
    violation: bool,
    flows: i64,
    /// No flow: the configuration lets the source reach a CDE system
    /// (drawn dotted).
    latent: bool,
}

impl Edge {
    /// The services, at most [`SERVICES_MAX`] of them.
    fn label(&self) -> String {
        let mut s = self.services.iter().take(SERVICES_MAX).cloned().collect::<Vec<_>>().join(", ");
        if self.services.len() > SERVICES_MAX {
            w!(s, " +{} more", self.services.len() - SERVICES_MAX);
        }
        s
    }
}

#[derive(Debug)]
struct Model {
    /// Sorted by zone, scope, segment, key.
    nodes: Vec<Node>,
    /// Sorted by (from, to, reject).
    edges: Vec<Edge>,
}

struct RawEdge {
    source: String,
    destination: String,
    protocol: String,
    port: i32,
    reject: bool,
    flows: i64,
    violation: bool,
}

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

fn build(a: &Analysis) -> Model {
    // An interface's flows are its system's.
    let system_of: BTreeMap<&str, &str> = a
        .resources
        .iter()
        .flat_map(|r| r.interfaces.iter().map(move |i| (i.as_str(), r.resource_id.as_str())))
        .collect();
    let system = |id: &str| system_of.get(id).map_or_else(|| id.to_owned(), |s| (*s).to_owned());
    // Flows, plus the external connections the edges do not already show.
    let mut raw: Vec<RawEdge> = a
        .edges
        .iter()
        .map(|e| RawEdge {
            source: system(&e.source),
            destination: system(&e.destination),
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

    // Systems: the resources, then endpoints that are neither resources nor public.
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
    for e in &raw {
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

    // Collapsing of out-of-scope / pending-review systems per segment.
    let outer_total = systems.iter().filter(|s| zone_of(s.scope) == Zone::Outer).count();
    let mut groups: BTreeMap<(usize, &'static str, &str), Vec<usize>> = BTreeMap::new();
    if outer_total > COLLAPSE_ABOVE {
        for (i, s) in systems.iter().enumerate() {
            if zone_of(s.scope) == Zone::Outer && !violating.contains(s.id.as_str()) {
                groups.entry((scope_rank(s.scope), s.scope, s.segment.as_str())).or_default().push(i);
            }
        }
    }
    groups.retain(|_, members| members.len() >= 2);
    let grouped: BTreeSet<usize> = groups.values().flatten().copied().collect();

    let mut taken: BTreeSet<String> = systems.iter().map(|s| s.id.clone()).collect();
    taken.extend(externals.iter().map(|e| e.to_string()));
    let mut pending: Vec<(Node, Vec<String>)> = Vec::new();
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
    for ((_, scope, segment), members) in &groups {
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
        let key = unique_key(format!("group:{scope}:{segment}"), &taken);
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

    // Public addresses, grouped when many.
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
                key: unique_key("internet".to_string(), &taken),
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

    #[derive(Default)]
    struct Agg {
        services: BTreeSet<(String, i32)>,
        violation: bool,
        flows: i64,
    }
    let mut agg: BTreeMap<(usize, usize, bool), Agg> = BTreeMap::new();
    for e in &raw {
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
    let edges = agg
        .into_iter()
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
        .collect::<Vec<Edge>>();
    // Paths the configuration opens into the CDE that no flow used, of the
    // systems in scope by configuration alone (rule `reachable`): the
    // paths that put them there. (Every such pair is in the report's
    // boundary table; drawn all, they would bury the flows.)
    let mut edges = edges;
    let mut latent: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let by_configuration: BTreeSet<&str> =
        a.resources.iter().filter(|r| r.rule == "reachable").map(|r| r.resource_id.as_str()).collect();
    for b in a
        .boundary
        .iter()
        .filter(|b| b.observed.is_empty() && !b.reachable_by.is_empty() && by_configuration.contains(b.system.as_str()))
    {
        let (Some(&from), Some(&to)) = (node_of.get(&system(&b.system)), node_of.get(&system(&b.cde_system))) else {
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
    for ((from, to), mut services) in latent {
        services.sort();
        edges.push(Edge { from, to, services, reject: false, violation: false, flows: 0, latent: true });
    }
    edges.sort_by_key(|e| (e.from, e.to, e.reject, e.latent));
    Model { nodes, edges }
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

/// At most `max` characters, the last one an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Text and attribute content for XML: the five special characters escaped,
/// characters XML 1.0 forbids replaced.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One line: control characters (newlines included) become spaces.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

// ---------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------

const FONT: &str = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif";
/// Average advance of a character, in ems (DejaVu Sans / Verdana are wide).
const CHAR_W: f64 = 0.62;
const NAME_PX: f64 = 11.0;
const DETAIL_PX: f64 = 8.5;
const EDGE_PX: f64 = 8.5;
/// Height of a two-line node label.
const LABEL_H: f64 = 23.0;
/// Node edge to label.
const PAD: f64 = 5.0;
/// Clear space between a ring's labels and the next ring's nodes.
const GAP: f64 = 44.0;
/// Arc between neighbours when labels are turned along the radius.
const TURNED_SPACING: f64 = 26.0;
/// Half-size of the squares that approximate a turned label.
const TURNED_HALF: f64 = 9.0;
/// Rings with more nodes than this always get turned labels.
const FLAT_MAX: usize = 12;
const MARGIN: f64 = 24.0;
/// An edge label is left out when the same text is already this close.
const REPEAT_RADIUS: f64 = 110.0;
const TITLE_H: f64 = 78.0;
const MIN_WIDTH: f64 = 980.0;

struct Palette {
    fill: &'static str,
    stroke: &'static str,
}

fn palette(scope: &str) -> Palette {
    match scope {
        "cde" => Palette { fill: "#f28b82", stroke: "#a50e0e" },
        "connected-cde" => Palette { fill: "#fbbc6b", stroke: "#b35c00" },
        "out-of-scope" => Palette { fill: "#b7dfb0", stroke: "#3d7a36" },
        "external" => Palette { fill: "#9cc3f5", stroke: "#1f5fa8" },
        _ => Palette { fill: "#fce77d", stroke: "#9a7d00" },
    }
}

const VIOLATION: &str = "#d40000";
const ACCEPT: &str = "#5f6b7a";
const REJECT: &str = "#a3a3a3";
const LATENT: &str = "#8430ce";

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn centred(x: f64, y: f64, w: f64, h: f64) -> Rect {
        Rect { x0: x - w / 2.0, y0: y - h / 2.0, x1: x + w / 2.0, y1: y + h / 2.0 }
    }

    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    fn union(&self, o: &Rect) -> Rect {
        Rect { x0: self.x0.min(o.x0), y0: self.y0.min(o.y0), x1: self.x1.max(o.x1), y1: self.y1.max(o.y1) }
    }
}

/// Where a node's two label lines go.
#[derive(Debug, Clone)]
enum Label {
    /// Horizontal; `top` is the top of the two lines.
    Flat { x: f64, top: f64, anchor: &'static str, rect: Rect },
    /// Along the radius, starting at (`x`, `y`); `points` are the centres of
    /// squares covering the text.
    Turned { x: f64, y: f64, deg: f64, anchor: &'static str, points: Vec<(f64, f64)> },
}

impl Label {
    /// Squares / rectangles covering the label; `half` sizes the squares of a turned label.
    fn rects(&self, half: f64) -> Vec<Rect> {
        match self {
            Label::Flat { rect, .. } => vec![*rect],
            Label::Turned { points, .. } => {
                points.iter().map(|&(x, y)| Rect::centred(x, y, 2.0 * half, 2.0 * half)).collect()
            }
        }
    }
}

struct Shown {
    name: String,
    detail: String,
    width: f64,
}

fn shown(n: &Node) -> Shown {
    let name = truncate(&one_line(&n.name), if n.kind == Kind::Group { GROUP_NAME_MAX } else { NAME_MAX });
    let detail = truncate(&one_line(&n.detail), DETAIL_MAX);
    let width = text_w(&name, NAME_PX).max(text_w(&detail, DETAIL_PX));
    Shown { name, detail, width }
}

fn text_w(s: &str, px: f64) -> f64 {
    s.chars().count() as f64 * px * CHAR_W
}

fn node_radius(n: &Node) -> f64 {
    match n.kind {
        Kind::Group => 15.0,
        Kind::Internet => 17.0,
        Kind::External => 9.0,
        Kind::System | Kind::Unknown => match n.zone() {
            Zone::Cde => 13.0,
            Zone::Connected => 10.0,
            _ => 8.0,
        },
    }
}

fn flat_label(x: f64, y: f64, r: f64, theta: f64, centre: bool, w: f64) -> Label {
    let (c, s) = if centre { (0.0, 1.0) } else { (theta.cos(), theta.sin()) };
    let (ax, ay) = (x + c * (r + PAD), y + s * (r + PAD));
    let (anchor, x0) = if c > 0.35 {
        ("start", ax)
    } else if c < -0.35 {
        ("end", ax - w)
    } else {
        ("middle", ax - w / 2.0)
    };
    let top = if s > 0.35 {
        ay
    } else if s < -0.35 {
        ay - LABEL_H
    } else {
        ay - LABEL_H / 2.0
    };
    Label::Flat { x: ax, top, anchor, rect: Rect { x0, y0: top, x1: x0 + w, y1: top + LABEL_H } }
}

fn turned_label(x: f64, y: f64, r: f64, theta: f64, w: f64) -> Label {
    let (c, s) = (theta.cos(), theta.sin());
    let d0 = r + PAD;
    let (ax, ay) = (x + c * d0, y + s * d0);
    let mut deg = theta.to_degrees();
    let anchor = if c < -1e-9 {
        deg += 180.0;
        "end"
    } else {
        "start"
    };
    let mut points = Vec::new();
    let mut t = TURNED_HALF;
    loop {
        let t_here = t.min((w - TURNED_HALF).max(TURNED_HALF));
        points.push((ax + c * t_here, ay + s * t_here));
        if t >= w - TURNED_HALF {
            break;
        }
        t += TURNED_HALF;
    }
    Label::Turned { x: ax, y: ay, deg: normalise_deg(deg), anchor, points }
}

fn normalise_deg(d: f64) -> f64 {
    let d = d.rem_euclid(360.0);
    if d > 180.0 { d - 360.0 } else { d }
}

#[derive(Debug)]
struct Layout {
    pos: Vec<(f64, f64)>,
    radius: Vec<f64>,
    labels: Vec<Label>,
    /// Radius of each ring, `None` when empty.
    rings: [Option<f64>; 4],
    /// Radius of the shaded CDE area.
    cde_zone: f64,
}

/// Mean direction of a set of angles, `None` if they cancel out or are none.
fn mean_angle(angles: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut x, mut y, mut n) = (0.0, 0.0, 0usize);
    for a in angles {
        x += a.cos();
        y += a.sin();
        n += 1;
    }
    if n == 0 || x.hypot(y) < 1e-6 * n as f64 { None } else { Some(y.atan2(x)) }
}

/// Evenly spaced angles for `ring`, ordered by the wanted angle of each
/// node (its rank in the ring when it has none), rotated to best fit.
fn arrange(ring: &[usize], wanted: &[Option<f64>], angle: &mut [f64]) {
    let n = ring.len();
    if n == 0 {
        return;
    }
    let step = TAU / n as f64;
    let mut want: Vec<(f64, usize, usize)> = ring
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let base = -PI / 2.0 + step * k as f64;
            (wanted.get(i).copied().flatten().unwrap_or(base).rem_euclid(TAU), k, i)
        })
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let theta0 =
        mean_angle(want.iter().enumerate().map(|(j, w)| w.0 - step * j as f64)).unwrap_or(-PI / 2.0).rem_euclid(TAU);
    for (j, w) in want.iter().enumerate() {
        if let Some(slot) = angle.get_mut(w.2) {
            *slot = theta0 + step * j as f64;
        }
    }
}

fn layout(m: &Model) -> Layout {
    let n = m.nodes.len();
    let ring_of: Vec<usize> = m.nodes.iter().map(|x| x.zone() as usize).collect();
    let mut rings: [Vec<usize>; 4] = Default::default();
    for (i, &r) in ring_of.iter().enumerate() {
        if let Some(ring) = rings.get_mut(r) {
            ring.push(i);
        }
    }
    let mut neighbours: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for e in &m.edges {
        if let Some(s) = neighbours.get_mut(e.from) {
            s.insert(e.to);
        }
        if let Some(s) = neighbours.get_mut(e.to) {
            s.insert(e.from);
        }
    }
    let single_centre = rings[0].len() == 1;
    let centred = |i: usize| single_centre && ring_of.get(i) == Some(&0);

    // Angles: inside out, then once more against every other ring.
    let mut angle = vec![0.0; n];
    let mut placed = vec![false; n];
    let order: [(usize, &[usize]); 7] =
        [(0, &[]), (1, &[0]), (2, &[0, 1]), (3, &[0, 1, 2]), (1, &[0, 2, 3]), (2, &[0, 1, 3]), (3, &[0, 1, 2])];
    for (ring, from) in order {
        let wanted: Vec<Option<f64>> = (0..n)
            .map(|i| {
                if ring_of.get(i) != Some(&ring) {
                    return None;
                }
                mean_angle(
                    neighbours[i]
                        .iter()
                        .filter(|&&j| placed[j] && !centred(j) && from.contains(&ring_of[j]))
                        .map(|&j| angle[j]),
                )
            })
            .collect();
        arrange(&rings[ring], &wanted, &mut angle);
        for &i in &rings[ring] {
            placed[i] = true;
        }
    }

    let radius: Vec<f64> = m.nodes.iter().map(node_radius).collect();
    let widths: Vec<f64> = m.nodes.iter().map(|x| shown(x).width).collect();
    let square = |i: usize, (x, y): (f64, f64)| Rect::centred(x, y, 2.0 * radius[i] + 4.0, 2.0 * radius[i] + 4.0);
    let mut pos = vec![(0.0, 0.0); n];
    let mut labels: Vec<Option<Label>> = vec![None; n];
    let mut ring_radius: [Option<f64>; 4] = [None; 4];
    // Farthest extent of the inner rings, and what they cover.
    let mut reach: f64 = 0.0;
    let mut last_ring: f64 = 0.0;
    let mut inner: Vec<Rect> = Vec::new();
    let mut cde_zone = 0.0;

    for (k, ring) in rings.iter().enumerate() {
        if ring.is_empty() {
            if k == 0 {
                reach = 40.0;
                cde_zone = 40.0;
            }
            continue;
        }
        let count = ring.len();
        if k == 0 && count == 1 {
            let i = ring[0];
            let label = flat_label(0.0, 0.0, radius[i], PI / 2.0, false, widths[i]);
            reach = radius[i].max(far(&label.rects(TURNED_HALF)));
            inner.push(square(i, (0.0, 0.0)));
            inner.extend(label.rects(TURNED_HALF));
            labels[i] = Some(label);
            ring_radius[0] = Some(0.0);
        } else {
            let node_max = ring.iter().map(|&i| radius[i]).fold(0.0, f64::max);
            let global = if reach > 0.0 { reach + GAP + node_max } else { 0.0 }.max(60.0);
            let at = |r: f64, i: usize| (r * angle[i].cos(), r * angle[i].sin());
            let flat_try = |r: f64| -> Option<Vec<Label>> {
                let labels: Vec<Label> = ring
                    .iter()
                    .map(|&i| {
                        let (x, y) = at(r, i);
                        flat_label(x, y, radius[i], angle[i], false, widths[i])
                    })
                    .collect();
                let nodes: Vec<Rect> = ring.iter().map(|&i| square(i, at(r, i))).collect();
                let rects: Vec<Rect> = labels.iter().flat_map(|l| l.rects(TURNED_HALF)).collect();
                // Each label against the other labels, the other nodes and the inner rings.
                let clash = (0..rects.len()).any(|p| {
                    (0..rects.len()).any(|q| p != q && rects[p].overlaps(&rects[q]))
                        || (0..nodes.len()).any(|q| p != q && rects[p].overlaps(&nodes[q]))
                        || inner.iter().any(|o| o.overlaps(&rects[p]))
                }) || nodes.iter().any(|x| inner.iter().any(|o| o.overlaps(x)));
                if clash { None } else { Some(labels) }
            };
            let mut chosen: Option<(f64, Vec<Label>)> = None;
            if count <= FLAT_MAX {
                // Few nodes: each only has to clear what lies in its own direction.
                let local = ring
                    .iter()
                    .map(|&i| reach_towards(&inner, angle[i]) + GAP + radius[i])
                    .fold(last_ring + GAP + node_max, f64::max)
                    .max(60.0);
                let mut r = local.max(count as f64 * 36.0 / TAU);
                let limit = global * 1.5 + 80.0;
                while r <= limit {
                    if let Some(l) = flat_try(r) {
                        chosen = Some((r, l));
                        break;
                    }
                    r *= 1.06;
                }
            }
            let (r, ring_labels) = chosen.unwrap_or_else(|| {
                let r = global.max(count as f64 * TURNED_SPACING / TAU);
                let l = ring
                    .iter()
                    .map(|&i| {
                        let (x, y) = at(r, i);
                        turned_label(x, y, radius[i], angle[i], widths[i])
                    })
                    .collect();
                (r, l)
            });
            ring_radius[k] = Some(r);
            last_ring = r;
            for (&i, label) in ring.iter().zip(ring_labels) {
                pos[i] = at(r, i);
                reach = reach.max(far(&label.rects(TURNED_HALF))).max(r + radius[i]);
                inner.push(square(i, pos[i]));
                inner.extend(label.rects(TURNED_HALF));
                labels[i] = Some(label);
            }
        }
        if k == 0 {
            cde_zone = reach + GAP / 2.0;
        }
    }
    let labels = labels
        .into_iter()
        .zip(&pos)
        .map(|(l, &(x, y))| {
            l.unwrap_or(Label::Flat { x, top: y, anchor: "middle", rect: Rect::centred(x, y, 0.0, 0.0) })
        })
        .collect();
    Layout { pos, radius, labels, rings: ring_radius, cde_zone }
}

/// The layout with its edge curves, flat labels moved off the edges where
/// another side of their node is free.
fn full_layout(m: &Model) -> (Layout, Vec<Curve>) {
    let mut l = layout(m);
    let curves = curves(m, &l);
    let segments: Vec<((f64, f64), (f64, f64))> = curves
        .iter()
        .flat_map(|c| (0..8).map(move |s| (c.at(f64::from(s) / 8.0), c.at(f64::from(s + 1) / 8.0))))
        .collect();
    let nodes: Vec<Rect> =
        l.pos.iter().zip(&l.radius).map(|(&(x, y), r)| Rect::centred(x, y, 2.0 * r + 4.0, 2.0 * r + 4.0)).collect();
    for i in 0..m.nodes.len() {
        let Label::Flat { rect, .. } = &l.labels[i] else { continue };
        let crossings = |r: &Rect| segments.iter().filter(|(a, b)| segment_hits(*a, *b, r)).count();
        let mut best = (crossings(rect), l.labels[i].clone());
        if best.0 == 0 {
            continue;
        }
        let (x, y) = l.pos[i];
        let theta = if x.hypot(y) < 1e-9 { PI / 2.0 } else { y.atan2(x) };
        let width = shown(&m.nodes[i]).width;
        for off in [0.5, -0.5, 1.0, -1.0, 1.6, -1.6, PI] {
            let cand = flat_label(x, y, l.radius[i], theta + off, false, width);
            let Label::Flat { rect, .. } = &cand else { continue };
            let free = nodes.iter().enumerate().all(|(j, o)| j == i || !o.overlaps(rect))
                && l.labels
                    .iter()
                    .enumerate()
                    .all(|(j, o)| j == i || o.rects(TURNED_HALF).iter().all(|q| !q.overlaps(rect)));
            if !free {
                continue;
            }
            let c = crossings(rect);
            if c < best.0 {
                best = (c, cand);
                if c == 0 {
                    break;
                }
            }
        }
        l.labels[i] = best.1;
    }
    (l, curves)
}

/// Whether segment `a`–`b` meets `r` (Liang–Barsky).
fn segment_hits(a: (f64, f64), b: (f64, f64), r: &Rect) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
    for (p, q) in [(-dx, a.0 - r.x0), (dx, r.x1 - a.0), (-dy, a.1 - r.y0), (dy, r.y1 - a.1)] {
        if p.abs() < 1e-12 {
            if q < 0.0 {
                return false;
            }
            continue;
        }
        let t = q / p;
        if p < 0.0 {
            if t > t1 {
                return false;
            }
            t0 = t0.max(t);
        } else {
            if t < t0 {
                return false;
            }
            t1 = t1.min(t);
        }
    }
    true
}

/// How far from the origin `shapes` reach around direction `theta`.
fn reach_towards(shapes: &[Rect], theta: f64) -> f64 {
    const WINDOW: f64 = 0.5;
    let wrap = |d: f64| (d + PI).rem_euclid(TAU) - PI;
    shapes
        .iter()
        .filter(|r| {
            if r.x0 <= 0.0 && r.x1 >= 0.0 && r.y0 <= 0.0 && r.y1 >= 0.0 {
                return true;
            }
            let ds: Vec<f64> = [(r.x0, r.y0), (r.x0, r.y1), (r.x1, r.y0), (r.x1, r.y1)]
                .iter()
                .map(|(x, y)| wrap(y.atan2(*x) - theta))
                .collect();
            let lo = ds.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            // A rectangle behind the origin spans the wrap-around: irrelevant unless within the window.
            if hi - lo > PI { lo.abs() <= WINDOW || hi.abs() <= WINDOW } else { lo <= WINDOW && hi >= -WINDOW }
        })
        .map(|r| far(std::slice::from_ref(r)))
        .fold(0.0, f64::max)
}

/// The farthest corner of `rects` from the origin.
fn far(rects: &[Rect]) -> f64 {
    rects
        .iter()
        .flat_map(|r| [(r.x0, r.y0), (r.x0, r.y1), (r.x1, r.y0), (r.x1, r.y1)])
        .map(|(x, y)| x.hypot(y))
        .fold(0.0, f64::max)
}

/// A quadratic Bézier from `p0` through control `c` to `p2`.
#[derive(Debug, Clone, Copy)]
struct Curve {
    p0: (f64, f64),
    c: (f64, f64),
    p2: (f64, f64),
}

impl Curve {
    fn at(&self, t: f64) -> (f64, f64) {
        let u = 1.0 - t;
        (
            u * u * self.p0.0 + 2.0 * u * t * self.c.0 + t * t * self.p2.0,
            u * u * self.p0.1 + 2.0 * u * t * self.c.1 + t * t * self.p2.1,
        )
    }
}

/// Distance from the origin to segment `a`–`b`.
fn distance_to_segment(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 < 1e-12 { 0.0 } else { (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0) };
    (a.0 + t * dx).hypot(a.1 + t * dy)
}

fn towards(from: (f64, f64), to: (f64, f64), by: f64) -> (f64, f64) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = dx.hypot(dy);
    if len < 1e-9 { from } else { (from.0 + dx / len * by, from.1 + dy / len * by) }
}

/// Edge curves: straight when alone between two nodes, bowed apart when
/// several edges join the same pair (both directions, accepted and rejected).
fn curves(m: &Model, l: &Layout) -> Vec<Curve> {
    let mut pairs: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (k, e) in m.edges.iter().enumerate() {
        pairs.entry((e.from.min(e.to), e.from.max(e.to))).or_default().push(k);
    }
    let mut out = vec![Curve { p0: (0.0, 0.0), c: (0.0, 0.0), p2: (0.0, 0.0) }; m.edges.len()];
    for ((lo, hi), ks) in pairs {
        let (a, b) = (l.pos[lo], l.pos[hi]);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy).max(1e-9);
        let normal = (-dy / len, dx / len);
        let mut mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        // Edges not ending in the CDE bow around it rather than cross it.
        let clear = l.cde_zone + 24.0;
        let cde = m.nodes[lo].zone() == Zone::Cde || m.nodes[hi].zone() == Zone::Cde;
        if !cde && distance_to_segment(a, b) < clear {
            let (ua, ub) = (towards((0.0, 0.0), a, 1.0), towards((0.0, 0.0), b, 1.0));
            let mut u = (ua.0 + ub.0, ua.1 + ub.1);
            if u.0.hypot(u.1) < 1e-6 {
                u = (-ua.1, ua.0);
            }
            let u = towards((0.0, 0.0), u, 1.0);
            let target = (u.0 * (clear + 10.0), u.1 * (clear + 10.0));
            mid = (2.0 * target.0 - mid.0, 2.0 * target.1 - mid.1);
        }
        let count = ks.len();
        for (j, &k) in ks.iter().enumerate() {
            let offset = (j as f64 - (count as f64 - 1.0) / 2.0) * 24.0;
            let c = (mid.0 + normal.0 * offset, mid.1 + normal.1 * offset);
            let e = &m.edges[k];
            let (from, to) = (l.pos[e.from], l.pos[e.to]);
            out[k] = Curve {
                p0: towards(from, c, l.radius[e.from] + 1.5),
                c,
                p2: towards(to, c, l.radius[e.to] + if e.violation { 4.5 } else { 3.0 }),
            };
        }
    }
    out
}

/// Edge label centres, `None` where no free place was found (violations
/// are always placed), and how many were left out.
fn place_edge_labels(m: &Model, l: &Layout, curves: &[Curve]) -> (Vec<Option<(f64, f64)>>, usize) {
    let mut taken: Vec<Rect> = Vec::new();
    for (i, &(x, y)) in l.pos.iter().enumerate() {
        let side = 2.0 * l.radius[i] + 6.0;
        taken.push(Rect::centred(x, y, side, side));
        taken.extend(l.labels[i].rects(TURNED_HALF + 1.0));
    }
    let mut order: Vec<usize> = (0..m.edges.len()).collect();
    order.sort_by_key(|&k| {
        let e = &m.edges[k];
        (!e.violation, e.reject, std::cmp::Reverse(e.flows), k)
    });
    let mut out = vec![None; m.edges.len()];
    let mut texts: Vec<(String, (f64, f64))> = Vec::new();
    let mut omitted = 0;
    for k in order {
        let e = &m.edges[k];
        let text = e.label();
        let (w, h) = (text_w(&text, EDGE_PX) + 6.0, EDGE_PX + 5.0);
        let c = curves[k];
        let found = [0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82].iter().find_map(|&t| {
            let p = c.at(t);
            let r = Rect::centred(p.0, p.1, w, h);
            // The same services just next to it say it already (fan-in / fan-out).
            let repeated = !e.violation
                && texts
                    .iter()
                    .any(|(s, q): &(String, (f64, f64))| *s == text && (q.0 - p.0).hypot(q.1 - p.1) < REPEAT_RADIUS);
            (!repeated && !taken.iter().any(|o| o.overlaps(&r))).then_some(p)
        });
        let at = match (found, e.violation) {
            (Some(p), _) => Some(p),
            (None, true) => Some(c.at(0.5)),
            (None, false) => None,
        };
        match at {
            Some(p) => {
                taken.push(Rect::centred(p.0, p.1, w, h));
                texts.push((text, p));
                out[k] = Some(p);
            }
            None => omitted += 1,
        }
    }
    (out, omitted)
}

fn f(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 { "0".to_string() } else { format!("{r:.1}") }
}

/// The diagram as a self-contained SVG: CDE at the centre, connected systems
/// around it, out-of-scope / pending-review systems (collapsed per segment
/// when many) on the next ring, external endpoints outside.
pub fn svg(a: &Analysis) -> String {
    let m = build(a);
    let (l, curves) = full_layout(&m);
    let (edge_labels, omitted) = place_edge_labels(&m, &l, &curves);

    // Extent of the drawing, around the origin.
    let mut bounds = Rect::centred(0.0, 0.0, 2.0 * l.cde_zone, 2.0 * l.cde_zone);
    for r in l.rings.iter().take(3).flatten() {
        bounds = bounds.union(&Rect::centred(0.0, 0.0, 2.0 * r + 2.0, 2.0 * r + 2.0));
    }
    for (i, &(x, y)) in l.pos.iter().enumerate() {
        let side = 2.0 * l.radius[i] + 10.0;
        bounds = bounds.union(&Rect::centred(x, y, side, side));
        for r in l.labels[i].rects(TURNED_HALF) {
            bounds = bounds.union(&r);
        }
    }
    for (k, p) in edge_labels.iter().enumerate() {
        if let Some(p) = p {
            let text = m.edges[k].label();
            bounds = bounds.union(&Rect::centred(p.0, p.1, text_w(&text, EDGE_PX) + 6.0, EDGE_PX + 5.0));
        }
    }
    for c in &curves {
        bounds = bounds.union(&Rect::centred(c.at(0.5).0, c.at(0.5).1, 4.0, 4.0));
    }
    let s = &a.summary;
    let violations = m.edges.iter().filter(|e| e.violation).count();
    let title = "Network and data-flow diagram — PCI DSS scope (Req. 1.2.3 / 1.2.4)";
    let subtitle = format!("As of {}", one_line(&a.as_of));
    let counts = format!(
        "CDE {} · connected-to-CDE {} · out-of-scope {} · pending review {} · {} flow records · {} violation edge{} · {} alert{}",
        s.cde,
        s.connected_cde,
        s.out_of_scope,
        s.pending_review,
        s.flow_records,
        violations,
        if violations == 1 { "" } else { "s" },
        a.alerts.len(),
        if a.alerts.len() == 1 { "" } else { "s" },
    );
    let diagram_w = bounds.x1 - bounds.x0;
    let width = (diagram_w + 2.0 * MARGIN)
        .max(MIN_WIDTH)
        .max(text_w(&counts, 12.0) + 2.0 * MARGIN)
        .max(text_w(title, 17.0) * 0.95 + 2.0 * MARGIN)
        .ceil();
    let (legend, legend_h) = legend(width, omitted);
    let top = TITLE_H + MARGIN;
    let height = (top + (bounds.y1 - bounds.y0) + MARGIN + legend_h).ceil();
    let ox = (width - diagram_w) / 2.0 - bounds.x0;
    let oy = top - bounds.y0;

    let mut o = String::new();
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\" role=\"img\">\n",
        w = f(width),
        h = f(height)
    );
    w!(o, "<title>{}</title>\n", xml(title));
    w!(o, "<desc>{} — {}</desc>\n", xml(&subtitle), xml(&counts));
    o.push_str("<defs>\n");
    for (id, colour) in
        [("arrow-accept", ACCEPT), ("arrow-reject", REJECT), ("arrow-violation", VIOLATION), ("arrow-latent", LATENT)]
    {
        let size = if id == "arrow-violation" { 11 } else { 8 };
        w!(
            o,
            "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"{size}\" markerHeight=\"{size}\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{colour}\"/></marker>\n"
        );
    }
    o.push_str("</defs>\n");
    w!(o, "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", f(width), f(height));
    w!(
        o,
        "<text x=\"{}\" y=\"28\" font-size=\"17\" font-weight=\"bold\" fill=\"#202124\">{}</text>\n",
        f(MARGIN),
        xml(title)
    );
    w!(o, "<text x=\"{}\" y=\"49\" font-size=\"12\" fill=\"#3c4043\">{}</text>\n", f(MARGIN), xml(&subtitle));
    w!(o, "<text x=\"{}\" y=\"66\" font-size=\"12\" fill=\"#3c4043\">{}</text>\n", f(MARGIN), xml(&counts));

    w!(o, "<g transform=\"translate({},{})\">\n", f(ox), f(oy));
    // Zones.
    o.push_str("<g class=\"zones\">\n");
    for r in l.rings.iter().skip(1).take(2).flatten() {
        w!(
            o,
            "<circle cx=\"0\" cy=\"0\" r=\"{}\" fill=\"none\" stroke=\"#e2e2e2\" stroke-dasharray=\"2 4\"/>\n",
            f(*r)
        );
    }
    w!(
        o,
        "<circle cx=\"0\" cy=\"0\" r=\"{}\" fill=\"#fdeceb\" stroke=\"#f1b5b0\" stroke-width=\"1.5\"/>\n",
        f(l.cde_zone)
    );
    w!(
        o,
        "<text x=\"0\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" font-weight=\"bold\" letter-spacing=\"1\" fill=\"#c5443a\">{}</text>\n",
        f(-l.cde_zone + 14.0),
        if l.rings[0].is_some() { "CDE" } else { "NO CDE SYSTEMS" }
    );
    o.push_str("</g>\n");

    // Edges, under the nodes: rejected, accepted, then violations on top.
    o.push_str("<g class=\"edges\" fill=\"none\">\n");
    let mut edge_order: Vec<usize> = (0..m.edges.len()).collect();
    edge_order.sort_by_key(|&k| (m.edges[k].violation, !m.edges[k].reject, k));
    for k in edge_order {
        let e = &m.edges[k];
        let c = curves[k];
        let (stroke, width, extra, marker) = if e.violation {
            (VIOLATION, 3.0, if e.reject { " stroke-dasharray=\"7 4\"" } else { "" }, "arrow-violation")
        } else if e.reject {
            (REJECT, 1.1, " stroke-dasharray=\"5 4\"", "arrow-reject")
        } else if e.latent {
            (LATENT, 1.4, " stroke-dasharray=\"1.5 3.5\" stroke-linecap=\"round\"", "arrow-latent")
        } else {
            (ACCEPT, 1.3, " stroke-opacity=\"0.8\"", "arrow-accept")
        };
        let class = if e.violation {
            "edge violation"
        } else if e.reject {
            "edge reject"
        } else if e.latent {
            "edge reachable"
        } else {
            "edge accept"
        };
        let tip = if e.latent {
            format!(
                "{} → {}: {} reachable by configuration, never observed",
                one_line(&m.nodes[e.from].name),
                one_line(&m.nodes[e.to].name),
                e.services.join(", ")
            )
        } else {
            format!(
                "{} → {}: {} ({}, {} flow{}){}",
                one_line(&m.nodes[e.from].name),
                one_line(&m.nodes[e.to].name),
                e.services.join(", "),
                if e.reject { "blocked" } else { "accepted" },
                e.flows,
                if e.flows == 1 { "" } else { "s" },
                if e.violation { " — SEGMENTATION VIOLATION" } else { "" }
            )
        };
        w!(
            o,
            "<path class=\"{class}\" d=\"M{} {} Q{} {} {} {}\" stroke=\"{stroke}\" stroke-width=\"{width}\"{extra} marker-end=\"url(#{marker})\"><title>{}</title></path>\n",
            f(c.p0.0),
            f(c.p0.1),
            f(c.c.0),
            f(c.c.1),
            f(c.p2.0),
            f(c.p2.1),
            xml(&tip)
        );
    }
    o.push_str("</g>\n");

    // Nodes.
    o.push_str("<g class=\"nodes\">\n");
    for (i, node) in m.nodes.iter().enumerate() {
        let (x, y) = l.pos[i];
        let r = l.radius[i];
        let p = palette(node.scope);
        let class = match node.kind {
            Kind::Group => "node group",
            Kind::Internet => "node internet",
            Kind::External => "node external",
            Kind::Unknown => "node unknown",
            Kind::System => "node system",
        };
        w!(o, "<g class=\"{class} scope-{}\"><title>{}</title>", node.scope, xml(&node.tooltip));
        if node.violation {
            w!(
                o,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"none\" stroke=\"{VIOLATION}\" stroke-width=\"2.5\"/>",
                f(x),
                f(y),
                f(r + 4.5)
            );
        }
        match node.kind {
            Kind::Group => {
                w!(
                    o,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"5\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                    f(x - r),
                    f(y - r),
                    f(2.0 * r),
                    f(2.0 * r),
                    p.fill,
                    p.stroke
                );
            }
            Kind::Unknown => {
                w!(
                    o,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\" stroke=\"#202124\" stroke-width=\"1.6\" stroke-dasharray=\"3 2\"/>",
                    f(x),
                    f(y),
                    f(r),
                    p.fill
                );
            }
            _ => {
                w!(
                    o,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                    f(x),
                    f(y),
                    f(r),
                    p.fill,
                    p.stroke
                );
            }
        }
        if matches!(node.kind, Kind::Group | Kind::Internet) {
            let size = if node.members >= 1000 { 8 } else { 10 };
            w!(
                o,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{size}\" font-weight=\"bold\" fill=\"#202124\">{}</text>",
                f(x),
                f(y + 3.5),
                node.members
            );
        }
        o.push_str("</g>\n");
    }
    o.push_str("</g>\n");

    // Node labels, with a white halo over the edges.
    o.push_str(
        "<g class=\"labels\" stroke=\"#ffffff\" stroke-width=\"3\" stroke-linejoin=\"round\" paint-order=\"stroke\">\n",
    );
    for (i, node) in m.nodes.iter().enumerate() {
        let sh = shown(node);
        let (weight, colour) = if node.violation { ("bold", "#b00000") } else { ("normal", "#202124") };
        match &l.labels[i] {
            Label::Flat { x, top, anchor, .. } => {
                w!(
                    o,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"{NAME_PX}\" font-weight=\"{weight}\" fill=\"{colour}\">{}</text>\n",
                    f(*x),
                    f(top + 10.0),
                    xml(&sh.name)
                );
                if !sh.detail.is_empty() {
                    w!(
                        o,
                        "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"{DETAIL_PX}\" fill=\"#5f6368\">{}</text>\n",
                        f(*x),
                        f(top + 21.0),
                        xml(&sh.detail)
                    );
                }
            }
            Label::Turned { x, y, deg, anchor, .. } => {
                w!(o, "<g transform=\"translate({},{}) rotate({})\">", f(*x), f(*y), f(*deg));
                w!(
                    o,
                    "<text x=\"0\" y=\"-1\" text-anchor=\"{anchor}\" font-size=\"{NAME_PX}\" font-weight=\"{weight}\" fill=\"{colour}\">{}</text>",
                    xml(&sh.name)
                );
                if !sh.detail.is_empty() {
                    w!(
                        o,
                        "<text x=\"0\" y=\"9\" text-anchor=\"{anchor}\" font-size=\"{DETAIL_PX}\" fill=\"#5f6368\">{}</text>",
                        xml(&sh.detail)
                    );
                }
                o.push_str("</g>\n");
            }
        }
    }
    o.push_str("</g>\n");

    // Edge labels.
    o.push_str("<g class=\"edge-labels\">\n");
    for (k, p) in edge_labels.iter().enumerate() {
        let Some((x, y)) = p else { continue };
        let e = &m.edges[k];
        let text = e.label();
        let (w, h) = (text_w(&text, EDGE_PX) + 6.0, EDGE_PX + 5.0);
        let (stroke, fill, weight) = if e.violation {
            (VIOLATION, VIOLATION, "bold")
        } else if e.reject {
            (REJECT, "#757575", "normal")
        } else {
            ("#c4c9cf", "#3c4043", "normal")
        };
        w!(
            o,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\" fill=\"#ffffff\" fill-opacity=\"0.92\" stroke=\"{stroke}\" stroke-width=\"0.8\"/>",
            f(x - w / 2.0),
            f(y - h / 2.0),
            f(w),
            f(h)
        );
        w!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{EDGE_PX}\" font-weight=\"{weight}\" fill=\"{fill}\">{}</text>\n",
            f(*x),
            f(y + EDGE_PX * 0.36),
            xml(&text)
        );
    }
    o.push_str("</g>\n</g>\n");

    w!(o, "<g class=\"legend\" transform=\"translate(0,{})\">\n", f(height - legend_h));
    o.push_str(&legend);
    o.push_str("</g>\n</svg>\n");
    o
}

/// The legend, laid out in rows for `width`, and its height.
fn legend(width: f64, omitted: usize) -> (String, f64) {
    let mut o = String::new();
    let row_h = 22.0;
    let mut x = MARGIN;
    let mut y = 14.0;
    w!(o, "<line x1=\"{}\" y1=\"2\" x2=\"{}\" y2=\"2\" stroke=\"#dadce0\"/>\n", f(MARGIN), f(width - MARGIN));
    let mut item = |o: &mut String, swatch: &str, text: &str, new_row: bool| {
        let w = 30.0 + text_w(text, 11.0) + 16.0;
        if new_row || x + w > width - MARGIN {
            x = MARGIN;
            y += row_h;
        }
        w!(o, "<g transform=\"translate({},{})\">{swatch}", f(x), f(y));
        w!(o, "<text x=\"30\" y=\"4\" font-size=\"11\" fill=\"#3c4043\">{}</text></g>\n", xml(text));
        x += w;
    };
    let dot = |scope: &str, dashed: bool| {
        let p = palette(scope);
        if dashed {
            format!(
                "<circle cx=\"12\" cy=\"0\" r=\"7\" fill=\"{}\" stroke=\"#202124\" stroke-width=\"1.6\" stroke-dasharray=\"3 2\"/>",
                p.fill
            )
        } else {
            format!(
                "<circle cx=\"12\" cy=\"0\" r=\"7\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                p.fill, p.stroke
            )
        }
    };
    item(&mut o, &dot("cde", false), "CDE", false);
    item(&mut o, &dot("connected-cde", false), "connected to CDE", false);
    item(&mut o, &dot("out-of-scope", false), "out of scope", false);
    item(&mut o, &dot("pending-review", false), "pending review", false);
    item(&mut o, &dot("pending-review", true), "unknown host", false);
    item(&mut o, &dot("external", false), "public address", false);
    let group = palette("out-of-scope");
    item(
        &mut o,
        &format!(
            "<rect x=\"4\" y=\"-8\" width=\"16\" height=\"16\" rx=\"3\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            group.fill, group.stroke
        ),
        "systems collapsed per segment (count inside)",
        false,
    );
    item(
        &mut o,
        &format!(
            "<circle cx=\"12\" cy=\"0\" r=\"5\" fill=\"{}\" stroke=\"{}\"/><circle cx=\"12\" cy=\"0\" r=\"9\" fill=\"none\" stroke=\"{VIOLATION}\" stroke-width=\"2.5\"/>",
            group.fill, group.stroke
        ),
        "named by a segmentation violation",
        false,
    );
    item(
        &mut o,
        &format!(
            "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"{ACCEPT}\" stroke-width=\"1.3\" marker-end=\"url(#arrow-accept)\"/>"
        ),
        "accepted flow (protocol/port)",
        true,
    );
    item(
        &mut o,
        &format!(
            "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"{REJECT}\" stroke-width=\"1.1\" stroke-dasharray=\"5 4\" marker-end=\"url(#arrow-reject)\"/>"
        ),
        "blocked attempt (rejected at either end)",
        false,
    );
    item(
        &mut o,
        &format!(
            "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"{LATENT}\" stroke-width=\"1.4\" stroke-dasharray=\"1.5 3.5\" stroke-linecap=\"round\" marker-end=\"url(#arrow-latent)\"/>"
        ),
        "in scope by configuration: reachable, never observed",
        false,
    );
    item(
        &mut o,
        &format!(
            "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"{VIOLATION}\" stroke-width=\"3\" marker-end=\"url(#arrow-violation)\"/>"
        ),
        "segmentation violation",
        false,
    );
    if omitted > 0 {
        let note = format!(
            "{omitted} crowded or repeated edge label{} not shown (hover an edge for its services)",
            if omitted == 1 { "" } else { "s" }
        );
        item(&mut o, "", &note, false);
    }
    (o, y + 16.0)
}

// ---------------------------------------------------------------------------
// Mermaid
// ---------------------------------------------------------------------------

/// A Mermaid id: ASCII alphanumerics and underscores.
fn mermaid_id(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Text for inside a quoted Mermaid label: entity codes for the characters
/// that would end or confuse the label.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Distinct Mermaid ids for the nodes, `n_<sanitised key>`.
fn mermaid_ids(m: &Model) -> Vec<String> {
    let mut used: BTreeSet<String> = BTreeSet::new();
    m.nodes
        .iter()
        .map(|n| {
            let base = format!("n_{}", mermaid_id(&n.key));
            let mut id = base.clone();
            let mut k = 2;
            while used.contains(&id) {
                id = format!("{base}_{k}");
                k += 1;
            }
            used.insert(id.clone());
            id
        })
        .collect()
}

/// A Mermaid `flowchart LR`: one subgraph per scope (out-of-scope and
/// pending review split per segment), public addresses in their own.
pub fn mermaid(a: &Analysis) -> String {
    let m = build(a);
    let ids = mermaid_ids(&m);
    let s = &a.summary;
    let mut o = String::new();
    o.push_str("flowchart LR\n");
    w!(
        o,
        "  %% PCI DSS 1.2.3 / 1.2.4 network and data-flow diagram, as of {}: CDE {}, connected-to-CDE {}, out-of-scope {}, pending review {}\n",
        one_line(&a.as_of),
        s.cde,
        s.connected_cde,
        s.out_of_scope,
        s.pending_review
    );
    let node_line = |o: &mut String, i: usize, indent: &str| {
        let n = &m.nodes[i];
        let mut label = mermaid_text(&truncate(&n.name, 60));
        if !n.detail.is_empty() {
            w!(label, "<br/><small>{}</small>", mermaid_text(&truncate(&n.detail, 60)));
        }
        let (open, close) = match n.kind {
            Kind::Group => ("[[", "]]"),
            Kind::Unknown => ("{{", "}}"),
            Kind::External | Kind::Internet => ("([", "])"),
            Kind::System => ("[", "]"),
        };
        w!(o, "{indent}{}{open}\"{label}\"{close}\n", ids[i]);
    };
    let sections: [(&str, &str, &str, bool); 5] = [
        ("cde", "s_cde", "CDE — cardholder data environment", false),
        ("connected-cde", "s_connected", "Connected to the CDE", false),
        ("out-of-scope", "s_out_of_scope", "Out of scope", true),
        ("pending-review", "s_pending_review", "Pending review", true),
        ("external", "s_external", "External (public addresses)", false),
    ];
    for (scope, sid, title, by_segment) in sections {
        let members: Vec<usize> = (0..m.nodes.len()).filter(|&i| m.nodes[i].scope == scope).collect();
        if members.is_empty() {
            continue;
        }
        w!(o, "  subgraph {sid}[\"{}\"]\n", mermaid_text(title));
        if by_segment {
            let mut segments: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for &i in &members {
                segments.entry(&m.nodes[i].segment).or_default().push(i);
            }
            for (k, (segment, nodes)) in segments.iter().enumerate() {
                if segment.is_empty() {
                    for &i in nodes {
                        node_line(&mut o, i, "    ");
                    }
                } else {
                    w!(o, "    subgraph {sid}_{}[\"{}\"]\n", k + 1, mermaid_text(segment));
                    for &i in nodes {
                        node_line(&mut o, i, "      ");
                    }
                    o.push_str("    end\n");
                }
            }
        } else {
            for &i in &members {
                node_line(&mut o, i, "    ");
            }
        }
        o.push_str("  end\n");
    }
    let mut violation_links = Vec::new();
    let mut reject_links = Vec::new();
    let mut latent_links = Vec::new();
    for (k, e) in m.edges.iter().enumerate() {
        let arrow = if e.reject || e.latent { "-.->" } else { "-->" };
        let label = if e.latent { format!("reachable: {}", e.label()) } else { e.label() };
        w!(o, "  {} {arrow}|\"{}\"| {}\n", ids[e.from], mermaid_text(&label), ids[e.to]);
        if e.violation {
            violation_links.push(k.to_string());
        } else if e.reject {
            reject_links.push(k.to_string());
        } else if e.latent {
            latent_links.push(k.to_string());
        }
    }
    for (class, style) in [
        ("cde", "fill:#f28b82,stroke:#a50e0e,color:#000"),
        ("connected", "fill:#fbbc6b,stroke:#b35c00,color:#000"),
        ("oos", "fill:#b7dfb0,stroke:#3d7a36,color:#000"),
        ("pending", "fill:#fce77d,stroke:#9a7d00,color:#000"),
        ("external", "fill:#9cc3f5,stroke:#1f5fa8,color:#000"),
        ("unknown", "stroke:#202124,stroke-width:2px,stroke-dasharray:4 3"),
        ("collapsed", "stroke-width:2px"),
        ("violation", "stroke:#d40000,stroke-width:3px"),
    ] {
        w!(o, "  classDef {class} {style}\n");
    }
    let mut classes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (i, n) in m.nodes.iter().enumerate() {
        let class = match n.scope {
            "cde" => "cde",
            "connected-cde" => "connected",
            "out-of-scope" => "oos",
            "external" => "external",
            _ => "pending",
        };
        classes.entry(class).or_default().push(&ids[i]);
        if n.kind == Kind::Unknown {
            classes.entry("unknown").or_default().push(&ids[i]);
        }
        if matches!(n.kind, Kind::Group | Kind::Internet) {
            classes.entry("collapsed").or_default().push(&ids[i]);
        }
    }
    // Violations last, so their outline wins.
    let violators: Vec<&str> =
        m.nodes.iter().zip(&ids).filter(|(n, _)| n.violation).map(|(_, id)| id.as_str()).collect();
    for (class, members) in classes.iter().map(|(c, v)| (*c, v)).chain(std::iter::once(("violation", &violators))) {
        if !members.is_empty() {
            w!(o, "  class {} {class}\n", members.join(","));
        }
    }
    if !reject_links.is_empty() {
        w!(o, "  linkStyle {} stroke:#a3a3a3,stroke-width:1px,stroke-dasharray:5 4\n", reject_links.join(","));
    }
    if !violation_links.is_empty() {
        w!(o, "  linkStyle {} stroke:#d40000,stroke-width:3px,color:#d40000\n", violation_links.join(","));
    }
    if !latent_links.is_empty() {
        w!(
            o,
            "  linkStyle {} stroke:{LATENT},stroke-width:1.5px,stroke-dasharray:2 4,color:{LATENT}\n",
            latent_links.join(",")
        );
    }
    o
}

// ---------------------------------------------------------------------------
// DOT
// ---------------------------------------------------------------------------

/// A DOT quoted string (quotes included); `\n` in `s` becomes a line break.
fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Graphviz DOT: one cluster per scope (out-of-scope and pending review
/// split per segment), labelled edges, violations red, rejected flows dashed.
pub fn dot(a: &Analysis) -> String {
    let m = build(a);
    let s = &a.summary;
    let mut o = String::new();
    let title = format!(
        "PCI DSS scope — network and data-flow diagram (1.2.3 / 1.2.4)\nas of {}: CDE {}, connected-to-CDE {}, out-of-scope {}, pending review {}",
        one_line(&a.as_of),
        s.cde,
        s.connected_cde,
        s.out_of_scope,
        s.pending_review
    );
    o.push_str("digraph pci_scope {\n");
    w!(
        o,
        "  graph [label={}, labelloc=t, fontname=\"Helvetica\", rankdir=LR, nodesep=0.25, ranksep=1.1];\n",
        dot_str(&title)
    );
    o.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n");
    o.push_str("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#5f6b7a\"];\n");
    let node_line = |o: &mut String, i: usize, indent: &str| {
        let n = &m.nodes[i];
        let p = palette(n.scope);
        let label = if n.detail.is_empty() { n.name.clone() } else { format!("{}\n{}", n.name, n.detail) };
        let (shape, style) = match n.kind {
            Kind::Group => ("folder", "filled"),
            Kind::Unknown => ("box", "rounded,filled,dashed"),
            Kind::External | Kind::Internet => ("ellipse", "filled"),
            Kind::System => ("box", "rounded,filled"),
        };
        let (color, penwidth) = if n.violation { ("red", "2.5") } else { (p.stroke, "1") };
        w!(
            o,
            "{indent}{} [label={}, tooltip={}, shape={shape}, style={}, fillcolor={}, color={}, penwidth={penwidth}];\n",
            dot_str(&n.key),
            dot_str(&label),
            dot_str(&n.tooltip),
            dot_str(style),
            dot_str(p.fill),
            dot_str(color)
        );
    };
    let sections: [(&str, &str, &str, &str, bool); 5] = [
        ("cde", "cluster_cde", "CDE — cardholder data environment", "#fdeceb", false),
        ("connected-cde", "cluster_connected", "Connected to the CDE", "#fff4e5", false),
        ("out-of-scope", "cluster_out_of_scope", "Out of scope", "#f1f8ef", true),
        ("pending-review", "cluster_pending_review", "Pending review", "#fffbe6", true),
        ("external", "cluster_external", "External (public addresses)", "#edf4fd", false),
    ];
    for (scope, cid, title, bg, by_segment) in sections {
        let members: Vec<usize> = (0..m.nodes.len()).filter(|&i| m.nodes[i].scope == scope).collect();
        if members.is_empty() {
            continue;
        }
        w!(
            o,
            "  subgraph {cid} {{\n    label={}; style=\"rounded,filled\"; fillcolor={};\n",
            dot_str(title),
            dot_str(bg)
        );
        if by_segment {
            let mut segments: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for &i in &members {
                segments.entry(&m.nodes[i].segment).or_default().push(i);
            }
            for (k, (segment, nodes)) in segments.iter().enumerate() {
                if segment.is_empty() {
                    for &i in nodes {
                        node_line(&mut o, i, "    ");
                    }
                } else {
                    w!(
                        o,
                        "    subgraph {cid}_{} {{\n      label={}; style=\"rounded,dashed\";\n",
                        k + 1,
                        dot_str(segment)
                    );
                    for &i in nodes {
                        node_line(&mut o, i, "      ");
                    }
                    o.push_str("    }\n");
                }
            }
        } else {
            for &i in &members {
                node_line(&mut o, i, "    ");
            }
        }
        o.push_str("  }\n");
    }
    for e in &m.edges {
        let mut attrs = format!("label={}", dot_str(&e.label()));
        if e.reject {
            attrs.push_str(", style=dashed");
        }
        if e.latent {
            attrs.push_str(&format!(", style=dotted, color=\"{LATENT}\", fontcolor=\"{LATENT}\""));
        }
        if e.violation {
            attrs.push_str(", color=red, penwidth=2.5, fontcolor=red");
        } else if e.reject {
            attrs.push_str(", color=\"#a3a3a3\", fontcolor=\"#757575\"");
        }
        w!(o, "  {} -> {} [{attrs}];\n", dot_str(&m.nodes[e.from].key), dot_str(&m.nodes[e.to].key));
    }
    o.push_str("}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertEntry, EdgeEntry, ExternalConnection, ResourceEntry, Summary};

    fn res(id: &str, name: &str, rtype: &str, scope: &str, segment: &str) -> ResourceEntry {
        ResourceEntry {
            resource_id: id.to_string(),
            provider: "aws".to_string(),
            resource_type: rtype.to_string(),
            resource_name: name.to_string(),
            scope: scope.to_string(),
            data_classification: None,
            justification: String::new(),
            dependency_resource_ids: Vec::new(),
            rule: String::new(),
            segment: segment.to_string(),
            tags: BTreeMap::new(),
            interfaces: Vec::new(),
        }
    }

    fn edge(src: &str, dst: &str, proto: &str, port: i32, action: &str, violation: bool) -> EdgeEntry {
        EdgeEntry {
            source: src.to_string(),
            destination: dst.to_string(),
            protocol: proto.to_string(),
            port,
            action: action.to_string(),
            flows: 3,
            violation,
            encrypted_flows: 0,
            unencrypted_flows: 0,
            first_seen: String::new(),
            last_seen: String::new(),
        }
    }

    fn violation_alert(resource: &str, peer: &str) -> AlertEntry {
        AlertEntry {
            alert_type: "segmentation_violation".to_string(),
            severity: "critical".to_string(),
            resource_id: resource.to_string(),
            title: "Out-of-scope system reached the CDE".to_string(),
            description: String::new(),
            alert_id: String::new(),
            pci_requirement: "1.3.1".to_string(),
            status: "open".to_string(),
            peer: Some(peer.to_string()),
        }
    }

    fn finish(resources: Vec<ResourceEntry>, edges: Vec<EdgeEntry>, alerts: Vec<AlertEntry>) -> Analysis {
        let mut summary = Summary { flow_records: 12_345, ..Summary::default() };
        for r in &resources {
            summary.add(&r.scope);
        }
        let mut a = Analysis {
            as_of: "2024-05-01T12:00:00Z".to_string(),
            summary,
            resources,
            alerts,
            external_connections: Vec::new(),
            edges,
            coverage: Vec::new(),
            boundary: Vec::new(),
        };
        a.sort();
        a
    }

    /// 14 resources: nothing collapses.
    fn small() -> Analysis {
        let resources = vec![
            res("db-1", "payments-db", "rds_instance", "cde", "vpc-pay"),
            res("odd-1", "a<b&\"c\"", "ec2_instance", "cde", "vpc-pay"),
            res("api-1", "payments-api", "ec2_instance", "connected-cde", "vpc-pay"),
            res("api-2", "checkout-api", "ec2_instance", "connected-cde", "vpc-pay"),
            res("bastion", "bastion-host", "ec2_instance", "connected-cde", "vpc-shared"),
            res("web-1", "marketing-web", "ec2_instance", "out-of-scope", "vpc-corp"),
            res("web-2", "intranet", "ec2_instance", "out-of-scope", "vpc-corp"),
            res("hr-1", "hr-portal", "vm", "out-of-scope", "vnet-hr"),
            res("hr-2", "hr-db", "sql_database", "out-of-scope", "vnet-hr"),
            res("ip:10.0.9.9", "", "unknown_host", "pending-review", ""),
            res(
                "lambda-1",
                "report-job with a very long name that must be cut",
                "lambda_function",
                "pending-review",
                "vpc-corp",
            ),
        ];
        let edges = vec![
            edge("api-1", "db-1", "TCP", 5432, "ACCEPT", false),
            edge("api-1", "db-1", "TCP", 443, "ACCEPT", false),
            edge("api-2", "odd-1", "TCP", 8443, "ACCEPT", false),
            edge("bastion", "db-1", "TCP", 22, "ACCEPT", false),
            edge("web-1", "db-1", "TCP", 5432, "ACCEPT", true),
            edge("web-2", "db-1", "TCP", 22, "REJECT", false),
            edge("hr-1", "api-1", "TCP", 443, "ACCEPT", false),
            edge("ip:10.0.9.9", "api-2", "TCP", 443, "ACCEPT", false),
            edge("api-1", "ext:203.0.113.10", "TCP", 443, "ACCEPT", false),
            edge("api-2", "ext:198.51.100.7", "TCP", 443, "ACCEPT", false),
            edge("lambda-1", "api-2", "TCP", 443, "ACCEPT", false),
        ];
        let mut a = finish(resources, edges, vec![violation_alert("web-1", "db-1")]);
        a.external_connections.push(ExternalConnection {
            resource_id: "db-1".to_string(),
            address: "192.0.2.44".to_string(),
            protocol: "TCP".to_string(),
            port: 443,
            flows: 2,
        });
        a
    }

    /// 300 resources: 4 CDE, 45 connected, 236 out-of-scope in six
    /// segments, 15 pending review (10 unknown hosts), 12 public addresses.
    fn large() -> Analysis {
        let mut resources = Vec::new();
        let mut edges = Vec::new();
        let cde = ["cde-db-1", "cde-db-2", "cde-tokenizer", "cde-hsm-proxy"];
        for (i, id) in cde.iter().enumerate() {
            let rtype = if i < 2 { "rds_instance" } else { "ec2_instance" };
            resources.push(res(id, &format!("{id}-prod"), rtype, "cde", "vpc-pay"));
        }
        for i in 0..45 {
            let id = format!("conn-{i:02}");
            let segment = if i % 3 == 0 { "vpc-shared" } else { "vpc-pay" };
            let name = if i == 7 {
                "payments-settlement-reconciliation-worker".to_string()
            } else {
                format!("pay-svc-{i:02}")
            };
            resources.push(res(&id, &name, "ec2_instance", "connected-cde", segment));
            edges.push(edge(&id, cde[i % 4], "TCP", if i % 2 == 0 { 5432 } else { 443 }, "ACCEPT", false));
            if i % 5 == 0 {
                edges.push(edge(&id, cde[i % 4], "TCP", 8443, "ACCEPT", false));
            }
        }
        let segments = [
            ("vpc-corp", 80),
            ("vpc-analytics", 50),
            ("vpc-dev", 40),
            ("vnet-hr", 30),
            ("gcp-net-marketing-europe-west1", 26),
            ("", 10),
        ];
        let mut n = 0;
        for (s, count) in segments {
            for j in 0..count {
                let id = format!("oos-{}-{j:03}", if s.is_empty() { "none" } else { s });
                resources.push(res(&id, &id, "ec2_instance", "out-of-scope", s));
                if j % 9 == 0 {
                    edges.push(edge(&id, &format!("conn-{:02}", (n * 7) % 45), "TCP", 443, "ACCEPT", false));
                }
                if j % 13 == 0 {
                    edges.push(edge(&id, cde[n % 4], "TCP", 22, "REJECT", false));
                }
                n += 1;
            }
        }
        for (v, target) in [
            ("oos-vpc-dev-007", "cde-db-1"),
            ("oos-vpc-corp-013", "cde-db-2"),
            ("oos-vpc-analytics-021", "cde-tokenizer"),
        ] {
            edges.push(edge(v, target, "TCP", 5432, "ACCEPT", true));
        }
        for i in 0..10 {
            let id = format!("ip:10.9.0.{}", i + 10);
            resources.push(res(&id, "", "unknown_host", "pending-review", ""));
            edges.push(edge(&id, &format!("conn-{:02}", i * 4), "TCP", 443, "ACCEPT", false));
        }
        for i in 0..5 {
            let id = format!("pending-fn-{i}");
            resources.push(res(&id, &id, "lambda_function", "pending-review", "vpc-corp"));
        }
        for i in 0..12 {
            edges.push(edge(
                &format!("conn-{:02}", i * 3 + 1),
                &format!("ext:203.0.113.{}", i + 1),
                "TCP",
                443,
                "ACCEPT",
                false,
            ));
        }
        edges.push(edge("cde-tokenizer", "ext:198.51.100.7", "TCP", 443, "ACCEPT", false));
        let alerts = vec![violation_alert("oos-vpc-dev-007", "cde-db-1")];
        assert_eq!(resources.len(), 300);
        finish(resources, edges, alerts)
    }

    /// Checks the SVG is well-formed enough: tags balanced and properly
    /// nested, attribute values quoted, every `&` an entity. Returns the
    /// number of elements per name.
    fn check_xml(s: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let mut stack: Vec<String> = Vec::new();
        let mut rest = s;
        let check_text = |t: &str| {
            assert!(!t.contains('>'), "raw > in text: {t:?}");
            let mut parts = t.split('&');
            parts.next();
            for p in parts {
                assert!(
                    ["amp;", "lt;", "gt;", "quot;", "apos;", "#"].iter().any(|e| p.starts_with(e)),
                    "bare & in {t:?}"
                );
            }
        };
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            rest = &rest[open..];
            if let Some(after) = rest.strip_prefix("<?") {
                let end = after.find("?>").expect("unterminated <?");
                rest = &after[end + 2..];
                continue;
            }
            if let Some(after) = rest.strip_prefix("<!--") {
                let end = after.find("-->").expect("unterminated comment");
                rest = &after[end + 3..];
                continue;
            }
            // Find the end of the tag, skipping quoted attribute values.
            let mut in_quote = false;
            let mut end = None;
            for (k, c) in rest.char_indices().skip(1) {
                match c {
                    '"' => in_quote = !in_quote,
                    '<' => panic!("< inside a tag: {}", &rest[..k.min(80)]),
                    '>' if !in_quote => {
                        end = Some(k);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.expect("unterminated tag");
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().expect("close tag without open");
                assert_eq!(top, name.trim(), "mismatched close tag");
                continue;
            }
            let name: String = tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
            assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "bad tag {tag}");
            // Attributes: name="value" pairs only.
            let attrs = tag[name.len()..].trim_end_matches('/');
            assert_eq!(attrs.matches('"').count() % 2, 0, "unbalanced quotes in {tag}");
            for value in attrs.split('"').skip(1).step_by(2) {
                check_text(value);
            }
            *counts.entry(name.clone()).or_insert(0) += 1;
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
        assert_eq!(counts.get("svg"), Some(&1));
        counts
    }

    /// Node shapes drawn (circles and group squares inside the nodes layer).
    fn node_groups(svg: &str) -> usize {
        svg.matches("<g class=\"node ").count()
    }

    #[test]
    fn svg_is_well_formed_for_small_and_large_estates() {
        for a in [small(), large()] {
            let s = svg(&a);
            let counts = check_xml(&s);
            assert!(counts.get("path").copied().unwrap_or(0) >= 10);
            assert!(s.starts_with("<?xml"));
            assert!(s.contains("As of 2024-05-01T12:00:00Z"));
        }
    }

    #[test]
    fn svg_names_every_cde_node_and_the_summary() {
        for a in [small(), large()] {
            let s = svg(&a);
            for r in a.resources.iter().filter(|r| r.scope == "cde") {
                assert!(s.contains(&xml(&r.resource_name)), "{} missing", r.resource_name);
            }
            assert!(s.contains(&format!("CDE {} · connected-to-CDE {}", a.summary.cde, a.summary.connected_cde)));
        }
    }

    #[test]
    fn svg_draws_violation_edges_red_and_rejects_dashed() {
        let s = svg(&small());
        let violation = s.lines().find(|l| l.contains("class=\"edge violation\"")).expect("violation edge");
        assert!(violation.contains(&format!("stroke=\"{VIOLATION}\"")));
        assert!(violation.contains("stroke-width=\"3\""));
        assert!(violation.contains("marketing-web → payments-db: TCP/5432"));
        let reject = s.lines().find(|l| l.contains("class=\"edge reject\"")).expect("reject edge");
        assert!(reject.contains("stroke-dasharray"));
        assert!(reject.contains(&format!("stroke=\"{REJECT}\"")));
        for l in s.lines().filter(|l| l.contains("class=\"edge accept\"")) {
            assert!(!l.contains(VIOLATION) && !l.contains("stroke-dasharray"), "{l}");
        }
        // The violation is labelled, in red.
        assert!(s.contains(&format!("font-weight=\"bold\" fill=\"{VIOLATION}\">TCP/5432</text>")));
    }

    #[test]
    fn edges_aggregate_services_between_a_pair() {
        let m = build(&small());
        let api = m.nodes.iter().position(|n| n.key == "api-1").expect("api-1");
        let db = m.nodes.iter().position(|n| n.key == "db-1").expect("db-1");
        let e: Vec<&Edge> = m.edges.iter().filter(|e| e.from == api && e.to == db).collect();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].label(), "TCP/443, TCP/5432");
        // The external connection not among the edges is added.
        assert!(m.nodes.iter().any(|n| n.key == "ext:192.0.2.44"));
        let e = Edge {
            from: 0,
            to: 1,
            services: (1..=5).map(|p| format!("TCP/{p}")).collect(),
            reject: false,
            violation: false,
            flows: 1,
            latent: false,
        };
        assert_eq!(e.label(), "TCP/1, TCP/2, TCP/3 +2 more");
    }

    /// Issue 17: a path the configuration opens into the CDE that no flow
    /// used, of a system in scope by it alone, is drawn dotted in every
    /// format; one a flow used is not.
    #[test]
    fn reachable_but_unobserved_paths_are_dotted() {
        let mut a = small();
        for r in a.resources.iter_mut().filter(|r| r.resource_id == "hr-1" || r.resource_id == "api-1") {
            r.rule = "reachable".into();
        }
        a.boundary = vec![
            crate::BoundaryEntry {
                system: "hr-1".into(),
                cde_system: "db-1".into(),
                reachable_by: vec!["sg-0cde admits TCP/5432 from 10.1.0.0/16".into()],
                observed: vec![],
                allowed_by_policy: None,
            },
            crate::BoundaryEntry {
                system: "api-1".into(),
                cde_system: "db-1".into(),
                reachable_by: vec!["sg-0cde admits TCP/5432 from sg-api".into()],
                observed: vec!["TCP/5432".into()],
                allowed_by_policy: None,
            },
        ];
        let m = build(&a);
        let latent: Vec<&Edge> = m.edges.iter().filter(|e| e.latent).collect();
        assert_eq!(latent.len(), 1);
        assert_eq!(
            (m.nodes[latent[0].from].key.as_str(), latent[0].services.as_slice()),
            ("hr-1", &["TCP/5432".to_owned()][..])
        );
        let svg = svg(&a);
        let dotted: Vec<&str> = svg.lines().filter(|l| l.contains("class=\"edge reachable\"")).collect();
        assert_eq!(dotted.len(), 1, "{svg}");
        assert!(dotted[0].contains("stroke-dasharray=\"1.5 3.5\"") && dotted[0].contains("never observed"));
        assert!(svg.contains("in scope by configuration: reachable, never observed"), "the legend names it");
        assert!(mermaid(&a).contains("|\"reachable: TCP/5432\"|"));
        assert!(dot(&a).lines().any(|l| l.contains("style=dotted") && l.contains("TCP/5432")));
    }

    #[test]
    fn small_estate_is_not_collapsed() {
        let a = small();
        let m = build(&a);
        assert!(m.nodes.iter().all(|n| n.kind != Kind::Group && n.kind != Kind::Internet));
        // Every resource plus three public addresses.
        assert_eq!(node_groups(&svg(&a)), a.resources.len() + 3);
    }

    #[test]
    fn large_estate_collapses_but_keeps_violators() {
        let a = large();
        let s = svg(&a);
        let shapes = node_groups(&s);
        assert!(shapes < 100, "{shapes} node shapes for {} resources", a.resources.len());
        assert!(s.contains("vpc-corp — 79 out-of-scope systems"), "corp group label");
        assert!(s.contains("vpc-dev — 39 out-of-scope systems"));
        assert!(s.contains("(no segment) — 10 pending-review systems"));
        assert!(s.contains("Internet: 13 addresses"));
        for v in ["oos-vpc-dev-007", "oos-vpc-corp-013", "oos-vpc-analytics-021"] {
            assert!(s.contains(&format!("<title>{v} ({v})")), "{v} collapsed");
        }
        // CDE and connected systems are never collapsed.
        let m = build(&a);
        for scope in ["cde", "connected-cde"] {
            let want = a.resources.iter().filter(|r| r.scope == scope).count();
            assert_eq!(m.nodes.iter().filter(|n| n.scope == scope && n.kind == Kind::System).count(), want);
        }
        // Group edges are aggregated: a group reaches the CDE once per direction and action.
        let corp = m.nodes.iter().position(|n| n.key == "group:out-of-scope:vpc-corp").expect("corp group");
        let mut pairs = BTreeSet::new();
        for e in m.edges.iter().filter(|e| e.from == corp) {
            assert!(pairs.insert((e.to, e.reject)), "duplicate edge");
        }
        assert!(!pairs.is_empty());
        // Members of groups are all accounted for.
        let members: usize = m.nodes.iter().filter(|n| n.zone() == Zone::Outer).map(|n| n.members).sum();
        assert_eq!(members, 236 + 15);
    }

    #[test]
    fn violating_node_is_never_collapsed_even_alone_in_its_segment() {
        let mut a = large();
        a.resources.push(res("lonely", "lonely-box", "ec2_instance", "out-of-scope", "vpc-corp"));
        a.edges.push(edge("lonely", "cde-db-1", "UDP", 53, "ACCEPT", true));
        a.sort();
        let m = build(&a);
        let lonely = m.nodes.iter().find(|n| n.key == "lonely").expect("lonely shown");
        assert!(lonely.violation && lonely.kind == Kind::System);
    }

    #[test]
    fn outputs_are_deterministic() {
        for a in [small(), large()] {
            assert_eq!(svg(&a), svg(&a.clone()));
            assert_eq!(mermaid(&a), mermaid(&a.clone()));
            assert_eq!(dot(&a), dot(&a.clone()));
        }
        // Input order does not matter once sorted.
        let mut a = large();
        a.resources.reverse();
        a.edges.reverse();
        a.sort();
        assert_eq!(svg(&a), svg(&large()));
    }

    #[test]
    fn svg_escapes_xml_special_characters() {
        let mut a = small();
        a.as_of = "2024 <&> \"now\"".to_string();
        let s = svg(&a);
        check_xml(&s);
        assert!(s.contains("a&lt;b&amp;&quot;c&quot;"));
        assert!(!s.contains("a<b"));
        assert!(s.contains("2024 &lt;&amp;&gt; &quot;now&quot;"));
        // In an attribute too: the node tooltip is in a <title>, the edge one too.
        assert!(s.contains("checkout-api → a&lt;b&amp;&quot;c&quot;"));
    }

    #[test]
    fn long_names_are_truncated_with_an_ellipsis() {
        let s = svg(&small());
        assert!(s.contains(">report-job with a very long n…</text>"), "truncated label");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn svg_layout_keeps_labels_apart_and_the_cde_central() {
        for a in [small(), large()] {
            let m = build(&a);
            let (l, _) = full_layout(&m);
            // Labels of different nodes do not overlap each other or any node.
            let shapes: Vec<Vec<Rect>> = l.labels.iter().map(|x| x.rects(6.5)).collect();
            for i in 0..shapes.len() {
                for j in 0..shapes.len() {
                    let (x, y) = l.pos[j];
                    let node = Rect::centred(x, y, 2.0 * l.radius[j], 2.0 * l.radius[j]);
                    for r in &shapes[i] {
                        assert!(
                            i == j || !r.overlaps(&node),
                            "label of {} over node {}",
                            m.nodes[i].key,
                            m.nodes[j].key
                        );
                        if j > i {
                            assert!(
                                !shapes[j].iter().any(|q| q.overlaps(r)),
                                "labels of {} and {} overlap",
                                m.nodes[i].key,
                                m.nodes[j].key
                            );
                        }
                    }
                }
            }
            // Nodes do not overlap.
            for i in 0..l.pos.len() {
                for j in i + 1..l.pos.len() {
                    let d = (l.pos[i].0 - l.pos[j].0).hypot(l.pos[i].1 - l.pos[j].1);
                    assert!(d > l.radius[i] + l.radius[j] + 4.0, "{} on {}", m.nodes[i].key, m.nodes[j].key);
                }
            }
            // The CDE is nearest the centre; then connected, outer, external.
            let dist = |i: usize| l.pos[i].0.hypot(l.pos[i].1);
            for e in &m.edges {
                let (a, b) = (&m.nodes[e.from], &m.nodes[e.to]);
                if a.zone() < b.zone() {
                    assert!(dist(e.from) < dist(e.to));
                }
            }
        }
    }

    #[test]
    fn svg_handles_a_crowded_cde_without_edges() {
        let mut resources: Vec<ResourceEntry> = (0..40)
            .map(|i| res(&format!("cde-{i:02}"), &format!("card-vault-shard-{i:02}"), "rds", "cde", "vpc-pay"))
            .collect();
        resources.extend((0..20).map(|i| res(&format!("c-{i}"), "", "ec2_instance", "connected-cde", "")));
        let a = finish(resources, Vec::new(), Vec::new());
        let s = svg(&a);
        check_xml(&s);
        assert_eq!(node_groups(&s), 60);
        let m = build(&a);
        let (l, _) = full_layout(&m);
        assert!(l.labels.iter().all(|x| matches!(x, Label::Turned { .. })), "crowded rings turn their labels");
        // Unnamed resources are labelled with their id.
        assert!(s.contains(">c-7</text>"));
    }

    #[test]
    fn svg_canvas_grows_with_the_estate() {
        let size = |s: &str| -> f64 {
            let w = s.split("width=\"").nth(1).and_then(|x| x.split('"').next()).expect("width");
            w.parse().expect("number")
        };
        assert!(size(&svg(&large())) > size(&svg(&small())));
    }

    #[test]
    fn many_public_addresses_are_grouped_but_few_are_not() {
        let m = build(&small());
        assert_eq!(m.nodes.iter().filter(|n| n.kind == Kind::External).count(), 3);
        let m = build(&large());
        let internet: Vec<&Node> = m.nodes.iter().filter(|n| n.zone() == Zone::External).collect();
        assert_eq!(internet.len(), 1);
        assert_eq!(internet[0].members, 13);
    }

    #[test]
    fn mermaid_ids_are_sanitised_and_labels_escaped() {
        let a = small();
        let out = mermaid(&a);
        assert!(out.starts_with("flowchart LR\n"));
        assert!(out.contains("n_ip_10_0_9_9{{\"ip:10.0.9.9"), "unknown host node: {out}");
        assert!(out.contains("n_ext_203_0_113_10([\"203.0.113.10"));
        assert!(out.contains("a#lt;b#amp;#quot;c#quot;"));
        assert!(!out.contains("a<b"));
        // Every node id defined is a valid Mermaid id.
        for line in out.lines() {
            let t = line.trim_start();
            if let Some(id) = t.split(['[', '(', '{']).next().filter(|_| t.starts_with("n_")) {
                assert!(!id.contains(' ') || id.contains("-->") || id.contains("-.->"), "{line}");
                let id = id.split(' ').next().unwrap_or(id);
                assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad id in {line}");
            }
        }
        assert!(out.contains("subgraph s_cde["));
        assert!(out.contains("subgraph s_out_of_scope_"));
        assert!(out.contains("[\"vnet-hr\"]"));
        assert!(out.contains("n_api_1 -->|\"TCP/443, TCP/5432\"| n_db_1"));
        assert!(out.contains("n_web_2 -.->|\"TCP/22\"| n_db_1"));
        // linkStyle: the violation edge index, in red.
        let m = build(&a);
        let k = m.edges.iter().position(|e| e.violation).expect("violation");
        assert!(out.contains(&format!("linkStyle {k} stroke:#d40000")), "{out}");
        assert!(out.contains("classDef cde "));
        assert!(out.contains("class n_db_1,n_web_1 violation"), "{out}");
        // Colliding sanitised keys stay distinct.
        let mut a = small();
        a.resources.push(res("db.1", "other", "rds_instance", "cde", ""));
        a.sort();
        let ids = mermaid_ids(&build(&a));
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
        assert!(ids.contains(&"n_db_1_2".to_string()));
    }

    #[test]
    fn mermaid_collapses_the_large_estate() {
        let out = mermaid(&large());
        assert!(out.contains("[[\"vpc-corp — 79 out-of-scope systems"));
        assert!(out.contains("n_oos_vpc_dev_007[\"oos-vpc-dev-007"));
        assert!(out.lines().filter(|l| l.contains("-->") || l.contains("-.->")).count() < 200);
    }

    #[test]
    fn dot_escapes_strings_and_styles_edges() {
        let mut a = small();
        a.resources.push(res("back\\slash", "line\nbreak \\N", "vm", "out-of-scope", "vpc \"q\""));
        a.sort();
        let out = dot(&a);
        assert!(out.starts_with("digraph pci_scope {\n") && out.ends_with("}\n"));
        assert!(out.contains("label=\"a<b&\\\"c\\\"\\nec2_instance · aws\""), "{out}");
        assert!(out.contains("\"back\\\\slash\" [label=\"line\\nbreak \\\\N\\nvm · aws\""), "{out}");
        assert!(out.contains("label=\"vpc \\\"q\\\"\""));
        assert!(out.contains("\"web-1\" -> \"db-1\" [label=\"TCP/5432\", color=red, penwidth=2.5"));
        assert!(out.contains("\"web-2\" -> \"db-1\" [label=\"TCP/22\", style=dashed"));
        assert!(out.contains("subgraph cluster_cde {"));
        // Quotes balance on every line (no string left open).
        for line in out.lines() {
            assert_eq!(line.replace("\\\\", "").replace("\\\"", "").matches('"').count() % 2, 0, "{line}");
        }
        let out = dot(&large());
        assert!(out.contains("shape=folder"));
        assert!(out.contains("vpc-corp — 79 out-of-scope systems"));
    }

    #[test]
    fn empty_analysis_renders() {
        let a = finish(Vec::new(), Vec::new(), Vec::new());
        check_xml(&svg(&a));
        assert!(svg(&a).contains("NO CDE SYSTEMS"));
        assert!(mermaid(&a).contains("flowchart LR"));
        assert!(dot(&a).contains("digraph"));
    }

    /// Writes example renderings to the temp directory:
    /// `cargo test -p psg-report -- --ignored write_examples`.
    #[test]
    #[ignore = "writes files"]
    fn write_examples() {
        let dir = std::env::temp_dir();
        for (name, a) in [("small", small()), ("large", large())] {
            std::fs::write(dir.join(format!("psg-diagram-{name}.svg")), svg(&a)).expect("write svg");
            std::fs::write(dir.join(format!("psg-diagram-{name}.mmd")), mermaid(&a)).expect("write mermaid");
            std::fs::write(dir.join(format!("psg-diagram-{name}.dot")), dot(&a)).expect("write dot");
        }
    }
}
