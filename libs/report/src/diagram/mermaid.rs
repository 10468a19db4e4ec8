//! The Mermaid rendering: a `flowchart LR` with one subgraph per scope.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::LATENT;
use super::model::{Kind, Model, build};
use super::text::{one_line, truncate};
use crate::Analysis;

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
pub(super) fn mermaid_ids(m: &Model) -> Vec<String> {
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
    subgraphs(&mut o, &m, &ids);
    let links = links(&mut o, &m, &ids);
    styles(&mut o, &m, &ids, &links);
    o
}

/// A node's line: its id, shape and label.
fn node_line(o: &mut String, m: &Model, ids: &[String], i: usize, indent: &str) {
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
}

/// One subgraph per scope holding nodes, out-of-scope and pending review
/// split per segment.
fn subgraphs(o: &mut String, m: &Model, ids: &[String]) {
    let sections: [(&str, &str, &str, bool); 5] = [
        ("cde", "s_cde", "CDE — cardholder data environment", false),
        ("connected-cde", "s_connected", "Connected to the CDE", false),
        ("out-of-scope", "s_out_of_scope", "Out of scope", true),
        ("pending-review", "s_pending_review", "Pending review", true),
        ("external", "s_external", "External (public addresses)", false),
    ];
    for (scope, sid, title, by_segment) in sections {
        let members = m.in_scope(scope);
        if members.is_empty() {
            continue;
        }
        w!(o, "  subgraph {sid}[\"{}\"]\n", mermaid_text(title));
        if by_segment {
            for (k, (segment, nodes)) in m.per_segment(&members).iter().enumerate() {
                if segment.is_empty() {
                    for &i in nodes {
                        node_line(o, m, ids, i, "    ");
                    }
                } else {
                    w!(o, "    subgraph {sid}_{}[\"{}\"]\n", k + 1, mermaid_text(segment));
                    for &i in nodes {
                        node_line(o, m, ids, i, "      ");
                    }
                    o.push_str("    end\n");
                }
            }
        } else {
            for &i in &members {
                node_line(o, m, ids, i, "    ");
            }
        }
        o.push_str("  end\n");
    }
}

/// The links of the edges (the violations, rejected and latent ones
/// marked), in edge order: Mermaid numbers them so.
#[derive(Debug, Default)]
struct Links {
    violation: Vec<String>,
    reject: Vec<String>,
    latent: Vec<String>,
}

/// One link per edge, dashed when rejected or latent.
fn links(o: &mut String, m: &Model, ids: &[String]) -> Links {
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
    Links { violation: violation_links, reject: reject_links, latent: latent_links }
}

/// Class definitions, the classes of the nodes (violations last, so their
/// outline wins) and the styles of the marked links.
fn styles(o: &mut String, m: &Model, ids: &[String], links: &Links) {
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
        m.nodes.iter().zip(ids).filter(|(n, _)| n.violation).map(|(_, id)| id.as_str()).collect();
    for (class, members) in classes.iter().map(|(c, v)| (*c, v)).chain(std::iter::once(("violation", &violators))) {
        if !members.is_empty() {
            w!(o, "  class {} {class}\n", members.join(","));
        }
    }
    if !links.reject.is_empty() {
        w!(o, "  linkStyle {} stroke:#a3a3a3,stroke-width:1px,stroke-dasharray:5 4\n", links.reject.join(","));
    }
    if !links.violation.is_empty() {
        w!(o, "  linkStyle {} stroke:#d40000,stroke-width:3px,color:#d40000\n", links.violation.join(","));
    }
    if !links.latent.is_empty() {
        w!(
            o,
            "  linkStyle {} stroke:{LATENT},stroke-width:1.5px,stroke-dasharray:2 4,color:{LATENT}\n",
            links.latent.join(",")
        );
    }
}
