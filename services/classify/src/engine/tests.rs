use std::collections::HashMap;

use psg_domain::time::SECOND;
use psg_domain::{CloudProvider, Endpoint, FlowCoverage, SourceRef};

use super::*;

const DAY: Micros = 86_400 * SECOND;

fn engine() -> Engine {
    Engine::new(engine_settings())
}

/// An engine with a policy: segments `cde` and `web`, web may reach the
/// CDE on TCP/5432 only.
fn engine_with_web_policy() -> Engine {
    let policy = crate::policy::Policy::parse(
        "segments:\n  cde:\n    - tag: {pci-scope: cde}\n  web:\n    - tag: {tier: web}\nallow:\n  - {from: web, to: cde, protocol: tcp, ports: [5432]}\n",
    )
    .unwrap();
    Engine::new(Settings { policy: Some(std::sync::Arc::new(policy)), ..engine_settings() })
}

fn engine_settings() -> Settings {
    Settings {
        scope_tag_key: "pci-scope".into(),
        data_tag_key: "pci-data".into(),
        lookback: 90 * DAY,
        policy: None,
        coverage_grace: 0,
    }
}

fn resource(id: &str, tags: &[(&str, &str)]) -> Resource {
    Resource {
        id: psg_domain::ids::resource_uuid(id).to_string(),
        resource_id: id.into(),
        provider: CloudProvider::Aws,
        resource_type: ResourceType::Ec2Instance,
        resource_arn: None,
        resource_name: None,
        account_id: None,
        region: None,
        availability_zone: None,
        vpc_id: None,
        subnet_id: None,
        private_ips: vec![],
        public_ips: vec![],
        interface_ids: vec![],
        security_groups: vec![],
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
        observed_at: 0,
        deleted: false,
        metadata_json: None,
        source: SourceRef { topic: "r".into(), partition: 0, offset: 0, line: 0 },
    }
}

fn edge(src: (&str, EndpointKind), dst: (&str, EndpointKind), port: i32, action: FlowAction, t: Micros) -> FlowEdge {
    let ep = |(id, kind): (&str, EndpointKind)| Endpoint {
        resource_id: id.into(),
        kind,
        address: Some(id.trim_start_matches("ip:").into()),
        vpc_id: None,
    };
    FlowEdge {
        edge_id: format!("{}-{}-{port}-{t}", src.0, dst.0),
        ..psg_testkit::edges::one_flow(ep(src), ep(dst), port, action, t)
    }
}

const R: EndpointKind = EndpointKind::Resource;

fn scope_of(e: &Engine, id: &str) -> PciScope {
    e.decisions()[id].scope
}

#[test]
fn each_rule_in_order() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("pay", &[("pci-data", "processes-cardholder")]));
    e.upsert_resource(&resource("app", &[]));
    e.upsert_resource(&resource("mon", &[("pci-scope", "connected-cde")]));
    e.upsert_resource(&resource("hr", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&resource("new", &[]));
    e.upsert_resource(&resource("man", &[("pci-scope", "cde")]));
    e.set_manual("man", Some((PciScope::OutOfScope, "decommissioned".into())));
    e.add_edge(&edge(("app", R), ("db", R), 5432, FlowAction::Accept, DAY));
    let (changes, _) = e.recompute();
    assert_eq!(changes.len(), 7);
    assert_eq!(scope_of(&e, "db"), PciScope::Cde);
    assert_eq!(e.decisions()["db"].rule, ScopeRule::DeclaredCde);
    assert_eq!(scope_of(&e, "pay"), PciScope::Cde);
    assert_eq!(e.decisions()["pay"].classification, Some(DataClassification::ProcessesCardholder));
    assert_eq!(scope_of(&e, "app"), PciScope::ConnectedCde);
    assert_eq!(e.decisions()["app"].dependencies, vec!["db"]);
    assert!(
        e.decisions()["app"].justification.contains("db (to TCP/5432 first seen"),
        "{}",
        e.decisions()["app"].justification
    );
    assert_eq!(scope_of(&e, "mon"), PciScope::ConnectedCde);
    assert_eq!(e.decisions()["mon"].rule, ScopeRule::DeclaredConnected);
    assert_eq!(scope_of(&e, "hr"), PciScope::OutOfScope);
    assert_eq!(scope_of(&e, "new"), PciScope::PendingReview);
    assert_eq!(scope_of(&e, "man"), PciScope::OutOfScope);
    assert_eq!(e.decisions()["man"].rule, ScopeRule::ManualDecision);
}

#[test]
fn leaving_pending_review_is_not_drift_but_leaving_a_determined_scope_is() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("web", &[("owner", "web-team")]));
    e.recompute();
    assert_eq!(scope_of(&e, "web"), PciScope::PendingReview);
    e.add_edge(&edge(("web", R), ("db", R), 5432, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "web"), PciScope::ConnectedCde);
    assert!(alerts.iter().all(|a| a.alert_type != AlertType::ScopeDrift), "{alerts:?}");
    // The flow ages out of the lookback window: connected-cde → pending-review is drift.
    e.add_edge(&edge(("x", R), ("y", R), 1, FlowAction::Accept, 93 * DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "web"), PciScope::PendingReview);
    let drift: Vec<_> = alerts.iter().filter(|a| a.alert_type == AlertType::ScopeDrift).collect();
    assert_eq!(drift.len(), 1, "{alerts:?}");
    assert_eq!((drift[0].cause.as_str(), drift[0].event), ("changed", AlertEvent::Raised));
    assert_eq!(drift[0].context["from"], "connected-cde");
    assert_eq!(drift[0].context["to"], "pending-review");
    // Back where it was: the drift is over.
    e.add_edge(&edge(("web", R), ("db", R), 5432, FlowAction::Accept, 94 * DAY));
    let (_, alerts) = e.recompute();
    let drift: Vec<_> = alerts.iter().filter(|a| a.alert_type == AlertType::ScopeDrift).collect();
    assert_eq!(drift.len(), 1, "{alerts:?}");
    assert_eq!((drift[0].cause.as_str(), drift[0].event), ("changed", AlertEvent::Resolved));
}

fn of_type(alerts: &[AlertCandidate], t: AlertType) -> Vec<(&str, &str, AlertEvent)> {
    alerts.iter().filter(|a| a.alert_type == t).map(|a| (a.resource_id.as_str(), a.cause.as_str(), a.event)).collect()
}

/// Issue 15, case 3: a declared out-of-scope system that connects to the
/// CDE is one drift (declared vs computed), not also "moved from".
#[test]
fn one_drift_alert_per_cause() {
    let mut e = engine();
    e.upsert_resource(&resource("vault", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("corp", &[("pci-scope", "out-of-scope")]));
    e.recompute();
    assert_eq!(scope_of(&e, "corp"), PciScope::OutOfScope);
    e.add_edge(&edge(("corp", R), ("vault", R), 5432, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "corp"), PciScope::ConnectedCde);
    assert_eq!(of_type(&alerts, AlertType::ScopeDrift), vec![("corp", "declared", AlertEvent::Raised)], "{alerts:?}");
    assert_eq!(of_type(&alerts, AlertType::SegmentationViolation).len(), 1, "{alerts:?}");
    // More flows of the same cause: nothing new.
    e.add_edge(&edge(("corp", R), ("vault", R), 5432, FlowAction::Accept, DAY + SECOND));
    let (_, alerts) = e.recompute();
    assert!(alerts.is_empty(), "{alerts:?}");
    // It drifts further (now handles card data itself): the same alert, reworded.
    e.upsert_resource(&resource("corp", &[("pci-scope", "out-of-scope"), ("pci-data", "stores-cardholder")]));
    let (_, alerts) = e.recompute();
    assert_eq!(of_type(&alerts, AlertType::ScopeDrift), vec![("corp", "declared", AlertEvent::Updated)], "{alerts:?}");
    let drift = alerts.iter().find(|a| a.alert_type == AlertType::ScopeDrift).unwrap();
    assert!(drift.title.contains("declared out-of-scope but computes as cde"), "{}", drift.title);
}

/// Alerts resolve themselves when their cause disappears: the tag fixed, a
/// manual decision, the flow aged out of the lookback window.
#[test]
fn alerts_resolve_when_their_cause_ends() {
    let mut e = engine();
    e.upsert_resource(&resource("vault", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("corp", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&resource("web", &[]));
    e.upsert_resource(&resource("tmp", &[]));
    e.add_edge(&edge(("corp", R), ("vault", R), 5432, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(of_type(&alerts, AlertType::UntaggedResource).len(), 2, "{alerts:?}");
    assert_eq!(of_type(&alerts, AlertType::SegmentationViolation).len(), 1, "{alerts:?}");

    // The tag fixed.
    e.upsert_resource(&resource("web", &[("pci-scope", "out-of-scope")]));
    let (_, alerts) = e.recompute();
    assert_eq!(of_type(&alerts, AlertType::UntaggedResource), vec![("web", "untagged", AlertEvent::Resolved)]);
    let resolved = &alerts[0];
    assert!(resolved.description.starts_with("Resolved by the classifier"), "{}", resolved.description);

    // A manual decision.
    e.set_manual("tmp", Some((PciScope::OutOfScope, "scratch host".into())));
    let (_, alerts) = e.recompute();
    assert_eq!(of_type(&alerts, AlertType::UntaggedResource), vec![("tmp", "untagged", AlertEvent::Resolved)]);

    // The flow ages out: the violation and the drift end.
    e.add_edge(&edge(("x", R), ("y", R), 1, FlowAction::Accept, 93 * DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "corp"), PciScope::OutOfScope);
    let ended: Vec<_> = alerts.iter().filter(|a| a.resource_id == "corp").map(|a| (a.alert_type, a.event)).collect();
    assert_eq!(
        ended,
        vec![(AlertType::SegmentationViolation, AlertEvent::Resolved), (AlertType::ScopeDrift, AlertEvent::Resolved)],
        "{alerts:?}"
    );
    // Nothing left to resolve twice.
    e.add_edge(&edge(("x", R), ("y", R), 1, FlowAction::Accept, 94 * DAY));
    let (_, alerts) = e.recompute();
    assert!(alerts.iter().all(|a| a.event != AlertEvent::Resolved || a.resource_id == "x" || a.resource_id == "y"));
}

#[test]
fn rejected_flows_never_connect() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("app", &[("pci-scope", "out-of-scope")]));
    e.add_edge(&edge(("app", R), ("db", R), 5432, FlowAction::Reject, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "app"), PciScope::OutOfScope);
    assert!(alerts.iter().all(|a| a.alert_type != AlertType::SegmentationViolation));
}

#[test]
fn decisions_change_only_on_change_and_expiry_reverts() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("app", &[("pci-scope", "out-of-scope")]));
    e.recompute();
    e.add_edge(&edge(("app", R), ("db", R), 5432, FlowAction::Accept, DAY));
    let (changes, alerts) = e.recompute();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].outcome.scope, PciScope::ConnectedCde);
    assert_eq!(changes[0].previous.as_ref().map(|p| p.scope), Some(PciScope::OutOfScope));
    let types: Vec<AlertType> = alerts.iter().map(|a| a.alert_type).collect();
    assert!(types.contains(&AlertType::SegmentationViolation), "{types:?}");
    assert!(types.contains(&AlertType::ScopeDrift), "{types:?}");
    // the same flow again: no new decision
    e.add_edge(&edge(("app", R), ("db", R), 5432, FlowAction::Accept, 2 * DAY));
    assert!(e.recompute().0.is_empty());
    // 91 days later the edge expires: back to out-of-scope
    e.add_edge(&edge(("x", R), ("y", R), 1, FlowAction::Accept, 93 * DAY));
    let (changes, _) = e.recompute();
    assert_eq!(changes.iter().find(|c| c.resource_id == "app").map(|c| c.outcome.scope), Some(PciScope::OutOfScope));
}

#[test]
fn unknown_hosts_and_the_internet() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.add_edge(&edge(("ip:10.9.9.9", EndpointKind::UnknownHost), ("db", R), 22, FlowAction::Accept, DAY));
    e.add_edge(&edge(("db", R), ("ip:203.0.113.7", EndpointKind::External), 443, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "ip:10.9.9.9"), PciScope::ConnectedCde);
    assert!(!e.decisions().contains_key("ip:203.0.113.7"), "external endpoints are never classified");
    let types: Vec<AlertType> = alerts.iter().map(|a| a.alert_type).collect();
    assert!(types.contains(&AlertType::UnknownSystem), "{types:?}");
    assert!(types.contains(&AlertType::CdeInternet), "{types:?}");
    let internet = alerts.iter().find(|a| a.alert_type == AlertType::CdeInternet).unwrap();
    assert_eq!(internet.context["address"], "203.0.113.7");
}

#[test]
fn untagged_resources_alert() {
    let mut e = engine();
    e.upsert_resource(&resource("new", &[]));
    let (_, alerts) = e.recompute();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].alert_type, AlertType::UntaggedResource);
}

#[test]
fn restored_decisions_are_not_repeated() {
    let mut e = engine();
    e.remember(
        "db",
        Outcome {
            scope: PciScope::Cde,
            classification: None,
            rule: ScopeRule::DeclaredCde,
            justification: String::new(),
            dependencies: vec![],
        },
    );
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    assert!(e.recompute().0.is_empty());
}

#[test]
fn with_a_policy_every_cde_flow_needs_an_allow_rule() {
    let mut e = engine_with_web_policy();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("web", &[("tier", "web"), ("pci-scope", "connected-cde")]));
    e.upsert_resource(&resource("jump", &[("pci-scope", "connected-cde")]));
    e.add_edge(&edge(("web", R), ("db", R), 5432, FlowAction::Accept, DAY)); // allowed
    e.add_edge(&edge(("web", R), ("db", R), 22, FlowAction::Accept, DAY)); // not allowed
    e.add_edge(&edge(("jump", R), ("db", R), 5432, FlowAction::Accept, DAY)); // not in the web segment
    e.add_edge(&edge(("jump", R), ("db", R), 3389, FlowAction::Reject, DAY)); // rejected: fine
    let (_, alerts) = e.recompute();
    let mut causes: Vec<&str> =
        alerts.iter().filter(|a| a.alert_type == AlertType::SegmentationViolation).map(|a| a.cause.as_str()).collect();
    causes.sort();
    causes.dedup();
    assert_eq!(causes, ["policy:jump->db:TCP/5432", "policy:web->db:TCP/22"]);
    let a = alerts.iter().find(|a| a.cause == "policy:web->db:TCP/22").unwrap();
    assert_eq!(a.resource_id, "db", "the CDE end owns the alert");
    assert!(a.description.contains("segments: web"), "{}", a.description);
}

fn with_interfaces(mut r: Resource, interfaces: &[&str]) -> Resource {
    r.interface_ids = interfaces.iter().map(|i| i.to_string()).collect();
    r
}

/// Issue 15, case 2: an interface listed by its system (an Azure VM's NIC,
/// an instance's ENI) is part of the system, in either order of their
/// inventory records and of the flows: classified with it, no alert of its
/// own, and flows seen on the interface are the system's.
#[test]
fn interfaces_are_part_of_their_system_in_either_order() {
    for vm_first in [false, true] {
        let mut e = engine();
        e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
        let vm = with_interfaces(resource("vm", &[("pci-scope", "out-of-scope")]), &["nic"]);
        if vm_first {
            e.upsert_resource(&vm);
        }
        e.upsert_resource(&resource("nic", &[]));
        // A flow attributed to the interface: before its system is known
        // (moved to the system later), or after (the system's at once).
        e.add_edge(&edge(("nic", R), ("db", R), 5432, FlowAction::Accept, DAY));
        let (_, first) = e.recompute();
        if !vm_first {
            e.upsert_resource(&vm);
        }
        let (_, second) = e.recompute();
        let all: Vec<_> = first.iter().chain(&second).collect();
        assert_eq!(scope_of(&e, "vm"), PciScope::ConnectedCde, "vm first: {vm_first}");
        assert_eq!(scope_of(&e, "nic"), PciScope::ConnectedCde, "classified with its system");
        assert_eq!(e.decisions()["nic"].dependencies, vec!["vm"]);
        assert!(
            e.decisions()["nic"].justification.starts_with("Interface of vm"),
            "{}",
            e.decisions()["nic"].justification
        );
        // No alert stays open on the interface: one raised before its system
        // was known is resolved.
        let mut open: HashMap<(&str, AlertType, &str), AlertEvent> = HashMap::new();
        for a in &all {
            open.insert((a.resource_id.as_str(), a.alert_type, a.cause.as_str()), a.event);
        }
        let nic_open: Vec<_> =
            open.iter().filter(|((rid, _, _), ev)| *rid == "nic" && **ev != AlertEvent::Resolved).collect();
        assert!(nic_open.is_empty(), "vm first: {vm_first}: {nic_open:?}");
        // The system carries the violation.
        assert!(
            open.iter().any(|((rid, t, _), ev)| *rid == "vm"
                && *t == AlertType::SegmentationViolation
                && *ev != AlertEvent::Resolved),
            "{all:?}"
        );
    }
}

/// An interface no system lists stays a system of its own; one whose
/// system drops it becomes one again.
#[test]
fn an_interface_without_a_known_system_is_a_system() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("eni-1", &[]));
    e.upsert_resource(&with_interfaces(resource("i-1", &[("pci-scope", "out-of-scope")]), &["eni-1"]));
    e.recompute();
    assert_eq!(e.decisions()["eni-1"].dependencies, vec!["i-1"]);
    e.upsert_resource(&with_interfaces(resource("i-1", &[("pci-scope", "out-of-scope")]), &[]));
    let (changes, alerts) = e.recompute();
    assert!(changes.iter().any(|c| c.resource_id == "eni-1"), "{changes:?}");
    assert_eq!(scope_of(&e, "eni-1"), PciScope::PendingReview);
    assert!(e.decisions()["eni-1"].dependencies.is_empty());
    assert!(
        alerts.iter().any(|a| a.resource_id == "eni-1" && a.alert_type == AlertType::UntaggedResource),
        "{alerts:?}"
    );
}

fn typed(id: &str, t: ResourceType, name: Option<&str>, tags: &[(&str, &str)]) -> Resource {
    let mut r = resource(id, tags);
    r.resource_type = t;
    r.resource_name = name.map(str::to_owned);
    r.account_id = Some("123456789012".into());
    r
}

fn rds_eni(id: &str, vpc: &str, groups: &[&str]) -> Resource {
    let mut r = typed(id, ResourceType::NetworkInterface, None, &[]);
    r.vpc_id = Some(vpc.into());
    r.security_groups = groups.iter().map(|g| g.to_string()).collect();
    r.metadata_json = Some(r#"{"description": "RDSNetworkInterface", "requesterManaged": true}"#.into());
    r
}

fn rds(id: &str, vpc: &str, groups: &[&str]) -> Resource {
    let mut r = typed(id, ResourceType::RdsInstance, Some(id), &[("pci-scope", "cde")]);
    r.vpc_id = Some(vpc.into());
    r.security_groups = groups.iter().map(|g| g.to_string()).collect();
    r
}

/// Issue 15: requester-managed ENIs whose system the inventory tells are
/// part of it — a load balancer's, a Lambda function's, an EKS cluster's
/// by the name AWS Config gives them, an ECS task's by the task's listing,
/// an RDS instance's when exactly one instance of its VPC has its security
/// groups — in either order.
#[test]
fn requester_managed_interfaces_belong_to_the_system_they_serve() {
    let systems = [
        typed(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
            ResourceType::Elb,
            Some("web"),
            &[],
        ),
        typed("arn:aws:lambda:us-east-1:123456789012:function:pay", ResourceType::LambdaFunction, Some("pay"), &[]),
        typed("arn:aws:eks:us-east-1:123456789012:cluster/prod", ResourceType::EksCluster, Some("prod"), &[]),
        with_interfaces(typed("arn:aws:ecs:task/1", ResourceType::EcsTask, None, &[]), &["eni-4"]),
        rds("db", "vpc-1", &["sg-db"]),
    ];
    let enis = [
        typed("eni-1", ResourceType::Elb, Some("app/web/50dc6c495c0c9188"), &[]),
        typed("eni-2", ResourceType::LambdaFunction, Some("pay"), &[]),
        typed("eni-3", ResourceType::EksCluster, Some("prod"), &[]),
        typed("eni-4", ResourceType::EcsTask, None, &[]),
        rds_eni("eni-5", "vpc-1", &["sg-db"]),
    ];
    for systems_first in [true, false] {
        let mut e = engine();
        let (a, b) = if systems_first { (&systems, &enis) } else { (&enis, &systems) };
        for r in a.iter().chain(b.iter()) {
            e.upsert_resource(r);
        }
        e.recompute();
        for (eni, system) in enis.iter().zip(&systems) {
            let d = &e.decisions()[&eni.resource_id];
            assert_eq!(d.dependencies, vec![system.resource_id.clone()], "{}: {}", eni.resource_id, d.justification);
            assert_eq!(d.scope, e.decisions()[&system.resource_id].scope);
        }
    }
}

/// An RDS ENI that two instances could own, or none, stays a system of its
/// own, and its justification says why.
#[test]
fn an_rds_interface_without_one_instance_says_why() {
    let mut e = engine();
    e.upsert_resource(&rds_eni("eni-9", "vpc-1", &["sg-db"]));
    e.upsert_resource(&resource("lonely-eni", &[]));
    e.recompute();
    assert!(
        e.decisions()["eni-9"].justification.contains("no RDS instance"),
        "{}",
        e.decisions()["eni-9"].justification
    );
    e.upsert_resource(&rds("db-a", "vpc-1", &["sg-db"]));
    e.recompute();
    assert_eq!(e.decisions()["eni-9"].dependencies, vec!["db-a"]);
    e.upsert_resource(&rds("db-b", "vpc-1", &["sg-db"]));
    e.recompute();
    let d = &e.decisions()["eni-9"];
    assert!(d.dependencies.is_empty(), "{d:?}");
    assert!(
        d.justification.contains("2 RDS instances of vpc-1 share its security groups (sg-db)"),
        "{}",
        d.justification
    );
    // Their subnet groups tell them apart: the ENI's subnet is in db-b's.
    let with_subnets = |mut r: Resource, subnets: &[&str]| {
        let list: Vec<String> = subnets.iter().map(|s| format!(r#"{{"subnetIdentifier": "{s}"}}"#)).collect();
        r.metadata_json =
            Some(format!(r#"{{"dBSubnetGroup": {{"vpcId": "vpc-1", "subnets": [{}]}}}}"#, list.join(", ")));
        r
    };
    e.upsert_resource(&with_subnets(rds("db-a", "vpc-1", &["sg-db"]), &["subnet-a1", "subnet-a2"]));
    e.upsert_resource(&with_subnets(rds("db-b", "vpc-1", &["sg-db"]), &["subnet-b1", "subnet-b2"]));
    let mut eni = rds_eni("eni-9", "vpc-1", &["sg-db"]);
    eni.subnet_id = Some("subnet-b2".into());
    e.upsert_resource(&eni);
    e.recompute();
    assert_eq!(e.decisions()["eni-9"].dependencies, vec!["db-b"], "{}", e.decisions()["eni-9"].justification);
    // A subnet in both groups: ambiguous again.
    e.upsert_resource(&with_subnets(rds("db-a", "vpc-1", &["sg-db"]), &["subnet-a1", "subnet-b2"]));
    e.recompute();
    assert!(e.decisions()["eni-9"].dependencies.is_empty());
    assert!(e.decisions()["eni-9"].justification.contains("a subnet group holding its subnet"));
    // A plain interface nobody lists.
    let mut nic = typed("nic-x", ResourceType::NetworkInterface, None, &[]);
    nic.provider = CloudProvider::Azure;
    e.upsert_resource(&nic);
    e.recompute();
    assert!(
        e.decisions()["nic-x"].justification.contains("no system in the inventory lists"),
        "{}",
        e.decisions()["nic-x"].justification
    );
}

/// Issue 16: a flow whose format logged no action counts as accepted, and
/// the decision and alert it causes say the action was not logged; a
/// logged report of the same service takes the remark away.
#[test]
fn decisions_on_flows_without_a_logged_action_say_so() {
    let mut e = engine();
    e.upsert_resource(&resource("db", &[("pci-scope", "cde")]));
    e.upsert_resource(&resource("hr", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&resource("app", &[]));
    let unlogged =
        |src: &str, port| FlowEdge { action_logged: false, ..edge((src, R), ("db", R), port, FlowAction::Accept, DAY) };
    e.add_edge(&unlogged("hr", 5432));
    e.add_edge(&unlogged("app", 5432));
    e.add_edge(&edge(("app", R), ("db", R), 5432, FlowAction::Accept, DAY + 60 * SECOND));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "hr"), PciScope::ConnectedCde, "counted as accepted: scope errs towards inclusion");
    let hr = &e.decisions()["hr"].justification;
    assert!(hr.contains("TCP/5432") && hr.contains("(action not logged: counted as accepted)"), "{hr}");
    let app = &e.decisions()["app"].justification;
    assert!(!app.contains("not logged"), "a logged report of the service confirms it: {app}");
    let declared = alerts.iter().find(|a| a.resource_id == "hr").expect("the declared tag is contradicted");
    assert_eq!(declared.context.get("action_logged").map(String::as_str), Some("false"), "{declared:?}");
}

fn in_vpc(id: &str, vpc: &str, subnet: &str, eni: &str, tags: &[(&str, &str)]) -> Resource {
    Resource {
        vpc_id: Some(vpc.into()),
        subnet_id: Some(subnet.into()),
        interface_ids: vec![eni.into()],
        ..resource(id, tags)
    }
}

fn covered(unit: &str, vpc: Option<&str>, subnet: Option<&str>, first: Micros, last: Micros) -> FlowCoverage {
    FlowCoverage {
        unit: unit.into(),
        unit_kind: psg_domain::CoverageUnit::Interface,
        provider: CloudProvider::Aws,
        account_id: None,
        vpc_id: vpc.map(Into::into),
        subnet_id: subnet.map(Into::into),
        partition: 0,
        first_seen: first,
        last_seen: last,
        records: 1,
        accepted: 1,
        rejected: 0,
        no_data: 0,
        skipped: 0,
        gaps: vec![],
    }
}

fn gaps(alerts: &[AlertCandidate]) -> Vec<(String, AlertEvent)> {
    alerts.iter().filter(|a| a.alert_type == AlertType::CoverageGap).map(|a| (a.resource_id.clone(), a.event)).collect()
}

/// Issue 17: a declared out-of-scope system whose VPC sent no flow logs is
/// pending review (the absence of flows proves nothing), and its VPC gets a
/// `coverage_gap` alert; when its logs arrive, both clear.
#[test]
fn declared_out_of_scope_without_flow_logs_is_pending_review() {
    let mut e = engine();
    e.upsert_resource(&in_vpc("db", "vpc-lit", "subnet-1", "eni-db", &[("pci-scope", "cde")]));
    e.upsert_resource(&in_vpc("hr", "vpc-dark", "subnet-9", "eni-hr", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&in_vpc("ops", "vpc-lit", "subnet-1", "eni-ops", &[("pci-scope", "out-of-scope")]));
    e.recompute();
    assert_eq!(scope_of(&e, "hr"), PciScope::OutOfScope, "no flow log at all yet: nothing is judged");
    e.observe_coverage(&covered("eni-db", Some("vpc-lit"), None, DAY, DAY + 600 * SECOND));
    let (_, alerts) = e.recompute();
    let hr = &e.decisions()["hr"];
    assert_eq!((hr.scope, hr.rule), (PciScope::PendingReview, ScopeRule::NoFlowLogCoverage));
    assert!(hr.justification.contains("but no flow logs from VPC vpc-dark since"), "{}", hr.justification);
    let ops = &e.decisions()["ops"];
    assert_eq!(ops.scope, PciScope::OutOfScope, "its VPC sent flow logs");
    assert!(
        ops.justification.contains("flow logs of subnet subnet-1 cover it"),
        "placed by db's interface: {}",
        ops.justification
    );
    assert_eq!(gaps(&alerts), vec![("vpc-dark".to_owned(), AlertEvent::Raised)]);
    let gap = alerts.iter().find(|a| a.alert_type == AlertType::CoverageGap).unwrap();
    assert!(gap.description.contains("holds 1 system(s)"), "{}", gap.description);
    assert!(
        !alerts.iter().any(|a| a.alert_type == AlertType::ScopeDrift && a.resource_id == "hr"),
        "the gap is the alert, not a drift of hr: {alerts:?}"
    );
    // Logs of hr's interface arrive (NODATA would do).
    e.observe_coverage(&covered("eni-hr", None, None, DAY + 60 * SECOND, DAY + 900 * SECOND));
    let (_, alerts) = e.recompute();
    let hr = &e.decisions()["hr"];
    assert_eq!((hr.scope, hr.rule), (PciScope::OutOfScope, ScopeRule::DeclaredOutOfScope));
    assert!(hr.justification.contains("flow logs of interface eni-hr cover it"), "{}", hr.justification);
    assert_eq!(
        gaps(&alerts),
        vec![("vpc-dark".to_owned(), AlertEvent::Resolved)],
        "the VPC is placed by the interface"
    );
}

/// Issue 17: coverage is judged only a grace period of event time after
/// the first record (flow logs of different VPCs arrive apart), and it
/// expires with the lookback window.
#[test]
fn missing_coverage_is_judged_after_the_grace_and_expires_with_the_lookback() {
    let mut e = Engine::new(Settings { coverage_grace: 3_600 * SECOND, ..engine().settings });
    e.upsert_resource(&in_vpc("hr", "vpc-2", "subnet-2", "eni-hr", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&in_vpc("web", "vpc-1", "subnet-1", "eni-web", &[("pci-scope", "out-of-scope")]));
    e.observe_coverage(&covered("eni-web", Some("vpc-1"), None, DAY, DAY + 600 * SECOND));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "hr"), PciScope::OutOfScope, "within the grace period");
    assert!(gaps(&alerts).is_empty());
    e.observe_coverage(&covered("eni-web", Some("vpc-1"), None, DAY, DAY + 3_700 * SECOND));
    let (changes, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "hr"), PciScope::PendingReview);
    assert_eq!(gaps(&alerts), vec![("vpc-2".to_owned(), AlertEvent::Raised)]);
    let web = changes.iter().find(|c| c.resource_id == "web").expect("decided again, now with coverage");
    assert!(web.outcome.justification.contains("flow logs of interface eni-web cover it"));
    // 91 days later only web's interface still logs: hr's VPC stays dark,
    // and a VPC whose logs stopped is dark too.
    e.upsert_resource(&in_vpc("old", "vpc-3", "subnet-3", "eni-old", &[("pci-scope", "out-of-scope")]));
    e.observe_coverage(&covered("eni-old", Some("vpc-3"), None, DAY, DAY + 3_700 * SECOND));
    e.recompute();
    assert_eq!(scope_of(&e, "old"), PciScope::OutOfScope);
    e.observe_coverage(&covered("eni-web", Some("vpc-1"), None, DAY, 92 * DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "web"), PciScope::OutOfScope);
    assert_eq!(scope_of(&e, "old"), PciScope::PendingReview, "its last record left the lookback window");
    assert!(
        e.decisions()["old"].justification.contains("(last record 1970-01-02T01:01:40"),
        "{}",
        e.decisions()["old"].justification
    );
    assert_eq!(gaps(&alerts), vec![("vpc-3".to_owned(), AlertEvent::Raised)]);
}

/// Issue 17: where records place units in subnets, a subnet of a logged VPC
/// that sent nothing is a gap of its own.
#[test]
fn a_silent_subnet_of_a_logged_vpc_is_a_gap() {
    let mut e = engine();
    e.upsert_resource(&in_vpc("a", "vpc-1", "subnet-a", "eni-a", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&in_vpc("b", "vpc-1", "subnet-b", "eni-b", &[("pci-scope", "out-of-scope")]));
    e.observe_coverage(&covered("eni-a", Some("vpc-1"), Some("subnet-a"), DAY, DAY + 60 * SECOND));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "a"), PciScope::OutOfScope);
    assert_eq!(scope_of(&e, "b"), PciScope::PendingReview);
    assert!(e.decisions()["b"].justification.contains("no flow logs from subnet subnet-b"));
    assert_eq!(gaps(&alerts), vec![("subnet-b".to_owned(), AlertEvent::Raised)]);
}

fn security_group(id: &str, ingress: serde_json::Value, egress: serde_json::Value) -> Resource {
    Resource {
        resource_type: ResourceType::SecurityGroup,
        metadata_json: Some(
            serde_json::json!({"groupId": id, "vpcId": "vpc-1", "ipPermissions": ingress, "ipPermissionsEgress": egress})
                .to_string(),
        ),
        ..resource(id, &[])
    }
}

fn member(id: &str, ip: &str, groups: &[&str], tags: &[(&str, &str)]) -> Resource {
    Resource {
        private_ips: vec![ip.into()],
        security_groups: groups.iter().map(|g| g.to_string()).collect(),
        vpc_id: Some("vpc-1".into()),
        ..resource(id, tags)
    }
}

fn tcp_from_group(port: i32, group: &str) -> serde_json::Value {
    serde_json::json!([{"ipProtocol": "tcp", "fromPort": port, "toPort": port, "userIdGroupPairs": [{"groupId": group}]}])
}

fn all_out() -> serde_json::Value {
    serde_json::json!([{"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}])
}

fn of_kind(alerts: &[AlertCandidate], t: AlertType) -> Vec<(String, AlertEvent)> {
    alerts.iter().filter(|a| a.alert_type == t).map(|a| (a.resource_id.clone(), a.event)).collect()
}

/// Issue 17: a security group of a CDE system that admits another group
/// makes that group's members connected-cde (rule `reachable`, naming the
/// rule), a declared out-of-scope member gets `latent_violation` (not a
/// drift); removing the rule undoes both. In either order of inventory.
#[test]
fn systems_the_cde_security_groups_admit_are_connected() {
    for groups_first in [true, false] {
        let mut e = engine();
        let groups = [
            security_group("sg-0cde", tcp_from_group(5432, "sg-0app"), all_out()),
            security_group("sg-0app", serde_json::json!([]), all_out()),
        ];
        let systems = [
            member("db", "10.0.2.10", &["sg-0cde"], &[("pci-scope", "cde")]),
            member("hr", "10.0.1.5", &["sg-0app"], &[("pci-scope", "out-of-scope")]),
            member("web", "10.0.1.6", &["sg-web"], &[("pci-scope", "out-of-scope")]),
        ];
        let all: Vec<&Resource> = if groups_first {
            groups.iter().chain(&systems).collect()
        } else {
            systems.iter().chain(&groups).collect()
        };
        for r in all {
            e.upsert_resource(r);
        }
        let (_, alerts) = e.recompute();
        let hr = &e.decisions()["hr"];
        assert_eq!((hr.scope, hr.rule), (PciScope::ConnectedCde, ScopeRule::Reachable), "groups first: {groups_first}");
        assert!(hr.justification.contains("db (sg-0cde admits TCP/5432 from sg-0app)"), "{}", hr.justification);
        assert_eq!(hr.dependencies, vec!["db"]);
        assert_eq!(scope_of(&e, "web"), PciScope::OutOfScope, "its group is not admitted");
        assert!(!e.decisions().contains_key("sg-0cde"), "a security group is no system");
        assert_eq!(of_kind(&alerts, AlertType::LatentViolation), vec![("hr".to_owned(), AlertEvent::Raised)]);
        assert!(of_kind(&alerts, AlertType::ScopeDrift).is_empty(), "{alerts:?}");
        // The rule is removed.
        e.upsert_resource(&security_group("sg-0cde", serde_json::json!([]), all_out()));
        let (_, alerts) = e.recompute();
        assert_eq!(scope_of(&e, "hr"), PciScope::OutOfScope);
        assert_eq!(of_kind(&alerts, AlertType::LatentViolation), vec![("hr".to_owned(), AlertEvent::Resolved)]);
    }
}

/// Issue 17: CIDR rules and prefix lists admit by address, a source's own
/// egress rules can stop it, and an accepted flow the CDE's groups do not
/// admit is `observed_not_allowed`.
#[test]
fn cidrs_prefix_lists_egress_and_flows_not_allowed() {
    let mut e = engine();
    let ingress = serde_json::json!([
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "10.9.0.0/16"}]},
        {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "prefixListIds": [{"prefixListId": "pl-1"}]}
    ]);
    e.upsert_resource(&security_group("sg-0cde", ingress, all_out()));
    e.upsert_resource(&security_group("sg-locked", serde_json::json!([]), serde_json::json!([])));
    e.upsert_resource(&Resource {
        resource_type: ResourceType::PrefixList,
        metadata_json: Some(r#"{"PrefixListId": "pl-1", "Entries": [{"Cidr": "10.50.0.0/16"}]}"#.into()),
        ..resource("pl-1", &[])
    });
    e.upsert_resource(&member("db", "10.0.2.10", &["sg-0cde"], &[("pci-scope", "cde")]));
    e.upsert_resource(&member("jump", "10.9.1.1", &[], &[]));
    e.upsert_resource(&member("corp", "10.50.3.3", &[], &[]));
    e.upsert_resource(&member("locked", "10.9.1.2", &["sg-locked"], &[]));
    e.upsert_resource(&member("app", "10.0.1.5", &[], &[]));
    e.recompute();
    assert!(e.decisions()["jump"].justification.contains("sg-0cde admits TCP/22 from 10.9.0.0/16"));
    assert!(e.decisions()["corp"].justification.contains("sg-0cde admits TCP/443 from prefix list pl-1"));
    assert_eq!(scope_of(&e, "locked"), PciScope::PendingReview, "its own group lets nothing out");
    assert_eq!(scope_of(&e, "app"), PciScope::PendingReview);
    // app connects to db on 5432 anyway: observed, not allowed.
    e.add_edge(&edge(("app", R), ("db", R), 5432, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(of_kind(&alerts, AlertType::ObservedNotAllowed), vec![("db".to_owned(), AlertEvent::Raised)]);
    assert_eq!(scope_of(&e, "app"), PciScope::ConnectedCde, "observed flows decide scope whatever the rules say");
    // jump's SSH is admitted: no such alert for it.
    e.add_edge(&edge(("jump", R), ("db", R), 22, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert!(of_kind(&alerts, AlertType::ObservedNotAllowed).is_empty(), "{alerts:?}");
}

const PROD: &str = "projects/shop/global/networks/prod";

fn firewall_rule(name: &str, rule: serde_json::Value) -> Resource {
    let mut data =
        serde_json::json!({"name": name, "network": format!("https://www.googleapis.com/compute/v1/{PROD}")});
    for (k, v) in rule.as_object().expect("an object") {
        data[k] = v.clone();
    }
    Resource {
        resource_type: ResourceType::FirewallRule,
        provider: CloudProvider::Gcp,
        metadata_json: Some(data.to_string()),
        ..resource(&format!("//compute.googleapis.com/projects/shop/global/firewalls/{name}"), &[])
    }
}

fn instance(id: &str, ip: &str, selectors: &[&str], tags: &[(&str, &str)]) -> Resource {
    let mut groups = vec![PROD.to_owned()];
    groups.extend(selectors.iter().map(|s| (*s).to_owned()));
    Resource {
        provider: CloudProvider::Gcp,
        resource_type: ResourceType::ComputeInstance,
        private_ips: vec![ip.into()],
        security_groups: groups,
        vpc_id: Some("prod".into()),
        ..resource(id, tags)
    }
}

/// Issue 17 on GCP: a firewall rule that admits a network tag into the CDE
/// makes its instances connected-cde (rule `reachable`), a declared
/// out-of-scope one a `latent_violation`; a deny of higher priority takes
/// it back, and deleting the deny restores it; an accepted flow on a port
/// no rule allows is `observed_not_allowed` (the implied deny). In either
/// order of inventory.
#[test]
fn gcp_firewall_rules_decide_reachability_by_tag_and_priority() {
    for rules_first in [true, false] {
        let mut e = engine();
        let rules = [firewall_rule(
            "allow-app-to-db",
            serde_json::json!({"sourceTags": ["app"], "targetTags": ["cde-db"],
                               "allowed": [{"IPProtocol": "tcp", "ports": ["5432"]}]}),
        )];
        let systems = [
            instance("db", "10.128.0.10", &["tag:cde-db"], &[("pci-scope", "cde")]),
            instance("batch", "10.128.0.20", &["tag:app"], &[("pci-scope", "out-of-scope")]),
            instance("web", "10.128.0.30", &["tag:web"], &[("pci-scope", "out-of-scope")]),
        ];
        let all: Vec<&Resource> =
            if rules_first { rules.iter().chain(&systems).collect() } else { systems.iter().chain(&rules).collect() };
        for r in all {
            e.upsert_resource(r);
        }
        let (_, alerts) = e.recompute();
        let batch = &e.decisions()["batch"];
        assert_eq!(
            (batch.scope, batch.rule),
            (PciScope::ConnectedCde, ScopeRule::Reachable),
            "rules first: {rules_first}"
        );
        assert!(
            batch
                .justification
                .contains("db (firewall rule allow-app-to-db (priority 1000) admits TCP/5432 from tag:app)"),
            "{}",
            batch.justification
        );
        assert_eq!(scope_of(&e, "web"), PciScope::OutOfScope, "its tag is not admitted");
        assert_eq!(of_kind(&alerts, AlertType::LatentViolation), vec![("batch".to_owned(), AlertEvent::Raised)]);
        assert!(!e.decisions().contains_key(&rules[0].resource_id), "a firewall rule is no system");

        // A deny before it.
        let deny = firewall_rule(
            "deny-to-db",
            serde_json::json!({"priority": 900, "sourceRanges": ["10.128.0.0/20"], "targetTags": ["cde-db"],
                               "denied": [{"IPProtocol": "all"}]}),
        );
        e.upsert_resource(&deny);
        let (_, alerts) = e.recompute();
        assert_eq!(scope_of(&e, "batch"), PciScope::OutOfScope);
        assert_eq!(of_kind(&alerts, AlertType::LatentViolation), vec![("batch".to_owned(), AlertEvent::Resolved)]);
        // Deleted again.
        e.upsert_resource(&Resource { deleted: true, metadata_json: None, ..deny });
        e.recompute();
        assert_eq!(e.decisions()["batch"].rule, ScopeRule::Reachable);

        // web connects to db on 5432 anyway: no rule allows it.
        e.add_edge(&edge(("web", R), ("db", R), 5432, FlowAction::Accept, DAY));
        let (_, alerts) = e.recompute();
        assert_eq!(of_kind(&alerts, AlertType::ObservedNotAllowed), vec![("db".to_owned(), AlertEvent::Raised)]);
        // batch's connection is allowed: no such alert for it.
        e.add_edge(&edge(("batch", R), ("db", R), 5432, FlowAction::Accept, DAY));
        let (_, alerts) = e.recompute();
        assert!(of_kind(&alerts, AlertType::ObservedNotAllowed).is_empty(), "{alerts:?}");
    }
}

const AZ: &str = "/subscriptions/s1/resourcegroups/pay/providers/microsoft.network";

fn nsg(name: &str, rules: serde_json::Value) -> Resource {
    Resource {
        resource_type: ResourceType::SecurityGroup,
        provider: CloudProvider::Azure,
        metadata_json: Some(serde_json::json!({"securityRules": rules}).to_string()),
        ..resource(&format!("{AZ}/networksecuritygroups/{name}"), &[])
    }
}

/// An Azure VM and its NIC (the NIC carries the address, NSG, virtual
/// network and application security groups).
fn azure_vm(id: &str, ip: &str, asg: Option<&str>, tags: &[(&str, &str)]) -> [Resource; 2] {
    let nic_id = format!("{AZ}/networkinterfaces/{id}-nic");
    let mut groups = vec![format!("{AZ}/networksecuritygroups/pay-nsg"), format!("{AZ}/virtualnetworks/pay-vnet")];
    groups.extend(asg.map(|a| format!("{AZ}/applicationsecuritygroups/{a}")));
    let nic = Resource {
        provider: CloudProvider::Azure,
        resource_type: ResourceType::NetworkInterface,
        private_ips: vec![ip.into()],
        security_groups: groups,
        vpc_id: Some("pay-vnet".into()),
        ..resource(&nic_id, &[])
    };
    let vm = Resource {
        provider: CloudProvider::Azure,
        resource_type: ResourceType::VirtualMachine,
        interface_ids: vec![nic_id],
        vpc_id: Some("pay-vnet".into()),
        ..resource(id, tags)
    };
    [vm, nic]
}

fn nsg_rule(name: &str, priority: u32, access: &str, source: serde_json::Value, port: &str) -> serde_json::Value {
    let mut p = serde_json::json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port,
        "destinationAddressPrefix": "*", "access": access, "priority": priority, "direction": "Inbound"});
    for (k, v) in source.as_object().expect("an object") {
        p[k] = v.clone();
    }
    serde_json::json!({"name": name, "properties": p})
}

/// Issue 17 on Azure: the NSG of a CDE VM's NIC decides who reaches it, by
/// application security group and priority; Azure's default rule admits the
/// whole virtual network unless a rule before it denies; a deleted NSG says
/// nothing. In either order of inventory.
#[test]
fn azure_nsgs_decide_reachability_by_application_security_group_and_priority() {
    let asg = |a: &str| serde_json::json!({"sourceApplicationSecurityGroups": [{"id": format!("{AZ}/applicationsecuritygroups/{a}")}]});
    let locked = serde_json::json!([
        nsg_rule("allow-app-db", 200, "Allow", asg("app"), "5432"),
        nsg_rule(
            "deny-vnet",
            4000,
            "Deny",
            serde_json::json!({"sourceAddressPrefix": "VirtualNetwork", "protocol": "*"}),
            "*"
        ),
    ]);
    for nsg_first in [true, false] {
        let mut e = engine();
        let mut all: Vec<Resource> = Vec::new();
        all.extend(azure_vm("vault", "10.1.0.4", Some("db"), &[("pci-scope", "cde")]));
        all.extend(azure_vm("reports", "10.1.0.5", Some("app"), &[("pci-scope", "out-of-scope")]));
        all.extend(azure_vm("wiki", "10.1.0.6", None, &[("pci-scope", "out-of-scope")]));
        if nsg_first {
            all.insert(0, nsg("pay-nsg", locked.clone()));
        } else {
            all.push(nsg("pay-nsg", locked.clone()));
        }
        for r in &all {
            e.upsert_resource(r);
        }
        let (_, alerts) = e.recompute();
        let reports = &e.decisions()["reports"];
        assert_eq!(
            (reports.scope, reports.rule),
            (PciScope::ConnectedCde, ScopeRule::Reachable),
            "nsg first: {nsg_first}"
        );
        assert!(
            reports.justification.contains("NSG pay-nsg rule allow-app-db (priority 200) admits TCP/5432 from"),
            "{}",
            reports.justification
        );
        assert_eq!(scope_of(&e, "wiki"), PciScope::OutOfScope, "denied before Azure's default");
        assert_eq!(of_kind(&alerts, AlertType::LatentViolation), vec![("reports".to_owned(), AlertEvent::Raised)]);
        assert!(!e.decisions().contains_key(&all[if nsg_first { 0 } else { 6 }].resource_id), "an NSG is no system");

        // Without the deny, Azure's AllowVnetInBound lets wiki in too.
        e.upsert_resource(&nsg(
            "pay-nsg",
            serde_json::json!([nsg_rule("allow-app-db", 200, "Allow", asg("app"), "5432")]),
        ));
        e.recompute();
        let wiki = &e.decisions()["wiki"];
        assert_eq!(wiki.rule, ScopeRule::Reachable);
        assert!(
            wiki.justification
                .contains("AllowVnetInBound (priority 65000) admits all traffic from service tag VirtualNetwork")
        );

        // The NSG deleted: its rules are unknown, nothing is reachable by them.
        e.upsert_resource(&Resource { deleted: true, ..nsg("pay-nsg", serde_json::json!([])) });
        e.recompute();
        assert_eq!(scope_of(&e, "wiki"), PciScope::OutOfScope);
        assert_eq!(scope_of(&e, "reports"), PciScope::OutOfScope);
    }
}

/// Issue 17: an AWS network ACL on the CDE system's subnet filters what its
/// security group admits (a deny before the allow); systems in the CDE
/// system's own subnet pass no ACL; changing the ACL changes reachability.
#[test]
fn network_acls_filter_security_group_reachability_across_subnets() {
    let acl = |entries: serde_json::Value| Resource {
        resource_type: ResourceType::NetworkAcl,
        metadata_json: Some(
            serde_json::json!({"networkAclId": "acl-db", "vpcId": "vpc-1", "entries": entries,
                "associations": [{"networkAclId": "acl-db", "subnetId": "subnet-db"}]})
            .to_string(),
        ),
        ..resource("acl-db", &[])
    };
    let allow_all = serde_json::json!({"ruleNumber": 200, "protocol": "-1", "ruleAction": "allow", "egress": false, "cidrBlock": "0.0.0.0/0"});
    let out_all = serde_json::json!({"ruleNumber": 100, "protocol": "-1", "ruleAction": "allow", "egress": true, "cidrBlock": "0.0.0.0/0"});
    let deny_app = serde_json::json!({"ruleNumber": 100, "protocol": "6", "ruleAction": "deny", "egress": false,
        "cidrBlock": "10.0.1.0/24", "portRange": {"from": 5432, "to": 5432}});
    let in_subnet = |mut r: Resource, subnet: &str| {
        r.subnet_id = Some(subnet.into());
        r
    };
    let mut e = engine();
    e.upsert_resource(&security_group("sg-0cde", tcp_from_group(5432, "sg-0app"), all_out()));
    e.upsert_resource(&security_group("sg-0app", serde_json::json!([]), all_out()));
    e.upsert_resource(&in_subnet(member("db", "10.0.2.10", &["sg-0cde"], &[("pci-scope", "cde")]), "subnet-db"));
    e.upsert_resource(&in_subnet(
        member("hr", "10.0.1.5", &["sg-0app"], &[("pci-scope", "out-of-scope")]),
        "subnet-app",
    ));
    e.upsert_resource(&in_subnet(
        member("ops", "10.0.2.11", &["sg-0app"], &[("pci-scope", "out-of-scope")]),
        "subnet-db",
    ));
    e.upsert_resource(&acl(serde_json::json!([deny_app, allow_all, out_all])));
    e.recompute();
    assert_eq!(scope_of(&e, "hr"), PciScope::OutOfScope, "the ACL denies 10.0.1.0/24 before it allows");
    assert_eq!(e.decisions()["ops"].rule, ScopeRule::Reachable, "in the database's subnet no ACL applies");
    // The deny removed.
    e.upsert_resource(&acl(serde_json::json!([allow_all, out_all])));
    e.recompute();
    assert_eq!(e.decisions()["hr"].rule, ScopeRule::Reachable);
    // A flow on 5432 while the ACL denies it: observed, not allowed.
    e.upsert_resource(&acl(serde_json::json!([deny_app, allow_all, out_all])));
    e.add_edge(&edge(("hr", R), ("db", R), 5432, FlowAction::Accept, DAY));
    let (_, alerts) = e.recompute();
    assert_eq!(of_kind(&alerts, AlertType::ObservedNotAllowed), vec![("db".to_owned(), AlertEvent::Raised)]);
}

fn flow_log(id: &str, target: &str, traffic: &str, delivery: Option<&str>) -> Resource {
    let mut cfg = serde_json::json!({"flowLogId": id, "resourceId": target, "trafficType": traffic,
        "logDestinationType": "s3", "logDestination": "arn:aws:s3:::flow-logs", "flowLogStatus": "ACTIVE",
        "deliverLogsStatus": "SUCCESS", "maxAggregationInterval": 600});
    if let Some(message) = delivery {
        cfg["deliverLogsStatus"] = "FAILED".into();
        cfg["deliverLogsErrorMessage"] = message.into();
    }
    Resource { resource_type: ResourceType::FlowLog, metadata_json: Some(cfg.to_string()), ..resource(id, &[]) }
}

/// Issue 17, coverage from configuration: flow logs configured for REJECT
/// only cannot show the accepted connections that decide scope, whatever
/// arrives (pending review, a `coverage_gap` naming them, gone when ALL is
/// logged); a place without records says what inventory configures for it.
#[test]
fn flow_log_configuration_is_compared_with_what_arrives() {
    let mut e = engine();
    e.upsert_resource(&in_vpc("db", "vpc-1", "subnet-1", "eni-db", &[("pci-scope", "cde")]));
    e.upsert_resource(&in_vpc("hr", "vpc-1", "subnet-1", "eni-hr", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&in_vpc("archive", "vpc-3", "subnet-3", "eni-ar", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&in_vpc("batch", "vpc-4", "subnet-4", "eni-ba", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&flow_log("fl-1", "vpc-1", "REJECT", None));
    e.upsert_resource(&flow_log("fl-3", "vpc-3", "ALL", Some("Access error")));
    e.observe_coverage(&covered("eni-hr", Some("vpc-1"), None, DAY, DAY + 600 * SECOND));
    let (_, alerts) = e.recompute();
    let hr = &e.decisions()["hr"];
    assert_eq!((hr.scope, hr.rule), (PciScope::PendingReview, ScopeRule::NoFlowLogCoverage));
    assert!(hr.justification.contains("record REJECTed traffic only (fl-1 (REJECT) on vpc-1)"), "{}", hr.justification);
    let mut g = gaps(&alerts);
    g.sort();
    let raised = |p: &str| (p.to_owned(), AlertEvent::Raised);
    assert_eq!(g, vec![raised("vpc-1"), raised("vpc-3"), raised("vpc-4")]);
    let text = |place: &str| alerts.iter().find(|a| a.resource_id == place).map(|a| a.description.clone()).unwrap();
    assert!(text("vpc-1").contains("record REJECTed traffic only (fl-1 (REJECT) on vpc-1)"), "{}", text("vpc-1"));
    assert!(
        text("vpc-3")
            .contains("Inventory configures flow logs for it (fl-3 (ALL, delivery FAILED: Access error) on vpc-3)"),
        "{}",
        text("vpc-3")
    );
    assert!(text("vpc-4").contains("Inventory lists no flow-log configuration for it"), "{}", text("vpc-4"));
    // ALL traffic logged now.
    e.upsert_resource(&flow_log("fl-1", "vpc-1", "ALL", None));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "hr"), PciScope::OutOfScope);
    assert_eq!(gaps(&alerts), vec![("vpc-1".to_owned(), AlertEvent::Resolved)]);
    assert!(!e.decisions().contains_key("fl-1"), "a flow-log configuration is no system");
}

/// Issue 17, the three-way view with a policy: configuration that lets a
/// system reach a CDE system on a service the segmentation policy forbids
/// is `policy_not_enforced` (the CDE system's), naming the rule and a
/// forbidden service; a rule within the policy raises nothing.
#[test]
fn configuration_that_allows_what_the_policy_forbids_is_a_finding() {
    let mut e = engine_with_web_policy();
    let ingress = serde_json::json!([
        {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "userIdGroupPairs": [{"groupId": "sg-web"}]},
        {"ipProtocol": "tcp", "fromPort": 5000, "toPort": 6000, "userIdGroupPairs": [{"groupId": "sg-batch"}]}
    ]);
    e.upsert_resource(&security_group("sg-0cde", ingress, all_out()));
    e.upsert_resource(&member("db", "10.0.2.10", &["sg-0cde"], &[("pci-scope", "cde")]));
    e.upsert_resource(&member("web", "10.0.1.5", &["sg-web"], &[("tier", "web")]));
    e.upsert_resource(&member("batch", "10.0.1.6", &["sg-batch"], &[("tier", "web")]));
    let (_, alerts) = e.recompute();
    let found: Vec<&AlertCandidate> = alerts.iter().filter(|a| a.alert_type == AlertType::PolicyNotEnforced).collect();
    assert_eq!(found.len(), 1, "web's rule is within the policy: {alerts:?}");
    let a = found[0];
    assert_eq!((a.resource_id.as_str(), a.cause.as_str()), ("db", "unenforced:batch"));
    assert!(a.description.contains("sg-0cde admits TCP/5000-6000 from sg-batch (e.g. TCP/5000)"), "{}", a.description);
    assert_eq!(a.alert_type.severity(), psg_domain::Severity::High);
    // The rule narrowed to what the policy allows: resolved.
    let narrowed = serde_json::json!([
        {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "userIdGroupPairs": [{"groupId": "sg-web"}, {"groupId": "sg-batch"}]}
    ]);
    e.upsert_resource(&security_group("sg-0cde", narrowed, all_out()));
    let (_, alerts) = e.recompute();
    assert_eq!(of_kind(&alerts, AlertType::PolicyNotEnforced), vec![("db".to_owned(), AlertEvent::Resolved)]);
}

/// Issue 17, coverage from configuration on GCP and Azure: a subnetwork's
/// `logConfig` turned off is named in its gap; an Azure flow log of an NSG
/// targets that NSG (its NICs), one of a VNet the VNet's name.
#[test]
fn gcp_log_config_and_azure_flow_logs_are_read() {
    let subnetwork = |enable: bool| {
        Resource {
        resource_type: ResourceType::FlowLog,
        provider: CloudProvider::Gcp,
        subnet_id: Some("batch-usc1".into()),
        vpc_id: Some("corp".into()),
        metadata_json: Some(
            serde_json::json!({"name": "batch-usc1", "network": "https://www.googleapis.com/compute/v1/projects/p/global/networks/corp",
                "logConfig": {"enable": enable, "flowSampling": 0.5}})
            .to_string(),
        ),
        ..resource("//compute.googleapis.com/projects/p/regions/us-central1/subnetworks/batch-usc1", &[])
    }
    };
    assert_eq!(FlowLogConfig::parse(&subnetwork(true)).unwrap().describe(), "logConfig (ALL) on batch-usc1");
    let mut e = engine();
    e.upsert_resource(&in_vpc("web", "corp", "web-usc1", "web", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&in_vpc("batch", "corp", "batch-usc1", "batch", &[("pci-scope", "out-of-scope")]));
    e.upsert_resource(&subnetwork(false));
    e.observe_coverage(&covered("web", Some("corp"), Some("web-usc1"), DAY, DAY + 600 * SECOND));
    let (_, alerts) = e.recompute();
    assert_eq!(scope_of(&e, "batch"), PciScope::PendingReview);
    let gap = alerts.iter().find(|a| a.resource_id == "batch-usc1").expect("a gap of the silent subnet");
    assert!(
        gap.description.contains("Its flow logs are configured but turned off (logConfig (DISABLED) on batch-usc1)"),
        "{}",
        gap.description
    );

    let azure = |target: &str, vpc: Option<&str>| Resource {
        resource_type: ResourceType::FlowLog,
        provider: CloudProvider::Azure,
        resource_name: Some("fl-web".into()),
        vpc_id: vpc.map(Into::into),
        metadata_json: Some(serde_json::json!({"targetResourceId": target, "enabled": true}).to_string()),
        ..resource(
            "/subscriptions/s/resourcegroups/nw/providers/microsoft.network/networkwatchers/w/flowlogs/fl-web",
            &[],
        )
    };
    let nsg = FlowLogConfig::parse(&azure(
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/Web-NSG",
        None,
    ))
    .unwrap();
    assert_eq!(
        nsg.target,
        "/subscriptions/s/resourcegroups/g/providers/microsoft.network/networksecuritygroups/web-nsg"
    );
    assert_eq!(nsg.describe(), "fl-web (ALL) on NSG web-nsg");
    let vnet = FlowLogConfig::parse(&azure(
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/Pay-VNet",
        Some("Pay-VNet"),
    ))
    .unwrap();
    assert_eq!(vnet.describe(), "fl-web (ALL) on Pay-VNet");
}
