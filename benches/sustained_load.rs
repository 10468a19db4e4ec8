//! Sustained load: `cargo bench --bench sustained_load` runs the whole
//! pipeline (a tansu broker, PostgreSQL, and ingest, correlate, classify and
//! evidence as four processes of the release-mode binary) under a steady
//! stream of AWS VPC flow-log records for `LOAD_SECS`, and prints what it
//! sustained.
//!
//! - Inventory first: `LOAD_RESOURCES` resources (10 % CDE databases, 30 %
//!   web tiers, 60 % other systems, a tenth of them untagged), plus one
//!   out-of-scope probe host per second of the run.
//! - Load: `LOAD_RATE` flow-log lines (v2 format) per second on
//!   `flowlogs.raw`, `LOAD_BATCH` lines a message, over a fixed set of
//!   connections (web → database, other → web, other → other, internet →
//!   front web tiers, rejected other → database), requests and responses,
//!   reported at either end, with event times following wall time so
//!   correlate's windows close.
//! - Probes: each second one flow from a fresh probe host to a CDE database
//!   (an edge never seen before), timed from producing it until its
//!   first-seen edge is on `flows.edges`, its `connected-cde` decision on
//!   `scope.decisions` and its `segmentation_violation` alert on
//!   `scope.alerts`.
//! - Every 10 s: each service's `/metrics` (records in and out), consumer
//!   lag per service group (committed offsets vs high watermarks) and
//!   backlog (high watermarks vs messages consumed), RSS, VmHWM and CPU of
//!   every service process and of tansu. A progress line every 30 s; a
//!   summary at the end (throughput, latency percentiles, lag, memory trend
//!   with growth over 20 % flagged).
//!
//! Fails (exit 1), printing the log tail, when a service or the broker dies;
//! also (after the summary) when the pipeline did not keep up: lines still
//! unprocessed `LOAD_DRAIN_SECS` after the load, or probes without an alert.
//!
//! The default rate: on the 2-core development machine (shared), the pipeline
//! took 40,000 lines/s for 30 s with no backlog and probe alerts within
//! 0.6 s, at about half a core for the four services and tansu together;
//! 10,000 leaves room for PostgreSQL, window closes and other work, and
//! keeps tansu's in-memory log (about 3 MiB/s at that rate) to ~2 GiB.
//!
//! Settings (environment): `LOAD_SECS` (600), `LOAD_RATE` (10000 lines/s),
//! `LOAD_RESOURCES` (300), `LOAD_BATCH` (500 lines per message),
//! `LOAD_DRAIN_SECS` (60: how long to wait after the load for the pipeline to
//! finish), `LOAD_LOG_LEVEL` (info). `PSG_*` variables (e.g.
//! `PSG_CORRELATE__WINDOW_SECS`) reach the services. Needs tansu (see
//! `TANSU_BIN`) and PostgreSQL (`TEST_DATABASE_ADMIN_URL`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use psg_domain::{Alert, AlertType, EdgeKind, FlowEdge, PciScope, ScopeDecision};
use psg_testkit::{Tansu, TestDb, http_get};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");
const SERVICES: [&str; 4] = ["ingest", "correlate", "classify", "evidence"];
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const PROGRESS_EVERY_SAMPLES: usize = 3;
const GROWTH_FLAG: f64 = 0.20;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

#[derive(Clone)]
struct Settings {
    secs: u64,
    rate: u64,
    resources: usize,
    batch: usize,
    drain_secs: u64,
    log_level: String,
    /// The services' correlate window and allowed lateness (from `PSG_*`, else their defaults).
    window_secs: u64,
    lateness_secs: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sustained_load: bench");
        return;
    }
    let s = Settings {
        secs: setting("LOAD_SECS", 600u64).max(1),
        rate: setting("LOAD_RATE", 10_000u64).max(1),
        resources: setting("LOAD_RESOURCES", 300usize).max(10),
        batch: setting("LOAD_BATCH", 500usize).max(1),
        drain_secs: setting("LOAD_DRAIN_SECS", 60u64),
        log_level: setting("LOAD_LOG_LEVEL", "info".to_owned()),
        window_secs: setting("PSG_CORRELATE__WINDOW_SECS", 60u64),
        lateness_secs: setting("PSG_CORRELATE__ALLOWED_LATENESS_SECS", 120u64),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    match rt.block_on(run(s)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("\nsustained_load FAILED: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------- processes

struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
    metrics: String,
}

/// The service processes, killed on drop (also on failure).
struct Services(Vec<Service>);

impl Drop for Services {
    fn drop(&mut self) {
        for s in &mut self.0 {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Services {
    /// An error naming the first process that exited, with its log tail.
    fn check(&mut self) -> Result<(), String> {
        for s in &mut self.0 {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!(
                    "service {} exited ({status}); last lines of {}:\n{}",
                    s.name,
                    s.log.display(),
                    log_tail(&s.log, 40)
                ));
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(|s| s.child.id()).collect()
    }
}

fn spawn(name: &'static str, args: &[&str], dir: &Path, log_level: &str) -> Result<Service, String> {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(BIN)
        .arg(name)
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0", "--log-level", log_level])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {BIN} {name}: {e}"))?;
    Ok(Service { name, child, log, metrics: String::new() })
}

/// Waits for the metrics address the service prints.
fn await_metrics_addr(s: &mut Service) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&s.log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(|l| l.split("metrics on http://").nth(1)) {
            s.metrics = addr.trim_end_matches("/metrics").trim().to_owned();
            return Ok(());
        }
        if let Ok(Some(status)) = s.child.try_wait() {
            return Err(format!("service {} exited ({status}) at start:\n{}", s.name, log_tail(&s.log, 40)));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "service {} printed no metrics address within 60 s:\n{}",
                s.name,
                log_tail(&s.log, 40)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tansu process listening on `bootstrap` (found through /proc).
fn tansu_pid(bootstrap: &str) -> Option<u32> {
    let url = format!("tcp://{bootstrap}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        (args.contains(&b"broker".as_slice()) && args.contains(&url.as_bytes())).then_some(pid)
    })
}

/// (RSS, VmHWM) in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)?.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User + system CPU time in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------- estate and flows

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Host {
    id: String,
    ip: String,
    eni: String,
}

struct Conn {
    client_ip: String,
    client_eni: Option<String>,
    server_ip: String,
    server_eni: String,
    port: u16,
    accept: bool,
}

struct Estate {
    inventory: Vec<String>,
    dbs: Vec<Host>,
    /// (weight in percent, connections)
    classes: Vec<(u64, Vec<Conn>)>,
    probes: Vec<Host>,
}

fn host(prefix: &str, net: u8, i: usize) -> Host {
    Host {
        id: format!("{prefix}-{i}"),
        ip: format!("10.{net}.{}.{}", i / 250, i % 250 + 1),
        eni: format!("eni-{prefix}-{i:05}"),
    }
}

fn resource_json(h: &Host, kind: &str, vpc: &str, tags: &str, observed_at: &str) -> String {
    format!(
        r#"{{"provider":"aws","resource_type":"{kind}","resource_id":"{id}","resource_name":"{id}","region":"us-east-1","vpc_id":"{vpc}","subnet_id":"subnet-{vpc}","private_ips":["{ip}"],"interface_ids":["{eni}"],"security_groups":["sg-{vpc}"],"tags":{{{tags}}},"observed_at":"{observed_at}","deleted":false}}"#,
        id = h.id,
        ip = h.ip,
        eni = h.eni
    )
}

fn estate(resources: usize, probes: usize) -> Estate {
    let observed_at =
        (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let n_db = (resources / 10).max(1);
    let n_web = (resources * 3 / 10).max(1);
    let n_other = resources.saturating_sub(n_db + n_web).max(1);
    let dbs: Vec<Host> = (0..n_db).map(|i| host("db", 0, i)).collect();
    let webs: Vec<Host> = (0..n_web).map(|i| host("web", 1, i)).collect();
    let others: Vec<Host> = (0..n_other).map(|i| host("sys", 2, i)).collect();
    let probes: Vec<Host> = (0..probes).map(|i| host("probe", 9, i)).collect();
    let mut inventory = Vec::new();
    for h in &dbs {
        inventory.push(resource_json(h, "rds_instance", "vpc-pay", r#""pci-scope":"cde""#, &observed_at));
    }
    for h in &webs {
        inventory.push(resource_json(h, "ec2_instance", "vpc-pay", r#""pci-scope":"connected-cde""#, &observed_at));
    }
    for (i, h) in others.iter().enumerate() {
        let tags = if i % 10 == 9 { "" } else { r#""pci-scope":"out-of-scope""# };
        inventory.push(resource_json(h, "ec2_instance", "vpc-corp", tags, &observed_at));
    }
    for h in &probes {
        inventory.push(resource_json(h, "ec2_instance", "vpc-corp", r#""pci-scope":"out-of-scope""#, &observed_at));
    }
    let conn = |c: &Host, s: &Host, port: u16, accept: bool| Conn {
        client_ip: c.ip.clone(),
        client_eni: Some(c.eni.clone()),
        server_ip: s.ip.clone(),
        server_eni: s.eni.clone(),
        port,
        accept,
    };
    // Every system talks to a few fixed peers: the edge set is bounded, as in
    // a real estate.
    let mut web_db = Vec::new();
    for (i, w) in webs.iter().enumerate() {
        web_db.push(conn(w, &dbs[i % n_db], 5432, true));
        web_db.push(conn(w, &dbs[(i * 7 + 3) % n_db], 5432, true));
    }
    let (mut sys_web, mut sys_sys, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
    for (i, o) in others.iter().enumerate() {
        sys_web.push(conn(o, &webs[i % n_web], 443, true));
        sys_web.push(conn(o, &webs[(i * 13 + 5) % n_web], 443, true));
        sys_sys.push(conn(o, &others[(i + 1) % n_other], if i % 2 == 0 { 8080 } else { 22 }, true));
        rejected.push(conn(o, &dbs[i % n_db], 5432, false));
    }
    let mut internet = Vec::new();
    for c in 1..=254 {
        let w = &webs[c % webs.len().min(5)];
        internet.push(Conn {
            client_ip: format!("203.0.113.{c}"),
            client_eni: None,
            server_ip: w.ip.clone(),
            server_eni: w.eni.clone(),
            port: 443,
            accept: true,
        });
    }
    Estate {
        inventory,
        dbs,
        classes: vec![(30, web_db), (30, sys_web), (20, sys_sys), (12, internet), (8, rejected)],
        probes,
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One AWS VPC flow-log v2 line: a request or its response, reported by
/// either end's interface, ending up to 3 s ago.
fn flow_line(out: &mut String, rng: &mut Rng, c: &Conn, now: u64) {
    let eph = 32_768 + rng.below(28_000);
    let end = now - rng.below(4);
    let start = end - rng.below(60);
    let packets = 1 + rng.below(200);
    let bytes = packets * (60 + rng.below(1400));
    let response = c.accept && rng.below(2) == 0;
    let (src, dst, sport, dport) = if response {
        (&c.server_ip, &c.client_ip, u64::from(c.port), eph)
    } else {
        (&c.client_ip, &c.server_ip, eph, u64::from(c.port))
    };
    let eni = match &c.client_eni {
        Some(e) if rng.below(2) == 0 => e,
        _ => &c.server_eni,
    };
    let action = if c.accept { "ACCEPT" } else { "REJECT" };
    let _ =
        writeln!(out, "2 123456789012 {eni} {src} {dst} {sport} {dport} 6 {packets} {bytes} {start} {end} {action} OK");
}

fn flow_message(rng: &mut Rng, estate: &Estate, lines: usize) -> String {
    let now = unix_now();
    let total: u64 = estate.classes.iter().map(|(w, _)| w).sum();
    let mut out = String::with_capacity(lines * 110);
    for _ in 0..lines {
        let mut pick = rng.below(total);
        let class = estate
            .classes
            .iter()
            .find(|(w, _)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or(&estate.classes[0].1, |(_, c)| c);
        let c = &class[rng.below(class.len() as u64) as usize];
        flow_line(&mut out, rng, c, now);
    }
    out
}

// ---------------------------------------------------------------- probes

#[derive(Default, Clone)]
struct Probe {
    sent: Option<Instant>,
    /// Seconds since the load started.
    at: f64,
    edge: Option<Duration>,
    decision: Option<Duration>,
    alert: Option<Duration>,
}

type Probes = Arc<Mutex<Vec<Probe>>>;

/// One of a probe's measured effects.
type Effect = fn(&Probe) -> Option<Duration>;

fn probe_index(resource_id: &str) -> Option<usize> {
    resource_id.strip_prefix("probe-")?.parse().ok()
}

/// Reads flows.edges, scope.decisions and scope.alerts and times each probe's effects.
async fn watch_probes(consumer: StreamConsumer, probes: Probes) {
    loop {
        let Ok(m) = consumer.recv().await else { continue };
        let (topic, payload) = (m.topic(), m.payload().unwrap_or_default());
        let mut book = probes.lock().expect("probes");
        let mut mark = |id: &str, field: fn(&mut Probe) -> &mut Option<Duration>| {
            if let Some(p) = probe_index(id).and_then(|i| book.get_mut(i)) {
                if let Some(sent) = p.sent {
                    field(p).get_or_insert_with(|| sent.elapsed());
                }
            }
        };
        match topic {
            "flows.edges" => {
                if let Ok(e) = psg_avro_codec::decode::<FlowEdge>(payload) {
                    if e.kind == EdgeKind::FirstSeen {
                        mark(&e.src.resource_id, |p| &mut p.edge);
                        mark(&e.dst.resource_id, |p| &mut p.edge);
                    }
                }
            }
            "scope.decisions" => {
                if let Ok(d) = psg_avro_codec::decode::<ScopeDecision>(payload) {
                    if d.scope == PciScope::ConnectedCde {
                        mark(&d.resource_id, |p| &mut p.decision);
                    }
                }
            }
            "scope.alerts" => {
                if let Ok(a) = psg_avro_codec::decode::<Alert>(payload) {
                    if let (AlertType::SegmentationViolation, Some(id)) = (a.alert_type, a.resource_id.as_deref()) {
                        mark(id, |p| &mut p.alert);
                    }
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- metrics, lag, samples

/// Sum of the series of `name` whose labels contain `label` (`key="value"`), if any.
fn metric_sum(exposition: &str, name: &str, label: Option<&str>) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            (n == name && label.is_none_or(|want| labels.contains(want))).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

#[derive(Default, Clone, Copy)]
struct SvcCounters {
    /// Kafka messages consumed (stream and table topics).
    messages: f64,
    /// Records processed: flow records (ingest, correlate), messages (classify, evidence).
    records: f64,
    /// Records produced to output topics.
    produced: f64,
    dead_letters: f64,
}

fn counters(service: &str, body: &str) -> SvcCounters {
    let svc = format!("service=\"{service}\"");
    let messages = metric_sum(body, "psg_messages_consumed_total", Some(&svc));
    let records = match service {
        "ingest" => metric_sum(body, "psg_ingest_records_total", Some("kind=\"flow\"")),
        "correlate" => metric_sum(body, "psg_correlate_records_total", None),
        _ => messages,
    };
    let produced = match service {
        "evidence" => metric_sum(body, "psg_evidence_records_total", None),
        _ => metric_sum(body, "psg_records_produced_total", Some(&svc)),
    };
    SvcCounters { messages, records, produced, dead_letters: metric_sum(body, "psg_dead_letters_total", None) + 0.0 }
}

/// Consumer groups and the topics each reads (stream topics through the group,
/// table topics by assignment: their messages count as consumed, not as lag).
struct Group {
    group: String,
    streams: Vec<&'static str>,
    tables: Vec<&'static str>,
}

fn groups() -> Vec<Group> {
    let prefix = std::env::var("PSG_KAFKA__GROUP_PREFIX").unwrap_or_else(|_| "pci-scope-guard".to_owned());
    let g = |service: &'static str, streams: Vec<&'static str>, tables: Vec<&'static str>| Group {
        group: format!("{prefix}-{service}"),
        streams,
        tables,
    };
    vec![
        g("ingest", vec!["flowlogs.raw", "inventory.raw"], vec![]),
        g("correlate", vec!["flows.normalized"], vec!["resources"]),
        g("classify", vec!["flows.edges"], vec!["resources", "scope.manual", "flows.coverage"]),
        g("evidence", vec!["scope.decisions", "evidence.requests", "flows.edges"], vec![]),
    ]
}

/// Offsets of the groups: one client per group (committed offsets are read
/// through the group's coordinator), reused for every sample.
struct LagReader {
    groups: Vec<(Group, BaseConsumer)>,
    partitions: HashMap<&'static str, i32>,
}

#[derive(Default, Clone, Copy)]
struct Lag {
    /// Σ (high watermark − committed offset) over the group's stream partitions.
    committed: i64,
    /// Σ high watermarks of every topic it reads (streams and tables).
    end_offsets: i64,
}

impl LagReader {
    fn new(bootstrap: &str) -> Result<Self, String> {
        let mut list = Vec::new();
        let mut partitions = HashMap::new();
        for g in groups() {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", &g.group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(|e| format!("offset reader: {e}"))?;
            for t in g.streams.iter().chain(&g.tables) {
                if !partitions.contains_key(t) {
                    let md =
                        c.fetch_metadata(Some(t), Duration::from_secs(10)).map_err(|e| format!("metadata {t}: {e}"))?;
                    let n = md.topics().first().map_or(0, |mt| mt.partitions().len() as i32);
                    partitions.insert(*t, n);
                }
            }
            list.push((g, c));
        }
        Ok(Self { groups: list, partitions })
    }

    fn read(&self) -> Vec<Lag> {
        let timeout = Duration::from_secs(5);
        let mut high = HashMap::new();
        for (t, n) in &self.partitions {
            let c = &self.groups[0].1;
            for p in 0..*n {
                let hw = c.fetch_watermarks(t, p, timeout).map_or(0, |(_, h)| h);
                high.insert((*t, p), hw);
            }
        }
        self.groups
            .iter()
            .map(|(g, c)| {
                let mut tpl = TopicPartitionList::new();
                for t in &g.streams {
                    for p in 0..self.partitions[t] {
                        tpl.add_partition(t, p);
                    }
                }
                let committed = c.committed_offsets(tpl, timeout).ok();
                let mut lag = Lag::default();
                for t in &g.streams {
                    for p in 0..self.partitions[t] {
                        let hw = high.get(&(*t, p)).copied().unwrap_or(0);
                        let at = committed
                            .as_ref()
                            .and_then(|c| c.find_partition(t, p))
                            .and_then(|e| match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            })
                            .unwrap_or(0);
                        lag.committed += (hw - at).max(0);
                        lag.end_offsets += hw;
                    }
                }
                for t in &g.tables {
                    lag.end_offsets +=
                        (0..self.partitions[t]).map(|p| high.get(&(*t, p)).copied().unwrap_or(0)).sum::<i64>();
                }
                lag
            })
            .collect()
    }
}

#[derive(Clone)]
struct Sample {
    /// Seconds since the load started.
    t: f64,
    /// Flow lines acknowledged by the broker (load, not probes).
    offered: u64,
    svc: [SvcCounters; 4],
    lag: [Lag; 4],
    /// (RSS, VmHWM) KiB: four services, then tansu.
    mem: [(u64, u64); 5],
    /// CPU ticks: four services, tansu, this process (the load generator).
    cpu: [u64; 6],
}

impl Sample {
    fn backlog(&self, i: usize) -> i64 {
        (self.lag[i].end_offsets - self.svc[i].messages as i64).max(0)
    }
}

struct Shared {
    metrics: Vec<String>,
    pids: Vec<u32>,
    tansu: Option<u32>,
    lag: Arc<LagReader>,
    offered: Arc<AtomicU64>,
    started: Instant,
}

async fn take_sample(sh: &Shared) -> Result<Sample, String> {
    let t = sh.started.elapsed().as_secs_f64();
    let offered = sh.offered.load(Ordering::Relaxed);
    let mut svc = [SvcCounters::default(); 4];
    for (i, addr) in sh.metrics.iter().enumerate() {
        let (_, body) = tokio::time::timeout(Duration::from_secs(10), http_get(addr, "/metrics"))
            .await
            .map_err(|_| format!("{} /metrics did not answer within 10 s", SERVICES[i]))?
            .map_err(|e| format!("{} /metrics: {e}", SERVICES[i]))?;
        svc[i] = counters(SERVICES[i], &body);
    }
    let reader = Arc::clone(&sh.lag);
    let lags = tokio::task::spawn_blocking(move || reader.read()).await.map_err(|e| e.to_string())?;
    let mut lag = [Lag::default(); 4];
    lag.copy_from_slice(&lags[..4]);
    let mut mem = [(0, 0); 5];
    let mut cpu = [0; 6];
    for (i, pid) in sh.pids.iter().copied().map(Some).chain([sh.tansu, Some(std::process::id())]).enumerate() {
        if let Some(pid) = pid {
            if i < mem.len() {
                mem[i] = memory_kib(pid).unwrap_or_default();
            }
            cpu[i] = cpu_ticks(pid).unwrap_or_default();
        }
    }
    Ok(Sample { t, offered, svc, lag, mem, cpu })
}

// ---------------------------------------------------------------- reporting

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn pct(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{:.0}", sorted[i].as_secs_f64() * 1e3)
}

fn latencies(probes: &[Probe], field: Effect) -> Vec<Duration> {
    let mut v: Vec<Duration> = probes.iter().filter_map(field).collect();
    v.sort();
    v
}

fn rate(a: &Sample, b: &Sample, f: impl Fn(&Sample) -> f64) -> f64 {
    let dt = b.t - a.t;
    if dt <= 0.0 { 0.0 } else { (f(b) - f(a)) / dt }
}

/// One line: the last 30 s.
fn progress(samples: &[Sample], probes: &[Probe], secs: u64) {
    let Some(b) = samples.last() else { return };
    let Some(a) = samples.iter().rev().find(|x| x.t <= b.t - 29.0).or(samples.first()) else { return };
    let recent: Vec<Probe> = probes.iter().filter(|p| p.sent.is_some() && p.at > a.t && p.at <= b.t).cloned().collect();
    let alerts = latencies(&recent, |p| p.alert);
    let mut line = format!(
        "[{:>4.0}/{secs} s] offered {:.0} lines/s | ingest {:.0} rec/s, correlate {:.0} rec/s, classify {:.0} msg/s, evidence {:.0} msg/s | lag",
        b.t,
        rate(a, b, |x| x.offered as f64),
        rate(a, b, |x| x.svc[0].records),
        rate(a, b, |x| x.svc[1].records),
        rate(a, b, |x| x.svc[2].records),
        rate(a, b, |x| x.svc[3].records),
    );
    for (i, name) in SERVICES.iter().enumerate() {
        let _ = write!(line, " {name} {}", b.lag[i].committed);
    }
    let _ = write!(
        line,
        " | probe alerts {}/{} p50 {} ms max {} ms | RSS MiB",
        alerts.len(),
        recent.len(),
        pct(&alerts, 0.5),
        pct(&alerts, 1.0)
    );
    for (i, name) in SERVICES.iter().chain(&["tansu"]).enumerate() {
        let _ = write!(line, " {name} {:.0}", mib(b.mem[i].0));
    }
    println!("{line}");
}

fn cpu_percent(a: &Sample, b: &Sample, i: usize, ticks: f64) -> f64 {
    b.cpu[i].saturating_sub(a.cpu[i]) as f64 / ticks / (b.t - a.t).max(1e-9) * 100.0
}

struct Outcome<'a> {
    samples: &'a [Sample],
    probes: &'a [Probe],
    /// After the drain.
    end: &'a Sample,
    /// Seconds after the load until every line was through ingest and correlate.
    drained: Option<f64>,
    total_lines: u64,
    ticks: f64,
}

fn summary(s: &Settings, o: &Outcome<'_>) {
    let (Some(first), Some(last)) = (o.samples.first(), o.samples.last()) else { return };
    let (samples, end) = (o.samples, o.end);
    let sent = o.probes.iter().filter(|p| p.sent.is_some()).count();
    println!(
        "\n=== sustained load: {:.0} s at {} flow lines/s, {} resources + {} probe hosts ===",
        last.t,
        s.rate,
        s.resources,
        o.probes.len()
    );
    println!(
        "offered: {:.0} lines/s on average ({} lines in messages of up to {}, acknowledged by the broker) + {sent} probes",
        rate(first, last, |x| x.offered as f64),
        last.offered - first.offered,
        s.batch,
    );
    println!(
        "\nthroughput over the load period (each service's /metrics; CPU %: of one core; generator: this process):"
    );
    println!(
        "  {:<10} {:>11} {:>11} {:<14} {:>11} {:>7} {:>6}",
        "service", "messages/s", "records/s", "(records are)", "produced/s", "CPU %", "DLQ"
    );
    let what = ["flow records", "flow records", "edges", "decis.+edges"];
    for (i, name) in SERVICES.iter().enumerate() {
        println!(
            "  {:<10} {:>11.1} {:>11.0} {:<14} {:>11.1} {:>7.0} {:>6.0}",
            name,
            rate(first, last, |x| x.svc[i].messages),
            rate(first, last, |x| x.svc[i].records),
            what[i],
            rate(first, last, |x| x.svc[i].produced),
            cpu_percent(first, last, i, o.ticks),
            end.svc[i].dead_letters,
        );
    }
    for (i, name) in [(4, "tansu"), (5, "generator")] {
        println!(
            "  {:<10} {:>11} {:>11} {:<14} {:>11} {:>7.0}",
            name,
            "",
            "",
            "",
            "",
            cpu_percent(first, last, i, o.ticks)
        );
    }
    match o.drained {
        Some(d) => println!(
            "  every flow line ({}) was through ingest and correlate {d:.1} s after the load ended",
            o.total_lines
        ),
        None => println!(
            "  NOT DRAINED {} s after the load: ingest {:.0}, correlate {:.0} of {} flow lines",
            s.drain_secs, end.svc[0].records, end.svc[1].records, o.total_lines
        ),
    }

    println!("\nend-to-end latency of the probes (flow produced to flowlogs.raw → effect consumed), ms:");
    println!("  {:<44} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8}", "effect", "seen", "p50", "p90", "p99", "max", "missing");
    let effects: [(&str, Effect); 3] = [
        ("first-seen edge on flows.edges", |p| p.edge),
        ("connected-cde decision on scope.decisions", |p| p.decision),
        ("segmentation_violation alert on scope.alerts", |p| p.alert),
    ];
    for (label, f) in effects {
        let v = latencies(o.probes, f);
        println!(
            "  {:<44} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8}",
            label,
            v.len(),
            pct(&v, 0.5),
            pct(&v, 0.9),
            pct(&v, 0.99),
            pct(&v, 1.0),
            sent - v.len()
        );
    }

    println!("\nconsumer lag per group, in messages: committed offsets vs high watermarks, every 10 s of the load;");
    println!("backlog: high watermarks of every topic it reads vs messages it consumed (what it has not yet read)");
    println!(
        "  {:<10} {:>8} {:>8} {:>12} {:>12} {:>14}",
        "group", "lag avg", "lag max", "backlog avg", "backlog max", "after drain"
    );
    for (i, name) in SERVICES.iter().enumerate() {
        let lags: Vec<i64> = samples.iter().map(|x| x.lag[i].committed).collect();
        let backlogs: Vec<i64> = samples.iter().map(|x| x.backlog(i)).collect();
        let avg = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len().max(1) as f64;
        println!(
            "  {:<10} {:>8.0} {:>8} {:>12.0} {:>12} {:>14}",
            name,
            avg(&lags),
            lags.iter().max().unwrap_or(&0),
            avg(&backlogs),
            backlogs.iter().max().unwrap_or(&0),
            format!("{} / {}", end.lag[i].committed, end.backlog(i)),
        );
    }
    println!("  (correlate commits only past closed windows: its lag holds window + lateness of input by design)");

    // Timeline: lag and RSS, at most ~20 rows.
    let every = samples.len().div_ceil(20).max(1);
    println!("\ntimeline: committed lag (messages) and RSS (MiB) per process");
    println!(
        "  {:>5} {:>9} | {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} {:>7}",
        "t s", "offered/s", "ingest", "correl", "classif", "evid", "ingest", "correl", "classif", "evid", "tansu"
    );
    for (k, x) in samples.iter().enumerate() {
        if k % every != 0 && k + 1 != samples.len() {
            continue;
        }
        let prev = &samples[k.saturating_sub(every).min(k.saturating_sub(1))];
        println!(
            "  {:>5.0} {:>9.0} | {:>7} {:>7} {:>7} {:>7} | {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0}",
            x.t,
            rate(prev, x, |y| y.offered as f64),
            x.lag[0].committed,
            x.lag[1].committed,
            x.lag[2].committed,
            x.lag[3].committed,
            mib(x.mem[0].0),
            mib(x.mem[1].0),
            mib(x.mem[2].0),
            mib(x.mem[3].0),
            mib(x.mem[4].0),
        );
    }

    // Memory trend: the first vs the last minute of the load (thirds of a run under 3 min),
    // and, as correlate's window state fills until its first windows close, from the end of
    // that warm-up (two windows plus the lateness) to the last minute.
    let w = (last.t / 3.0).min(60.0);
    let warm = (2 * s.window_secs + s.lateness_secs) as f64;
    let avg = |i: usize, lo: f64, hi: f64| {
        let v: Vec<u64> = samples.iter().filter(|x| x.t >= lo - 0.5 && x.t <= hi + 0.5).map(|x| x.mem[i].0).collect();
        v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
    };
    let growth = |a: f64, b: f64| if a > 0.0 { b / a - 1.0 } else { 0.0 };
    println!(
        "\nmemory per process: RSS averaged over the first and the last {w:.0} s of the load; after warm-up: from the \
         {w:.0} s after {warm:.0} s (2 windows + lateness) to the last {w:.0} s; peak = VmHWM"
    );
    println!(
        "  {:<10} {:>10} {:>10} {:>8} {:>14} {:>10}",
        "process", "first MiB", "last MiB", "growth", "after warm-up", "peak MiB"
    );
    for (i, name) in SERVICES.iter().chain(&["tansu"]).enumerate() {
        let (a, b) = (avg(i, 0.0, w), avg(i, last.t - w, last.t));
        let total = growth(a, b);
        let after = if last.t >= warm + 2.0 * w {
            format!("{:.1}%", growth(avg(i, warm, warm + w), b) * 100.0)
        } else {
            "- (short run)".to_owned()
        };
        let peak = samples.iter().map(|x| x.mem[i].1).chain([end.mem[i].1]).max().unwrap_or(0);
        let flag = match (total > GROWTH_FLAG, i == 4) {
            (true, false) => "  GROWS > 20 %",
            (true, true) => "  GROWS > 20 % (memory storage keeps every record)",
            _ => "",
        };
        println!(
            "  {:<10} {:>10.1} {:>10.1} {:>7.1}% {:>14} {:>10.1}{flag}",
            name,
            a / 1024.0,
            b / 1024.0,
            total * 100.0,
            after,
            mib(peak)
        );
    }
}

// ---------------------------------------------------------------- the run

async fn run(s: Settings) -> Result<(), String> {
    println!(
        "sustained_load: {} s at {} lines/s ({} lines a message), {} resources; correlate window {} s, lateness {} s",
        s.secs, s.rate, s.batch, s.resources, s.window_secs, s.lateness_secs
    );
    let db = TestDb::create().await;
    let tansu = Tansu::start();
    let brokers = tansu.bootstrap.clone();
    let tansu_pid = tansu_pid(&brokers);
    let dir = tempfile::Builder::new().prefix("sustained-load-").tempdir().map_err(|e| e.to_string())?;
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new(BIN).args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    };
    run(&["migrate", "--database-url", &db.url])?;
    let keys = dir.path().join("keys");
    run(&["keygen", "--out-dir", keys.to_str().ok_or("temp path is not UTF-8")?])?;
    let key = keys.join("signing.key");
    let store = dir.path().join("evidence-store");
    let common = ["--brokers", brokers.as_str(), "--database-url", db.url.as_str()];
    let mut services = Services(Vec::new());
    for name in SERVICES {
        let mut args: Vec<&str> = common.to_vec();
        if name == "evidence" {
            args.extend([
                "--signing-key",
                key.to_str().ok_or("temp path")?,
                "--evidence-store",
                store.to_str().ok_or("temp path")?,
            ]);
        }
        services.0.push(spawn(name, &args, dir.path(), &s.log_level)?);
    }
    let result = drive(&s, &mut services, &brokers, tansu_pid, &db).await;
    if result.is_err() {
        // Keep the logs of a failed run.
        let kept = dir.keep();
        eprintln!("service logs kept in {}", kept.display());
    }
    drop(services);
    drop(tansu);
    result
}

async fn wait_until<F: AsyncFnMut() -> bool>(
    what: &str,
    timeout: Duration,
    services: &mut Services,
    mut done: F,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if done().await {
            return Ok(());
        }
        services.check()?;
        if Instant::now() > deadline {
            return Err(format!("timed out after {} s waiting for {what}", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn metric(addr: &str, name: &str, label: Option<&str>) -> f64 {
    match tokio::time::timeout(Duration::from_secs(10), http_get(addr, "/metrics")).await {
        Ok(Ok((200, body))) => metric_sum(&body, name, label),
        _ => 0.0,
    }
}

async fn drive(
    s: &Settings,
    services: &mut Services,
    brokers: &str,
    tansu_pid: Option<u32>,
    db: &TestDb,
) -> Result<(), String> {
    let port = brokers.rsplit(':').next().unwrap_or_default();
    let tansu = (tansu_pid, std::env::temp_dir().join(format!("tansu-{port}.log")));
    for svc in &mut services.0 {
        await_metrics_addr(svc)?;
    }
    let addrs: Vec<String> = services.0.iter().map(|x| x.metrics.clone()).collect();
    for (i, addr) in addrs.iter().enumerate() {
        wait_until(&format!("{} /readyz", SERVICES[i]), Duration::from_secs(90), services, async || {
            matches!(http_get(addr, "/readyz").await, Ok((200, _)))
        })
        .await?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", "10000000")
        .create()
        .map_err(|e| format!("producer: {e}"))?;

    // Inventory.
    let probes_n = s.secs as usize + 1;
    let estate = estate(s.resources, probes_n);
    let total_resources = estate.inventory.len();
    for (k, chunk) in estate.inventory.chunks(200).enumerate() {
        let payload = chunk.join("\n");
        let key = format!("inventory-{k}");
        producer
            .send(FutureRecord::to("inventory.raw").key(&key).payload(&payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| format!("producing inventory: {e}"))?;
    }
    let started = Instant::now();
    wait_until("correlate and classify to hold the inventory", Duration::from_secs(180), services, async || {
        metric(&addrs[1], "psg_correlate_index_resources", None).await >= total_resources as f64
            && metric(&addrs[2], "psg_classify_graph_nodes", None).await >= total_resources as f64
    })
    .await?;
    println!(
        "inventory: {total_resources} resources ({} CDE databases) indexed by correlate and classify in {:.1} s",
        estate.dbs.len(),
        started.elapsed().as_secs_f64()
    );

    // The probe watcher reads its topics from the beginning.
    let watcher: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("sustained-load-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| format!("watcher: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for t in ["flows.edges", "scope.decisions", "scope.alerts"] {
        let md = watcher.fetch_metadata(Some(t), Duration::from_secs(10)).map_err(|e| format!("metadata {t}: {e}"))?;
        let n = md.topics().first().map_or(0, |mt| mt.partitions().len() as i32);
        if n == 0 {
            return Err(format!("topic {t} does not exist"));
        }
        for p in 0..n {
            tpl.add_partition_offset(t, p, Offset::Beginning).map_err(|e| e.to_string())?;
        }
    }
    watcher.assign(&tpl).map_err(|e| format!("watcher assign: {e}"))?;
    let probes: Probes = Arc::new(Mutex::new(vec![Probe::default(); probes_n]));
    let watch = tokio::spawn(watch_probes(watcher, Arc::clone(&probes)));

    let lag = {
        let b = brokers.to_owned();
        Arc::new(tokio::task::spawn_blocking(move || LagReader::new(&b)).await.map_err(|e| e.to_string())??)
    };
    let offered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let shared = Arc::new(Shared {
        metrics: addrs.clone(),
        pids: services.pids(),
        tansu: tansu_pid,
        lag,
        offered: Arc::clone(&offered),
        started,
    });
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (sh, samples, probes) = (Arc::clone(&shared), Arc::clone(&samples), Arc::clone(&probes));
        let secs = s.secs;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(sh.started), SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // The sample at the end of the load is taken by the load loop.
                if sh.started.elapsed().as_secs_f64() >= secs as f64 - 1.0 {
                    return Ok::<(), String>(());
                }
                let x = take_sample(&sh).await?;
                let n = {
                    let mut v = samples.lock().expect("samples");
                    v.push(x);
                    v.len()
                };
                if n > 1 && (n - 1) % PROGRESS_EVERY_SAMPLES == 0 {
                    let (v, p) = (samples.lock().expect("samples").clone(), probes.lock().expect("probes").clone());
                    progress(&v, &p, secs);
                }
            }
        })
    };

    // The load.
    let mut rng = Rng(0x5eed);
    let mut inflight = FuturesUnordered::new();
    let (mut generated, mut delivery_errors, mut probe_k, mut msg_k) = (0u64, 0u64, 0usize, 0u64);
    let mut last_send = Instant::now();
    let mut last_check = Instant::now();
    let load = Duration::from_secs(s.secs);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= load {
            break;
        }
        let target = (s.rate as f64 * elapsed.as_secs_f64()) as u64;
        let batch = s.batch as u64;
        while target > generated && (target - generated >= batch || last_send.elapsed() >= Duration::from_secs(1)) {
            let n = (target - generated).min(batch);
            let payload = flow_message(&mut rng, &estate, n as usize);
            let key = format!("shipper-{}", msg_k % 16);
            msg_k += 1;
            match producer.send_result(FutureRecord::to("flowlogs.raw").key(&key).payload(&payload)) {
                Ok(f) => inflight.push(delivered(n, f)),
                Err((e, _)) => return Err(format!("producing to flowlogs.raw: {e}")),
            }
            generated += n;
            last_send = Instant::now();
        }
        // One probe a second: a fresh host to a CDE database.
        if elapsed.as_secs() as usize >= probe_k && probe_k < probes_n {
            let p = &estate.probes[probe_k];
            let db = &estate.dbs[probe_k % estate.dbs.len()];
            let now = unix_now();
            let line = format!(
                "2 123456789012 {} {} {} {} 5432 6 3 180 {} {now} ACCEPT OK",
                p.eni,
                p.ip,
                db.ip,
                40_000 + probe_k % 20_000,
                now - 1
            );
            {
                let mut book = probes.lock().expect("probes");
                book[probe_k].sent = Some(Instant::now());
                book[probe_k].at = elapsed.as_secs_f64();
            }
            match producer.send_result(FutureRecord::to("flowlogs.raw").key("probe").payload(&line)) {
                Ok(f) => inflight.push(delivered(0, f)),
                Err((e, _)) => return Err(format!("producing a probe: {e}")),
            }
            probe_k += 1;
        }
        while let Some(Some((n, ok))) = inflight.next().now_or_never() {
            if ok {
                offered.fetch_add(n, Ordering::Relaxed);
            } else {
                delivery_errors += 1;
            }
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            alive(services, &tansu)?;
            if sampler.is_finished() && elapsed.as_secs_f64() < s.secs as f64 - 1.0 {
                return match sampler.await {
                    Ok(Err(e)) => Err(format!("sampling failed: {e}")),
                    Ok(Ok(())) => Err("the sampler stopped".into()),
                    Err(e) => Err(format!("the sampler: {e}")),
                };
            }
        }
    }
    // Outstanding deliveries, then the sample that ends the load period.
    while let Ok(Some((n, ok))) = tokio::time::timeout(Duration::from_secs(35), inflight.next()).await {
        if ok {
            offered.fetch_add(n, Ordering::Relaxed);
        } else {
            delivery_errors += 1;
        }
    }
    sampler.abort();
    alive(services, &tansu)?;
    let last = take_sample(&shared).await?;
    let samples = {
        let mut v = samples.lock().expect("samples");
        v.push(last);
        v.clone()
    };
    progress(&samples, &probes.lock().expect("probes").clone(), s.secs);

    // Drain: every line through ingest and correlate, every probe's alert.
    let total_lines = offered.load(Ordering::Relaxed) + probe_k as u64;
    let mut drained = None;
    let drain_deadline = Instant::now() + Duration::from_secs(s.drain_secs);
    loop {
        let ingest = metric(&addrs[0], "psg_ingest_records_total", Some("kind=\"flow\"")).await;
        let correlate = metric(&addrs[1], "psg_correlate_records_total", None).await;
        if drained.is_none() && ingest >= total_lines as f64 && correlate >= total_lines as f64 {
            drained = Some((started.elapsed().as_secs_f64() - s.secs as f64).max(0.0));
        }
        let alerts_done = probes.lock().expect("probes").iter().all(|p| p.sent.is_none() || p.alert.is_some());
        if (drained.is_some() && alerts_done) || Instant::now() > drain_deadline {
            break;
        }
        alive(services, &tansu)?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    alive(services, &tansu)?;
    let end = take_sample(&shared).await?;
    watch.abort();
    let probes = probes.lock().expect("probes").clone();
    summary(
        s,
        &Outcome {
            samples: &samples,
            probes: &probes[..probe_k],
            end: &end,
            drained,
            total_lines,
            ticks: clock_ticks_per_sec(),
        },
    );
    if delivery_errors > 0 {
        println!("\nWARNING: {delivery_errors} messages were not acknowledged by the broker");
    }
    let missing = probes[..probe_k].iter().filter(|p| p.alert.is_none()).count();

    // What the database holds.
    if let Ok((client, conn)) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let q = async |sql: &str| client.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(-1);
        println!(
            "\nPostgreSQL: {} data_flows rows, {} scope decisions, {} alerts, {} evidence records, database {:.0} MiB",
            q("SELECT count(*) FROM data_flows").await,
            q("SELECT count(*) FROM scope_decisions").await,
            q("SELECT count(*) FROM alerts").await,
            q("SELECT count(*) FROM evidence").await,
            q("SELECT pg_database_size(current_database())").await as f64 / 1_048_576.0
        );
    }
    if drained.is_none() || missing > 0 || delivery_errors > 0 {
        return Err(format!(
            "the pipeline did not keep up with {} lines/s: {}, {missing} probe alerts missing, {delivery_errors} \
             messages unacknowledged",
            s.rate,
            if drained.is_some() { "drained" } else { "not drained" }
        ));
    }
    println!("\nsustained {} lines/s for {} s: every line processed, every probe alerted", s.rate, s.secs);
    Ok(())
}

/// Waits for a message's acknowledgement: (lines it holds, acknowledged).
async fn delivered(lines: u64, f: rdkafka::producer::DeliveryFuture) -> (u64, bool) {
    (lines, matches!(f.await, Ok(Ok(_))))
}

/// An error when a service or the broker is gone.
fn alive(services: &mut Services, tansu: &(Option<u32>, PathBuf)) -> Result<(), String> {
    services.check()?;
    match tansu.0 {
        Some(pid) if !Path::new(&format!("/proc/{pid}")).exists() => Err(format!(
            "the tansu broker (pid {pid}) died; last lines of {}:\n{}",
            tansu.1.display(),
            log_tail(&tansu.1, 40)
        )),
        _ => Ok(()),
    }
}
