//! The periodic reports' content. Pure: rows in, JSON out, deterministic
//! (rows arrive sorted; maps are ordered).
//!
//! - `network_segmentation_validation` (1.3.1, 1.3.2, 11.4.5): flows across
//!   the CDE boundary (one side in the CDE, the other not), accepted and
//!   rejected, the segmentation violations raised in the period, and the
//!   flow-log coverage per network (which networks logged, which held
//!   resources but sent nothing, the gaps);
//! - `data_flow_analysis` (1.2.4): every edge touching the CDE;
//! - `tag_audit_trail`: every tag version applied in the period;
//! - `configuration_snapshot`: every resource's stored configuration, tags
//!   and scope at the end of the period.

use psg_domain::EvidenceType;
use psg_domain::rows::report::{BoundaryFlow, ResourceConfig, TagChange, Violation};
use psg_domain::time::{Micros, rfc3339};
use serde_json::{Value, json};

use crate::record::Report;

/// The inputs of one period's reports.
#[derive(Debug, Clone, Default)]
pub struct PeriodData {
    pub flows: Vec<BoundaryFlow>,
    pub violations: Vec<Violation>,
    pub tag_changes: Vec<TagChange>,
    pub configuration: Vec<ResourceConfig>,
    /// Flow-log coverage of every unit known (its input partitions merged),
    /// sorted by unit.
    pub coverage: Vec<UnitCoverage>,
}

/// Flow-log coverage of one unit (interface, instance, subnet, network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCoverage {
    pub unit: String,
    pub kind: String,
    pub vpc_id: Option<String>,
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub records: i64,
    /// Silences longer than the configured gap, oldest first.
    pub gaps: Vec<(Micros, Micros)>,
}

impl UnitCoverage {
    /// Whether the unit sent records in `[start, end)`: seen before the end,
    /// last seen after the start, and no gap spanning the whole period.
    pub fn logged_in(&self, start: Micros, end: Micros) -> bool {
        self.first_seen < end && self.last_seen >= start && !self.gaps.iter().any(|(a, b)| *a < start && *b >= end)
    }
}

/// Flow-log coverage in a period, per network: the networks holding
/// resources (the configuration at the period's end) or sending records,
/// which of them logged, and the gaps within the period. Without coverage
/// the absence of flows across the boundary proves nothing.
fn coverage_json(p: &Period, d: &PeriodData) -> (Value, Value) {
    use std::collections::BTreeMap;
    #[derive(Default)]
    struct Net {
        resources: usize,
        units: usize,
        first: Option<Micros>,
        last: Option<Micros>,
        gaps: Vec<Value>,
    }
    let mut nets: BTreeMap<String, Net> = BTreeMap::new();
    for r in d.configuration.iter().filter(|r| r.is_active) {
        if let Some(v) = r.vpc_id.as_deref().filter(|v| !v.is_empty()) {
            nets.entry(v.to_owned()).or_default().resources += 1;
        }
    }
    for u in d.coverage.iter().filter(|u| u.logged_in(p.start, p.end)) {
        let n = nets.entry(u.vpc_id.clone().unwrap_or_else(|| "unplaced".to_owned())).or_default();
        n.units += 1;
        n.first = Some(n.first.map_or(u.first_seen, |f| f.min(u.first_seen)).max(p.start));
        n.last = Some(n.last.map_or(u.last_seen, |l| l.max(u.last_seen)).min(p.end));
        for (a, b) in u.gaps.iter().filter(|(a, b)| *b >= p.start && *a < p.end) {
            n.gaps.push(json!({"unit": u.unit, "from": rfc3339(*a), "to": rfc3339(*b)}));
        }
    }
    let without: Vec<&String> = nets.iter().filter(|(_, n)| n.units == 0 && n.resources > 0).map(|(k, _)| k).collect();
    let summary = json!({
        "networks": nets.len(),
        "networks_logging": nets.values().filter(|n| n.units > 0).count(),
        "networks_without_flow_logs": without,
        "units_logging": nets.values().map(|n| n.units).sum::<usize>(),
        "gaps": nets.values().map(|n| n.gaps.len()).sum::<usize>(),
    });
    let content: Vec<Value> = nets
        .iter()
        .map(|(k, n)| {
            json!({
                "network": k,
                "resources": n.resources,
                "units_logging": n.units,
                "first_record": n.first.map(rfc3339),
                "last_record": n.last.map(rfc3339),
                "gaps": n.gaps,
            })
        })
        .collect();
    (summary, Value::Array(content))
}

/// When and why a report is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub start: Micros,
    pub end: Micros,
    /// `scheduled` or `on-demand`.
    pub trigger: String,
    pub request_id: Option<String>,
    pub generated_at: Micros,
}

fn flow_json(f: &BoundaryFlow) -> Value {
    json!({
        "source": f.source,
        "destination": f.destination,
        "protocol": f.protocol,
        "port": f.dst_port,
        "action": f.action,
        "flows": f.flow_count,
        "packets": f.packet_count,
        "bytes": f.byte_count,
        "first_seen": rfc3339(f.first_seen.timestamp_micros()),
        "last_seen": rfc3339(f.last_seen.timestamp_micros()),
        "source_in_cde": f.source_in_cde,
        "destination_in_cde": f.destination_in_cde,
    })
}

fn report(t: EvidenceType, p: &Period, summary: Value, content: Value) -> Report {
    Report {
        evidence_type: t,
        period_start: p.start,
        period_end: p.end,
        trigger: p.trigger.clone(),
        request_id: p.request_id.clone(),
        generated_at: p.generated_at,
        summary,
        content,
    }
}

/// `network_segmentation_validation`.
pub fn segmentation(p: &Period, d: &PeriodData) -> Report {
    let crossing: Vec<&BoundaryFlow> = d.flows.iter().filter(|f| f.source_in_cde != f.destination_in_cde).collect();
    let (accepted, rejected): (Vec<&BoundaryFlow>, Vec<&BoundaryFlow>) =
        crossing.iter().partition(|f| f.action == "ACCEPT");
    let sum = |v: &[&BoundaryFlow]| v.iter().map(|f| f.flow_count).sum::<i64>();
    let violations: Vec<Value> = d
        .violations
        .iter()
        .map(|v| {
            json!({
                "alert_id": v.alert_id,
                "resource": v.resource,
                "title": v.title,
                "status": v.status,
                "triggered_at": rfc3339(v.triggered_at.timestamp_micros()),
                "first_seen": rfc3339(v.first_seen.timestamp_micros()),
            })
        })
        .collect();
    let (coverage_summary, coverage_content) = coverage_json(p, d);
    let summary = json!({
        "accepted_crossings": accepted.len(),
        "accepted_flows": sum(&accepted),
        "rejected_crossings": rejected.len(),
        "rejected_flows": sum(&rejected),
        // Blocked attempts (rejected at either end; a connection one end
        // accepted and the other rejected is blocked): proof that the
        // boundary controls work (PCI DSS 11.4.5).
        "blocked_attempts": rejected.len(),
        "blocked_flows": sum(&rejected),
        "boundary_controls_observed_blocking": !rejected.is_empty(),
        "violations": violations.len(),
        "segmentation_effective": violations.is_empty(),
        "flow_log_coverage": coverage_summary,
    });
    let content = json!({
        "accepted": accepted.iter().map(|f| flow_json(f)).collect::<Vec<_>>(),
        "rejected": rejected.iter().map(|f| flow_json(f)).collect::<Vec<_>>(),
        "violations": violations,
        "flow_log_coverage": coverage_content,
    });
    report(EvidenceType::NetworkSegmentation, p, summary, content)
}

/// `data_flow_analysis`.
pub fn data_flows(p: &Period, d: &PeriodData) -> Report {
    let edges: Vec<Value> = d.flows.iter().map(flow_json).collect();
    let summary = json!({
        "edges": edges.len(),
        "flows": d.flows.iter().map(|f| f.flow_count).sum::<i64>(),
        "bytes": d.flows.iter().map(|f| f.byte_count).sum::<i64>(),
    });
    report(EvidenceType::DataFlowAnalysis, p, summary, json!({"edges": edges}))
}

/// `tag_audit_trail`.
pub fn tag_audit(p: &Period, d: &PeriodData) -> Report {
    let changes: Vec<Value> = d
        .tag_changes
        .iter()
        .map(|t| {
            json!({
                "resource": t.resource,
                "key": t.key,
                "value": t.value,
                "previous_value": t.previous_value,
                "version": t.version,
                "source": t.source,
                "applied_by": t.applied_by,
                "applied_at": rfc3339(t.applied_at.timestamp_micros()),
            })
        })
        .collect();
    let resources: std::collections::BTreeSet<&str> = d.tag_changes.iter().map(|t| t.resource.as_str()).collect();
    let summary = json!({"changes": changes.len(), "resources": resources.len()});
    report(EvidenceType::TagAudit, p, summary, json!({"changes": changes}))
}

/// `configuration_snapshot`.
pub fn configuration(p: &Period, d: &PeriodData) -> Report {
    let mut by_scope = std::collections::BTreeMap::<&str, usize>::new();
    let resources: Vec<Value> = d
        .configuration
        .iter()
        .map(|r| {
            *by_scope.entry(r.scope.as_deref().unwrap_or("undecided")).or_default() += 1;
            json!({
                "resource": r.resource,
                "provider": r.provider,
                "resource_type": r.resource_type,
                "name": r.name,
                "region": r.region,
                "vpc_id": r.vpc_id,
                "subnet_id": r.subnet_id,
                "private_ips": r.private_ips,
                "public_ips": r.public_ips,
                "security_groups": r.security_groups,
                "tags": r.tags,
                "scope": r.scope,
                "is_active": r.is_active,
                "last_seen_at": rfc3339(r.last_seen_at.timestamp_micros()),
            })
        })
        .collect();
    let summary = json!({"resources": resources.len(), "by_scope": by_scope});
    report(EvidenceType::ConfigurationSnapshot, p, summary, json!({"resources": resources}))
}

/// One report by type (`pci_scope_identification` has none: it is made per
/// decision).
pub fn by_type(t: EvidenceType, p: &Period, d: &PeriodData) -> Option<Report> {
    match t {
        EvidenceType::NetworkSegmentation => Some(segmentation(p, d)),
        EvidenceType::DataFlowAnalysis => Some(data_flows(p, d)),
        EvidenceType::TagAudit => Some(tag_audit(p, d)),
        EvidenceType::ConfigurationSnapshot => Some(configuration(p, d)),
        EvidenceType::ScopeIdentification => None,
    }
}

/// The end of the period of `length` micros containing `t` (periods are
/// aligned to the Unix epoch, so daily periods are UTC days).
pub fn period_end(t: Micros, length: Micros) -> Micros {
    (t.div_euclid(length) + 1) * length
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(h: u32) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap()
    }

    fn flow(src: &str, dst: &str, action: &str, src_cde: bool, dst_cde: bool) -> BoundaryFlow {
        BoundaryFlow {
            source: src.into(),
            destination: dst.into(),
            protocol: "tcp".into(),
            dst_port: 5432,
            action: action.into(),
            flow_count: 3,
            packet_count: 30,
            byte_count: 3000,
            first_seen: t(1),
            last_seen: t(2),
            source_in_cde: src_cde,
            destination_in_cde: dst_cde,
        }
    }

    #[test]
    fn segmentation_counts_only_boundary_crossings() {
        let p = Period { start: 0, end: 1, trigger: "scheduled".into(), request_id: None, generated_at: 1 };
        let d = PeriodData {
            flows: vec![
                flow("web", "db", "ACCEPT", false, true),
                flow("x", "db", "REJECT", false, true),
                flow("db", "db2", "ACCEPT", true, true),
            ],
            violations: vec![Violation {
                alert_id: "a".into(),
                resource: Some("x".into()),
                title: "t".into(),
                status: "open".into(),
                triggered_at: t(1),
                first_seen: t(1),
            }],
            ..PeriodData::default()
        };
        let r = segmentation(&p, &d);
        assert_eq!(r.summary["accepted_crossings"], 1);
        assert_eq!(r.summary["rejected_flows"], 3);
        assert_eq!((r.summary["blocked_attempts"].as_u64(), r.summary["blocked_flows"].as_u64()), (Some(1), Some(3)));
        assert_eq!(r.summary["boundary_controls_observed_blocking"], true);
        assert_eq!(r.summary["violations"], 1);
        assert_eq!(r.summary["segmentation_effective"], false);
        let all_edges = data_flows(&p, &d);
        assert_eq!(all_edges.summary["edges"], 3, "every edge touching the CDE, inside it too");
        assert_eq!(segmentation(&p, &d), r, "deterministic");
    }

    /// Issue 17: the segmentation evidence says which networks logged in
    /// the period, which held resources but sent nothing, and the gaps.
    #[test]
    fn segmentation_evidence_carries_flow_log_coverage() {
        let hour = 3_600_000_000;
        let p =
            Period { start: 10 * hour, end: 20 * hour, trigger: "scheduled".into(), request_id: None, generated_at: 1 };
        let config = |id: &str, vpc: &str| ResourceConfig {
            resource: id.into(),
            provider: "aws".into(),
            resource_type: "ec2_instance".into(),
            name: None,
            region: None,
            vpc_id: Some(vpc.into()),
            subnet_id: None,
            private_ips: vec![],
            public_ips: vec![],
            security_groups: serde_json::Value::Null,
            tags: Default::default(),
            scope: None,
            is_active: true,
            last_seen_at: t(1),
        };
        let unit = |id: &str, vpc: &str, first: i64, last: i64, gaps: Vec<(i64, i64)>| UnitCoverage {
            unit: id.into(),
            kind: "interface".into(),
            vpc_id: Some(vpc.into()),
            first_seen: first * hour,
            last_seen: last * hour,
            records: 10,
            gaps: gaps.into_iter().map(|(a, b)| (a * hour, b * hour)).collect(),
        };
        let d = PeriodData {
            configuration: vec![config("a", "vpc-a"), config("b", "vpc-b"), config("c", "vpc-c")],
            coverage: vec![
                unit("eni-a", "vpc-a", 0, 30, vec![(12, 14), (25, 27)]),
                unit("eni-c", "vpc-c", 0, 30, vec![(5, 25)]),
                unit("eni-old", "vpc-b", 0, 5, vec![]),
            ],
            ..PeriodData::default()
        };
        let r = segmentation(&p, &d);
        let c = &r.summary["flow_log_coverage"];
        assert_eq!(c["networks_without_flow_logs"], serde_json::json!(["vpc-b", "vpc-c"]), "{c}");
        assert_eq!(
            (c["networks_logging"].as_u64(), c["units_logging"].as_u64(), c["gaps"].as_u64()),
            (Some(1), Some(1), Some(1))
        );
        let a = &r.content["flow_log_coverage"][0];
        assert_eq!(a["network"], "vpc-a");
        assert_eq!(a["first_record"], rfc3339(10 * hour), "clipped to the period");
        assert_eq!(a["gaps"][0]["unit"], "eni-a");
    }

    #[test]
    fn periods_align_to_the_epoch() {
        let day = 86_400_000_000;
        assert_eq!(period_end(0, day), day);
        assert_eq!(period_end(day - 1, day), day);
        assert_eq!(period_end(day, day), 2 * day);
    }
}
