//! Labels: how wide a node's label is, where it goes (flat beside its node
//! or turned along the radius), moving flat labels off the edges, and where
//! the edge labels go.

use std::f64::consts::PI;

use super::Layout;
use super::geometry::{Curve, Rect, segment_hits};
use crate::diagram::model::{DETAIL_MAX, GROUP_NAME_MAX, Kind, Model, NAME_MAX, Node};
use crate::diagram::text::{one_line, truncate};

/// Average advance of a character, in ems (DejaVu Sans / Verdana are wide).
const CHAR_W: f64 = 0.62;
/// Font sizes of a node's name and detail lines and of edge labels.
pub(crate) const NAME_PX: f64 = 11.0;
pub(crate) const DETAIL_PX: f64 = 8.5;
pub(crate) const EDGE_PX: f64 = 8.5;
/// Height of a two-line node label.
const LABEL_H: f64 = 23.0;
/// Node edge to label.
const PAD: f64 = 5.0;
/// Half-size of the squares that approximate a turned label.
pub(crate) const TURNED_HALF: f64 = 9.0;
/// An edge label is left out when the same text is already this close.
const REPEAT_RADIUS: f64 = 110.0;

/// Where a node's two label lines go.
#[derive(Debug, Clone)]
pub(crate) enum Label {
    /// Horizontal; `top` is the top of the two lines.
    Flat { x: f64, top: f64, anchor: &'static str, rect: Rect },
    /// Along the radius, starting at (`x`, `y`); `points` are the centres of
    /// squares covering the text.
    Turned { x: f64, y: f64, deg: f64, anchor: &'static str, points: Vec<(f64, f64)> },
}

impl Label {
    /// Squares / rectangles covering the label; `half` sizes the squares of a turned label.
    pub(crate) fn rects(&self, half: f64) -> Vec<Rect> {
        match self {
            Label::Flat { rect, .. } => vec![*rect],
            Label::Turned { points, .. } => {
                points.iter().map(|&(x, y)| Rect::centred(x, y, 2.0 * half, 2.0 * half)).collect()
            }
        }
    }
}

/// A node's label as drawn: name and detail truncated, and its width.
pub(crate) struct Shown {
    pub(crate) name: String,
    pub(crate) detail: String,
    pub(crate) width: f64,
}

pub(crate) fn shown(n: &Node) -> Shown {
    let name = truncate(&one_line(&n.name), if n.kind == Kind::Group { GROUP_NAME_MAX } else { NAME_MAX });
    let detail = truncate(&one_line(&n.detail), DETAIL_MAX);
    let width = text_w(&name, NAME_PX).max(text_w(&detail, DETAIL_PX));
    Shown { name, detail, width }
}

/// The width of `s` at font size `px`, estimated.
pub(crate) fn text_w(s: &str, px: f64) -> f64 {
    s.chars().count() as f64 * px * CHAR_W
}

/// A horizontal label beside the node of radius `r` at (`x`, `y`), in direction
/// `theta` (below it when `centre`); `w` wide.
pub(super) fn flat_label(x: f64, y: f64, r: f64, theta: f64, centre: bool, w: f64) -> Label {
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

/// A label turned along direction `theta`, outwards from the node of radius
/// `r` at (`x`, `y`); `w` long.
pub(super) fn turned_label(x: f64, y: f64, r: f64, theta: f64, w: f64) -> Label {
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

/// `d` degrees in (-180, 180].
fn normalise_deg(d: f64) -> f64 {
    let d = d.rem_euclid(360.0);
    if d > 180.0 { d - 360.0 } else { d }
}

/// Moves each flat label that edges cross to another side of its node where
/// it overlaps no node or label and fewer edges cross it.
pub(super) fn move_off_edges(m: &Model, l: &mut Layout, curves: &[Curve]) {
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
}

/// Edge label centres, `None` where no free place was found (violations
/// are always placed), and how many were left out.
pub(crate) fn place_edge_labels(m: &Model, l: &Layout, curves: &[Curve]) -> (Vec<Option<(f64, f64)>>, usize) {
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
