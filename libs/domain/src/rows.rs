//! One struct per table of the seed model, with the seed's columns (and the
//! few we add, marked "ours"). The SQL is in `psg-store`'s migrations.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::enums::*;

/// `resources`: a cloud resource discovered across environments.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    pub id: Uuid,
    pub provider: CloudProvider,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub resource_arn: Option<String>,
    pub resource_name: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub availability_zone: Option<String>,
    pub region: Option<String>,
    pub metadata: Json,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub security_groups: Json,
    pub discovered_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub is_active: bool,
    /// Ours: every private address (the seed keeps only one).
    pub private_ips: Vec<String>,
    /// Ours: every public address.
    pub public_ips: Vec<String>,
    /// Ours: every network interface id.
    pub interface_ids: Vec<String>,
}

/// `tags`: one row per version of a tag of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRow {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub key: String,
    pub value: String,
    /// `manual`, `automated`, `imported`.
    pub source: String,
    pub applied_at: DateTime<Utc>,
    pub applied_by: String,
    pub version: i32,
    pub previous_value: Option<String>,
}

/// `data_flows`: a resource-to-resource edge in one event-time window.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFlowRow {
    pub id: Uuid,
    pub source_resource_id: Uuid,
    pub dest_resource_id: Uuid,
    /// `TCP`, `UDP`, `ICMP`, or the IANA number.
    pub protocol: String,
    pub src_port: Option<i32>,
    pub dst_port: i32,
    pub packet_count: i64,
    pub byte_count: i64,
    pub flow_direction: EdgeDirection,
    pub action: FlowAction,
    /// The window start: the partitioning column.
    pub observed_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Ours: flow records condensed into this row.
    pub flow_count: i64,
    /// Ours: first and last event time in the window.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Ours: records seen encrypted, and unencrypted (the rest: unknown).
    pub encrypted_flow_count: i64,
    pub unencrypted_flow_count: i64,
    /// Ours: whether any record logged its action (`false`: every one came
    /// from a format without `action` and was counted as accepted).
    pub action_logged: bool,
}

/// `scope_decisions`: versioned scope classification with its justification.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeDecisionRow {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub scope: PciScope,
    pub data_classification: Option<DataClassification>,
    pub segment: Option<String>,
    pub justification: String,
    pub confidence_score: Option<Json>,
    pub decided_at: DateTime<Utc>,
    pub decided_by: String,
    pub decision_method: DecisionMethod,
    pub is_current: bool,
    pub superseded_by_id: Option<Uuid>,
    pub dependency_resource_ids: Json,
}

/// A JSON value kept as the text it is written as (`evidence.data`): a
/// row made per record is serialised once, straight from its fields, with
/// no `serde_json::Value` tree to build, walk and drop. Equal when the
/// values are (`jsonb` gives the text back with its keys in its own order).
#[derive(Debug, Clone)]
pub struct JsonText(Box<serde_json::value::RawValue>);

impl JsonText {
    /// `value` serialised (a struct's fields in their declared order).
    pub fn of(value: &impl serde::Serialize) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// As `jsonb` takes and gives it.
    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// The value, parsed.
    pub fn value(&self) -> Json {
        serde_json::from_str(self.get()).expect("JsonText holds valid JSON")
    }
}

impl From<Box<serde_json::value::RawValue>> for JsonText {
    fn from(raw: Box<serde_json::value::RawValue>) -> Self {
        Self(raw)
    }
}

impl From<Json> for JsonText {
    fn from(value: Json) -> Self {
        Self(serde_json::value::to_raw_value(&value).expect("a serde_json::Value always serialises"))
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.value() == other.value()
    }
}

/// `evidence`: the index row of a signed evidence document.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRow {
    pub id: Uuid,
    /// Nullable in ours: periodic attestations belong to no single decision.
    pub scope_decision_id: Option<Uuid>,
    pub evidence_type: EvidenceType,
    pub data: JsonText,
    pub hash: String,
    pub signature: String,
    pub signing_key_id: String,
    pub storage_url: Option<String>,
    pub pci_requirement: Option<String>,
    pub generated_at: DateTime<Utc>,
    pub generated_by: String,
    pub expires_at: DateTime<Utc>,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub verification_count: i32,
    /// Ours: the chain, the position in it and the previous record's hash.
    pub chain: String,
    pub sequence: i64,
    pub prev_hash: Option<String>,
}

/// Ours: a leaf of the evidence log, as the view `evidence_log` shows it
/// (stored a batch of leaves per row of `evidence_log_batches`). Kept when
/// the record itself expires: the tree needs every leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceLogRow {
    pub log_index: i64,
    pub evidence_id: Uuid,
    /// The record's SHA-256 (hex), the leaf.
    pub record_hash: String,
    /// The checkpoint that first covers it (its tree size).
    pub checkpoint_size: i64,
    /// Base64 hashes of its inclusion proof in that checkpoint's tree.
    pub inclusion: Vec<String>,
}

/// Ours: `evidence_checkpoints`, every signed checkpoint of the evidence log.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceCheckpointRow {
    pub origin: String,
    pub tree_size: i64,
    /// Base64 root hash.
    pub root: String,
    pub key_id: String,
    /// The C2SP signed note.
    pub checkpoint: String,
    pub previous_size: Option<i64>,
    /// Base64 consistency proof from the previous checkpoint.
    pub consistency: Vec<String>,
    pub signed_at: DateTime<Utc>,
}

/// `grc_syncs`: synchronisation runs with GRC platforms.
#[derive(Debug, Clone, PartialEq)]
pub struct GrcSyncRow {
    pub id: Uuid,
    pub provider: String,
    pub sync_type: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub resources_synced: i32,
    pub errors_count: i32,
    pub error_details: Json,
    pub sync_metadata: Json,
}

/// `alerts`: compliance alerts and their lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: Uuid,
    pub severity: Severity,
    pub alert_type: AlertType,
    pub title: String,
    pub description: String,
    pub resource_id: Option<Uuid>,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub status: AlertStatus,
    pub context: Json,
}

/// `audit_logs`: every operator action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLogRow {
    pub id: Uuid,
    pub user_id: String,
    pub user_email: String,
    pub user_ip: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request_data: Option<Json>,
    pub response_data: Option<Json>,
    pub success: bool,
    pub error_message: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub duration_ms: Option<i32>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
}

impl ResourceRow {
    /// The row describing an inventory [`Resource`](crate::Resource) message.
    pub fn from_message(r: &crate::Resource) -> Self {
        let at = crate::time::from_micros(r.observed_at);
        let metadata = r
            .metadata_json
            .as_deref()
            .and_then(|m| serde_json::from_str::<Json>(m).ok())
            .unwrap_or_else(|| Json::Object(Default::default()));
        Self {
            id: crate::ids::resource_uuid(&r.resource_id),
            provider: r.provider,
            resource_type: r.resource_type,
            resource_id: r.resource_id.clone(),
            resource_arn: r.resource_arn.clone(),
            resource_name: r.resource_name.clone(),
            vpc_id: r.vpc_id.clone(),
            subnet_id: r.subnet_id.clone(),
            availability_zone: r.availability_zone.clone(),
            region: r.region.clone(),
            metadata,
            private_ip: r.private_ips.first().cloned(),
            public_ip: r.public_ips.first().cloned(),
            security_groups: Json::Array(r.security_groups.iter().cloned().map(Json::String).collect()),
            discovered_at: at,
            last_seen_at: at,
            is_active: !r.deleted,
            private_ips: r.private_ips.clone(),
            public_ips: r.public_ips.clone(),
            interface_ids: r.interface_ids.clone(),
        }
    }
}

impl ResourceRow {
    /// The row of an address that maps to no inventory resource: an unknown
    /// internal host (`internal`) or an external endpoint, id `ip:<address>`.
    pub fn for_address(address: &str, internal: bool, provider: CloudProvider, seen_at: DateTime<Utc>) -> Self {
        let (resource_type, private, public) = if internal {
            (ResourceType::UnknownHost, vec![address.to_owned()], vec![])
        } else {
            (ResourceType::ExternalEndpoint, vec![], vec![address.to_owned()])
        };
        let resource_id = crate::ids::address_resource_id(address);
        Self {
            id: crate::ids::resource_uuid(&resource_id),
            provider,
            resource_type,
            resource_id,
            resource_arn: None,
            resource_name: Some(address.to_owned()),
            vpc_id: None,
            subnet_id: None,
            availability_zone: None,
            region: None,
            metadata: serde_json::json!({"discovered_by": "flow-logs", "address": address}),
            private_ip: private.first().cloned(),
            public_ip: public.first().cloned(),
            security_groups: Json::Array(vec![]),
            discovered_at: seen_at,
            last_seen_at: seen_at,
            is_active: true,
            private_ips: private,
            public_ips: public,
            interface_ids: vec![],
        }
    }
}

/// Read models for periodic evidence reports (not tables).
pub mod report {
    use chrono::{DateTime, Utc};

    /// Flows between two resources in a period, one row per (source,
    /// destination, protocol, port, action), with whether each side is in
    /// the CDE (by its current scope decision).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BoundaryFlow {
        pub source: String,
        pub destination: String,
        pub protocol: String,
        pub dst_port: i32,
        pub action: String,
        pub flow_count: i64,
        pub packet_count: i64,
        pub byte_count: i64,
        pub first_seen: DateTime<Utc>,
        pub last_seen: DateTime<Utc>,
        pub source_in_cde: bool,
        pub destination_in_cde: bool,
    }

    /// A segmentation violation raised in a period.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Violation {
        pub alert_id: String,
        pub resource: Option<String>,
        pub title: String,
        pub status: String,
        pub triggered_at: DateTime<Utc>,
        /// The first violating flow (event time).
        pub first_seen: DateTime<Utc>,
    }

    /// One tag version applied in a period.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TagChange {
        pub resource: String,
        pub key: String,
        pub value: String,
        pub previous_value: Option<String>,
        pub version: i32,
        pub source: String,
        pub applied_by: String,
        pub applied_at: DateTime<Utc>,
    }

    /// A resource's configuration as stored, with its current tags and scope.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ResourceConfig {
        pub resource: String,
        pub provider: String,
        pub resource_type: String,
        pub name: Option<String>,
        pub region: Option<String>,
        pub vpc_id: Option<String>,
        pub subnet_id: Option<String>,
        pub private_ips: Vec<String>,
        pub public_ips: Vec<String>,
        pub security_groups: serde_json::Value,
        pub tags: std::collections::BTreeMap<String, String>,
        pub scope: Option<String>,
        pub is_active: bool,
        pub last_seen_at: DateTime<Utc>,
    }

    /// A resource with the scope decision in force (now, or at a time),
    /// with the tags applied by then. Names, types and networks are the
    /// inventory's current ones.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ScopeRow {
        pub resource: String,
        pub provider: String,
        pub resource_type: String,
        /// The resource's name, or its id when it has none.
        pub name: String,
        pub scope: String,
        pub data_classification: Option<String>,
        pub justification: String,
        pub dependencies: Vec<String>,
        /// VPC, VNet or VPC network id; empty when unknown.
        pub network: String,
        /// The rule that decided (`decision_method`).
        pub rule: String,
        pub tags: std::collections::BTreeMap<String, String>,
    }

    /// An alert with its lifecycle (as it stood at a time, when asked so).
    #[derive(Debug, Clone, PartialEq)]
    pub struct AlertRow {
        pub alert_id: String,
        pub alert_type: String,
        pub severity: String,
        /// The resource it is about (external id); empty when none.
        pub resource: String,
        pub title: String,
        pub description: String,
        pub status: String,
        pub context: serde_json::Value,
        pub triggered_at: DateTime<Utc>,
        /// When and by whom.
        pub acknowledged: Option<(DateTime<Utc>, String)>,
        pub resolved: Option<(DateTime<Utc>, String)>,
    }

    impl AlertRow {
        /// The other end, when the alert is about a flow (`context.peer`).
        pub fn peer(&self) -> Option<&str> {
            self.context.get("peer").and_then(serde_json::Value::as_str)
        }

        /// The PCI DSS requirement (`context.pci_requirement`); empty when none.
        pub fn pci_requirement(&self) -> &str {
            self.context.get("pci_requirement").and_then(serde_json::Value::as_str).unwrap_or_default()
        }
    }

    /// Flows between two endpoints in the lookback period, aggregated per
    /// (source, destination, protocol, port, action). External endpoints
    /// are named `ext:<address>`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct EdgeRow {
        pub source: String,
        pub destination: String,
        pub protocol: String,
        pub dst_port: i32,
        pub action: String,
        pub flow_count: i64,
        pub encrypted_flow_count: i64,
        pub unencrypted_flow_count: i64,
        pub first_seen: DateTime<Utc>,
        pub last_seen: DateTime<Utc>,
    }
}

#[cfg(test)]
mod json_text_tests {
    use super::*;

    #[test]
    fn json_text_keeps_its_text_and_is_equal_when_the_values_are() {
        #[derive(serde::Serialize)]
        struct Fields<'a> {
            b: u32,
            a: &'a str,
        }
        let ours = JsonText::of(&Fields { b: 1, a: "x" }).expect("serialises");
        assert_eq!(ours.get(), r#"{"b":1,"a":"x"}"#, "fields in declared order, no tree in between");
        // As `jsonb` gives it back: its own key order and spacing.
        let stored: Box<serde_json::value::RawValue> =
            serde_json::from_str(r#"{"a": "x", "b": 1}"#).expect("valid JSON");
        assert_eq!(ours, JsonText::from(stored));
        assert_ne!(ours, JsonText::from(serde_json::json!({"a": "x", "b": 2})));
        assert_eq!(ours.value(), serde_json::json!({"a": "x", "b": 1}));
    }
}
