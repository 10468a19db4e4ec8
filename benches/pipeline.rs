//! Benchmarks of the pure core: `cargo bench --bench pipeline`.
//!
//! - `aws_parse`: one default-format AWS VPC flow-log line → FlowRecord;
//! - `avro_encode`: FlowRecord → Avro single-object bytes;
//! - `attribute_and_window_100k_resources`: both ends of a flow attributed
//!   (index of 100,000 resources) and the observation added to its window.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use psg_correlate::attribution::Index;
use psg_correlate::windows::{Connection, EdgeKey, Observation, Windows};
use psg_domain::time::SECOND;
use psg_domain::{CloudProvider, EdgeDirection, FlowAction, Resource, ResourceType, SourceRef};
use psg_ingest::aws::{Layout, parse_line};

/// The allocator the binary runs with (`src/main.rs`), so that the figures
/// are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LINE: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

fn source() -> SourceRef {
    SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 0, line: 1 }
}

fn bench_parse(c: &mut Criterion) {
    let layout = Layout::default_v2();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("aws_parse", |b| b.iter(|| parse_line(&layout, black_box(LINE), source())));
    let rec = parse_line(&layout, LINE, source()).expect("valid line");
    g.bench_function("avro_encode", |b| b.iter(|| psg_avro_codec::encode(black_box(&rec))));
    g.finish();
}

fn resource(i: u32) -> Resource {
    let id = format!("i-{i:08}");
    Resource {
        id: psg_domain::ids::resource_uuid(&id).to_string(),
        resource_id: id,
        provider: CloudProvider::Aws,
        resource_type: ResourceType::Ec2Instance,
        resource_arn: None,
        resource_name: None,
        account_id: None,
        region: None,
        availability_zone: None,
        vpc_id: Some("vpc-1".into()),
        subnet_id: None,
        private_ips: vec![format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)],
        public_ips: vec![],
        interface_ids: vec![format!("eni-{i:08}")],
        security_groups: vec![],
        tags: HashMap::new(),
        observed_at: 0,
        deleted: false,
        metadata_json: None,
        source: source(),
    }
}

fn bench_correlate(c: &mut Criterion) {
    const RESOURCES: u32 = 100_000;
    let mut index = Index::new();
    for i in 0..RESOURCES {
        index.apply(&resource(i));
    }
    let addr = |i: u32| -> std::net::IpAddr {
        format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255).parse().expect("ip")
    };
    // 4096 distinct connections between random pairs of resources.
    let pairs: Vec<(std::net::IpAddr, std::net::IpAddr, i32)> = (0..4096u32)
        .map(|n| {
            (
                addr(n.wrapping_mul(7919) % RESOURCES),
                addr(n.wrapping_mul(104_729) % RESOURCES),
                1024 + (n % 20_000) as i32,
            )
        })
        .collect();
    let topic: Arc<str> = Arc::from("flows.normalized");
    let mut windows = Windows::new(60 * SECOND, 120 * SECOND);
    let mut n: usize = 0;
    let mut g = c.benchmark_group("correlate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("attribute_and_window_100k_resources", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let (src, dst, port) = pairs[n % pairs.len()];
            let t = n as i64 * 1000; // 1,000 records per second of event time
            let obs = Observation {
                key: EdgeKey {
                    src: index.attribute(src, t, CloudProvider::Aws),
                    dst: index.attribute(dst, t, CloudProvider::Aws),
                    protocol: 6,
                    dst_port: 443,
                    action: FlowAction::Accept,
                },
                connection: Connection { src, dst, src_port: port, dst_port: 443 },
                reporter: (n % 2) as u64,
                direction: EdgeDirection::IntraVpc,
                event_time: t,
                packets: 1,
                bytes: 100,
                encryption: psg_correlate::windows::Encryption::Unknown,
                action_logged: true,
                topic: Arc::clone(&topic),
                partition: 0,
                offset: n as i64,
                line: 1,
            };
            black_box(windows.add(obs));
            if n % 1000 == 0 {
                black_box(windows.close_ready());
                black_box(windows.drain_touched());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_correlate);
criterion_main!(benches);
