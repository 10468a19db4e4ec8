//! Enums of the seed data model and of our messages.
//!
//! Every enum is declared with [`named_enum!`], which gives it:
//! - `as_str()` / `FromStr` / `Display` with the seed's spelling (used in
//!   PostgreSQL, JSON output and reports);
//! - serde and Avro with SCREAMING_SNAKE_CASE symbols (used on topics);
//! - `ALL`, every variant in declaration order.

use std::fmt;
use std::str::FromStr;

use crate::UnknownValue;

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, apache_avro::AvroSchema,
        )]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[avro(namespace = "io.pciscopeguard.v1", rename_all = "SCREAMING_SNAKE_CASE")]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The spelling used in PostgreSQL, JSON output and reports.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($value => Ok(Self::$variant),)+
                    _ => Err(UnknownValue {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: [$($value),+].join(", "),
                    }),
                }
            }
        }
    };
}

named_enum! {
    /// Supported cloud providers (seed: `CloudProvider`).
    pub enum CloudProvider ("cloud provider") {
        Aws => "aws",
        Azure => "azure",
        Gcp => "gcp",
        OnPremise => "on_premise",
    }
}

named_enum! {
    /// Resource types (seed: `ResourceType`, plus the types attribution and
    /// inventory need that the seed lacks: network interfaces, NAT gateways,
    /// ECS tasks, on-premise hosts, unknown internal hosts and external
    /// endpoints).
    pub enum ResourceType ("resource type") {
        Ec2Instance => "ec2_instance",
        RdsInstance => "rds_instance",
        LambdaFunction => "lambda_function",
        Elb => "elastic_load_balancer",
        S3Bucket => "s3_bucket",
        EcsService => "ecs_service",
        EksCluster => "eks_cluster",
        VirtualMachine => "virtual_machine",
        SqlDatabase => "sql_database",
        AppService => "app_service",
        StorageAccount => "storage_account",
        ComputeInstance => "compute_instance",
        CloudSql => "cloud_sql",
        CloudFunction => "cloud_function",
        GkeCluster => "gke_cluster",
        NetworkInterface => "network_interface",
        NatGateway => "nat_gateway",
        EcsTask => "ecs_task",
        Host => "host",
        UnknownHost => "unknown_host",
        ExternalEndpoint => "external_endpoint",
        /// An AWS security group: firewall rules, not a system.
        SecurityGroup => "security_group",
        /// An AWS managed prefix list: CIDRs that rules refer to.
        PrefixList => "prefix_list",
        /// A GCP VPC firewall rule: one rule of its network, not a system.
        FirewallRule => "firewall_rule",
        /// An AWS network ACL: subnet-level rules under security groups.
        NetworkAcl => "network_acl",
        /// A flow-log configuration (AWS `AWS::EC2::FlowLog`): what is
        /// logged where, compared with what arrives.
        FlowLog => "flow_log",
    }
}

named_enum! {
    /// PCI DSS scope classification (seed: `PCIScope`).
    pub enum PciScope ("pci scope") {
        /// In the cardholder data environment.
        Cde => "cde",
        /// Connected to or supporting the CDE.
        ConnectedCde => "connected-cde",
        /// Provably not in scope.
        OutOfScope => "out-of-scope",
        /// Newly discovered; needs classification.
        PendingReview => "pending-review",
    }
}

named_enum! {
    /// Data handling classification of CDE resources (seed: `DataClassification`).
    pub enum DataClassification ("data classification") {
        StoresCardholder => "stores-cardholder",
        ProcessesCardholder => "processes-cardholder",
        TransmitsCardholder => "transmits-cardholder",
    }
}

named_enum! {
    /// Types of compliance evidence (seed: `EvidenceType`).
    pub enum EvidenceType ("evidence type") {
        ScopeIdentification => "pci_scope_identification",
        NetworkSegmentation => "network_segmentation_validation",
        DataFlowAnalysis => "data_flow_analysis",
        TagAudit => "tag_audit_trail",
        ConfigurationSnapshot => "configuration_snapshot",
    }
}

named_enum! {
    /// The input format a flow record was parsed from.
    pub enum FlowFormat ("flow format") {
        AwsVpc => "aws-vpc",
        AwsTransitGateway => "aws-tgw",
        AzureNsgV1 => "azure-nsg-v1",
        AzureNsgV2 => "azure-nsg-v2",
        AzureVnet => "azure-vnet",
        GcpVpc => "gcp-vpc",
    }
}

named_enum! {
    /// What the network did with a flow.
    pub enum FlowAction ("flow action") {
        Accept => "ACCEPT",
        Reject => "REJECT",
    }
}

named_enum! {
    /// AWS log-status: whether the record carries traffic.
    pub enum LogStatus ("log status") {
        Ok => "OK",
        /// No traffic in the interval: proves the interface was logged.
        NoData => "NODATA",
        /// Records were skipped in the interval.
        SkipData => "SKIPDATA",
    }
}

named_enum! {
    /// Direction of a flow relative to the interface that captured it.
    pub enum FlowDirection ("flow direction") {
        Ingress => "ingress",
        Egress => "egress",
    }
}

named_enum! {
    /// Direction of a resource-to-resource edge (seed: `data_flows.flow_direction`).
    pub enum EdgeDirection ("edge direction") {
        Ingress => "ingress",
        Egress => "egress",
        IntraVpc => "intra-vpc",
    }
}

named_enum! {
    /// What an edge endpoint is.
    pub enum EndpointKind ("endpoint kind") {
        /// A resource from the inventory.
        Resource => "resource",
        /// An internal address that maps to no inventory resource (`ip:<address>`).
        UnknownHost => "unknown_host",
        /// A public address: listed, never classified.
        External => "external",
    }
}

named_enum! {
    /// What a unit of flow-log coverage is (the finest a record names).
    pub enum CoverageUnit ("coverage unit") {
        /// A network interface (AWS `interface-id`, Azure MAC).
        Interface => "interface",
        /// A VM or instance (GCP's reporting VM).
        Instance => "instance",
        Subnet => "subnet",
        /// A VPC, VNet or VPC network.
        Network => "network",
    }
}

named_enum! {
    /// Why a FlowEdge was emitted.
    pub enum EdgeKind ("edge kind") {
        /// The first time this edge key was seen: emitted at once.
        FirstSeen => "first_seen",
        /// The aggregate of a closed event-time window.
        Window => "window",
        /// Every accepted report of this edge key was blocked by the other
        /// end (see the connection semantics in `correlate`): the accepted
        /// service it announced is no connection. Counts are zero.
        Withdrawn => "withdrawn",
    }
}

named_enum! {
    /// Which scope rule (v1, in order) produced a decision.
    pub enum ScopeRule ("scope rule") {
        ManualDecision => "manual-decision",
        DeclaredCde => "declared-cde",
        CdeConnection => "cde-connection",
        DeclaredConnected => "declared-connected-cde",
        DeclaredOutOfScope => "declared-out-of-scope",
        NoScopeTag => "no-scope-tag",
        /// Declared out-of-scope, but no flow logs covered it in the
        /// lookback window: the absence of flows proves nothing.
        NoFlowLogCoverage => "no-flow-log-coverage",
        /// Configuration (security groups) lets it connect to a CDE system,
        /// though no flow was seen.
        Reachable => "reachable",
    }
}

named_enum! {
    /// How a decision was made (seed: `scope_decisions.decision_method`).
    pub enum DecisionMethod ("decision method") {
        Manual => "manual",
        Automated => "automated",
    }
}

named_enum! {
    /// Alert types (seed: `alerts.alert_type`).
    pub enum AlertType ("alert type") {
        SegmentationViolation => "segmentation_violation",
        ScopeDrift => "scope_drift",
        UnknownSystem => "unknown_system",
        CdeInternet => "cde_internet",
        UntaggedResource => "untagged_resource",
        /// A VPC or subnet holding systems sent no flow logs in the period.
        CoverageGap => "coverage_gap",
        /// Configuration lets a declared out-of-scope system reach the CDE,
        /// though no flow was seen yet.
        LatentViolation => "latent_violation",
        /// Flows were accepted that the CDE system's security groups should
        /// deny (stale inventory or wrong attribution).
        ObservedNotAllowed => "observed_not_allowed",
        /// With a segmentation policy: configuration lets a system reach a
        /// CDE system on a service the policy forbids.
        PolicyNotEnforced => "policy_not_enforced",
    }
}

named_enum! {
    /// Alert severities (seed: `alerts.severity`).
    pub enum Severity ("severity") {
        Critical => "critical",
        High => "high",
        Medium => "medium",
        Low => "low",
    }
}

named_enum! {
    /// Alert lifecycle (seed: `alerts.status`).
    pub enum AlertStatus ("alert status") {
        Open => "open",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
        FalsePositive => "false_positive",
    }
}

impl AlertType {
    /// The severity the design gives this alert type.
    pub const fn severity(self) -> Severity {
        match self {
            Self::SegmentationViolation => Severity::Critical,
            Self::ScopeDrift | Self::UnknownSystem | Self::CdeInternet | Self::CoverageGap | Self::LatentViolation => {
                Severity::High
            }
            Self::ObservedNotAllowed => Severity::Medium,
            Self::PolicyNotEnforced => Severity::High,
            Self::UntaggedResource => Severity::Low,
        }
    }
}

impl ResourceType {
    /// Whether resources of this type are network policy (firewall rules,
    /// address lists) or its configuration (flow logs) rather than systems:
    /// never classified or counted.
    pub const fn is_policy(self) -> bool {
        matches!(self, Self::SecurityGroup | Self::PrefixList | Self::FirewallRule | Self::NetworkAcl | Self::FlowLog)
    }
}

impl PciScope {
    /// Whether a resource with this scope is in PCI DSS scope.
    pub const fn in_scope(self) -> bool {
        matches!(self, Self::Cde | Self::ConnectedCde)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spellings_round_trip() {
        for scope in PciScope::ALL {
            assert_eq!(scope.as_str().parse::<PciScope>(), Ok(*scope));
        }
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>(), Ok(*t));
        }
        assert_eq!(PciScope::ConnectedCde.as_str(), "connected-cde");
        assert_eq!(EvidenceType::NetworkSegmentation.as_str(), "network_segmentation_validation");
    }

    #[test]
    fn unknown_spelling_names_the_choices() {
        let err = "cde-ish".parse::<PciScope>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown pci scope 'cde-ish'"), "{msg}");
        assert!(msg.contains("connected-cde"), "{msg}");
    }

    #[test]
    fn avro_symbols_are_screaming_snake() {
        let json = serde_json::to_string(&PciScope::ConnectedCde).unwrap();
        assert_eq!(json, "\"CONNECTED_CDE\"");
    }
}
