//! Correlate end to end on librdkafka's mock cluster: inventory and flow
//! batches in, exact edges out.

use std::time::Duration;

use psg_config::{Config, CorrelateConfig, KafkaConfig};
use psg_correlate::Correlate;
use psg_domain::time::SECOND;
use psg_domain::{
    CloudProvider, EdgeKind, FlowAction, FlowBatch, FlowEdge, FlowFormat, FlowRecord, Resource, ResourceType, SourceRef,
};
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{CancellationToken, Deliverer, OutRecord, Output};
use psg_service::Service;
use psg_telemetry::Health;
use psg_testkit::kafka::consume_until;

fn src(line: i32) -> SourceRef {
    SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 0, line }
}

fn resource(id: &str, ip: &str) -> Resource {
    let mut r = Resource::new(id, CloudProvider::Aws, ResourceType::Ec2Instance, 0, src(0));
    r.private_ips = vec![ip.into()];
    r.vpc_id = Some("vpc-1".into());
    r
}

fn flow(eni: &str, s: &str, d: &str, sport: i32, dport: i32, t: i64, packets: i64) -> FlowRecord {
    let mut r = FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, src(1), (t - 60) * SECOND, t * SECOND);
    r.interface_id = Some(eni.into());
    r.src_addr = Some(s.into());
    r.dst_addr = Some(d.into());
    r.src_port = Some(sport);
    r.dst_port = Some(dport);
    r.protocol = Some(6);
    r.packets = Some(packets);
    r.bytes = Some(packets * 100);
    r.action = Some(FlowAction::Accept);
    r
}

/// Correlate on a one-broker mock cluster, its inventory published first.
struct Running {
    _broker: EmbeddedBroker,
    bootstrap: String,
    producer: Deliverer,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<psg_kafka_runtime::Result<()>>,
}

async fn start(correlate: CorrelateConfig, inventory: &[Resource]) -> Running {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let bootstrap = broker.bootstrap_servers();
    let cfg = Config {
        kafka: KafkaConfig {
            brokers: Some(bootstrap.clone()),
            partitions: 1,
            batch_linger_ms: 20,
            ..KafkaConfig::default()
        },
        correlate,
        ..Config::default()
    };
    let topics: Vec<TopicSpec> = ["resources", "flows.normalized", "flows.edges", "flows.coverage", "correlate.dlq"]
        .into_iter()
        .map(TopicSpec::stream)
        .collect();
    broker.create_topics(&topics, 1).expect("topics");
    let producer = Deliverer::new(&cfg.kafka, "test", "correlate.dlq").expect("producer");
    let records: Vec<OutRecord> = inventory
        .iter()
        .map(|r| OutRecord::new("resources", r.resource_id.clone(), psg_avro_codec::encode(r).expect("encode")))
        .collect();
    producer.deliver(&Output { records, dead_letters: vec![] }).await.expect("inventory");

    let c = Correlate::new(&cfg, None);
    let opts = c.runner_options(&cfg, Health::new());
    let stop = CancellationToken::new();
    let (kafka, token) = (cfg.kafka.clone(), stop.clone());
    let task = tokio::spawn(async move { psg_kafka_runtime::run(&kafka, opts, c, token).await });
    Running { _broker: broker, bootstrap, producer, stop, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_exact_edges_out() {
    let correlate = CorrelateConfig {
        window_secs: 60,
        allowed_lateness_secs: 60,
        hold_back_secs: 0,
        idle_timeout_secs: 0,
        match_tolerance_secs: 0,
        ..CorrelateConfig::default()
    };
    let inventory = [resource("web", "10.0.1.5"), resource("db", "10.0.2.9"), resource("cache", "10.0.3.3")];
    let Running { _broker, bootstrap, producer, stop, task } = start(correlate, &inventory).await;
    // The runner reads the inventory (a table topic) before it joins the
    // flow topic's group: no flow can be attributed before it.

    // Window [960, 1020): web→db twice (two connections, one reported at both
    // ends), web→cache once. Then a record at 1100 closes it.
    let batches = vec![
        vec![
            flow("eni-web", "10.0.1.5", "10.0.2.9", 40000, 5432, 1000, 10),
            flow("eni-db", "10.0.1.5", "10.0.2.9", 40000, 5432, 1000, 10),
        ],
        vec![
            flow("eni-web", "10.0.1.5", "10.0.2.9", 40001, 5432, 1010, 4),
            flow("eni-web", "10.0.1.5", "10.0.3.3", 40002, 6379, 1015, 2),
        ],
        vec![flow("eni-web", "10.0.1.5", "10.0.2.9", 40003, 5432, 1100, 1)],
    ];
    let records: Vec<OutRecord> = batches
        .into_iter()
        .enumerate()
        .map(|(i, mut records)| {
            // as ingest writes them: the records of source message i
            records.iter_mut().for_each(|r| r.source.offset = i as i64);
            OutRecord::new("flows.normalized", format!("b{i}"), psg_avro_codec::encode(&FlowBatch { records }).unwrap())
        })
        .collect();
    producer.deliver(&Output { records, dead_letters: vec![] }).await.unwrap();

    let out = consume_until(&bootstrap, "flows.edges", Duration::from_secs(30), |r| {
        r.iter()
            .filter(|m| psg_avro_codec::decode::<FlowEdge>(&m.payload).is_ok_and(|e| e.kind == EdgeKind::Window))
            .count()
            >= 2
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let edges: Vec<FlowEdge> = out.iter().map(|m| psg_avro_codec::decode(&m.payload).unwrap()).collect();
    let first: Vec<(&str, &str)> = edges
        .iter()
        .filter(|e| e.kind == EdgeKind::FirstSeen)
        .map(|e| (e.src.resource_id.as_str(), e.dst.resource_id.as_str()))
        .collect();
    assert_eq!(first, [("web", "db"), ("web", "cache")], "one first sighting per new edge");
    let mut windows: Vec<(String, i64, i64, i64)> = edges
        .iter()
        .filter(|e| e.kind == EdgeKind::Window)
        .map(|e| (e.dst.resource_id.clone(), e.packets, e.bytes, e.flows))
        .collect();
    windows.sort();
    assert_eq!(windows, [("cache".into(), 2, 200, 1), ("db".into(), 14, 1400, 2)], "exact counts, double report once");
}

/// A partition that stops receiving flows: after the idle timeout its event
/// time advances with processing time, its windows close with their final
/// counts and its offsets are committed, with no further flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_closes_its_windows_and_commits_its_offsets() {
    let correlate = CorrelateConfig {
        window_secs: 2,
        allowed_lateness_secs: 1,
        hold_back_secs: 0,
        idle_timeout_secs: 1,
        match_tolerance_secs: 0,
        ..CorrelateConfig::default()
    };
    let inventory = [resource("web", "10.0.1.5"), resource("db", "10.0.2.9")];
    let Running { _broker, bootstrap, producer, stop, task } = start(correlate, &inventory).await;

    // Three connections web → db in window [1000, 1002), then nothing more.
    let records: Vec<OutRecord> = (0..3)
        .map(|i| {
            let mut r = flow("eni-web", "10.0.1.5", "10.0.2.9", 40_000 + i, 5432, 1000, 5);
            r.source.offset = i64::from(i);
            OutRecord::new(
                "flows.normalized",
                format!("b{i}"),
                psg_avro_codec::encode(&FlowBatch { records: vec![r] }).unwrap(),
            )
        })
        .collect();
    producer.deliver(&Output { records, dead_letters: vec![] }).await.unwrap();

    let out = consume_until(&bootstrap, "flows.edges", Duration::from_secs(30), |r| {
        r.iter().any(|m| psg_avro_codec::decode::<FlowEdge>(&m.payload).is_ok_and(|e| e.kind == EdgeKind::Window))
    })
    .await;
    let windows: Vec<(i64, i64)> = out
        .iter()
        .filter_map(|m| psg_avro_codec::decode::<FlowEdge>(&m.payload).ok())
        .filter(|e| e.kind == EdgeKind::Window)
        .map(|e| (e.packets, e.flows))
        .collect();
    assert_eq!(windows, [(15, 3)], "the window closed with its final counts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let committed =
            psg_testkit::kafka::committed_offsets(&bootstrap, "pci-scope-guard-correlate", "flows.normalized", 1).await;
        if committed.first().is_some_and(|(_, o)| *o == 3) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "offsets of the idle partition not committed: {committed:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}
