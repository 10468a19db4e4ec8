//! Table, Markdown and CSV renderings of an [`Analysis`].

use std::fmt::Write as _;

use crate::{Analysis, SCOPES};

/// Heading of each scope in reports.
fn scope_title(scope: &str) -> &'static str {
    match scope {
        "cde" => "Cardholder data environment (CDE)",
        "connected-cde" => "Connected to the CDE",
        "out-of-scope" => "Out of scope",
        _ => "Pending review",
    }
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A terminal table: the summary, the resources, the alerts.
pub fn table(a: &Analysis) -> String {
    let s = &a.summary;
    let mut out = String::new();
    let _ = writeln!(out, "PCI DSS scope as of {}", a.as_of);
    let _ = writeln!(
        out,
        "  cde {}   connected-cde {}   out-of-scope {}   pending-review {}   ({} flow records, {} dead-lettered)\n",
        s.cde, s.connected_cde, s.out_of_scope, s.pending_review, s.flow_records, s.dead_lettered
    );
    let idw = a.resources.iter().map(|r| r.resource_id.chars().count()).max().unwrap_or(8).clamp(8, 40);
    let _ = writeln!(out, "{:<15} {:<idw$} {:<20} {:<6} JUSTIFICATION", "SCOPE", "RESOURCE", "TYPE", "CLOUD");
    for r in &a.resources {
        let _ = writeln!(
            out,
            "{:<15} {:<idw$} {:<20} {:<6} {}",
            r.scope,
            cut(&r.resource_id, idw),
            cut(&r.resource_type, 20),
            r.provider,
            cut(&r.justification, 90)
        );
    }
    if !a.alerts.is_empty() {
        let _ = writeln!(out, "\n{:<9} {:<23} TITLE", "SEVERITY", "ALERT");
        for al in &a.alerts {
            let _ = writeln!(out, "{:<9} {:<23} {}", al.severity, al.alert_type, al.title);
        }
    }
    if !a.external_connections.is_empty() {
        let _ = writeln!(out, "\nExternal connections of in-scope systems:");
        for c in &a.external_connections {
            let _ = writeln!(out, "  {} → {} {}/{} ({} flows)", c.resource_id, c.address, c.protocol, c.port, c.flows);
        }
    }
    out
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown for the assessor (PCI DSS 12.5.2): every in-scope system with its
/// justification, out-of-scope systems with the evidence that justifies
/// them, the CDE's external connections, and the alerts.
pub fn markdown(a: &Analysis) -> String {
    let s = &a.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# PCI DSS scope report\n");
    let _ = writeln!(
        out,
        "As of **{}** (event time of the newest flow analysed). Scope derived from observed network flows \
         and inventory tags by PCI Scope Guard; each decision below is signed as evidence (PCI DSS 12.5.2).\n",
        a.as_of
    );
    let _ = writeln!(out, "| scope | systems |\n|---|---|");
    for scope in SCOPES {
        let _ = writeln!(out, "| {} | {} |", scope, s.count(scope));
    }
    let _ = writeln!(out, "\n{} flow records analysed, {} inputs dead-lettered.\n", s.flow_records, s.dead_lettered);

    if !a.alerts.is_empty() {
        let _ = writeln!(out, "## Findings\n");
        let _ = writeln!(out, "| severity | alert | system | finding | PCI DSS |\n|---|---|---|---|---|");
        // Low and informational findings, one line per type.
        let mut minor: std::collections::BTreeMap<(&str, &str), Vec<&str>> = std::collections::BTreeMap::new();
        for al in &a.alerts {
            if crate::severity_rank(&al.severity) >= 3 {
                minor.entry((al.severity.as_str(), al.alert_type.as_str())).or_default().push(&al.title);
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} |",
                al.severity,
                al.alert_type,
                md(&al.resource_id),
                md(&al.description),
                md(&al.pci_requirement)
            );
        }
        for ((severity, alert_type), titles) in &minor {
            let shown: Vec<String> = titles.iter().take(3).map(|t| md(t)).collect();
            let more = if titles.len() > 3 {
                format!("; and {} more (all in report.json)", titles.len() - 3)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {severity} | {alert_type} | {} systems | {}{more} | |",
                titles.len(),
                shown.join("; ")
            );
        }
        out.push('\n');
    }

    for scope in SCOPES {
        let rs: Vec<_> = a.resources.iter().filter(|r| r.scope == scope).collect();
        if rs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {} ({})\n", scope_title(scope), rs.len());
        let evidence = if scope == "out-of-scope" { "evidence" } else { "justification" };
        let _ = writeln!(out, "| system | type | cloud | segment | {evidence} |\n|---|---|---|---|---|");
        for r in rs {
            let mut name = if r.resource_name.is_empty() || r.resource_name == r.resource_id {
                format!("`{}`", md(&r.resource_id))
            } else {
                format!("{} (`{}`)", md(&r.resource_name), md(&r.resource_id))
            };
            if !r.interfaces.is_empty() {
                let ids: Vec<String> = r.interfaces.iter().map(|i| format!("`{}`", md(i))).collect();
                name.push_str(&format!("<br>interfaces: {}", ids.join(", ")));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                name,
                r.resource_type,
                r.provider,
                md(&r.segment),
                md(&r.justification)
            );
        }
        out.push('\n');
    }

    let blocked = a.blocked_attempts();
    let _ = writeln!(out, "## Blocked attempts at the CDE boundary\n");
    if blocked.is_empty() {
        let _ = writeln!(out, "None observed.\n");
    } else {
        let _ = writeln!(
            out,
            "Flows between the CDE and systems outside it that a security control rejected (at either end): \
             evidence that the boundary controls work (PCI DSS 11.4.5). They do not change scope.\n"
        );
        let _ = writeln!(
            out,
            "| source | destination | service | flows | first seen | last seen |\n|---|---|---|---|---|---|"
        );
        for e in blocked {
            edge_row(&mut out, e, &e.first_seen, &e.last_seen);
        }
        out.push('\n');
    }

    let flows = a.cde_flows();
    let _ = writeln!(out, "## Encryption in transit of flows touching the CDE\n");
    if flows.is_empty() {
        let _ = writeln!(out, "No established flow touches the CDE.\n");
    } else {
        let mut by: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for e in &flows {
            *by.entry(e.encryption()).or_default() += 1;
        }
        let counts: Vec<String> = by.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(
            out,
            "{} established flows (source, destination, service) touch the CDE: {}. Encrypted or not as the flow \
             logs saw it (AWS `encryption-status`, Azure VNet flow logs); unknown where the log format does not say \
             (PCI DSS 4.2.1).\n",
            flows.len(),
            counts.join(", ")
        );
        let seen: Vec<&&crate::EdgeEntry> = flows.iter().filter(|e| e.encryption() != "unknown").collect();
        if !seen.is_empty() {
            let _ = writeln!(
                out,
                "| source | destination | service | flows | encrypted | unencrypted |\n|---|---|---|---|---|---|"
            );
            for e in seen {
                edge_row(&mut out, e, e.encrypted_flows, e.unencrypted_flows);
            }
            out.push('\n');
        }
    }

    let _ = writeln!(out, "## Flow-log coverage\n");
    if a.coverage.is_empty() {
        let _ = writeln!(out, "No flow-log coverage known to this report.\n");
    } else {
        let dark: Vec<&crate::CoverageEntry> = a.coverage.iter().filter(|c| !c.covered() && c.systems > 0).collect();
        let _ = writeln!(
            out,
            "What the flow logs covered: without records from a network, the absence of flows there proves nothing \
             (declared out-of-scope systems in it are pending review). {} of {} networks sent no record.\n",
            dark.len(),
            a.coverage.len()
        );
        let _ = writeln!(
            out,
            "| cloud | network | systems | units logging | records | first record | last record | traffic seen | gaps | flow logs configured |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        for c in &a.coverage {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {}{} | {} |",
                c.provider,
                md(&c.network),
                c.systems,
                c.units,
                c.records,
                if c.first_record.is_empty() { "—" } else { &c.first_record },
                if c.last_record.is_empty() { "—" } else { &c.last_record },
                c.traffic,
                c.gaps,
                if c.skipped > 0 { format!(" ({} SKIPDATA)", c.skipped) } else { String::new() },
                if c.flow_logs.is_empty() { "—".to_owned() } else { md(&c.flow_logs.join(", ")) }
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## CDE boundary: reachable by configuration, and observed\n");
    if a.boundary.is_empty() {
        let _ = writeln!(
            out,
            "No system outside the CDE was observed connecting to it or is let connect by the security groups known to \
             this report.\n"
        );
    } else {
        let reachable: Vec<&crate::BoundaryEntry> = a.boundary.iter().filter(|b| !b.reachable_by.is_empty()).collect();
        let latent = reachable.iter().filter(|b| b.observed.is_empty()).count();
        let observed = a.boundary.iter().filter(|b| !b.observed.is_empty()).count();
        let _ = writeln!(
            out,
            "Per system outside the CDE and CDE system: what the firewall rules allow (PCI DSS 1.2, 1.3) and what the \
             flow logs observed (11.4.5); with a segmentation policy, what it allows. {observed} pairs were observed connecting; {} are reachable by \
             configuration, {latent} of them never observed — connected to the CDE all the same. The reachable pairs:\n",
            reachable.len()
        );
        // With a segmentation policy, what it allows: the third column.
        let with_policy = a.boundary.iter().any(|b| b.allowed_by_policy.is_some());
        if !reachable.is_empty() && with_policy {
            let _ = writeln!(
                out,
                "| system | CDE system | allowed by policy | reachable by configuration | observed |\n|---|---|---|---|---|"
            );
        } else if !reachable.is_empty() {
            let _ = writeln!(out, "| system | CDE system | reachable by configuration | observed |\n|---|---|---|---|");
        }
        for b in reachable {
            let policy = match &b.allowed_by_policy {
                Some(rules) if rules.is_empty() => "**nothing**".to_owned(),
                Some(rules) => md(&rules.join("; ")),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "| `{}` | `{}` |{} {} | {} |",
                md(&b.system),
                md(&b.cde_system),
                if with_policy { format!(" {policy} |") } else { String::new() },
                md(&b.reachable_by.join("; ")),
                if b.observed.is_empty() { "no".to_owned() } else { b.observed.join(", ") }
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## External connections of in-scope systems\n");
    if a.external_connections.is_empty() {
        let _ = writeln!(out, "None observed.\n");
    } else {
        let _ = writeln!(out, "| system | address | service | flows |\n|---|---|---|---|");
        for c in &a.external_connections {
            let _ =
                writeln!(out, "| `{}` | {} | {}/{} | {} |", md(&c.resource_id), c.address, c.protocol, c.port, c.flows);
        }
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// A Markdown table row of an edge: source, destination, service, flows,
/// then two more columns.
fn edge_row(out: &mut String, e: &crate::EdgeEntry, fifth: impl std::fmt::Display, sixth: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "| `{}` | `{}` | {}/{} | {} | {fifth} | {sixth} |",
        md(&e.source),
        md(&e.destination),
        e.protocol,
        e.port,
        e.flows
    );
}

/// CSV, one row per resource.
pub fn csv(a: &Analysis) -> String {
    let mut out = String::from(
        "resource_id,provider,resource_type,resource_name,scope,data_classification,rule,segment,justification,dependency_resource_ids,interfaces\n",
    );
    for r in &a.resources {
        let fields = [
            r.resource_id.as_str(),
            &r.provider,
            &r.resource_type,
            &r.resource_name,
            &r.scope,
            r.data_classification.as_deref().unwrap_or(""),
            &r.rule,
            &r.segment,
            &r.justification,
            &r.dependency_resource_ids.join(" "),
            &r.interfaces.join(" "),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertEntry, ResourceEntry, Summary};

    fn sample() -> Analysis {
        let r = |id: &str, scope: &str, just: &str| ResourceEntry {
            resource_id: id.into(),
            provider: "aws".into(),
            resource_type: "ec2_instance".into(),
            resource_name: format!("{id}-name"),
            scope: scope.into(),
            data_classification: None,
            justification: just.into(),
            dependency_resource_ids: vec![],
            rule: "tag".into(),
            segment: "vpc-1".into(),
            tags: Default::default(),
            interfaces: Vec::new(),
        };
        let mut a = Analysis {
            as_of: "2026-11-01T01:00:00Z".into(),
            summary: Summary { cde: 1, out_of_scope: 1, ..Summary::default() },
            resources: vec![
                r("corp", "out-of-scope", "tagged out-of-scope, no CDE flows"),
                r("db", "cde", "a, \"b\" | c"),
            ],
            alerts: vec![AlertEntry {
                alert_type: "segmentation_violation".into(),
                severity: "critical".into(),
                resource_id: "corp".into(),
                title: "Out-of-scope corp talks to CDE system db".into(),
                description: "corp → db TCP/5432".into(),
                alert_id: String::new(),
                pci_requirement: "1.3.1".into(),
                status: "open".into(),
                peer: Some("db".into()),
            }],
            external_connections: vec![],
            edges: vec![],
            coverage: Vec::new(),
            boundary: Vec::new(),
        };
        a.sort();
        a
    }

    /// Established flows touching the CDE, with what the flow logs saw of
    /// encryption; blocked attempts in their own section.
    #[test]
    fn markdown_shows_encryption_and_blocked_attempts_at_the_cde() {
        let mut a = sample();
        let edge = |src: &str, action: &str, flows: i64, enc: i64, unenc: i64| crate::EdgeEntry {
            source: src.into(),
            destination: "db".into(),
            protocol: "TCP".into(),
            port: 5432,
            action: action.into(),
            flows,
            violation: false,
            encrypted_flows: enc,
            unencrypted_flows: unenc,
            first_seen: "2026-11-01T00:00:00Z".into(),
            last_seen: "2026-11-01T00:10:00Z".into(),
        };
        a.edges =
            vec![edge("app", "ACCEPT", 4, 4, 0), edge("batch", "ACCEPT", 3, 1, 2), edge("corp", "REJECT", 2, 0, 0)];
        let m = markdown(&a);
        let enc = m.split("## Encryption in transit of flows touching the CDE").nth(1).unwrap();
        assert!(
            enc.contains("2 established flows (source, destination, service) touch the CDE: 1 encrypted, 1 mixed"),
            "{enc}"
        );
        assert!(enc.contains("| `batch` | `db` | TCP/5432 | 3 | 1 | 2 |"), "{enc}");
        let blocked = m.split("## Blocked attempts at the CDE boundary").nth(1).unwrap();
        assert!(
            blocked.contains("| `corp` | `db` | TCP/5432 | 2 | 2026-11-01T00:00:00Z | 2026-11-01T00:10:00Z |"),
            "{blocked}"
        );
        assert!(!blocked.split("##").next().unwrap().contains("`app`"), "established flows are no attempts");
    }

    /// Issue 17: the CDE boundary's three-way view: with a policy, what it
    /// allows beside what configuration allows and what was observed.
    #[test]
    fn markdown_boundary_shows_policy_configuration_and_observation() {
        let mut a = sample();
        let row = |system: &str, policy: Option<Vec<String>>, observed: Vec<String>| crate::BoundaryEntry {
            system: system.into(),
            cde_system: "db".into(),
            reachable_by: vec!["sg-0cde admits TCP/5432 from sg-app".into()],
            observed,
            allowed_by_policy: policy,
        };
        a.boundary = vec![
            row("corp", Some(vec![]), vec![]),
            row("app", Some(vec!["app to db: TCP/5432".into()]), vec!["TCP/5432".into()]),
        ];
        let m = markdown(&a);
        let b = m.split("## CDE boundary").nth(1).unwrap();
        assert!(
            b.contains("| system | CDE system | allowed by policy | reachable by configuration | observed |"),
            "{b}"
        );
        assert!(b.contains("| `corp` | `db` | **nothing** | sg-0cde admits TCP/5432 from sg-app | no |"), "{b}");
        assert!(
            b.contains("| `app` | `db` | app to db: TCP/5432 | sg-0cde admits TCP/5432 from sg-app | TCP/5432 |"),
            "{b}"
        );
        // Without a policy: no such column.
        for r in &mut a.boundary {
            r.allowed_by_policy = None;
        }
        let m = markdown(&a);
        assert!(m.contains("| `corp` | `db` | sg-0cde admits TCP/5432 from sg-app | no |"), "{m}");
    }

    #[test]
    fn markdown_lists_scopes_in_order_with_escaped_justifications() {
        let m = markdown(&sample());
        let cde = m.find("## Cardholder data environment (CDE) (1)").unwrap();
        let out = m.find("## Out of scope (1)").unwrap();
        assert!(cde < out);
        assert!(m.contains("a, \"b\" \\| c"), "{m}");
        assert!(m.contains("| critical | segmentation_violation | `corp` |"), "{m}");
        assert!(m.contains("| system | type | cloud | segment | evidence |"), "{m}");
    }

    #[test]
    fn csv_quotes_and_table_shows_everything() {
        let c = csv(&sample());
        assert!(c.lines().nth(1).unwrap().starts_with("db,aws,ec2_instance,db-name,cde,"), "{c}");
        assert!(c.contains("\"a, \"\"b\"\" | c\""), "{c}");
        let t = table(&sample());
        assert!(t.contains("cde 1") && t.contains("segmentation_violation"), "{t}");
    }
}
