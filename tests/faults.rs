//! Faults: nothing acknowledged is lost, nothing is counted twice.
//!
//! Every test drives the same workload through the four services — one CDE
//! database, `WEBS` untagged web servers, `MESSAGES` flow-log messages of
//! `LINES` AWS lines each, every line one new connection web → database on
//! TCP/5432 with one packet — breaks something mid-stream, and then checks
//! end to end that every input line is counted exactly once:
//!
//! - `data_flows`: the packets of web → database add up to the number of
//!   lines (a lost line is missing, a line counted twice adds one);
//! - `flows.edges`: the window edges (each id once) add up the same;
//! - decisions: every web server is `connected-cde`, no (resource, scope)
//!   decided twice; alerts: no alert raised twice;
//! - evidence: one `pci_scope_identification` record per decision, and the
//!   chains verify (`evidence verify`).
//!
//! Faults: librdkafka's mock cluster with brokers down and up, request errors
//! and latency (in-process services); a tansu broker with SQLite storage
//! stopped and restarted (producers without idempotence: see that test); PostgreSQL (a throwaway server of the test's own)
//! stopped and started; `kill -9` of each service process in turn, each
//! started again at once with its static group membership; two instances of
//! ingest and of correlate joining and leaving one consumer group mid-stream.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use psg_domain::{EdgeKind, FlowEdge};
use psg_service::Service;
use psg_testkit::kafka::consume_until;
use psg_testkit::procs::Procs;
use psg_testkit::{Tansu, TestDb, http_get, wait_for};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");
const WEBS: usize = 12;
const MESSAGES: usize = 40;
const LINES: usize = 50;
/// 2026-01-01T00:10:00Z: event time of the first message.
const T0: i64 = 1_767_226_200;

fn inventory() -> String {
    let mut lines = vec![
        r#"{"provider":"aws","resource_type":"rds_instance","resource_id":"db-payments","resource_name":"payments-db","region":"us-east-1","vpc_id":"vpc-1","subnet_id":"subnet-db","private_ips":["10.0.2.10"],"interface_ids":["eni-db"],"security_groups":["sg-db"],"tags":{"pci-scope":"cde"},"observed_at":"2026-01-01T00:00:00Z","deleted":false}"#.to_owned(),
    ];
    for w in 0..WEBS {
        lines.push(format!(
            r#"{{"provider":"aws","resource_type":"ec2_instance","resource_id":"i-web{w}","resource_name":"web-{w}","region":"us-east-1","vpc_id":"vpc-1","subnet_id":"subnet-web","private_ips":["10.0.1.{}"],"interface_ids":["eni-web{w}"],"security_groups":["sg-web"],"tags":{{}},"observed_at":"2026-01-01T00:00:00Z","deleted":false}}"#,
            w + 1
        ));
    }
    lines.join("\n")
}

/// Message `i`: `LINES` connections, 30 s of event time after the previous message.
fn flow_message(i: usize) -> String {
    let end = T0 + 30 * i as i64;
    (0..LINES)
        .map(|l| {
            let w = (i * LINES + l) % WEBS;
            let port = 20_000 + i * LINES + l;
            format!(
                "2 123456789012 eni-web{w} 10.0.1.{} 10.0.2.10 {port} 5432 6 1 100 {} {end} ACCEPT OK",
                w + 1,
                end - 30
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Flows an hour later between web servers: event time moves on in every
/// partition, so every window of the workload closes.
fn flusher() -> String {
    let end = T0 + 3600 + 30 * MESSAGES as i64;
    (0..WEBS * 3)
        .map(|k| {
            let (a, b) = (k % WEBS, (k / WEBS + 1 + k) % WEBS);
            format!(
                "2 123456789012 eni-web{a} 10.0.1.{} 10.0.1.{} {} 80 6 1 100 {} {end} ACCEPT OK",
                a + 1,
                b + 1,
                40_000 + k,
                end - 30
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Publishes like a shipper does: idempotent, waits for every acknowledgement.
struct Shipper {
    producer: FutureProducer,
}

impl Shipper {
    fn new(brokers: &str) -> Self {
        Self::with_idempotence(brokers, true)
    }

    fn with_idempotence(brokers: &str, idempotent: bool) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", idempotent.to_string())
            .set("message.timeout.ms", "120000")
            .create()
            .expect("shipper producer");
        Self { producer }
    }

    async fn send(&self, topic: &str, key: &str, payload: &str) {
        self.producer
            .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(120))
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
    }

    async fn inventory(&self) {
        self.send("inventory.raw", "cmdb", &inventory()).await;
    }

    /// Flow messages `range`, `pause` apart.
    async fn flows(&self, range: std::ops::Range<usize>, pause: Duration) {
        for i in range {
            self.send("flowlogs.raw", &format!("vpc-1/{i}"), &flow_message(i)).await;
            tokio::time::sleep(pause).await;
        }
    }

    async fn flush(&self) {
        self.send("flowlogs.raw", "vpc-1/flush", &flusher()).await;
    }
}

async fn db(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("database");
    tokio::spawn(conn);
    client
}

/// What the database holds of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    /// Packets of web → database on TCP/5432 in `data_flows`: one per line.
    packets: i64,
    data_flow_rows: i64,
    decisions: i64,
    connected_webs: i64,
    evidence: i64,
    alerts: i64,
    /// Open `coverage_gap` alerts: the database's interface never logs, so
    /// its subnet is a gap once the flusher's hour passes the grace period
    /// (an alert that follows the last flows, through `flows.coverage`).
    coverage_gaps: i64,
}

async fn counts(url: &str) -> Option<Counts> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
    let task = tokio::spawn(conn);
    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.ok().map(|r| r.get::<_, i64>(0)) }
    };
    let c = Counts {
        packets: one("SELECT coalesce(sum(f.packet_count), 0)::bigint FROM data_flows f
               JOIN resources d ON d.id = f.dest_resource_id
              WHERE d.resource_id = 'db-payments' AND f.dst_port = 5432")
        .await?,
        data_flow_rows: one("SELECT count(*) FROM data_flows f JOIN resources d ON d.id = f.dest_resource_id
              WHERE d.resource_id = 'db-payments'")
        .await?,
        decisions: one("SELECT count(*) FROM scope_decisions").await?,
        connected_webs: one("SELECT count(*) FROM scope_decisions d JOIN resources r ON r.id = d.resource_id
              WHERE d.is_current AND d.scope = 'connected-cde' AND r.resource_id LIKE 'i-web%'")
        .await?,
        evidence: one("SELECT count(*) FROM evidence WHERE chain = 'pci_scope_identification'").await?,
        alerts: one("SELECT count(*) FROM alerts").await?,
        coverage_gaps: one("SELECT count(*) FROM alerts WHERE alert_type = 'coverage_gap' AND status = 'open'").await?,
    };
    drop(client);
    task.abort();
    Some(c)
}

/// Waits until every line is counted and every decision has its evidence,
/// then checks that nothing more arrives, nothing is duplicated and the
/// evidence verifies. Returns the counts (for the log of the test).
async fn assert_exactly_once(brokers: &str, url: &str, store: &Path, name: &str) -> Counts {
    let expected = (MESSAGES * LINES) as i64;
    let started = Instant::now();
    // The counts once every line and every decision's evidence is in, and
    // since when: settled once they hold still for `STILL` (an alert
    // raised late, after a service's retries, would otherwise arrive
    // between this and the check below and read as a redelivery).
    const STILL: Duration = Duration::from_secs(5);
    let mut holding: Option<(Counts, Instant)> = None;
    let (settled, settled_after) = loop {
        let c = counts(url).await;
        if let Some(c) = &c
            && c.packets >= expected
            && c.connected_webs == WEBS as i64
            && c.evidence == c.decisions
            && c.coverage_gaps == 1
        {
            match &holding {
                Some((held, since)) if held == c => {
                    if since.elapsed() >= STILL {
                        break (c.clone(), since.duration_since(started));
                    }
                }
                _ => holding = Some((c.clone(), Instant::now())),
            }
        } else {
            holding = None;
        }
        if started.elapsed() > Duration::from_secs(180) {
            panic!("{name}: not every line was counted within 180 s: {c:?} (expected {expected} packets)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Redeliveries still in flight would show now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = counts(url).await.expect("counts");
    assert_eq!(after, settled, "{name}: counts changed after settling");
    assert_eq!(settled.packets, expected, "{name}: every line counted exactly once in data_flows");

    let client = db(url).await;
    let dup = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) }
    };
    assert_eq!(
        dup(
            "SELECT count(*) FROM (SELECT resource_id, scope FROM scope_decisions GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        .await,
        0,
        "{name}: a resource was decided into the same scope twice"
    );
    assert_eq!(
        dup("SELECT count(*) FROM (SELECT resource_id FROM scope_decisions WHERE is_current GROUP BY 1 HAVING count(*) > 1) d")
            .await,
        0,
        "{name}: a resource has two current decisions"
    );
    assert_eq!(
        dup("SELECT count(*) FROM (SELECT scope_decision_id FROM evidence WHERE scope_decision_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d")
            .await,
        0,
        "{name}: a decision has two evidence records"
    );
    assert_eq!(
        dup("SELECT count(*) FROM scope_decisions d WHERE NOT EXISTS (SELECT 1 FROM evidence e WHERE e.scope_decision_id = d.id)")
            .await,
        0,
        "{name}: a decision without evidence"
    );
    assert_eq!(
        dup(
            "SELECT count(*) FROM evidence e
              WHERE NOT EXISTS (SELECT 1 FROM evidence_log l WHERE l.evidence_id = e.id AND l.log_index = e.log_index)"
        )
        .await,
        0,
        "{name}: an evidence record outside the evidence log, or naming another place in it"
    );
    assert_eq!(
        dup("SELECT (SELECT count(*) FROM evidence_log) - coalesce((SELECT max(log_index) + 1 FROM evidence_log), 0)
                  + (SELECT count(*) FROM evidence_log WHERE checkpoint_size > (SELECT max(tree_size) FROM evidence_checkpoints))")
            .await,
        0,
        "{name}: the evidence log has a hole or records no checkpoint covers"
    );
    assert_eq!(
        dup("SELECT count(*) FROM (SELECT alert_type, resource_id, title FROM alerts GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
            .await,
        0,
        "{name}: an alert raised twice"
    );
    assert_eq!(
        dup("SELECT count(*) FROM alerts WHERE alert_type = 'untagged_resource'").await,
        WEBS as i64,
        "{name}: one untagged alert per web server"
    );

    // The topic: window edges, each id once, add up to the lines; copies of
    // an id (redelivery) carry the same counts.
    let done = |records: &[psg_testkit::kafka::Record]| {
        let mut by_id: HashMap<String, i64> = HashMap::new();
        for r in records {
            if let Ok(e) = psg_avro_codec::decode::<FlowEdge>(&r.payload)
                && e.kind == EdgeKind::Window
                && e.dst.resource_id == "db-payments"
            {
                by_id.insert(e.edge_id, e.packets);
            }
        }
        by_id.values().sum::<i64>() >= expected
    };
    let records = consume_until(brokers, "flows.edges", Duration::from_secs(60), done).await;
    let mut by_id: HashMap<String, i64> = HashMap::new();
    let mut copies = 0;
    for r in &records {
        if let Ok(e) = psg_avro_codec::decode::<FlowEdge>(&r.payload)
            && e.kind == EdgeKind::Window
            && e.dst.resource_id == "db-payments"
            && let Some(previous) = by_id.insert(e.edge_id.clone(), e.packets)
        {
            copies += 1;
            assert_eq!(previous, e.packets, "{name}: two copies of edge {} with different counts", e.edge_id);
        }
    }
    assert_eq!(by_id.values().sum::<i64>(), expected, "{name}: window edges on flows.edges");

    let verified = run(&["evidence", "verify", "--database-url", url, "--evidence-store", path(store)]);
    assert!(verified.contains(&format!("{} verified", settled.evidence)), "{name}: {verified}");
    eprintln!(
        "{name}: {expected} lines in {MESSAGES} messages → {} packets in {} data_flows rows, {} window edges ({copies} redelivered copies on flows.edges), {} decisions, {} evidence records (chains verified), {} alerts; settled {:.1} s after the last input (then still for {} s)",
        settled.packets,
        settled.data_flow_rows,
        by_id.len(),
        settled.decisions,
        settled.evidence,
        settled.alerts,
        settled_after.as_secs_f64(),
        STILL.as_secs()
    );
    settled
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN).args(args).output().expect("run pci-scope-guard");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pci-scope-guard {args:?} failed:\n{text}");
    text
}

/// The four services (and any extra instances) as processes of the binary.
struct Pipeline {
    procs: Procs,
    common: Vec<String>,
    evidence: Vec<String>,
    store: PathBuf,
}

impl Pipeline {
    /// Migrates `url`, makes a key, starts the four services.
    async fn start(brokers: &str, url: &str, dir: &Path) -> Self {
        Self::start_with(brokers, url, dir, &[]).await
    }

    /// [`Pipeline::start`] with more arguments for every service.
    async fn start_with(brokers: &str, url: &str, dir: &Path, extra: &[&str]) -> Self {
        run(&["migrate", "--database-url", url]);
        run(&["keygen", "--out-dir", path(&dir.join("keys"))]);
        let store = dir.join("evidence-store");
        let mut common: Vec<String> =
            ["--brokers", brokers, "--database-url", url, "--metrics-addr", "127.0.0.1:0"].map(String::from).to_vec();
        common.extend(extra.iter().map(|a| a.to_string()));
        let evidence: Vec<String> = vec![
            "--signing-key".into(),
            path(&dir.join("keys/signing.key")).into(),
            "--evidence-store".into(),
            path(&store).into(),
        ];
        let mut p = Self { procs: Procs::new(BIN, dir), common, evidence, store };
        for service in ["ingest", "correlate", "classify", "evidence"] {
            p.spawn(service, service);
        }
        for service in ["ingest", "correlate", "classify", "evidence"] {
            p.procs.wait_ready(service).await;
        }
        p
    }

    /// Starts `service` as process `name`.
    fn spawn(&mut self, name: &str, service: &str) {
        let mut args: Vec<&str> = vec![service];
        args.extend(self.common.iter().map(String::as_str));
        if service == "evidence" {
            args.extend(self.evidence.iter().map(String::as_str));
        }
        self.procs.spawn(name, &args, &[]);
    }

    async fn restart(&mut self, name: &str) {
        self.procs.restart(name);
        self.procs.wait_ready(name).await;
    }
}

/// Inventory first, then waits until classify has decided every resource.
async fn load_inventory(shipper: &Shipper, url: &str) {
    shipper.inventory().await;
    let client = db(url).await;
    wait_for("a decision for every resource", Duration::from_secs(60), async || {
        let n: i64 = client.query_one("SELECT count(*) FROM scope_decisions WHERE is_current", &[]).await.ok()?.get(0);
        (n == WEBS as i64 + 1).then_some(())
    })
    .await;
}

/// The partitions a run of a service logged as assigned (sorted).
fn assigned(line: &str) -> Vec<String> {
    let mut p: Vec<String> =
        line.split("partitions=").nth(1).unwrap_or_default().split(',').map(|s| s.trim().to_owned()).collect();
    p.sort();
    p
}

/// Each service is killed in turn and started again at once, with the same
/// static group membership (`--instance-id`): it takes its place and its
/// partitions back without a rebalance and without waiting for the dead
/// member's session to expire. Correlate resumes from its checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_each_service_mid_stream_loses_and_duplicates_nothing() {
    let db = TestDb::create().await;
    let tansu = Tansu::start();
    let work = tempfile::tempdir().expect("tempdir");
    let mut p = Pipeline::start_with(&tansu.bootstrap, &db.url, work.path(), &["--instance-id", "one"]).await;
    let shipper = Shipper::new(&tansu.bootstrap);
    load_inventory(&shipper, &db.url).await;

    let quarter = MESSAGES / 4;
    for (k, service) in ["ingest", "correlate", "classify", "evidence"].into_iter().enumerate() {
        let before = assigned(&p.procs.wait_log(service, "partitions assigned", Duration::from_secs(60)).await);
        // Half of this quarter, then kill -9 while the rest is arriving.
        shipper.flows(k * quarter..k * quarter + quarter / 2, Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        if service == "correlate" {
            let c = psg_testkit::kafka::committed_offsets(
                &tansu.bootstrap,
                "pci-scope-guard-correlate",
                "flows.normalized",
                3,
            )
            .await;
            eprintln!("correlate committed before the kill: {c:?}");
        }
        p.procs.kill9(service);
        let killed = Instant::now();
        eprintln!("killed {service} (kill -9)");
        p.restart(service).await;
        let line = p.procs.wait_log(service, "partitions assigned", Duration::from_secs(20)).await;
        assert_eq!(assigned(&line), before, "{service} got its partitions back");
        eprintln!(
            "{service} restarted and had its partitions back {:.1} s after the kill",
            killed.elapsed().as_secs_f64()
        );
        shipper.flows(k * quarter + quarter / 2..(k + 1) * quarter, Duration::from_millis(20)).await;
    }
    shipper.flush().await;
    assert_exactly_once(&tansu.bootstrap, &db.url, &p.store, "kill -9").await;
    let resumed = p.procs.log("correlate");
    eprintln!(
        "correlate resumed from its checkpoints: {}",
        resumed.lines().filter(|l| l.contains("resuming from the checkpoint")).count()
    );
    p.procs.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_ingest_and_correlate_rebalance_mid_stream() {
    let db = TestDb::create().await;
    let tansu = Tansu::start();
    let work = tempfile::tempdir().expect("tempdir");
    let mut p = Pipeline::start(&tansu.bootstrap, &db.url, work.path()).await;
    let shipper = Shipper::new(&tansu.bootstrap);
    load_inventory(&shipper, &db.url).await;

    let third = MESSAGES / 3;
    shipper.flows(0..third, Duration::from_millis(50)).await;
    // Second instances join while flows arrive: the groups rebalance.
    p.spawn("ingest-2", "ingest");
    p.spawn("correlate-2", "correlate");
    shipper.flows(third..2 * third, Duration::from_millis(100)).await;
    p.procs.wait_ready("ingest-2").await;
    p.procs.wait_ready("correlate-2").await;
    // The first instances leave (graceful stop) mid-stream: another rebalance.
    let stop = tokio::task::spawn_blocking(move || {
        let exited_0 = |s: Option<std::process::ExitStatus>| s.is_some_and(|s| s.success());
        let left = exited_0(p.procs.terminate("ingest", Duration::from_secs(15)));
        let left2 = exited_0(p.procs.terminate("correlate", Duration::from_secs(15)));
        (p, left && left2)
    });
    shipper.flows(2 * third..MESSAGES, Duration::from_millis(50)).await;
    let (p, stopped) = stop.await.expect("stop task");
    assert!(stopped, "the first instances exit 0 after SIGTERM");
    shipper.flush().await;
    assert_exactly_once(&tansu.bootstrap, &db.url, &p.store, "rebalance").await;
}

/// tansu with SQLite storage stopped (SIGTERM) mid-stream and started
/// again on the same files: topics, records and committed offsets survive,
/// the services reconnect, nothing is lost or counted twice.
///
/// Every producer runs without idempotence here: tansu 0.6.0's SQLite
/// engine panics when an idempotent producer that started before the
/// restart produces again (`idempotent_message_check` expects the
/// producer's row), and its storage task never recovers. The shipper sends
/// one message at a time and the broker stops between two of them, so
/// without idempotence a retried produce may only duplicate the services'
/// own outputs — which their consumers must then count once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_stopped_and_restarted_mid_stream_with_durable_storage() {
    let db = TestDb::create().await;
    let data = tempfile::tempdir().expect("tansu data");
    let mut tansu = Tansu::start_durable(data.path());
    let brokers = tansu.bootstrap.clone();
    let work = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::start_with(&brokers, &db.url, work.path(), &["-X", "enable.idempotence=false"]).await;
    let shipper = Shipper::with_idempotence(&brokers, false);
    load_inventory(&shipper, &db.url).await;

    shipper.flows(0..MESSAGES / 2, Duration::from_millis(50)).await;
    tansu.stop();
    eprintln!("tansu stopped");
    tokio::time::sleep(Duration::from_secs(5)).await;
    tansu.restart();
    eprintln!("tansu restarted on {brokers}");
    shipper.flows(MESSAGES / 2..MESSAGES, Duration::from_millis(50)).await;
    shipper.flush().await;
    assert_exactly_once(&brokers, &db.url, &p.store, "broker restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_stream() {
    let mut pg = psg_testkit::pg::PgCluster::start();
    let admin = db(&pg.url("postgres")).await;
    admin.batch_execute("CREATE DATABASE faults").await.expect("create database");
    let url = pg.url("faults");
    let tansu = Tansu::start();
    let work = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::start(&tansu.bootstrap, &url, work.path()).await;
    let shipper = Shipper::new(&tansu.bootstrap);
    load_inventory(&shipper, &url).await;

    shipper.flows(0..MESSAGES / 2, Duration::from_millis(50)).await;
    pg.stop();
    eprintln!("PostgreSQL stopped");
    shipper.flows(MESSAGES / 2..MESSAGES, Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Meanwhile the services report themselves degraded and commit nothing new.
    let addr = p.procs.metrics_addr("correlate");
    let (status, body) = http_get(&addr, "/readyz").await.expect("readyz");
    eprintln!("correlate /readyz while the database is down: {status} {}", body.trim());
    pg.resume();
    eprintln!("PostgreSQL started again");
    shipper.flush().await;
    assert_exactly_once(&tansu.bootstrap, &url, &p.store, "database restart").await;
    let retries = http_get(&addr, "/metrics").await.expect("metrics").1;
    assert!(
        retries.lines().any(|l| l.starts_with("psg_retries_total") && l.contains("persist")),
        "correlate retried its writes while the database was down"
    );
}

/// The four services in this process over librdkafka's mock cluster, whose
/// brokers the test takes down, slows and makes fail.
mod mock_cluster {
    use psg_config::Config;
    use psg_kafka_runtime::embedded::EmbeddedBroker;
    use psg_kafka_runtime::runner::RunnerOptions;
    use psg_kafka_runtime::topics::TopicSpec;
    use psg_kafka_runtime::{CancellationToken, Processor};
    use psg_telemetry::Health;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    fn spawn<P: Processor>(
        set: &mut tokio::task::JoinSet<()>,
        cfg: &Config,
        opts: RunnerOptions,
        p: P,
        stop: &CancellationToken,
    ) {
        let (kafka, stop) = (cfg.kafka.clone(), stop.clone());
        set.spawn(async move {
            let service = opts.service.clone();
            if let Err(e) = psg_kafka_runtime::run(&kafka, opts, p, stop).await {
                panic!("{service} failed: {e}");
            }
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_outages_request_errors_and_latency_lose_and_duplicate_nothing() {
        // The services' logs, when asked for (RUST_LOG=info,librdkafka=warn).
        if let Ok(level) = std::env::var("RUST_LOG") {
            let _ = psg_telemetry::init_logging(psg_config::LogFormat::Text, &level);
        }
        let db = TestDb::create().await;
        let work = tempfile::tempdir().expect("tempdir");
        let broker = EmbeddedBroker::start(3).expect("mock cluster");
        let bootstrap = broker.bootstrap_servers();
        let mut cfg = Config::default();
        cfg.kafka.brokers = Some(bootstrap.clone());
        cfg.kafka.partitions = 3;
        cfg.evidence.store_url = path(&work.path().join("store")).to_owned();
        let names = [
            "flowlogs.raw",
            "inventory.raw",
            "flows.normalized",
            "resources",
            "flows.edges",
            "flows.coverage",
            "scope.decisions",
            "scope.alerts",
            "scope.manual",
            "evidence.records",
            "evidence.requests",
            "ingest.dlq",
            "correlate.dlq",
            "classify.dlq",
            "evidence.dlq",
        ];
        let specs: Vec<TopicSpec> = names.into_iter().map(TopicSpec::stream).collect();
        broker.create_topics(&specs, 3).expect("topics");

        let pool = psg_store::pool(&db.url, 1).expect("pool");
        psg_store::migrate(&pool).await.expect("migrate");
        let store = psg_store::Store::connect(&db.url, 4).await.expect("store");
        let keys = psg_evidence::keys::generate(&work.path().join("keys"), "signing").expect("keys");
        let key = psg_evidence::keys::load_signing_key(&keys.private).expect("key");

        let health = Health::new();
        let stop = CancellationToken::new();
        let mut set = tokio::task::JoinSet::new();
        let mut ingest = psg_ingest::Ingest::new(&cfg, Some(store.clone())).expect("ingest");
        ingest.set_output_partitions(3);
        let o = ingest.runner_options(&cfg, health.clone());
        spawn(&mut set, &cfg, o, ingest, &stop);
        let correlate = psg_correlate::Correlate::new(&cfg, Some(store.clone()));
        let o = correlate.runner_options(&cfg, health.clone());
        spawn(&mut set, &cfg, o, correlate, &stop);
        let mut classify = psg_classify::Classify::new(&cfg, Some(store.clone()));
        classify.restore().await.expect("classify restore");
        let o = classify.runner_options(&cfg, health.clone());
        spawn(&mut set, &cfg, o, classify, &stop);
        let sealer = psg_evidence::record::Sealer::new(key, "faults-test");
        let documents = psg_evidence::documents::Documents::open(&cfg.evidence.store_url).expect("store");
        let mut evidence = psg_evidence::Evidence::new(&cfg, Some(store.clone()), sealer, documents);
        evidence.restore().await.expect("evidence restore");
        let o = evidence.runner_options(&cfg, health.clone());
        spawn(&mut set, &cfg, o, evidence, &stop);

        let shipper = Shipper::new(&bootstrap);
        load_inventory(&shipper, &db.url).await;
        let cluster = broker.cluster();
        let fifth = MESSAGES / 5;
        shipper.flows(0..fifth, Duration::from_millis(30)).await;

        // One broker down (its partitions unavailable), then every broker.
        cluster.broker_down(2).expect("broker down");
        eprintln!("broker 2 down");
        let sending = shipper.flows(fifth..2 * fifth, Duration::from_millis(30));
        let outage = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.broker_down(-1).expect("all down");
            eprintln!("every broker down");
            // longer than the session timeout (10 s): the group loses its
            // members, partitions are revoked and assigned again
            tokio::time::sleep(Duration::from_secs(12)).await;
            cluster.broker_up(-1).expect("all up");
            eprintln!("every broker up");
        };
        tokio::join!(sending, outage);

        // Requests failing with retriable errors and dropped connections.
        let transport = RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT;
        let not_leader = RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        let timed_out = RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
        cluster.request_errors(RDKafkaApiKey::Produce, &[not_leader, timed_out, transport, not_leader, timed_out]);
        cluster.request_errors(RDKafkaApiKey::Fetch, &[not_leader, transport, timed_out, not_leader]);
        cluster.request_errors(RDKafkaApiKey::OffsetCommit, &[timed_out, transport]);
        shipper.flows(2 * fifth..3 * fifth, Duration::from_millis(30)).await;

        // Slow brokers: 300 ms per request.
        cluster.broker_round_trip_time(-1, Duration::from_millis(300)).expect("rtt");
        shipper.flows(3 * fifth..4 * fifth, Duration::from_millis(30)).await;
        cluster.broker_round_trip_time(-1, Duration::ZERO).expect("rtt");
        shipper.flows(4 * fifth..MESSAGES, Duration::from_millis(30)).await;
        shipper.flush().await;

        let store_dir = work.path().join("store");
        assert_exactly_once(&bootstrap, &db.url, &store_dir, "mock cluster faults").await;
        stop.cancel();
        while let Some(r) = set.join_next().await {
            r.expect("service task");
        }
    }
}
