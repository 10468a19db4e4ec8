//! Samples every 10 s: each service's counters, consumer lag, memory and CPU.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use psg_testkit::procstat::{cpu_ticks, memory_kib};
use psg_testkit::{http_get, metric_sum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::SERVICES;

#[derive(Default, Clone, Copy)]
pub(crate) struct SvcCounters {
    /// Kafka messages consumed (stream and table topics).
    pub(crate) messages: f64,
    /// Records processed: flow records (ingest, correlate), messages (classify, evidence).
    pub(crate) records: f64,
    /// Records produced to output topics.
    pub(crate) produced: f64,
    pub(crate) dead_letters: f64,
}

pub(crate) fn counters(service: &str, body: &str) -> SvcCounters {
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
pub(crate) struct Group {
    pub(crate) group: String,
    pub(crate) streams: Vec<&'static str>,
    pub(crate) tables: Vec<&'static str>,
}

pub(crate) fn groups() -> Vec<Group> {
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
pub(crate) struct LagReader {
    pub(crate) groups: Vec<(Group, BaseConsumer)>,
    pub(crate) partitions: HashMap<&'static str, i32>,
}

#[derive(Default, Clone, Copy)]
pub(crate) struct Lag {
    /// Σ (high watermark − committed offset) over the group's stream partitions.
    pub(crate) committed: i64,
    /// Σ high watermarks of every topic it reads (streams and tables).
    pub(crate) end_offsets: i64,
}

impl LagReader {
    pub(crate) fn new(bootstrap: &str) -> Result<Self, String> {
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

    pub(crate) fn read(&self) -> Vec<Lag> {
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
pub(crate) struct Sample {
    /// Seconds since the load started.
    pub(crate) t: f64,
    /// Flow lines acknowledged by the broker (load, not probes).
    pub(crate) offered: u64,
    pub(crate) svc: [SvcCounters; 4],
    pub(crate) lag: [Lag; 4],
    /// (RSS, VmHWM) KiB: four services, then tansu.
    pub(crate) mem: [(u64, u64); 5],
    /// CPU ticks: four services, tansu, this process (the load generator).
    pub(crate) cpu: [u64; 6],
}

impl Sample {
    pub(crate) fn backlog(&self, i: usize) -> i64 {
        (self.lag[i].end_offsets - self.svc[i].messages as i64).max(0)
    }
}

pub(crate) struct Shared {
    pub(crate) metrics: Vec<String>,
    pub(crate) pids: Vec<u32>,
    pub(crate) tansu: Option<u32>,
    pub(crate) lag: Arc<LagReader>,
    pub(crate) offered: Arc<AtomicU64>,
    pub(crate) started: Instant,
}

pub(crate) async fn take_sample(sh: &Shared) -> Result<Sample, String> {
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
