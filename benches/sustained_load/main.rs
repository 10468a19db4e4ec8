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

mod load;
mod probes;
mod sample;
mod summary;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use psg_testkit::procs::Procs;
use psg_testkit::procstat::clock_ticks_per_sec;
use psg_testkit::{Rng, Tansu, TestDb, http_get, metric_sum};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::load::{estate, flow_message, unix_now};
use crate::probes::{Probe, Probes, watch_probes};
use crate::sample::{LagReader, Sample, Shared, take_sample};
use crate::summary::{Outcome, progress, summary};

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
pub(crate) struct Settings {
    pub(crate) secs: u64,
    pub(crate) rate: u64,
    pub(crate) resources: usize,
    pub(crate) batch: usize,
    pub(crate) drain_secs: u64,
    log_level: String,
    /// The services' correlate window and allowed lateness (from `PSG_*`, else their defaults).
    pub(crate) window_secs: u64,
    pub(crate) lateness_secs: u64,
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

async fn run(s: Settings) -> Result<(), String> {
    println!(
        "sustained_load: {} s at {} lines/s ({} lines a message), {} resources; correlate window {} s, lateness {} s",
        s.secs, s.rate, s.batch, s.resources, s.window_secs, s.lateness_secs
    );
    let db = TestDb::create().await;
    let tansu = Tansu::start();
    let brokers = tansu.bootstrap.clone();
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
    let mut procs = Procs::new(BIN, dir.path());
    for name in SERVICES {
        let mut args: Vec<&str> = vec![name];
        args.extend(common);
        args.extend(["--metrics-addr", "127.0.0.1:0"]);
        if name == "evidence" {
            args.extend([
                "--signing-key",
                key.to_str().ok_or("temp path")?,
                "--evidence-store",
                store.to_str().ok_or("temp path")?,
            ]);
        }
        procs.spawn(name, &args, &[("RUST_LOG", &s.log_level)]);
    }
    let mut pipeline = Pipeline { procs, tansu };
    let result = drive(&s, &mut pipeline, &db).await;
    if result.is_err() {
        // Keep the logs of a failed run.
        let kept = dir.keep();
        eprintln!("service logs kept in {}", kept.display());
    }
    drop(pipeline);
    result
}

/// The service processes and the broker, stopped on drop.
struct Pipeline {
    procs: Procs,
    tansu: Tansu,
}

impl Pipeline {
    /// An error, with the end of its log, when a service or the broker is gone.
    fn alive(&mut self) -> Result<(), String> {
        self.procs.check().map_err(|e| e.to_string())?;
        self.tansu.check().map_err(|e| e.to_string())
    }
}

async fn wait_until<F: AsyncFnMut() -> bool>(
    what: &str,
    timeout: Duration,
    pipeline: &mut Pipeline,
    mut done: F,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if done().await {
            return Ok(());
        }
        pipeline.alive()?;
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

async fn drive(s: &Settings, pipeline: &mut Pipeline, db: &TestDb) -> Result<(), String> {
    let brokers = pipeline.tansu.bootstrap.clone();
    let brokers = brokers.as_str();
    let addrs: Vec<String> = SERVICES.iter().map(|name| pipeline.procs.metrics_addr(name)).collect();
    for (i, addr) in addrs.iter().enumerate() {
        wait_until(&format!("{} /readyz", SERVICES[i]), Duration::from_secs(90), pipeline, async || {
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
    wait_until("correlate and classify to hold the inventory", Duration::from_secs(180), pipeline, async || {
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
        pids: pipeline.procs.pids(),
        tansu: pipeline.tansu.pid(),
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
    let mut rng = Rng::new(0x5eed);
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
            pipeline.alive()?;
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
    pipeline.alive()?;
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
        pipeline.alive()?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pipeline.alive()?;
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
