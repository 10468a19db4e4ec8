//! Scope reports. Pure: an [`Analysis`] (what `analyze` and `report`
//! compute from the services' outputs) in, text out.
//!
//! - [`Analysis`] serialises to the documented JSON shape (`--output json`);
//! - [`render`]: table, Markdown (for the assessor, PCI DSS 12.5.2), CSV;
//! - [`diagram`]: the network / data-flow diagram (PCI DSS 1.2.3 / 1.2.4) as
//!   SVG (no Graphviz needed), Mermaid and DOT.

mod builder;
pub mod diagram;
pub mod render;

pub use builder::{Parts, is_active};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The scopes, in report order.
pub const SCOPES: [&str; 4] = ["cde", "connected-cde", "out-of-scope", "pending-review"];

/// The result of an analysis: every classified resource, the alerts, and
/// the flows that matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// RFC 3339: the newest event time the analysis saw.
    pub as_of: String,
    pub summary: Summary,
    /// Sorted by scope (cde first), then resource id.
    pub resources: Vec<ResourceEntry>,
    /// Sorted by severity (critical first), then type, then resource.
    pub alerts: Vec<AlertEntry>,
    /// Connections of in-scope resources (cde, connected-cde) with public
    /// addresses, ACCEPTed.
    pub external_connections: Vec<ExternalConnection>,
    /// Resource-to-resource flows (aggregated per source, destination,
    /// protocol, port, action), for the diagram.
    #[serde(default)]
    pub edges: Vec<EdgeEntry>,
    /// Flow-log coverage per network (VPC, VNet, VPC network) that holds
    /// systems or sent records, sorted by provider and network.
    #[serde(default)]
    pub coverage: Vec<CoverageEntry>,
    /// The CDE boundary, per (system, CDE system): what the configuration
    /// allows and what was observed. Sorted by CDE system, then system.
    #[serde(default)]
    pub boundary: Vec<BoundaryEntry>,
}

/// One pair across the CDE boundary: a system outside the CDE and a CDE
/// system, with what their security groups allow and what was observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryEntry {
    pub system: String,
    pub cde_system: String,
    /// The rules that let `system` connect to `cde_system`
    /// (`sg-0cde admits TCP/5432 from sg-0app`); empty: none known.
    pub reachable_by: Vec<String>,
    /// Services of ACCEPTed flows between them (`TCP/5432`), either
    /// direction; empty: none observed.
    pub observed: Vec<String>,
    /// With a segmentation policy: its allow rules from the system's
    /// segments to the CDE system's (empty: the policy allows nothing);
    /// `None` without a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_by_policy: Option<Vec<String>>,
}

/// Flow-log coverage of one network over the run (or the lookback window):
/// without it, the absence of flows proves nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageEntry {
    pub provider: String,
    /// The VPC, VNet or VPC network id (`unplaced` for units no record or
    /// inventory places).
    pub network: String,
    /// Systems the inventory places in it.
    pub systems: usize,
    /// Units (interfaces, instances, subnets) that sent records.
    pub units: usize,
    pub records: i64,
    /// RFC 3339 event times of the first and last record; empty without.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_record: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_record: String,
    /// `accepted and rejected`, `accepted only`, `rejected only`, `no
    /// traffic (NODATA only)` or `none`: what the records showed.
    pub traffic: String,
    /// Records by what they showed: accepted traffic, rejected traffic, no
    /// traffic (`NODATA`), records lost (`SKIPDATA`).
    pub accepted: i64,
    pub rejected: i64,
    pub no_data: i64,
    pub skipped: i64,
    /// Silences longer than `correlate.coverage-gap-secs` in its units.
    pub gaps: usize,
    /// Flow logs the inventory configures for it, its subnets or its
    /// interfaces (`fl-1 (ALL) on vpc-1`); empty when none is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow_logs: Vec<String>,
}

impl CoverageEntry {
    /// Whether the network sent any record.
    pub fn covered(&self) -> bool {
        self.records > 0
    }
}

/// Counts per scope plus input figures. Serialises as
/// `{"cde": n, "connected-cde": n, "out-of-scope": n, "pending-review": n,
///   "flow_records": n, "dead_lettered": n, "records_read": n}`:
/// `records_read` flow-log records were read, `flow_records` of them were
/// processed and the rest dead-lettered; `dead_lettered` counts every record
/// any service refused (inventory too; a message refused whole whose records
/// cannot be counted counts once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub cde: u64,
    #[serde(rename = "connected-cde")]
    pub connected_cde: u64,
    #[serde(rename = "out-of-scope")]
    pub out_of_scope: u64,
    #[serde(rename = "pending-review")]
    pub pending_review: u64,
    pub flow_records: u64,
    pub dead_lettered: u64,
    #[serde(default)]
    pub records_read: u64,
}

impl Summary {
    /// The count of `scope` (one of [`SCOPES`]).
    pub fn count(&self, scope: &str) -> u64 {
        match scope {
            "cde" => self.cde,
            "connected-cde" => self.connected_cde,
            "out-of-scope" => self.out_of_scope,
            "pending-review" => self.pending_review,
            _ => 0,
        }
    }

    /// Adds one resource of `scope`.
    pub fn add(&mut self, scope: &str) {
        match scope {
            "cde" => self.cde += 1,
            "connected-cde" => self.connected_cde += 1,
            "out-of-scope" => self.out_of_scope += 1,
            "pending-review" => self.pending_review += 1,
            _ => {}
        }
    }
}

/// One classified resource (or unknown host `ip:<address>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceEntry {
    pub resource_id: String,
    /// `aws`, `azure`, `gcp`, `on_premise`.
    pub provider: String,
    /// Seed spelling, e.g. `ec2_instance`, `unknown_host`.
    pub resource_type: String,
    pub resource_name: String,
    /// One of [`SCOPES`].
    pub scope: String,
    pub data_classification: Option<String>,
    pub justification: String,
    pub dependency_resource_ids: Vec<String>,
    /// The rule that decided (`manual`, `tag_cde`, `cde_connection`, ...).
    #[serde(default)]
    pub rule: String,
    /// Segment for the diagram: VPC / VNet / network id, or "" if none.
    #[serde(default)]
    pub segment: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The interfaces that are part of this system (listed by its
    /// inventory: an instance's ENIs, a VM's NICs): classified with it,
    /// not counted as systems of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// Interface id → the system whose inventory lists it, from each system's
/// id and listed `interface_ids` (a system listing itself is not its own
/// interface), for [`fold_interfaces`].
pub fn interface_owners<'a>(
    listings: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> std::collections::HashMap<String, String> {
    let mut owners = std::collections::HashMap::new();
    for (system, listed) in listings {
        for i in listed.iter().filter(|i| *i != system) {
            owners.insert(i.clone(), system.to_owned());
        }
    }
    owners
}

/// Systems, not interfaces: moves every entry that `owner_of` (interface id
/// → the resource whose inventory lists it) names as an interface of
/// another entry, or whose decision says it is one (a justification
/// beginning with [`psg_domain::INTERFACE_OF`] and one dependency: the ENIs
/// classify matched to a load balancer, a function, a database), under that
/// entry's `interfaces`, so that systems are counted once. An interface
/// whose system has no entry stays an entry.
pub fn fold_interfaces(entries: &mut Vec<ResourceEntry>, mut owner_of: std::collections::HashMap<String, String>) {
    for e in entries.iter() {
        if let [system] = e.dependency_resource_ids.as_slice()
            && e.justification.starts_with(psg_domain::INTERFACE_OF)
        {
            owner_of.entry(e.resource_id.clone()).or_insert_with(|| system.clone());
        }
    }
    let owner_of = &owner_of;
    let present: std::collections::HashSet<String> = entries.iter().map(|e| e.resource_id.clone()).collect();
    let owner =
        |id: &str| owner_of.get(id).filter(|o| present.contains(*o) && *o != id && !owner_of.contains_key(*o)).cloned();
    let mut moved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    entries.retain(|e| match owner(&e.resource_id) {
        Some(o) => {
            moved.entry(o).or_default().push(e.resource_id.clone());
            false
        }
        None => true,
    });
    for e in entries.iter_mut() {
        if let Some(mut ids) = moved.remove(&e.resource_id) {
            e.interfaces.append(&mut ids);
            e.interfaces.sort();
            e.interfaces.dedup();
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEntry {
    /// `segmentation_violation`, `scope_drift`, `unknown_system`,
    /// `cde_internet`, `untagged_resource`.
    pub alert_type: String,
    /// `critical`, `high`, `medium`, `low`, `info`.
    pub severity: String,
    pub resource_id: String,
    pub title: String,
    pub description: String,
    #[serde(default)]
    pub alert_id: String,
    #[serde(default)]
    pub pci_requirement: String,
    #[serde(default)]
    pub status: String,
    /// The other end, when the alert is about a flow.
    #[serde(default)]
    pub peer: Option<String>,
}

/// A connection between an in-scope resource and a public address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalConnection {
    pub resource_id: String,
    pub address: String,
    /// `TCP`, `UDP`, `ICMP`, or the protocol number.
    pub protocol: String,
    pub port: i32,
    pub flows: i64,
}

/// Flows between two endpoints (resources, unknown hosts, or external
/// addresses as `ext:<address>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEntry {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub port: i32,
    /// `ACCEPT` (established), or `REJECT`: blocked, at either end (a
    /// connection one end accepted and the other rejected is blocked).
    pub action: String,
    pub flows: i64,
    /// A segmentation violation names this pair.
    pub violation: bool,
    /// Flow records seen encrypted in transit, and unencrypted (flow logs
    /// that say: AWS `encryption-status`, Azure VNet flow logs); the rest of
    /// `flows` unknown.
    #[serde(default)]
    pub encrypted_flows: i64,
    #[serde(default)]
    pub unencrypted_flows: i64,
    /// RFC 3339 event times of the first and last flow, where known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_seen: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_seen: String,
}

impl EdgeEntry {
    /// Whether the flows were blocked (rejected at either end).
    pub fn blocked(&self) -> bool {
        !self.action.eq_ignore_ascii_case("ACCEPT")
    }

    /// `encrypted`, `unencrypted`, `mixed` or `unknown`: what the flow logs
    /// saw of encryption in transit.
    pub fn encryption(&self) -> &'static str {
        match (self.encrypted_flows > 0, self.unencrypted_flows > 0) {
            (true, true) => "mixed",
            (true, false) if self.encrypted_flows >= self.flows => "encrypted",
            (true, false) => "mixed",
            (false, true) => "unencrypted",
            (false, false) => "unknown",
        }
    }
}

/// Severity order for sorting: critical first.
pub fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// Scope order for sorting: cde first.
pub fn scope_rank(s: &str) -> usize {
    SCOPES.iter().position(|x| *x == s).unwrap_or(SCOPES.len())
}

impl Analysis {
    /// Sorts resources, alerts, connections and edges into report order.
    pub fn sort(&mut self) {
        self.resources
            .sort_by(|a, b| (scope_rank(&a.scope), &a.resource_id).cmp(&(scope_rank(&b.scope), &b.resource_id)));
        self.alerts.sort_by(|a, b| {
            (severity_rank(&a.severity), &a.alert_type, &a.resource_id, &a.title).cmp(&(
                severity_rank(&b.severity),
                &b.alert_type,
                &b.resource_id,
                &b.title,
            ))
        });
        self.external_connections.sort_by(|a, b| {
            (&a.resource_id, &a.address, &a.protocol, a.port).cmp(&(&b.resource_id, &b.address, &b.protocol, b.port))
        });
        self.coverage.sort_by(|a, b| (&a.provider, &a.network).cmp(&(&b.provider, &b.network)));
        self.boundary.sort_by(|a, b| (&a.cde_system, &a.system).cmp(&(&b.cde_system, &b.system)));
        self.edges.sort_by(|a, b| {
            (&a.source, &a.destination, &a.protocol, a.port, &a.action).cmp(&(
                &b.source,
                &b.destination,
                &b.protocol,
                b.port,
                &b.action,
            ))
        });
    }

    /// The resource with `id`.
    pub fn resource(&self, id: &str) -> Option<&ResourceEntry> {
        self.resources.iter().find(|r| r.resource_id == id)
    }

    /// The ids of the CDE's systems.
    fn cde_ids(&self) -> std::collections::HashSet<&str> {
        self.resources.iter().filter(|r| r.scope == "cde").map(|r| r.resource_id.as_str()).collect()
    }

    /// Established flows with a CDE system at one end at least: each one's
    /// encryption in transit, as the flow logs saw it (PCI DSS 4.2.1).
    pub fn cde_flows(&self) -> Vec<&EdgeEntry> {
        let cde = self.cde_ids();
        self.edges
            .iter()
            .filter(|e| !e.blocked() && (cde.contains(e.source.as_str()) || cde.contains(e.destination.as_str())))
            .collect()
    }

    /// Fills the boundary's observed services from the established flows
    /// between a CDE system and a system outside it (external addresses
    /// are listed as external connections); `reachable`: (system, CDE
    /// system) → the rules that let it connect.
    pub fn set_boundary(&mut self, reachable: BTreeMap<(String, String), Vec<String>>) {
        let cde = self.cde_ids();
        let systems: std::collections::HashSet<&str> = self.resources.iter().map(|r| r.resource_id.as_str()).collect();
        let mut rows: BTreeMap<(String, String), BoundaryEntry> = BTreeMap::new();
        for ((system, c), rules) in reachable {
            rows.insert(
                (system.clone(), c.clone()),
                BoundaryEntry {
                    system,
                    cde_system: c,
                    reachable_by: rules,
                    observed: Vec::new(),
                    allowed_by_policy: None,
                },
            );
        }
        for e in self.edges.iter().filter(|e| !e.blocked()) {
            let (inside, outside) = match (cde.contains(e.source.as_str()), cde.contains(e.destination.as_str())) {
                (true, false) => (&e.source, &e.destination),
                (false, true) => (&e.destination, &e.source),
                _ => continue,
            };
            if !systems.contains(outside.as_str()) {
                continue;
            }
            let row = rows.entry((outside.clone(), inside.clone())).or_insert_with(|| BoundaryEntry {
                system: outside.clone(),
                cde_system: inside.clone(),
                ..BoundaryEntry::default()
            });
            let service = format!("{}/{}", e.protocol, e.port);
            if !row.observed.contains(&service) {
                row.observed.push(service);
            }
        }
        self.boundary = rows.into_values().collect();
        for b in &mut self.boundary {
            b.observed.sort();
        }
        self.sort();
    }

    /// Blocked attempts at the CDE boundary: blocked flows between a CDE
    /// system and a system outside the CDE (or an external address), in
    /// edge order. Proof that the boundary controls work (PCI DSS 11.4.5);
    /// they never change scope.
    pub fn blocked_attempts(&self) -> Vec<&EdgeEntry> {
        let cde = self.cde_ids();
        self.edges
            .iter()
            .filter(|e| e.blocked() && cde.contains(e.source.as_str()) != cde.contains(e.destination.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_serialises_with_the_documented_keys() {
        let s = Summary {
            cde: 1,
            connected_cde: 2,
            out_of_scope: 3,
            pending_review: 4,
            flow_records: 5,
            dead_lettered: 6,
            records_read: 7,
        };
        let v = serde_json::to_value(&s).unwrap();
        for (k, n) in [
            ("cde", 1),
            ("connected-cde", 2),
            ("out-of-scope", 3),
            ("pending-review", 4),
            ("flow_records", 5),
            ("dead_lettered", 6),
            ("records_read", 7),
        ] {
            assert_eq!(v[k], n, "{k}");
        }
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    /// A resource entry of `scope` named by its id.
    pub(crate) fn entry(id: &str, scope: &str) -> ResourceEntry {
        ResourceEntry {
            resource_id: id.into(),
            provider: "azure".into(),
            resource_type: "virtual_machine".into(),
            resource_name: id.into(),
            scope: scope.into(),
            data_classification: None,
            justification: String::new(),
            dependency_resource_ids: Vec::new(),
            rule: String::new(),
            segment: String::new(),
            tags: BTreeMap::new(),
            interfaces: Vec::new(),
        }
    }

    #[test]
    fn interfaces_go_under_their_system() {
        let mut entries = vec![
            entry("vm", "connected-cde"),
            entry("nic-2", "connected-cde"),
            entry("nic-1", "pending-review"),
            entry("lone", "pending-review"),
        ];
        let owners: std::collections::HashMap<String, String> = [("nic-1", "vm"), ("nic-2", "vm"), ("lone", "gone")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        fold_interfaces(&mut entries, owners);
        let ids: Vec<&str> = entries.iter().map(|e| e.resource_id.as_str()).collect();
        assert_eq!(ids, vec!["vm", "lone"], "an interface whose system has no entry stays");
        assert_eq!(entries[0].interfaces, vec!["nic-1", "nic-2"]);

        // An interface classify matched to its system, by its decision.
        let mut eni = entry("eni-5", "cde");
        eni.justification = format!("{}db (db), classified with it. Declared CDE.", psg_domain::INTERFACE_OF);
        eni.dependency_resource_ids = vec!["db".into()];
        let mut connected = entry("app", "connected-cde");
        connected.dependency_resource_ids = vec!["db".into()];
        let mut entries = vec![entry("db", "cde"), eni, connected];
        fold_interfaces(&mut entries, std::collections::HashMap::new());
        let ids: Vec<&str> = entries.iter().map(|e| e.resource_id.as_str()).collect();
        assert_eq!(ids, vec!["db", "app"], "a dependency alone does not make an interface");
        assert_eq!(entries[0].interfaces, vec!["eni-5"]);
    }
}
