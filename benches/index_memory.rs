//! Memory of correlate's attribution index: `cargo bench --bench index_memory`
//! prints the resident memory the index adds for 1,000,000 addresses, held
//! by 1,000,000 resources of one address each, and by 250,000 resources of
//! four addresses each (each resource also has one interface id).

use psg_correlate::attribution::Index;
use psg_domain::{CloudProvider, Resource, ResourceType, SourceRef};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn build(resources: u32, per_resource: u32) -> (Index, u64) {
    let before = rss_bytes();
    let mut index = Index::new();
    let source = SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 };
    let mut n: u32 = 0;
    for i in 0..resources {
        let mut r =
            Resource::new(format!("i-{i:017x}"), CloudProvider::Aws, ResourceType::Ec2Instance, 0, source.clone());
        r.vpc_id = Some(format!("vpc-{:08x}", i % 64));
        r.interface_ids = vec![format!("eni-{i:017x}")];
        for _ in 0..per_resource {
            r.private_ips.push(format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255));
            n += 1;
        }
        index.apply(&r);
    }
    let after = rss_bytes();
    (index, after.saturating_sub(before))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("index_memory: bench");
        return;
    }
    for (resources, per) in [(1_000_000u32, 1u32), (250_000, 4)] {
        let (index, bytes) = build(resources, per);
        println!(
            "index: {} addresses of {} resources ({} each): {:.1} MB resident ({:.0} bytes per address)",
            index.addresses(),
            index.resources(),
            per,
            bytes as f64 / 1e6,
            bytes as f64 / f64::from(resources * per)
        );
        drop(index);
    }
}
