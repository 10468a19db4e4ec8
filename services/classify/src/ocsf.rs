//! Alerts as OCSF Detection Findings (class 2004, OCSF 1.1), for SIEMs that
//! read OCSF rather than our Avro.

use psg_domain::time::SECOND;
use psg_domain::{Alert, Severity};
use serde_json::{Value, json};

use crate::engine::AlertEvent;

/// OCSF `severity_id`.
fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// The Detection Finding of an alert's event: Create (status New) when
/// raised, Update when reworded, Close (status Resolved) when its condition
/// ended.
pub fn detection_finding(a: &Alert, event: AlertEvent) -> Value {
    let time_ms = a.triggered_at / (SECOND / 1000);
    let (activity_id, activity, status_id, status) = match event {
        AlertEvent::Raised => (1, "Create", 1, "New"),
        AlertEvent::Updated => (2, "Update", 1, "New"),
        AlertEvent::Resolved => (3, "Close", 4, "Resolved"),
    };
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 200400 + activity_id,
        "type_name": format!("Detection Finding: {activity}"),
        "severity_id": severity_id(a.severity),
        "severity": a.severity.as_str(),
        "status_id": status_id,
        "status": status,
        "time": time_ms,
        "message": a.title,
        "finding_info": {
            "uid": a.alert_id,
            "title": a.title,
            "desc": a.description,
            "types": [a.alert_type.as_str()],
            "created_time": time_ms,
        },
        "resources": a.resource_id.as_ref().map(|r| vec![json!({"uid": r})]).unwrap_or_default(),
        "metadata": {
            "version": "1.1.0",
            "product": {"name": "PCI Scope Guard", "vendor_name": "PCI Scope Guard"},
        },
        "unmapped": {
            "pci_requirement": a.pci_requirement,
            "context": a.context,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use psg_domain::{AlertStatus, AlertType};

    use super::*;

    #[test]
    fn a_finding_carries_the_alert() {
        let a = Alert {
            alert_id: "0b6c1c55-6d1b-5c8a-8d5e-000000000001".into(),
            alert_type: AlertType::CdeInternet,
            severity: Severity::High,
            title: "CDE system db talks to public address 203.0.113.7".into(),
            description: "d".into(),
            resource_id: Some("db".into()),
            triggered_at: 1_700_000_000_123_456,
            pci_requirement: Some("1.3.2".into()),
            status: AlertStatus::Open,
            context: HashMap::from([("address".into(), "203.0.113.7".into())]),
        };
        let f = detection_finding(&a, AlertEvent::Raised);
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["severity_id"], 4);
        assert_eq!(f["time"], 1_700_000_000_123_i64);
        assert_eq!(f["finding_info"]["uid"], a.alert_id.as_str());
        assert_eq!(f["finding_info"]["types"][0], "cde_internet");
        assert_eq!(f["resources"][0]["uid"], "db");
        assert_eq!(f["unmapped"]["pci_requirement"], "1.3.2");
        let closed = detection_finding(&Alert { status: AlertStatus::Resolved, ..a }, AlertEvent::Resolved);
        assert_eq!((closed["activity_id"].as_i64(), closed["type_uid"].as_i64()), (Some(3), Some(200403)));
        assert_eq!((closed["status_id"].as_i64(), closed["status"].as_str()), (Some(4), Some("Resolved")));
    }
}
