//! Operator commands on a running deployment: `report`, `diagram`,
//! `alerts`, `decide`, `replay`. Every one that changes something writes an
//! `audit_logs` row (who, what, on which resource, the request, success,
//! duration).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use psg_config::Config;
use psg_domain::rows::report::AlertRow;
use psg_domain::time::{now_micros, rfc3339};
use psg_domain::{ManualDecision, PciScope};
use psg_report::{AlertEntry, Analysis, EdgeEntry, Parts, ResourceEntry, Summary};
use psg_store::Store;
use psg_store::operator::{AlertFilter, AuditEntry};

use crate::db::open as store;
use crate::error::{CliError, runtime};

/// Who runs the command (audit log).
#[derive(Debug, Args, Clone)]
pub(crate) struct UserArg {
    /// Who you are, for the audit log (user id or e-mail).
    #[arg(long, env = "PSG_USER", value_name = "USER")]
    pub user: Option<String>,
}

impl UserArg {
    fn name(&self) -> String {
        self.user.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into())
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    Table,
    Json,
    Markdown,
    Csv,
}

/// Diagram formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DiagramFormat {
    Svg,
    Mermaid,
    Dot,
}

/// `alerts` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AlertsAction {
    /// List alerts, newest first.
    #[command(
        after_help = "Example:\n  pci-scope-guard alerts list --status open --severity critical --database-url postgres://..."
    )]
    List {
        /// open, acknowledged, resolved or false_positive.
        #[arg(long)]
        status: Option<String>,
        /// critical, high, medium, low or info.
        #[arg(long)]
        severity: Option<String>,
        /// segmentation_violation, scope_drift, unknown_system, cde_internet, untagged_resource.
        #[arg(long = "type")]
        alert_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one alert in full (id or a unique prefix of it).
    #[command(after_help = "Example:\n  pci-scope-guard alerts show 3f2a9c1e")]
    Show { id: String },
    /// Acknowledge an open alert: someone is on it.
    #[command(after_help = "Example:\n  pci-scope-guard alerts ack 3f2a9c1e --user alice@example.com")]
    Ack {
        id: String,
        #[command(flatten)]
        user: UserArg,
    },
    /// Resolve an open or acknowledged alert.
    #[command(after_help = "Example:\n  pci-scope-guard alerts resolve 3f2a9c1e --user alice@example.com")]
    Resolve {
        id: String,
        #[command(flatten)]
        user: UserArg,
    },
    /// Close an open or acknowledged alert as a false positive.
    #[command(after_help = "Example:\n  pci-scope-guard alerts false-positive 3f2a9c1e --user alice@example.com")]
    FalsePositive {
        id: String,
        #[command(flatten)]
        user: UserArg,
    },
}

/// The scope analysis as the database has it now, or as it stood at `as_of`.
pub(crate) async fn analysis_from_db(
    cfg: &Config,
    store: &Store,
    as_of: Option<DateTime<Utc>>,
) -> Result<Analysis, CliError> {
    let resources = psg_store::operator::scope_at(store, as_of).await.map_err(runtime)?;
    let listings = psg_store::operator::interface_listings(store).await.map_err(runtime)?;
    let alerts =
        psg_store::operator::alerts(store, &AlertFilter { as_of, ..AlertFilter::default() }).await.map_err(runtime)?;
    let lookback = i32::try_from(cfg.classify.lookback_days).unwrap_or(i32::MAX);
    let (edges, newest) = psg_store::operator::edges_at(store, lookback, as_of).await.map_err(runtime)?;
    let parts = Parts {
        as_of: match (as_of, newest) {
            (Some(t), _) | (None, Some(t)) => rfc3339(t.timestamp_micros()),
            (None, None) => rfc3339(now_micros()),
        },
        counts: Summary::default(),
        resources: resources.into_iter().map(ResourceEntry::from).collect(),
        interface_owners: psg_report::interface_owners(listings.iter().map(|(s, l)| (s.as_str(), l.as_slice()))),
        alerts: alerts.iter().map(AlertEntry::from).collect(),
        edges: edges.into_iter().map(EdgeEntry::from).collect(),
        coverage: Vec::new(),
    };
    // Observed only: the database keeps no security groups' reachability.
    Ok(Analysis::build(parts, |_| Default::default()))
}

fn write_or_print(out: Option<&PathBuf>, text: &str) -> Result<(), CliError> {
    match out {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| CliError::Runtime(format!("{}: {e}", p.display())))?;
            eprintln!("wrote {}", p.display());
            Ok(())
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// `pci-scope-guard report`.
pub(crate) async fn report(
    cfg: &Config,
    format: ReportFormat,
    out: Option<PathBuf>,
    as_of: Option<DateTime<Utc>>,
) -> Result<(), CliError> {
    let store = store(cfg, "report").await?;
    let a = analysis_from_db(cfg, &store, as_of).await?;
    let text = match format {
        ReportFormat::Table => psg_report::render::table(&a),
        ReportFormat::Json => serde_json::to_string_pretty(&a).map_err(runtime)? + "\n",
        ReportFormat::Markdown => psg_report::render::markdown(&a),
        ReportFormat::Csv => psg_report::render::csv(&a),
    };
    write_or_print(out.as_ref(), &text)
}

/// `pci-scope-guard diagram`.
pub(crate) async fn diagram(
    cfg: &Config,
    format: DiagramFormat,
    out: Option<PathBuf>,
    as_of: Option<DateTime<Utc>>,
) -> Result<(), CliError> {
    let store = store(cfg, "diagram").await?;
    let a = analysis_from_db(cfg, &store, as_of).await?;
    let text = match format {
        DiagramFormat::Svg => psg_report::diagram::svg(&a),
        DiagramFormat::Mermaid => psg_report::diagram::mermaid(&a),
        DiagramFormat::Dot => psg_report::diagram::dot(&a),
    };
    write_or_print(out.as_ref(), &text)
}

/// Runs `change` and records it in the audit log, whether it worked or not.
async fn audited(
    store: &Store,
    user: &str,
    action: &str,
    resource: (Option<&str>, Option<&str>),
    request: serde_json::Value,
    change: impl Future<Output = Result<serde_json::Value, CliError>>,
) -> Result<serde_json::Value, CliError> {
    let started = Instant::now();
    let result = change.await;
    let entry = AuditEntry {
        user: user.to_owned(),
        action: action.to_owned(),
        resource_type: resource.0.map(str::to_owned),
        resource_id: resource.1.map(str::to_owned),
        request,
        response: result.as_ref().ok().cloned(),
        success: result.is_ok(),
        error: result.as_ref().err().map(ToString::to_string),
        duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    if let Err(e) = psg_store::operator::audit(store, &entry).await {
        return Err(CliError::Runtime(format!(
            "{action}: {} but the audit log could not be written: {e}",
            if result.is_ok() { "done" } else { "failed" }
        )));
    }
    result
}

/// `pci-scope-guard alerts ...`.
pub(crate) async fn alerts(cfg: &Config, action: AlertsAction) -> Result<(), CliError> {
    let store = store(cfg, "alerts").await?;
    match action {
        AlertsAction::List { status, severity, alert_type, limit, json } => {
            let filter = AlertFilter { status, severity, alert_type, limit: Some(limit), as_of: None };
            let list = psg_store::operator::alerts(&store, &filter).await.map_err(runtime)?;
            if json {
                for a in &list {
                    println!("{}", serde_json::to_string(&AlertEntry::from(a)).map_err(runtime)?);
                }
            } else if list.is_empty() {
                println!("no alerts match");
            } else {
                println!("{:<8} {:<20} {:<9} {:<13} {:<23} TITLE", "ID", "TRIGGERED", "SEVERITY", "STATUS", "TYPE");
                for a in &list {
                    println!(
                        "{:<8} {:<20} {:<9} {:<13} {:<23} {}",
                        &a.alert_id[..8.min(a.alert_id.len())],
                        a.triggered_at.format("%Y-%m-%d %H:%M:%S"),
                        a.severity,
                        a.status,
                        a.alert_type,
                        a.title
                    );
                }
            }
            Ok(())
        }
        AlertsAction::Show { id } => {
            let a = one_alert(&store, &id).await?;
            println!("{} [{}] {}", a.alert_id, a.severity, a.title);
            println!("type:       {}", a.alert_type);
            println!("status:     {}", a.status);
            println!("resource:   {}", a.resource);
            println!("triggered:  {}", a.triggered_at.to_rfc3339());
            if let Some((t, by)) = &a.acknowledged {
                println!("acknowledged {} by {by}", t.to_rfc3339());
            }
            if let Some((t, by)) = &a.resolved {
                println!("closed      {} by {by}", t.to_rfc3339());
            }
            println!("PCI DSS:    {}", a.pci_requirement());
            println!("\n{}\n", a.description);
            println!("context: {}", serde_json::to_string_pretty(&a.context).map_err(runtime)?);
            Ok(())
        }
        AlertsAction::Ack { id, user } => transition(&store, &id, "acknowledged", &["open"], &user.name()).await,
        AlertsAction::Resolve { id, user } => {
            transition(&store, &id, "resolved", &["open", "acknowledged"], &user.name()).await
        }
        AlertsAction::FalsePositive { id, user } => {
            transition(&store, &id, "false_positive", &["open", "acknowledged"], &user.name()).await
        }
    }
}

async fn one_alert(store: &Store, id: &str) -> Result<AlertRow, CliError> {
    let found = psg_store::operator::alert(store, id).await.map_err(runtime)?;
    match found.len() {
        0 => Err(CliError::Config(format!("no alert with id {id} (see `pci-scope-guard alerts list`)"))),
        1 => found.into_iter().next().ok_or_else(|| CliError::Config(format!("no alert with id {id}"))),
        _ => Err(CliError::Config(format!("{id} is the start of several alert ids: give more of it"))),
    }
}

async fn transition(store: &Store, id: &str, to: &str, from: &[&str], user: &str) -> Result<(), CliError> {
    let alert = one_alert(store, id).await?;
    let uuid: uuid::Uuid = alert.alert_id.parse().map_err(runtime)?;
    let request = serde_json::json!({"alert_id": alert.alert_id, "status": to});
    let action = format!("alert.{to}");
    let before = audited(store, user, &action, (Some("alert"), Some(&alert.alert_id)), request, async {
        match psg_store::operator::set_alert_status(store, uuid, to, from, user).await.map_err(runtime)? {
            Some(before) => Ok(serde_json::json!({"from": before, "to": to})),
            None => Err(CliError::Config(format!(
                "alert {} is {}; it can become {to} only when it is {}",
                alert.alert_id,
                alert.status,
                from.join(" or ")
            ))),
        }
    })
    .await?;
    println!("alert {} [{}]: {} → {to}", alert.alert_id, alert.title, before["from"].as_str().unwrap_or("?"));
    Ok(())
}

/// `pci-scope-guard decide`.
pub(crate) async fn decide(
    cfg: &Config,
    resource: String,
    scope: Option<PciScope>,
    justification: String,
    user: UserArg,
) -> Result<(), CliError> {
    if scope.is_some() && justification.trim().len() < 10 {
        return Err(CliError::Config(
            "--justification must say why (at least 10 characters): assessors read it".into(),
        ));
    }
    let store = store(cfg, "decide (its audit log)").await?;
    let who = user.name();
    let decision = ManualDecision {
        resource_id: resource.clone(),
        scope,
        justification: justification.clone(),
        decided_by: who.clone(),
        decided_at: now_micros(),
    };
    let request = serde_json::json!({
        "resource_id": resource,
        "scope": scope.map(|s| s.as_str()),
        "justification": justification,
    });
    let topic = cfg.topics.scope_manual.clone();
    audited(&store, &who, "scope.decide", (Some("resource"), Some(&resource)), request, async {
        let bytes = psg_avro_codec::encode(&decision).map_err(runtime)?;
        crate::services::publish(cfg, &topic, resource.as_bytes(), bytes).await?;
        Ok(serde_json::json!({"topic": topic}))
    })
    .await?;
    match scope {
        Some(s) => println!(
            "manual decision: {resource} is {s} (published on {topic}; the classifier applies it without a restart)"
        ),
        None => println!("manual decision for {resource} withdrawn (published on {topic})"),
    }
    Ok(())
}

/// `pci-scope-guard replay`.
pub(crate) async fn replay(
    cfg: &Config,
    files: Vec<PathBuf>,
    topic: String,
    rate: Option<f64>,
    lines_per_message: usize,
    user: UserArg,
) -> Result<(), CliError> {
    if cfg.kafka.brokers.is_none() {
        return Err(CliError::Config("replay needs brokers: pass --brokers or set KAFKA_BROKERS".into()));
    }
    // Messages: a JSON or gzip file whole; text in chunks of lines (an AWS
    // header line goes with every chunk as the psg.aws.format header).
    let mut messages: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| CliError::Config(format!("{}: {e}", f.display())))?;
        let key = f.display().to_string();
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if bytes.starts_with(&[0x1f, 0x8b]) || matches!(first, Some(b'{' | b'[')) || lines_per_message == 0 {
            messages.push((key, bytes, None));
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
        let header = lines
            .peek()
            .filter(|l| l.split_whitespace().next().is_some_and(|w| w == "version" || w == "account-id"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
        if header.is_some() {
            lines.next();
        }
        let all: Vec<&str> = lines.collect();
        for chunk in all.chunks(lines_per_message) {
            messages.push((key.clone(), chunk.join("\n").into_bytes(), header.clone()));
        }
    }
    let deliverer = psg_kafka_runtime::Deliverer::new(&cfg.kafka, "replay", &cfg.topics.ingest_dlq).map_err(runtime)?;
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let total = messages.len();
    let mut sent = 0usize;
    let mut bytes = 0usize;
    let batch = match rate {
        Some(r) if r < 100.0 => 1,
        _ => 100,
    };
    for chunk in messages.chunks(batch) {
        let records = chunk
            .iter()
            .map(|(key, payload, header)| {
                let mut r = psg_kafka_runtime::OutRecord::new(&topic, key.as_bytes(), payload.clone());
                if let Some(h) = header {
                    r.headers.push(("psg.aws.format".into(), h.clone().into_bytes()));
                }
                r
            })
            .collect();
        deliverer.deliver(&psg_kafka_runtime::Output { records, ..Default::default() }).await.map_err(runtime)?;
        sent += chunk.len();
        bytes += chunk.iter().map(|m| m.1.len()).sum::<usize>();
        if let Some(r) = rate {
            let due = Duration::from_secs_f64(sent as f64 / r);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if terminal {
            eprint!("\rreplay: {sent}/{total} messages to {topic}");
        }
    }
    if terminal {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("replayed {sent} messages ({bytes} bytes) from {} files to {topic} in {secs:.1} s", files.len());
    if let Ok(store) = store(cfg, "replay").await {
        let request = serde_json::json!({"files": files, "topic": topic, "rate": rate});
        audited(&store, &user.name(), "replay", (Some("topic"), Some(&topic)), request, async {
            Ok(serde_json::json!({"messages": sent, "bytes": bytes}))
        })
        .await?;
    }
    Ok(())
}
