//! Benchmarks of the pure core: `cargo bench --bench pipeline`.
//!
//! - `aws_parse`: one default-format AWS VPC flow-log line → FlowRecord;
//! - `avro_encode`: FlowRecord → Avro single-object bytes;
//! - `attribute_and_window`: FlowRecord → attributed edge observation in a
//!   window, with an index of 10,000 resources.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use psg_correlate::attribution::Index;
use psg_correlate::windows::{EdgeKey, Observation, Windows};
use psg_domain::time::SECOND;
use psg_domain::{CloudProvider, EdgeDirection, FlowAction, Resource, ResourceType, SourceRef};
use psg_ingest::aws::{Layout, parse_line};

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
    let mut index = Index::new();
    for i in 0..10_000 {
        index.apply(&resource(i));
    }
    let topic: Arc<str> = Arc::from("flows.normalized");
    let mut windows = Windows::new(60 * SECOND, 120 * SECOND);
    let mut n: u32 = 0;
    let mut g = c.benchmark_group("correlate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("attribute_and_window", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let (a, z) = (n % 10_000, (n * 7) % 10_000);
            let src = format!("10.{}.{}.{}", (a >> 16) & 255, (a >> 8) & 255, a & 255).parse().expect("ip");
            let dst = format!("10.{}.{}.{}", (z >> 16) & 255, (z >> 8) & 255, z & 255).parse().expect("ip");
            let t = i64::from(n) * 1000;
            let obs = Observation {
                key: EdgeKey {
                    src: index.attribute(src, t),
                    dst: index.attribute(dst, t),
                    protocol: 6,
                    dst_port: 443,
                    action: FlowAction::Accept,
                },
                src_addr: String::new(),
                dst_addr: String::new(),
                direction: EdgeDirection::IntraVpc,
                event_time: t,
                packets: 1,
                bytes: 100,
                topic: Arc::clone(&topic),
                partition: 0,
                offset: i64::from(n),
            };
            black_box(windows.add(obs));
            if n % 1000 == 0 {
                black_box(windows.close_ready());
                windows.drain_touched(&[]);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_correlate);
criterion_main!(benches);
