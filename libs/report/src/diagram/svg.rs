//! The SVG rendering: the radial layout drawn as a self-contained SVG
//! (title, zones, edges, nodes, labels, legend), no Graphviz needed.

use std::fmt::Write as _;

use super::layout::{
    Curve, DETAIL_PX, EDGE_PX, Label, Layout, NAME_PX, Rect, TURNED_HALF, full_layout, place_edge_labels, shown, text_w,
};
use super::model::{Kind, Model, build};
use super::text::{one_line, xml};
use super::{ACCEPT, LATENT, REJECT, VIOLATION, palette};
use crate::Analysis;

const FONT: &str = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif";
const MARGIN: f64 = 24.0;
const TITLE_H: f64 = 78.0;
const MIN_WIDTH: f64 = 980.0;

/// The diagram as a self-contained SVG: CDE at the centre, connected systems
/// around it, out-of-scope / pending-review systems (collapsed per segment
/// when many) on the next ring, external endpoints outside.
pub fn svg(a: &Analysis) -> String {
    let m = build(a);
    let (l, curves) = full_layout(&m);
    let (edge_labels, omitted) = place_edge_labels(&m, &l, &curves);
    let bounds = extent(&m, &l, &curves, &edge_labels);
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
    draw_header(&mut o, width, height, title, &subtitle, &counts);

    w!(o, "<g transform=\"translate({},{})\">\n", f(ox), f(oy));
    draw_zones(&mut o, &l);
    draw_edges(&mut o, &m, &curves);
    draw_nodes(&mut o, &m, &l);
    draw_node_labels(&mut o, &m, &l);
    draw_edge_labels(&mut o, &m, &edge_labels);
    o.push_str("</g>\n");

    w!(o, "<g class=\"legend\" transform=\"translate(0,{})\">\n", f(height - legend_h));
    o.push_str(&legend);
    o.push_str("</g>\n</svg>\n");
    o
}

/// Extent of the drawing, around the origin: the CDE zone, the rings, the
/// nodes and their labels, the edge labels and the edges' midpoints.
fn extent(m: &Model, l: &Layout, curves: &[Curve], edge_labels: &[Option<(f64, f64)>]) -> Rect {
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
    for c in curves {
        bounds = bounds.union(&Rect::centred(c.at(0.5).0, c.at(0.5).1, 4.0, 4.0));
    }
    bounds
}

/// The XML declaration, the `<svg>` element's start, title, description,
/// arrow markers, background and the title lines.
fn draw_header(o: &mut String, width: f64, height: f64, title: &str, subtitle: &str, counts: &str) {
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\" role=\"img\">\n",
        w = f(width),
        h = f(height)
    );
    w!(o, "<title>{}</title>\n", xml(title));
    w!(o, "<desc>{} — {}</desc>\n", xml(subtitle), xml(counts));
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
    w!(o, "<text x=\"{}\" y=\"49\" font-size=\"12\" fill=\"#3c4043\">{}</text>\n", f(MARGIN), xml(subtitle));
    w!(o, "<text x=\"{}\" y=\"66\" font-size=\"12\" fill=\"#3c4043\">{}</text>\n", f(MARGIN), xml(counts));
}

/// The rings, and the shaded CDE area with its caption.
fn draw_zones(o: &mut String, l: &Layout) {
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
}

/// The edges, under the nodes: rejected, accepted, then violations on top.
fn draw_edges(o: &mut String, m: &Model, curves: &[Curve]) {
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
}

/// The node shapes, with their tooltips.
fn draw_nodes(o: &mut String, m: &Model, l: &Layout) {
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
}

/// The node labels, with a white halo over the edges.
fn draw_node_labels(o: &mut String, m: &Model, l: &Layout) {
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
}

/// The edge labels placed, each on a white box.
fn draw_edge_labels(o: &mut String, m: &Model, edge_labels: &[Option<(f64, f64)>]) {
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
    o.push_str("</g>\n");
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

/// A coordinate or length: one decimal, `0` for zero.
fn f(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 { "0".to_string() } else { format!("{r:.1}") }
}
