//! The scope engine at scale: `cargo bench --bench scope_engine` builds a
//! graph of 100,000 resources (5% declared CDE) and 1,000,000 edges, and
//! prints resident bytes per edge, full-recompute time, and the latency
//! distribution of one edge update (add the edge, recompute what it affects).

use std::hint::black_box;
use std::time::{Duration, Instant};

use psg_classify::engine::{Engine, Settings};
use psg_domain::time::{Micros, SECOND};
use psg_domain::{CloudProvider, FlowAction, FlowEdge, Resource, ResourceType, SourceRef};
use psg_testkit::Rng;
use psg_testkit::edges::{one_flow, resource};

const RESOURCES: usize = 100_000;
const EDGES: usize = 1_000_000;
const DAY: Micros = 86_400 * SECOND;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn edge(ids: &[String], rng: &mut Rng, t: Micros) -> FlowEdge {
    let (a, b) = (rng.next_u64() as usize % ids.len(), rng.next_u64() as usize % ids.len());
    let port = [22, 443, 5432, 6379, 8080, 9100][rng.next_u64() as usize % 6];
    let action = if rng.next_u64() % 10 == 0 { FlowAction::Reject } else { FlowAction::Accept };
    one_flow(resource(&ids[a]), resource(&ids[b]), port, action, t)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("scope_engine: bench");
        return;
    }
    let ids: Vec<String> = (0..RESOURCES).map(|i| format!("i-{i:017x}")).collect();
    let before = rss_bytes();
    let mut engine = Engine::new(Settings {
        scope_tag_key: "pci-scope".into(),
        data_tag_key: "pci-data".into(),
        lookback: 90 * DAY,
        policy: None,
        coverage_grace: 0,
    });
    for (i, id) in ids.iter().enumerate() {
        let mut r = Resource::new(
            id.clone(),
            CloudProvider::Aws,
            ResourceType::Ec2Instance,
            0,
            SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
        );
        let scope = if i % 20 == 0 {
            "cde"
        } else if i % 3 == 0 {
            "out-of-scope"
        } else {
            "connected-cde"
        };
        r.tags.insert("pci-scope".into(), scope.into());
        engine.upsert_resource(&r);
    }
    engine.recompute();
    let after_nodes = rss_bytes();
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let t0 = 10 * DAY;
    // Random pairs rarely repeat, so EDGES additions give about EDGES edges.
    for _ in 0..EDGES {
        engine.add_edge(&edge(&ids, &mut rng, t0));
    }
    let after_edges = rss_bytes();
    let started = Instant::now();
    engine.recompute();
    println!(
        "built: {} nodes, {} edges (first recompute of the touched graph {:.0} ms)",
        engine.node_count(),
        engine.edge_count(),
        started.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "memory: nodes {:.1} MB, edges {:.1} MB = {:.0} bytes per edge resident",
        (after_nodes - before) as f64 / 1e6,
        (after_edges - after_nodes) as f64 / 1e6,
        (after_edges - after_nodes) as f64 / engine.edge_count() as f64
    );
    let mut full = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        black_box(engine.recompute_all());
        full.push(t.elapsed());
    }
    full.sort();
    println!(
        "full recompute ({} resources, {} edges): median {:.1} ms, best {:.1} ms",
        RESOURCES,
        engine.edge_count(),
        full[2].as_secs_f64() * 1e3,
        full[0].as_secs_f64() * 1e3
    );
    let mut updates = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let e = edge(&ids, &mut rng, t0 + i * SECOND);
        let t = Instant::now();
        engine.add_edge(&e);
        black_box(engine.recompute());
        updates.push(t.elapsed());
    }
    updates.sort();
    println!(
        "one edge update (add + incremental recompute), 20,000 updates: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        percentile(&updates, 0.5).as_secs_f64() * 1e6,
        percentile(&updates, 0.99).as_secs_f64() * 1e6,
        updates[updates.len() - 1].as_secs_f64() * 1e6
    );
}
