//! Rows for store tests.

use chrono::Utc;
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::ScopeDecisionRow;
use psg_domain::{DecisionMethod, PciScope};

/// A current automated decision named `name` (its id and justification)
/// about the resource `resource` (its provider id, `i-1`).
pub fn decision(name: &str, resource: &str, scope: PciScope) -> ScopeDecisionRow {
    ScopeDecisionRow {
        id: stable_id("decision", &[name]),
        resource_id: resource_uuid(resource),
        scope,
        data_classification: None,
        segment: None,
        justification: name.into(),
        confidence_score: None,
        decided_at: Utc::now(),
        decided_by: "automated-classifier".into(),
        decision_method: DecisionMethod::Automated,
        is_current: true,
        superseded_by_id: None,
        dependency_resource_ids: serde_json::json!([]),
    }
}
