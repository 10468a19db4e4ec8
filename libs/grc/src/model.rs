//! What a sync pushes, independent of any provider: the systems of the
//! scope inventory and the evidence records of the period. Pure: built from
//! the report of `analyze`/`demo` ([`Analysis`]) or from the store's rows.

use std::path::Path;

use psg_domain::rows::EvidenceRow;
use psg_report::{Analysis, ResourceEntry};
use serde::Serialize;

use crate::{Error, Result};

/// One system of the scope inventory, as pushed to a GRC platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeItem {
    /// Our resource id (`i-0abc`, `ip:10.0.0.7`): the platform's unique id.
    pub resource_id: String,
    pub name: String,
    /// As we print it: `cde`, `connected-cde`, `out-of-scope`, `pending-review`.
    pub scope: String,
    /// The rule that decided (`tag_cde`, `cde_connection`, `manual`, ...).
    pub rule: String,
    pub justification: String,
    /// `aws`, `azure`, `gcp`, `on_premise`.
    pub provider: String,
    /// Seed spelling: `ec2_instance`, `rds_instance`, ...
    pub resource_type: String,
    /// VPC / VNet / network id, empty if none.
    pub segment: String,
}

impl ScopeItem {
    /// Its name, or its id when it has none.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() { &self.resource_id } else { &self.name }
    }

    /// What every platform gets of its scope: `pci_scope`, `rule`,
    /// `justification`, `provider`, `resource_type`, `segment`, after the
    /// given leading fields.
    pub fn properties(&self, leading: &[(&str, &str)]) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, v) in leading {
            m.insert((*k).to_owned(), (*v).into());
        }
        for (k, v) in [
            ("pci_scope", &self.scope),
            ("rule", &self.rule),
            ("justification", &self.justification),
            ("provider", &self.provider),
            ("resource_type", &self.resource_type),
            ("segment", &self.segment),
        ] {
            m.insert(k.to_owned(), v.as_str().into());
        }
        serde_json::Value::Object(m)
    }

    /// The item of a classified resource of a report (or of the database).
    pub fn from_entry(e: &ResourceEntry) -> Self {
        Self {
            resource_id: e.resource_id.clone(),
            name: e.resource_name.clone(),
            scope: e.scope.clone(),
            rule: e.rule.clone(),
            justification: e.justification.clone(),
            provider: e.provider.clone(),
            resource_type: e.resource_type.clone(),
            segment: e.segment.clone(),
        }
    }
}

/// One signed evidence record with its document.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceItem {
    pub evidence_id: String,
    /// `pci_scope_identification`, `network_segmentation_validation`, ...
    pub evidence_type: String,
    /// The PCI DSS requirement it supports (`12.5.2`), if any.
    pub requirement: Option<String>,
    /// RFC 3339.
    pub generated_at: String,
    /// SHA-256 (hex) of the canonical document.
    pub hash: String,
    pub chain: String,
    pub sequence: i64,
    /// The document's path in the evidence store or bundle.
    pub document_path: String,
    /// The signed canonical JSON document; `None` when it was not loaded.
    #[serde(skip)]
    pub document: Option<Vec<u8>>,
}

impl std::fmt::Debug for EvidenceItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceItem")
            .field("evidence_id", &self.evidence_id)
            .field("evidence_type", &self.evidence_type)
            .field("chain", &self.chain)
            .field("sequence", &self.sequence)
            .field("document_bytes", &self.document.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl EvidenceItem {
    /// The item of a stored record, whose document is at `document_path`.
    pub fn from_row(r: &EvidenceRow, document_path: String) -> Self {
        Self {
            evidence_id: r.id.to_string(),
            evidence_type: r.evidence_type.as_str().to_owned(),
            requirement: r.pci_requirement.clone(),
            generated_at: r.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            hash: r.hash.clone(),
            chain: r.chain.clone(),
            sequence: r.sequence,
            document_path,
            document: None,
        }
    }

    /// The file name the document is uploaded under: stable, so a re-run
    /// finds what an earlier one uploaded.
    pub fn file_name(&self) -> String {
        format!("psg-{}-{}-{:012}.json", self.evidence_type, self.chain, self.sequence)
    }

    /// A one-line description for the platform.
    pub fn description(&self) -> String {
        let req = self.requirement.as_deref().map(|r| format!(" (PCI DSS {r})")).unwrap_or_default();
        format!(
            "PCI Scope Guard evidence {}{req}: {} #{}, generated {}, SHA-256 {}, Ed25519-signed (verify with `pci-scope-guard evidence verify`)",
            self.evidence_type, self.chain, self.sequence, self.generated_at, self.hash
        )
    }
}

/// Everything one sync pushes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// Where it was read: `database` or `report <path>`.
    pub source: String,
    /// RFC 3339: the newest event time the scope reflects, when known.
    pub as_of: Option<String>,
    /// Sorted by resource id.
    pub systems: Vec<ScopeItem>,
    /// In chain order.
    pub evidence: Vec<EvidenceItem>,
}

impl Inventory {
    /// The systems of a report (no evidence: a report carries none).
    pub fn from_analysis(a: &Analysis, source: impl Into<String>) -> Self {
        Self::from_entries(&a.resources, source, Some(a.as_of.clone()))
    }

    /// The systems of classified resources (the report's, or the database's
    /// current scope with interfaces folded into their systems).
    pub fn from_entries(entries: &[ResourceEntry], source: impl Into<String>, as_of: Option<String>) -> Self {
        let mut systems: Vec<ScopeItem> = entries.iter().map(ScopeItem::from_entry).collect();
        systems.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        systems.dedup_by(|a, b| a.resource_id == b.resource_id);
        Self { source: source.into(), as_of, systems, evidence: Vec::new() }
    }

    /// Reads a report JSON written by `analyze --output json` or `demo`.
    pub fn from_report_file(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|source| Error::ReportRead { path: path.to_owned(), source })?;
        let analysis: Analysis =
            serde_json::from_slice(&text).map_err(|source| Error::ReportParse { path: path.to_owned(), source })?;
        Ok(Self::from_analysis(&analysis, format!("report {}", path.display())))
    }

    /// The current scope in the database (systems, interfaces folded in).
    pub async fn from_store(store: &psg_store::Store) -> Result<Self> {
        let mut entries: Vec<ResourceEntry> =
            psg_store::operator::current_scope(store).await?.into_iter().map(ResourceEntry::from).collect();
        let listings = psg_store::operator::interface_listings(store).await?;
        let owners = psg_report::interface_owners(listings.iter().map(|(s, l)| (s.as_str(), l.as_slice())));
        psg_report::fold_interfaces(&mut entries, owners);
        Ok(Self::from_entries(&entries, "database", None))
    }

    /// Systems per scope, in report order.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        psg_report::SCOPES.iter().map(|s| (*s, self.systems.iter().filter(|i| i.scope == *s).count())).collect()
    }
}

/// Quotes a CSV field (RFC 4180) when it needs it.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// The systems as CSV, header first.
pub fn systems_csv(systems: &[ScopeItem]) -> String {
    let mut out = String::from("resource_id,name,pci_scope,rule,justification,provider,resource_type,segment\n");
    for s in systems {
        let fields =
            [&s.resource_id, &s.name, &s.scope, &s.rule, &s.justification, &s.provider, &s.resource_type, &s.segment];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, scope: &str) -> ResourceEntry {
        ResourceEntry {
            resource_id: id.into(),
            provider: "aws".into(),
            resource_type: "rds_instance".into(),
            resource_name: format!("{id}-name"),
            scope: scope.into(),
            data_classification: None,
            justification: "tagged pci-scope=cde, \"reviewed\"".into(),
            dependency_resource_ids: vec![],
            rule: "tag_cde".into(),
            segment: "vpc-1".into(),
            tags: Default::default(),
            interfaces: vec![],
        }
    }

    #[test]
    fn items_keep_scope_rule_and_segment_sorted_by_id() {
        let inv = Inventory::from_entries(&[entry("db-2", "connected-cde"), entry("db-1", "cde")], "t", None);
        assert_eq!(inv.systems[0].resource_id, "db-1");
        assert_eq!(inv.systems[1].scope, "connected-cde");
        assert_eq!(inv.systems[1].rule, "tag_cde");
        assert_eq!(inv.systems[1].segment, "vpc-1");
        assert_eq!(inv.counts()[0], ("cde", 1));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let csv = systems_csv(&[ScopeItem::from_entry(&entry("db-1", "cde"))]);
        assert_eq!(
            csv.lines().nth(1),
            Some("db-1,db-1-name,cde,tag_cde,\"tagged pci-scope=cde, \"\"reviewed\"\"\",aws,rds_instance,vpc-1")
        );
    }
}
