//! The Graphviz DOT rendering: one cluster per scope, labelled edges.

use std::fmt::Write as _;

use super::model::{Kind, build};
use super::text::one_line;
use super::{LATENT, palette};
use crate::Analysis;

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
        let members = m.in_scope(scope);
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
            for (k, (segment, nodes)) in m.per_segment(&members).iter().enumerate() {
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
