//! `pci-scope-guard analyze`: batch analysis of inventory and flow-log files
//! by the four real services, connected in this process by bounded queues
//! (the in-process transport: no broker, nothing dropped whatever the size).
//!
//! - [`input`]: files, directories, gzip, standard input; flow logs streamed
//!   in chunks of whole lines;
//! - [`pipeline`]: the services on the in-process bus, the feeder and the
//!   collector; the end of the input travels through as the end of stream;
//! - [`collect`]: the outputs as a SIEM would read them, the accounting of
//!   every record read, and the [`Analysis`] built from them;
//! - [`as_of`]: `--as-of`, the gate between ingest and the services after it.

mod as_of;
#[cfg(test)]
mod broker;
mod collect;
mod input;
mod pipeline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use psg_config::Config;
use psg_domain::{Alert, FlowEdge, PciScope, ScopeDecision};
use psg_kafka_runtime::CancellationToken;
use psg_report::{Analysis, Summary};

use crate::error::CliError;

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
    /// Inventory files or directories (searched recursively; .gz allowed; - for standard input).
    /// Repeatable.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub inventory: Vec<PathBuf>,
    /// Flow-log files or directories (searched recursively; .gz allowed; - for standard input),
    /// read as a stream: any size. Repeatable.
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
    /// Scope as it stood at this time (RFC 3339, or a date for UTC
    /// midnight): every input is read and counted, but only flow records
    /// that ended by then and inventory observed by then are analysed.
    /// --decisions apply as given.
    #[arg(long, value_parser = crate::evidence_cmd::parse_time, value_name = "TIME")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// What to print on standard output.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Also write report.json, report.md, report.csv, diagram.svg/.mmd/.dot,
    /// dead-letters.jsonl (every refused record: file, line, reason, text) and
    /// the evidence bundle (evidence/, verified) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

impl AnalyzeArgs {
    /// `analyze --inventory … --flows … --output …` with every other option
    /// at its default.
    pub(crate) fn of(inventory: Vec<PathBuf>, flows: Vec<PathBuf>, output: OutputFormat) -> Self {
        Self {
            inventory,
            flows,
            flow_format: "auto".into(),
            policy: None,
            decisions: None,
            lookback: None,
            as_of: None,
            output,
            out_dir: None,
        }
    }
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

/// What an analysis leaves besides the [`Analysis`]: the evidence records
/// as published on `evidence.records`, and the edges, decisions and alerts
/// it was built from.
pub(crate) struct Outcome {
    pub analysis: Analysis,
    pub evidence: Vec<psg_domain::Evidence>,
    /// The evidence log's newest checkpoint as the service published it.
    pub checkpoint: Option<psg_domain::EvidenceCheckpoint>,
    /// The evidence key (records and the bundle's checkpoints).
    pub signing_key: ed25519_dalek::SigningKey,
    // What the analysis was built from (window edges kept in tests only):
    // the transport-equivalence test compares them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub edges: Vec<FlowEdge>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub decisions: Vec<ScopeDecision>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub alerts: Vec<Alert>,
}

/// Prepares the configuration of a batch run: offline (no database, no
/// broker), an ephemeral signing key unless one is configured, evidence in
/// a temporary directory. Returns the key.
fn prepare(cfg: &mut Config, args: &AnalyzeArgs, work: &Path) -> Result<ed25519_dalek::SigningKey, CliError> {
    cfg.database.url = None;
    cfg.kafka.brokers = None;
    // The inventory is complete before the first flow: nothing to wait for.
    cfg.correlate.hold_back_secs = 0;
    // Processing time means nothing in a batch run: the end of the input closes the windows.
    cfg.correlate.idle_timeout_secs = 0;
    // The whole input is known at its end: missing flow-log coverage is
    // judged from the first record (what a file lacks at the start, a later
    // one may bring: the result is the state at the end).
    cfg.classify.coverage_grace_minutes = 0;
    if let Some(days) = args.lookback {
        cfg.classify.lookback_days = days;
    }
    if let Some(policy) = &args.policy {
        cfg.classify.policy_file = Some(policy.clone());
    }
    if cfg.evidence.signing_key.is_none() {
        let files = psg_evidence::keys::generate(&work.join("keys"), "signing")
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        cfg.evidence.signing_key = Some(files.private);
    }
    let key = psg_evidence::keys::load_signing_key(cfg.evidence.signing_key.as_deref().unwrap_or(Path::new("")))
        .map_err(|e| CliError::Config(e.to_string()))?;
    // The documents travel in the records (the bundle is written from them).
    cfg.evidence.store_url = "memory:".to_owned();
    cfg.validate().map_err(|e| CliError::Config(e.to_string()))?;
    Ok(key)
}

/// Checks `--flow-format` itself (against each file: while reading).
fn check_flow_format(format: &str) -> Result<(), CliError> {
    match format {
        "auto" | "aws" | "azure" | "gcp" => Ok(()),
        f => match f.strip_prefix("aws:") {
            Some(fields) if !fields.trim().is_empty() => psg_ingest::aws::Layout::parse(fields)
                .map(drop)
                .map_err(|e| CliError::Config(format!("--flow-format {f}: {e}"))),
            _ => Err(CliError::Config(format!(
                "--flow-format '{f}' is not one of auto, aws, azure, gcp, aws:<field list>"
            ))),
        },
    }
}

/// Runs the analysis. `dead_letters`: where to write every dead letter as
/// a JSON line.
pub(crate) async fn run(
    mut cfg: Config,
    args: &AnalyzeArgs,
    dead_letters: Option<PathBuf>,
) -> Result<Outcome, CliError> {
    check_flow_format(&args.flow_format)?;
    let inventory = input::list(&args.inventory, "--inventory")?;
    let flows = input::list(&args.flows, "--flows")?;
    if inventory.contains(&input::Source::Stdin) && flows.contains(&input::Source::Stdin) {
        return Err(CliError::Config("standard input (-) can be either --inventory or --flows, not both".into()));
    }
    for s in inventory.iter().chain(&flows) {
        input::check_readable(s)?;
    }
    let manual = match &args.decisions {
        Some(p) => manual_decisions(p)?,
        None => Vec::new(),
    };
    let work = tempfile::tempdir().map_err(|e| CliError::Runtime(format!("temporary directory: {e}")))?;
    let key = prepare(&mut cfg, args, work.path())?;
    let total_bytes = flows.iter().map(input::Source::size).sum::<Option<u64>>();
    let progress = Arc::new(pipeline::Progress { total_bytes, ..pipeline::Progress::default() });
    let done = CancellationToken::new();
    pipeline::spawn_meter(Arc::clone(&progress), done.clone());
    let as_of = args.as_of.map(|t| t.timestamp_micros());
    let inputs = pipeline::Inputs { inventory, flows, manual, flow_format: args.flow_format.clone(), as_of };
    let result = pipeline::run(&cfg, inputs, dead_letters, Arc::clone(&progress)).await;
    done.cancel();
    let mut c = result?;
    let (records_read, flow_records) = c.account()?;
    let counts = Summary { flow_records, records_read, dead_lettered: c.dead_lettered(), ..Summary::default() };
    let mut analysis = collect::build_analysis(&c.resources, &c.coverage, &c.decisions, &c.alerts, &c.edges, &counts);
    if let Some(at) = as_of {
        analysis.as_of = psg_domain::time::rfc3339(at);
        eprintln!(
            "as of {}: {} of {flow_records} flow records ended later and {} inventory records were observed later; \
             they were read and counted, not analysed",
            analysis.as_of,
            progress.later_records.load(std::sync::atomic::Ordering::Relaxed),
            progress.later_resources.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    if let Some(file) = &cfg.classify.policy_file {
        let policy = psg_classify::policy::Policy::load(file).map_err(CliError::config_from)?;
        collect::policy_column(&mut analysis, &policy, &c.resources);
    }
    Ok(Outcome {
        analysis,
        evidence: std::mem::take(&mut c.evidence),
        checkpoint: c.checkpoint.take(),
        signing_key: key.clone(),
        edges: c.window_edges.take().unwrap_or_default(),
        decisions: std::mem::take(&mut c.decisions),
        alerts: std::mem::take(&mut c.alerts),
    })
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
    // In log order, so that the bundle's log is the service's; chain order
    // for records from before the log.
    let mut entries: Vec<psg_evidence::verify::Entry> =
        outcome.evidence.iter().map(psg_evidence::verify::Entry::from_message).collect();
    if outcome.evidence.iter().all(|m| m.log_index.is_some()) {
        let index: HashMap<&str, i64> =
            outcome.evidence.iter().map(|m| (m.evidence_id.as_str(), m.log_index.unwrap_or_default())).collect();
        entries.sort_by_key(|e| index.get(e.evidence_id.as_str()).copied());
    } else {
        entries = psg_evidence::verify::chain_order(entries);
    }
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
    let key_id = keys.add(outcome.signing_key.verifying_key());
    let now = chrono::Utc::now().to_rfc3339();
    let origin = match &outcome.checkpoint {
        Some(c) => c.origin.clone(),
        None => psg_evidence::log::default_origin(&outcome.signing_key.verifying_key()),
    };
    let signer = psg_evidence::log::CheckpointSigner::new(&origin, &outcome.signing_key)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let log = psg_evidence::bundle::LogOptions {
        signer: &signer,
        key_id: &key_id,
        every: psg_evidence::bundle::CHECKPOINT_EVERY,
    };
    psg_evidence::bundle::write(
        &bundle_dir,
        "",
        &a.as_of,
        records,
        &keys,
        &now,
        psg_evidence::bundle::BundleLog::Sign(log),
    )
    .map_err(|e| CliError::Runtime(e.to_string()))?;
    let (manifest, verified, _) =
        psg_evidence::bundle::verify_dir(&bundle_dir, Some(&keys)).map_err(|e| CliError::Runtime(e.to_string()))?;
    let checkpoints = manifest.log.as_ref().map_or(0, |l| l.checkpoints.len());
    let mut text = String::new();
    for f in &verified.failures {
        text.push_str(&format!("FAIL {f}\n"));
    }
    // The service's own newest checkpoint signs the same tree as the
    // bundle's last: same origin, size and root, hence the same note.
    let service_log = match (&outcome.checkpoint, manifest.log.as_ref().and_then(|l| l.checkpoints.last())) {
        (Some(c), Some(last)) => {
            let bundled = std::fs::read_to_string(bundle_dir.join(&last.file)).unwrap_or_default();
            if bundled != c.checkpoint {
                text.push_str(&format!(
                    "FAIL evidence log: the service's checkpoint of {} records differs from the bundle's of {}\n",
                    c.tree_size, last.size
                ));
                false
            } else {
                true
            }
        }
        // No records: nothing for the service to checkpoint.
        (None, None) => true,
        (None, Some(last)) if last.size == 0 => true,
        (Some(c), None) => {
            text.push_str(&format!(
                "FAIL evidence log: the service checkpointed {} records, the bundle none\n",
                c.tree_size
            ));
            false
        }
        (None, Some(_)) => {
            text.push_str("FAIL evidence log: the service published no checkpoint\n");
            false
        }
    };
    let line = if verified.ok() && service_log {
        format!(
            "OK: {} evidence records verified (hashes, Ed25519 signatures, chain links, evidence log: {checkpoints} signed checkpoint{})",
            verified.verified.len(),
            if checkpoints == 1 { "" } else { "s" }
        )
    } else {
        format!("FAILED: {} problems", verified.failures.len() + usize::from(!service_log))
    };
    text.push_str(&line);
    text.push('\n');
    let p = dir.join("evidence-verification.txt");
    std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    Ok(line)
}

/// `pci-scope-guard analyze`.
pub(crate) async fn execute(cfg: Config, args: AnalyzeArgs) -> Result<(), CliError> {
    let dead_letters = match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| CliError::Runtime(format!("{}: {e}", dir.display())))?;
            Some(dir.join("dead-letters.jsonl"))
        }
        None => None,
    };
    let outcome = run(cfg, &args, dead_letters).await?;
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
    fn flow_formats_are_checked() {
        assert!(check_flow_format("auto").is_ok());
        assert!(check_flow_format("aws:version srcaddr dstaddr start end action").is_ok());
        let e = check_flow_format("netflow").unwrap_err().to_string();
        assert!(e.contains("not one of auto, aws, azure, gcp"), "{e}");
        assert!(check_flow_format("aws:version nonsense").is_err(), "an unknown field");
    }

    /// The messages the in-process run publishes for `sources`, for the
    /// broker run: the same chunks, keys and headers.
    fn messages(topic: &str, sources: &[input::Source], whole: bool) -> Vec<broker::Input> {
        let mut out = Vec::new();
        for s in sources {
            if whole {
                let bytes = input::read_whole(s, 64 << 20).expect("read");
                out.push(broker::Input { topic: topic.into(), key: s.name(), bytes, headers: vec![] });
                continue;
            }
            let reader = input::open(s, Arc::default()).expect("open");
            let mut chunker = input::Chunker::new(reader, input::CHUNK_BYTES, 64 << 20);
            while let Some(c) = chunker.next_chunk().expect("chunk") {
                let headers = c
                    .aws_header
                    .map(|h| vec![(psg_ingest::flowlogs::AWS_FORMAT_HEADER.to_owned(), h.into_bytes())])
                    .unwrap_or_default();
                out.push(broker::Input { topic: topic.into(), key: s.name(), bytes: c.bytes, headers });
            }
        }
        out
    }

    /// `a` and `b` hold the same items; if not, says how they differ.
    fn same<T: Ord + Clone + std::fmt::Debug>(what: &str, a: &[T], b: &[T]) {
        let (sa, sb): (std::collections::BTreeSet<T>, std::collections::BTreeSet<T>) =
            (a.iter().cloned().collect(), b.iter().cloned().collect());
        let only_a: Vec<&T> = sa.difference(&sb).take(5).collect();
        let only_b: Vec<&T> = sb.difference(&sa).take(5).collect();
        assert!(
            only_a.is_empty() && only_b.is_empty(),
            "{what}: {} vs {}; only in-process (first 5): {only_a:?}; only over Kafka (first 5): {only_b:?}",
            sa.len(),
            sb.len()
        );
    }

    /// The same inputs through both transports — the in-process one and
    /// Kafka (librdkafka's mock cluster, the demo's estate being well within
    /// its limits) — give the same window edges, decisions, alerts, report
    /// and evidence documents. Over Kafka, ingest reads its partitions in no
    /// fixed order, so the estate's flows (an hour of event time, files of
    /// three providers) reach correlate in another order than in process: a
    /// lateness of two hours makes no record late either way, and flows a
    /// day later in every partition close every window on both transports.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_transports_give_the_same_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let estate = psg_estate::generate(7);
        let (mut inventory, mut flows) = (Vec::new(), Vec::new());
        for f in &estate.files {
            let path = dir.path().join("input").join(&f.path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(&path, &f.bytes).expect("write");
            match f.kind {
                psg_estate::FileKind::Inventory => inventory.push(path),
                psg_estate::FileKind::FlowLogs => flows.push(path),
            }
        }
        // Flows between documentation addresses a day later (external on both
        // ends: they classify nothing), spread over every partition.
        let closer: String = (0..60)
            .map(|i| {
                format!(
                    "2 1 eni-x 198.51.100.{} 203.0.113.{} 40000 443 6 1 40 1793580000 1793580060 ACCEPT OK\n",
                    i,
                    i + 1
                )
            })
            .collect();
        let closer_path = dir.path().join("zz-closer.log");
        std::fs::write(&closer_path, closer).expect("closer");
        flows.push(closer_path);
        let args = AnalyzeArgs::of(inventory, flows, OutputFormat::Json);

        let mut base = Config::default();
        base.correlate.allowed_lateness_secs = 7200;
        let local = run(base.clone(), &args, None).await.expect("in-process run");

        let mut cfg = base;
        let key = prepare(&mut cfg, &args, dir.path()).expect("prepare");
        let inv = messages(&cfg.topics.inventory_raw, &input::list(&args.inventory, "inv").expect("list"), true);
        let mut fl = messages(&cfg.topics.flowlogs_raw, &input::list(&args.flows, "flows").expect("list"), false);
        // The closing flows only once the others are processed: over Kafka,
        // ingest could take them first from their own partition.
        let closing = fl.split_off(fl.len() - 1);
        let kafka = broker::run(cfg, vec![inv, fl, closing], &key).await.expect("broker run");

        let is_closer =
            |e: &FlowEdge| e.src.resource_id.contains("198.51.100.") || e.dst.resource_id.contains("203.0.113.");
        let windows = |o: &Outcome| {
            let mut w: Vec<(String, i64, i64, i64, i64, i64)> = o
                .edges
                .iter()
                .filter(|e| e.kind == psg_domain::EdgeKind::Window && !is_closer(e))
                .map(|e| (e.edge_id.clone(), e.packets, e.bytes, e.flows, e.first_seen, e.last_seen))
                .collect();
            w.sort();
            w.dedup();
            w
        };
        let (lw, kw) = (windows(&local), windows(&kafka));
        assert!(lw.len() > 100, "{} window edges", lw.len());
        same("window edges", &lw, &kw);

        let current = |o: &Outcome| {
            let mut by: std::collections::BTreeMap<String, &ScopeDecision> = std::collections::BTreeMap::new();
            for d in &o.decisions {
                if by.get(&d.resource_id).is_none_or(|c| c.decided_at <= d.decided_at) {
                    by.insert(d.resource_id.clone(), d);
                }
            }
            // Not the justification and the CDE peers it names: classify puts
            // a decision into words when the scope is first determined, with
            // the flows it has seen by then, and over Kafka which those are
            // depends on how ingest interleaved its partitions.
            by.into_values().map(|d| (d.resource_id.clone(), d.scope, d.rule.as_str().to_owned())).collect::<Vec<_>>()
        };
        same("current decisions", &current(&local), &current(&kafka));

        // Where each alert stands at the end (its last message), the
        // resolved left out: a condition can hold for a while in one order
        // of the input and never in another (a VPC's first flow-log record
        // read after another VPC's: a coverage gap until it arrives).
        let alerts = |o: &Outcome| {
            let mut by: std::collections::BTreeMap<String, &psg_domain::Alert> = std::collections::BTreeMap::new();
            for a in &o.alerts {
                by.insert(a.alert_id.clone(), a);
            }
            by.into_iter()
                .filter(|(_, a)| a.status != psg_domain::AlertStatus::Resolved)
                .map(|(id, a)| (id, (a.alert_type.as_str().to_owned(), a.title.clone(), a.description.clone())))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let flat = |m: std::collections::BTreeMap<String, (String, String, String)>| m.into_iter().collect::<Vec<_>>();
        same("alerts", &flat(alerts(&local)), &flat(alerts(&kafka)));

        let mut la = local.analysis.clone();
        let mut ka = kafka.analysis.clone();
        la.summary = Summary::default();
        ka.summary = Summary::default();
        for a in [&mut la, &mut ka] {
            a.edges.retain(|e| !e.source.starts_with("ext:198.51.100."));
            for r in &mut a.resources {
                r.justification.clear();
                r.dependency_resource_ids.clear();
            }
        }
        assert!(
            la == ka,
            "the report differs:\n{}\n---\n{}",
            serde_json::to_string(&la).unwrap_or_default(),
            serde_json::to_string(&ka).unwrap_or_default()
        );

        // Evidence documents of the current decisions, without what the
        // wall clock and the chain position put in them.
        let documents = |o: &Outcome| {
            let mut docs: Vec<serde_json::Value> = o
                .evidence
                .iter()
                .filter(|e| e.evidence_type == psg_domain::EvidenceType::ScopeIdentification)
                .map(|e| {
                    let mut v: serde_json::Value = serde_json::from_str(&e.document).expect("document");
                    let d = v["decision"].as_object_mut().expect("decision");
                    for volatile in ["decided_at", "decision_id", "supersedes_id", "previous_scope"] {
                        d.remove(volatile);
                    }
                    v["decision"].clone()
                })
                .collect();
            docs.sort_by_key(|d| d.to_string());
            docs.dedup();
            docs
        };
        let (ld, kd) = (documents(&local), documents(&kafka));
        for d in current(&local) {
            let found = |docs: &[serde_json::Value]| {
                docs.iter().any(|v| {
                    v["resource_id"] == d.0.as_str() && v["scope"] == d.1.as_str() && v["rule"] == d.2.as_str()
                })
            };
            assert!(found(&ld) && found(&kd), "evidence of the current decision of {} on both", d.0);
        }
        assert_eq!(local.analysis.summary.flow_records, estate.expected.flow_records as u64 + 60);
    }
}
