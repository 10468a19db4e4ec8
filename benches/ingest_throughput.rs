//! The ingest service's throughput through librdkafka's mock cluster:
//! `cargo bench --bench ingest_throughput` prints lines per second.
//!
//! Publishes `MESSAGES` messages of 1,000 AWS flow-log lines each to
//! `flowlogs.raw`, then runs the real ingest loop (the same code as
//! `pci-scope-guard ingest`, in process) until every line is on
//! `flows.normalized`, and reports lines/s. `INGEST_BENCH_MESSAGES` changes
//! the message count.

use std::time::{Duration, Instant};

use psg_config::{Config, KafkaConfig};
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{CancellationToken, Deliverer, OutRecord, Output};
use psg_service::Service;
use psg_telemetry::Health;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const LINES_PER_MESSAGE: usize = 1000;
const INPUT_PARTITIONS: i32 = 64;

fn message(seed: usize) -> Vec<u8> {
    let mut s = String::with_capacity(LINES_PER_MESSAGE * 120);
    for i in 0..LINES_PER_MESSAGE {
        let n = seed * LINES_PER_MESSAGE + i;
        s.push_str(&format!(
            "2 123456789010 eni-{:017x} 10.{}.{}.{} 10.1.{}.{} {} 443 6 {} {} 1418530010 1418530070 ACCEPT OK\n",
            n % 5000,
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255,
            (n >> 8) & 255,
            n & 255,
            1024 + n % 60000,
            1 + n % 50,
            100 + n % 9000
        ));
    }
    s.into_bytes()
}

fn end_offsets(c: &BaseConsumer, topic: &str, partitions: i32) -> i64 {
    (0..partitions).map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).map_or(0, |(_, hi)| hi)).sum()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ingest_throughput: bench");
        return;
    }
    let messages: usize = std::env::var("INGEST_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let _ = psg_telemetry::init_logging(psg_config::LogFormat::Text, "warn");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let broker = EmbeddedBroker::start(1).expect("broker");
        let bootstrap = broker.bootstrap_servers();
        let partitions = 2;
        let cfg = Config {
            kafka: KafkaConfig { brokers: Some(bootstrap.clone()), partitions, batch_size: 50, ..KafkaConfig::default() },
            ..Config::default()
        };
        let topics: Vec<TopicSpec> = ["inventory.raw", "flows.normalized", "ingest.dlq"]
            .into_iter()
            .map(TopicSpec::stream)
            .collect();
        broker.create_topics(&topics, partitions).expect("topics");
        // The mock cluster keeps only the newest few MB of each partition: spread
        // the pre-published input over enough partitions that none is lost.
        broker.create_topics(&[TopicSpec::stream("flowlogs.raw")], INPUT_PARTITIONS).expect("input topic");

        let watermarks: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("consumer");
        let producer = Deliverer::new(&cfg.kafka, "bench", "ingest.dlq").expect("producer");
        let input: Vec<OutRecord> =
            (0..messages).map(|i| OutRecord::new("flowlogs.raw", format!("k{i}"), message(i))).collect();
        producer.deliver(&Output { records: input, dead_letters: vec![] }).await.expect("publish input");
        let lines = (messages * LINES_PER_MESSAGE) as i64;
        println!("published {messages} messages of {LINES_PER_MESSAGE} lines to the mock cluster (end offsets {})", end_offsets(&watermarks, "flowlogs.raw", INPUT_PARTITIONS));

        // How many output messages (batches) the run must produce.
        let mut offline = psg_ingest::Ingest::new(&cfg, None).expect("ingest");
        let mut expected = 0i64;
        for i in 0..messages {
            let msg = psg_kafka_runtime::InMessage {
                kind: psg_kafka_runtime::InputKind::Stream,
                topic: std::sync::Arc::from("flowlogs.raw"),
                partition: 0,
                offset: i as i64,
                key: None,
                payload: Some(message(i)),
                headers: vec![],
                timestamp_ms: None,
            };
            let mut out = Output::default();
            offline.handle(&msg, &mut out);
            assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters.first());
            offline.set_output_partitions(partitions);
            expected += out.records.len() as i64;
        }

        println!("expecting {expected} output batches");
        let ingest = psg_ingest::Ingest::new(&cfg, None).expect("ingest");
        let opts = ingest.runner_options(&cfg, Health::new());
        let stop = CancellationToken::new();
        let started = Instant::now();
        let kafka = cfg.kafka.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move { psg_kafka_runtime::run(&kafka, opts, ingest, token).await });
        // Timed from the first output on, so the consumer group's join (a
        // fixed ~3 s on the mock cluster) is not counted.
        let mut first: Option<(Instant, i64)> = None;
        loop {
            let done = end_offsets(&watermarks, "flows.normalized", partitions);
            if first.is_none() && done > 0 {
                first = Some((Instant::now(), done));
            }
            if done >= expected {
                break;
            }
            if std::env::var_os("INGEST_BENCH_VERBOSE").is_some() {
                eprintln!("{:?}: {done}/{expected}", started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("only {done} of {expected} batches after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let finished = Instant::now();
        stop.cancel();
        task.await.expect("join").expect("ingest");
        let (t0, done0) = first.expect("some output");
        let steady_lines = lines as f64 * (expected - done0) as f64 / expected as f64;
        let steady = finished.duration_since(t0).as_secs_f64();
        println!(
            "ingest: {lines} lines ({expected} output batches) in {:.2} s including the group join; \
             after the first output: {:.0} lines in {:.3} s = {:.0} lines/s (messages of {LINES_PER_MESSAGE} lines, mock cluster, {partitions} partitions)",
            finished.duration_since(started).as_secs_f64(),
            steady_lines,
            steady,
            steady_lines / steady
        );
    });
}
