//! Plane geometry for the layout: rectangles, segments, quadratic Bézier
//! curves, all around the origin (the centre of the CDE).

use std::f64::consts::{PI, TAU};

/// An axis-aligned rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub(crate) x0: f64,
    pub(crate) y0: f64,
    pub(crate) x1: f64,
    pub(crate) y1: f64,
}

impl Rect {
    pub(crate) fn centred(x: f64, y: f64, w: f64, h: f64) -> Rect {
        Rect { x0: x - w / 2.0, y0: y - h / 2.0, x1: x + w / 2.0, y1: y + h / 2.0 }
    }

    pub(crate) fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    pub(crate) fn union(&self, o: &Rect) -> Rect {
        Rect { x0: self.x0.min(o.x0), y0: self.y0.min(o.y0), x1: self.x1.max(o.x1), y1: self.y1.max(o.y1) }
    }
}

/// Whether segment `a`–`b` meets `r` (Liang–Barsky).
pub(crate) fn segment_hits(a: (f64, f64), b: (f64, f64), r: &Rect) -> bool {
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
pub(crate) fn reach_towards(shapes: &[Rect], theta: f64) -> f64 {
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
pub(crate) fn far(rects: &[Rect]) -> f64 {
    rects
        .iter()
        .flat_map(|r| [(r.x0, r.y0), (r.x0, r.y1), (r.x1, r.y0), (r.x1, r.y1)])
        .map(|(x, y)| x.hypot(y))
        .fold(0.0, f64::max)
}

/// A quadratic Bézier from `p0` through control `c` to `p2`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Curve {
    pub(crate) p0: (f64, f64),
    pub(crate) c: (f64, f64),
    pub(crate) p2: (f64, f64),
}

impl Curve {
    pub(crate) fn at(&self, t: f64) -> (f64, f64) {
        let u = 1.0 - t;
        (
            u * u * self.p0.0 + 2.0 * u * t * self.c.0 + t * t * self.p2.0,
            u * u * self.p0.1 + 2.0 * u * t * self.c.1 + t * t * self.p2.1,
        )
    }
}

/// Distance from the origin to segment `a`–`b`.
pub(crate) fn distance_to_segment(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 < 1e-12 { 0.0 } else { (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0) };
    (a.0 + t * dx).hypot(a.1 + t * dy)
}

/// The point `by` from `from` towards `to` (`from` when they coincide).
pub(crate) fn towards(from: (f64, f64), to: (f64, f64), by: f64) -> (f64, f64) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = dx.hypot(dy);
    if len < 1e-9 { from } else { (from.0 + dx / len * by, from.1 + dy / len * by) }
}
