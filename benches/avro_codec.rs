//! The Avro codec of `flows.normalized`: `cargo bench --bench avro_codec`
//! encodes and decodes one `FlowBatch` of 500 default-format AWS records
//! (about one input message's worth) with
//!
//! - `ours`: `psg_avro_codec::binary` (serde straight to and from bytes, the
//!   schema implied by the Rust types);
//! - `apache_avro_serde`: apache-avro's schema-aware serde writer
//!   (`write_avro_datum_ref`) and its reader (`from_avro_datum` into a
//!   `Value`, then `from_value`), the crate's own fastest paths;
//! - `serde_avro_fast`: the `serde_avro_fast` crate, schema-driven.
//!
//! All three must produce and read the same datum (checked before timing).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use psg_avro_codec::AvroMessage;
use psg_domain::{FlowBatch, SourceRef};
use psg_ingest::aws::{Layout, parse_line};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: usize = 500;

fn batch() -> FlowBatch {
    let layout = Layout::default_v2();
    let records = (0..RECORDS)
        .map(|i| {
            let line = format!(
                "2 123456789010 eni-{i:017x} 172.31.{}.{} 10.0.{}.{} {} 443 6 {} {} 1418530010 1418530070 {} OK",
                i / 250,
                i % 250,
                i / 200,
                i % 200,
                1024 + i,
                i + 1,
                40 * (i + 1),
                if i % 7 == 0 { "REJECT" } else { "ACCEPT" }
            );
            let source = SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 42, line: i as i32 + 1 };
            parse_line(&layout, &line, source).expect("valid line")
        })
        .collect();
    FlowBatch { records }
}

fn bench(c: &mut Criterion) {
    let batch = batch();
    let apache_schema = &FlowBatch::compiled().schema;
    let fast_schema: serde_avro_fast::Schema = FlowBatch::AVSC.parse().expect("the .avsc parses");

    let mut ours = Vec::new();
    psg_avro_codec::binary::encode_into(&batch, &mut ours).expect("ours encodes");
    let mut apache = Vec::new();
    apache_avro::write_avro_datum_ref(apache_schema, &batch, &mut apache).expect("apache-avro encodes");
    let fast = serde_avro_fast::to_datum_vec(&batch, &mut serde_avro_fast::ser::SerializerConfig::new(&fast_schema))
        .expect("serde_avro_fast encodes");
    assert_eq!(ours, apache, "apache-avro writes the same datum");
    assert_eq!(ours, fast, "serde_avro_fast writes the same datum");
    let decoded_apache: FlowBatch = apache_avro::from_value(
        &apache_avro::from_avro_datum(apache_schema, &mut ours.as_slice(), None).expect("apache-avro reads"),
    )
    .expect("apache-avro maps");
    assert_eq!(decoded_apache, batch);
    let decoded_fast: FlowBatch = serde_avro_fast::from_datum_slice(&ours, &fast_schema).expect("fast reads");
    assert_eq!(decoded_fast, batch);

    let mut g = c.benchmark_group("avro_flow_batch_encode");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("ours", |b| {
        let mut out = Vec::with_capacity(ours.len());
        b.iter(|| {
            out.clear();
            psg_avro_codec::binary::encode_into(black_box(&batch), &mut out).expect("encode");
            black_box(out.len())
        })
    });
    g.bench_function("apache_avro_serde", |b| {
        let mut out = Vec::with_capacity(ours.len());
        b.iter(|| {
            out.clear();
            apache_avro::write_avro_datum_ref(apache_schema, black_box(&batch), &mut out).expect("encode");
            black_box(out.len())
        })
    });
    g.bench_function("serde_avro_fast", |b| {
        let mut config = serde_avro_fast::ser::SerializerConfig::new(&fast_schema);
        let mut out = Vec::with_capacity(ours.len());
        b.iter(|| {
            out.clear();
            out = serde_avro_fast::to_datum(black_box(&batch), std::mem::take(&mut out), &mut config).expect("encode");
            black_box(out.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("avro_flow_batch_decode");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("ours", |b| {
        b.iter(|| psg_avro_codec::binary::decode::<FlowBatch>(black_box(&ours)).expect("decode"))
    });
    g.bench_function("apache_avro_serde", |b| {
        b.iter(|| {
            let v = apache_avro::from_avro_datum(apache_schema, &mut black_box(ours.as_slice()), None).expect("read");
            apache_avro::from_value::<FlowBatch>(&v).expect("map")
        })
    });
    g.bench_function("serde_avro_fast", |b| {
        b.iter(|| serde_avro_fast::from_datum_slice::<FlowBatch>(black_box(&ours), &fast_schema).expect("decode"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
