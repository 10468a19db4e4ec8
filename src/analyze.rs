//! `pci-scope-guard analyze`: batch analysis of inventory and flow-log files
//! by the four real services over the embedded broker.
//!
//! The files are published to `inventory.raw` (first, and processed to the
//! end) and `flowlogs.raw`; the services run until every one has processed
//! every message of its inputs; then the outputs are read back from the
//! topics, as a SIEM would, and turned into an [`Analysis`].

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use psg_config::Config;
use psg_domain::time::rfc3339;
use psg_domain::{Alert, EdgeKind, EndpointKind, FlowAction, FlowBatch, FlowEdge, PciScope, Resource, ScopeDecision};
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::{CancellationToken, OutRecord, Output, Progress};
use psg_report::{AlertEntry, Analysis, EdgeEntry, ExternalConnection, ResourceEntry, Summary};
use psg_telemetry::Health;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::cli::CliError;
use crate::services::{self, ServiceKind};

/// How `analyze` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// The documented JSON shape.
    Json,
    /// A terminal table.
    Table,
    /// Markdown for the assessor.
    Markdown,
}

/// Flags of `analyze`.
#[derive(Debug, Args, Clone)]
pub(crate) struct AnalyzeArgs {
    /// Inventory files or directories (searched recursively; .gz allowed). Repeatable.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub inventory: Vec<PathBuf>,
    /// Flow-log files or directories (searched recursively; .gz allowed). Repeatable.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub flows: Vec<PathBuf>,
    /// Flow-log format: `auto` (detected per file), `aws`, `azure`, `gcp`, or
    /// `aws:<field list>` for headerless custom AWS formats, e.g.
    /// 'aws:version vpc-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status'.
    #[arg(long, default_value = "auto", value_name = "F")]
    pub flow_format: String,
    /// Segmentation policy (YAML; see deploy/policy.example.yaml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Manual scope decisions (JSON array or one object per line:
    /// {"resource_id": "...", "scope": "out-of-scope", "justification": "...", "decided_by": "..."}).
    #[arg(long, value_name = "FILE")]
    pub decisions: Option<PathBuf>,
    /// How long a flow keeps connecting (event time), e.g. 90d or 12w. Default: classify.lookback-days.
    #[arg(long, value_parser = parse_lookback, value_name = "DURATION")]
    pub lookback: Option<u32>,
    /// What to print on standard output.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Also write report.json, report.md, report.csv, diagram.svg/.mmd/.dot and
    /// the evidence bundle (evidence/, verified) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

fn parse_lookback(s: &str) -> Result<u32, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u32 = num.parse().map_err(|_| format!("'{s}' is not a duration like 90d or 12w"))?;
    let days = match unit {
        "" | "d" => n,
        "w" => n.saturating_mul(7),
        "h" if n % 24 == 0 => n / 24,
        "h" => return Err(format!("'{s}': the lookback is kept in whole days; use {}d", n.div_ceil(24))),
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use d or w, e.g. 90d)")),
    };
    if days == 0 {
        return Err("the lookback must be at least one day".into());
    }
    Ok(days)
}

/// Reads `--decisions`.
fn manual_decisions(path: &Path) -> Result<Vec<psg_domain::ManualDecision>, CliError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        resource_id: String,
        scope: String,
        justification: String,
        #[serde(default)]
        decided_by: Option<String>,
    }
    let err = |m: String| CliError::Config(format!("--decisions {}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let items: Vec<Item> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| err(format!("line {}: {e}", i + 1))))
            .collect::<Result<_, _>>()?
    };
    items
        .into_iter()
        .map(|i| {
            let scope: PciScope = i.scope.parse().map_err(|e| err(format!("{}: {e}", i.resource_id)))?;
            Ok(psg_domain::ManualDecision {
                resource_id: i.resource_id,
                scope: Some(scope),
                justification: i.justification,
                decided_by: i.decided_by.unwrap_or_else(|| "analyze --decisions".into()),
                decided_at: psg_domain::time::now_micros(),
            })
        })
        .collect()
}

/// An input file, read.
struct InputFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

fn collect(paths: &[PathBuf], what: &str) -> Result<Vec<InputFile>, CliError> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| CliError::Config(format!("{what} {}: {e}", p.display())))?;
        if meta.is_dir() {
            let mut stack = vec![p.clone()];
            let mut found = Vec::new();
            while let Some(d) = stack.pop() {
                let entries =
                    std::fs::read_dir(&d).map_err(|e| CliError::Config(format!("{what} {}: {e}", d.display())))?;
                for e in entries.flatten() {
                    let path = e.path();
                    let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                    if path.is_dir() && !hidden {
                        stack.push(path);
                    } else if path.is_file() && !hidden {
                        found.push(path);
                    }
                }
            }
            found.sort();
            if found.is_empty() {
                return Err(CliError::Config(format!("{what} {}: the directory holds no files", p.display())));
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let bytes =
                std::fs::read(&path).map_err(|e| CliError::Config(format!("{what} {}: {e}", path.display())))?;
            Ok(InputFile { path, bytes })
        })
        .collect()
}

/// Whether a payload (possibly gzip) starts like JSON.
fn looks_like_json(bytes: &[u8]) -> Option<bool> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return None; // compressed: ingest decides
    }
    bytes.iter().find(|b| !b.is_ascii_whitespace()).map(|b| *b == b'{' || *b == b'[')
}

/// Checks a given `--flow-format` against a file; returns the AWS layout header to send.
fn flow_header(format: &str, file: &InputFile) -> Result<Option<String>, CliError> {
    let json = looks_like_json(&file.bytes);
    let mismatch = |expected: &str| {
        CliError::Config(format!(
            "{}: --flow-format {format} expects {expected}, but the file does not look like it",
            file.path.display()
        ))
    };
    match format {
        "auto" => Ok(None),
        "aws" if json == Some(true) => Err(mismatch("AWS VPC flow log lines")),
        "aws" => Ok(None),
        "azure" | "gcp" if json == Some(false) => Err(mismatch("JSON")),
        "azure" | "gcp" => Ok(None),
        f => match f.strip_prefix("aws:") {
            Some(fields) if !fields.trim().is_empty() => {
                if json == Some(true) {
                    return Err(mismatch("AWS VPC flow log lines"));
                }
                Ok(Some(fields.split_whitespace().collect::<Vec<_>>().join(" ")))
            }
            _ => Err(CliError::Config(format!(
                "--flow-format '{f}' is not one of auto, aws, azure, gcp, aws:<field list>"
            ))),
        },
    }
}

/// Prints progress on stderr when it is a terminal.
struct Meter {
    on: bool,
    started: Instant,
}

impl Meter {
    fn new() -> Self {
        Self { on: std::io::stderr().is_terminal(), started: Instant::now() }
    }

    fn show(&self, stage: &str, done: i64, total: i64) {
        if self.on {
            let width = 30usize;
            let filled = if total > 0 { (done.min(total) as usize * width) / total as usize } else { width };
            eprint!(
                "\r{stage:<22} [{}{}] {done}/{total} messages  {:>5.1}s",
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

fn kafka_client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("group.id", "pci-scope-guard-analyze").set("enable.auto.commit", "false");
    c
}

/// Waits until every service has processed every message of its inputs and
/// nothing moved for a few polls.
async fn wait_idle(
    bootstrap: &str,
    progress: &Progress,
    partitions: i32,
    meter: &Meter,
    stage: &str,
    services: &mut tokio::task::JoinSet<Result<(), CliError>>,
) -> Result<(), CliError> {
    let consumer: BaseConsumer = kafka_client(bootstrap).create().map_err(|e| CliError::Runtime(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let mut stable = 0;
    let mut last_total = -1;
    loop {
        // A service runs until shutdown: one that ended has failed.
        if let Some(ended) = services.try_join_next() {
            return Err(match ended {
                Ok(Err(e)) => e,
                Ok(Ok(())) => CliError::Runtime("a service stopped before its input was processed".into()),
                Err(e) => CliError::Runtime(format!("a service panicked: {e}")),
            });
        }
        let mut behind = false;
        let (mut done, mut total) = (0i64, 0i64);
        for (service, topic) in progress.inputs() {
            for p in 0..partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(5))
                    .map_err(|e| CliError::Runtime(format!("{topic}: {e}")))?;
                let pos = progress.position(&service, &topic, p);
                total += high;
                done += pos.min(high);
                if pos < high {
                    behind = true;
                }
            }
        }
        meter.show(stage, done, total);
        tracing::debug!(stage, done, total, behind, "progress");
        if !behind && total == last_total {
            stable += 1;
            if stable >= 3 {
                tracing::info!(stage, messages = total, "processed everything");
                return Ok(());
            }
        } else {
            stable = 0;
        }
        last_total = total;
        if Instant::now() > deadline {
            return Err(CliError::Runtime(format!(
                "{stage}: not finished after 30 minutes ({done} of {total} messages)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Every message of `topic`, in partition and offset order.
fn read_topic(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Result<Vec<Vec<u8>>, CliError> {
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .map_err(|e| CliError::Runtime(format!("{topic}: {e}")))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low)).map_err(|e| CliError::Runtime(e.to_string()))?;
            ends.insert(p, high);
        }
    }
    let mut by_partition: BTreeMap<i32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(|e| CliError::Runtime(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let p = m.partition();
                by_partition.entry(p).or_default().push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                if ends.get(&p).is_some_and(|high| m.offset() + 1 >= *high) {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => return Err(CliError::Runtime(format!("reading {topic}: {e}"))),
            None if Instant::now() > deadline => {
                return Err(CliError::Runtime(format!(
                    "reading {topic}: partitions {:?} did not reach their end",
                    ends.keys()
                )));
            }
            None => {}
        }
    }
    consumer.unassign().map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(by_partition.into_values().flat_map(|v| v.into_iter().map(|(_, payload)| payload)).collect())
}

/// What an analysis leaves besides the [`Analysis`]: the evidence records
/// read back from `evidence.records`.
pub(crate) struct Outcome {
    pub analysis: Analysis,
    pub evidence: Vec<psg_domain::Evidence>,
    pub public_key: ed25519_dalek::VerifyingKey,
}

/// Runs the analysis.
pub(crate) async fn run(mut cfg: Config, args: &AnalyzeArgs) -> Result<Outcome, CliError> {
    let inventory = collect(&args.inventory, "--inventory")?;
    let manual = match &args.decisions {
        Some(p) => manual_decisions(p)?,
        None => Vec::new(),
    };
    let flows = collect(&args.flows, "--flows")?;
    let mut headers = Vec::with_capacity(flows.len());
    for f in &flows {
        headers.push(flow_header(&args.flow_format, f)?);
    }

    // Offline, in memory: no database, the embedded broker, an ephemeral key.
    let work = tempfile::tempdir().map_err(|e| CliError::Runtime(format!("temporary directory: {e}")))?;
    cfg.database.url = None;
    cfg.kafka.brokers = None;
    cfg.kafka.batch_linger_ms = cfg.kafka.batch_linger_ms.min(20);
    // Whole files are single messages.
    cfg.kafka.properties.insert("message.max.bytes".into(), psg_config::Secret::new("67108864".to_owned()));
    // The inventory is complete before the first flow: nothing to wait for.
    cfg.correlate.hold_back_secs = 0;
    if let Some(days) = args.lookback {
        cfg.classify.lookback_days = days;
    }
    if let Some(policy) = &args.policy {
        cfg.classify.policy_file = Some(policy.clone());
    }
    if cfg.evidence.signing_key.is_none() {
        let files = psg_evidence::keys::generate(&work.path().join("keys"), "signing")
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        cfg.evidence.signing_key = Some(files.private);
    }
    let key = psg_evidence::keys::load_signing_key(cfg.evidence.signing_key.as_deref().unwrap_or(Path::new("")))
        .map_err(|e| CliError::Config(e.to_string()))?;
    cfg.evidence.store_url = work.path().join("evidence-store").display().to_string();
    cfg.validate().map_err(|e| CliError::Config(e.to_string()))?;

    let broker = EmbeddedBroker::start(1).map_err(|e| CliError::Runtime(e.to_string()))?;
    let bootstrap = broker.bootstrap_servers();
    cfg.kafka.brokers = Some(bootstrap.clone());
    broker
        .create_topics(&services::topic_specs(&cfg, &ServiceKind::ALL), cfg.kafka.partitions)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let shutdown = CancellationToken::new();
    let progress = Progress::new();
    let health = Health::new();
    let mut tasks =
        services::spawn_services(&cfg, &ServiceKind::ALL, &health, None, true, Some(progress.clone()), &shutdown)
            .await?;
    let meter = Meter::new();
    let partitions = cfg.kafka.partitions;
    let deliverer = psg_kafka_runtime::Deliverer::new(&cfg.kafka, "analyze", &cfg.topics.ingest_dlq)
        .map_err(|e| CliError::Runtime(e.to_string()))?;

    let result = async {
        // Inventory first, to the end; then the flows.
        let mut records: Vec<OutRecord> = inventory
            .iter()
            .map(|f| OutRecord::new(&cfg.topics.inventory_raw, f.path.display().to_string(), f.bytes.clone()))
            .collect();
        for m in &manual {
            let bytes = psg_avro_codec::encode(m).map_err(|e| CliError::Runtime(e.to_string()))?;
            records.push(OutRecord::new(&cfg.topics.scope_manual, m.resource_id.as_bytes(), bytes));
        }
        deliverer
            .deliver(&Output { records, ..Output::default() })
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        wait_idle(&bootstrap, &progress, partitions, &meter, "inventory", &mut tasks).await?;
        let records: Vec<OutRecord> = flows
            .iter()
            .zip(&headers)
            .map(|(f, h)| {
                let mut r = OutRecord::new(&cfg.topics.flowlogs_raw, f.path.display().to_string(), f.bytes.clone());
                if let Some(h) = h {
                    r.headers.push((psg_ingest::flowlogs::AWS_FORMAT_HEADER.to_owned(), h.clone().into_bytes()));
                }
                r
            })
            .collect();
        deliverer
            .deliver(&Output { records, ..Output::default() })
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        wait_idle(&bootstrap, &progress, partitions, &meter, "flows", &mut tasks).await?;
        meter.finish();
        collect_outputs(&cfg, &bootstrap, partitions)
    }
    .await;

    shutdown.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(e)) = joined {
            tracing::warn!(error = %e, "service ended with an error");
        }
    }
    // Every client goes before the broker does.
    drop(deliverer);
    drop(broker);
    let (analysis, evidence) = result?;
    Ok(Outcome { analysis, evidence, public_key: key.verifying_key() })
}

fn decode_all<T: psg_avro_codec::AvroMessage>(payloads: &[Vec<u8>]) -> Vec<T> {
    payloads.iter().filter_map(|p| psg_avro_codec::decode::<T>(p).ok()).collect()
}

fn protocol(n: i32) -> String {
    psg_domain::protocol_name(n)
}

/// Reads the services' outputs back and builds the analysis.
fn collect_outputs(
    cfg: &Config,
    bootstrap: &str,
    partitions: i32,
) -> Result<(Analysis, Vec<psg_domain::Evidence>), CliError> {
    let t = &cfg.topics;
    let consumer: BaseConsumer = kafka_client(bootstrap).create().map_err(|e| CliError::Runtime(e.to_string()))?;
    let read = |topic: &str| read_topic(&consumer, topic, partitions);
    let resources: Vec<Resource> = decode_all(&read(&t.resources)?);
    let decisions: Vec<ScopeDecision> = decode_all(&read(&t.scope_decisions)?);
    let alerts: Vec<Alert> = decode_all(&read(&t.scope_alerts)?);
    let edges: Vec<FlowEdge> = decode_all(&read(&t.flows_edges)?);
    let batches: Vec<FlowBatch> = decode_all(&read(&t.flows_normalized)?);
    let evidence: Vec<psg_domain::Evidence> = decode_all(&read(&t.evidence_records)?);
    let mut dead_lettered = 0u64;
    for dlq in [&t.ingest_dlq, &t.correlate_dlq, &t.classify_dlq, &t.evidence_dlq] {
        dead_lettered += read(dlq)?.len() as u64;
    }

    let mut by_id: HashMap<&str, &Resource> = HashMap::new();
    for r in &resources {
        by_id.insert(r.resource_id.as_str(), r);
    }
    let mut current: BTreeMap<&str, &ScopeDecision> = BTreeMap::new();
    for d in &decisions {
        let newer = current.get(d.resource_id.as_str()).is_none_or(|c| c.decided_at <= d.decided_at);
        if newer {
            current.insert(d.resource_id.as_str(), d);
        }
    }
    let mut summary = Summary {
        flow_records: batches.iter().map(|b| b.records.len() as u64).sum(),
        dead_lettered,
        ..Summary::default()
    };
    let mut as_of = i64::MIN;
    let mut entries = Vec::with_capacity(current.len());
    for (rid, d) in &current {
        summary.add(d.scope.as_str());
        as_of = as_of.max(d.as_of);
        let r = by_id.get(rid);
        entries.push(ResourceEntry {
            resource_id: (*rid).to_owned(),
            provider: r.map_or("unknown".to_owned(), |r| r.provider.as_str().to_owned()),
            resource_type: r.map_or("unknown_host".to_owned(), |r| r.resource_type.as_str().to_owned()),
            resource_name: r.and_then(|r| r.resource_name.clone()).unwrap_or_else(|| (*rid).to_owned()),
            scope: d.scope.as_str().to_owned(),
            data_classification: d.data_classification.map(|c| c.as_str().to_owned()),
            justification: d.justification.clone(),
            dependency_resource_ids: d.dependency_resource_ids.clone(),
            rule: d.rule.as_str().to_owned(),
            segment: r.and_then(|r| r.vpc_id.clone()).unwrap_or_default(),
            tags: r.map(|r| r.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        });
    }

    let mut seen_alerts = std::collections::HashSet::new();
    let mut alert_entries = Vec::new();
    let mut violating: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    for a in &alerts {
        if !seen_alerts.insert(a.alert_id.clone()) {
            continue;
        }
        let rid = a.resource_id.clone().unwrap_or_default();
        let peer = a.context.get("peer").cloned();
        if a.alert_type == psg_domain::AlertType::SegmentationViolation
            && let Some(p) = &peer
        {
            violating.insert((rid.clone(), p.clone()));
            violating.insert((p.clone(), rid.clone()));
        }
        alert_entries.push(AlertEntry {
            alert_type: a.alert_type.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            resource_id: rid,
            title: a.title.clone(),
            description: a.description.clone(),
            alert_id: a.alert_id.clone(),
            pci_requirement: a.pci_requirement.clone().unwrap_or_default(),
            status: a.status.as_str().to_owned(),
            peer,
        });
    }

    // Flows per edge: a closed window's aggregate, else what was seen first.
    let name = |e: &psg_domain::Endpoint| match e.kind {
        EndpointKind::External => format!("ext:{}", e.address.as_deref().unwrap_or(&e.resource_id)),
        _ => e.resource_id.clone(),
    };
    // (source, destination, protocol, port, action) and the window start.
    type Service = (String, String, i32, i32, FlowAction);
    let mut windows: BTreeMap<(Service, i64), (bool, i64)> = BTreeMap::new();
    for e in &edges {
        as_of = as_of.max(e.last_seen);
        let key = ((name(&e.src), name(&e.dst), e.protocol, e.dst_port, e.action), e.window_start);
        let closed = e.kind == EdgeKind::Window;
        let slot = windows.entry(key).or_insert((false, 0));
        if closed || !slot.0 {
            *slot = (closed, e.flows);
        }
    }
    let mut totals: BTreeMap<Service, i64> = BTreeMap::new();
    for ((service, _), (_, flows)) in windows {
        *totals.entry(service).or_default() += flows;
    }
    let scope_of = |id: &str| current.get(id).map(|d| d.scope);
    let in_scope = |id: &str| matches!(scope_of(id), Some(PciScope::Cde | PciScope::ConnectedCde));
    let mut external = Vec::new();
    let mut edge_entries = Vec::new();
    for ((s, d, p, port, action), flows) in totals {
        if action == FlowAction::Accept {
            for (inside, outside) in [(&s, &d), (&d, &s)] {
                if let Some(addr) = outside.strip_prefix("ext:")
                    && in_scope(inside)
                {
                    external.push(ExternalConnection {
                        resource_id: inside.clone(),
                        address: addr.to_owned(),
                        protocol: protocol(p),
                        port,
                        flows,
                    });
                }
            }
        }
        let violation = action == FlowAction::Accept && violating.contains(&(s.clone(), d.clone()));
        edge_entries.push(EdgeEntry {
            source: s,
            destination: d,
            protocol: protocol(p),
            port,
            action: action.as_str().to_owned(),
            flows,
            violation,
        });
    }

    let mut analysis = Analysis {
        as_of: if as_of == i64::MIN { rfc3339(psg_domain::time::now_micros()) } else { rfc3339(as_of) },
        summary,
        resources: entries,
        alerts: alert_entries,
        external_connections: external,
        edges: edge_entries,
    };
    analysis.sort();
    Ok((analysis, evidence))
}

/// Writes the reports, the diagram and the verified evidence bundle into
/// `dir`; returns the verification summary line.
pub(crate) fn write_outputs(dir: &Path, outcome: &Outcome) -> Result<String, CliError> {
    let io = |p: &Path, e: std::io::Error| CliError::Runtime(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let a = &outcome.analysis;
    let json = serde_json::to_string_pretty(a).map_err(|e| CliError::Runtime(e.to_string()))?;
    let files: [(&str, String); 6] = [
        ("report.json", json + "\n"),
        ("report.md", psg_report::render::markdown(a)),
        ("report.csv", psg_report::render::csv(a)),
        ("diagram.svg", psg_report::diagram::svg(a)),
        ("diagram.mmd", psg_report::diagram::mermaid(a)),
        ("diagram.dot", psg_report::diagram::dot(a)),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }

    // The evidence bundle, as `evidence export` writes it, and its verification.
    let bundle_dir = dir.join("evidence");
    if bundle_dir.exists() {
        std::fs::remove_dir_all(&bundle_dir).map_err(|e| io(&bundle_dir, e))?;
    }
    let entries = psg_evidence::verify::chain_order(
        outcome.evidence.iter().map(psg_evidence::verify::Entry::from_message).collect(),
    );
    let documents: HashMap<&str, &[u8]> =
        outcome.evidence.iter().map(|m| (m.evidence_id.as_str(), m.document.as_bytes())).collect();
    let records: Vec<(psg_evidence::verify::Entry, Vec<u8>)> = entries
        .into_iter()
        .map(|e| {
            let doc = documents.get(e.evidence_id.as_str()).map(|d| d.to_vec()).unwrap_or_default();
            (e, doc)
        })
        .collect();
    let mut keys = psg_evidence::verify::Keyring::new();
    keys.add(outcome.public_key);
    let now = chrono::Utc::now().to_rfc3339();
    psg_evidence::bundle::write(&bundle_dir, "", &a.as_of, records, &keys, &now)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let (_, verified, _) =
        psg_evidence::bundle::verify_dir(&bundle_dir, Some(&keys)).map_err(|e| CliError::Runtime(e.to_string()))?;
    let mut text = String::new();
    for f in &verified.failures {
        text.push_str(&format!("FAIL {f}\n"));
    }
    let line = if verified.ok() {
        format!("OK: {} evidence records verified (hashes, Ed25519 signatures, chain links)", verified.verified.len())
    } else {
        format!("FAILED: {} problems", verified.failures.len())
    };
    text.push_str(&line);
    text.push('\n');
    let p = dir.join("evidence-verification.txt");
    std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    Ok(line)
}

/// `pci-scope-guard analyze`.
pub(crate) async fn execute(cfg: Config, args: AnalyzeArgs) -> Result<(), CliError> {
    let outcome = run(cfg, &args).await?;
    let a = &outcome.analysis;
    match args.output {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(a).map_err(|e| CliError::Runtime(e.to_string()))?)
        }
        OutputFormat::Table => print!("{}", psg_report::render::table(a)),
        OutputFormat::Markdown => print!("{}", psg_report::render::markdown(a)),
    }
    if let Some(dir) = &args.out_dir {
        let verified = write_outputs(dir, &outcome)?;
        eprintln!("wrote {} (reports, diagram, evidence bundle: {verified})", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookback_durations() {
        assert_eq!(parse_lookback("90d"), Ok(90));
        assert_eq!(parse_lookback("12w"), Ok(84));
        assert_eq!(parse_lookback("48h"), Ok(2));
        assert_eq!(parse_lookback("30"), Ok(30));
        assert!(parse_lookback("5h").unwrap_err().contains("whole days"));
        assert!(parse_lookback("3m").unwrap_err().contains("unknown unit"));
        assert!(parse_lookback("0d").is_err());
    }

    #[test]
    fn flow_formats_are_checked_against_the_file() {
        let file = |b: &[u8]| InputFile { path: "f".into(), bytes: b.to_vec() };
        assert_eq!(flow_header("auto", &file(b"{}")).ok(), Some(None));
        assert!(flow_header("aws", &file(b" {\"records\":[]}")).is_err());
        assert!(flow_header("azure", &file(b"2 123 eni-1")).is_err());
        assert_eq!(
            flow_header("aws:version  srcaddr dstaddr", &file(b"2 10.0.0.1 10.0.0.2")).ok(),
            Some(Some("version srcaddr dstaddr".to_owned()))
        );
        let e = flow_header("netflow", &file(b"x")).unwrap_err().to_string();
        assert!(e.contains("not one of auto, aws, azure, gcp"), "{e}");
    }
}
