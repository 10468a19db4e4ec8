//! Model test: after any sequence of inventory, edge and manual-decision
//! events, the incremental engine (recomputing after every event) agrees
//! with an engine that sees the same events and computes once, from scratch.

use psg_testkit::edges::{one_flow, resource};
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use psg_classify::engine::{Engine, Settings};
use psg_domain::time::{Micros, SECOND};
use psg_domain::{
    CloudProvider, EdgeKind, Endpoint, EndpointKind, FlowAction, FlowEdge, PciScope, Resource, ResourceType, SourceRef,
};

const DAY: Micros = 86_400 * SECOND;

#[derive(Debug, Clone)]
enum Event {
    /// `interface`: the resource lists another one as its interface.
    Upsert {
        id: usize,
        scope: Option<&'static str>,
        data: bool,
        deleted: bool,
        interface: Option<usize>,
        /// Its security group `sg-<n>`.
        group: Option<usize>,
        /// On GCP network `prod` with network tag `t<n>`.
        tag: Option<usize>,
        /// Behind Azure NSG `pay-nsg`, in application security group `a<n>`.
        asg: Option<usize>,
    },
    /// Azure NSG `pay-nsg`: one rule (deny, priority, from an application
    /// security group or one resource's address, which); `None` deletes it.
    Nsg {
        rule: Option<(bool, u32, bool, usize)>,
    },
    /// Security group `sg-<id>`: admits TCP/5432 from a group, or from one
    /// resource's address; `None` deletes it.
    Group {
        id: usize,
        rule: Option<(bool, usize)>,
    },
    /// GCP firewall rule `fw-<id>` of network `prod`: (deny, priority,
    /// from a tag or one resource's address, its source, target tag); `None`
    /// deletes it.
    Firewall {
        id: usize,
        rule: Option<(bool, u32, bool, usize, Option<usize>)>,
    },
    Edge {
        src: usize,
        dst: usize,
        accept: bool,
        day: i64,
    },
    Manual {
        id: usize,
        scope: Option<PciScope>,
    },
    /// Correlate found every accepted report of the service blocked by the
    /// other end.
    Withdraw {
        src: usize,
        dst: usize,
    },
}

const NETWORK: &str = "projects/p/global/networks/prod";
const AZ: &str = "/subscriptions/s/resourcegroups/g/providers/microsoft.network";
const NSG: &str = "/subscriptions/s/resourcegroups/g/providers/microsoft.network/networksecuritygroups/pay-nsg";

const IDS: [&str; 6] = ["r0", "r1", "r2", "r3", "ip:10.9.9.9", "ip:203.0.113.1"];

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            0usize..4,
            prop_oneof![
                Just(None),
                Just(Some("cde")),
                Just(Some("connected-cde")),
                Just(Some("out-of-scope")),
                Just(Some("bogus"))
            ],
            any::<bool>(),
            proptest::bool::weighted(0.1),
            proptest::option::weighted(0.3, 0usize..4),
            proptest::option::weighted(0.6, 0usize..3),
            proptest::option::weighted(0.4, 0usize..3),
            proptest::option::weighted(0.3, 0usize..3)
        )
            .prop_map(|(id, scope, data, deleted, interface, group, tag, asg)| Event::Upsert {
                id,
                scope,
                data: data && scope.is_none(),
                deleted,
                interface,
                group,
                tag,
                asg
            }),
        proptest::option::weighted(
            0.8,
            (proptest::bool::weighted(0.3), prop_oneof![Just(200u32), Just(300u32)], any::<bool>(), 0usize..4)
        )
        .prop_map(|rule| Event::Nsg { rule }),
        (
            0usize..3,
            proptest::option::weighted(
                0.8,
                (
                    proptest::bool::weighted(0.3),
                    prop_oneof![Just(900u32), Just(1000u32)],
                    any::<bool>(),
                    0usize..4,
                    proptest::option::weighted(0.7, 0usize..3)
                )
            )
        )
            .prop_map(|(id, rule)| Event::Firewall { id, rule }),
        (0usize..3, proptest::option::weighted(0.8, (any::<bool>(), 0usize..4)))
            .prop_map(|(id, rule)| Event::Group { id, rule }),
        (0usize..6, 0usize..6, proptest::bool::weighted(0.8), 0i64..200)
            .prop_map(|(src, dst, accept, day)| Event::Edge { src, dst, accept, day }),
        (0usize..4, prop_oneof![Just(None), Just(Some(PciScope::Cde)), Just(Some(PciScope::OutOfScope))])
            .prop_map(|(id, scope)| Event::Manual { id, scope }),
        (0usize..6, 0usize..6).prop_map(|(src, dst)| Event::Withdraw { src, dst }),
    ]
}

fn kind(i: usize) -> EndpointKind {
    match i {
        4 => EndpointKind::UnknownHost,
        5 => EndpointKind::External,
        _ => EndpointKind::Resource,
    }
}

fn apply(e: &mut Engine, ev: &Event) {
    match ev {
        Event::Group { id, rule } => {
            let gid = format!("sg-{id}");
            let mut r = Resource::new(
                gid.clone(),
                CloudProvider::Aws,
                ResourceType::SecurityGroup,
                0,
                SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
            );
            let ingress = match rule {
                Some((true, n)) => serde_json::json!([{"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432,
                    "ipv4Ranges": [{"cidrIp": format!("10.0.0.{n}/32")}]}]),
                Some((false, n)) => serde_json::json!([{"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432,
                    "userIdGroupPairs": [{"groupId": format!("sg-{}", n % 3)}]}]),
                None => serde_json::json!([]),
            };
            r.deleted = rule.is_none();
            r.metadata_json = Some(
                serde_json::json!({"groupId": gid, "ipPermissions": ingress,
                    "ipPermissionsEgress": [{"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}]})
                .to_string(),
            );
            e.upsert_resource(&r);
        }
        Event::Firewall { id, rule } => {
            let name = format!("fw-{id}");
            let mut r = Resource::new(
                format!("//compute.googleapis.com/projects/p/global/firewalls/{name}"),
                CloudProvider::Gcp,
                ResourceType::FirewallRule,
                0,
                SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
            );
            r.deleted = rule.is_none();
            if let Some((deny, priority, by_tag, n, target)) = rule {
                let mut data = serde_json::json!({"name": name, "network": NETWORK, "priority": priority});
                let services = serde_json::json!([{"IPProtocol": "tcp", "ports": ["5432"]}]);
                data[if *deny { "denied" } else { "allowed" }] = services;
                if *by_tag {
                    data["sourceTags"] = serde_json::json!([format!("t{}", n % 3)]);
                } else {
                    data["sourceRanges"] = serde_json::json!([format!("10.0.0.{n}/32")]);
                }
                if let Some(t) = target {
                    data["targetTags"] = serde_json::json!([format!("t{t}")]);
                }
                r.metadata_json = Some(data.to_string());
            }
            e.upsert_resource(&r);
        }
        Event::Nsg { rule } => {
            let mut r = Resource::new(
                NSG,
                CloudProvider::Azure,
                ResourceType::SecurityGroup,
                0,
                SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
            );
            r.deleted = rule.is_none();
            if let Some((deny, priority, by_asg, n)) = rule {
                let mut p = serde_json::json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "5432",
                    "destinationAddressPrefix": "*", "access": if *deny { "Deny" } else { "Allow" },
                    "priority": priority, "direction": "Inbound"});
                if *by_asg {
                    p["sourceApplicationSecurityGroups"] =
                        serde_json::json!([{"id": format!("{AZ}/applicationsecuritygroups/a{}", n % 3)}]);
                } else {
                    p["sourceAddressPrefix"] = serde_json::json!(format!("10.0.0.{n}"));
                }
                r.metadata_json =
                    Some(serde_json::json!({"securityRules": [{"name": "r", "properties": p}]}).to_string());
            }
            e.upsert_resource(&r);
        }
        Event::Upsert { id, scope, data, deleted, interface, group, tag, asg } => {
            let mut r = Resource::new(
                IDS[*id],
                CloudProvider::Aws,
                ResourceType::Ec2Instance,
                0,
                SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
            );
            let mut tags = HashMap::new();
            if let Some(s) = scope {
                tags.insert("pci-scope".to_owned(), (*s).to_owned());
            }
            if *data {
                tags.insert("pci-data".to_owned(), "stores-cardholder".to_owned());
            }
            r.tags = tags;
            r.deleted = *deleted;
            r.interface_ids = interface.iter().map(|i| IDS[*i].to_owned()).collect();
            r.private_ips = vec![format!("10.0.0.{id}")];
            r.security_groups = group.iter().map(|g| format!("sg-{g}")).collect();
            if let Some(t) = tag {
                r.security_groups.push(NETWORK.to_owned());
                r.security_groups.push(format!("tag:t{t}"));
            }
            if let Some(a) = asg {
                r.security_groups.push(NSG.to_owned());
                r.security_groups.push(format!("{AZ}/virtualnetworks/v"));
                r.security_groups.push(format!("{AZ}/applicationsecuritygroups/a{a}"));
            }
            e.upsert_resource(&r);
        }
        Event::Edge { .. } | Event::Withdraw { .. } => {
            let (src, dst, accept, day, kind_of_edge) = match ev {
                Event::Edge { src, dst, accept, day } => (src, dst, accept, *day, EdgeKind::Window),
                Event::Withdraw { src, dst } => (src, dst, &true, 0, EdgeKind::Withdrawn),
                _ => unreachable!(),
            };
            let end =
                |i: usize| Endpoint { resource_id: IDS[i].to_owned(), kind: kind(i), address: None, vpc_id: None };
            let t = day * DAY;
            let action = if *accept { FlowAction::Accept } else { FlowAction::Reject };
            e.add_edge(&FlowEdge { kind: kind_of_edge, ..one_flow(end(*src), end(*dst), 443, action, t) });
        }
        Event::Manual { id, scope } => e.set_manual(IDS[*id], scope.map(|s| (s, "operator".to_owned()))),
    }
}

fn settings() -> Settings {
    Settings {
        scope_tag_key: "pci-scope".into(),
        data_tag_key: "pci-data".into(),
        lookback: 90 * DAY,
        policy: None,
        coverage_grace: 0,
    }
}

/// Scope and rule of every classifiable resource: neither depends on the
/// order the events came in.
fn current(e: &Engine) -> BTreeMap<String, (PciScope, psg_domain::ScopeRule)> {
    e.decisions()
        .iter()
        .filter(|(id, _)| e.is_classifiable(id))
        .map(|(id, o)| (id.clone(), (o.scope, o.rule)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn incremental_agrees_with_from_scratch(events in proptest::collection::vec(arb_event(), 1..60)) {
        let mut incremental = Engine::new(settings());
        for ev in &events {
            apply(&mut incremental, ev);
            incremental.recompute();
        }
        let mut scratch = Engine::new(settings());
        for ev in &events {
            apply(&mut scratch, ev);
        }
        scratch.recompute_all();
        prop_assert_eq!(current(&incremental), current(&scratch), "events: {:?}", events);
        // And recomputing everything changes nothing in the incremental engine.
        let (changes, _) = incremental.recompute_all();
        prop_assert!(changes.is_empty(), "{:?}", changes);
    }
}

/// A larger graph, so the from-scratch recompute takes the "many nodes"
/// path (the CDE's neighbours found from the CDE side) while the
/// incremental one looks at each node's own edges.
#[test]
fn many_node_recompute_agrees_with_per_node_recompute() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..30 {
        let n = 120usize;
        let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let mut events: Vec<(usize, usize, bool, &'static str)> = Vec::new();
        for _ in 0..400 {
            let scope = ["cde", "connected-cde", "out-of-scope", ""][(next() % 4) as usize];
            events.push(((next() as usize) % n, (next() as usize) % n, next() % 5 != 0, scope));
        }
        let build = |incremental: bool| {
            let mut e = Engine::new(settings());
            for (i, id) in ids.iter().enumerate() {
                let mut r = Resource::new(
                    id.clone(),
                    CloudProvider::Aws,
                    ResourceType::Ec2Instance,
                    0,
                    SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
                );
                let scope = events[i % events.len()].3;
                if !scope.is_empty() {
                    r.tags.insert("pci-scope".into(), scope.into());
                }
                e.upsert_resource(&r);
                if incremental {
                    e.recompute();
                }
            }
            for (k, (a, b, accept, _)) in events.iter().enumerate() {
                let day = 1 + (k as i64 % 3);
                let action = if *accept { FlowAction::Accept } else { FlowAction::Reject };
                e.add_edge(&one_flow(resource(&ids[*a]), resource(&ids[*b]), 443, action, day * DAY));
                if incremental {
                    e.recompute();
                }
            }
            if !incremental {
                e.recompute_all();
            }
            e
        };
        let (inc, scratch) = (build(true), build(false));
        assert_eq!(current(&inc), current(&scratch));
    }
}
