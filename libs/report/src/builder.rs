//! The one way to an [`Analysis`], whichever way its parts were read: from
//! the events an `analyze` run published, or from the database's rows
//! (`report`, `diagram`, `--as-of`).

use std::collections::{BTreeMap, HashMap, HashSet};

use psg_domain::rows::report::{AlertRow, EdgeRow, ScopeRow};
use psg_domain::time::rfc3339;

use crate::{AlertEntry, Analysis, CoverageEntry, EdgeEntry, ExternalConnection, ResourceEntry, Summary};

/// What an analysis is made of, before the report's own reasoning
/// (systems folded, violations marked, external connections found).
#[derive(Debug, Clone, Default)]
pub struct Parts {
    /// RFC 3339: the time the analysis stands at.
    pub as_of: String,
    /// The input figures of the summary (records read, processed,
    /// dead-lettered); the scope counts are added here.
    pub counts: Summary,
    /// One entry per resource with a decision, interfaces not folded yet.
    pub resources: Vec<ResourceEntry>,
    /// Interface id → the system whose inventory lists it
    /// ([`crate::interface_owners`]).
    pub interface_owners: HashMap<String, String>,
    /// Each alert once, in its latest state.
    pub alerts: Vec<AlertEntry>,
    /// Flows per (source, destination, protocol, port, action);
    /// `violation` is set here.
    pub edges: Vec<EdgeEntry>,
    pub coverage: Vec<CoverageEntry>,
}

/// Whether an alert still stands: open or acknowledged.
pub fn is_active(status: &str) -> bool {
    matches!(status, "open" | "acknowledged")
}

impl Analysis {
    /// The analysis of `parts`:
    /// - interfaces are folded under the systems that list them, and the
    ///   summary counts systems;
    /// - the alerts listed are the active ones; an ACCEPTed edge is a
    ///   violation when an active segmentation violation names its pair;
    /// - an ACCEPTed edge between an in-scope resource (cde, connected-cde:
    ///   by the resource's own decision, interfaces included) and an
    ///   external address is an external connection;
    /// - `reachable` gets the CDE's systems and returns, per (system, CDE
    ///   system), the rules that let the system connect
    ///   ([`Analysis::set_boundary`]).
    pub fn build(
        parts: Parts,
        reachable: impl FnOnce(&HashSet<&str>) -> BTreeMap<(String, String), Vec<String>>,
    ) -> Analysis {
        let Parts { as_of, counts, mut resources, interface_owners, alerts, mut edges, coverage } = parts;
        let in_scope: HashSet<String> = resources
            .iter()
            .filter(|r| matches!(r.scope.as_str(), "cde" | "connected-cde"))
            .map(|r| r.resource_id.clone())
            .collect();
        crate::fold_interfaces(&mut resources, interface_owners);
        let mut summary = counts;
        for r in &resources {
            summary.add(&r.scope);
        }

        let alerts: Vec<AlertEntry> = alerts.into_iter().filter(|a| is_active(&a.status)).collect();
        let mut violating: HashSet<(&str, &str)> = HashSet::new();
        for a in alerts.iter().filter(|a| a.alert_type == "segmentation_violation") {
            if let Some(peer) = &a.peer {
                violating.insert((a.resource_id.as_str(), peer.as_str()));
                violating.insert((peer.as_str(), a.resource_id.as_str()));
            }
        }

        let mut external = Vec::new();
        for e in &mut edges {
            let accepted = e.action == "ACCEPT";
            e.violation = accepted && violating.contains(&(e.source.as_str(), e.destination.as_str()));
            if !accepted {
                continue;
            }
            for (inside, outside) in [(&e.source, &e.destination), (&e.destination, &e.source)] {
                if let Some(address) = outside.strip_prefix("ext:")
                    && in_scope.contains(inside.as_str())
                {
                    external.push(ExternalConnection {
                        resource_id: inside.clone(),
                        address: address.to_owned(),
                        protocol: e.protocol.clone(),
                        port: e.port,
                        flows: e.flows,
                    });
                }
            }
        }

        let mut analysis = Analysis {
            as_of,
            summary,
            resources,
            alerts,
            external_connections: external,
            edges,
            coverage,
            boundary: Vec::new(),
        };
        let cde: HashSet<&str> = analysis.cde_ids();
        let reachable = reachable(&cde);
        analysis.set_boundary(reachable);
        analysis
    }
}

impl From<ScopeRow> for ResourceEntry {
    fn from(r: ScopeRow) -> Self {
        Self {
            resource_id: r.resource,
            provider: r.provider,
            resource_type: r.resource_type,
            resource_name: r.name,
            scope: r.scope,
            data_classification: r.data_classification,
            justification: r.justification,
            dependency_resource_ids: r.dependencies,
            rule: r.rule,
            segment: r.network,
            tags: r.tags,
            interfaces: Vec::new(),
        }
    }
}

impl From<&AlertRow> for AlertEntry {
    fn from(a: &AlertRow) -> Self {
        Self {
            alert_type: a.alert_type.clone(),
            severity: a.severity.clone(),
            resource_id: a.resource.clone(),
            title: a.title.clone(),
            description: a.description.clone(),
            alert_id: a.alert_id.clone(),
            pci_requirement: a.pci_requirement().to_owned(),
            status: a.status.clone(),
            peer: a.peer().map(str::to_owned),
        }
    }
}

impl From<EdgeRow> for EdgeEntry {
    fn from(e: EdgeRow) -> Self {
        Self {
            source: e.source,
            destination: e.destination,
            protocol: e.protocol,
            port: e.dst_port,
            action: e.action,
            flows: e.flow_count,
            violation: false,
            encrypted_flows: e.encrypted_flow_count,
            unencrypted_flows: e.unencrypted_flow_count,
            first_seen: rfc3339(e.first_seen.timestamp_micros()),
            last_seen: rfc3339(e.last_seen.timestamp_micros()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold_tests::entry as resource;

    fn edge(source: &str, destination: &str, port: i32, action: &str) -> EdgeEntry {
        EdgeEntry {
            source: source.to_owned(),
            destination: destination.to_owned(),
            protocol: "TCP".to_owned(),
            port,
            action: action.to_owned(),
            flows: 3,
            violation: false,
            encrypted_flows: 0,
            unencrypted_flows: 0,
            first_seen: String::new(),
            last_seen: String::new(),
        }
    }

    fn violation(id: &str, resource: &str, peer: &str, status: &str) -> AlertEntry {
        AlertEntry {
            alert_type: "segmentation_violation".to_owned(),
            severity: "critical".to_owned(),
            resource_id: resource.to_owned(),
            title: format!("{resource} to {peer}"),
            description: String::new(),
            alert_id: id.to_owned(),
            pci_requirement: "1.3.1".to_owned(),
            status: status.to_owned(),
            peer: Some(peer.to_owned()),
        }
    }

    fn parts() -> Parts {
        Parts {
            as_of: "2026-01-01T00:00:00Z".to_owned(),
            counts: Summary { records_read: 7, flow_records: 7, ..Summary::default() },
            resources: vec![
                resource("i-db", "cde"),
                resource("eni-db", "cde"),
                resource("i-app", "connected-cde"),
                resource("i-web", "out-of-scope"),
            ],
            interface_owners: HashMap::from([("eni-db".to_owned(), "i-db".to_owned())]),
            alerts: vec![violation("a1", "i-web", "i-db", "open"), violation("a2", "i-app", "i-db", "resolved")],
            edges: vec![
                edge("i-web", "i-db", 5432, "ACCEPT"),
                edge("i-app", "i-db", 5432, "ACCEPT"),
                edge("i-web", "i-db", 22, "REJECT"),
                edge("eni-db", "ext:203.0.113.9", 443, "ACCEPT"),
                edge("i-web", "ext:198.51.100.1", 443, "ACCEPT"),
            ],
            coverage: Vec::new(),
        }
    }

    #[test]
    fn interfaces_fold_under_their_system_and_count_once() {
        let a = Analysis::build(parts(), |_| BTreeMap::new());
        assert_eq!(a.resources.len(), 3);
        assert_eq!(a.resource("i-db").map(|r| r.interfaces.clone()), Some(vec!["eni-db".to_owned()]));
        assert_eq!((a.summary.cde, a.summary.connected_cde, a.summary.out_of_scope), (1, 1, 1));
        assert_eq!(a.summary.records_read, 7);
    }

    #[test]
    fn only_active_violations_are_listed_and_mark_accepted_edges() {
        let a = Analysis::build(parts(), |_| BTreeMap::new());
        let ids: Vec<&str> = a.alerts.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, ["a1"]);
        let marked: Vec<(&str, i32, &str)> =
            a.edges.iter().filter(|e| e.violation).map(|e| (e.source.as_str(), e.port, e.action.as_str())).collect();
        assert_eq!(marked, [("i-web", 5432, "ACCEPT")]);
    }

    #[test]
    fn external_connections_of_in_scope_resources_interfaces_included() {
        let a = Analysis::build(parts(), |_| BTreeMap::new());
        let ext: Vec<(&str, &str)> =
            a.external_connections.iter().map(|c| (c.resource_id.as_str(), c.address.as_str())).collect();
        assert_eq!(ext, [("eni-db", "203.0.113.9")]);
    }

    #[test]
    fn the_boundary_gets_the_cde_systems_and_the_observed_services() {
        let mut asked = Vec::new();
        let a = Analysis::build(parts(), |cde| {
            asked = cde.iter().map(|s| (*s).to_owned()).collect();
            BTreeMap::from([(("i-web".to_owned(), "i-db".to_owned()), vec!["sg-db admits TCP/22".to_owned()])])
        });
        assert_eq!(asked, ["i-db"]);
        let web = a.boundary.iter().find(|b| b.system == "i-web").expect("i-web on the boundary");
        assert_eq!(web.reachable_by, ["sg-db admits TCP/22"]);
        assert_eq!(web.observed, ["TCP/5432"]);
    }
}
