//! The network / data-flow diagram (PCI DSS 1.2.3 / 1.2.4) as SVG (no
//! Graphviz needed), Mermaid and DOT.
//!
//! All three renderings draw the same model, built from an
//! [`Analysis`](crate::Analysis):
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
//!
//! Laid out as:
//!
//! - `model`: the [`Analysis`](crate::Analysis) turned into nodes and
//!   aggregated edges (collapsing and grouping included), shared by the three
//!   renderings;
//! - `layout`: the radial layout of the SVG (rings, node and edge label
//!   placement, edge curves);
//! - `svg`, `mermaid`, `dot`: the renderers;
//! - `text`: truncation and escaping shared by the renderers.

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

mod dot;
mod layout;
mod mermaid;
mod model;
mod svg;
mod text;

#[cfg(test)]
mod tests;

pub use dot::dot;
pub use mermaid::mermaid;
pub use svg::svg;

/// Fill and outline of a node, by scope.
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

/// Edge and outline colours: violations, accepted, rejected (blocked) and
/// reachable-but-unobserved (latent) paths.
const VIOLATION: &str = "#d40000";
const ACCEPT: &str = "#5f6b7a";
const REJECT: &str = "#a3a3a3";
const LATENT: &str = "#8430ce";
