//! The estate against the real ingest parsers, and the story it tells
//! checked with a small attribution of its own.

use std::collections::{BTreeMap, BTreeSet};

use psg_domain::{CloudProvider, FlowAction, FlowFormat, FlowRecord, Resource};
use psg_ingest::flowlogs::{self, AwsLayouts};
use psg_ingest::parsed::MessageCtx;
use psg_ingest::{inventory, payload};

use super::*;

/// ingest refuses a message larger than this once expanded (here: the
/// Kafka message size the files are meant to fit in).
const LIMIT: usize = 900 * 1000;

struct Parsed {
    resources: Vec<Resource>,
    flows: Vec<FlowRecord>,
}

fn parse_all(estate: &Estate) -> Parsed {
    let (mut resources, mut flows) = (Vec::new(), Vec::new());
    for (i, f) in estate.files.iter().enumerate() {
        let text = payload::decode(&f.bytes, LIMIT).unwrap_or_else(|e| panic!("{}: {e}", f.path));
        assert!(text.len() < LIMIT, "{} is {} bytes", f.path, text.len());
        assert_eq!(f.path.ends_with(".gz"), f.bytes.starts_with(&[0x1f, 0x8b]), "{}", f.path);
        match f.kind {
            FileKind::Inventory => {
                let ctx = MessageCtx { topic: "inventory.raw", partition: 0, offset: i as i64, time: None };
                let p = inventory::parse(&text, ctx);
                assert!(p.rejected.is_empty(), "{}: {:#?}", f.path, p.rejected.first());
                assert!(!p.records.is_empty(), "{}", f.path);
                resources.extend(p.records);
            }
            FileKind::FlowLogs => {
                let ctx = MessageCtx { topic: "flowlogs.raw", partition: 0, offset: i as i64, time: None };
                let p = flowlogs::parse(&text, None, &AwsLayouts::default(), ctx);
                assert!(p.rejected.is_empty(), "{}: {:#?}", f.path, p.rejected.first());
                assert!(!p.records.is_empty(), "{}", f.path);
                flows.extend(p.records);
            }
        }
    }
    Parsed { resources, flows }
}

#[test]
fn the_same_seed_gives_byte_identical_files() {
    let (a, b) = (generate(42), generate(42));
    assert_eq!(a, b);
    let c = generate(43);
    assert_ne!(a.files, c.files);
    let paths: BTreeSet<&str> = a.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths.len(), a.files.len(), "paths are unique");
    let first_flow = a.files.iter().position(|f| f.kind == FileKind::FlowLogs).unwrap();
    assert!(a.files[first_flow..].iter().all(|f| f.kind == FileKind::FlowLogs), "inventory comes first");
}

/// The estate of a seed is the same from build to build (the demo, the
/// benches and the tests name its systems): a digest of every file's path
/// and bytes, as generated before `plan` was split into its parts.
#[test]
fn the_estate_of_a_seed_does_not_change_between_builds() {
    use sha2::{Digest, Sha256};
    let digest = |seed: u64| {
        let mut h = Sha256::new();
        for f in generate(seed).files {
            h.update(f.path.as_bytes());
            h.update((f.bytes.len() as u64).to_le_bytes());
            h.update(&f.bytes);
        }
        format!("{:x}", h.finalize())
    };
    assert_eq!(digest(1), "62faf50b0ea7aeef7261d3bb9582401821aeac0477a705913f1927bffc6c976a");
    assert_eq!(digest(42), "f7e15e09ddb2336ab5947dc1e03f866359a964522390dc0b99b79f5497fe4738");
}

#[test]
fn every_file_parses_with_nothing_rejected_and_the_counts_match() {
    let estate = generate(42);
    let p = parse_all(&estate);
    assert_eq!(p.resources.len(), estate.expected.resources);
    assert_eq!(p.flows.len(), estate.expected.flow_records);
    assert!((250..=350).contains(&p.resources.len()), "{} resources", p.resources.len());

    let providers: BTreeSet<String> = p.resources.iter().map(|r| r.provider.to_string()).collect();
    assert_eq!(providers, BTreeSet::from(["aws", "azure", "gcp", "on_premise"].map(str::to_owned)));
    let formats: BTreeSet<String> = p.flows.iter().map(|f| f.format.to_string()).collect();
    assert_eq!(formats, BTreeSet::from(["aws-vpc", "azure-nsg-v2", "gcp-vpc"].map(str::to_owned)));
    for provider in [CloudProvider::Aws, CloudProvider::Azure, CloudProvider::Gcp] {
        assert!(p.resources.iter().filter(|r| r.provider == provider).count() >= 40, "{provider}");
    }
    // One S3 object (or more) per VPC's flow log.
    let aws_logs = estate.files.iter().filter(|f| f.path.ends_with(".log.gz")).count();
    assert!(aws_logs >= 4, "{aws_logs} AWS flow-log files");
    // Every record is in the window.
    let (lo, hi) = (time::WINDOW_START as i64 * 1_000_000, (time::WINDOW_START + 3_600) as i64 * 1_000_000);
    assert!(p.flows.iter().all(|f| f.start_time >= lo && f.end_time <= hi));
    assert!(p.resources.iter().all(|r| r.observed_at < lo));
}

/// Who holds an address: the resource listing it, or its owner (the
/// resource listing that one among its interfaces).
fn holders(resources: &[Resource]) -> BTreeMap<String, &Resource> {
    let by_id: BTreeMap<&str, &Resource> = resources.iter().map(|r| (r.resource_id.as_str(), r)).collect();
    let mut owner: BTreeMap<&str, &Resource> = BTreeMap::new();
    for r in resources {
        for i in &r.interface_ids {
            if by_id.contains_key(i.as_str()) {
                owner.insert(i.as_str(), r);
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in resources {
        let holder = owner.get(r.resource_id.as_str()).copied().unwrap_or(r);
        for ip in &r.private_ips {
            assert!(out.insert(ip.clone(), holder).is_none(), "{ip} is held twice");
        }
    }
    out
}

fn is_cde(r: &Resource) -> bool {
    r.tags.get("pci-scope").map(String::as_str) == Some("cde") || r.tags.contains_key("pci-data")
}

/// The story the estate is built to tell, checked on what ingest parsed.
fn check_story(seed: u64) {
    let estate = generate(seed);
    let e = &estate.expected;
    let p = parse_all(&estate);
    assert_eq!(p.resources.len(), e.resources, "seed {seed}");
    assert_eq!(p.flows.len(), e.flow_records, "seed {seed}");
    let by_ip = holders(&p.resources);
    let by_id: BTreeMap<&str, &Resource> = p.resources.iter().map(|r| (r.resource_id.as_str(), r)).collect();

    let mut cde: Vec<String> = p.resources.iter().filter(|r| is_cde(r)).map(|r| r.resource_id.clone()).collect();
    cde.sort();
    assert_eq!(cde, e.cde);

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Who {
        Resource(String),
        Unknown(String),
        Public(String),
    }
    let who = |ip: &str| match by_ip.get(ip) {
        Some(r) => Who::Resource(r.resource_id.clone()),
        None if aws::is_private(ip) => Who::Unknown(ip.to_owned()),
        None => Who::Public(ip.to_owned()),
    };
    let cde_ids: BTreeSet<&str> = e.cde.iter().map(String::as_str).collect();
    let in_cde = |w: &Who| matches!(w, Who::Resource(id) if cde_ids.contains(id.as_str()));
    let tag = |w: &Who, key: &str| match w {
        Who::Resource(id) => by_id[id.as_str()].tags.get(key).cloned(),
        _ => None,
    };

    let mut accepted: BTreeMap<(Who, Who), BTreeSet<i32>> = BTreeMap::new();
    let mut rejected: BTreeSet<(Who, Who)> = BTreeSet::new();
    // A connection one end accepted and the other rejected is blocked.
    let connection = |f: &psg_domain::FlowRecord| {
        let a = f.pkt_src_addr.as_ref().or(f.src_addr.as_ref()).cloned();
        let b = f.pkt_dst_addr.as_ref().or(f.dst_addr.as_ref()).cloned();
        (a, b, f.src_port, f.dst_port, f.protocol)
    };
    let blocked: BTreeSet<_> =
        p.flows.iter().filter(|f| f.action == Some(FlowAction::Reject)).map(connection).collect();
    let mut split = 0;
    for f in &p.flows {
        if f.action == Some(FlowAction::Accept) && blocked.contains(&connection(f)) {
            split += 1;
            continue;
        }
        let (Some(src), Some(dst)) =
            (f.pkt_src_addr.as_ref().or(f.src_addr.as_ref()), f.pkt_dst_addr.as_ref().or(f.dst_addr.as_ref()))
        else {
            continue; // NODATA
        };
        let pair = (who(src), who(dst));
        match f.action {
            Some(FlowAction::Accept) => {
                // The service's port: replies go to the client's ephemeral port.
                let port = match (f.src_port, f.dst_port) {
                    (Some(s), Some(d)) if d >= 32_768 => s,
                    (_, d) => d.unwrap_or(0),
                };
                accepted.entry(pair).or_default().insert(port);
            }
            Some(FlowAction::Reject) => {
                rejected.insert(pair);
            }
            None => panic!("a record with addresses and no action: {f:?}"),
        }
    }
    // Accepted flows touching the CDE, seen from the CDE side: the peer and its ports.
    let mut cde_peers: BTreeMap<Who, BTreeSet<(Who, i32)>> = BTreeMap::new();
    for ((a, b), ports) in &accepted {
        for (x, y) in [(a, b), (b, a)] {
            if in_cde(x) && !in_cde(y) {
                cde_peers.entry(y.clone()).or_default().extend(ports.iter().map(|p| (x.clone(), *p)));
            }
        }
    }

    // Exactly one out-of-scope resource connected to the CDE: the violator, to the violated DB on 5432.
    let violators: Vec<&Who> =
        cde_peers.keys().filter(|w| tag(w, "pci-scope").as_deref() == Some("out-of-scope")).collect();
    assert_eq!(violators, [&Who::Resource(e.violator.clone())], "seed {seed}");
    let violation = &cde_peers[&Who::Resource(e.violator.clone())];
    assert!(violation.contains(&(Who::Resource(e.violated.clone()), 5432)), "{violation:?}");
    let jenkins_ip = &by_id[e.violator.as_str()].private_ips[0];
    let db_ip = &by_id[e.violated.as_str()].private_ips[0];
    assert!(p.flows.iter().any(|f| f.src_addr.as_deref() == Some(jenkins_ip.as_str())
        && f.dst_addr.as_deref() == Some(db_ip.as_str())
        && f.dst_port == Some(5432)
        && f.action == Some(FlowAction::Accept)));
    assert_eq!(by_id[e.violated.as_str()].resource_name.as_deref(), Some("payments-db-primary-eni"));
    assert_eq!(by_id[e.violator.as_str()].resource_name.as_deref(), Some("jenkins"));

    // Exactly one unknown internal host anywhere, talking to the CDE.
    let unknown: BTreeSet<&Who> =
        accepted.keys().chain(&rejected).flat_map(|(a, b)| [a, b]).filter(|w| matches!(w, Who::Unknown(_))).collect();
    assert_eq!(unknown, BTreeSet::from([&Who::Unknown(e.unknown_host_ip.clone())]));
    assert!(cde_peers.contains_key(&Who::Unknown(e.unknown_host_ip.clone())));

    // The CDE's one public peer is the payment gateway, on 443.
    let public: Vec<(&Who, &BTreeSet<(Who, i32)>)> =
        cde_peers.iter().filter(|(w, _)| matches!(w, Who::Public(_))).collect();
    assert_eq!(public.len(), 1);
    assert_eq!(public[0].0, &Who::Public(e.internet_peer_ip.clone()));
    assert!(public[0].1.iter().all(|(_, port)| *port == 443));
    // ... and it is reached from all three clouds.
    let gateway_clouds: BTreeSet<FlowFormat> = p
        .flows
        .iter()
        .filter(|f| f.dst_addr.as_deref() == Some(e.internet_peer_ip.as_str()))
        .map(|f| f.format)
        .collect();
    assert_eq!(gateway_clouds.len(), 3);

    // Monitoring: tagged connected-cde, scraping node exporters only.
    let mon = Who::Resource(e.connected_monitoring.clone());
    assert_eq!(tag(&mon, "pci-scope").as_deref(), Some("connected-cde"));
    assert!(cde_peers[&mon].iter().all(|(_, port)| *port == 9100));
    assert!(cde_peers[&mon].len() >= 15, "scrapes the CDE servers of every cloud");

    // Every other peer of the CDE is a web server, untagged for scope, on 443.
    let mut web = 0;
    for (peer, via) in &cde_peers {
        if [&mon, &Who::Resource(e.violator.clone()), &Who::Unknown(e.unknown_host_ip.clone())].contains(&peer)
            || matches!(peer, Who::Public(_))
        {
            continue;
        }
        let Who::Resource(id) = peer else { unreachable!() };
        let r = by_id[id.as_str()];
        let name = r.resource_name.as_deref().unwrap_or_default();
        assert!(name.starts_with("web-") || name.starts_with("storefront-"), "{name} talks to the CDE");
        assert!(!r.tags.contains_key("pci-scope"), "{name}");
        assert!(via.iter().all(|(_, port)| *port == 443), "{name}: {via:?}");
        web += 1;
    }
    assert!(web >= 40, "{web} web servers");

    // Refused attempts from corporate systems at the CDE, which connect nothing.
    assert!(split >= 3, "attempts accepted at the source and rejected at the destination: {split}");
    let attempts: Vec<&(Who, Who)> = rejected.iter().filter(|(a, b)| in_cde(a) || in_cde(b)).collect();
    assert!(attempts.len() >= 5, "{attempts:?}");
    for (a, b) in attempts {
        assert_eq!(tag(a, "pci-scope").as_deref(), Some("out-of-scope"), "{a:?} -> {b:?}");
        assert!(in_cde(b));
        assert!(!accepted.contains_key(&(a.clone(), b.clone())) && !accepted.contains_key(&(b.clone(), a.clone())));
    }

    // Corporate systems talk among themselves and to the internet.
    let corp = |w: &Who| tag(w, "pci-scope").as_deref() == Some("out-of-scope");
    assert!(accepted.keys().filter(|(a, b)| corp(a) && corp(b)).count() > 50);
    assert!(accepted.keys().filter(|(a, b)| corp(a) && matches!(b, Who::Public(_))).count() > 20);

    // Untagged resources: pending review.
    let untagged = p.resources.iter().filter(|r| !r.tags.contains_key("pci-scope") && !r.tags.contains_key("pci-data"));
    let names: BTreeSet<&str> = untagged.filter_map(|r| r.resource_name.as_deref()).collect();
    for name in ["test-instance-1", "vm-test-jdoe", "scratch-vm-7", "legacy-batch-01"] {
        assert!(names.contains(name), "{name}");
    }
}

#[test]
fn the_estate_tells_its_story() {
    check_story(42);
}

#[test]
fn other_seeds_tell_the_same_story() {
    for seed in [0, 1, 7, 2026, u64::MAX] {
        check_story(seed);
    }
}

#[test]
fn large_logs_are_split_into_files_that_each_parse_whole() {
    let lines = (0..10).map(|i| format!("2 123456789012 eni-1 10.0.0.1 10.0.0.2 4000{i} 443 6 1 60 1 2 ACCEPT OK"));
    let chunks = chunk_max(lines, Some(aws::FORMAT.split(" vpc-id").next().unwrap()), 400);
    assert!(chunks.len() > 2, "{chunks:?}");
    assert_eq!(chunks.iter().map(|(_, n)| n).sum::<usize>(), 10);
    for (text, n) in &chunks {
        assert!(text.len() <= 400);
        let ctx = MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 0, time: None };
        let p = flowlogs::parse(text.as_bytes(), None, &AwsLayouts::default(), ctx);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), *n);
    }

    let nsg = r#"{"time":"2026-11-01T00:09:59.0000000Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG","properties":{"Version":2,"flows":[{"rule":"r","flows":[{"mac":"000D3A000001","flowTuples":["1793491201,10.0.0.1,10.0.0.2,40000,443,T,O,A,E,1,60,1,60","1793491202,10.0.0.1,10.0.0.2,40001,443,T,O,A,E,1,60,1,60"]}]}]}}"#;
    let blobs = chunk_json_records_max((0..5).map(|_| (nsg.to_owned(), 2)).collect(), 1_000);
    assert!(blobs.len() > 1);
    assert_eq!(blobs.iter().map(|(_, n)| n).sum::<usize>(), 10);
    for (text, n) in &blobs {
        assert!(text.len() <= 1_000);
        let p = flowlogs::parse_json(
            text.as_bytes(),
            MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 0, time: None },
        );
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), *n);
    }
}
