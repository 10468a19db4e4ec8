//! The messages on every topic.
//!
//! | topic              | message          | key                  |
//! |--------------------|------------------|----------------------|
//! | `flows.normalized` | [`FlowBatch`] of [`FlowRecord`]s | partition chosen by the address pair |
//! | `resources`        | [`Resource`]     | `resource_id` (compacted) |
//! | `flows.edges`      | [`FlowEdge`]     | source resource id   |
//! | `scope.decisions`  | [`ScopeDecision`]| `resource_id`        |
//! | `scope.alerts`     | [`Alert`]        | `alert_id`           |
//! | `scope.manual`     | [`ManualDecision`] | `resource_id` (compacted) |
//! | `evidence.records` | [`Evidence`]     | chain name           |
//! | `evidence.checkpoints` | [`EvidenceCheckpoint`] | log origin (compacted) |
//!
//! Times are microseconds since the Unix epoch (Avro `timestamp-micros`).
//! Ids are UUIDv5 strings (see [`crate::ids`]).

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::enums::*;
use crate::text::Text;
use crate::time::Micros;

/// Where a record came from: enough to find the exact bytes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct SourceRef {
    /// Topic the raw message was read from.
    pub topic: Text,
    pub partition: i32,
    pub offset: i64,
    /// 1-based line (or tuple) number inside the message; 0 for the whole message.
    pub line: i32,
}

/// One normalized flow-log record (topic `flows.normalized`). Its identity
/// is its [`SourceRef`]: the same bytes always give the same record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct FlowRecord {
    pub provider: CloudProvider,
    pub format: FlowFormat,
    /// Format version as the record states it (AWS `version`, Azure `Version`).
    pub format_version: Option<i32>,
    /// Cloud account / subscription / project, kept as a string (leading zeros).
    pub account_id: Option<Text>,
    /// The interface that captured the flow (AWS `interface-id`, Azure MAC).
    pub interface_id: Option<Text>,
    pub vpc_id: Option<Text>,
    pub subnet_id: Option<Text>,
    pub instance_id: Option<Text>,
    pub region: Option<Text>,
    /// Addresses as the capturing interface saw them.
    pub src_addr: Option<Text>,
    pub dst_addr: Option<Text>,
    /// Original packet addresses (AWS `pkt-srcaddr`/`pkt-dstaddr`), preferred for attribution.
    pub pkt_src_addr: Option<Text>,
    pub pkt_dst_addr: Option<Text>,
    pub src_port: Option<i32>,
    pub dst_port: Option<i32>,
    /// IANA protocol number.
    pub protocol: Option<i32>,
    pub packets: Option<i64>,
    pub bytes: Option<i64>,
    /// Counters of the reverse direction where the format has them (Azure v2, VNet).
    pub reverse_packets: Option<i64>,
    pub reverse_bytes: Option<i64>,
    /// Start of the capture interval.
    pub start_time: Micros,
    /// End of the capture interval; event time for windows.
    pub end_time: Micros,
    /// `None` for NODATA/SKIPDATA records.
    pub action: Option<FlowAction>,
    pub log_status: LogStatus,
    pub flow_direction: Option<FlowDirection>,
    pub tcp_flags: Option<i32>,
    pub traffic_path: Option<i32>,
    /// GCP `reporter` (`SRC`, `DEST`, ...).
    pub reporter: Option<Text>,
    /// Fields of the input that have no column above, by their input name.
    pub extra: HashMap<String, String>,
    pub source: SourceRef,
}

impl FlowRecord {
    /// A record with every optional field empty, log-status OK and no action.
    pub fn new(
        provider: CloudProvider,
        format: FlowFormat,
        source: SourceRef,
        start_time: Micros,
        end_time: Micros,
    ) -> Self {
        Self {
            provider,
            format,
            format_version: None,
            account_id: None,
            interface_id: None,
            vpc_id: None,
            subnet_id: None,
            instance_id: None,
            region: None,
            src_addr: None,
            dst_addr: None,
            pkt_src_addr: None,
            pkt_dst_addr: None,
            src_port: None,
            dst_port: None,
            protocol: None,
            packets: None,
            bytes: None,
            reverse_packets: None,
            reverse_bytes: None,
            start_time,
            end_time,
            action: None,
            log_status: LogStatus::Ok,
            flow_direction: None,
            tcp_flags: None,
            traffic_path: None,
            reporter: None,
            extra: HashMap::new(),
            source,
        }
    }
}

/// FlowRecords of one input message that belong to one partition of
/// `flows.normalized`, in input order (a large message becomes several
/// batches of at most 512 KiB each): one Kafka message carries many records,
/// so Kafka's per-message cost is not paid per record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct FlowBatch {
    /// The records, in input order.
    pub records: Vec<FlowRecord>,
}

/// A resource from the inventory (topic `resources`, compacted by `resource_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct Resource {
    /// `resources.id`: UUIDv5 of `resource_id`.
    pub id: String,
    /// Natural id: instance id, ARN, self link, `ip:<address>`, ...
    pub resource_id: String,
    pub provider: CloudProvider,
    pub resource_type: ResourceType,
    pub resource_arn: Option<String>,
    pub resource_name: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub private_ips: Vec<String>,
    pub public_ips: Vec<String>,
    pub interface_ids: Vec<String>,
    pub security_groups: Vec<String>,
    pub tags: HashMap<String, String>,
    /// From this time on, this record describes the resource.
    pub observed_at: Micros,
    /// `true` ends the resource at `observed_at`.
    pub deleted: bool,
    /// The provider's full description, as JSON text.
    pub metadata_json: Option<String>,
    pub source: SourceRef,
}

impl Resource {
    /// A resource with every optional field empty; `id` is derived from `resource_id`.
    pub fn new(
        resource_id: impl Into<String>,
        provider: CloudProvider,
        resource_type: ResourceType,
        observed_at: Micros,
        source: SourceRef,
    ) -> Self {
        let resource_id = resource_id.into();
        Self {
            id: crate::ids::resource_uuid(&resource_id).to_string(),
            resource_id,
            provider,
            resource_type,
            resource_arn: None,
            resource_name: None,
            account_id: None,
            region: None,
            availability_zone: None,
            vpc_id: None,
            subnet_id: None,
            private_ips: Vec::new(),
            public_ips: Vec::new(),
            interface_ids: Vec::new(),
            security_groups: Vec::new(),
            tags: HashMap::new(),
            observed_at,
            deleted: false,
            metadata_json: None,
            source,
        }
    }
}

/// One end of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct Endpoint {
    /// Natural resource id; `ip:<address>` for unknown hosts and external endpoints.
    pub resource_id: String,
    pub kind: EndpointKind,
    /// The address seen in the flow.
    pub address: Option<String>,
    pub vpc_id: Option<String>,
}

/// Keys of [`FlowRecord::extra`] that ingest sets and later stages read.
pub mod extra {
    /// Value `false`: the record's format logs no action, so it was counted
    /// as accepted (scope errs towards inclusion).
    pub const ACTION_LOGGED: &str = "action_logged";
    /// How the action was derived where the format has none
    /// (`tgw-packets-lost`: a Transit Gateway record, rejected only if
    /// every packet was lost).
    pub const ACTION_SOURCE: &str = "action_source";
    /// Where a record without `start`/`end` took its time from.
    pub const TIME_SOURCE: &str = "time_source";
}

/// A resource-to-resource edge (topic `flows.edges`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct FlowEdge {
    /// UUIDv5 of the edge key and window: equal to the `data_flows.id` of its row.
    pub edge_id: String,
    pub kind: EdgeKind,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// IANA protocol number.
    pub protocol: i32,
    /// Destination port; 0 where the protocol has none.
    pub dst_port: i32,
    pub action: FlowAction,
    pub direction: EdgeDirection,
    pub window_start: Micros,
    pub window_end: Micros,
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub packets: i64,
    pub bytes: i64,
    /// Flow records condensed into this edge.
    pub flows: i64,
    /// Records of it whose traffic was seen encrypted (AWS
    /// `encryption-status` 1–3, Azure `X`).
    #[serde(default)]
    pub encrypted_flows: i64,
    /// Records of it seen unencrypted (AWS `encryption-status` 0, Azure
    /// `NX…`); the others are unknown.
    #[serde(default)]
    pub unencrypted_flows: i64,
    /// Whether any record of it logged its action; `false` when each came
    /// from a format without `action` and was counted as accepted.
    #[serde(default = "logged")]
    pub action_logged: bool,
}

fn logged() -> bool {
    true
}

/// A stretch of event time with no flow record from a coverage unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct CoverageGap {
    /// The last record before the gap, and the first after it.
    pub from: Micros,
    pub to: Micros,
}

/// Flow-log coverage of one unit as one input partition of correlate saw
/// it (topic `flows.coverage`, compacted by `unit|partition`): the records
/// it sent, whatever their status (a `NODATA` record proves logging works).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct FlowCoverage {
    /// The unit's id: interface, instance, subnet or network id.
    pub unit: String,
    pub unit_kind: CoverageUnit,
    pub provider: CloudProvider,
    pub account_id: Option<String>,
    /// The VPC / VNet / network and subnet the records or the inventory
    /// place the unit in.
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// The input partition (of `flows.normalized`) these counts are of.
    pub partition: i32,
    /// Event time of the first and the last record.
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub records: i64,
    /// Records by what they say: traffic accepted, rejected, no traffic
    /// (`NODATA`), records lost (`SKIPDATA`).
    pub accepted: i64,
    pub rejected: i64,
    pub no_data: i64,
    pub skipped: i64,
    /// The latest gaps longer than `correlate.coverage-gap-secs` (at most 16).
    pub gaps: Vec<CoverageGap>,
}

impl FlowCoverage {
    /// The message key: one unit per input partition.
    pub fn key(&self) -> String {
        format!("{}|{}", self.unit, self.partition)
    }
}

/// A scope decision (topic `scope.decisions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct ScopeDecision {
    pub decision_id: String,
    /// Natural id of the resource decided on.
    pub resource_id: String,
    /// `resources.id` of that resource.
    pub resource_uuid: String,
    pub scope: PciScope,
    pub previous_scope: Option<PciScope>,
    pub data_classification: Option<DataClassification>,
    pub segment: Option<String>,
    pub rule: ScopeRule,
    pub justification: String,
    pub decided_at: Micros,
    pub decided_by: String,
    pub decision_method: DecisionMethod,
    /// The decision this one supersedes.
    pub supersedes_id: Option<String>,
    /// Resources that influenced this decision (CDE peers for rule 3).
    pub dependency_resource_ids: Vec<String>,
    /// Event-time watermark the decision was computed at.
    pub as_of: Micros,
}

/// An operator's scope decision (topic `scope.manual`, compacted by
/// `resource_id`): it overrides every automated rule until withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct ManualDecision {
    pub resource_id: String,
    /// The decided scope; `None` withdraws the manual decision.
    pub scope: Option<PciScope>,
    pub justification: String,
    pub decided_by: String,
    pub decided_at: Micros,
}

/// A request for evidence reports over a period (topic `evidence.requests`),
/// written by `pci-scope-guard evidence attest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct EvidenceRequest {
    /// Unique per request (part of the records' ids).
    pub request_id: String,
    /// The report types wanted; empty for all four periodic ones.
    pub evidence_types: Vec<EvidenceType>,
    /// Start of the period, inclusive (microseconds since the epoch).
    pub period_start: Micros,
    /// End of the period, exclusive.
    pub period_end: Micros,
    pub requested_by: String,
    pub requested_at: Micros,
}

/// A compliance alert (topic `scope.alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct Alert {
    /// UUIDv5 of type + resource + cause: the same cause never alerts twice.
    pub alert_id: String,
    pub alert_type: AlertType,
    pub severity: Severity,
    pub title: String,
    pub description: String,
    pub resource_id: Option<String>,
    pub triggered_at: Micros,
    pub pci_requirement: Option<String>,
    pub status: AlertStatus,
    pub context: HashMap<String, String>,
}

/// A signed, chained evidence record (topic `evidence.records`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct Evidence {
    pub evidence_id: String,
    pub evidence_type: EvidenceType,
    /// The chain (evidence stream) this record belongs to.
    pub chain: String,
    /// Position in the chain, from 1.
    pub sequence: i64,
    pub scope_decision_id: Option<String>,
    pub resource_id: Option<String>,
    /// Lowercase hex SHA-256 of `document`.
    pub hash: String,
    /// Hash of the previous record of the chain; `None` for the first.
    pub prev_hash: Option<String>,
    /// Base64 Ed25519 signature: of the checkpoint of `checkpoint_size`
    /// records (document schema v2, sealed by the evidence log), or of the
    /// hash bytes (v1, records from before the log).
    pub signature: String,
    /// Fingerprint of the public key that verifies `signature`.
    pub signing_key_id: String,
    pub storage_url: Option<String>,
    pub pci_requirement: Option<String>,
    pub generated_at: Micros,
    pub generated_by: String,
    pub expires_at: Micros,
    /// The signed document: RFC 8785 canonical JSON.
    pub document: String,
    /// Position in the evidence log (one Merkle tree over every record,
    /// from 0); `None` from producers before the log.
    #[serde(default)]
    pub log_index: Option<i64>,
    /// The first checkpoint covering the record (v2), whose signature
    /// `signature` is; `None` for v1 records.
    #[serde(default)]
    pub checkpoint_size: Option<i64>,
    /// The record's inclusion proof against that checkpoint (base64
    /// hashes); empty for v1 records.
    #[serde(default)]
    pub inclusion: Vec<String>,
}

/// A signed checkpoint of the evidence log (topic `evidence.checkpoints`,
/// compacted by origin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "io.pciscopeguard.v1")]
pub struct EvidenceCheckpoint {
    /// The log's identity: the checkpoint's first line and key name.
    pub origin: String,
    /// Records in the tree the checkpoint signs.
    pub tree_size: i64,
    /// Base64 RFC 6962 root hash of that tree.
    pub root: String,
    /// Fingerprint of the evidence key that signed it.
    pub key_id: String,
    /// The C2SP signed note (tlog-checkpoint body and signature line).
    pub checkpoint: String,
    /// Size of the log's previous checkpoint; `None` for the first.
    pub previous_size: Option<i64>,
    /// Base64 consistency proof from the previous checkpoint's tree.
    pub consistency: Vec<String>,
    pub signed_at: Micros,
}
