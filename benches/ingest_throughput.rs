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
use psg_kafka_runtime::runner::RunnerOptions;
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{CancellationToken, Deliverer, OutRecord, Output};
use psg_telemetry::Health;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const LINES_PER_MESSAGE: usize = 1000;

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

fn end_offsets(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    (0..partitions).map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).map_or(0, |(_, hi)| hi)).sum()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ingest_throughput: bench");
        return;
    }
    let messages: usize = std::env::var("INGEST_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
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
        let topics: Vec<TopicSpec> = ["flowlogs.raw", "inventory.raw", "flows.normalized", "ingest.dlq"]
            .into_iter()
            .map(TopicSpec::stream)
            .collect();
        broker.create_topics(&topics, partitions).expect("topics");

        let producer = Deliverer::new(&cfg.kafka, "bench", "ingest.dlq").expect("producer");
        let input: Vec<OutRecord> =
            (0..messages).map(|i| OutRecord::new("flowlogs.raw", format!("k{i}"), message(i))).collect();
        producer.deliver(&Output { records: input, dead_letters: vec![] }).await.expect("publish input");
        let lines = (messages * LINES_PER_MESSAGE) as i64;
        println!("published {messages} messages of {LINES_PER_MESSAGE} lines to the mock cluster");

        let ingest = psg_ingest::Ingest::new(&cfg, None).expect("ingest");
        let opts = RunnerOptions {
            stream_topics: ingest.input_topics(),
            ..RunnerOptions::new(&cfg.kafka, "ingest", "ingest.dlq", Health::new())
        };
        let stop = CancellationToken::new();
        let started = Instant::now();
        let kafka = cfg.kafka.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move { psg_kafka_runtime::run(&kafka, opts, ingest, token).await });
        loop {
            let done = end_offsets(&bootstrap, "flows.normalized", partitions);
            if done >= lines {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "only {done} of {lines} lines after 5 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        stop.cancel();
        task.await.expect("join").expect("ingest");
        println!(
            "ingest: {lines} lines in {:.2} s = {:.0} lines/s (messages of {LINES_PER_MESSAGE} lines, mock cluster, 2 partitions)",
            elapsed.as_secs_f64(),
            lines as f64 / elapsed.as_secs_f64()
        );
    });
}
