//! The periodic reports' content. Pure: rows in, JSON out, deterministic
//! (rows arrive sorted; maps are ordered).
//!
//! - `network_segmentation_validation` (1.3.1, 1.3.2, 11.4.5): flows across
//!   the CDE boundary (one side in the CDE, the other not), accepted and
//!   rejected, and the segmentation violations raised in the period;
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
    });
    let content = json!({
        "accepted": accepted.iter().map(|f| flow_json(f)).collect::<Vec<_>>(),
        "rejected": rejected.iter().map(|f| flow_json(f)).collect::<Vec<_>>(),
        "violations": violations,
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

    #[test]
    fn periods_align_to_the_epoch() {
        let day = 86_400_000_000;
        assert_eq!(period_end(0, day), day);
        assert_eq!(period_end(day - 1, day), day);
        assert_eq!(period_end(day, day), 2 * day);
    }
}
