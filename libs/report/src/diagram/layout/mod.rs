//! The radial layout of the SVG: the CDE at the centre, then one ring per
//! zone (connected to the CDE, out-of-scope and pending review, external).
//!
//! [`full_layout`] places the nodes ([`layout`]: their angles around each
//! ring, then each ring's radius, the smallest that keeps its labels clear),
//! draws the edge curves ([`curves`]) and moves flat labels off them;
//! [`place_edge_labels`] then finds room for the edge labels.
//!
//! - `geometry`: rectangles, segments and curves;
//! - `labels`: node label sizes and placement, edge label placement.

mod geometry;
mod labels;

use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::{PI, TAU};

pub(super) use self::geometry::{Curve, Rect};
use self::geometry::{distance_to_segment, far, reach_towards, towards};
pub(super) use self::labels::{DETAIL_PX, EDGE_PX, Label, NAME_PX, TURNED_HALF, place_edge_labels, shown, text_w};
use self::labels::{flat_label, move_off_edges, turned_label};
use super::model::{Kind, Model, Node, Zone};

/// Clear space between a ring's labels and the next ring's nodes.
const GAP: f64 = 44.0;
/// Arc between neighbours when labels are turned along the radius.
const TURNED_SPACING: f64 = 26.0;
/// Rings with more nodes than this always get turned labels.
const FLAT_MAX: usize = 12;

/// Where the nodes and their labels go, around the origin.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) pos: Vec<(f64, f64)>,
    pub(super) radius: Vec<f64>,
    pub(super) labels: Vec<Label>,
    /// Radius of each ring, `None` when empty.
    pub(super) rings: [Option<f64>; 4],
    /// Radius of the shaded CDE area.
    pub(super) cde_zone: f64,
}

/// The layout with its edge curves, flat labels moved off the edges where
/// another side of their node is free.
pub(super) fn full_layout(m: &Model) -> (Layout, Vec<Curve>) {
    let mut l = layout(m);
    let curves = curves(m, &l);
    move_off_edges(m, &mut l, &curves);
    (l, curves)
}

/// The radius of a node's shape.
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

/// A node's shape with a little room around it, at `(x, y)`.
fn node_square(r: f64, (x, y): (f64, f64)) -> Rect {
    Rect::centred(x, y, 2.0 * r + 4.0, 2.0 * r + 4.0)
}

/// Node positions and labels: angles first, then the rings inside out,
/// each as small as its labels allow.
fn layout(m: &Model) -> Layout {
    let n = m.nodes.len();
    let ring_of: Vec<usize> = m.nodes.iter().map(|x| x.zone() as usize).collect();
    let mut rings: [Vec<usize>; 4] = Default::default();
    for (i, &r) in ring_of.iter().enumerate() {
        if let Some(ring) = rings.get_mut(r) {
            ring.push(i);
        }
    }
    let angle = angles(m, &ring_of, &rings);
    let radius: Vec<f64> = m.nodes.iter().map(node_radius).collect();
    let widths: Vec<f64> = m.nodes.iter().map(|x| shown(x).width).collect();
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
        if k == 0 && ring.len() == 1 {
            let i = ring[0];
            let label = flat_label(0.0, 0.0, radius[i], PI / 2.0, false, widths[i]);
            reach = radius[i].max(far(&label.rects(TURNED_HALF)));
            inner.push(node_square(radius[i], (0.0, 0.0)));
            inner.extend(label.rects(TURNED_HALF));
            labels[i] = Some(label);
            ring_radius[0] = Some(0.0);
        } else {
            let ring = Ring { members: ring, angle: &angle, radius: &radius, widths: &widths };
            let (r, ring_labels) = ring.fit(&inner, reach, last_ring);
            ring_radius[k] = Some(r);
            last_ring = r;
            for (&i, label) in ring.members.iter().zip(ring_labels) {
                pos[i] = ring.at(r, i);
                reach = reach.max(far(&label.rects(TURNED_HALF))).max(r + radius[i]);
                inner.push(node_square(radius[i], pos[i]));
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

/// The angle of each node around its ring: inside out, then once more
/// against every other ring, each node towards the mean angle of its
/// neighbours already placed.
fn angles(m: &Model, ring_of: &[usize], rings: &[Vec<usize>; 4]) -> Vec<f64> {
    let n = m.nodes.len();
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
    angle
}

/// One ring of nodes to place, with every node's angle, radius and label
/// width.
struct Ring<'a> {
    members: &'a [usize],
    angle: &'a [f64],
    radius: &'a [f64],
    widths: &'a [f64],
}

impl Ring<'_> {
    /// Where node `i` sits on the ring of radius `r`.
    fn at(&self, r: f64, i: usize) -> (f64, f64) {
        (r * self.angle[i].cos(), r * self.angle[i].sin())
    }

    /// The ring's radius and labels, outside `inner` (what the inner rings
    /// cover, reaching `reach` from the origin, the last of them of radius
    /// `last_ring`): flat labels at the smallest radius where they clash with
    /// nothing when the ring has few nodes, otherwise (or when none is found)
    /// labels turned along the radius.
    fn fit(&self, inner: &[Rect], reach: f64, last_ring: f64) -> (f64, Vec<Label>) {
        let count = self.members.len();
        let node_max = self.members.iter().map(|&i| self.radius[i]).fold(0.0, f64::max);
        let global = if reach > 0.0 { reach + GAP + node_max } else { 0.0 }.max(60.0);
        let mut chosen: Option<(f64, Vec<Label>)> = None;
        if count <= FLAT_MAX {
            // Few nodes: each only has to clear what lies in its own direction.
            let local = self
                .members
                .iter()
                .map(|&i| reach_towards(inner, self.angle[i]) + GAP + self.radius[i])
                .fold(last_ring + GAP + node_max, f64::max)
                .max(60.0);
            let mut r = local.max(count as f64 * 36.0 / TAU);
            let limit = global * 1.5 + 80.0;
            while r <= limit {
                if let Some(l) = self.flat_labels(r, inner) {
                    chosen = Some((r, l));
                    break;
                }
                r *= 1.06;
            }
        }
        chosen.unwrap_or_else(|| {
            let r = global.max(count as f64 * TURNED_SPACING / TAU);
            (r, self.turned_labels(r))
        })
    }

    /// Flat labels at radius `r`, `None` if one overlaps another label,
    /// another node or `inner`, or a node overlaps `inner`.
    fn flat_labels(&self, r: f64, inner: &[Rect]) -> Option<Vec<Label>> {
        let labels: Vec<Label> = self
            .members
            .iter()
            .map(|&i| {
                let (x, y) = self.at(r, i);
                flat_label(x, y, self.radius[i], self.angle[i], false, self.widths[i])
            })
            .collect();
        let nodes: Vec<Rect> = self.members.iter().map(|&i| node_square(self.radius[i], self.at(r, i))).collect();
        let rects: Vec<Rect> = labels.iter().flat_map(|l| l.rects(TURNED_HALF)).collect();
        // Each label against the other labels, the other nodes and the inner rings.
        let clash = (0..rects.len()).any(|p| {
            (0..rects.len()).any(|q| p != q && rects[p].overlaps(&rects[q]))
                || (0..nodes.len()).any(|q| p != q && rects[p].overlaps(&nodes[q]))
                || inner.iter().any(|o| o.overlaps(&rects[p]))
        }) || nodes.iter().any(|x| inner.iter().any(|o| o.overlaps(x)));
        if clash { None } else { Some(labels) }
    }

    /// Labels turned along the radius, at radius `r`.
    fn turned_labels(&self, r: f64) -> Vec<Label> {
        self.members
            .iter()
            .map(|&i| {
                let (x, y) = self.at(r, i);
                turned_label(x, y, self.radius[i], self.angle[i], self.widths[i])
            })
            .collect()
    }
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
