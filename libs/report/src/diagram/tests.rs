//! Tests of the diagram: the model, the layout and the three renderings.

use std::collections::{BTreeMap, BTreeSet};

use super::layout::{Label, Rect, full_layout};
use super::mermaid::mermaid_ids;
use super::model::{Edge, Kind, Node, Zone, build};
use super::text::{truncate, xml};
use super::{REJECT, VIOLATION, dot, mermaid, svg};
use crate::{AlertEntry, Analysis, EdgeEntry, ExternalConnection, ResourceEntry, Summary};

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
        let name =
            if i == 7 { "payments-settlement-reconciliation-worker".to_string() } else { format!("pay-svc-{i:02}") };
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
    for (v, target) in
        [("oos-vpc-dev-007", "cde-db-1"), ("oos-vpc-corp-013", "cde-db-2"), ("oos-vpc-analytics-021", "cde-tokenizer")]
    {
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
            assert!(["amp;", "lt;", "gt;", "quot;", "apos;", "#"].iter().any(|e| p.starts_with(e)), "bare & in {t:?}");
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
                    assert!(i == j || !r.overlaps(&node), "label of {} over node {}", m.nodes[i].key, m.nodes[j].key);
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
